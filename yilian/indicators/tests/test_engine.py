"""Every shipped fact indicator against the hand-computed dataset of ``factories`` (see its table)."""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from yilian.activity.columns import Kind
from yilian.indicators.engine import BACKENDS, IndicatorValue, OrgUnit, breakdown, evaluate, flows, periods_between
from yilian.indicators.tests.factories import MAR25, D, land, operation, stay, visit, visits_rows
from yilian.registry.models import Institution, User

pytestmark = pytest.mark.django_db

KHPH = OrgUnit("institution", "khph", "开化县人民医院")
QZPH = OrgUnit("institution", "qzph", "衢州市人民医院")
KAIHUA_CCM = OrgUnit("consortium", "kaihua-ccm", "开化县医共体")
ZJU2_QUZHOU = OrgUnit("consortium", "zju2-quzhou", "浙大二院—衢州医联体")
KAIHUA = OrgUnit("region", "330824", "开化县")
QUZHOU = OrgUnit("region", "330800", "衢州市")


def admin() -> User:
    return User.objects.get(username="admin")


MARCH_2025 = D(2025, 3, 1)


def one(code: str, org: OrgUnit, *, grain: str = "month", start: dt.date = MARCH_2025, **kw: object) -> IndicatorValue:
    end = {"month": D(2025, 4, 1), "quarter": D(2025, 4, 1), "year": D(2026, 1, 1)}[grain]
    values = evaluate(admin(), codes=[code], orgs=[org], grain=grain, start=start, end=end, **kw)  # type: ignore[arg-type]
    assert len(values) == 1
    return values[0]


# --- capability: stays, not operations -------------------------------------------------------------


def test_surgery_share_counts_stays_with_surgery_or_intervention_once(dataset: None) -> None:
    # March 2025: S1 (two surgeries, counted once) and S3 (interventional) of 4 discharges; S2's
    # diagnostic procedure does not count.
    v = one("surgery_share", KHPH)
    assert (v.numerator, v.denominator) == (2, 4)
    assert v.value == pytest.approx(50.0)
    # March 2024: T1 of T1, T2 -> 50 %: no change.
    assert v.previous == pytest.approx(50.0)
    assert v.yoy == pytest.approx(0.0)


def test_minimally_invasive_share_is_over_stays_with_surgery(dataset: None) -> None:
    v = one("minimally_invasive_share", KHPH)
    assert (v.numerator, v.denominator) == (1, 2)  # S1 of S1, S3
    assert v.value == pytest.approx(50.0)
    assert v.previous == pytest.approx(100.0)  # T1 of T1
    assert v.yoy == pytest.approx(-0.5)


def test_level_shares(dataset: None) -> None:
    level4 = one("level4_share", KHPH)
    assert (level4.numerator, level4.denominator) == (1, 2)
    assert level4.value == pytest.approx(50.0)
    level3 = one("level3_share", KHPH)
    assert (level3.numerator, level3.denominator) == (2, 2)
    assert level3.value == pytest.approx(100.0)
    assert level4.previous == pytest.approx(0.0)  # T1 was level 3
    assert level4.yoy is None  # no relative change from zero


def test_operation_counts(dataset: None) -> None:
    # Every operation of March 2025's stays: S1's two, S2's diagnostic one, S3's; S5's is April's.
    operations = one("operations", KHPH)
    assert (operations.value, operations.previous) == (4, 1)  # March 2024: T1's one
    assert operations.yoy == pytest.approx(3.0)
    assert one("operations", KHPH, department="神经外科").value == 3  # S1 twice, S2
    assert one("operations", KAIHUA_CCM).value == 4  # kh-huabu and kh-chengguan operate nothing
    level34 = one("level34_operations", KHPH)
    assert level34.value == 3  # S1 L4, S1 L3, S3 L3
    assert level34.previous == 1  # T1
    assert level34.yoy == pytest.approx(2.0)
    assert one("minimally_invasive_operations", KHPH).value == 1
    assert one("robot_operations", KHPH).value == 1
    discharges = one("discharges", KHPH)
    assert (discharges.value, discharges.previous) == (4, 2)
    assert discharges.yoy == pytest.approx(1.0)


# --- patient flow --------------------------------------------------------------------------------


def test_visits_and_origin_counts_at_the_treating_institution(dataset: None) -> None:
    visits = one("visits", KHPH)
    assert (visits.value, visits.previous) == (5, 1)
    assert visits.yoy == pytest.approx(4.0)
    assert one("visits_local", KHPH).value == 2
    assert one("visits_other_county", KHPH).value == 1
    assert one("visits_other_city", KHPH).value == 1
    assert one("visits_other_province", KHPH).value == 1
    assert one("visits_out_of_city", KHPH).value == 2


