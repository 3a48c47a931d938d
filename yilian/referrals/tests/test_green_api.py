"""The green-channel API as a client sees it: activation, answers and re-offers, time nodes with
corrections, boards without patient identity, audited case reads, the monthly report, protocol
versions and the consortium's settings, and the operations' contract under fuzzing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from stdnum.cn import ric

from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD
from yilian.patients.models import Patient
from yilian.referrals import green_services
from yilian.referrals.models import GreenCase, GreenProtocol, Referral
from yilian.registry import services as registry_services
from yilian.registry.models import Consortium, Institution, User

pytestmark = pytest.mark.django_db

CHINA = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def api(persona: Any) -> Any:
    """A client with a bearer token of a demo persona (or of a user given as such)."""

    def make(who: str | User, language: str = "en") -> Client:
        user = who if isinstance(who, User) else persona(who)
        _, key = registry_services.api_token_create(actor=None, user=user)
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE=language)

    return make


@pytest.fixture
def green(neuro: Consortium) -> Consortium:
    """The Quzhou neurosurgery alliance with the default green-channel protocols."""
    green_services.green_protocols_install_defaults(consortium=neuro)
    return neuro


def fresh_id_number(birth: str = "19600812", county: str = "330822") -> str:
    """A valid resident ID number (a man) that no patient holds yet."""
    for seq in range(1, 999, 2):
        stem = f"{county}{birth}{seq:03d}"
        number = stem + ric.calc_check_digit(stem + "0")
        if not Patient.objects.filter(id_number=number).exists():
            return number
    raise AssertionError("no free ID number")


def ago(minutes: int) -> str:
    """A China-time moment ``minutes`` ago, to the second (answers give milliseconds)."""
    return (timezone.localtime().replace(microsecond=0) - dt.timedelta(minutes=minutes)).isoformat()


def activation_body(**overrides: Any) -> dict[str, Any]:
    """Story A's 66-year-old, unidentified for now: stroke during morning exercise 90 minutes ago,
    CTA large-vessel occlusion at Changshan, for thrombectomy at the city hospital."""
    body: dict[str, Any] = {
        "sender": "csph",
        "protocol": "stroke",
        "consortium": "quzhou-neuro",
        "patient": {"name": "", "sex": "male", "approximate_age": 66, "id_number": ""},
        "onset_at": ago(90),
        "onset_unknown": False,
        "scores": {"nihss": 14},
        "imaging_done": True,
        "findings": ["lvo"],
        "imaging_result": "CTA 左侧 M1 闭塞",
        "note": "晨练时突发右侧肢体无力",
        "destination": "qzph",
        "door_in_at": ago(40),
    }
    body.update(overrides)
    return body


def activate(client: Client, body: dict[str, Any] | None = None) -> Any:
    return client.post("/api/v1/green/cases", body or activation_body(), content_type="application/json")


def step(client: Client, case_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(f"/api/v1/green/cases/{case_id}/{action}", body or {}, content_type="application/json")


@pytest.fixture
def activated(api: Any, green: Consortium) -> dict[str, Any]:
    """The stroke case the Changshan doctor has activated towards Quzhou People's Hospital."""
    response = activate(api("doctor"))
    assert response.status_code == 201, response.content
    return dict(response.json())


def second_coordinator() -> User:
    """Another on-call coordinator at Quzhou People's Hospital."""
    user = registry_services.user_create(
        actor=None, username="qzph_night_coordinator", password=DEMO_PASSWORD, display_name="郑一鸣"
    )
    registry_services.membership_grant(
        actor=None, user=user, role=Role.ONCALL_COORDINATOR, institution=Institution.objects.get(code="qzph")
    )
    return user


# ----------------------------------------------------------------------------------------
# Activation


