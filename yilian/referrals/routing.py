"""Where to send a green-channel patient: destinations ranked by arrival inside the window.

A destination is a current member institution of the consortium (not the sender) with every
capability the protocol requires available now (24/7 or within its hours). Its travel time comes
from the consortium's imported travel-time matrix where the pair is in it, else from the
great-circle distance times the road factor at the average ambulance speed (both set per
consortium in ``GreenSettings``). An institution without coordinates and not in the matrix has
no estimate and ranks last.

Ranking: for each destination, the most preferred window (the protocol lists them best first) it
can deliver (has the window's capability) and reach before the window closes; destinations that
reach a better window come first, then by travel time. "Must leave by" is the window's close minus
the travel time.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from yilian.referrals.models import GreenSettings, TravelTime
from yilian.referrals.protocols import ProtocolDefinition, Window
from yilian.registry.models import Capability, ConsortiumMember, Institution, hours_open_at

EARTH_RADIUS_KM = 6371.0088
DEFAULT_ROAD_FACTOR = Decimal("1.35")
DEFAULT_SPEED_KMH = 60


@dataclass(frozen=True)
class Travel:
    road_factor: float = float(DEFAULT_ROAD_FACTOR)
    speed_kmh: float = DEFAULT_SPEED_KMH


def travel_of(consortium_id: int) -> Travel:
    row = GreenSettings.objects.filter(consortium_id=consortium_id).first()
    if row is None:
        return Travel()
    return Travel(road_factor=float(row.road_factor), speed_kmh=float(row.average_speed_kmh))


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on the mean Earth sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class WindowReach:
    code: str
    name: str
    reachable: bool  # arrival before the window closes
    must_leave_by: dt.datetime | None


@dataclass
class Destination:
    institution: Institution
    eta_minutes: int | None
    basis: str  # "matrix", "distance" or "" (no estimate)
    distance_km: float | None
    arrival_at: dt.datetime | None
    reach: list[WindowReach] = field(default_factory=list)
    best_window: str = ""  # code of the most preferred window reached in time; "" none
    # A window this destination can deliver when imaging selection decides: reached before its
    # extended close, or onset unknown. Ranks after every destination reaching a window in time.
    selection_window: str = ""

    @property
    def inside_window(self) -> bool:
        return bool(self.best_window)

    @property
    def must_leave_by(self) -> dt.datetime | None:
        for r in self.reach:
            if r.code == self.best_window:
                return r.must_leave_by
        return None


def member_ids(*, consortium_id: int, on: dt.date) -> QuerySet[ConsortiumMember, Any]:
    """The ids of the consortium's member institutions on ``on`` (a subquery)."""
    members = ConsortiumMember.objects.filter(consortium_id=consortium_id, joined_on__lte=on).filter(
        Q(left_on__isnull=True) | Q(left_on__gte=on)
    )
    return members.values("institution_id")


def candidates(*, consortium_id: int, sender_id: int, on: dt.date) -> list[Institution]:
    """Current member institutions of the consortium other than the sender."""
    return list(
        Institution.objects.filter(pk__in=member_ids(consortium_id=consortium_id, on=on), is_active=True)
        .exclude(pk=sender_id)
        .order_by("code")
    )


def capabilities_now(
    institution_ids: Iterable[int] | QuerySet[Any, Any], now: dt.datetime, *, kinds: Iterable[str] | None = None
) -> dict[int, set[str]]:
    """The capability kinds (of ``kinds``, default all) each institution has available at ``now``.

    Reads plain column values, not model instances: with a thousand members a consortium has
    thousands of capability rows, and building a model per row cost more than the rest of the
    ranking (``benchmarks/bench_green_ranking.py``). The rule is ``Capability.is_available_at``'s.
    """
    local = timezone.localtime(now)
    ids = institution_ids if isinstance(institution_ids, QuerySet) else list(institution_ids)
    rows = Capability.objects.filter(institution_id__in=ids, valid_from__lte=local.date()).filter(
        Q(valid_to__isnull=True) | Q(valid_to__gte=local.date())
    )
    if kinds is not None:
        rows = rows.filter(kind__in=list(kinds))
    out: dict[int, set[str]] = {}
    for institution_id, kind, all_hours, weekdays, opens_at, closes_at in rows.values_list(
        "institution_id", "kind", "all_hours", "weekdays", "opens_at", "closes_at"
    ):
        if all_hours or hours_open_at(local, weekdays=weekdays, opens_at=opens_at, closes_at=closes_at):
            out.setdefault(institution_id, set()).add(kind)
    return out


