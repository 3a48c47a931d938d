"""Shared fixtures for consult tests (builders in ``factories``).

``people`` is the cast of everyone who may try a step on the default consult; ``announced`` runs
the after-commit announcements (notifications) of the block it wraps, as a committed request
would; ``clock`` stands the time still at ``T0`` and moves it on by a delta.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from yilian.consults.tests import factories

# A Monday morning in China; the agreement zju2-khph-2018 is in force.
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def people(db: None) -> factories.Cast:
    return factories.cast()


@pytest.fixture
def announced(django_capture_on_commit_callbacks: Any) -> Callable[[], AbstractContextManager[None]]:
    """``with announced(): ...`` runs what the block announces after commit (notifications)."""

    @contextmanager
    def run() -> Iterator[None]:
        with django_capture_on_commit_callbacks(execute=True):
            yield

    return run


@pytest.fixture
def clock(time_machine: Any) -> Callable[[dt.timedelta], dt.datetime]:
    """Stand the clock still at T0; ``clock(delta)`` moves it to T0 + delta and returns that moment."""
    time_machine.move_to(T0, tick=False)

    def move(delta: dt.timedelta) -> dt.datetime:
        time_machine.move_to(T0 + delta, tick=False)
        return T0 + delta

    return move
