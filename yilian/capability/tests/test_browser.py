"""Capability building in a real Chromium, on the demo: the stationed neurosurgeon 陈志远 (``expert``)
records a teaching ward round at Quzhou People's Hospital and starts the QR sign-in; 徐春华
(``kaihua``), on her own phone, opens the code's address, logs in, signs in and sees the hours
credited; back on the organiser's screen she appears among the attendees and a new code is shown.
Then the pages people look at most are photographed for docs/screenshots/: a technique ledger, the
regional firsts and one first, and a mentee's progress."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from yilian.capability import services
from yilian.capability.models import LocalRole, Mentee, Stage, TeachingKind, Transfer
from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD
from yilian.dispatch.tests import factories as f
from yilian.registry.models import Discipline, Practitioner, ProfessionalTitle, Region, User
from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOPIC = "教学查房：高血压脑出血的手术指征"


def test_the_organiser_runs_a_qr_sign_in_and_an_attendee_signs_in_on_her_phone(
    page: Page, site: str, browser: Browser, browser_context_args: dict[str, Any]
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "expert")
    page.locator("#nav-capability").click()
    expect(page.locator("#capability-overview")).to_be_visible()
    page.locator("#capability-tabs a[href='/capability/teaching/']").click()

    # Record the session through the form: the leader and the times default to him and to now.
    page.locator("#teaching-new").click()
    form = page.locator("#teaching-form")
    form.locator("#id_kind").select_option(TeachingKind.WARD_ROUND.value)
    form.locator("#id_topic").fill(TOPIC)
    form.locator("input[name=institutions][value=qzph]").check()
    form.locator("#id_place").fill("神经外科示教室")
    form.locator("#id_other_attendees").fill("6")
    form.locator("#teaching-save").click()
    expect(page.locator("#teaching-header")).to_contain_text(TOPIC)

    # Start the sign-in: a QR code, and its address next to it.
    page.locator("#sign-in-start").click()
    qr = page.locator("#sign-in-qr")
    expect(qr.locator("svg")).to_be_visible()
    url = qr.get_attribute("data-code-url") or ""
    assert re.search(r"/capability/teaching/[0-9a-f-]+/sign-in/\?code=", url), url
    shot(page, "capability-teaching-qr")

    # The attendee's phone: the address asks her to log in first, then brings her back.
    phone_context = browser.new_context(
        **browser_context_args, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    phone = phone_context.new_page()
    phone.goto(url)
    expect(phone).to_have_url(re.compile(r"/login/"))
    phone.get_by_label("用户名").fill("kaihua")
    phone.get_by_label("密码").fill(DEMO_PASSWORD)
    phone.get_by_role("button", name="登录").tap()
    expect(phone.locator("#sign-in-card")).to_contain_text(TOPIC)
    phone.locator("#sign-in-submit").tap()
    done = phone.locator("#sign-in-done")
    expect(done).to_be_visible()
    expect(done).to_contain_text("1")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "capability-sign-in-phone")
    phone_context.close()

    # Back on the organiser's screen: the panel refreshes by itself.
    expect(page.locator("#attendees")).to_contain_text("徐春华", timeout=15_000)
    expect(page.locator("#sign-in-qr")).not_to_have_attribute("data-code-url", url, timeout=15_000)
    expect(page.locator("#sign-in-qr svg")).to_be_visible()
    shot(page, "capability-teaching")


def _surgeon(name: str) -> Practitioner:
    found = Practitioner.objects.filter(institution__code="qzph", name_zh=name).first()
    return found or f.practitioner_create(institution_code="qzph", name_zh=name)


def _story(hospadmin: User) -> tuple[Transfer, Any, Mentee, User]:
    """A ledger with every stage reached, a claimed first, and a mentee with assessments."""
    admin = User.objects.get(username="admin")
    today = timezone.localdate()
    technique = services.technique_create(
        actor=admin,
        code="bt-endoscopic-skull-base",
        name_zh="神经内镜经鼻颅底肿瘤切除术",
        name_en="Endoscopic endonasal skull-base tumour resection",
        operation_code="07.6",
        level=4,
        restricted=False,
        discipline=Discipline.NEUROSURGERY,
    )
    expert = Practitioner.objects.get(user__username="expert")
    transfer = services.transfer_open(
        actor=hospadmin, department=f.department("qzph"), technique=technique, expert=expert
    )
    zhou, li = _surgeon("周建华"), _surgeon("李明轩")
    plan = [
        (200, LocalRole.NONE, None),
        (170, LocalRole.ASSISTED, zhou),
        (150, LocalRole.ASSISTED, li),
        (120, LocalRole.SUPERVISED, zhou),
        (90, LocalRole.SUPERVISED, zhou),
        (40, LocalRole.INDEPENDENT, zhou),
        (20, LocalRole.INDEPENDENT, zhou),
    ]
    cases = [
        services.transfer_case_add(
            actor=hospadmin,
            transfer=transfer,
            performed_on=today - dt.timedelta(days=ago),
            local_role=role,
            local_surgeon=surgeon,
        )
        for ago, role, surgeon in plan
    ]
    services.privilege_grant(
        actor=hospadmin, practitioner=zhou, technique=technique, granted_on=today - dt.timedelta(days=60)
    )
    for case in (cases[0], cases[1], cases[2], cases[3], cases[5]):
        services.transfer_advance(actor=hospadmin, transfer=transfer, evidence=case)
    claim = services.first_claim(
        actor=hospadmin,
        technique=technique,
        institution=f.institution("qzph"),
        performed_on=today - dt.timedelta(days=200),
        region=Region.objects.get(code="330800"),
        description="衢州市首例神经内镜经鼻颅底肿瘤切除术。",
        case=cases[0],
    )
    services.first_claim(
        actor=hospadmin,
        technique=technique,
        institution=f.institution("qzph"),
        performed_on=today - dt.timedelta(days=150),
        macro_region="east",
    )
    mentor_account = f.user_with_role(Role.DOCTOR, institution_code="qzph", display_name="导师")
    mentor = f.practitioner_create(
        institution_code="qzph", name_zh="郑国强", account=mentor_account, title=ProfessionalTitle.CHIEF_PHYSICIAN
    )
    programme = services.training_create(
        actor=hospadmin,
        kind="backbone",
        name_zh="神经外科青年骨干培育",
        name_en="Neurosurgery backbone training",
        institution=f.institution("qzph"),
        mentor=mentor,
        starts_on=today - dt.timedelta(days=240),
    )
    m1 = services.milestone_add(actor=hospadmin, programme=programme, title_zh="掌握颅底解剖", due_months=2)
    m2 = services.milestone_add(
        actor=hospadmin,
        programme=programme,
        title_zh="在指导下完成内镜颅底手术",
        due_months=5,
        technique=technique,
        stage=Stage.SUPERVISED,
    )
    services.milestone_add(
        actor=hospadmin,
        programme=programme,
        title_zh="独立完成内镜颅底手术",
        due_months=7,
        technique=technique,
        stage=Stage.INDEPENDENT,
    )
    services.milestone_add(actor=hospadmin, programme=programme, title_zh="主持一次病例讨论", due_months=12)
    mentee = services.mentee_add(
        actor=hospadmin, programme=programme, practitioner=zhou, joined_on=today - dt.timedelta(days=230)
    )
    a1 = services.assessment_record(
        actor=mentor_account,
        mentee=mentee,
        milestone=m1,
        assessed_on=today - dt.timedelta(days=180),
        result="passed",
        score=88,
    )
    services.assessment_sign_off(actor=mentor_account, assessment=a1)
    services.assessment_record(
        actor=mentor_account,
        mentee=mentee,
        milestone=m2,
        assessed_on=today - dt.timedelta(days=100),
        result="passed",
        score=92,
        comment="独立完成入路，肿瘤切除在指导下完成。",
    )
    lecture = services.teaching_create(
        actor=hospadmin,
        kind=TeachingKind.SURGERY_DEMONSTRATION,
        topic="内镜经鼻入路手术演示",
        starts_at=timezone.now() - dt.timedelta(days=30),
        ends_at=timezone.now() - dt.timedelta(days=30) + dt.timedelta(hours=2),
        leader=expert,
        institutions=[f.institution("qzph")],
    )
    services.attendance_record(actor=hospadmin, activity=lecture, practitioner=zhou)
    return transfer, claim, mentee, mentor_account


def test_screenshots_of_the_ledger_the_firsts_and_a_mentees_progress(page: Page, site: str) -> None:
    hospadmin = User.objects.get(username="hospadmin")
    transfer, claim, mentee, mentor_account = _story(hospadmin)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "hospadmin")

    page.goto(f"{site}/capability/ledger/{transfer.public_id}/")
    expect(page.locator("#stages [data-stage=independent]")).to_contain_text("周建华")
    expect(page.locator("#surgeons")).to_contain_text("李明轩")
    shot(page, "capability-ledger")
    # A refusal is shown in the page: 周建华 already reached this stage.
    page.locator("#cases tr[data-case] button.advance").first.click()
    expect(page.locator("#advance-error")).to_be_visible()

    page.goto(f"{site}/capability/ledger/")
    expect(page.locator("#ledgers")).to_contain_text("神经内镜经鼻颅底肿瘤切除术")
    shot(page, "capability-ledger-list")

    page.goto(f"{site}/capability/firsts/")
    expect(page.locator(f"#firsts tr[data-first='{claim.public_id}']")).to_be_visible()
    shot(page, "capability-firsts")
    page.locator(f"#firsts tr[data-first='{claim.public_id}'] a").click()
    expect(page.locator("#verdict")).to_be_visible()
    expect(page.locator("#window")).to_be_visible()
    shot(page, "capability-first")

    page.goto(f"{site}/capability/")
    shot(page, "capability-overview")

    # The mentor signs the second assessment off on the mentee's page.
    page.locator("#user-menu").click()
    page.locator("form[action='/logout/'] button").click()
    log_in(page, site, mentor_account.username)
    page.goto(f"{site}/capability/mentees/{mentee.public_id}/")
    sign = page.locator("#milestones form[action*='/sign-off/'] button")
    expect(sign).to_have_count(1)
    sign.click()
    # Two signed-off passes, and the milestone on the technique's independence, which the ledger shows.
    expect(page.locator("#stat-reached")).to_contain_text("3 / 4")
    shot(page, "capability-mentee")
