"""The administration site: for the consortium office and system administrators, scoped,
and every save lands in the audit trail."""

from __future__ import annotations

import pytest

from yilian.core.models import AuditEvent
from yilian.registry.models import Region

pytestmark = pytest.mark.django_db


def test_system_admin_opens_every_registry_list(login) -> None:
    client = login("admin")
    for model in ["institution", "consortium", "agreement", "practitioner", "user", "region", "apitoken"]:
        assert client.get(f"/admin/registry/{model}/").status_code == 200, model
    assert client.get("/admin/core/auditevent/").status_code == 200


def test_office_sees_only_its_consortium_members_in_the_admin(login) -> None:
    page = login("office").get("/admin/registry/institution/").content.decode()
    assert "qzph" in page and "khph" in page
    assert "bjfph" not in page


@pytest.mark.parametrize("username", ["doctor", "commission", "coordinator"])
def test_clinical_and_viewer_roles_cannot_enter_the_admin(login, username: str) -> None:
    response = login(username).get("/admin/registry/institution/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_offers_no_deletion(login) -> None:
    region = Region.objects.get(code="330824")
    response = login("admin").get(f"/admin/registry/region/{region.pk}/delete/")
    assert response.status_code == 403


def test_a_save_in_the_admin_is_audited(login) -> None:
    region = Region.objects.get(code="330824")
    response = login("office").post(
        f"/admin/registry/region/{region.pk}/change/",
        {
            "code": region.code,
            "name_zh": region.name_zh,
            "name_en": "Kaihua",
            "level": region.level,
            "parent": region.parent_id,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    region.refresh_from_db()
    assert region.name_en == "Kaihua"
    event = AuditEvent.objects.latest("id")
    assert (event.actor_label, event.action, event.changes["via"], event.changes["name_en"]) == (
        "office",
        "update",
        "admin",
        "Kaihua",
    )
