"""Stationing as files: the roster of a period and the attendance report as Excel workbooks, and an
expert's on-site and travel days as an iCalendar feed.

The workbooks hold no patient data (days, names, departments); each export still leaves an audit
row, like every export of the platform. The feed is read by calendar apps with a signed key and
audits nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from io import BytesIO
from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from icalendar import Calendar, Event
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.dispatch import selectors
from yilian.dispatch.forms import WEEKDAY_SHORT
from yilian.dispatch.models import AttendanceStatus, Commitment, DayKind, Programme, RosterDay
from yilian.registry.models import Department, Practitioner
from yilian.registry.selectors import AnyUser

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

ON_SITE = "●"
TRAVEL = "→"
FIXED = "*"
PRESENT = "✓"
ABSENT = "✗"

FILLS = {
    "on_site": PatternFill("solid", fgColor="9CC9DA"),
    "travel": PatternFill("solid", fgColor="FDE9B5"),
    "holiday": PatternFill("solid", fgColor="E2E6EA"),
    "blocked": PatternFill("solid", fgColor="E9E1F5"),
    "leave": PatternFill("solid", fgColor="FBD6C4"),
    "short": PatternFill("solid", fgColor="F8C9C9"),
}
THIN = Side(style="thin", color="D0D7DE")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
CENTER = Alignment(horizontal="center", vertical="center")


class CoverageLike(Protocol):
    """A coverage row of the roster page (``views.CoverageRow``)."""

    department: Department
    total: int
    per_week: int

    @property
    def cells(self) -> Sequence[Any]: ...


def _sheet(wb: Workbook, title: str, first: bool = False) -> Worksheet:
    ws = wb.active if first else wb.create_sheet()
    assert isinstance(ws, Worksheet)
    ws.title = title[:31]
    return ws


def _bold_row(ws: Worksheet) -> None:
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)


def _audit_export(user: AnyUser, programme: Programme, what: str, **details: Any) -> None:
    with transaction.atomic():
        audit_record(actor=user, action=AuditAction.EXPORT, obj=programme, changes={"export": what, **details})


def _commitment(a: Any) -> str:
    if a.commitment == Commitment.FULL_TIME:
        return _("Full-time residence")
    return _("%(n)d days/week") % {"n": a.days_per_week or 0}


def roster_workbook(
    user: AnyUser, programme: Programme, grid: selectors.Grid, coverage: Sequence[CoverageLike], *, period: str
) -> bytes:
    """One sheet: experts in rows, the days of the period in columns, coverage per department
    below, then the legend."""
    wb = Workbook()
    ws = _sheet(wb, _("Roster"), first=True)
    ws.append([programme.title])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append([_("Period"), period])
    ws.append([])
    header = [_("Expert"), _("Host department"), _("Commitment")]
    header += [f"{d.date:%m-%d}" for d in grid.days] + [_("On site")]
    ws.append(header)
    _bold_row(ws)
    first_day_col = 4
    weekday_row = [""] * 3 + [_weekday(d.date) for d in grid.days]
    ws.append(weekday_row)
    header_rows = (ws.max_row - 1, ws.max_row)
    for info_index, info in enumerate(grid.days):
        column = first_day_col + info_index
        for r in header_rows:
            head = ws.cell(row=r, column=column)
            head.alignment = CENTER
            if not info.is_workday:
                head.fill = FILLS["holiday"]
    for row in grid.rows:
        a = row.assignment
        values: list[Any] = [a.practitioner.name, a.host_department.name, _commitment(a)]
        for day in row.cells:
            text = ""
            if day.kind == DayKind.ON_SITE:
                text = ON_SITE
            elif day.kind == DayKind.TRAVEL:
                text = TRAVEL
            if day.is_fixed:
                text += FIXED
            if day.attendance:
                text += ABSENT if day.attendance == AttendanceStatus.ABSENT else PRESENT
            values.append(text)
        values.append(row.on_site)
        ws.append(values)
        r = ws.max_row
        for i, day in enumerate(row.cells):
            target = ws.cell(row=r, column=first_day_col + i)
            target.alignment = CENTER
            target.border = BORDER
            fill = None
            if not day.is_workday:
                fill = "holiday"
            if day.blocked:
                fill = "blocked"
            if day.on_leave:
                fill = "leave"
            if day.kind == DayKind.TRAVEL:
                fill = "travel"
            if day.kind == DayKind.ON_SITE:
                fill = "on_site"
            if fill:
                target.fill = FILLS[fill]
    if coverage:
        ws.append([])
        ws.append([_("Experts on site per department")])
        _bold_row(ws)
        for line in coverage:
            counts = [c.count for c in line.cells]
            ws.append([line.department.name, "", "", *counts, line.total])
            r = ws.max_row
            for i, c in enumerate(line.cells):
                target = ws.cell(row=r, column=first_day_col + i)
                target.alignment = CENTER
                if c.count < c.need:
                    target.fill = FILLS["short"]
    ws.append([])
    ws.append([_("Legend")])
    _bold_row(ws)
    legend: list[tuple[str, str, str | None]] = [
        (ON_SITE, _("On site"), "on_site"),
        (TRAVEL, _("Travel day"), "travel"),
        (FIXED, _("Fixed by hand"), None),
        (PRESENT, _("Delivered (checked in or confirmed by the host)"), None),
        (ABSENT, _("Absent"), None),
        ("", _("Public holiday or weekend"), "holiday"),
        ("", _("Home-duty weekday"), "blocked"),
        ("", _("Leave"), "leave"),
        ("", _("Fewer experts than the department needs"), "short"),
    ]
    for symbol, label, swatch in legend:
        ws.append([symbol, label])
        key = ws.cell(row=ws.max_row, column=1)
        key.alignment = CENTER
        if swatch:
            key.fill = FILLS[swatch]
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 16
    ws.column_dimensions["C"].width = 12
    for i in range(len(grid.days)):
        ws.column_dimensions[get_column_letter(first_day_col + i)].width = 6.5
    ws.freeze_panes = f"{get_column_letter(first_day_col)}{header_rows[1] + 1}"
    buffer = BytesIO()
    wb.save(buffer)
    _audit_export(user, programme, "roster", period=period, experts=len(grid.rows))
    return buffer.getvalue()


def _weekday(day: dt.date) -> str:
    return str(WEEKDAY_SHORT[day.weekday()])


def attendance_workbook(user: AnyUser, programme: Programme, report: selectors.AttendanceReport) -> bytes:
    """Two sheets: per expert and month, and per expert over the period (committed, planned,
    delivered, absent days and the delivered share)."""
    wb = Workbook()
    period = f"{report.start.isoformat()} – {report.end.isoformat()}"
    ws = _sheet(wb, _("By month"), first=True)
    ws.append([programme.title, period])
    ws["A1"].font = Font(bold=True)
    columns = [
        _("Expert"),
        _("Home department"),
        _("Host department"),
        _("Month"),
        _("Committed days"),
        _("Planned days"),
        _("Delivered days"),
        _("Absent days"),
        _("Delivered share (%)"),
    ]
    ws.append(columns)
    _bold_row(ws)
    for line in report.lines:
        a = line.assignment
        for month in report.months:
            d = line.months[month]
            ws.append(
                [
                    a.practitioner.name,
                    a.home_department.name if a.home_department else "",
                    a.host_department.name,
                    month,
                    round(d.committed, 1),
                    d.planned,
                    d.delivered,
                    d.absent,
                    _share(d),
                ]
            )
    for i, width in enumerate([14, 16, 16, 10, 12, 12, 12, 12, 14], start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A3"

    ws = _sheet(wb, _("Totals"))
    ws.append([programme.title, period])
    ws["A1"].font = Font(bold=True)
    ws.append([c for i, c in enumerate(columns) if i != 3])
    _bold_row(ws)
    for line in report.lines:
        a, d = line.assignment, line.total
        ws.append(
            [
                a.practitioner.name,
                a.home_department.name if a.home_department else "",
                a.host_department.name,
                round(d.committed, 1),
                d.planned,
                d.delivered,
                d.absent,
                _share(d),
            ]
        )
    d = report.total
    ws.append([_("Total"), "", "", round(d.committed, 1), d.planned, d.delivered, d.absent, _share(d)])
    _bold_row(ws)
    for i, width in enumerate([14, 16, 16, 12, 12, 12, 12, 14], start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    buffer = BytesIO()
    wb.save(buffer)
    _audit_export(user, programme, "attendance", period=period, experts=len(report.lines))
    return buffer.getvalue()


def _share(d: selectors.Delivery) -> float | None:
    return round(100 * d.delivered / d.committed, 1) if d.committed >= 0.5 else None


def roster_ics(practitioner: Practitioner, days: list[RosterDay], *, host: str) -> bytes:
    """All-day events, one per on-site day and per travel day, in the active language."""
    cal = Calendar()
    cal.add("prodid", "-//Yilian//Stationing//ZH")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", _("Stationing: %(name)s") % {"name": practitioner.name})
    cal.add("x-wr-timezone", "Asia/Shanghai")
    domain = host.split(":")[0] or "yilian"
    for day in days:
        a = day.assignment
        institution = a.programme.host_institution.name
        if day.kind == DayKind.ON_SITE:
            summary = _("On site: %(host)s %(department)s") % {
                "host": institution,
                "department": a.host_department.name,
            }
        else:
            summary = _("Travel: %(host)s") % {"host": institution}
        event = Event()
        event.add("uid", f"{a.public_id}-{day.date.isoformat()}@{domain}")
        event.add("dtstamp", day.updated_at or timezone.now())
        event.add("dtstart", day.date)
        event.add("dtend", day.date + dt.timedelta(days=1))
        event.add("summary", summary)
        event.add("transp", "OPAQUE" if day.kind == DayKind.ON_SITE else "TRANSPARENT")
        if a.programme.host_institution.address:
            event.add("location", a.programme.host_institution.address)
        cal.add_component(event)
    return bytes(cal.to_ical())
