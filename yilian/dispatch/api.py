"""The stationing API: programmes, assignments, host demand, rosters (read, optimise, fix days),
check-ins, attendance, work logs, the attendance report and the indicator figures.

Handlers parse, authorise and read through ``selectors``, write through ``services``. A refusal is
403, a collision with what is recorded (a second check-in, a day fixed while optimising) is 409.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Status
from ninja.pagination import paginate

from yilian.core.permissions import Permission
from yilian.core.schemas import plausible_day
from yilian.dispatch import explain, schemas, selectors, services
from yilian.dispatch.models import (
    Assignment,
    Attendance,
    HostDemand,
    Leave,
    Objective,
    Programme,
    RosterDay,
    RosterRun,
    WorkLog,
)
from yilian.registry.api import ERRORS, Pagination
from yilian.registry.models import Agreement, Consortium, Department, Institution, Practitioner, User
from yilian.registry.selectors import require_perm

router = Router(tags=["stationing"])

MAX_ROSTER_DAYS = 93


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _institution(code: str, field: str) -> Institution:
    institution = Institution.objects.filter(code=code).first()
    if institution is None:
        raise ValidationError({field: [_("No institution with code %(code)s.") % {"code": code}]})
    return institution


def _require_manage(user: User, programme: Programme) -> None:
    if not selectors.can_manage(user, programme):
        raise PermissionDenied(_("Only the consortium office plans this consortium's stationing."))


def _path_day(day: dt.date) -> dt.date:
    """A day in the path, held to the same range as the days in bodies."""
    try:
        plausible_day(day)
    except ValueError as exc:
        raise ValidationError({"day": [str(exc)]}) from None
    return day


def _period(start: dt.date, end: dt.date, *, longest: int) -> None:
    if end < start:
        raise ValidationError({"end": [_("The end cannot come before the start.")]})
    if (end - start).days >= longest:
        raise ValidationError({"end": [_("Ask for at most %(n)d days at a time.") % {"n": longest}]})


# ----------------------------------------------------------------------------------------
# Outputs


def _programme_out(p: Programme, people: int | None = None) -> dict[str, Any]:
    return {
        "code": p.code,
        "title_zh": p.title_zh,
        "title_en": p.title_en,
        "consortium": p.consortium.code,
        "agreement": p.agreement.code if p.agreement_id and p.agreement else None,
        "sending_institution": {"code": p.sending_institution.code, "name": p.sending_institution.name},
        "host_institution": {"code": p.host_institution.code, "name": p.host_institution.name},
        "batch": p.batch,
        "starts_on": p.starts_on,
        "ends_on": p.ends_on,
        "status": p.status,
        "require_location": p.require_location,
        "people": people if people is not None else getattr(p, "people", 0),
    }


def _department_out(d: Department) -> dict[str, Any]:
    return {"id": d.public_id, "name": d.name, "institution": d.institution.code}


def _assignment_out(a: Assignment) -> dict[str, Any]:
    return {
        "id": a.public_id,
        "programme": a.programme.code,
        "practitioner": {
            "id": a.practitioner.public_id,
            "name_zh": a.practitioner.name_zh,
            "name_en": a.practitioner.name_en,
            "title": a.practitioner.title,
        },
        "home_department": _department_out(a.home_department) if a.home_department else None,
        "host_department": _department_out(a.host_department),
        "role": a.role,
        "starts_on": a.starts_on,
        "ends_on": a.ends_on,
        "commitment": a.commitment,
        "days_per_week": a.days_per_week,
        "blocked_weekdays": a.blocked_weekdays,
        "blocked_note": a.blocked_note,
        "withdrawn_on": a.withdrawn_on,
        "withdrawn_reason": a.withdrawn_reason,
    }


def _days_out(d: selectors.Delivery) -> dict[str, Any]:
    return {
        "committed": round(d.committed, 1),
        "planned": d.planned,
        "delivered": d.delivered,
        "absent": d.absent,
        "unplanned": d.unplanned,
    }


def _run_out(run: RosterRun) -> dict[str, Any]:
    shortfalls = []
    for s in selectors.run_shortfalls(run):
        shortfalls.append(
            {
                "kind": s.kind.value,
                "department": s.department,
                "label": s.label,
                "week": s.week,
                "dates": list(s.dates),
                "missing": s.missing,
                "text": explain.describe_shortfall(s),
                "reasons": [explain.describe_reason(r) for r in s.reasons],
            }
        )
    return {
        "id": run.public_id,
        "created_at": run.created_at,
        "start": run.starts_on,
        "weeks": run.weeks,
        "status": run.status,
        "objective": run.objective,
        "bound": run.bound,
        "gap": round(run.gap, 4),
        "wall_time": run.wall_time,
        "demand_missing": run.demand_missing,
        "commitment_missing": run.commitment_missing,
        "travel_days": run.travel_days,
        "fairness_spread": run.fairness_spread,
        "unknown_years": run.unknown_years,
        "shortfalls": shortfalls,
    }


def _attendance_out(a: Attendance) -> dict[str, Any]:
    return {
        "id": a.public_id,
        "date": a.date,
        "status": a.status,
        "was_planned": a.was_planned,
        "checked_in_at": a.checked_in_at,
        "distance_m": a.distance_m,
        "absence_reason": a.absence_reason,
    }


def _work_log_out(log: WorkLog) -> dict[str, Any]:
    return {
        "id": log.public_id,
        "date": log.date,
        **{name: getattr(log, name) for name in services.LOG_COUNTS},
        "operations": [
            {
                "procedure": op.procedure,
                "procedure_code": op.procedure_code,
                "level": op.level,
                "role": op.role,
                "minimally_invasive": op.minimally_invasive,
                "local_surgeon": op.local_surgeon.public_id if op.local_surgeon else None,
                "local_surgeon_name": op.local_surgeon_name,
            }
            for op in log.operations.all()
        ],
        "note": log.note,
    }


# ----------------------------------------------------------------------------------------
# Programmes


@router.get(
    "/stationing/programmes",
    response={200: list[schemas.ProgrammeOut], **ERRORS},
    summary="Stationing programmes the caller may see",
)
@paginate(Pagination)
def programme_list(request: HttpRequest, status: str = "", search: str = "") -> Any:
    user = _user(request)
    require_perm(user, Permission.VIEW_STATIONING)
    return [_programme_out(p) for p in selectors.programme_list_visible_to(user, status=status, search=search[:80])]


@router.post(
    "/stationing/programmes",
    response={201: schemas.ProgrammeOut, **ERRORS},
    summary="Create a programme (the consortium office)",
)
def programme_create(request: HttpRequest, payload: schemas.ProgrammeIn) -> Any:
    user = _user(request)
    consortium = Consortium.objects.filter(code=payload.consortium).first()
    if consortium is None:
        raise ValidationError({"consortium": [_("No consortium with code %(code)s.") % {"code": payload.consortium}]})
    agreement = None
    if payload.agreement:
        agreement = Agreement.objects.filter(code=payload.agreement, consortium=consortium).first()
        if agreement is None:
            raise ValidationError({"agreement": [_("No agreement with this code in the consortium.")]})
    programme = services.programme_create(
        actor=user,
        code=payload.code,
        consortium=consortium,
        sending_institution=_institution(payload.sending_institution, "sending_institution"),
        host_institution=_institution(payload.host_institution, "host_institution"),
        agreement=agreement,
        title_zh=payload.title_zh,
        title_en=payload.title_en,
        batch=payload.batch,
        starts_on=payload.starts_on,
        ends_on=payload.ends_on,
        status=payload.status,
        require_location=payload.require_location,
        note=payload.note,
    )
    return Status(201, _programme_out(programme, people=0))


@router.get(
    "/stationing/programmes/{code}",
    response={200: schemas.ProgrammeDetailOut, **ERRORS},
    summary="A programme with its objectives, days and work of the last 12 months",
)
def programme_detail(request: HttpRequest, code: str) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    end = selectors.today()
    start = end - dt.timedelta(days=365)
    report = selectors.attendance_report(programme, start, end)
    assignments = selectors.programme_assignments(programme)
    return {
        **_programme_out(programme, people=sum(1 for a in assignments if a.withdrawn_on is None)),
        "note": programme.note,
        "objectives": [
            {"id": o.public_id, "kind": o.kind, "name_zh": o.name_zh, "name_en": o.name_en, "target": o.target}
            for o in programme.objectives.all()
        ],
        "days_last_12_months": _days_out(report.total),
        "work_last_12_months": selectors.work_done(assignments, start, end).__dict__,
    }


@router.patch(
    "/stationing/programmes/{code}",
    response={200: schemas.ProgrammeOut, **ERRORS},
    summary="Change a programme (the consortium office)",
)
def programme_update(request: HttpRequest, code: str, payload: schemas.ProgrammePatch) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    fields = payload.model_dump(exclude_unset=True)
    for name in ("title_zh", "batch", "starts_on", "status", "require_location"):
        if name in fields and fields[name] is None:
            raise ValidationError({name: [_("This field cannot be empty.")]})
    updated = services.programme_update(actor=user, programme=programme, **fields)
    return _programme_out(updated, people=updated.assignments.filter(withdrawn_on__isnull=True).count())


@router.post(
    "/stationing/programmes/{code}/objectives",
    response={201: schemas.ObjectiveOut, **ERRORS},
    summary="Add an objective: a centre, a key discipline, a technique or a management goal",
)
def objective_add(request: HttpRequest, code: str, payload: schemas.ObjectiveIn) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    o: Objective = services.objective_add(
        actor=user,
        programme=programme,
        kind=payload.kind,
        name_zh=payload.name_zh,
        name_en=payload.name_en,
        target=payload.target,
    )
    return Status(
        201, {"id": o.public_id, "kind": o.kind, "name_zh": o.name_zh, "name_en": o.name_en, "target": o.target}
    )


@router.get(
    "/stationing/programmes/{code}/demand",
    response={200: list[schemas.DemandOut], **ERRORS},
    summary="What the host departments need",
)
def demand_list(request: HttpRequest, code: str) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    rows = HostDemand.objects.filter(programme=programme).select_related("department__institution")
    return [
        {
            "department": _department_out(d.department),
            "days_per_week": d.days_per_week,
            "need_weekdays": d.need_weekdays,
            "need_label_zh": d.need_label_zh,
            "need_label_en": d.need_label_en,
        }
        for d in rows.order_by("department__name_zh")
    ]


@router.put(
    "/stationing/programmes/{code}/demand/{department_id}",
    response={200: schemas.DemandOut, **ERRORS},
    summary="Set what a host department needs (the consortium office)",
)
def demand_set(request: HttpRequest, code: str, department_id: uuid.UUID, payload: schemas.DemandIn) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    department = Department.objects.select_related("institution").filter(public_id=department_id).first()
    if department is None:
        raise ValidationError({"department": [_("No such department.")]})
    d = services.host_demand_set(
        actor=user,
        programme=programme,
        department=department,
        days_per_week=payload.days_per_week,
        need_weekdays=payload.need_weekdays,
        need_label_zh=payload.need_label_zh,
        need_label_en=payload.need_label_en,
    )
    return {
        "department": _department_out(department),
        "days_per_week": d.days_per_week,
        "need_weekdays": d.need_weekdays,
        "need_label_zh": d.need_label_zh,
        "need_label_en": d.need_label_en,
    }


# ----------------------------------------------------------------------------------------
# Assignments


@router.get(
    "/stationing/programmes/{code}/assignments",
    response={200: list[schemas.AssignmentOut], **ERRORS},
    summary="The experts of a programme",
)
def assignment_list(request: HttpRequest, code: str) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    return [_assignment_out(a) for a in selectors.programme_assignments(programme)]


def _department(public_id: uuid.UUID | None, field: str) -> Department | None:
    if public_id is None:
        return None
    department = Department.objects.select_related("institution").filter(public_id=public_id).first()
    if department is None:
        raise ValidationError({field: [_("No such department.")]})
    return department


@router.post(
    "/stationing/programmes/{code}/assignments",
    response={201: schemas.AssignmentOut, **ERRORS},
    summary="Station an expert (the consortium office)",
)
def assignment_create(request: HttpRequest, code: str, payload: schemas.AssignmentIn) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _require_manage(user, programme)
    practitioner = Practitioner.objects.filter(public_id=payload.practitioner).select_related("department").first()
    if practitioner is None:
        raise ValidationError({"practitioner": [_("No such practitioner.")]})
    host_department = _department(payload.host_department, "host_department")
    assert host_department is not None
    a = services.assignment_create(
        actor=user,
        programme=programme,
        practitioner=practitioner,
        host_department=host_department,
        home_department=_department(payload.home_department, "home_department"),
        role=payload.role,
        starts_on=payload.starts_on,
        ends_on=payload.ends_on,
        commitment=payload.commitment,
        days_per_week=payload.days_per_week,
        blocked_weekdays=payload.blocked_weekdays,
        blocked_note=payload.blocked_note,
    )
    return Status(201, _assignment_out(selectors.access_assignment(user, str(a.public_id))))


@router.get(
    "/stationing/assignments/{assignment_id}",
    response={200: schemas.AssignmentOut, **ERRORS},
    summary="One assignment",
)
def assignment_detail(request: HttpRequest, assignment_id: uuid.UUID) -> Any:
    return _assignment_out(selectors.access_assignment(_user(request), str(assignment_id)))


@router.patch(
    "/stationing/assignments/{assignment_id}",
    response={200: schemas.AssignmentOut, **ERRORS},
    summary="Change an assignment (the consortium office)",
)
def assignment_update(request: HttpRequest, assignment_id: uuid.UUID, payload: schemas.AssignmentPatch) -> Any:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    fields = payload.model_dump(exclude_unset=True)
    for name in ("role", "starts_on", "commitment"):
        if name in fields and fields[name] is None:
            raise ValidationError({name: [_("This field cannot be empty.")]})
    if fields.get("blocked_weekdays") is None:
        fields.pop("blocked_weekdays", None)
    if fields.get("blocked_note") is None:
        fields.pop("blocked_note", None)
    services.assignment_update(actor=user, assignment=assignment, **fields)
    return _assignment_out(selectors.access_assignment(user, str(assignment_id)))


@router.post(
    "/stationing/assignments/{assignment_id}/withdraw",
    response={200: schemas.AssignmentOut, **ERRORS},
    summary="End an assignment early (the consortium office)",
)
def assignment_withdraw(request: HttpRequest, assignment_id: uuid.UUID, payload: schemas.WithdrawIn) -> Any:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    services.assignment_withdraw(actor=user, assignment=assignment, on=payload.on, reason=payload.reason)
    return _assignment_out(selectors.access_assignment(user, str(assignment_id)))


@router.get(
    "/stationing/assignments/{assignment_id}/leave",
    response={200: list[schemas.LeaveOut], **ERRORS},
    summary="The expert's leave",
)
def leave_list(request: HttpRequest, assignment_id: uuid.UUID) -> Any:
    assignment = selectors.access_assignment(_user(request), str(assignment_id))
    return [
        {"id": leave.public_id, "starts_on": leave.starts_on, "ends_on": leave.ends_on, "reason": leave.reason}
        for leave in Leave.objects.filter(practitioner_id=assignment.practitioner_id).order_by("starts_on")
    ]


@router.post(
    "/stationing/assignments/{assignment_id}/leave",
    response={201: schemas.LeaveOut, **ERRORS},
    summary="Record leave for the expert (the consortium office)",
)
def leave_add(request: HttpRequest, assignment_id: uuid.UUID, payload: schemas.LeaveIn) -> Any:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    leave = services.leave_add(
        actor=user,
        practitioner=assignment.practitioner,
        starts_on=payload.starts_on,
        ends_on=payload.ends_on,
        reason=payload.reason,
    )
    return Status(
        201, {"id": leave.public_id, "starts_on": leave.starts_on, "ends_on": leave.ends_on, "reason": leave.reason}
    )


# ----------------------------------------------------------------------------------------
# Rosters


@router.get(
    "/stationing/programmes/{code}/roster",
    response={200: schemas.RosterOut, **ERRORS},
    summary="The roster of a programme over a period (at most 93 days)",
)
def roster(request: HttpRequest, code: str, query: Query[schemas.RosterQuery]) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    _period(query.start, query.end, longest=MAX_ROSTER_DAYS)
    assignments = [
        a
        for a in selectors.programme_assignments(programme)
        if a.starts_on <= query.end
        and (a.last_day is None or a.last_day >= query.start)
        and (query.department is None or a.host_department.public_id == query.department)
    ]
    grid = selectors.roster_grid(assignments, query.start, query.end)
    return {
        "start": grid.start,
        "end": grid.end,
        "calendar": [
            {"date": d.date, "is_workday": d.is_workday, "name": d.name, "source": d.source} for d in grid.days
        ],
        "unknown_years": list(grid.unknown_years),
        "rows": [
            {
                "assignment": row.assignment.public_id,
                "practitioner": row.assignment.practitioner.name_zh,
                "host_department": _department_out(row.assignment.host_department),
                "days": [
                    {"date": c.date, "kind": c.kind or None, "fixed": c.is_fixed, "attendance": c.attendance or None}
                    for c in row.cells
                    if c.kind or c.attendance
                ],
            }
            for row in grid.rows
        ],
    }


@router.post(
    "/stationing/programmes/{code}/roster/optimise",
    response={201: schemas.RosterRunOut, **ERRORS},
    summary="Re-optimise the roster for 1-12 weeks from a Monday (the consortium office)",
)
def roster_optimise(request: HttpRequest, code: str, payload: schemas.OptimiseIn) -> Any:
    """Days fixed by hand are kept; the rest of the period is planned again with CP-SAT. The answer
    carries the solver's objective and bound, and each unmet need in plain words."""
    user = _user(request)
    programme = selectors.access_programme(user, code)
    run = services.roster_optimise(actor=user, programme=programme, start=payload.start, weeks=payload.weeks)
    return Status(201, _run_out(run))


