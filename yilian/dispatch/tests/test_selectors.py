"""Stationing selectors: who sees which programme, and the committed / planned / delivered days and
stationing figures, checked against figures worked out by hand on the New Year fortnight of 2026.

The fortnight (29 December 2025 to 11 January 2026): 1-3 January are New Year holidays and Sunday
4 January an adjusted working day, so the first ISO week has four working days (Mon 29, Tue 30,
Wed 31, Sun 4) and the second the usual five (5-9 January).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from yilian.dispatch import selectors, services
from yilian.dispatch.models import Assignment, DayKind, OperationRole, Programme
from yilian.dispatch.services import OperationEntry
from yilian.dispatch.tests import factories
from yilian.dispatch.tests.factories import at
from yilian.registry.models import Institution, Practitioner, User

pytestmark = pytest.mark.django_db

Persona = Callable[[str], User]
Clock = Callable[[dt.date], dt.datetime]

P_START = dt.date(2026, 9, 1)
P_END = dt.date(2027, 2, 28)


# ----------------------------------------------------------------------------------------
# Visibility


@dataclass
class Programmes:
    quzhou: Programme  # zju2 -> qzph, consortium zju2-quzhou (its office: the demo ``office``)
    kaihua: Programme  # zju2 -> khph, the same consortium
    bijie: Programme  # zjpph -> bjfph, consortium bijie-nrmc (created by the system administrator)
    expert: Practitioner  # stationed in ``quzhou`` only

    def codes(self) -> set[str]:
        return {self.quzhou.code, self.kaihua.code, self.bijie.code}


@pytest.fixture
def programmes(persona: Persona) -> Programmes:
    quzhou = factories.programme_create(code="t-sel-quzhou", starts_on=P_START, ends_on=P_END)
    kaihua = factories.programme_create(code="t-sel-kaihua", starts_on=P_START, ends_on=P_END, host_code="khph")
    bijie = factories.programme_create(
        actor=persona("admin"),
        code="t-sel-bijie",
        consortium_code="bijie-nrmc",
        sending_code="zjpph",
        host_code="bjfph",
        starts_on=P_START,
    )
    expert = factories.expert_create(name_zh="吕明轩")
    factories.assignment_create(quzhou, expert)
    return Programmes(quzhou, kaihua, bijie, expert)


def visible(user: User, programmes: Programmes) -> set[str]:
    """Which of the test's three programmes the user sees (the demo has programmes of its own)."""
    codes = selectors.programme_queryset_visible_to(user).values_list("code", flat=True)
    return set(codes) & programmes.codes()


def test_system_administrator_sees_every_programme(persona: Persona, programmes: Programmes) -> None:
    assert visible(persona("admin"), programmes) == programmes.codes()


def test_consortium_office_sees_the_programmes_of_its_consortium(persona: Persona, programmes: Programmes) -> None:
    assert visible(persona("office"), programmes) == {"t-sel-quzhou", "t-sel-kaihua"}
    assert visible(factories.office_of("bijie-nrmc"), programmes) == {"t-sel-bijie"}
    assert visible(factories.office_of("quzhou-neuro"), programmes) == set()


def test_hospital_admin_sees_the_programmes_their_hospital_sends_or_hosts(
    persona: Persona, programmes: Programmes
) -> None:
    assert visible(persona("hospadmin"), programmes) == {"t-sel-quzhou"}  # hosts
    assert visible(factories.hospital_admin("zju2"), programmes) == {"t-sel-quzhou", "t-sel-kaihua"}  # sends
    assert visible(factories.hospital_admin("bjfph"), programmes) == {"t-sel-bijie"}
    assert visible(factories.hospital_admin("csph"), programmes) == set()


def test_expert_sees_only_the_programmes_they_are_assigned_to(persona: Persona, programmes: Programmes) -> None:
    own = factories.account_of(programmes.expert)
    assert set(selectors.programme_queryset_visible_to(own).values_list("code", flat=True)) == {"t-sel-quzhou"}
    assert visible(persona("expert"), programmes) == set()  # the demo's expert is not in these
    colleague = factories.account_of(factories.expert_create())  # same hospital, not assigned
    assert not selectors.programme_queryset_visible_to(colleague).exists()


