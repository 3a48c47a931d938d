"""The stationing API as a client sees it: who sees which programme, the office planning it
(programmes, objectives, demand, assignments, leave, rosters), the expert checking in and logging
work, the host confirming days, and the figures, counted again here from the stored rows.

Runs on the demo (see ``yilian.demo.dispatch``): zju2 stations experts at qzph under
``zju2-qzph-2`` (陈志远, the demo ``expert``, 3 days a week, never on Tuesdays); a year of roster,
attendance and work logs up to yesterday, nothing recorded for today.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from yilian.dispatch import selectors
from yilian.dispatch import services as dispatch_services
from yilian.dispatch.api import router
from yilian.dispatch.models import (
    PRESENT,
    Assignment,
    Attendance,
    DayKind,
    HostDemand,
    Leave,
    Objective,
    Programme,
    RosterDay,
    RosterRun,
    WorkLog,
)
from yilian.dispatch.tests import factories
from yilian.registry import services as registry_services
from yilian.registry.models import Agreement, Department, Discipline, Practitioner, User

pytestmark = pytest.mark.django_db

API = "/api/v1/stationing"
QUZHOU = "zju2-qzph-2"  # active: zju2 -> qzph, 陈志远 3 days a week, Tuesdays at home
CHINA = zoneinfo.ZoneInfo("Asia/Shanghai")


def api(username: str, language: str = "en") -> Client:
    """A client sending a fresh API token of the demo persona (English unless told)."""
    _, key = registry_services.api_token_create(actor=None, user=User.objects.get(username=username))
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE=language)


def post(client: Client, url: str, body: Any) -> Any:
    return client.post(url, body, content_type="application/json")


def put(client: Client, url: str, body: Any) -> Any:
    return client.put(url, body, content_type="application/json")


def patch(client: Client, url: str, body: Any) -> Any:
    return client.patch(url, body, content_type="application/json")


def codes(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {p["code"] for p in response.json()["items"]}


def today() -> dt.date:
    return timezone.localdate()


def next_monday() -> dt.date:
    return selectors.monday(today()) + dt.timedelta(days=7)


def chen() -> Assignment:
    """陈志远's assignment in the current Quzhou round (the demo persona ``expert``)."""
    return Assignment.objects.select_related("practitioner").get(
        programme__code=QUZHOU, practitioner__user__username="expert"
    )


def assignment_url(assignment: Assignment, rest: str = "") -> str:
    return f"{API}/assignments/{assignment.public_id}{rest}"


def day_without_attendance(assignment: Assignment, *, before: dt.date) -> dt.date:
    """The latest day before ``before`` inside the assignment with nothing recorded."""
    day = before - dt.timedelta(days=1)
    recorded = set(assignment.attendance.values_list("date", flat=True))
    while day in recorded:
        day -= dt.timedelta(days=1)
    assert day >= assignment.starts_on
    return day


def programme_body(**overrides: Any) -> dict[str, Any]:
    """A third Quzhou round, planned by the zju2 office."""
    body: dict[str, Any] = {
        "code": "zju2-qzph-3",
        "consortium": "zju2-quzhou",
        "sending_institution": "zju2",
        "host_institution": "qzph",
        "agreement": "zju2-qzph-2018",
        "title_zh": "浙大二院派驻衢州市人民医院（第三批）",
        "title_en": "ZJU Second Affiliated Hospital at Quzhou People's Hospital (batch 3)",
        "batch": 3,
        "starts_on": "2027-09-01",
        "ends_on": "2029-08-31",
        "status": "planned",
    }
    body.update(overrides)
    return body


# ----------------------------------------------------------------------------------------
# Who sees which programme


def test_the_office_sees_its_consortium_s_programmes_but_not_bijie_s() -> None:
    answer = api("office").get(f"{API}/programmes")

    assert codes(answer) == {"zju2-qzph-1", "zju2-qzph-2", "zju2-khph-1"}
    assert codes(answer) == set(Programme.objects.filter(consortium__code="zju2-quzhou").values_list("code", flat=True))
    assert answer.json()["count"] == 3
    quzhou = next(p for p in answer.json()["items"] if p["code"] == QUZHOU)
    assert quzhou["host_institution"]["code"] == "qzph" and quzhou["sending_institution"]["code"] == "zju2"
    assert quzhou["agreement"] == "zju2-qzph-2018" and quzhou["status"] == "active"
    assert quzhou["people"] == Assignment.objects.filter(programme__code=QUZHOU, withdrawn_on__isnull=True).count() == 6


def test_the_expert_sees_only_the_programmes_he_is_assigned_to() -> None:
    mine = set(
        Programme.objects.filter(assignments__practitioner__user__username="expert").values_list("code", flat=True)
    )

    assert codes(api("expert").get(f"{API}/programmes")) == mine == {"zju2-qzph-1", "zju2-qzph-2"}


def test_a_doctor_may_not_list_programmes() -> None:
    answer = api("doctor").get(f"{API}/programmes")

    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "You do not have permission to do this (See stationing programmes, rosters, attendance and work logs)."
    )


def test_the_commission_sees_the_programmes_hosted_in_its_region() -> None:
    hosted_in_quzhou = Programme.objects.filter(host_institution__region__code__startswith="3308")

    seen = codes(api("commission").get(f"{API}/programmes"))

    assert seen == set(hosted_in_quzhou.values_list("code", flat=True)) == {"zju2-qzph-1", "zju2-qzph-2", "zju2-khph-1"}
    assert not seen & {"zjpph-bjfph-1", "zjpph-bjfph-2"}


def test_the_bijie_programmes_are_listed_for_the_system_administrator_and_filter_by_status_and_text() -> None:
    admin = api("admin")

    assert {"zjpph-bjfph-1", "zjpph-bjfph-2"} <= codes(admin.get(f"{API}/programmes"))
    assert codes(admin.get(f"{API}/programmes", {"status": "completed"})) == {"zju2-qzph-1", "zjpph-bjfph-1"}
    assert codes(admin.get(f"{API}/programmes", {"search": "开化"})) == {"zju2-khph-1"}
    assert codes(admin.get(f"{API}/programmes", {"search": "zjpph"})) == {"zjpph-bjfph-1", "zjpph-bjfph-2"}


def test_the_browser_session_reads_the_list_too(login: Any) -> None:
    assert codes(login("office").get(f"{API}/programmes")) == {"zju2-qzph-1", "zju2-qzph-2", "zju2-khph-1"}
    assert Client().get(f"{API}/programmes").status_code == 401


