"""The UI in a real Chromium: log in, switch language, browse a consortium and an
institution, search. Screenshots land in docs/screenshots/ for people to look at."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from yilian.demo.seed import DEMO_PASSWORD
from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_office_logs_in_and_browses_the_consortium(page: Page, site: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{site}/login/")
    expect(page.get_by_role("button", name="登录")).to_be_visible()
    shot(page, "login")
    log_in(page, site, "office")
    expect(page.get_by_text("浙大二院—衢州医联体").first).to_be_visible()
    shot(page, "home")
    page.get_by_role("link", name="医联体", exact=True).click()
    page.get_by_role("link", name=re.compile("浙大二院")).first.click()
    expect(page.locator("#member-table")).to_contain_text("衢州市人民医院")
    expect(page.locator("#agreements")).to_contain_text("神经外科")
    expect(page.locator("svg.member-map circle")).to_have_count(page.locator("#member-table tbody tr").count())
    shot(page, "consortium")
    page.locator("#member-table").get_by_role("link", name="衢州市人民医院").click()
    expect(page.locator("#capability-table")).to_contain_text("机械取栓")
    shot(page, "institution")


def test_doctor_switches_to_english_and_it_sticks(page: Page, site: str) -> None:
    log_in(page, site, "doctor")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("link", name="Institutions", exact=True)).to_be_visible()
    page.get_by_role("button", name=re.compile("doctor|王建国")).click()
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill("doctor")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Consortia", exact=True)).to_be_visible()
    page.goto(f"{site}/institutions/csph/")
    expect(page.locator("h1, .page-title").first).to_contain_text("Changshan")
    shot(page, "institution-en")


def test_search_updates_as_you_type_and_respects_scope(page: Page, site: str) -> None:
    log_in(page, site, "doctor")
    page.goto(f"{site}/search/")
    page.locator("#search-input").press_sequentially("常山", delay=30)
    expect(page.locator("#search-results")).to_contain_text("常山县人民医院")
    expect(page).to_have_url(re.compile(r"q=%E5%B8%B8%E5%B1%B1"))
    shot(page, "search")
    page.locator("#search-input").fill("毕节")
    page.locator("#search-input").press("Enter")
    expect(page.locator("#search-results")).not_to_contain_text("毕节医院")


def test_wrong_password_then_lockout_message(page: Page, site: str) -> None:
    page.goto(f"{site}/login/")
    for _ in range(5):
        page.get_by_label("用户名").fill("coordinator")
        page.get_by_label("密码").fill("wrong-password-1")
        page.get_by_role("button", name="登录").click()
    page.get_by_label("用户名").fill("coordinator")
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#lockout")).to_contain_text("锁定")


def test_admin_reads_the_audit_trail(page: Page, site: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "admin")
    page.get_by_role("link", name="审计日志").click()
    expect(page.locator("#audit-table")).to_contain_text("admin")
    page.get_by_label("操作").select_option("login")
    page.get_by_role("button", name="筛选").click()
    expect(page.locator("#audit-table tbody tr").first).to_contain_text("登录")
    shot(page, "audit")
