"""A referral's whole loop in a real Chromium: the county doctor refers a stroke patient up,
the city coordinator receives, accepts and schedules it, the patient arrives, the outcome goes
back and the county doctor reads it and closes the loop. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect
from stdnum.cn import ric

from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_action(page: Page, action: str) -> None:
    page.locator(f"summary[data-action={action}]").click()


def test_county_doctor_refers_up_and_sees_the_outcome(
    page: Page, site: str, browser: Browser, browser_context_args: dict[str, Any]
) -> None:
    body = "33082219580315321"
    id_number = body + ric.calc_check_digit(body + "0")  # the function skips the last character
    page.set_viewport_size({"width": 1280, "height": 900})

    # The county doctor fills in the referral and sends it.
    log_in(page, site, "doctor")
    page.get_by_role("link", name="转诊", exact=True).click()
    page.locator("#new-referral").click()
    page.get_by_label("患者姓名").fill("陈福生")
    page.get_by_label("居民身份证号").fill(id_number)
    page.get_by_label("联系电话", exact=True).fill("13905701234")
    page.locator("input[name=urgency][value=urgent]").check()
    page.get_by_label("转往").select_option("inst:qzph:quzhou-neuro")
    page.get_by_label("服务需求").select_option("admission")
    page.get_by_label("ICD-10 编码").fill("I63.9")
    page.get_by_label("初步诊断").fill("急性脑梗死")
    page.get_by_label("转诊原因").fill("晨练时突发左侧肢体无力，CTA 提示大血管闭塞，需机械取栓")
    page.get_by_label("过敏史").fill("青霉素")
    page.get_by_label("知情同意方式").select_option("written")
    shot(page, "referral-create")
    page.locator("#send-referral").click()
    expect(page.locator(".page-title")).to_contain_text("已发送")
    number = page.locator(".page-title .font-monospace").inner_text().strip()
    expect(page.locator("#patient-card")).to_contain_text(id_number)

    # The city coordinator sees it on the incoming board, opens it (received) and accepts.
    other = browser.new_context(**browser_context_args)
    coordinator = other.new_page()
    coordinator.set_viewport_size({"width": 1280, "height": 900})
    log_in(coordinator, site, "coordinator")
    expect(coordinator.locator("#unread-count")).to_be_visible()
    coordinator.get_by_role("link", name="转诊", exact=True).click()
    row = coordinator.locator("#referral-table tbody tr", has_text=number)
    expect(row).to_contain_text("已发送")
    expect(row).to_contain_text("3308**********")
    expect(row).not_to_contain_text(id_number)
    shot(coordinator, "referral-board")
    row.get_by_role("link", name=number).click()
    expect(coordinator.locator(".page-title")).to_contain_text("已接收")
    coordinator.locator("button[data-action=accept]").click()
    expect(coordinator.locator(".page-title")).to_contain_text("已接受")

    # Schedules an appointment for tomorrow morning, then the patient arrives.
    open_action(coordinator, "schedule")
    tomorrow = timezone.localtime() + dt.timedelta(days=1)
    coordinator.locator("#form-schedule input[name=scheduled_at]").fill(tomorrow.strftime("%Y-%m-%dT09:30"))
    coordinator.locator("#form-schedule input[name=place]").fill("门诊楼三楼神经外科诊室")
    coordinator.locator("#form-schedule textarea[name=instructions]").fill("请空腹，携带身份证和CT片")
    coordinator.locator("#form-schedule button[type=submit]").click()
    expect(coordinator.locator("#appointment")).to_contain_text("门诊楼三楼神经外科诊室")

    # The patient's status page from the slip's QR code shows the appointment and nothing medical.
    slip = other.new_page()
    slip.goto(coordinator.url + "slip/")
    expect(slip.locator(".qr svg")).to_be_visible()
    shot(slip, "referral-slip")
    expect(slip.locator("body")).to_contain_text("门诊楼三楼神经外科诊室")
    patient_phone = browser.new_context(**browser_context_args, viewport={"width": 390, "height": 780})
    status_page = patient_phone.new_page()
    status_page.goto(_status_url(coordinator, site))
    expect(status_page.locator("#patient-status")).to_contain_text("已预约")
    expect(status_page.locator("#patient-appointment")).to_contain_text("09:30")
    expect(status_page.locator("body")).not_to_contain_text("脑梗死")
    expect(status_page.locator("body")).not_to_contain_text("陈福生")
    shot(status_page, "referral-status-phone")

    coordinator.locator("button[data-action=check_in]").click()
    expect(coordinator.locator(".page-title")).to_contain_text("已到院")
    open_action(coordinator, "return_outcome")
    form = coordinator.locator("#form-return_outcome")
    form.locator("input[name=diagnosis]").fill("右侧大脑中动脉闭塞，急性脑梗死")
    form.locator("textarea[name=treatment]").fill("机械取栓术，TICI 3 级再通")
    form.locator("textarea[name=result]").fill("术后第5天左侧肢体肌力4级，言语清楚")
    form.locator("select[name=refer_back]").select_option("yes")
    form.locator("input[name=refer_back_on]").fill((timezone.localdate() + dt.timedelta(days=10)).isoformat())
    form.locator("button[type=submit]").click()
    expect(coordinator.locator("#outcome")).to_contain_text("TICI 3")
    shot(coordinator, "referral-detail")

    # Back home, the county doctor is told, reads the outcome and closes the loop.
    page.goto(f"{site}/notifications/")
    expect(page.locator("#notification-list")).to_contain_text(number)
    shot(page, "notifications")
    page.locator("#notification-list button", has_text="结果已回传").first.click()
    expect(page.locator("#outcome")).to_contain_text("TICI 3 级再通")
    page.locator("button[data-action=acknowledge]").click()
    expect(page.locator(".page-title")).to_contain_text("已闭环")
    expect(page.locator("#timeline")).to_contain_text("赵磊")
    expect(page.locator("#timeline .timeline-item")).to_have_count(8)
    other.close()
    patient_phone.close()


def test_the_hospital_admin_adds_a_group_robot_webhook(page: Page, site: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "hospadmin")
    page.locator("#user-menu").click()
    page.get_by_role("link", name="Webhook").click()
    page.get_by_label("机构").select_option("qzph")
    page.get_by_label("群名称").fill("神经外科值班群")
    page.get_by_label("网址").fill("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=demo-key")
    page.get_by_role("button", name="添加").click()
    expect(page.locator("#webhook-table")).to_contain_text("神经外科值班群")
    shot(page, "webhooks")


def test_a_draft_saved_without_consent_is_completed_and_sent(page: Page, site: str) -> None:
    """The doctor saves the referral before the family has agreed, completes it later and sends it."""
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "doctor")
    page.goto(f"{site}/referrals/new/")
    page.get_by_label("患者姓名").fill("无名氏")
    page.get_by_label("估计年龄").fill("70")
    page.get_by_label("转往").select_option("inst:qzph:quzhou-neuro")
    page.get_by_label("服务需求").select_option("outpatient")
    page.get_by_label("ICD-10 编码").fill("I63.9")
    page.get_by_label("初步诊断").fill("脑梗死")
    page.get_by_label("转诊原因").fill("言语不清一周，请神经外科会诊评估")
    page.get_by_role("button", name="保存草稿").click()
    expect(page.locator(".page-title")).to_contain_text("草稿")

    page.locator("#edit-draft").click()
    page.get_by_label("ICD-10 编码").fill("I61.0")
    page.get_by_label("初步诊断").fill("基底节区脑出血")
    page.get_by_label("知情同意获取人").fill("王建国")
    page.get_by_label("知情同意方式").select_option("verbal")
    page.get_by_label("同意时间").fill(timezone.localtime().strftime("%Y-%m-%dT%H:%M"))
    shot(page, "referral-edit-draft")
    page.locator("#save-draft").click()
    expect(page.locator("body")).to_contain_text("I61.0")
    expect(page.locator(".page-title")).to_contain_text("草稿")
    page.locator("summary[data-action=send]").click()
    page.locator("#form-send button[type=submit]").click()
    expect(page.locator(".page-title")).to_contain_text("已发送")
    expect(page.locator("#edit-draft")).to_have_count(0)


def _status_url(page: Page, site: str) -> str:
    """The status link is only on the slip's QR code; read it from the referral's slip page."""
    slip = page.context.new_page()
    slip.goto(page.url + "slip/")
    url = slip.locator("[data-status-url]").get_attribute("data-status-url") or ""
    slip.close()
    return re.sub(r"^https?://[^/]+", site, url)
