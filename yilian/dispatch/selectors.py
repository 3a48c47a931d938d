"""Reads of expert stationing, always scoped to what the acting user may see.

Who sees a programme (with its assignments, roster, attendance and work logs):
- a system administrator: every programme;
- a consortium office: the programmes of its consortia;
- a hospital administrator: the programmes their hospital sends or hosts;
- a stationed expert: the programmes they are assigned to;
- a health-commission viewer: the programmes hosted inside their region.
Stationing records hold no patient data (work logs count patients, never name them), so reading
them leaves no audit row; every write does (see ``services``).

Committed, planned and delivered days (the attendance report and the indicator inputs):
- committed: the commitment spread over the days the expert could be on site. In each ISO week,
  ``required = min(N, available)`` days (N the days per week, every available day for full-time
  residence), where available days are the working days inside the assignment, not on a home-duty
  weekday and not on leave; each available day carries ``required / available`` of a day;
- planned: on-site days in the roster;
- delivered: days with a check-in or the host's confirmation; absent: days recorded absent.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.permissions import Permission, Role
from yilian.dispatch import solver, workcalendar
from yilian.dispatch.models import (
    PRESENT,
    Assignment,
    Attendance,
    CalendarDay,
    DayKind,
    Leave,
    LoggedOperation,
    Programme,
    ProgrammeStatus,
    RosterDay,
    RosterRun,
    WorkLog,
)
from yilian.registry.models import Department, Institution, Practitioner
from yilian.registry.selectors import AnyUser, require_perm, user_scope

# ----------------------------------------------------------------------------------------
# Scope


def programme_queryset_visible_to(user: AnyUser) -> QuerySet[Programme]:
    scope = user_scope(user)
    if Permission.VIEW_STATIONING not in scope.permissions:
        return Programme.objects.none()
    if scope.is_global:
        return Programme.objects.all()
    q = Q(consortium_id__in=scope.consortium_ids)
    admin_ids = scope.admin_institution_ids
    if admin_ids:
        q |= Q(sending_institution_id__in=admin_ids) | Q(host_institution_id__in=admin_ids)
    if Role.STATIONED_EXPERT in scope.roles and user.pk is not None:
        q |= Q(pk__in=Assignment.objects.filter(practitioner__user_id=user.pk).values("programme_id"))
    for prefix in scope.region_prefixes:
        q |= Q(host_institution__region__code__startswith=prefix)
    return Programme.objects.filter(q)


def assignment_queryset_visible_to(user: AnyUser) -> QuerySet[Assignment]:
    return Assignment.objects.filter(programme__in=programme_queryset_visible_to(user))


def can_manage(user: AnyUser, programme: Programme) -> bool:
    """Whether the user plans this programme: the consortium office of its consortium."""
    scope = user_scope(user)
    if Permission.MANAGE_STATIONING not in scope.permissions:
        return False
    return scope.is_global or programme.consortium_id in scope.consortium_ids


def can_confirm(user: AnyUser, programme: Programme) -> bool:
    """Whether the user confirms attendance at this programme's host: its hospital administrators."""
    scope = user_scope(user)
    if scope.is_global:
        return True
    return programme.host_institution_id in scope.institution_ids_with(Permission.CONFIRM_ATTENDANCE)


def is_own(user: AnyUser, assignment: Assignment) -> bool:
    """Whether the assignment is the user's own (they are the stationed expert)."""
    scope = user_scope(user)
    return (
        Permission.CHECK_IN in scope.permissions and user.pk is not None and assignment.practitioner.user_id == user.pk
    )


def access_programme(user: AnyUser, code: str) -> Programme:
    """Fetch a programme the user may see: 404 when there is none, 403 when it is out of scope."""
    require_perm(user, Permission.VIEW_STATIONING)
    programme = (
        Programme.objects.select_related("consortium", "agreement", "sending_institution", "host_institution")
        .filter(code=code)
        .first()
    )
    if programme is None:
        raise Http404(_("No stationing programme with code %(code)s.") % {"code": code})
    if not programme_queryset_visible_to(user).filter(pk=programme.pk).exists():
        raise PermissionDenied(_("Programme %(code)s is outside what you may see.") % {"code": code})
    return programme


