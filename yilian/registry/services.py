"""Writes to the registry.

Rules enforced here:
- every write runs in one transaction and appends its audit row in that transaction;
- ``actor=None`` means the system itself (command line, demo seeding); otherwise the actor
  needs the named permission, and a scoped role may only touch what its scope reaches
  (a hospital administrator their own institution's staff, a consortium office its consortia);
- a membership carries the scope its role needs (commission -> region, office -> consortium,
  others -> institution), which the database also enforces with check constraints;
- passwords pass the configured validators; API tokens are stored only as SHA-256 hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from decimal import Decimal
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission, Role
from yilian.registry import selectors
from yilian.registry.models import (
    Agreement,
    AgreementStatus,
    ApiToken,
    Capability,
    CapabilityKind,
    Consortium,
    ConsortiumMember,
    Department,
    DepartmentPairing,
    Institution,
    MemberRelation,
    MemberRole,
    Membership,
    PairingKind,
    Practitioner,
    Region,
    RegionLevel,
    User,
)

Actor = User | None

# Roles whose holders may open the Django administration site.
_ADMIN_SITE_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.CONSORTIUM_OFFICE})


def _check(actor: Actor, permission: Permission) -> None:
    if actor is not None:
        selectors.require_perm(actor, permission)


def _check_institution_in_scope(actor: Actor, institution: Institution) -> None:
    if actor is None:
        return
    if not selectors.institution_queryset_managed_by(actor).filter(pk=institution.pk).exists():
        raise PermissionDenied(_("Institution %(code)s is outside what you may change.") % {"code": institution.code})


def _check_system_admin(actor: Actor) -> None:
    if actor is not None and not selectors.user_scope(actor).is_global:
        raise PermissionDenied(_("Only a system administrator may do this."))


def _full_clean(obj: models.Model, exclude: list[str] | None = None) -> None:
    obj.full_clean(exclude=exclude, validate_unique=True)


def _snapshot(obj: models.Model, fields: list[str]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


def _update(obj: models.Model, changes: dict[str, Any], allowed: set[str]) -> dict[str, list[Any]]:
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(
            _("These fields cannot be changed here: %(fields)s") % {"fields": ", ".join(sorted(unknown))}
        )
    diff: dict[str, list[Any]] = {}
    for name, value in changes.items():
        old = getattr(obj, name)
        if old != value:
            diff[name] = [old, value]
            setattr(obj, name, value)
    return diff


# Regions -------------------------------------------------------------------------------


@transaction.atomic
def region_create(
    *, actor: Actor, code: str, name_zh: str, name_en: str, level: RegionLevel, parent: Region | None
) -> Region:
    _check(actor, Permission.MANAGE_INSTITUTIONS)
    region = Region(code=code, name_zh=name_zh, name_en=name_en, level=level, parent=parent)
    _full_clean(region)
    region.save()
    audit_record(actor=actor, action=AuditAction.CREATE, obj=region, changes={"code": code, "name_zh": name_zh})
    return region


# Institutions, departments, capabilities ------------------------------------------------

INSTITUTION_EDITABLE = {
    "name_zh",
    "name_en",
    "short_name",
    "grade",
    "type",
    "region",
    "address",
    "latitude",
    "longitude",
    "phone",
    "is_active",
    "org_code",
    "uscc",
    "licence_no",
}


@transaction.atomic
def institution_create(
    *,
    actor: Actor,
    code: str,
    name_zh: str,
    name_en: str = "",
    short_name: str = "",
    grade: str,
    type: str,
    region: Region,
    address: str = "",
    latitude: Decimal | None = None,
    longitude: Decimal | None = None,
    phone: str = "",
    org_code: str = "",
    uscc: str = "",
    licence_no: str = "",
) -> Institution:
    _check(actor, Permission.MANAGE_INSTITUTIONS)
    institution = Institution(
        org_code=org_code,
        uscc=uscc,
        licence_no=licence_no,
        code=code,
        name_zh=name_zh,
        name_en=name_en,
        short_name=short_name,
        grade=grade,
        type=type,
        region=region,
        address=address,
        latitude=latitude,
        longitude=longitude,
        phone=phone,
    )
    _full_clean(institution)
    institution.save()
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=institution,
        changes={"code": code, "name_zh": name_zh, "grade": grade, "region": region.code},
    )
    return institution


@transaction.atomic
def institution_update(*, actor: Actor, institution: Institution, changes: dict[str, Any]) -> Institution:
    _check(actor, Permission.MANAGE_INSTITUTIONS)
    institution = Institution.objects.select_for_update().get(pk=institution.pk)
    _check_institution_in_scope(actor, institution)
    diff = _update(institution, changes, INSTITUTION_EDITABLE)
    if diff:
        _full_clean(institution)
        institution.save()
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=institution, changes=diff)
    return institution


@transaction.atomic
def department_create(
    *, actor: Actor, institution: Institution, discipline: str, name_zh: str = "", name_en: str = ""
) -> Department:
    _check(actor, Permission.MANAGE_INSTITUTIONS)
    _check_institution_in_scope(actor, institution)
    department = Department(institution=institution, discipline=discipline, name_zh=name_zh, name_en=name_en)
    _full_clean(department)
    department.save()
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=department,
        changes={"institution": institution.code, "discipline": discipline},
    )
    return department


@transaction.atomic
def capability_create(
    *,
    actor: Actor,
    institution: Institution,
    kind: CapabilityKind | str,
    valid_from: dt.date,
    all_hours: bool = True,
    weekdays: str = "1234567",
    opens_at: dt.time | None = None,
    closes_at: dt.time | None = None,
    valid_to: dt.date | None = None,
    note: str = "",
) -> Capability:
    _check(actor, Permission.MANAGE_INSTITUTIONS)
    _check_institution_in_scope(actor, institution)
    if not all_hours and (opens_at is None or closes_at is None):
        raise ValidationError(_("A capability that is not 24/7 needs opening and closing times."))
    capability = Capability(
        institution=institution,
        kind=kind,
        all_hours=all_hours,
        weekdays=weekdays,
        opens_at=opens_at,
        closes_at=closes_at,
        valid_from=valid_from,
        valid_to=valid_to,
        note=note,
    )
    _full_clean(capability)
    capability.save()
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=capability,
        changes={"kind": str(kind), "hours": capability.hours_display(), "valid_from": valid_from},
    )
    return capability


# Consortia and agreements ----------------------------------------------------------------


@transaction.atomic
def consortium_create(
    *,
    actor: Actor,
    code: str,
    name_zh: str,
    name_en: str = "",
    type: str,
    lead_institution: Institution,
    region: Region | None = None,
    established_on: dt.date | None = None,
    description_zh: str = "",
    description_en: str = "",
) -> Consortium:
    """Create a consortium; its lead institution becomes its first member."""
    _check(actor, Permission.MANAGE_CONSORTIA)
    consortium = Consortium(
        code=code,
        name_zh=name_zh,
        name_en=name_en,
        type=type,
        lead_institution=lead_institution,
        region=region,
        established_on=established_on,
        description_zh=description_zh,
        description_en=description_en,
    )
    _full_clean(consortium)
    consortium.save()
    ConsortiumMember.objects.create(
        consortium=consortium,
        institution=lead_institution,
        role=MemberRole.LEAD,
        relation=MemberRelation.VERTICAL,
        joined_on=established_on or timezone.localdate(),
    )
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=consortium,
        changes={"code": code, "type": type, "lead": lead_institution.code, "lead_joined_as_member": True},
    )
    return consortium


def _check_consortium_office(actor: Actor, consortium: Consortium) -> None:
    if actor is None:
        return
    selectors.require_perm(actor, Permission.MANAGE_CONSORTIA)
    managed = selectors.consortium_ids_managed_by(actor)
    if managed is not None and consortium.pk not in managed:
        raise PermissionDenied(_("Only the office of %(name)s may change it.") % {"name": consortium.name})


def _check_agreement_office(actor: Actor, agreement: Agreement) -> None:
    """An agreement under a consortium is that consortium office's to change."""
    if agreement.consortium is not None:
        _check_consortium_office(actor, agreement.consortium)
    else:
        # An agreement outside every consortium belongs to no office.
        _check_system_admin(actor)


