"""The events bus that feeds the live boards, with both backends.

In-process (the default): a message reaches the subscribers of its channel in this process, be
they threads waiting in ``get`` or coroutines waiting in ``aget`` (woken from the publishing
thread), until they close their subscription; ``publish_on_commit`` publishes only once the
transaction commits. PostgreSQL (``EVENTS_BACKEND=postgres``): ``NOTIFY yilian_events`` carries
the message, so that every server process (each with its own bus and LISTEN connection) hears what
any process, or any other database client, publishes; payloads PostgreSQL would refuse are
refused before sending, and a notification that is not ours is ignored.

Where a test must show that a message did *not* arrive, it publishes a marker afterwards and
checks that the marker is the next message: delivery is in order, so nothing needs a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from django.db import connection, transaction
from django.test.utils import override_settings

from yilian.core import events

T = TypeVar("T")

CHANNEL = "green.institution.1"
OTHER = "green.institution.2"
WAIT = 10.0  # seconds a test waits for a message that must come


def run_in_own_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end in a thread of its own, with its own event loop: the test's
    thread may already have a loop running (the browser tests' Playwright leaves one)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def inprocess() -> Iterator[events.InProcessBus]:
    events.reset()
    with override_settings(EVENTS_BACKEND="inprocess"):
        bus = events.bus()
        assert bus.name == "inprocess"
        yield bus
    events.reset()


def marker(n: int = 0) -> dict[str, Any]:
    return {"kind": "marker", "n": n}


def failed_step() -> None:
    """A step that announces itself, then fails: its transaction rolls back."""
    with transaction.atomic():
        events.publish_on_commit(CHANNEL, kind="rolled_back")
        raise RuntimeError("the step failed")


# --- in-process ------------------------------------------------------------------------------


def test_a_message_reaches_the_subscribers_of_its_channel_only(inprocess: events.InProcessBus) -> None:
    with (
        events.subscribe([CHANNEL]) as mine,
        events.subscribe([OTHER]) as other,
        events.subscribe([CHANNEL, OTHER]) as both,
    ):
        events.publish(CHANNEL, kind="accepted", case="c1", status="accepted")
        expected = {"channel": CHANNEL, "kind": "accepted", "case": "c1", "status": "accepted"}
        assert mine.get(timeout=WAIT) == expected
        assert both.get(timeout=WAIT) == expected
        events.publish(OTHER, **marker())
        assert other.get(timeout=WAIT) == {"channel": OTHER, **marker()}  # the first it hears
        assert both.get(timeout=WAIT) == {"channel": OTHER, **marker()}
        events.publish(CHANNEL, **marker(1))
        assert mine.get(timeout=WAIT) == {"channel": CHANNEL, **marker(1)}


def test_a_thread_waiting_in_get_receives_a_message_published_by_another_thread(
    inprocess: events.InProcessBus,
) -> None:
    with events.subscribe([CHANNEL]) as sub:
        assert sub.get(timeout=0) is None  # nothing yet: get gives up after its timeout
        publisher = threading.Thread(target=events.publish, args=(CHANNEL,), kwargs={"kind": "activated"})
        publisher.start()
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, "kind": "activated"}
        publisher.join()


def test_a_coroutine_waiting_in_aget_is_woken_by_a_publisher_in_another_thread(
    inprocess: events.InProcessBus,
) -> None:
    async def board() -> tuple[events.Message | None, events.Message | None, bool]:
        sub = events.subscribe([CHANNEL], asynchronous=True)
        try:
            nothing = await sub.aget(timeout=0.01)
            publisher = threading.Thread(target=events.publish, args=(CHANNEL,), kwargs={"kind": "declined"})
            # Start the publisher only once this coroutine is suspended in aget.
            asyncio.get_running_loop().call_soon(publisher.start)
            message = await sub.aget(timeout=WAIT)
            publisher.join()
            return nothing, message, publisher.ident != threading.get_ident()
        finally:
            sub.close()

    nothing, message, other_thread = run_in_own_loop(board())
    assert nothing is None
    assert message == {"channel": CHANNEL, "kind": "declined"}
    assert other_thread


def test_a_closed_subscription_receives_nothing_more(inprocess: events.InProcessBus) -> None:
    before = inprocess.hub.count()
    closed = events.subscribe([CHANNEL])
    with events.subscribe([CHANNEL]) as open_:
        assert inprocess.hub.count() == before + 2
        closed.close()
        assert inprocess.hub.count() == before + 1
        events.publish(CHANNEL, **marker())
        assert open_.get(timeout=WAIT) == {"channel": CHANNEL, **marker()}
        assert closed.get(timeout=0) is None
    assert inprocess.hub.count() == before  # leaving ``with`` closes too


def test_a_subscriber_whose_event_loop_has_ended_is_dropped(inprocess: events.InProcessBus) -> None:
    async def subscribe() -> events.Subscription:
        return events.subscribe([CHANNEL], asynchronous=True)

    before = inprocess.hub.count()
    gone = run_in_own_loop(subscribe())  # the loop closes when run returns, as when a board tab closes
    assert inprocess.hub.count() == before + 1
    events.publish(CHANNEL, kind="accepted")
    assert inprocess.hub.count() == before
    gone.close()


@pytest.mark.django_db
def test_publish_on_commit_publishes_after_commit_and_never_on_rollback(
    inprocess: events.InProcessBus, django_capture_on_commit_callbacks: Any
) -> None:
    with events.subscribe([CHANNEL]) as sub:
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(RuntimeError):
                failed_step()
            with transaction.atomic():
                events.publish_on_commit(CHANNEL, kind="committed")
            assert sub.get(timeout=0) is None  # not before the outer transaction commits
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, "kind": "committed"}
        events.publish(CHANNEL, **marker())
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, **marker()}


def test_an_sse_frame_has_the_event_name_and_one_data_line_per_line() -> None:
    at = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    assert (
        events.sse("case", {"kind": "accepted", "case": "c1", "at": at}, id="7")
        == 'id: 7\nevent: case\ndata: {"kind":"accepted","case":"c1","at":"2026-03-02 09:00:00+00:00"}\n\n'
    )
    assert events.sse("hello", '{"board":"i-1"}') == 'event: hello\ndata: {"board":"i-1"}\n\n'
    assert events.sse("note", "first line\nsecond line") == "event: note\ndata: first line\ndata: second line\n\n"
    assert events.sse("ping", "") == "event: ping\ndata: \n\n"
    frame = events.sse("case", {"note": "已接收"})
    assert frame.endswith("\n\n") and frame.count("\n\n") == 1
    assert json.loads(frame.split("data: ", 1)[1]) == {"note": "已接收"}


def test_the_postgres_backend_needs_postgresql(db: None) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("checks the refusal on other databases")
    events.reset()
    try:
        with override_settings(EVENTS_BACKEND="postgres"), pytest.raises(RuntimeError, match="PostgreSQL"):
            events.bus()
    finally:
        events.reset()


# --- PostgreSQL LISTEN/NOTIFY ----------------------------------------------------------------


@pytest.fixture
def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's: set YILIAN_TEST_DATABASE_URL and make test runs it")


@pytest.fixture
def pg_bus(postgresql_only: None, transactional_db: None) -> Iterator[events.PostgresBus]:
    """The PostgreSQL bus of this process, on the test database. Committed transactions are
    needed: NOTIFY is delivered at commit."""
    events.reset()
    with override_settings(EVENTS_BACKEND="postgres"):
        bus = events.bus()
        assert isinstance(bus, events.PostgresBus)
        yield bus
    events.reset()


def notify_from_another_client(payload: str) -> None:
    """What another process (or any database client) sends: NOTIFY on the bus's channel."""
    import psycopg

    with psycopg.connect(events.conninfo_from_settings(), autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", [events.PG_CHANNEL, payload])


def test_a_listener_hears_a_notify_sent_by_another_connection(pg_bus: events.PostgresBus) -> None:
    with events.subscribe([CHANNEL]) as sub, events.subscribe([OTHER]) as other:
        notify_from_another_client(json.dumps({"channel": CHANNEL, "kind": "accepted", "case": "c1"}))
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, "kind": "accepted", "case": "c1"}
        events.publish(OTHER, **marker())
        assert other.get(timeout=WAIT) == {"channel": OTHER, **marker()}  # the other channel heard nothing before


