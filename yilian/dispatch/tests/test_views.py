"""The stationing pages through HTTP, as a browser without JavaScript would use them: who sees and
who may do what (the office plans, the host's administrators confirm, the expert checks in and
logs, the commission only looks), the forms and their refusals (400 with the message, 409 for a
collision), the roster with its day panel and the optimiser, the reports and their Excel files,
the working calendar and the experts' calendar feeds; and query counts that do not grow with rows.

Data is built through the services (``factories``): the demo ``office`` plans a fresh programme
zju2 -> qzph in ``zju2-quzhou`` with fresh experts, so the demo's own stationing data never meets
these tests. "Today" is pinned to a Wednesday in a week without holidays; pages are asked for in
English so that messages read as the code writes them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from icalendar import Calendar
from openpyxl import load_workbook

from yilian.core.models import AuditAction, AuditEvent
from yilian.dispatch import services
from yilian.dispatch.models import (
    Assignment,
    Attendance,
    AttendanceStatus,
    CalendarDay,
    DayKind,
    HostDemand,
    HostRole,
    Leave,
    LoggedOperation,
    Objective,
    Programme,
    ProgrammeStatus,
    RosterDay,
    RosterRun,
    WorkLog,
)
from yilian.dispatch.tests import factories
from yilian.dispatch.views import ics_key
from yilian.registry.models import Discipline, Practitioner, User

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 25)  # a Wednesday; no public holiday in its week or the next four
MONDAY = dt.date(2026, 11, 23)
NEXT_MONDAY = dt.date(2026, 11, 30)
P_START = dt.date(2026, 9, 1)
P_END = dt.date(2027, 8, 31)

Login = Callable[..., Client]


@dataclass
class World:
    programme: Programme
    chen: Practitioner  # neurosurgery, 3 days a week, home clinic on Tuesdays
    chen_user: User
    chen_post: Assignment
    huang: Practitioner  # orthopaedics, 2 days a week
    huang_post: Assignment


@pytest.fixture
def world(clock: Callable[[dt.date], dt.datetime]) -> World:
    clock(TODAY)
    programme = factories.programme_create(starts_on=P_START, ends_on=P_END, title_zh="浙大二院派驻衢州（测试批）")
    chen = factories.expert_create(name_zh="陈试远")
    chen_post = factories.assignment_create(
        programme,
        chen,
        role=HostRole.BUSINESS_DIRECTOR,
        days_per_week=3,
        blocked_weekdays="2",
        blocked_note="本院周二专家门诊",
    )
    huang = factories.expert_create(name_zh="黄试维", discipline=Discipline.ORTHOPEDICS)
    huang_post = factories.assignment_create(programme, huang, discipline=Discipline.ORTHOPEDICS, days_per_week=2)
    return World(programme, chen, factories.account_of(chen), chen_post, huang, huang_post)


def url(w: World, rest: str = "") -> str:
    return f"/stationing/{w.programme.code}/{rest}"


def a_url(a: Assignment, rest: str = "") -> str:
    return f"/stationing/assignments/{a.public_id}/{rest}"


def text(response: Any) -> str:
    return str(response.content.decode())


def plan(a: Assignment, *days: dt.date, kind: str = DayKind.ON_SITE) -> None:
    """Planned days as the optimiser leaves them (not fixed)."""
    RosterDay.objects.bulk_create([RosterDay(assignment=a, date=d, kind=kind) for d in days])


def expert_client(login: Login, w: World) -> Client:
    return login(w.chen_user.username, "en")


# ----------------------------------------------------------------------------------------
# Navigation and scope


def test_the_navigation_shows_stationing_to_viewers_and_my_week_to_experts(login: Login, world: World) -> None:
    office = text(login("office", "en").get("/"))
    assert 'id="nav-stationing"' in office and 'id="nav-my-week"' not in office
    expert = text(expert_client(login, world).get("/"))
    assert 'id="nav-stationing"' in expert and 'id="nav-my-week"' in expert
    doctor = text(login("doctor", "en").get("/"))
    assert 'id="nav-stationing"' not in doctor


def test_the_programme_list_shows_the_programmes_in_scope_with_their_figures(login: Login, world: World) -> None:
    page = text(login("office", "en").get("/stationing/"))
    assert world.programme.code in page and "浙大二院派驻衢州（测试批）" in page
    row = page[page.index(f'data-programme="{world.programme.code}"') :].split("</tr>")[0]
    assert "2026-09-01 – 2027-08-31" in row and ">2<" in row  # period and two people
    assert "zjpph-bjfph-2" not in page  # another consortium's programme
    assert 'id="programme-new"' in page


def test_the_programme_list_filters_by_status_and_search_and_answers_htmx_with_the_rows(
    login: Login, world: World
) -> None:
    client = login("office", "en")
    page = text(client.get("/stationing/", {"q": "测试批"}))
    assert world.programme.code in page and "zju2-khph-1" not in page
    assert world.programme.code not in text(client.get("/stationing/", {"status": "completed"}))
    partial = client.get("/stationing/", {"q": "测试批"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="programme-rows")
    assert partial.status_code == 200
    assert text(partial).startswith('<div class="card" id="programme-rows">') and "<html" not in text(partial)


def test_people_without_stationing_rights_or_outside_the_scope_are_refused(login: Login, world: World) -> None:
    doctor = login("doctor", "en")
    assert doctor.get("/stationing/").status_code == 403
    assert doctor.get(url(world)).status_code == 403
    elsewhere = factories.hospital_admin("bjfph")
    client = login(elsewhere.username, "en")
    assert client.get("/stationing/").status_code == 200
    response = client.get(url(world, "roster/"))
    assert response.status_code == 403 and "outside what you may see" in text(response)
    assert client.get(a_url(world.chen_post)).status_code == 403
    assert client.get(url(world, "attendance/")).status_code == 403
    assert login("office", "en").get("/stationing/no-such-programme/").status_code == 404


def test_the_commission_sees_the_programme_but_no_planning_and_cannot_plan(login: Login, world: World) -> None:
    client = login("commission", "en")
    page = text(client.get(url(world)))
    assert "陈试远" in page and "黄试维" in page
    assert 'id="assignment-form"' not in page and 'id="objective-form"' not in page and 'id="status-form"' not in page
    roster = text(client.get(url(world, "roster/")))
    assert 'id="optimise-form"' not in roster and "rc-link" not in roster
    assert client.post(url(world, "objectives/"), {"kind": "technique", "name_zh": "取栓"}).status_code == 403
    fix = {"assignment": world.chen_post.public_id, "date": NEXT_MONDAY, "kind": "on_site"}
    assert client.post(url(world, "roster/fix/"), fix).status_code == 403
    assert not RosterDay.objects.filter(assignment=world.chen_post).exists()
    assert client.get(a_url(world.chen_post, f"log/{TODAY}/")).status_code == 403


# ----------------------------------------------------------------------------------------
# Programmes


def test_the_office_creates_a_programme_from_the_form(login: Login, world: World) -> None:
    client = login("office", "en")
    form = text(client.get("/stationing/new/"))
    assert "Quzhou People" in form and 'name="code"' in form
    response = client.post(
        "/stationing/new/",
        {
            "code": "zju2-khph-test",
            "consortium": "zju2-quzhou",
            "sending_institution": "zju2",
            "host_institution": "khph",
            "title_zh": "浙大二院派驻开化（测试）",
            "batch": "2",
            "starts_on": "2027-01-04",
            "status": "planned",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/stationing/zju2-khph-test/"
    page = text(client.get("/stationing/zju2-khph-test/"))
    assert "浙大二院派驻开化（测试）" in page and "Batch 2" in page and "Planned" in page


def test_a_programme_the_service_refuses_shows_the_reason_with_400(login: Login, world: World) -> None:
    client = login("office", "en")
    data = {
        "code": world.programme.code,
        "consortium": "zju2-quzhou",
        "sending_institution": "zju2",
        "host_institution": "zju2",
        "title_zh": "错误",
        "batch": "1",
        "starts_on": "2027-01-04",
        "ends_on": "2026-01-04",
        "status": "active",
    }
    response = client.post("/stationing/new/", data)
    assert response.status_code == 400
    page = text(response)
    assert "The host must be another institution than the sending one." in page
    assert "The end cannot come before the start." in page
    assert "A programme with this code exists already." in page
    assert Programme.objects.filter(title_zh="错误").count() == 0


def test_only_the_office_opens_the_new_programme_form(login: Login, world: World) -> None:
    assert login("commission", "en").get("/stationing/new/").status_code == 403
    assert login("hospadmin", "en").get("/stationing/new/").status_code == 403


def test_the_programme_page_shows_people_days_work_and_demand(login: Login, world: World) -> None:
    hospadmin = factories.hospital_admin()
    past = [dt.date(2026, 11, 16), dt.date(2026, 11, 18), dt.date(2026, 11, 19)]
    plan(world.chen_post, *past)
    for d in past[:2]:
        services.attendance_confirm(actor=hospadmin, assignment=world.chen_post, date=d)
    services.attendance_record_absence(actor=hospadmin, assignment=world.chen_post, date=past[2], reason="学术会议")
    services.work_log_save(
        actor=world.chen_user,
        assignment=world.chen_post,
        date=past[0],
        counts={"outpatient_sessions": 1, "patients_seen": 23, "ward_rounds": 1},
        operations=[services.OperationEntry("幕上深部血肿清除术", 3, "assistant", local_surgeon_name="周建华")],
    )
    page = text(login("office", "en").get(url(world)))
    people = page[page.index('id="people"') :]
    chen_row = people[people.index(f'data-assignment="{world.chen_post.public_id}"') :].split("</tr>")[0]
    assert "陈试远" in chen_row and "Business director" in chen_row and "3 days/week" in chen_row
    assert "Tue" in chen_row and "本院周二专家门诊" in chen_row
    assert '<span class="fw-semibold">2</span>' in chen_row  # two days delivered
    assert 'id="stat-delivered">2<' in page and 'id="stat-absent">1<' in page
    work = page[page.index('id="work-done"') :]
    assert '<div class="stat-sm">23</div>' in work and 'id="done-operations">1<' in work
    assert "Assistant 1" in work
    demand = page[page.index('id="demand"') :]
    assert "Neurosurgery" in demand and "Thu" in demand  # the demo's need: an expert on Thursdays


def test_the_office_adds_and_removes_objectives_and_sets_demand_and_status(login: Login, world: World) -> None:
    client = login("office", "en")
    response = client.post(url(world, "objectives/"), {"kind": "technique", "name_zh": "血管内取栓", "target": "首例"})
    assert response.status_code == 302
    objective = Objective.objects.get(programme=world.programme, name_zh="血管内取栓")
    page = text(client.get(url(world)))
    assert "血管内取栓" in page and "Technique to introduce" in page
    assert client.post(url(world, f"objectives/{objective.public_id}/remove/")).status_code == 302
    assert not Objective.objects.filter(pk=objective.pk).exists()

    orthopaedics = factories.department("qzph", Discipline.ORTHOPEDICS)
    demand = {"department": orthopaedics.public_id, "days_per_week": "4", "need_weekdays": ["3", "5"]}
    assert client.post(url(world, "demand/"), demand | {"need_label_zh": "手术日"}).status_code == 302
    saved = HostDemand.objects.get(programme=world.programme, department=orthopaedics)
    assert saved.need_weekdays == "35"
    assert saved.days_per_week == 4

    response = client.post(url(world, "demand/"), demand | {"days_per_week": "99"})
    assert response.status_code == 400 and 'id="demand-box" open' in text(response)

    assert client.post(url(world, "status/"), {"status": "suspended"}).status_code == 302
    world.programme.refresh_from_db()
    assert world.programme.status == ProgrammeStatus.SUSPENDED


def test_the_office_stations_an_expert_and_refusals_say_why(login: Login, world: World) -> None:
    client = login("office", "en")
    page = text(client.get(url(world)))
    assert 'id="assignment-form"' in page
    newcomer = factories.expert_create(name_zh="潘试鸣", discipline=Discipline.CRITICAL_CARE)
    critical_care = factories.department("qzph", Discipline.CRITICAL_CARE)
    data = {
        "practitioner": newcomer.public_id,
        "host_department": critical_care.public_id,
        "role": "clinical_member",
        "starts_on": "2026-12-01",
        "commitment": "days_per_week",
        "days_per_week": "2",
        "blocked_weekdays": ["5"],
        "blocked_note": "本院周五值班",
    }
    response = client.post(url(world, "assignments/"), data)
    assert response.status_code == 302
    post = Assignment.objects.get(programme=world.programme, practitioner=newcomer)
    assert post.blocked_weekdays == "5" and post.days_per_week == 2 and post.ends_on == P_END

    too_much = client.post(url(world, "assignments/"), data | {"days_per_week": "5", "starts_on": "2027-09-01"})
    assert too_much.status_code == 400
    body = text(too_much)
    assert "The assignment must start inside the programme" in body
    assert "The home duties leave fewer free working days than the commitment." in body
    assert 'id="assignment-box" open' in body

    again = client.post(url(world, "assignments/"), data)
    assert again.status_code == 409 and "already has an assignment in this programme" in text(again)


# ----------------------------------------------------------------------------------------
# Roster


def test_the_roster_shows_plan_holidays_home_duty_leave_attendance_and_coverage(login: Login, world: World) -> None:
    plan(world.chen_post, dt.date(2026, 11, 16), dt.date(2026, 11, 19), dt.date(2026, 11, 26))
    plan(world.chen_post, dt.date(2026, 11, 27), kind=DayKind.TRAVEL)
    services.attendance_confirm(
        actor=factories.hospital_admin(), assignment=world.chen_post, date=dt.date(2026, 11, 16)
    )
    Leave.objects.create(practitioner=world.chen, starts_on=dt.date(2026, 11, 9), ends_on=dt.date(2026, 11, 10))
    HostDemand.objects.create(
        programme=world.programme, department=world.chen_post.host_department, days_per_week=3, need_weekdays="4"
    )
    page = text(login("office", "en").get(url(world, "roster/"), {"view": "month", "start": "2026-11-01"}))
    row = page[page.index(f'<tr data-assignment="{world.chen_post.public_id}"') :].split("</tr>")[0]

    def cell(day: str) -> str:
        at = row.index(f'data-date="{day}"')
        return row[row.rindex("<td", 0, at) : row.index("</td>", at)]

    assert "rc-on" in cell("2026-11-16") and "✓" in cell("2026-11-16")
    assert "rc-travel" in cell("2026-11-27") and "bi-train-front" in cell("2026-11-27")
    assert "rc-blocked" in cell("2026-11-17") and "本院周二专家门诊" in cell("2026-11-17")
    assert "rc-leave" in cell("2026-11-09")
    assert "rc-holiday" in cell("2026-11-22")  # a Sunday
    assert "rc-today" in cell("2026-11-25")
    coverage = page[page.index('<tbody class="coverage">') :].split("</tbody>")[0]
    assert "Neurosurgery" in coverage and "Orthopaedics" in coverage
    # Thursday is neurosurgery's operating day (this programme's demand): covered on the 19th and 26th,
    # short on the 12th.
    assert 'class="cov cov-short" title="2026-11-12' in coverage
    assert 'class="cov cov-some" title="2026-11-19' in coverage

    october = text(login("office", "en").get(url(world, "roster/"), {"view": "week", "start": "2026-10-01"}))
    assert "National Day" in october or "国庆节" in october  # the holiday is named on its column


def test_the_office_opens_a_day_and_fixes_it_without_javascript(login: Login, world: World) -> None:
    client = login("office", "en")
    key = f"{world.chen_post.public_id}_{NEXT_MONDAY.isoformat()}"
    page = text(client.get(url(world, "roster/"), {"view": "week", "start": NEXT_MONDAY.isoformat(), "cell": key}))
    assert 'id="fix-form"' in page and "陈试远 · 2026-11-30" in page
    response = client.post(
        url(world, f"roster/fix/?view=week&start={NEXT_MONDAY}&cell={key}"),
        {"assignment": world.chen_post.public_id, "date": NEXT_MONDAY, "kind": "on_site"},
    )
    assert response.status_code == 302 and "view=week" in response["Location"] and "cell=" not in response["Location"]
    day = RosterDay.objects.get(assignment=world.chen_post, date=NEXT_MONDAY)
    assert day.kind == DayKind.ON_SITE and day.is_fixed
    page = text(client.get(response["Location"]))
    assert "fixed on site" in page and "bi-pin-angle-fill" in page

    cleared = client.post(
        url(world, "roster/fix/"), {"assignment": world.chen_post.public_id, "date": NEXT_MONDAY, "kind": "clear"}
    )
    assert cleared.status_code == 302
    assert not RosterDay.objects.get(assignment=world.chen_post, date=NEXT_MONDAY).is_fixed


def test_the_day_panel_comes_alone_to_htmx(login: Login, world: World) -> None:
    key = f"{world.huang_post.public_id}_{NEXT_MONDAY.isoformat()}"
    response = login("office", "en").get(
        url(world, "roster/"), {"cell": key}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="fix-panel"
    )
    body = text(response)
    assert response.status_code == 200 and body.startswith('<div id="fix-panel"') and "<html" not in body
    assert "黄试维" in body and 'value="on_site"' in body


def test_fixing_a_home_duty_day_on_site_is_refused_with_the_reason(login: Login, world: World) -> None:
    tuesday = NEXT_MONDAY + dt.timedelta(days=1)
    key = f"{world.chen_post.public_id}_{tuesday.isoformat()}"
    response = login("office", "en").post(
        url(world, f"roster/fix/?cell={key}"),
        {"assignment": world.chen_post.public_id, "date": tuesday, "kind": "on_site"},
    )
    assert response.status_code == 400
    body = text(response)
    assert 'id="fix-error"' in body and "home duties on this weekday (本院周二专家门诊)" in body
    assert not RosterDay.objects.filter(assignment=world.chen_post, date=tuesday).exists()


def test_a_day_on_site_elsewhere_is_a_conflict(login: Login, world: World) -> None:
    other = factories.programme_create(starts_on=P_START, ends_on=P_END, host_code="khph")
    post = factories.assignment_create(other, world.chen, days_per_week=1)
    services.roster_fix_day(actor=factories.user("office"), assignment=post, date=NEXT_MONDAY, kind="on_site")
    response = login("office", "en").post(
        url(world, "roster/fix/"), {"assignment": world.chen_post.public_id, "date": NEXT_MONDAY, "kind": "on_site"}
    )
    assert response.status_code == 409 and "is already on site at" in text(response)


def test_the_expert_and_the_host_cannot_fix_days(login: Login, world: World) -> None:
    fix = {"assignment": world.chen_post.public_id, "date": NEXT_MONDAY, "kind": "on_site"}
    assert expert_client(login, world).post(url(world, "roster/fix/"), fix).status_code == 403
    assert login("hospadmin", "en").post(url(world, "roster/fix/"), fix).status_code == 403
    page = text(login("hospadmin", "en").get(url(world, "roster/")))
    assert "rc-link" not in page and 'id="optimise-form"' not in page
    assert not RosterDay.objects.filter(assignment=world.chen_post).exists()


def test_optimising_plans_the_weeks_and_shows_the_run_in_plain_words(login: Login, world: World, settings: Any) -> None:
    settings.YILIAN_ROSTER_TIME_LIMIT = 5
    client = login("office", "en")
    # A department this programme needs someone in, with nobody assigned there.
    HostDemand.objects.create(
        programme=world.programme, department=factories.department("qzph", Discipline.CARDIOLOGY), days_per_week=2
    )
    page = text(client.get(url(world, "roster/")))
    assert f'value="{NEXT_MONDAY.isoformat()}"' in page and 'name="weeks"' in page and 'value="4"' in page
    response = client.post(url(world, "roster/optimise/"), {"start": NEXT_MONDAY, "weeks": "2"})
    assert response.status_code == 302
    assert response["Location"] == f"{url(world, 'roster/')}?view=month&start=2026-12-01#roster-run"
    run = RosterRun.objects.get(programme=world.programme)
    on_site = RosterDay.objects.filter(assignment=world.chen_post, kind=DayKind.ON_SITE)
    assert on_site.count() == 6 and not on_site.filter(date__week_day=3).exists()  # never a Tuesday
    page = text(client.get(response["Location"]))
    assert f'data-status="{run.status}"' in page
    assert ("proven best" if run.status == "optimal" else "best found in the time allowed") in page
    assert "Roster planned for 2 weeks from 2026-11-30" in page
    # The cardiology demand has nobody to meet it: explained.
    assert "nobody is assigned to this department" in page
    assert "expert-day" in page


def test_optimising_into_a_year_without_holidays_warns(login: Login, world: World, settings: Any) -> None:
    settings.YILIAN_ROSTER_TIME_LIMIT = 3
    client = login("office", "en")
    start = dt.date(2026, 12, 28)
    assert client.post(url(world, "roster/optimise/"), {"start": start, "weeks": "2"}).status_code == 302
    assert RosterRun.objects.get(programme=world.programme).unknown_years == [2027]
    page = text(client.get(url(world, "roster/"), {"start": "2027-01-04"}))
    assert "The 2027 holiday schedule is not loaded" in page and "/stationing/calendar/?year=2027" in page


def test_optimising_with_bad_input_is_refused_with_400_and_the_message(login: Login, world: World) -> None:
    client = login("office", "en")
    response = client.post(url(world, "roster/optimise/"), {"start": "2026-12-01", "weeks": "2"})
    assert response.status_code == 400 and "A roster starts on a Monday." in text(response)
    response = client.post(url(world, "roster/optimise/"), {"start": NEXT_MONDAY, "weeks": "13"})
    assert response.status_code == 400 and "Weeks:" in text(response)
    assert not RosterRun.objects.filter(programme=world.programme).exists()
    assert (
        expert_client(login, world)
        .post(url(world, "roster/optimise/"), {"start": NEXT_MONDAY, "weeks": "1"})
        .status_code
        == 403
    )


def test_the_roster_query_count_does_not_grow_with_experts_or_days(
    login: Login, world: World, django_assert_max_num_queries: Any
) -> None:
    client = login("office", "en")
    params = {"view": "month", "start": "2026-11-01"}
    client.get(url(world, "roster/"), params)  # warm the session and the caches
    with CaptureQueriesContext(connection) as few:
        assert client.get(url(world, "roster/"), params).status_code == 200
    for n in range(4):
        expert = factories.expert_create(discipline=Discipline.ANESTHESIOLOGY)
        post = factories.assignment_create(world.programme, expert, discipline=Discipline.ANESTHESIOLOGY)
        plan(post, *(dt.date(2026, 11, d) for d in (2, 3, 4, 9, 10, 11)))
        services.attendance_confirm(actor=factories.hospital_admin(), assignment=post, date=dt.date(2026, 11, 2))
        Leave.objects.create(
            practitioner=expert, starts_on=dt.date(2026, 11, 20 + n), ends_on=dt.date(2026, 11, 21 + n)
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(url(world, "roster/"), params)
    assert text(page).count('<tr data-assignment="') == 6


def test_the_programme_list_query_count_does_not_grow_with_programmes(
    login: Login, world: World, django_assert_max_num_queries: Any
) -> None:
    client = login("office", "en")
    client.get("/stationing/")
    with CaptureQueriesContext(connection) as before:
        client.get("/stationing/")
    for _n in range(5):
        factories.programme_create(starts_on=P_START, ends_on=P_END)
    with django_assert_max_num_queries(len(before.captured_queries)):
        assert client.get("/stationing/").status_code == 200


def test_the_roster_exports_to_excel_with_a_legend(login: Login, world: World) -> None:
    plan(world.chen_post, dt.date(2026, 11, 26))
    response = login("office", "en").get(url(world, "roster.xlsx"), {"view": "month", "start": "2026-11-01"})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert f"roster-{world.programme.code}-2026-11-01.xlsx" in response["Content-Disposition"]
    ws = load_workbook(BytesIO(response.content)).active
    assert ws is not None
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    header = next(r for r in rows if r[0] == "Expert")
    chen = next(r for r in rows if r[0] == "陈试远")
    assert chen[header.index("11-26")] == "●" and chen[-1] == 1
    assert any(r[1] == "Travel day" for r in rows)  # the legend
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT, object_id=str(world.programme.public_id)).exists()


# ----------------------------------------------------------------------------------------
# Assignment page: leave, attendance, withdrawal


def test_the_assignment_page_shows_details_roster_and_the_office_records_leave(login: Login, world: World) -> None:
    client = login("office", "en")
    page = text(client.get(a_url(world.chen_post)))
    assert "陈试远" in page and "Business director" in page and "本院周二专家门诊" in page
    assert 'id="assignment-grid"' in page and 'id="leave-form"' in page
    # The calendar address is the expert's own: the office does not see it.
    assert 'id="feed-url"' not in page
    response = client.post(
        a_url(world.chen_post, "leave/"), {"starts_on": "2026-12-14", "ends_on": "2026-12-18", "reason": "年会"}
    )
    assert response.status_code == 302
    leave = Leave.objects.get(practitioner=world.chen)
    assert "2026-12-14 – 2026-12-18" in text(client.get(a_url(world.chen_post)))
    bad = client.post(a_url(world.chen_post, "leave/"), {"starts_on": "2026-12-18", "ends_on": "2026-12-14"})
    assert bad.status_code == 400 and "The end cannot come before the start." in text(bad)
    assert client.post(a_url(world.chen_post, f"leave/{leave.public_id}/remove/")).status_code == 302
    assert not Leave.objects.filter(practitioner=world.chen).exists()


def test_leave_over_a_day_fixed_on_site_is_a_conflict(login: Login, world: World) -> None:
    office = factories.user("office")
    services.roster_fix_day(actor=office, assignment=world.chen_post, date=NEXT_MONDAY, kind="on_site")
    response = login("office", "en").post(
        a_url(world.chen_post, "leave/"), {"starts_on": NEXT_MONDAY, "ends_on": NEXT_MONDAY + dt.timedelta(days=2)}
    )
    assert response.status_code == 409 and "unfix before recording leave" in text(response)


def test_only_the_office_sees_leave_and_withdrawal_forms_and_the_feed(login: Login, world: World) -> None:
    host = text(login("hospadmin", "en").get(a_url(world.chen_post)))
    assert 'id="leave-form"' not in host and 'id="withdraw"' not in host and 'id="feed-url"' not in host
    assert (
        login("hospadmin", "en")
        .post(a_url(world.chen_post, "leave/"), {"starts_on": "2026-12-14", "ends_on": "2026-12-18"})
        .status_code
        == 403
    )
    own = text(expert_client(login, world).get(a_url(world.chen_post)))
    assert 'id="feed-url"' in own and 'id="leave-form"' not in own
    other = factories.account_of(world.huang)
    assert 'id="feed-url"' not in text(login(other.username, "en").get(a_url(world.chen_post)))


def test_the_office_withdraws_an_expert(login: Login, world: World) -> None:
    client = login("office", "en")
    assert client.post(a_url(world.huang_post, "withdraw/"), {"on": "2026-12-31", "reason": ""}).status_code == 400
    response = client.post(a_url(world.huang_post, "withdraw/"), {"on": "2026-12-31", "reason": "本院工作需要"})
    assert response.status_code == 302
    page = text(client.get(a_url(world.huang_post)))
    assert "Withdrawn" in page and "本院工作需要" in page and 'id="withdraw"' not in page
    again = client.post(a_url(world.huang_post, "withdraw/"), {"on": "2026-12-31", "reason": "再次"})
    assert again.status_code == 409


def test_the_host_confirms_records_absence_and_clears_days(login: Login, world: World) -> None:
    monday, tuesday = dt.date(2026, 11, 23), dt.date(2026, 11, 24)
    plan(world.chen_post, monday, dt.date(2026, 11, 19))
    client = login("hospadmin", "en")
    page = text(client.get(a_url(world.chen_post)))
    assert 'data-action="confirm"' in page and 'data-action="absent"' in page
    assert client.post(a_url(world.chen_post, "attendance/"), {"date": monday, "action": "confirm"}).status_code == 302
    assert Attendance.objects.get(assignment=world.chen_post, date=monday).status == AttendanceStatus.CONFIRMED
    page = text(client.get(a_url(world.chen_post)))
    assert "Confirmed by the host" in page

    no_reason = client.post(a_url(world.chen_post, "attendance/"), {"date": "2026-11-19", "action": "absent"})
    assert no_reason.status_code == 400 and "An absence needs a reason." in text(no_reason)
    absent = {"date": "2026-11-19", "action": "absent", "reason": "本院临时手术"}
    assert client.post(a_url(world.chen_post, "attendance/"), absent).status_code == 302
    conflict = client.post(a_url(world.chen_post, "attendance/"), {"date": "2026-11-19", "action": "confirm"})
    assert conflict.status_code == 409 and "clear that first" in text(conflict)
    assert (
        client.post(a_url(world.chen_post, "attendance/"), {"date": "2026-11-19", "action": "clear"}).status_code == 302
    )
    assert not Attendance.objects.filter(assignment=world.chen_post, date=dt.date(2026, 11, 19)).exists()

    # An unplanned day (his home-duty Tuesday) may be confirmed too; a future day may not.
    assert client.post(a_url(world.chen_post, "attendance/"), {"date": tuesday, "action": "confirm"}).status_code == 302
    future = client.post(a_url(world.chen_post, "attendance/"), {"date": "2026-11-30", "action": "confirm"})
    assert future.status_code == 400 and "today or earlier" in text(future)


def test_the_expert_records_their_own_absence_but_cannot_confirm(login: Login, world: World) -> None:
    plan(world.chen_post, dt.date(2026, 11, 23))
    client = expert_client(login, world)
    page = text(client.get(a_url(world.chen_post)))
    assert "I was absent" in page and 'data-action="confirm"' not in page
    forbidden = client.post(a_url(world.chen_post, "attendance/"), {"date": "2026-11-23", "action": "confirm"})
    assert forbidden.status_code == 403
    own = {"date": "2026-11-23", "action": "absent", "reason": "病假"}
    assert client.post(a_url(world.chen_post, "attendance/"), own).status_code == 302
    assert Attendance.objects.get(assignment=world.chen_post, date=dt.date(2026, 11, 23)).absence_reason == "病假"
    assert (
        login("office", "en")
        .post(a_url(world.chen_post, "attendance/"), {"date": "2026-11-20", "action": "confirm"})
        .status_code
        == 403
    )


# ----------------------------------------------------------------------------------------
# Editing a programme and an assignment


def _programme_edit(w: World, **changes: Any) -> dict[str, Any]:
    """The programme's edit form as the page fills it, with some fields retyped."""
    p = w.programme
    data: dict[str, Any] = {
        "title_zh": p.title_zh,
        "title_en": p.title_en,
        "batch": str(p.batch),
        "starts_on": p.starts_on.isoformat(),
        "ends_on": p.ends_on.isoformat() if p.ends_on else "",
        "note": p.note,
    }
    if p.require_location:
        data["require_location"] = "on"
    return data | changes