@transaction.atomic
def consortium_member_add(
    *,
    actor: Actor,
    consortium: Consortium,
    institution: Institution,
    joined_on: dt.date,
    relation: str = MemberRelation.VERTICAL,
) -> ConsortiumMember:
    _check_consortium_office(actor, consortium)
    check_admission(actor, institution)
    if _current_membership(consortium, institution, on=joined_on) is not None:
        raise ValidationError(
            _("%(institution)s is already a member of %(consortium)s.")
            % {"institution": institution.name, "consortium": consortium.name}
        )
    member = ConsortiumMember(
        consortium=consortium,
        institution=institution,
        joined_on=joined_on,
        relation=relation,
        role=MemberRole.MEMBER,
    )
    _full_clean(member)
    try:
        with transaction.atomic():
            member.save()
    except IntegrityError as exc:
        # Two offices admitting the same institution at once: the partial unique index lets one win.
        raise ValidationError(
            _("%(institution)s is already a member of %(consortium)s.")
            % {"institution": institution.name, "consortium": consortium.name}
        ) from exc
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=member,
        changes={"consortium": consortium.code, "institution": institution.code, "joined_on": joined_on},
    )
    return member


def check_admission(actor: Actor, institution: Institution) -> None:
    """Admitting an institution gives the office write rights over it, so an office may admit
    only partners it already works with, or a newly registered institution in no consortium."""
    if actor is None or selectors.user_scope(actor).is_global:
        return
    # In this order: memberships only grow while two offices race to admit one institution, so an
    # institution found affiliated here is, a statement later, visible to the office whose
    # consortium just admitted it; that office then hears "already a member", not "not yours".
    unaffiliated = not ConsortiumMember.objects.filter(institution=institution, left_on__isnull=True).exists()
    known = unaffiliated or selectors.institution_queryset_visible_to(actor).filter(pk=institution.pk).exists()
    if not (known or unaffiliated):
        raise PermissionDenied(
            _("%(code)s belongs to consortia outside yours; a system administrator can admit it.")
            % {"code": institution.code}
        )


