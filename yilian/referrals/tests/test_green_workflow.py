"""The green-channel transition table, walked: every status x every action x every side.

The test holds its own copy of what the table must say (from the rules in docs/green-channel.md,
not from the code): who may take each step on a green-channel case from csph to qzph. For every
combination it asks ``workflow.side_for`` as the referring doctor (sender), the destination's
on-call coordinator (receiver), the alliance's office (office), the worker (system) and a doctor
of an unrelated hospital (outsider): an allowed step names the actor's side; a step the actor
could never take on this case is 403; one they could take, but not from this status, is 409.
Each allowed step is then also taken once through the services, elsewhere (test_green_services).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from yilian.referrals import green_services, workflow
from yilian.referrals.green_services import PatientGiven
from yilian.referrals.models import GreenProtocol, Referral, Status
from yilian.referrals.tests import factories
from yilian.referrals.workflow import Action, Side, TransitionNotAllowed
from yilian.registry.models import Consortium, Institution, User

pytestmark = pytest.mark.django_db

S, A = Status, Action
SND, RCV, OFF, SYS = Side.SENDER, Side.RECEIVER, Side.OFFICE, Side.SYSTEM

EXPECTED: dict[tuple[Status, Action], frozenset[Side]] = {
    (S.DRAFT, A.SEND): frozenset({SND}),
    (S.SENT, A.ACCEPT): frozenset({RCV}),
    (S.SENT, A.DECLINE): frozenset({RCV}),
    (S.SENT, A.FORWARD): frozenset({OFF, SYS}),
    (S.SENT, A.CANCEL): frozenset({SND, OFF}),
    (S.FORWARDED, A.ACCEPT): frozenset({RCV}),
    (S.FORWARDED, A.DECLINE): frozenset({RCV}),
    (S.FORWARDED, A.FORWARD): frozenset({OFF, SYS}),
    (S.FORWARDED, A.CANCEL): frozenset({SND, OFF}),
    (S.ACCEPTED, A.CHECK_IN): frozenset({RCV}),
    (S.ACCEPTED, A.CANCEL): frozenset({SND, OFF}),  # the destination holding the patient may not
    (S.ARRIVED, A.START_TREATMENT): frozenset({RCV}),
    (S.ARRIVED, A.RETURN_OUTCOME): frozenset({RCV}),
    (S.IN_TREATMENT, A.RETURN_OUTCOME): frozenset({RCV}),
    (S.OUTCOME_RETURNED, A.ACKNOWLEDGE): frozenset({SND}),
}
ACTORS = {"sender": SND, "receiver": RCV, "office": OFF, "system": SYS, "outsider": None}


def test_the_table_is_the_one_the_rules_describe() -> None:
    assert {k: v.sides for k, v in workflow.GREEN_TRANSITIONS.items()} == EXPECTED


@pytest.fixture
def case_referral(persona: Any) -> Referral:
    neuro = Consortium.objects.get(code="quzhou-neuro")
    green_services.green_protocols_install_defaults(consortium=neuro)
    case = green_services.green_activate(
        actor=persona("doctor"),
        sender=Institution.objects.get(code="csph"),
        protocol=GreenProtocol.objects.get(consortium=neuro, code="stroke"),
        patient=PatientGiven(sex="female", approximate_age=72),
        onset_at=timezone.now() - dt.timedelta(hours=1),
        findings=["lvo"],
        destination=Institution.objects.get(code="qzph"),
    )
    return Referral.objects.get(pk=case.referral_id)


@pytest.fixture
def actors(persona: Any) -> dict[str, User | None]:
    return {
        "sender": persona("doctor"),
        "receiver": persona("coordinator"),
        "office": factories.neuro_office_create(),
        "system": None,
        "outsider": persona("bijie"),
    }


def test_every_status_action_and_side_is_allowed_or_refused_as_the_rules_say(
    case_referral: Referral, actors: dict[str, User | None]
) -> None:
    checked = 0
    for status in Status:
        # The status is set directly: this test is about the table and the sides, not the steps.
        Referral.objects.filter(pk=case_referral.pk).update(status=status)
        case_referral.status = status
        for action in Action:
            for name, user in actors.items():
                side = ACTORS[name]
                allowed = EXPECTED.get((status, action), frozenset())
                ever = any(a == action and side in sides for (_s, a), sides in EXPECTED.items())
                if status == S.DRAFT and side in (RCV, OFF):
                    ever = False  # a draft is the referring side's alone
                if side is not None and side in allowed and not (status == S.DRAFT and side != SND):
                    assert workflow.side_for(user, case_referral, action) == side, (status, action, name)
                elif side is not None and ever:  # theirs from another status: 409 with the status
                    with pytest.raises(TransitionNotAllowed):
                        workflow.side_for(user, case_referral, action)
                else:
                    with pytest.raises(PermissionDenied):
                        workflow.side_for(user, case_referral, action)
                checked += 1
    assert checked == len(Status) * len(Action) * len(actors)
