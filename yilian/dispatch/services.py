"""Writes of expert stationing.

Domain rules enforced here:
- the consortium office of a programme's consortium plans it: the programme, its objectives, its
  assignments, the experts' leave, the host departments' demand, the roster; a system
  administrator may do all of it. The sending institution must lead or belong to the consortium
  and the host must be a current member;
- an assignment stations a practitioner of the sending institution in a department of the host,
  inside the programme's period, with a commitment of N on-site days a week (1..7) or full-time
  residence; home-duty weekdays cannot leave the commitment without a day to take;
- a roster is optimised for 1..12 weeks from a Monday (``solver``); days a person fixed are kept,
  the rest is replaced. The solver runs outside any transaction; its result is written under the
  programme's row lock only if nobody fixed or cleared a day in the meantime (else 409: run again);
- a day is fixed on site only inside the assignment, not on leave, not on a home-duty weekday, and
  not while the same person is on site elsewhere (each refused with the reason); any day may be
  fixed off;
- the expert checks in for today only, once per day (a second check-in is a 409 naming the first),
  inside the assignment and not on leave; where the programme requires it, the phone's position
  must be within ``YILIAN_CHECKIN_RADIUS_M`` of the host's coordinates. A day not planned on site
  may still be checked in (it counts as delivered and unplanned);
- the host's hospital administrators confirm attendance or record an absence for a day up to today;
  an absence always has a reason, and a day already present cannot be marked absent (nor an absent
  day confirmed) without clearing it first; the expert may record their own absence with a reason;
- a work log belongs to a day the expert was present; the expert writes it (replacing the earlier
  version of that day with its operations), within ``WORK_LOG_DAYS`` days;
- every write leaves an audit row in its transaction.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.audit import audit_record
from yilian.core.errors import Conflict
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.dispatch import selectors, solver
from yilian.dispatch.models import (
    PRESENT,
    Assignment,
    Attendance,
    AttendanceStatus,
    CalendarDay,
    Commitment,
    DayKind,
    FeedKey,
    HostDemand,
    HostRole,
    Leave,
    LoggedOperation,
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
)
from yilian.registry.selectors import user_scope

MAX_WEEKS = 12
# Addresses under /stationing/ that a programme code would shadow.
RESERVED_CODES = frozenset({"new", "my-week", "calendar", "assignments", "feeds"})
WORK_LOG_DAYS = 30
OPERATIONS_PER_DAY = 30


def _require_manage(actor: User, consortium: Consortium) -> None:
    scope = user_scope(actor)
    if Permission.MANAGE_STATIONING not in scope.permissions or not (
        scope.is_global or consortium.pk in scope.consortium_ids
    ):
        raise PermissionDenied(_("Only the consortium office plans this consortium's stationing."))


def _current_member(consortium: Consortium, institution: Institution, on: dt.date) -> bool:
    if consortium.lead_institution_id == institution.pk:
        return True
    return ConsortiumMember.objects.filter(
        Q(left_on__isnull=True) | Q(left_on__gte=on), consortium=consortium, institution=institution
    ).exists()


def _lock_programmes_of(practitioner_ids: set[int]) -> None:
    """Lock the rows of every programme these experts are in, in one order (by id). Every write that
    changes what the roster optimiser reads for a person (fixed days, leave, dates, home duties,
    withdrawal) takes these locks, and so does the optimiser's write step: the two serialise, and
    the optimiser's check of what it read sees every change made before it writes."""
    programme_ids = (
        Assignment.objects.filter(practitioner_id__in=practitioner_ids)
        .values_list("programme_id", flat=True)
        .distinct()
    )
    list(Programme.objects.select_for_update().filter(pk__in=list(programme_ids)).order_by("pk").values_list("pk"))


def _snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in fields}


# ----------------------------------------------------------------------------------------
# Programmes

PROGRAMME_FIELDS = ("title_zh", "title_en", "batch", "starts_on", "ends_on", "status", "require_location", "note")


def programme_create(
    *,
    actor: User,
    code: str,
    consortium: Consortium,
    sending_institution: Institution,
    host_institution: Institution,
    title_zh: str,
    starts_on: dt.date,
    title_en: str = "",
    batch: int = 1,
    ends_on: dt.date | None = None,
    agreement: Agreement | None = None,
    status: str = ProgrammeStatus.ACTIVE,
    require_location: bool = False,
    note: str = "",
) -> Programme:
    _require_manage(actor, consortium)
    errors: dict[str, list[str]] = {}
    if sending_institution.pk == host_institution.pk:
        errors["host_institution"] = [_("The host must be another institution than the sending one.")]
    if not _current_member(consortium, sending_institution, starts_on):
        errors["sending_institution"] = [_("The sending institution is not in this consortium.")]
    if not _current_member(consortium, host_institution, starts_on):
        errors["host_institution"] = [_("The host institution is not a current member of this consortium.")]
    if ends_on is not None and ends_on < starts_on:
        errors["ends_on"] = [_("The end cannot come before the start.")]
    if agreement is not None and not agreement.parties.filter(pk=host_institution.pk).exists():
        errors["agreement"] = [_("The host is not a party to this agreement.")]
    if code in RESERVED_CODES:
        errors["code"] = [_("This code is taken by a page of the site; choose another.")]
    elif Programme.objects.filter(code=code).exists():
        errors["code"] = [_("A programme with this code exists already.")]
    if errors:
        raise ValidationError(errors)
    programme = Programme(
        code=code,
        consortium=consortium,
        sending_institution=sending_institution,
        host_institution=host_institution,
        agreement=agreement,
        title_zh=title_zh,
        title_en=title_en,
        batch=batch,
        starts_on=starts_on,
        ends_on=ends_on,
        status=status,
        require_location=require_location,
        note=note,
    )
    programme.full_clean()
    with transaction.atomic():
        programme.save()
        audit_record(
            actor=actor, action=AuditAction.CREATE, obj=programme, changes=_snapshot(programme, PROGRAMME_FIELDS)
        )
    return programme


