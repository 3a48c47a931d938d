"""The capability pages through the test client, on the demo consortium: pages render for those
allowed, are refused (403) out of scope, forms reach the services, and the QR sign-in refuses an
expired, a used or an unknown code with a message and a 4xx status."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from yilian.capability import services
from yilian.capability.models import (
    Assessment,
    FirstClaim,
    LocalRole,
    Mentee,
    SignInCode,
    Stage,
    SurgicalPrivilege,
    TeachingActivity,
    TeachingAttendance,
    TeachingKind,
    Technique,
    TrainingKind,
    TrainingProgramme,
    Transfer,
)
from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD
from yilian.dispatch.tests import factories as f
from yilian.registry.models import Discipline, Practitioner, User

pytestmark = pytest.mark.django_db


@dataclass
class Scene:
    hospadmin: User
    technique: Technique
    transfer: Transfer
    surgeon: Practitioner
    activity: TeachingActivity


@pytest.fixture
def scene(persona: Any) -> Scene:
    """A technique brought to Quzhou People's Hospital's neurosurgery by 陈志远, with one of the
    host's surgeons, and a teaching session at the hospital that started ten minutes ago."""
    hospadmin = persona("hospadmin")
    technique = services.technique_create(
        actor=persona("admin"),
        code="t-endoscopic-skull-base",
        name_zh="神经内镜经鼻颅底手术",
        name_en="Endoscopic endonasal skull-base surgery",
        operation_code="07.6",
        level=4,
        discipline=Discipline.NEUROSURGERY,
    )
    expert = Practitioner.objects.get(user__username="expert")
    transfer = services.transfer_open(
        actor=hospadmin, department=f.department("qzph"), technique=technique, expert=expert
    )
    surgeon = f.practitioner_create(institution_code="qzph", name_zh="周测试")
    now = timezone.now()
    activity = services.teaching_create(
        actor=hospadmin,
        kind=TeachingKind.LECTURE,
        topic="颅底解剖与内镜入路",
        starts_at=now - dt.timedelta(minutes=10),
        ends_at=now + dt.timedelta(minutes=50),
        leader=surgeon,
        institutions=[f.institution("qzph")],
    )
    return Scene(hospadmin, technique, transfer, surgeon, activity)