def test_a_message_published_through_the_bus_goes_out_as_a_notification(pg_bus: events.PostgresBus) -> None:
    import psycopg

    with psycopg.connect(events.conninfo_from_settings(), autocommit=True) as elsewhere:
        elsewhere.execute(f"LISTEN {events.PG_CHANNEL}")
        with events.subscribe([CHANNEL]) as sub:
            events.publish(CHANNEL, kind="node", case="c2", to=7)
            expected = {"channel": CHANNEL, "kind": "node", "case": "c2", "to": 7}
            assert sub.get(timeout=WAIT) == expected
        heard = next(elsewhere.notifies(timeout=WAIT, stop_after=1))
        assert heard.channel == events.PG_CHANNEL
        assert json.loads(heard.payload) == expected


def test_two_server_processes_both_hear_every_message(pg_bus: events.PostgresBus) -> None:
    """Each server process has its own bus with its own LISTEN connection."""
    second = events.PostgresBus(events.conninfo_from_settings())
    try:
        with events.subscribe([CHANNEL]) as here, second.subscribe([CHANNEL]) as there:
            events.publish(CHANNEL, kind="activated", case="c3")
            expected = {"channel": CHANNEL, "kind": "activated", "case": "c3"}
            assert here.get(timeout=WAIT) == expected
            assert there.get(timeout=WAIT) == expected
            second.publish(CHANNEL, {"kind": "accepted", "case": "c3"})
            expected = {"channel": CHANNEL, "kind": "accepted", "case": "c3"}
            assert here.get(timeout=WAIT) == expected
            assert there.get(timeout=WAIT) == expected
    finally:
        second.stop()