def programme_update(*, actor: User, programme: Programme, **fields: Any) -> Programme:
    _require_manage(actor, programme.consortium)
    unknown = set(fields) - set(PROGRAMME_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    with transaction.atomic():
        locked = Programme.objects.select_for_update().get(pk=programme.pk)
        before = _snapshot(locked, tuple(fields))
        for name, value in fields.items():
            setattr(locked, name, value)
        if locked.ends_on is not None and locked.ends_on < locked.starts_on:
            raise ValidationError({"ends_on": [_("The end cannot come before the start.")]})
        if "starts_on" in fields or "ends_on" in fields:
            beyond_end = (
                Q(ends_on__gt=locked.ends_on) | Q(ends_on__isnull=True, withdrawn_on__isnull=True)
                if locked.ends_on
                else Q(pk__in=[])
            )
            outside = locked.assignments.filter(Q(starts_on__lt=locked.starts_on) | beyond_end)
            if outside.exists():
                raise ValidationError(
                    {"starts_on": [_("Some assignments fall outside these dates; change them first.")]}
                )
        locked.full_clean()
        locked.save()
        changes: dict[str, Any] = {
            k: [before[k], getattr(locked, k)] for k in fields if before[k] != getattr(locked, k)
        }
        if locked.status == ProgrammeStatus.CANCELLED and before.get("status") != ProgrammeStatus.CANCELLED:
            # A cancelled programme plans nothing more: its days from tomorrow on go (the past stays).
            removed, _detail = RosterDay.objects.filter(
                assignment__programme=locked, date__gt=timezone.localdate()
            ).delete()
            changes["roster_days_removed"] = removed
        if changes:
            audit_record(actor=actor, action=AuditAction.UPDATE, obj=locked, changes=changes)
    return locked


def objective_add(
    *, actor: User, programme: Programme, kind: str, name_zh: str, name_en: str = "", target: str = ""
) -> Objective:
    _require_manage(actor, programme.consortium)
    if kind not in ObjectiveKind.values:
        raise ValidationError(
            {
                "kind": [
                    _("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(ObjectiveKind.values)}
                ]
            }
        )
    objective = Objective(programme=programme, kind=kind, name_zh=name_zh, name_en=name_en, target=target)
    objective.full_clean()
    with transaction.atomic():
        objective.save()
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=objective,
            changes={"programme": programme.code, "kind": kind, "name_zh": name_zh, "target": target},
        )
    return objective


def objective_remove(*, actor: User, objective: Objective) -> None:
    _require_manage(actor, objective.programme.consortium)
    with transaction.atomic():
        audit_record(
            actor=actor, action=AuditAction.DELETE, obj=objective, changes={"programme": objective.programme.code}
        )
        objective.delete()


# ----------------------------------------------------------------------------------------
# Assignments and leave

ASSIGNMENT_FIELDS = (
    "role",
    "starts_on",
    "ends_on",
    "commitment",
    "days_per_week",
    "blocked_weekdays",
    "blocked_note",
    "home_department",
    "host_department",
)


def _normalise_weekdays(value: str) -> str:
    return "".join(sorted(set(value.replace(",", "").replace(" ", ""))))


def _check_assignment(a: Assignment) -> None:
    errors: dict[str, list[str]] = {}
    programme = a.programme
    if a.practitioner.institution_id != programme.sending_institution_id:
        errors["practitioner"] = [_("The expert must work at the sending institution.")]
    if a.host_department.institution_id != programme.host_institution_id:
        errors["host_department"] = [_("The host department must belong to the host institution.")]
    if a.home_department is not None and a.home_department.institution_id != programme.sending_institution_id:
        errors["home_department"] = [_("The home department must belong to the sending institution.")]
    if a.starts_on < programme.starts_on or (programme.ends_on and a.starts_on > programme.ends_on):
        errors["starts_on"] = [_("The assignment must start inside the programme's period.")]
    if a.ends_on is not None and a.ends_on < a.starts_on:
        errors["ends_on"] = [_("The end cannot come before the start.")]
    elif programme.ends_on and (a.ends_on is None or a.ends_on > programme.ends_on):
        errors["ends_on"] = [
            _("The assignment must end by the programme's end (%(day)s).") % {"day": programme.ends_on}
        ]
    if a.commitment == Commitment.FULL_TIME:
        a.days_per_week = None
    elif a.days_per_week is None or not 1 <= a.days_per_week <= 5:
        errors["days_per_week"] = [
            _("Give the on-site days per week (1 to 5 working days), or choose full-time residence.")
        ]
    a.blocked_weekdays = _normalise_weekdays(a.blocked_weekdays)
    if a.blocked_weekdays and not all(c in "1234567" for c in a.blocked_weekdays):
        errors["blocked_weekdays"] = [_("ISO weekday numbers, e.g. 2 for Tuesday.")]
    elif (
        "days_per_week" not in errors
        and a.days_per_week
        and a.days_per_week > 5 - len(set(a.blocked_weekdays) & set("12345"))
    ):
        errors["blocked_weekdays"] = [_("The home duties leave fewer free working days than the commitment.")]
    if errors:
        raise ValidationError(errors)


def _check_no_overlap(a: Assignment) -> None:
    """One running assignment per expert and programme at a time (withdrawn ones do not count)."""
    overlapping = (
        Assignment.objects.filter(
            programme_id=a.programme_id, practitioner_id=a.practitioner_id, withdrawn_on__isnull=True
        )
        .exclude(pk=a.pk)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=a.starts_on))
    )
    if a.ends_on is not None:
        overlapping = overlapping.filter(starts_on__lte=a.ends_on)
    if overlapping.exists():
        raise Conflict(
            _("%(name)s already has an assignment in this programme for these dates.")
            % {"name": a.practitioner.name_zh}
        )


