"""The consult state machine: one table, one function that applies it.

Rules:
- ``TRANSITIONS`` is the whole truth: for each (status, action) the next status, the sides that
  may take the step, the kinds of consult it applies to and whether a reason is required.
- Sides are relations between the acting user and this consult, not roles:
  the *requester* is the requesting doctor, the person who wrote the request, or a consult
  coordinator of the requesting institution; the *expert* is the consult's expert (or, before
  one is chosen, the named expert or any expert of the specialty pool with the title wanted);
  for an MDT case every invited expert of its meeting is an expert and the meeting's chair is
  the *chair*; the *coordinator* is a consult coordinator of the consulted institution; the
  *office* is the consortium office; the *system* is the worker.
- ``apply`` locks the row, re-reads the status, checks the table, runs the step's effect and
  writes a timeline event and an audit row in one transaction, then announces the step after
  commit. Of two people acting at once the second finds the status moved: ``TransitionNotAllowed``
  (HTTP 409 with the current status).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from yilian.consults.models import Consult, ConsultEvent, Kind, Status
from yilian.core.audit import audit_record
from yilian.core.errors import Conflict
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.registry.models import Practitioner
from yilian.registry.selectors import user_scope

S = Status
K = Kind


class Side(models.TextChoices):
    REQUESTER = "requester", _("Requesting side")
    EXPERT = "expert", _("Expert")
    CHAIR = "chair", _("Chair")
    COORDINATOR = "coordinator", _("Consult coordinator")
    OFFICE = "office", _("Consortium office")
    SYSTEM = "system", _("System")


class Action(models.TextChoices):
    ACCEPT = "accept", _("Accept")
    DECLINE = "decline", _("Decline")
    ASSIGN = "assign", _("Assign an expert")
    SCHEDULE = "schedule", pgettext_lazy("consult action", "Schedule")
    START = "start", _("Start the discussion")
    ASK_INFO = "ask_info", _("Ask for more information")
    PROVIDE_INFO = "provide_info", _("Provide the information")
    ANSWER = "answer", _("Answer")
    FOLLOW_UP = "follow_up", _("Ask a follow-up question")
    CONCLUDE = "conclude", _("Conclude")
    CLOSE = "close", _("Close with the close-out")
    CANCEL = "cancel", _("Cancel")
    EXPIRE = "expire", pgettext_lazy("consult action", "Expire")


REQUESTER, EXPERT, CHAIR, COORDINATOR, OFFICE, SYSTEM = (
    Side.REQUESTER,
    Side.EXPERT,
    Side.CHAIR,
    Side.COORDINATOR,
    Side.OFFICE,
    Side.SYSTEM,
)
ALL_KINDS = frozenset(Kind)
WRITTEN = frozenset({K.ECONSULT, K.READING})  # answered in writing, no session
SESSION = frozenset({K.TELECONSULTATION, K.MDT})  # held at a time, then concluded
ONE_EXPERT = frozenset({K.ECONSULT, K.TELECONSULTATION, K.READING})  # an MDT case has its meeting's experts


@dataclass(frozen=True)
class Transition:
    to: Status
    sides: frozenset[Side]
    kinds: frozenset[Kind] = ALL_KINDS
    reason_required: bool = False
    # Where an MDT case differs: its conclusion is the chair's, not any one expert's.
    mdt_sides: frozenset[Side] | None = None

    def sides_for(self, kind: str) -> frozenset[Side]:
        return self.mdt_sides if kind == Kind.MDT and self.mdt_sides is not None else self.sides


def _t(
    to: Status,
    *sides: Side,
    kinds: frozenset[Kind] = ALL_KINDS,
    reason: bool = False,
    mdt: frozenset[Side] | None = None,
) -> Transition:
    return Transition(to=to, sides=frozenset(sides), kinds=kinds, reason_required=reason, mdt_sides=mdt)


A = Action
_HANDLERS = (EXPERT, COORDINATOR)
_CANCELLERS = (REQUESTER, COORDINATOR, OFFICE)
TRANSITIONS: dict[tuple[Status, Action], Transition] = {
    # Prompt accept or decline (with a reason) by the consulted side.
    (S.REQUESTED, A.ACCEPT): _t(S.ACCEPTED, *_HANDLERS),
    (S.REQUESTED, A.DECLINE): _t(S.DECLINED, *_HANDLERS, reason=True),
    (S.REQUESTED, A.ASSIGN): _t(S.REQUESTED, COORDINATOR, OFFICE, kinds=ONE_EXPERT),
    (S.REQUESTED, A.CANCEL): _t(S.CANCELLED, *_CANCELLERS, reason=True),
    (S.REQUESTED, A.EXPIRE): _t(S.EXPIRED, SYSTEM),
    (S.ACCEPTED, A.ASSIGN): _t(S.ACCEPTED, COORDINATOR, OFFICE, kinds=ONE_EXPERT),
    # A teleconsultation is scheduled by its expert or the coordinator; an MDT case is put on a
    # meeting's agenda by the coordinator of the meetings.
    (S.ACCEPTED, A.SCHEDULE): _t(S.SCHEDULED, *_HANDLERS, kinds=SESSION, mdt=frozenset({COORDINATOR})),
    (S.ACCEPTED, A.ASK_INFO): _t(S.IN_DISCUSSION, EXPERT, kinds=WRITTEN),
    (S.ACCEPTED, A.ANSWER): _t(S.ANSWERED, EXPERT, kinds=WRITTEN),
    (S.ACCEPTED, A.CANCEL): _t(S.CANCELLED, *_CANCELLERS, reason=True),
    (S.SCHEDULED, A.SCHEDULE): _t(  # a new time keeps the old in history
        S.SCHEDULED, *_HANDLERS, kinds=SESSION, mdt=frozenset({COORDINATOR})
    ),
    (S.SCHEDULED, A.START): _t(
        S.IN_DISCUSSION, EXPERT, COORDINATOR, kinds=SESSION, mdt=frozenset({CHAIR, COORDINATOR})
    ),
    (S.SCHEDULED, A.CANCEL): _t(S.CANCELLED, *_CANCELLERS, reason=True),
    # In discussion: an eConsult whose expert asked for more (the requester provides it, the expert
    # answers), or a session under way (the expert or the chair concludes).
    (S.IN_DISCUSSION, A.PROVIDE_INFO): _t(S.IN_DISCUSSION, REQUESTER, kinds=WRITTEN),
    (S.IN_DISCUSSION, A.ASK_INFO): _t(S.IN_DISCUSSION, EXPERT, kinds=WRITTEN),
    (S.IN_DISCUSSION, A.ANSWER): _t(S.ANSWERED, EXPERT, kinds=WRITTEN),
    (S.IN_DISCUSSION, A.CONCLUDE): _t(S.CONCLUDED, EXPERT, kinds=SESSION, mdt=frozenset({CHAIR})),
    (S.IN_DISCUSSION, A.CANCEL): _t(S.CANCELLED, *_CANCELLERS, reason=True),
    # The requester reads the answer: closes it with the close-out, or asks a follow-up.
    (S.ANSWERED, A.FOLLOW_UP): _t(S.IN_DISCUSSION, REQUESTER, kinds=WRITTEN),
    (S.ANSWERED, A.CLOSE): _t(S.CLOSED, REQUESTER, kinds=WRITTEN),
    (S.CONCLUDED, A.CLOSE): _t(S.CLOSED, REQUESTER, kinds=SESSION),
}

TERMINAL = frozenset(s for s in Status if not any(key[0] == s for key in TRANSITIONS))
OPEN = frozenset(Status) - TERMINAL
AWAITING_ACCEPT = frozenset({S.REQUESTED})
AWAITING_ANSWER = frozenset({S.ACCEPTED, S.SCHEDULED, S.IN_DISCUSSION})
DELIVERED = frozenset({S.ANSWERED, S.CONCLUDED, S.CLOSED})


class TransitionNotAllowed(Conflict):
    """The step is not in the table from the consult's current status (HTTP 409, a ``Conflict``)."""

    def __init__(self, consult: Consult, action: Action, message: str = "") -> None:
        self.status = Status(consult.status)
        self.action = action
        super().__init__(
            message
            or gettext("“%(action)s” is not possible: the consult is now “%(status)s”.")
            % {"action": action.label, "status": self.status.label}
        )


