"""The signed agreement PDF: attached by the consortium office, checked to be a PDF, opened
only by those who may see the agreement, every opening audited."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from yilian.core.models import AuditEvent
from yilian.registry import services
from yilian.registry.models import Agreement

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path


def _attach(actor, content: bytes = PDF, name: str = "signed.pdf") -> Agreement:
    return services.agreement_document_attach(
        actor=actor,
        agreement=Agreement.objects.get(code="zju2-qzph-2018"),
        document=SimpleUploadedFile(name, content, content_type="application/pdf"),
    )


def test_office_attaches_a_pdf_and_the_change_is_audited(persona) -> None:
    agreement = _attach(persona("office"))
    assert agreement.document.name.endswith(".pdf")
    event = AuditEvent.objects.latest("id")
    assert event.actor_label == "office" and "document" in event.changes


def test_a_file_named_pdf_that_is_not_a_pdf_is_refused_in_chinese(persona) -> None:
    before = Agreement.objects.get(code="zju2-qzph-2018").document.name
    with pytest.raises(ValidationError) as info:
        _attach(persona("office"), content=b"MZ\x90\x00 not a pdf")
    assert "不是 PDF" in " ".join(info.value.messages)
    assert Agreement.objects.get(code="zju2-qzph-2018").document.name == before


def test_other_extensions_are_refused(persona) -> None:
    with pytest.raises(ValidationError):
        _attach(persona("office"), name="signed.exe")


def test_only_the_office_of_the_consortium_attaches(persona) -> None:
    with pytest.raises(PermissionDenied):
        _attach(persona("hospadmin"))


def test_parties_open_the_document_and_each_opening_is_audited(persona, login) -> None:
    _attach(persona("office"))
    response = login("hospadmin").get("/agreements/zju2-qzph-2018/document/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content).startswith(b"%PDF-")
    event = AuditEvent.objects.latest("id")
    assert (event.actor_label, event.action) == ("hospadmin", "export")


def test_doctors_and_outsiders_cannot_open_it(persona, login) -> None:
    _attach(persona("office"))
    assert login("doctor").get("/agreements/zju2-qzph-2018/document/").status_code == 403
    assert login("bijie").get("/agreements/zju2-qzph-2018/document/").status_code == 403


def test_missing_document_is_404(login) -> None:
    # The demo's file lives in another media directory than this test's: the row points at nothing.
    assert login("hospadmin").get("/agreements/zju2-qzph-2018/document/").status_code == 404
    Agreement.objects.filter(code="zju2-qzph-2018").update(document="")
    assert login("hospadmin").get("/agreements/zju2-qzph-2018/document/").status_code == 404


def test_consortium_page_links_the_document(persona, login) -> None:
    _attach(persona("office"))
    page = login("office").get("/consortia/zju2-quzhou/").content.decode()
    assert "/agreements/zju2-qzph-2018/document/" in page