def assignment_create(
    *,
    actor: User,
    programme: Programme,
    practitioner: Practitioner,
    host_department: Department,
    role: str,
    starts_on: dt.date,
    ends_on: dt.date | None = None,
    commitment: str = Commitment.DAYS_PER_WEEK,
    days_per_week: int | None = None,
    blocked_weekdays: str = "",
    blocked_note: str = "",
    home_department: Department | None = None,
) -> Assignment:
    _require_manage(actor, programme.consortium)
    if role not in HostRole.values:
        raise ValidationError(
            {"role": [_("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(HostRole.values)}]}
        )
    if commitment not in Commitment.values:
        raise ValidationError(
            {
                "commitment": [
                    _("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(Commitment.values)}
                ]
            }
        )
    assignment = Assignment(
        programme=programme,
        practitioner=practitioner,
        host_department=host_department,
        home_department=home_department or practitioner.department,
        role=role,
        starts_on=starts_on,
        ends_on=ends_on if ends_on is not None else programme.ends_on,
        commitment=commitment,
        days_per_week=days_per_week,
        blocked_weekdays=blocked_weekdays,
        blocked_note=blocked_note,
    )
    _check_assignment(assignment)
    with transaction.atomic():
        Programme.objects.select_for_update().get(pk=programme.pk)
        _check_no_overlap(assignment)
        assignment.save()
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=assignment,
            changes={
                "programme": programme.code,
                "practitioner": str(practitioner.public_id),
                **{f: str(getattr(assignment, f)) for f in ASSIGNMENT_FIELDS},
            },
        )
    return assignment


def assignment_update(*, actor: User, assignment: Assignment, **fields: Any) -> Assignment:
    _require_manage(actor, assignment.programme.consortium)
    unknown = set(fields) - set(ASSIGNMENT_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    with transaction.atomic():
        _lock_programmes_of({assignment.practitioner_id})
        locked = (
            Assignment.objects.select_for_update().select_related("programme", "practitioner").get(pk=assignment.pk)
        )
        before = {f: str(getattr(locked, f)) for f in fields}
        for name, value in fields.items():
            setattr(locked, name, value)
        _check_assignment(locked)
        removed = 0
        if "starts_on" in fields or "ends_on" in fields:
            _check_no_overlap(locked)
            # Planned days the new dates no longer cover go (days already attended stay in attendance).
            outside = RosterDay.objects.filter(assignment=locked).filter(
                Q(date__lt=locked.starts_on) | (Q(date__gt=locked.last_day) if locked.last_day else Q(pk__in=[]))
            )
            removed, _detail = outside.delete()
        if "blocked_weekdays" in fields and locked.blocked_weekdays:
            # Planned (not fixed) days from today on that fall on a new home-duty weekday go; the
            # office re-optimises to fill the commitment elsewhere in the week.
            clashing, _detail = (
                RosterDay.objects.filter(
                    assignment=locked, is_fixed=False, kind=DayKind.ON_SITE, date__gte=timezone.localdate()
                )
                .filter(date__iso_week_day__in=[int(c) for c in locked.blocked_weekdays])
                .delete()
            )
            removed += clashing
        locked.save()
        changes: dict[str, Any] = {
            f: [before[f], str(getattr(locked, f))] for f in fields if before[f] != str(getattr(locked, f))
        }
        if removed:
            changes["roster_days_removed"] = removed
        if changes:
            audit_record(actor=actor, action=AuditAction.UPDATE, obj=locked, changes=changes)
    return locked


def assignment_withdraw(*, actor: User, assignment: Assignment, on: dt.date, reason: str) -> Assignment:
    """End an assignment early (the expert is called back); planned days after ``on`` are removed."""
    _require_manage(actor, assignment.programme.consortium)
    if not reason.strip():
        raise ValidationError({"reason": [_("Say why the expert is withdrawn.")]})
    with transaction.atomic():
        _lock_programmes_of({assignment.practitioner_id})
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.withdrawn_on is not None:
            raise Conflict(_("This assignment was already withdrawn on %(day)s.") % {"day": locked.withdrawn_on})
        if on < locked.starts_on:
            raise ValidationError({"on": [_("The withdrawal cannot come before the assignment starts.")]})
        if locked.ends_on is not None and on >= locked.ends_on:
            raise ValidationError(
                {
                    "on": [
                        _("The assignment ends on %(day)s anyway; withdraw before that day.") % {"day": locked.ends_on}
                    ]
                }
            )
        locked.withdrawn_on = on
        locked.withdrawn_reason = reason.strip()
        locked.save(update_fields=["withdrawn_on", "withdrawn_reason", "updated_at"])
        removed, _detail = RosterDay.objects.filter(assignment=locked, date__gt=on).delete()
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=locked,
            changes={"withdrawn_on": on, "withdrawn_reason": locked.withdrawn_reason, "roster_days_removed": removed},
        )
    return locked


def leave_add(
    *, actor: User, practitioner: Practitioner, starts_on: dt.date, ends_on: dt.date, reason: str = ""
) -> Leave:
    """Record leave; planned on-site days it covers that were not fixed by hand are removed (a
    fixed day inside the leave is refused: unfix it first)."""
    programmes = Programme.objects.filter(assignments__practitioner=practitioner).distinct()
    managed = [p for p in programmes if selectors.can_manage(actor, p)]
    if not managed and not user_scope(actor).is_global:
        raise PermissionDenied(_("Only the consortium office that plans this expert's stationing records their leave."))
    if ends_on < starts_on:
        raise ValidationError({"ends_on": [_("The end cannot come before the start.")]})
    with transaction.atomic():
        _lock_programmes_of({practitioner.pk})
        days = RosterDay.objects.filter(
            assignment__practitioner=practitioner, date__gte=starts_on, date__lte=ends_on, kind=DayKind.ON_SITE
        )
        fixed = list(days.filter(is_fixed=True).values_list("date", flat=True))
        if fixed:
            raise Conflict(
                _("%(days)s fixed on site by hand; unfix before recording leave.")
                % {"days": ", ".join(d.isoformat() for d in sorted(fixed))}
            )
        removed, _detail = days.delete()
        leave = Leave.objects.create(practitioner=practitioner, starts_on=starts_on, ends_on=ends_on, reason=reason)
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=leave,
            changes={"starts_on": starts_on, "ends_on": ends_on, "reason": reason, "roster_days_removed": removed},
        )
    return leave


def leave_remove(*, actor: User, leave: Leave) -> None:
    programmes = Programme.objects.filter(assignments__practitioner=leave.practitioner_id).distinct()
    if not any(selectors.can_manage(actor, p) for p in programmes) and not user_scope(actor).is_global:
        raise PermissionDenied(_("Only the consortium office that plans this expert's stationing records their leave."))
    with transaction.atomic():
        _lock_programmes_of({leave.practitioner_id})
        audit_record(
            actor=actor,
            action=AuditAction.DELETE,
            obj=leave,
            changes={"starts_on": leave.starts_on, "ends_on": leave.ends_on},
        )
        leave.delete()


def host_demand_set(
    *,
    actor: User,
    programme: Programme,
    department: Department,
    days_per_week: int,
    need_weekdays: str = "",
    need_label_zh: str = "",
    need_label_en: str = "",
) -> HostDemand:
    _require_manage(actor, programme.consortium)
    if department.institution_id != programme.host_institution_id:
        raise ValidationError({"department": [_("The host department must belong to the host institution.")]})
    need_weekdays = _normalise_weekdays(need_weekdays)
    if need_weekdays and not all(c in "1234567" for c in need_weekdays):
        raise ValidationError({"need_weekdays": [_("ISO weekday numbers, e.g. 2 for Tuesday.")]})
    if not 0 <= days_per_week <= 70:
        raise ValidationError({"days_per_week": [_("Between 0 and 70 expert-days a week.")]})
    with transaction.atomic():
        demand, created = HostDemand.objects.select_for_update().get_or_create(
            programme=programme, department=department
        )
        before = _snapshot(demand, ("days_per_week", "need_weekdays", "need_label_zh", "need_label_en"))
        demand.days_per_week = days_per_week
        demand.need_weekdays = need_weekdays
        demand.need_label_zh = need_label_zh
        demand.need_label_en = need_label_en
        demand.save()
        after = _snapshot(demand, ("days_per_week", "need_weekdays", "need_label_zh", "need_label_en"))
        audit_record(
            actor=actor,
            action=AuditAction.CREATE if created else AuditAction.UPDATE,
            obj=demand,
            changes={k: [before[k], after[k]] for k in after if created or before[k] != after[k]},
        )
    return demand


# ----------------------------------------------------------------------------------------
# Working calendar


def calendar_day_set(
    *, actor: User, date: dt.date, is_workday: bool, name_zh: str = "", name_en: str = ""
) -> CalendarDay:
    """Enter a public holiday or an adjusted working day. The calendar is shared by every consortium,
    so only a system administrator edits it."""
    if not user_scope(actor).is_global:
        raise PermissionDenied(
            _("The working calendar is shared by every consortium: a system administrator edits it.")
        )
    with transaction.atomic():
        day, created = CalendarDay.objects.select_for_update().get_or_create(
            date=date, defaults={"is_workday": is_workday, "name_zh": name_zh, "name_en": name_en}
        )
        if not created:
            day.is_workday, day.name_zh, day.name_en = is_workday, name_zh, name_en
            day.save()
        audit_record(
            actor=actor,
            action=AuditAction.CREATE if created else AuditAction.UPDATE,
            object_type="dispatch.calendarday",
            object_id=date.isoformat(),
            object_repr=str(day),
            changes={"is_workday": is_workday, "name_zh": name_zh, "name_en": name_en},
        )
    return day


def calendar_day_remove(*, actor: User, date: dt.date) -> None:
    if not user_scope(actor).is_global:
        raise PermissionDenied(
            _("The working calendar is shared by every consortium: a system administrator edits it.")
        )
    with transaction.atomic():
        deleted, _detail = CalendarDay.objects.filter(date=date).delete()
        if deleted:
            audit_record(
                actor=actor,
                action=AuditAction.DELETE,
                object_type="dispatch.calendarday",
                object_id=date.isoformat(),
                object_repr=date.isoformat(),
            )


# ----------------------------------------------------------------------------------------
# Rosters


def travel_needed(sending: Institution, host: Institution) -> bool:
    """Whether going from the sending institution to the host takes a travel day: farther apart
    than ``YILIAN_TRAVEL_DAY_KM`` (straight-line). Unknown coordinates mean no travel day."""
    if None in (sending.latitude, sending.longitude, host.latitude, host.longitude):
        return False
    km = selectors.distance_m(sending.latitude, sending.longitude, host.latitude, host.longitude) / 1000  # type: ignore[arg-type]
    return km > float(settings.YILIAN_TRAVEL_DAY_KM)


@dataclass
class _Built:
    problem: solver.Problem
    keys: dict[str, Assignment]  # expert key -> assignment of this programme
    fixed_state: frozenset[tuple[int, dt.date, str]]
    inputs_state: tuple[frozenset[Any], ...]
    unknown_years: tuple[int, ...]


def _fixed_state(assignment_ids: list[int], start: dt.date, end: dt.date) -> frozenset[tuple[int, dt.date, str]]:
    return frozenset(
        RosterDay.objects.filter(
            assignment_id__in=assignment_ids, date__gte=start, date__lte=end, is_fixed=True
        ).values_list("assignment_id", "date", "kind")
    )


def _inputs_state(programme: Programme, start: dt.date, end: dt.date) -> tuple[frozenset[Any], ...]:
    """Everything the optimiser reads for this programme and horizon, as comparable values: the
    assignments of the programme and of its experts elsewhere (dates, withdrawal, home duties,
    commitment, programme status), their days in the horizon, leave, demand and calendar days."""
    persons = set(programme.assignments.values_list("practitioner_id", flat=True))
    assignments = Assignment.objects.filter(Q(programme=programme) | Q(practitioner_id__in=persons)).values_list(
        "pk",
        "starts_on",
        "ends_on",
        "withdrawn_on",
        "blocked_weekdays",
        "commitment",
        "days_per_week",
        "host_department_id",
        "programme__status",
    )
    days = RosterDay.objects.filter(
        Q(assignment__programme=programme) | Q(assignment__practitioner_id__in=persons), date__gte=start, date__lte=end
    ).values_list("assignment_id", "date", "kind", "is_fixed")
    leave = Leave.objects.filter(practitioner_id__in=persons, starts_on__lte=end, ends_on__gte=start).values_list(
        "practitioner_id", "starts_on", "ends_on"
    )
    demand = HostDemand.objects.filter(programme=programme).values_list(
        "department_id", "days_per_week", "need_weekdays"
    )
    calendar = CalendarDay.objects.filter(date__gte=start, date__lte=end).values_list("date", "is_workday")
    return (
        frozenset(assignments),
        frozenset(days),
        frozenset(leave),
        frozenset(demand),
        frozenset(calendar),
        frozenset({programme.status}),
    )


def _build_problem(programme: Programme, start: dt.date, weeks: int, time_limit: float) -> _Built:
    end = start + dt.timedelta(days=7 * weeks - 1)
    # Read first, so that a change made while the problem is built also shows at the write.
    state = _inputs_state(programme, start, end)
    horizon = selectors.calendar_horizon(start, end)
    own = [
        a
        for a in selectors.programme_assignments(programme)
        if a.starts_on <= end and (a.last_day is None or a.last_day >= start)
    ]
    # The same people's assignments in other programmes take part with their days as they are, so
    # that nobody is planned at two sites on one day.
    others = list(
        Assignment.objects.filter(practitioner_id__in={a.practitioner_id for a in own})
        .filter(Q(withdrawn_on__isnull=True) | Q(withdrawn_on__gte=start))
        .exclude(programme=programme)
        .exclude(programme__status=ProgrammeStatus.CANCELLED)
        .filter(starts_on__lte=end)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=start))
        .select_related(
            "programme__host_institution", "programme__sending_institution", "practitioner", "host_department"
        )
    )
    everyone = own + others
    ids = [a.pk for a in everyone]
    days = {
        (r.assignment_id, r.date): r
        for r in RosterDay.objects.filter(assignment_id__in=ids, date__gte=start, date__lte=end)
    }
    leave = selectors.leave_days({a.practitioner_id for a in everyone}, start, end)
    horizon_days = [start + dt.timedelta(days=i) for i in range(7 * weeks)]
    experts = []
    keys: dict[str, Assignment] = {}
    own_ids = {a.pk for a in own}
    for a in everyone:
        key = str(a.public_id)
        if a.pk in own_ids:
            keys[key] = a
            fixed = {d: r.kind == DayKind.ON_SITE for (aid, d), r in days.items() if aid == a.pk and r.is_fixed}
        else:
            fixed = {d: (a.pk, d) in days and days[(a.pk, d)].kind == DayKind.ON_SITE for d in horizon_days}
        previous = frozenset(d for (aid, d), r in days.items() if aid == a.pk and r.kind == DayKind.ON_SITE)
        experts.append(
            solver.Expert(
                key=key,
                person=str(a.practitioner.public_id),
                name=a.practitioner.name_zh,
                department=str(a.host_department.public_id),
                site=a.programme.host_institution.code,
                start=a.starts_on,
                end=a.last_day or end,
                days_per_week=a.weekly_days,
                blocked_weekdays=frozenset(w - 1 for w in a.blocked_iso_weekdays),
                leave=frozenset(leave.get(a.practitioner_id, set())),
                needs_travel=a.weekly_days is not None
                and travel_needed(a.programme.sending_institution, a.programme.host_institution),
                fixed=fixed,
                previous=previous,
            )
        )
    demands = []
    for demand in HostDemand.objects.filter(programme=programme).select_related("department__institution"):
        if not any(a.host_department_id == demand.department_id for a in own) and not demand.days_per_week:
            continue
        demands.append(
            solver.Demand(
                department=str(demand.department.public_id),
                label=demand.department.name,
                per_week=demand.days_per_week,
                weekday_needs={int(c) - 1: 1 for c in demand.need_weekdays},
                need_label=demand.need_label,
            )
        )
    problem = solver.Problem(
        start=start,
        weeks=weeks,
        working_days=horizon.working_days,
        experts=tuple(experts),
        demands=tuple(demands),
        time_limit=time_limit,
    )
    return _Built(
        problem,
        keys,
        _fixed_state([a.pk for a in own], start, end),
        state,
        horizon.unknown_years,
    )


