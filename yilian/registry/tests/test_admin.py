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
    response = login("admin").post(
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
        "admin",
        "update",
        "admin",
        "Kaihua",
    )


def test_adding_a_user_in_the_admin_never_records_the_password(login) -> None:
    response = login("admin").post(
        "/admin/registry/user/add/",
        {
            "username": "new.nurse",
            "password1": "Very-Secret-2026",
            "password2": "Very-Secret-2026",
            "usable_password": "true",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert not AuditEvent.objects.filter(changes__icontains="Very-Secret-2026").exists()
    event = AuditEvent.objects.filter(object_repr="new.nurse").latest("id")
    assert "Very-Secret-2026" not in str(event.changes)


def test_a_password_change_in_the_admin_is_audited_without_the_password(login) -> None:
    from yilian.registry.models import User

    doctor = User.objects.get(username="doctor")
    response = login("admin").post(
        f"/admin/registry/user/{doctor.pk}/password/",
        {"password1": "Changshan-2026!", "password2": "Changshan-2026!"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.latest("id")
    assert (event.actor_label, event.object_repr, event.changes["password"]) == (
        "admin",
        str(doctor),
        "[changed, not recorded]",
    )
    assert "Changshan-2026!" not in str(event.changes)


def test_office_cannot_rename_regions_but_the_system_admin_can(login) -> None:
    region = Region.objects.get(code="330824")
    data = {
        "code": region.code,
        "name_zh": region.name_zh,
        "name_en": "Kaihua",
        "level": region.level,
        "parent": region.parent_id,
    }
    assert login("office").post(f"/admin/registry/region/{region.pk}/change/", data).status_code == 403
    assert login("admin").post(f"/admin/registry/region/{region.pk}/change/", data).status_code == 302


def test_office_edits_departments_inline_and_each_row_is_audited(login) -> None:
    from yilian.registry.models import Institution

    qzph = Institution.objects.get(code="qzph")
    client = login("office")
    page = client.get(f"/admin/registry/institution/{qzph.pk}/change/").content.decode()
    assert 'name="departments-TOTAL_FORMS"' in page and 'name="capabilities-TOTAL_FORMS"' in page
    response = client.get(f"/admin/registry/institution/{qzph.pk}/change/")
    form = response.context["adminform"].form
    data = {name: ("" if value is None else value) for name, value in form.initial.items() if name in form.fields}
    data["region"] = qzph.region_id
    data["latitude"], data["longitude"] = qzph.latitude or "", qzph.longitude or ""
    for formset in response.context["inline_admin_formsets"]:
        fs = formset.formset
        data.update({f"{fs.prefix}-{k}": v for k, v in fs.management_form.initial.items()})
        for i, inline_form in enumerate(fs.forms):
            for name, field in inline_form.fields.items():
                value = inline_form.initial.get(name, field.initial)
                if value is None:
                    value = ""
                if isinstance(value, bool):
                    if value:
                        data[f"{fs.prefix}-{i}-{name}"] = "on"
                    continue
                data[f"{fs.prefix}-{i}-{name}"] = getattr(value, "pk", value)
    prefix = "departments"
    total = int(data[f"{prefix}-TOTAL_FORMS"])
    data[f"{prefix}-TOTAL_FORMS"] = total + 1
    data[f"{prefix}-{total}-discipline"] = "ophthalmology"
    data[f"{prefix}-{total}-name_zh"] = "眼科"
    data[f"{prefix}-{total}-is_active"] = "on"
    response = client.post(f"/admin/registry/institution/{qzph.pk}/change/", data)
    assert response.status_code == 302, [
        f.errors for f in response.context["inline_admin_formsets"][0].formset.forms if f.errors
    ]
    event = AuditEvent.objects.filter(object_type="registry.department").latest("id")
    assert (event.actor_label, event.action, event.changes["via"]) == ("office", "create", "admin")
    assert qzph.departments.filter(discipline="ophthalmology").exists()


def test_office_cannot_add_a_practitioner_outside_its_consortium(login) -> None:
    from yilian.registry.models import Institution, Practitioner

    bjfph = Institution.objects.get(code="bjfph")
    response = login("office").post(
        "/admin/registry/practitioner/add/",
        {
            "name_zh": "冒名",
            "title": "attending_physician",
            "institution": bjfph.pk,
            "licence_number": "520000000000999",
        },
    )
    assert response.status_code == 403
    assert not Practitioner.objects.filter(licence_number="520000000000999").exists()


def test_office_cannot_create_an_agreement_in_another_consortium(login) -> None:
    from yilian.registry.models import Agreement, Consortium, Institution

    response = login("office").post(
        "/admin/registry/agreement/add/",
        {
            "code": "evil-2026",
            "consortium": Consortium.objects.get(code="zju1-quzhou").pk,
            "title_zh": "越权协议",
            "parties": [Institution.objects.get(code="zju1").pk, Institution.objects.get(code="csph").pk],
            "signed_on": "2026-01-01",
            "valid_from": "2026-01-01",
            "status": "active",
            "pairings-TOTAL_FORMS": "0",
            "pairings-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 403
    assert not Agreement.objects.filter(code="evil-2026").exists()


def test_office_cannot_move_the_lead_or_found_consortia(login) -> None:
    from yilian.registry.models import Consortium

    client = login("office")
    consortium = Consortium.objects.get(code="zju2-quzhou")
    page = client.get(f"/admin/registry/consortium/{consortium.pk}/change/").content.decode()
    assert 'name="lead_institution"' not in page  # shown, not editable
    assert 'name="members-0-role"' not in page
    assert client.get("/admin/registry/consortium/add/").status_code == 403


def test_pairing_rows_pick_departments_by_id_not_from_a_national_list(login) -> None:
    from yilian.registry.models import Agreement

    agreement = Agreement.objects.get(code="zju2-qzph-2018")
    page = login("office").get(f"/admin/registry/agreement/{agreement.pk}/change/").content.decode()
    assert page.count("<option") < 60


def test_licence_numbers_are_not_shown_or_searchable_in_the_admin(login) -> None:
    from yilian.registry.models import Practitioner

    expert = Practitioner.objects.get(user__username="expert")
    client = login("admin")
    assert expert.licence_number not in client.get(f"/admin/registry/practitioner/{expert.pk}/change/").content.decode()
    found = client.get("/admin/registry/practitioner/", {"q": expert.licence_number}).content.decode()
    assert expert.name_zh not in found


def test_accounts_and_roles_are_for_system_administrators_only(persona, login) -> None:
    """Even a user whose roles together hold admin-site access and user management."""
    from yilian.core.permissions import Role
    from yilian.registry import services
    from yilian.registry.models import Consortium

    services.membership_grant(
        actor=None,
        user=persona("hospadmin"),
        role=Role.CONSORTIUM_OFFICE,
        consortium=Consortium.objects.get(code="kaihua-ccm"),
    )
    client = login("hospadmin")
    assert client.get("/admin/registry/user/").status_code == 403
    assert client.get("/admin/registry/apitoken/").status_code == 403
    assert login("admin").get("/admin/registry/user/").status_code == 200


def test_ended_agreements_are_not_revived_in_the_admin(login) -> None:
    from yilian.registry.models import Agreement

    expired = Agreement.objects.filter(status="expired").first()
    assert expired is not None
    client = login("admin")
    response = client.get(f"/admin/registry/agreement/{expired.pk}/change/")
    form = response.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if k in form.fields and v is not None}
    data["parties"] = [p.pk for p in expired.parties.all()]
    data["status"] = "active"
    data.update({"pairings-TOTAL_FORMS": "0", "pairings-INITIAL_FORMS": "0"})
    data.pop("document", None)
    response = client.post(f"/admin/registry/agreement/{expired.pk}/change/", data)
    assert response.status_code == 200
    assert "不能变为" in response.content.decode()
    expired.refresh_from_db()
    assert expired.status == "expired"
