"""The green channel's office pages in a real Chromium: the consortium office of the neurosurgery
alliance tightens the stroke door-to-needle target (a new protocol version), then reads a year of
Changshan's stroke transfers in the monthly report, with its charts. Screenshots go to
docs/screenshots/ (green-protocol, green-report)."""

from __future__ import annotations

import datetime as dt
import random
import re
import zoneinfo

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from yilian.patients.models import Sex
from yilian.referrals import green_services
from yilian.referrals.models import GreenProtocol
from yilian.referrals.tests.factories import neuro_office_create
from yilian.registry.models import Consortium, Institution, User
from yilian.web.tests.browsing import SCREENSHOTS, log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _month_add(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def a_year_of_stroke_transfers(protocol: GreenProtocol) -> int:
    """Changshan's stroke transfers to the city hospital over the last twelve months, door-in-door-out
    and door-to-needle getting shorter month by month (seeded, so the screenshot is stable in shape).
    About one case in seven is declined by the city hospital and goes to the next destination."""
    doctor, coordinator = User.objects.get(username="doctor"), User.objects.get(username="coordinator")
    csph, qzph = Institution.objects.get(code="csph"), Institution.objects.get(code="qzph")
    rng = random.Random(20190506)
    latest = timezone.now() - dt.timedelta(hours=8)
    first = _month_add(timezone.localdate().replace(day=1), -11)
    count = 0
    for step in range(12):
        month = _month_add(first, step)
        for _case in range(5 + rng.randrange(4)):
            at = dt.datetime(month.year, month.month, 1 + rng.randrange(27), rng.randrange(24), rng.randrange(60),
                             tzinfo=SHANGHAI)  # fmt: skip
            if at > latest:
                continue
            door_in = at - dt.timedelta(minutes=10 + rng.randrange(20))
            patient = green_services.PatientGiven(
                sex=rng.choice([Sex.MALE, Sex.FEMALE]), approximate_age=rng.randint(52, 86)
            )
            case = green_services.green_activate(
                actor=doctor,
                sender=csph,
                protocol=protocol,
                patient=patient,
                onset_at=door_in - dt.timedelta(minutes=30 + rng.randrange(120)),
                door_in_at=door_in,
                destination=qzph,
                findings=["lvo"] if rng.random() < 0.4 else [],
                now=at,
            )
            count += 1
            imaging = door_in + dt.timedelta(minutes=max(8, round(rng.gauss(30 - step, 6))))
            door_out = door_in + dt.timedelta(minutes=max(25, round(rng.gauss(118 - 5 * step, 22))))
            for node, when in (("imaging", imaging), ("door_out", door_out)):
                green_services.green_node_record(actor=doctor, case=case, node=node, at=when, now=when)
            answer = at + dt.timedelta(minutes=1 + rng.randrange(4))
            if rng.random() < 0.15:
                green_services.green_decline(actor=coordinator, case=case, reason="导管室占用", now=answer)
                continue
            green_services.green_accept(actor=coordinator, case=case, now=answer)
            arrival = door_out + dt.timedelta(minutes=30 + rng.randrange(25))
            needle = arrival + dt.timedelta(minutes=max(15, round(rng.gauss(72 - 2.5 * step, 14))))
            for node, when in (("arrival", arrival), ("needle", needle)):
                green_services.green_node_record(actor=coordinator, case=case, node=node, at=when, now=when)
    return count


def test_office_tightens_a_target_and_reads_the_monthly_report(page: Page, site: str) -> None:
    neuro = Consortium.objects.get(code="quzhou-neuro")
    green_services.green_protocols_install_defaults(consortium=neuro)
    stroke = GreenProtocol.objects.get(consortium=neuro, code="stroke")
    neuro_office_create()
    assert a_year_of_stroke_transfers(stroke) > 40
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "neuro_office")

    # The office edits the stroke protocol: door-to-needle 60 -> 45 minutes, with the reason.
    page.goto(f"{site}/referrals/green/protocols/")
    card = page.locator(f"#protocol-{stroke.public_id}")
    expect(card.locator(".protocol-version")).to_contain_text("1")
    card.locator(".protocol-edit").click()
    page.locator("input[name=metric_door_to_needle_target]").fill("45")
    page.locator("textarea[name=note]").fill("溶栓 DNT 目标由 60 分钟收紧至 45 分钟（中心质控会议决定）")
    page.locator("#protocol-save").click()
    expect(page.locator(".alert-success")).to_be_visible()
    card = page.locator(f"#protocol-{stroke.public_id}")
    expect(card.locator(".protocol-version")).to_contain_text("2")
    expect(card.locator(".protocol-metrics")).to_contain_text("≤ 45")
    expect(card.locator(".protocol-history-row")).to_have_count(2)
    expect(card.locator(".protocol-history")).to_contain_text("中心质控会议决定")
    card.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    card.screenshot(path=str(SCREENSHOTS / "green-protocol.png"))

    # The monthly report for Changshan's stroke transfers, the last twelve months by default.
    page.locator("#green-nav").get_by_role("link", name=re.compile("月报|Monthly report")).click()
    page.locator("#id_institution").select_option("csph")
    page.locator("#id_protocol").select_option("stroke")
    page.locator("#report-filters button").click()
    expect(page).to_have_url(re.compile(r"institution=csph"))
    section = page.locator("section.report-section[data-institution=csph][data-protocol=stroke]")
    expect(section).to_be_visible()
    expect(section.locator("tr[data-month]")).to_have_count(12)
    expect(section.locator(".report-total .cases")).not_to_have_text("0")
    # ECharts draws both charts; the office switches them to door-to-needle.
    expect(page.locator("body[data-green-charts='1']")).to_have_count(1)
    expect(section.locator(".green-trend canvas")).to_have_count(1)
    expect(section.locator(".green-distribution canvas")).to_have_count(1)
    section.locator("[data-metric=door_to_needle]").first.click()
    expect(section.locator("[data-green-chart]")).to_have_attribute("data-shown", "door_to_needle")
    expect(page).to_have_url(re.compile(r"metric=door_to_needle"))
    shot(page, "green-report")

    with page.expect_download() as download:
        page.locator("#report-export").click()
    assert download.value.suggested_filename.endswith(".xlsx")
