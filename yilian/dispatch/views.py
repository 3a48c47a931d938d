"""Stationing pages: programmes, the roster calendar, assignments, the expert's week and work log,
the attendance report, the working calendar and the experts' calendar feeds.

Every page works as plain HTML forms; HTMX only makes some of them faster (the programme filter,
the roster's navigation and its day panel). Views parse, call an ``access_*`` selector first, then
a service or selector, and render. A service's ValidationError is shown next to its field or as an
alert with status 400, a Conflict as an alert with status 409; PermissionDenied becomes the 403 page.
Only the consortium office (``can_manage``) sees planning actions, only the host's hospital
administrators (``can_confirm``) see the confirm and absent buttons, only the expert (``is_own``)
sees check-in and the work log.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yilian.core.errors import Conflict
from yilian.core.permissions import Permission
from yilian.dispatch import explain, export, selectors, services, workcalendar
from yilian.dispatch.forms import (
    WEEKDAY_SHORT,
    AssignmentEditForm,
    AssignmentForm,
    AttendanceForm,
    CalendarDayForm,
    CheckInForm,
    DemandForm,
    FixForm,
    ObjectiveForm,
    OperationForm,
    OptimiseForm,
    ProgrammeEditForm,
    ProgrammeFilterForm,
    ProgrammeForm,
    ProgrammeStatusForm,
    RosterQueryForm,
    WithdrawForm,
    WorkLogForm,
    parse_month,
    weekdays_value,
)
from yilian.dispatch.forms import LeaveForm as LeaveEntryForm
from yilian.dispatch.models import (
    Assignment,
    Attendance,
    AttendanceStatus,
    Commitment,
    DayKind,
    HostDemand,
    Leave,
    Objective,
    ObjectiveKind,
    OperationRole,
    Programme,
    ProgrammeStatus,
    RosterDay,
    RosterRun,
    WorkLog,
)
from yilian.registry.models import (
    Agreement,
    Consortium,
    ConsortiumMember,
    Department,
    Institution,
    Practitioner,
    User,
    localized,
)
from yilian.registry.selectors import require_perm, user_scope
from yilian.web.forms import EARLIEST, LATEST, attempt

ICS_SALT = "dispatch.ics"
ATTENDANCE_DAYS = 60  # the assignment page's attendance and work logs look this far back
AHEAD_WEEKS = 4  # the assignment page's roster looks this far ahead
OPERATION_ROWS = 3  # empty rows of the work log's operations table
MAX_OPERATION_ROWS = services.OPERATIONS_PER_DAY + OPERATION_ROWS
REPORT_MONTHS = 6
MAX_REPORT_MONTHS = 24
FEED_PAST_DAYS = 90


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _htmx_target(request: HttpRequest) -> str:
    """The element an HTMX request will swap ("" for a normal or a boosted request)."""
    htmx = getattr(request, "htmx", None)
    if not htmx or htmx.boosted:
        return ""
    return str(htmx.target or "")


def _messages_of(exc: ValidationError) -> list[str]:
    return [str(m) for m in exc.messages]


def _weekday(day: dt.date) -> str:
    return str(WEEKDAY_SHORT[day.weekday()])


def weekdays_label(iso_weekdays: str) -> str:
    return "、".join(str(WEEKDAY_SHORT[int(c) - 1]) for c in iso_weekdays if c in "1234567")


def _percent(part: float, whole: float) -> int | None:
    return round(100 * part / whole) if whole >= 0.5 else None


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_end(first: dt.date) -> dt.date:
    return _add_months(first, 1) - dt.timedelta(days=1)


def _within_range(day: dt.date | None) -> dt.date:
    """A day asked for in the address, or today when there is none or it is beyond the years the
    pages handle (a month or a week around it must stay representable)."""
    if day is None or not (EARLIEST <= day <= LATEST):
        return selectors.today()
    return day


def ics_key(practitioner: Practitioner) -> str:
    """The key of the practitioner's calendar feed: a signature of their public id and their current
    feed secret, so a calendar app can subscribe without a session, nobody can guess another
    expert's feed, and the expert can make a leaked address stop working (a new secret)."""
    salt = services.feed_key_salt(practitioner=practitioner)
    return signing.Signer(salt=ICS_SALT).signature(f"{practitioner.public_id}:{salt}")


def ics_url(request: HttpRequest, practitioner: Practitioner) -> str:
    path = reverse("dispatch:feed", args=[practitioner.public_id])
    return request.build_absolute_uri(f"{path}?key={ics_key(practitioner)}")


def _conflict(request: HttpRequest, exc: Conflict) -> None:
    messages.error(request, str(exc))


def _changed(obj: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """The values of an edit form that differ from what the object holds: a service is given only
    the changes, so an edit that leaves the dates alone does not check or touch the roster."""
    return {name: value for name, value in wanted.items() if getattr(obj, name) != value}


# ----------------------------------------------------------------------------------------
# Programmes


def _managed_consortia(user: User) -> QuerySet[Consortium]:
    scope = user_scope(user)
    if Permission.MANAGE_STATIONING not in scope.permissions:
        return Consortium.objects.none()
    if scope.is_global:
        return Consortium.objects.filter(is_active=True).order_by("code")
    return Consortium.objects.filter(pk__in=scope.consortium_ids, is_active=True).order_by("code")


@login_required
@require_GET
def programme_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.VIEW_STATIONING)
    form = ProgrammeFilterForm(request.GET or None)
    status, search = "", ""
    if form.is_valid():
        status, search = form.cleaned_data["status"], form.cleaned_data["q"].strip()
    programmes = list(selectors.programme_list_visible_to(user, status=status, search=search))
    context = {
        "form": form,
        "programmes": programmes,
        "can_create": _managed_consortia(user).exists(),
        "is_expert": Permission.CHECK_IN in user_scope(user).permissions,
    }
    template = "dispatch/_programme_rows.html" if _htmx_target(request) == "programme-rows" else "dispatch/list.html"
    return render(request, template, context)


def _programme_form(user: User, data: Any = None) -> ProgrammeForm:
    consortia = _managed_consortia(user)
    today = timezone.localdate()
    members = ConsortiumMember.objects.filter(
        Q(left_on__isnull=True) | Q(left_on__gte=today), consortium__in=consortia
    ).values("institution_id")
    institutions = Institution.objects.filter(
        Q(pk__in=members) | Q(pk__in=consortia.values("lead_institution_id")), is_active=True
    ).order_by("code")
    agreements = Agreement.objects.filter(consortium__in=consortia).order_by("-signed_on")
    initial = {"starts_on": today, "consortium": consortia.first()}
    return ProgrammeForm(data, consortia=consortia, institutions=institutions, agreements=agreements, initial=initial)