def roster_optimise(
    *, actor: User, programme: Programme, start: dt.date, weeks: int, time_limit: float | None = None
) -> RosterRun:
    """Plan ``weeks`` weeks from the Monday ``start``: keep the fixed days, replace the rest."""
    _require_manage(actor, programme.consortium)
    if start.weekday() != 0:
        raise ValidationError({"start": [_("A roster starts on a Monday.")]})
    if not 1 <= weeks <= MAX_WEEKS:
        raise ValidationError({"weeks": [_("Plan between 1 and %(max)d weeks.") % {"max": MAX_WEEKS}]})
    end = start + dt.timedelta(days=7 * weeks - 1)
    if end < programme.starts_on or (programme.ends_on and start > programme.ends_on):
        raise ValidationError({"start": [_("These weeks are outside the programme's period.")]})
    if programme.status not in (ProgrammeStatus.PLANNED, ProgrammeStatus.ACTIVE):
        raise Conflict(
            _("The programme is %(status)s; only planned or active programmes get a roster.")
            % {"status": programme.get_status_display()}
        )
    limit = float(time_limit if time_limit is not None else settings.YILIAN_ROSTER_TIME_LIMIT)
    built = _build_problem(programme, start, weeks, limit)
    begun = time.monotonic()
    solution = solver.solve(built.problem)
    if solution.status == "infeasible":
        raise Conflict(_("The days fixed by hand contradict each other; check the fixed days and run again."))
    if solution.status not in ("optimal", "feasible"):
        # No roster within the time limit: keep the current plan rather than write an empty one.
        raise Conflict(_("The optimiser found no roster in the time allowed; plan fewer weeks or try again."))
    with transaction.atomic():
        _lock_programmes_of(set(programme.assignments.values_list("practitioner_id", flat=True)))
        locked = Programme.objects.select_for_update().get(pk=programme.pk)
        if _inputs_state(locked, start, end) != built.inputs_state:
            raise Conflict(
                _("Someone changed this roster's experts, days or leave while it was being optimised. Run it again.")
            )
        own_ids = [a.pk for a in built.keys.values()]
        RosterDay.objects.filter(assignment_id__in=own_ids, date__gte=start, date__lte=end, is_fixed=False).delete()
        fixed = {(aid, d) for aid, d, _kind in built.fixed_state}
        rows = []
        for key, assignment in built.keys.items():
            for d in solution.onsite.get(key, []):
                if (assignment.pk, d) not in fixed:
                    rows.append(RosterDay(assignment=assignment, date=d, kind=DayKind.ON_SITE))
            for d in solution.travel.get(key, []):
                if (assignment.pk, d) not in fixed:
                    rows.append(RosterDay(assignment=assignment, date=d, kind=DayKind.TRAVEL))
        try:
            with transaction.atomic():
                RosterDay.objects.bulk_create(rows)
        except IntegrityError:
            raise Conflict(_("Someone else changed this roster at the same moment. Run it again.")) from None
        run = RosterRun.objects.create(
            programme=programme,
            starts_on=start,
            weeks=weeks,
            status=solution.status,
            objective=solution.objective,
            bound=solution.bound,
            wall_time=round(time.monotonic() - begun, 3),
            demand_missing=solution.demand_missing,
            # Only this programme's experts: the same people's other assignments take part in the
            # problem (one site a day) but their commitments are another programme's business.
            commitment_missing=sum(
                s.missing
                for s in solution.shortfalls
                if s.kind == solver.ShortfallKind.COMMITMENT and s.expert in built.keys
            ),
            travel_days=sum(len(solution.travel.get(k, [])) for k in built.keys),
            fairness_spread=solution.fairness_spread,
            shortfalls=[
                solver.shortfall_to_json(s)
                for s in solution.shortfalls
                if s.kind != solver.ShortfallKind.COMMITMENT or s.expert in built.keys
            ],
            unknown_years=list(built.unknown_years),
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=run,
            changes={
                "programme": programme.code,
                "start": start,
                "weeks": weeks,
                "status": solution.status,
                "objective": solution.objective,
                "bound": solution.bound,
                "days_planned": len(rows),
                "shortfalls": len(run.shortfalls),
            },
        )
    return run