def test_health_commission_sees_the_programmes_hosted_in_its_region(persona: Persona, programmes: Programmes) -> None:
    assert visible(persona("commission"), programmes) == {"t-sel-quzhou", "t-sel-kaihua"}  # Quzhou city


@pytest.mark.parametrize("who", ["doctor", "coordinator", "quality", "bijie"])
def test_roles_without_stationing_see_no_programme(who: str, persona: Persona, programmes: Programmes) -> None:
    assert not selectors.programme_queryset_visible_to(persona(who)).exists()
    assert not selectors.assignment_queryset_visible_to(persona(who)).exists()


def test_assignments_are_visible_with_their_programme(persona: Persona, programmes: Programmes) -> None:
    (assignment,) = programmes.quzhou.assignments.all()
    assert selectors.assignment_queryset_visible_to(persona("hospadmin")).filter(pk=assignment.pk).exists()
    assert (
        not selectors.assignment_queryset_visible_to(factories.office_of("bijie-nrmc"))
        .filter(pk=assignment.pk)
        .exists()
    )


def test_access_programme_is_404_when_missing_and_403_when_out_of_scope(
    persona: Persona, programmes: Programmes
) -> None:
    office = persona("office")
    assert selectors.access_programme(office, "t-sel-quzhou").pk == programmes.quzhou.pk
    with pytest.raises(Http404):
        selectors.access_programme(office, "t-sel-nowhere")
    with pytest.raises(PermissionDenied):
        selectors.access_programme(office, "t-sel-bijie")
    with pytest.raises(PermissionDenied):
        selectors.access_programme(factories.account_of(programmes.expert), "t-sel-kaihua")
    # Without the permission to see stationing at all, the answer does not reveal what exists.
    for code in ("t-sel-quzhou", "t-sel-nowhere"):
        with pytest.raises(PermissionDenied):
            selectors.access_programme(persona("doctor"), code)


def test_access_assignment_is_404_when_missing_and_403_when_out_of_scope(
    persona: Persona, programmes: Programmes
) -> None:
    (assignment,) = programmes.quzhou.assignments.all()
    assert selectors.access_assignment(persona("hospadmin"), str(assignment.public_id)).pk == assignment.pk
    for missing in ("not-a-uuid", "6f1c0e9a-3b1d-4c55-9a43-0b7e3f1d2c11"):
        with pytest.raises(Http404):
            selectors.access_assignment(persona("hospadmin"), missing)
    with pytest.raises(PermissionDenied):
        selectors.access_assignment(factories.hospital_admin("bjfph"), str(assignment.public_id))


def test_who_manages_confirms_and_owns(persona: Persona, programmes: Programmes) -> None:
    (assignment,) = programmes.quzhou.assignments.all()
    own = factories.account_of(programmes.expert)
    assert selectors.can_manage(persona("office"), programmes.quzhou)
    assert selectors.can_manage(persona("admin"), programmes.bijie)
    assert not selectors.can_manage(persona("office"), programmes.bijie)
    assert not selectors.can_manage(persona("hospadmin"), programmes.quzhou)
    assert selectors.can_confirm(persona("hospadmin"), programmes.quzhou)
    assert not selectors.can_confirm(persona("hospadmin"), programmes.kaihua)
    assert not selectors.can_confirm(factories.hospital_admin("zju2"), programmes.quzhou)  # the sender does not
    assert not selectors.can_confirm(persona("office"), programmes.quzhou)
    assert selectors.is_own(own, assignment)
    assert not selectors.is_own(persona("expert"), assignment)


def test_programme_list_counts_the_people_still_stationed(persona: Persona, programmes: Programmes) -> None:
    office = persona("office")
    second = factories.assignment_create(programmes.quzhou, factories.expert_create())
    services.assignment_withdraw(actor=office, assignment=second, on=dt.date(2026, 10, 1), reason="召回")
    factories.assignment_create(programmes.quzhou, factories.expert_create())
    listed = {p.code: p for p in selectors.programme_list_visible_to(office, search="t-sel-")}
    assert set(listed) == {"t-sel-quzhou", "t-sel-kaihua"}
    assert (listed["t-sel-quzhou"].people, listed["t-sel-kaihua"].people) == (2, 0)  # type: ignore[attr-defined]
    assert [p.code for p in selectors.programme_list_visible_to(office, search="t-sel-", status="suspended")] == []


