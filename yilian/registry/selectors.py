"""Reads of the registry, always scoped to what the acting user may see.

Visibility rules (docs/architecture.md, "Access"):
- a system administrator sees everything;
- a health-commission viewer sees institutions inside their region, and consortia and
  agreements that involve one of them;
- a consortium-office member sees the current members of their consortia;
- everyone else sees their own institution and the institutions that share a current
  consortium with it (the partners they refer to and consult with).
Lists build one SQL query with subqueries, so the query count does not grow with the data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.audit import audit_pii_read
from yilian.core.models import AuditEvent
from yilian.core.permissions import ROLE_PERMISSIONS, Permission, Role
from yilian.registry.models import (
    Agreement,
    Consortium,
    ConsortiumMember,
    Department,
    DepartmentPairing,
    Institution,
    Membership,
    Practitioner,
    Region,
    User,
)

AnyUser = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class Scope:
    """What one user's memberships reach. Built once per request and cached on the user."""

    roles: frozenset[Role]
    is_global: bool = False
    institution_ids: frozenset[int] = frozenset()
    # Institutions where the user is a hospital administrator: roles do not pool, so being a
    # doctor at B does not make a hospital administrator at A an administrator at B.
    admin_institution_ids: frozenset[int] = frozenset()
    consortium_ids: frozenset[int] = frozenset()
    region_prefixes: tuple[str, ...] = ()
    permissions: frozenset[Permission] = field(default_factory=frozenset)
    # (role, institution id) of each membership: a permission reaches only the institutions
    # of the roles that carry it.
    roles_at: tuple[tuple[Role, int], ...] = ()

    def institution_ids_with(self, permission: Permission) -> frozenset[int]:
        return frozenset(i for role, i in self.roles_at if permission in ROLE_PERMISSIONS[role])


_EMPTY = Scope(roles=frozenset())


def user_scope(user: AnyUser) -> Scope:
    if not user.is_authenticated or not user.is_active:
        return _EMPTY
    cached: Scope | None = getattr(user, "_yilian_scope", None)
    if cached is not None:
        return cached
    memberships = list(
        Membership.objects.filter(user_id=user.pk, is_active=True).select_related("region").order_by("id")
    )
    roles = frozenset(Role(m.role) for m in memberships)
    permissions: set[Permission] = set()
    for role in roles:
        permissions |= ROLE_PERMISSIONS[role]
    scope = Scope(
        roles=roles,
        is_global=Role.SYSTEM_ADMIN in roles or bool(getattr(user, "is_superuser", False)),
        institution_ids=frozenset(m.institution_id for m in memberships if m.institution_id is not None),
        admin_institution_ids=frozenset(
            m.institution_id for m in memberships if m.role == Role.HOSPITAL_ADMIN and m.institution_id is not None
        ),
        consortium_ids=frozenset(
            m.consortium_id for m in memberships if m.role == Role.CONSORTIUM_OFFICE and m.consortium_id is not None
        ),
        roles_at=tuple((Role(m.role), m.institution_id) for m in memberships if m.institution_id is not None),
        region_prefixes=tuple(
            m.region.code_prefix() for m in memberships if m.role == Role.COMMISSION_VIEWER and m.region
        ),
        permissions=frozenset(permissions) if not getattr(user, "is_superuser", False) else frozenset(Permission),
    )
    setattr(user, "_yilian_scope", scope)  # noqa: B010  (a per-request cache on the user object)
    return scope


def user_has_perm(user: AnyUser, permission: Permission) -> bool:
    return permission in user_scope(user).permissions


def require_perm(user: AnyUser, permission: Permission) -> None:
    if not user_has_perm(user, permission):
        raise PermissionDenied(
            _("You do not have permission to do this (%(permission)s).") % {"permission": permission.label}
        )


def _current_members() -> QuerySet[ConsortiumMember]:
    today = timezone.localdate()
    return ConsortiumMember.objects.filter(Q(left_on__isnull=True) | Q(left_on__gte=today))


def consortium_institutions_q(consortium_ids: frozenset[int] | set[int] | list[int]) -> Q:
    """A filter on Institution: the lead and the current members of the consortia."""
    return Q(pk__in=_current_members().filter(consortium_id__in=consortium_ids).values("institution_id")) | Q(
        pk__in=Consortium.objects.filter(pk__in=consortium_ids).values("lead_institution_id")
    )


