"""The live board's stream as the ASGI server serves it: an async generator woken by the bus.

(The WSGI path, which the browser tests use, is covered in ``test_green_views``.) The requests run
in an event loop of their own thread, as in the server; the view's synchronous parts then run in
another thread, so these tests use committed data (a transactional test on a freshly seeded demo).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from yilian.core import events
from yilian.referrals import green_selectors
from yilian.registry.models import User

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def coordinator(persona: Any) -> User:
    from yilian.demo.seed import seed_demo

    seed_demo()  # a transactional test may find the database emptied by the one before
    user: User = persona("coordinator")
    return user


def _in_own_loop(coro: Any) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


def test_asgi_stream_says_hello_then_delivers_a_board_event(coordinator: User) -> None:
    """Under ASGI the stream is asynchronous; a message published on the board's channel from
    another thread arrives as a ``case`` frame without patient data."""
    _in_own_loop(_hello_then_event(coordinator))


async def _hello_then_event(coordinator: User) -> None:
    client = AsyncClient()
    await sync_to_async(client.force_login)(coordinator)
    scope = await sync_to_async(green_selectors.board_scope)(coordinator, None)
    before = events.bus().hub.count()
    response: Any = await client.get("/referrals/green/events/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response.is_async, "the ASGI path streams from an async generator"
    frames: asyncio.Queue[str] = asyncio.Queue()

    async def read() -> None:  # what the ASGI handler does with the response
        async for chunk in response.streaming_content:
            await frames.put(chunk.decode() if isinstance(chunk, bytes) else str(chunk))

    reader = asyncio.create_task(read())
    hello = await asyncio.wait_for(frames.get(), timeout=5)
    assert hello.startswith("retry: ") and "event: hello" in hello and scope.key in hello
    assert events.bus().hub.count() == before + 1

    def publish() -> None:  # a step committed in another thread
        events.publish(scope.channel, kind="activated", case="c-1", number="R1", status="sent")

    await asyncio.get_running_loop().run_in_executor(None, publish)
    frame = await asyncio.wait_for(frames.get(), timeout=5)
    assert frame.startswith("event: case\n")
    data = json.loads(frame.split("data: ", 1)[1])
    assert data == {"kind": "activated", "case": "c-1", "number": "R1", "status": "sent"}
    # The browser goes away: the handler cancels the response task; the subscription ends with it.
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert events.bus().hub.count() == before


def test_asgi_stream_refuses_a_board_that_is_not_the_users(coordinator: User) -> None:
    _in_own_loop(_refused(coordinator))


async def _refused(coordinator: User) -> None:
    client = AsyncClient()
    await sync_to_async(client.force_login)(coordinator)
    response = await client.get("/referrals/green/events/?board=i-00000000-0000-0000-0000-000000000000")
    assert response.status_code == 403