def test_in_county_visit_rate_is_attributed_to_the_residence_region(dataset: None) -> None:
    # Residents of Kaihua (330824): V1, V2 (khph), V6, V7 (kh-huabu), V8 (qzph), V10 (zju2) = 6;
    # treated in their own county: V1, V2, V6, V7 = 4.
    v = one("in_county_visit_rate", KAIHUA)
    assert (v.numerator, v.denominator) == (4, 6)
    assert v.value == pytest.approx(400 / 6, abs=1e-4)
    assert v.target == 90
    assert v.met is False
    # Only khph, kh-huabu, qzph and zju2 have March 2025 visits among Zhejiang's institutions.
    in_province = Institution.objects.filter(region__code__startswith="33").count()
    assert v.coverage.share == pytest.approx(4 / in_province)
    with translation.override("en"):
        v = one("in_county_visit_rate", KAIHUA)
    assert v.coverage.note == f"Complete data from 4 of {in_province} institutions of the province."


def test_outflow_rate_counts_residents_treated_outside_their_city(dataset: None) -> None:
    v = one("outflow_rate", KAIHUA)
    assert (v.numerator, v.denominator) == (1, 6)  # V10 at zju2 (Hangzhou)
    assert v.value == pytest.approx(100 / 6, abs=1e-4)
    # The whole city's residents: Kaihua's 6 plus V3 and V9 (330802) = 8; outside the city: V10.
    city = one("outflow_rate", QUZHOU)
    assert (city.numerator, city.denominator) == (1, 8)


def test_primary_care_share_of_a_consortium_with_partial_coverage(dataset: None) -> None:
    v = one("primary_care_share", KAIHUA_CCM)
    assert (v.numerator, v.denominator) == (2, 7)  # V6, V7 at kh-huabu of khph's 5 + 2
    assert v.value == pytest.approx(200 / 7, abs=1e-4)
    assert (v.target, v.met) == (65, False)
    assert v.coverage.share == pytest.approx(2 / 3)  # kh-chengguan has imported nothing
    with translation.override("en"):
        assert one("primary_care_share", KAIHUA_CCM).coverage.note == "Complete data from 2 of 3 institutions."


def test_region_counts_the_institutions_inside_it(dataset: None) -> None:
    assert one("visits", KAIHUA).value == 7  # khph 5 + kh-huabu 2 (treated in the county)
    assert one("visits", QUZHOU).value == 9  # plus qzph's V8, V9


# --- periods, coverage, filters --------------------------------------------------------------------


def test_no_data_is_none_not_zero(dataset: None) -> None:
    v = one("discharges", OrgUnit("institution", "csph", "常山县人民医院"))
    assert v.value is None
    assert v.coverage.share == 0
    with translation.override("en"):
        note = one("discharges", OrgUnit("institution", "csph", "")).coverage.note
    assert note == "No data imported for this period."


def test_nothing_landed_at_all_is_none(empty_store: None) -> None:
    v = one("visits", KHPH)
    assert (v.numerator, v.value, v.previous, v.yoy) == (None, None, None, None)


def test_quarter_and_year_grains(dataset: None) -> None:
    q1 = one("discharges", KHPH, grain="quarter", start=D(2025, 1, 1))
    assert q1.period.label == "2025-Q1"
    assert q1.value == 4
    # khph imported March only: January and February are missing, so its data is not complete.
    assert q1.coverage.share == 0.0
    with translation.override("en"):
        note = one("discharges", KHPH, grain="quarter", start=D(2025, 1, 1)).coverage.note
    assert note == "Complete data from 0 of 1 institutions."
    year = evaluate(admin(), codes=["discharges"], orgs=[KHPH], grain="year", start=D(2025, 1, 1), end=D(2026, 1, 1))
    assert [(v.period.label, v.value, v.previous) for v in year] == [("2025", 5, 2)]


def test_months_are_listed_in_order_with_their_own_values(dataset: None) -> None:
    values = evaluate(admin(), codes=["discharges"], orgs=[KHPH], grain="month", start=D(2025, 3, 1), end=D(2025, 5, 1))
    assert [(v.period.label, v.value) for v in values] == [("2025-03", 4), ("2025-04", 1)]


def test_department_filter(dataset: None) -> None:
    v = one("surgery_share", KHPH, department="神经外科")
    assert (v.numerator, v.denominator) == (1, 3)  # S1 of S1, S2, S4
    assert one("discharges", KHPH, department="心内科").value == 1  # S3


def test_periods_are_whole_and_validated() -> None:
    assert [p.label for p in periods_between("quarter", D(2025, 2, 10), D(2025, 7, 1))] == ["2025-Q1", "2025-Q2"]
    with pytest.raises(ValidationError):
        periods_between("month", D(2025, 3, 1), D(2025, 3, 1))