def _assignment_edit(a: Assignment, **changes: Any) -> dict[str, Any]:
    """The assignment's edit form as the page fills it, with some fields retyped."""
    data: dict[str, Any] = {
        "role": a.role,
        "starts_on": a.starts_on.isoformat(),
        "ends_on": a.ends_on.isoformat() if a.ends_on else "",
        "commitment": a.commitment,
        "days_per_week": str(a.days_per_week or ""),
        "blocked_weekdays": list(a.blocked_weekdays),
        "blocked_note": a.blocked_note,
    }
    return data | changes


def _form(page: str, form_id: str) -> str:
    start = page.index(f'id="{form_id}"')
    return page[start : page.index("</form>", start)]


def _field(form: str, name: str) -> str:
    """A field's block of the form: from its label to the next field's."""
    start = form.index(f'for="edit_{name}"')
    end = form.find('<label class="form-label', start + 1)
    return form[start : end if end > 0 else len(form)]


def test_the_office_edits_the_programme_and_sees_the_change(login: Login, world: World) -> None:
    client = login("office", "en")
    page = text(client.get(url(world)))
    form = _form(page, "programme-edit-form")
    assert 'id="edit-box" open' not in page
    assert 'value="浙大二院派驻衢州（测试批）"' in form and 'value="2027-08-31"' in form
    response = client.post(
        url(world, "edit/"), _programme_edit(world, title_zh="浙大二院派驻衢州（第二批）", ends_on="2027-12-31")
    )
    assert response.status_code == 302 and response["Location"] == url(world)
    page = text(client.get(url(world)))
    assert "The programme is saved." in page
    header = page[page.index('id="programme-header"') : page.index('id="edit-box"')]
    assert "浙大二院派驻衢州（第二批）" in header and "2026-09-01 – 2027-12-31" in header
    # Only what changed went to the service (and into the audit trail).
    event = AuditEvent.objects.filter(action=AuditAction.UPDATE, object_id=str(world.programme.public_id)).first()
    assert event is not None and set(event.changes) == {"title_zh", "ends_on"}
    world.programme.refresh_from_db()
    unchanged = client.post(url(world, "edit/"), _programme_edit(world), follow=True)
    assert "Nothing was changed." in text(unchanged)
    assert AuditEvent.objects.filter(action=AuditAction.UPDATE, object_id=str(world.programme.public_id)).count() == 1