AnyUser = AbstractBaseUser | AnonymousUser

TITLE_RANK = {
    "chief_physician": 4,
    "associate_chief_physician": 3,
    "attending_physician": 2,
    "resident_physician": 1,
    "chief_nurse": 4,
    "associate_chief_nurse": 3,
    "nurse_in_charge": 2,
    "senior_nurse": 1,
    "nurse": 0,
}


def meets_title(practitioner: Practitioner, wanted: str) -> bool:
    return not wanted or TITLE_RANK.get(practitioner.title, 0) >= TITLE_RANK.get(wanted, 0)


def practitioner_of(user: AnyUser) -> Practitioner | None:
    if not user.is_authenticated:
        return None
    return Practitioner.objects.filter(user_id=user.pk, is_active=True).first()


def may_answer_for(
    practitioner: Practitioner | None, consult: Consult, user: AnyUser, *, as_offered: bool = False
) -> bool:
    """The user is (or, before one is chosen, could become) this consult's expert; ``as_offered``:
    was offered the request (named or in the pool), whoever took it since."""
    if practitioner is None or practitioner.institution_id != consult.to_institution_id:
        return False
    if consult.to_institution_id not in user_scope(user).institution_ids_with(Permission.ANSWER_CONSULTS):
        return False
    if consult.kind == Kind.MDT and consult.meeting_id is not None:
        return consult.meeting.participants.filter(practitioner=practitioner).exists()  # type: ignore[union-attr]
    if consult.expert_id is not None and not as_offered:
        return consult.expert_id == practitioner.pk
    if consult.named_expert_id is not None:
        return consult.named_expert_id == practitioner.pk
    in_pool = consult.to_department_id is None or practitioner.department_id == consult.to_department_id
    return in_pool and meets_title(practitioner, consult.wanted_title)


