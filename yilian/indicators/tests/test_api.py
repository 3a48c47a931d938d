"""The indicator API: definitions, values against a small hand-computed dataset, refusals, the
Excel workbook, and the OpenAPI contract (schemathesis) of the new endpoints.

The dataset (``bijie_dataset``), all at the Bijie centre (bjfph, Qixingguan 520502) unless said:

    March 2025 stays: B1 骨科 (surgery L4 minimally invasive robot-assisted + surgery L3),
                      B2 骨科 (surgery L3 minimally invasive), B3 普外科 (surgery L2), B4 骨科 (none)
    March 2024 stays: A1 (surgery L3), A2 (surgery L4 minimally invasive)
    March 2025 visits: 2 same county (520502), 3 same province (Guiyang 520100), 1 other province (330824);
                       qxgph (Qixingguan, member of bijie-nrmc): 1 same county
    March 2024 visits: 1 same province, 1 same county

so in March 2025 (and in 2025): level-3/4 operations 3 (2024: 2, +50 %), minimally invasive
operations 2 (2024: 1, +100 %), level-4 share 1 of 3 stays with surgery, surgery share 3 of 4
discharges; visits from outside the city 4, of which 3 from the province (2024: 1).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from openpyxl import load_workbook

from yilian.activity.columns import Kind
from yilian.core.models import AuditEvent
from yilian.indicators.tests.factories import land, operation, stay, visit
from yilian.registry import services as registry_services

D = dt.date
MAR25, MAR24 = D(2025, 3, 12), D(2024, 3, 12)


def land_bijie_dataset() -> None:
    land(
        Kind.DISCHARGES,
        [
            stay("bjfph", "B1", D(2025, 3, 5), department="骨科", residence_region="520502"),
            stay("bjfph", "B2", D(2025, 3, 9), department="骨科", residence_region="520502"),
            stay("bjfph", "B3", D(2025, 3, 19), department="普外科", residence_region="520502"),
            stay("bjfph", "B4", D(2025, 3, 28), department="骨科", residence_region="520502"),
            stay("bjfph", "A1", D(2024, 3, 6), department="骨科", residence_region="520502"),
            stay("bjfph", "A2", D(2024, 3, 20), department="骨科", residence_region="520502"),
        ],
    )
    land(
        Kind.OPERATIONS,
        [
            operation("bjfph", "B1", D(2025, 3, 5), 1, level=4, mi=True, robot=True, department="骨科"),
            operation("bjfph", "B1", D(2025, 3, 5), 2, level=3, department="骨科"),
            operation("bjfph", "B2", D(2025, 3, 9), 1, level=3, mi=True, department="骨科"),
            operation("bjfph", "B3", D(2025, 3, 19), 1, level=2, department="普外科"),
            operation("bjfph", "A1", D(2024, 3, 6), 1, level=3, department="骨科"),
            operation("bjfph", "A2", D(2024, 3, 20), 1, level=4, mi=True, department="骨科"),
        ],
    )
    land(
        Kind.VISITS,
        [
            visit("bjfph", "V1", MAR25, "same_county", "520502"),
            visit("bjfph", "V2", MAR25, "same_county", "520502"),
            visit("bjfph", "V3", MAR25, "same_province", "520100"),
            visit("bjfph", "V4", MAR25, "same_province", "520100"),
            visit("bjfph", "V5", MAR25, "same_province", "520100"),
            visit("bjfph", "V6", MAR25, "other_province", "330824"),
            visit("qxgph", "X1", MAR25, "same_county", "520502"),
            visit("bjfph", "W1", MAR24, "same_province", "520100"),
            visit("bjfph", "W2", MAR24, "same_county", "520502"),
        ],
    )


@pytest.fixture(autouse=True)
def no_demo_facts(request: pytest.FixtureRequest) -> None:
    """The session's demo seed landed its activity batches into another store than this test's:
    these tests count only what they land themselves (rolled back with the test)."""
    if "db" in request.fixturenames or request.node.get_closest_marker("django_db"):
        from yilian.activity.models import ImportBatch

        request.getfixturevalue("db")
        ImportBatch.objects.all().delete()


@pytest.fixture
def bijie(db: None) -> None:
    land_bijie_dataset()


def values(client: Client, code: str, **params: Any) -> Any:
    response = client.get(f"/api/v1/indicators/{code}/values", params, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, response.content[:500]
    return response.json()


# --- definitions -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_definitions_list_every_active_indicator_with_its_formula_as_stored(login: Any) -> None:
    body = login("office").get("/api/v1/indicators", HTTP_ACCEPT_LANGUAGE="en").json()
    by_code = {i["code"]: i for i in body}
    share = by_code["level4_share"]
    assert share["name"] == "Level-4 operation share"
    assert share["name_zh"] == "出院患者四级手术比例"
    assert share["unit"] == "percent"
    assert share["factor"] == 100
    assert share["direction"] == "higher_better"
    assert share["programme"] == "national_appraisal"
    assert share["numerator"]["source"] == "operations"
    assert share["denominator"]["measure"] == "distinct:record_id"
    county = by_code["in_county_visit_rate"]
    assert county["target"] == 90
    assert by_code["level34_operations"]["denominator"] is None
    assert by_code["outflow_rate"]["direction"] == "lower_better"


@pytest.mark.django_db
def test_a_doctor_may_not_read_indicators(login: Any) -> None:
    response = login("doctor").get("/api/v1/indicators", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403
    assert response.json()["detail"] == "You may not see indicators."


# --- values ------------------------------------------------------------------------------------------


def test_values_of_an_institution_by_month_are_the_hand_computed_ones(bijie: None, login: Any) -> None:
    body = values(
        login("admin"), "level34_operations", org="institution:bjfph", period="month", **{"from": "2025-03-01"},
        to="2025-03-31",
    )  # fmt: skip
    assert body["start"] == "2025-03-01" and body["end"] == "2025-03-31"
    assert body["indicator"]["code"] == "level34_operations"
    [v] = body["values"]
    assert v["org"] == {"key": "institution:bjfph", "kind": "institution", "code": "bjfph", "name": v["org"]["name"]}
    assert v["period"] == {"grain": "month", "label": "2025-03", "start": "2025-03-01", "end": "2025-03-31"}
    assert (v["numerator"], v["denominator"], v["value"]) == (3, None, 3)
    assert (v["previous"], v["yoy"]) == (2, pytest.approx(0.5))
    assert v["coverage"]["share"] == 1.0  # bjfph imported March 2025


def test_a_share_has_numerator_denominator_and_target_met(bijie: None, login: Any) -> None:
    client = login("admin")
    [v] = values(client, "level4_share", org="institution:bjfph", period="month", **{"from": "2025-03-01"},
                 to="2025-03-31")["values"]  # fmt: skip
    assert (v["numerator"], v["denominator"]) == (1, 3)  # B1 of B1, B2, B3
    assert v["value"] == pytest.approx(100 / 3)
    assert v["previous"] == pytest.approx(50.0)  # A2 of A1, A2
    [rate] = values(client, "surgery_share", org="institution:bjfph", period="month", **{"from": "2025-03-01"},
                    to="2025-03-31")["values"]  # fmt: skip
    assert (rate["numerator"], rate["denominator"], rate["value"]) == (3, 4, pytest.approx(75.0))


def test_a_range_is_widened_to_whole_periods(bijie: None, login: Any) -> None:
    body = values(login("admin"), "visits_out_of_city", org="institution:bjfph", period="year",
                  **{"from": "2025-02-10"}, to="2025-06-30")  # fmt: skip
    assert (body["start"], body["end"]) == ("2025-01-01", "2025-12-31")
    [v] = body["values"]
    assert (v["period"]["label"], v["value"], v["previous"], v["yoy"]) == ("2025", 4, 1, pytest.approx(3.0))


def test_several_org_units_and_a_consortium_total(bijie: None, login: Any) -> None:
    body = values(
        login("admin"), "visits", org=["institution:bjfph", "consortium:bijie-nrmc"], period="month",
        **{"from": "2025-03-01"}, to="2025-03-31",
    )  # fmt: skip
    got = {v["org"]["key"]: v["value"] for v in body["values"]}
    assert got == {"institution:bjfph": 6, "consortium:bijie-nrmc": 7}


def test_department_filter(bijie: None, login: Any) -> None:
    [v] = values(login("admin"), "level34_operations", org="institution:bjfph", period="month",
                 **{"from": "2025-03-01"}, to="2025-03-31", department="普外科")["values"]  # fmt: skip
    assert v["value"] in (0, None)  # B3's operation is level 2
    [v] = values(login("admin"), "minimally_invasive_operations", org="institution:bjfph", period="month",
                 **{"from": "2025-03-01"}, to="2025-03-31", department="骨科")["values"]  # fmt: skip
    assert v["value"] == 2


@pytest.mark.django_db
def test_without_org_the_top_level_units_are_shown(login: Any) -> None:
    body = values(login("office"), "visits", period="year", **{"from": "2025-01-01"}, to="2025-12-31")
    assert {v["org"]["key"] for v in body["values"]} == {"consortium:zju2-quzhou"}


# --- refusals ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_indicator_is_404(login: Any) -> None:
    response = login("admin").get("/api/v1/indicators/no_such/values", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404
    assert response.json()["detail"] == "No indicator no_such."


@pytest.mark.django_db
def test_an_org_unit_out_of_view_is_403(login: Any) -> None:
    response = login("hospadmin").get(
        "/api/v1/indicators/visits/values", {"org": "institution:bjfph"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "institution:bjfph is outside what you may see."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"org": "bjfph"}, 422, "bjfph is not an organisation unit"),
        ({"org": "institution:nowhere"}, 400, "No organisation unit institution:nowhere."),
        ({"period": "week"}, 422, "Not one of the allowed values"),
        ({"from": "2025-05-01", "to": "2025-01-31"}, 400, "The end cannot come before the start."),
        ({"from": "2001-01-01", "to": "2025-12-31"}, 400, "Ask for at most 10 years at a time."),
        ({"from": "1 May"}, 422, "Not a valid date or time."),
    ],
)
def test_bad_parameters_are_refused_with_a_message(
    login: Any, params: dict[str, str], status: int, message: str
) -> None:
    response = login("admin").get("/api/v1/indicators/visits/values", params, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == status, response.content
    body = response.json()
    text = body["detail"] + " " + " ".join(m for ms in (body.get("errors") or {}).values() for m in ms)
    assert message in text


@pytest.mark.django_db
def test_messages_come_in_the_callers_language(login: Any) -> None:
    response = login("admin").get(
        "/api/v1/indicators/visits/values", {"from": "2025-05-01", "to": "2025-01-31"}, HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    assert response.status_code == 400
    assert "start" not in response.json()["errors"]["to"][0]  # not the English msgid


# --- Excel ---------------------------------------------------------------------------------------------


def test_values_as_excel_hold_the_numbers_and_the_definition(bijie: None, login: Any) -> None:
    client = login("admin", "en")
    before = AuditEvent.objects.filter(action="export").count()
    response = client.get(
        "/api/v1/indicators/level34_operations/values.xlsx",
        {"org": "institution:bjfph", "period": "month", "from": "2025-03-01", "to": "2025-03-31"},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "level34_operations-202503-202503-month.xlsx" in response["Content-Disposition"]
    wb = load_workbook(io.BytesIO(response.content))
    about, sheet = wb.worksheets
    assert about["A1"].value == "Level-3/4 operations"
    rows = [tuple(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0][0] == "Level-3/4 operations (level34_operations)"
    assert str(rows[1][0]).startswith("Definition: Level-3 and level-4 operations")
    header = next(i for i, r in enumerate(rows) if r[0] == "Organisation unit")
    assert rows[header][:5] == ("Organisation unit", "Period", "Numerator", "Denominator", "Value (operations)")
    data = rows[header + 1]
    assert data[1:5] == ("2025-03", 3, None, 3)
    assert data[7:9] == (2, 0.5)  # a year earlier, change
    assert sheet.cell(row=header + 2, column=9).number_format == "0.0%"
    exports = AuditEvent.objects.filter(action="export").order_by("-id")
    assert exports.count() == before + 1
    assert exports[0].changes["indicator"] == "level34_operations"


@pytest.mark.django_db
def test_excel_of_an_unknown_indicator_is_404(login: Any) -> None:
    assert login("admin").get("/api/v1/indicators/nope/values.xlsx").status_code == 404


# --- the OpenAPI contract ---------------------------------------------------------------------------


@pytest.fixture
def keep_connection() -> Iterator[None]:
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _indicator_operations() -> Any:
    import schemathesis
    from django.core.wsgi import get_wsgi_application

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    return schema.include(path_regex=r"^/api/v1/indicators")


@pytest.mark.django_db
def test_indicator_api_answers_within_its_contract(persona: Any, keep_connection: None) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    _, token = registry_services.api_token_create(actor=None, user=persona("office"))
    operations = [result.ok() for result in _indicator_operations().get_all_operations()]
    assert len(operations) == 3  # definitions, values, values.xlsx
    for operation_ in operations:
        strategy = operation_.as_strategy()

        @given(case=strategy)
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            positive = case.meta is None or case.meta.generation.mode == "positive"
            if positive and "code" in case.path_parameters:
                case.path_parameters["code"] = "visits"  # reach past the 404
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"},
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        check()
