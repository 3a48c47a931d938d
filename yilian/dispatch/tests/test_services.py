"""Stationing services: who plans a programme and what a programme, an assignment, leave and a
roster must respect; the expert's check-in, the host's confirmation and the expert's work log.

Data is built through the services as the people involved would (``factories``): the demo
``office`` plans zju2 -> qzph in ``zju2-quzhou``; experts are fresh zju2 practitioners with their
own accounts, so the demo's own stationing data never meets these tests. Rosters are optimised by
the real CP-SAT solver on horizons of one to three weeks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test.utils import override_settings
from django.utils import translation

from yilian.core.errors import Conflict
from yilian.core.models import AuditAction, AuditEvent
from yilian.dispatch import explain, selectors, services, solver
from yilian.dispatch.models import (
    Assignment,
    Attendance,
    AttendanceStatus,
    Commitment,
    DayKind,
    HostDemand,
    HostRole,
    Leave,
    LoggedOperation,
    OperationRole,
    Programme,
    ProgrammeStatus,
    RosterDay,
    RosterRun,
    WorkLog,
)
from yilian.dispatch.services import OperationEntry
from yilian.dispatch.tests import factories
from yilian.dispatch.tests.factories import at
from yilian.registry import services as registry_services
from yilian.registry.models import ConsortiumMember, Discipline, Practitioner, User

pytestmark = pytest.mark.django_db

Persona = Callable[[str], User]
Clock = Callable[[dt.date], dt.datetime]

P_START = dt.date(2026, 9, 1)
P_END = dt.date(2027, 2, 28)
WEEK = dt.date(2026, 10, 12)  # a Monday; no public holiday that week
TODAY = dt.date(2026, 10, 14)  # a Wednesday: "today" of the attendance and work-log tests
REFUSED = ("other_office", "hospadmin", "expert", "commission", "doctor")


def day(offset: int) -> dt.date:
    """The day ``offset`` days after the Monday ``WEEK``."""
    return WEEK + dt.timedelta(days=offset)


def actor_for(who: str, persona: Persona) -> User:
    """A demo persona, or ``other_office``: the office of another consortium (Bijie)."""
    return factories.office_of("bijie-nrmc") if who == "other_office" else persona(who)


def audit_rows(obj: Any, action: str | None = None) -> list[AuditEvent]:
    rows = AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.public_id))
    if action is not None:
        rows = rows.filter(action=action)
    return list(rows.order_by("id"))


def messages(error: ValidationError, field: str) -> str:
    return " ".join(error.message_dict[field])


@pytest.fixture
def office(persona: Persona) -> User:
    return persona("office")


@pytest.fixture
def programme(db: None) -> Programme:
    return factories.programme_create(starts_on=P_START, ends_on=P_END, title_zh="神经外科专家派驻（测试）")


@pytest.fixture
def expert(db: None) -> Practitioner:
    return factories.expert_create(name_zh="吕明轩")


@pytest.fixture
def assignment(programme: Programme, expert: Practitioner) -> Assignment:
    return factories.assignment_create(programme, expert, days_per_week=3, role=HostRole.BUSINESS_DIRECTOR)


def fix(office: User, assignment: Assignment, date: dt.date, kind: str = DayKind.ON_SITE) -> RosterDay | None:
    return services.roster_fix_day(actor=office, assignment=assignment, date=date, kind=kind)


def on_site_days(assignment: Assignment) -> list[dt.date]:
    return list(
        RosterDay.objects.filter(assignment=assignment, kind=DayKind.ON_SITE)
        .order_by("date")
        .values_list("date", flat=True)
    )


# ----------------------------------------------------------------------------------------
# Programmes


def test_consortium_office_creates_a_programme_with_an_audit_row(office: User) -> None:
    programme = factories.programme_create(
        code="t-svc-create", starts_on=P_START, ends_on=P_END, require_location=True, title_zh="骨科派驻"
    )
    stored = Programme.objects.get(code="t-svc-create")
    assert (stored.consortium.code, stored.sending_institution.code, stored.host_institution.code) == (
        "zju2-quzhou",
        "zju2",
        "qzph",
    )
    assert (stored.status, stored.require_location, stored.starts_on, stored.ends_on) == (
        ProgrammeStatus.ACTIVE,
        True,
        P_START,
        P_END,
    )
    (event,) = audit_rows(programme)
    assert event.action == AuditAction.CREATE and event.actor_id == office.pk
    assert event.changes["title_zh"] == "骨科派驻" and event.changes["require_location"] is True


def test_system_administrator_creates_a_programme_in_any_consortium(persona: Persona) -> None:
    programme = factories.programme_create(
        actor=persona("admin"),
        consortium_code="bijie-nrmc",
        sending_code="zjpph",
        host_code="bjfph",
        starts_on=P_START,
    )
    assert Programme.objects.get(pk=programme.pk).host_institution.code == "bjfph"
    assert audit_rows(programme, AuditAction.CREATE)[0].actor_id == persona("admin").pk


@pytest.mark.parametrize("who", REFUSED)
def test_only_the_office_of_the_consortium_creates_a_programme(who: str, persona: Persona) -> None:
    actor = actor_for(who, persona)
    before = AuditEvent.objects.count()
    with pytest.raises(PermissionDenied):
        factories.programme_create(actor=actor, code="t-svc-refused", starts_on=P_START)
    assert not Programme.objects.filter(code="t-svc-refused").exists()
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("who", REFUSED)
def test_only_the_office_of_the_consortium_updates_a_programme(
    who: str, persona: Persona, programme: Programme
) -> None:
    actor = actor_for(who, persona)
    before = AuditEvent.objects.count()
    with pytest.raises(PermissionDenied):
        services.programme_update(actor=actor, programme=programme, title_zh="改名", status=ProgrammeStatus.SUSPENDED)
    stored = Programme.objects.get(pk=programme.pk)
    assert (stored.title_zh, stored.status) == ("神经外科专家派驻（测试）", ProgrammeStatus.ACTIVE)
    assert AuditEvent.objects.count() == before


def test_office_update_writes_the_fields_and_audits_only_what_changed(office: User, programme: Programme) -> None:
    services.programme_update(
        actor=office, programme=programme, title_zh="神经外科第二批", batch=2, ends_on=P_END, status="active"
    )
    stored = Programme.objects.get(pk=programme.pk)
    assert (stored.title_zh, stored.batch) == ("神经外科第二批", 2)
    (event,) = audit_rows(programme, AuditAction.UPDATE)
    assert event.changes == {"title_zh": ["神经外科专家派驻（测试）", "神经外科第二批"], "batch": [1, 2]}


def test_system_administrator_updates_any_programme(persona: Persona, programme: Programme) -> None:
    services.programme_update(actor=persona("admin"), programme=programme, status=ProgrammeStatus.SUSPENDED)
    assert Programme.objects.get(pk=programme.pk).status == ProgrammeStatus.SUSPENDED


def test_host_outside_the_consortium_is_refused(office: User) -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.programme_create(code="t-svc-csph", host_code="csph", starts_on=P_START)
    assert list(excinfo.value.message_dict) == ["host_institution"]
    assert not Programme.objects.filter(code="t-svc-csph").exists()


def test_host_that_left_the_consortium_before_the_start_is_refused(office: User) -> None:
    member = ConsortiumMember.objects.get(consortium__code="zju2-quzhou", institution__code="khph")
    registry_services.consortium_member_leave(actor=office, member=member, left_on=dt.date(2026, 6, 30))
    with pytest.raises(ValidationError) as excinfo:
        factories.programme_create(code="t-svc-left", host_code="khph", starts_on=P_START)
    assert list(excinfo.value.message_dict) == ["host_institution"]
    assert not Programme.objects.filter(code="t-svc-left").exists()
    # While it was still a member, a programme could start there.
    earlier = factories.programme_create(code="t-svc-before", host_code="khph", starts_on=dt.date(2026, 3, 2))
    assert earlier.host_institution.code == "khph"


def test_sending_institution_outside_the_consortium_is_refused() -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.programme_create(code="t-svc-zju1", sending_code="zju1", starts_on=P_START)
    assert list(excinfo.value.message_dict) == ["sending_institution"]


def test_programme_needs_two_institutions() -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.programme_create(code="t-svc-self", sending_code="qzph", host_code="qzph", starts_on=P_START)
    assert "host_institution" in excinfo.value.message_dict
    assert not Programme.objects.filter(code="t-svc-self").exists()


def test_programme_cannot_end_before_it_starts(office: User, programme: Programme) -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.programme_create(code="t-svc-dates", starts_on=P_START, ends_on=P_START - dt.timedelta(days=1))
    assert list(excinfo.value.message_dict) == ["ends_on"]
    with pytest.raises(ValidationError) as excinfo:
        services.programme_update(actor=office, programme=programme, ends_on=dt.date(2026, 8, 31))
    assert list(excinfo.value.message_dict) == ["ends_on"]
    assert Programme.objects.get(pk=programme.pk).ends_on == P_END
    assert not audit_rows(programme, AuditAction.UPDATE)


def test_programme_code_is_unique(programme: Programme) -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.programme_create(code=programme.code, starts_on=P_START)
    assert list(excinfo.value.message_dict) == ["code"]
    assert Programme.objects.filter(code=programme.code).count() == 1


def test_programme_dates_cannot_shrink_past_its_assignments(office: User, assignment: Assignment) -> None:
    programme = assignment.programme
    with pytest.raises(ValidationError) as excinfo:
        services.programme_update(actor=office, programme=programme, ends_on=dt.date(2026, 12, 31))
    assert list(excinfo.value.message_dict) == ["starts_on"]
    assert Programme.objects.get(pk=programme.pk).ends_on == P_END


# ----------------------------------------------------------------------------------------
# Assignments


def test_assignment_is_created_inside_the_programme_with_an_audit_row(
    office: User, programme: Programme, expert: Practitioner
) -> None:
    assignment = factories.assignment_create(
        programme, expert, days_per_week=3, blocked_weekdays="2", blocked_note="本院专家门诊"
    )
    stored = Assignment.objects.get(pk=assignment.pk)
    assert (stored.starts_on, stored.ends_on) == (P_START, P_END)  # the programme's end by default
    assert stored.home_department == expert.department
    assert (stored.commitment, stored.days_per_week, stored.blocked_weekdays) == (Commitment.DAYS_PER_WEEK, 3, "2")
    (event,) = audit_rows(assignment)
    assert event.action == AuditAction.CREATE and event.actor_id == office.pk
    assert event.changes["programme"] == programme.code and event.changes["practitioner"] == str(expert.public_id)


def test_expert_must_work_at_the_sending_institution(programme: Programme) -> None:
    local = factories.practitioner_create(institution_code="qzph", name_zh="徐卫东")
    with pytest.raises(ValidationError) as excinfo:
        factories.assignment_create(programme, local)
    assert "practitioner" in excinfo.value.message_dict  # (and their home department is not the sender's)
    assert not Assignment.objects.filter(practitioner=local).exists()


def test_host_department_must_belong_to_the_host(programme: Programme, expert: Practitioner) -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.assignment_create(programme, expert, host_department=factories.department("zju2"))
    assert list(excinfo.value.message_dict) == ["host_department"]
    assert not Assignment.objects.filter(practitioner=expert).exists()


@pytest.mark.parametrize(
    ("starts_on", "ends_on", "field"),
    [
        (dt.date(2026, 8, 31), None, "starts_on"),  # before the programme starts
        (dt.date(2027, 3, 1), None, "starts_on"),  # after it ends
        (P_START, dt.date(2027, 3, 1), "ends_on"),  # ends after the programme
        (dt.date(2026, 10, 1), dt.date(2026, 9, 30), "ends_on"),  # ends before it starts
    ],
)
def test_assignment_must_lie_inside_the_programme(
    programme: Programme, expert: Practitioner, starts_on: dt.date, ends_on: dt.date | None, field: str
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.assignment_create(programme, expert, starts_on=starts_on, ends_on=ends_on)
    assert field in excinfo.value.message_dict
    assert not Assignment.objects.filter(practitioner=expert).exists()


@pytest.mark.parametrize("days_per_week", [None, 0, 6, 7])
def test_commitment_outside_one_to_five_days_a_week_is_refused(
    programme: Programme, expert: Practitioner, days_per_week: int | None
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.assignment_create(programme, expert, days_per_week=days_per_week)
    assert list(excinfo.value.message_dict) == ["days_per_week"]


@pytest.mark.parametrize("days_per_week", [1, 5])
def test_commitment_of_one_to_five_days_a_week_is_accepted(
    programme: Programme, expert: Practitioner, days_per_week: int
) -> None:
    assignment = factories.assignment_create(programme, expert, days_per_week=days_per_week)
    assert Assignment.objects.get(pk=assignment.pk).weekly_days == days_per_week


def test_full_time_residence_clears_the_days_per_week(office: User, programme: Programme, expert: Practitioner) -> None:
    assignment = services.assignment_create(
        actor=office,
        programme=programme,
        practitioner=expert,
        host_department=factories.department("qzph"),
        role=HostRole.DISCIPLINE_LEADER,
        starts_on=P_START,
        commitment=Commitment.FULL_TIME,
        days_per_week=3,
    )
    stored = Assignment.objects.get(pk=assignment.pk)
    assert (stored.commitment, stored.days_per_week, stored.weekly_days) == (Commitment.FULL_TIME, None, None)


def test_unknown_role_or_commitment_is_refused(office: User, programme: Programme, expert: Practitioner) -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.assignment_create(programme, expert, role="chief")
    assert list(excinfo.value.message_dict) == ["role"]
    with pytest.raises(ValidationError) as excinfo:
        factories.assignment_create(programme, expert, commitment="weekends")
    assert list(excinfo.value.message_dict) == ["commitment"]


def test_home_duty_weekdays_must_leave_room_for_the_commitment(programme: Programme, expert: Practitioner) -> None:
    with pytest.raises(ValidationError) as excinfo:
        factories.assignment_create(programme, expert, days_per_week=3, blocked_weekdays="1,2,3")
    assert list(excinfo.value.message_dict) == ["blocked_weekdays"]
    with pytest.raises(ValidationError) as excinfo:
        factories.assignment_create(programme, expert, days_per_week=3, blocked_weekdays="8")
    assert list(excinfo.value.message_dict) == ["blocked_weekdays"]
    # Weekend duties take no working day; two weekday duties leave exactly three days.
    five = factories.assignment_create(
        programme, expert, days_per_week=5, blocked_weekdays="76", ends_on=dt.date(2026, 10, 31)
    )
    assert five.blocked_weekdays == "67"
    three = factories.assignment_create(
        programme, expert, days_per_week=3, blocked_weekdays="2 4", starts_on=dt.date(2026, 11, 2)
    )
    assert Assignment.objects.get(pk=three.pk).blocked_weekdays == "24"


def test_overlapping_assignment_in_the_same_programme_is_a_conflict(programme: Programme, expert: Practitioner) -> None:
    factories.assignment_create(programme, expert, ends_on=dt.date(2026, 11, 30))
    with pytest.raises(Conflict):
        factories.assignment_create(programme, expert, starts_on=dt.date(2026, 11, 15))
    assert Assignment.objects.filter(practitioner=expert).count() == 1
    # Back to back is not an overlap; another programme is not this programme.
    factories.assignment_create(programme, expert, starts_on=dt.date(2026, 12, 1))
    other = factories.programme_create(starts_on=P_START, ends_on=P_END, host_code="khph")
    factories.assignment_create(other, expert, starts_on=dt.date(2026, 11, 15))
    assert Assignment.objects.filter(practitioner=expert).count() == 3


def test_assignment_moved_onto_another_of_the_experts_assignments_is_a_conflict(
    office: User, programme: Programme, expert: Practitioner
) -> None:
    first = factories.assignment_create(programme, expert, ends_on=dt.date(2026, 11, 30))
    factories.assignment_create(programme, expert, starts_on=dt.date(2026, 12, 1))
    with pytest.raises(Conflict):
        services.assignment_update(actor=office, assignment=first, ends_on=dt.date(2026, 12, 15))
    assert Assignment.objects.get(pk=first.pk).ends_on == dt.date(2026, 11, 30)
    assert not audit_rows(first, AuditAction.UPDATE)


def test_assignment_update_checks_the_same_rules_and_audits_the_change(office: User, assignment: Assignment) -> None:
    with pytest.raises(ValidationError) as excinfo:
        services.assignment_update(actor=office, assignment=assignment, days_per_week=6)
    assert list(excinfo.value.message_dict) == ["days_per_week"]
    services.assignment_update(
        actor=office, assignment=assignment, ends_on=dt.date(2026, 12, 31), days_per_week=2, blocked_weekdays="5"
    )
    stored = Assignment.objects.get(pk=assignment.pk)
    assert (stored.ends_on, stored.days_per_week, stored.blocked_weekdays) == (dt.date(2026, 12, 31), 2, "5")
    (event,) = audit_rows(assignment, AuditAction.UPDATE)
    assert event.changes == {
        "ends_on": ["2027-02-28", "2026-12-31"],
        "days_per_week": ["3", "2"],
        "blocked_weekdays": ["", "5"],
    }


@pytest.mark.parametrize("who", REFUSED)
def test_only_the_office_creates_assignments(
    who: str, persona: Persona, programme: Programme, expert: Practitioner
) -> None:
    with pytest.raises(PermissionDenied):
        factories.assignment_create(programme, expert, actor=actor_for(who, persona))
    assert not Assignment.objects.filter(practitioner=expert).exists()


def test_withdrawal_removes_the_roster_after_the_day(office: User, assignment: Assignment) -> None:
    fix(office, assignment, day(0))
    fix(office, assignment, day(8))
    fix(office, assignment, day(10), DayKind.OFF)
    services.assignment_withdraw(actor=office, assignment=assignment, on=day(3), reason="  本院科室工作需要，提前召回 ")
    stored = Assignment.objects.get(pk=assignment.pk)
    assert (stored.withdrawn_on, stored.withdrawn_reason, stored.last_day) == (
        day(3),
        "本院科室工作需要，提前召回",
        day(3),
    )
    assert list(RosterDay.objects.filter(assignment=assignment).values_list("date", flat=True)) == [day(0)]
    (event,) = [e for e in audit_rows(assignment, AuditAction.UPDATE) if "withdrawn_on" in e.changes]
    assert event.changes["roster_days_removed"] == 2
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        fix(office, assignment, day(8))
    assert "outside" in messages(excinfo.value, "date")


def test_withdrawal_needs_a_reason_and_happens_once(office: User, assignment: Assignment) -> None:
    with pytest.raises(ValidationError) as excinfo:
        services.assignment_withdraw(actor=office, assignment=assignment, on=day(3), reason=" ")
    assert list(excinfo.value.message_dict) == ["reason"]
    with pytest.raises(ValidationError):
        services.assignment_withdraw(actor=office, assignment=assignment, on=dt.date(2026, 8, 1), reason="召回")
    assert Assignment.objects.get(pk=assignment.pk).withdrawn_on is None
    services.assignment_withdraw(actor=office, assignment=assignment, on=day(3), reason="召回")
    with translation.override("en"), pytest.raises(Conflict, match="already withdrawn on 2026-10-15"):
        services.assignment_withdraw(actor=office, assignment=assignment, on=day(5), reason="召回")
    assert Assignment.objects.get(pk=assignment.pk).withdrawn_on == day(3)


def test_only_the_office_withdraws(persona: Persona, assignment: Assignment) -> None:
    with pytest.raises(PermissionDenied):
        services.assignment_withdraw(actor=persona("hospadmin"), assignment=assignment, on=day(3), reason="召回")
    assert Assignment.objects.get(pk=assignment.pk).withdrawn_on is None


# ----------------------------------------------------------------------------------------
# Leave


def test_leave_removes_the_planned_days_inside_it_that_were_not_fixed(
    office: User, assignment: Assignment, expert: Practitioner
) -> None:
    for offset in (0, 1, 2, 3):
        fix(office, assignment, day(offset))
    for offset in (1, 2):  # cleared: still planned on site, but the optimiser's to move
        fix(office, assignment, day(offset), "clear")
    fix(office, assignment, day(3), DayKind.OFF)
    leave = services.leave_add(
        actor=office, practitioner=expert, starts_on=day(1), ends_on=day(3), reason="参加全国神经外科年会"
    )
    assert on_site_days(assignment) == [day(0)]
    off = RosterDay.objects.get(assignment=assignment, date=day(3))
    assert (off.kind, off.is_fixed) == (DayKind.OFF, True)  # leave removes on-site days only
    assert Leave.objects.get(pk=leave.pk).reason == "参加全国神经外科年会"
    (event,) = audit_rows(leave)
    assert event.changes["roster_days_removed"] == 2


def test_leave_over_a_day_fixed_on_site_is_a_conflict(
    office: User, assignment: Assignment, expert: Practitioner
) -> None:
    fix(office, assignment, day(2))
    with translation.override("en"), pytest.raises(Conflict) as excinfo:
        services.leave_add(actor=office, practitioner=expert, starts_on=day(0), ends_on=day(4))
    assert "2026-10-14" in str(excinfo.value) and "unfix" in str(excinfo.value)
    assert not Leave.objects.filter(practitioner=expert).exists()
    assert on_site_days(assignment) == [day(2)]


def test_leave_is_recorded_by_the_office_and_cannot_end_before_it_starts(
    persona: Persona, office: User, assignment: Assignment, expert: Practitioner
) -> None:
    for who in ("hospadmin", "expert", "other_office"):
        with pytest.raises(PermissionDenied):
            services.leave_add(actor=actor_for(who, persona), practitioner=expert, starts_on=day(0), ends_on=day(1))
    with pytest.raises(PermissionDenied):  # the expert themselves neither
        services.leave_add(actor=factories.account_of(expert), practitioner=expert, starts_on=day(0), ends_on=day(1))
    with pytest.raises(ValidationError) as excinfo:
        services.leave_add(actor=office, practitioner=expert, starts_on=day(1), ends_on=day(0))
    assert list(excinfo.value.message_dict) == ["ends_on"]
    assert not Leave.objects.filter(practitioner=expert).exists()


# ----------------------------------------------------------------------------------------
# Fixing days by hand


def test_day_on_a_home_duty_weekday_cannot_be_fixed_on_site(
    office: User, programme: Programme, expert: Practitioner
) -> None:
    assignment = factories.assignment_create(programme, expert, blocked_weekdays="2", blocked_note="本院专家门诊")
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        fix(office, assignment, day(1))  # a Tuesday
    assert messages(excinfo.value, "date") == "吕明轩 has home duties on this weekday (本院专家门诊)."
    assert not RosterDay.objects.filter(assignment=assignment).exists()
    assert fix(office, assignment, day(1), DayKind.OFF) is not None  # any day may be fixed off


def test_day_on_leave_cannot_be_fixed_on_site(office: User, assignment: Assignment, expert: Practitioner) -> None:
    services.leave_add(actor=office, practitioner=expert, starts_on=day(3), ends_on=day(4), reason="病假")
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        fix(office, assignment, day(4))
    assert messages(excinfo.value, "date") == "吕明轩 is on leave on 2026-10-16."
    assert not RosterDay.objects.filter(assignment=assignment).exists()


def test_day_outside_the_assignment_cannot_be_fixed_on_site(
    office: User, programme: Programme, expert: Practitioner
) -> None:
    assignment = factories.assignment_create(programme, expert, starts_on=day(2), ends_on=day(30))
    for outside in (day(1), day(31)):
        with translation.override("en"), pytest.raises(ValidationError) as excinfo:
            fix(office, assignment, outside)
        assert messages(excinfo.value, "date") == f"{outside} is outside 吕明轩's assignment."
    assert not RosterDay.objects.filter(assignment=assignment).exists()


def test_day_on_site_at_another_host_is_a_conflict(office: User, assignment: Assignment, expert: Practitioner) -> None:
    kaihua = factories.programme_create(starts_on=P_START, ends_on=P_END, host_code="khph")
    there = factories.assignment_create(kaihua, expert, days_per_week=1)
    fix(office, assignment, day(2))
    with translation.override("en"), pytest.raises(Conflict) as excinfo:
        fix(office, there, day(2))
    assert str(excinfo.value) == "吕明轩 is already on site at Quzhou People's Hospital on 2026-10-14."
    assert not RosterDay.objects.filter(assignment=there).exists()
    fix(office, there, day(3))  # another day is free
    assert on_site_days(there) == [day(3)]


def test_day_fixed_off_and_cleared(office: User, assignment: Assignment) -> None:
    off = fix(office, assignment, day(0), DayKind.OFF)
    assert off is not None
    stored = RosterDay.objects.get(pk=off.pk)
    assert (stored.kind, stored.is_fixed, stored.fixed_by_id) == (DayKind.OFF, True, office.pk)
    assert fix(office, assignment, day(0), "clear") is None
    assert not RosterDay.objects.filter(assignment=assignment, date=day(0)).exists()  # an off day cleared is gone

    fix(office, assignment, day(1))
    cleared = fix(office, assignment, day(1), "clear")
    assert cleared is not None
    stored = RosterDay.objects.get(pk=cleared.pk)
    assert (stored.kind, stored.is_fixed, stored.fixed_by_id) == (DayKind.ON_SITE, False, None)
    changes = [e.changes for e in audit_rows(assignment, AuditAction.UPDATE)]
    assert [c.get("kind") or ("unfixed" if "unfixed" in c else None) for c in changes] == [
        "off",
        "unfixed",
        "on_site",
        "unfixed",
    ]


def test_day_fixed_on_site_replaces_a_day_fixed_off(office: User, assignment: Assignment) -> None:
    first = fix(office, assignment, day(0), DayKind.OFF)
    second = fix(office, assignment, day(0))
    assert first is not None and second is not None and first.pk == second.pk
    assert RosterDay.objects.get(pk=first.pk).kind == DayKind.ON_SITE


@pytest.mark.parametrize("who", REFUSED)
def test_only_the_office_fixes_days(who: str, persona: Persona, assignment: Assignment) -> None:
    with pytest.raises(PermissionDenied):
        services.roster_fix_day(actor=actor_for(who, persona), assignment=assignment, date=day(0), kind="on_site")
    assert not RosterDay.objects.filter(assignment=assignment).exists()


def test_unknown_kind_of_day_is_refused(office: User, assignment: Assignment) -> None:
    with pytest.raises(ValidationError) as excinfo:
        fix(office, assignment, day(0), DayKind.TRAVEL)
    assert list(excinfo.value.message_dict) == ["kind"]


# ----------------------------------------------------------------------------------------
# Optimising the roster (the real CP-SAT solver, small horizons)

OPT_START = dt.date(2025, 12, 1)  # covers the New Year week and the National Day fortnight of 2026


@pytest.fixture
def qz2ph_programme(db: None) -> Programme:
    """zju2 -> Quzhou Second People's Hospital (orthopaedics): a host the demo stations nobody at,
    so the solver sees only what each test plans. Any demand the demo may give its departments
    is taken away: each test states its own."""
    programme = factories.programme_create(
        code="t-svc-qz2ph", starts_on=OPT_START, ends_on=P_END, host_code="qz2ph", title_zh="骨科专家派驻"
    )
    HostDemand.objects.filter(department__institution=programme.host_institution).delete()
    return programme


def station(programme: Programme, name: str, **fields: Any) -> Assignment:
    expert = factories.expert_create(name_zh=name, discipline=Discipline.ORTHOPEDICS)
    return factories.assignment_create(programme, expert, discipline=Discipline.ORTHOPEDICS, **fields)


def optimise(office: User, programme: Programme, start: dt.date, weeks: int) -> RosterRun:
    return services.roster_optimise(actor=office, programme=programme, start=start, weeks=weeks, time_limit=5)


def by_week(days: list[dt.date]) -> dict[dt.date, int]:
    counts: dict[dt.date, int] = {}
    for d in days:
        counts[selectors.monday(d)] = counts.get(selectors.monday(d), 0) + 1
    return counts


@pytest.mark.parametrize(
    ("start", "weeks", "field"),
    [
        (dt.date(2026, 10, 13), 1, "start"),  # a Tuesday
        (WEEK, 0, "weeks"),
        (WEEK, 13, "weeks"),
        (dt.date(2025, 11, 3), 2, "start"),  # before the programme
        (dt.date(2027, 3, 1), 1, "start"),  # after it
    ],
)
def test_roster_starts_on_a_monday_and_spans_one_to_twelve_weeks_of_the_programme(
    office: User, qz2ph_programme: Programme, start: dt.date, weeks: int, field: str
) -> None:
    station(qz2ph_programme, "郑浩然")
    with pytest.raises(ValidationError) as excinfo:
        optimise(office, qz2ph_programme, start, weeks)
    assert list(excinfo.value.message_dict) == [field]
    assert not RosterRun.objects.filter(programme=qz2ph_programme).exists()
    assert not RosterDay.objects.filter(assignment__programme=qz2ph_programme).exists()


def test_only_the_office_optimises_the_roster(persona: Persona, qz2ph_programme: Programme) -> None:
    station(qz2ph_programme, "郑浩然")
    for who in ("hospadmin", "expert", "other_office"):
        with pytest.raises(PermissionDenied):
            optimise(actor_for(who, persona), qz2ph_programme, WEEK, 1)
    assert not RosterRun.objects.filter(programme=qz2ph_programme).exists()


def test_roster_avoids_national_day_the_home_duty_weekday_and_leave(office: User, qz2ph_programme: Programme) -> None:
    """3 days a week, Tuesdays at home, leave on Friday 9 October. Week of 28 September: the
    working days are Mon-Wed (1-4 October is National Day), Tuesday is taken, so 2 days; week of
    5 October: Thu 8 and the adjusted working Saturday 10 (Fri 9 is leave), so 2 days."""
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=3, blocked_weekdays="2")
    services.leave_add(
        actor=office,
        practitioner=assignment.practitioner,
        starts_on=dt.date(2026, 10, 9),
        ends_on=dt.date(2026, 10, 9),
        reason="调休",
    )
    run = optimise(office, qz2ph_programme, dt.date(2026, 9, 28), 2)
    days = on_site_days(assignment)
    assert days == [dt.date(2026, 9, 28), dt.date(2026, 9, 30), dt.date(2026, 10, 8), dt.date(2026, 10, 10)]
    assert not any(dt.date(2026, 10, 1) <= d <= dt.date(2026, 10, 7) for d in days)
    assert not RosterDay.objects.filter(assignment=assignment, is_fixed=True).exists()
    stored = RosterRun.objects.get(pk=run.pk)
    assert (stored.starts_on, stored.weeks, stored.created_by_id) == (dt.date(2026, 9, 28), 2, office.pk)
    assert stored.status == "optimal"
    assert (stored.objective, stored.bound, stored.gap) == (0.0, 0.0, 0.0)
    assert (stored.demand_missing, stored.commitment_missing, stored.travel_days, stored.shortfalls) == (0, 0, 0, [])
    assert stored.unknown_years == []
    (event,) = audit_rows(stored)
    assert event.changes["days_planned"] == 4 and event.changes["status"] == "optimal"


def test_roster_of_the_new_year_week_skips_the_holidays_and_takes_the_adjusted_sunday(
    office: User, qz2ph_programme: Programme
) -> None:
    """1-3 January 2026 are New Year holidays and Sunday 4 January a working day: five days a week
    can only be the four working days."""
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=5)
    run = optimise(office, qz2ph_programme, dt.date(2025, 12, 29), 1)
    assert on_site_days(assignment) == [
        dt.date(2025, 12, 29),
        dt.date(2025, 12, 30),
        dt.date(2025, 12, 31),
        dt.date(2026, 1, 4),
    ]
    assert (run.commitment_missing, run.shortfalls) == (0, [])


def test_full_time_resident_is_on_site_every_working_day_and_no_holiday(
    office: User, qz2ph_programme: Programme
) -> None:
    assignment = station(qz2ph_programme, "郑浩然", commitment=Commitment.FULL_TIME)
    optimise(office, qz2ph_programme, dt.date(2026, 9, 28), 2)
    assert on_site_days(assignment) == [
        dt.date(2026, 9, 28),
        dt.date(2026, 9, 29),
        dt.date(2026, 9, 30),
        dt.date(2026, 10, 8),
        dt.date(2026, 10, 9),
        dt.date(2026, 10, 10),
    ]


def test_each_week_of_the_roster_meets_each_commitment(office: User, qz2ph_programme: Programme) -> None:
    three = station(qz2ph_programme, "郑浩然", days_per_week=3, blocked_weekdays="5")
    two = station(qz2ph_programme, "钱思远", days_per_week=2)
    run = optimise(office, qz2ph_programme, WEEK, 3)
    weeks = [WEEK, day(7), day(14)]
    assert by_week(on_site_days(three)) == dict.fromkeys(weeks, 3)
    assert by_week(on_site_days(two)) == dict.fromkeys(weeks, 2)
    assert all(d.weekday() < 5 for d in on_site_days(three) + on_site_days(two))
    assert all(d.isoweekday() != 5 for d in on_site_days(three))
    assert (run.status, run.commitment_missing, run.demand_missing) == ("optimal", 0, 0)


def test_fixed_days_are_kept_exactly_and_the_rest_is_replaced(office: User, qz2ph_programme: Programme) -> None:
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=3)
    friday = fix(office, assignment, day(4))
    monday = fix(office, assignment, day(0), DayKind.OFF)
    assert friday is not None and monday is not None
    optimise(office, qz2ph_programme, WEEK, 1)
    first = on_site_days(assignment)
    assert len(first) == 3 and day(4) in first and day(0) not in first
    planned = set(RosterDay.objects.filter(assignment=assignment, is_fixed=False).values_list("pk", flat=True))
    assert len(planned) == 2

    # Tuesdays and Wednesdays become home duty: the planned days there must go; Thursday is the only
    # free day left, and the Monday fixed off still counts towards the week (a shortfall of one).
    services.assignment_update(actor=office, assignment=assignment, blocked_weekdays="23")
    run = optimise(office, qz2ph_programme, WEEK, 1)
    assert on_site_days(assignment) == [day(3), day(4)]
    kept = {r.date: r for r in RosterDay.objects.filter(assignment=assignment, is_fixed=True)}
    assert set(kept) == {day(0), day(4)}
    assert (kept[day(0)].pk, kept[day(0)].kind, kept[day(0)].fixed_by_id) == (monday.pk, DayKind.OFF, office.pk)
    assert (kept[day(4)].pk, kept[day(4)].kind, kept[day(4)].fixed_by_id) == (friday.pk, DayKind.ON_SITE, office.pk)
    assert not RosterDay.objects.filter(pk__in=planned).exists()  # the optimiser's earlier days were replaced
    assert run.commitment_missing == 1
    (shortfall,) = [s for s in run.shortfalls if s["kind"] == "commitment"]
    assert shortfall["missing"] == 1 and "fixed_off" in {r["kind"] for r in shortfall["reasons"]}


def test_day_fixed_on_site_on_a_holiday_is_kept(office: User, qz2ph_programme: Programme) -> None:
    """A person decided it: a day fixed on site is kept even on National Day, and counts."""
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=3)
    fix(office, assignment, dt.date(2026, 10, 2))
    optimise(office, qz2ph_programme, dt.date(2026, 9, 28), 1)
    days = on_site_days(assignment)
    assert len(days) == 3 and dt.date(2026, 10, 2) in days
    assert set(days) - {dt.date(2026, 10, 2)} < {dt.date(2026, 9, 28), dt.date(2026, 9, 29), dt.date(2026, 9, 30)}


def test_unmet_need_on_a_weekday_is_stored_as_a_shortfall_and_explained(
    office: User, qz2ph_programme: Programme
) -> None:
    """The department operates on Tuesdays, and its only expert has home duties on Tuesdays."""
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=3, blocked_weekdays="2")
    services.host_demand_set(
        actor=office,
        programme=qz2ph_programme,
        department=assignment.host_department,
        days_per_week=0,
        need_weekdays="2",
        need_label_zh="手术日",
        need_label_en="operating day",
    )
    with translation.override("en"):
        run = optimise(office, qz2ph_programme, WEEK, 1)
        department = assignment.host_department.name
    stored = RosterRun.objects.get(pk=run.pk)
    assert stored.status == "optimal" and stored.demand_missing == 1 and stored.commitment_missing == 0
    assert stored.objective == stored.bound == float(solver.W_DEMAND)
    (data,) = stored.shortfalls
    assert (data["kind"], data["dates"], data["missing"]) == ("day", ["2026-10-13"], 1)
    assert data["department"] == str(assignment.host_department.public_id)
    label = data["label"]
    assert label == department  # the host is the programme's; the page names the department alone
    shortfall = solver.shortfall_from_json(data)
    with translation.override("en"):
        assert explain.describe(shortfall) == [
            f"{label} is short 1 expert on 2026-10-13 (operating day).",
            "郑浩然: home duty every Tuesday",
        ]
    assert len(on_site_days(assignment)) == 3 and day(1) not in on_site_days(assignment)


def test_weekly_demand_above_the_commitments_is_a_shortfall_with_its_capacity(
    office: User, qz2ph_programme: Programme
) -> None:
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=3)
    services.host_demand_set(
        actor=office, programme=qz2ph_programme, department=assignment.host_department, days_per_week=4
    )
    with translation.override("en"):
        run = optimise(office, qz2ph_programme, WEEK, 1)
    assert run.demand_missing == 1
    (data,) = run.shortfalls
    assert (data["kind"], data["week"], data["missing"]) == ("week", "2026-10-12", 1)
    with translation.override("en"):
        lines = explain.describe(solver.shortfall_from_json(data))
    assert lines[0] == f"{data['label']} is short 1 expert-day in the week of 2026-10-12."
    assert "the assigned experts commit 3 expert-days that week, 4 are needed" in lines[1:]


def test_shortfalls_survive_the_round_trip_through_the_run(office: User, qz2ph_programme: Programme) -> None:
    """What the run stores is what the solver said: every field of every shortfall, its reasons too."""
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=3, blocked_weekdays="2")
    services.host_demand_set(
        actor=office,
        programme=qz2ph_programme,
        department=assignment.host_department,
        days_per_week=4,
        need_weekdays="2",
        need_label_zh="手术日",
        need_label_en="operating day",
    )
    solutions: list[solver.Solution] = []
    real = solver.solve

    def spy(problem: solver.Problem) -> solver.Solution:
        solutions.append(real(problem))
        return solutions[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(solver, "solve", spy)
        run = optimise(office, qz2ph_programme, WEEK, 1)
    (solution,) = solutions
    assert solution.shortfalls
    assert [solver.shortfall_from_json(s) for s in run.shortfalls] == solution.shortfalls


def test_commitments_of_other_programmes_are_not_this_runs_shortfalls(office: User, qz2ph_programme: Programme) -> None:
    """The same expert is also stationed at Kaihua (with no roster there yet): that programme's
    commitment is not a shortfall of the Quzhou Second roster."""
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=2)
    kaihua = factories.programme_create(starts_on=OPT_START, ends_on=P_END, host_code="khph")
    factories.assignment_create(kaihua, assignment.practitioner, days_per_week=2, discipline=Discipline.ORTHOPEDICS)
    run = optimise(office, qz2ph_programme, WEEK, 1)
    assert len(on_site_days(assignment)) == 2
    assert (run.commitment_missing, run.shortfalls) == (0, [])


def test_day_fixed_while_the_solver_runs_makes_the_run_a_conflict(
    office: User, qz2ph_programme: Programme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The solver runs outside the transaction; a day fixed meanwhile would be overwritten by a
    roster planned without it, so nothing is written and the office is asked to run again."""
    assignment = station(qz2ph_programme, "郑浩然", days_per_week=3)
    real = solver.solve

    def solve_while_someone_fixes_a_day(problem: solver.Problem) -> solver.Solution:
        solution = real(problem)
        services.roster_fix_day(actor=office, assignment=assignment, date=day(4), kind="on_site")
        return solution

    monkeypatch.setattr(solver, "solve", solve_while_someone_fixes_a_day)
    with translation.override("en"), pytest.raises(Conflict, match="Run it again"):
        optimise(office, qz2ph_programme, WEEK, 1)
    assert not RosterRun.objects.filter(programme=qz2ph_programme).exists()
    (only,) = RosterDay.objects.filter(assignment=assignment)
    assert (only.date, only.is_fixed) == (day(4), True)  # the fixed day, and no roster around it