@router.get(
    "/stationing/programmes/{code}/roster/runs/latest",
    response={200: schemas.RosterRunOut, **ERRORS},
    summary="The latest optimisation of a programme's roster",
)
def roster_run_latest(request: HttpRequest, code: str) -> Any:
    programme = selectors.access_programme(_user(request), code)
    run = selectors.latest_run(programme)
    if run is None:
        raise Http404(_("The roster of this programme has not been optimised yet."))
    return _run_out(run)


@router.put(
    "/stationing/assignments/{assignment_id}/roster/{day}",
    response={200: schemas.FixOut, **ERRORS},
    summary="Fix a day by hand (on site or off), or clear the fix (the consortium office)",
)
def roster_fix(request: HttpRequest, assignment_id: uuid.UUID, day: dt.date, payload: schemas.FixIn) -> Any:
    _path_day(day)
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    result: RosterDay | None = services.roster_fix_day(actor=user, assignment=assignment, date=day, kind=payload.kind)
    if result is None:
        return {"date": day, "kind": None, "fixed": False}
    return {"date": day, "kind": result.kind, "fixed": result.is_fixed}


# ----------------------------------------------------------------------------------------
# Attendance and work logs


@router.post(
    "/stationing/assignments/{assignment_id}/check-in",
    response={201: schemas.AttendanceOut, **ERRORS},
    summary="Check in on site today (the expert)",
)
def check_in(request: HttpRequest, assignment_id: uuid.UUID, payload: schemas.CheckInIn) -> Any:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    attendance = services.attendance_check_in(
        actor=user, assignment=assignment, latitude=payload.latitude, longitude=payload.longitude
    )
    return Status(201, _attendance_out(attendance))