def test_a_programme_edit_the_service_refuses_answers_400_with_the_message_and_what_was_typed(
    login: Login, world: World
) -> None:
    client = login("office", "en")
    response = client.post(
        url(world, "edit/"), _programme_edit(world, title_zh="改过的标题", batch="3", ends_on="2026-08-31")
    )
    assert response.status_code == 400
    page = text(response)
    assert 'id="edit-box" open' in page
    form = _form(page, "programme-edit-form")
    assert "The end cannot come before the start." in _field(form, "ends_on")
    assert 'value="2026-08-31"' in form and 'value="改过的标题"' in form and 'value="3"' in form
    world.programme.refresh_from_db()
    assert world.programme.title_zh == "浙大二院派驻衢州（测试批）" and world.programme.ends_on == P_END


def test_the_office_edits_an_assignment_and_planned_days_it_no_longer_allows_go(login: Login, world: World) -> None:
    post = world.chen_post
    wednesday, thursday = NEXT_MONDAY + dt.timedelta(days=2), NEXT_MONDAY + dt.timedelta(days=3)
    plan(post, wednesday, thursday)
    client = login("office", "en")
    page = text(client.get(a_url(post)))
    form = _form(page, "assignment-edit-form")
    assert 'id="assignment-edit-box" open' not in page
    assert 'name="days_per_week" value="3"' in form and 'value="2" id="edit_blocked_weekdays_1" checked' in form
    assert "taken off the roster" in form
    response = client.post(a_url(post, "edit/"), _assignment_edit(post, days_per_week="2", blocked_weekdays=["2", "3"]))
    assert response.status_code == 302 and response["Location"] == a_url(post)
    post.refresh_from_db()
    assert post.days_per_week == 2 and post.blocked_weekdays == "23"
    # The Wednesday is a home duty now: its planned day left the roster, the Thursday stays.
    assert list(RosterDay.objects.filter(assignment=post).values_list("date", flat=True)) == [thursday]
    page = text(client.get(a_url(post)))
    assert "The assignment is saved." in page and "1 planned day the new terms no longer allow" in page
    details = page[page.index('id="assignment-details"') : page.index('id="assignment-edit-box"')]
    assert "2 days/week" in details and "Tue、Wed" in details


