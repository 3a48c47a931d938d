"""The catalogue pages (list, upload, detail with searchable codes, withdrawal), the navigation, and
the basis under the dashboard's figures."""

from __future__ import annotations

import io
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from openpyxl import load_workbook

from yilian.activity.readers import csv_bytes
from yilian.catalogues.models import Catalogue
from yilian.catalogues.tests.factories import D, land_operations_dataset, load

pytestmark = pytest.mark.django_db


def html(response: Any) -> str:
    return " ".join(unescape(response.content.decode()).split())


def post_upload(client: Client, rows: list[list[str]], **fields: str) -> Any:
    data: dict[str, Any] = {
        "kind": "level4",
        "name": "国家四级手术目录",
        "version": "2022版",
        "valid_from": "2022-01-01",
        "institution": "",
        "note": "",
        **fields,
    }
    data["file"] = SimpleUploadedFile("level4.csv", csv_bytes(rows), content_type="text/csv")
    return client.post("/catalogues/", data)


def test_the_list_shows_each_catalogue_and_the_upload_form_to_those_who_may_load(login: Any, tmp_path: Path) -> None:
    load(tmp_path, "level4", ["36.0601", "01.2401"], version="2022版", valid_from=D(2022, 1, 1))
    load(tmp_path, "level4", ["36.0601"], version="2025版", valid_from=D(2025, 7, 1))
    page = html(login("office", "en").get("/catalogues/"))
    assert 'id="upload-form"' in page
    assert '国家四级手术目录</a> <span class="badge text-bg-light border">2022版</span>' in page
    assert 'from 2022-01-01<div class="text-muted">until 2025-07-01</div>' in page
    assert 'id="nav-catalogues"' in page
    viewer = html(login("commission", "en").get("/catalogues/"))
    assert "2025版" in viewer and 'id="upload-form"' not in viewer
    # A hospital administrator may load only their own hospital's list.
    own = login("hospadmin", "en").get("/catalogues/")
    form = own.context["form"]
    assert [value for value, _label in form.fields["kind"].choices] == ["", "institution_mi"]
    assert [i.code for i in form.fields["institution"].queryset] == ["qzph"]
    assert login("doctor", "en").get("/catalogues/").status_code == 403


def test_uploading_a_file_loads_it_and_opens_it(login: Any) -> None:
    client = login("office", "en")
    response = post_upload(client, [["编码", "名称"], ["36.0601", "冠状动脉旁路移植术"]])
    catalogue = Catalogue.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/catalogues/{catalogue.public_id}/"
    page = html(client.get(response["Location"]))
    assert "国家四级手术目录 2022版 is loaded: 1 codes, read for stays discharged from 2022-01-01." in page
    assert '<tr data-code="36.0601">' in page


def test_a_rejected_file_shows_each_problem_and_keeps_the_form(login: Any) -> None:
    response = post_upload(login("office", "en"), [["编码"], ["36.0601"], ["XYZ"], ["36.0601"]])
    assert response.status_code == 400
    page = html(response)
    assert 'id="upload-problems"' in page
    assert '<td class="font-monospace">3</td><td>编码</td><td class="font-monospace">XYZ</td>' in page
    assert "“36.0601” is listed twice (first in row 2)." in page
    assert 'value="国家四级手术目录"' in page  # what was typed stays
    assert not Catalogue.objects.exists()
    missing = post_upload(login("office", "en"), [["编码"], ["51.2301"]], kind="institution_mi")
    assert missing.status_code == 400
    assert "Choose the institution whose list this is." in html(missing)


def test_the_detail_searches_the_codes_and_withdraws(login: Any, tmp_path: Path) -> None:
    catalogue = load(tmp_path, "classification", [("36.0601", "手术"), ("45.2301", "诊断性操作")])
    client = login("office", "en")
    url = f"/catalogues/{catalogue.public_id}/"
    page = html(client.get(url))
    assert '<tr data-code="45.2301"><td class="font-monospace text-nowrap">45.2301</td><td>操作45.2301</td>' in page
    assert "Diagnostic procedure" in page
    partial = client.get(url, {"q": "45.23"}, HTTP_HX_REQUEST="true")
    assert partial.templates[0].name == "catalogues/_codes.html"
    assert 'data-code="45.2301"' in html(partial) and 'data-code="36.0601"' not in html(partial)
    assert client.post(f"{url}withdraw/", {"reason": ""}).status_code == 400
    response = client.post(f"{url}withdraw/", {"reason": "wrong file"})
    assert response.status_code == 302
    page = html(client.get(url))
    assert "Withdrawn: no indicator reads this catalogue any more." in page
    assert 'id="withdraw-form"' not in page
    # Someone who may only see it gets no withdrawal form.
    other = load(tmp_path, "level4", ["36.0601"])
    assert 'id="withdraw-form"' not in html(login("commission", "en").get(f"/catalogues/{other.public_id}/"))
    assert login("hospadmin", "en").post(f"/catalogues/{other.public_id}/withdraw/", {"reason": "x"}).status_code == 403


def test_the_dashboard_shows_which_basis_its_figures_used(login: Any, facts_store: Path, tmp_path: Path) -> None:
    land_operations_dataset()
    load(tmp_path, "level4", ["36.0601"], version="2025版", valid_from=D(2025, 3, 15))
    client = login("admin", "en")
    response = client.get("/indicators/dashboard/", {"institution": "khph", "grain": "month", "from": "2025-01",
                                                     "to": "2025-12"})  # fmt: skip
    assert response.status_code == 200
    charts = {c.id: c for _key, _label, cs in response.context["sections"] for c in cs}
    assert (
        "Level 4 by the catalogue 国家四级手术目录 2025版 (from 2025-03-15); before 2025-03-15 as reported by the "
        "hospitals." in charts["shares"].basis
    )
    page = html(response)
    block = re.search(r'id="chart-shares"(.*?)</section>', page)
    assert block is not None
    assert 'class="text-muted chart-basis mt-1"' in block.group(1)
    assert "Level 4 by the catalogue 国家四级手术目录 2025版 (from 2025-03-15)" in block.group(1)
    kpi = next(k for k in response.context["kpis"] if k.code == "minimally_invasive_operations")
    assert kpi.basis == ["Minimally invasive as reported by the hospitals (no minimally invasive catalogue loaded)."]
    # The chart's Excel carries it too.
    excel = client.get("/indicators/dashboard/shares.xlsx", {"institution": "khph", "grain": "month",
                                                             "from": "2025-01", "to": "2025-12"})  # fmt: skip
    assert excel.status_code == 200
    sheet = load_workbook(io.BytesIO(excel.content)).worksheets[1]
    notes = [r[0] for r in sheet.iter_rows(values_only=True) if r and str(r[0] or "").startswith("Basis: ")]
    assert "Basis: Level 4 as reported by the hospitals (no level-4 catalogue loaded)." not in notes
    assert any("国家四级手术目录 2025版" in str(n) for n in notes)
