"""Writes: permission and scope checks, validation, one audit row per write."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation

from yilian.core.models import AuditEvent
from yilian.core.permissions import Role
from yilian.registry import selectors, services
from yilian.registry.models import (
    CapabilityKind,
    Consortium,
    ConsortiumMember,
    Department,
    Discipline,
    Institution,
    InstitutionGrade,
    InstitutionType,
    Membership,
    Region,
    User,
)

pytestmark = pytest.mark.django_db


def _create_institution(actor, code: str = "test-hc") -> Institution:
    return services.institution_create(
        actor=actor,
        code=code,
        name_zh="测试卫生院",
        name_en="Test Health Centre",
        grade=InstitutionGrade.PRIMARY,
        type=InstitutionType.PRIMARY_CARE,
        region=Region.objects.get(code="330822"),
    )


def test_office_registers_an_institution_with_an_audit_row(persona) -> None:
    before = AuditEvent.objects.count()
    institution = _create_institution(persona("office"))
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert event is not None
    assert (event.actor_label, event.action, event.object_id) == (
        "office",
        "create",
        str(institution.public_id),
    )


@pytest.mark.parametrize("username", ["doctor", "coordinator", "commission", "hospadmin", "expert"])
def test_roles_without_permission_cannot_register_institutions(persona, username: str) -> None:
    before = AuditEvent.objects.count()
    with pytest.raises(PermissionDenied):
        _create_institution(persona(username))
    assert not Institution.objects.filter(code="test-hc").exists()
    assert AuditEvent.objects.count() == before


def test_office_cannot_change_an_institution_outside_its_consortia(persona) -> None:
    with pytest.raises(PermissionDenied):
        services.institution_update(
            actor=persona("office"), institution=Institution.objects.get(code="bjfph"), changes={"phone": "1"}
        )


def test_update_records_old_and_new_values(persona) -> None:
    qzph = Institution.objects.get(code="qzph")
    services.institution_update(actor=persona("office"), institution=qzph, changes={"phone": "0570-0000000"})
    event = AuditEvent.objects.order_by("-id").first()
    assert event is not None and event.changes["phone"][1] == "0570-0000000"


def test_update_rejects_fields_that_are_not_editable(persona) -> None:
    with pytest.raises(ValidationError, match="code"):
        services.institution_update(
            actor=persona("office"), institution=Institution.objects.get(code="qzph"), changes={"code": "x"}
        )


def test_duplicate_institution_code_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        _create_institution(None, code="qzph")
    assert "code" in info.value.message_dict


def test_capability_not_24_7_needs_hours() -> None:
    with pytest.raises(ValidationError):
        services.capability_create(
            actor=None,
            institution=Institution.objects.get(code="csph"),
            kind=CapabilityKind.MRI,
            valid_from=dt.date(2024, 1, 1),
            all_hours=False,
        )


def test_capability_availability_follows_weekdays_and_hours() -> None:
    from zoneinfo import ZoneInfo

    cap = services.capability_create(
        actor=None,
        institution=Institution.objects.get(code="csph"),
        kind=CapabilityKind.MRI,
        valid_from=dt.date(2024, 1, 1),
        all_hours=False,
        weekdays="12345",
        opens_at=dt.time(8),
        closes_at=dt.time(17, 30),
    )
    tz = ZoneInfo("Asia/Shanghai")
    assert cap.is_available_at(dt.datetime(2026, 11, 23, 9, 0, tzinfo=tz))  # Monday morning
    assert not cap.is_available_at(dt.datetime(2026, 11, 23, 18, 0, tzinfo=tz))  # Monday evening
    assert not cap.is_available_at(dt.datetime(2026, 11, 22, 9, 0, tzinfo=tz))  # Sunday
    assert not cap.is_available_at(dt.datetime(2023, 11, 20, 9, 0, tzinfo=tz))  # before valid_from


def test_consortium_member_joins_once_and_leaves_with_a_date(persona) -> None:
    consortium = Consortium.objects.get(code="zju2-quzhou")
    csph = _create_institution(persona("office"), code="kh-new")  # newly registered, in no consortium
    member = services.consortium_member_add(
        actor=persona("office"), consortium=consortium, institution=csph, joined_on=dt.date(2024, 1, 1)
    )
    with pytest.raises(ValidationError, match="已是"):
        services.consortium_member_add(
            actor=persona("office"), consortium=consortium, institution=csph, joined_on=dt.date(2024, 2, 1)
        )
    with pytest.raises(ValidationError):
        services.consortium_member_leave(actor=persona("office"), member=member, left_on=dt.date(2023, 1, 1))
    services.consortium_member_leave(actor=persona("office"), member=member, left_on=dt.date(2025, 1, 1))
    member.refresh_from_db()
    assert member.left_on == dt.date(2025, 1, 1)


def test_an_admission_racing_another_office_is_never_told_the_institution_is_not_theirs(persona, monkeypatch) -> None:
    """The interleaving that once answered "outside your consortia": the other office's admission
    commits just after this one has asked whether it sees the institution. Whatever the order of
    the checks, this office is told "already a member" (or admits it), never refused for scope."""
    office = persona("office")
    consortium = Consortium.objects.get(code="zju2-quzhou")
    newcomer = _create_institution(office, code="kh-new")  # newly registered, in no consortium
    real = selectors.institution_queryset_visible_to

    def seen_then_admitted_elsewhere(user):
        seen = list(real(user).values_list("pk", flat=True))  # the read happens now ...
        ConsortiumMember.objects.create(  # ... then the other office's admission commits
            consortium=consortium, institution=newcomer, joined_on=dt.date(2025, 3, 1)
        )
        return Institution.objects.filter(pk__in=seen)

    monkeypatch.setattr(selectors, "institution_queryset_visible_to", seen_then_admitted_elsewhere)
    with contextlib.suppress(ValidationError):  # "already a member" is a right answer; PermissionDenied is not
        services.consortium_member_add(
            actor=office, consortium=consortium, institution=newcomer, joined_on=dt.date(2025, 3, 1)
        )
    current = ConsortiumMember.objects.filter(consortium=consortium, institution=newcomer, left_on__isnull=True)
    assert current.count() == 1


def test_lead_institution_cannot_leave(persona) -> None:
    lead = ConsortiumMember.objects.get(consortium__code="zju2-quzhou", role="lead")
    with pytest.raises(ValidationError):
        services.consortium_member_leave(actor=persona("office"), member=lead, left_on=dt.date(2025, 1, 1))


def test_office_cannot_change_another_consortium(persona) -> None:
    with pytest.raises(PermissionDenied):
        services.consortium_member_add(
            actor=persona("office"),
            consortium=Consortium.objects.get(code="bijie-nrmc"),
            institution=Institution.objects.get(code="gzph"),
            joined_on=dt.date(2024, 1, 1),
        )


def test_pairing_departments_must_belong_to_parties() -> None:
    from yilian.registry.models import Agreement

    agreement = Agreement.objects.get(code="zju2-qzph-2018")
    outsider = Department.objects.filter(institution__code="bjfph").first()
    lead = Department.objects.get(institution__code="zju2", discipline=Discipline.NEUROSURGERY)
    assert outsider is not None
    with pytest.raises(ValidationError, match="签约方"):
        services.pairing_add(actor=None, agreement=agreement, lead_department=lead, member_department=outsider)


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short1!", "short"),
        ("abcdefghijkl", "digit"),
        ("1234567890123", "numeric"),
        ("password123", "common"),
    ],
)
def test_password_rules(password: str, fragment: str) -> None:
    with translation.override("en"), pytest.raises(ValidationError) as info:
        services.user_create(actor=None, username="newbie", password=password)
    assert fragment in " ".join(info.value.messages).lower()
    assert not User.objects.filter(username="newbie").exists()


def test_password_rule_message_in_chinese() -> None:
    with translation.override("zh-hans"), pytest.raises(ValidationError) as info:
        services.user_create(actor=None, username="newbie", password="abcdefghijkl")
    assert "密码必须包含字母" in " ".join(info.value.messages)


def test_an_account_without_a_password_cannot_log_in_and_needs_no_password_rule(client) -> None:
    """Accounts that stand for history or for experts without a login of their own (the demo's)."""
    user = services.user_create(actor=None, username="history-x", password=None, display_name="历史数据")
    assert not user.has_usable_password()
    assert AuditEvent.objects.filter(action="create", changes__username="history-x").exists()
    response = client.post("/login/", {"username": "history-x", "password": ""})
    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_membership_requires_the_scope_its_role_needs() -> None:
    user = services.user_create(actor=None, username="newbie", password="Quzhou-2018!")
    with pytest.raises(ValidationError):
        services.membership_grant(actor=None, user=user, role=Role.COMMISSION_VIEWER)
    with pytest.raises(ValidationError):
        services.membership_grant(actor=None, user=user, role=Role.CONSORTIUM_OFFICE)
    with pytest.raises(ValidationError):
        services.membership_grant(actor=None, user=user, role=Role.DOCTOR)


def test_hospital_admin_grants_clinical_roles_at_own_hospital_only(persona) -> None:
    hospadmin = persona("hospadmin")
    user = services.user_create(actor=hospadmin, username="newdoc", password="Quzhou-2018!")
    services.membership_grant(
        actor=hospadmin, user=user, role=Role.DOCTOR, institution=Institution.objects.get(code="qzph")
    )
    assert Membership.objects.filter(user=user, role=Role.DOCTOR).exists()
    with pytest.raises(PermissionDenied):
        services.membership_grant(
            actor=hospadmin, user=user, role=Role.DOCTOR, institution=Institution.objects.get(code="csph")
        )
    with pytest.raises(PermissionDenied):
        services.membership_grant(actor=hospadmin, user=user, role=Role.SYSTEM_ADMIN)


def test_office_role_gives_admin_site_access() -> None:
    user = services.user_create(actor=None, username="office2", password="Quzhou-2018!")
    services.membership_grant(
        actor=None,
        user=user,
        role=Role.CONSORTIUM_OFFICE,
        consortium=Consortium.objects.get(code="kaihua-ccm"),
    )
    user.refresh_from_db()
    assert user.is_staff
    assert selectors.user_scope(user).consortium_ids


def test_api_tokens_are_stored_hashed_and_can_be_revoked(persona) -> None:
    doctor = persona("doctor")
    token, key = services.api_token_create(actor=doctor, user=doctor)
    assert key not in token.key_hash and token.key_hash != key
    assert services.api_token_authenticate(key) == doctor
    assert services.api_token_authenticate(key + "x") is None
    services.api_token_revoke(actor=doctor, token=token)
    assert services.api_token_authenticate(key) is None


def test_user_cannot_create_tokens_for_someone_else(persona) -> None:
    with pytest.raises(PermissionDenied):
        services.api_token_create(actor=persona("doctor"), user=persona("coordinator"))