def test_an_assignment_edit_the_service_refuses_answers_400_with_the_message_and_what_was_typed(
    login: Login, world: World
) -> None:
    post = world.chen_post
    response = login("office", "en").post(
        a_url(post, "edit/"), _assignment_edit(post, days_per_week="6", blocked_note="本院周二周四门诊")
    )
    assert response.status_code == 400
    page = text(response)
    assert 'id="assignment-edit-box" open' in page
    form = _form(page, "assignment-edit-form")
    assert "Give the on-site days per week (1 to 5 working days)" in _field(form, "days_per_week")
    assert 'name="days_per_week" value="6"' in form and 'value="本院周二周四门诊"' in form
    post.refresh_from_db()
    assert post.days_per_week == 3 and post.blocked_note == "本院周二专家门诊"


def test_an_assignment_edit_onto_the_experts_other_assignment_is_a_conflict(login: Login, world: World) -> None:
    office = factories.user("office")
    services.assignment_update(actor=office, assignment=world.chen_post, ends_on=dt.date(2026, 12, 31))
    later = factories.assignment_create(world.programme, world.chen, starts_on=dt.date(2027, 1, 4), days_per_week=2)
    response = login("office", "en").post(a_url(later, "edit/"), _assignment_edit(later, starts_on="2026-12-01"))
    assert response.status_code == 409
    page = text(response)
    assert 'id="assignment-edit-box" open' in page
    assert "already has an assignment in this programme for these dates" in _form(page, "assignment-edit-form")
    later.refresh_from_db()
    assert later.starts_on == dt.date(2027, 1, 4)


