"""The demo's clinical activity: deterministic, private, and telling the stories exactly.

The expected figures are the story's (issue "clinical activity import"), checked with DuckDB
directly over the landed Parquet files, not with the indicator engine.
"""

# The SQL here is assembled from constants of this module (dataset names, conditions).
# ruff: noqa: S608

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from yilian.activity import store
from yilian.activity.columns import Kind
from yilian.activity.models import BatchStatus, ImportBatch
from yilian.core.models import AuditEvent
from yilian.demo.activity import (
    BATCH_PREFIX,
    batch_filename,
    cache_dir,
    demo_years,
    generate_inpatient,
    round_tables,
    seed_activity,
)
from yilian.registry.models import Department, Discipline, Institution

pytestmark = pytest.mark.django_db

BASE, STORY1, STORY2 = demo_years()
QUZHOU_COUNTY_HOSPITALS = {"330822": "csph", "330824": "khph", "330881": "jsph", "330825": "lyph", "330803": "qjph"}
HANGZHOU_AND_CITY = ("qzph", "qz2ph", "qzmch", "zju1", "zju2", "srrsh", "zjuwc", "zjus", "zjpph")


def _landed(kind: Kind) -> list[str]:
    batches = ImportBatch.objects.filter(
        kind=kind, status=BatchStatus.LANDED, filename__startswith=f"{BATCH_PREFIX}-s2018-"
    ).values_list("seq", flat=True)
    return [str(store.batch_file(kind, seq)) for seq in batches if seq is not None]


@pytest.fixture
def sql() -> Iterator[Any]:
    """A DuckDB connection with the landed demo facts as views ``visits``, ``discharges`` and
    ``operations``, and ``institutions`` (code, region) from the registry."""
    con = duckdb.connect()
    for kind in Kind:
        files = _landed(kind)
        assert len(files) == 3, f"{kind}: one batch per year"
        con.execute(f"CREATE VIEW {kind.value} AS SELECT * FROM read_parquet({files!r})")
    regions = list(Institution.objects.values_list("code", "region__code"))
    con.register("institutions", pa.table({"code": [c for c, _ in regions], "region": [r for _, r in regions]}))

    def query(text: str, *params: Any) -> list[tuple[Any, ...]]:
        return con.execute(text, list(params)).fetchall()

    yield query
    con.close()


# -- the stories ----------------------------------------------------------------------------


def test_bijie_centre_out_of_city_visits_are_exactly_the_story_figures(sql: Any) -> None:
    """68,560 visits from outside Bijie over the two story years, 45,662 of them from elsewhere in
    Guizhou; decided here from the residence code (not from the origin column)."""
    [(out_of_city, in_province)] = sql(
        """
        SELECT count(*) FILTER (WHERE residence_region NOT LIKE '5205%'),
               count(*) FILTER (WHERE residence_region NOT LIKE '5205%' AND residence_region LIKE '52%')
        FROM visits WHERE institution_code = 'bjfph' AND year(visit_date) IN (?, ?)
        """,
        STORY1,
        STORY2,
    )
    assert (out_of_city, in_province) == (68_560, 45_662)
    [(origin_out, origin_province)] = sql(
        """
        SELECT count(*) FILTER (WHERE origin IN ('same_province', 'other_province')),
               count(*) FILTER (WHERE origin = 'same_province')
        FROM visits WHERE institution_code = 'bjfph' AND year(visit_date) IN (?, ?)
        """,
        STORY1,
        STORY2,
    )
    assert (origin_out, origin_province) == (68_560, 45_662)
    # Every Bijie visit has a residence; the out-of-province ones come from Yunnan, Sichuan, Chongqing.
    [(unknown,)] = sql("SELECT count(*) FROM visits WHERE institution_code = 'bjfph' AND residence_region IS NULL")
    assert unknown == 0
    provinces = {
        p
        for (p,) in sql(
            "SELECT DISTINCT left(residence_region, 2) FROM visits WHERE "
            "institution_code = 'bjfph' AND residence_region NOT LIKE '52%'"
        )
    }
    assert provinces == {"53", "51", "50"}


