"""The worker's sweep with a controlled clock: an overdue consult reminds the consulted side once,
then tells the consortium office once the further period has passed too; frozen sections run on
their own 30-minute clock; a consortium's own service levels replace the defaults; requests nobody
accepted expire; running the sweep twice changes nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from yilian.consults import services
from yilian.consults.models import Consult, Kind, ReadingType, Status
from yilian.consults.tests import factories
from yilian.consults.tests.conftest import T0
from yilian.consults.tests.factories import Cast
from yilian.notifications.models import Notification
from yilian.registry.models import Consortium, Discipline, User

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
OVERDUE, ESCALATED, EXPIRED = "Consult overdue", "Consult escalated", "Consult request expired"

Clock = Callable[[dt.timedelta], dt.datetime]
Sweep = Callable[[dt.timedelta], services.SweepReport]


@pytest.fixture
def sweep(clock: Clock, announced: Callable[[], AbstractContextManager[None]]) -> Sweep:
    """Move the clock to T0 + delta and run the sweep at that moment, with what it announces."""

    def run(delta: dt.timedelta) -> services.SweepReport:
        now = clock(delta)
        with announced():
            return services.consult_sweep(now=now)

    return run


def notices(user: User, consult: Consult, title_en: str) -> int:
    return Notification.objects.filter(
        user=user, link__contains=str(consult.public_id), title_en__startswith=title_en
    ).count()


def level(consult: Consult) -> int:
    return factories.reload(consult).escalation_level


def test_an_unaccepted_request_reminds_the_consulted_side_once_then_tells_the_office_once(
    people: Cast, sweep: Sweep
) -> None:
    consult = factories.request(at=T0)
    assert consult.accept_due_at == T0 + 24 * HOUR  # routine eConsult: accept within a day

    sweep(24 * HOUR - MINUTE)
    assert level(consult) == 0
    assert notices(people.expert, consult, OVERDUE) == 0

    report = sweep(24 * HOUR + MINUTE)
    assert report.reminded >= 1
    assert level(consult) == 1
    for told in (people.expert, people.coordinator):  # the pool and the coordinators
        assert notices(told, consult, OVERDUE) == 1
    assert notices(people.office, consult, ESCALATED) == 0

    sweep(24 * HOUR + 2 * MINUTE)
    assert notices(people.expert, consult, OVERDUE) == 1  # reminded once

    sweep(48 * HOUR - MINUTE)  # the further period (24 h) has not passed yet
    assert level(consult) == 1

    report = sweep(48 * HOUR + MINUTE)
    assert report.escalated >= 1
    assert level(consult) == 2
    assert notices(people.office, consult, ESCALATED) == 1
    assert notices(people.expert, consult, ESCALATED) == 0

    sweep(60 * HOUR)
    assert notices(people.office, consult, ESCALATED) == 1
    assert notices(people.expert, consult, OVERDUE) == 1


def test_running_the_sweep_twice_at_one_moment_changes_nothing(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(at=T0)
    sweep(3 * DAY)
    assert level(consult) == 2
    assert sweep(3 * DAY) == services.SweepReport()
    assert notices(people.expert, consult, OVERDUE) == 1
    assert notices(people.office, consult, ESCALATED) == 1


def test_an_unanswered_econsult_reminds_its_expert(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(at=T0)
    peer = factories.user_of(factories.doctor())  # in the pool, but the consult is taken
    services.consult_accept(actor=people.expert, consult=consult, at=T0 + HOUR)
    assert factories.reload(consult).answer_due_at == T0 + 48 * HOUR

    sweep(48 * HOUR - MINUTE)
    assert level(consult) == 0
    sweep(48 * HOUR + MINUTE)
    assert level(consult) == 1
    assert notices(people.expert, consult, OVERDUE) == 1
    assert notices(people.coordinator, consult, OVERDUE) == 1
    assert notices(peer, consult, OVERDUE) == 0
    sweep(72 * HOUR + MINUTE)
    assert level(consult) == 2
    assert notices(people.office, consult, ESCALATED) == 1


def test_a_request_accepted_late_is_reminded_again_when_its_answer_is_late(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(at=T0)
    sweep(25 * HOUR)
    assert level(consult) == 1  # reminded to accept
    services.consult_accept(actor=people.expert, consult=consult, at=T0 + 25 * HOUR)
    assert level(consult) == 0  # the answer has its own deadline and its own reminders

    sweep(48 * HOUR + MINUTE)
    assert level(consult) == 1
    assert notices(people.expert, consult, OVERDUE) == 2
    assert notices(people.office, consult, ESCALATED) == 0


def test_an_answered_consult_is_not_overdue(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(at=T0)
    services.consult_accept(actor=people.expert, consult=consult, at=T0 + HOUR)
    services.consult_answer(actor=people.expert, consult=consult, answer="建议保守治疗", at=T0 + 2 * HOUR)
    sweep(10 * DAY)
    assert level(consult) == 0
    assert factories.reload(consult).status == Status.ANSWERED


@pytest.mark.parametrize("urgency", ["routine", "urgent"])
def test_a_frozen_section_is_read_within_30_minutes_whatever_its_label(
    urgency: str, people: Cast, sweep: Sweep
) -> None:
    consult = factories.request(
        Kind.READING,
        at=T0,
        urgency=urgency,
        reading_type=ReadingType.FROZEN_SECTION,
        discipline=Discipline.PATHOLOGY,
        wanted_title="",
    )
    assert (consult.accept_due_at, consult.answer_due_at) == (T0 + 5 * MINUTE, T0 + 30 * MINUTE)
    services.consult_accept(actor=people.chair, consult=consult, at=T0 + 2 * MINUTE)  # the pathologist

    sweep(29 * MINUTE)
    assert level(consult) == 0
    sweep(31 * MINUTE)
    assert level(consult) == 1
    assert notices(people.chair, consult, OVERDUE) == 1
    sweep(35 * MINUTE)  # the office is told 5 minutes later
    assert level(consult) == 1
    sweep(36 * MINUTE)
    assert level(consult) == 2
    assert notices(people.office, consult, ESCALATED) == 1


def test_an_ordinary_urgent_reading_has_half_an_hour_to_answer_too(sweep: Sweep) -> None:
    consult = factories.request(Kind.READING, at=T0, urgency="urgent")
    assert (consult.accept_due_at, consult.answer_due_at) == (T0 + 10 * MINUTE, T0 + 30 * MINUTE)


def test_the_consortiums_own_service_levels_replace_the_defaults(people: Cast, sweep: Sweep) -> None:
    services.service_level_set(
        actor=people.office,
        consortium=Consortium.objects.get(code="zju2-quzhou"),
        kind=Kind.ECONSULT,
        urgency="routine",
        accept_within_minutes=120,
        answer_within_minutes=240,
        escalate_after_minutes=60,
    )
    consult = factories.request(at=T0)
    assert (consult.accept_due_at, consult.answer_due_at) == (T0 + 2 * HOUR, T0 + 4 * HOUR)
    other = factories.request(Kind.TELECONSULTATION, at=T0)  # another kind keeps the defaults
    assert other.accept_due_at == T0 + 24 * HOUR

    sweep(2 * HOUR + MINUTE)
    assert level(consult) == 1
    sweep(3 * HOUR + 2 * MINUTE)
    assert level(consult) == 2
    assert level(other) == 0


def test_a_routine_request_nobody_accepted_expires_after_seven_days(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(at=T0)
    accepted = factories.request(at=T0)
    services.consult_accept(actor=people.expert, consult=accepted, at=T0 + HOUR)
    sweep(7 * DAY - MINUTE)
    assert factories.reload(consult).status == Status.REQUESTED
    report = sweep(7 * DAY + MINUTE)
    assert report.expired >= 1
    assert factories.reload(consult).status == Status.EXPIRED
    assert factories.reload(accepted).status == Status.ACCEPTED
    assert notices(people.requester, consult, EXPIRED) == 1
    assert sweep(7 * DAY + 2 * MINUTE).expired == 0
    assert notices(people.requester, consult, EXPIRED) == 1


def test_an_urgent_request_nobody_accepted_expires_after_a_day(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(at=T0, urgency="urgent")
    sweep(DAY - MINUTE)
    assert factories.reload(consult).status == Status.REQUESTED
    sweep(DAY + MINUTE)
    assert factories.reload(consult).status == Status.EXPIRED


def test_a_follow_up_question_gets_a_fresh_answer_deadline(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(at=T0)
    services.consult_accept(actor=people.expert, consult=consult, at=T0 + HOUR)
    services.consult_answer(actor=people.expert, consult=consult, answer="建议保守治疗", at=T0 + 2 * HOUR)
    services.consult_follow_up(actor=people.requester, consult=consult, text="血肿扩大怎么办？", at=T0 + 5 * DAY)
    assert factories.reload(consult).answer_due_at == T0 + 5 * DAY + 48 * HOUR

    sweep(5 * DAY + MINUTE)
    assert level(consult) == 0
    assert notices(people.office, consult, ESCALATED) == 0
    sweep(7 * DAY + MINUTE)
    assert level(consult) == 1
    assert notices(people.expert, consult, OVERDUE) == 1


def test_the_answer_clock_stops_while_the_expert_waits_for_information(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(at=T0)
    services.consult_accept(actor=people.expert, consult=consult, at=T0 + HOUR)
    services.consult_ask_info(actor=people.expert, consult=consult, text="请补充头颅CT原始图像")
    assert factories.reload(consult).answer_due_at is None

    sweep(5 * DAY)  # the requester takes days: nobody is reminded meanwhile
    assert level(consult) == 0
    assert notices(people.expert, consult, OVERDUE) == 0

    services.consult_provide_info(actor=people.requester, consult=consult, text="已上传CT图像", at=T0 + 5 * DAY + HOUR)
    assert factories.reload(consult).answer_due_at == T0 + 5 * DAY + HOUR + 48 * HOUR
    sweep(5 * DAY + 49 * HOUR + MINUTE)
    assert level(consult) == 1


def test_an_accepted_teleconsultation_must_be_scheduled_within_the_accept_period(people: Cast, sweep: Sweep) -> None:
    consult = factories.request(Kind.TELECONSULTATION, at=T0)
    services.consult_accept(actor=people.expert, consult=consult, at=T0 + HOUR)
    assert factories.reload(consult).answer_due_at == T0 + HOUR + 24 * HOUR  # routine: accept within 24 h

    sweep(25 * HOUR - MINUTE)
    assert level(consult) == 0
    sweep(25 * HOUR + MINUTE)  # accepted, never given a time
    assert level(consult) == 1
    assert notices(people.expert, consult, OVERDUE) == 1