def test_the_programme_list_query_count_does_not_grow_with_programmes(django_assert_max_num_queries: Any) -> None:
    office = api("office")
    office.get(f"{API}/programmes")  # the token's first use
    with CaptureQueriesContext(connection) as baseline:
        assert len(codes(office.get(f"{API}/programmes"))) == 3
    agreement = Agreement.objects.get(code="zju2-qzph-2018")
    for batch in range(3, 9):
        programme = factories.programme_create(
            starts_on=dt.date(2027, 9, 1), batch=batch, agreement=agreement, status="planned"
        )
        factories.assignment_create(programme, factories.expert_create())

    with django_assert_max_num_queries(len(baseline)):
        answer = office.get(f"{API}/programmes")

    assert answer.json()["count"] == 9
    assert {p["agreement"] for p in answer.json()["items"]} >= {"zju2-qzph-2018"}


# ----------------------------------------------------------------------------------------
# Creating and changing programmes


def test_the_office_creates_a_programme() -> None:
    created = post(api("office"), f"{API}/programmes", programme_body())

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["code"] == "zju2-qzph-3" and body["status"] == "planned" and body["people"] == 0
    assert body["host_institution"] == {"code": "qzph", "name": "Quzhou People's Hospital"}
    assert (body["starts_on"], body["ends_on"], body["agreement"]) == ("2027-09-01", "2029-08-31", "zju2-qzph-2018")
    stored = Programme.objects.get(code="zju2-qzph-3")
    assert stored.host_institution.code == "qzph" and stored.batch == 3
    assert api("office").get(f"{API}/programmes/zju2-qzph-3").status_code == 200


def test_a_hospital_administrator_may_not_create_a_programme() -> None:
    refused = post(api("hospadmin"), f"{API}/programmes", programme_body())

    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only the consortium office plans this consortium's stationing."
    assert not Programme.objects.filter(code="zju2-qzph-3").exists()


def test_a_host_that_is_not_a_member_of_the_consortium_is_refused_with_a_field_error() -> None:
    refused = post(api("office"), f"{API}/programmes", programme_body(host_institution="bjfph", agreement=None))

    assert refused.status_code == 400
    assert refused.json()["errors"] == {
        "host_institution": ["The host institution is not a current member of this consortium."]
    }
    assert not Programme.objects.filter(code="zju2-qzph-3").exists()


def test_an_unknown_institution_is_a_field_error() -> None:
    refused = post(api("office"), f"{API}/programmes", programme_body(sending_institution="nowhere"))

    assert refused.status_code == 400
    assert refused.json()["errors"] == {"sending_institution": ["No institution with code nowhere."]}


def test_a_malformed_code_or_date_is_422_in_chinese_by_default_and_in_english_on_request() -> None:
    body = programme_body(code="Batch 3!", starts_on="2027-13-45")

    chinese = post(api("office", language=""), f"{API}/programmes", body)
    english = post(api("office"), f"{API}/programmes", body)

    assert chinese.status_code == english.status_code == 422
    assert chinese.json() == {
        "detail": "请求格式不正确。",
        "errors": {"body.payload.code": ["格式不正确。"], "body.payload.starts_on": ["日期或时间无效。"]},
    }
    assert english.json() == {
        "detail": "The request is not well formed.",
        "errors": {
            "body.payload.code": ["Does not have the expected format."],
            "body.payload.starts_on": ["Not a valid date or time."],
        },
    }
    assert not Programme.objects.filter(title_zh=body["title_zh"]).exists()


def test_the_programme_detail_carries_objectives_people_days_and_work() -> None:
    answer = api("office").get(f"{API}/programmes/{QUZHOU}")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    programme = Programme.objects.get(code=QUZHOU)
    assert {o["name_zh"] for o in body["objectives"]} == set(programme.objectives.values_list("name_zh", flat=True))
    assert {"卒中中心", "急性缺血性卒中血管内取栓"} <= {o["name_zh"] for o in body["objectives"]}
    assert body["people"] == 6
    start, end = today() - dt.timedelta(days=365), today()
    attendance = Attendance.objects.filter(assignment__programme=programme, date__gte=start, date__lte=end)
    days = body["days_last_12_months"]
    assert days["delivered"] == attendance.filter(status__in=PRESENT).count() > 0
    assert days["absent"] == attendance.filter(status="absent").count()
    assert days["planned"] == (
        RosterDay.objects.filter(
            assignment__programme=programme, kind=DayKind.ON_SITE, date__gte=start, date__lte=end
        ).count()
    )
    assert days["committed"] > 0
    work = body["work_last_12_months"]
    logs = WorkLog.objects.filter(assignment__programme=programme, date__gte=start, date__lte=end)
    assert work["days_logged"] == logs.count() > 0
    assert work["patients_seen"] == sum(logs.values_list("patients_seen", flat=True))
    assert work["operations"] == sum(work["operations_by_role"].values()) > 0
    assert 0 < work["operations_level_34"] <= work["operations"]


def test_a_programme_out_of_scope_is_403_and_an_unknown_one_404() -> None:
    office = api("office")

    outside = office.get(f"{API}/programmes/zjpph-bjfph-2")
    unknown = office.get(f"{API}/programmes/nowhere")

    assert (
        outside.status_code == 403
        and outside.json()["detail"] == "Programme zjpph-bjfph-2 is outside what you may see."
    )
    assert unknown.status_code == 404 and unknown.json()["detail"] == "No stationing programme with code nowhere."


def test_the_office_changes_a_programme_and_only_what_it_sends() -> None:
    changed = patch(api("office"), f"{API}/programmes/{QUZHOU}", {"title_en": "Quzhou, round 2", "note": "第二轮"})

    assert changed.status_code == 200, changed.content
    assert changed.json()["title_en"] == "Quzhou, round 2" and changed.json()["people"] == 6
    stored = Programme.objects.get(code=QUZHOU)
    assert (stored.title_en, stored.note, stored.status) == ("Quzhou, round 2", "第二轮", "active")
    assert api("office").get(f"{API}/programmes/{QUZHOU}").json()["note"] == "第二轮"


def test_a_programme_change_that_breaks_a_rule_is_refused() -> None:
    office = api("office")

    emptied = patch(office, f"{API}/programmes/{QUZHOU}", {"title_zh": None})
    backwards = patch(office, f"{API}/programmes/{QUZHOU}", {"ends_on": "2025-01-01"})
    later = patch(office, f"{API}/programmes/{QUZHOU}", {"starts_on": "2026-01-05"})
    by_host = patch(api("hospadmin"), f"{API}/programmes/{QUZHOU}", {"note": "x"})

    assert emptied.status_code == 400 and emptied.json()["errors"] == {"title_zh": ["This field cannot be empty."]}
    assert backwards.status_code == 400 and backwards.json()["errors"] == {
        "ends_on": ["The end cannot come before the start."]
    }
    assert later.status_code == 400 and later.json()["errors"] == {
        "starts_on": ["Some assignments fall outside these dates; change them first."]
    }
    assert by_host.status_code == 403
    stored = Programme.objects.get(code=QUZHOU)
    assert (stored.starts_on, stored.ends_on, stored.note) == (dt.date(2025, 9, 1), dt.date(2027, 8, 31), "")


