"""Where programmes, consortia and people meet: demand belongs to one programme, the working calendar
to the system administrators, a calendar address to its expert; a person's days in one programme
bound the optimiser in another (withdrawals in the future included); cancelling a programme ends
its plans and its counting; removals through the API; codes that pages use are not programme codes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from yilian.core.errors import Conflict
from yilian.dispatch import selectors, services, solver
from yilian.dispatch.models import (
    Attendance,
    CalendarDay,
    DayKind,
    HostDemand,
    Leave,
    Objective,
    ProgrammeStatus,
    RosterDay,
    WorkLog,
)
from yilian.dispatch.tests import factories
from yilian.registry import services as registry_services
from yilian.registry.models import Discipline, User

pytestmark = pytest.mark.django_db

API = "/api/v1/stationing"
START = dt.date(2026, 9, 7)  # a Monday
END = dt.date(2027, 6, 30)
WEEK = dt.date(2026, 12, 7)  # a Monday with five working days


def api(user: User, language: str = "en") -> Client:
    _, key = registry_services.api_token_create(actor=None, user=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE=language)


def on_site(assignment: Any) -> list[dt.date]:
    return sorted(RosterDay.objects.filter(assignment=assignment, kind=DayKind.ON_SITE).values_list("date", flat=True))


# ----------------------------------------------------------------------------------------
# Demand is the programme's own


def test_one_consortiums_demand_at_a_shared_host_leaves_anothers_alone() -> None:
    """Quzhou People's Hospital belongs to several consortia: each programme states its own need."""
    zju2 = factories.programme_create(starts_on=START, ends_on=END)
    stomatology_office = factories.office_of("zjus-quzhou")
    zjus = factories.programme_create(
        starts_on=START, ends_on=END, actor=stomatology_office, consortium_code="zjus-quzhou", sending_code="zjus"
    )
    neurosurgery = factories.department("qzph", Discipline.NEUROSURGERY)
    services.host_demand_set(
        actor=factories.user("office"), programme=zju2, department=neurosurgery, days_per_week=3, need_weekdays="4"
    )
    services.host_demand_set(actor=stomatology_office, programme=zjus, department=neurosurgery, days_per_week=0)

    mine = HostDemand.objects.get(programme=zju2, department=neurosurgery)
    assert (mine.days_per_week, mine.need_weekdays) == (3, "4")
    with pytest.raises(PermissionDenied):
        services.host_demand_set(actor=stomatology_office, programme=zju2, department=neurosurgery, days_per_week=0)


def test_the_optimiser_weighs_only_its_own_programmes_demand() -> None:
    zju2 = factories.programme_create(starts_on=START, ends_on=END)
    other = factories.programme_create(starts_on=START, ends_on=END)
    cardiology = factories.department("qzph", Discipline.CARDIOLOGY)
    services.host_demand_set(actor=factories.user("office"), programme=other, department=cardiology, days_per_week=4)
    expert = factories.expert_create()
    factories.assignment_create(zju2, expert, days_per_week=2)

    run = services.roster_optimise(actor=factories.user("office"), programme=zju2, start=WEEK, weeks=1, time_limit=5)

    assert run.demand_missing == 0 and run.shortfalls == []


# ----------------------------------------------------------------------------------------
# The working calendar is shared


def test_only_a_system_administrator_changes_the_shared_working_calendar() -> None:
    with pytest.raises(PermissionDenied):
        services.calendar_day_set(actor=factories.user("office"), date=dt.date(2026, 12, 10), is_workday=False)
    assert not CalendarDay.objects.filter(date=dt.date(2026, 12, 10)).exists()
    services.calendar_day_set(actor=factories.user("admin"), date=dt.date(2027, 1, 1), is_workday=False, name_zh="元旦")
    assert CalendarDay.objects.get(date=dt.date(2027, 1, 1)).name_zh == "元旦"


