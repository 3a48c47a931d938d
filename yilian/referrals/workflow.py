"""The referral state machine: one table, one function that applies it.

Rules:
- ``TRANSITIONS`` is the whole truth: for each (status, action) it names the next status, the
  sides that may take the step and whether a reason is required. Nothing else changes a
  referral's status.
- A side is a relation between the acting user and this referral, not a role: the *sender*
  is staff of the referring institution allowed to refer; the *receiver* is staff of the
  institution the referral is addressed to now (after a forward, the new one) allowed to
  handle referrals; the *office* is the consortium office of the referral's consortium; the
  *system* is the worker (no user).
- ``apply`` locks the row (``select_for_update``), re-reads the status, checks the table,
  runs the step's effect, writes a timeline event and an audit row in the same transaction,
  and announces the step after commit. Two people acting at once: the second one finds the
  status already moved and gets ``TransitionNotAllowed`` (HTTP 409 with the current status).
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
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.referrals.models import Referral, ReferralEvent, Status
from yilian.registry.selectors import user_scope

S = Status


class Side(models.TextChoices):
    SENDER = "sender", _("Referring side")
    RECEIVER = "receiver", _("Receiving side")
    OFFICE = "office", _("Consortium office")
    SYSTEM = "system", _("System")


class Action(models.TextChoices):
    SEND = "send", _("Send")
    RECEIVE = "receive", _("Mark received")
    ACCEPT = "accept", _("Accept")
    DECLINE = "decline", _("Decline")
    FORWARD = "forward", _("Forward")
    SCHEDULE = "schedule", _("Schedule")
    CHECK_IN = "check_in", _("Patient arrived")
    START_TREATMENT = "start_treatment", _("Start treatment")
    RETURN_OUTCOME = "return_outcome", _("Return outcome")
    ACKNOWLEDGE = "acknowledge", _("Acknowledge and close")
    CANCEL = "cancel", _("Cancel")
    MARK_NO_SHOW = "mark_no_show", _("Mark no-show")
    REOPEN = "reopen", _("Reopen")


@dataclass(frozen=True)
class Transition:
    to: Status
    sides: frozenset[Side]
    reason_required: bool = False


SENDER, RECEIVER, OFFICE, SYSTEM = Side.SENDER, Side.RECEIVER, Side.OFFICE, Side.SYSTEM
_HANDLERS = frozenset({RECEIVER, OFFICE})
_ANY_PARTY = frozenset({SENDER, RECEIVER, OFFICE})


def _t(to: Status, *sides: Side, reason: bool = False) -> Transition:
    return Transition(to=to, sides=frozenset(sides), reason_required=reason)


A = Action
TRANSITIONS: dict[tuple[Status, Action], Transition] = {
    (S.DRAFT, A.SEND): _t(S.SENT, SENDER),
    (S.DRAFT, A.CANCEL): _t(S.CANCELLED, SENDER),
    (S.SENT, A.RECEIVE): _t(S.RECEIVED, *_HANDLERS),
    (S.SENT, A.FORWARD): _t(S.FORWARDED, OFFICE, reason=True),
    (S.SENT, A.CANCEL): _t(S.CANCELLED, *_ANY_PARTY, reason=True),
    (S.FORWARDED, A.RECEIVE): _t(S.RECEIVED, *_HANDLERS),
    (S.FORWARDED, A.FORWARD): _t(S.FORWARDED, OFFICE, reason=True),
    (S.FORWARDED, A.CANCEL): _t(S.CANCELLED, *_ANY_PARTY, reason=True),
    (S.RECEIVED, A.ACCEPT): _t(S.ACCEPTED, *_HANDLERS),
    (S.RECEIVED, A.DECLINE): _t(S.DECLINED, *_HANDLERS, reason=True),
    (S.RECEIVED, A.FORWARD): _t(S.FORWARDED, *_HANDLERS, reason=True),
    (S.RECEIVED, A.CANCEL): _t(S.CANCELLED, *_ANY_PARTY, reason=True),
    (S.ACCEPTED, A.SCHEDULE): _t(S.SCHEDULED, *_HANDLERS),
    (S.ACCEPTED, A.CHECK_IN): _t(S.ARRIVED, RECEIVER),
    (S.ACCEPTED, A.CANCEL): _t(S.CANCELLED, *_ANY_PARTY, reason=True),
    (S.SCHEDULED, A.SCHEDULE): _t(S.SCHEDULED, *_HANDLERS),  # rescheduling keeps the old slot in history
    (S.SCHEDULED, A.CHECK_IN): _t(S.ARRIVED, RECEIVER),
    (S.SCHEDULED, A.MARK_NO_SHOW): _t(S.NO_SHOW, SYSTEM, RECEIVER),
    (S.SCHEDULED, A.CANCEL): _t(S.CANCELLED, *_ANY_PARTY, reason=True),
    (S.ARRIVED, A.START_TREATMENT): _t(S.IN_TREATMENT, RECEIVER),
    (S.ARRIVED, A.RETURN_OUTCOME): _t(S.OUTCOME_RETURNED, RECEIVER),  # a single outpatient visit
    (S.IN_TREATMENT, A.RETURN_OUTCOME): _t(S.OUTCOME_RETURNED, RECEIVER),
    # The loop closes when the referring side has read the outcome.
    (S.OUTCOME_RETURNED, A.ACKNOWLEDGE): _t(S.CLOSED, SENDER),
    # The one reopening: a patient who missed the appointment can be given a new one; or either
    # side ends it (the patient went elsewhere), so that a no-show does not stay open for ever.
    (S.NO_SHOW, A.REOPEN): _t(S.ACCEPTED, *_HANDLERS, reason=True),
    (S.NO_SHOW, A.CANCEL): _t(S.CANCELLED, *_ANY_PARTY, reason=True),
}

# A green-channel transfer (``Referral.green_channel``) skips receipt and appointments: the
# destination's coordinator accepts with one tap; a decline re-offers the case to the next
# destination (FORWARDED; to nobody, i.e. the office, when none is left), as does the worker
# (SYSTEM) when the destination does not answer in time. Arrival is a time node (CHECK_IN).
GREEN_TRANSITIONS: dict[tuple[Status, Action], Transition] = {
    (S.DRAFT, A.SEND): _t(S.SENT, SENDER),  # activation creates and sends in one transaction
    (S.SENT, A.ACCEPT): _t(S.ACCEPTED, RECEIVER),
    (S.SENT, A.DECLINE): _t(S.FORWARDED, RECEIVER, reason=True),
    (S.SENT, A.FORWARD): _t(S.FORWARDED, OFFICE, SYSTEM, reason=True),
    (S.SENT, A.CANCEL): _t(S.CANCELLED, SENDER, OFFICE, reason=True),
    (S.FORWARDED, A.ACCEPT): _t(S.ACCEPTED, RECEIVER),
    (S.FORWARDED, A.DECLINE): _t(S.FORWARDED, RECEIVER, reason=True),
    (S.FORWARDED, A.FORWARD): _t(S.FORWARDED, OFFICE, SYSTEM, reason=True),
    (S.FORWARDED, A.CANCEL): _t(S.CANCELLED, SENDER, OFFICE, reason=True),
    (S.ACCEPTED, A.CHECK_IN): _t(S.ARRIVED, RECEIVER),
    # Once accepted, the destination holds the patient: it cannot end the case on its own (it
    # calls the office, which may); the sender may (the patient died, or went elsewhere).
    (S.ACCEPTED, A.CANCEL): _t(S.CANCELLED, SENDER, OFFICE, reason=True),
    (S.ARRIVED, A.START_TREATMENT): _t(S.IN_TREATMENT, RECEIVER),
    (S.ARRIVED, A.RETURN_OUTCOME): _t(S.OUTCOME_RETURNED, RECEIVER),
    (S.IN_TREATMENT, A.RETURN_OUTCOME): _t(S.OUTCOME_RETURNED, RECEIVER),
    (S.OUTCOME_RETURNED, A.ACKNOWLEDGE): _t(S.CLOSED, SENDER),
}


def table_for(referral: Referral) -> dict[tuple[Status, Action], Transition]:
    return GREEN_TRANSITIONS if referral.green_channel else TRANSITIONS


TERMINAL = frozenset(s for s in Status if not any(key[0] == s for key in TRANSITIONS))  # closed, declined, cancelled
OPEN_STATUSES = frozenset(Status) - TERMINAL - {S.DRAFT}
AWAITING_RECEIPT = frozenset({S.SENT, S.FORWARDED})
AWAITING_DECISION = frozenset({S.SENT, S.FORWARDED, S.RECEIVED})

# Which permission a side needs (besides its relation to the referral).
SIDE_PERMISSION: dict[Side, Permission] = {
    SENDER: Permission.MANAGE_REFERRALS_SEND,
    RECEIVER: Permission.MANAGE_REFERRALS_RECEIVE,
    OFFICE: Permission.MANAGE_REFERRAL_ROUTING,
}


class TransitionNotAllowed(Exception):
    """The step is not in the table from the referral's current status (HTTP 409)."""

    def __init__(self, referral: Referral, action: Action, message: str = "") -> None:
        self.status = Status(referral.status)
        self.action = action
        super().__init__(
            message
            or gettext("“%(action)s” is not possible: the referral is now “%(status)s”.")
            % {"action": action.label, "status": self.status.label}
        )


