"""Two submits of one survey link at the same moment: exactly one response is stored (the row
lock on the link, backed by the one-to-one between response and link), the other is told the
link has been answered."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test import Client

from yilian.demo.seed import seed_demo
from yilian.surveys.models import SurveyAnswer
from yilian.surveys.tests.factories import full_answers, issue, response_mark, responses_since


@pytest.mark.django_db(transaction=True)
def test_a_double_submit_stores_one_response_and_the_other_is_told_it_was_answered() -> None:
    since = response_mark()
    if connection.vendor != "postgresql":
        pytest.skip("SQLite locks the whole file, not rows; the row lock is what this test checks, on PostgreSQL")
    seed_demo()  # transactional tests start from an emptied database
    issued = issue()
    data = {f"a_{k}": v for k, v in full_answers(issued.token.version).items()}
    clients = [Client(), Client()]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def submit(client: Client) -> None:
        try:
            barrier.wait()
            statuses.append(client.post(f"/q/{issued.raw}/", data).status_code)
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            statuses.append(0)
            raise exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [302, 409], statuses
    assert responses_since(since).count() == 1
    assert SurveyAnswer.objects.filter(response__in=responses_since(since)).count() == len(issued.token.version.items)