def test_roster_of_a_cancelled_programme_is_a_conflict(office: User, qz2ph_programme: Programme) -> None:
    station(qz2ph_programme, "郑浩然")
    services.programme_update(actor=office, programme=qz2ph_programme, status=ProgrammeStatus.CANCELLED)
    with pytest.raises(Conflict):
        optimise(office, Programme.objects.get(pk=qz2ph_programme.pk), WEEK, 1)
    assert not RosterRun.objects.filter(programme=qz2ph_programme).exists()


# ----------------------------------------------------------------------------------------
# Check-in

NEAR_QZPH = (28.9665, 118.8725)  # some 50 m from Quzhou People's Hospital
FAR_FROM_QZPH = (29.4162, 118.8721)  # 0.45 degrees north: some 50 km away


@pytest.fixture
def radius() -> Iterator[int]:
    with override_settings(YILIAN_CHECKIN_RADIUS_M=1000):
        yield 1000


def check_in(assignment: Assignment, when: dt.datetime, **position: Any) -> Attendance:
    return services.attendance_check_in(
        actor=factories.account_of(assignment.practitioner), assignment=assignment, now=when, **position
    )


def test_expert_checks_in_for_today(assignment: Assignment) -> None:
    when = at(TODAY, 8, 5)
    attendance = check_in(assignment, when)
    stored = Attendance.objects.get(pk=attendance.pk)
    assert (stored.date, stored.status, stored.checked_in_at) == (TODAY, AttendanceStatus.CHECKED_IN, when)
    assert stored.recorded_by_id == assignment.practitioner.user_id
    assert (stored.was_planned, stored.distance_m) == (False, None)
    (event,) = audit_rows(stored)
    assert event.action == AuditAction.CREATE and event.changes["planned"] is False