def test_activation_answers_the_case_with_its_windows_offer_and_nodes_but_not_the_patient(
    api: Any, green: Consortium
) -> None:
    cases_before = GreenCase.objects.count()
    response = activate(api("doctor"))
    assert response.status_code == 201, response.content
    case = response.json()
    assert set(case) >= {
        "id", "number", "status", "protocol", "sender", "destination", "activated_at", "onset_at", "eta_minutes",
        "patient_summary", "scores", "findings", "windows", "offers", "nodes", "node_history", "metrics",
        "allowed_actions", "recordable_nodes",
    }  # fmt: skip
    assert "patient" not in case
    assert case["status"] == "sent"
    assert case["protocol"] == {
        "code": "stroke",
        "name_zh": "急性缺血性卒中",
        "name_en": "Acute ischaemic stroke",
        "version": 1,
    }
    assert case["sender"] == {"code": "csph", "name": Institution.objects.get(code="csph").name}
    assert case["destination"]["code"] == "qzph"
    assert case["scores"] == {"nihss": 14} and case["findings"] == ["lvo"]
    assert case["eta_minutes"] > 0
    assert "66" in case["patient_summary"] and "NIHSS 14" in case["patient_summary"]
    for moment in ("activated_at", "onset_at"):
        assert dt.datetime.fromisoformat(case[moment]).utcoffset() is not None

    # Thrombectomy (6 h, the occlusion qualifies) and thrombolysis (4.5 h) counted from onset 90 minutes ago.
    windows = {w["code"]: w for w in case["windows"]}
    assert windows["evt"]["applies"] and 268 <= windows["evt"]["minutes_left"] <= 270
    assert windows["evt"]["extended_closes_at"] is not None
    assert windows["ivt"]["applies"] and 178 <= windows["ivt"]["minutes_left"] <= 180

    [offer] = case["offers"]
    assert offer["institution"]["code"] == "qzph" and offer["rank"] == 1 and offer["outcome"] == "pending"
    due = dt.datetime.fromisoformat(offer["answer_due_at"]) - dt.datetime.fromisoformat(offer["offered_at"])
    assert due == dt.timedelta(minutes=5)

    assert [n["node"] for n in case["nodes"]] == ["onset", "door_in", "decision"]
    assert {m["code"]: m["minutes"] for m in case["metrics"]}["dido"] is None  # not left yet
    assert case["allowed_actions"] == ["cancel"]
    assert "door_out" in case["recordable_nodes"] and "puncture" not in case["recordable_nodes"]

    assert GreenCase.objects.count() == cases_before + 1
    referral = Referral.objects.get(public_id=case["id"])
    assert referral.green_channel and referral.number == case["number"]
    assert not referral.patient.is_identified


def test_the_destination_accepts_and_the_sender_sees_it(api: Any, activated: dict[str, Any]) -> None:
    coordinator = api("coordinator")
    incoming = coordinator.get(f"/api/v1/green/cases/{activated['id']}").json()
    assert set(incoming["allowed_actions"]) == {"accept", "decline"}

    accepted = step(coordinator, activated["id"], "accept")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["offers"][0]["outcome"] == "accepted"
    assert "arrival" in accepted.json()["recordable_nodes"]

    seen = api("doctor").get(f"/api/v1/green/cases/{activated['id']}").json()
    assert seen["status"] == "accepted" and seen["destination"]["code"] == "qzph"


def test_a_second_accept_is_409_with_the_status(api: Any, activated: dict[str, Any]) -> None:
    first = step(api("coordinator"), activated["id"], "accept")
    assert first.status_code == 200
    late = step(api(second_coordinator()), activated["id"], "accept")
    assert late.status_code == 409
    assert late.json()["status"] == "accepted"
    assert "Accepted" in late.json()["detail"]