def roster_fix_day(*, actor: User, assignment: Assignment, date: dt.date, kind: str) -> RosterDay | None:
    """Fix a day by hand: ``on_site`` or ``off``; ``clear`` lets the optimiser decide it again."""
    _require_manage(actor, assignment.programme.consortium)
    if kind not in ("on_site", "off", "clear"):
        raise ValidationError(
            {"kind": [_("Not one of the allowed values: %(expected)s.") % {"expected": "on_site, off, clear"}]}
        )
    with transaction.atomic():
        _lock_programmes_of({assignment.practitioner_id})
        locked = Assignment.objects.select_for_update().select_related("practitioner").get(pk=assignment.pk)
        existing = RosterDay.objects.filter(assignment=locked, date=date).first()
        if kind == "clear":
            if existing is not None and existing.is_fixed:
                existing.is_fixed = False
                existing.fixed_by = None
                if existing.kind == DayKind.OFF:
                    existing.delete()
                    existing = None
                else:
                    existing.save()
                audit_record(actor=actor, action=AuditAction.UPDATE, obj=locked, changes={"unfixed": date})
            return existing
        if kind == DayKind.ON_SITE:
            _check_on_site(locked, date)
        day = existing or RosterDay(assignment=locked, date=date)
        before = (day.kind, day.is_fixed) if existing else None
        day.kind = kind
        day.is_fixed = True
        day.fixed_by = actor
        day.save()
        audit_record(
            actor=actor, action=AuditAction.UPDATE, obj=locked, changes={"fixed": date, "kind": kind, "before": before}
        )
    return day


