"""The "two improvements" dashboard in a real Chromium, on the demo's clinical activity: the Bijie
centre over the two story years (headline cards with the out-of-city visits, charts drawn), a
year drilled into its months, a month of the Bijie consortium drilled into its institutions and
one institution into its departments, and back. Screenshots go to docs/screenshots/
(indicators-dashboard, indicators-drilldown, indicators-list)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from yilian.demo.activity import OUT_OF_CITY_PROVINCE_VISITS, OUT_OF_CITY_VISITS, demo_years
from yilian.web.tests.browsing import SCREENSHOTS, log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_store(settings: Any, activity_store: Path) -> Path:
    """The store the session's demo seed landed its activity in (the app conftest gives each test
    an empty one; this test reads the demo's)."""
    import yilian.settings as defaults
    from yilian.indicators.engine import BACKENDS

    settings.ACTIVITY_DIR = defaults.ACTIVITY_DIR
    BACKENDS.reset()
    return Path(defaults.ACTIVITY_DIR)


def watch_console(page: Page) -> list[str]:
    """Script errors and failed requests of the pages. The browser's own favicon request (a 404
    the site does not serve) is not a request of the page, so console lines about failed loads
    are judged by the responses the page saw instead."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and not m.text.startswith("Failed to load resource") else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors


def click_point(page: Page, chart: str, series: int, index: int) -> None:
    """Click the data point (bar or line symbol) ``index`` of series ``series`` of a chart."""
    box = page.locator(f'[data-chart="{chart}"]')
    x, y = page.evaluate(
        """([selector, series, index]) => {
            const el = document.querySelector(selector);
            const chart = echarts.getInstanceByDom(el);
            const option = chart.getOption();
            const value = option.series[series].data[index];
            const [x, y] = chart.convertToPixel({ seriesIndex: series }, [index, value]);
            const bottom = chart.convertToPixel({ seriesIndex: series }, [index, 0])[1];
            return option.series[series].type === "bar" ? [x, (y + bottom) / 2] : [x, y];
        }""",
        [f'[data-chart="{chart}"]', series, index],
    )
    bounds = box.bounding_box()
    assert bounds is not None
    page.mouse.click(bounds["x"] + x, bounds["y"] + y)


def test_dashboard_tells_the_bijie_story_and_drills_down(page: Page, demo_store: Path, site: str) -> None:
    errors = watch_console(page)
    page.set_viewport_size({"width": 1360, "height": 900})
    _baseline, first, last = demo_years()
    log_in(page, site, "admin")

    # The Bijie centre over the two story years, month by month against the year before.
    page.goto(f"{site}/indicators/dashboard/?institution=bjfph&grain=month&from={first}-01&to={last}-12")
    out = page.locator('.kpi[data-code="visits_out_of_city"]')
    expect(out.locator(".kpi-number")).to_have_text(f"{OUT_OF_CITY_VISITS:,}")
    expect(out.locator(".kpi-sub")).to_contain_text(f"{OUT_OF_CITY_PROVINCE_VISITS:,}")
    level34 = page.locator('.kpi[data-code="level34_operations"]')
    expect(level34).to_have_class(re.compile(r"\bkpi-good\b"))
    expect(level34.locator(".kpi-yoy")).to_contain_text("+")
    expect(page.locator("body")).to_have_attribute("data-indicator-charts", re.compile(r"^\d+$"))
    charts = int(page.locator("body").get_attribute("data-indicator-charts") or 0)
    assert charts >= 8
    expect(page.locator('[data-chart="level34-mi"] canvas')).to_have_count(1)
    expect(page.locator('[data-chart="sankey"] canvas')).to_have_count(1)
    # The definition behind the (i), left open for the screenshot.
    page.locator("#chart-level34-mi .chart-info-toggle").click()
    expect(page.locator("#info-level34-mi")).to_contain_text("三级和四级手术例数")
    expect(page.locator("#info-level34-mi")).to_have_class(re.compile(r"\bshow\b"))
    # The table behind a chart.
    page.locator("#chart-robot .chart-table-toggle").click()
    expect(page.locator("#table-robot .chart-table tbody tr")).to_have_count(24)
    expect(page.locator("#table-robot")).to_have_class("collapse show")
    page.locator("#chart-robot .chart-table-toggle").click()
    expect(page.locator("#table-robot")).to_be_hidden()
    shot(page, "indicators-dashboard")

    # By year; a year opens its months (a new page: back returns to the years).
    page.goto(f"{site}/indicators/dashboard/?institution=bjfph&grain=year&from={first}-01&to={last}-12")
    expect(page.locator('[data-chart="level34-mi"][data-rendered="true"]')).to_have_count(1)
    # A year opens its months (a new page: back returns to the years).
    click_point(page, "level34-mi", 0, 1)
    page.wait_for_url(f"**grain=month**from={last}-01**")
    expect(page.locator("#f-grain")).to_have_value("month")
    expect(page.locator('[data-chart="level34-mi"][data-rendered="true"]')).to_have_count(1)

    # A month of the consortium opens its institutions; an institution opens its departments.
    page.goto(f"{site}/indicators/dashboard/?consortium=bijie-nrmc&grain=month&from={last}-01&to={last}-12")
    expect(page.locator('[data-chart="level34-mi"][data-rendered="true"]')).to_have_count(1)
    click_point(page, "level34-mi", 0, 2)
    panel = page.locator('.drill-panel[data-drill-for="level34-mi"]')
    expect(panel).to_have_attribute("data-drill-state", "open")
    expect(panel).to_have_attribute("data-drill-by", "institution")
    expect(panel.locator(".drill-table tbody tr").first).to_have_attribute("data-key", "bjfph")
    assert "drill=" in page.url
    canvas = panel.locator(".drill-canvas")
    canvas.scroll_into_view_if_needed()
    px, py = page.evaluate(
        """() => {
            const el = document.querySelector('.drill-panel[data-drill-for="level34-mi"] .drill-canvas');
            const chart = echarts.getInstanceByDom(el);
            const option = chart.getOption();
            const index = option.yAxis[0].data.length - 1;  // the largest, drawn at the top
            const value = option.series[0].data[index];
            const [x, y] = chart.convertToPixel({ seriesIndex: 0 }, [value, index]);
            const x0 = chart.convertToPixel({ seriesIndex: 0 }, [0, index])[0];
            return [(x + x0) / 2, y];
        }"""
    )
    bounds = canvas.bounding_box()
    assert bounds is not None
    page.mouse.move(bounds["x"] + px, bounds["y"] + py)
    page.mouse.click(bounds["x"] + px, bounds["y"] + py)
    expect(panel).to_have_attribute("data-drill-by", "department")
    departments = panel.locator(".drill-table tbody tr")
    assert departments.count() >= 2
    panel.scroll_into_view_if_needed()
    page.locator("#chart-level34-mi").screenshot(path=str(SCREENSHOTS / "indicators-drilldown.png"))

    # Back returns to the institutions, and back again closes the drill-down.
    page.go_back()
    expect(panel).to_have_attribute("data-drill-by", "institution")
    page.go_back()
    expect(panel).to_be_hidden()

    # The definitions.
    page.goto(f"{site}/indicators/")
    expect(page.locator("#indicator-in_county_visit_rate .target")).to_have_text("≥ 90 %")
    shot(page, "indicators-list")
    assert errors == []
