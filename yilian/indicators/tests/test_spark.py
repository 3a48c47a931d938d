"""The same definitions on PySpark (local mode) give the same results as on DuckDB.

One test on purpose: starting Spark costs about ten seconds."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil

import pytest

from yilian.indicators.engine import Grain, OrgUnit, breakdown, evaluate, flows
from yilian.indicators.models import Indicator
from yilian.indicators.tests.factories import D
from yilian.registry.models import User

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None, reason="pyspark is not installed (the spark extra)"
    ),
    pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="no Java for Spark"),
]

ORGS = [
    OrgUnit("institution", "khph", ""),
    OrgUnit("consortium", "kaihua-ccm", ""),
    OrgUnit("consortium", "zju2-quzhou", ""),
    OrgUnit("region", "330824", ""),
    OrgUnit("region", "330800", ""),
]


def test_pyspark_gives_the_same_values_as_duckdb(dataset: None, settings: object) -> None:
    admin = User.objects.get(username="admin")
    codes = [
        i.code
        for i in Indicator.objects.filter(is_active=True)
        if i.numerator["source"] in ("discharges", "operations", "visits")
    ]
    assert len(codes) >= 17

    spans: list[tuple[Grain, dt.date, dt.date]] = [
        ("month", D(2025, 3, 1), D(2025, 5, 1)),
        ("year", D(2025, 1, 1), D(2026, 1, 1)),
    ]

    def run(backend: str) -> list[tuple[object, ...]]:
        values: list[tuple[object, ...]] = []
        for grain, start, end in spans:
            for v in evaluate(
                admin,
                codes=codes,
                orgs=ORGS,
                grain=grain,
                start=start,
                end=end,
                backend=backend,
            ):
                values.append(
                    (v.indicator, v.org.key, v.period.label, v.numerator, v.denominator, v.value, v.previous, v.yoy)
                )
        rows = breakdown(
            admin, code="surgery_share", org=ORGS[0], grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1),
            by="department", backend=backend,
        )  # fmt: skip
        values += [(r.key, r.numerator, r.denominator, r.value) for r in rows]
        got = flows(admin, org=ORGS[3], start=D(2025, 3, 1), end=D(2025, 4, 1), level="county", backend=backend)
        values += [(f.region_code, f.institution_code, f.count) for f in got]
        return values

    on_duckdb = run("duckdb")
    on_spark = run("pyspark")
    assert on_spark == on_duckdb
    # The comparison is not between two empty lists: the March surgery share of khph is there.
    assert ("surgery_share", "institution:khph", "2025-03", 2.0, 4.0, 50.0, 50.0, 0.0) in on_duckdb