def test_check_in_takes_the_china_date(assignment: Assignment) -> None:
    """23:30 UTC on the 13th is 07:30 on the 14th in Quzhou: the day checked in is the 14th."""
    attendance = check_in(assignment, dt.datetime(2026, 10, 13, 23, 30, tzinfo=dt.UTC))
    assert attendance.date == TODAY


@pytest.mark.parametrize("who", ["office", "hospadmin", "admin_of_host", "another_expert", "expert"])
def test_only_the_expert_checks_in_for_themselves(who: str, persona: Persona, assignment: Assignment) -> None:
    actor = {
        "admin_of_host": lambda: factories.hospital_admin("qzph"),
        "another_expert": lambda: factories.account_of(factories.expert_create()),
    }.get(who, lambda: persona(who))()
    with pytest.raises(PermissionDenied):
        services.attendance_check_in(actor=actor, assignment=assignment, now=at(TODAY))
    assert not Attendance.objects.filter(assignment=assignment).exists()


def test_check_in_outside_the_assignment_is_refused(office: User, programme: Programme, expert: Practitioner) -> None:
    later = factories.assignment_create(programme, expert, starts_on=day(7))
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        check_in(later, at(TODAY))
    assert messages(excinfo.value, "date") == "Your assignment does not run today."
    other = factories.assignment_create(programme, factories.expert_create(), starts_on=P_START)
    services.assignment_withdraw(actor=office, assignment=other, on=day(1), reason="召回")
    with pytest.raises(ValidationError):
        check_in(Assignment.objects.get(pk=other.pk), at(TODAY))
    assert not Attendance.objects.filter(assignment__programme=programme).exists()