def test_the_consortium_is_needed_only_when_the_sender_has_the_protocol_in_several(api: Any, green: Consortium) -> None:
    # The Tianma township health centre belongs to the neurosurgery alliance only.
    township = registry_services.user_create(actor=None, username="tianma_doctor", password=DEMO_PASSWORD)
    registry_services.membership_grant(
        actor=None, user=township, role=Role.DOCTOR, institution=Institution.objects.get(code="cs-tianma")
    )
    alone = activate(api(township), activation_body(sender="cs-tianma", consortium=None, destination=None))
    assert alone.status_code == 201, alone.content
    assert alone.json()["consortium"]["code"] == "quzhou-neuro"

    # Changshan's hospital is also in the First Affiliated Hospital's consortium.
    green_services.green_protocols_install_defaults(consortium=Consortium.objects.get(code="zju1-quzhou"))
    ambiguous = activate(api("doctor"), activation_body(consortium=None))
    assert ambiguous.status_code == 400
    assert "quzhou-neuro" in ambiguous.json()["errors"]["consortium"][0]
    assert activate(api("doctor"), activation_body(consortium="quzhou-neuro")).status_code == 201


def test_bad_activations_are_400_with_field_errors_in_the_callers_language_and_create_nothing(
    api: Any, green: Consortium
) -> None:
    counts = (Referral.objects.count(), Patient.objects.count(), GreenCase.objects.count())
    doctor_en, doctor_zh = api("doctor", "en"), api("doctor", "zh-hans")

    wrong = activation_body(onset_at=ago(-60), scores={"nihss": 50}, findings=["lvo", "bleed"])
    en = activate(doctor_en, wrong)
    assert en.status_code == 400, en.content
    errors = en.json()["errors"]
    assert errors["onset_at"] == ["The time last known well cannot be in the future."]
    assert errors["scores"] == ["NIHSS must be from 0 to 42."]
    assert errors["findings"] == ["This protocol has no finding “bleed”."]

    unknown = activate(doctor_en, activation_body(sender="nowhere")).json()
    assert unknown["errors"]["sender"] == ["No institution with code nowhere."]
    unknown_zh = activate(doctor_zh, activation_body(sender="nowhere"))
    assert unknown_zh.status_code == 400
    assert unknown_zh.json()["errors"]["sender"] == ["不存在编码为 nowhere 的机构。"]
    no_consortium = activate(doctor_zh, activation_body(consortium="atlantis")).json()
    assert no_consortium["errors"]["consortium"] == ["不存在编码为 atlantis 的医联体。"]

    # The township health centre lacks CT and thrombolysis: not a destination.
    lacking = activate(doctor_en, activation_body(destination="cs-tianma"))
    assert lacking.status_code == 400 and "cannot take this case" in lacking.json()["errors"]["destination"][0]

    # A wrong ID number is found only when the patient is registered, inside the activation's transaction.
    bad_id = activation_body(patient={"name": "徐卫东", "sex": "male", "id_number": "330822196008120000"})
    refused = activate(doctor_en, bad_id)
    assert refused.status_code == 400 and "patient.id_number" in refused.json()["errors"]

    malformed = activate(doctor_zh, activation_body(onset_at="yesterday"))
    assert malformed.status_code == 422 and malformed.json()["errors"]["body.payload.onset_at"] == ["日期或时间无效。"]
    both = activate(doctor_en, activation_body(patient_id=str(Patient.objects.first().public_id)))  # type: ignore[union-attr]
    assert both.status_code == 422

    assert (Referral.objects.count(), Patient.objects.count(), GreenCase.objects.count()) == counts


def test_only_someone_who_may_refer_from_the_sender_activates(api: Any, green: Consortium) -> None:
    assert activate(api("coordinator"), activation_body()).status_code == 403
    assert activate(api("kaihua"), activation_body()).status_code == 403  # a doctor of another hospital


# ----------------------------------------------------------------------------------------
# Destinations, decline and re-offer, forward


