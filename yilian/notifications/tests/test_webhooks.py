"""Outgoing webhooks against a real HTTP receiver on 127.0.0.1: the WeCom group-robot text
message, delivery after commit through the task queue, retries with exponential backoff, giving
up after ``MAX_ATTEMPTS`` with the error kept for administrators."""

from __future__ import annotations

import datetime as dt
import json
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django_tasks_db.models import DBTaskResult

from yilian.notifications import services
from yilian.notifications.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from yilian.referrals.models import Referral, Status
from yilian.referrals.tests.factories import neuro_office_create, referral_create
from yilian.registry.models import Institution, User

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
SECOND = dt.timedelta(seconds=1)
TASK_PATH = "yilian.notifications.tasks.deliver_webhook"


class Receiver:
    """A group robot's endpoint: records every posted JSON body; can be told to fail first."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        self.failures: list[tuple[int, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.posts.append(json.loads(self.rfile.read(length)))
                receiver.paths.append(self.path)
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                code, answer = receiver.failures.pop(0) if receiver.failures else (200, {"errcode": 0, "errmsg": "ok"})
                body = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/webhook/send?key=693a91f6-7xxx"

    def fail(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.failures.extend(answers)


HTTP_500 = (500, {"error": "internal"})
ERRCODE = (200, {"errcode": 93000, "errmsg": "invalid webhook url"})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def endpoint(receiver: Receiver, persona: Callable[[str], User]) -> WebhookEndpoint:
    """The neurosurgery work group of Quzhou People's Hospital, set up by its administrator."""
    return services.webhook_create(
        actor=persona("hospadmin"),
        institution=Institution.objects.get(code="qzph"),
        name="神经外科转诊工作群",
        url=receiver.url,
    )


@pytest.fixture
def clock(time_machine: Any) -> Callable[[dt.timedelta], dt.datetime]:
    time_machine.move_to(T0, tick=False)

    def move(delta: dt.timedelta) -> dt.datetime:
        time_machine.move_to(T0 + delta, tick=False)
        return T0 + delta

    return move


def _tasks_for(delivery: WebhookDelivery) -> list[DBTaskResult[Any, Any]]:
    return [
        t
        for t in DBTaskResult.objects.filter(task_path=TASK_PATH).order_by("enqueued_at")
        if t.args_kwargs["args"] == [delivery.pk]
    ]


def _send_referral(capture: Any) -> tuple[Referral, WebhookDelivery]:
    neuro_office_create()
    with capture(execute=True):
        referral = referral_create(Status.SENT)
    [delivery] = [d for d in WebhookDelivery.objects.all() if referral.number in d.payload["text"]["content"]]
    return referral, delivery


def _enqueue(capture: Any, text: str) -> WebhookDelivery:
    with capture(execute=True):
        [delivery] = services.webhooks_enqueue(
            institution=Institution.objects.get(code="qzph"), text=text, link=f"{settings.SITE_URL}/notifications/"
        )
    return delivery


def test_sending_a_referral_queues_a_delivery_and_a_task_after_commit(
    endpoint: WebhookEndpoint, django_capture_on_commit_callbacks: Any
) -> None:
    neuro_office_create()
    deliveries, tasks = WebhookDelivery.objects.count(), DBTaskResult.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        referral = referral_create(Status.SENT)
        # Nothing leaves before the referral is committed.
        assert (WebhookDelivery.objects.count(), DBTaskResult.objects.count()) == (deliveries, tasks)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    content = delivery.payload["text"]["content"]
    assert delivery.payload["msgtype"] == "text"
    assert referral.number in content and "新转诊待接收" in content and "New referral to receive" in content
    assert f"{settings.SITE_URL}/referrals/{referral.public_id}/" in content
    [task] = _tasks_for(delivery)
    assert task.status == "READY" and task.queue_name == "default"