def test_check_in_on_leave_is_refused(office: User, assignment: Assignment, expert: Practitioner) -> None:
    services.leave_add(actor=office, practitioner=expert, starts_on=TODAY, ends_on=TODAY, reason="病假")
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        check_in(assignment, at(TODAY))
    assert "on leave today" in messages(excinfo.value, "date")
    assert not Attendance.objects.filter(assignment=assignment).exists()


def test_second_check_in_is_a_conflict_naming_the_first(assignment: Assignment) -> None:
    first = check_in(assignment, at(TODAY, 8, 5))
    with translation.override("en"), pytest.raises(Conflict) as excinfo:
        check_in(assignment, at(TODAY, 13, 40))
    assert str(excinfo.value) == "Already checked in today at 08:05."
    assert list(Attendance.objects.filter(assignment=assignment)) == [first]
    assert Attendance.objects.get(pk=first.pk).checked_in_at == at(TODAY, 8, 5)


def test_check_in_where_the_host_requires_a_position_needs_one(
    radius: int, office: User, programme: Programme, assignment: Assignment
) -> None:
    services.programme_update(actor=office, programme=programme, require_location=True)
    assignment = Assignment.objects.select_related("programme").get(pk=assignment.pk)
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        check_in(assignment, at(TODAY))
    assert "share its position" in messages(excinfo.value, "latitude")
    with pytest.raises(ValidationError) as excinfo:
        check_in(assignment, at(TODAY), latitude=NEAR_QZPH[0])
    assert list(excinfo.value.message_dict) == ["latitude"]
    with pytest.raises(ValidationError):
        check_in(assignment, at(TODAY), latitude=91.0, longitude=118.0)
    assert not Attendance.objects.filter(assignment=assignment).exists()