# ----------------------------------------------------------------------------------------
# Committed, planned and delivered days: the New Year fortnight

F_START = dt.date(2025, 12, 29)
F_END = dt.date(2026, 1, 11)


def d(month: int, day: int) -> dt.date:
    return dt.date(2025 if month == 12 else 2026, month, day)


@dataclass
class Fortnight:
    """Expert A: 3 days a week at Quzhou People's Hospital, on leave on 31 December, and 1 day a
    week at Kaihua County People's Hospital; expert B: 2 days a week at Quzhou, Fridays at home."""

    a_quzhou: Assignment
    b_quzhou: Assignment
    a_kaihua: Assignment
    viewer: User  # expert A's account: sees exactly the two programmes


@pytest.fixture
def fortnight(clock: Clock, persona: Persona) -> Fortnight:
    clock(dt.date(2026, 1, 12))
    office = persona("office")
    quzhou = factories.programme_create(starts_on=dt.date(2025, 12, 1), ends_on=dt.date(2026, 6, 30))
    kaihua = factories.programme_create(starts_on=dt.date(2025, 12, 1), ends_on=dt.date(2026, 6, 30), host_code="khph")
    a, b = factories.expert_create(name_zh="吕明轩"), factories.expert_create(name_zh="钱思远")
    a_quzhou = factories.assignment_create(quzhou, a, days_per_week=3)
    b_quzhou = factories.assignment_create(quzhou, b, days_per_week=2, blocked_weekdays="5")
    a_kaihua = factories.assignment_create(kaihua, a, days_per_week=1)
    services.leave_add(actor=office, practitioner=a, starts_on=d(12, 31), ends_on=d(12, 31), reason="年终总结会")
    return Fortnight(a_quzhou, b_quzhou, a_kaihua, factories.account_of(a))


def record_fortnight(f: Fortnight, office: User) -> None:
    """The plan and what happened.

    A at Quzhou: planned 29, 30 Dec, 5, 6, 8 Jan; checked in 29 Dec and 5 Jan, confirmed 30 Dec and
    7 Jan (unplanned), absent 6 Jan. B at Quzhou: planned Sun 4 and 5 Jan; confirmed 4 Jan, checked
    in 8 Jan (unplanned). A at Kaihua: confirmed 9 Jan.
    """
    quzhou_admin, kaihua_admin = factories.hospital_admin("qzph"), factories.hospital_admin("khph")
    for assignment, days in (
        (f.a_quzhou, [d(12, 29), d(12, 30), d(1, 5), d(1, 6), d(1, 8)]),
        (f.b_quzhou, [d(1, 4), d(1, 5)]),
    ):
        for date in days:
            services.roster_fix_day(actor=office, assignment=assignment, date=date, kind=DayKind.ON_SITE)
    for assignment, date in ((f.a_quzhou, d(12, 29)), (f.a_quzhou, d(1, 5)), (f.b_quzhou, d(1, 8))):
        services.attendance_check_in(
            actor=factories.account_of(assignment.practitioner), assignment=assignment, now=at(date, 8, 10)
        )
    for date in (d(12, 30), d(1, 7)):
        services.attendance_confirm(actor=quzhou_admin, assignment=f.a_quzhou, date=date)
    services.attendance_confirm(actor=quzhou_admin, assignment=f.b_quzhou, date=d(1, 4))
    services.attendance_record_absence(actor=quzhou_admin, assignment=f.a_quzhou, date=d(1, 6), reason="发热")
    services.attendance_confirm(actor=kaihua_admin, assignment=f.a_kaihua, date=d(1, 9))


def test_committed_days_spread_the_commitment_over_the_available_days(fortnight: Fortnight) -> None:
    """A, 3 days a week: week 1 has Mon 29, Tue 30 and Sun 4 available (31 Dec is leave), so all
    three carry a whole day; week 2 has five days for three, 0.6 each. B, 2 days a week without
    Fridays: week 1 has four days (0.5 each), week 2 four as well (Fri 9 is home duty)."""
    horizon = selectors.calendar_horizon(F_START, F_END)
    a = selectors.committed_by_day(fortnight.a_quzhou, F_START, F_END, horizon, {d(12, 31)})
    assert a == {
        d(12, 29): 1.0,
        d(12, 30): 1.0,
        d(1, 4): 1.0,
        **dict.fromkeys([d(1, 5), d(1, 6), d(1, 7), d(1, 8), d(1, 9)], 0.6),
    }
    b = selectors.committed_by_day(fortnight.b_quzhou, F_START, F_END, horizon, set())
    assert b == dict.fromkeys([d(12, 29), d(12, 30), d(12, 31), d(1, 4), d(1, 5), d(1, 6), d(1, 7), d(1, 8)], 0.5)
    assert sum(a.values()) == pytest.approx(6.0) and sum(b.values()) == pytest.approx(4.0)


