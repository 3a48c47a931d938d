"""How the catalogues decide the operation columns the indicators read, against the hand-computed
dataset of ``factories`` (see its table), and the basis each value says it used."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import ibis
import pytest
from django.utils import translation

from yilian.activity import facts
from yilian.activity.columns import Kind
from yilian.catalogues import services
from yilian.catalogues.selectors import catalogue_state, operations_with_basis
from yilian.catalogues.tests.factories import D, admin, land_operations_dataset, load
from yilian.indicators.engine import IndicatorValue, OrgUnit, evaluate

pytestmark = pytest.mark.django_db

KHPH = OrgUnit("institution", "khph", "开化县人民医院")
QZPH = OrgUnit("institution", "qzph", "衢州市人民医院")
KAIHUA_CCM = OrgUnit("consortium", "kaihua-ccm", "开化县医共体")
SHARES = ["surgery_share", "level4_share", "minimally_invasive_share"]
MARCH_2025, APRIL_2025 = D(2025, 3, 1), D(2025, 4, 1)


@pytest.fixture
def dataset(facts_store: Path) -> None:
    land_operations_dataset()


def shares(
    org: OrgUnit = KHPH, *, start: dt.date = MARCH_2025, end: dt.date = APRIL_2025, grain: str = "month"
) -> dict[str, IndicatorValue]:
    with translation.override("en"):
        values = evaluate(admin(), codes=SHARES, orgs=[org], grain=grain, start=start, end=end)  # type: ignore[arg-type]
    assert len(values) == 3
    return {v.indicator: v for v in values}


def fractions(values: dict[str, IndicatorValue]) -> dict[str, tuple[float | None, float | None]]:
    return {code: (v.numerator, v.denominator) for code, v in values.items()}


# --- without catalogues: what the hospitals reported ----------------------------------------------------


def test_without_catalogues_the_reported_category_level_and_flag_count(dataset: None) -> None:
    values = shares()
    # Surgery or interventional by the files: S1, S3, S6 of six discharges; S4's 81.0501 is reported
    # as a therapeutic procedure, S2's as diagnostic.
    assert fractions(values) == {
        "surgery_share": (3, 6),
        "level4_share": (1, 3),  # S3 reported level 4 (S4 too, but it is no surgery by its file)
        "minimally_invasive_share": (1, 3),  # S3's reported flag
    }
    assert values["surgery_share"].value == pytest.approx(50.0)
    assert values["surgery_share"].basis == [
        "Category by the file's category or the code's chapter (no operation classification loaded)."
    ]
    assert values["level4_share"].basis == [
        "Category by the file's category or the code's chapter (no operation classification loaded).",
        "Level 4 as reported by the hospitals (no level-4 catalogue loaded).",
    ]
    assert values["minimally_invasive_share"].basis[1] == (
        "Minimally invasive as reported by the hospitals (no minimally invasive catalogue loaded)."
    )


def test_indicators_of_other_columns_say_nothing_about_a_basis(dataset: None) -> None:
    with translation.override("en"):
        [discharges, level34] = evaluate(
            admin(), codes=["discharges", "level34_operations"], orgs=[KHPH], grain="month",
            start=D(2025, 3, 1), end=D(2025, 4, 1),
        )  # fmt: skip
    assert discharges.basis == []
    assert level34.basis == ["Operation level as reported by the hospitals."]


# --- the classification decides the category -----------------------------------------------------------


def test_the_classification_decides_the_category_of_the_codes_it_lists(dataset: None, tmp_path: Path) -> None:
    load(tmp_path, "classification", [("36.0601", "手术"), ("45.2301", "诊断性操作"), ("81.0501", "手术")])
    values = shares()
    # 81.0501 is surgery by the classification: S4 counts; 00.6601 is not listed, S3 keeps its file's
    # interventional; S6's 51.2301 is not listed either and stays surgery.
    assert fractions(values) == {
        "surgery_share": (4, 6),
        "level4_share": (2, 4),  # S3 and S4 as reported
        "minimally_invasive_share": (1, 4),
    }
    assert values["surgery_share"].basis == [
        "Category by the operation classification 国家临床版手术操作分类 2022版 (from 2022-01-01); codes it does "
        "not list by the file's category or the code's chapter."
    ]


# --- the level-4 catalogue decides level 4 --------------------------------------------------------------


def test_the_level4_catalogue_replaces_the_reported_level(dataset: None, tmp_path: Path) -> None:
    load(tmp_path, "level4", ["36.0601"])
    values = shares()
    # S1 (reported level 3) is level 4 by the catalogue; S3 (reported level 4) is not listed.
    assert fractions(values)["level4_share"] == (1, 3)
    assert values["level4_share"].basis[1] == "Level 4 by the catalogue 国家四级手术目录 2022版 (from 2022-01-01)."
    # March 2024: T1's 36.0601 is in the catalogue, which applies from 2022.
    assert values["level4_share"].previous == pytest.approx(100.0)


def test_a_later_version_takes_over_from_its_day_and_withdrawing_it_brings_the_earlier_back(
    dataset: None, tmp_path: Path
) -> None:
    load(tmp_path, "level4", ["36.0601", "00.6601"], version="2022版", valid_from=D(2022, 1, 1))
    newer = load(tmp_path, "level4", ["81.0501"], version="2025版", valid_from=D(2025, 3, 15))
    values = shares()
    # S1 (03-05) by the 2022 version: listed. S3 (03-20) by the 2025 version: not listed. S6: neither.
    assert fractions(values)["level4_share"] == (1, 3)
    assert values["level4_share"].basis[1] == (
        "Level 4 by the catalogue 国家四级手术目录 2022版 (from 2022-01-01); 国家四级手术目录 2025版 (from 2025-03-15)."
    )
    services.catalogue_withdraw(user=admin(), catalogue=newer, reason="wrong file")
    values = shares()  # the engine notices the withdrawal without being told
    assert fractions(values)["level4_share"] == (2, 3)
    assert values["level4_share"].basis[1] == "Level 4 by the catalogue 国家四级手术目录 2022版 (from 2022-01-01)."


def test_a_catalogue_starting_inside_the_period_applies_from_its_day(dataset: None, tmp_path: Path) -> None:
    load(tmp_path, "level4", ["36.0601"], version="2025版", valid_from=D(2025, 3, 15))
    values = shares()
    # S1 (03-05, before) by its reported level 3: no. S3 (03-20) by the catalogue: not listed. S6: no.
    assert fractions(values)["level4_share"] == (0, 3)
    assert values["level4_share"].basis[1] == (
        "Level 4 by the catalogue 国家四级手术目录 2025版 (from 2025-03-15); before 2025-03-15 as reported by the "
        "hospitals."
    )
    # March 2024 is before the catalogue: T1's reported level 4 counts, and the basis says so.
    before = shares(start=D(2024, 3, 1), end=D(2024, 4, 1))
    assert fractions(before)["level4_share"] == (1, 1)
    assert before["level4_share"].basis[1] == (
        "Level 4 as reported by the hospitals (the level-4 catalogue applies only from 2025-03-15)."
    )
    # The whole year 2025: part of it.
    year = shares(start=D(2025, 1, 1), end=D(2026, 1, 1), grain="year")
    assert "before 2025-03-15 as reported by the hospitals" in year["level4_share"].basis[1]


# --- minimally invasive: the national catalogue, else the institution's list and the flags ----------------


def test_an_institutions_own_list_adds_to_the_reported_flags(dataset: None, tmp_path: Path) -> None:
    load(tmp_path, "institution_mi", ["51.2301"], version="2024", valid_from=D(2024, 1, 1), institution="khph")
    values = shares()
    assert fractions(values)["minimally_invasive_share"] == (2, 3)  # S3 by its flag, S6 by the list
    assert values["minimally_invasive_share"].basis[1] == (
        "Minimally invasive by the institutions' own lists and the reported flags (no minimally invasive catalogue "
        "loaded)."
    )
    # Kaihua's consortium holds khph: its list counts there too. Quzhou People's Hospital has none.
    assert shares(KAIHUA_CCM)["minimally_invasive_share"].basis == values["minimally_invasive_share"].basis
    assert shares(QZPH)["minimally_invasive_share"].basis[1] == (
        "Minimally invasive as reported by the hospitals (no minimally invasive catalogue loaded)."
    )


def test_the_national_catalogue_overrides_the_flags_and_the_institutions_lists(dataset: None, tmp_path: Path) -> None:
    load(tmp_path, "institution_mi", ["36.0601"], version="2024", valid_from=D(2024, 1, 1), institution="khph")
    load(tmp_path, "minimally_invasive", ["51.2301"], version="2025版", valid_from=D(2025, 1, 1))
    values = shares()
    # S3's flag and S1 on khph's list no longer count; S6 is in the national catalogue.
    assert fractions(values)["minimally_invasive_share"] == (1, 3)
    assert values["minimally_invasive_share"].basis[1] == (
        "Minimally invasive by the catalogue 国家微创手术目录 2025版 (from 2025-01-01)."
    )


def test_before_the_national_catalogue_the_lists_and_flags_still_decide(dataset: None, tmp_path: Path) -> None:
    load(tmp_path, "minimally_invasive", ["51.2301"], version="2025版", valid_from=D(2025, 3, 25))
    values = shares()
    # S3 (03-20, before the catalogue) by its flag; S6 (03-28) by the catalogue.
    assert fractions(values)["minimally_invasive_share"] == (2, 3)
    assert values["minimally_invasive_share"].basis[1] == (
        "Minimally invasive by the catalogue 国家微创手术目录 2025版 (from 2025-03-25); before 2025-03-25 as reported "
        "by the hospitals."
    )


# --- the derived columns row by row ---------------------------------------------------------------------


def test_each_operation_carries_the_basis_of_its_derived_columns(dataset: None, tmp_path: Path) -> None:
    load(tmp_path, "classification", [("81.0501", "surgery"), ("36.0601", "surgery")])
    load(tmp_path, "level4", ["36.0601"], version="2025版", valid_from=D(2025, 3, 15))
    load(tmp_path, "institution_mi", ["51.2301"], version="2025", valid_from=D(2025, 3, 1), institution="khph")
    con = ibis.duckdb.connect()
    table = facts.current_facts(con, Kind.OPERATIONS)
    assert table is not None
    derived = operations_with_basis(table, catalogue_state())
    rows = {
        r["record_id"]: r
        for r in con.to_pyarrow(
            derived.select("record_id", "category", "category_basis", "level4", "level4_basis",
                           "minimally_invasive", "mi_basis")
        ).to_pylist()
    }  # fmt: skip
    assert rows["S4"] == {
        "record_id": "S4",
        "category": "surgery",
        "category_basis": "catalogue",
        "level4": False,  # 03-25: by the catalogue, which does not list 81.0501
        "level4_basis": "catalogue",
        "minimally_invasive": False,
        "mi_basis": "institution_list",
    }
    assert (rows["S1"]["level4"], rows["S1"]["level4_basis"]) == (False, "reported")  # 03-05: reported level 3
    assert (rows["S3"]["category"], rows["S3"]["category_basis"]) == ("interventional", "file")
    assert (rows["S6"]["minimally_invasive"], rows["S6"]["mi_basis"]) == (True, "institution_list")
    assert (rows["T1"]["level4"], rows["T1"]["level4_basis"], rows["T1"]["mi_basis"]) == (True, "reported", "reported")
    assert set(derived.columns) == set(table.columns) | {"category_basis", "level4", "level4_basis", "mi_basis"}


def test_the_facts_own_category_basis_is_kept_for_codes_the_classification_does_not_list(
    dataset: None, tmp_path: Path
) -> None:
    load(tmp_path, "classification", [("36.0601", "surgery")])
    con = ibis.duckdb.connect()
    table = facts.current_facts(con, Kind.OPERATIONS)
    assert table is not None
    # A front page has no category column: the importer derives it from the code's chapter.
    chapter = table.mutate(category_basis=ibis.literal("code_chapter"))
    rows = {
        r["record_id"]: r["category_basis"]
        for r in con.to_pyarrow(operations_with_basis(chapter).select("record_id", "category_basis")).to_pylist()
    }
    assert rows["S1"] == "catalogue"
    assert rows["S3"] == "code_chapter"


# --- the same on Spark ------------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark is not installed (the spark extra)")
@pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="no Java for Spark")
def test_pyspark_derives_the_same_values(dataset: None, tmp_path: Path, settings: Any) -> None:
    load(tmp_path, "classification", [("81.0501", "surgery")])
    load(tmp_path, "level4", ["36.0601"], version="2025版", valid_from=D(2025, 3, 15))
    load(tmp_path, "institution_mi", ["51.2301"], version="2025", valid_from=D(2025, 3, 1), institution="khph")

    def run(backend: str) -> list[tuple[Any, ...]]:
        values = evaluate(
            admin(), codes=SHARES, orgs=[KHPH, KAIHUA_CCM], grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1),
            backend=backend,
        )  # fmt: skip
        return [(v.indicator, v.org.key, v.numerator, v.denominator, tuple(v.basis)) for v in values]

    duckdb = run("duckdb")
    assert duckdb[2][:4] == ("level4_share", "institution:khph", 0, 4)
    assert run("pyspark") == duckdb