def sides_of(user: AnyUser | None, consult: Consult) -> frozenset[Side]:
    """The sides the user may act for on this consult (empty: none)."""
    if user is None:
        return frozenset({SYSTEM})
    if not user.is_authenticated:
        return frozenset()
    scope = user_scope(user)
    sides: set[Side] = set()
    practitioner = practitioner_of(user)
    if consult.from_institution_id in scope.institution_ids_with(Permission.REQUEST_CONSULTS) and (
        consult.created_by_id == user.pk
        or (practitioner is not None and consult.from_practitioner_id == practitioner.pk)
    ):
        sides.add(REQUESTER)
    if consult.from_institution_id in scope.institution_ids_with(Permission.COORDINATE_CONSULTS):
        sides.add(REQUESTER)  # the requesting hospital's coordinator acts for its doctors
    if may_answer_for(practitioner, consult, user):
        sides.add(EXPERT)
    if (
        consult.kind == Kind.MDT
        and consult.meeting_id is not None
        and practitioner is not None
        and consult.meeting.chair_id == practitioner.pk  # type: ignore[union-attr]
    ):
        sides.add(CHAIR)
    if consult.to_institution_id in scope.institution_ids_with(Permission.COORDINATE_CONSULTS):
        sides.add(COORDINATOR)
    if Permission.OVERSEE_CONSULTS in scope.permissions and (
        scope.is_global or consult.consortium_id in scope.consortium_ids
    ):
        sides.add(OFFICE)
    return frozenset(sides)


