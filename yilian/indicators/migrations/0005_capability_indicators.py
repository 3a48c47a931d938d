"""The capability-building indicators (techniques introduced and independent, the blood-making
ratio, teaching hours delivered and received, mentee milestones), added to databases made before
they shipped. Adds only the codes no indicator has yet."""

from __future__ import annotations

from typing import Any

from django.db import migrations

from yilian.indicators.defaults import load_defaults

CODES = [
    "techniques_introduced",
    "techniques_independent",
    "blood_making_ratio",
    "teaching_hours_delivered",
    "teaching_hours_received",
    "milestones_reached",
]


def forwards(apps: Any, schema_editor: Any) -> None:
    load_defaults(apps.get_model("indicators", "Indicator"), codes=CODES)


class Migration(migrations.Migration):
    dependencies = [("indicators", "0004_capability_units")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