def _by_year(rows: list[tuple[Any, ...]]) -> list[int]:
    counts = dict(rows)
    return [int(counts.get(y, 0)) for y in (BASE, STORY1, STORY2)]


@pytest.mark.parametrize(
    "condition",
    ["operation_level IN (3, 4)", "minimally_invasive"],
    ids=["level-3/4", "minimally invasive"],
)
def test_bijie_centre_operations_grow_about_30_percent_two_years_running(sql: Any, condition: str) -> None:
    operations = _by_year(
        sql(
            f"SELECT year(discharge_date), count(*) FROM operations WHERE institution_code = 'bjfph' "
            f"AND {condition} GROUP BY 1"
        )
    )
    stays = _by_year(
        sql(
            f"SELECT year(discharge_date), count(DISTINCT record_id) FROM operations "
            f"WHERE institution_code = 'bjfph' AND {condition} GROUP BY 1"
        )
    )
    for counts in (operations, stays):
        assert counts[0] > 1000
        assert 1.27 <= counts[1] / counts[0] <= 1.33, counts
        assert 1.27 <= counts[2] / counts[1] <= 1.33, counts


def test_robot_assisted_operations_appear_with_the_co_building(sql: Any) -> None:
    by_month = dict(
        sql(
            "SELECT month(discharge_date), count(*) FROM operations WHERE institution_code = 'bjfph' "
            "AND robot_assisted AND year(discharge_date) = ? GROUP BY 1",
            BASE,
        )
    )
    assert set(by_month) <= set(range(7, 13)), "none before July of the baseline year"
    assert sum(by_month.values()) >= 20
    robot = _by_year(
        sql(
            "SELECT year(discharge_date), count(*) FROM operations WHERE institution_code = 'bjfph' "
            "AND robot_assisted GROUP BY 1"
        )
    )
    assert robot[0] < robot[1] < robot[2]
    [(odd,)] = sql("SELECT count(*) FROM operations WHERE robot_assisted AND NOT (is_main AND operation_level >= 3)")
    assert odd == 0


def test_quzhou_county_residents_stay_in_their_county_more_each_year(sql: Any) -> None:
    for county, hospital in QUZHOU_COUNTY_HOSPITALS.items():
        rows = sql(
            """
            SELECT year(v.visit_date) AS y,
                   avg(CASE WHEN i.region = v.residence_region THEN 1.0 ELSE 0.0 END),
                   avg(CASE WHEN v.institution_code = $1 THEN 1.0 ELSE 0.0 END),
                   avg(CASE WHEN list_contains($2, v.institution_code) THEN 1.0 ELSE 0.0 END)
            FROM visits v JOIN institutions i ON i.code = v.institution_code
            WHERE v.residence_region = $3
            GROUP BY 1 ORDER BY 1
            """,
            hospital,
            list(HANGZHOU_AND_CITY),
            county,
        )
        assert [y for y, *_ in rows] == [BASE, STORY1, STORY2]
        in_county = [r[1] for r in rows]
        at_hospital = [r[2] for r in rows]
        away = [r[3] for r in rows]
        assert in_county[0] < in_county[1] < in_county[2], county
        assert in_county[2] - in_county[0] >= 0.05, county
        assert at_hospital[0] < at_hospital[2], county
        assert away[0] > away[1] > away[2], county


# -- plausibility ---------------------------------------------------------------------------


def test_departments_are_the_institutions_own(sql: Any) -> None:
    own = set(Department.objects.values_list("institution__code", "name_zh"))
    for kind in Kind:
        used = set(sql(f"SELECT DISTINCT institution_code, department FROM {kind.value}"))
        assert used <= own, sorted(used - own)[:5]


