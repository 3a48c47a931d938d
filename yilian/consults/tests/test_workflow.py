"""The consult state machine, walked exhaustively.

``EXPECTED`` below is written by hand from the rules (who may take which step of which kind of
consult from which status), not copied from ``workflow.TRANSITIONS``: the first test checks the
code's table against it for every (status, action, kind). The other tests drive real consults
into each status through the services and have every member of the cast try every action: a step
in the table for one of the actor's sides works; a step that is theirs from another status is
refused with ``TransitionNotAllowed`` (409); a step never theirs on this consult is refused with
``PermissionDenied`` (403).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from yilian.consults import services, workflow
from yilian.consults.models import Consult, ConsultEvent, Kind, Meeting, Status
from yilian.consults.tests import factories
from yilian.consults.tests.factories import Cast
from yilian.consults.workflow import Action, Side, TransitionNotAllowed
from yilian.core.errors import Conflict
from yilian.core.models import AuditEvent
from yilian.registry.models import User

pytestmark = pytest.mark.django_db

S, A, K = Status, Action, Kind
REQUESTER, EXPERT, CHAIR = Side.REQUESTER, Side.EXPERT, Side.CHAIR
COORDINATOR, OFFICE, SYSTEM = Side.COORDINATOR, Side.OFFICE, Side.SYSTEM

ALL = (K.ECONSULT, K.TELECONSULTATION, K.MDT, K.READING)
WRITTEN = (K.ECONSULT, K.READING)
NOT_MDT = (K.ECONSULT, K.TELECONSULTATION, K.READING)


@dataclass(frozen=True)
class Step:
    to: Status
    sides: dict[str, frozenset[Side]]  # kind -> who may take it
    reason: bool = False


def step(to: Status, kinds: tuple[str, ...], *sides: Side, reason: bool = False, mdt: tuple[Side, ...] = ()) -> Step:
    by_kind = {k: frozenset(mdt) if (k == K.MDT and mdt) else frozenset(sides) for k in kinds}
    return Step(to, by_kind, reason)


CANCELLERS = (REQUESTER, COORDINATOR, OFFICE)
EXPECTED: dict[tuple[Status, Action], Step] = {
    # The consulted side accepts or declines (with a reason); the coordinator or the office may
    # choose the expert (never for an MDT case: its experts are the meeting's); the requester,
    # the consulted coordinator or the office may cancel with a reason; the worker expires it.
    (S.REQUESTED, A.ACCEPT): step(S.ACCEPTED, ALL, EXPERT, COORDINATOR),
    (S.REQUESTED, A.DECLINE): step(S.DECLINED, ALL, EXPERT, COORDINATOR, reason=True),
    (S.REQUESTED, A.ASSIGN): step(S.REQUESTED, NOT_MDT, COORDINATOR, OFFICE),
    (S.REQUESTED, A.CANCEL): step(S.CANCELLED, ALL, *CANCELLERS, reason=True),
    (S.REQUESTED, A.EXPIRE): step(S.EXPIRED, ALL, SYSTEM),
    (S.ACCEPTED, A.ASSIGN): step(S.ACCEPTED, NOT_MDT, COORDINATOR, OFFICE),
    # A session is scheduled, and again: a teleconsultation its slot (its expert or the coordinator),
    # an MDT case its meeting (the coordinator, who holds the meetings; an expert could put it on a
    # meeting they are not part of).
    (S.ACCEPTED, A.SCHEDULE): step(S.SCHEDULED, (K.TELECONSULTATION, K.MDT), EXPERT, COORDINATOR, mdt=(COORDINATOR,)),
    (S.SCHEDULED, A.SCHEDULE): step(S.SCHEDULED, (K.TELECONSULTATION, K.MDT), EXPERT, COORDINATOR, mdt=(COORDINATOR,)),
    # A written consult is answered by its expert, who may first ask for more.
    (S.ACCEPTED, A.ASK_INFO): step(S.IN_DISCUSSION, WRITTEN, EXPERT),
    (S.ACCEPTED, A.ANSWER): step(S.ANSWERED, WRITTEN, EXPERT),
    (S.ACCEPTED, A.CANCEL): step(S.CANCELLED, ALL, *CANCELLERS, reason=True),
    # A session starts (the MDT's chair, not any expert) and is concluded.
    (S.SCHEDULED, A.START): step(
        S.IN_DISCUSSION, (K.TELECONSULTATION, K.MDT), EXPERT, COORDINATOR, mdt=(CHAIR, COORDINATOR)
    ),
    (S.SCHEDULED, A.CANCEL): step(S.CANCELLED, ALL, *CANCELLERS, reason=True),
    (S.IN_DISCUSSION, A.PROVIDE_INFO): step(S.IN_DISCUSSION, WRITTEN, REQUESTER),
    (S.IN_DISCUSSION, A.ASK_INFO): step(S.IN_DISCUSSION, WRITTEN, EXPERT),
    (S.IN_DISCUSSION, A.ANSWER): step(S.ANSWERED, WRITTEN, EXPERT),
    (S.IN_DISCUSSION, A.CONCLUDE): step(S.CONCLUDED, (K.TELECONSULTATION, K.MDT), EXPERT, mdt=(CHAIR,)),
    (S.IN_DISCUSSION, A.CANCEL): step(S.CANCELLED, ALL, *CANCELLERS, reason=True),
    # The requester reads the answer: a follow-up question, or the close-out.
    (S.ANSWERED, A.FOLLOW_UP): step(S.IN_DISCUSSION, WRITTEN, REQUESTER),
    (S.ANSWERED, A.CLOSE): step(S.CLOSED, WRITTEN, REQUESTER),
    (S.CONCLUDED, A.CLOSE): step(S.CLOSED, (K.TELECONSULTATION, K.MDT), REQUESTER),
}
ENDS = {S.DECLINED, S.CLOSED, S.CANCELLED, S.EXPIRED}


def expected_sides(status: Status, action: Action, kind: str) -> frozenset[Side] | None:
    found = EXPECTED.get((status, action))
    return None if found is None else found.sides.get(kind)


def test_the_transition_table_is_the_one_the_rules_describe_for_every_status_action_and_kind() -> None:
    mismatches = []
    for status in Status:
        for action in Action:
            for kind in Kind:
                mine = EXPECTED.get((status, action))
                want = None if mine is None or kind not in mine.sides else (mine.to, mine.sides[kind], mine.reason)
                code = workflow.TRANSITIONS.get((status, action))
                got = (
                    None
                    if code is None or kind not in code.kinds
                    else (code.to, code.sides_for(kind), code.reason_required)
                )
                if want != got:
                    mismatches.append((status.value, action.value, kind.value, want, got))
    assert mismatches == []


def test_terminal_statuses_are_declined_closed_cancelled_and_expired() -> None:
    assert workflow.TERMINAL == ENDS
    assert set(Status) - ENDS == workflow.OPEN


# ----------------------------------------------------------------------------------------
# Every actor tries every action on real consults


ACTORS = (
    "requester",
    "requester_coordinator",
    "expert",
    "other_expert",
    "junior",
    "coordinator",
    "chair",
    "office",
    "unrelated",
    "system",
)


def sides_of_actor(name: str, kind: str, on_meeting: bool) -> frozenset[Side]:
    """Written by hand: the sides each member of the cast holds on the default (pool) consult."""
    return {
        "requester": frozenset({REQUESTER}),
        "requester_coordinator": frozenset({REQUESTER}),
        "expert": frozenset({EXPERT}),  # in the pool, then the consult's expert (or an MDT participant)
        "other_expert": frozenset(),
        "junior": frozenset(),  # in the department, below the title wanted
        "coordinator": frozenset({COORDINATOR}),
        "chair": frozenset({EXPERT, CHAIR}) if kind == K.MDT and on_meeting else frozenset(),
        "office": frozenset({OFFICE}),
        "unrelated": frozenset(),
        "system": frozenset({SYSTEM}),
    }[name]


def expected_outcome(sides: frozenset[Side], status: Status, action: Action, kind: str) -> str:
    now = expected_sides(status, action, kind)
    if now is not None and now & sides:
        return "ok"
    ever = any(a == action and (s := expected_sides(st, a, kind)) and s & sides for st, a in EXPECTED)
    return "409" if ever else "403"


class _Undo(Exception):
    pass


def attempt(call: Callable[[], object]) -> str:
    """Run one step in a savepoint that is rolled back; say how it went."""
    try:
        with transaction.atomic():
            call()
            raise _Undo
    except _Undo:
        return "ok"
    except TransitionNotAllowed:
        return "409"
    except PermissionDenied:
        return "403"
    except ValidationError as exc:
        return f"invalid {exc.message_dict}"


def action_call(action: Action, consult: Consult, actor: User | None, meeting: Meeting) -> Callable[[], object]:
    """The service a person would use for ``action`` (the table itself where no service applies)."""
    if actor is None:
        if action == A.EXPIRE:
            return lambda: services.consult_expire(consult=consult, now=consult.requested_at + dt.timedelta(days=8))
        return lambda: workflow.apply(consult_id=consult.pk, action=action, actor=None, reason="系统")
    kind = consult.kind
    start, end = factories.session_time(days=3)
    calls: dict[Action, Callable[[], object]] = {
        A.ACCEPT: lambda: services.consult_accept(actor=actor, consult=consult),
        A.DECLINE: lambda: services.consult_decline(actor=actor, consult=consult, reason="专家外出"),
        A.START: lambda: services.consult_start(actor=actor, consult=consult),
        A.ASK_INFO: lambda: services.consult_ask_info(actor=actor, consult=consult, text="请补充影像"),
        A.PROVIDE_INFO: lambda: services.consult_provide_info(actor=actor, consult=consult, text="已上传影像"),
        A.ANSWER: lambda: services.consult_answer(actor=actor, consult=consult, answer="建议保守治疗"),
        A.FOLLOW_UP: lambda: services.consult_follow_up(actor=actor, consult=consult, text="何时复查？"),
        A.CONCLUDE: lambda: services.consult_conclude(actor=actor, consult=consult, conclusion="建议手术"),
        A.CLOSE: lambda: services.consult_close(
            actor=actor, consult=consult, referral_avoided=True, management_changed=False, value_rating=4
        ),
        A.CANCEL: lambda: services.consult_cancel(actor=actor, consult=consult, reason="患者已出院"),
    }
    if action == A.ASSIGN and kind != K.MDT:
        expert = factories.practitioner(factories.user("expert"))
        return lambda: services.consult_assign(actor=actor, consult=consult, expert=expert)
    if action == A.SCHEDULE and kind == K.TELECONSULTATION:
        return lambda: services.consult_schedule(actor=actor, consult=consult, starts_at=start, ends_at=end)
    if action == A.SCHEDULE and kind == K.MDT:
        return lambda: services.meeting_add_case(actor=actor, meeting=meeting, consult=consult)
    return calls.get(action) or (lambda: workflow.apply(consult_id=consult.pk, action=action, actor=actor, reason="x"))


REPRESENTATIVE = [
    *((K.ECONSULT, s) for s in (*factories.WRITTEN_PATH, S.DECLINED, S.CANCELLED, S.EXPIRED)),
    *((K.READING, s) for s in (S.REQUESTED, S.ACCEPTED, S.ANSWERED)),
    *((K.TELECONSULTATION, s) for s in factories.SESSION_PATH),
    *((K.MDT, s) for s in factories.SESSION_PATH),
]


@pytest.mark.parametrize(("kind", "status"), REPRESENTATIVE, ids=[f"{k}-{s}" for k, s in REPRESENTATIVE])
def test_every_actor_may_take_exactly_the_steps_of_their_sides(kind: str, status: Status, people: Cast) -> None:
    meeting = factories.meeting()
    consult = factories.consult_in(status, kind, on_meeting=meeting)
    assert consult.status == status
    on_meeting = consult.meeting_id is not None
    got, want = {}, {}
    for name in ACTORS:
        actor = None if name == "system" else getattr(people, name)
        sides = sides_of_actor(name, kind, on_meeting)
        assert workflow.sides_of(actor, factories.reload(consult)) == sides, name
        for action in Action:
            want[(name, action.value)] = expected_outcome(sides, status, action, kind)
            got[(name, action.value)] = attempt(action_call(action, factories.reload(consult), actor, meeting))
    assert {k: v for k, v in got.items() if v != want[k]} == {}
    assert factories.reload(consult).status == status  # every attempt was rolled back


@pytest.mark.parametrize(("kind", "status"), REPRESENTATIVE, ids=[f"{k}-{s}" for k, s in REPRESENTATIVE])
def test_allowed_actions_lists_the_steps_each_actor_may_take_now(kind: str, status: Status, people: Cast) -> None:
    consult = factories.consult_in(status, kind)
    on_meeting = consult.meeting_id is not None
    for name in ACTORS:
        actor = None if name == "system" else getattr(people, name)
        sides = sides_of_actor(name, kind, on_meeting)
        expected = {a for a in Action if expected_outcome(sides, status, a, kind) == "ok"}
        assert set(workflow.allowed_actions(actor, consult)) == expected, name


def test_a_refused_step_is_a_409_conflict_that_names_the_current_status(people: Cast) -> None:
    consult = factories.consult_in(S.ANSWERED)
    with pytest.raises(TransitionNotAllowed) as refused:
        services.consult_accept(actor=people.expert, consult=consult)
    assert isinstance(refused.value, Conflict)
    assert refused.value.status == S.ANSWERED and refused.value.action == A.ACCEPT
    assert "Answered" in str(refused.value) or "已答复" in str(refused.value)


@pytest.mark.parametrize("status", [S.REQUESTED, S.ACCEPTED])
def test_cancelling_needs_a_reason(status: Status, people: Cast) -> None:
    consult = factories.consult_in(status)
    for blank in ("", "   "):
        with pytest.raises(ValidationError) as refused:
            services.consult_cancel(actor=people.requester, consult=consult, reason=blank)
        assert "reason" in refused.value.message_dict
    assert factories.reload(consult).status == status


def test_declining_needs_a_reason_and_records_it(people: Cast) -> None:
    consult = factories.consult_in(S.REQUESTED)
    with pytest.raises(ValidationError) as refused:
        services.consult_decline(actor=people.expert, consult=consult, reason=" ")
    assert "reason" in refused.value.message_dict
    declined = services.consult_decline(actor=people.expert, consult=consult, reason="  本周无法阅片  ")
    assert declined.status == S.DECLINED and declined.last_reason == "本周无法阅片"
    event = ConsultEvent.objects.get(consult=consult, action=A.DECLINE)
    assert event.note == "本周无法阅片" and event.side == EXPERT


def test_a_refused_step_writes_nothing(people: Cast) -> None:
    consult = factories.consult_in(S.REQUESTED)
    events, audits = ConsultEvent.objects.count(), AuditEvent.objects.count()
    with pytest.raises(PermissionDenied):
        services.consult_accept(actor=people.unrelated, consult=consult)
    with pytest.raises(TransitionNotAllowed):
        services.consult_answer(actor=people.expert, consult=consult, answer="建议保守治疗")
    assert (ConsultEvent.objects.count(), AuditEvent.objects.count()) == (events, audits)


def test_an_mdt_case_is_never_assigned_one_expert(people: Cast) -> None:
    consult = factories.consult_in(S.ACCEPTED, K.MDT)
    with pytest.raises(ValidationError) as refused:
        services.consult_assign(actor=people.coordinator, consult=consult, expert=factories.practitioner(people.expert))
    assert "expert" in refused.value.message_dict
