"""The green-channel pages through HTTP, as a browser without JavaScript would use them: activation
at the county hospital, the destinations panel, the live board and its event stream, answering an
offer (and losing the race to a colleague), time nodes and their corrections, and the audited case
page. The pages are read in English so that the assertions do not depend on the catalogues."""

from __future__ import annotations

import datetime as dt
from html import unescape
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD
from yilian.patients.models import Patient
from yilian.referrals import green_selectors, green_services
from yilian.referrals.models import GreenCase, GreenNode, GreenOffer, GreenProtocol, OfferOutcome, Referral, Status
from yilian.referrals.tests.factories import next_id_number
from yilian.registry.models import Consortium, Institution, User
from yilian.registry.services import membership_grant, user_create

pytestmark = pytest.mark.django_db

NEW = "/referrals/green/new/"
BOARD = "/referrals/green/"


@pytest.fixture
def stroke(db: None) -> GreenProtocol:
    """The Quzhou neurosurgery alliance's stroke protocol (the defaults installed)."""
    neuro = Consortium.objects.get(code="quzhou-neuro")
    green_services.green_protocols_install_defaults(consortium=neuro)
    return GreenProtocol.objects.get(consortium=neuro, code="stroke")


def _form(stroke: GreenProtocol, **overrides: Any) -> dict[str, Any]:
    """What the Changshan doctor taps: stroke, last known well an hour ago, NIHSS 14, CTA occlusion."""
    key = stroke.public_id.hex
    data: dict[str, Any] = {
        "protocol": key,
        "sender": "csph",
        "sex": "male",
        "approximate_age": "66",
        "onset_ago": "60",
        f"s_{key}_nihss": "14",
        f"f_{key}": ["lvo", "no_bleed"],
        "imaging_done": "on",
        "imaging_result": "CTA: right M1 occlusion",
        "destination": "qzph",
    }
    data.update(overrides)
    return data


def _activate(stroke: GreenProtocol, persona: Any, **kwargs: Any) -> GreenCase:
    """A stroke case from csph, offered to qzph, through the service."""
    options: dict[str, Any] = {
        "actor": persona("doctor"),
        "sender": Institution.objects.get(code="csph"),
        "protocol": stroke,
        "patient": green_services.PatientGiven(sex="male", approximate_age=66),
        "onset_at": timezone.now() - dt.timedelta(hours=1),
        "scores": {"nihss": 14},
        "findings": ["lvo"],
        "destination": Institution.objects.get(code="qzph"),
    }
    options.update(kwargs)
    return green_services.green_activate(**options)


def _case_url(case: GreenCase) -> str:
    return f"/referrals/green/{case.referral.public_id}/"


def _second_coordinator() -> Client:
    """Another on-call coordinator at Quzhou People's Hospital, logged in."""
    user = user_create(actor=None, username="coordinator2", password=DEMO_PASSWORD, display_name="钱明")
    membership_grant(
        actor=None, user=user, role=Role.ONCALL_COORDINATOR, institution=Institution.objects.get(code="qzph")
    )
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.post("/login/", {"username": "coordinator2", "password": DEMO_PASSWORD}).status_code == 302
    return client


def _case_from(response: Any) -> GreenCase:
    """The case a successful activation redirected to."""
    assert response["Location"].startswith("/referrals/green/")
    public_id = response["Location"].split("/")[3]
    return GreenCase.objects.select_related("referral__to_institution", "referral__patient").get(
        referral__public_id=public_id
    )


def _counts() -> tuple[int, int, int, int]:
    return (Referral.objects.count(), GreenCase.objects.count(), GreenOffer.objects.count(), Patient.objects.count())


def _first_frame(response: Any) -> bytes:
    """The stream's first frame; then the stream is closed as a WSGI server closes it when the
    browser goes away (through the test client's wrapper, which also keeps the test's database
    connection open)."""
    stream = response._iterator
    try:
        return bytes(next(stream))
    finally:
        stream.close()