AnyUser = AbstractBaseUser | AnonymousUser


def sides_of(user: AnyUser | None, referral: Referral) -> frozenset[Side]:
    """The sides the user may act for on this referral (empty: none)."""
    if user is None:
        return frozenset({SYSTEM})
    scope = user_scope(user)
    sides: set[Side] = set()
    if referral.from_institution_id in scope.institution_ids_with(SIDE_PERMISSION[SENDER]):
        sides.add(SENDER)
    if referral.status == S.DRAFT:
        return frozenset(sides)  # a draft (perhaps without consent yet) is the referring side's alone
    if referral.to_institution_id is not None and referral.to_institution_id in scope.institution_ids_with(
        SIDE_PERMISSION[RECEIVER]
    ):
        sides.add(RECEIVER)
    office_perm = SIDE_PERMISSION[OFFICE] in scope.permissions
    if office_perm and (scope.is_global or referral.consortium_id in scope.consortium_ids):
        sides.add(OFFICE)
    return frozenset(sides)


def allowed_actions(user: AnyUser | None, referral: Referral) -> list[Action]:
    """The steps this user may take now, in table order (for buttons and the API)."""
    sides = sides_of(user, referral)
    status = Status(referral.status)
    return [
        action
        for (from_status, action), transition in table_for(referral).items()
        if from_status == status and transition.sides & sides
    ]


