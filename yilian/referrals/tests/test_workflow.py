"""The referral transition table, walked exhaustively: every status x every action x every side.

The actors stand for the sides of the default referral (csph -> qzph in the Quzhou neurosurgery
alliance): the referring doctor (sender), the receiving on-call coordinator (receiver), the
alliance's office (office), the worker (system, no user) and a doctor of an unrelated hospital
in Guizhou (outsider). Allowed steps are taken through the services with realistic data and must
land where the table says, with a timeline event and an audit row; every other combination is
refused, with 403 (``PermissionDenied``) when the actor could never take that step on this
referral and 409 (``TransitionNotAllowed``) when they could, but not from this status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from yilian.core.models import AuditAction, AuditEvent
from yilian.notifications.models import Notification
from yilian.referrals import selectors, services, workflow
from yilian.referrals.models import Referral, ReferralAppointment, ReferralEvent, Status
from yilian.referrals.tests.factories import MakeReferral
from yilian.referrals.workflow import TRANSITIONS, Action, Side, TransitionNotAllowed
from yilian.registry.models import Institution, User

pytestmark = pytest.mark.django_db

ACTORS = ("sender", "receiver", "office", "system", "outsider")
# Decided from who each person is, not from the code under test.
EXPECTED_SIDES: dict[str, frozenset[Side]] = {
    "sender": frozenset({Side.SENDER}),
    "receiver": frozenset({Side.RECEIVER}),
    "office": frozenset({Side.OFFICE}),
    "system": frozenset({Side.SYSTEM}),
    "outsider": frozenset(),
}
ACTOR_OF_SIDE = {Side.SENDER: "sender", Side.RECEIVER: "receiver", Side.OFFICE: "office", Side.SYSTEM: "system"}

REASONS = {
    Action.DECLINE: "本院神经介入团队外出，今日无法取栓",
    Action.FORWARD: "开化县人民医院卒中中心可以接收",
    Action.CANCEL: "患者家属决定转往杭州",
    Action.REOPEN: "患者因暴雨未能按时到院，重新预约",
}

S, A = Status, Action
SND, RCV, OFF, SYS = Side.SENDER, Side.RECEIVER, Side.OFFICE, Side.SYSTEM
HANDLERS = frozenset({RCV, OFF})
ANY_PARTY = frozenset({SND, RCV, OFF})


@dataclass(frozen=True)
class Step:
    to: Status
    sides: frozenset[Side]
    reason: bool = False


# The agreed workflow, written out here rather than read from workflow.TRANSITIONS, so that a
# wrong entry in the code fails ``test_the_table_in_the_code_is_the_agreed_one`` and every
# walk below is checked against what was agreed: (from status, action) -> where it lands, who.
AGREED: dict[tuple[Status, Action], Step] = {
    (S.DRAFT, A.SEND): Step(S.SENT, frozenset({SND})),
    (S.DRAFT, A.CANCEL): Step(S.CANCELLED, frozenset({SND})),
    (S.SENT, A.RECEIVE): Step(S.RECEIVED, HANDLERS),
    (S.SENT, A.FORWARD): Step(S.FORWARDED, frozenset({OFF}), reason=True),
    (S.SENT, A.CANCEL): Step(S.CANCELLED, ANY_PARTY, reason=True),
    (S.FORWARDED, A.RECEIVE): Step(S.RECEIVED, HANDLERS),
    (S.FORWARDED, A.FORWARD): Step(S.FORWARDED, frozenset({OFF}), reason=True),
    (S.FORWARDED, A.CANCEL): Step(S.CANCELLED, ANY_PARTY, reason=True),
    (S.RECEIVED, A.ACCEPT): Step(S.ACCEPTED, HANDLERS),
    (S.RECEIVED, A.DECLINE): Step(S.DECLINED, HANDLERS, reason=True),
    (S.RECEIVED, A.FORWARD): Step(S.FORWARDED, HANDLERS, reason=True),
    (S.RECEIVED, A.CANCEL): Step(S.CANCELLED, ANY_PARTY, reason=True),
    (S.ACCEPTED, A.SCHEDULE): Step(S.SCHEDULED, HANDLERS),
    (S.ACCEPTED, A.CHECK_IN): Step(S.ARRIVED, frozenset({RCV})),
    (S.ACCEPTED, A.CANCEL): Step(S.CANCELLED, ANY_PARTY, reason=True),
    (S.SCHEDULED, A.SCHEDULE): Step(S.SCHEDULED, HANDLERS),
    (S.SCHEDULED, A.CHECK_IN): Step(S.ARRIVED, frozenset({RCV})),
    (S.SCHEDULED, A.MARK_NO_SHOW): Step(S.NO_SHOW, frozenset({SYS, RCV})),
    (S.SCHEDULED, A.CANCEL): Step(S.CANCELLED, ANY_PARTY, reason=True),
    (S.ARRIVED, A.START_TREATMENT): Step(S.IN_TREATMENT, frozenset({RCV})),
    (S.ARRIVED, A.RETURN_OUTCOME): Step(S.OUTCOME_RETURNED, frozenset({RCV})),
    (S.IN_TREATMENT, A.RETURN_OUTCOME): Step(S.OUTCOME_RETURNED, frozenset({RCV})),
    (S.OUTCOME_RETURNED, A.ACKNOWLEDGE): Step(S.CLOSED, frozenset({SND})),
    (S.NO_SHOW, A.REOPEN): Step(S.ACCEPTED, HANDLERS, reason=True),
    (S.NO_SHOW, A.CANCEL): Step(S.CANCELLED, ANY_PARTY, reason=True),
}

ALLOWED = [
    pytest.param(status, action, side, id=f"{status.value}-{action.value}-{side.value}")
    for (status, action), step in AGREED.items()
    for side in sorted(step.sides)
]


def test_the_table_in_the_code_is_the_agreed_one() -> None:
    in_code = {key: Step(t.to, t.sides, t.reason_required) for key, t in TRANSITIONS.items()}
    assert in_code == AGREED


@pytest.fixture
def actors(persona: Callable[[str], User], neuro_office: User) -> dict[str, User | None]:
    return {
        "sender": persona("doctor"),
        "receiver": persona("coordinator"),
        "office": neuro_office,
        "system": None,
        "outsider": persona("bijie"),
    }


def take(action: Action, actor: User | None, referral: Referral, *, reason: str | None = None) -> Referral:
    """Take one step through its service, with the data a person would give."""
    reason = REASONS.get(action, "") if reason is None else reason
    user: Any = actor  # the system side (None) reaches only mark_no_show; the others refuse it
    if action == Action.SEND:
        return services.referral_send(actor=user, referral=referral)
    if action == Action.RECEIVE:
        return services.referral_receive(actor=user, referral=referral)
    if action == Action.ACCEPT:
        return services.referral_accept(actor=user, referral=referral)
    if action == Action.DECLINE:
        return services.referral_decline(actor=user, referral=referral, reason=reason)
    if action == Action.FORWARD:
        return services.referral_forward(
            actor=user, referral=referral, to_institution=Institution.objects.get(code="khph"), reason=reason
        )
    if action == Action.SCHEDULE:
        return services.referral_schedule(
            actor=user,
            referral=referral,
            scheduled_at=timezone.now() + dt.timedelta(days=2, hours=3),
            place="住院部五楼 神经外科病区",
            instructions="空腹，携带既往影像",
        )
    if action == Action.CHECK_IN:
        return services.referral_check_in(actor=user, referral=referral)
    if action == Action.START_TREATMENT:
        return services.referral_start_treatment(actor=user, referral=referral)
    if action == Action.RETURN_OUTCOME:
        return services.referral_return_outcome(
            actor=user,
            referral=referral,
            diagnosis="急性脑梗死（右侧大脑中动脉闭塞）",
            treatment="机械取栓术",
            result="好转，肌力4级",
            recommendations="康复训练，二级预防",
            refer_back=True,
            refer_back_on=timezone.localdate() + dt.timedelta(days=10),
        )
    if action == Action.ACKNOWLEDGE:
        return services.referral_acknowledge(actor=user, referral=referral)
    if action == Action.CANCEL:
        return services.referral_cancel(actor=user, referral=referral, reason=reason)
    if action == Action.MARK_NO_SHOW:
        now = timezone.now()
        if referral.scheduled_at is not None:
            grace = services.service_levels_for(referral.consortium_id, referral.urgency).no_show_grace
            now = referral.scheduled_at + grace + dt.timedelta(minutes=1)
        return services.referral_mark_no_show(actor=actor, referral=referral, now=now)
    if action == Action.REOPEN:
        return services.referral_reopen(actor=user, referral=referral, reason=reason)
    raise AssertionError(action)


def expected_refusal(status: Status, action: Action, sides: frozenset[Side]) -> type[Exception] | None:
    """The documented order: never this actor's step -> 403; not from this status -> 409; else 403."""
    if not any(a == action and t.sides & sides for (_s, a), t in AGREED.items()):
        return PermissionDenied
    transition = AGREED.get((status, action))
    if transition is None:
        return TransitionNotAllowed
    if not transition.sides & sides:
        return PermissionDenied
    return None