@pytest.mark.parametrize("who", ["expert", "hospadmin", "commission"])
def test_only_the_office_sees_and_uses_the_edit_forms(login: Login, world: World, who: str) -> None:
    client = expert_client(login, world) if who == "expert" else login(who, "en")
    post = world.chen_post
    assert 'id="programme-edit-form"' not in text(client.get(url(world)))
    assert 'id="assignment-edit-form"' not in text(client.get(a_url(post)))
    assert client.post(url(world, "edit/"), _programme_edit(world, title_zh="不该改")).status_code == 403
    assert client.post(a_url(post, "edit/"), _assignment_edit(post, days_per_week="2")).status_code == 403
    world.programme.refresh_from_db()
    post.refresh_from_db()
    assert world.programme.title_zh == "浙大二院派驻衢州（测试批）" and post.days_per_week == 3


# ----------------------------------------------------------------------------------------
# The expert's week, check-in, work log


def test_my_week_shows_today_and_the_expert_checks_in(login: Login, world: World) -> None:
    plan(world.chen_post, TODAY, dt.date(2026, 11, 26))
    client = expert_client(login, world)
    page = text(client.get("/stationing/my-week/"))
    assert "Quzhou People" in page and "Planned on site today" in page and 'id="check-in"' in page
    assert 'name="latitude"' in page and 'data-date="2026-11-24"' in page and "本院周二专家门诊" in page
    response = client.post(a_url(world.chen_post, "check-in/"), {"latitude": "", "longitude": ""})
    assert response.status_code == 302 and response["Location"] == "/stationing/my-week/"
    record = Attendance.objects.get(assignment=world.chen_post, date=TODAY)
    assert record.status == AttendanceStatus.CHECKED_IN and record.was_planned
    page = text(client.get("/stationing/my-week/"))
    assert "Checked in at 18:00" in page and 'id="check-in"' not in page and 'id="log-today"' in page
    again = client.post(a_url(world.chen_post, "check-in/"))
    assert again.status_code == 409 and "Already checked in today at 18:00." in text(again)