def test_the_office_adds_an_objective_and_the_expert_may_not() -> None:
    body = {
        "kind": "technique",
        "name_zh": "颅内动脉瘤介入栓塞",
        "name_en": "Coiling of aneurysms",
        "target": "独立完成",
    }

    added = post(api("office"), f"{API}/programmes/{QUZHOU}/objectives", body)
    refused = post(api("expert"), f"{API}/programmes/{QUZHOU}/objectives", body)
    unknown_kind = post(api("office"), f"{API}/programmes/{QUZHOU}/objectives", {**body, "kind": "dream"})

    assert added.status_code == 201, added.content
    assert {k: added.json()[k] for k in body} == body
    assert Objective.objects.get(public_id=added.json()["id"]).programme.code == QUZHOU
    assert "颅内动脉瘤介入栓塞" in {
        o["name_zh"] for o in api("office").get(f"{API}/programmes/{QUZHOU}").json()["objectives"]
    }
    assert refused.status_code == 403
    assert unknown_kind.status_code == 422 and "body.payload.kind" in unknown_kind.json()["errors"]
    assert Objective.objects.filter(name_zh="颅内动脉瘤介入栓塞").count() == 1


# ----------------------------------------------------------------------------------------
# Host demand


def test_the_host_departments_demand_is_listed_and_set_by_the_office() -> None:
    neurosurgery = Department.objects.get(institution__code="qzph", name_zh="神经外科")
    listed = api("expert").get(f"{API}/programmes/{QUZHOU}/demand")
    assert listed.status_code == 200
    rows = {row["department"]["id"]: row for row in listed.json()}
    assert len(rows) == HostDemand.objects.filter(programme__code=QUZHOU).count() == 5
    assert rows[str(neurosurgery.public_id)]["days_per_week"] == 3
    assert rows[str(neurosurgery.public_id)]["need_weekdays"] == "4"
    assert rows[str(neurosurgery.public_id)]["need_label_en"] == "operating day"

    body = {"days_per_week": 4, "need_weekdays": "42", "need_label_zh": "手术日", "need_label_en": "operating day"}
    changed = put(api("office"), f"{API}/programmes/{QUZHOU}/demand/{neurosurgery.public_id}", body)

    assert changed.status_code == 200, changed.content
    assert changed.json()["need_weekdays"] == "24"  # stored in weekday order
    assert changed.json()["department"] == {
        "id": str(neurosurgery.public_id),
        "name": "Neurosurgery",
        "institution": "qzph",
    }
    demand = HostDemand.objects.get(programme__code=QUZHOU, department=neurosurgery)
    assert (demand.days_per_week, demand.need_weekdays) == (4, "24")


def test_demand_outside_the_host_or_from_the_expert_is_refused() -> None:
    zju2 = factories.department("zju2")
    qzph = factories.department("qzph")
    body = {"days_per_week": 2}

    elsewhere = put(api("office"), f"{API}/programmes/{QUZHOU}/demand/{zju2.public_id}", body)
    by_expert = put(api("expert"), f"{API}/programmes/{QUZHOU}/demand/{qzph.public_id}", body)
    bad_weekday = put(
        api("office"), f"{API}/programmes/{QUZHOU}/demand/{qzph.public_id}", {**body, "need_weekdays": "8"}
    )
    unknown = put(api("office"), f"{API}/programmes/{QUZHOU}/demand/{uuid.uuid4()}", body)

    assert elsewhere.status_code == 400
    assert elsewhere.json()["errors"] == {"department": ["The host department must belong to the host institution."]}
    assert by_expert.status_code == 403
    assert bad_weekday.status_code == 422
    assert unknown.status_code == 400 and unknown.json()["errors"] == {"department": ["No such department."]}
    assert not HostDemand.objects.filter(department=zju2).exists()
    assert HostDemand.objects.get(programme__code=QUZHOU, department=qzph).days_per_week == 3


# ----------------------------------------------------------------------------------------
# Assignments and leave


def test_the_assignments_of_a_programme_are_listed() -> None:
    answer = api("hospadmin").get(f"{API}/programmes/{QUZHOU}/assignments")

    assert answer.status_code == 200
    rows = answer.json()
    assert len(rows) == 6
    chen_row = next(a for a in rows if a["practitioner"]["name_zh"] == "陈志远")
    assert chen_row["id"] == str(chen().public_id)
    assert (chen_row["role"], chen_row["commitment"], chen_row["days_per_week"]) == (
        "business_director",
        "days_per_week",
        3,
    )
    assert (chen_row["blocked_weekdays"], chen_row["blocked_note"]) == ("2", "本院周二专家门诊")
    assert chen_row["host_department"]["institution"] == "qzph" and chen_row["home_department"]["institution"] == "zju2"


def test_the_assignment_list_query_count_does_not_grow_with_assignments(django_assert_max_num_queries: Any) -> None:
    office = api("office")
    office.get(f"{API}/programmes/{QUZHOU}/assignments")
    with CaptureQueriesContext(connection) as baseline:
        office.get(f"{API}/programmes/{QUZHOU}/assignments")
    programme = Programme.objects.get(code=QUZHOU)
    for _n in range(4):
        factories.assignment_create(programme, factories.expert_create(), starts_on=today(), days_per_week=1)

    with django_assert_max_num_queries(len(baseline)):
        assert len(office.get(f"{API}/programmes/{QUZHOU}/assignments").json()) == 10


def test_the_office_stations_a_zju2_practitioner_in_a_qzph_department() -> None:
    practitioner = factories.practitioner_create(institution_code="zju2", discipline=Discipline.ORTHOPEDICS)
    host = factories.department("qzph", Discipline.ORTHOPEDICS)
    body = {
        "practitioner": str(practitioner.public_id),
        "host_department": str(host.public_id),
        "role": "clinical_member",
        "starts_on": today().isoformat(),
        "days_per_week": 2,
        "blocked_weekdays": "1",
        "blocked_note": "本院周一手术",
    }

    created = post(api("office"), f"{API}/programmes/{QUZHOU}/assignments", body)

    assert created.status_code == 201, created.content
    out = created.json()
    assert out["practitioner"]["id"] == str(practitioner.public_id) and out["programme"] == QUZHOU
    assert out["host_department"]["id"] == str(host.public_id)
    assert out["home_department"]["institution"] == "zju2"  # the practitioner's own department by default
    assert out["ends_on"] == "2027-08-31"  # the programme's end
    assert (out["days_per_week"], out["blocked_weekdays"], out["withdrawn_on"]) == (2, "1", None)
    stored = Assignment.objects.get(public_id=out["id"])
    assert stored.practitioner == practitioner and stored.programme.code == QUZHOU
    assert api("office").get(f"{API}/programmes/{QUZHOU}").json()["people"] == 7


