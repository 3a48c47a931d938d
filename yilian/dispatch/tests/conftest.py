"""Shared fixtures for stationing tests (builders in ``factories``).

``clock`` pins "today" for the services that read the real date (attendance recorded by the host,
work logs): ``clock(day)`` moves the time to 18:00 China time on ``day``, without ticking.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from yilian.dispatch.tests.factories import at


@pytest.fixture
def clock(time_machine: Any) -> Callable[[dt.date], dt.datetime]:
    def move(day: dt.date) -> dt.datetime:
        moment = at(day, 18)
        time_machine.move_to(moment, tick=False)
        return moment

    return move
