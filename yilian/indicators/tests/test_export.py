"""Excel layout of indicator tables: one sheet per table after a sheet of filters, notes above the
headers, headers in the user's language, figures as numbers with number formats, rows that miss
their target marked, and an audit row per export."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.utils import translation
from openpyxl import load_workbook

from yilian.core.models import AuditEvent
from yilian.indicators import export

pytestmark = pytest.mark.django_db


def tables() -> list[export.Table]:
    return [
        export.Table(
            title="Level-4 share: by month",  # a colon is not allowed in a sheet name
            columns=[
                export.Column("Period"),
                export.Column("Stays", "count"),
                export.Column("Share (%)", "number"),
                export.Column("Change", "fraction"),
            ],
            rows=[["2025-01", 1234, 12.5, 0.31], ["2025-02", 1300, 9.0, -0.05]],
            notes=["Definition: stays with a level-4 operation ÷ stays with surgery × 100 %.", "Coverage: 2 of 3."],
            missed={1},
        ),
        export.Table(title="Level-4 share: by month", columns=[export.Column("Period")], rows=[]),
    ]


def test_one_sheet_per_table_with_notes_headers_and_number_formats(persona: Any) -> None:
    with translation.override("en"):
        content = export.workbook(
            persona("office"),
            title="Capability",
            filters=[("Organisation unit", "Bijie centre"), ("Period", "2025-01 – 2025-02")],
            tables=tables(),
            what={"chart": "shares"},
        )
    wb = load_workbook(io.BytesIO(content))
    assert wb.sheetnames == ["About", "Level-4 share  by month", "Level-4 share  by month 2"]
    about = [tuple(r) for r in wb["About"].iter_rows(values_only=True)]
    assert about[0][0] == "Capability"
    assert ("Organisation unit", "Bijie centre") in about
    assert about[3][0] == "Exported at"
    assert ("Level-4 share  by month", "Level-4 share: by month") in about

    ws = wb["Level-4 share  by month"]
    rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
    assert rows[0][0] == "Level-4 share: by month"
    assert str(rows[1][0]).startswith("Definition: stays with a level-4 operation")
    assert rows[2][0] == "Coverage: 2 of 3."
    assert rows[4] == ("Period", "Stays", "Share (%)", "Change")
    assert rows[5] == ("2025-01", 1234, 12.5, 0.31)
    assert [ws.cell(row=6, column=c).number_format for c in (2, 3, 4)] == ["#,##0", "#,##0.0#", "0.0%"]
    assert ws.freeze_panes == "A6"
    assert ws.cell(row=7, column=3).fill.fgColor.rgb.endswith("FDE2E1")  # February misses the target
    assert ws.cell(row=6, column=3).fill.fgColor.rgb in ("00000000", None)
    empty = [tuple(r) for r in wb["Level-4 share  by month 2"].iter_rows(values_only=True)]
    assert ("No data yet",) in empty

    audit = AuditEvent.objects.filter(action="export").order_by("-id").first()
    assert audit is not None
    assert audit.object_type == "indicators.table"
    assert audit.changes == {"export": "indicators", "chart": "shares"}


def test_values_table_marks_missed_targets_and_keeps_incomplete_coverage_notes() -> None:
    from yilian.indicators.engine import Coverage, IndicatorValue, OrgUnit, Period
    from yilian.indicators.models import Indicator

    indicator = Indicator.objects.get(code="in_county_visit_rate")
    org = OrgUnit("region", "330824", "开化县")
    values = [
        IndicatorValue("in_county_visit_rate", org, Period("year", dt.date(2024, 1, 1), dt.date(2025, 1, 1), "2024"),
                       80, 100, 80.0, 90.0, False, Coverage(0.5, "Complete data from 1 of 2 institutions."),
                       None, None),
        IndicatorValue("in_county_visit_rate", org, Period("year", dt.date(2025, 1, 1), dt.date(2026, 1, 1), "2025"),
                       92, 100, 92.0, 90.0, True, Coverage(1.0, "Complete data from 2 of 2 institutions."),
                       80.0, 0.15),
    ]  # fmt: skip
    with translation.override("en"):
        table = export.values_table(indicator, values)
    assert table.title == "In-county visit rate (in_county_visit_rate)"
    assert table.columns[4].label == "Value (%)"
    assert [r[:9] for r in table.rows] == [
        ["开化县", "2024", 80, 100, 80.0, 90.0, "no", None, None],
        ["开化县", "2025", 92, 100, 92.0, 90.0, "yes", 80.0, 0.15],
    ]
    assert table.missed == {0}
    assert table.notes[0].startswith("Definition: Visits by the region's residents")
    assert table.notes[1:] == ["Coverage: Complete data from 1 of 2 institutions."]