def test_a_payload_over_the_limit_is_refused_before_sending(pg_bus: events.PostgresBus) -> None:
    with events.subscribe([CHANNEL]) as sub:
        with pytest.raises(ValueError, match="too large"):
            events.publish(CHANNEL, kind="activated", note="x" * events.MAX_PAYLOAD)
        events.publish(CHANNEL, kind="activated", note="x" * (events.MAX_PAYLOAD - 100))
        message = sub.get(timeout=WAIT)
        assert message is not None and message["note"] == "x" * (events.MAX_PAYLOAD - 100)


def test_a_notification_that_is_not_json_is_ignored(pg_bus: events.PostgresBus) -> None:
    with events.subscribe([CHANNEL]) as sub:
        notify_from_another_client("not json {")
        notify_from_another_client(json.dumps({"channel": CHANNEL, **marker()}))
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, **marker()}
        # The listener is still there for what comes next.
        events.publish(CHANNEL, **marker(1))
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, **marker(1)}


def test_publish_on_commit_notifies_only_committed_steps(pg_bus: events.PostgresBus) -> None:
    with events.subscribe([CHANNEL]) as sub:
        with pytest.raises(RuntimeError):
            failed_step()
        with transaction.atomic():
            events.publish_on_commit(CHANNEL, kind="committed")
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, "kind": "committed"}
        events.publish_on_commit(CHANNEL, kind="at_once")  # outside a transaction
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, "kind": "at_once"}


def test_a_message_too_large_after_commit_does_not_fail_the_step(pg_bus: events.PostgresBus) -> None:
    with events.subscribe([CHANNEL]) as sub:
        with transaction.atomic():
            events.publish_on_commit(CHANNEL, kind="activated", note="x" * 8000)
        events.publish(CHANNEL, **marker())
        assert sub.get(timeout=WAIT) == {"channel": CHANNEL, **marker()}
