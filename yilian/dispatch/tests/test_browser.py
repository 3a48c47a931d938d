"""Expert stationing in a real Chromium, on the demo: the consortium office of the Second Affiliated
Hospital opens the Quzhou programme, optimises the roster of the next four weeks, reads the result
and fixes a day by hand; then the neurosurgeon 陈志远 (``expert``), on his phone, checks in at the
city hospital, logs the day's work with an operation, and finds it on his assignment page. The
office reads the attendance report. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from yilian.demo.seed import DEMO_PASSWORD
from yilian.dispatch import selectors
from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROGRAMME = "zju2-qzph-2"
PROCEDURE = "幕上深部血肿清除术"


def test_the_office_plans_the_roster_and_the_expert_checks_in_and_logs_on_a_phone(
    page: Page, site: str, browser: Browser, browser_context_args: dict[str, Any], settings: Any
) -> None:
    settings.YILIAN_ROSTER_TIME_LIMIT = 5
    today = timezone.localdate()
    next_monday = selectors.monday(today) + dt.timedelta(days=7)

    # The office opens the programme from the stationing list.
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "office")
    page.locator("#nav-stationing").click()
    shot(page, "stationing-list")
    page.locator(f"tr[data-programme='{PROGRAMME}'] a").first.click()
    header = page.locator("#programme-header")
    expect(header).to_contain_text("衢州市人民医院")
    expect(page.locator("#people")).to_contain_text("陈志远")
    expect(page.locator("#work-done")).to_be_visible()
    shot(page, "stationing-programme")

    # The roster: optimise four weeks from next Monday (the form's defaults).
    page.locator("#open-roster").click()
    form = page.locator("#optimise-form")
    expect(form.locator("input[name=start]")).to_have_value(next_monday.isoformat())
    expect(form.locator("input[name=weeks]")).to_have_value("4")
    form.locator("#optimise-submit").click()
    expect(page.locator("#roster-run")).to_be_visible(timeout=60_000)
    planned_month = (next_monday + dt.timedelta(days=14)).replace(day=1)
    expect(page).to_have_url(re.compile(rf"view=month&start={planned_month.isoformat()}"))
    expect(page.locator("#roster-period")).to_have_text(planned_month.strftime("%Y-%m"))
    expect(page.locator("#run-status")).to_have_attribute("data-status", re.compile(r"^(optimal|feasible)$"))
    expect(page.locator("#run-status")).to_have_text(re.compile(r"最优|可行"))
    chen = page.locator("#roster-grid tr[data-assignment]", has_text="陈志远")
    expect(chen.locator("td.rc-on").first).to_be_visible()
    # Never on his home-clinic Tuesdays.
    expect(chen.locator("td.rc-blocked.rc-on")).to_have_count(0)

    # Fix by hand a free working day of his after today: the panel opens beside the grid.
    candidates = chen.locator("td.rc:not(.rc-blocked):not(.rc-leave):not(.rc-holiday):not(.rc-inactive)")
    day = next(
        d
        for d in (candidates.nth(i).get_attribute("data-date") or "" for i in range(candidates.count()))
        if d > today.isoformat()
    )
    chen.locator(f"td[data-date='{day}'] a.rc-link").click()
    panel = page.locator("#fix-panel")
    expect(panel).to_contain_text("陈志远")
    expect(panel).to_contain_text(day)
    panel.locator("#fix-on-site").click()
    fixed = page.locator("#roster-grid tr[data-assignment]", has_text="陈志远").locator(f"td[data-date='{day}']")
    expect(fixed).to_have_attribute("data-fixed", "1")
    expect(fixed).to_have_class(re.compile(r"\brc-on\b"))
    expect(fixed.locator(".bi-pin-angle-fill")).to_be_visible()
    shot(page, "stationing-roster")

    # The office reads the attendance report of the last six months.
    page.goto(f"{site}/stationing/{PROGRAMME}/attendance/")
    expect(page.locator("#attendance-table")).to_contain_text("陈志远")
    shot(page, "stationing-attendance")
    # ... his assignment page, and the shared working calendar of next year (read only for an office).
    page.locator("#attendance-table a", has_text="陈志远").first.click()
    expect(page.locator("#assignment-grid")).to_be_visible()
    shot(page, "stationing-assignment")
    page.goto(f"{site}/stationing/calendar/?year={today.year + 1}")
    expect(page.locator("#calendar-admin-only")).to_be_visible()
    shot(page, "stationing-calendar")

    # The expert, on his phone: my week, check in, log the day.
    phone_context = browser.new_context(
        **browser_context_args, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    phone = phone_context.new_page()
    log_in_on_phone(phone, site)
    phone.goto(f"{site}/stationing/my-week/")
    card = phone.locator("[data-today]").first
    expect(card).to_contain_text("衢州市人民医院")
    expect(card).to_contain_text("神经外科")
    expect(phone.locator(f"li.week-day[data-date='{today.isoformat()}']")).to_have_class(re.compile("is-today"))
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.locator("#check-in").tap()
    status = phone.locator("#check-in-status")
    expect(status).to_be_visible(timeout=15_000)
    expect(status).to_contain_text(re.compile(r"\d{2}:\d{2}"))
    expect(phone.locator("#check-in")).to_have_count(0)
    shot(phone, "stationing-my-week")

    phone.locator("#log-today").tap()
    expect(phone.locator("#work-log-form")).to_be_visible()
    phone.locator("#id_outpatient_sessions").fill("1")
    phone.locator("#id_patients_seen").fill("18")
    phone.locator("#id_ward_rounds").fill("1")
    phone.locator("button.step[data-for=id_teaching_sessions][data-step='1']").tap()  # the + button
    expect(phone.locator("#id_teaching_sessions")).to_have_value("1")
    row = phone.locator("#op-row-0")
    row.locator("input[name=op-0-procedure]").fill(PROCEDURE)
    row.locator("select[name=op-0-level]").select_option("3")
    row.locator("select[name=op-0-role]").select_option("assistant")
    row.locator("input[name=op-0-local_surgeon_name]").fill("周建华")
    phone.locator("#id_note").fill("带教住院医师完成血肿清除，术后查房。")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "stationing-work-log")
    phone.locator("#save-log").tap()
    log = phone.locator(f"#log-{today.isoformat()}")
    expect(log).to_contain_text(PROCEDURE)
    expect(log).to_contain_text("周建华")
    expect(phone).to_have_url(re.compile(r"/stationing/assignments/[0-9a-f-]+/#log-"))
    phone_context.close()


def log_in_on_phone(phone: Page, site: str) -> None:
    """As ``log_in``, but the menu with the user's name is folded away on a phone."""
    phone.goto(f"{site}/login/")
    phone.get_by_label("用户名").fill("expert")
    phone.get_by_label("密码").fill(DEMO_PASSWORD)
    phone.get_by_role("button", name="登录").tap()
    expect(phone.locator(".navbar-toggler")).to_be_visible()
