"""Reads of indicator definitions and of the organisation units a user may look at.

Who sees which org units (needs the indicators permission):
- a system administrator: every institution, consortium and region;
- a consortium office: its consortia and their lead and current members;
- a health-commission viewer: the regions of its memberships and the regions inside them, the
  institutions in them, and the consortia whose lead institution is in them;
- hospital roles (hospital administrator, quality staff): their own institutions and the consortia
  those belong to (as lead or current member). The consortium's total is theirs to see; a breakdown
  by institution shows only the institutions they see in detail (``institutions_in_detail``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.permissions import Permission
from yilian.indicators.models import Indicator
from yilian.registry.models import Consortium, ConsortiumMember, Institution, Region
from yilian.registry.selectors import AnyUser, user_scope

OrgKind = Literal["institution", "consortium", "region"]
ORG_KINDS: tuple[OrgKind, ...] = ("institution", "consortium", "region")


@dataclass(frozen=True)
class OrgUnit:
    kind: OrgKind
    code: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.code}"


def require_view(user: AnyUser) -> None:
    if Permission.VIEW_INDICATORS not in user_scope(user).permissions:
        raise PermissionDenied(_("You may not see indicators."))


def _current_members() -> QuerySet[ConsortiumMember]:
    today = timezone.localdate()
    return ConsortiumMember.objects.filter(Q(left_on__isnull=True) | Q(left_on__gte=today))


def _visible_querysets(
    user: AnyUser,
) -> tuple[QuerySet[Institution], QuerySet[Consortium], QuerySet[Region]]:
    scope = user_scope(user)
    if Permission.VIEW_INDICATORS not in scope.permissions:
        return Institution.objects.none(), Consortium.objects.none(), Region.objects.none()
    if scope.is_global:
        return Institution.objects.all(), Consortium.objects.all(), Region.objects.all()
    inst_q = Q(pk__in=[])
    cons_q = Q(pk__in=[])
    region_q = Q(pk__in=[])
    own = scope.institution_ids_with(Permission.VIEW_INDICATORS)
    if own:
        inst_q |= Q(pk__in=own)
        cons_q |= Q(pk__in=_current_members().filter(institution_id__in=own).values("consortium_id"))
        cons_q |= Q(lead_institution_id__in=own)
    if scope.consortium_ids:
        cons_q |= Q(pk__in=scope.consortium_ids)
        inst_q |= Q(pk__in=_current_members().filter(consortium_id__in=scope.consortium_ids).values("institution_id"))
        inst_q |= Q(pk__in=Consortium.objects.filter(pk__in=scope.consortium_ids).values("lead_institution_id"))
    for prefix in scope.region_prefixes:
        region_q |= Q(code__startswith=prefix)
        inst_q |= Q(region__code__startswith=prefix)
        cons_q |= Q(lead_institution__region__code__startswith=prefix)
    return (
        Institution.objects.filter(inst_q),
        Consortium.objects.filter(cons_q),
        Region.objects.filter(region_q),
    )


def org_units_visible_to(user: AnyUser) -> list[OrgUnit]:
    """Consortia, then regions (province first), then institutions, each in code order."""
    institutions, consortia, regions = _visible_querysets(user)
    units = [OrgUnit("consortium", c.code, c.name) for c in consortia.order_by("code")]
    units += [OrgUnit("region", r.code, r.name) for r in regions.order_by("code")]
    units += [OrgUnit("institution", i.code, i.name) for i in institutions.order_by("code")]
    return units


def access_org_unit(user: AnyUser, key: str) -> OrgUnit:
    """The org unit named ``kind:code``: 404 when there is none, 403 when it is out of the user's view."""
    kind, _sep, code = key.partition(":")
    models: dict[str, type[Institution] | type[Consortium] | type[Region]] = {
        "institution": Institution,
        "consortium": Consortium,
        "region": Region,
    }
    model = models.get(kind)
    found = model.objects.filter(code=code).first() if model is not None and code else None
    if found is None:
        raise Http404(_("No organisation unit %(key)s.") % {"key": key})
    require_view(user)
    institutions, consortia, regions = _visible_querysets(user)
    visible = {"institution": institutions, "consortium": consortia, "region": regions}[kind]
    if not visible.filter(pk=found.pk).exists():
        raise PermissionDenied(_("%(key)s is outside what you may see.") % {"key": key})
    return OrgUnit(kind, code, found.name)  # type: ignore[arg-type]  # kind checked against ORG_KINDS above


def institutions_in_detail(user: AnyUser) -> set[str] | None:
    """Codes of the institutions whose own figures the user may see (None: all)."""
    scope = user_scope(user)
    if scope.is_global:
        return None
    institutions, _consortia, _regions = _visible_querysets(user)
    return set(institutions.values_list("code", flat=True))


def indicator_list(user: AnyUser) -> list[Indicator]:
    require_view(user)
    return list(Indicator.objects.filter(is_active=True).order_by("position", "code"))


def access_indicator(user: AnyUser, code: str) -> Indicator:
    indicator = Indicator.objects.filter(code=code, is_active=True).first()
    if indicator is None:
        raise Http404(_("No indicator %(code)s.") % {"code": code})
    require_view(user)
    return indicator


def indicators_by_code(user: AnyUser, codes: list[str]) -> list[Indicator]:
    """The active indicators named by ``codes``, in that order, read in one query (404 for an
    unknown or inactive code, like ``access_indicator``)."""
    found = {i.code: i for i in Indicator.objects.filter(code__in=set(codes), is_active=True)}
    for code in codes:
        if code not in found:
            raise Http404(_("No indicator %(code)s.") % {"code": code})
    require_view(user)
    return [found[code] for code in codes]
