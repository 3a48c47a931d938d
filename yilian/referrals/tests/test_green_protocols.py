"""Green-channel protocols as data: window arithmetic (property-based, in China time), metrics
from time nodes, and the checks every protocol definition passes before it is saved.

Windows are counted from last known well: a window closes exactly its hours after onset (elapsed
time), the minutes left fall by one each minute, a window is open until the moment it closes,
an unknown onset has no close time, and a window tied to an imaging finding (thrombectomy with a
large-vessel occlusion) applies only with that finding. China has kept UTC+8 without daylight
saving since 1992; onsets are drawn from that era, with extra weight around midnight.
"""

from __future__ import annotations

import copy
import datetime as dt
import zoneinfo
from typing import Any

import pytest
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st

from yilian.referrals import protocols

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = dt.UTC
MINUTE = dt.timedelta(minutes=1)

# Aware onsets in China time since it stopped observing daylight saving (1992).
onsets_anytime = st.datetimes(
    min_value=dt.datetime(1992, 1, 1), max_value=dt.datetime(2099, 12, 31), timezones=st.just(SHANGHAI)
)
# Within three hours either side of a local midnight, to the second.
onsets_near_midnight = st.builds(
    lambda day, seconds: dt.datetime.combine(day, dt.time(0), tzinfo=SHANGHAI) + dt.timedelta(seconds=seconds),
    st.dates(min_value=dt.date(1992, 1, 2), max_value=dt.date(2099, 12, 30)),
    st.integers(min_value=-3 * 3600, max_value=3 * 3600),
)
onsets = st.one_of(onsets_anytime, onsets_near_midnight)
# Window lengths a protocol may set (0 < hours <= 72), to the minute.
window_hours = st.integers(min_value=1, max_value=72 * 60).map(lambda minutes: minutes / 60)


def stroke() -> dict[str, Any]:
    return copy.deepcopy(protocols.DEFAULT_PROTOCOLS["stroke"]["definition"])


def with_window(hours: float, *, when_finding: str = "") -> dict[str, Any]:
    definition = stroke()
    definition["windows"] = [
        {
            "code": "w",
            "name_zh": "窗口",
            "name_en": "Window",
            "hours": hours,
            "capability": "iv_thrombolysis",
            "when_finding": when_finding,
        }
    ]
    return definition


def one_window(
    hours: float, onset: dt.datetime | None, *, findings: list[str] | None = None, when_finding: str = ""
) -> protocols.Window:
    definition = protocols.parse(with_window(hours, when_finding=when_finding))
    (window,) = protocols.windows(definition, onset_at=onset, findings=findings or [])
    return window


# --- windows: properties ----------------------------------------------------------------------


@given(onset=onsets, hours=window_hours)
def test_a_window_closes_exactly_its_hours_after_onset(onset: dt.datetime, hours: float) -> None:
    window = one_window(hours, onset)
    assert window.closes_at is not None
    elapsed = window.closes_at.astimezone(UTC) - onset.astimezone(UTC)
    assert elapsed == dt.timedelta(hours=hours)
    assert window.closes_at == onset + dt.timedelta(hours=hours)


@given(
    onset=onsets, hours=window_hours, offset=st.integers(min_value=-86_400, max_value=4 * 86_400), k=st.integers(0, 600)
)
def test_minutes_left_fall_by_one_each_minute(onset: dt.datetime, hours: float, offset: int, k: int) -> None:
    window = one_window(hours, onset)
    now = onset + dt.timedelta(seconds=offset)
    left = window.minutes_left(now)
    assert left is not None
    assert window.minutes_left(now + k * MINUTE) == left - k
    # The same instant told in UTC leaves the same time.
    assert window.minutes_left(now.astimezone(UTC)) == left


@given(onset=onsets, hours=window_hours, delta=st.integers(min_value=-(10**6), max_value=10**6))
def test_a_window_is_open_until_the_moment_it_closes(onset: dt.datetime, hours: float, delta: int) -> None:
    window = one_window(hours, onset)
    assert window.closes_at is not None
    now = window.closes_at + dt.timedelta(seconds=delta)
    assert window.is_open(now) is (now < window.closes_at)
    assert window.is_open(now.astimezone(UTC)) is (delta < 0)
    left = window.minutes_left(now)
    assert left is not None
    if left < 0:
        assert not window.is_open(now)


