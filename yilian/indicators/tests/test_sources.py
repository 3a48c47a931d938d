"""Operational sources read through the other apps' figure selectors, as the acting user."""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from yilian.activity.columns import Kind
from yilian.consults.selectors import consult_figures
from yilian.dispatch.selectors import stationing_figures
from yilian.indicators import dsl
from yilian.indicators.engine import IndicatorValue, OrgUnit, evaluate
from yilian.indicators.models import Indicator
from yilian.indicators.sources import month_runs
from yilian.referrals.green_selectors import green_report
from yilian.referrals.models import Status
from yilian.referrals.selectors import referral_figures
from yilian.referrals.tests.factories import referral_create
from yilian.registry.models import Consortium, ConsortiumMember, Institution, User

pytestmark = pytest.mark.django_db

CSPH = OrgUnit("institution", "csph", "常山县人民医院")
QZPH = OrgUnit("institution", "qzph", "衢州市人民医院")


def this_month(username: str, code: str, org: OrgUnit, **kw: object) -> IndicatorValue:
    today = timezone.localdate()
    start = today.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    values = evaluate(
        User.objects.get(username=username),
        codes=[code],
        orgs=[org],
        grain="month",
        start=start,
        end=end,
        **kw,  # type: ignore[arg-type]
    )
    return values[0]


def test_referrals_are_counted_at_the_referring_institution() -> None:
    """The demo has referrals of its own: the test counts what two more add."""
    before = this_month("admin", "up_referrals", CSPH).value or 0
    down_before = this_month("admin", "down_referrals", CSPH).value or 0
    referral_create(Status.SENT, direction="up", from_code="csph", to_code="qzph")
    referral_create(Status.SENT, direction="up", from_code="csph", to_code="qzph")
    up = this_month("admin", "up_referrals", CSPH)
    assert up.value == before + 2
    assert this_month("admin", "down_referrals", CSPH).value == down_before
    # csph is a county hospital, not primary care: none of its up-referrals are primary care's.
    share = this_month("admin", "primary_up_referral_share", CSPH)
    assert (share.numerator, share.denominator, share.value) == (0, before + 2, 0)
    # The consortium office of quzhou-neuro (lead qzph; csph a member) sees them in its total.
    neuro = evaluate(
        User.objects.get(username="admin"), codes=["up_referrals"], orgs=[OrgUnit("consortium", "quzhou-neuro", "")],
        grain="month", start=up.period.start, end=up.period.end,
    )  # fmt: skip
    assert neuro[0].value is not None and neuro[0].value >= before + 2


def test_an_institution_without_records_has_no_data() -> None:
    for code in ("up_referrals", "teleconsultations", "doctors_stationed", "stroke_dido_median"):
        assert this_month("admin", code, OrgUnit("institution", "gzph", "")).value is None, code


def test_figures_the_user_may_not_see_are_no_data_with_a_note() -> None:
    referral_create(Status.SENT, direction="up", from_code="csph", to_code="qzph")
    # Quality staff read indicators but not referral figures.
    with translation.override("en"):
        v = this_month("quality", "up_referrals", QZPH)
    assert v.value is None
    assert v.coverage.note == "You may not see these figures."


def test_operational_sources_are_not_split_by_department() -> None:
    referral_create(Status.SENT, direction="up", from_code="csph", to_code="qzph")
    with translation.override("en"):
        v = this_month("admin", "up_referrals", CSPH, department="神经内科")
    assert v.value is None
    assert v.coverage.note == "Not available by department."


# --- reading each source once ------------------------------------------------------------------------

D = dt.date
NEURO = OrgUnit("consortium", "quzhou-neuro", "")