def test_a_check_in_with_half_a_position_is_refused(login: Login, world: World) -> None:
    response = expert_client(login, world).post(a_url(world.chen_post, "check-in/"), {"latitude": "28.97"})
    assert response.status_code == 400 and "Send both latitude and longitude, or neither." in text(response)
    assert not Attendance.objects.filter(assignment=world.chen_post).exists()


def test_only_the_expert_checks_in(login: Login, world: World) -> None:
    assert login("office", "en").get("/stationing/my-week/").status_code == 403
    assert login("hospadmin", "en").post(a_url(world.chen_post, "check-in/")).status_code == 403
    other = factories.account_of(world.huang)
    assert login(other.username, "en").post(a_url(world.chen_post, "check-in/")).status_code == 403


def test_my_week_moves_by_weeks(login: Login, world: World) -> None:
    plan(world.chen_post, dt.date(2026, 12, 3))
    page = text(expert_client(login, world).get("/stationing/my-week/", {"week": "2026-12-02"}))
    assert "2026-11-30 – 12-06" in page and "?week=2026-11-23" in page and "?week=2026-12-07" in page
    assert 'data-date="2026-12-03"' in page and "This week" in page


def _log_form(**extra: str) -> dict[str, str]:
    data = {
        "outpatient_sessions": "1",
        "patients_seen": "26",
        "ward_rounds": "1",
        "teaching_sessions": "0",
        "consultations": "2",
        "management_meetings": "0",
        "note": "疑难病例讨论一例",
        "op-count": "3",
        "op-0-procedure": "神经内镜联合显微镜脑室肿瘤切除术",
        "op-0-procedure_code": "01.5907",
        "op-0-level": "4",
        "op-0-role": "operator",
        "op-0-minimally_invasive": "on",
        "op-1-procedure": "",
        "op-2-procedure": "",
    }
    data.update(extra)
    return data