@router.put(
    "/stationing/assignments/{assignment_id}/attendance/{day}",
    response={201: schemas.AttendanceOut, **ERRORS},
    summary="Confirm a day on site, or record an absence with its reason",
)
def attendance_record(
    request: HttpRequest, assignment_id: uuid.UUID, day: dt.date, payload: schemas.AttendanceIn
) -> Any:
    """The host's hospital administrators confirm or record absences; the expert may record their own
    absence."""
    _path_day(day)
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    if payload.status == "confirmed":
        attendance = services.attendance_confirm(actor=user, assignment=assignment, date=day)
    else:
        attendance = services.attendance_record_absence(
            actor=user, assignment=assignment, date=day, reason=payload.reason
        )
    return Status(201, _attendance_out(attendance))


@router.get(
    "/stationing/assignments/{assignment_id}/attendance",
    response={200: list[schemas.AttendanceOut], **ERRORS},
    summary="Attendance of an assignment over a period (at most 366 days)",
)
def attendance_list(request: HttpRequest, assignment_id: uuid.UUID, query: Query[schemas.PeriodQuery]) -> Any:
    assignment = selectors.access_assignment(_user(request), str(assignment_id))
    _period(query.start, query.end, longest=367)
    return [_attendance_out(a) for a in selectors.attendance_list(assignment, start=query.start, end=query.end)]