def _board_key(user: User, code: str) -> str:
    scope = next(s for s in green_selectors.board_scopes_for(user) if s.obj.code == code)
    return scope.key


# --- activation ---------------------------------------------------------------------------------


def test_the_doctor_activates_a_stroke_case_from_the_page_and_lands_on_its_case_page(login, stroke) -> None:
    client = login("doctor", "en")
    page = client.get(NEW).content.decode()
    assert "Acute ischaemic stroke" in page and "STEMI" in page
    assert f'name="f_{stroke.public_id.hex}"' in page and "CTA large-vessel occlusion" in page

    response = client.post(NEW, _form(stroke))

    assert response.status_code == 302
    case = _case_from(response)
    referral = case.referral
    assert referral.green_channel and referral.status == Status.SENT
    assert referral.to_institution is not None and referral.to_institution.code == "qzph"
    assert case.scores == {"nihss": 14} and case.findings == ["lvo", "no_bleed"]
    assert case.onset_at is not None
    assert abs((timezone.now() - case.onset_at) - dt.timedelta(hours=1)) < dt.timedelta(minutes=1)
    assert referral.patient.approximate_age == 66 and not referral.patient.is_identified
    offer = GreenOffer.objects.get(case=case)
    assert offer.institution.code == "qzph" and offer.outcome == OfferOutcome.PENDING
    shown = client.get(response["Location"]).content.decode()
    assert "waiting for an answer" in shown and "NIHSS" in shown
    detail = client.get(f"/referrals/{referral.public_id}/").content.decode()
    assert 'id="green-channel-link"' in detail and _case_url(case) in detail


def test_the_doctor_may_send_to_another_ranked_destination(login, stroke) -> None:
    response = login("doctor", "en").post(NEW, _form(stroke, destination="jsph"))
    assert response.status_code == 302
    referral = _case_from(response).referral
    assert referral.to_institution is not None and referral.to_institution.code == "jsph"


def test_an_unknown_last_known_well_is_allowed_and_written_as_unknown(login, stroke) -> None:
    response = login("doctor", "en").post(NEW, _form(stroke, onset_ago="", onset_unknown="on"))
    assert response.status_code == 302
    assert _case_from(response).onset_at is None


def test_an_incomplete_activation_is_explained_and_writes_nothing(login, stroke) -> None:
    client = login("doctor", "en")
    before = _counts()
    key = stroke.public_id.hex
    refused = client.post(NEW, _form(stroke, onset_ago="", **{f"s_{key}_nihss": "50"}))
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "Enter the time last known well" in page
    assert "less than or equal to 42" in page
    # The service's own checks come back on the form too (the ID number's check digit here),
    # and nothing of the case is half written.
    valid = next_id_number()
    wrong = valid[:17] + ("0" if valid[-1] != "0" else "1")
    refused = client.post(NEW, _form(stroke, id_number=wrong))
    assert refused.status_code == 400
    assert "Resident ID number" in refused.content.decode()
    assert _counts() == before


def test_a_destination_the_ranking_does_not_offer_is_refused(login, stroke) -> None:
    before = _counts()
    refused = login("doctor", "en").post(NEW, _form(stroke, destination="zju2"))
    assert refused.status_code == 400
    assert "cannot take this case now" in refused.content.decode()
    assert _counts() == before