def _current_membership(
    consortium: Consortium, institution: Institution, on: dt.date | None = None
) -> ConsortiumMember | None:
    """A membership that has not ended by ``on`` (today by default)."""
    day = on or timezone.localdate()
    return (
        ConsortiumMember.objects.filter(consortium=consortium, institution=institution)
        .filter(Q(left_on__isnull=True) | Q(left_on__gte=day))
        .first()
    )


@transaction.atomic
def consortium_member_leave(*, actor: Actor, member: ConsortiumMember, left_on: dt.date) -> ConsortiumMember:
    _check_consortium_office(actor, member.consortium)
    member = ConsortiumMember.objects.select_for_update().get(pk=member.pk)
    if member.left_on is not None:
        raise ValidationError(_("This institution has already left the consortium."))
    if left_on < member.joined_on:
        raise ValidationError(_("The leaving date cannot be before the joining date."))
    member.left_on = left_on
    _full_clean(member)
    member.save(update_fields=["left_on", "updated_at"])
    audit_record(actor=actor, action=AuditAction.UPDATE, obj=member, changes={"left_on": [None, left_on]})
    return member


@transaction.atomic
def agreement_create(
    *,
    actor: Actor,
    code: str,
    title_zh: str,
    title_en: str = "",
    consortium: Consortium | None,
    parties: list[Institution],
    signed_on: dt.date,
    valid_from: dt.date,
    valid_to: dt.date | None = None,
    scope: str = "",
    goals: str = "",
    status: str = AgreementStatus.ACTIVE,
) -> Agreement:
    if consortium is not None:
        _check_consortium_office(actor, consortium)
    else:
        _check_system_admin(actor)
    if len({p.pk for p in parties}) < 2:
        raise ValidationError(_("An agreement needs at least two parties."))
    agreement = Agreement(
        code=code,
        consortium=consortium,
        title_zh=title_zh,
        title_en=title_en,
        signed_on=signed_on,
        valid_from=valid_from,
        valid_to=valid_to,
        scope=scope,
        goals=goals,
        status=status,
    )
    _full_clean(agreement)
    agreement.save()
    agreement.parties.set(parties)
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=agreement,
        changes={
            "code": code,
            "parties": sorted(p.code for p in parties),
            "signed_on": signed_on,
            "status": status,
        },
    )
    return agreement