def test_a_practitioner_who_does_not_work_at_zju2_is_refused() -> None:
    local = Practitioner.objects.filter(institution__code="qzph").first()
    assert local is not None
    body = {
        "practitioner": str(local.public_id),
        "host_department": str(factories.department("qzph").public_id),
        "role": "clinical_member",
        "starts_on": today().isoformat(),
        "days_per_week": 2,
    }

    refused = post(api("office"), f"{API}/programmes/{QUZHOU}/assignments", body)

    assert refused.status_code == 400
    assert refused.json()["errors"]["practitioner"] == ["The expert must work at the sending institution."]
    assert not Assignment.objects.filter(practitioner=local).exists()


def test_an_overlapping_assignment_of_the_same_expert_is_a_conflict() -> None:
    own = chen()
    body = {
        "practitioner": str(own.practitioner.public_id),
        "host_department": str(own.host_department.public_id),
        "role": "clinical_member",
        "starts_on": today().isoformat(),
        "days_per_week": 1,
    }

    refused = post(api("office"), f"{API}/programmes/{QUZHOU}/assignments", body)
    by_expert = post(api("expert"), f"{API}/programmes/{QUZHOU}/assignments", body)

    assert refused.status_code == 409
    assert refused.json() == {"detail": "陈志远 already has an assignment in this programme for these dates."}
    assert by_expert.status_code == 403
    assert Assignment.objects.filter(programme__code=QUZHOU, practitioner=own.practitioner).count() == 1


def test_an_assignment_is_read_changed_and_withdrawn() -> None:
    own = chen()
    url = assignment_url(own)

    read = api("expert").get(url)
    changed = patch(api("office"), url, {"days_per_week": 2, "blocked_note": "本院周二门诊"})
    too_many = patch(api("office"), url, {"days_per_week": 3, "blocked_weekdays": "1234"})
    emptied = patch(api("office"), url, {"role": None})
    by_expert = patch(api("expert"), url, {"days_per_week": 1})

    assert read.status_code == 200 and read.json()["practitioner"]["name_zh"] == "陈志远"
    assert changed.status_code == 200, changed.content
    assert (changed.json()["days_per_week"], changed.json()["blocked_note"]) == (2, "本院周二门诊")
    assert changed.json()["blocked_weekdays"] == "2"  # not sent, so kept
    assert too_many.status_code == 400 and too_many.json()["errors"] == {
        "blocked_weekdays": ["The home duties leave fewer free working days than the commitment."]
    }
    assert emptied.status_code == 400 and emptied.json()["errors"] == {"role": ["This field cannot be empty."]}
    assert by_expert.status_code == 403
    own.refresh_from_db()
    assert (own.days_per_week, own.blocked_weekdays, own.role) == (2, "2", "business_director")

    on = today() + dt.timedelta(days=7)
    assert RosterDay.objects.filter(assignment=own, date__gt=on).exists()
    withdrawn = post(api("office"), f"{url}/withdraw", {"on": on.isoformat(), "reason": "回本院任科主任"})
    again = post(api("office"), f"{url}/withdraw", {"on": on.isoformat(), "reason": "回本院任科主任"})
    blank = post(api("office"), f"{url}/withdraw", {"on": on.isoformat(), "reason": "   "})

    assert withdrawn.status_code == 200, withdrawn.content
    assert (withdrawn.json()["withdrawn_on"], withdrawn.json()["withdrawn_reason"]) == (
        on.isoformat(),
        "回本院任科主任",
    )
    assert not RosterDay.objects.filter(assignment=own, date__gt=on).exists()  # the plan after it is dropped
    assert again.status_code == 409 and again.json()["detail"] == f"This assignment was already withdrawn on {on}."
    assert blank.status_code == 422
    assert api("office").get(f"{API}/programmes/{QUZHOU}").json()["people"] == 5


def test_an_assignment_out_of_scope_is_403_and_an_unknown_one_404() -> None:
    bijie = Assignment.objects.filter(programme__code="zjpph-bjfph-2").first()
    assert bijie is not None

    assert api("office").get(assignment_url(bijie)).status_code == 403
    assert api("expert").get(assignment_url(bijie)).status_code == 403
    unknown = api("office").get(f"{API}/assignments/{uuid.uuid4()}")
    assert unknown.status_code == 404 and unknown.json()["detail"] == "No such assignment."
    assert api("office").get(f"{API}/assignments/not-an-id").status_code == 422


def test_leave_is_listed_and_recorded_by_the_office_and_drops_the_planned_days() -> None:
    own = chen()
    url = assignment_url(own, "/leave")
    conference = Leave.objects.get(practitioner=own.practitioner)
    start = next_monday()
    end = start + dt.timedelta(days=4)
    assert RosterDay.objects.filter(assignment=own, date__range=(start, end), kind=DayKind.ON_SITE).exists()

    listed = api("expert").get(url)
    added = post(api("office"), url, {"starts_on": start.isoformat(), "ends_on": end.isoformat(), "reason": "进修"})
    by_expert = post(api("expert"), url, {"starts_on": start.isoformat(), "ends_on": end.isoformat()})
    backwards = post(api("office"), url, {"starts_on": end.isoformat(), "ends_on": start.isoformat()})

    assert listed.status_code == 200
    assert listed.json() == [
        {
            "id": str(conference.public_id),
            "starts_on": conference.starts_on.isoformat(),
            "ends_on": conference.ends_on.isoformat(),
            "reason": "全国神经外科年会",
        }
    ]
    assert added.status_code == 201, added.content
    assert (added.json()["starts_on"], added.json()["reason"]) == (start.isoformat(), "进修")
    assert not RosterDay.objects.filter(assignment=own, date__range=(start, end), kind=DayKind.ON_SITE).exists()
    assert by_expert.status_code == 403
    assert backwards.status_code == 400 and backwards.json()["errors"] == {
        "ends_on": ["The end cannot come before the start."]
    }
    assert [row["reason"] for row in api("office").get(url).json()] == ["进修", "全国神经外科年会"]


def test_leave_over_a_day_fixed_on_site_is_a_conflict_naming_the_day() -> None:
    own = chen()
    wednesday = next_monday() + dt.timedelta(days=2)
    assert put(api("office"), assignment_url(own, f"/roster/{wednesday}"), {"kind": "on_site"}).status_code == 200

    refused = post(
        api("office"),
        assignment_url(own, "/leave"),
        {"starts_on": next_monday().isoformat(), "ends_on": (next_monday() + dt.timedelta(days=4)).isoformat()},
    )

    assert refused.status_code == 409
    assert refused.json()["detail"] == f"{wednesday} fixed on site by hand; unfix before recording leave."
    assert Leave.objects.filter(practitioner=own.practitioner).count() == 1


