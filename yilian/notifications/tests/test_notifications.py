"""In-app notifications: who is told at each referral step, in both languages with a link to the
referral; each user reads only their own notices and marks only their own read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from yilian.notifications import selectors, services
from yilian.notifications.models import Notification
from yilian.referrals import services as referrals
from yilian.referrals.models import Referral, Status
from yilian.referrals.tests.factories import neuro_office_create, referral_create
from yilian.registry.models import User

pytestmark = pytest.mark.django_db

Persona = Callable[[str], User]


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """Run what a step announces after commit, as a real request would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(autouse=True)
def _office(db: None) -> None:
    neuro_office_create()


def titles(user: User, referral: Referral) -> list[str]:
    return list(
        Notification.objects.filter(user=user, link=f"/referrals/{referral.public_id}/")
        .order_by("id")
        .values_list("title_en", flat=True)
    )


def test_a_sent_referral_tells_the_receiving_coordinators_in_both_languages(
    persona: Persona, after_commit: Callable[[], Any]
) -> None:
    with after_commit():
        referral = referral_create(Status.SENT, urgency="urgent")
    notice = Notification.objects.get(user=persona("coordinator"), link=f"/referrals/{referral.public_id}/")
    assert notice.title_zh == f"新转诊待接收 · {referral.number} · 上转 · 紧急"
    assert notice.title_en == f"New referral to receive · {referral.number} · Up-referral · Urgent"
    assert (notice.kind, notice.read_at) == ("referral", None)
    # The sender does not notify themselves; people elsewhere hear nothing.
    for username in ("doctor", "bijie", "office", "expert"):
        assert titles(persona(username), referral) == []


def test_the_sender_hears_each_decision_and_outcome(persona: Persona, after_commit: Callable[[], Any]) -> None:
    coordinator, doctor = persona("coordinator"), persona("doctor")
    with after_commit():
        referral = referral_create(Status.OUTCOME_RETURNED)
    assert titles(doctor, referral) == [
        "Referral accepted · " + f"{referral.number} · Up-referral · Routine",
        "Referral scheduled · " + f"{referral.number} · Up-referral · Routine",
        "Patient arrived · " + f"{referral.number} · Up-referral · Routine",
        "Referral outcome returned · " + f"{referral.number} · Up-referral · Routine",
    ]
    # Closing the loop tells the receiving side that the sender has read the outcome.
    with after_commit():
        referrals.referral_acknowledge(actor=doctor, referral=referral)
    assert titles(coordinator, referral)[-1].startswith("Referral closed")
    assert titles(doctor, referral)[-1].startswith("Referral outcome returned")


def test_declining_tells_the_sender(persona: Persona, after_commit: Callable[[], Any]) -> None:
    with after_commit():
        referral = referral_create(Status.DECLINED)
    assert [t.split(" · ")[0] for t in titles(persona("doctor"), referral)] == ["Referral declined"]


def test_a_cancellation_by_the_sender_tells_the_receiving_side(
    persona: Persona, after_commit: Callable[[], Any]
) -> None:
    with after_commit():
        referral = referral_create(Status.CANCELLED)
    assert [t.split(" · ")[0] for t in titles(persona("coordinator"), referral)] == [
        "New referral to receive",
        "Referral cancelled",
    ]
    assert titles(persona("doctor"), referral) == []


def test_a_cancellation_by_the_receiving_side_tells_the_sender(
    persona: Persona, after_commit: Callable[[], Any]
) -> None:
    referral = referral_create(Status.ACCEPTED)
    with after_commit():
        referrals.referral_cancel(actor=persona("coordinator"), referral=referral, reason="患者病情变化，就地治疗")
    assert titles(persona("doctor"), referral)[-1].startswith("Referral cancelled")
    assert not any(t.startswith("Referral cancelled") for t in titles(persona("coordinator"), referral))


def test_a_no_show_tells_the_sender(persona: Persona, after_commit: Callable[[], Any]) -> None:
    referral = referral_create(Status.SCHEDULED)
    assert referral.scheduled_at is not None
    with after_commit():
        referrals.referral_mark_no_show(actor=None, referral=referral, now=referral.scheduled_at + dt.timedelta(days=2))
    assert titles(persona("doctor"), referral)[-1].startswith("Patient did not arrive")


def test_notify_writes_one_notice_per_user() -> None:
    doctor = User.objects.get(username="doctor")
    same = User.objects.get(username="doctor")
    written = services.notify(users=[doctor, same], kind="referral", title_zh="测试", title_en="Test", link="/x/")
    assert written == 1
    assert Notification.objects.filter(user=doctor, title_en="Test").count() == 1


def test_users_see_and_mark_read_only_their_own(persona: Persona, after_commit: Callable[[], Any]) -> None:
    coordinator, doctor = persona("coordinator"), persona("doctor")
    with after_commit():
        first = referral_create(Status.SENT)
        second = referral_create(Status.SENT)
    mine = list(selectors.notifications_for(coordinator))
    assert {n.user_id for n in mine} == {coordinator.pk}
    assert selectors.unread_count(coordinator) == len(mine) >= 2
    assert selectors.unread_count(doctor) == 0
    # Someone else's notice id changes nothing and yields no link.
    theirs = mine[0]
    assert services.notification_mark_read(user=doctor, ids=[theirs.pk]) == 0
    assert selectors.notification_link(doctor, theirs.pk) == ""
    assert Notification.objects.get(pk=theirs.pk).read_at is None

    assert services.notification_mark_read(user=coordinator, ids=[theirs.pk]) == 1
    assert selectors.unread_count(coordinator) == len(mine) - 1
    assert selectors.notification_link(coordinator, theirs.pk) in {
        f"/referrals/{first.public_id}/",
        f"/referrals/{second.public_id}/",
    }
    assert services.notification_mark_read(user=coordinator) == len(mine) - 1
    assert selectors.unread_count(coordinator) == 0
    assert Notification.objects.filter(user=coordinator, read_at__lte=timezone.now()).count() == len(mine)