def test_delivery_by_month_counts_committed_planned_delivered_absent_and_unplanned_days(
    persona: Persona, fortnight: Fortnight
) -> None:
    record_fortnight(fortnight, persona("office"))
    figures = selectors.delivery_by_month([fortnight.a_quzhou, fortnight.b_quzhou], F_START, F_END)

    def row(assignment: Assignment, month: str) -> tuple[float, int, int, int, int]:
        m = figures[assignment.pk][month]
        return (round(m.committed, 6), m.planned, m.delivered, m.absent, m.unplanned)

    assert row(fortnight.a_quzhou, "2025-12") == (2.0, 2, 2, 0, 0)
    assert row(fortnight.a_quzhou, "2026-01") == (4.0, 3, 2, 1, 1)
    assert row(fortnight.b_quzhou, "2025-12") == (1.5, 0, 0, 0, 0)
    assert row(fortnight.b_quzhou, "2026-01") == (2.5, 2, 2, 0, 1)


def test_attendance_report_adds_up_its_lines(persona: Persona, fortnight: Fortnight) -> None:
    record_fortnight(fortnight, persona("office"))
    report = selectors.attendance_report(fortnight.a_quzhou.programme, F_START, F_END)
    assert report.months == ["2025-12", "2026-01"]
    assert {line.assignment.pk for line in report.lines} == {fortnight.a_quzhou.pk, fortnight.b_quzhou.pk}
    total = report.total
    assert (round(total.committed, 6), total.planned, total.delivered, total.absent, total.unplanned) == (
        10.0,
        7,
        6,
        1,
        2,
    )
    assert total.committed_days == 10 and total.share == pytest.approx(0.6)
    assert report.by_month["2025-12"].delivered == 2 and report.by_month["2026-01"].delivered == 4


def test_committed_days_of_a_period_starting_mid_week_count_leave_earlier_that_week(
    persona: Persona, fortnight: Fortnight
) -> None:
    """B (2 days a week, Fridays at home) on leave on Monday 5 January has Tue 6, Wed 7 and Thu 8
    for two days: 2/3 each, also when the period asked about starts on Wednesday 7."""
    services.leave_add(
        actor=persona("office"), practitioner=fortnight.b_quzhou.practitioner, starts_on=d(1, 5), ends_on=d(1, 5)
    )
    figures = selectors.delivery_by_month([fortnight.b_quzhou], d(1, 7), F_END)
    assert figures[fortnight.b_quzhou.pk]["2026-01"].committed == pytest.approx(4 / 3)
    whole = selectors.delivery_by_month([fortnight.b_quzhou], F_START, F_END)
    assert whole[fortnight.b_quzhou.pk]["2026-01"].committed == pytest.approx(0.5 + 2)


