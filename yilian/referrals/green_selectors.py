"""Reads of the green channel, scoped like referrals: boards, a case, protocols, the monthly report.

- A case is seen by the sending hospital's staff, the staff of the destination holding it now,
  and the consortium office (``referrals.selectors.access_referral``); reading its patient's
  identity is audited there. Boards show a patient summary (sex, age, scores), no identity.
- A board belongs to an institution (its incoming and outgoing cases) or to a consortium (the
  office's view of all its open cases); ``board_scopes_for`` lists those a user may open, and
  the live stream (``events.subscribe``) is granted for those only.
- The report (medians, 90th percentiles, compliance with each target) is for people with
  referral figures, for their institutions or consortia; it shows no patients.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db.models import F, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.permissions import Permission
from yilian.referrals import protocols
from yilian.referrals.green_services import (
    ACTIVE_STATUSES,
    consortium_channel,
    institution_channel,
    node_sides,
)
from yilian.referrals.models import (
    GreenCase,
    GreenNode,
    GreenOffer,
    GreenProtocol,
    OfferOutcome,
    Referral,
    Status,
)
from yilian.referrals.selectors import access_referral, referral_queryset_visible_to, staff_institution_ids
from yilian.referrals.workflow import AnyUser
from yilian.registry.models import Consortium, Institution, User
from yilian.registry.selectors import user_scope

BOARD_HOURS = 24  # a finished case stays on the board this long after activation


# --- scopes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardScope:
    kind: str  # "institution" or "consortium"
    obj: Institution | Consortium

    @property
    def channel(self) -> str:
        if self.kind == "institution":
            return institution_channel(self.obj.pk)
        return consortium_channel(self.obj.pk)

    @property
    def key(self) -> str:
        return f"{self.kind[0]}-{self.obj.public_id}"


def board_scopes_for(user: AnyUser) -> list[BoardScope]:
    """The boards the user may open: their hospitals (staff who see referrals), then the consortia
    whose office they are."""
    scope = user_scope(user)
    if not scope.permissions & {Permission.VIEW_REFERRALS, Permission.MANAGE_REFERRALS_RECEIVE}:
        return []
    out = [
        BoardScope("institution", i)
        for i in Institution.objects.filter(pk__in=staff_institution_ids(scope)).order_by("code")
    ]
    if Permission.MANAGE_REFERRAL_ROUTING in scope.permissions:
        consortia = (
            Consortium.objects.all() if scope.is_global else Consortium.objects.filter(pk__in=scope.consortium_ids)
        )
        out += [BoardScope("consortium", c) for c in consortia.order_by("code")]
    return out


def has_board(user: AnyUser) -> bool:
    """Whether ``board_scopes_for`` would list a board, without a query (for the navigation)."""
    scope = user_scope(user)
    if not scope.permissions & {Permission.VIEW_REFERRALS, Permission.MANAGE_REFERRALS_RECEIVE}:
        return False
    office = Permission.MANAGE_REFERRAL_ROUTING in scope.permissions and (scope.is_global or bool(scope.consortium_ids))
    return bool(staff_institution_ids(scope)) or office


def board_scope(user: AnyUser, key: str | None) -> BoardScope:
    """The board ``key`` names (``i-<uuid>`` / ``c-<uuid>``), or the user's first; 403 otherwise."""
    scopes = board_scopes_for(user)
    if not scopes:
        raise PermissionDenied(_("You have no green-channel board."))
    if not key:
        return scopes[0]
    for s in scopes:
        if s.key == key:
            return s
    raise PermissionDenied(_("That board is not yours to open."))


# --- board ----------------------------------------------------------------------------------------