def _in_table(status: Status, action: Action, kind: str) -> Transition | None:
    transition = TRANSITIONS.get((status, action))
    if transition is None or kind not in transition.kinds:
        return None
    return transition


def allowed_actions(user: AnyUser | None, consult: Consult) -> list[Action]:
    """The steps this user may take now, in table order (for buttons and the API)."""
    sides = sides_of(user, consult)
    status = Status(consult.status)
    return [
        action
        for (from_status, action), transition in TRANSITIONS.items()
        if from_status == status and consult.kind in transition.kinds and transition.sides_for(consult.kind) & sides
    ]


def side_for(user: AnyUser | None, consult: Consult, action: Action) -> Side:
    """The side the user acts for; 403 for a step never theirs on this consult, 409 for one not now."""
    sides = sides_of(user, consult)
    # A pool expert whom a colleague beat to the request was offered the step: refusing it now is
    # a 409 like any other race, not a 403.
    ever = sides
    if (
        user is not None
        and EXPERT not in sides
        and may_answer_for(practitioner_of(user), consult, user, as_offered=True)
    ):
        ever = sides | {EXPERT}
    if not any(
        a == action and t.sides_for(consult.kind) & ever and consult.kind in t.kinds
        for (_s, a), t in TRANSITIONS.items()
    ):
        raise PermissionDenied(gettext("You may not “%(action)s” this consult.") % {"action": action.label})
    transition = _in_table(Status(consult.status), action, consult.kind)
    if transition is None:
        raise TransitionNotAllowed(consult, action)
    mine = transition.sides_for(consult.kind) & sides
    if not mine:
        raise PermissionDenied(
            gettext("You may not “%(action)s” this consult while it is “%(status)s”.")
            % {"action": action.label, "status": Status(consult.status).label}
        )
    for side in (EXPERT, CHAIR, REQUESTER, COORDINATOR, OFFICE, SYSTEM):
        if side in mine:
            return side
    raise AssertionError("unreachable")


Effect = Callable[[Consult, Side], dict[str, Any] | None]


def apply(
    *,
    consult_id: int,
    action: Action,
    actor: AnyUser | None,
    reason: str = "",
    effect: Effect | None = None,
    at: Any = None,
) -> Consult:
    """Take one step. ``effect`` sets the step's own fields and may return data for the timeline."""
    from yilian.consults import events  # the announcement after commit

    with transaction.atomic():
        consult = Consult.objects.select_for_update().get(pk=consult_id)
        side = side_for(actor, consult, action)
        from_status = Status(consult.status)
        transition = TRANSITIONS[(from_status, action)]
        reason = reason.strip()
        if transition.reason_required and not reason:
            raise ValidationError({"reason": gettext("Give a reason.")}, code="reason_required")
        now = at or timezone.now()
        data = (effect(consult, side) if effect else None) or {}
        consult.status = transition.to
        if reason:
            consult.last_reason = reason[:500]
        consult.save()
        user: Any = actor if actor is not None and actor.is_authenticated else None
        event = ConsultEvent.objects.create(
            consult=consult,
            action=action,
            from_status=from_status,
            to_status=transition.to,
            at=now,
            actor=user,
            actor_label=(getattr(user, "display_name", "") or user.get_username()) if user else gettext("System"),
            side=side,
            institution=_institution_of(side, consult),
            note=reason,
            data=data,
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=consult,
            changes={"action": action.value, "from": from_status.value, "to": transition.to.value, **data},
        )
        transaction.on_commit(lambda: events.announce(consult.pk, event.pk))
    return consult


def _institution_of(side: Side, consult: Consult) -> Any:
    if side == REQUESTER:
        return consult.from_institution
    if side in (EXPERT, CHAIR, COORDINATOR):
        return consult.to_institution
    if side == OFFICE:
        return consult.consortium.lead_institution
    return None