def access_assignment(user: AnyUser, public_id: str) -> Assignment:
    require_perm(user, Permission.VIEW_STATIONING)
    assignment = (
        Assignment.objects.select_related(
            "programme__host_institution",
            "programme__sending_institution",
            "programme__consortium",
            "practitioner__institution",
            "host_department__institution",
            "home_department__institution",
        )
        .filter(public_id=public_id)
        .first()
        if _is_uuid(public_id)
        else None
    )
    if assignment is None:
        raise Http404(_("No such assignment."))
    if not programme_queryset_visible_to(user).filter(pk=assignment.programme_id).exists():
        raise PermissionDenied(_("This assignment is outside what you may see."))
    return assignment


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def programme_list_visible_to(user: AnyUser, *, status: str = "", search: str = "") -> QuerySet[Programme]:
    qs = programme_queryset_visible_to(user).select_related(
        "consortium", "agreement", "sending_institution", "host_institution"
    )
    if status:
        qs = qs.filter(status=status)
    if search:
        qs = qs.filter(
            Q(title_zh__icontains=search)
            | Q(title_en__icontains=search)
            | Q(code__icontains=search)
            | Q(host_institution__name_zh__icontains=search)
        )
    return qs.annotate(
        people=Count("assignments", filter=Q(assignments__withdrawn_on__isnull=True), distinct=True)
    ).order_by("-starts_on", "code")


def programme_assignments(programme: Programme) -> list[Assignment]:
    return list(
        programme.assignments.select_related(
            "practitioner__institution", "host_department__institution", "home_department__institution"
        ).order_by("host_department__name_zh", "practitioner__name_zh")
    )


def own_assignments(user: AnyUser, *, on: dt.date | None = None) -> list[Assignment]:
    """The user's own assignments as a stationed expert that have not ended by ``on`` (today when not
    given; a withdrawal from a later day still leaves the days before it), and running on ``on`` when
    it is given. Cancelled programmes are left out."""
    scope = user_scope(user)
    if Permission.CHECK_IN not in scope.permissions or user.pk is None:
        return []
    day = on or timezone.localdate()
    qs = (
        Assignment.objects.filter(practitioner__user_id=user.pk)
        .filter(Q(withdrawn_on__isnull=True) | Q(withdrawn_on__gte=day))
        .exclude(programme__status=ProgrammeStatus.CANCELLED)
        .select_related("programme__host_institution", "host_department__institution", "practitioner")
    )
    if on is not None:
        qs = qs.filter(starts_on__lte=on).filter(Q(ends_on__isnull=True) | Q(ends_on__gte=on))
    return list(qs.order_by("starts_on"))


def host_departments(programme: Programme) -> list[Department]:
    return list(
        Department.objects.filter(institution_id=programme.host_institution_id, is_active=True)
        .select_related("institution")
        .order_by("name_zh")
    )


def latest_run(programme: Programme) -> RosterRun | None:
    return programme.roster_runs.order_by("-created_at").first()


def run_shortfalls(run: RosterRun) -> list[solver.Shortfall]:
    """The run's shortfalls, each department named in the reader's language (the stored label is
    in the language of whoever ran the optimiser)."""
    shortfalls = [solver.shortfall_from_json(data) for data in run.shortfalls]
    keys = {s.department for s in shortfalls if s.department}
    names = {str(d.public_id): d.name for d in Department.objects.filter(public_id__in=keys)} if keys else {}
    return [
        replace(s, label=names[s.department])
        if s.kind != solver.ShortfallKind.COMMITMENT and s.department in names
        else s
        for s in shortfalls
    ]


# ----------------------------------------------------------------------------------------
# Calendar


def calendar_overrides(start: dt.date, end: dt.date) -> dict[dt.date, tuple[bool, str]]:
    return {d.date: (d.is_workday, d.name) for d in CalendarDay.objects.filter(date__gte=start, date__lte=end)}


def calendar_horizon(start: dt.date, end: dt.date) -> workcalendar.Horizon:
    return workcalendar.horizon(start, end, calendar_overrides(start, end))


def calendar_days(year: int) -> list[CalendarDay]:
    return list(CalendarDay.objects.filter(date__year=year).order_by("date"))


# ----------------------------------------------------------------------------------------
# Rosters


def monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def leave_days(practitioner_ids: Iterable[int], start: dt.date, end: dt.date) -> dict[int, set[dt.date]]:
    days: dict[int, set[dt.date]] = defaultdict(set)
    for leave in Leave.objects.filter(
        practitioner_id__in=list(practitioner_ids), starts_on__lte=end, ends_on__gte=start
    ):
        d = max(leave.starts_on, start)
        while d <= min(leave.ends_on, end):
            days[leave.practitioner_id].add(d)
            d += dt.timedelta(days=1)
    return days


def on_site_days(practitioner_ids: Iterable[int], start: dt.date, end: dt.date) -> list[tuple[int, dt.date, str]]:
    """(expert, day, host institution's name) for each planned day on site in the window, for other
    apps planning around the experts (MDT meetings); cancelled programmes and withdrawals excluded."""
    rows = (
        RosterDay.objects.filter(
            assignment__practitioner_id__in=list(practitioner_ids),
            date__gte=start,
            date__lte=end,
            kind=DayKind.ON_SITE,
        )
        .exclude(assignment__programme__status=ProgrammeStatus.CANCELLED)
        .select_related("assignment__programme__host_institution")
        .order_by("date", "assignment__practitioner_id")
    )
    return [
        (r.assignment.practitioner_id, r.date, r.assignment.programme.host_institution.name)
        for r in rows
        if active_on(r.assignment, r.date)
    ]


def active_on(assignment: Assignment, day: dt.date) -> bool:
    last = assignment.last_day
    return assignment.starts_on <= day and (last is None or day <= last)


@dataclass
class Cell:
    date: dt.date
    kind: str = ""  # DayKind value or ""
    is_fixed: bool = False
    attendance: str = ""  # AttendanceStatus value or ""
    is_workday: bool = True
    holiday: str = ""
    blocked: bool = False
    on_leave: bool = False
    active: bool = True


@dataclass
class Row:
    assignment: Assignment
    cells: list[Cell]

    @property
    def on_site(self) -> int:
        return sum(1 for c in self.cells if c.kind == DayKind.ON_SITE)


@dataclass
class Grid:
    start: dt.date
    end: dt.date
    days: list[workcalendar.DayInfo]
    rows: list[Row]
    unknown_years: tuple[int, ...]
    coverage: dict[tuple[int, dt.date], int] = field(default_factory=dict)  # (department id, day) -> experts on site


def roster_grid(assignments: list[Assignment], start: dt.date, end: dt.date) -> Grid:
    """The roster of these assignments from ``start`` to ``end``: one row per assignment, one cell
    per day with the plan, the attendance and why a day is unavailable."""
    horizon = calendar_horizon(start, end)
    ids = [a.pk for a in assignments]
    planned = {
        (r.assignment_id, r.date): r
        for r in RosterDay.objects.filter(assignment_id__in=ids, date__gte=start, date__lte=end)
    }
    attended = {
        (a.assignment_id, a.date): a.status
        for a in Attendance.objects.filter(assignment_id__in=ids, date__gte=start, date__lte=end)
    }
    leave = leave_days({a.practitioner_id for a in assignments}, start, end)
    rows = []
    coverage: dict[tuple[int, dt.date], int] = defaultdict(int)
    for a in assignments:
        cells = []
        for info in horizon.days:
            plan = planned.get((a.pk, info.date))
            cell = Cell(
                date=info.date,
                kind=plan.kind if plan else "",
                is_fixed=bool(plan and plan.is_fixed),
                attendance=attended.get((a.pk, info.date), ""),
                is_workday=info.is_workday,
                holiday=info.name,
                blocked=info.date.isoweekday() in a.blocked_iso_weekdays,
                on_leave=info.date in leave.get(a.practitioner_id, set()),
                active=active_on(a, info.date),
            )
            if cell.kind == DayKind.ON_SITE:
                coverage[(a.host_department_id, info.date)] += 1
            cells.append(cell)
        rows.append(Row(a, cells))
    return Grid(start, end, horizon.days, rows, horizon.unknown_years, dict(coverage))