@dataclass
class CaseView:
    """What a board row or a case page shows (no patient identity)."""

    case: GreenCase
    referral: Referral
    definition: protocols.ProtocolDefinition
    windows: list[protocols.Window]
    nodes: dict[str, GreenNode]
    history: list[GreenNode]
    offers: list[GreenOffer]
    metrics: list[protocols.Metric]
    direction: str = ""  # "in" or "out" relative to the board's institution

    @property
    def pending_offer(self) -> GreenOffer | None:
        return next((o for o in self.offers if o.outcome == OfferOutcome.PENDING), None)

    @property
    def door_in(self) -> dt.datetime | None:
        node = self.nodes.get("door_in")
        return node.at if node else None

    @property
    def eta_at(self) -> dt.datetime | None:
        """Expected arrival: door-out plus travel when the patient has left, else None."""
        node = self.nodes.get("door_out")
        if node is None or self.case.eta_minutes is None or "arrival" in self.nodes:
            return None
        return node.at + dt.timedelta(minutes=self.case.eta_minutes)

    @property
    def patient_summary(self) -> str:
        patient = self.referral.patient
        age = patient.age
        parts = [str(patient.get_sex_display())]
        if age is not None:
            parts.append(_("%(age)s y") % {"age": age})
        for score in self.definition.scores:
            if score.code in self.case.scores:
                value = self.case.scores[score.code]
                shown = score.labels[value - score.min] if score.labels else value
                parts.append(f"{score.name} {shown}")
        for finding in self.definition.findings:
            if finding.code in self.case.findings:
                parts.append(finding.name)
        return " · ".join(parts)

    @property
    def applicable_windows(self) -> list[protocols.Window]:
        return [w for w in self.windows if w.applies]

    def nodes_in_order(self) -> list[tuple[protocols.NodeDef, GreenNode | None]]:
        return [(n, self.nodes.get(n.code)) for n in self.definition.nodes]


def _case_queryset() -> QuerySet[GreenCase]:
    return GreenCase.objects.select_related(
        "referral__patient",
        "referral__from_institution",
        "referral__to_institution",
        "referral__consortium",
        "protocol_version__protocol",
    ).prefetch_related(
        Prefetch("nodes", queryset=GreenNode.objects.order_by("recorded_at", "id"), to_attr="all_nodes"),
        Prefetch("offers", queryset=GreenOffer.objects.select_related("institution"), to_attr="all_offers"),
    )


def case_view(case: GreenCase, *, institution_id: int | None = None) -> CaseView:
    definition = protocols.parse(case.protocol_version.definition)
    history: list[GreenNode] = list(getattr(case, "all_nodes", None) or case.nodes.order_by("recorded_at", "id"))
    current = {n.node: n for n in history if n.superseded_at is None}
    offers = list(getattr(case, "all_offers", None) or case.offers.select_related("institution"))
    referral = case.referral
    direction = ""
    if institution_id is not None:
        direction = "out" if referral.from_institution_id == institution_id else "in"
    return CaseView(
        case=case,
        referral=referral,
        definition=definition,
        windows=protocols.windows(definition, onset_at=case.onset_at, findings=list(case.findings)),
        nodes=current,
        history=history,
        offers=offers,
        metrics=protocols.metrics(definition, {k: v.at for k, v in current.items()}),
        direction=direction,
    )


def green_board(user: AnyUser, scope: BoardScope, *, now: dt.datetime | None = None) -> list[CaseView]:
    """Open cases of the board (and those finished in the last day), newest first, incoming first."""
    now = now or timezone.now()
    since = now - dt.timedelta(hours=BOARD_HOURS)
    visible = referral_queryset_visible_to(user).filter(green_channel=True)
    q = Q(referral__in=visible) & (Q(referral__status__in=ACTIVE_STATUSES) | Q(activated_at__gte=since))
    if scope.kind == "institution":
        q &= Q(referral__from_institution_id=scope.obj.pk) | Q(referral__to_institution_id=scope.obj.pk)
    else:
        q &= Q(referral__consortium_id=scope.obj.pk)
    cases = list(_case_queryset().filter(q).order_by("-activated_at")[:200])
    inst = scope.obj.pk if scope.kind == "institution" else None
    views = [case_view(c, institution_id=inst) for c in cases]
    waiting = {Status.SENT, Status.FORWARDED}
    # Incoming waiting for an answer first, then the other active cases, then the finished ones.
    views.sort(
        key=lambda v: (
            0
            if v.referral.status in waiting and v.direction != "out"
            else 1
            if v.referral.status in ACTIVE_STATUSES
            else 2,
            -v.case.activated_at.timestamp(),
        )
    )
    return views


def access_green_case(user: AnyUser, public_id: str) -> CaseView:
    """The case behind a green-channel referral, scoped like the referral (404 / 403)."""
    referral = access_referral(user, public_id)
    if not referral.green_channel:
        raise Http404(_("This referral is not a green-channel case."))
    case = _case_queryset().get(referral=referral)
    case.referral = referral
    scope = user_scope(user)
    staff = staff_institution_ids(scope)
    inst = referral.from_institution_id if referral.from_institution_id in staff else referral.to_institution_id
    return case_view(case, institution_id=inst)