def test_the_calendar_api_lists_a_year_and_takes_days_from_administrators_only() -> None:
    listed = api(factories.user("expert")).get(f"{API}/calendar", {"year": 2026})
    assert listed.status_code == 200
    days = {d["date"]: d for d in listed.json()}
    assert len(days) == 365
    assert days["2026-10-01"]["is_workday"] is False and days["2026-10-01"]["source"] == "statutory"

    body = {"is_workday": False, "name_zh": "元旦", "name_en": "New Year's Day"}
    office = api(factories.user("office")).put(f"{API}/calendar/2027-01-01", body, content_type="application/json")
    assert office.status_code == 403
    admin = api(factories.user("admin"))
    entered = admin.put(f"{API}/calendar/2027-01-01", body, content_type="application/json")
    assert entered.status_code == 200 and entered.json()["source"] == "override"
    year = {d["date"]: d for d in admin.get(f"{API}/calendar", {"year": 2027}).json()}
    assert year["2027-01-01"]["is_workday"] is False and year["2027-01-04"]["source"] == "weekdays"
    assert admin.delete(f"{API}/calendar/2027-01-01").status_code == 204
    assert not CalendarDay.objects.filter(date=dt.date(2027, 1, 1)).exists()
    assert admin.get(f"{API}/calendar", {"year": 1800}).status_code == 400


# ----------------------------------------------------------------------------------------
# A person's days elsewhere


def test_a_future_withdrawal_elsewhere_still_keeps_the_expert_away_on_those_days() -> None:
    """陈 is fixed on site at Kaihua in the week planned for Quzhou; that assignment ends later."""
    office = factories.user("office")
    expert = factories.expert_create()
    quzhou = factories.programme_create(starts_on=START, ends_on=END)
    kaihua = factories.programme_create(starts_on=START, ends_on=END, host_code="khph")
    in_quzhou = factories.assignment_create(quzhou, expert, days_per_week=3)
    in_kaihua = factories.assignment_create(kaihua, expert, days_per_week=3)
    kaihua_days = [WEEK + dt.timedelta(days=i) for i in (0, 2, 3)]
    for day in kaihua_days:
        services.roster_fix_day(actor=office, assignment=in_kaihua, date=day, kind="on_site")
    services.assignment_withdraw(actor=office, assignment=in_kaihua, on=dt.date(2026, 12, 31), reason="调回本院")

    services.roster_optimise(actor=office, programme=quzhou, start=WEEK, weeks=1, time_limit=5)

    assert set(on_site(in_quzhou)).isdisjoint(kaihua_days)
    assert len(on_site(in_quzhou)) == 2  # the two working days left in that week


def test_an_expert_withdrawn_from_a_later_day_keeps_their_week_until_then(clock: Callable[[dt.date], Any]) -> None:
    clock(WEEK)
    expert = factories.expert_create()
    programme = factories.programme_create(starts_on=START, ends_on=END)
    assignment = factories.assignment_create(programme, expert, days_per_week=3)
    services.assignment_withdraw(
        actor=factories.user("office"), assignment=assignment, on=WEEK + dt.timedelta(days=10), reason="调回本院"
    )
    account = factories.account_of(expert)
    assert [a.pk for a in selectors.own_assignments(account, on=WEEK)] == [assignment.pk]
    assert selectors.own_assignments(account, on=WEEK + dt.timedelta(days=11)) == []


# ----------------------------------------------------------------------------------------
# Cancelling


