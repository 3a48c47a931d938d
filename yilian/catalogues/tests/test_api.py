"""The catalogue API (list, detail, codes, upload, withdrawal), the basis in the indicator API and
its Excel, and the OpenAPI contract of the new endpoints."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from openpyxl import load_workbook

from yilian.activity.readers import csv_bytes
from yilian.catalogues.models import Catalogue
from yilian.catalogues.tests.factories import D, land_operations_dataset, load
from yilian.registry import services as registry_services

pytestmark = pytest.mark.django_db
EN = {"Accept-Language": "en"}


def upload(client: Client, rows: list[list[str]], *, filename: str = "level4.csv", **fields: str) -> Any:
    data = {"kind": "level4", "name": "国家四级手术目录", "version": "2022版", "valid_from": "2022-01-01", **fields}
    data["file"] = SimpleUploadedFile(filename, csv_bytes(rows), content_type="text/csv")  # type: ignore[assignment]
    return client.post("/api/v1/catalogues", data, headers=EN)


def test_a_catalogue_is_loaded_listed_and_shown_with_its_codes(login: Any) -> None:
    client = login("office")
    response = upload(client, [["编码", "名称"], ["36.0601", "冠状动脉旁路移植术"], ["01.2401", "开颅术"]])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "level4"
    assert body["kind_label"] == "Level-4 operation catalogue (四级手术目录)"
    assert (body["label"], body["valid_from"], body["valid_until"]) == ("国家四级手术目录 2022版", "2022-01-01", None)
    assert (body["codes_count"], body["loaded_by"], body["is_active"], body["institution"]) == (2, "office", True, None)
    newer = upload(
        client, [["编码"], ["36.0601"]], version="2025版", valid_from="2025-07-01", name="国家四级手术目录"
    ).json()
    listed = client.get("/api/v1/catalogues", {"kind": "level4"}, headers=EN).json()
    assert listed["count"] == 2
    assert [(c["version"], c["valid_until"]) for c in listed["items"]] == [("2025版", None), ("2022版", "2025-07-01")]
    detail = client.get(f"/api/v1/catalogues/{body['id']}", headers=EN).json()
    assert detail["valid_until"] == "2025-07-01"
    codes = client.get(f"/api/v1/catalogues/{body['id']}/codes", headers=EN).json()
    assert codes == {
        "items": [
            {"code": "01.2401", "name": "开颅术", "category": None},
            {"code": "36.0601", "name": "冠状动脉旁路移植术", "category": None},
        ],
        "count": 2,
    }
    found = client.get(f"/api/v1/catalogues/{body['id']}/codes", {"q": "冠状"}, headers=EN).json()
    assert [c["code"] for c in found["items"]] == ["36.0601"]
    assert client.get(f"/api/v1/catalogues/{newer['id']}/codes", {"q": "36.06"}, headers=EN).json()["count"] == 1


def test_a_rejected_file_is_422_with_every_problem(login: Any) -> None:
    response = upload(
        login("office"),
        [["编码", "名称", "类别"], ["36.0601", "x", "手术"], ["ABC", "y", "外科"]],
        kind="classification",
        name="国家临床版手术操作分类",
    )
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["detail"] == "The file was rejected: nothing was loaded."
    assert body["problem_count"] == 2
    assert body["problems"][0] == {
        "row": 3,
        "column": "编码",
        "value": "ABC",
        "message": "“ABC” is not an operation code (ICD-9-CM-3) such as 36.0601.",
    }
    assert body["problems"][1]["column"] == "类别"
    assert not Catalogue.objects.exists()


def test_requests_that_break_a_rule_are_400(login: Any) -> None:
    client = login("office")
    wrong = upload(client, [["编码"], ["36.0601"]], filename="level4.json")
    assert wrong.status_code == 400
    assert wrong.json()["errors"]["file"] == ["Upload a .csv or .xlsx file; level4.json is not one."]
    no_owner = upload(client, [["编码"], ["51.2301"]], kind="institution_mi")
    assert no_owner.status_code == 400
    assert no_owner.json()["errors"]["institution"] == ["Choose the institution whose list this is."]
    unknown = upload(client, [["编码"], ["51.2301"]], kind="institution_mi", institution="nowhere")
    assert unknown.json()["errors"]["institution"] == ["No institution with code nowhere."]
    malformed = client.post("/api/v1/catalogues", {"kind": "level9"}, headers=EN)
    assert malformed.status_code == 422
    assert {"kind", "name", "version", "valid_from", "file"} <= {k.split(".")[-1] for k in malformed.json()["errors"]}


def test_refusals_are_403_and_unknown_catalogues_404(login: Any, tmp_path: Path) -> None:
    assert login("doctor").get("/api/v1/catalogues", headers=EN).status_code == 403
    assert upload(login("hospadmin"), [["编码"], ["36.0601"]]).status_code == 403
    assert upload(login("commission"), [["编码"], ["36.0601"]]).status_code == 403
    own = upload(login("hospadmin"), [["编码"], ["51.2301"]], kind="institution_mi", institution="qzph")
    assert own.status_code == 201
    bijie = load(tmp_path, "institution_mi", ["51.2301"], institution="bjfph")
    assert login("hospadmin").get(f"/api/v1/catalogues/{bijie.public_id}", headers=EN).status_code == 403
    missing = login("admin").get("/api/v1/catalogues/00000000-0000-0000-0000-000000000000", headers=EN)
    assert missing.status_code == 404


def test_withdrawal(login: Any, tmp_path: Path) -> None:
    catalogue = load(tmp_path, "level4", ["36.0601"])
    client = login("office")
    url = f"/api/v1/catalogues/{catalogue.public_id}/withdraw"
    assert client.post(url, {}, content_type="application/json", headers=EN).status_code == 422
    response = client.post(url, {"reason": "wrong file"}, content_type="application/json", headers=EN)
    assert response.status_code == 200
    assert (response.json()["is_active"], response.json()["withdrawn_by"]) == (False, "office")
    again = client.post(url, {"reason": "again"}, content_type="application/json", headers=EN)
    assert again.status_code == 409
    assert again.json()["detail"] == "This catalogue is already withdrawn."
    assert login("hospadmin").post(url, {"reason": "x"}, content_type="application/json", headers=EN).status_code == 403
    assert client.get("/api/v1/catalogues", {"active": "false"}, headers=EN).json()["count"] == 1
    assert client.get("/api/v1/catalogues", {"active": "true"}, headers=EN).json()["count"] == 0


# --- the basis in the indicator API and its Excel ----------------------------------------------------------


def test_indicator_values_say_which_basis_they_used(login: Any, facts_store: Path, tmp_path: Path) -> None:
    land_operations_dataset()
    load(tmp_path, "level4", ["36.0601"], version="2025版", valid_from=D(2025, 3, 15))
    client = login("office")
    params = {"org": "institution:khph", "period": "month", "from": "2025-03-01", "to": "2025-03-31"}
    body = client.get("/api/v1/indicators/level4_share/values", params, headers=EN).json()
    [value] = body["values"]
    assert value["basis"] == [
        "Category by the file's category or the code's chapter (no operation classification loaded).",
        "Level 4 by the catalogue 国家四级手术目录 2025版 (from 2025-03-15); before 2025-03-15 as reported by the "
        "hospitals.",
    ]
    visits = client.get("/api/v1/indicators/visits/values", params, headers=EN).json()
    assert visits["values"][0]["basis"] == []
    response = client.get("/api/v1/indicators/level4_share/values.xlsx", params, headers=EN)
    rows = [tuple(r) for r in load_workbook(io.BytesIO(response.content)).worksheets[1].iter_rows(values_only=True)]
    assert ("Basis: " + value["basis"][1],) in [r[:1] for r in rows]
    header = next(i for i, r in enumerate(rows) if r[0] == "Organisation unit")
    assert rows[header][-1] == "Basis"
    assert rows[header + 1][-1] == " ".join(value["basis"])


# --- the OpenAPI contract ------------------------------------------------------------------------------------


@pytest.fixture
def keep_connection() -> Iterator[None]:
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_catalogue_api_answers_within_its_contract(persona: Any, keep_connection: None, tmp_path: Path) -> None:
    import schemathesis
    from django.core.wsgi import get_wsgi_application
    from hypothesis import HealthCheck, given, settings

    catalogue = load(tmp_path, "level4", ["36.0601"])
    _, token = registry_services.api_token_create(actor=None, user=persona("office"))
    schema: Any = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    operations = [result.ok() for result in schema.include(path_regex=r"^/api/v1/catalogues").get_all_operations()]
    assert len(operations) == 5  # list, load, detail, codes, withdraw
    for operation_ in operations:

        @given(case=operation_.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            positive = case.meta is None or case.meta.generation.mode == "positive"
            if positive and "public_id" in (case.path_parameters or {}):
                case.path_parameters["public_id"] = str(catalogue.public_id)  # reach past the 404
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"},
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        check()