@given(hours=window_hours, now=onsets)
def test_an_unknown_onset_has_no_close_time_and_no_minutes_left(hours: float, now: dt.datetime) -> None:
    window = one_window(hours, None)
    assert window.closes_at is None and window.extended_closes_at is None
    assert window.minutes_left(now) is None
    assert window.minutes_left(now, extended=True) is None
    assert not window.is_open(now)


@given(onset=onsets, findings=st.lists(st.sampled_from(["lvo", "no_bleed"]), unique=True))
def test_a_window_with_a_finding_applies_only_with_that_finding(onset: dt.datetime, findings: list[str]) -> None:
    window = one_window(6, onset, findings=findings, when_finding="lvo")
    assert window.applies is ("lvo" in findings)
    assert one_window(4.5, onset, findings=findings).applies  # no finding needed


# --- windows: examples ------------------------------------------------------------------------


def test_stroke_windows_counted_from_an_evening_onset_run_past_midnight() -> None:
    definition = protocols.parse(stroke())
    onset = dt.datetime(2026, 3, 2, 21, 40, tzinfo=SHANGHAI)
    evt, ivt = protocols.windows(definition, onset_at=onset, findings=["lvo"])
    assert (evt.code, ivt.code) == ("evt", "ivt")
    assert evt.closes_at == dt.datetime(2026, 3, 3, 3, 40, tzinfo=SHANGHAI)
    assert evt.extended_closes_at == dt.datetime(2026, 3, 3, 21, 40, tzinfo=SHANGHAI)
    assert ivt.closes_at == dt.datetime(2026, 3, 3, 2, 10, tzinfo=SHANGHAI)
    assert ivt.extended_closes_at is None
    now = dt.datetime(2026, 3, 3, 1, 40, tzinfo=SHANGHAI)
    assert evt.minutes_left(now) == 120
    assert ivt.minutes_left(now) == 30
    assert evt.minutes_left(now, extended=True) == 20 * 60
    assert ivt.minutes_left(now - dt.timedelta(seconds=1)) == 30
    assert ivt.minutes_left(now + dt.timedelta(seconds=1)) == 29
    assert ivt.closes_at is not None
    assert ivt.is_open(now) and not ivt.is_open(ivt.closes_at)


def test_an_onset_told_in_a_zone_with_daylight_saving_counts_elapsed_hours() -> None:
    """A window is a clinical deadline in elapsed time, whatever clock the onset was read from."""
    london = zoneinfo.ZoneInfo("Europe/London")
    onset = dt.datetime(2026, 3, 29, 0, 30, tzinfo=london)  # the clocks go forward at 01:00
    window = one_window(4.5, onset)
    assert window.closes_at is not None
    assert window.closes_at.astimezone(UTC) == dt.datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    assert window.minutes_left(onset) == 270


def test_an_onset_without_a_time_zone_is_refused() -> None:
    """Which clock a bare "08:00" was read from is the caller's to say (the services read it as China time)."""
    with pytest.raises(ValueError, match="aware"):
        protocols.windows(protocols.parse(stroke()), onset_at=dt.datetime(2026, 3, 2, 8, 0), findings=[])


def test_without_the_finding_a_stroke_case_has_only_the_thrombolysis_window() -> None:
    definition = protocols.parse(stroke())
    onset = dt.datetime(2026, 3, 2, 8, 0, tzinfo=SHANGHAI)
    applying = [w.code for w in protocols.windows(definition, onset_at=onset, findings=["no_bleed"]) if w.applies]
    assert applying == ["ivt"]


# --- metrics ------------------------------------------------------------------------------------


T = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)


def metric(code: str, nodes: dict[str, dt.datetime], protocol: str = "stroke") -> protocols.Metric:
    definition = protocols.parse(protocols.DEFAULT_PROTOCOLS[protocol]["definition"])
    return next(m for m in protocols.metrics(definition, nodes) if m.code == code)


def test_a_metric_is_the_minutes_between_its_nodes() -> None:
    dido = metric("dido", {"door_in": T, "door_out": T + dt.timedelta(minutes=95, seconds=30)})
    assert dido.minutes == 95.5
    assert dido.target_minutes == 120
    assert dido.missed is False


def test_a_metric_over_midnight_and_with_nodes_told_in_utc() -> None:
    door_in = dt.datetime(2026, 3, 2, 23, 50, tzinfo=SHANGHAI)
    door_out = dt.datetime(2026, 3, 2, 16, 30, tzinfo=UTC)  # 00:30 on the 3rd in China
    assert metric("dido", {"door_in": door_in, "door_out": door_out}).minutes == 40.0


