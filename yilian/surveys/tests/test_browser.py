"""A satisfaction survey's whole path in a real Chromium: a coordinator at Quzhou People's Hospital
prints an outpatient survey card; the patient scans it on a phone (no login, no JavaScript), taps
the answers and sends them; the link cannot be answered twice; the hospital's quality office sees
the answer counted and reads the comment. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMMENT = "骨科医生讲解很耐心，就是取药排队太久了，希望多开一个窗口。"


def show_this_month(page: Page, site: str) -> int:
    """Quality staff's dashboard of Quzhou People's Hospital for this month up to today; the count
    of responses it shows."""
    page.goto(f"{site}/")
    page.locator("#nav-satisfaction").click()
    expect(page.locator("#results-filters")).to_be_visible()
    page.locator("#id_institution").select_option("qzph")
    today = timezone.localdate()
    page.locator("#id_date_from").fill(today.replace(day=1).isoformat())
    page.locator("#id_date_to").fill(today.isoformat())
    page.locator("#results-filters button").click()
    expect(page).to_have_url(re.compile(rf"date_to={today.isoformat()}"))
    return int(page.locator("#stat-responses").inner_text().strip())


def test_a_patient_answers_on_a_phone_and_the_hospital_counts_it(
    page: Page, site: str, browser: Browser, browser_context_args: dict[str, Any]
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})

    # The quality office notes this month's responses before the visit.
    quality_context = browser.new_context(**browser_context_args, viewport={"width": 1280, "height": 900})
    quality = quality_context.new_page()
    log_in(quality, site, "quality")
    before = show_this_month(quality, site)

    # After the visit, the coordinator prints an outpatient survey card for orthopaedics.
    log_in(page, site, "coordinator")
    page.locator("#user-menu").click()
    page.locator("#menu-surveys").click()
    form = page.locator("#issue-form")
    expect(form).to_be_visible()
    form.locator("select[name=kind]").select_option("outpatient")
    form.locator("select[name=department]").select_option(label="骨科")
    form.locator("button[name=channel][value=qr]").click()
    card = page.locator("#survey-card")
    expect(card.locator(".qr svg")).to_be_visible()
    expect(card).to_contain_text("衢州市人民医院")
    expect(card).to_contain_text("骨科")
    shot(page, "survey-card")
    url = card.locator("[data-survey-url]").get_attribute("data-survey-url") or ""
    assert re.search(r"/q/[A-Za-z0-9_-]{20,}/$", url), url
    link = re.sub(r"^https?://[^/]+", site, url)

    # The patient scans the code: a phone, no login, no JavaScript.
    phone_context = browser.new_context(
        **browser_context_args,
        viewport={"width": 390, "height": 780},
        is_mobile=True,
        has_touch=True,
        java_script_enabled=False,
    )
    phone = phone_context.new_page()
    phone.goto(link)
    expect(phone.locator("#user-menu")).to_have_count(0)
    expect(phone.locator("h1")).to_contain_text("门诊")
    expect(phone.locator("body")).to_contain_text("骨科")
    # Nothing wider than the phone: no sideways scrolling, no word cut off.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    questions = phone.locator("#survey-form fieldset.q")
    assert questions.count() >= 8
    for index in range(questions.count()):
        question = questions.nth(index)
        if question.locator(".scale").count():
            question.locator(".scale label").nth(4 if index % 3 else 3).tap()  # mostly very satisfied
        elif question.locator(".choice").count():
            question.locator(".choice label").nth(1).tap()
        else:
            question.locator("textarea").fill(COMMENT)
    expect(phone.locator("input.pick:checked")).to_have_count(questions.count() - 1)
    shot(phone, "survey-answer-phone")
    phone.locator("#survey-submit").tap()
    expect(phone.locator("#survey-thanks")).to_be_visible()
    expect(phone.locator("h1")).to_contain_text("谢谢")
    shot(phone, "survey-thanks-phone")

    # The same link again: already answered, nothing about the answer or the hospital.
    response = phone.goto(link)
    assert response is not None and response.status == 409
    expect(phone.locator("#survey-unavailable")).to_have_attribute("data-reason", "used")
    expect(phone.locator("#survey-form")).to_have_count(0)
    expect(phone.locator("body")).not_to_contain_text("衢州市人民医院")
    shot(phone, "survey-used-phone")
    phone_context.close()

    # The quality office counts one more response and reads the comment.
    after = show_this_month(quality, site)
    assert after == before + 1
    comments = quality.locator("#results-comments")
    expect(comments).to_contain_text(COMMENT)
    # Opened afresh, the page compares around the start of the stationing programme the city
    # hospital hosts (batch 2, 2025-09-01): what a hospital manager looks at.
    quality.goto(f"{site}/surveys/results/")
    expect(quality.locator("#id_programme")).to_have_value("zju2-qzph-2")
    expect(quality.locator("#results-before-after")).to_contain_text("浙大二院派驻衢州市人民医院（第二批）")
    shot(quality, "survey-results")
    quality_context.close()


def test_the_consortium_office_edits_a_questionnaire_row_by_row(page: Page, site: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "office")
    page.locator("#user-menu").click()
    page.locator("#menu-surveys").click()
    page.locator("a.nav-link[href$='/surveys/questionnaires/']").click()
    page.locator("#questionnaire-table a[href$='/zju2-quzhou/outpatient/']").click()
    expect(page.locator("#version-list .list-group-item")).to_have_count(1)
    expect(page.locator("#item-table tbody tr")).not_to_have_count(0)
    form = page.locator("#publish-form")
    expect(form.locator(".item-row")).to_have_count(12)
    expect(page.locator("#item-2 textarea[name$='-zh']")).to_have_value("您对这次等候看病的时间满意吗？")

    # Reword a question, and add a single choice in the first empty row, asked after q3.
    page.locator("#item-2 textarea[name$='-zh']").fill("您对等候就诊的时间满意吗？")
    new = page.locator("#item-11")
    expect(new.locator("input[name$='-key']")).to_have_value("q11")
    new.locator("input[name$='-order']").fill("35")
    new.locator("select[name$='-type']").select_option("single")
    new.locator("select[name$='-dimension']").select_option("access")
    new.locator("textarea[name$='-zh']").fill("您是第几次来本院就诊？")
    new.locator("textarea[name$='-en']").fill("Is this your first visit here?")
    new.locator("input[name$='-required']").uncheck()
    page.locator("#publish-button").click()

    # A choice needs options: said on its row, and nothing typed is lost.
    expect(page.locator("#item-11 .row-error")).to_contain_text("选项")
    expect(page.locator("#item-2 textarea[name$='-zh']")).to_have_value("您对等候就诊的时间满意吗？")
    page.locator("#item-11 textarea[name$='-options']").fill("a | 第一次 | First time\nb | 复诊 | Follow-up")
    page.locator("#more-rows").click()
    expect(form.locator(".item-row")).to_have_count(15)
    expect(page.locator("#item-11 .row-error")).to_have_count(0)

    page.locator("#publish-button").click()
    # The consortium's first own version; the built-in one is left as it was.
    expect(page.locator(".alert-success")).to_be_visible()
    expect(page.locator(".page-subtitle")).not_to_contain_text("内置")
    expect(page.locator("#item-4 input[name$='-key']")).to_have_value("q11")
    expect(page.locator("#item-table")).to_contain_text("您是第几次来本院就诊？")
    expect(page.locator("#item-4 details.item-options")).to_have_attribute("open", "")
    # For integrators, the version as the API takes it, read-only.
    page.locator("#items-json summary").click()
    expect(page.locator("#items-json pre")).to_contain_text('"key": "q11"')
    shot(page, "survey-questionnaire")
