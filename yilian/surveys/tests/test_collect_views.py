"""The survey pages over HTTP: the public answer page (no login, no JavaScript, bilingual refusals),
poster scans with their cookie and 429, and the staff pages with their refusals."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
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


# -- the questionnaire editor ---------------------------------------------------------------

EDITOR = "/surveys/questionnaires/zju2-quzhou/outpatient/"


class _FormReader(HTMLParser):
    """What a browser would send for one form of a page: text and hidden inputs, ticked boxes, the
    selected option of each select, textareas; no button."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside = form_id, False
        self.values: dict[str, str] = {}
        self.textarea: str | None = None
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or ("name" not in a and tag != "option"):
            return
        if tag == "input" and a.get("type") in ("checkbox", "radio"):
            if "checked" in a:
                self.values[a["name"]] = a.get("value", "on")
        elif tag == "input" and a.get("type") not in ("submit", "button"):
            self.values[a["name"]] = a.get("value", "")
        elif tag == "textarea":
            self.textarea = a["name"]
            self.values[self.textarea] = ""
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select and (self.select not in self.values or "selected" in a):
            self.values[self.select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.values[self.textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self.textarea:
            # A browser drops the newline that opens a textarea's content.
            self.values[self.textarea] = self.values[self.textarea].removeprefix("\n")
            self.textarea = None
        elif tag == "select":
            self.select = None
        elif tag == "form":
            self.inside = False


def publish_form(page: Any) -> dict[str, str]:
    reader = _FormReader("publish-form")
    reader.feed(page.content.decode())
    return reader.values


def row_html(page: Any, number: int) -> str:
    """The card of one row of the editor."""
    html: str = page.content.decode()
    start = html.index(f'id="item-{number}"')
    end = html.find('class="card mb-2 item-row', start)
    return html[start : end if end > 0 else html.index('id="more-rows"')]


def row(data: dict[str, str], number: int, **values: str | bool) -> None:
    """Type into row ``number`` (from 1) of the posted form; True ticks a box, False clears it."""
    for name, value in values.items():
        field = f"items-{number - 1}-{name}"
        if value is False:
            data.pop(field, None)
        else:
            data[field] = "on" if value is True else str(value)


def own_versions() -> list[QuestionnaireVersion]:
    return list(
        QuestionnaireVersion.objects.filter(
            questionnaire__consortium__code="zju2-quzhou", questionnaire__kind="outpatient"
        ).order_by("number")
    )


def test_the_editor_shows_the_current_items_as_rows_with_two_empty_ones(login: Any) -> None:
    client = login("office", "en")
    listing = client.get("/surveys/questionnaires/")
    assert listing.status_code == 200 and EDITOR in listing.content.decode()
    editor = client.get(EDITOR)
    assert editor.status_code == 200
    data = publish_form(editor)
    outpatient = DEFAULT_QUESTIONNAIRES["outpatient"][2]
    assert data["items-TOTAL_FORMS"] == str(len(outpatient) + 2)
    assert data["name_zh"] == "门诊患者满意度调查"
    assert [data[f"items-{i}-key"] for i in range(len(outpatient))] == [item["key"] for item in outpatient]
    assert data["items-1-zh"] == outpatient[1]["zh"] and data["items-1-type"] == "likert"
    assert data["items-1-required"] == "on" and "items-8-required" not in data
    assert data["items-8-options"].splitlines()[0] == "a | 在窗口或自助机 | At the counter or a kiosk"
    # The empty rows suggest the next keys and order numbers.
    assert (data["items-10-key"], data["items-10-order"], data["items-10-zh"]) == ("q11", "110", "")
    assert data["items-11-key"] == "q12"
    assert 'id="items-json"' in editor.content.decode() and "<textarea" in editor.content.decode()
    assert publish_form(client.get(EDITOR + "?extra=5"))["items-TOTAL_FORMS"] == str(len(outpatient) + 5)


def test_the_office_publishes_an_edited_questionnaire_through_the_rows(login: Any) -> None:
    client = login("office", "en")
    first = client.post(EDITOR, publish_form(client.get(EDITOR)))
    assert first.status_code == 302 and first["Location"] == EDITOR
    [v1] = own_versions()
    v1_items = [dict(item) for item in v1.items]
    assert v1_items == DEFAULT_QUESTIONNAIRES["outpatient"][2]

    data = publish_form(client.get(EDITOR))
    data.update(name_zh="门诊满意度调查（医联体版）", valid_days="7")
    row(data, 2, zh="您对等候就诊的时间满意吗？", en="Were you satisfied with the waiting time?")
    # q9 goes; its emptied options would be refused, but a deleted row is not checked.
    row(data, 9, DELETE=True, options="")
    # A new single choice in the first empty row, asked after q3.
    row(
        data,
        11,
        key="q11",
        order="35",
        type="single",
        dimension="access",
        zh="您是第几次来本院就诊？",
        en="Is this your first visit here?",
        required=False,
        options="a | 第一次 | First time\nb｜复诊 ｜ Follow-up\n\n",
    )
    page = client.post(EDITOR, data)
    assert page.status_code == 302

    v1_again, v2 = own_versions()
    assert v1_again.pk == v1.pk and v1_again.items == v1_items
    expected = [dict(item) for item in v1_items]
    expected[1].update(zh="您对等候就诊的时间满意吗？", en="Were you satisfied with the waiting time?")
    new = {
        "key": "q11",
        "dimension": "access",
        "type": "single",
        "zh": "您是第几次来本院就诊？",
        "en": "Is this your first visit here?",
        "required": False,
        "options": [{"key": "a", "zh": "第一次", "en": "First time"}, {"key": "b", "zh": "复诊", "en": "Follow-up"}],
    }
    expected = [*expected[:3], new, *expected[3:8], expected[9]]
    assert v2.number == 2 and v2.items == expected
    assert v2.questionnaire.name_zh == "门诊满意度调查（医联体版）" and v2.questionnaire.valid_days == 7
    after = client.get(EDITOR)
    assert "Version 2 is published" in after.content.decode()
    assert publish_form(after)["items-3-key"] == "q11"


def _duplicate_key(data: dict[str, str]) -> None:
    row(data, 2, key="Q1")


def _choice_without_options(data: dict[str, str]) -> None:
    row(data, 11, type="single", dimension="access", zh="您怎么来的医院？", en="How did you get here?")


def _options_on_a_rating(data: dict[str, str]) -> None:
    row(data, 1, options="a | 是 | Yes\nb | 否 | No")


def _two_text_items(data: dict[str, str]) -> None:
    row(data, 11, type="text", dimension="comment", zh="还有别的吗？", en="Anything more?", required=False)


def _a_malformed_option(data: dict[str, str]) -> None:
    row(data, 9, options="a | 在窗口或自助机 | At the counter\nb 手机或电话预约")


@pytest.mark.parametrize(
    ("change", "rows", "message", "kept"),
    [
        (_duplicate_key, [1, 2], "the key q1 is used twice", 'value="Q1"'),
        (_choice_without_options, [11], "a choice needs between 2 and 12 options", "您怎么来的医院？"),
        (_options_on_a_rating, [1], "only a choice has options", "b | 否 | No"),
        (_two_text_items, [10, 11], "exactly one free-text item (it has 2)", "还有别的吗？"),
        (_a_malformed_option, [9], "Line 2: write key | Chinese | English", "b 手机或电话预约"),
    ],
)
def test_a_problem_is_shown_on_its_row_with_everything_as_typed(
    login: Any, change: Any, rows: list[int], message: str, kept: str
) -> None:
    client = login("office", "en")
    data = publish_form(client.get(EDITOR))
    row(data, 3, zh="医生讲清楚了吗？")  # another change, which must not be lost either
    change(data)
    page = client.post(EDITOR, data)
    assert page.status_code == 400
    html = page.content.decode()
    assert 'id="items-errors"' in html
    for number in range(1, 13):
        shown = message in row_html(page, number)
        assert shown == (number in rows), (number, message)
    assert kept in "".join(row_html(page, number) for number in rows)
    typed = publish_form(page)
    assert typed["items-2-zh"] == "医生讲清楚了吗？" and typed["items-TOTAL_FORMS"] == "12"
    assert not own_versions()


def test_a_questionnaire_without_a_free_text_item_is_refused_above_the_rows(login: Any) -> None:
    client = login("office", "en")
    data = publish_form(client.get(EDITOR))
    row(data, 10, DELETE=True)
    page = client.post(EDITOR, data)
    assert page.status_code == 400
    assert "exactly one free-text item (it has 0)" in page.content.decode().split('id="item-rows"')[0]
    assert publish_form(page)["items-9-DELETE"] == "on" and not own_versions()


def test_more_rows_shows_the_rows_as_typed_with_three_more_empty_ones(login: Any) -> None:
    client = login("office", "en")
    data = publish_form(client.get(EDITOR))
    data["name_en"] = "Our outpatient survey"
    row(data, 2, zh="等候时间可以接受吗？")
    row(data, 11, zh="新的题目")
    page = client.post(EDITOR, {**data, "more_rows": "1"})
    assert page.status_code == 200 and 'id="items-errors"' not in page.content.decode()
    typed = publish_form(page)
    assert typed["items-TOTAL_FORMS"] == "15" and typed["name_en"] == "Our outpatient survey"
    assert typed["items-1-zh"] == "等候时间可以接受吗？" and typed["items-10-zh"] == "新的题目"
    assert [typed[f"items-{i}-key"] for i in range(12, 15)] == ["q13", "q14", "q15"]
    assert typed["items-12-order"] == "130"
    assert not own_versions()


@pytest.mark.parametrize("username", ["hospadmin", "doctor", "quality", "commission", "coordinator"])
def test_only_the_consortium_office_opens_or_publishes_the_editor(login: Any, username: str) -> None:
    data = publish_form(login("office", "en").get(EDITOR))
    client = login(username)
    assert client.get(EDITOR).status_code == 403
    assert client.post(EDITOR, data).status_code == 403
    assert not own_versions()


def test_an_office_edits_neither_another_consortium_s_nor_the_built_in_questionnaires(login: Any) -> None:
    client = login("office", "en")
    data = publish_form(client.get(EDITOR))
    for path in ("/surveys/questionnaires/quzhou-neuro/outpatient/", "/surveys/questionnaires/default/outpatient/"):
        assert client.get(path).status_code == 403
        assert client.post(path, data).status_code == 403
    assert QuestionnaireVersion.objects.filter(published_by__username="office").count() == 0


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
