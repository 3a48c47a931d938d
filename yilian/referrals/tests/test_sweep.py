"""The worker's sweep with a controlled clock: overdue referrals notify the receiving coordinators,
then escalate to the consortium office; patients who do not come are marked no-show after the
grace period; service levels come from the consortium's settings; running twice changes nothing."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from yilian.notifications.models import Notification
from yilian.referrals import services
from yilian.referrals.models import Referral, Status
from yilian.referrals.tests.factories import MakeReferral
from yilian.registry.models import Consortium, User

pytestmark = pytest.mark.django_db

# A Monday morning in Quzhou; the sweep does not depend on the date, only on elapsed time.
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def clock(time_machine: Any) -> Callable[[dt.timedelta], None]:
    """Stand the clock still at T0; ``clock(delta)`` moves it to T0 + delta."""
    time_machine.move_to(T0, tick=False)

    def move(delta: dt.timedelta) -> None:
        time_machine.move_to(T0 + delta, tick=False)

    return move


@pytest.fixture
def sweep(django_capture_on_commit_callbacks: Any) -> Callable[[], services.SweepReport]:
    """Run the sweep and what it announces after commit (notifications), as the worker does."""

    def run() -> services.SweepReport:
        with django_capture_on_commit_callbacks(execute=True):
            return services.referral_sweep()

    return run


def notices(user: User, referral: Referral, title_en: str) -> int:
    return Notification.objects.filter(
        user=user, link__contains=str(referral.public_id), title_en__startswith=title_en
    ).count()


def level(referral: Referral) -> int:
    return Referral.objects.get(pk=referral.pk).escalation_level


def test_routine_referral_overdue_notifies_coordinators_then_escalates_to_the_office(
    make_referral: MakeReferral,
    persona: Callable[[str], User],
    neuro_office: User,
    clock: Callable[[dt.timedelta], None],
    sweep: Callable[[], services.SweepReport],
) -> None:
    referral = make_referral(Status.SENT)
    coordinator, office = persona("coordinator"), persona("office")
    assert referral.receive_due_at == T0 + 24 * HOUR and referral.decide_due_at == T0 + 48 * HOUR

    clock(24 * HOUR - MINUTE)
    sweep()
    assert level(referral) == 0
    assert notices(coordinator, referral, "Referral overdue") == 0

    clock(24 * HOUR + MINUTE)
    report = sweep()
    assert report.notified >= 1
    assert level(referral) == 1
    assert notices(coordinator, referral, "Referral overdue") == 1
    assert notices(neuro_office, referral, "Referral escalated") == 0

    clock(28 * HOUR - MINUTE)  # the default escalates 4 hours after the first notice
    sweep()
    assert level(referral) == 1

    clock(28 * HOUR + MINUTE)
    sweep()
    assert level(referral) == 2
    assert notices(neuro_office, referral, "Referral escalated") == 1
    assert notices(office, referral, "Referral escalated") == 0  # another consortium's office
    assert notices(coordinator, referral, "Referral overdue") == 1


def test_the_sweep_is_idempotent(
    make_referral: MakeReferral,
    persona: Callable[[str], User],
    neuro_office: User,
    clock: Callable[[dt.timedelta], None],
    sweep: Callable[[], services.SweepReport],
) -> None:
    referral = make_referral(Status.SENT)
    scheduled = make_referral(Status.SCHEDULED)
    assert scheduled.scheduled_at is not None
    clock(24 * HOUR + MINUTE)
    sweep()
    sweep()
    assert notices(persona("coordinator"), referral, "Referral overdue") == 1
    clock(3 * 24 * HOUR)  # past the escalation and the missed appointment's grace period
    sweep()
    before = Notification.objects.count()
    report = sweep()
    assert (report.notified, report.escalated, report.no_shows) == (0, 0, 0)
    assert Notification.objects.count() == before
    assert notices(neuro_office, referral, "Referral escalated") == 1
    assert scheduled.events.filter(action="mark_no_show").count() == 1


def test_urgent_referral_uses_two_and_four_hours(
    make_referral: MakeReferral,
    persona: Callable[[str], User],
    neuro_office: User,
    clock: Callable[[dt.timedelta], None],
    sweep: Callable[[], services.SweepReport],
) -> None:
    coordinator = persona("coordinator")
    referral = make_referral(Status.SENT, urgency="urgent")
    assert (referral.receive_due_at, referral.decide_due_at) == (T0 + 2 * HOUR, T0 + 4 * HOUR)

    clock(2 * HOUR + MINUTE)
    sweep()
    assert level(referral) == 1
    assert notices(coordinator, referral, "Referral overdue") == 1

    # Opened late but before the decision deadline: the decision clock starts fresh.
    clock(2 * HOUR + 10 * MINUTE)
    referral = services.referral_receive(actor=coordinator, referral=referral)
    assert referral.escalation_level == 0

    clock(4 * HOUR - MINUTE)
    sweep()
    assert level(referral) == 0
    clock(4 * HOUR + MINUTE)
    sweep()
    assert level(referral) == 1
    assert notices(coordinator, referral, "Referral overdue") == 2

    clock(4 * HOUR + 31 * MINUTE)  # urgent escalates half an hour after the notice
    sweep()
    assert level(referral) == 2
    assert notices(neuro_office, referral, "Referral escalated") == 1


def test_a_decision_stops_the_escalation(
    make_referral: MakeReferral,
    persona: Callable[[str], User],
    neuro_office: User,
    clock: Callable[[dt.timedelta], None],
    sweep: Callable[[], services.SweepReport],
) -> None:
    referral = make_referral(Status.RECEIVED)
    clock(48 * HOUR + MINUTE)
    sweep()
    assert level(referral) == 1
    clock(49 * HOUR)
    services.referral_accept(actor=persona("coordinator"), referral=referral)
    clock(60 * HOUR)
    sweep()
    assert level(referral) == 1
    assert notices(neuro_office, referral, "Referral escalated") == 0


def test_the_offices_service_level_changes_the_timings(
    make_referral: MakeReferral,
    persona: Callable[[str], User],
    neuro_office: User,
    neuro: Consortium,
    clock: Callable[[dt.timedelta], None],
    sweep: Callable[[], services.SweepReport],
) -> None:
    levels = {
        "urgency": "routine",
        "receive_within_minutes": 60,
        "decide_within_minutes": 180,
        "escalate_after_minutes": 15,
        "no_show_grace_minutes": 30,
    }
    with pytest.raises(PermissionDenied):
        services.service_level_set(actor=persona("coordinator"), consortium=neuro, **levels)  # type: ignore[arg-type]
    services.service_level_set(actor=neuro_office, consortium=neuro, **levels)  # type: ignore[arg-type]
    referral = make_referral(Status.SENT)
    assert (referral.receive_due_at, referral.decide_due_at) == (T0 + HOUR, T0 + 3 * HOUR)

    clock(HOUR - MINUTE)
    sweep()
    assert level(referral) == 0
    clock(HOUR + MINUTE)
    sweep()
    assert level(referral) == 1
    clock(HOUR + 16 * MINUTE)
    sweep()
    assert level(referral) == 2
    assert notices(neuro_office, referral, "Referral escalated") == 1
    # Another consortium keeps the defaults.
    zju2_quzhou = Consortium.objects.get(code="zju2-quzhou")
    assert services.service_levels_for(zju2_quzhou.pk, "routine").receive_within == 24 * HOUR


def test_patient_not_checked_in_becomes_a_no_show_after_the_grace_period(
    make_referral: MakeReferral,
    persona: Callable[[str], User],
    clock: Callable[[dt.timedelta], None],
    sweep: Callable[[], services.SweepReport],
) -> None:
    missed = make_referral(Status.SCHEDULED)
    came = make_referral(Status.SCHEDULED)
    appointment = missed.scheduled_at
    assert appointment is not None and appointment == T0 + 24 * HOUR
    grace = 24 * HOUR  # the routine default

    clock(24 * HOUR + 2 * HOUR)
    services.referral_check_in(actor=persona("coordinator"), referral=came)
    clock(24 * HOUR + grace - MINUTE)
    sweep()
    assert Referral.objects.get(pk=missed.pk).status == Status.SCHEDULED

    clock(24 * HOUR + grace + MINUTE)
    report = sweep()
    assert report.no_shows >= 1
    assert Referral.objects.get(pk=missed.pk).status == Status.NO_SHOW
    assert Referral.objects.get(pk=came.pk).status == Status.ARRIVED
    event = missed.events.order_by("-id").first()
    assert event is not None
    assert (event.action, event.side, event.actor) == ("mark_no_show", "system", None)
    assert event.data == {"scheduled_at": appointment.isoformat()}
    assert notices(persona("doctor"), missed, "Patient did not arrive") == 1


def test_urgent_no_show_grace_is_two_hours(
    make_referral: MakeReferral, clock: Callable[[dt.timedelta], None], sweep: Callable[[], services.SweepReport]
) -> None:
    referral = make_referral(Status.SCHEDULED, urgency="urgent")
    clock(24 * HOUR + 2 * HOUR - MINUTE)
    sweep()
    assert Referral.objects.get(pk=referral.pk).status == Status.SCHEDULED
    clock(24 * HOUR + 2 * HOUR + MINUTE)
    sweep()
    assert Referral.objects.get(pk=referral.pk).status == Status.NO_SHOW


def test_referrals_still_inside_their_window_do_not_hold_up_the_due_ones(
    make_referral: MakeReferral,
    clock: Callable[[dt.timedelta], None],
    sweep: Callable[[], services.SweepReport],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With more appointments in their grace period than one pass takes, the urgent one that is
    past its (shorter) grace is still marked: the pass selects only what is due."""
    monkeypatch.setattr(services, "SWEEP_BATCH", 2)
    waiting = [make_referral(Status.SCHEDULED) for _ in range(3)]  # routine: 24 h grace
    urgent = make_referral(Status.SCHEDULED, urgency="urgent")  # urgent: 2 h grace
    assert urgent.scheduled_at == waiting[0].scheduled_at == T0 + 24 * HOUR
    clock(24 * HOUR + 2 * HOUR + MINUTE)
    report = sweep()
    assert report.no_shows == 1
    assert Referral.objects.get(pk=urgent.pk).status == Status.NO_SHOW
    assert {Referral.objects.get(pk=r.pk).status for r in waiting} == {Status.SCHEDULED}