def _audit_rows(referral: Referral) -> int:
    return AuditEvent.objects.filter(object_type="referrals.referral", object_id=str(referral.public_id)).count()


@pytest.mark.parametrize(("status", "action", "side"), ALLOWED)
def test_allowed_step_lands_where_the_table_says_with_event_and_audit(
    make_referral: MakeReferral, actors: dict[str, User | None], status: Status, action: Action, side: Side
) -> None:
    referral = make_referral(status)
    assert referral.status == status
    transition = AGREED[(status, action)]
    actor = actors[ACTOR_OF_SIDE[side]]
    events_before = referral.events.count()
    audit_before = _audit_rows(referral)

    if transition.reason:
        with pytest.raises(ValidationError) as excinfo:
            take(action, actor, referral, reason="   ")
        assert "reason" in excinfo.value.message_dict
        assert Referral.objects.get(pk=referral.pk).status == status

    result = take(action, actor, referral)

    assert result.status == transition.to
    assert Referral.objects.get(pk=referral.pk).status == transition.to
    assert referral.events.count() == events_before + 1
    event = referral.events.order_by("-id").first()
    assert event is not None
    assert (event.action, event.from_status, event.to_status, event.side) == (
        action.value,
        status.value,
        transition.to.value,
        side.value,
    )
    assert event.actor == actor
    if transition.reason:
        assert event.note == REASONS[action]
    assert _audit_rows(referral) == audit_before + 1
    audit = AuditEvent.objects.filter(object_id=str(referral.public_id)).order_by("-id").first()
    assert audit is not None and audit.action == AuditAction.UPDATE
    assert (audit.changes["action"], audit.changes["from"], audit.changes["to"]) == (
        action.value,
        status.value,
        transition.to.value,
    )


