"""``manage.py seed_demo``: create whatever of the demo consortium is missing."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from yilian.demo.seed import seed_demo


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


class Command(BaseCommand):
    help = "Seed the demo consortium (Quzhou 2018 and Bijie 2022 stories). Safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=2018, help="random seed for generated staff and activity (default 2018)"
        )
        parser.add_argument(
            "--scale",
            type=_positive_int,
            default=1,
            help="multiply the generated staff and clinical activity by this (default 1)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = seed_demo(seed=options["seed"], scale=options["scale"])
        if report.total == 0:
            self.stdout.write("already seeded, nothing to do")
        else:
            self.stdout.write(self.style.SUCCESS(f"seeded the demo consortium: {report.summary()}"))
