"""The catalogue pages in a real Chromium: the consortium office opens them from the indicators'
navigation, loads a level-4 catalogue from a CSV file, finds a code in it, and sees the level-4
share's basis on the dashboard. Screenshots: docs/screenshots/catalogues-list.png and
catalogues-detail.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from yilian.activity.readers import csv_bytes
from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_office_loads_a_level4_catalogue_and_the_dashboard_names_it(page: Page, site: str, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 1360, "height": 900})
    log_in(page, site, "office")
    page.goto(f"{site}/indicators/")
    page.locator("#nav-catalogues").click()
    page.wait_for_url("**/catalogues/")

    file = tmp_path / "四级手术目录2022.csv"
    file.write_bytes(
        csv_bytes(
            [["手术操作编码", "手术操作名称"], ["36.0601", "冠状动脉旁路移植术"], ["01.2401", "开颅术"]],
            encoding="gb18030",
        )
    )
    page.locator("#upload-box summary").click()
    page.locator("#id_kind").select_option("level4")
    page.locator("#id_name").fill("国家四级手术目录")
    page.locator("#id_version").fill("2022版")
    page.locator("#id_valid_from").fill("2022-01-01")
    page.locator("#id_file").set_input_files(str(file))
    page.locator("#upload-submit").click()

    page.wait_for_url("**/catalogues/*-*/")
    expect(page.locator("#codes tbody tr")).to_have_count(2)
    page.locator("#code-q").fill("开颅")
    expect(page.locator("#codes tbody tr")).to_have_count(1)
    expect(page.locator('#codes tr[data-code="01.2401"]')).to_be_visible()
    shot(page, "catalogues-detail")

    page.goto(f"{site}/catalogues/")
    expect(page.locator("#catalogues tbody tr")).to_have_count(1)
    shot(page, "catalogues-list")

    page.goto(f"{site}/indicators/dashboard/?consortium=zju2-quzhou&grain=year&from=2024-01&to=2025-12")
    expect(page.locator("#chart-shares .chart-basis")).to_contain_text("国家四级手术目录 2022版")