@login_required
@require_http_methods(["GET", "POST"])
def programme_create(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.MANAGE_STATIONING)
    if request.method != "POST":
        return render(request, "dispatch/create.html", {"form": _programme_form(user)})
    form = _programme_form(user, request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        programme, status = attempt(
            form,
            lambda: services.programme_create(
                actor=user,
                code=data["code"],
                consortium=data["consortium"],
                sending_institution=data["sending_institution"],
                host_institution=data["host_institution"],
                agreement=data["agreement"],
                title_zh=data["title_zh"],
                title_en=data["title_en"],
                batch=data["batch"],
                starts_on=data["starts_on"],
                ends_on=data["ends_on"],
                status=data["status"],
                require_location=data["require_location"],
                note=data["note"],
            ),
        )
        if programme is not None:
            messages.success(request, _("Programme %(code)s created.") % {"code": programme.code})
            return HttpResponseRedirect(reverse("dispatch:programme", args=[programme.code]))
    return render(request, "dispatch/create.html", {"form": form}, status=status)


@dataclass
class PersonRow:
    assignment: Assignment
    delivered: int
    committed: int
    percent: int | None
    blocked: str


@dataclass
class DemandRow:
    department: Department
    demand: HostDemand | None
    experts: int
    weekdays: str


def _objective_groups(programme: Programme) -> list[tuple[str, list[Objective]]]:
    by_kind: dict[str, list[Objective]] = defaultdict(list)
    for objective in programme.objectives.all():
        by_kind[objective.kind].append(objective)
    return [(str(kind.label), by_kind[kind.value]) for kind in ObjectiveKind if by_kind.get(kind.value)]


def _demand_rows(programme: Programme, assignments: list[Assignment]) -> list[DemandRow]:
    departments = selectors.host_departments(programme)
    demands = {d.department_id: d for d in HostDemand.objects.filter(programme=programme, department__in=departments)}
    experts: dict[int, int] = defaultdict(int)
    for a in assignments:
        if a.withdrawn_on is None:
            experts[a.host_department_id] += 1
    rows = []
    for department in departments:
        demand = demands.get(department.pk)
        if department.pk in experts or (demand and (demand.days_per_week or demand.need_weekdays)):
            rows.append(
                DemandRow(
                    department,
                    demand,
                    experts.get(department.pk, 0),
                    weekdays_label(demand.need_weekdays) if demand else "",
                )
            )
    return rows


def _programme_context(user: User, programme: Programme, **bound: Any) -> dict[str, Any]:
    can_manage = selectors.can_manage(user, programme)
    assignments = selectors.programme_assignments(programme)
    today = selectors.today()
    end = min(today, programme.ends_on) if programme.ends_on else today
    start = programme.starts_on
    # Days committed and delivered over the last twelve months (whole months, the current one to date).
    recent_start = max(start, _add_months(end.replace(day=1), -11))
    figures = selectors.delivery_by_month(assignments, recent_start, end) if recent_start <= end else {}
    recent_from = selectors.month_key(recent_start)
    people = []
    last_12 = selectors.Delivery()
    for a in assignments:
        recent = selectors.Delivery()
        for month, delivery in figures.get(a.pk, {}).items():
            if month >= recent_from:
                recent.add(delivery)
        last_12.add(recent)
        people.append(
            PersonRow(
                a,
                recent.delivered,
                recent.committed_days,
                _percent(recent.delivered, recent.committed),
                weekdays_label(a.blocked_weekdays),
            )
        )
    done = selectors.work_done(assignments, start, end) if start <= end else selectors.WorkDone()
    context: dict[str, Any] = {
        "programme": programme,
        "can_manage": can_manage,
        "objective_groups": _objective_groups(programme),
        "people": people,
        "active_people": sum(1 for a in assignments if a.withdrawn_on is None),
        "last_12": last_12,
        "last_12_percent": _percent(last_12.delivered, last_12.committed),
        "recent_from": recent_from,
        "period_end": end,
        "done": done,
        "operations_by_role": [
            (label, done.operations_by_role.get(value, 0))
            for value, label in OperationRole.choices
            if done.operations_by_role.get(value)
        ],
        "demand_rows": _demand_rows(programme, assignments),
        "latest_run": selectors.latest_run(programme),
        "today": today,
    }
    if can_manage:
        departments = selectors.host_departments(programme)
        context.update(
            {
                "status_form": bound.get("status_form") or ProgrammeStatusForm(initial={"status": programme.status}),
                "edit_form": bound.get("edit_form") or _programme_edit_form(programme),
                "objective_form": bound.get("objective_form") or ObjectiveForm(),
                "demand_form": bound.get("demand_form") or DemandForm(departments=departments),
                "assignment_form": bound.get("assignment_form") or _assignment_form(programme),
                "open_form": bound.get("open_form", ""),
            }
        )
    return context


def _programme_edit_form(programme: Programme, data: Any = None) -> ProgrammeEditForm:
    initial = {name: getattr(programme, name) for name in ProgrammeEditForm.base_fields}
    # Its own ids: the page's other forms have fields of the same names (the dates).
    return ProgrammeEditForm(data, initial=initial, auto_id="edit_%s")


def _assignment_form(programme: Programme, data: Any = None) -> AssignmentForm:
    practitioners = (
        Practitioner.objects.filter(institution_id=programme.sending_institution_id, is_active=True)
        .select_related("department")
        .order_by("department__name_zh", "name_zh")
    )
    home_departments = Department.objects.filter(institution_id=programme.sending_institution_id, is_active=True)
    today = selectors.today()
    initial = {"starts_on": max(today, programme.starts_on), "commitment": Commitment.DAYS_PER_WEEK}
    return AssignmentForm(
        data,
        practitioners=practitioners,
        host_departments=selectors.host_departments(programme),
        home_departments=home_departments.order_by("name_zh"),
        initial=initial,
    )


def _programme_page(request: HttpRequest, programme: Programme, status: int = 200, **bound: Any) -> HttpResponse:
    return render(
        request, "dispatch/programme.html", _programme_context(_user(request), programme, **bound), status=status
    )


@login_required
@require_GET
def programme_detail(request: HttpRequest, code: str) -> HttpResponse:
    programme = selectors.access_programme(_user(request), code)
    return _programme_page(request, programme)


def _programme_url(programme: Programme, anchor: str = "") -> str:
    url = reverse("dispatch:programme", args=[programme.code])
    return f"{url}#{anchor}" if anchor else url


def _manage(user: User, programme: Programme) -> None:
    if not selectors.can_manage(user, programme):
        raise PermissionDenied(_("Only the consortium office plans this consortium's stationing."))


@login_required
@require_POST
def programme_status(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _manage(user, programme)
    form = ProgrammeStatusForm(request.POST)
    if form.is_valid():
        _done, status = attempt(
            form, lambda: services.programme_update(actor=user, programme=programme, status=form.cleaned_data["status"])
        )
        if status == 200:
            messages.success(request, _("The programme's status is saved."))
            return HttpResponseRedirect(_programme_url(programme))
    return _programme_page(request, programme, 400, status_form=form, open_form="status")


@login_required
@require_POST
def programme_edit(request: HttpRequest, code: str) -> HttpResponse:
    """The office changes the programme's titles, batch, dates, check-in rule or note."""
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _manage(user, programme)
    form = _programme_edit_form(programme, request.POST)
    status = 400
    if form.is_valid():
        changes = _changed(programme, form.cleaned_data)
        _done, status = attempt(
            form, lambda: services.programme_update(actor=user, programme=programme, **changes) if changes else None
        )
        if status == 200:
            messages.success(request, _("The programme is saved.") if changes else _("Nothing was changed."))
            return HttpResponseRedirect(_programme_url(programme))
    return _programme_page(request, programme, status, edit_form=form, open_form="edit")


@login_required
@require_POST
def objective_add(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _manage(user, programme)
    form = ObjectiveForm(request.POST)
    if form.is_valid():
        _done, status = attempt(
            form, lambda: services.objective_add(actor=user, programme=programme, **form.cleaned_data)
        )
        if status == 200:
            messages.success(request, _("Objective added."))
            return HttpResponseRedirect(_programme_url(programme, "objectives"))
    return _programme_page(request, programme, 400, objective_form=form, open_form="objective")


@login_required
@require_POST
def objective_remove(request: HttpRequest, code: str, objective_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _manage(user, programme)
    objective = programme.objectives.filter(public_id=objective_id).first()
    if objective is None:
        raise Http404(_("No such objective."))
    services.objective_remove(actor=user, objective=objective)
    messages.success(request, _("Objective removed."))
    return HttpResponseRedirect(_programme_url(programme, "objectives"))


@login_required
@require_POST
def demand_set(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _manage(user, programme)
    departments = selectors.host_departments(programme)
    form = DemandForm(request.POST, departments=departments)
    if form.is_valid():
        data = form.cleaned_data
        department = next(d for d in departments if str(d.public_id) == data["department"])
        _done, status = attempt(
            form,
            lambda: services.host_demand_set(
                actor=user,
                programme=programme,
                department=department,
                days_per_week=data["days_per_week"],
                need_weekdays=weekdays_value(data["need_weekdays"]),
                need_label_zh=data["need_label_zh"],
                need_label_en=data["need_label_en"],
            ),
        )
        if status == 200:
            messages.success(request, _("The demand of %(department)s is saved.") % {"department": department.name})
            return HttpResponseRedirect(_programme_url(programme, "demand"))
    return _programme_page(request, programme, 400, demand_form=form, open_form="demand")


@login_required
@require_POST
def assignment_create(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _manage(user, programme)
    form = _assignment_form(programme, request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        departments = {str(d.public_id): d for d in Department.objects.filter(
            public_id__in=[v for v in (data["host_department"], data["home_department"]) if v])}  # fmt: skip
        assignment, status = attempt(
            form,
            lambda: services.assignment_create(
                actor=user,
                programme=programme,
                practitioner=data["practitioner"],
                host_department=departments[data["host_department"]],
                home_department=departments.get(data["home_department"]),
                role=data["role"],
                starts_on=data["starts_on"],
                ends_on=data["ends_on"],
                commitment=data["commitment"],
                days_per_week=data["days_per_week"] if data["commitment"] == Commitment.DAYS_PER_WEEK else None,
                blocked_weekdays=weekdays_value(data["blocked_weekdays"]),
                blocked_note=data["blocked_note"],
            ),
        )
        if assignment is not None:
            messages.success(
                request,
                _("%(name)s is stationed at %(department)s.")
                % {"name": assignment.practitioner.name, "department": assignment.host_department.name},
            )
            return HttpResponseRedirect(_programme_url(programme, "people"))
    return _programme_page(request, programme, status, assignment_form=form, open_form="assignment")


# ----------------------------------------------------------------------------------------
# Roster


@dataclass
class RosterState:
    view: str
    start: dt.date
    end: dt.date
    department: uuid.UUID | None
    expert: uuid.UUID | None
    cell: str

    def query(self, **changes: Any) -> str:
        values: dict[str, Any] = {
            "view": self.view,
            "start": self.start.isoformat(),
            "department": self.department or "",
            "expert": self.expert or "",
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def previous(self) -> dt.date:
        return self.start - dt.timedelta(days=7) if self.view == "week" else _add_months(self.start, -1)

    @property
    def next(self) -> dt.date:
        return self.start + dt.timedelta(days=7) if self.view == "week" else _add_months(self.start, 1)


def _roster_state(params: QueryDict) -> RosterState:
    form = RosterQueryForm(params)
    data = form.cleaned_data if form.is_valid() else {}
    view = data.get("view") or "month"
    day = _within_range(data.get("start"))
    if view == "week":
        start = selectors.monday(day)
        end = start + dt.timedelta(days=6)
    else:
        start = day.replace(day=1)
        end = _month_end(start)
    return RosterState(view, start, end, data.get("department"), data.get("expert"), data.get("cell") or "")


@dataclass
class CellView:
    cell: selectors.Cell
    css: str
    title: str
    mark: str  # ✓ delivered, ✗ absent
    icon: str  # a bootstrap icon name
    href: str
    key: str  # "<assignment>_<date>"
    label: str  # a word for the week view


@dataclass
class RowView:
    row: selectors.Row
    cells: list[CellView]
    on_site: int
    blocked: str


@dataclass
class CoverageCell:
    date: dt.date
    count: int
    need: int
    css: str
    title: str


@dataclass
class CoverageRow:
    department: Department
    demand: HostDemand | None
    cells: list[CoverageCell]
    total: int
    per_week: int
    short: bool


def _cell_view(
    assignment: Assignment, cell: selectors.Cell, today: dt.date, link: str | None, holiday: str
) -> CellView:
    css = ["rc"]
    parts = [f"{cell.date.isoformat()} {_weekday(cell.date)}"]
    icon = ""
    label = ""
    if not cell.is_workday:
        css.append("rc-holiday")
        parts.append(holiday or _("Not a working day"))
        label = holiday
    elif holiday:
        parts.append(holiday)
    if not cell.active:
        css.append("rc-inactive")
        parts.append(_("Not stationed on this day"))
    if cell.blocked:
        css.append("rc-blocked")
        parts.append(_("Home duty: %(note)s") % {"note": assignment.blocked_note or _weekday(cell.date)})
        label = _("Home duty")
    if cell.on_leave:
        css.append("rc-leave")
        parts.append(_("On leave"))
        label = _("Leave")
    if cell.kind == DayKind.ON_SITE:
        css.append("rc-on")
        parts.append(_("On site"))
        label = _("On site")
    elif cell.kind == DayKind.TRAVEL:
        css.append("rc-travel")
        parts.append(_("Travel day"))
        icon = "train-front"
        label = _("Travel")
    elif cell.kind == DayKind.OFF:
        css.append("rc-fixed-off")
        parts.append(_("Not on site"))
        label = _("Off")
    if cell.is_fixed:
        parts.append(_("fixed by hand"))
        icon = "pin-angle-fill"
    mark = ""
    if cell.attendance:
        parts.append(str(AttendanceStatus(cell.attendance).label))
        if cell.attendance == AttendanceStatus.ABSENT:
            mark = "✗"
            css.append("rc-absent")
        else:
            mark = "✓"
            css.append("rc-present")
    if cell.date == today:
        css.append("rc-today")
    key = f"{assignment.public_id}_{cell.date.isoformat()}"
    return CellView(cell, " ".join(css), " · ".join(parts), mark, icon, link or "", key, label)


def _coverage_rows(
    grid: selectors.Grid, departments: list[Department], demands: dict[int, HostDemand], view: str
) -> list[CoverageRow]:
    rows = []
    for department in departments:
        demand = demands.get(department.pk)
        need_days = set(demand.need_weekdays) if demand else set()
        cells = []
        for info in grid.days:
            count = grid.coverage.get((department.pk, info.date), 0)
            need = 1 if info.is_workday and str(info.date.isoweekday()) in need_days else 0
            title = f"{info.date.isoformat()} · " + _("%(n)d on site") % {"n": count}
            if need:
                title += " · " + _("needs %(n)d (%(label)s)") % {
                    "n": need,
                    "label": (demand.need_label if demand else "") or _("need"),
                }
            css = "cov cov-short" if count < need else ("cov cov-some" if count else "cov")
            cells.append(CoverageCell(info.date, count, need, css, title))
        total = sum(c.count for c in cells)
        # As the optimiser counts it: a week the calendar cuts short asks for its share of the minimum.
        working = sum(1 for info in grid.days if info.is_workday)
        per_week = (demand.days_per_week * min(working, 5)) // 5 if demand else 0
        rows.append(
            CoverageRow(
                department,
                demand,
                cells,
                total,
                per_week,
                short=(view == "week" and total < per_week) or any(c.count < c.need for c in cells),
            )
        )
    return rows


@dataclass
class RunView:
    run: RosterRun
    shortfalls: list[tuple[str, list[str]]]
    gap_percent: float
    until: dt.date

    @property
    def status_label(self) -> str:
        return status_label(self.run.status)


def status_label(status: str) -> str:
    """The solver's status in words: proven best, or the best found in the time allowed."""
    labels = {"optimal": _("optimal (proven best)"), "feasible": _("feasible (best found in the time allowed)")}
    return labels.get(status, status)


def _run_view(run: RosterRun | None) -> RunView | None:
    if run is None:
        return None
    shortfalls = []
    for s in selectors.run_shortfalls(run):
        shortfalls.append((explain.describe_shortfall(s), [explain.describe_reason(r) for r in s.reasons]))
    until = run.starts_on + dt.timedelta(days=7 * run.weeks - 1)
    return RunView(run, shortfalls, round(run.gap * 100, 1), until)


def _grid_rows(grid: selectors.Grid, today: dt.date, link: Any = None) -> list[RowView]:
    names = {info.date: _day_name(info) for info in grid.days}
    rows = []
    for row in grid.rows:
        a = row.assignment
        cells = [
            _cell_view(a, cell, today, link(a, cell) if link else None, names.get(cell.date, "")) for cell in row.cells
        ]
        rows.append(RowView(row, cells, row.on_site, weekdays_label(a.blocked_weekdays)))
    return rows


def _roster_context(
    request: HttpRequest, programme: Programme, params: QueryDict | None = None, **extra: Any
) -> dict[str, Any]:
    user = _user(request)
    state = _roster_state(params if params is not None else request.GET)
    today = selectors.today()
    can_manage = selectors.can_manage(user, programme)
    everyone = [
        a
        for a in selectors.programme_assignments(programme)
        if a.starts_on <= state.end and (a.last_day is None or a.last_day >= state.start)
    ]
    departments: dict[int, Department] = {}
    for a in everyone:
        departments.setdefault(a.host_department_id, a.host_department)
    shown = [
        a
        for a in everyone
        if (state.department is None or a.host_department.public_id == state.department)
        and (state.expert is None or a.public_id == state.expert)
    ]
    grid = selectors.roster_grid(shown, state.start, state.end)
    roster_url = reverse("dispatch:roster", args=[programme.code])

    def link(a: Assignment, cell: selectors.Cell) -> str:
        return f"{roster_url}?{state.query(cell=f'{a.public_id}_{cell.date.isoformat()}')}"

    rows = _grid_rows(grid, today, link if can_manage else None)
    shown_departments = [departments[i] for i in dict.fromkeys(a.host_department_id for a in shown)]
    demands = {
        d.department_id: d for d in HostDemand.objects.filter(programme=programme, department__in=shown_departments)
    }
    # Coverage counts every expert of the departments shown, also when one expert is picked.
    coverage_grid = (
        selectors.roster_grid(
            [a for a in everyone if a.host_department_id in {d.pk for d in shown_departments}], state.start, state.end
        )
        if state.expert is not None
        else grid
    )
    run = _run_view(selectors.latest_run(programme))
    unknown = sorted(set(grid.unknown_years) | set(run.run.unknown_years if run else []))
    panel = _fix_panel(rows, state.cell) if can_manage and state.cell else None
    next_monday = selectors.monday(today) + dt.timedelta(days=7)
    nav = {
        "week": f"{roster_url}?{state.query(view='week')}",
        "month": f"{roster_url}?{state.query(view='month')}",
        "previous": f"{roster_url}?{state.query(start=state.previous.isoformat())}",
        "today": f"{roster_url}?{state.query(start=today.isoformat())}",
        "next": f"{roster_url}?{state.query(start=state.next.isoformat())}",
        "close": f"{roster_url}?{state.query()}",
    }
    context: dict[str, Any] = {
        "nav": nav,
        "programme": programme,
        "state": state,
        "grid": grid,
        "rows": rows,
        "coverage": _coverage_rows(coverage_grid, shown_departments, demands, state.view),
        "departments": sorted(departments.values(), key=lambda d: d.name),
        "experts": everyone,
        "today": today,
        "can_manage": can_manage,
        "run": run,
        "unknown_years": unknown,
        "panel": panel,
        "query": state.query(),
        "optimise_form": OptimiseForm(initial={"start": next_monday, "weeks": AHEAD_WEEKS}),
        "time_limit": int(float(settings.YILIAN_ROSTER_TIME_LIMIT)),
        "headers": _headers(grid),
    }
    context.update(extra)
    return context


def _day_name(info: workcalendar.DayInfo) -> str:
    """The holiday's name in the page's language (the statutory table names them in English)."""
    return localized(info.name_zh, info.name)


def _headers(grid: selectors.Grid) -> list[dict[str, Any]]:
    return [{"info": info, "weekday": _weekday(info.date), "name": _day_name(info)} for info in grid.days]


@dataclass
class FixPanel:
    row: RowView
    cell: CellView


def _fix_panel(rows: list[RowView], key: str) -> FixPanel | None:
    for row in rows:
        for cell in row.cells:
            if cell.key == key:
                return FixPanel(row, cell)
    return None


@login_required
@require_GET
def roster(request: HttpRequest, code: str) -> HttpResponse:
    programme = selectors.access_programme(_user(request), code)
    context = _roster_context(request, programme)
    target = _htmx_target(request)
    if target == "fix-panel":
        return render(request, "dispatch/_fix_panel.html", context)
    if target == "roster-body":
        return render(request, "dispatch/_roster_body.html", context)
    return render(request, "dispatch/roster.html", context)


def _roster_url(programme: Programme, query: str) -> str:
    url = reverse("dispatch:roster", args=[programme.code])
    return f"{url}?{query}" if query else url


@login_required
@require_POST
def roster_fix(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _manage(user, programme)
    form = FixForm(request.POST)
    state = _roster_state(request.GET)
    if not form.is_valid():
        messages.error(request, _("Choose a day and what to do with it."))
        return render(request, "dispatch/roster.html", _roster_context(request, programme), status=400)
    data = form.cleaned_data
    assignment = (
        Assignment.objects.select_related("practitioner", "programme__consortium")
        .filter(programme=programme, public_id=data["assignment"])
        .first()
    )
    if assignment is None:
        raise Http404(_("No such assignment in this programme."))
    try:
        services.roster_fix_day(actor=user, assignment=assignment, date=data["date"], kind=data["kind"])
    except (ValidationError, Conflict) as exc:
        # The page shows the period of the refused day, with its panel open and the reason in it.
        params = request.GET.copy()
        params["start"] = data["date"].isoformat()
        params["cell"] = f"{assignment.public_id}_{data['date'].isoformat()}"
        errors = _messages_of(exc) if isinstance(exc, ValidationError) else [str(exc)]
        context = _roster_context(request, programme, params, panel_errors=errors)
        status = 400 if isinstance(exc, ValidationError) else 409
        return render(request, "dispatch/roster.html", context, status=status)
    words = {"on_site": _("fixed on site"), "off": _("fixed off"), "clear": _("left to the optimiser")}
    messages.success(
        request,
        _("%(name)s, %(day)s: %(what)s.")
        % {"name": assignment.practitioner.name, "day": data["date"].isoformat(), "what": words[data["kind"]]},
    )
    return HttpResponseRedirect(_roster_url(programme, state.query()))


@login_required
@require_POST
def roster_optimise(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _manage(user, programme)
    form = OptimiseForm(request.POST)
    status = 400
    if form.is_valid():
        start, weeks = form.cleaned_data["start"], form.cleaned_data["weeks"]
        run, status = attempt(
            form, lambda: services.roster_optimise(actor=user, programme=programme, start=start, weeks=weeks)
        )
        if run is not None:
            messages.success(
                request,
                _("Roster planned for %(weeks)d weeks from %(start)s (%(status)s, %(seconds).1f s).")
                % {
                    "weeks": weeks,
                    "start": start.isoformat(),
                    "status": status_label(run.status),
                    "seconds": run.wall_time,
                },
            )
            # The month that holds most of the planned weeks: the one around their middle day.
            middle = start + dt.timedelta(days=(7 * weeks) // 2)
            return HttpResponseRedirect(
                _roster_url(programme, urlencode({"view": "month", "start": middle.replace(day=1).isoformat()}))
                + "#roster-run"
            )
    context = _roster_context(request, programme, optimise_form=form, optimise_open=True)
    return render(request, "dispatch/roster.html", context, status=status)


@login_required
@require_GET
def roster_export(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    context = _roster_context(request, programme)
    state: RosterState = context["state"]
    content = export.roster_workbook(
        user, programme, context["grid"], context["coverage"], period=f"{state.start} – {state.end}"
    )
    response = HttpResponse(content, content_type=export.CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="roster-{programme.code}-{state.start.isoformat()}.xlsx"'
    return response


# ----------------------------------------------------------------------------------------
# Assignment


@dataclass
class AttendanceRow:
    date: dt.date
    planned: bool
    record: Attendance | None
    logged: bool


def _assignment_context(request: HttpRequest, assignment: Assignment, **bound: Any) -> dict[str, Any]:
    user = _user(request)
    programme = assignment.programme
    today = selectors.today()
    can_manage = selectors.can_manage(user, programme)
    can_confirm = selectors.can_confirm(user, programme)
    own = selectors.is_own(user, assignment)
    start = selectors.monday(today)
    grid = selectors.roster_grid([assignment], start, start + dt.timedelta(days=7 * AHEAD_WEEKS - 1))
    window_start = max(today - dt.timedelta(days=ATTENDANCE_DAYS - 1), assignment.starts_on)
    window_end = min(today, assignment.last_day or today)
    records = {r.date: r for r in selectors.attendance_list(assignment, start=window_start, end=window_end)}
    planned = set(
        RosterDay.objects.filter(
            assignment=assignment, kind=DayKind.ON_SITE, date__gte=window_start, date__lte=window_end
        ).values_list("date", flat=True)
    )
    logs = selectors.work_logs(assignment, start=window_start, end=window_end)
    logged = {log.date for log in logs}
    attendance = [
        AttendanceRow(day, day in planned, records.get(day), day in logged)
        for day in sorted(planned | set(records), reverse=True)
    ]
    leave = list(
        Leave.objects.filter(practitioner_id=assignment.practitioner_id, ends_on__gte=assignment.starts_on).order_by(
            "starts_on"
        )
    )
    context: dict[str, Any] = {
        "assignment": assignment,
        "programme": programme,
        "can_manage": can_manage,
        "can_confirm": can_confirm,
        "is_own": own,
        "today": today,
        "grid": grid,
        "rows": _grid_rows(grid, today),
        "headers": _headers(grid),
        "attendance": attendance,
        "window_start": window_start,
        "logs": [(log, _log_counts(log)) for log in logs],
        "log_oldest": today - dt.timedelta(days=services.WORK_LOG_DAYS),
        "leave": leave,
        "blocked": weekdays_label(assignment.blocked_weekdays),
        "feed_url": ics_url(request, assignment.practitioner) if own else "",
        "attendance_errors": bound.get("attendance_errors", []),
        "attendance_error_day": bound.get("attendance_error_day"),
    }
    if can_manage:
        context["edit_form"] = bound.get("edit_form") or _assignment_edit_form(assignment)
        context["leave_form"] = bound.get("leave_form") or LeaveEntryForm()
        if assignment.withdrawn_on is None:
            context["withdraw_form"] = bound.get("withdraw_form") or WithdrawForm(initial={"on": today})
    return context


def _log_counts(log: WorkLog) -> list[tuple[str, int]]:
    """The day's non-zero counts with their labels, in the order of the form."""
    return [
        (str(WorkLogForm.base_fields[name].label), getattr(log, name))
        for name in services.LOG_COUNTS
        if getattr(log, name)
    ]


def _assignment_page(request: HttpRequest, assignment: Assignment, status: int = 200, **bound: Any) -> HttpResponse:
    return render(request, "dispatch/assignment.html", _assignment_context(request, assignment, **bound), status=status)


def _assignment_url(assignment: Assignment, anchor: str = "") -> str:
    url = reverse("dispatch:assignment", args=[assignment.public_id])
    return f"{url}#{anchor}" if anchor else url


@login_required
@require_GET
def assignment_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    assignment = selectors.access_assignment(_user(request), str(public_id))
    return _assignment_page(request, assignment)


def _assignment_edit_form(assignment: Assignment, data: Any = None) -> AssignmentEditForm:
    initial = {name: getattr(assignment, name) for name in AssignmentEditForm.base_fields}
    initial["blocked_weekdays"] = list(assignment.blocked_weekdays)
    # Its own ids: the leave form on the same page has dates of the same names.
    return AssignmentEditForm(data, initial=initial, auto_id="edit_%s")


@login_required
@require_POST
def assignment_edit(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The office changes the role, the dates, the commitment or the home duties. Planned days the
    new terms no longer allow leave the roster (the service says which); the office re-optimises."""
    user = _user(request)
    assignment = selectors.access_assignment(user, str(public_id))
    _manage(user, assignment.programme)
    form = _assignment_edit_form(assignment, request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        per_week = data["commitment"] == Commitment.DAYS_PER_WEEK
        changes = _changed(
            assignment,
            {
                "role": data["role"],
                "starts_on": data["starts_on"],
                "ends_on": data["ends_on"] or assignment.programme.ends_on,
                "commitment": data["commitment"],
                "days_per_week": data["days_per_week"] if per_week else None,
                "blocked_weekdays": weekdays_value(data["blocked_weekdays"]),
                "blocked_note": data["blocked_note"],
            },
        )
        planned = RosterDay.objects.filter(assignment=assignment)
        before = planned.count() if changes else 0
        _done, status = attempt(
            form, lambda: services.assignment_update(actor=user, assignment=assignment, **changes) if changes else None
        )
        if status == 200:
            messages.success(request, _("The assignment is saved.") if changes else _("Nothing was changed."))
            removed = before - planned.count() if changes else 0
            if removed > 0:
                messages.warning(
                    request,
                    ngettext(
                        "%(n)d planned day the new terms no longer allow was taken off the roster; "
                        "re-optimise the roster to fill the week.",
                        "%(n)d planned days the new terms no longer allow were taken off the roster; "
                        "re-optimise the roster to fill the week.",
                        removed,
                    )
                    % {"n": removed},
                )
            return HttpResponseRedirect(_assignment_url(assignment))
    return _assignment_page(request, assignment, status, edit_form=form)


@login_required
@require_POST
def assignment_withdraw(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(public_id))
    _manage(user, assignment.programme)
    form = WithdrawForm(request.POST)
    status = 400
    if form.is_valid():
        _done, status = attempt(
            form,
            lambda: services.assignment_withdraw(
                actor=user, assignment=assignment, on=form.cleaned_data["on"], reason=form.cleaned_data["reason"]
            ),
        )
        if status == 200:
            messages.success(request, _("The assignment is withdrawn."))
            return HttpResponseRedirect(_assignment_url(assignment))
    return _assignment_page(request, assignment, status, withdraw_form=form)


@login_required
@require_POST
def leave_add(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(public_id))
    _manage(user, assignment.programme)
    form = LeaveEntryForm(request.POST)
    status = 400
    if form.is_valid():
        _done, status = attempt(
            form, lambda: services.leave_add(actor=user, practitioner=assignment.practitioner, **form.cleaned_data)
        )
        if status == 200:
            messages.success(request, _("Leave recorded; planned days inside it were removed."))
            return HttpResponseRedirect(_assignment_url(assignment, "leave"))
    return _assignment_page(request, assignment, status, leave_form=form)


@login_required
@require_POST
def leave_remove(request: HttpRequest, public_id: uuid.UUID, leave_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(public_id))
    _manage(user, assignment.programme)
    leave = Leave.objects.filter(practitioner_id=assignment.practitioner_id, public_id=leave_id).first()
    if leave is None:
        raise Http404(_("No such leave."))
    services.leave_remove(actor=user, leave=leave)
    messages.success(request, _("Leave removed."))
    return HttpResponseRedirect(_assignment_url(assignment, "leave"))


@login_required
@require_POST
def attendance_record(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(public_id))
    form = AttendanceForm(request.POST)
    if not form.is_valid():
        errors = [
            f"{form.fields[k].label if k in form.fields else ''}: {' '.join(str(m) for m in v)}"
            for k, v in form.errors.items()
        ]
        return _assignment_page(request, assignment, 400, attendance_errors=errors)
    day, action, reason = form.cleaned_data["date"], form.cleaned_data["action"], form.cleaned_data["reason"]
    try:
        if action == "confirm":
            services.attendance_confirm(actor=user, assignment=assignment, date=day)
        elif action == "absent":
            services.attendance_record_absence(actor=user, assignment=assignment, date=day, reason=reason)
        else:
            record = (
                Attendance.objects.select_related("assignment__programme")
                .filter(assignment=assignment, date=day)
                .first()
            )
            if record is None:
                raise ValidationError({"date": [_("Nothing is recorded on %(day)s.") % {"day": day.isoformat()}]})
            services.attendance_clear(actor=user, attendance=record)
    except ValidationError as exc:
        return _assignment_page(request, assignment, 400, attendance_errors=_messages_of(exc), attendance_error_day=day)
    except Conflict as exc:
        return _assignment_page(request, assignment, 409, attendance_errors=[str(exc)], attendance_error_day=day)
    done = {"confirm": _("confirmed"), "absent": _("recorded absent"), "clear": _("cleared")}
    messages.success(request, _("%(day)s %(what)s.") % {"day": day.isoformat(), "what": done[action]})
    return HttpResponseRedirect(_assignment_url(assignment, "attendance"))


# ----------------------------------------------------------------------------------------
# The expert's week, check-in and work log


@dataclass
class TodayCard:
    assignment: Assignment
    planned: str  # DayKind value or ""
    record: Attendance | None
    on_leave: bool
    holiday: str
    is_workday: bool
    logged: bool


@dataclass
class WeekDay:
    info: workcalendar.DayInfo
    weekday: str
    name: str
    entries: list[tuple[Assignment, CellView]] = field(default_factory=list)


def _today_cards(user: User, today: dt.date) -> list[TodayCard]:
    mine = selectors.own_assignments(user, on=today)
    if not mine:
        return []
    grid = selectors.roster_grid(mine, today, today)
    info = grid.days[0]
    records = {r.assignment_id: r for r in Attendance.objects.filter(assignment__in=mine, date=today).order_by("id")}
    logged = set(WorkLog.objects.filter(assignment__in=mine, date=today).values_list("assignment_id", flat=True))
    return [
        TodayCard(
            row.assignment,
            row.cells[0].kind,
            records.get(row.assignment.pk),
            row.cells[0].on_leave,
            _day_name(info),
            info.is_workday,
            row.assignment.pk in logged,
        )
        for row in grid.rows
    ]


def _my_week_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    user = _user(request)
    today = selectors.today()
    try:
        day = _within_range(dt.date.fromisoformat(request.GET["week"]) if request.GET.get("week") else None)
    except ValueError:
        day = today
    grid = selectors.expert_week(user, day)
    rows = _grid_rows(grid, today)
    week = []
    for i, info in enumerate(grid.days):
        entry = WeekDay(info, _weekday(info.date), _day_name(info))
        for row in rows:
            if row.cells[i].cell.active:
                entry.entries.append((row.row.assignment, row.cells[i]))
        week.append(entry)
    practitioner = Practitioner.objects.filter(user=user).first()
    context: dict[str, Any] = {
        "today": today,
        "cards": _today_cards(user, today),
        "week": week,
        "start": grid.start,
        "end": grid.end,
        "previous": grid.start - dt.timedelta(days=7),
        "next": grid.start + dt.timedelta(days=7),
        "is_this_week": grid.start <= today <= grid.end,
        "feed_url": ics_url(request, practitioner) if practitioner else "",
        "check_in_form": CheckInForm(),
        "log_oldest": today - dt.timedelta(days=services.WORK_LOG_DAYS),
        "errors": [],
    }
    context.update(extra)
    return context


@login_required
@require_GET
def my_week(request: HttpRequest) -> HttpResponse:
    require_perm(_user(request), Permission.CHECK_IN)
    return render(request, "dispatch/my_week.html", _my_week_context(request))


@login_required
@require_POST
def check_in(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(public_id))
    form = CheckInForm(request.POST)
    latitude = longitude = None
    if form.is_valid():
        latitude, longitude = form.cleaned_data["latitude"], form.cleaned_data["longitude"]
    try:
        record = services.attendance_check_in(actor=user, assignment=assignment, latitude=latitude, longitude=longitude)
    except ValidationError as exc:
        return render(request, "dispatch/my_week.html", _my_week_context(request, errors=_messages_of(exc)), status=400)
    except Conflict as exc:
        return render(request, "dispatch/my_week.html", _my_week_context(request, errors=[str(exc)]), status=409)
    moment = timezone.localtime(record.checked_in_at) if record.checked_in_at else timezone.localtime()
    messages.success(
        request,
        _("Checked in at %(host)s at %(time)s.")
        % {"host": assignment.programme.host_institution.name, "time": moment.strftime("%H:%M")},
    )
    return HttpResponseRedirect(reverse("dispatch:my_week"))


def _surgeon_choices(assignment: Assignment) -> list[tuple[str, str]]:
    surgeons = selectors.local_surgeons(assignment.programme).select_related("department")
    same = [p for p in surgeons if p.department_id == assignment.host_department_id]
    others = [p for p in surgeons if p.department_id != assignment.host_department_id]
    return [(str(p.public_id), f"{p.name} · {p.department.name}" if p.department else p.name) for p in [*same, *others]]


@login_required
@require_http_methods(["GET", "POST"])
def work_log(request: HttpRequest, public_id: uuid.UUID, day: dt.date) -> HttpResponse:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(public_id))
    if not selectors.is_own(user, assignment):
        raise PermissionDenied(_("Only the stationed expert keeps their work log."))
    surgeons = _surgeon_choices(assignment)
    existing = selectors.work_log_on(assignment, day)
    status = 200
    errors: list[str] = []
    if request.method == "POST":
        form = WorkLogForm(request.POST)
        try:
            count = min(int(request.POST.get("op-count", "0")), MAX_OPERATION_ROWS)
        except ValueError:
            count = 0
        op_forms = [OperationForm(request.POST, prefix=f"op-{i}", surgeons=surgeons) for i in range(count)]
        valid = form.is_valid()
        valid = all([f.is_valid() for f in op_forms]) and valid
        if valid:
            filled = [f for f in op_forms if not f.is_blank]
            entries = [_operation_entry(f.cleaned_data) for f in filled]
            try:
                services.work_log_save(
                    actor=user,
                    assignment=assignment,
                    date=day,
                    counts={name: form.cleaned_data[name] for name in services.LOG_COUNTS},
                    operations=entries,
                    note=form.cleaned_data["note"],
                )
            except ValidationError as exc:
                errors = _log_errors(exc, form, filled)
                status = 400
            except Conflict as exc:
                errors = [str(exc)]
                status = 409
            else:
                messages.success(request, _("Work log of %(day)s saved.") % {"day": day.isoformat()})
                return HttpResponseRedirect(_assignment_url(assignment, f"log-{day.isoformat()}"))
        else:
            status = 400
        if not op_forms:
            op_forms = [OperationForm(prefix=f"op-{i}", surgeons=surgeons) for i in range(OPERATION_ROWS)]
    else:
        form = WorkLogForm(initial={name: getattr(existing, name) for name in services.LOG_COUNTS} | {
            "note": existing.note} if existing else None)  # fmt: skip
        operations = list(existing.operations.all()) if existing else []
        op_forms = [
            OperationForm(
                prefix=f"op-{i}",
                surgeons=surgeons,
                initial={
                    "procedure": op.procedure,
                    "procedure_code": op.procedure_code,
                    "level": str(op.level),
                    "role": op.role,
                    "minimally_invasive": op.minimally_invasive,
                    "local_surgeon": str(op.local_surgeon.public_id) if op.local_surgeon else "",
                    "local_surgeon_name": "" if op.local_surgeon else op.local_surgeon_name,
                },
            )
            for i, op in enumerate(operations)
        ]
        op_forms += [
            OperationForm(prefix=f"op-{i}", surgeons=surgeons)
            for i in range(len(operations), len(operations) + OPERATION_ROWS)
        ]
    record = selectors.attendance_on(assignment, day)
    context = {
        "assignment": assignment,
        "day": day,
        "weekday": _weekday(day),
        "form": form,
        "op_forms": op_forms,
        "existing": existing,
        "record": record,
        "errors": errors,
        "today": selectors.today(),
    }
    return render(request, "dispatch/work_log.html", context, status=status)


def _operation_entry(data: dict[str, Any]) -> services.OperationEntry:
    surgeon = None
    if data["local_surgeon"]:
        surgeon = Practitioner.objects.filter(public_id=data["local_surgeon"]).first()
    return services.OperationEntry(
        procedure=data["procedure"],
        level=int(data["level"]),
        role=data["role"],
        procedure_code=data["procedure_code"],
        minimally_invasive=data["minimally_invasive"],
        local_surgeon=surgeon,
        local_surgeon_name=data["local_surgeon_name"],
    )


def _log_errors(exc: ValidationError, form: WorkLogForm, filled: list[OperationForm]) -> list[str]:
    """Count errors go next to their field, an operation's next to its row; the rest is returned."""
    rest: list[str] = []
    if not hasattr(exc, "error_dict"):
        return _messages_of(exc)
    for key, messages_ in exc.message_dict.items():
        if key in form.fields:
            for m in messages_:
                form.add_error(key, m)
        elif key.startswith("operations.") and key.split(".", 1)[1].isdigit():
            index = int(key.split(".", 1)[1])
            target = filled[index] if index < len(filled) else None
            for m in messages_:
                if target is not None:
                    target.add_error(None, m)
                else:
                    rest.append(m)
        else:
            rest.extend(messages_)
    return rest


# ----------------------------------------------------------------------------------------
# Attendance report


@dataclass
class ReportPeriod:
    start: dt.date
    end: dt.date
    from_month: str
    to_month: str
    errors: list[str]


def _report_period(request: HttpRequest) -> ReportPeriod:
    today = selectors.today()
    default_from = _add_months(today.replace(day=1), -(REPORT_MONTHS - 1))
    raw_from = request.GET.get("from", "").strip()
    raw_to = request.GET.get("to", "").strip()
    errors = []
    first = parse_month(raw_from) if raw_from else default_from
    last = parse_month(raw_to) if raw_to else today.replace(day=1)
    if first is None:
        errors.append(_("From: give a month as YYYY-MM."))
        first = default_from
    if last is None:
        errors.append(_("To: give a month as YYYY-MM."))
        last = today.replace(day=1)
    if last < first:
        errors.append(_("The last month comes before the first."))
    elif (last.year - first.year) * 12 + last.month - first.month >= MAX_REPORT_MONTHS:
        errors.append(_("Choose at most %(n)d months.") % {"n": MAX_REPORT_MONTHS})
    end = _month_end(last)
    # The month in progress counts up to today: days still to come are neither delivered nor missed.
    if first <= today <= end:
        end = today
    return ReportPeriod(first, end, selectors.month_key(first), selectors.month_key(last), errors)


@dataclass
class ReportRow:
    line: selectors.ReportLine
    cells: list[tuple[str, selectors.Delivery]]
    percent: int | None


@login_required
@require_GET
def attendance_report(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    period = _report_period(request)
    context: dict[str, Any] = {"programme": programme, "period": period}
    if period.errors:
        return render(request, "dispatch/attendance.html", context, status=400)
    report = selectors.attendance_report(programme, period.start, period.end)
    context.update(
        {
            "report": report,
            "rows": [
                ReportRow(
                    line,
                    [(m, line.months[m]) for m in report.months],
                    _percent(line.total.delivered, line.total.committed),
                )
                for line in report.lines
            ],
            "month_totals": [(m, report.by_month[m]) for m in report.months],
            "total_percent": _percent(report.total.delivered, report.total.committed),
            "query": urlencode({"from": period.from_month, "to": period.to_month}),
        }
    )
    return render(request, "dispatch/attendance.html", context)


@login_required
@require_GET
def attendance_export(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    period = _report_period(request)
    if period.errors:
        return HttpResponse(" ".join(period.errors), status=400, content_type="text/plain; charset=utf-8")
    report = selectors.attendance_report(programme, period.start, period.end)
    content = export.attendance_workbook(user, programme, report)
    response = HttpResponse(content, content_type=export.CONTENT_TYPE)
    response["Content-Disposition"] = (
        f'attachment; filename="attendance-{programme.code}-{period.from_month}-{period.to_month}.xlsx"'
    )
    return response


# ----------------------------------------------------------------------------------------
# Working calendar


def _calendar_context(
    year: int, form: CalendarDayForm | None = None, *, can_edit: bool = False, **extra: Any
) -> dict[str, Any]:
    first, last = workcalendar.statutory_years()
    entered = selectors.calendar_days(year)
    covered = first <= year <= last
    statutory: list[tuple[workcalendar.DayInfo, str]] = []
    if covered:
        days = workcalendar.horizon(dt.date(year, 1, 1), dt.date(year, 12, 31), {}).days
        statutory = [(d, _day_name(d)) for d in days if d.is_holiday or d.is_adjusted_workday]
    context = {
        "year": year,
        "years": [year - 1, year, year + 1],
        "entered": entered,
        "covered": covered,
        "first": first,
        "last": last,
        "statutory": statutory,
        "form": form or CalendarDayForm(initial={"date": dt.date(year, 1, 1), "is_workday": "0"}),
        "errors": [],
        "can_edit": can_edit,
    }
    context.update(extra)
    return context


@login_required
@require_http_methods(["GET", "POST"])
def calendar(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.MANAGE_STATIONING)
    can_edit = user_scope(user).is_global
    today = selectors.today()
    try:
        year = int(request.GET.get("year", today.year))
    except ValueError:
        year = today.year
    if not 1901 <= year <= 9998:
        raise Http404(_("No such year."))
    if request.method != "POST":
        return render(request, "dispatch/calendar.html", _calendar_context(year, can_edit=can_edit))
    if request.POST.get("action") == "remove":
        try:
            day = dt.date.fromisoformat(request.POST.get("date", ""))
        except ValueError:
            context = _calendar_context(year, can_edit=can_edit, errors=[_("Choose a day to remove.")])
            return render(request, "dispatch/calendar.html", context, status=400)
        services.calendar_day_remove(actor=user, date=day)
        messages.success(request, _("%(day)s removed from the working calendar.") % {"day": day.isoformat()})
        return HttpResponseRedirect(f"{reverse('dispatch:calendar')}?year={day.year}")
    form = CalendarDayForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        _done, status = attempt(
            form,
            lambda: services.calendar_day_set(
                actor=user,
                date=data["date"],
                is_workday=data["is_workday"],
                name_zh=data["name_zh"],
                name_en=data["name_en"],
            ),
        )
        if status == 200:
            messages.success(request, _("%(day)s saved in the working calendar.") % {"day": data["date"].isoformat()})
            return HttpResponseRedirect(f"{reverse('dispatch:calendar')}?year={data['date'].year}")
    return render(request, "dispatch/calendar.html", _calendar_context(year, form, can_edit=can_edit), status=400)


# ----------------------------------------------------------------------------------------
# Calendar feed


@require_GET
def feed(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The expert's on-site and travel days as an iCalendar feed. The signed key in the address
    stands in for a session (calendar apps cannot log in); a wrong key is a 404, like no feed."""
    practitioner = Practitioner.objects.filter(public_id=public_id).select_related("feed_key").first()
    key = request.GET.get("key", "")
    if practitioner is None or not key or not hasattr(practitioner, "feed_key"):
        raise Http404(_("No such calendar."))
    if not constant_time_compare(key, ics_key(practitioner)):
        raise Http404(_("No such calendar."))
    since = selectors.today() - dt.timedelta(days=FEED_PAST_DAYS)
    days = (
        RosterDay.objects.filter(
            assignment__practitioner=practitioner,
            kind__in=(DayKind.ON_SITE, DayKind.TRAVEL),
            date__gte=since,
        )
        .exclude(assignment__programme__status=ProgrammeStatus.CANCELLED)
        .select_related("assignment__programme__host_institution", "assignment__host_department")
        .order_by("date")
    )
    with translation.override(settings.LANGUAGE_CODE):
        content = export.roster_ics(practitioner, list(days), host=request.get_host())
    response = HttpResponse(content, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="stationing-{practitioner.public_id}.ics"'
    response["Cache-Control"] = "private, max-age=900"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@login_required
@require_POST
def feed_reset(request: HttpRequest) -> HttpResponse:
    """The expert makes their calendar address new (the old one stops working)."""
    user = _user(request)
    mine = selectors.own_assignments(user)
    if not mine:
        raise PermissionDenied(_("Only a stationed expert has a calendar address."))
    services.feed_key_reset(actor=user, practitioner=mine[0].practitioner)
    messages.success(request, _("Your calendar address is new; subscribe to it again in your calendar app."))
    return HttpResponseRedirect(reverse("dispatch:my_week") + "#feed")
