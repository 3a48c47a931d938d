"""Indicator tables as Excel workbooks: one sheet per table, headed by the table's title, the
indicator's definition and the coverage notes, then the column headers in the user's language
and the figures as numbers with number formats (a share as a percentage, a count without
decimals), so that hospital staff can compute on them.

A table is plain data (``Table``), built by the API and the dashboard from the engine's answers;
this module only lays it out. Every export leaves an audit row, like every export of the platform.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any, Literal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.registry.selectors import AnyUser

if TYPE_CHECKING:
    from yilian.indicators.engine import IndicatorValue
    from yilian.indicators.models import Indicator

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

ColumnKind = Literal["text", "count", "number", "fraction"]
FORMATS: dict[str, str] = {"count": "#,##0", "number": "#,##0.0#", "fraction": "0.0%"}
GRAIN_LABELS = {"month": gettext_lazy("Month"), "quarter": gettext_lazy("Quarter"), "year": gettext_lazy("Year")}
HEADER_FILL = PatternFill("solid", fgColor="DCEBF1")
MISSED_FILL = PatternFill("solid", fgColor="FDE2E1")


@dataclass(frozen=True)
class Column:
    label: str
    kind: ColumnKind = "text"
    width: float = 14


@dataclass
class Table:
    """What a chart or an API answer shows, as rows. ``notes`` are printed above the headers
    (definition, coverage, the basis of a figure); ``missed`` marks rows (by index) whose value
    misses its target."""

    title: str
    columns: list[Column]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    missed: set[int] = field(default_factory=set)


def _clean(value: Any) -> Any:
    """Text without the control characters a worksheet cannot hold (a filter typed by a user may
    carry one); other values as they are."""
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def _sheet_title(title: str, used: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", " ", title).strip()[:28] or "Sheet"
    name, n = base, 2
    while name.lower() in used:
        name, n = f"{base[:26]} {n}", n + 1
    used.add(name.lower())
    return name


def _write_table(ws: Worksheet, table: Table) -> None:
    ws.append([table.title])
    ws.cell(row=1, column=1).font = Font(bold=True, size=13)
    for note in table.notes:
        ws.append([_clean(note)])
        ws.cell(row=ws.max_row, column=1).alignment = Alignment(wrap_text=False)
    ws.append([])
    ws.append([c.label for c in table.columns])
    header_row = ws.max_row
    for cell in ws[header_row]:
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for index, row in enumerate(table.rows):
        ws.append([_clean(v) for v in row])
        for column, cell in zip(table.columns, ws[ws.max_row], strict=False):
            if column.kind in FORMATS:
                cell.number_format = FORMATS[column.kind]
            if index in table.missed:
                cell.fill = MISSED_FILL
    if not table.rows:
        ws.append([_("No data yet")])
    for i, column in enumerate(table.columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = column.width
    ws.freeze_panes = f"A{header_row + 1}"


def workbook(
    user: AnyUser, *, title: str, filters: Sequence[tuple[str, str]], tables: Sequence[Table], what: dict[str, Any]
) -> bytes:
    """A workbook: a first sheet with the title, the filters and the export time, then one sheet
    per table. ``what`` goes into the audit row (the indicator codes, org units and period)."""
    wb = Workbook()
    ws = wb.active
    assert isinstance(ws, Worksheet)
    used: set[str] = set()
    ws.title = _sheet_title(_("About"), used)
    ws.append([_clean(title)])
    ws.cell(row=1, column=1).font = Font(bold=True, size=13)
    for label, value in [*filters, (_("Exported at"), timezone.localtime().strftime("%Y-%m-%d %H:%M"))]:
        ws.append([_clean(label), _clean(value)])
        ws.cell(row=ws.max_row, column=1).font = Font(bold=True)
    ws.append([])
    ws.append([_("Sheets")])
    ws.cell(row=ws.max_row, column=1).font = Font(bold=True)
    sheets: list[tuple[Worksheet, Table]] = []
    for table in tables:
        sheet = wb.create_sheet(_sheet_title(table.title, used))
        sheets.append((sheet, table))
        ws.append([sheet.title, table.title])
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 60
    for sheet, table in sheets:
        _write_table(sheet, table)
    buffer = BytesIO()
    wb.save(buffer)
    with transaction.atomic():
        audit_record(
            actor=user,
            action=AuditAction.EXPORT,
            object_type="indicators.table",
            object_repr=title[:200],
            changes={"export": "indicators", **what},
        )
    return buffer.getvalue()


def period_text(period: Any) -> str:
    return str(period.label)


def values_table(indicator: Indicator, values: Sequence[IndicatorValue], *, title: str = "") -> Table:
    """An indicator's values per org unit and period, as the API answers them; with a column saying
    which basis each value used when the indicator reads catalogue-derived operation columns."""
    unit = str(indicator.get_unit_display())
    value_label = _("Value") + (f" ({unit})" if unit else "")
    columns = [
        Column(_("Organisation unit"), width=34),
        Column(_("Period"), width=10),
        Column(_("Numerator"), "number"),
        Column(_("Denominator"), "number"),
        Column(value_label, "number"),
        Column(_("Target"), "number", width=10),
        Column(_("Target met"), width=10),
        Column(_("Same period a year earlier"), "number"),
        Column(_("Change on a year earlier"), "fraction"),
        Column(_("Data coverage"), "fraction", width=12),
        Column(_("Coverage note"), width=48),
    ]
    with_basis = any(v.basis for v in values)
    if with_basis:
        columns.append(Column(_("Basis"), width=60))
    rows: list[list[Any]] = []
    missed: set[int] = set()
    notes = [_("Definition: %(text)s") % {"text": indicator.definition}]
    seen_notes: set[str] = set()
    basis: list[str] = []
    for v in values:
        met = "" if v.met is None else (_("yes") if v.met else _("no"))
        if v.met is False:
            missed.add(len(rows))
        rows.append(
            [
                v.org.name,
                period_text(v.period),
                v.numerator,
                v.denominator,
                v.value,
                v.target,
                met,
                v.previous,
                v.yoy,
                v.coverage.share,
                v.coverage.note,
                *([" ".join(v.basis)] if with_basis else []),
            ]
        )
        basis += [sentence for sentence in v.basis if sentence not in basis]
        if v.coverage.note and v.coverage.note not in seen_notes and (v.coverage.share or 0) < 1:
            seen_notes.add(v.coverage.note)
    notes += [_("Basis: %(text)s") % {"text": sentence} for sentence in basis]
    notes += [_("Coverage: %(note)s") % {"note": note} for note in sorted(seen_notes)]
    return Table(
        title=title or f"{indicator.name} ({indicator.code})",
        columns=columns,
        rows=rows,
        notes=notes,
        missed=missed,
    )