# ----------------------------------------------------------------------------------------
# Rosters


def roster_url(code: str = QUZHOU) -> str:
    return f"{API}/programmes/{code}/roster"


def test_the_roster_shows_each_expert_s_on_site_days_and_the_calendar() -> None:
    start = selectors.monday(today()) - dt.timedelta(days=28)
    end = start + dt.timedelta(days=27)

    answer = api("expert").get(roster_url(), {"start": start.isoformat(), "end": end.isoformat()})

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["start"], body["end"]) == (start.isoformat(), end.isoformat())
    assert [d["date"] for d in body["calendar"]] == [(start + dt.timedelta(days=i)).isoformat() for i in range(28)]
    assert len(body["rows"]) == 6
    chen_row = next(r for r in body["rows"] if r["practitioner"] == "陈志远")
    on_site = [dt.date.fromisoformat(d["date"]) for d in chen_row["days"] if d["kind"] == "on_site"]
    assert on_site
    assert on_site == sorted(
        RosterDay.objects.filter(assignment=chen(), date__range=(start, end), kind=DayKind.ON_SITE).values_list(
            "date", flat=True
        )
    )
    assert all(d.isoweekday() != 2 for d in on_site)  # never on his home-duty Tuesday
    assert all(len(on_site_in_week(on_site, start + dt.timedelta(weeks=w))) <= 3 for w in range(4))
    attended = {d["date"]: d["attendance"] for d in chen_row["days"] if d["attendance"]}
    stored = Attendance.objects.filter(assignment=chen(), date__range=(start, end))
    assert attended == {a.date.isoformat(): a.status for a in stored}


def test_a_day_confirmed_without_a_plan_shows_in_the_roster_with_its_attendance() -> None:
    own = chen()
    tuesday = selectors.monday(today()) - dt.timedelta(days=6)  # last week's: home duty, never planned
    assert put(api("hospadmin"), attendance_url(own, tuesday), {"status": "confirmed"}).status_code == 201

    answer = api("office").get(roster_url(), {"start": tuesday.isoformat(), "end": tuesday.isoformat()})

    assert answer.status_code == 200, answer.content
    chen_row = next(r for r in answer.json()["rows"] if r["practitioner"] == "陈志远")
    assert chen_row["days"] == [{"date": tuesday.isoformat(), "kind": None, "fixed": False, "attendance": "confirmed"}]


def on_site_in_week(days: list[dt.date], monday: dt.date) -> list[dt.date]:
    return [d for d in days if monday <= d < monday + dt.timedelta(days=7)]


def test_the_roster_filters_by_host_department() -> None:
    neurosurgery = chen().host_department
    start = selectors.monday(today())

    answer = api("office").get(
        roster_url(),
        {
            "start": start.isoformat(),
            "end": (start + dt.timedelta(days=13)).isoformat(),
            "department": str(neurosurgery.public_id),
        },
    )

    assert answer.status_code == 200
    assert [r["practitioner"] for r in answer.json()["rows"]] == ["陈志远"]
    assert answer.json()["rows"][0]["host_department"]["id"] == str(neurosurgery.public_id)


def test_a_roster_period_longer_than_93_days_or_backwards_is_400() -> None:
    start = dt.date(2026, 1, 1)

    long = api("office").get(
        roster_url(), {"start": start.isoformat(), "end": (start + dt.timedelta(days=93)).isoformat()}
    )
    longest = api("office").get(
        roster_url(), {"start": start.isoformat(), "end": (start + dt.timedelta(days=92)).isoformat()}
    )
    backwards = api("office").get(roster_url(), {"start": "2026-02-01", "end": "2026-01-01"})

    assert long.status_code == 400 and long.json()["errors"] == {"end": ["Ask for at most 93 days at a time."]}
    assert longest.status_code == 200
    assert backwards.status_code == 400 and backwards.json()["errors"] == {
        "end": ["The end cannot come before the start."]
    }


def test_the_roster_query_count_does_not_grow_with_rows_or_days(django_assert_max_num_queries: Any) -> None:
    office = api("office")
    start = selectors.monday(today())
    short = {"start": start.isoformat(), "end": (start + dt.timedelta(days=13)).isoformat()}
    office.get(roster_url(), short)
    with CaptureQueriesContext(connection) as baseline:
        assert len(office.get(roster_url(), short).json()["rows"]) == 6
    programme = Programme.objects.get(code=QUZHOU)
    for _n in range(4):
        extra = factories.assignment_create(programme, factories.expert_create(), starts_on=start, days_per_week=2)
        dispatch_services.roster_fix_day(actor=factories.user("office"), assignment=extra, date=start, kind="on_site")
    longer = {"start": (start - dt.timedelta(days=60)).isoformat(), "end": (start + dt.timedelta(days=27)).isoformat()}

    with django_assert_max_num_queries(len(baseline)):
        answer = office.get(roster_url(), longer)

    assert len(answer.json()["rows"]) == 10
    assert len(answer.json()["calendar"]) == 88


def optimise_url(code: str = QUZHOU) -> str:
    return f"{API}/programmes/{code}/roster/optimise"


def test_the_office_optimises_two_weeks_keeping_the_fixed_days_and_explaining_shortfalls(settings: Any) -> None:
    settings.YILIAN_ROSTER_TIME_LIMIT = 5
    own = chen()
    start = next_monday()
    end = start + dt.timedelta(days=13)
    workdays = selectors.calendar_horizon(start, end).working_days
    thursday = next(d for d in sorted(workdays) if start <= d <= end and d.isoweekday() == 4)
    office = api("office")
    latest = f"{API}/programmes/{QUZHOU}/roster/runs/latest"
    before = office.get(latest)
    # Neurosurgery needs an expert on Thursdays (its operating day); 陈志远, its only expert, is
    # fixed off on one.
    assert put(office, assignment_url(own, f"/roster/{thursday}"), {"kind": "off"}).status_code == 200

    run = post(office, optimise_url(), {"start": start.isoformat(), "weeks": 2})

    assert before.status_code == 404
    assert before.json()["detail"] == "The roster of this programme has not been optimised yet."
    assert run.status_code == 201, run.content
    body = run.json()
    assert (body["start"], body["weeks"]) == (start.isoformat(), 2)
    assert body["status"] in ("optimal", "feasible")
    assert isinstance(body["objective"], float) and isinstance(body["bound"], float)
    assert 0 <= body["gap"] <= 1 and body["demand_missing"] >= 1
    short = [s for s in body["shortfalls"] if s["kind"] == "day" and s["dates"] == [thursday.isoformat()]]
    assert short, body["shortfalls"]
    text = short[0]["text"]
    assert "Neurosurgery" in text and f"is short 1 expert on {thursday}" in text
    assert text.endswith("(operating day).")  # the department's need, in the caller's language
    assert "陈志远: set by hand as not on site on " + thursday.isoformat() in short[0]["reasons"]
    for s in body["shortfalls"]:
        assert s["text"] and "%(" not in s["text"] and "{" not in s["text"]
        assert all(isinstance(r, str) and r for r in s["reasons"])
    fixed = RosterDay.objects.get(assignment=own, date=thursday)
    assert (fixed.kind, fixed.is_fixed) == (DayKind.OFF, True)  # kept
    planned = RosterDay.objects.filter(assignment=own, date__range=(start, end), kind=DayKind.ON_SITE)
    assert planned.exists() and not planned.filter(date__week_day=3).exists()  # no Tuesday (Django: Sunday = 1)

    after = office.get(latest)
    by_expert = api("expert").get(latest)
    assert after.status_code == 200 and after.json()["id"] == body["id"]
    assert RosterRun.objects.get(public_id=body["id"]).programme.code == QUZHOU
    assert by_expert.status_code == 200 and by_expert.json()["shortfalls"] == body["shortfalls"]