def test_check_in_far_from_the_host_is_refused_with_the_distance(
    radius: int, office: User, programme: Programme, assignment: Assignment
) -> None:
    services.programme_update(actor=office, programme=programme, require_location=True)
    assignment = Assignment.objects.select_related("programme").get(pk=assignment.pk)
    qzph = programme.host_institution
    assert qzph.latitude is not None and qzph.longitude is not None
    km = selectors.distance_m(*FAR_FROM_QZPH, qzph.latitude, qzph.longitude) / 1000
    assert 49 < km < 51
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        check_in(assignment, at(TODAY), latitude=FAR_FROM_QZPH[0], longitude=FAR_FROM_QZPH[1])
    assert messages(excinfo.value, "latitude").startswith(f"You are {round(km * 1000) / 1000:.1f} km from Quzhou")
    assert not Attendance.objects.filter(assignment=assignment).exists()


def test_check_in_near_the_host_is_accepted_with_its_distance(
    radius: int, office: User, programme: Programme, assignment: Assignment
) -> None:
    services.programme_update(actor=office, programme=programme, require_location=True)
    assignment = Assignment.objects.select_related("programme").get(pk=assignment.pk)
    qzph = programme.host_institution
    assert qzph.latitude is not None and qzph.longitude is not None
    expected = round(selectors.distance_m(*NEAR_QZPH, qzph.latitude, qzph.longitude))
    attendance = check_in(assignment, at(TODAY), latitude=NEAR_QZPH[0], longitude=NEAR_QZPH[1])
    stored = Attendance.objects.get(pk=attendance.pk)
    assert stored.distance_m == expected and 0 < expected < radius
    # How far, never where: the phone's position is not kept.
    assert not {"latitude", "longitude"} & {f.name for f in Attendance._meta.get_fields()}
    assert str(NEAR_QZPH[0]) not in str(AuditEvent.objects.filter(object_id=str(attendance.public_id)).values())