def recordable_nodes(user: User, view: CaseView) -> list[str]:
    """Node codes this user may record (or correct) on the case now."""
    if view.referral.status in (Status.CANCELLED, Status.CLOSED, Status.DECLINED):
        return []
    sides = node_sides(user, view.case)
    return [n.code for n in view.definition.nodes if (n.side == "either" and sides) or n.side in sides]


def protocols_for(
    user: AnyUser, *, consortium: Consortium | None = None, include_inactive: bool = False
) -> QuerySet[GreenProtocol]:
    """Active protocols (with ``include_inactive``, also those withdrawn, for the office to bring
    back) of the consortia the user's hospitals belong to or whose office they are (or the given one)."""
    scope = user_scope(user)
    qs = GreenProtocol.objects.select_related("consortium")
    if not include_inactive:
        qs = qs.filter(is_active=True)
    if consortium is not None:
        return qs.filter(consortium=consortium)
    if scope.is_global:
        return qs
    today = timezone.localdate()
    return qs.filter(
        Q(consortium_id__in=scope.consortium_ids)
        | Q(
            consortium__members__institution_id__in=scope.institution_ids,
            consortium__members__joined_on__lte=today,
        )
        & (Q(consortium__members__left_on__isnull=True) | Q(consortium__members__left_on__gte=today))
    ).distinct()


# --- report ---------------------------------------------------------------------------------------


def _percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (the value at or below which p% of cases fall)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))
    return ordered[k]


