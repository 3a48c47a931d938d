"""The survey pages over HTTP: the public answer page (no login, no JavaScript, bilingual refusals),
poster scans with their cookie and 429, and the staff pages with their refusals."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from yilian.referrals.models import Status
from yilian.referrals.tests.factories import referral_create
from yilian.registry.models import Institution, User
from yilian.surveys import services
from yilian.surveys.defaults import DEFAULT_QUESTIONNAIRES
from yilian.surveys.models import Poster, QuestionnaireVersion, SurveyToken
from yilian.surveys.tests.factories import full_answers, issue, response_mark, responses_since

pytestmark = pytest.mark.django_db


def form_data(version: QuestionnaireVersion, **overrides: Any) -> dict[str, Any]:
    data = {f"a_{k}": v for k, v in full_answers(version).items()}
    data.update({f"a_{k}": v for k, v in overrides.items()})
    return data


# -- the public answer page -----------------------------------------------------------------


def test_the_answer_page_is_a_plain_form_in_chinese_with_an_english_switch() -> None:
    issued = issue()
    page = Client().get(f"/q/{issued.raw}/")
    html = page.content.decode()
    assert page.status_code == 200 and page["Cache-Control"] == "no-store" and "noindex" in page["X-Robots-Tag"]
    assert "<script" not in html and 'method="post"' in html
    assert "挂号、缴费、取药等手续方便吗？" in html and 'type="radio"' in html
    english = Client().get(f"/q/{issued.raw}/?lang=en").content.decode()
    assert "Were registration, payment and collecting medicine easy?" in english
    assert 'action="?lang=en"' in english


def test_answering_without_a_csrf_cookie_stores_the_response_and_shows_thanks() -> None:
    since = response_mark()
    issued = issue()
    client = Client(enforce_csrf_checks=True)
    page = client.post(f"/q/{issued.raw}/", form_data(issued.token.version))
    assert page.status_code == 302 and page["Location"] == f"/q/{issued.raw}/thanks/?lang=zh-hans"
    assert responses_since(since).count() == 1
    thanks = client.get(page["Location"])
    assert thanks.status_code == 200 and "survey-thanks" in thanks.content.decode()


def test_a_multiple_choice_posts_several_values() -> None:
    since = response_mark()
    issued = issue("inpatient")
    data = form_data(issued.token.version)
    data["a_q9"] = ["a", "c"]
    assert Client().post(f"/q/{issued.raw}/", data).status_code == 302
    answer = responses_since(since).get().answers.get(item_key="q9")
    assert answer.choices == ["a", "c"]


def test_a_missing_required_answer_shows_the_form_again_with_a_message_and_stores_nothing() -> None:
    since = response_mark()
    issued = issue()
    data = form_data(issued.token.version)
    del data["a_q2"]
    page = Client().post(f"/q/{issued.raw}/?lang=en", data)
    html = page.content.decode()
    assert page.status_code == 400 and "Please answer this question." in html
    assert 'value="4" checked' in html  # what was answered stays answered
    assert not responses_since(since).exists()
    zh = Client().post(f"/q/{issued.raw}/", data).content.decode()
    assert "Please answer this question." not in zh or "请" in zh


def test_a_used_link_gets_a_409_page_in_both_languages() -> None:
    since = response_mark()
    issued = issue()
    Client().post(f"/q/{issued.raw}/", form_data(issued.token.version))
    for page in (
        Client().get(f"/q/{issued.raw}/"),
        Client().post(f"/q/{issued.raw}/", form_data(issued.token.version)),
    ):
        html = page.content.decode()
        assert page.status_code == 409
        assert 'data-reason="used"' in html and "This survey has already been answered" in html
        assert 'lang="zh-Hans"' in html and 'lang="en"' in html
    assert responses_since(since).count() == 1


def test_an_expired_link_gets_a_410_page_that_says_nothing_about_the_visit() -> None:
    issued = issue()
    SurveyToken.objects.filter(pk=issued.token.pk).update(
        issued_at=timezone.now() - dt.timedelta(days=30), expires_at=timezone.now() - dt.timedelta(days=1)
    )
    page = Client().get(f"/q/{issued.raw}/")
    html = page.content.decode()
    assert page.status_code == 410 and "This survey link has expired" in html
    assert issued.token.institution.name_zh not in html


def test_an_unknown_link_gets_a_404_page_in_both_languages() -> None:
    page = Client().get("/q/not-a-real-token/")
    assert page.status_code == 404 and "This survey link is not valid" in page.content.decode()


# -- posters --------------------------------------------------------------------------------


def test_scanning_a_poster_sets_a_device_cookie_and_a_rescan_opens_the_same_link() -> None:
    poster = services.poster_create(
        actor=User.objects.get(username="quality"),
        institution=Institution.objects.get(code="qzph"),
        kind="outpatient",
    )
    client = Client()
    first = client.get(f"/p/{poster.code}/")
    assert first.status_code == 302 and first["Location"].startswith("/q/")
    assert client.cookies["yl_survey_device"].value
    assert client.get(f"/p/{poster.code}/")["Location"] == first["Location"]
    assert client.get(first["Location"]).status_code == 200
    assert Client().get(f"/p/{poster.code}/")["Location"] != first["Location"]


@override_settings(YILIAN_POSTER_PER_ADDRESS=2)
def test_too_many_scans_from_one_address_get_a_friendly_429() -> None:
    poster = services.poster_create(
        actor=User.objects.get(username="quality"),
        institution=Institution.objects.get(code="qzph"),
        kind="outpatient",
    )
    for _n in range(2):
        assert Client().get(f"/p/{poster.code}/").status_code == 302
    page = Client().get(f"/p/{poster.code}/")
    html = page.content.decode()
    assert page.status_code == 429 and page["Retry-After"] == "3600"
    assert "Too many surveys from this phone" in html


def test_an_unknown_poster_code_is_a_404_page() -> None:
    assert Client().get("/p/nothing-here/").status_code == 404


# -- staff pages ----------------------------------------------------------------------------


def test_a_doctor_prints_a_qr_card_for_a_patient(login: Any) -> None:
    client = login("doctor")
    assert client.get("/surveys/").status_code == 200
    page = client.post("/surveys/issue/", {"institution": "csph", "kind": "outpatient", "channel": "qr"})
    html = page.content.decode()
    assert page.status_code == 200 and "<svg" in html
    url = re.search(r'data-survey-url="([^"]+)"', html)
    assert url is not None
    raw = url.group(1).rstrip("/").rsplit("/", 1)[1]
    token = SurveyToken.objects.get(token_hash=services.token_hash(raw))
    assert token.issued_by is not None and token.issued_by.username == "doctor" and token.channel == "qr"


@override_settings(YILIAN_SMS_BACKEND="yilian.surveys.tests.test_collect_services.RecordingSms")
def test_the_card_sends_the_link_by_sms_and_a_bad_number_gets_a_message(login: Any) -> None:
    from yilian.surveys.tests.test_collect_services import SENT

    SENT.clear()
    client = login("doctor", "en")
    issued = issue(channel="sms")
    bad = client.post("/surveys/sms/", {"token": issued.raw, "phone": "555"})
    assert bad.status_code == 400 and "mainland mobile number" in bad.content.decode()
    good = client.post("/surveys/sms/", {"token": issued.raw, "phone": "13905701234"})
    assert good.status_code == 200 and len(SENT) == 1 and issued.url in SENT[0][1]
    assert "13905701234" not in good.content.decode()


def test_a_coordinator_cannot_send_another_hospital_s_link(login: Any) -> None:
    issued = issue()
    assert login("coordinator").post("/surveys/sms/", {"token": issued.raw, "phone": "13905701234"}).status_code == 403


@pytest.mark.parametrize("username", ["commission", "bijie"])
def test_people_who_do_not_hand_out_surveys_are_refused(login: Any, username: str) -> None:
    client = login(username)
    issue_page = client.post("/surveys/issue/", {"institution": "qzph", "kind": "outpatient"})
    if username == "commission":
        assert client.get("/surveys/").status_code == 403
        assert issue_page.status_code == 403
    else:  # a doctor elsewhere: qzph is not among the choices
        assert issue_page.status_code == 400
    assert not SurveyToken.objects.filter(issued_by__username=username).exists()
    assert client.get("/surveys/posters/").status_code == 403
    assert client.get("/surveys/questionnaires/").status_code == 403


def test_quality_staff_make_and_print_a_poster_and_a_doctor_may_not(login: Any) -> None:
    client = login("quality")
    page = client.post("/surveys/posters/", {"institution": "qzph", "kind": "outpatient", "valid_days": 2})
    assert page.status_code == 302
    poster = Poster.objects.get(institution__code="qzph", valid_days=2)
    printed = client.get(page["Location"])
    assert printed.status_code == 200 and f"/p/{poster.code}/" in printed.content.decode()
    assert login("doctor").get("/surveys/posters/").status_code == 403
    assert login("coordinator").get(f"/surveys/posters/{poster.public_id}/").status_code == 403
    assert client.post(f"/surveys/posters/{poster.public_id}/deactivate/").status_code == 302
    poster.refresh_from_db()
    assert not poster.is_active


def test_hospital_admin_prints_a_sheet_of_staff_links(login: Any) -> None:
    page = login("hospadmin").post("/surveys/staff-links/", {"institution": "qzph", "count": 3})
    assert page.status_code == 200 and page.content.decode().count("<svg") == 3


def test_the_user_menu_links_to_surveys_for_those_who_use_them(login: Any) -> None:
    assert 'id="menu-surveys"' in login("hospadmin").get("/").content.decode()
    assert 'id="menu-surveys"' not in login("commission").get("/").content.decode()


def test_the_office_publishes_a_version_from_the_editor_and_bad_json_is_explained(login: Any) -> None:
    client = login("office", "en")
    listing = client.get("/surveys/questionnaires/")
    assert listing.status_code == 200 and "/surveys/questionnaires/zju2-quzhou/outpatient/" in listing.content.decode()
    editor = client.get("/surveys/questionnaires/zju2-quzhou/outpatient/")
    assert editor.status_code == 200
    data = {"name_zh": "门诊满意度调查（医联体版）", "name_en": "Outpatient survey", "valid_days": ""}
    bad = client.post(editor.request["PATH_INFO"], {**data, "items": "[{"})
    assert bad.status_code == 400 and "Not valid JSON" in bad.content.decode()
    items = [dict(i) for i in DEFAULT_QUESTIONNAIRES["outpatient"][2]]
    items.append(dict(items[-1], key="q11"))
    two_texts = client.post(editor.request["PATH_INFO"], {**data, "items": json.dumps(items)})
    assert two_texts.status_code == 400 and "exactly one free-text item" in two_texts.content.decode()
    good = client.post(editor.request["PATH_INFO"], {**data, "items": json.dumps(items[:-1])})
    assert good.status_code == 302
    version = QuestionnaireVersion.objects.get(questionnaire__consortium__code="zju2-quzhou")
    assert version.number == 1 and version.questionnaire.name_zh == "门诊满意度调查（医联体版）"
    assert client.get("/surveys/questionnaires/quzhou-neuro/outpatient/").status_code == 403
    assert client.get("/surveys/questionnaires/default/outpatient/").status_code == 403


# -- the referral slip ----------------------------------------------------------------------


def test_the_slip_shows_the_survey_code_once_the_outcome_is_returned(login: Any) -> None:
    referral = referral_create(Status.OUTCOME_RETURNED)
    client = login("doctor")
    first = client.get(f"/referrals/{referral.public_id}/slip/").content.decode()
    second = client.get(f"/referrals/{referral.public_id}/slip/").content.decode()
    assert 'id="slip-survey"' in first
    url = re.search(r'data-survey-url="([^"]+)"', first)
    assert url is not None and url.group(1) in second
    assert SurveyToken.objects.filter(referral=referral).count() == 1
    sent = referral_create(Status.SENT)
    assert 'id="slip-survey"' not in client.get(f"/referrals/{sent.public_id}/slip/").content.decode()