def test_check_in_records_whether_the_day_was_planned(
    office: User, programme: Programme, assignment: Assignment
) -> None:
    fix(office, assignment, TODAY)
    assert check_in(assignment, at(TODAY)).was_planned is True
    unplanned = factories.assignment_create(programme, factories.expert_create())
    assert check_in(unplanned, at(TODAY)).was_planned is False
    tomorrow = check_in(assignment, at(TODAY + dt.timedelta(days=1)))
    assert tomorrow.was_planned is False  # the plan was for the 14th only


def test_check_in_at_a_second_site_the_same_day_is_a_conflict(assignment: Assignment, expert: Practitioner) -> None:
    kaihua = factories.programme_create(starts_on=P_START, ends_on=P_END, host_code="khph")
    there = factories.assignment_create(kaihua, expert, days_per_week=1)
    check_in(assignment, at(TODAY, 8))
    with translation.override("en"), pytest.raises(Conflict) as excinfo:
        check_in(there, at(TODAY, 15))
    assert str(excinfo.value) == "You already checked in at Quzhou People's Hospital today."
    assert not Attendance.objects.filter(assignment=there).exists()
    assert check_in(there, at(TODAY + dt.timedelta(days=1))).date == day(3)


def test_check_in_to_a_suspended_programme_is_a_conflict(
    office: User, programme: Programme, assignment: Assignment
) -> None:
    services.programme_update(actor=office, programme=programme, status=ProgrammeStatus.SUSPENDED)
    with pytest.raises(Conflict):
        check_in(Assignment.objects.select_related("programme").get(pk=assignment.pk), at(TODAY))
    assert not Attendance.objects.filter(assignment=assignment).exists()