def test_a_cancelled_programme_plans_nothing_more_and_counts_for_nothing(clock: Callable[[dt.date], Any]) -> None:
    clock(WEEK)
    office = factories.user("office")
    programme = factories.programme_create(starts_on=START, ends_on=END, host_code="qz2ph")
    expert = factories.expert_create(discipline=Discipline.ORTHOPEDICS)
    assignment = factories.assignment_create(programme, expert, discipline=Discipline.ORTHOPEDICS, days_per_week=2)
    past, future = WEEK - dt.timedelta(days=7), WEEK + dt.timedelta(days=7)
    RosterDay.objects.bulk_create(
        [RosterDay(assignment=assignment, date=d, kind=DayKind.ON_SITE) for d in (past, future)]
    )
    figures = {f.institution.code: f for f in selectors.stationing_figures(office, start=START, end=END)}
    assert figures["qz2ph"].doctors_stationed == 1

    services.programme_update(actor=office, programme=programme, status=ProgrammeStatus.CANCELLED)

    assert on_site(assignment) == [past]
    figures = {f.institution.code: f for f in selectors.stationing_figures(office, start=START, end=END)}
    assert "qz2ph" not in figures
    assert selectors.own_assignments(factories.account_of(assignment.practitioner)) == []


# ----------------------------------------------------------------------------------------
# Changes that leave stale days


def test_a_new_home_duty_weekday_takes_the_planned_days_on_it_away(clock: Callable[[dt.date], Any]) -> None:
    clock(WEEK - dt.timedelta(days=3))
    office = factories.user("office")
    programme = factories.programme_create(starts_on=START, ends_on=END)
    assignment = factories.assignment_create(programme, factories.expert_create(), days_per_week=2)
    tuesday, thursday = WEEK + dt.timedelta(days=1), WEEK + dt.timedelta(days=3)
    RosterDay.objects.bulk_create(
        [RosterDay(assignment=assignment, date=d, kind=DayKind.ON_SITE) for d in (tuesday, thursday)]
    )
    services.assignment_update(actor=office, assignment=assignment, blocked_weekdays="2", blocked_note="本院门诊")
    assert on_site(assignment) == [thursday]


def test_shortening_an_assignment_drops_the_days_beyond_its_new_end() -> None:
    office = factories.user("office")
    programme = factories.programme_create(starts_on=START, ends_on=END)
    assignment = factories.assignment_create(programme, factories.expert_create(), days_per_week=2)
    RosterDay.objects.bulk_create(
        [RosterDay(assignment=assignment, date=d, kind=DayKind.ON_SITE) for d in (WEEK, WEEK + dt.timedelta(days=14))]
    )
    services.assignment_update(actor=office, assignment=assignment, ends_on=WEEK + dt.timedelta(days=6))
    assert on_site(assignment) == [WEEK]


def test_giving_a_programme_an_end_needs_its_open_ended_assignments_ended_first() -> None:
    office = factories.user("office")
    programme = factories.programme_create(starts_on=START)
    factories.assignment_create(programme, factories.expert_create(), days_per_week=2)
    with pytest.raises(ValidationError):
        services.programme_update(actor=office, programme=programme, ends_on=END)


# ----------------------------------------------------------------------------------------
# Codes and removals


@pytest.mark.parametrize("code", ["new", "my-week", "calendar"])
def test_a_code_a_page_uses_is_not_a_programme_code(code: str) -> None:
    with pytest.raises(ValidationError) as refused:
        factories.programme_create(starts_on=START, code=code)
    assert "code" in refused.value.message_dict


def test_objectives_and_leave_are_removed_through_the_api_by_the_office() -> None:
    office = factories.user("office")
    programme = factories.programme_create(starts_on=START, ends_on=END)
    assignment = factories.assignment_create(programme, factories.expert_create(), days_per_week=2)
    objective = services.objective_add(actor=office, programme=programme, kind="technique", name_zh="血管内取栓")
    leave = services.leave_add(
        actor=office, practitioner=assignment.practitioner, starts_on=WEEK, ends_on=WEEK + dt.timedelta(days=2)
    )
    expert = api(factories.account_of(assignment.practitioner))

    objective_url = f"{API}/programmes/{programme.code}/objectives/{objective.public_id}"
    leave_url = f"{API}/assignments/{assignment.public_id}/leave/{leave.public_id}"
    assert expert.delete(objective_url).status_code == 403
    assert expert.delete(leave_url).status_code == 403
    assert api(office).delete(objective_url).status_code == 204
    assert api(office).delete(leave_url).status_code == 204
    assert api(office).delete(leave_url).status_code == 404
    assert not Objective.objects.filter(pk=objective.pk).exists()
    assert not Leave.objects.filter(pk=leave.pk).exists()


