"""Two experts of the pool taking the same request at the same moment: exactly one becomes its
expert, the other is told the request has moved on (``TransitionNotAllowed``, a 409), not that
it was never theirs (a 403)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from yilian.consults import services
from yilian.consults.models import Consult, ConsultEvent, Status
from yilian.consults.tests import factories
from yilian.consults.workflow import TransitionNotAllowed
from yilian.demo.seed import seed_demo
from yilian.registry.models import User


def _wait_for_lock_waiters(n: int, seconds: float = 15) -> bool:
    """True once ``n`` other sessions of this database wait on a lock."""
    deadline = time.monotonic() + seconds
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one snapshot
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            if row is not None and row[0] >= n:
                return True
            time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_two_pool_experts_accepting_at_once_make_one_expert_and_one_409() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite locks the whole file, not rows; the row lock is what this test checks, on PostgreSQL")
    seed_demo()  # transactional tests start from an emptied database
    peer = factories.user_of(factories.doctor())  # a second chief neurosurgeon of zju2: in the pool too
    consult = factories.request()
    outcomes: dict[str, str] = {}

    def accept(username: str) -> None:
        try:
            services.consult_accept(actor=User.objects.get(username=username), consult=consult)
            outcomes[username] = "accepted"
        except TransitionNotAllowed as exc:
            outcomes[username] = f"409 {exc.status}"
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            outcomes[username] = repr(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=accept, args=(name,)) for name in ("expert", peer.username)]
    # Hold the consult's row, so that both arrive while the other is undecided: each must wait on
    # the row lock (a step that did not lock the row would not wait, and this would fail).
    with transaction.atomic():
        Consult.objects.select_for_update().get(pk=consult.pk)
        for t in threads:
            t.start()
        assert _wait_for_lock_waiters(2), "both accepts should wait on the consult's row lock"
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["409 accepted", "accepted"], outcomes
    winner = next(name for name, outcome in outcomes.items() if outcome == "accepted")
    stored = Consult.objects.select_related("expert__user").get(pk=consult.pk)
    assert stored.status == Status.ACCEPTED
    assert stored.expert is not None and stored.expert.user is not None
    assert stored.expert.user.username == winner
    assert ConsultEvent.objects.filter(consult=consult, action="accept").count() == 1