@dataclass
class MetricFigures:
    """One metric over a group of cases. ``target_minutes`` is the target of the newest protocol
    version in the group (shown in the header); each value is judged by the target of the version
    its own case was activated with (``own_targets``), so a tightened target never rewrites the past."""

    code: str
    name: str
    target_minutes: int | None
    values: list[float] = field(default_factory=list)
    own_targets: list[int | None] = field(default_factory=list)

    def add(self, minutes: float, target: int | None) -> None:
        self.values.append(minutes)
        self.own_targets.append(target)

    def extend(self, other: MetricFigures) -> None:
        self.values.extend(other.values)
        self.own_targets.extend(other.own_targets)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float | None:
        return round(statistics.median(self.values), 1) if self.values else None

    @property
    def p90(self) -> float | None:
        return _percentile(self.values, 90)

    @property
    def judged(self) -> int:
        """Values that had a target."""
        return sum(1 for t in self.own_targets if t is not None)

    @property
    def met(self) -> int:
        return sum(1 for v, t in zip(self.values, self.own_targets, strict=True) if t is not None and v <= t)

    @property
    def compliance(self) -> float | None:
        """Share of cases within their target (None when no case had a target)."""
        judged = self.judged
        if not judged:
            return None
        return round(self.met / judged, 3)

    def histogram(self, width: int = 10) -> list[tuple[int, int]]:
        """(lower bound in minutes, cases) in ``width``-minute bins, for the distribution chart."""
        counts: dict[int, int] = defaultdict(int)
        for v in self.values:
            counts[int(v // width) * width] += 1
        if not counts:
            return []
        lo, hi = min(counts), max(counts)
        return [(b, counts.get(b, 0)) for b in range(lo, hi + width, width)]


@dataclass
class ReportRow:
    institution: Institution
    protocol_code: str
    protocol_name: str
    month: dt.date
    cases: int
    accepted_first: int  # accepted by the first destination offered
    metrics: list[MetricFigures]


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    out, m = [], start.replace(day=1)
    while m <= end:
        out.append(m)
        m = (m.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return out


def report_institutions_for(user: AnyUser) -> QuerySet[Institution]:
    """Institutions whose green-channel figures the user may see."""
    scope = user_scope(user)
    if Permission.VIEW_REFERRAL_FIGURES not in scope.permissions:
        return Institution.objects.none()
    if scope.is_global:
        return Institution.objects.all()
    q = Q(pk__in=scope.institution_ids_with(Permission.VIEW_REFERRAL_FIGURES))
    if scope.consortium_ids:
        q |= Q(memberships__consortium_id__in=scope.consortium_ids)
    if scope.region_prefixes:
        for prefix in scope.region_prefixes:
            q |= Q(region__code__startswith=prefix)
    return Institution.objects.filter(q).distinct()


def green_report(
    user: AnyUser,
    *,
    start: dt.date,
    end: dt.date,
    institutions: Iterable[Institution] | None = None,
    protocol_code: str = "",
    by: str = "sender",
) -> list[ReportRow]:
    """Monthly figures per institution and protocol, for cases activated from ``start`` to ``end``.

    ``by="sender"``: the sending hospital's cases (door-in-door-out is its indicator);
    ``by="receiver"``: cases the hospital accepted (door-to-needle, door-to-puncture, ...).
    """
    allowed = report_institutions_for(user)
    if institutions is not None:
        allowed = allowed.filter(pk__in=[i.pk for i in institutions])
    inst_by_id = {i.pk: i for i in allowed}
    if not inst_by_id:
        return []
    field_name = "referral__from_institution_id" if by == "sender" else "referral__to_institution_id"
    tz = timezone.get_current_timezone()
    lo = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    qs = GreenCase.objects.filter(**{f"{field_name}__in": list(inst_by_id)}, activated_at__gte=lo, activated_at__lt=hi)
    qs = qs.exclude(referral__status=Status.CANCELLED)
    if by == "receiver":
        qs = qs.filter(offers__outcome=OfferOutcome.ACCEPTED, offers__institution_id=F(field_name)).distinct()
    if protocol_code:
        qs = qs.filter(protocol_version__protocol__code=protocol_code)
    cases = qs.select_related("protocol_version__protocol", "referral").prefetch_related(
        Prefetch("nodes", queryset=GreenNode.objects.filter(superseded_at__isnull=True), to_attr="current_nodes"),
        Prefetch("offers", queryset=GreenOffer.objects.order_by("rank"), to_attr="all_offers"),
    )
    groups: dict[tuple[int, str, dt.date], list[GreenCase]] = defaultdict(list)
    for case in cases:
        inst_id = getattr(case.referral, "from_institution_id" if by == "sender" else "to_institution_id")
        month = timezone.localtime(case.activated_at).date().replace(day=1)
        groups[(inst_id, case.protocol_version.protocol.code, month)].append(case)
    rows = []
    for (inst_id, code, month), members in sorted(
        groups.items(), key=lambda kv: (inst_by_id[kv[0][0]].code, kv[0][1], kv[0][2])
    ):
        latest = max(members, key=lambda c: c.protocol_version.version).protocol_version
        definition = protocols.parse(latest.definition)
        figures = {m.code: MetricFigures(m.code, m.name, m.target_minutes) for m in definition.metrics}
        accepted_first = 0
        for member in members:
            offers: list[GreenOffer] = getattr(member, "all_offers", [])
            if offers and offers[0].outcome == OfferOutcome.ACCEPTED:
                accepted_first += 1
            own = protocols.parse(member.protocol_version.definition)
            nodes = {n.node: n.at for n in getattr(member, "current_nodes", [])}
            for metric in protocols.metrics(own, nodes):
                if metric.minutes is not None and metric.code in figures:
                    figures[metric.code].add(metric.minutes, metric.target_minutes)
        rows.append(
            ReportRow(
                institution=inst_by_id[inst_id],
                protocol_code=code,
                protocol_name=latest.protocol.name,
                month=month,
                cases=len(members),
                accepted_first=accepted_first,
                metrics=list(figures.values()),
            )
        )
    return rows


def report_totals(rows: list[ReportRow]) -> dict[tuple[int, str], ReportRow]:
    """The period's totals per (institution, protocol): the months' values pooled."""
    out: dict[tuple[int, str], ReportRow] = {}
    for row in rows:
        key = (row.institution.pk, row.protocol_code)
        total = out.get(key)
        if total is None:
            total = out[key] = ReportRow(
                institution=row.institution,
                protocol_code=row.protocol_code,
                protocol_name=row.protocol_name,
                month=row.month,
                cases=0,
                accepted_first=0,
                metrics=[MetricFigures(m.code, m.name, m.target_minutes) for m in row.metrics],
            )
        total.cases += row.cases
        total.accepted_first += row.accepted_first
        by_code = {m.code: m for m in total.metrics}
        for m in row.metrics:  # months come in order: the header shows the newest target
            if m.code in by_code:
                by_code[m.code].extend(m)
                by_code[m.code].target_minutes = m.target_minutes
    return out
