"""Satisfaction before and after a stationing programme: the results page and the API offer the
programmes a hospital hosts as comparison points (the demo: zju2's second batch at qzph from
2025-09-01, the day the demo's answers start improving)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pytest

from yilian.dispatch.models import Programme
from yilian.registry.models import Membership
from yilian.surveys.models import Dimension, SurveyAnswer, SurveyResponse
from yilian.surveys.tests.test_collect_api import api

pytestmark = pytest.mark.django_db

URL = "/surveys/results/"
RESULTS_API = "/api/v1/surveys/results"
ROUND_2 = "zju2-qzph-2"  # started 2025-09-01
YEAR_2025 = {"institution": "qzph", "date_from": "2025-01-01", "date_to": "2025-12-31"}
EARLY_2026 = {"institution": "qzph", "date_from": "2026-01-01", "date_to": "2026-03-31"}


def header_of(page: str) -> str:
    """The text of the before/after card's header."""
    card = page.split('id="results-before-after"', 1)[1]
    return html.unescape(card.split('<div class="card-header">', 1)[1].split("</div>", 1)[0])


def test_the_quality_persona_is_quality_staff_at_qzph() -> None:
    assert Membership.objects.filter(user__username="quality", role="quality_staff", institution__code="qzph").exists()


def test_without_a_choice_the_page_compares_around_the_latest_programme_started_in_the_period(login: Any) -> None:
    response = login("quality", "en").get(URL, YEAR_2025)

    assert response.status_code == 200
    assert response.context["before_after"].pivot == dt.date(2025, 9, 1)
    assert response.context["before_after_programme"].code == ROUND_2
    page = response.content.decode()
    title = Programme.objects.get(code=ROUND_2).title_en
    assert header_of(page) == f"Before and after {title} started (2025-09-01)"
    assert '<option value="zju2-qzph-2" selected>' in page
    offered = [value for value, _label in response.context["form"].fields["programme"].choices]
    assert offered == ["", "zju2-qzph-2", "zju2-qzph-1"]  # "no comparison", then qzph's programmes, newest first


def test_the_card_header_names_the_programme_in_chinese_by_default(login: Any) -> None:
    response = login("quality").get(URL, YEAR_2025)

    assert response.status_code == 200
    header = header_of(response.content.decode())
    assert Programme.objects.get(code=ROUND_2).title_zh in header and "2025-09-01" in header


def test_a_period_in_which_no_programme_started_has_no_comparison_by_default(login: Any) -> None:
    response = login("quality", "en").get(URL, EARLY_2026)

    assert response.status_code == 200
    assert "before_after" not in response.context
    assert 'id="results-before-after"' not in response.content.decode()


def test_choosing_no_comparison_shows_none(login: Any) -> None:
    response = login("quality", "en").get(URL, {**YEAR_2025, "programme": ""})

    assert response.status_code == 200
    assert "before_after" not in response.context
    page = response.content.decode()
    assert 'id="results-before-after"' not in page
    assert '<option value="" selected>No comparison</option>' in page


def test_a_day_still_works_as_the_comparison_point(login: Any) -> None:
    response = login("quality", "en").get(URL, {**YEAR_2025, "pivot": "2025-10-01"})

    assert response.status_code == 200
    assert response.context["before_after"].pivot == dt.date(2025, 10, 1)
    assert response.context["before_after_programme"] is None
    assert header_of(response.content.decode()) == "Before and after 2025-10-01"


def test_the_earlier_programme_can_be_chosen_when_the_period_covers_its_start(login: Any) -> None:
    response = login("quality", "en").get(
        URL, {**YEAR_2025, "date_from": "2018-01-01", "date_to": "2025-12-31", "programme": "zju2-qzph-1"}
    )

    assert response.status_code == 200
    assert response.context["before_after"].pivot == dt.date(2018, 9, 3)
    assert "(batch 1) started (2018-09-03)" in header_of(response.content.decode())