def test_month_runs_join_consecutive_months() -> None:
    # March 2025 and its year-earlier twin are two runs; a year of months and the year before, one.
    assert month_runs([(D(2025, 3, 1), D(2025, 4, 1)), (D(2024, 3, 1), D(2024, 4, 1))]) == [
        (D(2024, 3, 1), D(2024, 4, 1)),
        (D(2025, 3, 1), D(2025, 4, 1)),
    ]
    quarters = [(D(2025, m, 1), D(2025 + (m + 3) // 13, (m + 2) % 12 + 1, 1)) for m in (1, 4, 7, 10)]
    assert month_runs([*quarters, (D(2024, 1, 1), D(2025, 1, 1))]) == [(D(2024, 1, 1), D(2026, 1, 1))]


def _codes(org: OrgUnit) -> set[str]:
    if org.kind == "institution":
        return {org.code}
    consortium = Consortium.objects.select_related("lead_institution").get(code=org.code)
    today = timezone.localdate()
    members = ConsortiumMember.objects.filter(consortium=consortium).filter(
        Q(left_on__isnull=True) | Q(left_on__gte=today)
    )
    return {consortium.lead_institution.code, *members.values_list("institution__code", flat=True)}


def _selector_median(user: User, org: OrgUnit, start: dt.date, end: dt.date) -> float | None:
    """Door-in-door-out of the org unit's stroke cases activated in [start, end), asked of the green
    channel's report for exactly that period."""
    codes = _codes(org)
    values = [
        value
        for row in green_report(user, start=start, end=end - dt.timedelta(days=1), protocol_code="stroke", by="sender")
        if row.institution.code in codes
        for metric in row.metrics
        if metric.code == "dido"
        for value in metric.values
    ]
    return round(statistics.median(values), 1) if values else None


@pytest.mark.parametrize("grain", ["month", "quarter", "year"])
def test_green_channel_medians_pool_the_months_of_each_period(grain: str) -> None:
    """The report is read once for the whole range; each period's median is the one the report
    gives for that period alone (the demo has two years of green-channel cases)."""
    user = User.objects.get(username="admin")
    year = timezone.localdate().year - 1
    values = evaluate(
        user, codes=["stroke_dido_median"], orgs=[OrgUnit("institution", "csph", ""), NEURO],
        grain=grain, start=D(year, 1, 1), end=D(year + 1, 1, 1),  # type: ignore[arg-type]
    )  # fmt: skip
    assert len(values) == {"month": 24, "quarter": 8, "year": 2}[grain]
    assert any(v.value is not None for v in values)
    for v in values:
        p = v.period
        assert v.value == _selector_median(user, v.org, p.start, p.end), (v.org.key, p.label)
        before = (D(p.start.year - 1, p.start.month, 1), D(p.end.year - 1, p.end.month, 1))
        assert v.previous == _selector_median(user, v.org, *before), (v.org.key, p.label)


def _months_back(months: int) -> tuple[dt.date, dt.date]:
    end = timezone.localdate().replace(day=1)
    index = end.year * 12 + end.month - 1 - months
    return D(index // 12, index % 12 + 1, 1), end


def test_a_year_of_months_reads_facts_and_the_green_channel_no_more_than_one_month(
    dataset: None, django_assert_max_num_queries: Any
) -> None:
    user = User.objects.get(username="admin")
    codes = ["visits", "operations", "surgery_share", "stroke_dido_median", "stroke_door_to_puncture_median"]
    codes += ["stemi_door_to_balloon_median"]
    orgs = [NEURO, OrgUnit("institution", "csph", ""), OrgUnit("institution", "khph", "")]
    evaluate(user, codes=codes, orgs=orgs, grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1))  # warm
    with CaptureQueriesContext(connection) as one_month:
        evaluate(user, codes=codes, orgs=orgs, grain="month", start=D(2025, 3, 1), end=D(2025, 4, 1))
    start, end = _months_back(12)
    with django_assert_max_num_queries(len(one_month.captured_queries)):
        values = evaluate(user, codes=codes, orgs=orgs, grain="month", start=start, end=end)
    assert len(values) == len(codes) * len(orgs) * 12


def test_a_year_of_operational_indicators_reads_no_more_than_one_month(
    django_assert_max_num_queries: Any,
) -> None:
    """Ten operational indicators over four sources: every source is read month by month for the
    whole range at once, so twelve months cost no more queries than one."""
    user = User.objects.get(username="admin")
    codes = [
        i.code
        for i in Indicator.objects.filter(is_active=True)
        if dsl.parse_measure(i.numerator).source in dsl.OPERATIONAL_SOURCES
    ]
    assert len(codes) >= 10
    orgs = [NEURO, OrgUnit("institution", "csph", ""), OrgUnit("institution", "qzph", "")]
    start, end = _months_back(1)
    evaluate(user, codes=codes, orgs=orgs, grain="month", start=start, end=end)  # warm
    with CaptureQueriesContext(connection) as one_month:  # this month and the same month a year before
        evaluate(user, codes=codes, orgs=orgs, grain="month", start=start, end=end)
    start, end = _months_back(12)
    with django_assert_max_num_queries(len(one_month.captured_queries)):
        values = evaluate(user, codes=codes, orgs=orgs, grain="month", start=start, end=end)
    assert len(values) == len(codes) * len(orgs) * 12


def _selector_totals(user: User, org: OrgUnit, start: dt.date, end: dt.date) -> dict[str, float | None]:
    """The org unit's figures asked of each selector for exactly [start, end)."""
    codes = _codes(org)
    last_day = end - dt.timedelta(days=1)
    referrals = [f for iid, f in referral_figures(user, start=start, end=end).items() if _code(iid) in codes]
    consults = [f for f in consult_figures(user, start=start, end=last_day) if _code(f.institution_id) in codes]
    stationing = [f for f in stationing_figures(user, start=start, end=last_day) if f.institution.code in codes]
    return {
        "up_referrals": sum(f.up_out for f in referrals) if referrals else None,
        "down_referrals": sum(f.down_out for f in referrals) if referrals else None,
        "teleconsultations": sum(f.delivered for f in consults) if consults else None,
        "doctors_stationed": sum(f.doctors_stationed for f in stationing) if stationing else None,
        "onsite_days_delivered": (
            round(sum(f.days_delivered for f in stationing) / sum(f.days_committed for f in stationing) * 100, 6)
            if stationing and sum(f.days_committed for f in stationing)
            else None
        ),
    }


def _code(institution_id: int) -> str:
    return str(Institution.objects.values_list("code", flat=True).get(pk=institution_id))


@pytest.mark.parametrize("grain", ["month", "quarter", "year"])
def test_months_pooled_into_periods_give_what_the_selectors_give_for_the_period(grain: str) -> None:
    """Referrals, consultations and stationing are read month by month and pooled: each period's
    value is the one the selector gives when asked for exactly that period. A doctor stationed in
    two months of a quarter is one doctor of the quarter, not two."""
    user = User.objects.get(username="admin")
    year = timezone.localdate().year - 1
    codes = ["up_referrals", "down_referrals", "teleconsultations", "doctors_stationed", "onsite_days_delivered"]
    orgs = [NEURO, OrgUnit("institution", "qzph", ""), OrgUnit("institution", "csph", "")]
    values = evaluate(user, codes=codes, orgs=orgs, grain=grain, start=D(year, 1, 1), end=D(year + 1, 1, 1))  # type: ignore[arg-type]
    assert len(values) == len(codes) * len(orgs) * {"month": 12, "quarter": 4, "year": 1}[grain]
    assert sum(1 for v in values if v.value) >= len(values) // 3  # the demo has such records
    expected: dict[tuple[str, int], dict[str, float | None]] = {}
    for v in values:
        key = (v.org.key, v.period.key)
        if key not in expected:
            expected[key] = _selector_totals(user, v.org, v.period.start, v.period.end)
        assert v.value == expected[key][v.indicator], (v.indicator, v.org.key, v.period.label)


def test_a_breakdown_counting_residents_has_the_operational_figures_of_every_institution_it_names(
    empty_store: None,
) -> None:
    """Kaihua's residents treated at Changshan's hospital (outside Kaihua) appear in a breakdown by
    institution; a measure over the referrals beside them is read for that hospital too."""
    from yilian.indicators.engine import breakdown
    from yilian.indicators.tests.factories import land, visit

    Indicator.objects.create(
        code="residents_per_up_referral",
        name_zh="居民就诊人次与上转人次之比",
        programme="consortium",
        unit="ratio",
        numerator={"source": "visits", "measure": "rows", "attribute_to": "residence"},
        denominator={"source": "referrals", "measure": "sum:up_out"},
    )
    today = timezone.localdate()
    land(
        Kind.VISITS,
        [visit("csph", "KV1", today, "same_city", "330824"), visit("csph", "KV2", today, "same_city", "330824")],
    )
    admin = User.objects.get(username="admin")
    start = today.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    before = referral_figures(admin, start=start, end=end).get(_id("csph"))
    up_before = before.up_out if before else 0
    referral_create(Status.SENT, direction="up", from_code="csph", to_code="qzph")
    org = OrgUnit("region", "330824", "开化县")
    rows = breakdown(
        admin, code="residents_per_up_referral", org=org, grain="month", start=start, end=end, by="institution"
    )
    csph = next(r for r in rows if r.key == "csph")
    assert (csph.numerator, csph.denominator) == (2, up_before + 1)


def _id(code: str) -> int:
    return int(Institution.objects.values_list("pk", flat=True).get(code=code))