def _check_on_site(assignment: Assignment, date: dt.date) -> None:
    name = assignment.practitioner.name_zh
    if not selectors.active_on(assignment, date):
        raise ValidationError({"date": [_("%(day)s is outside %(name)s's assignment.") % {"day": date, "name": name}]})
    if date.isoweekday() in assignment.blocked_iso_weekdays:
        raise ValidationError(
            {
                "date": [
                    _("%(name)s has home duties on this weekday (%(note)s).")
                    % {"name": name, "note": assignment.blocked_note or "—"}
                ]
            }
        )
    if Leave.objects.filter(
        practitioner_id=assignment.practitioner_id, starts_on__lte=date, ends_on__gte=date
    ).exists():
        raise ValidationError({"date": [_("%(name)s is on leave on %(day)s.") % {"name": name, "day": date}]})
    elsewhere = (
        RosterDay.objects.filter(
            assignment__practitioner_id=assignment.practitioner_id, date=date, kind=DayKind.ON_SITE
        )
        .exclude(assignment=assignment)
        .select_related("assignment__programme__host_institution")
        .first()
    )
    if elsewhere is not None:
        raise Conflict(
            _("%(name)s is already on site at %(site)s on %(day)s.")
            % {"name": name, "site": elsewhere.assignment.programme.host_institution.name, "day": date}
        )


# ----------------------------------------------------------------------------------------
# Attendance


def _now() -> dt.datetime:
    return timezone.now()


