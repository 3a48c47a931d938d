"""The satisfaction results of one institution as an Excel workbook.

Sheets: the summary and the figures per dimension; the figures per month (one row per month, the
percent satisfied of each dimension in columns, with the counts beside them); the before/after
comparison when a pivot date is given; and the comments, only for the institution's quality staff.
Answers hold no personal data, so nothing needs masking. Every export leaves an audit row.
"""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from typing import Any

from django.db import transaction
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.registry.selectors import AnyUser
from yilian.surveys import selectors
from yilian.surveys.models import Dimension, SurveyKind
from yilian.surveys.selectors import ResultFilters, Share

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _sheet(wb: Workbook, title: str, first: bool = False) -> Worksheet:
    ws = wb.active if first else wb.create_sheet()
    assert isinstance(ws, Worksheet)
    ws.title = title[:31]
    return ws


def _header(ws: Worksheet, row: list[str]) -> None:
    ws.append(row)
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)


def _widths(ws: Worksheet, widths: list[int]) -> None:
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width


def period_label(filters: ResultFilters) -> str:
    start = filters.start.isoformat() if filters.start else "…"
    end = (filters.end - dt.timedelta(days=1)).isoformat() if filters.end else "…"
    return f"{start} – {end}"


def results_workbook(
    user: AnyUser, filters: ResultFilters, *, pivot: dt.date | None = None, pivot_label: str = ""
) -> bytes:
    """The workbook as bytes, with the audit row of the export written in the same transaction."""
    results = selectors.survey_results(user, filters)
    before_after = selectors.survey_before_after(user, filters, pivot=pivot) if pivot else None
    with_comments = selectors.can_read_comments(user, filters.institution)
    comments = selectors.survey_comments(user, filters) if with_comments else []

    wb = Workbook()
    ws = _sheet(wb, _("Summary"), first=True)
    _widths(ws, [34, 16, 16, 16])
    rows: list[tuple[str, Any]] = [
        (_("Institution"), filters.institution.name),
        (_("Department"), filters.department.name if filters.department else _("All departments")),
        (_("Survey"), SurveyKind(filters.kind).label if filters.kind else _("All surveys")),
        (_("Period"), period_label(filters)),
        (_("Responses"), results.responses),
        (_("Links issued (QR code, text message, link)"), results.links.whole),
        (_("Of them answered"), results.links.part),
        (_("Response rate (%)"), results.links.percent),
        (_("Comments"), results.comments),
    ]
    for label, value in rows:
        ws.append([str(label), str(value) if isinstance(value, Promise) else value])
        ws.cell(row=ws.max_row, column=1).font = Font(bold=True)
    ws.append([])
    _header(ws, [_("Dimension"), _("Ratings"), _("Satisfied (4 or 5)"), _("Satisfied (%)")])
    for dimension, share in results.dimensions.items():
        ws.append([str(Dimension(dimension).label), share.whole, share.part, share.percent])

    ws = _sheet(wb, _("By month"))
    dimensions = list(results.dimensions)
    header = [_("Month"), _("Responses")]
    for dimension in dimensions:
        label = str(Dimension(dimension).label)
        header += [f"{label} (%)", f"{label}: " + _("ratings"), f"{label}: " + _("satisfied")]
    _header(ws, header)
    _widths(ws, [10, 11] + [14] * (3 * len(dimensions)))
    for month in results.months:
        row: list[Any] = [month.month.strftime("%Y-%m"), month.responses]
        for dimension in dimensions:
            share = month.dimensions.get(dimension, Share())
            row += [share.percent, share.whole, share.part]
        ws.append(row)

    if before_after is not None:
        ws = _sheet(wb, _("Before and after"))
        _widths(ws, [30, 14, 14, 14, 14])
        ws.append([_("Compared around"), before_after.pivot.isoformat()])
        if pivot_label:
            ws.append([_("Stationing programme"), pivot_label])
        ws.append([_("Responses before"), before_after.responses_before])
        ws.append([_("Responses from then on"), before_after.responses_after])
        ws.append([])
        _header(ws, [_("Dimension"), _("Before (%)"), _("After (%)"), _("Ratings before"), _("Ratings after")])
        for dimension, before, after in before_after.rows:
            ws.append([str(Dimension(dimension).label), before.percent, after.percent, before.whole, after.whole])

    if with_comments:
        ws = _sheet(wb, _("Comments"))
        _widths(ws, [12, 16, 20, 80])
        _header(ws, [_("Day"), _("Survey"), _("Department"), _("Comment")])
        for comment in comments:
            ws.append(
                [
                    comment.day.isoformat(),
                    str(SurveyKind(comment.kind).label),
                    comment.department,
                    _as_text(comment.text),
                ]
            )

    buffer = BytesIO()
    wb.save(buffer)
    with transaction.atomic():
        audit_record(
            actor=user,
            action=AuditAction.EXPORT,
            obj=filters.institution,
            changes={
                "export": "survey results",
                "department": str(filters.department.public_id) if filters.department else "",
                "kind": filters.kind,
                "period": period_label(filters),
                "pivot": pivot.isoformat() if pivot else "",
                "comments": len(comments),
            },
        )
    return buffer.getvalue()


def _as_text(text: str) -> str:
    """An anonymous comment as plain text in a spreadsheet: one that starts like a formula
    (= + - @, a tab or a carriage return) is quoted, so that opening the file runs nothing."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