# ----------------------------------------------------------------------------------------
# Attendance recorded by the host (and the expert's own absence)


@pytest.fixture
def host_admin(db: None) -> User:
    """A hospital administrator of the host, Quzhou People's Hospital."""
    return factories.hospital_admin("qzph")


def test_host_admin_confirms_a_day_with_an_audit_row(clock: Clock, host_admin: User, assignment: Assignment) -> None:
    clock(TODAY)
    attendance = services.attendance_confirm(actor=host_admin, assignment=assignment, date=day(1))
    stored = Attendance.objects.get(pk=attendance.pk)
    assert (stored.date, stored.status, stored.recorded_by_id) == (day(1), AttendanceStatus.CONFIRMED, host_admin.pk)
    assert (stored.checked_in_at, stored.was_planned, stored.is_present) == (None, False, True)
    (event,) = audit_rows(stored)
    assert event.actor_id == host_admin.pk and event.changes["status"] == "confirmed"


@pytest.mark.parametrize("who", ["office", "commission", "the_expert", "admin_of_sender", "admin_of_other_host"])
def test_only_the_hosts_admins_confirm_attendance(
    who: str, clock: Clock, persona: Persona, assignment: Assignment
) -> None:
    clock(TODAY)
    actor = {
        "the_expert": lambda: factories.account_of(assignment.practitioner),
        "admin_of_sender": lambda: factories.hospital_admin("zju2"),
        "admin_of_other_host": lambda: factories.hospital_admin("khph"),
    }.get(who, lambda: persona(who))()
    with pytest.raises(PermissionDenied):
        services.attendance_confirm(actor=actor, assignment=assignment, date=day(1))
    assert not Attendance.objects.filter(assignment=assignment).exists()


def test_expert_records_their_own_absence_with_a_reason(clock: Clock, assignment: Assignment) -> None:
    clock(TODAY)
    own = factories.account_of(assignment.practitioner)
    absence = services.attendance_record_absence(
        actor=own, assignment=assignment, date=day(1), reason="  本院急诊手术，未能到岗 "
    )
    stored = Attendance.objects.get(pk=absence.pk)
    assert (stored.status, stored.absence_reason, stored.recorded_by_id) == (
        AttendanceStatus.ABSENT,
        "本院急诊手术，未能到岗",
        own.pk,
    )
    assert stored.is_present is False
    other = factories.account_of(factories.expert_create())
    with pytest.raises(PermissionDenied):  # not someone else's absence
        services.attendance_record_absence(actor=other, assignment=assignment, date=day(0), reason="病假")


def test_absence_needs_a_reason(clock: Clock, host_admin: User, assignment: Assignment) -> None:
    clock(TODAY)
    with pytest.raises(ValidationError) as excinfo:
        services.attendance_record_absence(actor=host_admin, assignment=assignment, date=day(1), reason="  ")
    assert list(excinfo.value.message_dict) == ["reason"]
    assert not Attendance.objects.filter(assignment=assignment).exists()


def test_attendance_of_a_future_day_is_refused(clock: Clock, host_admin: User, assignment: Assignment) -> None:
    clock(TODAY)
    with pytest.raises(ValidationError) as excinfo:
        services.attendance_confirm(actor=host_admin, assignment=assignment, date=day(3))
    assert list(excinfo.value.message_dict) == ["date"]
    with pytest.raises(ValidationError) as excinfo:
        services.attendance_record_absence(actor=host_admin, assignment=assignment, date=day(3), reason="休")
    assert list(excinfo.value.message_dict) == ["date"]
    assert services.attendance_confirm(actor=host_admin, assignment=assignment, date=TODAY).date == TODAY
    assert Attendance.objects.filter(assignment=assignment).count() == 1


def test_attendance_outside_the_assignment_is_refused(
    clock: Clock, host_admin: User, programme: Programme, expert: Practitioner
) -> None:
    clock(TODAY)
    assignment = factories.assignment_create(programme, expert, starts_on=day(1))
    with pytest.raises(ValidationError) as excinfo:
        services.attendance_confirm(actor=host_admin, assignment=assignment, date=day(0))
    assert list(excinfo.value.message_dict) == ["date"]


def test_present_day_cannot_be_marked_absent_nor_an_absent_day_confirmed(
    clock: Clock, host_admin: User, assignment: Assignment
) -> None:
    clock(TODAY)
    check_in(assignment, at(TODAY, 8))
    with translation.override("en"), pytest.raises(Conflict, match="clear that first"):
        services.attendance_record_absence(actor=host_admin, assignment=assignment, date=TODAY, reason="未到岗")
    services.attendance_record_absence(actor=host_admin, assignment=assignment, date=day(1), reason="航班取消")
    with translation.override("en"), pytest.raises(Conflict, match="航班取消"):
        services.attendance_confirm(actor=host_admin, assignment=assignment, date=day(1))
    statuses = dict(Attendance.objects.filter(assignment=assignment).values_list("date", "status"))
    assert statuses == {TODAY: AttendanceStatus.CHECKED_IN, day(1): AttendanceStatus.ABSENT}


def test_day_recorded_twice_is_a_conflict(clock: Clock, host_admin: User, assignment: Assignment) -> None:
    clock(TODAY)
    services.attendance_confirm(actor=host_admin, assignment=assignment, date=day(1))
    with translation.override("en"), pytest.raises(Conflict, match="already confirmed by the host"):
        services.attendance_confirm(actor=host_admin, assignment=assignment, date=day(1))
    check_in(assignment, at(TODAY, 8, 20))
    with translation.override("en"), pytest.raises(Conflict, match="Already checked in today at 08:20"):
        services.attendance_confirm(actor=host_admin, assignment=assignment, date=TODAY)
    assert Attendance.objects.filter(assignment=assignment).count() == 2


def test_host_clears_a_day_unless_work_was_logged_on_it(clock: Clock, host_admin: User, assignment: Assignment) -> None:
    clock(TODAY)
    mistaken = services.attendance_record_absence(actor=host_admin, assignment=assignment, date=day(0), reason="误录")
    with pytest.raises(PermissionDenied):
        services.attendance_clear(actor=factories.account_of(assignment.practitioner), attendance=mistaken)
    services.attendance_clear(actor=host_admin, attendance=mistaken)
    assert not Attendance.objects.filter(pk=mistaken.pk).exists()
    assert [e.action for e in audit_rows(mistaken)] == [AuditAction.CREATE, AuditAction.DELETE]

    confirmed = services.attendance_confirm(actor=host_admin, assignment=assignment, date=day(0))
    services.work_log_save(
        actor=factories.account_of(assignment.practitioner),
        assignment=assignment,
        date=day(0),
        counts={"patients_seen": 12},
        operations=[],
    )
    with pytest.raises(Conflict):
        services.attendance_clear(actor=host_admin, attendance=confirmed)
    assert Attendance.objects.filter(pk=confirmed.pk).exists()


# ----------------------------------------------------------------------------------------
# Work logs


def log(
    assignment: Assignment, date: dt.date, operations: list[OperationEntry] | None = None, **counts: int
) -> WorkLog:
    return services.work_log_save(
        actor=factories.account_of(assignment.practitioner),
        assignment=assignment,
        date=date,
        counts=counts,
        operations=operations or [],
        note="",
    )