# --- breakdown, flows --------------------------------------------------------------------------------


def test_breakdown_by_origin_and_by_level(dataset: None) -> None:
    rows = breakdown(
        admin(), code="visits", org=KHPH, grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1), by="origin"
    )
    assert {r.key: r.value for r in rows} == {"same_county": 2, "same_city": 1, "same_province": 1, "other_province": 1}
    rows = breakdown(
        admin(), code="level34_operations", org=KHPH, grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1),
        by="operation_level",
    )  # fmt: skip
    assert {r.key: r.value for r in rows} == {"3": 2, "4": 1}


def test_breakdown_of_a_share_by_department(dataset: None) -> None:
    rows = breakdown(
        admin(), code="surgery_share", org=KHPH, grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1),
        by="department",
    )  # fmt: skip
    got = {r.key: (r.numerator, r.denominator) for r in rows}
    assert got == {"神经外科": (1, 3), "心内科": (1, 1)}


def test_breakdown_by_a_dimension_the_source_lacks_is_refused(dataset: None) -> None:
    with pytest.raises(ValidationError):
        breakdown(
            admin(),
            code="visits",
            org=KHPH,
            grain="month",
            start=D(2025, 3, 1),
            end=D(2025, 4, 1),
            by="operation_level",
        )


def test_breakdown_by_institution_of_a_consortium(dataset: None) -> None:
    rows = breakdown(
        admin(), code="visits", org=KAIHUA_CCM, grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1),
        by="institution",
    )  # fmt: skip
    assert {r.key: r.value for r in rows} == {"khph": 5, "kh-huabu": 2}  # kh-chengguan: no data


def test_flows_from_residence_county_to_treating_institution(dataset: None) -> None:
    got = flows(admin(), org=KAIHUA, start=D(2025, 3, 1), end=D(2025, 4, 1), level="county")
    assert {(f.region_code, f.institution_code): f.count for f in got} == {
        ("330824", "khph"): 2,
        ("330824", "kh-huabu"): 2,
        ("330824", "qzph"): 1,
        ("330824", "zju2"): 1,
    }
    by_city = flows(admin(), org=KHPH, start=D(2025, 3, 1), end=D(2025, 4, 1), level="city")
    assert {f.region_code: f.count for f in by_city} == {"330800": 3, "330100": 1, "520500": 1}


# --- shipped definitions, robustness ---------------------------------------------------------------


def test_the_operations_migration_adds_the_indicator_once_and_nothing_else() -> None:
    from django.apps import apps

    from yilian.indicators.models import Indicator

    migration = importlib.import_module("yilian.indicators.migrations.0003_operations_indicator")
    level34 = Indicator.objects.get(code="level34_operations")
    assert Indicator.objects.get(code="operations").position == 45  # the test database has it already
    Indicator.objects.filter(code__in=["operations", "robot_operations"]).delete()  # as before 0003
    migration.forwards(apps, None)
    migration.forwards(apps, None)  # idempotent
    added = Indicator.objects.get(code="operations")
    assert (added.numerator, added.denominator, added.unit, added.programme) == (
        {"source": "operations", "measure": "rows"},
        None,
        "operations",
        "regional_centre",
    )
    assert Indicator.objects.filter(code="operations").count() == 1
    assert not Indicator.objects.filter(code="robot_operations").exists()  # removed by an administrator
    # Listed between the operation shares and the level-3/4 count, which keeps its place.
    assert Indicator.objects.get(code="level34_operations").position == level34.position == 50
    assert Indicator.objects.get(code="level3_share").position == 40


def test_the_sessions_demo_batches_are_not_this_tests(db: None) -> None:
    """The demo seed's manifest rows point at another store: the test sees no batch, and the
    demo's institutions have no data (not zeros, not an error)."""
    from yilian.activity.models import ImportBatch

    assert not ImportBatch.objects.exists()
    with translation.override("en"):
        v = one("visits", OrgUnit("institution", "bjfph", ""))
    assert (v.value, v.coverage.share, v.coverage.note) == (None, 0.0, "No data imported for this period.")


def test_a_batch_whose_files_are_missing_is_no_data(activity_store: Path) -> None:
    land(Kind.VISITS, visits_rows(), filename="visits.csv")
    assert one("visits", KHPH).value == 5
    shutil.rmtree(activity_store / "visits")  # the manifest still lists the batch
    with translation.override("en"):
        v = one("visits", KHPH)  # the engine had the batch's table open: it fetches it again
        assert (v.value, v.coverage.share, v.coverage.note) == (None, 0.0, "No data imported for this period.")
        BACKENDS.reset()
        assert one("visits", KHPH).value is None  # and from a cold start
    assert flows(admin(), org=KAIHUA, start=D(2025, 3, 1), end=D(2025, 4, 1)) == []
    rows = breakdown(
        admin(), code="visits", org=KHPH, grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1), by="origin"
    )
    assert rows == []