@transaction.atomic
def agreement_document_attach(*, actor: Actor, agreement: Agreement, document: Any) -> Agreement:
    """Attach (or replace) the signed PDF; the previous file stays in storage for the record."""
    agreement = Agreement.objects.select_for_update().get(pk=agreement.pk)
    _check_agreement_office(actor, agreement)
    old = agreement.document.name or None
    agreement.document = document
    agreement.full_clean(validate_unique=False, validate_constraints=False)
    agreement.save(update_fields=["document", "updated_at"])
    audit_record(
        actor=actor, action=AuditAction.UPDATE, obj=agreement, changes={"document": [old, agreement.document.name]}
    )
    return agreement


def agreement_document_read(*, actor: User, agreement: Agreement) -> None:
    """Record that someone opened the signed agreement (contracts are confidential)."""
    with transaction.atomic():
        audit_record(
            actor=actor, action=AuditAction.EXPORT, obj=agreement, changes={"document": agreement.document.name}
        )


# An agreement is drafted, comes into force, and ends by expiry or termination; an ended
# agreement is not revived (a renewal is a new agreement with its own signing date).
AGREEMENT_TRANSITIONS: dict[AgreementStatus, frozenset[AgreementStatus]] = {
    AgreementStatus.DRAFT: frozenset({AgreementStatus.ACTIVE, AgreementStatus.TERMINATED}),
    AgreementStatus.ACTIVE: frozenset({AgreementStatus.EXPIRED, AgreementStatus.TERMINATED}),
    AgreementStatus.EXPIRED: frozenset(),
    AgreementStatus.TERMINATED: frozenset(),
}


def check_agreement_transition(old: str, new: str) -> None:
    """Refuse a status change the transition table does not allow (a no-op is allowed)."""
    if old != new and new not in AGREEMENT_TRANSITIONS[AgreementStatus(old)]:
        raise ValidationError(
            _("An agreement that is %(old)s cannot become %(new)s; sign a new agreement instead.")
            % {"old": AgreementStatus(old).label, "new": AgreementStatus(new).label}
        )


@transaction.atomic
def agreement_set_status(*, actor: Actor, agreement: Agreement, status: AgreementStatus) -> Agreement:
    agreement = Agreement.objects.select_for_update().get(pk=agreement.pk)
    _check_agreement_office(actor, agreement)
    old = agreement.status
    check_agreement_transition(old, status)
    if old != status:
        agreement.status = status
        agreement.save(update_fields=["status", "updated_at"])
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=agreement, changes={"status": [old, status]})
    return agreement


@transaction.atomic
def pairing_add(
    *,
    actor: Actor,
    agreement: Agreement,
    lead_department: Department,
    member_department: Department,
    kind: str = PairingKind.SUPPORTED_DISCIPLINE,
    label_zh: str = "",
    label_en: str = "",
) -> DepartmentPairing:
    _check_agreement_office(actor, agreement)
    pairing = DepartmentPairing(
        agreement=agreement,
        lead_department=lead_department,
        member_department=member_department,
        kind=kind,
        label_zh=label_zh,
        label_en=label_en,
    )
    _full_clean(pairing)
    pairing.save()
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=pairing,
        changes={
            "agreement": agreement.code,
            "lead": lead_department.discipline,
            "member": member_department.discipline,
        },
    )
    return pairing


# Practitioners ---------------------------------------------------------------------------


def _check_staff_scope(actor: Actor, institution: Institution, permission: Permission) -> None:
    """Hospital administrators manage only their own institution; the office its consortia."""
    if actor is None:
        return
    selectors.require_perm(actor, permission)
    if not selectors.manages_staff_of(actor, institution.pk):
        raise PermissionDenied(_("You may only manage staff of your own institution."))


@transaction.atomic
def practitioner_create(
    *,
    actor: Actor,
    name_zh: str,
    name_en: str = "",
    title: str,
    institution: Institution,
    department: Department | None,
    licence_number: str,
    specialties: str = "",
    user: User | None = None,
) -> Practitioner:
    _check_staff_scope(actor, institution, Permission.MANAGE_PRACTITIONERS)
    if department is not None and department.institution_id != institution.pk:
        raise ValidationError(_("The department must belong to the practitioner's institution."))
    practitioner = Practitioner(
        name_zh=name_zh,
        name_en=name_en,
        title=title,
        institution=institution,
        department=department,
        licence_number=licence_number,
        specialties=specialties,
        user=user,
    )
    _full_clean(practitioner)
    practitioner.save()
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=practitioner,
        changes={"institution": institution.code, "title": title},
    )
    return practitioner


# Users, roles, tokens --------------------------------------------------------------------


