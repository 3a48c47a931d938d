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