def test_stationing_figures_per_host(persona: Persona, fortnight: Fortnight) -> None:
    """Registrations are the outpatients the stationed experts saw; level-3/4 operations count
    whatever the expert's role. A day after the period (12 January) is left out."""
    record_fortnight(fortnight, persona("office"))
    a_own = fortnight.viewer
    b_own = factories.account_of(fortnight.b_quzhou.practitioner)
    surgeon = factories.practitioner_create(institution_code="qzph", name_zh="周立新")
    kaihua_surgeon = factories.practitioner_create(institution_code="khph", name_zh="方国强")
    logs: list[tuple[User, Assignment, dt.date, int, list[OperationEntry]]] = [
        (
            a_own,
            fortnight.a_quzhou,
            d(12, 29),
            18,
            [
                OperationEntry("神经内镜联合显微镜下脑室肿瘤切除术", 4, OperationRole.OPERATOR),
                OperationEntry("颅内血肿清除术", 3, OperationRole.ASSISTANT, local_surgeon=surgeon),
            ],
        ),
        (a_own, fortnight.a_quzhou, d(1, 5), 22, [OperationEntry("颅骨修补术", 2, OperationRole.OPERATOR)]),
        (
            a_own,
            fortnight.a_quzhou,
            d(1, 7),
            0,
            [OperationEntry("脑室腹腔分流术", 3, OperationRole.SUPERVISOR, local_surgeon_name="刘晓东")],
        ),
        (b_own, fortnight.b_quzhou, d(1, 8), 10, []),
        (
            a_own,
            fortnight.a_kaihua,
            d(1, 9),
            7,
            [OperationEntry("慢性硬膜下血肿钻孔引流术", 4, OperationRole.SUPERVISOR, local_surgeon=kaihua_surgeon)],
        ),
    ]
    # Today (12 January) A is at Quzhou again: outside the period asked about.
    services.attendance_check_in(actor=a_own, assignment=fortnight.a_quzhou, now=at(d(1, 12), 8))
    logs.append((a_own, fortnight.a_quzhou, d(1, 12), 99, [OperationEntry("开颅手术", 4, OperationRole.OPERATOR)]))
    for account, assignment, date, seen, operations in logs:
        services.work_log_save(
            actor=account, assignment=assignment, date=date, counts={"patients_seen": seen}, operations=operations
        )

    figures = selectors.stationing_figures(fortnight.viewer, start=F_START, end=F_END)
    assert [
        (
            f.institution.code,
            f.doctors_stationed,
            f.days_committed,
            f.days_delivered,
            f.registrations,
            f.operations,
            f.operations_level_34,
        )
        for f in figures
    ] == [
        ("khph", 1, 2, 1, 7, 1, 1),
        ("qzph", 2, 10, 6, 50, 4, 3),
    ]
    assert figures[1].delivered_share == pytest.approx(0.6)
    # Asked for one host only, the figures are that host's, the same as before.
    qzph = Institution.objects.get(code="qzph")
    only = selectors.stationing_figures(fortnight.viewer, start=F_START, end=F_END, institution_ids=[qzph.pk])
    assert [(f.institution.code, f.doctors_stationed, f.days_delivered, f.registrations) for f in only] == [
        ("qzph", 2, 6, 50)
    ]


def test_stationing_figures_need_the_permission_to_see_stationing(persona: Persona) -> None:
    with pytest.raises(PermissionDenied):
        selectors.stationing_figures(persona("doctor"), start=F_START, end=F_END)


def test_roster_grid_marks_holidays_leave_home_duty_and_the_plan(persona: Persona, fortnight: Fortnight) -> None:
    record_fortnight(fortnight, persona("office"))
    grid = selectors.roster_grid([fortnight.a_quzhou, fortnight.b_quzhou], F_START, F_START + dt.timedelta(days=6))
    a_row, b_row = grid.rows
    a_cells = {c.date: c for c in a_row.cells}
    b_cells = {c.date: c for c in b_row.cells}
    assert (a_cells[d(1, 1)].is_workday, a_cells[d(1, 1)].holiday) == (False, "New Year's Day")
    assert a_cells[d(1, 4)].is_workday is True  # the adjusted working Sunday
    assert a_cells[d(12, 31)].on_leave and not b_cells[d(12, 31)].on_leave
    assert b_cells[d(1, 2)].blocked and not a_cells[d(1, 2)].blocked  # Friday: B's home duty
    assert (a_cells[d(12, 29)].kind, a_cells[d(12, 29)].is_fixed, a_cells[d(12, 29)].attendance) == (
        DayKind.ON_SITE,
        True,
        "checked_in",
    )
    assert (a_row.on_site, b_row.on_site) == (2, 1)
    department = fortnight.a_quzhou.host_department_id
    assert grid.coverage[(department, d(12, 29))] == 1 and grid.coverage[(department, d(1, 4))] == 1
    assert grid.unknown_years == ()


def test_expert_week_shows_the_experts_own_assignments(fortnight: Fortnight) -> None:
    week = selectors.expert_week(fortnight.viewer, d(12, 31))
    assert (week.start, week.end) == (d(12, 29), d(1, 4))
    assert {row.assignment.pk for row in week.rows} == {fortnight.a_quzhou.pk, fortnight.a_kaihua.pk}