def test_clinical_codes_and_values_are_well_formed(sql: Any) -> None:
    icd10 = re.compile(r"^[A-Z]\d{2}(\.\d{1,2})?$")
    diagnoses = [d for (d,) in sql("SELECT DISTINCT principal_diagnosis FROM discharges")]
    assert diagnoses and all(icd10.match(d) for d in diagnoses), diagnoses
    [(bad_levels, bad_mi, bad_seq)] = sql(
        """
        SELECT count(*) FILTER (WHERE operation_level NOT BETWEEN 1 AND 4),
               count(*) FILTER (WHERE minimally_invasive AND category NOT IN ('surgery', 'interventional')),
               count(*) FILTER (WHERE is_main <> (operation_seq = 1 AND category IN ('surgery', 'interventional')))
        FROM operations
        """
    )
    assert (bad_levels, bad_mi, bad_seq) == (0, 0, 0)
    categories = {c for (c,) in sql("SELECT DISTINCT category FROM operations")}
    assert categories == {"surgery", "interventional", "diagnostic", "therapeutic"}
    [(orphans,)] = sql(
        "SELECT count(*) FROM operations o ANTI JOIN discharges d "
        "ON d.institution_code = o.institution_code AND d.record_id = o.record_id"
    )
    assert orphans == 0
    [(bad_dates,)] = sql(
        "SELECT count(*) FROM discharges WHERE admission_date > discharge_date "
        "OR length_of_stay <> discharge_date - admission_date OR total_cost <= 0"
    )
    assert bad_dates == 0


def test_patients_fit_the_care(sql: Any) -> None:
    [(caesarean_men, caesarean_ages)] = sql(
        "SELECT count(*) FILTER (WHERE d.sex <> 'female'), count(*) FILTER (WHERE d.age NOT BETWEEN 18 AND 50) "
        "FROM operations o JOIN discharges d USING (institution_code, record_id) WHERE o.operation_code = '74.1x00'"
    )
    assert (caesarean_men, caesarean_ages) == (0, 0)
    [(prostate_women,)] = sql(
        "SELECT count(*) FROM operations o JOIN discharges d USING (institution_code, record_id) "
        "WHERE o.operation_code IN ('60.5x00', '60.2900') AND d.sex <> 'male'"
    )
    assert prostate_women == 0
    sexes = dict(sql("SELECT sex, count(*) FROM visits GROUP BY 1"))
    assert set(sexes) == {"male", "female"}
    assert 0.4 < sexes["female"] / sum(sexes.values()) < 0.65


def test_visit_mix(sql: Any) -> None:
    [(total, emergency, tele, first)] = sql(
        """
        SELECT count(*), count(*) FILTER (WHERE setting = 'emergency'), count(*) FILTER (WHERE visit_type = 'tele'),
               count(*) FILTER (WHERE visit_type = 'first')
        FROM visits
        """
    )
    assert 0.05 < emergency / total < 0.15
    assert 0.01 < tele / total < 0.1
    assert 0.4 < first / total < 0.6
    emergency_departments = set(
        Department.objects.filter(discipline=Discipline.EMERGENCY).values_list("institution__code", "name_zh")
    )
    seen = set(sql("SELECT DISTINCT institution_code, department FROM visits WHERE setting = 'emergency'"))
    assert seen and seen <= emergency_departments
    primary = dict(sql("SELECT institution_code, count(*) FROM visits WHERE institution_code LIKE '%-%' GROUP BY 1"))
    assert set(primary) == {"kh-huabu", "kh-chengguan", "cs-tianma"}
    assert sql("SELECT count(*) FROM discharges WHERE institution_code LIKE '%-%'") == [(0,)]


# -- privacy, determinism, idempotency ------------------------------------------------------


def test_no_raw_patient_identifier_reaches_the_store(sql: Any) -> None:
    """Every patient key is a 64-hex pseudonym; no string anywhere looks like a patient number."""
    for kind in (Kind.VISITS, Kind.DISCHARGES):
        [(bad,)] = sql(f"SELECT count(*) FROM {kind.value} WHERE NOT regexp_full_match(patient_key, '[0-9a-f]{{64}}')")
        assert bad == 0
    for kind in Kind:
        columns = [
            name
            for name, type_ in sql(f"SELECT column_name, column_type FROM (DESCRIBE {kind.value})")
            if type_ == "VARCHAR"
        ]
        for column in columns:
            [(hits,)] = sql(f"SELECT count(*) FROM {kind.value} WHERE regexp_matches({column}, 'P[0-9]{{17}}')")
            assert hits == 0, (kind, column)