def test_an_optimisation_that_does_not_start_on_a_monday_is_400() -> None:
    tuesday = next_monday() + dt.timedelta(days=1)

    refused = post(api("office"), optimise_url(), {"start": tuesday.isoformat(), "weeks": 2})

    assert refused.status_code == 400
    assert refused.json()["errors"] == {"start": ["A roster starts on a Monday."]}
    assert not RosterRun.objects.filter(programme__code=QUZHOU).exists()


def test_optimising_is_refused_to_the_expert_and_to_a_completed_programme() -> None:
    body = {"start": next_monday().isoformat(), "weeks": 2}

    by_expert = post(api("expert"), optimise_url(), body)
    too_many_weeks = post(api("office"), optimise_url(), {**body, "weeks": 13})
    completed = post(api("office"), optimise_url("zju2-qzph-1"), {"start": "2025-06-02", "weeks": 1})

    assert by_expert.status_code == 403
    assert by_expert.json()["detail"] == "Only the consortium office plans this consortium's stationing."
    assert too_many_weeks.status_code == 422
    assert completed.status_code == 409
    assert completed.json()["detail"] == "The programme is Completed; only planned or active programmes get a roster."
    assert not RosterRun.objects.exists()


def test_the_office_fixes_a_day_on_site_or_off_and_clears_it() -> None:
    own = chen()
    wednesday = next_monday() + dt.timedelta(days=2)
    friday = wednesday + dt.timedelta(days=2)
    office = api("office")

    on_site = put(office, assignment_url(own, f"/roster/{wednesday}"), {"kind": "on_site"})
    assert on_site.status_code == 200, on_site.content
    assert on_site.json() == {"date": wednesday.isoformat(), "kind": "on_site", "fixed": True}
    assert RosterDay.objects.get(assignment=own, date=wednesday).is_fixed

    cleared = put(office, assignment_url(own, f"/roster/{wednesday}"), {"kind": "clear"})
    assert cleared.json() == {"date": wednesday.isoformat(), "kind": "on_site", "fixed": False}  # left to the optimiser

    off = put(office, assignment_url(own, f"/roster/{friday}"), {"kind": "off"})
    assert off.json() == {"date": friday.isoformat(), "kind": "off", "fixed": True}
    cleared_off = put(office, assignment_url(own, f"/roster/{friday}"), {"kind": "clear"})
    assert cleared_off.json() == {"date": friday.isoformat(), "kind": None, "fixed": False}
    assert not RosterDay.objects.filter(assignment=own, date=friday).exists()


def test_fixing_a_day_is_refused_to_the_expert_and_on_his_home_duty_tuesday() -> None:
    own = chen()
    tuesday = next_monday() + dt.timedelta(days=1)
    url = assignment_url(own, f"/roster/{tuesday}")

    by_expert = put(api("expert"), url, {"kind": "off"})
    home_duty = put(api("office"), url, {"kind": "on_site"})
    unknown_kind = put(api("office"), url, {"kind": "maybe"})

    assert by_expert.status_code == 403
    assert home_duty.status_code == 400
    assert home_duty.json()["errors"] == {"date": ["陈志远 has home duties on this weekday (本院周二专家门诊)."]}
    assert unknown_kind.status_code == 422
    assert not RosterDay.objects.filter(assignment=own, date=tuesday).exists()


def test_a_stationing_refusal_is_in_chinese_by_default() -> None:
    tuesday = next_monday() + dt.timedelta(days=1)

    refused = put(api("office", language=""), assignment_url(chen(), f"/roster/{tuesday}"), {"kind": "on_site"})

    assert refused.status_code == 400
    assert "本院周二专家门诊" in refused.json()["detail"] and "home duties" not in refused.json()["detail"]


# ----------------------------------------------------------------------------------------
# Check-in, attendance and work logs


def test_the_expert_checks_in_once_today() -> None:
    own = chen()
    url = assignment_url(own, "/check-in")
    assert not Attendance.objects.filter(assignment=own, date=today()).exists()

    first = post(api("expert"), url, {})
    second = post(api("expert"), url, {})
    second_zh = post(api("expert", language=""), url, {})

    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["date"], body["status"], body["absence_reason"]) == (today().isoformat(), "checked_in", "")
    assert body["was_planned"] == RosterDay.objects.filter(assignment=own, date=today(), kind=DayKind.ON_SITE).exists()
    at = dt.datetime.fromisoformat(body["checked_in_at"]).astimezone(CHINA).strftime("%H:%M")
    assert second.status_code == 409 and second.json() == {"detail": f"Already checked in today at {at}."}
    assert second_zh.status_code == 409 and at in second_zh.json()["detail"]
    assert Attendance.objects.filter(assignment=own, date=today()).count() == 1


def test_only_the_expert_checks_in() -> None:
    refused = post(api("office"), assignment_url(chen(), "/check-in"), {})
    half_position = post(api("expert"), assignment_url(chen(), "/check-in"), {"latitude": 28.97})

    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only the stationed expert checks in for themselves."
    assert half_position.status_code == 400
    assert half_position.json()["errors"] == {"latitude": ["Send both latitude and longitude, or neither."]}
    assert not Attendance.objects.filter(assignment=chen(), date=today()).exists()


def attendance_url(assignment: Assignment, day: dt.date) -> str:
    return assignment_url(assignment, f"/attendance/{day}")


