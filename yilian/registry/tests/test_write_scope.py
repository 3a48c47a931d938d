"""Who may change what: write scope is narrower than what one may see, roles do not pool
across institutions, and tokens act only for their own user."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from yilian.core.models import AuditEvent
from yilian.core.permissions import Role
from yilian.registry import selectors, services
from yilian.registry.models import Consortium, Institution, Practitioner

pytestmark = pytest.mark.django_db

PASSWORD = "Kaihua-2019!"


@pytest.fixture
def kaihua_office():
    """The office of the Kaihua county medical community: sees zju2 (khph's partner), runs only Kaihua."""
    user = services.user_create(actor=None, username="kh.office", password=PASSWORD)
    services.membership_grant(
        actor=None, user=user, role=Role.CONSORTIUM_OFFICE, consortium=Consortium.objects.get(code="kaihua-ccm")
    )
    return user


def test_an_office_may_see_but_not_change_a_partner_of_its_members(kaihua_office) -> None:
    zju2 = Institution.objects.get(code="zju2")
    assert selectors.institution_queryset_visible_to(kaihua_office).filter(pk=zju2.pk).exists()
    with pytest.raises(PermissionDenied):
        services.institution_update(actor=kaihua_office, institution=zju2, changes={"phone": "1"})
    huabu = Institution.objects.get(code="kh-huabu")
    services.institution_update(actor=kaihua_office, institution=huabu, changes={"phone": "0570-6000000"})


def test_admin_site_refuses_changes_outside_the_office_write_scope(kaihua_office, client) -> None:
    client.post("/login/", {"username": "kh.office", "password": PASSWORD})
    zju2_quzhou = Consortium.objects.get(code="zju2-quzhou")
    zju2 = Institution.objects.get(code="zju2")
    assert client.post(f"/admin/registry/consortium/{zju2_quzhou.pk}/change/", {}).status_code == 403
    assert client.post(f"/admin/registry/institution/{zju2.pk}/change/", {}).status_code == 403
    page = client.get(f"/admin/registry/institution/{zju2.pk}/change/").content.decode()
    assert 'name="_save"' not in page  # shown read-only


def test_roles_do_not_pool_across_institutions(persona) -> None:
    """A hospital administrator at qzph who is also a doctor at bjfph is no administrator at bjfph."""
    hospadmin = persona("hospadmin")
    services.membership_grant(
        actor=None, user=hospadmin, role=Role.DOCTOR, institution=Institution.objects.get(code="bjfph")
    )
    hospadmin = persona("hospadmin")  # fresh object: the scope is cached per user object
    bijie_doctor = Practitioner.objects.get(user__username="bijie")
    assert not selectors.can_see_practitioner_private(hospadmin, bijie_doctor)
    with pytest.raises(PermissionDenied):
        services.practitioner_create(
            actor=hospadmin,
            name_zh="张三",
            title="attending_physician",
            institution=Institution.objects.get(code="bjfph"),
            department=None,
            licence_number="110000000000001",
        )
    from yilian.core.audit import audit_record
    from yilian.core.models import AuditAction

    audit_record(actor=persona("bijie"), action=AuditAction.EXPORT, object_type="pool-test")
    assert not selectors.audit_list_visible_to(hospadmin, object_query="pool-test").exists()


def test_a_hospital_admin_cannot_mint_or_revoke_tokens_for_others(persona) -> None:
    with pytest.raises(PermissionDenied):
        services.api_token_create(actor=persona("hospadmin"), user=persona("admin"))
    with pytest.raises(PermissionDenied):
        services.api_token_create(actor=persona("hospadmin"), user=persona("coordinator"))
    token, _ = services.api_token_create(actor=persona("coordinator"), user=persona("coordinator"))
    with pytest.raises(PermissionDenied):
        services.api_token_revoke(actor=persona("hospadmin"), token=token)
    services.api_token_create(actor=persona("admin"), user=persona("coordinator"))  # system administrator may


def test_model_rules_hold_for_every_write_path() -> None:
    """The rules live in the models' clean(), so the admin's forms enforce them too."""
    from django.core.exceptions import ValidationError

    from yilian.registry.models import Agreement, ConsortiumMember, Department, DepartmentPairing

    lead = ConsortiumMember.objects.get(consortium__code="zju2-quzhou", role="lead")
    lead.left_on = lead.joined_on
    with pytest.raises(ValidationError, match="牵头"):
        lead.full_clean()
    pairing = DepartmentPairing(
        agreement=Agreement.objects.get(code="zju2-qzph-2018"),
        lead_department=Department.objects.filter(institution__code="zju2").first(),
        member_department=Department.objects.filter(institution__code="bjfph").first(),
    )
    with pytest.raises(ValidationError, match="签约方"):
        pairing.full_clean()
    assert AuditEvent.objects.exists()