def expert_week(user: AnyUser, day: dt.date) -> Grid:
    """The user's own week (Monday to Sunday) across their assignments."""
    start = monday(day)
    end = start + dt.timedelta(days=6)
    mine = [a for a in own_assignments(user) if a.starts_on <= end and (a.last_day is None or a.last_day >= start)]
    return roster_grid(mine, start, end)


# ----------------------------------------------------------------------------------------
# Committed, planned and delivered days


def committed_by_day(
    assignment: Assignment, start: dt.date, end: dt.date, horizon: workcalendar.Horizon, leave: set[dt.date]
) -> dict[dt.date, float]:
    """Each day's share of the commitment (see the module docstring). ``horizon`` must cover the
    whole ISO weeks around ``start`` and ``end``."""
    workdays = horizon.working_days
    shares: dict[dt.date, float] = {}
    week = monday(start)
    while week <= end:
        days = [week + dt.timedelta(days=i) for i in range(7)]
        available = [
            d
            for d in days
            if d in workdays
            and active_on(assignment, d)
            and d.isoweekday() not in assignment.blocked_iso_weekdays
            and d not in leave
        ]
        if available:
            n = assignment.weekly_days
            required = len(available) if n is None else min(n, len(available))
            for d in available:
                if start <= d <= end:
                    shares[d] = required / len(available)
        week += dt.timedelta(days=7)
    return shares


@dataclass
class Delivery:
    """Days of one assignment (or a total) over a period."""

    committed: float = 0.0
    planned: int = 0
    delivered: int = 0
    absent: int = 0
    unplanned: int = 0  # delivered days that were not planned on site

    @property
    def committed_days(self) -> int:
        return round(self.committed)

    @property
    def share(self) -> float | None:
        """Delivered over committed, None when nothing was committed."""
        return self.delivered / self.committed if self.committed >= 0.5 else None

    def add(self, other: Delivery) -> None:
        self.committed += other.committed
        self.planned += other.planned
        self.delivered += other.delivered
        self.absent += other.absent
        self.unplanned += other.unplanned


