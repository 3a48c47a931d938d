"""An eConsult in a real Chromium, on the demo: the Kaihua neurologist (``kaihua``) asks the
neurosurgeon 陈志远 (``expert``) about a patient with a frontal mass; he accepts and answers on his
phone; she reads the answer, closes it with the close-out and prints the report. The
teleconsultation centre (``telecentre``) plans an MDT meeting at a suggested free time and finds
it in the week's calendar. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from yilian.registry.models import Practitioner
from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE: ViewportSize = {"width": 390, "height": 844}


def test_a_county_doctor_asks_an_econsult_the_expert_answers_on_his_phone_and_she_closes_it(
    page: Page, site: str, browser: Browser, browser_context_args: dict[str, Any]
) -> None:
    chen = Practitioner.objects.get(user__username="expert")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The county doctor writes the request.
    log_in(page, site, "kaihua")
    page.locator("#nav-consults").click()
    page.locator("#new-consult").click()
    form = page.locator("#consult-form")
    expect(form.locator("#reading-type-field")).to_be_hidden()  # only for an urgent reading
    form.locator("select[name=to_institution]").select_option("zju2")
    form.locator("select[name=discipline]").select_option("neurosurgery")
    form.locator("select[name=wanted_title]").select_option("chief_physician")
    form.locator("select[name=named_expert]").select_option(str(chen.public_id))
    form.locator("input[name=name]").fill("周建明")
    form.locator("select[name=sex]").select_option("male")
    form.locator("input[name=approximate_age]").fill("63")
    form.locator("select[name=consent_method]").select_option("written")
    form.locator("textarea[name=reason]").fill("头痛伴呕吐两周，CT 示右额叶占位")
    form.locator("textarea[name=purpose]").fill("明确是否需要手术及手术时机")
    form.locator("textarea[name=question]").fill("右额叶占位是否建议手术？能否在县医院先行脱水治疗？")
    form.locator("input[name=diagnosis_code]").fill("D43.0")
    form.locator("input[name=diagnosis_name]").fill("右额叶占位性病变")
    form.locator("textarea[name=investigations]").fill("头颅CT：右额叶 3.5cm 类圆形占位，周围水肿明显")
    shot(page, "consult-new")
    page.locator("#send-consult").click()
    expect(page.locator("#responsibility")).to_contain_text("徐春华")
    number = page.locator("#consult-number").inner_text().strip()

    # The expert, on his phone, finds it in his queue (the name masked), accepts and answers.
    other = browser.new_context(**browser_context_args)
    phone = other.new_page()
    log_in(phone, site, "expert")  # the menu is folded on a phone: log in wide, then narrow
    phone.set_viewport_size(PHONE)
    phone.goto(f"{site}/consults/?box=for_me")
    row = phone.locator("#consult-table tbody tr", has_text=number)
    expect(row).to_contain_text("周**")
    expect(row).not_to_contain_text("周建明")
    shot(phone, "consult-queue")
    row.get_by_role("link", name=number).click()
    expect(phone.locator("#patient-card")).to_contain_text("周建明")
    phone.locator("button[data-action=accept]").click()
    phone.locator("summary[data-action=answer]").click()
    phone.locator("#form-answer textarea[name=answer]").fill("影像符合脑膜瘤可能，建议转我院神经外科择期手术切除。")
    phone.locator("#form-answer textarea[name=recommendations]").fill(
        "继续甘露醇脱水，监测瞳孔与意识；术前完善头颅增强MRI。"
    )
    phone.locator("#form-answer button[type=submit]").click()
    expect(phone.locator("#conclusion")).to_contain_text("脑膜瘤")
    shot(phone, "consult-answered-phone")

    # The requester reads the answer and closes with the close-out.
    page.reload()
    expect(page.locator("#conclusion")).to_contain_text("脑膜瘤")
    shot(page, "consult-answered")
    page.locator("summary[data-action=close]").click()
    close = page.locator("#form-close")
    close.locator("input[name=referral_avoided][value=no]").check()
    close.locator("input[name=management_changed][value=yes]").check()
    close.locator("input[name=value_rating][value='5']").check()
    close.locator("textarea[name=comment]").fill("明确了手术指征")
    close.locator("button[type=submit]").click()
    expect(page.locator("#closeout")).to_contain_text("明确了手术指征")
    expect(page.locator("#actions")).not_to_contain_text("确认")

    # The printable report.
    with page.expect_popup() as popup:
        page.locator("#open-report").click()
    report = popup.value
    expect(report.locator("#report-conclusion")).to_contain_text("脑膜瘤")
    expect(report.locator("#report-responsibility")).to_contain_text("徐春华")
    shot(report, "consult-report")
    other.close()

    # Her own list: the consult closed.
    page.locator("#nav-consults").click()
    expect(
        page.locator("#consult-table tbody tr", has_text=number).locator("td.d-md-table-cell .cs-closed")
    ).to_be_visible()
    shot(page, "consult-queue-asked")


def test_the_teleconsultation_centre_plans_an_mdt_meeting_at_a_suggested_free_time(page: Page, site: str) -> None:
    chen = Practitioner.objects.get(user__username="expert")
    helpers = Practitioner.objects.filter(user__username__in=["pathologist", "radiologist"])
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "telecentre")
    page.goto(f"{site}/consults/meetings/")
    page.locator("#new-meeting").click()
    form = page.locator("#meeting-form")
    form.locator("input[name=title]").fill("神经肿瘤多学科讨论")
    form.locator("select[name=chair]").select_option(str(chen.public_id))
    for person in helpers:
        form.locator(f"input[name=experts][value='{person.public_id}']").check()
    form.locator("#suggest").click()
    first = page.locator("#slot-list a.slot").first
    expect(first).to_be_visible()
    first.click()
    expect(form.locator("input[name=date]")).to_have_value(re.compile(r"\d{4}-\d\d-\d\d"))
    form.locator("input[name=meeting_url]").fill("https://meeting.tencent.com/dm/yilian-mdt")
    shot(page, "consult-meeting-new")
    page.locator("#create-meeting").click()
    expect(page.locator("#participants")).to_contain_text("蒋文博")
    expect(page.locator("#meeting-actions")).to_be_visible()
    shot(page, "consult-meeting")

    # The week's calendar shows it.
    page.locator(".breadcrumb a", has_text=re.compile(".")).nth(1).click()
    expect(page.locator("#week [data-meeting]").first).to_contain_text("神经肿瘤多学科讨论")
    shot(page, "consult-calendar")


def test_a_requester_sees_an_mdt_agenda_with_other_hospitals_cases_hidden_and_the_office_reads_the_figures(
    page: Page, site: str
) -> None:
    from yilian.consults import selectors
    from yilian.consults.models import Meeting
    from yilian.registry.models import User

    # A demo meeting with one of Kaihua's cases and another hospital's on its agenda.
    kaihua = User.objects.get(username="kaihua")
    his = set(selectors.consult_queryset_visible_to(kaihua).values_list("pk", flat=True))
    meeting = next(
        m
        for m in Meeting.objects.order_by("-starts_at").prefetch_related("cases")
        if {c.pk for c in m.cases.all()} & his and {c.pk for c in m.cases.all()} - his
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "kaihua")
    page.goto(f"{site}/consults/meetings/{meeting.public_id}/")
    agenda = page.locator("#agenda")
    expect(agenda.locator("a.font-monospace").first).to_be_visible()  # his own case opens
    expect(agenda).to_contain_text("其他患者的病例")  # the others by number and status only
    shot(page, "consult-meeting-agenda")

    page.context.clear_cookies()
    log_in(page, site, "office")
    page.goto(f"{site}/consults/figures/")
    expect(page.locator("#figures-table")).to_contain_text("开化县人民医院")
    shot(page, "consult-figures")