@router.put(
    "/stationing/assignments/{assignment_id}/work-logs/{day}",
    response={200: schemas.WorkLogOut, **ERRORS},
    summary="Write the work log of a day on site (the expert; replaces that day's earlier log)",
)
def work_log_put(request: HttpRequest, assignment_id: uuid.UUID, day: dt.date, payload: schemas.WorkLogIn) -> Any:
    _path_day(day)
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    host_id = assignment.programme.host_institution_id
    operations = []
    for i, op in enumerate(payload.operations):
        surgeon = None
        if op.local_surgeon is not None:
            surgeon = Practitioner.objects.filter(public_id=op.local_surgeon, institution_id=host_id).first()
            if surgeon is None:
                raise ValidationError({f"operations.{i}": [_("The local surgeon must work at the host hospital.")]})
        operations.append(
            services.OperationEntry(
                procedure=op.procedure,
                procedure_code=op.procedure_code,
                level=op.level,
                role=op.role,
                minimally_invasive=op.minimally_invasive,
                local_surgeon=surgeon,
                local_surgeon_name=op.local_surgeon_name,
            )
        )
    counts = {name: getattr(payload, name) for name in services.LOG_COUNTS}
    services.work_log_save(
        actor=user, assignment=assignment, date=day, counts=counts, operations=operations, note=payload.note
    )
    log = selectors.work_log_on(assignment, day)
    assert log is not None
    return _work_log_out(log)


