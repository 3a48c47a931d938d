"""Consultation figures against a small dataset computed by hand: requests and deliveries in the
period by kind, response times (request to first answer: eConsults in hours, readings in minutes) as
median and 90th percentile, the share of close-outs in which a referral was avoided; China-time period
boundaries; who may see them.

The dataset sits in March 2019 (China time), long before anything the demo records, so that the
figures are exactly these consults."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from yilian.consults import selectors, services
from yilian.consults.models import Consult, Kind
from yilian.consults.selectors import ConsultFigures
from yilian.consults.tests import factories
from yilian.registry.models import Institution, User

pytestmark = pytest.mark.django_db

CN = zoneinfo.ZoneInfo("Asia/Shanghai")
MARCH_1, MARCH_31 = dt.date(2019, 3, 1), dt.date(2019, 3, 31)


def t(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2019, month, day, hour, minute, tzinfo=CN)


def written(requested: dt.datetime, answered: dt.datetime | None, kind: str = Kind.ECONSULT) -> Consult:
    expert = factories.user("expert")
    consult = factories.request(kind, at=requested)
    if answered is None:
        return consult
    services.consult_accept(actor=expert, consult=consult, at=requested + dt.timedelta(minutes=5))
    return services.consult_answer(actor=expert, consult=consult, answer="建议保守治疗", at=answered)


def close(consult: Consult, at: dt.datetime, *, avoided: bool) -> None:
    services.consult_close(
        actor=factories.user("kaihua"),
        consult=consult,
        referral_avoided=avoided,
        management_changed=True,
        value_rating=4,
        at=at,
    )


@pytest.fixture
def march(time_machine: Any) -> None:
    """The dataset (kaihua at khph asks zju2):

    ====  ============  ================  =================  ========  =================
          kind          requested         answered           hours     closed
    ====  ============  ================  =================  ========  =================
    A     eConsult      Mar 2 09:00       Mar 2 13:00        4         Mar 3, avoided
    B     eConsult      Mar 3 09:00       Mar 4 09:00        24        Mar 5, not avoided
    C     reading       Mar 4 09:00       Mar 4 10:00        1         -
    D     eConsult      Mar 5 09:00       Mar 5 19:00        10        Mar 6, avoided
    E     teleconsult.  Mar 2 09:00       Mar 4 11:30 concl. (session) -
    F     eConsult      Feb 27 09:00      Mar 1 00:30        39.5      -  (no Feb 29 in 2019)
    G     eConsult      Mar 31 23:30      -                            -
    H     eConsult      Apr 1 00:00       -                            -
    I     eConsult      Feb 28 23:59      -                            -
    ====  ============  ================  =================  ========  =================
    """
    time_machine.move_to(t(2, 9), tick=False)
    a = written(t(2, 9), t(2, 13))
    close(a, t(3, 9), avoided=True)
    b = written(t(3, 9), t(4, 9))
    close(b, t(5, 9), avoided=False)
    written(t(4, 9), t(4, 10), kind=Kind.READING)
    d = written(t(5, 9), t(5, 19))
    close(d, t(6, 9), avoided=True)
    expert = factories.user("expert")
    e = services.consult_accept(actor=expert, consult=factories.request(Kind.TELECONSULTATION, at=t(2, 9)))
    services.consult_schedule(actor=expert, consult=e, starts_at=t(4, 10), ends_at=t(4, 11))
    services.consult_start(actor=expert, consult=e)
    services.consult_conclude(actor=expert, consult=e, conclusion="建议手术", at=t(4, 11, 30))
    written(t(27, 9, month=2), t(1, 0, 30))
    written(t(31, 23, 30), None)
    written(t(1, 0, month=4), None)
    written(t(28, 23, 59, month=2), None)


def by_code(figures: list[ConsultFigures]) -> dict[str, ConsultFigures]:
    names = dict(Institution.objects.filter(pk__in=[f.institution_id for f in figures]).values_list("pk", "code"))
    return {names[f.institution_id]: f for f in figures}


def test_figures_for_march_match_the_hand_computed_numbers(march: None) -> None:
    figures = by_code(selectors.consult_figures(factories.user("office"), start=MARCH_1, end=MARCH_31))
    assert set(figures) == {"khph", "zju2"}
    khph, zju2 = figures["khph"], figures["zju2"]
    assert khph.requested == 6  # A B C D E G
    assert khph.delivered_by_kind == {"econsult": 4, "reading": 1, "teleconsultation": 1}  # A B D F, C, E
    assert khph.delivered == 6
    # eConsults in hours; the reading C (one hour) apart, in minutes.
    assert sorted(khph.response_hours) == [4.0, 10.0, 24.0, 39.5]
    assert khph.median_response_hours == 17.0  # (10 + 24) / 2
    # Inclusive 90th percentile of 4 values: position 0.9 x 3 = 2.7, so 24 + 0.7 x (39.5 - 24) = 34.85.
    assert khph.p90_response_hours == 34.9
    assert khph.reading_minutes == [60.0]
    assert khph.median_reading_minutes == khph.p90_reading_minutes == 60.0
    assert (khph.closed, khph.referral_avoided, khph.referral_avoided_share) == (3, 2, 0.667)
    assert (zju2.requested, zju2.answered_for_others, zju2.delivered) == (0, 6, 0)
    # Asked for one institution only, its figures are the same and the others are left out.
    zju2_id = Institution.objects.get(code="zju2").pk
    only = by_code(
        selectors.consult_figures(factories.user("office"), start=MARCH_1, end=MARCH_31, institution_ids=[zju2_id])
    )
    assert set(only) == {"zju2"}
    assert (only["zju2"].requested, only["zju2"].answered_for_others) == (0, 6)


def test_the_period_runs_from_midnight_to_midnight_china_time(march: None) -> None:
    office = factories.user("office")
    (first_day,) = [
        f for f in selectors.consult_figures(office, start=MARCH_1, end=MARCH_1) if f.requested or f.delivered
    ]
    assert (first_day.requested, first_day.delivered_by_kind) == (0, {"econsult": 1})  # F answered at 00:30
    assert first_day.response_hours == [39.5]
    assert first_day.p90_response_hours == 39.5 and first_day.referral_avoided_share is None
    last = by_code(selectors.consult_figures(office, start=MARCH_31, end=MARCH_31))
    assert last["khph"].requested == 1 and last["khph"].delivered == 0  # G at 23:30
    april = by_code(selectors.consult_figures(office, start=dt.date(2019, 4, 1), end=dt.date(2019, 4, 1)))
    assert april["khph"].requested == 1  # H at midnight
    february = by_code(selectors.consult_figures(office, start=dt.date(2019, 2, 1), end=dt.date(2019, 2, 28)))
    assert february["khph"].requested == 2 and february["khph"].delivered == 0  # F and I


def test_figures_need_the_figures_permission_and_an_ordered_period(persona: Any) -> None:
    for username in ("kaihua", "expert", "telecentre"):
        with pytest.raises(PermissionDenied):
            selectors.consult_figures(persona(username), start=MARCH_1, end=MARCH_31)
    with pytest.raises(ValidationError):
        selectors.consult_figures(persona("office"), start=MARCH_31, end=MARCH_1)


def test_the_commission_sees_the_figures_of_its_region_only(march: None) -> None:
    commission: User = factories.user("commission")
    figures = by_code(selectors.consult_figures(commission, start=MARCH_1, end=MARCH_31))
    assert figures["khph"].requested == 6 and figures["khph"].delivered == 6
    assert "zju2" not in figures  # a Hangzhou hospital: not the Quzhou commission's


def test_figures_by_month_put_each_event_in_the_month_it_happened(march: None) -> None:
    office = factories.user("office")
    months = selectors.consult_figures_by_month(office, start=dt.date(2019, 2, 1), end=dt.date(2019, 4, 30))
    assert sorted(months) == [dt.date(2019, 2, 1), dt.date(2019, 3, 1), dt.date(2019, 4, 1)]
    codes = dict(Institution.objects.values_list("pk", "code"))

    def of(month: dt.date) -> dict[str, tuple[int, int, int, int]]:
        return {
            codes[iid]: (f.requested, f.delivered, f.answered_for_others, f.closed) for iid, f in months[month].items()
        }

    # F is requested on 27 February and answered on 1 March: requested in February, delivered in March.
    assert of(dt.date(2019, 2, 1)) == {"khph": (2, 0, 0, 0)}  # F, I
    assert of(dt.date(2019, 3, 1)) == {"khph": (6, 6, 0, 3), "zju2": (0, 0, 6, 0)}
    assert of(dt.date(2019, 4, 1)) == {"khph": (1, 0, 0, 0)}  # H at midnight
    with pytest.raises(PermissionDenied):
        selectors.consult_figures_by_month(factories.user("kaihua"), start=MARCH_1, end=MARCH_31)
