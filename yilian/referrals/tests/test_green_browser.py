"""The green channel in a real Chromium, with two people at once: the city coordinator's board is
open at Quzhou People's Hospital; the Changshan doctor activates a stroke case on her phone; the
board shows it without a reload, the coordinator accepts it there, and the doctor's case page
shows the acceptance without a reload. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from yilian.demo.seed import DEMO_PASSWORD
from yilian.referrals import green_services
from yilian.referrals.models import GreenProtocol
from yilian.registry.models import Consortium, Institution
from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE: ViewportSize = {"width": 390, "height": 844}
WALL: ViewportSize = {"width": 1440, "height": 900}


def log_in_on_phone(phone: Page, site: str, username: str) -> None:
    """As ``log_in``, but the menu with the user's name is folded away on a phone."""
    phone.goto(f"{site}/login/")
    phone.get_by_label("用户名").fill(username)
    phone.get_by_label("密码").fill(DEMO_PASSWORD)
    phone.get_by_role("button", name="登录").tap()
    expect(phone.locator(".navbar-toggler")).to_be_visible()


def test_a_stroke_case_reaches_the_city_board_live_and_the_acceptance_reaches_the_county_doctor(
    page: Page, site: str, browser: Browser, browser_context_args: dict[str, Any]
) -> None:
    neuro = Consortium.objects.get(code="quzhou-neuro")
    green_services.green_protocols_install_defaults(consortium=neuro)
    key = GreenProtocol.objects.get(consortium=neuro, code="stroke").public_id.hex
    qzph = Institution.objects.get(code="qzph")

    # The coordinator's board is open (a wall screen) and connected to the stream.
    page.set_viewport_size(WALL)
    log_in(page, site, "coordinator")
    page.locator("#nav-green").click()
    expect(page.locator("#g-live-state")).to_have_attribute("data-state", "live")
    page.evaluate("window.yilianStayed = true")  # gone if the page reloads or navigates

    # The Changshan doctor activates the case on her phone: stroke, last known well an hour ago,
    # NIHSS 14, CTA large-vessel occlusion, a man of about 66.
    phone_context = browser.new_context(**browser_context_args, viewport=PHONE, is_mobile=True, has_touch=True)
    doctor = phone_context.new_page()
    log_in_on_phone(doctor, site, "doctor")
    doctor.goto(f"{site}/referrals/green/new/")
    doctor.locator(f"label[for=p-{key}]").tap()
    expect(doctor.locator(f".g-proto-block[data-protocol='{key}']")).to_be_visible()
    doctor.locator("label[for=id_onset_ago_2]").tap()
    expect(doctor.locator("#id_onset_at")).not_to_have_value("")
    doctor.locator(f"#id_s_{key}_nihss").fill("14")
    doctor.locator(f"label[for=id_f_{key}_0]").tap()
    doctor.locator("label[for=id_sex_0]").tap()
    doctor.locator("#id_approximate_age").fill("66")
    doctor.locator("#id_imaging_result").fill("CTA：右侧大脑中动脉 M1 段闭塞")
    # The ranking follows the form: only the city hospital does thrombectomy, so it comes first.
    first = doctor.locator("#g-dest-list li.g-dest-first")
    expect(first).to_have_attribute("data-destination", "qzph")
    expect(first.locator(".g-leave-by").first).to_have_text(re.compile(r"^\d{2}:\d{2}$"))
    expect(doctor.locator("#g-windows [data-window=evt] .g-count")).to_have_text(re.compile(r"^\d:\d{2}:\d{2}$"))
    expect(doctor.locator("#g-send")).to_have_attribute("value", "qzph")
    expect(doctor.locator("#g-send")).to_contain_text(qzph.name_zh)
    assert doctor.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(doctor, "green-activate-phone")
    doctor.locator("#g-send").tap()
    expect(doctor).to_have_url(re.compile(r"/referrals/green/[0-9a-f-]{36}/$"))
    public_id = doctor.url.rstrip("/").rsplit("/", 1)[1]
    expect(doctor.locator("#g-case-state")).to_have_attribute("data-status", "sent")
    expect(doctor.locator("#g-live-state")).to_have_attribute("data-state", "live")
    doctor.evaluate("window.yilianStayed = true")

    # The board shows the case within two seconds, without a reload, and raises the alert.
    card = page.locator(f"#case-{public_id}")
    expect(card).to_be_visible(timeout=2000)
    assert page.evaluate("window.yilianStayed === true")
    expect(card).to_have_attribute("data-awaiting", "1")
    expect(card).to_contain_text(re.compile(r"NIHSS\D*14"))
    expect(page.locator("#g-board")).to_have_attribute("data-alerts", "1")
    expect(card.locator(".g-count").first).to_have_text(re.compile(r"\d{2}:\d{2}"))
    shot(page, "green-board")

    # One tap accepts; the doctor's page shows it at once, without a reload.
    card.locator("button[data-action=accept]").click()
    expect(card).not_to_have_attribute("data-awaiting", "1")
    expect(page.locator(f"#g-active #case-{public_id}")).to_be_visible()
    assert page.evaluate("window.yilianStayed === true")
    expect(doctor.locator("#g-case-state")).to_have_attribute("data-status", "accepted")
    expect(doctor.locator("#g-phase")).to_contain_text(qzph.name_zh)
    expect(doctor.locator("#g-patient")).to_contain_text("66")  # kept across the refresh, not read again
    assert doctor.evaluate("window.yilianStayed === true")

    # The ambulance leaves: one tap records door-out on the sender's side.
    doctor.locator("button[data-node=door_out]").tap()
    expect(doctor.locator("#node-door_out .g-node-time")).to_have_text(re.compile(r"^\d{2}:\d{2}$"))
    shot(doctor, "green-case")

    # Her own board on the phone lists the case as outgoing, accepted, and fits the screen.
    doctor.goto(f"{site}/referrals/green/")
    expect(doctor.locator(f"#g-active #case-{public_id}")).to_contain_text(qzph.name_zh)
    assert doctor.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone_context.close()
