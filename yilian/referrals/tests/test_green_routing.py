"""Where a green-channel patient should go: destinations ranked by arrival inside the window.

First the pure ranking (``routing.rank``) with made-up hospitals whose capabilities and
coordinates are chosen for each rule; then ``rank_for_case`` on the demo alliance, where a
stroke from Changshan (csph) goes to Quzhou People's Hospital (qzph, the only thrombectomy
centre) when CTA shows a large-vessel occlusion, and to the nearest thrombolysis hospital
(Jiangshan, jsph) when it does not. Travel times come from the imported matrix where a pair is in
it (the demo alliance has one), else from the great-circle distance x road factor / average speed
set per consortium.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from yilian.referrals import green_services, protocols, routing
from yilian.referrals.models import TravelTime
from yilian.registry import services as registry_services
from yilian.registry.models import Consortium, Institution, User

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
# A Monday morning in Quzhou.
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
STROKE = protocols.parse(protocols.DEFAULT_PROTOCOLS["stroke"]["definition"])
STROKE_CAPS = {"ct", "iv_thrombolysis"}
COMPREHENSIVE = STROKE_CAPS | {"thrombectomy"}


def hospital(pk: int, code: str, lat: float | None, lon: float | None) -> Institution:
    """An institution as the ranking sees it (never saved)."""
    return Institution(
        pk=pk,
        code=code,
        name_zh=code,
        latitude=None if lat is None else Decimal(str(lat)),
        longitude=None if lon is None else Decimal(str(lon)),
    )


# The sender at Changshan's coordinates; destinations east of it along the same parallel, where
# one degree of longitude is 111.195 km x cos(28.9°) = 97.3 km.
SENDER = hospital(1, "sender", 28.9, 118.5)


def east(pk: int, code: str, km: float) -> Institution:
    degrees = km / (2 * math.pi * routing.EARTH_RADIUS_KM / 360 * math.cos(math.radians(28.9)))
    return hospital(pk, code, 28.9, 118.5 + degrees)


def stroke_windows(*, onset_minutes_ago: int | None = 60, lvo: bool = True) -> list[protocols.Window]:
    onset = None if onset_minutes_ago is None else NOW - dt.timedelta(minutes=onset_minutes_ago)
    return protocols.windows(STROKE, onset_at=onset, findings=["lvo"] if lvo else [])


def rank(
    institutions: list[Institution],
    capabilities: dict[int, set[str]],
    *,
    windows: list[protocols.Window] | None = None,
    matrix: dict[int, int] | None = None,
    travel: routing.Travel | None = None,
) -> list[routing.Destination]:
    return routing.rank(
        protocol=STROKE,
        windows=stroke_windows() if windows is None else windows,
        sender=SENDER,
        institutions=institutions,
        capabilities=capabilities,
        matrix=matrix or {},
        travel=travel or routing.Travel(),
        now=NOW,
    )


def codes(ranked: list[routing.Destination]) -> list[str]:
    return [d.institution.code for d in ranked]


# --- the pure ranking ---------------------------------------------------------------------------


def test_a_hospital_without_every_required_capability_is_not_a_destination() -> None:
    a, b, c = east(2, "a", 10), east(3, "b", 20), east(4, "c", 30)
    ranked = rank([a, b, c], {2: {"ct"}, 3: STROKE_CAPS, 4: {"iv_thrombolysis", "thrombectomy"}})
    assert codes(ranked) == ["b"]


def test_the_estimate_is_distance_times_road_factor_over_speed() -> None:
    near = east(2, "near", 40)
    (dest,) = rank([near], {2: STROKE_CAPS}, travel=routing.Travel(road_factor=1.5, speed_kmh=50))
    assert dest.basis == "distance"
    assert dest.distance_km == pytest.approx(40, abs=0.01)
    assert dest.eta_minutes == 72  # 40 km x 1.5 / 50 km/h = 1.2 h
    assert dest.arrival_at == NOW + dt.timedelta(minutes=72)


def test_a_matrix_entry_is_preferred_to_the_distance() -> None:
    far, near = east(2, "far", 100), east(3, "near", 20)
    ranked = rank([far, near], {2: STROKE_CAPS, 3: STROKE_CAPS}, matrix={2: 15}, windows=stroke_windows(lvo=False))
    assert codes(ranked) == ["far", "near"]
    assert (ranked[0].basis, ranked[0].eta_minutes, ranked[0].distance_km) == ("matrix", 15, None)
    assert ranked[1].basis == "distance" and ranked[1].eta_minutes == 27  # 20 x 1.35 / 60 km/h


def test_a_hospital_without_coordinates_or_matrix_entry_ranks_last() -> None:
    unknown, far = hospital(2, "a-unknown", None, None), east(3, "z-far", 150)
    ranked = rank([unknown, far], {2: STROKE_CAPS, 3: STROKE_CAPS}, windows=stroke_windows(lvo=False))
    assert codes(ranked) == ["z-far", "a-unknown"]
    last = ranked[-1]
    assert (last.eta_minutes, last.basis, last.arrival_at, last.best_window) == (None, "", None, "")
    assert last.must_leave_by is None
    assert all(not r.reachable and r.must_leave_by is None for r in last.reach)


def test_a_matrix_entry_gives_an_estimate_to_a_hospital_without_coordinates() -> None:
    unknown, near = hospital(2, "unknown", None, None), east(3, "near", 20)
    ranked = rank([unknown, near], {2: STROKE_CAPS, 3: STROKE_CAPS}, matrix={2: 12}, windows=stroke_windows(lvo=False))
    assert codes(ranked) == ["unknown", "near"]


def test_with_an_occlusion_the_thrombectomy_centre_ranks_above_a_nearer_thrombolysis_hospital() -> None:
    county, centre = east(2, "county", 20), east(3, "centre", 60)
    caps = {2: STROKE_CAPS, 3: COMPREHENSIVE}
    ranked = rank([county, centre], caps, windows=stroke_windows(lvo=True))
    assert codes(ranked) == ["centre", "county"]
    assert [d.best_window for d in ranked] == ["evt", "ivt"]
    # The county hospital cannot deliver thrombectomy, so the window is not counted for it.
    assert [r.code for r in ranked[1].reach] == ["ivt"]


def test_without_an_occlusion_the_nearer_hospital_comes_first() -> None:
    county, centre = east(2, "county", 20), east(3, "centre", 60)
    ranked = rank([county, centre], {2: STROKE_CAPS, 3: COMPREHENSIVE}, windows=stroke_windows(lvo=False))
    assert codes(ranked) == ["county", "centre"]
    assert [d.best_window for d in ranked] == ["ivt", "ivt"]


def test_a_centre_reaching_thrombectomy_only_in_the_extended_window_outranks_a_nearer_hospital() -> None:
    # Onset 5 h 30 min ago with a large-vessel occlusion: the centre (81 min) arrives after the
    # 6-hour close but well inside the 24-hour window with imaging selection; the county hospital
    # offers only thrombolysis, whose window has closed. The centre is the one worth the drive.
    county, centre = east(2, "county", 20), east(3, "centre", 60)
    ranked = rank([county, centre], {2: STROKE_CAPS, 3: COMPREHENSIVE}, windows=stroke_windows(onset_minutes_ago=330))
    assert [d.best_window for d in ranked] == ["", ""]
    assert codes(ranked) == ["centre", "county"]
    assert [d.selection_window for d in ranked] == ["evt", ""]
    assert not any(d.inside_window for d in ranked)


def test_without_an_occlusion_nothing_is_reached_by_imaging_selection_and_travel_decides() -> None:
    county, centre = east(2, "county", 20), east(3, "centre", 60)
    windows = stroke_windows(onset_minutes_ago=330, lvo=False)
    ranked = rank([centre, county], {2: STROKE_CAPS, 3: COMPREHENSIVE}, windows=windows)
    assert codes(ranked) == ["county", "centre"]
    assert all(d.selection_window == "" for d in ranked)


def test_a_destination_reached_in_a_window_ranks_above_a_nearer_one_that_misses_it() -> None:
    # Onset 5 h 20 min ago: thrombectomy closes in 40 min. A 30-minute centre makes it; a
    # 10-minute county hospital only offers thrombolysis, whose window has closed.
    county, centre = east(2, "county", 7.4), east(3, "centre", 22)
    ranked = rank([county, centre], {2: STROKE_CAPS, 3: COMPREHENSIVE}, windows=stroke_windows(onset_minutes_ago=320))
    assert [(d.institution.code, d.eta_minutes, d.best_window) for d in ranked] == [
        ("centre", 30, "evt"),
        ("county", 10, ""),
    ]


def test_must_leave_by_is_the_window_close_minus_travel() -> None:
    centre = east(3, "centre", 60)
    windows = stroke_windows(lvo=True)
    (dest,) = rank([centre], {3: COMPREHENSIVE}, windows=windows)
    assert dest.eta_minutes == 81  # 60 km x 1.35 / 60 km/h = 81 min
    evt = next(w for w in windows if w.code == "evt")
    assert evt.closes_at is not None
    assert dest.must_leave_by == evt.closes_at - dt.timedelta(minutes=81)
    by_window = {r.code: r.must_leave_by for r in dest.reach}
    ivt_closes = NOW - dt.timedelta(minutes=60) + dt.timedelta(hours=4.5)
    assert by_window == {"evt": dest.must_leave_by, "ivt": ivt_closes - dt.timedelta(minutes=81)}


def test_arriving_at_the_moment_a_window_closes_is_in_time() -> None:
    # Thrombolysis closes 27 minutes from now; a hospital 20 km away is 27 minutes by road.
    onset_ago = int(4.5 * 60) - 27
    (dest,) = rank([east(2, "a", 20)], {2: STROKE_CAPS}, windows=stroke_windows(onset_minutes_ago=onset_ago, lvo=False))
    assert dest.eta_minutes == 27 and dest.best_window == "ivt"
    assert dest.must_leave_by == NOW
    (late,) = rank(
        [east(2, "a", 20)], {2: STROKE_CAPS}, windows=stroke_windows(onset_minutes_ago=onset_ago + 1, lvo=False)
    )
    assert late.best_window == "" and late.must_leave_by is None


def test_with_onset_unknown_a_centre_that_can_remove_the_clot_ranks_first_with_no_leave_time() -> None:
    # Unknown onset: imaging selection decides, so the hospital able to deliver the preferred
    # treatment comes first; no window has a close, so nobody has a "leave by".
    county, centre = east(2, "county", 20), east(3, "centre", 60)
    ranked = rank([county, centre], {2: STROKE_CAPS, 3: COMPREHENSIVE}, windows=stroke_windows(onset_minutes_ago=None))
    assert codes(ranked) == ["centre", "county"]
    assert [d.selection_window for d in ranked] == ["evt", "ivt"]
    assert all(d.best_window == "" and d.must_leave_by is None for d in ranked)


def test_equal_estimates_are_ordered_by_code() -> None:
    ranked = rank([hospital(3, "b", None, None), hospital(2, "a", None, None)], {2: STROKE_CAPS, 3: STROKE_CAPS})
    assert codes(ranked) == ["a", "b"]


def test_a_destination_next_door_is_at_least_a_minute_away() -> None:
    (dest,) = rank([hospital(2, "next-door", 28.9, 118.5)], {2: STROKE_CAPS})
    assert dest.distance_km == 0 and dest.eta_minutes == 1


# --- on the demo alliance -----------------------------------------------------------------------


@pytest.fixture
def csph(db: None) -> Institution:
    return Institution.objects.get(code="csph")


def demo_rank(
    consortium: Consortium, sender: Institution, *, lvo: bool, now: dt.datetime = NOW
) -> list[routing.Destination]:
    onset = now - dt.timedelta(hours=1)
    return routing.rank_for_case(
        protocol=STROKE,
        windows=protocols.windows(STROKE, onset_at=onset, findings=["lvo"] if lvo else []),
        consortium_id=consortium.pk,
        sender=sender,
        now=now,
    )


def matrix_minutes(a: str, b: str) -> int:
    return TravelTime.objects.get(from_institution__code=a, to_institution__code=b).minutes


def new_member(
    consortium: Consortium, near: Institution, admin: User, *, lat: str, lon: str, thrombolysis_hours: bool = False
) -> Institution:
    """A hospital joining the alliance, with CT 24/7 and thrombolysis (weekdays 08:00-17:30 with
    ``thrombolysis_hours``, else 24/7); not in the travel-time matrix."""
    hospital = registry_services.institution_create(
        actor=admin,
        code="cs-day",
        name_zh="常山县日间卒中中心",
        grade="2",
        type="general",
        region=near.region,
        latitude=Decimal(lat),
        longitude=Decimal(lon),
    )
    since = dt.date(2025, 1, 1)
    registry_services.consortium_member_add(actor=admin, consortium=consortium, institution=hospital, joined_on=since)
    registry_services.capability_create(actor=admin, institution=hospital, kind="ct", valid_from=since)
    hours: dict[str, Any] = (
        {"all_hours": False, "weekdays": "12345", "opens_at": dt.time(8, 0), "closes_at": dt.time(17, 30)}
        if thrombolysis_hours
        else {}
    )
    registry_services.capability_create(
        actor=admin, institution=hospital, kind="iv_thrombolysis", valid_from=since, **hours
    )
    return hospital


def test_a_changshan_stroke_with_occlusion_goes_to_quzhou_first(neuro: Consortium, csph: Institution) -> None:
    ranked = demo_rank(neuro, csph, lvo=True)
    assert codes(ranked)[0] == "qzph"  # the only thrombectomy centre
    assert set(codes(ranked)) == {"qzph", "jsph", "khph", "qjph", "lyph"}  # cs-tianma has no CT
    assert [d.best_window for d in ranked] == ["evt", "ivt", "ivt", "ivt", "ivt"]
    # The others by arrival time, from the alliance's imported matrix.
    assert all(d.basis == "matrix" and d.eta_minutes == matrix_minutes("csph", d.institution.code) for d in ranked)
    rest = [d.eta_minutes or 0 for d in ranked[1:]]
    assert rest == sorted(rest)
    assert matrix_minutes("csph", "jsph") < matrix_minutes("csph", "qzph")  # Quzhou is not the nearest


def test_a_changshan_stroke_without_occlusion_goes_to_the_nearest_thrombolysis_hospital(
    neuro: Consortium, csph: Institution
) -> None:
    ranked = demo_rank(neuro, csph, lvo=False)
    assert codes(ranked)[0] == "jsph"
    assert [d.best_window for d in ranked] == ["ivt"] * 5
    etas = [d.eta_minutes or 0 for d in ranked]
    assert etas == sorted(etas)


def test_the_estimate_matches_a_hand_computed_great_circle(csph: Institution) -> None:
    """csph (28.9013 N, 118.5106 E) to qzph (28.9662 N, 118.8721 E), on the mean Earth sphere
    (R = 6371.0088 km): Δφ = 0.0649°, Δλ = 0.3615°, haversine 35.912 km (the spherical law of
    cosines agrees to the metre); x 1.35 / 60 km/h = 48.48 min, rounded up to 49."""
    assert (float(csph.latitude or 0), float(csph.longitude or 0)) == (28.9013, 118.5106)
    qzph = Institution.objects.get(code="qzph")
    assert (float(qzph.latitude or 0), float(qzph.longitude or 0)) == (28.9662, 118.8721)
    assert routing.great_circle_km(28.9013, 118.5106, 28.9662, 118.8721) == pytest.approx(35.912, abs=0.001)
    (dest,) = routing.rank(
        protocol=STROKE,
        windows=stroke_windows(),
        sender=csph,
        institutions=[qzph],
        capabilities={qzph.pk: COMPREHENSIVE},
        matrix={},
        travel=routing.Travel(),
        now=NOW,
    )
    assert dest.basis == "distance"
    assert dest.distance_km == pytest.approx(35.912, abs=0.001)
    assert dest.eta_minutes == 49


def test_the_consortium_travel_settings_change_the_estimate(
    neuro: Consortium, csph: Institution, neuro_office: User, persona: Callable[[str], User]
) -> None:
    hospital = new_member(neuro, csph, persona("admin"), lat="29.0500", lon="118.7000")
    km = routing.great_circle_km(28.9013, 118.5106, 29.05, 118.7)

    def eta() -> int | None:
        return next(d.eta_minutes for d in demo_rank(neuro, csph, lvo=False) if d.institution.pk == hospital.pk)

    assert routing.travel_of(neuro.pk) == routing.Travel(road_factor=1.35, speed_kmh=60)
    assert eta() == math.ceil(km * 1.35 / 60 * 60)
    green_services.green_settings_set(
        actor=neuro_office, consortium=neuro, road_factor="1.60", average_speed_kmh=50, offer_timeout_minutes=5
    )
    assert routing.travel_of(neuro.pk) == routing.Travel(road_factor=1.6, speed_kmh=50)
    assert eta() == math.ceil(km * 1.6 / 50 * 60)
    assert math.ceil(km * 1.6 / 50 * 60) > math.ceil(km * 1.35 / 60 * 60)
    # Quzhou's estimate stays the imported one.
    qzph = next(d for d in demo_rank(neuro, csph, lvo=False) if d.institution.code == "qzph")
    assert (qzph.basis, qzph.eta_minutes) == ("matrix", matrix_minutes("csph", "qzph"))


def test_an_imported_travel_time_replaces_the_one_before(
    neuro: Consortium, csph: Institution, neuro_office: User
) -> None:
    green_services.travel_times_import(
        actor=neuro_office, consortium=neuro, data="出发机构,到达机构,分钟\ncsph,lyph,25\n".encode("gb18030")
    )
    ranked = demo_rank(neuro, csph, lvo=False)
    assert codes(ranked)[0] == "lyph"
    assert (ranked[0].basis, ranked[0].eta_minutes, ranked[0].distance_km) == ("matrix", 25, None)


def test_a_capability_outside_its_hours_takes_the_hospital_out_of_the_ranking(
    neuro: Consortium, csph: Institution, persona: Callable[[str], User]
) -> None:
    """A stroke centre next to Changshan runs thrombolysis on weekdays 08:00-17:30 only."""
    new_member(neuro, csph, persona("admin"), lat="28.9100", lon="118.5200", thrombolysis_hours=True)
    assert codes(demo_rank(neuro, csph, lvo=False, now=NOW))[0] == "cs-day"  # Monday 10:00
    assert "cs-day" not in codes(demo_rank(neuro, csph, lvo=False, now=NOW.replace(hour=17, minute=30)))
    assert "cs-day" not in codes(demo_rank(neuro, csph, lvo=False, now=NOW.replace(hour=22)))
    saturday = NOW + dt.timedelta(days=5)
    assert "cs-day" not in codes(demo_rank(neuro, csph, lvo=False, now=saturday))


def test_a_window_capability_outside_its_hours_does_not_count_for_that_window(
    neuro: Consortium, csph: Institution, persona: Callable[[str], User]
) -> None:
    """Jiangshan starts a daytime thrombectomy service: by day it is the nearest centre."""
    registry_services.capability_create(
        actor=persona("admin"),
        institution=Institution.objects.get(code="jsph"),
        kind="thrombectomy",
        valid_from=dt.date(2025, 1, 1),
        all_hours=False,
        weekdays="12345",
        opens_at=dt.time(8, 0),
        closes_at=dt.time(17, 30),
    )
    by_day = demo_rank(neuro, csph, lvo=True)
    assert codes(by_day)[:2] == ["jsph", "qzph"]
    assert [d.best_window for d in by_day[:2]] == ["evt", "evt"]
    at_night = demo_rank(neuro, csph, lvo=True, now=NOW.replace(hour=22))
    assert codes(at_night)[:2] == ["qzph", "jsph"]
    assert at_night[1].best_window == "ivt"


def test_institutions_already_offered_are_left_out(neuro: Consortium, csph: Institution) -> None:
    qzph = Institution.objects.get(code="qzph")
    ranked = routing.rank_for_case(
        protocol=STROKE,
        windows=stroke_windows(),
        consortium_id=neuro.pk,
        sender=csph,
        now=NOW,
        exclude=[qzph.pk],
    )
    assert codes(ranked) == ["jsph", "khph", "qjph", "lyph"]


def test_the_sender_and_former_members_are_not_destinations(
    neuro: Consortium, csph: Institution, neuro_office: User
) -> None:
    member = neuro.members.get(institution__code="jsph")
    registry_services.consortium_member_leave(actor=neuro_office, member=member, left_on=dt.date(2026, 3, 1))
    ranked = demo_rank(neuro, csph, lvo=False)
    assert "csph" not in codes(ranked) and "jsph" not in codes(ranked)
