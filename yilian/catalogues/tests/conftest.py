from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def facts_store(db: None, settings: Any, tmp_path: Path) -> Path:
    """The test's own activity store: only what the test lands counts (the demo seed's batches are
    forgotten in the rolled-back transaction), and the engine forgets the tables it held."""
    from yilian.activity.models import ImportBatch
    from yilian.indicators.engine import BACKENDS

    settings.ACTIVITY_DIR = tmp_path / "activity"
    BACKENDS.reset()
    ImportBatch.objects.all().delete()
    return Path(settings.ACTIVITY_DIR)