def test_the_host_s_administrator_confirms_a_past_day_and_records_an_absence_with_its_reason() -> None:
    # The demo hospadmin is a hospital administrator of qzph, the host of zju2-qzph-2.
    assert (
        User.objects.get(username="hospadmin")
        .memberships.filter(role="hospital_admin", institution__code="qzph")
        .exists()
    )
    own = chen()
    confirm_day = day_without_attendance(own, before=today())
    absent_day = day_without_attendance(own, before=confirm_day)
    host = api("hospadmin")

    confirmed = put(host, attendance_url(own, confirm_day), {"status": "confirmed"})
    no_reason = put(host, attendance_url(own, absent_day), {"status": "absent"})
    absent = put(host, attendance_url(own, absent_day), {"status": "absent", "reason": "本院临时手术任务"})
    twice = put(host, attendance_url(own, confirm_day), {"status": "confirmed"})
    future = put(host, attendance_url(own, today() + dt.timedelta(days=1)), {"status": "confirmed"})

    assert confirmed.status_code == 201, confirmed.content
    assert (confirmed.json()["date"], confirmed.json()["status"]) == (confirm_day.isoformat(), "confirmed")
    assert confirmed.json()["checked_in_at"] is None
    assert no_reason.status_code == 400 and no_reason.json()["errors"] == {"reason": ["An absence needs a reason."]}
    assert absent.status_code == 201
    assert (absent.json()["status"], absent.json()["absence_reason"]) == ("absent", "本院临时手术任务")
    assert twice.status_code == 409 and twice.json()["detail"] == "This day was already confirmed by the host."
    assert future.status_code == 400
    stored = {a.date: a.status for a in Attendance.objects.filter(assignment=own, date__in=[confirm_day, absent_day])}
    assert stored == {confirm_day: "confirmed", absent_day: "absent"}


def test_attendance_is_confirmed_by_the_host_only_but_the_expert_records_his_own_absence() -> None:
    own = chen()
    day = day_without_attendance(own, before=today())

    by_expert = put(api("expert"), attendance_url(own, day), {"status": "confirmed"})
    by_office = put(api("office"), attendance_url(own, day), {"status": "confirmed"})
    own_absence = put(api("expert"), attendance_url(own, day), {"status": "absent", "reason": "病假"})

    assert by_expert.status_code == by_office.status_code == 403
    assert by_expert.json()["detail"] == "Only the host's hospital administrators confirm attendance."
    assert own_absence.status_code == 201 and own_absence.json()["status"] == "absent"


def test_an_administrator_of_another_hospital_may_not_confirm() -> None:
    other = factories.hospital_admin("csph")
    _, key = registry_services.api_token_create(actor=None, user=other)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE="en")

    refused = put(client, attendance_url(chen(), today()), {"status": "confirmed"})

    assert refused.status_code == 403  # csph neither sends nor hosts the programme


def test_the_attendance_of_an_assignment_is_listed_newest_first() -> None:
    own = chen()
    start, end = today() - dt.timedelta(days=60), today()

    answer = api("expert").get(assignment_url(own, "/attendance"), {"from": start.isoformat(), "to": end.isoformat()})
    too_long = api("expert").get(assignment_url(own, "/attendance"), {"from": "2024-01-01", "to": "2025-12-31"})

    assert answer.status_code == 200, answer.content
    stored = Attendance.objects.filter(assignment=own, date__range=(start, end))
    rows = answer.json()
    assert len(rows) == stored.count() > 0
    assert [r["date"] for r in rows] == sorted((r["date"] for r in rows), reverse=True)
    assert {r["status"] for r in rows} <= {"checked_in", "confirmed", "absent"}
    assert all(r["absence_reason"] for r in rows if r["status"] == "absent")
    assert too_long.status_code == 400 and too_long.json()["errors"] == {"end": ["Ask for at most 367 days at a time."]}


def work_log_body(**overrides: Any) -> dict[str, Any]:
    local = Practitioner.objects.filter(institution__code="qzph").order_by("pk").first()
    assert local is not None
    body: dict[str, Any] = {
        "outpatient_sessions": 1,
        "patients_seen": 23,
        "ward_rounds": 1,
        "teaching_sessions": 1,
        "operations": [
            {
                "procedure": "幕上深部血肿清除术",
                "procedure_code": "01.3901",
                "level": 3,
                "role": "supervisor",
                "local_surgeon": str(local.public_id),
            },
            {"procedure": "慢性硬膜下血肿钻孔引流术", "level": 2, "role": "operator"},
        ],
        "note": "带教本院医生完成血肿清除",
    }
    body.update(overrides)
    return body


def test_the_expert_logs_the_day_s_work_after_checking_in_and_may_replace_it() -> None:
    own = chen()
    url = assignment_url(own, f"/work-logs/{today()}")
    expert = api("expert")

    before = put(expert, url, work_log_body())
    assert post(expert, assignment_url(own, "/check-in"), {}).status_code == 201
    logged = put(expert, url, work_log_body())
    replaced = put(expert, url, work_log_body(operations=[], patients_seen=30))

    assert before.status_code == 409
    assert before.json()["detail"] == "Check in (or have the host confirm the day) before logging the day's work."
    assert logged.status_code == 200, logged.content
    body = logged.json()
    assert (body["date"], body["patients_seen"], body["note"]) == (today().isoformat(), 23, "带教本院医生完成血肿清除")
    supervised, operated = body["operations"]
    local = Practitioner.objects.get(public_id=supervised["local_surgeon"])
    assert local.institution.code == "qzph" and supervised["local_surgeon_name"] == local.name_zh
    assert (supervised["level"], supervised["role"]) == (3, "supervisor")
    assert (operated["role"], operated["local_surgeon"]) == ("operator", None)
    assert replaced.status_code == 200 and replaced.json()["operations"] == []
    log = WorkLog.objects.get(assignment=own, date=today())
    assert (log.patients_seen, log.operations.count()) == (30, 0)


def test_a_work_log_with_a_level_5_operation_or_a_surgeon_of_another_hospital_is_refused() -> None:
    own = chen()
    url = assignment_url(own, f"/work-logs/{today()}")
    assert post(api("expert"), assignment_url(own, "/check-in"), {}).status_code == 201
    outsider = Practitioner.objects.filter(institution__code="csph").first()
    assert outsider is not None
    operation = work_log_body()["operations"][0]

    level_5 = put(api("expert"), url, work_log_body(operations=[{**operation, "level": 5}]))
    foreign = put(
        api("expert"), url, work_log_body(operations=[{**operation, "local_surgeon": str(outsider.public_id)}])
    )
    unnamed = put(api("expert"), url, work_log_body(operations=[{**operation, "local_surgeon": None}]))
    by_office = put(api("office"), url, work_log_body())

    assert level_5.status_code == 422
    assert level_5.json()["errors"] == {"body.payload.operations.0.level": ["Must be at most 4."]}
    assert foreign.status_code == 400
    assert foreign.json()["errors"] == {"operations.0": ["The local surgeon must work at the host hospital."]}
    assert unnamed.status_code == 400
    assert unnamed.json()["errors"] == {"operations.0": ["Name the local surgeon who operated with you."]}
    assert by_office.status_code == 403
    assert not WorkLog.objects.filter(assignment=own, date=today()).exists()