def attendance_check_in(
    *,
    actor: User,
    assignment: Assignment,
    latitude: Decimal | float | None = None,
    longitude: Decimal | float | None = None,
    now: dt.datetime | None = None,
) -> Attendance:
    """The expert's own check-in for today."""
    if not selectors.is_own(actor, assignment):
        raise PermissionDenied(_("Only the stationed expert checks in for themselves."))
    now = now or _now()
    today = timezone.localdate(now)
    programme = assignment.programme
    if not selectors.active_on(assignment, today):
        raise ValidationError({"date": [_("Your assignment does not run today.")]})
    if programme.status not in (ProgrammeStatus.ACTIVE, ProgrammeStatus.PLANNED):
        raise Conflict(_("The programme is %(status)s.") % {"status": programme.get_status_display()})
    if Leave.objects.filter(
        practitioner_id=assignment.practitioner_id, starts_on__lte=today, ends_on__gte=today
    ).exists():
        raise ValidationError(
            {"date": [_("You are on leave today; ask the consortium office to change the leave first.")]}
        )
    if (latitude is None) != (longitude is None):
        raise ValidationError({"latitude": [_("Send both latitude and longitude, or neither.")]})
    host = programme.host_institution
    distance: int | None = None
    if latitude is not None and longitude is not None:
        if not (-90 <= float(latitude) <= 90 and -180 <= float(longitude) <= 180):
            raise ValidationError({"latitude": [_("Not a position on Earth.")]})
        if host.latitude is not None and host.longitude is not None:
            distance = round(selectors.distance_m(latitude, longitude, host.latitude, host.longitude))
    radius = int(settings.YILIAN_CHECKIN_RADIUS_M)
    if programme.require_location:
        if latitude is None:
            raise ValidationError(
                {"latitude": [_("This programme checks in on site: allow the phone to share its position.")]}
            )
        if distance is not None and distance > radius:
            raise ValidationError(
                {
                    "latitude": [
                        _("You are %(km).1f km from %(host)s; check in on site, or ask the host to confirm your day.")
                        % {"km": distance / 1000, "host": host.name}
                    ]
                }
            )
    planned = RosterDay.objects.filter(assignment=assignment, date=today, kind=DayKind.ON_SITE).exists()
    try:
        with transaction.atomic():
            existing = Attendance.objects.select_for_update().filter(assignment=assignment, date=today).first()
            if existing is not None:
                raise Conflict(_already(existing, today))
            other = (
                Attendance.objects.filter(
                    assignment__practitioner_id=assignment.practitioner_id, date=today, status__in=PRESENT
                )
                .exclude(assignment=assignment)
                .select_related("assignment__programme__host_institution")
                .first()
            )
            if other is not None:
                raise Conflict(
                    _("You already checked in at %(site)s today.")
                    % {"site": other.assignment.programme.host_institution.name}
                )
            attendance = Attendance.objects.create(
                assignment=assignment,
                date=today,
                status=AttendanceStatus.CHECKED_IN,
                was_planned=planned,
                checked_in_at=now,
                distance_m=distance,
                recorded_by=actor,
            )
            audit_record(
                actor=actor,
                action=AuditAction.CREATE,
                obj=attendance,
                changes={
                    "assignment": str(assignment.public_id),
                    "date": today,
                    "planned": planned,
                    "distance_m": distance,
                },
            )
    except IntegrityError:
        # A second tap raced the first past the check above; the unique constraint kept one.
        existing = Attendance.objects.get(assignment=assignment, date=today)
        raise Conflict(_already(existing, today)) from None
    return attendance


def _already(existing: Attendance, today: dt.date) -> str:
    if existing.status == AttendanceStatus.ABSENT:
        return _("This day is recorded as absent (%(reason)s).") % {"reason": existing.absence_reason}
    if existing.checked_in_at is not None:
        moment = timezone.localtime(existing.checked_in_at)
        if existing.date == today:
            return _("Already checked in today at %(time)s.") % {"time": moment.strftime("%H:%M")}
        return _("The expert checked in on %(day)s at %(time)s.") % {
            "day": existing.date.isoformat(),
            "time": moment.strftime("%H:%M"),
        }
    return _("This day was already confirmed by the host.")


def attendance_confirm(*, actor: User, assignment: Assignment, date: dt.date) -> Attendance:
    """The host's hospital administrator confirms the expert was on site (no check-in needed)."""
    return _record(actor=actor, assignment=assignment, date=date, status=AttendanceStatus.CONFIRMED, reason="")


def attendance_record_absence(*, actor: User, assignment: Assignment, date: dt.date, reason: str) -> Attendance:
    """Record that the expert was not on site on a day, with the reason (host or expert)."""
    if not reason.strip():
        raise ValidationError({"reason": [_("An absence needs a reason.")]})
    return _record(actor=actor, assignment=assignment, date=date, status=AttendanceStatus.ABSENT, reason=reason.strip())


def _record(*, actor: User, assignment: Assignment, date: dt.date, status: str, reason: str) -> Attendance:
    programme = assignment.programme
    own = selectors.is_own(actor, assignment)
    if not (selectors.can_confirm(actor, programme) or (own and status == AttendanceStatus.ABSENT)):
        raise PermissionDenied(_("Only the host's hospital administrators confirm attendance."))
    if programme.status == ProgrammeStatus.CANCELLED:
        raise Conflict(_("The programme is %(status)s.") % {"status": programme.get_status_display()})
    if date > timezone.localdate():
        raise ValidationError({"date": [_("Attendance is recorded for today or earlier; plan future days as leave.")]})
    if not selectors.active_on(assignment, date):
        raise ValidationError({"date": [_("The assignment does not run on %(day)s.") % {"day": date}]})
    planned = RosterDay.objects.filter(assignment=assignment, date=date, kind=DayKind.ON_SITE).exists()
    try:
        with transaction.atomic():
            existing = Attendance.objects.select_for_update().filter(assignment=assignment, date=date).first()
            if existing is not None:
                if existing.status == status or (status == AttendanceStatus.CONFIRMED and existing.is_present):
                    raise Conflict(_already(existing, timezone.localdate()))
                if status == AttendanceStatus.ABSENT and existing.is_present:
                    raise Conflict(_("The expert was recorded present on %(day)s; clear that first.") % {"day": date})
                if status == AttendanceStatus.CONFIRMED and existing.status == AttendanceStatus.ABSENT:
                    raise Conflict(
                        _("The day is recorded absent (%(reason)s); clear that first.")
                        % {"reason": existing.absence_reason}
                    )
            attendance = Attendance.objects.create(
                assignment=assignment,
                date=date,
                status=status,
                was_planned=planned,
                absence_reason=reason,
                recorded_by=actor,
            )
            audit_record(
                actor=actor,
                action=AuditAction.CREATE,
                obj=attendance,
                changes={"assignment": str(assignment.public_id), "date": date, "status": status, "reason": reason},
            )
    except IntegrityError:
        raise Conflict(_("Someone else recorded this day at the same moment. Reload and try again.")) from None
    return attendance