def side_for(user: AnyUser | None, referral: Referral, action: Action) -> Side:
    """The side the user acts for in this step; raises when the step is not theirs or not now.

    Order of refusals: a step the user could never take on this referral is 403; a step the
    user could take from some status but not from this one is 409 with the current status.
    """
    sides = sides_of(user, referral)
    table = table_for(referral)
    if not any(a == action and t.sides & sides for (_s, a), t in table.items()):
        raise PermissionDenied(gettext("You may not “%(action)s” this referral.") % {"action": action.label})
    transition = table.get((Status(referral.status), action))
    if transition is None:
        raise TransitionNotAllowed(referral, action)
    mine = transition.sides & sides
    if not mine:
        raise PermissionDenied(
            gettext("You may not “%(action)s” this referral while it is “%(status)s”.")
            % {"action": action.label, "status": Status(referral.status).label}
        )
    # Prefer the most specific relation for the timeline: receiver/sender before office.
    for side in (RECEIVER, SENDER, OFFICE, SYSTEM):
        if side in mine:
            return side
    raise AssertionError("unreachable")


Effect = Callable[[Referral, Side], dict[str, Any] | None]


def apply(
    *,
    referral_id: int,
    action: Action,
    actor: AnyUser | None,
    reason: str = "",
    effect: Effect | None = None,
    at: Any = None,
) -> Referral:
    """Take one step. ``effect`` sets the step's own fields and may return data for the timeline."""
    from yilian.referrals import events  # the announcement after commit

    with transaction.atomic():
        referral = Referral.objects.select_for_update().get(pk=referral_id)
        side = side_for(actor, referral, action)
        from_status = Status(referral.status)
        transition = table_for(referral)[(from_status, action)]
        reason = reason.strip()
        if transition.reason_required and not reason:
            raise ValidationError({"reason": gettext("Give a reason.")}, code="reason_required")
        now = at or timezone.now()
        user: Any = actor if actor is not None and actor.is_authenticated else None
        # The institution acting, judged before the effect: a forward or decline moves the referral
        # to another institution, and the timeline must name the one that took the step.
        acting_institution = _institution_of(side, referral, user)
        data = (effect(referral, side) if effect else None) or {}
        referral.status = transition.to
        if reason:
            referral.last_reason = reason[:500]
        referral.save()
        event = ReferralEvent.objects.create(
            referral=referral,
            action=action,
            from_status=from_status,
            to_status=transition.to,
            at=now,
            actor=user,
            actor_label=(getattr(user, "display_name", "") or user.get_username()) if user else gettext("System"),
            side=side,
            institution=acting_institution,
            note=reason,
            data=data,
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=referral,
            changes={"action": action.value, "from": from_status.value, "to": transition.to.value, **data},
        )
        transaction.on_commit(lambda: events.announce(referral.pk, event.pk))
    return referral


def _institution_of(side: Side, referral: Referral, user: Any) -> Any:
    if side == SENDER:
        return referral.from_institution
    if side == RECEIVER:
        return referral.to_institution
    if side == OFFICE:
        return referral.consortium.lead_institution
    return None
