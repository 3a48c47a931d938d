"""Concurrent writes of the same thing resolve to exactly one winner, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connections

from yilian.demo.seed import seed_demo
from yilian.registry import services
from yilian.registry.models import Consortium, ConsortiumMember, Region, User


@pytest.mark.django_db(transaction=True)
def test_two_offices_admitting_the_same_institution_at_once_make_one_member() -> None:
    seed_demo()  # transactional tests start from an emptied database
    office = User.objects.get(username="office")
    consortium = Consortium.objects.get(code="zju2-quzhou")
    lyph = services.institution_create(  # a newly registered health centre, in no consortium yet
        actor=None,
        code="kh-new",
        name_zh="开化县马金镇中心卫生院",
        grade="primary",
        type="primary_care",
        region=Region.objects.get(code="330824"),
    )
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def admit() -> None:
        try:
            barrier.wait()
            services.consortium_member_add(
                actor=office, consortium=consortium, institution=lyph, joined_on=dt.date(2025, 3, 1)
            )
            outcomes.append("admitted")
        except ValidationError:
            outcomes.append("refused")
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            outcomes.append(f"error: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=admit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["admitted", "refused", "refused", "refused"]
    assert ConsortiumMember.objects.filter(consortium=consortium, institution=lyph, left_on__isnull=True).count() == 1
