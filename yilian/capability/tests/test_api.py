"""The capability-building API as a client sees it: the office keeping the techniques catalogue, a
ledger at Quzhou People's Hospital (qzph) advanced on evidence up to independence once the hospital
granted the privilege, a regional first contradicted by an earlier case, a teaching session with
one-time sign-in codes, a training programme whose assessments only the mentor signs off, scope
refusals, and messages in the request's language.

Runs on the demo: the ``office`` runs zju2-quzhou (qzph is a member), ``hospadmin`` administers
qzph, ``doctor`` is a doctor at csph, ``bijie`` a doctor at bjfph outside that consortium. People are
made fresh with the stationing builders so that tests never depend on the demo's own capability rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.translation import gettext, override

from yilian.capability.models import Assessment, TeachingAttendance, Technique
from yilian.core.permissions import Role
from yilian.dispatch.tests import factories
from yilian.registry import services as registry_services
from yilian.registry.models import Discipline, Practitioner, User

pytestmark = pytest.mark.django_db

API = "/api/v1/capability"
HOST = "qzph"


def api(who: str | User, language: str = "en") -> Client:
    """A client with a fresh API token (English unless told; ``language=""`` sends no header, so the
    default language, Chinese, applies)."""
    user = who if isinstance(who, User) else User.objects.get(username=who)
    _, key = registry_services.api_token_create(actor=None, user=user)
    headers: dict[str, str] = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    if language:
        headers["HTTP_ACCEPT_LANGUAGE"] = language
    return Client(**headers)  # type: ignore[arg-type]


def post(client: Client, url: str, body: Any = None) -> Any:
    return client.post(url, body if body is not None else {}, content_type="application/json")


def patch(client: Client, url: str, body: Any) -> Any:
    return client.patch(url, body, content_type="application/json")


def today() -> dt.date:
    return timezone.localdate()


def ago(days: int) -> str:
    return (today() - dt.timedelta(days=days)).isoformat()


def person(institution_code: str = HOST, role: Role = Role.DOCTOR) -> Practitioner:
    """A practitioner of ``institution_code`` with an account of ``role`` there."""
    account = factories.user_with_role(role, institution_code=institution_code)
    return factories.practitioner_create(institution_code=institution_code, account=account)


def account(practitioner: Practitioner) -> User:
    assert practitioner.user is not None
    return practitioner.user


# ----------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def technique() -> Technique:
    """A level-4 neurosurgical technique, added by the office through the API."""
    code = f"t-{uuid.uuid4().hex[:8]}"
    answer = post(
        api("office"),
        f"{API}/techniques",
        {
            "code": code,
            "name_zh": f"神经内镜下颅内血肿清除术（{code}）",
            "name_en": "Endoscopic evacuation of intracerebral haematoma",
            "operation_code": f"ZZ{uuid.uuid4().hex[:6]}",  # matches no record of the demo
            "level": 4,
            "discipline": Discipline.NEUROSURGERY,
        },
    )
    assert answer.status_code == 201, answer.content
    return Technique.objects.get(code=code)


@pytest.fixture
def surgeon() -> Practitioner:
    return factories.practitioner_create(institution_code=HOST, name_zh="周志强")


@pytest.fixture
def expert() -> Practitioner:
    return factories.expert_create()


@pytest.fixture
def ledger(technique: Technique, expert: Practitioner) -> dict[str, Any]:
    """The technique's ledger at qzph's neurosurgery, opened by the office."""
    department = factories.department(HOST)
    answer = post(
        api("office"),
        f"{API}/transfers",
        {"department": str(department.public_id), "technique": technique.code, "expert": str(expert.public_id)},
    )
    assert answer.status_code == 201, answer.content
    body: dict[str, Any] = answer.json()
    return body


def add_case(ledger: dict[str, Any], performed_on: str, role: str, surgeon: Practitioner | None = None) -> str:
    body: dict[str, Any] = {"performed_on": performed_on, "local_role": role}
    if surgeon is not None:
        body["local_surgeon"] = str(surgeon.public_id)
    answer = post(api("office"), f"{API}/transfers/{ledger['id']}/cases", body)
    assert answer.status_code == 201, answer.content
    case_id: str = answer.json()["id"]
    return case_id


def advance(ledger: dict[str, Any], case_id: str, who: str = "office") -> Any:
    return post(api(who), f"{API}/transfers/{ledger['id']}/steps", {"evidence": case_id})


# ----------------------------------------------------------------------------------------
# Catalogue


def test_the_office_adds_a_technique_and_a_doctor_is_refused(technique: Technique) -> None:
    answer = api("office").get(f"{API}/techniques/{technique.code}")

    assert answer.status_code == 200
    assert answer.json()["level"] == 4 and answer.json()["restricted"] is False
    assert answer.json()["name"] == "Endoscopic evacuation of intracerebral haematoma"
    listed = api("doctor").get(f"{API}/techniques", {"q": technique.code})
    assert listed.status_code == 200 and listed.json()["count"] == 1
    refused = post(
        api("doctor"),
        f"{API}/techniques",
        {"code": "t-doctor", "name_zh": "某技术", "level": 2, "discipline": Discipline.NEUROSURGERY},
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only the consortium office keeps the techniques catalogue."
    assert not Technique.objects.filter(code="t-doctor").exists()


def test_a_restricted_technique_must_be_level_4() -> None:
    answer = post(
        api("office"),
        f"{API}/techniques",
        {"code": "t-restricted-3", "name_zh": "限制类技术", "level": 3, "restricted": True, "discipline": "cardiology"},
    )

    assert answer.status_code == 400, answer.content
    assert "A restricted technique is a level-4 operation." in answer.json()["detail"]
    assert not Technique.objects.filter(code="t-restricted-3").exists()


def test_the_office_changes_only_the_fields_sent_and_a_doctor_may_not(technique: Technique) -> None:
    answer = patch(api("office"), f"{API}/techniques/{technique.code}", {"restricted": True})

    assert answer.status_code == 200, answer.content
    assert answer.json()["restricted"] is True and answer.json()["level"] == 4
    assert patch(api("doctor"), f"{API}/techniques/{technique.code}", {"level": 3}).status_code == 403
    assert patch(api("office"), f"{API}/techniques/{technique.code}", {"level": 3}).status_code == 400
    assert api("office").get(f"{API}/techniques/no-such-technique").status_code == 404


# ----------------------------------------------------------------------------------------
# The ledger


def test_a_ledger_advances_on_evidence_up_to_independence_after_the_privilege(
    ledger: dict[str, Any], surgeon: Practitioner, technique: Technique
) -> None:
    introduced = add_case(ledger, ago(60), "none")
    assisted = add_case(ledger, ago(50), "assisted", surgeon)
    alone = add_case(ledger, ago(10), "independent", surgeon)

    assert advance(ledger, introduced).status_code == 201
    # Independence straight after assisting: the ledger holds no supervised case of the surgeon.
    assert advance(ledger, assisted).status_code == 201
    skipped = advance(ledger, alone)
    assert skipped.status_code == 400, skipped.content
    assert "cannot skip the stage" in skipped.json()["detail"]
    assert "evidence" in skipped.json()["errors"]

    supervised = add_case(ledger, ago(30), "supervised", surgeon)
    step = advance(ledger, supervised)
    assert step.status_code == 201, step.content
    assert [s["stage"] for s in step.json()["steps"]] == ["supervised"]
    assert step.json()["ledger"]["stage"] == "supervised"

    no_privilege = advance(ledger, alone)
    assert no_privilege.status_code == 400
    assert "held no privilege" in no_privilege.json()["detail"]

    granted = post(
        api("hospadmin"),
        f"{API}/privileges",
        {"practitioner": str(surgeon.public_id), "technique": technique.code, "granted_on": ago(20)},
    )
    assert granted.status_code == 201, granted.content
    assert granted.json()["current"] is True
    independent = advance(ledger, alone)
    assert independent.status_code == 201, independent.content
    assert independent.json()["steps"][0]["privilege"] == granted.json()["id"]
    assert independent.json()["ledger"]["days_to_independence"] == 50

    detail = api("office").get(f"{API}/transfers/{ledger['id']}").json()
    assert detail["stage"] == "independent"
    assert [s["stage"] for s in detail["steps"]] == ["introduced", "assists", "supervised", "independent"]
    assert [s["reached_on"] for s in detail["stages"]] == [ago(60), ago(50), ago(30), ago(10)]
    assert len(detail["cases"]) == 4
    (progress,) = detail["surgeons"]
    assert progress["surgeon"]["id"] == str(surgeon.public_id) and progress["stage"] == "independent"
    assert progress["cases"] == 3 and progress["privilege"]["id"] == granted.json()["id"]
    assert {(o["operator"], o["local"], o["cases"]) for o in detail["by_operator"]} == {
        (ledger["expert"]["name_zh"], False, 2),
        ("周志强", True, 2),
    }
    assert "licence_number" not in str(detail)
    assert advance(ledger, alone).status_code == 409


def test_the_ledger_list_filters_and_a_second_ledger_of_the_technique_collides(
    ledger: dict[str, Any], expert: Practitioner, technique: Technique
) -> None:
    listed = api("office").get(f"{API}/transfers", {"institution": HOST, "technique": technique.code})

    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["items"]] == [ledger["id"]]
    assert (
        api("office").get(f"{API}/transfers", {"technique": technique.code, "stage": "independent"}).json()["count"]
        == 0
    )
    again = post(
        api("office"),
        f"{API}/transfers",
        {
            "department": ledger["department"]["id"],
            "technique": technique.code,
            "expert": str(expert.public_id),
        },
    )
    assert again.status_code == 409
    collected = post(api("office"), f"{API}/transfers/{ledger['id']}/collect")
    assert collected.status_code == 200, collected.content
    assert set(collected.json()) == {"from_work_logs", "from_activity", "total", "unmatched_surgeons"}


def test_a_privilege_is_revoked_once_and_only_by_the_surgeon_s_hospital(
    surgeon: Practitioner, technique: Technique
) -> None:
    refused = post(
        api("office"),
        f"{API}/privileges",
        {"practitioner": str(surgeon.public_id), "technique": technique.code, "granted_on": ago(5)},
    )
    assert refused.status_code == 403
    granted = post(
        api("hospadmin"),
        f"{API}/privileges",
        {"practitioner": str(surgeon.public_id), "technique": technique.code, "granted_on": ago(5)},
    ).json()

    revoked = post(api("hospadmin"), f"{API}/privileges/{granted['id']}/revoke", {"on": ago(1), "reason": "离职"})

    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["revoked_on"] == ago(1) and revoked.json()["current"] is False
    again = post(api("hospadmin"), f"{API}/privileges/{granted['id']}/revoke", {"on": ago(1), "reason": "离职"})
    assert again.status_code == 409
    listed = api("hospadmin").get(f"{API}/privileges", {"technique": technique.code}).json()
    assert [p["id"] for p in listed["items"]] == [granted["id"]]
    assert (
        post(api("hospadmin"), f"{API}/privileges/{uuid.uuid4()}/revoke", {"on": ago(1), "reason": "x"}).status_code
        == 404
    )


# ----------------------------------------------------------------------------------------
# Regional firsts


def test_a_first_contradicted_by_an_earlier_case_in_the_city(ledger: dict[str, Any], technique: Technique) -> None:
    add_case(ledger, ago(100), "none")

    answer = post(
        api("office"),
        f"{API}/firsts",
        {
            "technique": technique.code,
            "institution": HOST,
            "performed_on": ago(20),
            "region": "330800",
            "description": "衢州市首例",
        },
    )

    assert answer.status_code == 201, answer.content
    claim = answer.json()
    assert claim["status"] == "contradicted"
    assert claim["region"]["code"] == "330800" and claim["macro_region"] is None
    assert claim["evidence"]["earlier"]["date"] == ago(100)
    assert claim["evidence"]["earlier"]["institution"] == HOST
    assert set(claim) >= {"id", "technique", "institution", "performed_on", "region_name", "checked_at", "case"}
    detail = api("office").get(f"{API}/firsts/{claim['id']}")
    assert detail.status_code == 200 and detail.json() == claim | {"checked_at": detail.json()["checked_at"]}
    again = post(api("office"), f"{API}/firsts/{claim['id']}/verify")
    assert again.status_code == 200 and again.json()["status"] == "contradicted"
    listed = api("office").get(f"{API}/firsts", {"status": "contradicted", "institution": HOST}).json()
    assert claim["id"] in {c["id"] for c in listed["items"]}
    both = post(
        api("office"),
        f"{API}/firsts",
        {
            "technique": technique.code,
            "institution": HOST,
            "performed_on": ago(20),
            "region": "330800",
            "macro_region": "east",
        },
    )
    assert both.status_code == 400 and "region" in both.json()["errors"]


# ----------------------------------------------------------------------------------------
# Teaching


@pytest.fixture
def lecture(expert: Practitioner) -> dict[str, Any]:
    """A one-hour lecture at qzph that started ten minutes ago, recorded by the office."""
    now = timezone.now()
    answer = post(
        api("office"),
        f"{API}/teaching",
        {
            "kind": "lecture",
            "topic": "脑出血的微创治疗",
            "starts_at": (now - dt.timedelta(minutes=10)).isoformat(),
            "ends_at": (now + dt.timedelta(minutes=50)).isoformat(),
            "leader": str(expert.public_id),
            "institutions": [HOST],
            "place": "行政楼报告厅",
        },
    )
    assert answer.status_code == 201, answer.content
    body: dict[str, Any] = answer.json()
    return body


def issue_code(lecture: dict[str, Any]) -> dict[str, Any]:
    answer = post(api("office"), f"{API}/teaching/{lecture['id']}/codes")
    assert answer.status_code == 201, answer.content
    body: dict[str, Any] = answer.json()
    return body


def test_an_attendee_signs_in_once_with_a_one_time_code_and_is_credited_the_hours(lecture: dict[str, Any]) -> None:
    assert lecture["hours"] == 1.0 and lecture["attendances"] == []
    code = issue_code(lecture)
    assert f"/capability/teaching/{lecture['id']}/sign-in/" in code["url"]
    assert code["url"].endswith(f"?code={code['code']}")
    attendee = person("csph")

    signed = post(api(account(attendee)), f"{API}/teaching/{lecture['id']}/sign-in", {"code": code["code"]})

    assert signed.status_code == 201, signed.content
    assert signed.json()["practitioner"]["id"] == str(attendee.public_id)
    assert signed.json()["method"] == "qr" and signed.json()["hours"] == 1.0
    used = post(api(account(person("csph"))), f"{API}/teaching/{lecture['id']}/sign-in", {"code": code["code"]})
    assert used.status_code == 409
    assert used.json()["detail"] == "This sign-in code has already been used. Scan the new code on the screen."
    detail = api("office").get(f"{API}/teaching/{lecture['id']}").json()
    assert [a["practitioner"]["id"] for a in detail["attendances"]] == [str(attendee.public_id)]
    assert detail["hours_credited"] == 1.0
    assert TeachingAttendance.objects.get(practitioner=attendee).hours == 1


def test_an_expired_code_is_refused(lecture: dict[str, Any], time_machine: Any) -> None:
    code = issue_code(lecture)
    time_machine.move_to(timezone.now() + dt.timedelta(minutes=3), tick=False)

    answer = post(api(account(person("csph"))), f"{API}/teaching/{lecture['id']}/sign-in", {"code": code["code"]})

    assert answer.status_code == 400
    assert answer.json()["errors"]["code"] == ["This sign-in code has expired. Scan the new code on the screen."]


def test_the_organiser_records_an_attendee_changes_and_cancels_the_activity(lecture: dict[str, Any]) -> None:
    attendee = factories.practitioner_create(institution_code=HOST)
    recorded = post(
        api("office"), f"{API}/teaching/{lecture['id']}/attendances", {"practitioner": str(attendee.public_id)}
    )
    assert recorded.status_code == 201 and recorded.json()["method"] == "recorded"
    assert (
        post(
            api("office"), f"{API}/teaching/{lecture['id']}/attendances", {"practitioner": str(attendee.public_id)}
        ).status_code
        == 409
    )

    instant = patch(api("office"), f"{API}/teaching/{lecture['id']}", {"ends_at": lecture["starts_at"]})
    assert instant.status_code == 400 and "ends_at" in instant.json()["errors"]
    moved = patch(
        api("office"),
        f"{API}/teaching/{lecture['id']}",
        {"ends_at": (dt.datetime.fromisoformat(lecture["ends_at"]) + dt.timedelta(hours=1)).isoformat()},
    )
    assert moved.status_code == 200, moved.content
    assert moved.json()["hours"] == 2.0 and moved.json()["attendances"][0]["hours"] == 2.0
    assert patch(api("doctor"), f"{API}/teaching/{lecture['id']}", {"topic": "x"}).status_code == 403

    cancelled = post(api("office"), f"{API}/teaching/{lecture['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
    assert post(api("office"), f"{API}/teaching/{lecture['id']}/cancel").status_code == 409
    assert post(api("office"), f"{API}/teaching/{lecture['id']}/codes").status_code == 409
    listed = api("office").get(f"{API}/teaching", {"institution": HOST, "kind": "lecture", "from": ago(1)}).json()
    assert lecture["id"] in {a["id"] for a in listed["items"]}


# ----------------------------------------------------------------------------------------
# Training


@pytest.fixture
def studio() -> dict[str, Any]:
    """A master-doctor studio at qzph (by its administrator) with one milestone and one mentee."""
    mentor = person(HOST)
    mentee = factories.practitioner_create(institution_code=HOST)
    admin = api("hospadmin")
    programme = post(
        admin,
        f"{API}/training",
        {
            "kind": "studio",
            "name_zh": "神经外科名医工作室",
            "institution": HOST,
            "mentor": str(mentor.public_id),
            "starts_on": ago(200),
        },
    )
    assert programme.status_code == 201, programme.content
    pid = programme.json()["id"]
    milestone = post(admin, f"{API}/training/{pid}/milestones", {"title_zh": "独立完成脑室穿刺", "due_months": 3})
    assert milestone.status_code == 201, milestone.content
    joined = post(
        admin, f"{API}/training/{pid}/mentees", {"practitioner": str(mentee.public_id), "joined_on": ago(100)}
    )
    assert joined.status_code == 201, joined.content
    return {"id": pid, "mentor": mentor, "milestone": milestone.json()["id"], "mentee": joined.json()["id"]}


def test_only_the_mentor_signs_an_assessment_off_and_only_once(studio: dict[str, Any]) -> None:
    mentor = api(account(studio["mentor"]))
    assessed = post(
        mentor,
        f"{API}/mentees/{studio['mentee']}/assessments",
        {"milestone": studio["milestone"], "assessed_on": ago(3), "result": "passed", "score": 88},
    )
    assert assessed.status_code == 201, assessed.content
    assert assessed.json()["counts"] is False
    url = f"{API}/assessments/{assessed.json()['id']}/sign-off"

    assert post(api("hospadmin"), url).status_code == 403
    signed = post(mentor, url)
    assert signed.status_code == 200, signed.content
    assert signed.json()["counts"] is True and signed.json()["signed_off_at"] is not None
    again = post(mentor, url)
    assert again.status_code == 409
    assert again.json()["detail"] == "This assessment was already signed off."
    assert Assessment.objects.get(public_id=assessed.json()["id"]).signed_off_by == account(studio["mentor"])

    progress = api("hospadmin").get(f"{API}/mentees/{studio['mentee']}").json()
    assert progress["reached"] == 1 and progress["milestones_total"] == 1
    assert progress["milestones"][0]["reached_on"] == ago(3)
    detail = api("hospadmin").get(f"{API}/training/{studio['id']}").json()
    assert [m["id"] for m in detail["milestones"]] == [studio["milestone"]]
    assert [m["id"] for m in detail["mentees"]] == [studio["mentee"]] and detail["mentees"][0]["reached"] == 1
    assert api("hospadmin").get(f"{API}/training", {"institution": HOST, "kind": "studio"}).json()["count"] >= 1


# ----------------------------------------------------------------------------------------
# Scope and language


def test_a_user_outside_the_scope_is_refused_and_an_unknown_id_is_not_found(
    ledger: dict[str, Any], lecture: dict[str, Any], studio: dict[str, Any]
) -> None:
    outsider = api("bijie")

    assert outsider.get(f"{API}/transfers/{ledger['id']}").status_code == 403
    assert outsider.get(f"{API}/teaching/{lecture['id']}").status_code == 403
    assert outsider.get(f"{API}/training/{studio['id']}").status_code == 403
    assert outsider.get(f"{API}/mentees/{studio['mentee']}").status_code == 403
    assert ledger["id"] not in {t["id"] for t in outsider.get(f"{API}/transfers").json()["items"]}
    assert (
        post(
            outsider, f"{API}/transfers/{ledger['id']}/cases", {"performed_on": ago(1), "local_role": "none"}
        ).status_code
        == 403
    )
    for path in ("transfers", "teaching", "training", "mentees", "firsts"):
        assert api("office").get(f"{API}/{path}/{uuid.uuid4()}").status_code == 404
    assert api("office").get(f"{API}/transfers/not-an-id").status_code == 422


def test_messages_follow_the_request_s_language(ledger: dict[str, Any]) -> None:
    url = f"{API}/transfers/{ledger['id']}/cases"

    chinese = post(api("office", language=""), url, {"local_role": "none"})
    english = post(api("office"), url, {"local_role": "none"})

    assert chinese.status_code == english.status_code == 422
    assert chinese.json()["errors"]["body.payload.performed_on"] == ["该字段为必填项。"]
    assert english.json()["errors"]["body.payload.performed_on"] == ["This field is required."]
    refused = post(
        api("doctor", language=""),
        f"{API}/techniques",
        {"code": "t-x", "name_zh": "x", "level": 1, "discipline": "cardiology"},
    )
    assert refused.status_code == 403
    with override("zh-hans"):
        assert refused.json()["detail"] == gettext("Only the consortium office keeps the techniques catalogue.")


def test_figures_count_by_month_and_institution(ledger: dict[str, Any], surgeon: Practitioner) -> None:
    introduced = add_case(ledger, ago(40), "none")
    add_case(ledger, ago(30), "supervised", surgeon)
    assert advance(ledger, introduced).status_code == 201

    answer = api("office").get(f"{API}/figures", {"start": ago(60), "end": today().isoformat()})

    assert answer.status_code == 200, answer.content
    rows = [r for r in answer.json() if r["institution"] == HOST]
    assert sum(r["techniques_introduced"] for r in rows) >= 1
    assert sum(r["ops_34_local"] for r in rows) >= 1
    assert all(len(r["month"]) == 7 for r in answer.json())
    backwards = api("office").get(f"{API}/figures", {"start": today().isoformat(), "end": ago(1)})
    assert backwards.status_code == 400 and "end" in backwards.json()["errors"]


def test_the_ledger_list_reads_a_fixed_number_of_queries_whatever_its_length(
    ledger: dict[str, Any], technique: Technique
) -> None:
    client = api("office")
    client.get(f"{API}/transfers")  # the token's first use is recorded once
    with CaptureQueriesContext(connection) as one:
        assert client.get(f"{API}/transfers", {"technique": technique.code}).json()["count"] == 1
    another = factories.department(HOST, Discipline.CARDIOLOGY)
    opened = post(
        client,
        f"{API}/transfers",
        {"department": str(another.public_id), "technique": technique.code, "expert": ledger["expert"]["id"]},
    )
    assert opened.status_code == 201, opened.content

    with CaptureQueriesContext(connection) as two:
        assert client.get(f"{API}/transfers", {"technique": technique.code}).json()["count"] == 2

    assert len(two.captured_queries) == len(one.captured_queries)