def test_a_batch_whose_files_are_missing_leaves_the_others_counted(activity_store: Path) -> None:
    first = land(Kind.VISITS, visits_rows(), filename="visits.csv")
    land(Kind.VISITS, [visit("khph", "V11", MAR25, "same_county", "330824")], filename="one-more.csv")
    assert one("visits", KHPH).value == 6
    shutil.rmtree(activity_store / "visits" / f"batch={first.seq}")
    BACKENDS.reset()
    assert one("visits", KHPH).value == 1  # V11


def test_a_store_that_cannot_find_the_listed_files_is_no_data_but_other_errors_are_raised(
    dataset: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    from yilian.activity import facts

    def missing(con: object, kind: Kind) -> None:
        raise duckdb.IOException('IO Error: No files found that match the pattern "visits/batch=*/part-0.parquet"')

    monkeypatch.setattr(facts, "current_facts", missing)
    BACKENDS.reset()
    assert one("visits", KHPH).value is None

    def broken(con: object, kind: Kind) -> None:
        raise duckdb.InvalidInputException("Invalid Input Error: not a Parquet file")

    monkeypatch.setattr(facts, "current_facts", broken)
    BACKENDS.reset()
    with pytest.raises(duckdb.InvalidInputException):
        one("visits", KHPH)


def test_the_same_stay_number_at_two_hospitals_is_two_stays(empty_store: None) -> None:
    """Stay numbers are each hospital's own: a region counts khph's Z1 and qzph's Z1 as two stays,
    both with surgery (2 of 3 discharges: 66.67 %), not one."""
    land(
        Kind.DISCHARGES,
        [stay("khph", "Z1", D(2025, 3, 10)), stay("qzph", "Z1", D(2025, 3, 11)), stay("qzph", "Z2", D(2025, 3, 12))],
    )
    land(Kind.OPERATIONS, [operation("khph", "Z1", D(2025, 3, 10), 1), operation("qzph", "Z1", D(2025, 3, 11), 1)])
    value = one("surgery_share", QUZHOU)
    assert (value.numerator, value.denominator) == (2, 3)
    assert value.value == pytest.approx(66.666667)


def test_several_org_units_at_once_have_each_its_own_values(empty_store: None) -> None:
    """Units evaluated together (joined to the facts through one table) give what each gives alone."""
    land(
        Kind.DISCHARGES,
        [stay("khph", "Z1", D(2025, 3, 10)), stay("qzph", "Z1", D(2025, 3, 11)), stay("qzph", "Z2", D(2025, 3, 12))],
    )
    land(
        Kind.OPERATIONS,
        [
            operation("khph", "Z1", D(2025, 3, 10), 1),
            operation("khph", "Z1", D(2025, 3, 10), 2, category="diagnostic"),
            operation("qzph", "Z1", D(2025, 3, 11), 1),
            operation("qzph", "Z1", D(2025, 3, 11), 2),
        ],
    )
    values = evaluate(
        admin(),
        codes=["surgery_share", "operations"],
        orgs=[KHPH, QZPH, QUZHOU],
        grain="month",
        start=MARCH_2025,
        end=D(2025, 4, 1),
    )
    got = {(v.indicator, v.org.code): (v.numerator, v.denominator) for v in values}
    assert got == {
        ("surgery_share", "khph"): (1, 1),
        ("surgery_share", "qzph"): (1, 2),
        ("surgery_share", "330800"): (2, 3),
        ("operations", "khph"): (2, None),
        ("operations", "qzph"): (2, None),
        ("operations", "330800"): (4, None),
    }


def test_a_median_and_stay_counts_over_the_operations_in_one_evaluation(dataset: None) -> None:
    """A measure that does not add up per stay (a median) is computed beside the stay counts."""
    from yilian.indicators.models import Indicator

    Indicator.objects.create(
        code="median_level",
        name_zh="手术级别中位数",
        programme="consortium",
        unit="level",
        numerator={
            "source": "operations",
            "measure": "median:operation_level",
            "where": [["category", "=", "surgery"]],
        },
    )
    values = evaluate(
        admin(),
        codes=["median_level", "surgery_share", "level34_operations"],
        orgs=[KHPH],
        grain="month",
        start=MARCH_2025,
        end=D(2025, 4, 1),
    )
    got = {v.indicator: (v.numerator, v.denominator) for v in values}
    # March 2025's surgeries: S1 level 4 and level 3 -> median 3.5; S3 is interventional.
    assert got["median_level"] == (3.5, None)
    assert got["surgery_share"] == (2, 4)
    assert got["level34_operations"] == (3, None)