def test_a_programme_and_a_day_together_are_refused(login: Any) -> None:
    response = login("quality", "en").get(URL, {**YEAR_2025, "programme": ROUND_2, "pivot": "2025-10-01"})

    assert response.status_code == 400
    assert "Compare around a programme or around a day, not both." in response.content.decode()
    assert "before_after" not in response.context


def test_a_programme_that_started_outside_the_period_shows_the_period_without_comparison(login: Any) -> None:
    """Narrowing the period after the page opened on a programme keeps the figures and says why the
    comparison is gone."""
    for query in ({**EARLY_2026, "programme": ROUND_2}, {**YEAR_2025, "programme": "zju2-qzph-1"}):
        response = login("quality", "en").get(URL, query)
        page = response.content.decode()
        assert response.status_code == 200
        assert "outside this period; widen the period to compare." in page
        assert 'id="results-before-after"' not in page and 'id="stat-responses"' in page


def test_a_programme_hosted_elsewhere_is_refused(login: Any) -> None:
    response = login("quality", "en").get(URL, {**YEAR_2025, "programme": "zju2-khph-1"})  # at Kaihua, not here

    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert 'id="results-before-after"' not in response.content.decode()


# -- the API ------------------------------------------------------------------------------------


def test_the_api_compares_around_the_programme_s_start() -> None:
    answer = api("quality").get(RESULTS_API, {"institution": "qzph", "programme": ROUND_2})

    assert answer.status_code == 200, answer.content
    split = answer.json()["before_after"]
    assert (split["pivot"], split["programme"]) == ("2025-09-01", ROUND_2)
    responses = SurveyResponse.objects.filter(institution__code="qzph")
    assert split["responses_before"] == responses.filter(day__lt=dt.date(2025, 9, 1)).count() > 0
    assert split["responses_after"] == responses.filter(day__gte=dt.date(2025, 9, 1)).count() > 0


def test_a_day_through_the_api_names_no_programme() -> None:
    answer = api("quality").get(RESULTS_API, {"institution": "qzph", "pivot": "2025-09-01"})

    assert answer.status_code == 200
    assert answer.json()["before_after"]["programme"] is None


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"programme": "nowhere"}, "programme", "This institution hosts no programme with this code."),
        ({"programme": "zju2-khph-1"}, "programme", "This institution hosts no programme with this code."),
        (
            {"programme": ROUND_2, "pivot": "2025-10-01"},
            "pivot",
            "Compare around a programme or around a day, not both.",
        ),
        (
            {"programme": ROUND_2, "start": "2026-01-01", "end": "2026-04-01"},
            "pivot",
            "Choose a day inside the period, after its first day.",
        ),
    ],
)
def test_the_api_refuses_a_programme_it_cannot_compare_around(query: dict[str, str], field: str, message: str) -> None:
    answer = api("quality").get(RESULTS_API, {"institution": "qzph", **query})

    assert answer.status_code == 400
    assert answer.json()["errors"] == {field: [message]}


def test_qzph_patients_are_more_satisfied_overall_after_the_programme() -> None:
    answer = api("quality").get(RESULTS_API, {"institution": "qzph", "programme": ROUND_2})

    rows = {row["dimension"]: row for row in answer.json()["before_after"]["dimensions"]}
    before, after = rows[Dimension.OVERALL]["before"], rows[Dimension.OVERALL]["after"]
    assert after["percent"] > before["percent"]
    overall = SurveyAnswer.objects.filter(
        response__institution__code="qzph", dimension=Dimension.OVERALL, likert__isnull=False
    )
    stored_before = overall.filter(response__day__lt=dt.date(2025, 9, 1))
    stored_after = overall.filter(response__day__gte=dt.date(2025, 9, 1))
    assert (before["ratings"], before["satisfied"]) == (
        stored_before.count(),
        stored_before.filter(likert__gte=4).count(),
    )
    assert (after["ratings"], after["satisfied"]) == (stored_after.count(), stored_after.filter(likert__gte=4).count())
