"""The events bus: small messages on named channels, for live pages (Server-Sent Events).

Two backends, chosen by ``settings.EVENTS_BACKEND`` (environment ``YILIAN_EVENTS_BACKEND``):

- ``inprocess`` (default): a message reaches the subscribers of this process only. Right for one
  server process (the demo, a small installation).
- ``postgres``: ``publish`` sends ``NOTIFY yilian_events`` and every process LISTENs on one
  dedicated connection (a daemon thread), so that several server processes behind a proxy all
  hear every message. Needs PostgreSQL as the database.

Messages carry no patient data (an id, a kind, a status): a page that hears one fetches what it
may see through its scoped views. A message is published after the transaction that caused it
commits (``publish_on_commit``), so no page learns of a change that was rolled back.

Subscribers are either threads (``Subscription.get``; WSGI, tests) or coroutines
(``Subscription.aget``; ASGI streaming responses); delivery to a coroutine goes through its
event loop's ``call_soon_threadsafe``, so that a publisher in any thread wakes it at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection, transaction

log = logging.getLogger("yilian.events")

PG_CHANNEL = "yilian_events"
MAX_PAYLOAD = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more

Message = dict[str, Any]


class Subscription:
    """A subscriber's mailbox for some channels. Close it when done (``with`` does)."""

    def __init__(self, hub: Hub, channels: Iterable[str], *, asynchronous: bool) -> None:
        self.hub = hub
        self.channels = frozenset(channels)
        self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop() if asynchronous else None
        self._aqueue: asyncio.Queue[Message] | None = asyncio.Queue() if asynchronous else None
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()

    def deliver(self, message: Message) -> None:
        if self._loop is not None and self._aqueue is not None:
            try:
                self._loop.call_soon_threadsafe(self._aqueue.put_nowait, message)
            except RuntimeError:  # the loop has closed: the subscriber is gone
                self.close()
        else:
            self._queue.put(message)

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    async def aget(self, timeout: float | None = None) -> Message | None:
        assert self._aqueue is not None, "subscribe(asynchronous=True) for aget"
        try:
            return await asyncio.wait_for(self._aqueue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.hub.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    """This process's subscribers, by channel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_channel: dict[str, set[Subscription]] = {}

    def add(self, sub: Subscription) -> None:
        with self._lock:
            for ch in sub.channels:
                self._by_channel.setdefault(ch, set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            for ch in sub.channels:
                subs = self._by_channel.get(ch)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._by_channel[ch]

    def deliver(self, channel: str, message: Message) -> int:
        with self._lock:
            subs = list(self._by_channel.get(channel, ()))
        for sub in subs:
            sub.deliver(message)
        return len(subs)

    def count(self) -> int:
        with self._lock:
            return len({s for subs in self._by_channel.values() for s in subs})


class InProcessBus:
    name = "inprocess"

    def __init__(self) -> None:
        self.hub = Hub()

    def publish(self, channel: str, data: Message) -> None:
        self.hub.deliver(channel, {"channel": channel, **data})

    def subscribe(self, channels: Iterable[str], *, asynchronous: bool = False) -> Subscription:
        sub = Subscription(self.hub, channels, asynchronous=asynchronous)
        self.hub.add(sub)
        return sub

    def stop(self) -> None:
        return None


class PostgresBus(InProcessBus):
    """NOTIFY to publish; one LISTEN connection per process feeds the local hub."""

    name = "postgres"

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self.conninfo = conninfo
        self._listener: threading.Thread | None = None
        self._started = threading.Lock()
        self._ready = threading.Event()
        self._stopping = threading.Event()

    def publish(self, channel: str, data: Message) -> None:
        payload = json.dumps({"channel": channel, **data}, separators=(",", ":"), default=str)
        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError("event payload too large for NOTIFY; send an id, not the record")
        with connection.cursor() as cur:
            cur.execute("SELECT pg_notify(%s, %s)", [PG_CHANNEL, payload])

    def subscribe(self, channels: Iterable[str], *, asynchronous: bool = False) -> Subscription:
        self.start()
        return super().subscribe(channels, asynchronous=asynchronous)

    def start(self, wait: float = 10.0) -> None:
        with self._started:
            if self._listener is None or not self._listener.is_alive():
                self._stopping.clear()
                self._listener = threading.Thread(target=self._listen, name="events-listen", daemon=True)
                self._listener.start()
        self._ready.wait(wait)

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=5)

    def _listen(self) -> None:
        import psycopg

        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {PG_CHANNEL}")
                    self._ready.set()
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._dispatch(note.payload)
            except Exception:
                self._ready.clear()
                log.exception("events: the LISTEN connection failed; reconnecting in 1 s")
                time.sleep(1.0)

    def _dispatch(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("events: a notification that is not JSON was ignored")
            return
        self.hub.deliver(str(message.get("channel", "")), message)


def conninfo_from_settings() -> str:
    db = settings.DATABASES["default"]
    parts = {
        "dbname": db.get("NAME"),
        "user": db.get("USER"),
        "password": db.get("PASSWORD"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
    }
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**{k: str(v) for k, v in parts.items() if v})


_bus: InProcessBus | None = None
_bus_lock = threading.Lock()


def bus() -> InProcessBus:
    """The process's bus, made on first use from the settings."""
    global _bus
    with _bus_lock:
        if _bus is None:
            backend = getattr(settings, "EVENTS_BACKEND", "inprocess")
            if backend == "postgres":
                if connection.vendor != "postgresql":
                    raise RuntimeError("YILIAN_EVENTS_BACKEND=postgres needs PostgreSQL as the database")
                _bus = PostgresBus(conninfo_from_settings())
            else:
                _bus = InProcessBus()
        return _bus


def reset() -> None:
    """Forget the bus (tests that switch backends; a new one is made on next use)."""
    global _bus
    with _bus_lock:
        if _bus is not None:
            _bus.stop()
        _bus = None


def publish(channel: str, **data: Any) -> None:
    bus().publish(channel, data)


def publish_on_commit(channel: str, **data: Any) -> None:
    """Publish once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: _publish_safely(channel, data))


def _publish_safely(channel: str, data: Message) -> None:
    try:
        bus().publish(channel, data)
    except Exception:  # a live page missing one update must never fail the step that caused it
        log.exception("events: publishing to %s failed", channel)


def subscribe(channels: Iterable[str], *, asynchronous: bool = False) -> Subscription:
    return bus().subscribe(channels, asynchronous=asynchronous)


def sse(event: str, data: Message | str, *, id: str = "") -> str:
    """One Server-Sent Events frame."""
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), default=str)
    head = f"id: {id}\n" if id else ""
    return head + f"event: {event}\n" + "".join(f"data: {line}\n" for line in body.splitlines() or [""]) + "\n"