def test_the_first_of_several_end_nodes_counts() -> None:
    nodes = {"onset": T, "puncture": T + dt.timedelta(minutes=200), "needle": T + dt.timedelta(minutes=150)}
    assert metric("onset_to_treatment", nodes).minutes == 150.0
    assert metric("onset_to_treatment", {"onset": T, "puncture": T + dt.timedelta(minutes=200)}).minutes == 200.0


def test_a_missing_node_gives_no_value_and_no_flag() -> None:
    assert metric("dido", {"door_in": T}).minutes is None
    assert metric("dido", {"door_out": T}).minutes is None
    assert metric("onset_to_treatment", {"onset": T}).minutes is None
    assert metric("dido", {}).missed is None


def test_the_missed_flag_compares_with_the_target() -> None:
    at = {"arrival": T}
    assert metric("door_to_needle", {**at, "needle": T + dt.timedelta(minutes=60)}).missed is False  # on target
    assert metric("door_to_needle", {**at, "needle": T + dt.timedelta(minutes=61)}).missed is True
    no_target = metric("onset_to_treatment", {"onset": T, "needle": T + dt.timedelta(hours=3)})
    assert no_target.minutes == 180.0 and no_target.missed is None


def test_stemi_door_to_balloon_target_is_ninety_minutes() -> None:
    d2b = metric("door_to_balloon", {"arrival": T, "balloon": T + dt.timedelta(minutes=91)}, "stemi")
    assert (d2b.minutes, d2b.target_minutes, d2b.missed) == (91.0, 90, True)


# --- definitions --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(protocols.DEFAULT_PROTOCOLS))
def test_every_default_protocol_is_a_valid_definition(code: str) -> None:
    definition = protocols.DEFAULT_PROTOCOLS[code]["definition"]
    assert protocols.definition_errors(definition) == []
    parsed = protocols.parse(definition)
    assert len(parsed.nodes) >= 2
    assert parsed.node("arrival") is not None and parsed.node("door_out") is not None


def test_the_defaults_cover_stroke_stemi_trauma_obstetrics_and_newborns() -> None:
    assert set(protocols.DEFAULT_PROTOCOLS) >= {"stroke", "stemi", "trauma", "obstetric", "newborn"}
    stroke_windows = {w["code"]: w for w in stroke()["windows"]}
    assert stroke_windows["ivt"]["hours"] == 4.5
    assert (stroke_windows["evt"]["hours"], stroke_windows["evt"]["extended_hours"]) == (6, 24)


def errors_of(change: Any) -> list[str]:
    definition = stroke()
    change(definition)
    with translation.override("en"):
        return protocols.definition_errors(definition)


def test_an_unknown_capability_is_refused_naming_it() -> None:
    errors = errors_of(lambda d: d["capabilities"].append("teleportation"))
    assert len(errors) == 1
    assert "teleportation" in errors[0] and "unknown capability" in errors[0]
    assert "Value error" not in errors[0]


def test_a_window_capability_must_be_known_too() -> None:
    errors = errors_of(lambda d: d["windows"][0].update(capability="hyperbaric"))
    assert len(errors) == 1 and "hyperbaric" in errors[0]


def test_a_metric_naming_a_missing_node_is_refused() -> None:
    errors = errors_of(lambda d: d["metrics"][0].update(end=["helicopter_landing"]))
    assert len(errors) == 1
    assert "dido" in errors[0] and "helicopter_landing" in errors[0]


def test_duplicate_node_codes_are_refused() -> None:
    errors = errors_of(lambda d: d["nodes"].append(dict(d["nodes"][1])))
    assert len(errors) == 1 and "once" in errors[0]


def test_a_window_with_a_finding_the_protocol_lacks_is_refused() -> None:
    errors = errors_of(lambda d: d["windows"][0].update(when_finding="perfusion_mismatch"))
    assert len(errors) == 1
    assert "evt" in errors[0] and "perfusion_mismatch" in errors[0]


@pytest.mark.parametrize("extended", [6, 3])
def test_an_extended_window_not_longer_than_the_window_is_refused(extended: float) -> None:
    errors = errors_of(lambda d: d["windows"][0].update(extended_hours=extended))
    assert len(errors) == 1
    assert errors[0].startswith("windows.0: ")
    assert "evt" in errors[0] and "extended_hours" in errors[0] and "longer" in errors[0]


def test_structural_problems_name_the_field() -> None:
    errors = errors_of(lambda d: d["windows"][1].update(hours=0))
    assert len(errors) == 1 and errors[0].startswith("windows.1.hours: ")
    assert protocols.definition_errors({"nodes": []})  # not a definition at all