def _institution_q(scope: Scope) -> Q | None:
    """A filter on Institution for the scope; None means no restriction."""
    if scope.is_global:
        return None
    q = Q(pk__in=[])
    if scope.institution_ids:
        partner_consortia = _current_members().filter(institution_id__in=scope.institution_ids).values("consortium_id")
        q |= Q(pk__in=scope.institution_ids)
        q |= Q(pk__in=_current_members().filter(consortium_id__in=partner_consortia).values("institution_id"))
    if scope.consortium_ids:
        q |= consortium_institutions_q(scope.consortium_ids)
    for prefix in scope.region_prefixes:
        q |= Q(region__code__startswith=prefix)
    return q


def institution_queryset_visible_to(user: AnyUser) -> QuerySet[Institution]:
    scope = user_scope(user)
    if not scope.permissions:
        return Institution.objects.none()
    q = _institution_q(scope)
    qs = Institution.objects.all()
    return qs if q is None else qs.filter(q)


def institution_queryset_managed_by(user: AnyUser) -> QuerySet[Institution]:
    """Institutions whose registry entry the user may change: everything for a system
    administrator, the lead and current members of their consortia for a consortium office,
    nothing for anyone else. Narrower than what they may see."""
    scope = user_scope(user)
    if scope.is_global:
        return Institution.objects.all()
    if Permission.MANAGE_INSTITUTIONS not in scope.permissions or not scope.consortium_ids:
        return Institution.objects.none()
    return Institution.objects.filter(consortium_institutions_q(scope.consortium_ids))


def consortium_ids_managed_by(user: AnyUser) -> frozenset[int] | None:
    """Consortia the user's office runs; None means all (system administrator)."""
    scope = user_scope(user)
    if scope.is_global:
        return None
    if Permission.MANAGE_CONSORTIA not in scope.permissions:
        return frozenset()
    return scope.consortium_ids


def institution_list_visible_to(
    user: AnyUser,
    *,
    search: str = "",
    region_code: str = "",
    grade: str = "",
    type: str = "",
    include_inactive: bool = False,
) -> QuerySet[Institution]:
    qs = institution_queryset_visible_to(user).select_related("region")
    if not include_inactive:
        qs = qs.filter(is_active=True)
    if search:
        qs = qs.filter(
            Q(name_zh__icontains=search)
            | Q(name_en__icontains=search)
            | Q(short_name__icontains=search)
            | Q(code__icontains=search)
        )
    if region_code:
        region = Region.objects.filter(code=region_code).first()
        qs = qs.filter(region__code__startswith=region.code_prefix()) if region else qs.none()
    if grade:
        qs = qs.filter(grade=grade)
    if type:
        qs = qs.filter(type=type)
    return qs.order_by("region__code", "code")


def access_institution(user: AnyUser, code: str) -> Institution:
    """Fetch an institution the user may see: 404 when there is none, 403 when it is out of scope."""
    institution = Institution.objects.select_related("region__parent__parent").filter(code=code).first()
    if institution is None:
        raise Http404(_("No institution with code %(code)s.") % {"code": code})
    if not institution_queryset_visible_to(user).filter(pk=institution.pk).exists():
        raise PermissionDenied(_("Institution %(code)s is outside what you may see.") % {"code": code})
    return institution


def institution_detail(institution: Institution) -> Institution:
    """The institution with its departments, capabilities and consortia loaded for display."""
    return (
        Institution.objects.select_related("region__parent__parent")
        .prefetch_related(
            Prefetch("departments", queryset=Department.objects.filter(is_active=True)),
            "capabilities",
            Prefetch("memberships", queryset=_current_members().select_related("consortium__lead_institution")),
        )
        .get(pk=institution.pk)
    )


def consortium_queryset_visible_to(user: AnyUser) -> QuerySet[Consortium]:
    scope = user_scope(user)
    if not scope.permissions:
        return Consortium.objects.none()
    if scope.is_global:
        return Consortium.objects.all()
    q = Q(pk__in=scope.consortium_ids)
    if scope.institution_ids:
        q |= Q(pk__in=_current_members().filter(institution_id__in=scope.institution_ids).values("consortium_id"))
        q |= Q(lead_institution_id__in=scope.institution_ids)
    for prefix in scope.region_prefixes:
        q |= Q(pk__in=_current_members().filter(institution__region__code__startswith=prefix).values("consortium_id"))
    return Consortium.objects.filter(q)


