"""Scoping: each persona sees exactly what their memberships reach."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from yilian.registry import selectors
from yilian.registry.models import Agreement, Practitioner

pytestmark = pytest.mark.django_db


def codes(qs) -> set[str]:
    return {i.code for i in qs}


def test_doctor_sees_own_hospital_and_consortium_partners_only(persona) -> None:
    doctor = persona("doctor")  # Changshan county hospital: zju1-quzhou and the Quzhou neurosurgery alliance
    visible = codes(selectors.institution_list_visible_to(doctor))
    assert {"csph", "zju1", "jsph", "qzph", "cs-tianma"} <= visible
    assert "bjfph" not in visible
    assert "zju2" not in visible  # leads a consortium Changshan is not in
    assert "qzmch" not in visible  # a Quzhou hospital, but in no consortium with Changshan
    assert "gzph" not in visible


def test_doctor_cannot_open_an_institution_outside_scope(persona) -> None:
    with pytest.raises(PermissionDenied, match="bjfph"):
        selectors.access_institution(persona("doctor"), "bjfph")
    with pytest.raises(Http404):
        selectors.access_institution(persona("doctor"), "no-such-code")


def test_bijie_doctor_sees_bijie_centre_not_quzhou(persona) -> None:
    visible = codes(selectors.institution_list_visible_to(persona("bijie")))
    assert {"bjfph", "zjpph", "qxgph"} <= visible
    assert not visible & {"qzph", "csph", "khph", "zju2"}


def test_commission_viewer_sees_only_their_region(persona) -> None:
    visible = list(selectors.institution_list_visible_to(persona("commission")))  # Quzhou, 330800
    assert visible
    assert all(i.region.code.startswith("3308") for i in visible)
    assert {"qzph", "khph", "csph", "kh-huabu"} <= codes(visible)


def test_commission_viewer_sees_consortia_involving_their_region(persona) -> None:
    consortia = codes(selectors.consortium_list_visible_to(persona("commission")))
    assert {"zju2-quzhou", "kaihua-ccm"} <= consortia
    assert "bijie-nrmc" not in consortia


def test_consortium_office_sees_its_members(persona) -> None:
    visible = codes(selectors.institution_list_visible_to(persona("office")))
    assert {"zju2", "qzph", "qz2ph", "khph"} <= visible
    assert "bjfph" not in visible


def test_system_admin_sees_everything(persona) -> None:
    from yilian.registry.models import Institution

    assert (
        selectors.institution_list_visible_to(persona("admin")).count()
        == Institution.objects.filter(is_active=True).count()
    )


def test_agreements_are_visible_to_parties_not_to_doctors(persona) -> None:
    zju2_qzph = Agreement.objects.get(code="zju2-qzph-2018")
    assert zju2_qzph in selectors.agreement_queryset_visible_to(persona("hospadmin"))  # qzph is a party
    assert zju2_qzph in selectors.agreement_queryset_visible_to(persona("commission"))  # Quzhou party
    assert zju2_qzph not in selectors.agreement_queryset_visible_to(persona("doctor"))  # no permission
    assert not selectors.agreement_queryset_visible_to(persona("bijie")).exists()  # doctor: no permission
    with pytest.raises(PermissionDenied):
        selectors.access_agreement(persona("doctor"), "zju2-qzph-2018")


def test_licence_number_visible_to_own_hospital_admin_and_self_only(persona) -> None:
    expert = Practitioner.objects.get(user__username="expert")  # zju2
    qzph_doctor = Practitioner.objects.filter(institution__code="qzph").first()
    assert qzph_doctor is not None
    assert selectors.can_see_practitioner_private(persona("expert"), expert)
    assert selectors.can_see_practitioner_private(persona("hospadmin"), qzph_doctor)
    assert not selectors.can_see_practitioner_private(persona("hospadmin"), expert)
    assert not selectors.can_see_practitioner_private(persona("coordinator"), qzph_doctor)
    assert selectors.can_see_practitioner_private(persona("office"), qzph_doctor)


def test_audit_trail_readable_by_admins_only(persona) -> None:
    assert selectors.audit_list_visible_to(persona("admin")).exists()
    with pytest.raises(PermissionDenied):
        selectors.audit_list_visible_to(persona("doctor"))
    with pytest.raises(PermissionDenied):
        selectors.audit_list_visible_to(persona("commission"))


def test_hospital_admin_sees_audit_rows_of_own_staff_only(persona, client) -> None:
    from yilian.core.audit import audit_record
    from yilian.core.models import AuditAction

    audit_record(actor=persona("coordinator"), action=AuditAction.EXPORT, object_type="t")  # qzph staff
    audit_record(actor=persona("doctor"), action=AuditAction.EXPORT, object_type="t")  # csph
    rows = selectors.audit_list_visible_to(persona("hospadmin"), object_query="t", action="export")
    assert {e.actor_label for e in rows} == {"coordinator"}


def test_search_spans_institutions_practitioners_and_consortia_in_scope(persona) -> None:
    results = selectors.directory_search(persona("doctor"), query="常山")
    assert "csph" in {i.code for i in results.institutions}
    assert "王建国" in {p.name_zh for p in results.practitioners}  # by hospital name
    neurology = selectors.directory_search(persona("doctor"), query="神经内科").practitioners
    assert neurology and all(p.department and p.department.discipline == "neurology" for p in neurology)
    results = selectors.directory_search(persona("doctor"), query="毕节")
    assert results.institutions == [] and results.consortia == []


def test_inactive_user_sees_nothing(persona) -> None:
    doctor = persona("doctor")
    doctor.is_active = False
    assert not selectors.institution_list_visible_to(doctor).exists()