def test_landed_facts_are_the_generator_output_for_the_seed(sql: Any) -> None:
    """Same seed, same facts: a fresh generation equals what the demo seed landed (the cache is
    bypassed), and a different seed gives different facts."""
    discharges, operations = generate_inpatient(seed=2018, round_no=0, years=(BASE, STORY1, STORY2))
    landed = pa.concat_tables(
        duckdb.read_parquet(path).arrow().read_all().drop_columns(["batch_seq"]) for path in _landed(Kind.OPERATIONS)
    )
    key = [("institution_code", "ascending"), ("record_id", "ascending"), ("operation_seq", "ascending")]
    assert landed.sort_by(key).equals(operations.sort_by(key).cast(landed.schema))
    again, _ = generate_inpatient(seed=2018, round_no=0, years=(BASE, STORY1, STORY2))
    assert again.equals(discharges)
    other, _ = generate_inpatient(seed=7, round_no=0, years=(BASE, STORY1, STORY2))
    assert not other.equals(discharges)
    # The story's figures do not depend on the seed.
    bijie = pc.equal(discharges["institution_code"], "bjfph")
    assert pc.sum(bijie).as_py() == pc.sum(pc.equal(other["institution_code"], "bjfph")).as_py()


def test_seeding_again_lands_nothing_and_each_batch_was_audited() -> None:
    before = ImportBatch.objects.count()

    report = seed_activity()

    assert report.batches == 0
    assert ImportBatch.objects.count() == before
    demo = ImportBatch.objects.filter(filename__startswith=f"{BATCH_PREFIX}-s2018-r0-")
    assert demo.count() == 9
    assert set(demo.values_list("status", flat=True)) == {BatchStatus.LANDED}
    audited = AuditEvent.objects.filter(
        object_type="activity.importbatch",
        object_id__in=[str(b.public_id) for b in demo],
        changes__event="activity.batch_land",
    )
    assert audited.count() == 9


def test_a_larger_scale_adds_only_the_missing_round(sql: Any) -> None:
    report = seed_activity(scale=2)

    assert report.batches == 9
    names = set(ImportBatch.objects.filter(status=BatchStatus.LANDED).values_list("filename", flat=True))
    assert batch_filename(seed=2018, round_no=1, kind=Kind.VISITS, year=STORY2) in names
    files = _landed(Kind.VISITS)
    [(out_of_city, ids, rows)] = duckdb.execute(
        f"SELECT count(*) FILTER (WHERE institution_code = 'bjfph' AND origin IN ('same_province', 'other_province') "
        f"AND year(visit_date) >= {STORY1}), count(DISTINCT (institution_code, visit_id)), count(*) "
        f"FROM read_parquet({files!r})"
    ).fetchall()
    assert out_of_city == 2 * 68_560
    assert ids == rows  # round 1 has its own visit numbers: nothing replaced, nothing counted twice
    assert seed_activity(scale=2).batches == 0


def test_a_reseed_reads_the_cached_round_instead_of_generating_it() -> None:
    years = (BASE, STORY1, STORY2)
    folder = cache_dir(seed=2018, round_no=0, years=years)
    files = sorted(folder.glob("*.parquet"))
    assert [f.name for f in files] == sorted(f"{k.value}-{y}.parquet" for k in Kind for y in years)
    stamps = [f.stat().st_mtime_ns for f in files]

    tables = round_tables(seed=2018, round_no=0, years=years)

    assert [f.stat().st_mtime_ns for f in files] == stamps  # read, not written again
    assert tables[(Kind.OPERATIONS, STORY2)].equals(pq.read_table(folder / f"operations-{STORY2}.parquet"))


def test_every_residence_region_of_the_demo_is_named(sql: Any) -> None:
    """The Sankey and the outflow chart name where patients live: every residence region code the
    demo's visits carry (county, and its city) is in the registry with a Chinese name."""
    from yilian.registry.models import Region

    codes = {row[0] for row in sql("SELECT DISTINCT residence_region FROM visits WHERE residence_region IS NOT NULL")}
    cities = {code[:4] + "00" for code in codes}
    named = dict(Region.objects.filter(code__in=codes | cities).values_list("code", "name_zh"))
    assert codes | cities <= set(named), sorted((codes | cities) - set(named))
    assert named["520521"] == "大方县" and named["361100"] == "上饶市"