@router.get(
    "/stationing/assignments/{assignment_id}/work-logs",
    response={200: list[schemas.WorkLogOut], **ERRORS},
    summary="Work logs of an assignment over a period (at most 366 days)",
)
def work_log_list(request: HttpRequest, assignment_id: uuid.UUID, query: Query[schemas.PeriodQuery]) -> Any:
    assignment = selectors.access_assignment(_user(request), str(assignment_id))
    _period(query.start, query.end, longest=367)
    return [_work_log_out(log) for log in selectors.work_logs(assignment, start=query.start, end=query.end)]


@router.get(
    "/stationing/programmes/{code}/attendance-report",
    response={200: schemas.AttendanceReportOut, **ERRORS},
    summary="Committed, planned, delivered and absent days per expert and month",
)
def attendance_report(request: HttpRequest, code: str, query: Query[schemas.PeriodQuery]) -> Any:
    programme = selectors.access_programme(_user(request), code)
    _period(query.start, query.end, longest=367)
    report = selectors.attendance_report(programme, query.start, query.end)
    return {
        "start": report.start,
        "end": report.end,
        "months": report.months,
        "lines": [
            {
                "assignment": line.assignment.public_id,
                "practitioner": line.assignment.practitioner.name_zh,
                "host_department": line.assignment.host_department.name,
                "months": {m: _days_out(d) for m, d in line.months.items()},
                "total": _days_out(line.total),
            }
            for line in report.lines
        ],
        "total": _days_out(report.total),
    }


