"""What the browser tests share: logging in as a persona, and screenshots for people to look at in
docs/screenshots/. The ``site`` fixture (the demo under a live server) is in the root conftest."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from yilian.demo.seed import DEMO_PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


def shot(page: Page, name: str) -> None:
    """The whole page as it reads once scrolled to the end: the viewport grows to the document's
    height for the shot, so that the sticky action bar sits after the content, not over it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    if viewport is not None:
        height = int(page.evaluate("document.documentElement.scrollHeight"))
        page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if viewport is not None:
        page.set_viewport_size(viewport)


def log_in(page: Page, site: str, username: str) -> None:
    page.goto(f"{site}/login/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#user-menu")).to_be_visible()