@pytest.fixture
def present(clock: Clock, assignment: Assignment) -> Assignment:
    """The assignment with the expert checked in today (the 14th) and the clock at 18:00 that day."""
    clock(TODAY)
    check_in(assignment, at(TODAY, 8))
    return assignment


def test_expert_logs_a_present_day_with_its_operations(present: Assignment) -> None:
    surgeon = factories.practitioner_create(institution_code="qzph", name_zh="周立新")
    work = log(
        present,
        TODAY,
        [
            OperationEntry("神经内镜联合显微镜下脑室肿瘤切除术", level=4, role=OperationRole.OPERATOR),
            OperationEntry("颅内血肿清除术", level=3, role=OperationRole.SUPERVISOR, local_surgeon=surgeon),
            OperationEntry(
                "脑室外引流术",
                level=2,
                role=OperationRole.ASSISTANT,
                local_surgeon_name=" 刘晓东 ",
                minimally_invasive=True,
            ),
        ],
        outpatient_sessions=1,
        patients_seen=23,
        ward_rounds=1,
        teaching_sessions=1,
    )
    stored = WorkLog.objects.get(pk=work.pk)
    assert (stored.date, stored.patients_seen, stored.ward_rounds, stored.consultations) == (TODAY, 23, 1, 0)
    ops = list(stored.operations.order_by("id").values_list("level", "role", "local_surgeon_id", "local_surgeon_name"))
    assert ops == [
        (4, "operator", None, ""),
        (3, "supervisor", surgeon.pk, "周立新"),
        (2, "assistant", None, "刘晓东"),
    ]
    (event,) = audit_rows(stored)
    assert event.action == AuditAction.CREATE and event.changes["operations"] == 3
    assert event.changes["patients_seen"] == 23


def test_work_log_needs_a_day_the_expert_was_present(clock: Clock, host_admin: User, assignment: Assignment) -> None:
    clock(TODAY)
    with translation.override("en"), pytest.raises(Conflict, match="Check in"):
        log(assignment, TODAY, patients_seen=5)
    services.attendance_record_absence(actor=host_admin, assignment=assignment, date=day(1), reason="航班取消")
    with pytest.raises(Conflict):
        log(assignment, day(1), patients_seen=5)
    assert not WorkLog.objects.filter(assignment=assignment).exists()
    services.attendance_confirm(actor=host_admin, assignment=assignment, date=day(0))
    assert log(assignment, day(0), patients_seen=5).patients_seen == 5  # a confirmed day is present


@pytest.mark.parametrize("who", ["office", "host_admin", "another_expert"])
def test_only_the_expert_keeps_their_work_log(
    who: str, persona: Persona, host_admin: User, present: Assignment
) -> None:
    actor = {
        "office": lambda: persona("office"),
        "host_admin": lambda: host_admin,
        "another_expert": lambda: factories.account_of(factories.expert_create()),
    }[who]()
    with pytest.raises(PermissionDenied):
        services.work_log_save(actor=actor, assignment=present, date=TODAY, counts={"patients_seen": 3}, operations=[])
    assert not WorkLog.objects.filter(assignment=present).exists()


def test_work_log_is_written_on_the_day_or_up_to_30_days_later(
    clock: Clock, host_admin: User, assignment: Assignment
) -> None:
    clock(TODAY)
    month_ago, too_late = TODAY - dt.timedelta(days=30), TODAY - dt.timedelta(days=31)
    for date in (month_ago, too_late):
        services.attendance_confirm(actor=host_admin, assignment=assignment, date=date)
    with pytest.raises(ValidationError) as excinfo:
        log(assignment, too_late, patients_seen=4)
    assert list(excinfo.value.message_dict) == ["date"]
    with pytest.raises(ValidationError) as excinfo:
        log(assignment, TODAY + dt.timedelta(days=1), patients_seen=4)
    assert list(excinfo.value.message_dict) == ["date"]
    assert log(assignment, month_ago, patients_seen=4).date == month_ago
    assert list(WorkLog.objects.filter(assignment=assignment).values_list("date", flat=True)) == [month_ago]


@pytest.mark.parametrize(
    ("counts", "field"),
    [({"patients_seen": 501}, "patients_seen"), ({"ward_rounds": -1}, "ward_rounds"), ({"beds": 3}, "counts")],
)
def test_work_log_counts_are_between_0_and_500(present: Assignment, counts: dict[str, int], field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        services.work_log_save(
            actor=factories.account_of(present.practitioner),
            assignment=present,
            date=TODAY,
            counts=counts,
            operations=[],
        )
    assert list(excinfo.value.message_dict) == [field]
    assert not WorkLog.objects.filter(assignment=present).exists()


def test_work_log_counts_of_0_and_500_are_accepted(present: Assignment) -> None:
    work = log(present, TODAY, patients_seen=500, consultations=0)
    assert (work.patients_seen, work.consultations) == (500, 0)


@pytest.mark.parametrize(
    "operation",
    [
        OperationEntry("腰椎融合术", level=0, role=OperationRole.OPERATOR),
        OperationEntry("腰椎融合术", level=5, role=OperationRole.OPERATOR),
        OperationEntry("腰椎融合术", level=3, role="observer"),
        OperationEntry("  ", level=3, role=OperationRole.OPERATOR),
        OperationEntry("腰椎融合术", level=3, role=OperationRole.ASSISTANT),
        OperationEntry("腰椎融合术", level=3, role=OperationRole.SUPERVISOR, local_surgeon_name="  "),
    ],
    ids=["level-0", "level-5", "unknown-role", "no-procedure", "assistant-alone", "supervisor-alone"],
)
def test_operation_is_refused_when_its_level_role_or_local_surgeon_is_wrong(
    present: Assignment, operation: OperationEntry
) -> None:
    fine = OperationEntry("颅骨修补术", level=2, role=OperationRole.OPERATOR)
    with pytest.raises(ValidationError) as excinfo:
        log(present, TODAY, [fine, operation], patients_seen=3)
    assert list(excinfo.value.message_dict) == ["operations.1"]
    assert not WorkLog.objects.filter(assignment=present).exists()
    assert not LoggedOperation.objects.filter(work_log__assignment=present).exists()


def test_local_surgeon_from_another_hospital_is_refused(present: Assignment) -> None:
    outsider = factories.practitioner_create(institution_code="csph", name_zh="王建华")
    colleague = factories.practitioner_create(institution_code="zju2", name_zh="陈立")
    for surgeon in (outsider, colleague):
        with translation.override("en"), pytest.raises(ValidationError) as excinfo:
            log(present, TODAY, [OperationEntry("颅内血肿清除术", 3, OperationRole.SUPERVISOR, local_surgeon=surgeon)])
        assert messages(excinfo.value, "operations.0") == "The local surgeon must work at the host hospital."
    assert not WorkLog.objects.filter(assignment=present).exists()


def test_saving_the_day_again_replaces_its_log_and_operations(present: Assignment) -> None:
    first = log(
        present,
        TODAY,
        [
            OperationEntry("颅内血肿清除术", 3, OperationRole.OPERATOR),
            OperationEntry("脑室外引流术", 2, OperationRole.OPERATOR),
            OperationEntry("脑室腹腔分流术", 3, OperationRole.OPERATOR),
        ],
        patients_seen=20,
        ward_rounds=1,
    )
    second = log(present, TODAY, [OperationEntry("颅内血肿清除术", 4, OperationRole.OPERATOR)], patients_seen=18)
    assert second.pk == first.pk
    assert WorkLog.objects.filter(assignment=present, date=TODAY).count() == 1
    stored = WorkLog.objects.get(pk=first.pk)
    assert (stored.patients_seen, stored.ward_rounds) == (18, 0)  # counts not given again are 0
    assert list(stored.operations.values_list("procedure", "level")) == [("颅内血肿清除术", 4)]
    assert LoggedOperation.objects.filter(work_log__assignment=present).count() == 1
    assert [(e.action, e.changes["operations"]) for e in audit_rows(stored)] == [
        (AuditAction.CREATE, 3),
        (AuditAction.UPDATE, 1),
    ]