def test_overview_and_sections_render_for_a_hospital_administrator(login: Any, scene: Scene) -> None:
    client = login("hospadmin")
    response = client.get("/capability/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="nav-capability"' in html
    for url in ("/capability/techniques/", "/capability/ledger/", "/capability/firsts/", "/capability/teaching/"):
        assert url in html
    for url in ("/capability/techniques/", "/capability/ledger/", "/capability/firsts/", "/capability/training/"):
        assert client.get(url).status_code == 200, url
    listing = client.get("/capability/teaching/")
    assert listing.status_code == 200
    assert "颅底解剖与内镜入路" in listing.content.decode()


def test_users_without_capability_view_are_refused_and_see_no_nav_link(login: Any) -> None:
    client = login("coordinator")
    assert client.get("/capability/").status_code == 403
    assert client.get("/capability/ledger/").status_code == 403
    assert 'id="nav-capability"' not in client.get("/").content.decode()


def test_pages_are_in_english_on_request(login: Any, scene: Scene) -> None:
    response = login("hospadmin", language="en").get("/capability/")
    assert "Capability building" in response.content.decode()


def test_a_ledger_outside_the_users_institutions_is_forbidden(login: Any, scene: Scene) -> None:
    client = login("bijie")
    assert client.get(f"/capability/ledger/{scene.transfer.public_id}/").status_code == 403
    assert scene.transfer.public_id.hex not in client.get("/capability/ledger/").content.decode()
    assert client.get(f"/capability/teaching/{scene.activity.public_id}/").status_code == 403


def test_unknown_ids_are_404(login: Any) -> None:
    client = login("hospadmin")
    assert client.get("/capability/ledger/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get("/capability/techniques/nope/edit/").status_code in (403, 404)


def test_the_office_adds_and_edits_a_technique_through_the_forms(login: Any) -> None:
    client = login("office")
    page = client.get("/capability/techniques/")
    assert 'id="technique-form"' in page.content.decode()
    response = client.post(
        "/capability/techniques/new/",
        {"code": "t-tavi", "name_zh": "经导管主动脉瓣置换术", "operation_code": "35.05", "level": "4",
         "restricted": "on", "discipline": Discipline.CARDIOLOGY},
    )  # fmt: skip
    assert response.status_code == 302
    technique = Technique.objects.get(code="t-tavi")
    assert technique.restricted and technique.level == 4
    response = client.post(
        "/capability/techniques/t-tavi/edit/",
        {"name_zh": "经导管主动脉瓣植入术", "operation_code": "35.05", "level": "4", "restricted": "on",
         "discipline": Discipline.CARDIOLOGY, "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    technique.refresh_from_db()
    assert technique.name_zh == "经导管主动脉瓣植入术"


def test_a_restricted_technique_below_level_four_is_refused_on_the_form(login: Any) -> None:
    response = login("office").post(
        "/capability/techniques/new/",
        {"code": "t-bad", "name_zh": "坏", "level": "2", "restricted": "on", "discipline": Discipline.CARDIOLOGY},
    )
    assert response.status_code == 400
    assert not Technique.objects.filter(code="t-bad").exists()


def test_a_doctor_cannot_add_techniques(login: Any) -> None:
    client = login("kaihua")
    assert 'id="technique-form"' not in client.get("/capability/techniques/").content.decode()
    response = client.post("/capability/techniques/new/", {"code": "t-x", "name_zh": "x", "level": "1"})
    assert response.status_code == 403


def test_the_host_opens_a_ledger_through_the_form(login: Any, persona: Any, scene: Scene) -> None:
    other = services.technique_create(
        actor=persona("admin"), code="t-dbs", name_zh="脑深部电刺激术", level=4, discipline=Discipline.NEUROSURGERY
    )
    expert = Practitioner.objects.get(user__username="expert")
    client = login("hospadmin")
    department = f.department("qzph")
    response = client.post(
        "/capability/ledger/new/", {"department": department.pk, "technique": other.code, "expert": expert.pk}
    )
    assert response.status_code == 302
    transfer = Transfer.objects.get(technique=other, department=department)
    assert response["Location"] == f"/capability/ledger/{transfer.public_id}/"
    again = client.post(
        "/capability/ledger/new/", {"department": department.pk, "technique": other.code, "expert": expert.pk}
    )
    assert again.status_code == 409


def test_cases_are_added_and_stages_advanced_on_evidence(login: Any, scene: Scene) -> None:
    client = login("hospadmin")
    url = f"/capability/ledger/{scene.transfer.public_id}/"
    today = timezone.localdate()
    page = client.get(url)
    assert page.status_code == 200
    assert 'id="case-form"' in page.content.decode()
    assert 'id="collect-form"' in page.content.decode()
    response = client.post(
        url + "cases/",
        {"performed_on": (today - dt.timedelta(days=3)).isoformat(), "local_role": LocalRole.ASSISTED,
         "local_surgeon": scene.surgeon.pk},
    )  # fmt: skip
    assert response.status_code == 302
    local_case = scene.transfer.cases.get(local_role=LocalRole.ASSISTED)

    # A surgeon's stage before the introduction is refused in the page, not with a 500.
    refused = client.post(f"{url}cases/{local_case.public_id}/advance/")
    assert refused.status_code == 400
    assert "introduction" in refused.content.decode() or "引进" in refused.content.decode()
    assert 'id="advance-error"' in refused.content.decode()

    client.post(url + "cases/", {"performed_on": (today - dt.timedelta(days=5)).isoformat(), "local_role": "none"})
    expert_case = scene.transfer.cases.get(local_role=LocalRole.NONE)
    assert client.post(f"{url}cases/{expert_case.public_id}/advance/").status_code == 302
    assert client.post(f"{url}cases/{local_case.public_id}/advance/").status_code == 302
    scene.transfer.refresh_from_db()
    assert scene.transfer.stage == Stage.ASSISTS
    assert scene.transfer.introduced_on == today - dt.timedelta(days=5)
    page = client.get(url).content.decode()
    assert "周测试" in page
    # Both cases are now evidence: no advance button is left.
    assert "/advance/" not in page


def test_a_case_dated_in_the_future_is_shown_on_its_field(login: Any, scene: Scene) -> None:
    response = login("hospadmin").post(
        f"/capability/ledger/{scene.transfer.public_id}/cases/",
        {"performed_on": (timezone.localdate() + dt.timedelta(days=2)).isoformat(), "local_role": "none"},
    )
    assert response.status_code == 400
    assert 'id="case-box" open' in response.content.decode()


def test_collecting_evidence_reports_the_counts(login: Any, scene: Scene) -> None:
    client = login("hospadmin")
    response = client.post(f"/capability/ledger/{scene.transfer.public_id}/collect/", follow=True)
    assert response.status_code == 200
    assert re.search(r"alert-success", response.content.decode())


def test_the_hospital_grants_a_privilege_from_the_ledger(login: Any, scene: Scene) -> None:
    client = login("hospadmin")
    url = f"/capability/ledger/{scene.transfer.public_id}/"
    assert 'id="privilege-form"' in client.get(url).content.decode()
    response = client.post(
        url + "privileges/", {"practitioner": scene.surgeon.pk, "granted_on": timezone.localdate().isoformat()}
    )
    assert response.status_code == 302
    assert SurgicalPrivilege.objects.filter(practitioner=scene.surgeon, technique=scene.technique).exists()


def test_a_stationed_expert_may_not_grant_privileges(login: Any, scene: Scene) -> None:
    client = login("expert")
    response = client.post(
        f"/capability/ledger/{scene.transfer.public_id}/privileges/",
        {"practitioner": scene.surgeon.pk, "granted_on": timezone.localdate().isoformat()},
    )
    assert response.status_code == 403


def test_a_first_is_claimed_checked_and_shown_with_its_window(login: Any, scene: Scene) -> None:
    client = login("hospadmin")
    response = client.post(
        "/capability/firsts/new/",
        {"technique": scene.technique.code, "institution": "qzph", "region": "330800",
         "performed_on": (timezone.localdate() - dt.timedelta(days=1)).isoformat()},
    )  # fmt: skip
    assert response.status_code == 302
    claim = FirstClaim.objects.get(technique=scene.technique)
    assert claim.status
    detail = client.get(response["Location"])
    assert detail.status_code == 200
    html = detail.content.decode()
    assert 'id="window"' in html
    assert f'data-status="{claim.status}"' in html
    assert client.post(f"/capability/firsts/{claim.public_id}/verify/").status_code == 302
    listing = client.get(f"/capability/firsts/?status={claim.status}")
    assert str(claim.public_id) in listing.content.decode()
    assert login("bijie").get(f"/capability/firsts/{claim.public_id}/").status_code == 403


def test_a_contradicted_first_shows_the_earlier_case(login: Any, scene: Scene) -> None:
    hospadmin = scene.hospadmin
    services.transfer_case_add(
        actor=hospadmin, transfer=scene.transfer, performed_on=dt.date(2020, 3, 1), local_role=LocalRole.NONE
    )
    claim = services.first_claim(
        actor=hospadmin,
        technique=scene.technique,
        institution=f.institution("qzph"),
        performed_on=timezone.localdate(),
        macro_region="east",
    )
    html = login("hospadmin").get(f"/capability/firsts/{claim.public_id}/").content.decode()
    assert claim.status == "contradicted"
    assert 'id="earlier-case"' in html
    assert "2020-03-01" in html


def test_a_first_without_a_national_code_is_unverifiable_with_the_reason(
    login: Any, persona: Any, scene: Scene
) -> None:
    technique = services.technique_create(
        actor=persona("admin"), code="t-nocode", name_zh="无编码技术", level=3, discipline=Discipline.NEUROSURGERY
    )
    claim = services.first_claim(
        actor=scene.hospadmin,
        technique=technique,
        institution=f.institution("qzph"),
        performed_on=timezone.localdate(),
        macro_region="east",
    )
    html = login("hospadmin").get(f"/capability/firsts/{claim.public_id}/").content.decode()
    assert 'id="no-code"' in html


def test_the_organiser_records_a_teaching_session_through_the_form(login: Any, scene: Scene) -> None:
    client = login("office")  # the consortium office may hold teaching at several member hospitals
    start = timezone.localtime().replace(second=0, microsecond=0)
    response = client.post(
        "/capability/teaching/new/",
        {"kind": TeachingKind.WARD_ROUND, "topic": "教学查房：脑出血", "leader": scene.surgeon.pk,
         "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
         "ends_at": (start + dt.timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M"),
         "institutions": ["qzph", "khph"], "place": "神经外科示教室", "other_attendees": "3"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    activity = TeachingActivity.objects.get(topic="教学查房：脑出血")
    assert {i.code for i in activity.institutions.all()} == {"qzph", "khph"}
    assert activity.hours == 1.5


def test_sign_in_start_shows_the_qr_and_the_link_and_the_panel_polls(login: Any, scene: Scene) -> None:
    client = login("hospadmin")
    url = f"/capability/teaching/{scene.activity.public_id}/"
    assert 'id="sign-in-start"' in client.get(url).content.decode()
    assert client.post(url + "sign-in/start/").status_code == 302
    html = client.get(url).content.decode()
    assert "<svg" in html
    link = re.search(r'data-code-url="([^"]+)"', html)
    assert link is not None and "/sign-in/?code=" in link.group(1)
    assert 'hx-trigger="every 3s"' in html
    # The poll keeps the same code while it is open ...
    polled = client.post(url + "sign-in/panel/", HTTP_HX_REQUEST="true").content.decode()
    assert link.group(1) in polled.replace("&amp;", "&")
    # ... and shows a new one once it is used.
    SignInCode.objects.filter(activity=scene.activity).update(used_at=timezone.now())
    renewed = client.post(url + "sign-in/panel/", HTTP_HX_REQUEST="true").content.decode()
    assert "<svg" in renewed
    assert link.group(1) not in renewed.replace("&amp;", "&")
    assert SignInCode.objects.filter(activity=scene.activity).count() == 2


def _code(scene: Scene) -> str:
    code, _row = services.sign_in_code_issue(actor=scene.hospadmin, activity=scene.activity)
    return code


def test_an_attendee_signs_in_with_a_code_and_is_credited_the_hours(login: Any, scene: Scene) -> None:
    code = _code(scene)
    client = login("kaihua")
    url = f"/capability/teaching/{scene.activity.public_id}/sign-in/"
    page = client.get(url, {"code": code})
    assert page.status_code == 200
    assert "颅底解剖与内镜入路" in page.content.decode()
    assert 'id="sign-in-submit"' in page.content.decode()
    done = client.post(url, {"code": code})
    assert done.status_code == 200
    assert 'id="sign-in-done"' in done.content.decode()
    attendance = TeachingAttendance.objects.get(activity=scene.activity, practitioner__user__username="kaihua")
    assert attendance.hours == 1
    # Signing in again is refused with a message.
    again = client.post(url, {"code": _code(scene)})
    assert again.status_code == 409
    assert 'id="sign-in-already"' in again.content.decode()


def test_the_sign_in_page_asks_for_a_login_first(scene: Scene) -> None:
    url = f"/capability/teaching/{scene.activity.public_id}/sign-in/?code=abc"
    response = Client().get(url)
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert "sign-in" in response["Location"]


def test_an_expired_code_is_refused_with_a_message(login: Any, scene: Scene) -> None:
    code = _code(scene)
    SignInCode.objects.filter(activity=scene.activity).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    client = login("kaihua")
    url = f"/capability/teaching/{scene.activity.public_id}/sign-in/"
    page = client.get(url, {"code": code})
    assert page.status_code == 400
    assert 'id="sign-in-error"' in page.content.decode()
    assert "过期" in page.content.decode() or "expired" in page.content.decode()
    posted = client.post(url, {"code": code})
    assert posted.status_code == 400
    assert not TeachingAttendance.objects.filter(activity=scene.activity).exists()
    english = login("kaihua", language="en").post(url, {"code": code})
    assert "expired" in english.content.decode()


def test_used_and_unknown_codes_are_refused(login: Any, persona: Any, scene: Scene) -> None:
    code = _code(scene)
    url = f"/capability/teaching/{scene.activity.public_id}/sign-in/"
    assert login("kaihua").post(url, {"code": code}).status_code == 200
    used = login("doctor").post(url, {"code": code})
    assert used.status_code == 409
    assert 'id="sign-in-error"' in used.content.decode()
    unknown = login("doctor").get(url, {"code": "not-a-code"})
    assert unknown.status_code == 400


def test_the_organiser_records_an_attendee_by_hand(login: Any, scene: Scene) -> None:
    doctor = Practitioner.objects.get(user__username="doctor")
    client = login("hospadmin")
    url = f"/capability/teaching/{scene.activity.public_id}/attendees/"
    assert client.post(url, {"practitioner": doctor.pk}).status_code == 302
    again = client.post(url, {"practitioner": doctor.pk})
    assert again.status_code == 409
    assert TeachingAttendance.objects.filter(activity=scene.activity, practitioner=doctor).count() == 1


def test_only_the_organiser_runs_the_sign_in(login: Any, scene: Scene) -> None:
    client = login("kaihua")
    page = client.get(f"/capability/teaching/{scene.activity.public_id}/")
    assert page.status_code == 200
    assert 'id="sign-in-start"' not in page.content.decode()
    assert client.post(f"/capability/teaching/{scene.activity.public_id}/sign-in/start/").status_code == 403


def test_a_training_programme_with_milestones_mentees_and_signed_off_assessments(login: Any, scene: Scene) -> None:
    mentor_account = f.user_with_role(Role.DOCTOR, institution_code="qzph")
    mentor = f.practitioner_create(institution_code="qzph", name_zh="导师甲", account=mentor_account)
    client = login("hospadmin")
    start = timezone.localdate() - dt.timedelta(days=70)
    response = client.post(
        "/capability/training/new/",
        {"kind": TrainingKind.BACKBONE, "name_zh": "神经外科骨干培育", "institution": "qzph",
         "mentor": mentor.pk, "starts_on": start.isoformat()},
    )  # fmt: skip
    assert response.status_code == 302
    programme = TrainingProgramme.objects.get(name_zh="神经外科骨干培育")
    url = f"/capability/training/{programme.public_id}/"
    assert client.post(url + "milestones/", {"title_zh": "独立完成颅底手术", "due_months": "1",
                                             "technique": scene.technique.code,
                                             "stage": Stage.INDEPENDENT}).status_code == 302  # fmt: skip
    refused = client.post(
        url + "milestones/", {"title_zh": "缺阶段", "due_months": "3", "technique": "t-endoscopic-skull-base"}
    )
    assert refused.status_code == 400
    assert client.post(url + "mentees/", {"practitioner": scene.surgeon.pk,
                                          "joined_on": start.isoformat()}).status_code == 302  # fmt: skip
    page = client.get(url).content.decode()
    assert "周测试" in page and "0</span> / 1" in page
    mentee = Mentee.objects.get(programme=programme)

    mentee_url = f"/capability/mentees/{mentee.public_id}/"
    milestone = programme.milestones.get()
    mentor_client = Client()
    assert (
        mentor_client.post("/login/", {"username": mentor_account.username, "password": DEMO_PASSWORD}).status_code
        == 302
    )
    html = mentor_client.get(mentee_url).content.decode()
    assert "badge text-bg-danger" in html  # overdue
    assert mentor_client.post(
        mentee_url + "assessments/",
        {"milestone": str(milestone.public_id), "assessed_on": timezone.localdate().isoformat(), "result": "passed",
         "score": "90"},
    ).status_code == 302  # fmt: skip
    assessment = Assessment.objects.get(mentee=mentee)
    # The hospital's administrator sees no sign-off button and may not sign.
    assert "/sign-off/" not in client.get(mentee_url).content.decode()
    assert client.post(f"{mentee_url}assessments/{assessment.public_id}/sign-off/").status_code == 403
    assert mentor_client.post(f"{mentee_url}assessments/{assessment.public_id}/sign-off/").status_code == 302
    assert mentor_client.post(f"{mentee_url}assessments/{assessment.public_id}/sign-off/").status_code == 409
    html = client.get(mentee_url).content.decode()
    assert 'id="stat-reached">1' in html
    assert login("bijie").get(mentee_url).status_code == 403


def test_the_sign_in_page_names_the_activity_only_to_a_holder_of_an_open_code(scene: Scene) -> None:
    """Someone who may not see the activity learns nothing of it from its address alone."""
    account = f.user_with_role(Role.DOCTOR, institution_code="bjfph")
    f.practitioner_create(institution_code="bjfph", account=account)
    client = Client()
    client.force_login(account)
    url = f"/capability/teaching/{scene.activity.public_id}/sign-in/"
    without = client.get(url, {"code": "not-a-code"})
    assert without.status_code == 400
    assert "颅底解剖与内镜入路" not in without.content.decode()
    with_code = client.get(url, {"code": _code(scene)})
    assert with_code.status_code == 200
    assert "颅底解剖与内镜入路" in with_code.content.decode()