@pytest.mark.parametrize("actor_key", ACTORS)
@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
def test_every_other_step_is_refused_without_a_trace(
    make_referral: MakeReferral, actors: dict[str, User | None], status: Status, actor_key: str
) -> None:
    referral = make_referral(status)
    actor = actors[actor_key]
    sides = workflow.sides_of(actor, referral)
    # A draft is the referring side's alone: the receiver and the office have no part in it yet.
    assert sides == EXPECTED_SIDES[actor_key] - ({RCV, OFF} if status == Status.DRAFT else set())
    events_before = ReferralEvent.objects.filter(referral=referral).count()
    audit_before = _audit_rows(referral)
    wrong: list[str] = []
    refused = 0
    for action in Action:
        expected = expected_refusal(status, action, sides)
        if expected is None:
            continue  # allowed: taken in the test above
        refused += 1
        try:
            take(action, actor, Referral.objects.get(pk=referral.pk))
        except (PermissionDenied, TransitionNotAllowed) as exc:
            if not isinstance(exc, expected):
                wrong.append(f"{action.value}: {type(exc).__name__}, expected {expected.__name__}")
            elif isinstance(exc, TransitionNotAllowed) and exc.status != status:
                wrong.append(f"{action.value}: 409 names {exc.status}, not {status}")
        except Exception as exc:  # a validation error here would mean the check came too late
            wrong.append(f"{action.value}: {type(exc).__name__} {exc}, expected {expected.__name__}")
        else:
            wrong.append(f"{action.value}: allowed, expected {expected.__name__}")
    assert wrong == []
    assert refused == len(Action) - len(workflow.allowed_actions(actor, referral))
    assert Referral.objects.get(pk=referral.pk).status == status
    assert ReferralEvent.objects.filter(referral=referral).count() == events_before
    assert _audit_rows(referral) == audit_before