def month_key(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def delivery_by_month(assignments: list[Assignment], start: dt.date, end: dt.date) -> dict[int, dict[str, Delivery]]:
    """Assignment id -> month ("YYYY-MM") -> committed / planned / delivered / absent days."""
    if not assignments:
        return {}
    first, last = monday(start), monday(end) + dt.timedelta(days=6)
    horizon = calendar_horizon(first, last)
    ids = [a.pk for a in assignments]
    # The whole ISO weeks, like the horizon: leave on a day of the first week before ``start``
    # still takes that day out of the week's available days.
    leave = leave_days({a.practitioner_id for a in assignments}, first, last)
    result: dict[int, dict[str, Delivery]] = {a.pk: defaultdict(Delivery) for a in assignments}
    for a in assignments:
        for d, share in committed_by_day(a, start, end, horizon, leave.get(a.practitioner_id, set())).items():
            result[a.pk][month_key(d)].committed += share
    for assignment_id, date in RosterDay.objects.filter(
        assignment_id__in=ids, kind=DayKind.ON_SITE, date__gte=start, date__lte=end
    ).values_list("assignment_id", "date"):
        result[assignment_id][month_key(date)].planned += 1
    for assignment_id, date, status, was_planned in Attendance.objects.filter(
        assignment_id__in=ids, date__gte=start, date__lte=end
    ).values_list("assignment_id", "date", "status", "was_planned"):
        row = result[assignment_id][month_key(date)]
        if status in PRESENT:
            row.delivered += 1
            row.unplanned += 0 if was_planned else 1
        else:
            row.absent += 1
    return result


@dataclass
class ReportLine:
    assignment: Assignment
    months: dict[str, Delivery]
    total: Delivery


@dataclass
class AttendanceReport:
    start: dt.date
    end: dt.date
    months: list[str]
    lines: list[ReportLine]
    total: Delivery
    by_month: dict[str, Delivery]


def attendance_report(programme: Programme, start: dt.date, end: dt.date) -> AttendanceReport:
    assignments = [a for a in programme_assignments(programme) if a.starts_on <= end and (a.last_day or end) >= start]
    figures = delivery_by_month(assignments, start, end)
    months: list[str] = []
    d = start.replace(day=1)
    while d <= end:
        months.append(month_key(d))
        d = (d + dt.timedelta(days=32)).replace(day=1)
    lines = []
    total = Delivery()
    by_month: dict[str, Delivery] = {m: Delivery() for m in months}
    for a in assignments:
        per = figures.get(a.pk, {})
        line_total = Delivery()
        for m in months:
            if m in per:
                line_total.add(per[m])
                by_month[m].add(per[m])
        total.add(line_total)
        lines.append(ReportLine(a, {m: per.get(m, Delivery()) for m in months}, line_total))
    return AttendanceReport(start, end, months, lines, total, by_month)


def attendance_list(assignment: Assignment, *, start: dt.date, end: dt.date) -> list[Attendance]:
    return list(
        assignment.attendance.filter(date__gte=start, date__lte=end).select_related("recorded_by").order_by("-date")
    )


def attendance_on(assignment: Assignment, day: dt.date) -> Attendance | None:
    return assignment.attendance.filter(date=day).first()


def work_log_on(assignment: Assignment, day: dt.date) -> WorkLog | None:
    return assignment.work_logs.filter(date=day).prefetch_related("operations__local_surgeon").first()


def work_logs(assignment: Assignment, *, start: dt.date, end: dt.date) -> list[WorkLog]:
    return list(
        assignment.work_logs.filter(date__gte=start, date__lte=end)
        .prefetch_related("operations__local_surgeon")
        .order_by("-date")
    )


@dataclass
class WorkDone:
    days_logged: int = 0
    outpatient_sessions: int = 0
    patients_seen: int = 0
    ward_rounds: int = 0
    teaching_sessions: int = 0
    consultations: int = 0
    management_meetings: int = 0
    operations: int = 0
    operations_level_34: int = 0
    operations_by_role: dict[str, int] = field(default_factory=dict)


def work_done(assignments: QuerySet[Assignment] | list[Assignment], start: dt.date, end: dt.date) -> WorkDone:
    logs = WorkLog.objects.filter(assignment__in=assignments, date__gte=start, date__lte=end)
    sums = logs.aggregate(
        n=Count("id"),
        outpatient_sessions=Sum("outpatient_sessions"),
        patients_seen=Sum("patients_seen"),
        ward_rounds=Sum("ward_rounds"),
        teaching_sessions=Sum("teaching_sessions"),
        consultations=Sum("consultations"),
        management_meetings=Sum("management_meetings"),
    )
    ops = LoggedOperation.objects.filter(work_log__in=logs)
    by_role = dict(ops.values_list("role").annotate(n=Count("id")).values_list("role", "n"))
    return WorkDone(
        days_logged=sums["n"] or 0,
        outpatient_sessions=sums["outpatient_sessions"] or 0,
        patients_seen=sums["patients_seen"] or 0,
        ward_rounds=sums["ward_rounds"] or 0,
        teaching_sessions=sums["teaching_sessions"] or 0,
        consultations=sums["consultations"] or 0,
        management_meetings=sums["management_meetings"] or 0,
        operations=sum(by_role.values()),
        operations_level_34=ops.filter(level__gte=3).count(),
        operations_by_role=by_role,
    )


# ----------------------------------------------------------------------------------------
# Indicator inputs


@dataclass
class StationingFigures:
    """What stationing delivered at one host institution over a period (indicator inputs)."""

    institution: Institution
    doctors_stationed: int
    days_committed: int
    days_delivered: int
    registrations: int  # outpatients seen by stationed experts (their registrations)
    operations: int
    operations_level_34: int

    @property
    def delivered_share(self) -> float | None:
        return self.days_delivered / self.days_committed if self.days_committed else None


@dataclass
class StationingMonth:
    """What stationing delivered at one host institution in one month (adds up over months; the
    doctors are a set because one doctor stationed in two months is one doctor of the two)."""

    institution: Institution
    practitioners: set[int] = field(default_factory=set)
    committed: float = 0.0
    delivered: int = 0
    registrations: int = 0
    operations: int = 0
    operations_level_34: int = 0

    def add(self, other: StationingMonth) -> None:
        self.practitioners |= other.practitioners
        self.committed += other.committed
        self.delivered += other.delivered
        self.registrations += other.registrations
        self.operations += other.operations
        self.operations_level_34 += other.operations_level_34

    def figures(self) -> StationingFigures:
        return StationingFigures(
            institution=self.institution,
            doctors_stationed=len(self.practitioners),
            days_committed=round(self.committed),
            days_delivered=self.delivered,
            registrations=self.registrations,
            operations=self.operations,
            operations_level_34=self.operations_level_34,
        )


def _runs_in(a: Assignment, start: dt.date, end: dt.date) -> bool:
    return (
        a.starts_on <= end
        and (a.ends_on is None or a.ends_on >= start)
        and (a.withdrawn_on is None or a.withdrawn_on >= start)
    )


def _first_of_months(start: dt.date, end: dt.date) -> list[dt.date]:
    out, day = [], start.replace(day=1)
    while day <= end:
        out.append(day)
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def stationing_figures_by_month(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[dt.date, dict[int, StationingMonth]]:
    """Month (its first day) -> host institution id -> what stationing delivered there, for the
    days from ``start`` to ``end`` (inclusive; the first and last months are cut to them), for the
    hosts the user may see (of ``institution_ids`` when given). A doctor counts in the months an
    assignment of theirs runs; cancelled programmes do not count."""
    require_perm(user, Permission.VIEW_STATIONING)
    visible = assignment_queryset_visible_to(user)
    if institution_ids is not None:
        visible = visible.filter(programme__host_institution_id__in=institution_ids)
    assignments = list(
        visible.filter(starts_on__lte=end)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=start))
        .filter(Q(withdrawn_on__isnull=True) | Q(withdrawn_on__gte=start))
        .exclude(programme__status=ProgrammeStatus.CANCELLED)
        .select_related("programme__host_institution")
    )
    out: dict[dt.date, dict[int, StationingMonth]] = defaultdict(dict)
    hosts = {a.programme.host_institution_id: a.programme.host_institution for a in assignments}

    def cell(month: dt.date, host_id: int) -> StationingMonth:
        if host_id not in out[month]:
            out[month][host_id] = StationingMonth(hosts[host_id])
        return out[month][host_id]

    months = _first_of_months(start, end)
    delivery = delivery_by_month(assignments, start, end)
    for a in assignments:
        host_id = a.programme.host_institution_id
        for month in months:
            month_end = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1) - dt.timedelta(days=1)
            if _runs_in(a, max(month, start), min(month_end, end)):
                cell(month, host_id).practitioners.add(a.practitioner_id)
        for key, days in delivery[a.pk].items():
            of_month = cell(dt.date(int(key[:4]), int(key[5:7]), 1), host_id)
            of_month.committed += days.committed
            of_month.delivered += days.delivered
    # The work of every host in two grouped queries, not a query per host and month.
    host = "assignment__programme__host_institution_id"
    logs = WorkLog.objects.filter(assignment__in=[a.pk for a in assignments], date__gte=start, date__lte=end)
    for host_id, month, seen in (
        logs.order_by().annotate(month=TruncMonth("date")).values_list(host, "month").annotate(n=Sum("patients_seen"))
    ):
        cell(_as_date(month), host_id).registrations += seen or 0
    op_host = "work_log__" + host
    for row in (
        LoggedOperation.objects.filter(work_log__in=logs)
        .order_by()
        .annotate(month=TruncMonth("work_log__date"))
        .values(op_host, "month")
        .annotate(n=Count("id"), n34=Count("id", filter=Q(level__gte=3)))
    ):
        target = cell(_as_date(row["month"]), row[op_host])
        target.operations += row["n"]
        target.operations_level_34 += row["n34"]
    return dict(out)


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def stationing_figures(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> list[StationingFigures]:
    """Per host institution the user may see (of ``institution_ids`` when given): doctors stationed
    (distinct experts with an assignment running in the period), on-site days committed and
    delivered, registrations and operations by stationed experts, from ``start`` to ``end``
    inclusive. Cancelled programmes do not count."""
    pooled: dict[int, StationingMonth] = {}
    for by_host in stationing_figures_by_month(user, start=start, end=end, institution_ids=institution_ids).values():
        for host_id, month in by_host.items():
            pooled.setdefault(host_id, StationingMonth(month.institution)).add(month)
    return sorted((p.figures() for p in pooled.values()), key=lambda f: f.institution.code)


def programmes_hosted_at(institution: Institution) -> list[Programme]:
    """The stationing programmes an institution hosts (not cancelled), newest start first: the
    before/after points of its satisfaction results. Not scoped to a user: the caller has already
    been allowed to see the institution's results, and a programme's title and start are what the
    hospital announces anyway; nothing else of the programme is handed out."""
    return list(
        Programme.objects.filter(host_institution=institution)
        .exclude(status=ProgrammeStatus.CANCELLED)
        .select_related("sending_institution")
        .order_by("-starts_on", "code")
    )


def local_surgeons(programme: Programme) -> QuerySet[Practitioner]:
    return Practitioner.objects.filter(institution_id=programme.host_institution_id, is_active=True).order_by("name_zh")


def distance_m(lat1: Decimal | float, lon1: Decimal | float, lat2: Decimal | float, lon2: Decimal | float) -> float:
    """Great-circle distance in metres (haversine)."""
    from math import asin, cos, radians, sin, sqrt

    p1, p2 = radians(float(lat1)), radians(float(lat2))
    dp, dl = p2 - p1, radians(float(lon2) - float(lon1))
    a = sin(dp / 2) ** 2 + cos(p1) * cos(p2) * sin(dl / 2) ** 2
    return 2 * 6_371_000 * asin(sqrt(a))


def today() -> dt.date:
    return timezone.localdate()


@dataclass(frozen=True)
class LoggedCase:
    """An operation from an expert's work log, as the capability ledger reads it."""

    key: str  # stable while the work log's operation row exists: "work_log:<log public id>:<row id>"
    date: dt.date
    institution_id: int
    department_id: int
    expert_id: int
    expert_name: str
    role: str
    procedure: str
    procedure_code: str
    level: int
    local_surgeon_id: int | None
    local_surgeon_name: str


def logged_operations_matching(
    *,
    institution_ids: Iterable[int],
    code_prefix: str = "",
    name: str = "",
    department_id: int | None = None,
    before: dt.date | None = None,
) -> list[LoggedCase]:
    """Work-log operations at the institutions (optionally one host department, optionally before a
    day) whose code starts with ``code_prefix`` or whose procedure names ``name``; oldest first.
    Not scoped to a user: the capability app calls it to check evidence and claims, and hands out
    only dates, codes and surgeons' names, never patients."""
    if not code_prefix and not name:
        return []
    q = Q()
    if code_prefix:
        q |= Q(procedure_code__startswith=code_prefix)
    if name:
        q |= Q(procedure__icontains=name)
    qs = LoggedOperation.objects.filter(
        q, work_log__assignment__programme__host_institution_id__in=list(institution_ids)
    )
    if department_id is not None:
        qs = qs.filter(work_log__assignment__host_department_id=department_id)
    if before is not None:
        qs = qs.filter(work_log__date__lt=before)
    rows = qs.select_related(
        "work_log__assignment__practitioner", "work_log__assignment__programme", "local_surgeon"
    ).order_by("work_log__date", "id")
    return [
        LoggedCase(
            key=f"work_log:{op.work_log.public_id}:{op.pk}",
            date=op.work_log.date,
            institution_id=op.work_log.assignment.programme.host_institution_id,
            department_id=op.work_log.assignment.host_department_id,
            expert_id=op.work_log.assignment.practitioner_id,
            expert_name=op.work_log.assignment.practitioner.name_zh,
            role=op.role,
            procedure=op.procedure,
            procedure_code=op.procedure_code,
            level=op.level,
            local_surgeon_id=op.local_surgeon_id,
            local_surgeon_name=op.local_surgeon_name,
        )
        for op in rows
    ]


def experts_stationed_at(institution_ids: Iterable[int]) -> dict[int, set[str]]:
    """Host institution id -> the Chinese names of every expert ever stationed there (to tell an
    expert's operation from a local surgeon's in imported records, which name the operator)."""
    out: dict[int, set[str]] = {}
    for host_id, name in Assignment.objects.filter(
        programme__host_institution_id__in=list(institution_ids)
    ).values_list("programme__host_institution_id", "practitioner__name_zh"):
        out.setdefault(host_id, set()).add(name)
    return out
