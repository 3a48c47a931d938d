"""``yilian import KIND FILE``: the summary, the first problems, the rejects file and the exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yilian.activity.models import BatchStatus
from yilian.activity.tests.test_views import BAD_ROW, GOOD_ROWS, uploaded, visits_csv
from yilian.cli import main

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def activity_dir(settings: Any, tmp_path: Path) -> Path:
    settings.ACTIVITY_DIR = tmp_path / "activity"
    return Path(settings.ACTIVITY_DIR)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_a_landed_import_prints_its_summary_and_exits_0(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, "visits.csv", visits_csv(GOOD_ROWS))
    assert main(["import", "visits", str(path), "--user", "quality"]) == 0
    batch = uploaded().get()
    out = capsys.readouterr().out
    assert f"batch {batch.public_id} (visits, visits.csv): landed; rows 3, landed 3, rejected 0, replaced 0" in out
    # Importing the same visits again replaces them (no double counting).
    assert main(["import", "visits", str(path), "--user", "quality"]) == 0
    assert "rows 3, landed 3, rejected 0, replaced 3" in capsys.readouterr().out


def test_a_rejected_import_prints_the_first_20_problems_and_exits_1(tmp_path: Path, capsys: Any) -> None:
    bad = [[*BAD_ROW[:1], f"B{n:04d}", *BAD_ROW[2:]] for n in range(25)]
    path = write(tmp_path, "bad.csv", visits_csv(bad))
    assert main(["import", "visits", str(path), "--user", "quality"]) == 1
    captured = capsys.readouterr()
    assert "landed 0, rejected 25" in captured.out
    problems = [line for line in captured.err.splitlines() if line.startswith("  row ")]
    assert len(problems) == 20
    assert problems[0].startswith("  row 2, 就诊日期: ")
    assert problems[19].startswith("  row 21, 就诊日期: ")
    assert "25 problem(s); the first 20:" in captured.err
    assert uploaded().get().status == BatchStatus.REJECTED


def test_accept_valid_writes_the_rejects_where_asked(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, "mixed.csv", visits_csv([GOOD_ROWS[0], BAD_ROW]))
    out = tmp_path / "left-out.csv"
    assert main(["import", "visits", str(path), "--user", "quality", "--accept-valid", "--rejects", str(out)]) == 0
    assert "landed 1, rejected 1" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8-sig")
    assert "V0009" in text and "V0001" not in text


def test_a_wrong_command_exits_2_and_imports_nothing(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, "visits.csv", visits_csv(GOOD_ROWS))
    assert main(["import", "visits", str(tmp_path / "missing.csv"), "--user", "quality"]) == 2
    assert "no file" in capsys.readouterr().err
    assert main(["import", "visits", str(path), "--user", "nobody"]) == 2
    assert "no user 'nobody'" in capsys.readouterr().err
    assert main(["import", "visits", str(path), "--user", "commission"]) == 2  # may not import
    with pytest.raises(SystemExit) as exit_:
        main(["import", "surgeries", str(path), "--user", "quality"])
    assert exit_.value.code == 2
    assert not uploaded().exists()
