"""Survey collection through the services: questionnaires and versions, token rules, answering,
posters and their limits, staff links, the referral survey, SMS, and what is (not) stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings
from django.utils import timezone

from yilian.core.models import AuditEvent
from yilian.referrals.models import Status
from yilian.referrals.tests.factories import referral_create
from yilian.registry.models import Consortium, Department, Institution, User
from yilian.surveys import services
from yilian.surveys.defaults import DEFAULT_QUESTIONNAIRES
from yilian.surveys.models import (
    Channel,
    Poster,
    PosterScan,
    Questionnaire,
    QuestionnaireVersion,
    SurveyAnswer,
    SurveyKind,
    SurveyResponse,
    SurveyToken,
)
from yilian.surveys.services import PosterScanError, ScanRefused, SurveyTokenError, TokenState
from yilian.surveys.tests.factories import full_answers, issue, response_mark, responses_since

pytestmark = pytest.mark.django_db

SENT: list[tuple[str, str]] = []


class RecordingSms:
    def send(self, phone: str, text: str) -> None:
        SENT.append((phone, text))


def user(name: str) -> User:
    return User.objects.get(username=name)


def zju2_quzhou() -> Consortium:
    return Consortium.objects.get(code="zju2-quzhou")


def edited_items(kind: str = "outpatient") -> list[dict[str, Any]]:
    items = [dict(i) for i in DEFAULT_QUESTIONNAIRES[kind][2]]
    items[0] = {**items[0], "zh": "挂号方便吗？", "en": "Was registering easy?"}
    return items


# -- the built-in questionnaires ------------------------------------------------------------


def test_every_database_has_the_four_built_in_questionnaires_with_one_free_text_item_each() -> None:
    for kind in SurveyKind:
        questionnaire = Questionnaire.objects.get(consortium__isnull=True, kind=kind)
        version = questionnaire.current_version()
        assert version is not None and version.number == 1
        assert services.questionnaire_validate_items(version.items) == version.items
        assert [i["type"] for i in version.items].count("text") == 1
        assert 8 <= len(version.items) <= 10


# -- publishing versions --------------------------------------------------------------------


def test_office_publishes_a_version_for_its_consortium_and_the_built_in_stays_as_it_was() -> None:
    default = Questionnaire.objects.get(consortium__isnull=True, kind="outpatient")
    before = list(default.versions.values_list("number", "items"))
    version = services.questionnaire_publish(
        actor=user("office"), consortium=zju2_quzhou(), kind="outpatient", items=edited_items()
    )
    assert version.number == 1 and version.questionnaire.consortium == zju2_quzhou()
    assert version.questionnaire.name_zh == default.name_zh
    again = services.questionnaire_publish(
        actor=user("office"), consortium=zju2_quzhou(), kind="outpatient", items=edited_items(), valid_days=30
    )
    assert again.number == 2
    assert list(default.versions.values_list("number", "items")) == before
    assert AuditEvent.objects.filter(
        object_type="surveys.questionnaireversion", object_id=str(again.public_id)
    ).exists()


def test_publishing_v2_leaves_v1_answers_and_pending_v1_links_intact() -> None:
    office = user("office")
    services.questionnaire_publish(actor=office, consortium=zju2_quzhou(), kind="outpatient", items=edited_items())
    answered = issue(at="qzph", by="coordinator")
    pending = issue(at="qzph", by="coordinator")
    v1 = answered.token.version
    assert v1.questionnaire.consortium == zju2_quzhou() and v1.number == 1
    response = services.response_submit(raw_token=answered.raw, answers=full_answers(v1))
    items = edited_items()
    items[1] = {**items[1], "zh": "等候时间满意吗？"}
    del items[8]  # v2 drops the registration-channel question
    services.questionnaire_publish(actor=office, consortium=zju2_quzhou(), kind="outpatient", items=items)
    v1.refresh_from_db()
    assert v1.items == edited_items()
    response.refresh_from_db()
    assert response.version == v1 and response.answers.count() == len(v1.items)
    # The pending v1 link still asks (and accepts) the v1 questions, the dropped one included.
    assert services.token_open(pending.raw).version == v1
    later = services.response_submit(raw_token=pending.raw, answers=full_answers(v1))
    assert later.version == v1 and later.answers.filter(item_key="q9").exists()
    assert issue(at="qzph", by="coordinator").token.version.number == 2


def test_a_version_s_items_cannot_be_changed_once_saved() -> None:
    version = QuestionnaireVersion.objects.filter(questionnaire__consortium__isnull=True).first()
    assert version is not None
    version.items = version.items[:-1]
    with pytest.raises(PermissionError):
        version.save()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda items: [*items, dict(items[-1], key="q99")], "exactly one free-text item"),
        (lambda items: [dict(items[0], key="q2"), *items[1:]], "used twice"),
        (lambda items: [dict(items[0], type="slider"), *items[1:]], "type must be one of"),
        (lambda items: [dict(items[0], dimension="mood"), *items[1:]], "dimension must be one of"),
        (lambda items: [dict(items[0], dimension="comment"), *items[1:]], "only the free-text item"),
        (lambda items: [dict(items[0], en=""), *items[1:]], "English text is missing"),
        (lambda items: [dict(items[0], zh="  "), *items[1:]], "Chinese text is missing"),
        (lambda items: [*items[:8], dict(items[8], options=items[8]["options"][:1]), *items[9:]], "between 2"),
        (lambda items: [dict(items[0], options=[{"key": "a"}]), *items[1:]], "only a choice has options"),
        (lambda items: [dict(items[0], required="yes"), *items[1:]], "true or false"),
        (lambda items: [], "at least one item"),
    ],
)
def test_bad_items_are_refused_with_a_message_and_nothing_is_published(change: Any, message: str) -> None:
    from django.utils import translation

    count = QuestionnaireVersion.objects.count()
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        services.questionnaire_publish(
            actor=user("office"), consortium=zju2_quzhou(), kind="outpatient", items=change(edited_items())
        )
    assert message in " ".join(caught.value.messages)
    assert QuestionnaireVersion.objects.count() == count


def test_each_problem_with_an_item_carries_the_item_s_place_and_the_caller_s_name_for_it() -> None:
    """What lets the editor show a problem on its row; the whole-list count has its own code."""
    from django.utils import translation

    items = edited_items()
    items[2] = dict(items[2], key="q1")
    items[4] = dict(items[4], en="")
    items.append(dict(items[-1], key="q11"))
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        services.questionnaire_validate_items(items, names=[f"Row {n}" for n in range(1, len(items) + 1)])
    problems = caught.value.error_dict["items"]
    assert [(p.index, p.message) for p in problems if isinstance(p, services.ItemProblem)] == [
        (3, "Row 3: the key q1 is used twice."),
        (5, "Row 5 (q5): the English text is missing."),
    ]
    assert [p.code for p in problems if not isinstance(p, services.ItemProblem)] == ["free_text_count"]
    with translation.override("en"), pytest.raises(ValidationError) as unnamed:
        services.questionnaire_validate_items(items)
    assert "Item 3: the key q1 is used twice." in unnamed.value.messages


@pytest.mark.parametrize("username", ["hospadmin", "doctor", "quality", "commission"])
def test_only_the_consortium_office_publishes_questionnaires(username: str) -> None:
    with pytest.raises(PermissionDenied):
        services.questionnaire_publish(
            actor=user(username), consortium=zju2_quzhou(), kind="outpatient", items=edited_items()
        )


def test_an_office_cannot_publish_for_another_consortium_or_the_built_in() -> None:
    for consortium in (Consortium.objects.get(code="quzhou-neuro"), None):
        with pytest.raises(PermissionDenied):
            services.questionnaire_publish(
                actor=user("office"), consortium=consortium, kind="outpatient", items=edited_items()
            )


# -- issuing --------------------------------------------------------------------------------


def test_a_link_stores_only_the_hash_of_its_token_and_is_valid_for_the_default_days() -> None:
    issued = issue()
    token = issued.token
    assert issued.raw not in token.token_hash and token.token_hash == services.token_hash(issued.raw)
    assert token.expires_at - token.issued_at == dt.timedelta(days=14)
    assert issued.url.endswith(f"/q/{issued.raw}/")
    assert not SurveyToken.objects.filter(token_hash=issued.raw).exists()


def test_a_consortium_sets_how_long_its_links_are_valid() -> None:
    services.questionnaire_publish(
        actor=user("office"), consortium=zju2_quzhou(), kind="inpatient", items=edited_items("inpatient"), valid_days=5
    )
    token = issue("inpatient", at="qzph", by="coordinator").token
    assert token.expires_at - token.issued_at == dt.timedelta(days=5)


@override_settings(YILIAN_SURVEY_VALID_DAYS=3)
def test_the_site_default_validity_is_a_setting() -> None:
    token = issue().token
    assert token.expires_at - token.issued_at == dt.timedelta(days=3)


def test_a_link_is_issued_only_at_the_actors_own_institution() -> None:
    with pytest.raises(PermissionDenied):
        issue(at="qzph", by="doctor")
    with pytest.raises(PermissionDenied):
        issue(at="csph", by="commission")
    with pytest.raises(PermissionDenied):
        issue(at="qzph", by="office")


def test_a_department_of_another_institution_is_refused() -> None:
    other = Department.objects.filter(institution__code="qzph").first()
    with pytest.raises(ValidationError):
        services.token_issue(
            actor=user("doctor"), institution=Institution.objects.get(code="csph"), kind="outpatient", department=other
        )


def test_encounter_links_are_outpatient_or_inpatient_only() -> None:
    with pytest.raises(ValidationError):
        issue("staff")
    with pytest.raises(ValidationError):
        issue("referred")


# -- answering ------------------------------------------------------------------------------


def test_an_answer_is_stored_whole_and_the_link_is_then_used() -> None:
    since = response_mark()
    issued = issue()
    version = issued.token.version
    response = services.response_submit(raw_token=issued.raw, answers=full_answers(version, likert=5))
    issued.token.refresh_from_db()
    assert issued.token.used_at is not None
    assert response.institution.code == "csph" and response.kind == "outpatient"
    assert response.day == timezone.localdate()
    assert response.answers.count() == len(version.items)
    assert set(response.answers.exclude(likert__isnull=True).values_list("likert", flat=True)) == {5}
    with pytest.raises(SurveyTokenError) as caught:
        services.response_submit(raw_token=issued.raw, answers=full_answers(version))
    assert caught.value.state == TokenState.USED
    assert responses_since(since).count() == 1


def test_an_expired_link_cannot_be_opened_or_answered() -> None:
    since = response_mark()
    issued = issue()
    SurveyToken.objects.filter(pk=issued.token.pk).update(
        issued_at=timezone.now() - dt.timedelta(days=20), expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    for attempt in (
        lambda: services.token_open(issued.raw),
        lambda: services.response_submit(raw_token=issued.raw, answers=full_answers(issued.token.version)),
    ):
        with pytest.raises(SurveyTokenError) as caught:
            attempt()
        assert caught.value.state == TokenState.EXPIRED
    assert not responses_since(since).exists()


@pytest.mark.parametrize("raw", ["", "forged-token-1234567890", "x" * 65, "a/b"])
def test_a_forged_or_unknown_link_is_unknown(raw: str) -> None:
    issue()
    with pytest.raises(SurveyTokenError) as caught:
        services.response_submit(raw_token=raw, answers={})
    assert caught.value.state == TokenState.UNKNOWN


def test_answers_from_another_version_are_refused_and_nothing_is_stored() -> None:
    since = response_mark()
    issued = issue()
    answers = full_answers(issued.token.version)
    answers["q42"] = 5
    with pytest.raises(ValidationError) as caught:
        services.response_submit(raw_token=issued.raw, answers=answers)
    assert "q42" in " ".join(caught.value.messages)
    issued.token.refresh_from_db()
    assert issued.token.used_at is None
    assert not responses_since(since).exists()
    assert not SurveyAnswer.objects.filter(response__in=responses_since(since)).exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [("q1", 6), ("q1", 0), ("q1", "five"), ("q1", True), ("q9", "z"), ("q9", ["a", "b"]), ("q10", "长" * 501)],
)
def test_an_answer_that_does_not_fit_its_item_is_refused_whole(key: str, value: Any) -> None:
    since = response_mark()
    issued = issue()
    answers = full_answers(issued.token.version)
    answers[key] = value
    with pytest.raises(ValidationError) as caught:
        services.response_submit(raw_token=issued.raw, answers=answers)
    assert key in caught.value.message_dict
    assert not responses_since(since).exists()
    assert not SurveyAnswer.objects.filter(response__in=responses_since(since)).exists()


def test_a_required_question_left_empty_is_named_and_optional_ones_may_be_skipped() -> None:
    issued = issue()
    answers = full_answers(issued.token.version)
    del answers["q3"]
    answers["q9"] = ""
    answers["q10"] = "   "
    with pytest.raises(ValidationError) as caught:
        services.response_submit(raw_token=issued.raw, answers=answers)
    assert list(caught.value.message_dict) == ["q3"]
    answers["q3"] = "4"
    response = services.response_submit(raw_token=issued.raw, answers=answers)
    assert set(response.answers.values_list("item_key", flat=True)) == {f"q{n}" for n in range(1, 9)}


def test_stored_responses_hold_no_personal_data() -> None:
    since = response_mark()
    issued = issue()
    audit_before = AuditEvent.objects.count()
    response = services.response_submit(raw_token=issued.raw, answers=full_answers(issued.token.version))
    response_fields = {f.name for f in SurveyResponse._meta.get_fields()}
    # No person, and no way back to the link (and so to the referral, the doctor or the phone):
    # no token, and the day only, no moment to match with the moment the link was used.
    assert response_fields == {"id", "public_id", "version", "kind", "institution", "department", "day", "answers"}
    row = responses_since(since).values().get()
    assert not {k for k in row if any(w in k for w in ("user", "ip", "phone", "name", "address", "agent"))}
    for answer in SurveyAnswer.objects.filter(response__in=responses_since(since)).values():
        assert set(answer) == {"id", "response_id", "item_key", "dimension", "likert", "choices", "text"}
    used = SurveyToken.objects.get(pk=issued.token.pk).used_at
    assert used is not None and timezone.localtime(used).time() == dt.time(0, 0)  # the day it was answered
    # Answering leaves no audit row (an audit row would carry the answerer's address and moment),
    # neither for the response nor for its link.
    assert AuditEvent.objects.count() == audit_before
    assert not AuditEvent.objects.filter(object_id=str(response.public_id)).exists()


# -- the referral survey --------------------------------------------------------------------


def test_a_referral_gets_one_survey_link_once_its_outcome_is_returned() -> None:
    referral = referral_create(Status.IN_TREATMENT)
    assert services.token_issue_for_referral(actor=user("doctor"), referral=referral) is None
    referral = referral_create(Status.OUTCOME_RETURNED)
    first = services.token_issue_for_referral(actor=user("doctor"), referral=referral)
    second = services.token_issue_for_referral(actor=user("coordinator"), referral=referral)
    assert first is not None and second is not None
    assert first.raw == second.raw and first.token.pk == second.token.pk
    assert SurveyToken.objects.filter(referral=referral).count() == 1
    token = first.token
    assert token.kind == "referred" and token.institution == referral.to_institution
    services.response_submit(raw_token=first.raw, answers=full_answers(token.version))
    assert services.token_issue_for_referral(actor=user("doctor"), referral=referral) is None


# -- staff links ----------------------------------------------------------------------------


def test_hospital_admin_and_quality_staff_issue_a_batch_of_anonymous_staff_links() -> None:
    qzph = Institution.objects.get(code="qzph")
    for username in ("hospadmin", "quality"):
        batch = services.staff_tokens_issue(actor=user(username), institution=qzph, count=5)
        assert len({i.raw for i in batch}) == 5
        assert {i.token.kind for i in batch} == {"staff"} and {i.token.channel for i in batch} == {"link"}
    for username in ("doctor", "coordinator", "office"):
        with pytest.raises(PermissionDenied):
            services.staff_tokens_issue(actor=user(username), institution=qzph, count=1)
    with pytest.raises(ValidationError):
        services.staff_tokens_issue(actor=user("quality"), institution=qzph, count=0)


# -- posters --------------------------------------------------------------------------------


def make_poster(**kwargs: Any) -> Poster:
    return services.poster_create(
        actor=user("quality"), institution=Institution.objects.get(code="qzph"), kind="outpatient", **kwargs
    )


def test_only_hospital_admin_and_quality_staff_make_posters() -> None:
    assert make_poster().code
    for username in ("coordinator", "doctor", "office"):
        with pytest.raises(PermissionDenied):
            services.poster_create(
                actor=user(username), institution=Institution.objects.get(code="qzph"), kind="outpatient"
            )


def test_each_device_scanning_a_poster_gets_its_own_link_and_a_rescan_gives_the_same_one_back() -> None:
    poster = make_poster()
    first = services.poster_scan(code=poster.code, device_id="phone-a", address="10.0.0.1")
    again = services.poster_scan(code=poster.code, device_id="phone-a", address="10.0.0.1")
    other = services.poster_scan(code=poster.code, device_id="phone-b", address="10.0.0.1")
    assert first.raw == again.raw and first.token.pk == again.token.pk
    assert other.raw != first.raw
    assert first.token.channel == Channel.POSTER and first.token.poster == poster
    assert first.token.expires_at - first.token.issued_at == dt.timedelta(days=1)
    assert PosterScan.objects.count() == 2
    # Neither the cookie nor the address is stored as such.
    stored = " ".join(f"{s.device_hash} {s.ip_hash}" for s in PosterScan.objects.all())
    assert "phone-a" not in stored and "10.0.0.1" not in stored


@override_settings(YILIAN_POSTER_PER_DEVICE=2)
def test_a_device_that_keeps_answering_and_rescanning_is_stopped_at_the_ceiling() -> None:
    poster = make_poster()
    for _round in range(2):
        issued = services.poster_scan(code=poster.code, device_id="phone-a", address="10.0.0.1")
        services.response_submit(raw_token=issued.raw, answers=full_answers(issued.token.version))
    with pytest.raises(PosterScanError) as caught:
        services.poster_scan(code=poster.code, device_id="phone-a", address="10.0.0.1")
    assert caught.value.reason == ScanRefused.TOO_MANY
    # Another phone on the same network still gets a link.
    assert services.poster_scan(code=poster.code, device_id="phone-b", address="10.0.0.1").raw


@override_settings(YILIAN_POSTER_PER_ADDRESS=3)
def test_an_address_that_scans_without_a_cookie_is_stopped_at_its_ceiling() -> None:
    poster = make_poster()
    for n in range(3):
        services.poster_scan(code=poster.code, device_id=f"fresh-{n}", address="10.0.0.9")
    with pytest.raises(PosterScanError) as caught:
        services.poster_scan(code=poster.code, device_id="fresh-x", address="10.0.0.9")
    assert caught.value.reason == ScanRefused.TOO_MANY
    assert services.poster_scan(code=poster.code, device_id="fresh-y", address="10.0.0.10").raw


def test_the_ceiling_counts_only_scans_inside_the_window() -> None:
    poster = make_poster()
    with override_settings(YILIAN_POSTER_PER_DEVICE=1):
        issued = services.poster_scan(code=poster.code, device_id="phone-a", address="10.0.0.1")
        services.response_submit(raw_token=issued.raw, answers=full_answers(issued.token.version))
        with pytest.raises(PosterScanError):
            services.poster_scan(code=poster.code, device_id="phone-a", address="10.0.0.1")
        PosterScan.objects.update(scanned_at=timezone.now() - dt.timedelta(minutes=61))
        assert services.poster_scan(code=poster.code, device_id="phone-a", address="10.0.0.1").raw != issued.raw


def test_scans_are_forgotten_once_the_window_has_passed() -> None:
    """Nothing ties a device or an address to the link it was given for longer than the limits need."""
    poster = make_poster()
    issued = services.poster_scan(code=poster.code, device_id="phone-a", address="10.0.0.1")
    PosterScan.objects.update(scanned_at=timezone.now() - dt.timedelta(minutes=61))
    services.poster_scan(code=poster.code, device_id="phone-b", address="10.0.0.2")
    assert not PosterScan.objects.filter(token=issued.token).exists()
    assert PosterScan.objects.count() == 1


def test_an_ipv6_subscriber_line_counts_as_one_address() -> None:
    """Phones on one IPv6 line can take any address of its /64: the ceiling counts the line."""
    poster = make_poster()
    with override_settings(YILIAN_POSTER_PER_ADDRESS=2):
        for n in range(2):
            services.poster_scan(code=poster.code, device_id=f"fresh-{n}", address=f"2408:8456:1:2::{n + 1}")
        with pytest.raises(PosterScanError):
            services.poster_scan(code=poster.code, device_id="fresh-3", address="2408:8456:1:2:ffff::9")
        services.poster_scan(code=poster.code, device_id="fresh-4", address="2408:8456:1:3::1")  # another line


def test_a_taken_down_or_unknown_poster_issues_nothing() -> None:
    poster = make_poster()
    services.poster_deactivate(actor=user("hospadmin"), poster=poster)
    for code in (poster.code, "nope"):
        with pytest.raises(PosterScanError) as caught:
            services.poster_scan(code=code, device_id="phone-a", address="10.0.0.1")
        assert caught.value.reason == ScanRefused.UNKNOWN
    assert not SurveyToken.objects.filter(poster=poster).exists()


# -- SMS ------------------------------------------------------------------------------------


@override_settings(YILIAN_SMS_BACKEND="yilian.surveys.tests.test_collect_services.RecordingSms")
def test_the_sms_backend_gets_the_link_and_the_phone_is_stored_nowhere() -> None:
    SENT.clear()
    issued = issue(channel="sms")
    services.sms_send_survey(actor=user("doctor"), phone="+86 139-0570-1234", issued=issued)
    assert [("13905701234", services.sms_text(issued))] == SENT
    assert issued.url in SENT[0][1] and len(SENT[0][1]) < 120
    audit = AuditEvent.objects.filter(object_id=str(issued.token.public_id)).values_list("changes", flat=True)
    assert "13905701234" not in str(list(audit)) and "1234" not in str(list(audit))
    assert not SurveyToken.objects.filter(token_hash__contains="1390570").exists()


@override_settings(YILIAN_SMS_BACKEND="yilian.surveys.tests.test_collect_services.RecordingSms")
def test_a_malformed_phone_or_a_foreign_institution_sends_nothing() -> None:
    SENT.clear()
    issued = issue(channel="sms")
    with pytest.raises(ValidationError):
        services.sms_send_survey(actor=user("doctor"), phone="12345", issued=issued)
    with pytest.raises(PermissionDenied):
        services.sms_send_survey(actor=user("coordinator"), phone="13905701234", issued=issued)
    assert SENT == []


def test_the_default_sms_backend_logs_a_masked_number(caplog: pytest.LogCaptureFixture) -> None:
    issued = issue(channel="sms")
    with caplog.at_level("INFO", logger="yilian.surveys.sms"):
        services.sms_send_survey(actor=user("doctor"), phone="13905701234", issued=issued)
    assert "139****1234" in caplog.text and "13905701234" not in caplog.text
    # The log shows which link went out, but not a link that works: the token is cut short.
    assert issued.raw not in caplog.text and f"/q/{issued.raw[:4]}…/" in caplog.text