def test_the_destinations_panel_ranks_for_the_form_as_it_stands(login, stroke) -> None:
    client = login("doctor", "en")
    key = stroke.public_id.hex
    query = {"protocol": key, "sender": "csph", "onset_ago": "60", f"f_{key}": "lvo"}
    response = client.get("/referrals/green/new/destinations/", query, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = unescape(response.content.decode())
    names = {i.code: i.name for i in Institution.objects.filter(code__in=["qzph", "jsph"])}
    # Only Quzhou People's Hospital does thrombectomy: it comes first although Jiangshan is nearer.
    assert html.index('data-destination="qzph"') < html.index('data-destination="jsph"')
    assert "leave by" in html and "arrives in time" in html
    assert 'id="g-sendbar"' in html and 'hx-swap-oob="true"' in html and f"Send to {names['qzph']}" in html
    # Without the occlusion the thrombectomy window does not apply; the nearest thrombolysis centre leads.
    plain = unescape(client.get("/referrals/green/new/destinations/", {**query, f"f_{key}": ""}).content.decode())
    assert "only with CTA large-vessel occlusion" in plain
    assert f"Send to {names['jsph']}" in plain
    # Nothing chosen yet: a hint, no ranking.
    empty = client.get("/referrals/green/new/destinations/", {"sender": "csph"}).content.decode()
    assert 'id="g-dest-empty"' in empty


def test_only_people_who_refer_may_activate(login, stroke) -> None:
    assert login("commission", "en").get(NEW).status_code == 403


# --- board --------------------------------------------------------------------------------------


def test_the_board_shows_the_case_to_the_destination_coordinator_and_not_to_another_hospital(
    login, persona, stroke
) -> None:
    case = _activate(stroke, persona, patient=green_services.PatientGiven(name="陈福生", sex="male"))
    number = case.referral.number
    coordinator = login("coordinator", "en")
    home = coordinator.get("/").content.decode()
    assert 'id="nav-green"' in home
    page = coordinator.get(BOARD).content.decode()
    assert number in page and "Waiting for your answer" in page
    assert 'data-action="accept"' in page and 'data-action="decline"' in page
    assert "NIHSS 14" in page and "陈福生" not in page  # a summary, no identity
    assert 'http-equiv="refresh"' in page  # the board without JavaScript
    key = _board_key(persona("coordinator"), "qzph")
    assert f"/referrals/green/events/?board={key}" in page
    rows = coordinator.get("/referrals/green/rows/", {"board": key})
    assert rows.status_code == 200 and number in rows.content.decode() and "<nav" not in rows.content.decode()
    # The sender sees it as outgoing, without the answer buttons.
    sender = login("doctor", "en").get(BOARD).content.decode()
    assert number in sender and "Outgoing" in sender and 'data-action="accept"' not in sender
    # Kaihua is not involved: its board does not list the case, and it cannot open another's board.
    kaihua = login("kaihua", "en")
    assert number not in kaihua.get(BOARD).content.decode()
    assert kaihua.get("/referrals/green/rows/", {"board": key}).status_code == 403
    assert 'id="nav-green"' not in login("commission", "en").get("/").content.decode()


def test_the_office_board_lists_the_consortiums_cases(login, persona, stroke, neuro_office) -> None:
    case = _activate(stroke, persona)
    office = Client(HTTP_ACCEPT_LANGUAGE="en")
    office.force_login(neuro_office)
    page = office.get(BOARD).content.decode()
    assert case.referral.number in page and 'data-action="accept"' not in page


# --- answering an offer -------------------------------------------------------------------------


def test_the_coordinator_accepts_from_the_board_and_a_colleague_a_moment_later_gets_409(login, persona, stroke) -> None:
    case = _activate(stroke, persona)
    url = f"{_case_url(case)}act/accept/"
    colleague = _second_coordinator()
    accepted = login("coordinator", "en").post(url, {"next": BOARD})
    assert accepted.status_code == 302 and accepted["Location"] == BOARD
    referral = Referral.objects.get(pk=case.referral_id)
    assert referral.status == Status.ACCEPTED
    late = colleague.post(url)
    assert late.status_code == 409
    assert "Accepted" in late.content.decode()
    late_htmx = colleague.post(url, HTTP_HX_REQUEST="true")
    assert late_htmx.status_code == 409 and late_htmx["Content-Type"].startswith("text/plain")
    assert GreenOffer.objects.get(case=case).outcome == OfferOutcome.ACCEPTED


def test_accepting_from_the_live_board_answers_without_a_page(login, persona, stroke) -> None:
    case = _activate(stroke, persona)
    response = login("coordinator", "en").post(f"{_case_url(case)}act/accept/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert Referral.objects.get(pk=case.referral_id).status == Status.ACCEPTED


def test_a_decline_needs_a_reason_and_offers_the_case_to_the_next_hospital(login, persona, stroke) -> None:
    case = _activate(stroke, persona)
    client = login("coordinator", "en")
    url = f"{_case_url(case)}act/decline/"
    refused = client.post(url, {"reason": " "})
    assert refused.status_code == 400 and "This field is required" in refused.content.decode()
    assert client.post(url, {"reason": "", "next": BOARD}, HTTP_HX_REQUEST="true").status_code == 400
    done = client.post(url, {"reason": "Cath lab busy with another thrombectomy"})
    assert done.status_code == 302
    referral = Referral.objects.select_related("to_institution").get(pk=case.referral_id)
    assert referral.status == Status.FORWARDED
    assert referral.to_institution is not None and referral.to_institution.code != "qzph"
    declined = GreenOffer.objects.get(case=case, institution__code="qzph")
    assert declined.outcome == OfferOutcome.DECLINED and declined.reason.startswith("Cath lab busy")
    # A colleague who still had the card open and accepts now is told where the case went (409),
    # on the board too; the case page is no longer theirs to read.
    nxt = referral.to_institution.name
    stale = client.post(f"{_case_url(case)}act/accept/")
    assert stale.status_code == 409 and nxt in unescape(stale.content.decode())
    stale = client.post(f"{_case_url(case)}act/accept/", HTTP_HX_REQUEST="true")
    assert stale.status_code == 409 and nxt in stale.content.decode()
    assert client.get(_case_url(case)).status_code == 403
    assert login("kaihua", "en").post(f"{_case_url(case)}act/accept/", HTTP_HX_REQUEST="true").status_code == 403


def test_an_uninvolved_hospital_may_not_answer(login, persona, stroke) -> None:
    case = _activate(stroke, persona)
    assert login("kaihua", "en").post(f"{_case_url(case)}act/accept/").status_code == 403
    assert login("doctor", "en").post(f"{_case_url(case)}act/accept/").status_code == 403
    assert login("coordinator", "en").post(f"{_case_url(case)}act/fly/").status_code == 404


def test_the_sender_cancels_with_a_reason(login, persona, stroke) -> None:
    case = _activate(stroke, persona)
    client = login("doctor", "en")
    assert client.post(f"{_case_url(case)}act/cancel/", {"reason": ""}).status_code == 400
    assert client.post(f"{_case_url(case)}act/cancel/", {"reason": "Haemorrhage on repeat CT"}).status_code == 302
    assert Referral.objects.get(pk=case.referral_id).status == Status.CANCELLED


def test_the_office_forwards_to_an_institution_from_the_ranking(login, persona, stroke, neuro_office) -> None:
    case = _activate(stroke, persona)
    office = Client(HTTP_ACCEPT_LANGUAGE="en")
    office.force_login(neuro_office)
    page = office.get(_case_url(case)).content.decode()
    assert 'id="form-forward"' in page and 'value="khph"' in page
    response = office.post(f"{_case_url(case)}act/forward/", {"to_institution": "khph", "reason": "qzph CT down"})
    assert response.status_code == 302
    referral = Referral.objects.select_related("to_institution").get(pk=case.referral_id)
    assert referral.to_institution is not None and referral.to_institution.code == "khph"


# --- time nodes ---------------------------------------------------------------------------------


def test_a_node_is_recorded_with_one_tap_and_corrected_only_with_a_reason(login, persona, stroke) -> None:
    case = _activate(stroke, persona)
    client = login("doctor", "en")
    url = f"{_case_url(case)}node/"
    recorded = client.post(url, {"node": "door_out"})
    assert recorded.status_code == 302 and recorded["Location"].endswith("#node-door_out")
    first = GreenNode.objects.get(case=case, node="door_out", superseded_at__isnull=True)
    assert first.recorded_by == persona("doctor")
    earlier = timezone.localtime(first.at - dt.timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M")
    no_reason = client.post(url, {"node": "door_out", "at": earlier, "reason": ""})
    assert no_reason.status_code == 400 and "Give a reason for the correction" in no_reason.content.decode()
    corrected = client.post(url, {"node": "door_out", "at": earlier, "reason": "Ambulance left before the tap"})
    assert corrected.status_code == 302
    rows = list(GreenNode.objects.filter(case=case, node="door_out").order_by("recorded_at", "id"))
    assert len(rows) == 2 and rows[0].superseded_at is not None and rows[1].note == "Ambulance left before the tap"
    page = client.get(_case_url(case)).content.decode()
    assert f"<s>{timezone.localtime(first.at):%H:%M}</s>" in page and "Ambulance left before the tap" in page
    # "Record now" on a node someone recorded meanwhile is a collision, not a silent overwrite.
    clash = client.post(url, {"node": "door_out"})
    assert clash.status_code == 409 and "already recorded" in clash.content.decode()
    assert client.post(url, {"node": "door_out", "reason": "typo"}).status_code == 400  # no time given
    future = timezone.localtime() + dt.timedelta(hours=2)
    assert client.post(url, {"node": "imaging", "at": future.strftime("%Y-%m-%dT%H:%M")}).status_code == 400


def test_the_receiving_side_records_its_own_nodes_only_once_it_accepted(login, persona, stroke) -> None:
    case = _activate(stroke, persona)
    coordinator = login("coordinator", "en")
    url = f"{_case_url(case)}node/"
    assert coordinator.post(url, {"node": "arrival"}).status_code == 403
    coordinator.post(f"{_case_url(case)}act/accept/")
    assert coordinator.post(url, {"node": "door_out"}).status_code == 403  # the sender's node
    assert coordinator.post(url, {"node": "arrival"}).status_code == 302
    assert Referral.objects.get(pk=case.referral_id).status == Status.ARRIVED
    page = coordinator.get(_case_url(case)).content.decode()
    assert 'data-node="arrival"' in page and 'data-metric="door_to_needle"' in page


# --- the case page ------------------------------------------------------------------------------


def test_the_case_page_audits_the_patient_read_and_masks_the_id_number(login, persona, stroke) -> None:
    id_number = next_id_number()
    case = _activate(stroke, persona, patient=green_services.PatientGiven(name="陈福生", id_number=id_number))
    client = login("coordinator", "en")
    page = client.get(_case_url(case)).content.decode()
    assert "陈福生" in page and id_number not in page and id_number[:4] + "**" in page
    number = case.referral.number
    assert AuditEvent.objects.filter(
        action=AuditAction.READ_PII, actor=persona("coordinator"), changes__purpose=f"green channel {number}"
    ).exists()
    reads = AuditEvent.objects.filter(action=AuditAction.READ_PII).count()
    live = client.get(_case_url(case), HTTP_HX_REQUEST="true").content.decode()
    assert "陈福生" not in live and 'id="g-patient-slot"' in live and "<nav" not in live
    assert AuditEvent.objects.filter(action=AuditAction.READ_PII).count() == reads
    assert login("kaihua", "en").get(_case_url(case)).status_code == 403


def test_the_case_page_follows_the_senders_board_stream(login, persona, stroke) -> None:
    case = _activate(stroke, persona)
    page = login("doctor", "en").get(_case_url(case)).content.decode()
    assert f"/referrals/green/events/?board={_board_key(persona('doctor'), 'csph')}" in page


def test_an_ordinary_referral_has_no_green_case_page(login, make_referral) -> None:
    referral = make_referral(Status.SENT)
    assert login("coordinator", "en").get(f"/referrals/green/{referral.public_id}/").status_code == 404


# --- the event stream ---------------------------------------------------------------------------


def test_the_event_stream_opens_for_the_users_board_and_not_for_another(login, persona, stroke) -> None:
    key = _board_key(persona("coordinator"), "qzph")
    response = login("coordinator", "en").get("/referrals/green/events/", {"board": key})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    first = _first_frame(response)
    assert b"event: hello" in first and key.encode() in first
    assert login("kaihua", "en").get("/referrals/green/events/", {"board": key}).status_code == 403
