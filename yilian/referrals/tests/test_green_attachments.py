"""Files sent with a green-channel case: at activation (all or nothing) and on the case page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from yilian.core.models import AuditEvent
from yilian.referrals import green_services
from yilian.referrals.green_services import PatientGiven
from yilian.referrals.models import GreenCase, GreenProtocol, Referral, ReferralAttachment
from yilian.registry.models import Consortium, Institution

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%" + b"x" * 64


@pytest.fixture(autouse=True)
def _media(tmp_path: Any) -> Any:
    with override_settings(MEDIA_ROOT=str(tmp_path)):
        yield


@pytest.fixture
def stroke(db: None) -> GreenProtocol:
    neuro = Consortium.objects.get(code="quzhou-neuro")
    green_services.green_protocols_install_defaults(consortium=neuro)
    return GreenProtocol.objects.get(consortium=neuro, code="stroke")


def _activate(persona: Any, stroke: GreenProtocol, files: list[SimpleUploadedFile]) -> GreenCase:
    return green_services.green_activate(
        actor=persona("doctor"),
        sender=Institution.objects.get(code="csph"),
        protocol=stroke,
        patient=PatientGiven(sex="male", approximate_age=66),
        onset_at=timezone.now() - dt.timedelta(hours=1),
        findings=["lvo"],
        destination=Institution.objects.get(code="qzph"),
        attachments=files,
    )


def test_files_given_at_activation_go_with_the_case_and_are_audited(persona: Any, stroke: GreenProtocol) -> None:
    case = _activate(persona, stroke, [SimpleUploadedFile("cta.png", PNG), SimpleUploadedFile("ecg.pdf", PDF)])
    files = list(ReferralAttachment.objects.filter(referral=case.referral).order_by("filename"))
    assert [(f.filename, f.kind) for f in files] == [("cta.png", "image"), ("ecg.pdf", "pdf")]
    audited = AuditEvent.objects.filter(
        action="create", object_type="referrals.referralattachment", changes__referral=case.referral.number
    )
    assert audited.count() == 2


def test_an_unreadable_file_refuses_the_activation_and_writes_nothing(persona: Any, stroke: GreenProtocol) -> None:
    before = (Referral.objects.count(), GreenCase.objects.count(), ReferralAttachment.objects.count())
    with pytest.raises(ValidationError) as excinfo:
        _activate(
            persona, stroke, [SimpleUploadedFile("cta.png", PNG), SimpleUploadedFile("notes.docx", b"PK\x03\x04")]
        )
    assert "notes.docx" in excinfo.value.message_dict["attachments"][0]
    assert (Referral.objects.count(), GreenCase.objects.count(), ReferralAttachment.objects.count()) == before


def test_activation_page_takes_files(login: Any, stroke: GreenProtocol) -> None:
    client = login("doctor")
    page = client.get("/referrals/green/new/")
    assert page.status_code == 200 and b'name="attachments"' in page.content
    assert b'enctype="multipart/form-data"' in page.content


def test_case_page_lists_files_and_takes_more(login: Any, persona: Any, stroke: GreenProtocol) -> None:
    case = _activate(persona, stroke, [SimpleUploadedFile("cta.png", PNG)])
    url = f"/referrals/green/{case.referral.public_id}/"
    coordinator = login("coordinator")
    page = coordinator.get(url)
    assert page.status_code == 200 and "cta.png" in page.content.decode()
    added = coordinator.post(url + "files/", {"file": SimpleUploadedFile("angio.pdf", PDF), "description": "DSA"})
    assert added.status_code == 302 and added["Location"].endswith(url + "#g-files")
    assert "angio.pdf" in coordinator.get(url).content.decode()
    refused = coordinator.post(url + "files/", {"file": SimpleUploadedFile("x.txt", b"hello")})
    assert refused.status_code == 400
    assert ReferralAttachment.objects.filter(referral=case.referral).count() == 2