def test_destinations_rank_the_thrombectomy_centre_first_with_must_leave_by(api: Any, green: Consortium) -> None:
    response = api("doctor").post(
        "/api/v1/green/destinations",
        {
            "sender": "csph",
            "protocol": "stroke",
            "consortium": "quzhou-neuro",
            "onset_at": ago(90),
            "findings": ["lvo"],
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["consortium"]["code"] == "quzhou-neuro" and body["protocol"]["version"] == 1
    first, *others = body["destinations"]
    assert first["institution"]["code"] == "qzph" and first["rank"] == 1
    assert first["best_window"] == "evt" and first["inside_window"] is True
    # From the imported travel-time matrix where the pair is in it, else by distance.
    assert first["eta_minutes"] > 0 and first["basis"] in ("matrix", "distance")
    assert (first["distance_km"] is None) == (first["basis"] == "matrix")
    evt = next(r for r in first["reach"] if r["code"] == "evt")
    assert evt["reachable"] and evt["must_leave_by"] == first["must_leave_by"]
    assert others and all(d["best_window"] != "evt" for d in others)  # no other member does thrombectomy
    codes = [d["institution"]["code"] for d in body["destinations"]]
    assert "cs-tianma" not in codes and "csph" not in codes
    assert {w["code"] for w in body["windows"]} == {"evt", "ivt"}

    unknown = api("doctor").post(
        "/api/v1/green/destinations",
        {"protocol": "stroke", "consortium": "quzhou-neuro", "onset_unknown": True},
        content_type="application/json",
    )
    assert unknown.status_code == 200
    assert all(w["minutes_left"] is None for w in unknown.json()["windows"])


def test_a_decline_offers_the_case_to_the_next_destination(api: Any, green: Consortium) -> None:
    doctor, coordinator = api("doctor"), api("coordinator")
    query = {"protocol": "stroke", "consortium": "quzhou-neuro", "onset_at": ago(90), "findings": ["lvo"]}
    ranking = doctor.post("/api/v1/green/destinations", query, content_type="application/json").json()["destinations"]
    case = activate(doctor, activation_body(destination=None)).json()
    assert case["destination"]["code"] == ranking[0]["institution"]["code"] == "qzph"

    no_reason = step(api("coordinator", "zh-hans"), case["id"], "decline", {"reason": ""})
    assert no_reason.status_code == 400 and no_reason.json()["errors"]["reason"] == ["请填写原因。"]

    declined = step(coordinator, case["id"], "decline", {"reason": "导管室正在手术，无法接收"})
    assert declined.status_code == 200, declined.content
    nxt = ranking[1]["institution"]["code"]
    assert declined.json()["status"] == "forwarded" and declined.json()["destination"]["code"] == nxt

    seen = doctor.get(f"/api/v1/green/cases/{case['id']}").json()
    assert seen["destination"]["code"] == nxt
    assert [(o["institution"]["code"], o["rank"], o["outcome"]) for o in seen["offers"]] == [
        ("qzph", 1, "declined"),
        (nxt, 2, "pending"),
    ]
    assert seen["offers"][0]["reason"] == "导管室正在手术，无法接收"

    # The city hospital's offer has moved on: a late accept is told where the case is now.
    late = step(coordinator, case["id"], "accept")
    assert late.status_code == 409
    assert late.json()["status"] == "forwarded" and "no longer offered" in late.json()["detail"]
    assert coordinator.get(f"/api/v1/green/cases/{case['id']}").status_code == 403


def test_the_office_forwards_a_case_to_a_member_of_its_choice(
    api: Any, activated: dict[str, Any], neuro_office: User
) -> None:
    office = api(neuro_office)
    assert step(api("doctor"), activated["id"], "forward", {"to_institution": "jsph", "reason": "x"}).status_code == 403
    no_reason = step(office, activated["id"], "forward", {"to_institution": "jsph"})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["errors"]
    lacking = step(office, activated["id"], "forward", {"to_institution": "cs-tianma", "reason": "就近"})
    assert lacking.status_code == 400 and "to_institution" in lacking.json()["errors"]

    forwarded = step(office, activated["id"], "forward", {"to_institution": "jsph", "reason": "市人民医院导管室占用"})
    assert forwarded.status_code == 200, forwarded.content
    case = forwarded.json()
    assert case["status"] == "forwarded" and case["destination"]["code"] == "jsph"
    assert [(o["institution"]["code"], o["outcome"]) for o in case["offers"]] == [
        ("qzph", "withdrawn"),
        ("jsph", "pending"),
    ]
    assert set(case["allowed_actions"]) == {"forward", "cancel"}


def test_the_sender_cancels_with_a_reason(api: Any, activated: dict[str, Any]) -> None:
    doctor = api("doctor")
    no_body = doctor.generic("POST", f"/api/v1/green/cases/{activated['id']}/cancel")
    assert no_body.status_code == 400 and "reason" in no_body.json()["errors"]
    cancelled = step(doctor, activated["id"], "cancel", {"reason": "家属拒绝转院"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["offers"][0]["outcome"] == "withdrawn"
    again = step(doctor, activated["id"], "cancel", {"reason": "家属拒绝转院"})
    assert again.status_code == 409 and again.json()["status"] == "cancelled"


# ----------------------------------------------------------------------------------------
# Time nodes


def test_a_node_is_recorded_once_and_corrected_only_with_a_reason_keeping_history(
    api: Any, activated: dict[str, Any]
) -> None:
    doctor, coordinator = api("doctor"), api("coordinator")
    assert step(coordinator, activated["id"], "accept").status_code == 200
    url_id = activated["id"]
    door_in = next(n for n in activated["nodes"] if n["node"] == "door_in")["at"]

    left = timezone.localtime().replace(microsecond=0) - dt.timedelta(minutes=5)
    recorded = step(doctor, url_id, "nodes", {"node": "door_out", "at": left.isoformat()})
    assert recorded.status_code == 200, recorded.content
    door_out = next(n for n in recorded.json()["nodes"] if n["node"] == "door_out")
    assert door_out["institution"] == "csph" and door_out["recorded_by"]
    dido = next(m for m in recorded.json()["metrics"] if m["code"] == "dido")
    assert dido["minutes"] == round((left - dt.datetime.fromisoformat(door_in)).total_seconds() / 60, 1)
    assert dido["target_minutes"] == 120 and dido["missed"] is False

    again = step(doctor, url_id, "nodes", {"node": "door_out"})
    assert again.status_code == 409
    assert again.json()["status"] == "accepted" and "give a reason to correct it" in again.json()["detail"]

    earlier = left - dt.timedelta(minutes=3)
    corrected = step(
        doctor, url_id, "nodes", {"node": "door_out", "at": earlier.isoformat(), "correction_reason": "按出车记录更正"}
    )
    assert corrected.status_code == 200, corrected.content
    body = corrected.json()
    [current] = [n for n in body["nodes"] if n["node"] == "door_out"]
    assert dt.datetime.fromisoformat(current["at"]) == earlier
    assert current["note"] == "按出车记录更正"
    history = [n for n in body["node_history"] if n["node"] == "door_out"]
    assert len(history) == 2
    assert history[0]["superseded_at"] is not None and dt.datetime.fromisoformat(history[0]["at"]) == left
    assert history[1]["superseded_at"] is None

    # Each side records its own nodes.
    assert step(doctor, url_id, "nodes", {"node": "puncture"}).status_code == 403
    assert step(doctor, url_id, "nodes", {"node": "teleport"}).status_code == 400
    arrived = step(coordinator, url_id, "nodes", {"node": "arrival"})
    assert arrived.status_code == 200 and arrived.json()["status"] == "arrived"


# ----------------------------------------------------------------------------------------
# Boards, detail, audit


def test_the_detail_audits_the_patient_read_and_the_board_shows_no_identity(api: Any, green: Consortium) -> None:
    number = fresh_id_number()
    body = activation_body(patient={"name": "徐卫东", "sex": "male", "id_number": number})
    case = activate(api("doctor"), body).json()
    coordinator = api("coordinator")
    user = User.objects.get(username="coordinator")
    patient = Referral.objects.get(public_id=case["id"]).patient

    reads = AuditEvent.objects.filter(action=AuditAction.READ_PII).count()
    boards = coordinator.get("/api/v1/green/boards").json()
    assert [(b["kind"], b["code"]) for b in boards] == [("institution", "qzph")]
    board = coordinator.get("/api/v1/green/cases", {"board": boards[0]["key"]})
    assert board.status_code == 200
    rows = board.json()["cases"]
    assert case["id"] in [r["id"] for r in rows]
    assert rows[0]["id"] == case["id"] and rows[0]["direction"] == "in"  # waiting for an answer: first
    assert number not in board.content.decode() and "徐卫东" not in board.content.decode()
    assert all("patient" not in r for r in rows)
    assert AuditEvent.objects.filter(action=AuditAction.READ_PII).count() == reads

    detail = coordinator.get(f"/api/v1/green/cases/{case['id']}")
    assert detail.status_code == 200
    shown = detail.json()["patient"]
    assert shown["name"] == "徐卫东" and shown["id_number"] == number and shown["identified"] is True
    read = AuditEvent.objects.filter(action=AuditAction.READ_PII, object_id=str(patient.public_id)).latest("id")
    assert read.actor == user and case["number"] in read.changes["purpose"]
    assert "id_number" in read.changes["fields"]

    # Outside the case's hospitals and consortium: refused, nothing shown.
    assert api("kaihua").get(f"/api/v1/green/cases/{case['id']}").status_code == 403
    assert api("kaihua").get("/api/v1/green/cases", {"board": boards[0]["key"]}).status_code == 403


def test_the_board_reads_a_fixed_number_of_queries_whatever_its_cases(api: Any, activated: dict[str, Any]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    coordinator = api("coordinator")

    def board_queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            rows = coordinator.get("/api/v1/green/cases").json()["cases"]
        return len(queries), len(rows)

    coordinator.get("/api/v1/green/cases")  # the token's first use writes its last-used time
    before, shown = board_queries()
    for _ in range(2):
        assert activate(api("doctor")).status_code == 201
    after, shown_after = board_queries()
    assert shown_after == shown + 2
    assert after == before


def test_the_board_is_open_to_a_browser_session(login: Any, activated: dict[str, Any]) -> None:
    client = login("doctor")
    board = client.get("/api/v1/green/cases")
    assert board.status_code == 200
    assert board.json()["board"]["code"] == "csph"
    [row] = [r for r in board.json()["cases"] if r["id"] == activated["id"]]
    assert row["direction"] == "out"


# ----------------------------------------------------------------------------------------
# Report


def test_the_monthly_report_gives_medians_percentiles_and_compliance(
    api: Any, persona: Any, green: Consortium, neuro_office: User
) -> None:
    doctor, coordinator = persona("doctor"), persona("coordinator")
    csph, qzph = Institution.objects.get(code="csph"), Institution.objects.get(code="qzph")
    stroke = GreenProtocol.objects.get(consortium=green, code="stroke")
    start = dt.datetime(2020, 6, 10, 9, 0, tzinfo=CHINA)
    # Three June cases: door-in-door-out 60, 90 and 150 minutes; the city hospital accepts two at once.
    for day, (dido, accepts) in enumerate([(60, True), (90, True), (150, False)]):
        now = start + dt.timedelta(days=day)
        case = green_services.green_activate(
            actor=doctor,
            sender=csph,
            protocol=stroke,
            patient=green_services.PatientGiven(sex="male", approximate_age=60 + day),
            onset_at=now - dt.timedelta(hours=1),
            scores={"nihss": 12},
            findings=["lvo"],
            destination=qzph,
            door_in_at=now - dt.timedelta(minutes=20),
            now=now,
        )
        answered = now + dt.timedelta(minutes=2)
        if accepts:
            green_services.green_accept(actor=coordinator, case=case, now=answered)
        else:
            green_services.green_decline(actor=coordinator, case=case, reason="无空床", now=answered)
        left = now - dt.timedelta(minutes=20) + dt.timedelta(minutes=dido)
        green_services.green_node_record(actor=doctor, case=case, node="door_out", at=left, now=left)

    office = api(neuro_office)
    response = office.get(
        "/api/v1/green/report", {"from": "2020-06", "to": "2020-06", "institution": "csph", "protocol": "stroke"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["from_month"] == body["to_month"] == "2020-06" and body["by"] == "sender"
    [row] = body["rows"]
    assert row["institution"]["code"] == "csph" and row["protocol"]["code"] == "stroke" and row["month"] == "2020-06"
    assert row["cases"] == 3 and row["accepted_first"] == 2
    dido_figures = next(m for m in row["metrics"] if m["code"] == "dido")
    assert dido_figures == {
        "code": "dido",
        "name": "Door-in-door-out",
        "target_minutes": 120,
        "n": 3,
        "median": 90.0,
        "p90": 150.0,
        "met": 2,
        "compliance": 0.667,
    }
    [total] = body["totals"]
    assert total["month"] is None and total["cases"] == 3

    received = office.get(
        "/api/v1/green/report", {"from": "2020-06", "to": "2020-06", "institution": "qzph", "by": "receiver"}
    ).json()
    assert [(r["institution"]["code"], r["cases"]) for r in received["rows"]] == [("qzph", 2)]

    assert api("doctor").get("/api/v1/green/report").status_code == 403
    backwards = office.get("/api/v1/green/report", {"from": "2020-06", "to": "2020-01"})
    assert backwards.status_code == 400 and "to" in backwards.json()["errors"]
    assert office.get("/api/v1/green/report", {"from": "2020-13"}).status_code == 422


# ----------------------------------------------------------------------------------------
# Protocols, settings, travel times


def test_a_revised_protocol_is_version_2_and_an_earlier_case_keeps_version_1(
    api: Any, activated: dict[str, Any], neuro_office: User
) -> None:
    office, doctor = api(neuro_office), api("doctor")
    listed = doctor.get("/api/v1/green/protocols", {"consortium": "quzhou-neuro"}).json()
    stroke = next(p for p in listed if p["code"] == "stroke")
    assert stroke["version"] == 1 and stroke["definition"]["capabilities"] == ["ct", "iv_thrombolysis"]

    definition = stroke["definition"]
    for metric in definition["metrics"]:
        if metric["code"] == "dido":
            metric["target_minutes"] = 90
    url = f"/api/v1/green/protocols/{stroke['id']}/versions"
    refused = doctor.post(url, {"definition": definition, "note": "收紧"}, content_type="application/json")
    assert refused.status_code == 403

    broken = office.post(url, {"definition": {**definition, "nodes": []}, "note": "x"}, content_type="application/json")
    assert broken.status_code == 400 and broken.json()["errors"]["definition"]
    assert office.post(url, {"definition": definition}, content_type="application/json").status_code == 400

    revised = office.post(
        url, {"definition": definition, "note": "DIDO 目标收紧至 90 分钟"}, content_type="application/json"
    )
    assert revised.status_code == 201, revised.content
    assert revised.json()["version"] == 2
    assert [v["version"] for v in revised.json()["versions"]] == [2, 1]
    assert revised.json()["versions"][0]["note"] == "DIDO 目标收紧至 90 分钟"

    earlier = doctor.get(f"/api/v1/green/cases/{activated['id']}").json()
    assert earlier["protocol"]["version"] == 1
    assert next(m for m in earlier["metrics"] if m["code"] == "dido")["target_minutes"] == 120
    later = activate(doctor).json()
    assert later["protocol"]["version"] == 2
    assert next(m for m in later["metrics"] if m["code"] == "dido")["target_minutes"] == 90


def test_the_office_sets_routing_and_imports_travel_times(api: Any, green: Consortium, neuro_office: User) -> None:
    office = api(neuro_office)
    defaults = office.get("/api/v1/green/settings/quzhou-neuro").json()
    assert defaults["road_factor"] == 1.35 and defaults["offer_timeout_minutes"] == 5
    settings = {"road_factor": 1.5, "average_speed_kmh": 70, "offer_timeout_minutes": 3}
    put = office.put("/api/v1/green/settings/quzhou-neuro", settings, content_type="application/json")
    assert put.status_code == 200, put.content
    assert put.json()["road_factor"] == 1.5 and put.json()["offer_timeout_minutes"] == 3
    refused = api("doctor").put("/api/v1/green/settings/quzhou-neuro", settings, content_type="application/json")
    assert refused.status_code == 403

    url = "/api/v1/green/travel-times/quzhou-neuro"
    pairs = office.get("/api/v1/green/settings/quzhou-neuro").json()["travel_times"]
    wrong = b"from,to,minutes\ncsph,qzph,forty\nnowhere,qzph,40\n"
    bad = office.post(url, {"file": SimpleUploadedFile("t.csv", wrong)})
    assert bad.status_code == 400
    problems = bad.json()["errors"]["file"]
    assert problems[0].startswith("Row 2:") and problems[1].startswith("Row 3:")
    assert office.get("/api/v1/green/settings/quzhou-neuro").json()["travel_times"] == pairs  # nothing landed

    # Chinese headers, GB18030 as hospital spreadsheets save it.
    csv = "出发机构,到达机构,分钟\ncsph,qzph,37\nqzph,csph,37\n".encode("gb18030")
    imported = office.post(url, {"file": SimpleUploadedFile("矩阵.csv", csv)})
    assert imported.status_code == 200, imported.content
    counts = imported.json()
    assert counts["rows"] == 2 and counts["created"] + counts["updated"] <= 2
    assert office.get("/api/v1/green/settings/quzhou-neuro").json()["travel_times"] == pairs + counts["created"]
    query = {"protocol": "stroke", "consortium": "quzhou-neuro", "onset_at": ago(30), "findings": ["lvo"]}
    ranked = api("doctor").post("/api/v1/green/destinations", query, content_type="application/json").json()
    ranked = ranked["destinations"]
    assert (ranked[0]["institution"]["code"], ranked[0]["eta_minutes"], ranked[0]["basis"]) == ("qzph", 37, "matrix")
    assert api("doctor").post(url, {"file": SimpleUploadedFile("t.csv", csv)}).status_code == 403


# ----------------------------------------------------------------------------------------
# Contract


@pytest.fixture
def keep_connection() -> Iterator[None]:
    # Like Django's test client: keep the test's connection (and its transaction) open across requests.
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize("username", ["doctor", "coordinator", "neuro_office"])
def test_the_green_operations_on_a_real_case_answer_within_their_contract(
    username: str, persona: Any, neuro_office: User, activated: dict[str, Any], keep_connection: None
) -> None:
    import schemathesis
    from django.core.wsgi import get_wsgi_application
    from hypothesis import HealthCheck, given, settings

    _, token = registry_services.api_token_create(actor=None, user=persona(username))
    protocol = GreenProtocol.objects.get(consortium__code="quzhou-neuro", code="stroke")
    schema: Any = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    operations = [result.ok() for result in schema.include(path_regex=r"^/api/v1/green/").get_all_operations()]
    assert len(operations) == 17
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            # Generated ids and codes would only ever meet a 404: point them at the real case, protocol and
            # consortium. Cases made to break the schema keep their own (the substitute would mend the break).
            positive = case.meta is None or case.meta.generation.mode == "positive"
            if positive and "public_id" in case.path_parameters:
                real = protocol.public_id if "/protocols/" in case.path else activated["id"]
                case.path_parameters["public_id"] = str(real)
            if positive and "code" in case.path_parameters:
                case.path_parameters["code"] = "quzhou-neuro"
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"},
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        check()