@router.get(
    "/stationing/figures",
    response={200: list[schemas.StationingFiguresOut], **ERRORS},
    summary="Indicator inputs per host institution: doctors stationed, days, registrations, operations",
)
def figures(request: HttpRequest, query: Query[schemas.PeriodQuery]) -> Any:
    user = _user(request)
    _period(query.start, query.end, longest=367 * 3)
    return [
        {
            "institution": {"code": f.institution.code, "name": f.institution.name},
            "doctors_stationed": f.doctors_stationed,
            "days_committed": f.days_committed,
            "days_delivered": f.days_delivered,
            "registrations": f.registrations,
            "operations": f.operations,
            "operations_level_34": f.operations_level_34,
        }
        for f in selectors.stationing_figures(user, start=query.start, end=query.end)
    ]


# ----------------------------------------------------------------------------------------
# Removals and the working calendar


@router.delete(
    "/stationing/programmes/{code}/objectives/{objective_id}",
    response={204: None, **ERRORS},
    summary="Remove an objective (the consortium office)",
)
def objective_remove(request: HttpRequest, code: str, objective_id: uuid.UUID) -> Any:
    user = _user(request)
    programme = selectors.access_programme(user, code)
    objective = programme.objectives.filter(public_id=objective_id).first()
    if objective is None:
        raise Http404(_("No such objective."))
    services.objective_remove(actor=user, objective=objective)
    return Status(204, None)