def test_the_expert_logs_the_day_with_an_operation_and_sees_it_on_the_assignment(login: Login, world: World) -> None:
    client = expert_client(login, world)
    services.attendance_check_in(actor=world.chen_user, assignment=world.chen_post)
    surgeon = factories.practitioner_create(institution_code="qzph", name_zh="周试华")
    form = text(client.get(a_url(world.chen_post, f"log/{TODAY}/")))
    assert form.count('name="op-0-procedure"') == 1 and 'name="op-2-procedure"' in form and "op-3" not in form
    assert f'value="{surgeon.public_id}"' in form  # the host's practitioners to choose from
    data = _log_form(**{"op-0-role": "assistant", "op-0-local_surgeon": str(surgeon.public_id)})
    response = client.post(a_url(world.chen_post, f"log/{TODAY}/"), data)
    assert response.status_code == 302 and response["Location"].endswith(f"#log-{TODAY}")
    log = WorkLog.objects.get(assignment=world.chen_post, date=TODAY)
    assert log.patients_seen == 26
    op = LoggedOperation.objects.get(work_log=log)
    assert op.level == 4 and op.minimally_invasive and op.local_surgeon == surgeon and op.local_surgeon_name == "周试华"
    page = text(client.get(a_url(world.chen_post)))
    assert "神经内镜联合显微镜脑室肿瘤切除术" in page and "local surgeon 周试华" in page and "Level 4" in page
    # Opening the day again shows what was saved, plus three empty rows.
    again = text(client.get(a_url(world.chen_post, f"log/{TODAY}/")))
    assert 'value="神经内镜联合显微镜脑室肿瘤切除术"' in again and 'name="op-3-procedure"' in again


def test_a_work_log_with_a_half_filled_operation_is_refused_with_400(login: Login, world: World) -> None:
    client = expert_client(login, world)
    services.attendance_check_in(actor=world.chen_user, assignment=world.chen_post)
    response = client.post(a_url(world.chen_post, f"log/{TODAY}/"), _log_form(**{"op-0-role": ""}))
    assert response.status_code == 400 and "Choose your role." in text(response)
    response = client.post(a_url(world.chen_post, f"log/{TODAY}/"), _log_form(**{"op-0-role": "supervisor"}))
    assert response.status_code == 400 and "Name the local surgeon who operated with you." in text(response)
    response = client.post(a_url(world.chen_post, f"log/{TODAY}/"), _log_form(patients_seen="-3"))
    assert response.status_code == 400
    assert not WorkLog.objects.filter(assignment=world.chen_post).exists()


def test_a_work_log_before_the_day_is_present_is_a_conflict(login: Login, world: World) -> None:
    client = expert_client(login, world)
    form = text(client.get(a_url(world.chen_post, f"log/{TODAY}/")))
    assert 'id="not-checked-in"' in form
    response = client.post(a_url(world.chen_post, f"log/{TODAY}/"), _log_form())
    assert response.status_code == 409 and "before logging the day" in text(response)


def test_only_the_expert_opens_their_work_log_form(login: Login, world: World) -> None:
    assert login("office", "en").get(a_url(world.chen_post, f"log/{TODAY}/")).status_code == 403
    assert login("hospadmin", "en").post(a_url(world.chen_post, f"log/{TODAY}/"), _log_form()).status_code == 403
    assert expert_client(login, world).get(a_url(world.chen_post, "log/2026-13-40/")).status_code == 404


# ----------------------------------------------------------------------------------------
# Attendance report


def test_the_attendance_report_counts_days_per_expert_and_month(login: Login, world: World) -> None:
    hospadmin = factories.hospital_admin()
    plan(world.chen_post, dt.date(2026, 10, 12), dt.date(2026, 10, 14), dt.date(2026, 11, 16))
    services.attendance_confirm(actor=hospadmin, assignment=world.chen_post, date=dt.date(2026, 10, 12))
    services.attendance_record_absence(
        actor=hospadmin, assignment=world.chen_post, date=dt.date(2026, 10, 14), reason="会议"
    )
    services.attendance_confirm(actor=hospadmin, assignment=world.chen_post, date=dt.date(2026, 11, 16))
    client = login("office", "en")
    page = text(client.get(url(world, "attendance/")))
    assert 'value="2026-06"' in page and 'value="2026-11"' in page  # the last six months by default
    row = page[page.index(f'<tr data-assignment="{world.chen_post.public_id}"') :].split("</tr>")[0]
    assert "陈试远" in row and "1 absent" in row
    assert 'id="total-delivered">2<' in page

    response = client.get(url(world, "attendance.xlsx"), {"from": "2026-10", "to": "2026-11"})
    assert response.status_code == 200
    wb = load_workbook(BytesIO(response.content))
    by_month = [r for r in wb["By month"].iter_rows(values_only=True) if r[0] == "陈试远"]
    october = next(r for r in by_month if r[3] == "2026-10")
    assert october[5:8] == (2, 1, 1)  # planned, delivered, absent
    totals = next(r for r in wb["Totals"].iter_rows(values_only=True) if r[0] == "陈试远")
    assert totals[4:7] == (3, 2, 1)


