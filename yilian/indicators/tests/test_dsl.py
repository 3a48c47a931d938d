"""The definition language: shipped definitions parse, mistakes get readable messages, and
conditions mean what they say on a real backend."""

from __future__ import annotations

import ibis
import pyarrow as pa
import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from yilian.indicators import dsl
from yilian.indicators.defaults import DEFAULT_INDICATORS
from yilian.indicators.models import Indicator


def test_every_shipped_definition_parses() -> None:
    for spec in DEFAULT_INDICATORS:
        dsl.parse_measure(spec["numerator"])
        if spec.get("denominator"):
            dsl.parse_measure(spec["denominator"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "visits", "measure": "sum:origin"}, "Column “origin” is not a number."),
        ({"source": "visits", "where": [["colour", "=", "red"]]}, "No column “colour” to filter visits on."),
        ({"source": "visits", "where": [["origin", "in", "same_county"]]}, "“in” needs a non-empty list of values."),
        ({"source": "visits", "where": [["origin", "~", "x"]]}, "Unknown operator “~”"),
        ({"source": "visits", "where": [["origin", "is_null", "x"]]}, "“is_null” takes no value."),
        ({"source": "operations", "attribute_to": "residence"}, "operations has no residence region"),
        ({"source": "visits", "measure": "count"}, "Unknown measure “count”"),
        ({"source": "referrals", "measure": "sum:patients"}, "A referrals measure is “sum:<figure>”"),
        ({"source": "green", "measure": "median:stroke"}, "median:<protocol>.<metric>"),
    ],
)
def test_mistakes_get_a_readable_message(data: dict[str, object], message: str) -> None:
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        dsl.parse_measure(data)
    assert any(message in m for m in caught.value.messages), caught.value.messages


@pytest.mark.django_db
def test_an_indicator_with_a_bad_numerator_is_refused_on_save() -> None:
    indicator = Indicator(
        code="broken",
        name_zh="坏的",
        programme="consortium",
        unit="visits",
        numerator={"source": "visits", "measure": "x"},
    )
    with pytest.raises(ValidationError) as caught:
        indicator.full_clean()
    assert "numerator" in caught.value.message_dict


@pytest.mark.django_db
def test_defaults_are_loaded_by_the_migration() -> None:
    codes = set(Indicator.objects.values_list("code", flat=True))
    assert {spec["code"] for spec in DEFAULT_INDICATORS} <= codes
    assert Indicator.objects.get(code="in_county_visit_rate").target == 90
    assert Indicator.objects.get(code="primary_care_share").target == 65


def test_conditions_on_duckdb_treat_missing_values_as_not_matching() -> None:
    table = ibis.memtable(
        pa.table({"operation_level": pa.array([1, 3, 4, None], pa.int8()), "code": ["a", "b", "c", "d"]})
    )
    con = ibis.duckdb.connect()

    def count(where: list[list[object]]) -> int:
        measure = dsl.parse_measure({"source": "operations", "measure": "rows", "where": where})
        return int(con.execute(dsl.aggregate(table, measure)))

    assert count([["operation_level", ">=", 3]]) == 2
    assert count([["operation_level", "!=", 3]]) == 2  # 1 and 4; the missing level matches nothing
    assert count([["operation_level", "is_null"]]) == 1
    assert count([["operation_level", "not_in", [1]]]) == 2
    assert count([["operation_level", "in", [3, 4]], ["operation_level", "<", 4]]) == 1
