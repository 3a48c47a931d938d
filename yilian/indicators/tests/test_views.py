"""The indicator pages: the definitions, the dashboard (headline cards, charts, filters, scoping),
its drill-downs and the Excel download of a chart's table, on the hand-computed dataset of
``test_api`` (Bijie centre, March 2025 against March 2024)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from html import unescape
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openpyxl import load_workbook

from yilian.activity.columns import Kind
from yilian.indicators.tests.factories import land, visit
from yilian.indicators.tests.test_api import land_bijie_dataset, no_demo_facts  # noqa: F401  (autouse fixture)

BIJIE_2025 = {"institution": "bjfph", "grain": "month", "from": "2025-01", "to": "2025-12"}


@pytest.fixture
def bijie(db: None) -> None:
    land_bijie_dataset()


class Page:
    """A rendered page: its HTML with the whitespace collapsed, and the context it was drawn from."""

    def __init__(self, response: Any) -> None:
        self.html = " ".join(unescape(response.content.decode()).split())
        self.context = response.context

    def charts(self) -> dict[str, Any]:
        return {c.id: c for _key, _label, charts in self.context["sections"] for c in charts}

    def payload(self) -> Any:
        match = re.search(r'<script id="indicators-data" type="application/json">(.*?)</script>', self.html)
        assert match is not None
        return json.loads(match.group(1))

    def kpi(self, code: str) -> Any:
        card = next(k for k in self.context["kpis"] if k.code == code)
        # what the card shows is in the page
        block = re.search(rf'data-code="{code}"(.*?)</div> </div> </div>', self.html)
        assert block is not None, code
        assert card.value in block.group(1) and card.yoy_text in block.group(1) and card.sub in block.group(1)
        return card


def page(client: Client, url: str, params: dict[str, str] | None = None, status: int = 200) -> Page:
    response = client.get(url, params or {})
    assert response.status_code == status, response.content[:800]
    return Page(response)


# --- the definitions -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_definitions_are_grouped_by_programme_with_formula_and_target(login: Any) -> None:
    p = page(login("office", "en"), "/indicators/")
    programmes = [label for _code, label, _cards in p.context["groups"]]
    assert programmes[0] == "National appraisal of public hospitals (国考)"
    assert '<section class="mb-4 indicator-programme" id="programme-national_appraisal">' in p.html
    row = re.search(r'<tr id="indicator-in_county_visit_rate".*?</tr>', p.html)
    assert row is not None
    assert '<td class="small text-nowrap target">≥ 90 %</td>' in row.group(0)
    assert (
        '<td class="small text-muted formula">count of visits [origin = same_county] (by residence) ÷ '
        "count of visits (by residence) × 100</td>"
    ) in row.group(0)
    level4 = re.search(r'id="programme-national_appraisal".*?</section>', p.html)
    assert level4 is not None and 'id="indicator-level4_share"' in level4.group(0)


@pytest.mark.django_db
def test_definitions_need_the_indicator_permission(login: Any) -> None:
    assert login("doctor").get("/indicators/").status_code == 403


# --- the dashboard ---------------------------------------------------------------------------------------


def test_dashboard_headline_cards_carry_the_hand_computed_totals_and_changes(bijie: None, login: Any) -> None:
    p = page(login("admin", "en"), "/indicators/dashboard/", BIJIE_2025)
    level34 = p.kpi("level34_operations")
    assert (level34.value, level34.yoy_text, level34.tone) == ("3", "+50.0 %", "good")  # 3 against A1, A2
    mi = p.kpi("minimally_invasive_operations")
    assert (mi.value, mi.yoy_text) == ("2", "+100.0 %")
    out = p.kpi("visits_out_of_city")
    assert (out.value, out.sub, out.yoy_text) == ("4", "of which 3 from the province", "+300.0 %")  # 2024: W1
    assert "2025-01 – 2025-12" in p.html


def test_dashboard_charts_get_the_series_of_the_engine(bijie: None, login: Any) -> None:
    p = page(login("admin", "en"), "/indicators/dashboard/", BIJIE_2025)
    data = p.payload()
    growth = data["charts"]["level34-mi"]
    assert growth["data"]["periods"][2] == "2025-03"
    series = {s["code"]: s for s in growth["data"]["series"]}
    assert series["level34_operations"]["data"][2] == 3
    assert series["level34_operations"]["previous"][2] == 2
    assert series["minimally_invasive_operations"]["data"][2] == 2
    levels = {s["code"]: s["data"][2] for s in data["charts"]["operations-by-level"]["data"]["series"]}
    assert levels == {"2": 1, "3": 2, "4": 1}
    origin = {s["code"]: s["data"][2] for s in data["charts"]["origin-mix"]["data"]["series"]}
    assert origin == {"visits_local": 2, "visits_other_county": 0, "visits_other_city": 3, "visits_other_province": 1}
    sankey = data["charts"]["sankey"]["data"]
    assert {(lnk["source"], lnk["value"]) for lnk in sankey["links"]} == {("Bijie", 2), ("Guiyang", 3), ("Quzhou", 1)}
    # each chart has its title, definition, table and Excel link
    card = re.search(r'id="chart-level34-mi".*?</table>', p.html)
    assert card is not None
    html = card.group(0)
    assert '<span class="chart-title">Level-3/4 and minimally invasive operations</span>' in html
    assert "Level-3 and level-4 operations of discharged stays" in html
    assert '<tr><td class="ps-3 text-nowrap">2025-03</td><td class="text-end">3</td><td class="text-end">2</td>' in html
    assert 'href="/indicators/dashboard/level34-mi.xlsx?institution=bjfph&grain=month' in html
    assert p.charts()["level34-mi"].cells[2][1:4] == ["3", "2", "50.0 %"]


def test_dashboard_says_no_data_yet_where_a_source_has_nothing(bijie: None, login: Any) -> None:
    # Qixingguan imported visits only: no operations, and no techniques catalogue exists yet.
    p = page(login("admin", "en"), "/indicators/dashboard/", {**BIJIE_2025, "institution": "qxgph"})
    for chart, text in (
        ("techniques", "the techniques catalogue and regional firsts come with a later release"),
        ("operations-by-level", "No operations imported yet for this unit and period."),
        ("robot", "No data yet for this unit and period."),
    ):
        card = re.search(rf'id="chart-{chart}".*?<div class="card-body pt-2">(.*?)</div> </div>', p.html)
        assert card is not None, chart
        assert "No data yet" in card.group(1) and text in card.group(1), chart
        assert "chart-canvas" not in card.group(1)
    charts = p.payload()["charts"]
    assert "techniques" not in charts and "robot" not in charts
    assert charts["origin-mix"]["data"]["series"][0]["data"][2] == 1  # X1


def test_year_grain(bijie: None, login: Any) -> None:
    p = page(login("admin", "en"), "/indicators/dashboard/", {"institution": "bjfph", "grain": "year",
                                                                 "from": "2024-01", "to": "2025-12"})  # fmt: skip
    growth = p.payload()["charts"]["level34-mi"]
    assert growth["data"]["periods"] == ["2024", "2025"]
    assert [s["data"] for s in growth["data"]["series"]] == [[2, 3], [1, 2]]
    assert growth["drill"]["year_to_months"] is True
    assert "Click a year to see its months." in p.html


@pytest.mark.django_db
def test_the_office_sees_its_consortium_and_the_last_full_year_by_default(login: Any) -> None:
    p = page(login("office", "en"), "/indicators/dashboard/")
    assert '<option value="zju2-quzhou" selected>' in p.html
    year = timezone.localdate().year - 1
    assert f'name="from" id="f-from" value="{year}-01"' in p.html
    assert f'name="to" id="f-to" value="{year}-12"' in p.html


@pytest.mark.django_db
def test_unreadable_filters_fall_back_to_the_defaults_with_a_message(login: Any) -> None:
    p = page(login("office", "en"), "/indicators/dashboard/", {"grain": "week", "from": "soon"})
    assert "Choose month, quarter or year." in p.html
    assert "Write months as YYYY-MM." in p.html
    assert p.context["query"].grain == "month"


@pytest.mark.django_db
def test_a_hospital_admin_cannot_open_another_institutions_dashboard(login: Any) -> None:
    client = login("hospadmin")
    assert client.get("/indicators/dashboard/", {"institution": "bjfph"}).status_code == 403
    assert client.get("/indicators/dashboard/", {"consortium": "bijie-nrmc"}).status_code == 403
    assert client.get("/indicators/dashboard/", {"institution": "qzph"}).status_code == 200
    drill = client.get("/indicators/dashboard/drill/", {"code": "visits", "org": "institution:bjfph",
                                                         "by": "department", "period": "2025-03"})  # fmt: skip
    assert drill.status_code == 403
    assert client.get("/indicators/dashboard/level34-mi.xlsx", {"institution": "bjfph"}).status_code == 403


@pytest.mark.django_db
def test_a_doctor_has_no_dashboard(login: Any) -> None:
    assert login("doctor").get("/indicators/dashboard/").status_code == 403


# --- drill-down -------------------------------------------------------------------------------------


def test_a_consortium_period_drills_down_to_its_institutions(bijie: None, login: Any) -> None:
    response = login("admin", "en").get(
        "/indicators/dashboard/drill/",
        {"code": "visits", "org": "consortium:bijie-nrmc", "by": "institution", "grain": "month", "period": "2025-03"},
    )
    assert response.status_code == 200
    body = response.json()
    assert [(r["key"], r["value"]) for r in body["rows"]] == [("bjfph", 6), ("qxgph", 1)]
    assert body["next"] == "department"
    assert body["period"] == "2025-03"


def test_an_institution_drills_down_to_its_departments(bijie: None, login: Any) -> None:
    client = login("admin", "en")
    body = client.get(
        "/indicators/dashboard/drill/",
        {"code": "level34_operations", "org": "institution:bjfph", "by": "department", "grain": "quarter",
         "period": "2025-01"},
    ).json()  # fmt: skip
    assert {r["key"]: r["value"] for r in body["rows"]} == {"骨科": 3}
    assert body["next"] == ""


def test_a_drill_the_source_cannot_answer_is_a_message(bijie: None, login: Any) -> None:
    response = login("admin", "en").get(
        "/indicators/dashboard/drill/",
        {"code": "visits", "org": "institution:bjfph", "by": "operation_level", "period": "2025-03"},
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "Break down by institution or department."


def test_a_drill_as_excel(bijie: None, login: Any) -> None:
    response = login("admin", "en").get(
        "/indicators/dashboard/drill/",
        {"code": "visits", "org": "consortium:bijie-nrmc", "by": "institution", "period": "2025-03",
         "format": "xlsx"},
    )  # fmt: skip
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[1]
    rows = [tuple(r) for r in sheet.iter_rows(values_only=True)]
    header = next(i for i, r in enumerate(rows) if r[0] == "Institution")
    assert [(r[0], r[3]) for r in rows[header + 1 :]] == [
        ("Bijie Hospital of Zhejiang Provincial People's Hospital (Bijie First People's Hospital)", 6),
        ("Qixingguan District People's Hospital", 1),
    ]


# --- a chart's table as Excel ----------------------------------------------------------------------------


def test_a_charts_table_downloads_as_excel_with_number_formats(bijie: None, login: Any) -> None:
    response = login("admin", "en").get("/indicators/dashboard/level34-mi.xlsx", BIJIE_2025)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="level34-mi-bjfph-202501-202512.xlsx"'
    wb = load_workbook(io.BytesIO(response.content))
    about, sheet = wb.worksheets
    filters = {r[0]: r[1] for r in about.iter_rows(values_only=True) if r and r[0]}
    assert filters["Period"] == "2025-01 – 2025-12"
    assert filters["Grain"] == "Month"
    rows = [tuple(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][0] == "Level-3/4 and minimally invasive operations"
    assert any(str(r[0]).startswith("Level-3/4 operations: Level-3 and level-4") for r in rows[:4])
    header = next(i for i, r in enumerate(rows) if r[0] == "Period")
    assert rows[header][1] == "Level-3/4 operations (operations)"
    march = rows[header + 3]
    assert march[:4] == ("2025-03", 3, 2, 0.5)
    assert sheet.cell(row=header + 4, column=2).number_format == "#,##0"
    assert sheet.cell(row=header + 4, column=4).number_format == "0.0%"


@pytest.mark.django_db
def test_an_unknown_chart_is_404(login: Any) -> None:
    assert login("admin").get("/indicators/dashboard/nothing.xlsx").status_code == 404


def test_the_dashboard_makes_no_query_per_fact(bijie: None, login: Any, django_assert_num_queries: Any) -> None:
    """The database work of the page does not grow with the facts: forty more visits from forty
    more places cost the same reads as one."""
    params = {**BIJIE_2025, "institution": "", "consortium": "bijie-nrmc"}
    client = login("admin", "en")
    client.get("/indicators/dashboard/", params)  # warm the engine's connection
    # After a landing the engine refreshes its tables; compare a landing of one fact with one of many.
    land(Kind.VISITS, [visit("bjfph", "N0", dt.date(2025, 5, 1), "same_province", "520100")], filename="one.csv")
    with CaptureQueriesContext(connection) as before:
        client.get("/indicators/dashboard/", params)
    land(
        Kind.VISITS,
        [visit("bjfph", f"N{i}", dt.date(2025, 5, 1 + i), "same_province", f"5201{i:02d}") for i in range(1, 20)]
        + [visit("qxgph", f"M{i}", dt.date(2025, 5, 1 + i), "other_province", f"3308{i:02d}") for i in range(1, 20)],
        filename="more-visits.csv",
    )
    with django_assert_num_queries(len(before.captured_queries)):
        response = client.get("/indicators/dashboard/", params)
    visits = {s["code"]: s["data"][4] for s in Page(response).payload()["charts"]["origin-mix"]["data"]["series"]}
    assert visits["visits_other_city"] == 20
