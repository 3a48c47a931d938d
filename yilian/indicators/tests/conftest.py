from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def _rolled_back(request: pytest.FixtureRequest) -> bool:
    """Whether the test runs inside a transaction that is rolled back after it (a plain ``db`` test):
    only then may the fixture delete rows that the session's seed made."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None and "db" not in request.fixturenames:
        return False
    transactional = bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))
    return not transactional and not {"transactional_db", "live_server"} & set(request.fixturenames)


@pytest.fixture(autouse=True)
def activity_store(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> Path:
    """Each test lands its facts in its own directory, and the engine forgets the tables it held.

    The session's demo seed recorded its landed batches in the database, with their files in the
    demo's store, not in this one: in a rolled-back test their manifest rows are deleted too, so a
    test counts (and covers) only what it lands itself."""
    from yilian.indicators.engine import BACKENDS

    settings.ACTIVITY_DIR = tmp_path / "activity"
    BACKENDS.reset()
    if _rolled_back(request):
        from yilian.activity.models import ImportBatch

        request.getfixturevalue("db")
        ImportBatch.objects.all().delete()
    return Path(settings.ACTIVITY_DIR)


@pytest.fixture
def empty_store(db: None) -> None:
    """No active batch: the demo's own activity (landed by the seed) is withdrawn for the test.
    (The autouse ``activity_store`` already hides it in rolled-back tests; this also covers others.)"""
    from yilian.indicators.tests.factories import withdraw_all

    withdraw_all()


@pytest.fixture
def dataset(empty_store: None) -> None:
    """Only the hand-computed dataset of ``factories`` is active."""
    from yilian.indicators.tests.factories import land_dataset

    land_dataset()