def consortium_list_visible_to(user: AnyUser, *, search: str = "", type: str = "") -> QuerySet[Consortium]:
    qs = consortium_queryset_visible_to(user).select_related("lead_institution", "region")
    if search:
        qs = qs.filter(Q(name_zh__icontains=search) | Q(name_en__icontains=search) | Q(code__icontains=search))
    if type:
        qs = qs.filter(type=type)
    return qs.annotate(
        member_count=Count(
            "members", filter=Q(members__left_on__isnull=True) | Q(members__left_on__gte=timezone.localdate())
        )
    ).order_by("code")


def access_consortium(user: AnyUser, code: str) -> Consortium:
    consortium = Consortium.objects.select_related("lead_institution", "region").filter(code=code).first()
    if consortium is None:
        raise Http404(_("No consortium with code %(code)s.") % {"code": code})
    if not consortium_queryset_visible_to(user).filter(pk=consortium.pk).exists():
        raise PermissionDenied(_("Consortium %(code)s is outside what you may see.") % {"code": code})
    return consortium


def consortium_members(consortium: Consortium, *, include_former: bool = False) -> list[ConsortiumMember]:
    qs = consortium.members.select_related("institution__region__parent__parent")
    if not include_former:
        qs = qs.filter(Q(left_on__isnull=True) | Q(left_on__gte=timezone.localdate()))
    return list(qs.order_by("-role", "institution__region__code", "institution__code"))


def current_member(consortium: Consortium, institution_code: str) -> ConsortiumMember:
    """The current membership of an institution in a consortium, or 404."""
    member = (
        _current_members()
        .select_related("institution", "consortium")
        .filter(consortium=consortium, institution__code=institution_code)
        .order_by(F("left_on").asc(nulls_first=True))
        .first()
    )
    if member is None:
        raise Http404(
            _("%(code)s is not a current member of %(consortium)s.")
            % {"code": institution_code, "consortium": consortium.name}
        )
    return member


def agreement_queryset_visible_to(user: AnyUser) -> QuerySet[Agreement]:
    scope = user_scope(user)
    if Permission.VIEW_AGREEMENTS not in scope.permissions:
        return Agreement.objects.none()
    if scope.is_global:
        return Agreement.objects.all()
    q = Q(pk__in=[])
    party_ids = scope.institution_ids_with(Permission.VIEW_AGREEMENTS)
    if party_ids:
        q |= Q(pk__in=Agreement.parties.through.objects.filter(institution_id__in=party_ids).values("agreement_id"))
    if scope.consortium_ids:
        q |= Q(consortium_id__in=scope.consortium_ids)
    for prefix in scope.region_prefixes:
        q |= Q(
            pk__in=Agreement.parties.through.objects.filter(institution__region__code__startswith=prefix).values(
                "agreement_id"
            )
        )
    return Agreement.objects.filter(q)


def agreement_list_visible_to(
    user: AnyUser, *, consortium: Consortium | None = None, code: str = ""
) -> list[Agreement]:
    qs = agreement_queryset_visible_to(user).select_related("consortium")
    if consortium is not None:
        qs = qs.filter(consortium=consortium)
    if code:
        qs = qs.filter(code=code)
    return list(
        qs.prefetch_related(
            "parties",
            Prefetch(
                "pairings",
                queryset=DepartmentPairing.objects.select_related(
                    "lead_department__institution", "member_department__institution"
                ),
            ),
        ).order_by("-signed_on", "code")
    )


def access_agreement(user: AnyUser, code: str) -> Agreement:
    agreement = Agreement.objects.filter(code=code).first()
    if agreement is None:
        raise Http404(_("No agreement with code %(code)s.") % {"code": code})
    if not agreement_queryset_visible_to(user).filter(pk=agreement.pk).exists():
        raise PermissionDenied(_("Agreement %(code)s is outside what you may see.") % {"code": code})
    return agreement


def practitioner_list_visible_to(
    user: AnyUser, *, search: str = "", institution: Institution | None = None, title: str = ""
) -> QuerySet[Practitioner]:
    qs = Practitioner.objects.filter(
        is_active=True, institution__in=institution_queryset_visible_to(user)
    ).select_related("institution", "department")
    if institution is not None:
        qs = qs.filter(institution=institution)
    if search:
        qs = qs.filter(
            Q(name_zh__icontains=search)
            | Q(name_en__icontains=search)
            | Q(specialties__icontains=search)
            | Q(institution__name_zh__icontains=search)
            | Q(institution__short_name__icontains=search)
            | Q(department__name_zh__icontains=search)
        )
    if title:
        qs = qs.filter(title=title)
    return qs.order_by("institution__code", "name_en")