def test_the_sides_are_relations_to_the_referral_not_roles(
    make_referral: MakeReferral, persona: Callable[[str], User], neuro_office: User
) -> None:
    referral = make_referral(Status.SENT)
    # The demo office runs another consortium (zju2-quzhou) that qzph also belongs to: no side here.
    assert workflow.sides_of(persona("office"), referral) == frozenset()
    # The stationed expert treats at qzph but is employed by zju2: not the receiving side either.
    assert workflow.sides_of(persona("expert"), referral) == frozenset()
    assert workflow.sides_of(persona("commission"), referral) == frozenset()
    assert workflow.sides_of(persona("admin"), referral) == frozenset({Side.OFFICE})


def test_the_terminal_statuses_are_declined_closed_and_cancelled() -> None:
    assert {Status.DECLINED, Status.CLOSED, Status.CANCELLED} == workflow.TERMINAL


def test_steps_that_need_a_reason() -> None:
    needs_reason = {key for key, t in AGREED.items() if t.reason}
    assert {a for _s, a in needs_reason} == {Action.DECLINE, Action.FORWARD, Action.CANCEL, Action.REOPEN}
    # Withdrawing one's own unsent draft needs no explanation; everything after sending does.
    assert (Status.DRAFT, Action.CANCEL) not in needs_reason
    assert (Status.SENT, Action.CANCEL) in needs_reason


def test_buttons_offered_match_the_sides(make_referral: MakeReferral, actors: dict[str, User | None]) -> None:
    received = make_referral(Status.RECEIVED)
    assert workflow.allowed_actions(actors["receiver"], received) == [
        Action.ACCEPT,
        Action.DECLINE,
        Action.FORWARD,
        Action.CANCEL,
    ]
    assert workflow.allowed_actions(actors["sender"], received) == [Action.CANCEL]
    assert workflow.allowed_actions(actors["outsider"], received) == []
    assert workflow.allowed_actions(actors["system"], received) == []


@pytest.mark.parametrize("actor_key", ["sender", "receiver", "office"])
def test_declined_referral_cannot_be_reopened(
    make_referral: MakeReferral, actors: dict[str, User | None], actor_key: str
) -> None:
    referral = make_referral(Status.DECLINED)
    for action in (Action.REOPEN, Action.ACCEPT, Action.CANCEL, Action.FORWARD):
        with pytest.raises((TransitionNotAllowed, PermissionDenied)):
            take(action, actors[actor_key], referral)
    if actor_key != "sender":  # the handlers may reopen a no-show, so a declined one is a 409
        with pytest.raises(TransitionNotAllowed) as excinfo:
            take(Action.REOPEN, actors[actor_key], referral)
        assert excinfo.value.status == Status.DECLINED
    assert Referral.objects.get(pk=referral.pk).status == Status.DECLINED


@pytest.mark.parametrize("status", [Status.CLOSED, Status.CANCELLED])
def test_closed_and_cancelled_referrals_take_no_further_step(
    make_referral: MakeReferral, actors: dict[str, User | None], status: Status
) -> None:
    referral = make_referral(status)
    for actor in actors.values():
        assert workflow.allowed_actions(actor, referral) == []
        for action in Action:
            with pytest.raises((TransitionNotAllowed, PermissionDenied)):
                take(action, actor, referral)
    assert Referral.objects.get(pk=referral.pk).status == status


def test_no_show_reopened_is_accepted_again_and_can_be_rescheduled(
    make_referral: MakeReferral, actors: dict[str, User | None]
) -> None:
    referral = make_referral(Status.NO_SHOW)
    missed = referral.scheduled_at
    with pytest.raises(ValidationError):
        services.referral_reopen(actor=actors["receiver"], referral=referral, reason="")  # type: ignore[arg-type]
    referral = take(Action.REOPEN, actors["receiver"], referral)
    assert referral.status == Status.ACCEPTED
    assert referral.scheduled_at is None and referral.scheduled_place == ""
    assert referral.last_reason == REASONS[Action.REOPEN]
    referral = take(Action.SCHEDULE, actors["receiver"], referral)
    assert referral.status == Status.SCHEDULED
    assert [a.scheduled_at for a in ReferralAppointment.objects.filter(referral=referral)] == [
        missed,
        referral.scheduled_at,
    ]