def test_other_institutions_webhooks_are_not_told(
    endpoint: WebhookEndpoint, persona: Callable[[str], User], django_capture_on_commit_callbacks: Any
) -> None:
    services.webhook_set_active(actor=persona("hospadmin"), endpoint=endpoint, is_active=False)
    neuro_office_create()
    with django_capture_on_commit_callbacks(execute=True):
        referral_create(Status.SENT)
    assert not WebhookDelivery.objects.exists()


def test_delivery_posts_the_wecom_text_message(
    endpoint: WebhookEndpoint, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    referral, delivery = _send_referral(django_capture_on_commit_callbacks)
    result = services.webhook_deliver(delivery_id=delivery.pk)
    assert (result.status, result.attempts, result.last_error) == (DeliveryStatus.DELIVERED, 1, "")
    assert result.delivered_at is not None and result.next_attempt_at is None
    [posted] = receiver.posts
    assert set(posted) == {"msgtype", "text"} and posted["msgtype"] == "text"
    assert list(posted["text"]) == ["content"]
    content = posted["text"]["content"]
    assert referral.number in content
    assert content.endswith(f"{settings.SITE_URL}/referrals/{referral.public_id}/")
    assert receiver.paths == ["/cgi-bin/webhook/send?key=693a91f6-7xxx"]
    assert receiver.content_types == ["application/json"]
    # A second run of the same task sends nothing more.
    services.webhook_deliver(delivery_id=delivery.pk)
    assert len(receiver.posts) == 1


def test_failures_are_retried_with_exponential_backoff(
    endpoint: WebhookEndpoint,
    receiver: Receiver,
    clock: Callable[[dt.timedelta], dt.datetime],
    django_capture_on_commit_callbacks: Any,
) -> None:
    _referral, delivery = _send_referral(django_capture_on_commit_callbacks)
    receiver.fail(HTTP_500, ERRCODE)

    with django_capture_on_commit_callbacks(execute=True):
        first = services.webhook_deliver(delivery_id=delivery.pk, now=T0)
    assert (first.status, first.attempts, first.last_error) == (DeliveryStatus.PENDING, 1, "HTTP 500")
    assert first.next_attempt_at == T0 + 30 * SECOND
    assert _tasks_for(delivery)[-1].run_after == first.next_attempt_at

    # A stale run (the first task run twice, or the sweep racing the queue) waits for its time.
    early = services.webhook_deliver(delivery_id=delivery.pk, now=clock(10 * SECOND))
    assert (early.attempts, len(receiver.posts)) == (1, 1)

    with django_capture_on_commit_callbacks(execute=True):
        second = services.webhook_deliver(delivery_id=delivery.pk, now=clock(30 * SECOND))
    assert (second.status, second.attempts) == (DeliveryStatus.PENDING, 2)
    assert "93000" in second.last_error
    assert second.next_attempt_at == T0 + 30 * SECOND + 60 * SECOND
    assert _tasks_for(delivery)[-1].run_after == second.next_attempt_at

    third = services.webhook_deliver(delivery_id=delivery.pk, now=clock(90 * SECOND))
    assert (third.status, third.attempts, third.last_error) == (DeliveryStatus.DELIVERED, 3, "")
    assert len(receiver.posts) == 3 and receiver.posts[0] == receiver.posts[2]


def test_after_the_last_attempt_the_delivery_fails_and_keeps_the_error(
    endpoint: WebhookEndpoint,
    receiver: Receiver,
    clock: Callable[[dt.timedelta], dt.datetime],
    django_capture_on_commit_callbacks: Any,
) -> None:
    _referral, delivery = _send_referral(django_capture_on_commit_callbacks)
    receiver.fail(*[HTTP_500] * (services.MAX_ATTEMPTS + 2))
    waits = []
    now = T0
    for _attempt in range(services.MAX_ATTEMPTS):
        result = services.webhook_deliver(delivery_id=delivery.pk, now=now)
        if result.next_attempt_at is not None:
            waits.append(int((result.next_attempt_at - now).total_seconds()))
            now = clock(result.next_attempt_at - T0)
    assert waits == [30, 60, 120, 240, 480]
    failed = WebhookDelivery.objects.get(pk=delivery.pk)
    assert (failed.status, failed.attempts, failed.last_error) == (DeliveryStatus.FAILED, 6, "HTTP 500")
    assert failed.next_attempt_at is None and failed.delivered_at is None
    # Given up: neither the queue nor the sweep tries again.
    services.webhook_deliver(delivery_id=delivery.pk, now=clock(dt.timedelta(days=1)))
    assert services.webhooks_retry_due(now=T0 + dt.timedelta(days=1)) == 0
    assert len(receiver.posts) == services.MAX_ATTEMPTS


def test_the_sweep_retries_only_deliveries_that_are_due(
    endpoint: WebhookEndpoint,
    receiver: Receiver,
    clock: Callable[[dt.timedelta], dt.datetime],
    django_capture_on_commit_callbacks: Any,
) -> None:
    failing = _enqueue(django_capture_on_commit_callbacks, "转诊已超时，请尽快处理 R260302ABCDEF")
    receiver.fail(HTTP_500)
    services.webhook_deliver(delivery_id=failing.pk, now=T0)  # next attempt at T0 + 30 s
    clock(SECOND)
    waiting = _enqueue(django_capture_on_commit_callbacks, "转诊已超时，请尽快处理 R260302GHJKLM")

    assert services.webhooks_retry_due(now=T0 + SECOND) == 1
    assert WebhookDelivery.objects.get(pk=waiting.pk).status == DeliveryStatus.DELIVERED
    assert WebhookDelivery.objects.get(pk=failing.pk).status == DeliveryStatus.PENDING
    assert services.webhooks_retry_due(now=clock(31 * SECOND)) == 1
    assert WebhookDelivery.objects.get(pk=failing.pk).status == DeliveryStatus.DELIVERED
    assert ["R260302ABCDEF" in p["text"]["content"] for p in receiver.posts] == [True, False, True]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/robot", "file:///etc/passwd", "javascript:alert(1)"])
def test_only_http_addresses_are_accepted(persona: Callable[[str], User], url: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        services.webhook_create(
            actor=persona("hospadmin"), institution=Institution.objects.get(code="qzph"), name="群", url=url
        )
    assert "url" in excinfo.value.message_dict
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_site_refuses_a_non_http_address(login: Callable[[str], Any]) -> None:
    """The admin form validates with the model, which takes http and https only."""
    qzph = Institution.objects.get(code="qzph")
    response = login("admin").post(
        "/admin/notifications/webhookendpoint/add/",
        {"institution": qzph.pk, "name": "群", "kind": "wecom", "url": "ftp://127.0.0.1/robot", "is_active": "on"},
    )
    assert response.status_code == 200  # the form again, with its error
    assert response.context["adminform"].form.errors["url"]
    assert not WebhookEndpoint.objects.exists()


def test_a_stored_non_http_address_fails_without_a_request(
    endpoint: WebhookEndpoint, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    """An address changed behind the service's back (say in the database) is still never fetched."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="ftp://127.0.0.1/robot")
    _referral, delivery = _send_referral(django_capture_on_commit_callbacks)
    result = services.webhook_deliver(delivery_id=delivery.pk)
    assert result.status == DeliveryStatus.PENDING and result.attempts == 1
    assert "http" in result.last_error
    assert receiver.posts == []


def test_an_unreachable_receiver_is_an_error_not_a_crash(
    endpoint: WebhookEndpoint, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    _referral, delivery = _send_referral(django_capture_on_commit_callbacks)
    receiver.server.shutdown()
    receiver.server.server_close()
    result = services.webhook_deliver(delivery_id=delivery.pk)
    assert (result.status, result.attempts) == (DeliveryStatus.PENDING, 1)
    assert result.last_error.startswith(("URLError", "ConnectionRefusedError", "RemoteDisconnected"))
