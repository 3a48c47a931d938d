"""Races on one green-channel case, on PostgreSQL: whatever arrives at once, exactly one
destination ends up holding the patient and each time node has one current value.

Every step on a case first locks its referral row. Each test holds that lock itself, starts the
racing steps in threads (each with its own database connection), waits until all of them are
queued on the lock, and lets go: the steps then run one after the other, in the order they
arrived. A step that did not take the lock would not queue, and the test would fail.

SQLite locks the whole database file for every writer, so there is no row-level race to check
there: these tests skip on SQLite.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from yilian.core.errors import Conflict
from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD, seed_demo
from yilian.referrals import green_services
from yilian.referrals.green_services import PatientGiven
from yilian.referrals.models import (
    GreenCase,
    GreenNode,
    GreenOffer,
    GreenProtocol,
    OfferOutcome,
    Referral,
    ReferralEvent,
    Status,
)
from yilian.referrals.workflow import TransitionNotAllowed
from yilian.registry import services as registry_services
from yilian.registry.models import Consortium, Institution, User

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite locks the whole file, not rows; the row lock is what these tests check, on PostgreSQL")


@pytest.fixture
def demo(postgresql_only: None, transactional_db: None) -> GreenProtocol:
    """The demo alliance (transactional tests start from an emptied database) and its stroke protocol."""
    seed_demo()
    neuro = Consortium.objects.get(code="quzhou-neuro")
    green_services.green_protocols_install_defaults(consortium=neuro)
    return GreenProtocol.objects.get(consortium=neuro, code="stroke")


def coordinator(username: str, code: str) -> User:
    user = registry_services.user_create(actor=None, username=username, password=DEMO_PASSWORD, display_name=username)
    registry_services.membership_grant(
        actor=None, user=user, role=Role.ONCALL_COORDINATOR, institution=Institution.objects.get(code=code)
    )
    return user


def activate(protocol: GreenProtocol, *, now: dt.datetime | None = None) -> GreenCase:
    """A Changshan stroke with an occlusion: offered first to Quzhou (qzph), then Jiangshan (jsph)."""
    now = now or timezone.now()
    return green_services.green_activate(
        actor=User.objects.get(username="doctor"),
        sender=Institution.objects.get(code="csph"),
        protocol=protocol,
        patient=PatientGiven(sex="male", approximate_age=66),
        onset_at=now - dt.timedelta(hours=1),
        scores={"nihss": 14},
        findings=["lvo"],
        door_in_at=now - 20 * MINUTE,
        now=now,
    )


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one snapshot
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def wait_for_lock_waiters(n: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while lock_waiters() < n:
        assert time.monotonic() < deadline, f"expected {n} steps queued on the referral's row lock"
        time.sleep(0.05)


Outcome = dict[str, Any]


def race(referral_id: int, *steps: Callable[[], Any]) -> list[Outcome]:
    """Run ``steps`` in threads, queued on the referral's row lock in the order given; each
    outcome holds what the step returned or the exception it raised."""
    outcomes: list[Outcome] = [{} for _ in steps]

    def run(i: int) -> None:
        try:
            outcomes[i]["result"] = steps[i]()
        except Exception as exc:
            outcomes[i]["error"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(steps))]
    with transaction.atomic():
        Referral.objects.select_for_update().get(pk=referral_id)
        for n, thread in enumerate(threads, start=1):
            thread.start()
            wait_for_lock_waiters(n)
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    return outcomes


def fresh_case(case: GreenCase) -> GreenCase:
    return GreenCase.objects.get(pk=case.pk)


def test_two_coordinators_accepting_at_once_make_one_winner(demo: GreenProtocol) -> None:
    first, second = User.objects.get(username="coordinator"), coordinator("coordinator2", "qzph")
    case = activate(demo)

    def accept(username: str) -> Callable[[], Any]:
        return lambda: green_services.green_accept(actor=User.objects.get(username=username), case=fresh_case(case))

    outcomes = race(case.referral_id, accept(first.username), accept(second.username))
    assert "error" not in outcomes[0], outcomes[0]
    assert isinstance(outcomes[1].get("error"), (TransitionNotAllowed, Conflict)), outcomes[1]
    referral = Referral.objects.get(pk=case.referral_id)
    assert referral.status == Status.ACCEPTED
    (offer,) = GreenOffer.objects.filter(case=case)
    assert (offer.outcome, offer.answered_by_id) == (OfferOutcome.ACCEPTED, first.pk)
    assert ReferralEvent.objects.filter(referral=referral, action="accept").count() == 1


def holders(case: GreenCase) -> tuple[Referral, list[tuple[str, str]]]:
    referral = Referral.objects.select_related("to_institution").get(pk=case.referral_id)
    offers = [
        (o.institution.code, o.outcome)
        for o in GreenOffer.objects.filter(case=case).select_related("institution").order_by("rank")
    ]
    return referral, offers


def test_an_accept_racing_the_time_out_leaves_one_destination(demo: GreenProtocol) -> None:
    """The offer is overdue when Quzhou's coordinator taps accept and the worker's sweep runs at
    the same moment: whichever takes the case first decides; never both."""
    now = timezone.now()
    qzph = User.objects.get(username="coordinator")

    def accept(case: GreenCase) -> Callable[[], Any]:
        return lambda: green_services.green_accept(actor=User.objects.get(pk=qzph.pk), case=fresh_case(case))

    def sweep() -> Any:
        return green_services.green_sweep(now=now)

    # The coordinator is first: the case is accepted, and the sweep leaves it alone.
    first = activate(demo, now=now - 10 * MINUTE)  # its offer was due 5 minutes ago
    outcomes = race(first.referral_id, accept(first), sweep)
    assert [o.get("error") for o in outcomes] == [None, None]
    referral, offers = holders(first)
    assert referral.status == Status.ACCEPTED and referral.to_institution is not None
    assert referral.to_institution.code == "qzph"
    assert offers == [("qzph", OfferOutcome.ACCEPTED)]
    assert not ReferralEvent.objects.filter(referral=referral, action="forward").exists()

    # The sweep is first: the offer has timed out and moved on; the late accept is told where it went.
    second = activate(demo, now=now - 10 * MINUTE)
    outcomes = race(second.referral_id, sweep, accept(second))
    assert "error" not in outcomes[0], outcomes[0]
    assert isinstance(outcomes[1].get("error"), Conflict), outcomes[1]
    referral, offers = holders(second)
    assert referral.status == Status.FORWARDED and referral.to_institution is not None
    assert referral.to_institution.code == "jsph"
    assert offers == [("qzph", OfferOutcome.TIMED_OUT), ("jsph", OfferOutcome.PENDING)]

    # Either way: one destination holds each case, through one open or accepted offer.
    for case in (first, second):
        live = GreenOffer.objects.filter(case=case, outcome__in=[OfferOutcome.PENDING, OfferOutcome.ACCEPTED])
        assert live.count() == 1
        assert live.get().institution_id == Referral.objects.get(pk=case.referral_id).to_institution_id


def test_two_records_of_one_time_node_at_once_leave_one_current_value(demo: GreenProtocol) -> None:
    """Two phones at the sending hospital tap door-out together."""
    case = activate(demo)
    now = timezone.now()

    def door_out(at: dt.datetime, reason: str = "") -> Callable[[], Any]:
        return lambda: green_services.green_node_record(
            actor=User.objects.get(username="doctor"),
            case=fresh_case(case),
            node="door_out",
            at=at,
            correction_reason=reason,
        )

    outcomes = race(case.referral_id, door_out(now - 2 * MINUTE), door_out(now - MINUTE))
    assert "error" not in outcomes[0], outcomes[0]
    assert isinstance(outcomes[1].get("error"), Conflict), outcomes[1]  # already recorded: a reason is needed
    rows = GreenNode.objects.filter(case=case, node="door_out")
    assert [(r.at, r.superseded_at) for r in rows] == [(now - 2 * MINUTE, None)]

    # Two corrections at once, each with its reason: both are kept in history, one is current.
    outcomes = race(
        case.referral_id, door_out(now - 4 * MINUTE, "按监控时间更正"), door_out(now - 3 * MINUTE, "按救护车记录更正")
    )
    assert [o.get("error") for o in outcomes] == [None, None]
    current = GreenNode.objects.filter(case=case, node="door_out", superseded_at__isnull=True)
    assert current.count() == 1
    assert current.get().at == now - 3 * MINUTE  # the later of the two
    assert GreenNode.objects.filter(case=case, node="door_out").count() == 3