@transaction.atomic
def user_create(
    *,
    actor: Actor,
    username: str,
    password: str | None,
    display_name: str = "",
    email: str = "",
    language: str = "",
) -> User:
    """A new account; ``password=None`` makes one that cannot log in (it stands for people or
    history that act only through the system)."""
    if actor is not None:
        selectors.require_perm(actor, Permission.MANAGE_USERS)
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError(_("The username %(username)s is taken.") % {"username": username})
    user = User(username=username, display_name=display_name, email=email, language=language)
    if password is None:
        user.set_unusable_password()
    else:
        password_validation.validate_password(password, user)
        user.set_password(password)
    _full_clean(user, exclude=["password"])
    user.save()
    audit_record(actor=actor, action=AuditAction.CREATE, obj=user, changes={"username": username})
    return user


@transaction.atomic
def membership_grant(
    *,
    actor: Actor,
    user: User,
    role: Role,
    institution: Institution | None = None,
    consortium: Consortium | None = None,
    region: Region | None = None,
) -> Membership:
    """Give ``user`` a role. The scope argument the role needs is required."""
    if role == Role.COMMISSION_VIEWER and region is None:
        raise ValidationError(_("A health-commission viewer needs a region."))
    if role == Role.CONSORTIUM_OFFICE and consortium is None:
        raise ValidationError(_("A consortium-office role needs a consortium."))
    if role == Role.CONSORTIUM_OFFICE and consortium is not None and institution is None:
        institution = consortium.lead_institution
    if role not in (Role.COMMISSION_VIEWER, Role.SYSTEM_ADMIN) and institution is None:
        raise ValidationError(_("This role needs an institution."))
    if actor is not None:
        scope = selectors.user_scope(actor)
        if not scope.is_global:
            # A hospital administrator may only hand out clinical roles at their own institution.
            if role in (
                Role.SYSTEM_ADMIN,
                Role.CONSORTIUM_OFFICE,
                Role.COMMISSION_VIEWER,
                Role.HOSPITAL_ADMIN,
            ):
                raise PermissionDenied(_("Only a system administrator may grant this role."))
            assert institution is not None
            _check_staff_scope(actor, institution, Permission.MANAGE_USERS)
    existing = Membership.objects.filter(
        user=user, role=role, institution=institution, consortium=consortium, region=region, is_active=True
    ).first()
    if existing is not None:
        return existing
    membership = Membership.objects.create(
        user=user, role=role, institution=institution, consortium=consortium, region=region
    )
    grants_admin_site = role in _ADMIN_SITE_ROLES and not user.is_staff
    if grants_admin_site:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    audit_record(
        actor=actor,
        action=AuditAction.CREATE,
        obj=membership,
        changes={
            "user": user.username,
            "role": role.value,
            "institution": institution.code if institution else None,
            "consortium": consortium.code if consortium else None,
            "region": region.code if region else None,
            "admin_site_access_granted": grants_admin_site,
        },
    )
    return membership


@transaction.atomic
def user_set_language(*, actor: User, language: str) -> User:
    if language not in {"zh-hans", "en"}:
        raise ValidationError(_("Unknown language: %(language)s") % {"language": language})
    if actor.language != language:
        old = actor.language
        actor.language = language
        actor.save(update_fields=["language"])
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=actor, changes={"language": [old, language]})
    return actor


def _check_token_owner(actor: Actor, user: User) -> None:
    """A token acts as its user, so only that user or a system administrator may mint or revoke one."""
    if actor is None or actor.pk == user.pk or selectors.user_scope(actor).is_global:
        return
    raise PermissionDenied(_("Only the user or a system administrator may manage this user's API tokens."))


def _token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, actor: Actor, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the plain token, which is never stored."""
    _check_token_owner(actor, user)
    key = "yl_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:10], key_hash=_token_hash(key))
    audit_record(actor=actor, action=AuditAction.TOKEN, obj=token, changes={"user": user.username, "name": name})
    return token, key


@transaction.atomic
def api_token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    _check_token_owner(actor, token.user)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=token, changes={"revoked": True})
    return token


def api_token_authenticate(key: str) -> User | None:
    """The active user behind a bearer token, or None. Marks the token used (at most once a minute)."""
    if not key.startswith("yl_"):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=_token_hash(key), revoked_at__isnull=True).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