def rank(
    *,
    protocol: ProtocolDefinition,
    windows: list[Window],
    sender: Institution,
    institutions: list[Institution],
    capabilities: dict[int, set[str]],
    matrix: dict[int, int],
    travel: Travel,
    now: dt.datetime,
) -> list[Destination]:
    """Rank ``institutions`` for a case (pure: everything it needs is passed in).

    ``matrix`` maps a destination's id to the imported minutes from the sender.
    """
    required = set(protocol.capabilities)
    applicable = [w for w in windows if w.applies]
    origin = (
        (float(sender.latitude), float(sender.longitude))
        if sender.latitude is not None and sender.longitude is not None
        else None
    )
    out: list[Destination] = []
    for inst in institutions:
        caps = capabilities.get(inst.pk, set())
        if not required <= caps:
            continue
        distance = None
        if inst.pk in matrix:
            eta: int | None = matrix[inst.pk]
            basis = "matrix"
        elif origin is not None and inst.latitude is not None and inst.longitude is not None:
            distance = great_circle_km(origin[0], origin[1], float(inst.latitude), float(inst.longitude))
            eta = max(1, math.ceil(distance * travel.road_factor / travel.speed_kmh * 60))
            basis = "distance"
        else:
            eta, basis = None, ""
        arrival = None if eta is None else now + dt.timedelta(minutes=eta)
        dest = Destination(institution=inst, eta_minutes=eta, basis=basis, distance_km=distance, arrival_at=arrival)
        for w in applicable:
            if w.capability and w.capability not in caps:
                continue
            leave_by = None if w.closes_at is None or eta is None else w.closes_at - dt.timedelta(minutes=eta)
            reachable = arrival is not None and w.closes_at is not None and arrival <= w.closes_at
            dest.reach.append(WindowReach(code=w.code, name=w.name, reachable=reachable, must_leave_by=leave_by))
            if reachable and not dest.best_window:
                dest.best_window = w.code
            if not reachable and not dest.selection_window:
                unknown_onset = w.closes_at is None
                by_extended = (
                    arrival is not None and w.extended_closes_at is not None and arrival <= w.extended_closes_at
                )
                if unknown_onset or by_extended:
                    dest.selection_window = w.code
        out.append(dest)
    order = {w.code: i for i, w in enumerate(applicable)}
    last = len(order)

    def key(d: Destination) -> tuple[int, int, int, str]:
        # Reaching a window in time first (best window first), then reaching one only with imaging
        # selection (extended window or onset unknown), then the rest; within each, the nearest.
        if d.best_window:
            tier, window_rank = 0, order[d.best_window]
        elif d.selection_window:
            tier, window_rank = 1, order[d.selection_window]
        else:
            tier, window_rank = 2, last
        return (tier, window_rank, d.eta_minutes if d.eta_minutes is not None else 10**9, d.institution.code)

    out.sort(key=key)
    return out


def rank_for_case(
    *,
    protocol: ProtocolDefinition,
    windows: list[Window],
    consortium_id: int,
    sender: Institution,
    now: dt.datetime,
    exclude: Iterable[int] = (),
) -> list[Destination]:
    """Load what ``rank`` needs (four queries) and rank; ``exclude`` drops institutions already offered.

    The capabilities come first, as plain values, so that only the members able to take the case now
    are loaded as institutions: in a province-wide consortium most members are not, and building
    their model instances was most of the time (``benchmarks/bench_green_ranking.py``).
    """
    on = timezone.localdate(now)
    skip = {sender.pk, *exclude}
    required = set(protocol.capabilities)
    kinds = required | {w.capability for w in windows if w.capability}
    capabilities = capabilities_now(member_ids(consortium_id=consortium_id, on=on), now, kinds=kinds)
    if required:
        able = [pk for pk, caps in capabilities.items() if pk not in skip and required <= caps]
        institutions = list(Institution.objects.filter(pk__in=able, is_active=True).order_by("code"))
    else:  # a protocol that needs nothing in particular: every member is a destination
        institutions = [
            i for i in candidates(consortium_id=consortium_id, sender_id=sender.pk, on=on) if i.pk not in skip
        ]
    wanted = {i.pk for i in institutions}
    # The sender's whole row of the matrix (an index range), kept for the candidates.
    matrix = {
        to: minutes
        for to, minutes in TravelTime.objects.filter(
            consortium_id=consortium_id, from_institution_id=sender.pk
        ).values_list("to_institution_id", "minutes")
        if to in wanted
    }
    return rank(
        protocol=protocol,
        windows=windows,
        sender=sender,
        institutions=institutions,
        capabilities=capabilities,
        matrix=matrix,
        travel=travel_of(consortium_id),
        now=now,
    )