def test_the_host_clears_a_mistaken_day_through_the_api_unless_work_was_logged(
    clock: Callable[[dt.date], Any],
) -> None:
    clock(WEEK + dt.timedelta(days=4))
    programme = factories.programme_create(starts_on=START, ends_on=END)
    assignment = factories.assignment_create(programme, factories.expert_create(), days_per_week=2)
    host = factories.hospital_admin()
    services.attendance_confirm(actor=host, assignment=assignment, date=WEEK)
    services.attendance_confirm(actor=host, assignment=assignment, date=WEEK + dt.timedelta(days=1))
    services.work_log_save(
        actor=factories.account_of(assignment.practitioner),
        assignment=assignment,
        date=WEEK + dt.timedelta(days=1),
        counts={"ward_rounds": 1},
        operations=[],
    )
    client = api(host)

    assert client.delete(f"{API}/assignments/{assignment.public_id}/attendance/{WEEK}").status_code == 204
    logged = client.delete(f"{API}/assignments/{assignment.public_id}/attendance/{WEEK + dt.timedelta(days=1)}")
    assert logged.status_code == 409
    assert client.delete(f"{API}/assignments/{assignment.public_id}/attendance/{WEEK}").status_code == 404
    assert list(Attendance.objects.filter(assignment=assignment).values_list("date", flat=True)) == [
        WEEK + dt.timedelta(days=1)
    ]
    assert WorkLog.objects.filter(assignment=assignment).count() == 1


# ----------------------------------------------------------------------------------------
# The calendar address


def test_the_expert_makes_a_new_calendar_address_and_the_old_one_stops_working(
    login: Callable[..., Client],
) -> None:
    expert = login("expert", "en")
    page = expert.get("/stationing/my-week/").content.decode()
    start = page.index("/stationing/feeds/")
    old = page[start : page.index('"', start)].replace("&amp;", "&")
    assert Client().get(old).status_code == 200

    assert expert.post("/stationing/my-week/feed/reset/").status_code == 302

    assert Client().get(old).status_code == 404
    page = expert.get("/stationing/my-week/").content.decode()
    start = page.index("/stationing/feeds/")
    new = page[start : page.index('"', start)].replace("&amp;", "&")
    assert new != old and Client().get(new).status_code == 200
    assert login("office", "en").post("/stationing/my-week/feed/reset/").status_code == 403


def test_a_day_fixed_elsewhere_while_the_optimiser_runs_stops_its_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same person fixed on site at Kaihua while Quzhou's week is being solved: the solver did
    not see that day, so writing its plan could put him at two hospitals; it is refused instead."""
    office = factories.user("office")
    expert = factories.expert_create()
    quzhou = factories.programme_create(starts_on=START, ends_on=END)
    kaihua = factories.programme_create(starts_on=START, ends_on=END, host_code="khph")
    in_quzhou = factories.assignment_create(quzhou, expert, days_per_week=5)
    in_kaihua = factories.assignment_create(kaihua, expert, days_per_week=1)
    real_solve = solver.solve

    def solve_while_someone_fixes(problem: Any) -> Any:
        solution = real_solve(problem)
        services.roster_fix_day(actor=office, assignment=in_kaihua, date=WEEK + dt.timedelta(days=4), kind="on_site")
        return solution

    monkeypatch.setattr(solver, "solve", solve_while_someone_fixes)
    with pytest.raises(Conflict):
        services.roster_optimise(actor=office, programme=quzhou, start=WEEK, weeks=1, time_limit=5)
    assert on_site(in_quzhou) == []
    assert on_site(in_kaihua) == [WEEK + dt.timedelta(days=4)]