@router.delete(
    "/stationing/assignments/{assignment_id}/leave/{leave_id}",
    response={204: None, **ERRORS},
    summary="Remove the expert's leave (the consortium office)",
)
def leave_remove(request: HttpRequest, assignment_id: uuid.UUID, leave_id: uuid.UUID) -> Any:
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    leave = Leave.objects.filter(public_id=leave_id, practitioner_id=assignment.practitioner_id).first()
    if leave is None:
        raise Http404(_("No such leave."))
    services.leave_remove(actor=user, leave=leave)
    return Status(204, None)


@router.delete(
    "/stationing/assignments/{assignment_id}/attendance/{day}",
    response={204: None, **ERRORS},
    summary="Clear a day's attendance recorded by mistake (the host's hospital administrators)",
)
def attendance_clear(request: HttpRequest, assignment_id: uuid.UUID, day: dt.date) -> Any:
    _path_day(day)
    user = _user(request)
    assignment = selectors.access_assignment(user, str(assignment_id))
    attendance = selectors.attendance_on(assignment, day)
    if attendance is None:
        raise Http404(_("Nothing is recorded for this day."))
    services.attendance_clear(actor=user, attendance=attendance)
    return Status(204, None)


@router.get(
    "/stationing/calendar",
    response={200: list[schemas.CalendarDayOut], **ERRORS},
    summary="The working calendar of a year: every day, with where its status comes from",
)
def calendar(request: HttpRequest, year: int) -> Any:
    require_perm(_user(request), Permission.VIEW_STATIONING)
    if not 1901 <= year <= 2099:
        raise ValidationError({"year": [_("Choose a year between 1901 and 2099.")]})
    horizon = selectors.calendar_horizon(dt.date(year, 1, 1), dt.date(year, 12, 31))
    return [{"date": d.date, "is_workday": d.is_workday, "name": d.name, "source": d.source} for d in horizon.days]


@router.put(
    "/stationing/calendar/{day}",
    response={200: schemas.CalendarDayOut, **ERRORS},
    summary="Enter a public holiday or an adjusted working day (system administrators)",
)
def calendar_day_set(request: HttpRequest, day: dt.date, payload: schemas.CalendarDayIn) -> Any:
    _path_day(day)
    entered = services.calendar_day_set(
        actor=_user(request),
        date=day,
        is_workday=payload.is_workday,
        name_zh=payload.name_zh,
        name_en=payload.name_en,
    )
    return {"date": entered.date, "is_workday": entered.is_workday, "name": entered.name, "source": "override"}


@router.delete(
    "/stationing/calendar/{day}",
    response={204: None, **ERRORS},
    summary="Remove a day entered in the working calendar (system administrators)",
)
def calendar_day_remove(request: HttpRequest, day: dt.date) -> Any:
    _path_day(day)
    services.calendar_day_remove(actor=_user(request), date=day)
    return Status(204, None)