def test_an_attendance_report_with_bad_months_is_refused_with_400(login: Login, world: World) -> None:
    client = login("office", "en")
    response = client.get(url(world, "attendance/"), {"from": "2026-13", "to": "2026-11"})
    assert response.status_code == 400 and "give a month as YYYY-MM" in text(response)
    response = client.get(url(world, "attendance/"), {"from": "2026-11", "to": "2026-10"})
    assert response.status_code == 400 and "The last month comes before the first." in text(response)
    assert client.get(url(world, "attendance.xlsx"), {"from": "2020-01", "to": "2026-11"}).status_code == 400


# ----------------------------------------------------------------------------------------
# Working calendar


def test_the_office_reads_the_working_calendar_and_a_system_administrator_enters_a_year(
    login: Login, world: World
) -> None:
    office = login("office", "en")
    page = text(office.get("/stationing/calendar/", {"year": "2027"}))
    assert "2027 is neither covered nor entered" in page and "covers 2004 to 2026" in page
    # Shared by every consortium: one consortium's office does not change it for the others.
    assert 'id="calendar-form"' not in page and 'id="calendar-admin-only"' in page
    holiday = {"action": "set", "date": "2027-01-01", "is_workday": "0", "name_zh": "元旦", "name_en": "New Year"}
    assert office.post("/stationing/calendar/?year=2027", holiday).status_code == 403
    assert not CalendarDay.objects.filter(date=dt.date(2027, 1, 1)).exists()

    client = login("admin", "en")
    assert 'id="calendar-form"' in text(client.get("/stationing/calendar/", {"year": "2027"}))
    response = client.post("/stationing/calendar/?year=2027", holiday)
    assert response.status_code == 302 and response["Location"] == "/stationing/calendar/?year=2027"
    page = text(client.get("/stationing/calendar/", {"year": "2027"}))
    assert "元旦" in page or "New Year" in page
    assert "neither covered nor entered" not in page
    covered = text(client.get("/stationing/calendar/", {"year": "2026"}))
    assert "2026 is covered" in covered and "Adjusted working day" in covered  # e.g. a Sunday worked in lieu
    assert office.post("/stationing/calendar/?year=2027", {"action": "remove", "date": "2027-01-01"}).status_code == 403
    assert client.post("/stationing/calendar/?year=2027", {"action": "remove", "date": "2027-01-01"}).status_code == 302
    assert not CalendarDay.objects.filter(date=dt.date(2027, 1, 1)).exists()
    bad = client.post("/stationing/calendar/?year=2027", {"action": "set", "date": "2027-02-30", "is_workday": "0"})
    assert bad.status_code == 400


def test_only_planners_open_the_working_calendar(login: Login, world: World) -> None:
    assert login("commission", "en").get("/stationing/calendar/").status_code == 403
    assert login("hospadmin", "en").get("/stationing/calendar/").status_code == 403
    assert login("admin", "en").get("/stationing/calendar/").status_code == 200


# ----------------------------------------------------------------------------------------
# Calendar feed


def test_the_calendar_feed_lists_the_experts_days_with_a_signed_key_and_no_session(world: World) -> None:
    plan(world.chen_post, NEXT_MONDAY, NEXT_MONDAY + dt.timedelta(days=2))
    plan(world.chen_post, NEXT_MONDAY - dt.timedelta(days=1), kind=DayKind.TRAVEL)
    plan(world.huang_post, NEXT_MONDAY)
    anonymous = Client()
    feed = f"/stationing/feeds/{world.chen.public_id}.ics"
    response = anonymous.get(feed, {"key": ics_key(world.chen)})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    events = [c for c in Calendar.from_ical(response.content).walk("VEVENT")]
    assert len(events) == 3
    starts = sorted(e.decoded("dtstart") for e in events)
    assert starts[0] == NEXT_MONDAY - dt.timedelta(days=1)
    summaries = " ".join(str(e.get("summary")) for e in events)
    assert "衢州市人民医院" in summaries and "神经外科" in summaries and "骨科" not in summaries
    assert anonymous.get(feed, {"key": ics_key(world.huang)}).status_code == 404
    assert anonymous.get(feed, {"key": "forged"}).status_code == 404
    assert anonymous.get(feed).status_code == 404


def test_the_feed_of_the_demo_expert_is_reachable_from_my_week(login: Login, world: World) -> None:
    page = text(expert_client(login, world).get("/stationing/my-week/"))
    start = page.index(f"/stationing/feeds/{world.chen.public_id}.ics?key=")
    address = page[start : page.index('"', start)]
    assert Client().get(address).status_code == 200


def test_the_roster_navigation_comes_alone_to_htmx_and_odd_dates_fall_back_to_today(login: Login, world: World) -> None:
    client = login("office", "en")
    partial = client.get(
        url(world, "roster/"),
        {"view": "week", "start": "2026-12-02"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="roster-body",
    )
    body = text(partial)
    assert body.startswith('<div id="roster-body">') and "<html" not in body
    assert "2026-11-30 – 12-06" in body and 'id="roster-grid"' in body
    for odd in ("9999-12-31", "0001-01-01", "2026-02-30"):
        page = client.get(url(world, "roster/"), {"start": odd})
        assert page.status_code == 200 and 'id="roster-period">2026-11<' in text(page)
    assert expert_client(login, world).get("/stationing/my-week/", {"week": "9999-12-31"}).status_code == 200


def test_the_admin_lists_stationing_read_only(login: Login, world: World) -> None:
    client = login("admin", "en")
    assert world.programme.code in text(client.get("/admin/dispatch/programme/"))
    assert client.get("/admin/dispatch/assignment/").status_code == 200
    assert client.get("/admin/dispatch/rosterrun/").status_code == 200
    assert client.get("/admin/dispatch/calendarday/").status_code == 200
    assert client.get("/admin/dispatch/programme/add/").status_code == 403
    office = login("office", "en")
    assert world.programme.code in text(office.get("/admin/dispatch/programme/"))
    assert "zjpph-bjfph-2" not in text(office.get("/admin/dispatch/programme/"))