def test_rescheduling_keeps_both_appointments(make_referral: MakeReferral, actors: dict[str, User | None]) -> None:
    referral = make_referral(Status.SCHEDULED)
    first = referral.scheduled_at
    assert first is not None
    later = first + dt.timedelta(days=3)
    referral = services.referral_schedule(
        actor=actors["office"],  # type: ignore[arg-type]
        referral=referral,
        scheduled_at=later,
        place="康复医学科 二楼",
        instructions="家属陪同",
    )
    assert referral.status == Status.SCHEDULED
    assert (referral.scheduled_at, referral.scheduled_place) == (later, "康复医学科 二楼")
    history = list(ReferralAppointment.objects.filter(referral=referral).values_list("scheduled_at", "place"))
    assert history == [(first, "门诊楼三楼 神经外科诊室"), (later, "康复医学科 二楼")]
    event = referral.events.order_by("-id").first()
    assert event is not None and event.data["previous"] == first.isoformat()


def test_forward_moves_the_referral_and_tells_the_sender(
    make_referral: MakeReferral,
    actors: dict[str, User | None],
    persona: Callable[[str], User],
    django_capture_on_commit_callbacks: Any,
) -> None:
    referral = make_referral(Status.RECEIVED)
    coordinator, doctor = persona("coordinator"), persona("doctor")
    assert selectors.referral_queryset_visible_to(coordinator).filter(pk=referral.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        referral = take(Action.FORWARD, coordinator, referral)

    khph = Institution.objects.get(code="khph")
    assert referral.status == Status.FORWARDED
    assert referral.to_institution == khph and referral.to_department is None
    assert referral.receive_due_at is not None and referral.receive_due_at > timezone.now()
    # The former receiver loses sight of it and has no side on it any more.
    fresh = User.objects.get(pk=coordinator.pk)
    assert not selectors.referral_queryset_visible_to(fresh).filter(pk=referral.pk).exists()
    with pytest.raises(PermissionDenied):
        selectors.access_referral(fresh, str(referral.public_id))
    assert workflow.sides_of(fresh, referral) == frozenset()
    # The sender still sees it, and is told where it went.
    assert selectors.access_referral(doctor, str(referral.public_id)) == referral
    told = Notification.objects.filter(user=doctor, link__contains=str(referral.public_id))
    assert told.filter(title_en__startswith="Referral forwarded").exists()
    event = referral.events.order_by("-id").first()
    assert event is not None and event.data == {"from_institution": "qzph", "to_institution": "khph"}


def test_forward_to_the_sender_or_outside_the_consortium_is_refused(
    make_referral: MakeReferral, actors: dict[str, User | None]
) -> None:
    referral = make_referral(Status.RECEIVED)
    for code in ("csph", "qzph", "bjfph", "zju2"):  # sender, itself, unrelated, other consortium
        with pytest.raises(ValidationError) as excinfo:
            services.referral_forward(
                actor=actors["receiver"],  # type: ignore[arg-type]
                referral=referral,
                to_institution=Institution.objects.get(code=code),
                reason="试试",
            )
        assert "to_institution" in excinfo.value.message_dict
    assert Referral.objects.get(pk=referral.pk).status == Status.RECEIVED


def test_closed_loop_leaves_one_event_and_one_audit_row_per_step(make_referral: MakeReferral) -> None:
    referral = make_referral(Status.CLOSED)
    steps = list(referral.events.values_list("action", "side"))
    assert steps == [
        ("create", "sender"),
        ("send", "sender"),
        ("receive", "receiver"),
        ("accept", "receiver"),
        ("schedule", "receiver"),
        ("check_in", "receiver"),
        ("start_treatment", "receiver"),
        ("return_outcome", "receiver"),
        ("acknowledge", "sender"),
    ]
    audit = AuditEvent.objects.filter(object_id=str(referral.public_id)).order_by("id")
    assert [row.changes.get("action", "create") for row in audit] == [s for s, _side in steps]
    assert referral.closed_at is not None and referral.outcome_at is not None


def test_the_system_marks_a_no_show_under_its_own_name(make_referral: MakeReferral) -> None:
    referral = make_referral(Status.NO_SHOW)
    event = referral.events.order_by("-id").first()
    assert event is not None
    assert (event.action, event.side, event.actor, event.institution) == ("mark_no_show", "system", None, None)
    assert event.actor_label  # "System" in the reader's language, not blank
