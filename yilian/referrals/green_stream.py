"""The live board's Server-Sent Events stream.

``GET /referrals/green/events/?board=<key>`` streams the board's channel from the events bus: a
``hello`` frame, then one ``case`` frame per change (case id, kind, status; no patient data), and a
comment every ``KEEPALIVE`` seconds so that proxies keep the connection and a closed tab is noticed.
The browser's ``EventSource`` reconnects by itself (``retry``); on each frame the page fetches the
board's rows, which are scoped and rendered by the server.

Served by the ASGI server (production, the demo), the stream is an async generator: one coroutine
per open board, woken by the bus from any thread. Under a WSGI server (the test live server) it is
a plain generator in the request's thread. Access is checked once, before streaming.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import HttpRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from yilian.core import events
from yilian.referrals.green_selectors import board_scope

KEEPALIVE = 15.0
RETRY_MS = 2000


def _frame(message: events.Message) -> str:
    data = {k: v for k, v in message.items() if k != "channel"}
    return events.sse("case", data)


def _hello(key: str) -> str:
    return f"retry: {RETRY_MS}\n" + events.sse("hello", json.dumps({"board": key}))


def _release_connections() -> None:
    """Hand back this thread's database connections: the request's database work is done (access
    checked, session saved) before the first frame, and otherwise each open board holds one for as
    long as it stays open, so that a few hundred wall screens and phones exhaust PostgreSQL's
    connections (and a closed tab's thread keeps its connection until a keepalive write fails).
    A connection still inside a transaction (a test's) is left alone."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


async def _astream(channel: str, key: str) -> AsyncIterator[str]:
    # In the request's thread: the ASGI handler runs a request's synchronous parts in one thread.
    await sync_to_async(_release_connections)()
    bus = events.bus()
    if isinstance(bus, events.PostgresBus):
        # Starting (or reconnecting) its LISTEN connection can take a moment: not on the event loop.
        await asyncio.to_thread(bus.start)
    sub = events.subscribe([channel], asynchronous=True)
    try:
        yield _hello(key)
        while True:
            message = await sub.aget(timeout=KEEPALIVE)
            yield ": keepalive\n\n" if message is None else _frame(message)
    finally:
        sub.close()


def _stream(channel: str, key: str) -> Iterator[str]:
    _release_connections()
    sub = events.subscribe([channel])
    try:
        yield _hello(key)
        while True:
            message = sub.get(timeout=KEEPALIVE)
            yield ": keepalive\n\n" if message is None else _frame(message)
    finally:
        sub.close()


@require_GET
@login_required
def board_events(request: HttpRequest) -> StreamingHttpResponse:
    scope = board_scope(request.user, request.GET.get("board"))
    # Subscribing happens in the generator: with the PostgreSQL bus, the first subscription of a
    # process starts its LISTEN thread, which must not hold up this (synchronous) view.
    content: Iterator[str] | AsyncIterator[str]
    if isinstance(request, ASGIRequest):
        content = _astream(scope.channel, scope.key)
    else:
        content = _stream(scope.channel, scope.key)
    response = StreamingHttpResponse(content, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