def test_the_work_logs_of_an_assignment_are_listed() -> None:
    own = chen()
    start, end = today() - dt.timedelta(days=30), today()

    answer = api("office").get(assignment_url(own, "/work-logs"), {"from": start.isoformat(), "to": end.isoformat()})

    assert answer.status_code == 200
    stored = WorkLog.objects.filter(assignment=own, date__range=(start, end))
    rows = answer.json()
    assert len(rows) == stored.count() > 0
    assert sum(len(r["operations"]) for r in rows) == sum(log.operations.count() for log in stored)
    assert sum(r["patients_seen"] for r in rows) == sum(log.patients_seen for log in stored)


def test_the_attendance_report_counts_the_stored_days_per_expert_and_month() -> None:
    start = (today() - dt.timedelta(days=90)).replace(day=1)
    end = today() - dt.timedelta(days=1)

    answer = api("hospadmin").get(
        f"{API}/programmes/{QUZHOU}/attendance-report", {"from": start.isoformat(), "to": end.isoformat()}
    )

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["months"][0] == f"{start:%Y-%m}" and body["months"][-1] == f"{end:%Y-%m}"
    assert len(body["lines"]) == 6
    stored = Attendance.objects.filter(assignment__programme__code=QUZHOU, date__range=(start, end))
    assert body["total"]["delivered"] == stored.filter(status__in=PRESENT).count() > 0
    assert body["total"]["absent"] == stored.filter(status="absent").count()
    chen_line = next(line for line in body["lines"] if line["practitioner"] == "陈志远")
    assert chen_line["total"]["delivered"] == stored.filter(assignment=chen(), status__in=PRESENT).count()
    assert sum(m["delivered"] for m in chen_line["months"].values()) == chen_line["total"]["delivered"]
    assert set(chen_line["months"]) == set(body["months"])
    weeks = ((end - start).days + 1) / 7 + 1  # ISO weeks touched
    assert 0 < chen_line["total"]["committed"] <= 3 * weeks  # 3 days a week at most


# ----------------------------------------------------------------------------------------
# Indicator figures


def experts_running(programmes: Any, start: dt.date, end: dt.date) -> tuple[set[int], int]:
    """The distinct practitioners with an assignment of ``programmes`` running in the period, and
    how many such assignments there are."""
    running = (
        Assignment.objects.filter(programme__in=programmes, starts_on__lte=end)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=start))
        .filter(Q(withdrawn_on__isnull=True) | Q(withdrawn_on__gte=start))
    )
    return set(running.values_list("practitioner_id", flat=True)), running.count()


def test_the_figures_per_host_match_the_stored_assignments_and_attendance() -> None:
    # From before batch 1 ended (2025-08-31) to today: both Quzhou batches run in the period,
    # and the experts of both count once.
    start, end = dt.date(2025, 8, 1), today()

    answer = api("office").get(f"{API}/figures", {"from": start.isoformat(), "to": end.isoformat()})

    assert answer.status_code == 200, answer.content
    by_host = {f["institution"]["code"]: f for f in answer.json()}
    assert set(by_host) == {"qzph", "khph"}  # the office's consortium hosts; not Bijie
    experts, assignments = experts_running(Programme.objects.filter(host_institution__code="qzph"), start, end)
    qzph = by_host["qzph"]
    assert qzph["doctors_stationed"] == len(experts) == 7
    assert assignments == 11  # 5 in batch 1, 6 in batch 2: four people in both
    delivered = Attendance.objects.filter(
        assignment__programme__host_institution__code="qzph", date__range=(start, end), status__in=PRESENT
    )
    assert qzph["days_delivered"] == delivered.count() > 0
    logs = WorkLog.objects.filter(assignment__programme__host_institution__code="qzph", date__range=(start, end))
    assert qzph["registrations"] == sum(logs.values_list("patients_seen", flat=True)) > 0
    assert qzph["operations"] >= qzph["operations_level_34"] > 0
    assert qzph["days_committed"] >= qzph["days_delivered"] * 0.8


def test_the_figures_follow_the_caller_s_scope_and_period() -> None:
    start, end = today() - dt.timedelta(days=365), today()
    period = {"from": start.isoformat(), "to": end.isoformat()}

    expert = api("expert").get(f"{API}/figures", period)
    admin = api("admin").get(f"{API}/figures", period)
    doctor = api("doctor").get(f"{API}/figures", period)
    too_long = api("admin").get(f"{API}/figures", {"from": "2020-01-01", "to": "2026-01-01"})

    assert [f["institution"]["code"] for f in expert.json()] == ["qzph"]  # only his own programmes
    his, _n = experts_running(Programme.objects.filter(assignments__practitioner__user__username="expert"), start, end)
    assert expert.json()[0]["doctors_stationed"] == len(his)
    assert {f["institution"]["code"] for f in admin.json()} == {"bjfph", "khph", "qzph"}
    bjfph = next(f for f in admin.json() if f["institution"]["code"] == "bjfph")
    bijie, _n = experts_running(Programme.objects.filter(host_institution__code="bjfph"), start, end)
    assert bjfph["doctors_stationed"] == len(bijie) >= 17
    assert bjfph["days_delivered"] == (
        Attendance.objects.filter(
            assignment__programme__host_institution__code="bjfph", date__range=(start, end), status__in=PRESENT
        ).count()
    )
    assert doctor.status_code == 403
    assert too_long.status_code == 400


# ----------------------------------------------------------------------------------------
# The description


def test_the_openapi_description_lists_every_stationing_operation() -> None:
    answer = api("office").get("/api/v1/openapi.json")

    assert answer.status_code == 200
    paths = answer.json()["paths"]
    expected = {
        "/api/v1" + path: {method.lower() for operation in view.operations for method in operation.methods}
        for path, view in router.path_operations.items()
    }
    assert len(expected) == 24 and sum(len(m) for m in expected.values()) == 31
    for path, methods in expected.items():
        assert path in paths, path
        assert set(paths[path]) >= methods, path
        for method in methods:
            operation = paths[path][method]
            assert operation["tags"] == ["stationing"]
            assert {"200", "201", "204"} & set(operation["responses"]), path
            assert {"400", "403", "404", "422"} <= set(operation["responses"]), path
    assert "stationing" in answer.json()["info"]["description"]