def attendance_clear(*, actor: User, attendance: Attendance) -> None:
    """Remove a confirmation or absence recorded by mistake (the host), kept in the audit trail."""
    if not selectors.can_confirm(actor, attendance.assignment.programme):
        raise PermissionDenied(_("Only the host's hospital administrators confirm attendance."))
    with transaction.atomic():
        # Locked, as the work log's save locks it: a log and a clearing of its day never both pass.
        if not Attendance.objects.select_for_update().filter(pk=attendance.pk).exists():
            raise Conflict(_("Someone else cleared this day a moment ago."))
        if WorkLog.objects.filter(assignment=attendance.assignment, date=attendance.date).exists():
            raise Conflict(_("The expert logged work on this day; the day cannot be cleared."))
        audit_record(
            actor=actor,
            action=AuditAction.DELETE,
            obj=attendance,
            changes={"date": attendance.date, "status": attendance.status, "reason": attendance.absence_reason},
        )
        attendance.delete()


# ----------------------------------------------------------------------------------------
# Work logs

LOG_COUNTS = (
    "outpatient_sessions",
    "patients_seen",
    "ward_rounds",
    "teaching_sessions",
    "consultations",
    "management_meetings",
)


@dataclass(frozen=True)
class OperationEntry:
    procedure: str
    level: int
    role: str
    procedure_code: str = ""
    minimally_invasive: bool = False
    local_surgeon: Practitioner | None = None
    local_surgeon_name: str = ""


def work_log_save(
    *,
    actor: User,
    assignment: Assignment,
    date: dt.date,
    counts: dict[str, int],
    operations: list[OperationEntry],
    note: str = "",
) -> WorkLog:
    """Write the day's log (replacing an earlier version of the same day, operations included)."""
    if not selectors.is_own(actor, assignment):
        raise PermissionDenied(_("Only the stationed expert keeps their work log."))
    today = timezone.localdate()
    if date > today:
        raise ValidationError({"date": [_("A work log is written on or after the day.")]})
    if date < today - dt.timedelta(days=WORK_LOG_DAYS):
        raise ValidationError({"date": [_("Work logs can be written up to %(n)d days later.") % {"n": WORK_LOG_DAYS}]})
    errors: dict[str, list[str]] = {}
    unknown = set(counts) - set(LOG_COUNTS)
    if unknown:
        errors["counts"] = [_("Unknown fields: %(names)s.") % {"names": ", ".join(sorted(unknown))}]
    for name, value in counts.items():
        if name not in LOG_COUNTS:
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            errors[name] = [_("Must be a number.")]
            continue
        if not 0 <= number <= 500:
            errors[name] = [_("Between 0 and 500.")]
    if len(operations) > OPERATIONS_PER_DAY:
        errors["operations"] = [_("At most %(n)d operations a day.") % {"n": OPERATIONS_PER_DAY}]
    host_id = assignment.programme.host_institution_id
    for i, op in enumerate(operations):
        where = f"operations.{i}"
        if not op.procedure.strip():
            errors.setdefault(where, []).append(_("Name the procedure."))
        if op.level not in (1, 2, 3, 4):
            errors.setdefault(where, []).append(_("The level is 1 to 4."))
        if op.role not in OperationRole.values:
            errors.setdefault(where, []).append(
                _("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(OperationRole.values)}
            )
        if op.local_surgeon is not None and op.local_surgeon.institution_id != host_id:
            errors.setdefault(where, []).append(_("The local surgeon must work at the host hospital."))
        if op.role != OperationRole.OPERATOR and op.local_surgeon is None and not op.local_surgeon_name.strip():
            errors.setdefault(where, []).append(_("Name the local surgeon who operated with you."))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        attendance = Attendance.objects.select_for_update().filter(assignment=assignment, date=date).first()
        if attendance is None or not attendance.is_present:
            raise Conflict(_("Check in (or have the host confirm the day) before logging the day's work."))
        log, created = WorkLog.objects.select_for_update().get_or_create(assignment=assignment, date=date)
        for name in LOG_COUNTS:
            setattr(log, name, int(counts.get(name, 0)))
        log.note = note
        log.save()
        log.operations.all().delete()
        LoggedOperation.objects.bulk_create(
            [
                LoggedOperation(
                    work_log=log,
                    procedure=op.procedure.strip(),
                    procedure_code=op.procedure_code.strip(),
                    level=op.level,
                    role=op.role,
                    minimally_invasive=op.minimally_invasive,
                    local_surgeon=op.local_surgeon,
                    local_surgeon_name=(
                        op.local_surgeon.name_zh if op.local_surgeon else op.local_surgeon_name.strip()
                    ),
                )
                for op in operations
            ]
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE if created else AuditAction.UPDATE,
            obj=log,
            changes={
                "assignment": str(assignment.public_id),
                "date": date,
                **{n: getattr(log, n) for n in LOG_COUNTS},
                "operations": len(operations),
            },
        )
    return log


# ----------------------------------------------------------------------------------------
# Calendar feed


def feed_key_salt(*, practitioner: Practitioner) -> str:
    """The current secret of the practitioner's calendar-feed address (made on first use)."""
    key, _created = FeedKey.objects.get_or_create(
        practitioner=practitioner, defaults={"salt": secrets.token_urlsafe(16)}
    )
    return key.salt


def feed_key_reset(*, actor: User, practitioner: Practitioner) -> str:
    """Give the expert a new feed address; the old one stops working at once. The expert's own."""
    if practitioner.user_id is None or practitioner.user_id != actor.pk:
        raise PermissionDenied(_("Only the expert resets their own calendar address."))
    with transaction.atomic():
        key, _created = FeedKey.objects.select_for_update().get_or_create(
            practitioner=practitioner, defaults={"salt": ""}
        )
        key.salt = secrets.token_urlsafe(16)
        key.save()
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=practitioner, changes={"calendar_feed": "reset"})
    return key.salt