def access_practitioner(user: AnyUser, public_id: str) -> Practitioner:
    practitioner = (
        Practitioner.objects.select_related("institution", "department", "user").filter(public_id=public_id).first()
    )
    if practitioner is None:
        raise Http404(_("No such practitioner."))
    if not institution_queryset_visible_to(user).filter(pk=practitioner.institution_id).exists():
        raise PermissionDenied(_("This practitioner is outside what you may see."))
    return practitioner


def can_see_practitioner_private(user: AnyUser, practitioner: Practitioner) -> bool:
    """Licence numbers: the practitioner themself, their hospital's administrators, the
    consortium office over their institution, and system administrators."""
    scope = user_scope(user)
    if scope.is_global or (practitioner.user_id is not None and practitioner.user_id == user.pk):
        return True
    if Permission.VIEW_PRACTITIONER_PRIVATE not in scope.permissions:
        return False
    return manages_staff_of(user, practitioner.institution_id)


def manages_staff_of(user: AnyUser, institution_id: int) -> bool:
    """System administrators everywhere; hospital administrators at their own institution;
    a consortium office at the institutions it manages (the lead and members of its consortia)."""
    scope = user_scope(user)
    return (
        scope.is_global
        or institution_id in scope.admin_institution_ids
        or institution_queryset_managed_by(user).filter(pk=institution_id).exists()
    )


def practitioner_licence_for(user: AnyUser, practitioner: Practitioner) -> str | None:
    """The licence number when ``user`` may see it (the read is audited), else None."""
    if not can_see_practitioner_private(user, practitioner):
        return None
    audit_pii_read(actor=user, obj=practitioner, fields=["licence_number"])
    return practitioner.licence_number


@dataclass(frozen=True)
class SearchResults:
    institutions: list[Institution]
    practitioners: list[Practitioner]
    consortia: list[Consortium]


def directory_search(user: AnyUser, *, query: str, limit: int = 20) -> SearchResults:
    query = query.strip()
    if not query:
        return SearchResults([], [], [])
    return SearchResults(
        institutions=list(institution_list_visible_to(user, search=query)[:limit]),
        practitioners=list(practitioner_list_visible_to(user, search=query)[:limit]),
        consortia=list(consortium_list_visible_to(user, search=query)[:limit]),
    )


def region_tree(*, root_code: str | None = None) -> list[Region]:
    """Regions in code order (a pre-order walk, since child codes extend their parent's)."""
    qs = Region.objects.select_related("parent")
    if root_code:
        root = Region.objects.filter(code=root_code).first()
        if root is None:
            return []
        qs = qs.filter(code__startswith=root.code_prefix())
    return list(qs.order_by("code"))


def user_memberships(user: AnyUser) -> list[Membership]:
    if not user.is_authenticated:
        return []
    return list(
        Membership.objects.filter(user_id=user.pk, is_active=True).select_related("institution", "consortium", "region")
    )


def audit_list_visible_to(
    user: AnyUser,
    *,
    username: str = "",
    object_query: str = "",
    action: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[AuditEvent]:
    """System administrators see every row; hospital administrators the rows of their own staff."""
    scope = user_scope(user)
    if Permission.VIEW_AUDIT not in scope.permissions:
        raise PermissionDenied(_("Only administrators may read the audit trail."))
    qs = AuditEvent.objects.select_related("actor")
    if not scope.is_global:
        staff = Membership.objects.filter(institution_id__in=scope.admin_institution_ids).values("user_id")
        qs = qs.filter(actor_id__in=staff)
    if username:
        qs = qs.filter(actor_label__icontains=username)
    if object_query:
        qs = qs.filter(
            Q(object_type__icontains=object_query)
            | Q(object_id__icontains=object_query)
            | Q(object_repr__icontains=object_query)
        )
    if action:
        qs = qs.filter(action=action)
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lt=until)
    return qs.order_by("-id")


def user_by_username(username: str) -> User | None:
    return User.objects.filter(username=username).first()
