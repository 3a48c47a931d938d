"""Writes of referrals. Every status change goes through ``workflow.apply``.

Domain rules enforced here:
- the referring institution must be one where the actor may refer; both institutions must be
  current members of one consortium (the referral belongs to it); a sender who does not know
  where to send addresses the consortium office instead (no destination);
- a referral is sent only with the patient's consent recorded (who obtained it, how, when,
  not in the future), and a down-referral only with a complete care plan;
- declining, forwarding, cancelling and reopening need a reason (the table says which);
- service levels: sending (or forwarding) sets the receive-by and decide-by deadlines from
  the consortium's service level for the urgency (defaults in ``DEFAULT_SERVICE_LEVELS``);
- attachments are PDF, PNG/JPEG or DICOM, recognised by their first bytes, at most
  ``ATTACHMENT_MAX_BYTES`` each, only while the referral is open;
- a create with an idempotency key returns the first referral for a retried request and
  refuses the same key for a different request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.audit import audit_record
from yilian.core.files import inspect_upload
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.patients.models import Patient
from yilian.referrals import workflow
from yilian.referrals.models import (
    ConsentMethod,
    Direction,
    IdempotencyKey,
    Referral,
    ReferralAppointment,
    ReferralAttachment,
    RequestedService,
    ServiceLevel,
    Status,
    Urgency,
)
from yilian.referrals.workflow import Action, Side
from yilian.registry.models import Consortium, ConsortiumMember, Department, Institution, Practitioner, User
from yilian.registry.selectors import user_scope

ATTACHMENT_MAX_BYTES = 20 * 1024 * 1024
ATTACHMENTS_PER_REFERRAL = 20
SWEEP_BATCH = 500  # referrals per kind of step in one pass of the sweep; the next pass takes the rest


@dataclass(frozen=True)
class Levels:
    receive_within: dt.timedelta
    decide_within: dt.timedelta
    escalate_after: dt.timedelta
    no_show_grace: dt.timedelta


DEFAULT_SERVICE_LEVELS: dict[Urgency, Levels] = {
    Urgency.ROUTINE: Levels(
        dt.timedelta(hours=24), dt.timedelta(hours=48), dt.timedelta(hours=4), dt.timedelta(hours=24)
    ),
    Urgency.URGENT: Levels(
        dt.timedelta(hours=2), dt.timedelta(hours=4), dt.timedelta(minutes=30), dt.timedelta(hours=2)
    ),
}


def service_levels_for(consortium_id: int, urgency: str) -> Levels:
    row = ServiceLevel.objects.filter(consortium_id=consortium_id, urgency=urgency).first()
    return DEFAULT_SERVICE_LEVELS[Urgency(urgency)] if row is None else _levels_of(row)


def _levels_of(row: ServiceLevel) -> Levels:
    return Levels(
        dt.timedelta(minutes=row.receive_within_minutes),
        dt.timedelta(minutes=row.decide_within_minutes),
        dt.timedelta(minutes=row.escalate_after_minutes),
        dt.timedelta(minutes=row.no_show_grace_minutes),
    )


def service_level_set(
    *,
    actor: User,
    consortium: Consortium,
    urgency: str,
    receive_within_minutes: int,
    decide_within_minutes: int,
    escalate_after_minutes: int,
    no_show_grace_minutes: int,
) -> ServiceLevel:
    scope = user_scope(actor)
    if Permission.MANAGE_REFERRAL_ROUTING not in scope.permissions or not (
        scope.is_global or consortium.pk in scope.consortium_ids
    ):
        raise PermissionDenied(_("Only the consortium office may set its service levels."))
    values = {
        "receive_within_minutes": receive_within_minutes,
        "decide_within_minutes": decide_within_minutes,
        "escalate_after_minutes": escalate_after_minutes,
        "no_show_grace_minutes": no_show_grace_minutes,
    }
    if any(v < 1 for v in values.values()):
        raise ValidationError(_("Every period must be at least one minute."), code="service_level_positive")
    if decide_within_minutes < receive_within_minutes:
        raise ValidationError(
            _("The decision deadline cannot come before the receipt deadline."), code="service_level_order"
        )
    with transaction.atomic():
        row, created = ServiceLevel.objects.update_or_create(consortium=consortium, urgency=urgency, defaults=values)
        audit_record(
            actor=actor,
            action=AuditAction.CREATE if created else AuditAction.UPDATE,
            obj=row,
            changes={"urgency": urgency, **values},
        )
    return row


# ----------------------------------------------------------------------------------------
# Create


def _new_number(now: dt.datetime) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over the phone
    tail = "".join(secrets.choice(alphabet) for _ in range(6))
    return f"R{timezone.localtime(now):%y%m%d}{tail}"


def common_consortium(a: Institution, b: Institution, *, on: dt.date | None = None) -> Consortium | None:
    """The first consortium both institutions currently belong to (lowest id: stable)."""
    on = on or timezone.localdate()
    current = ConsortiumMember.objects.filter(Q(left_on__isnull=True) | Q(left_on__gte=on), joined_on__lte=on)
    ids = current.filter(institution=a).values("consortium_id")
    shared = current.filter(institution=b, consortium_id__in=ids).order_by("consortium_id").first()
    return shared.consortium if shared else None


def _is_current_member(consortium: Consortium, institution: Institution) -> bool:
    on = timezone.localdate()
    return ConsortiumMember.objects.filter(
        Q(left_on__isnull=True) | Q(left_on__gte=on), consortium=consortium, institution=institution
    ).exists()


def request_fingerprint(data: dict[str, Any]) -> str:
    import json

    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Consent:
    obtained_by: str
    method: str
    at: dt.datetime


# One transaction with the send: a create-and-send that fails to send leaves no draft behind.
@transaction.atomic
def referral_create(
    *,
    actor: User,
    patient: Patient,
    direction: str,
    from_institution: Institution,
    reason: str,
    requested_service: str,
    diagnosis_code: str,
    diagnosis_name: str,
    urgency: str = Urgency.ROUTINE,
    from_department: Department | None = None,
    from_practitioner: Practitioner | None = None,
    to_institution: Institution | None = None,
    to_department: Department | None = None,
    consortium: Consortium | None = None,
    key_findings: str = "",
    current_treatment: str = "",
    allergies: str = "",
    consent: Consent | None = None,
    care_plan: dict[str, str] | None = None,
    send: bool = False,
    idempotency_key: str = "",
    request_hash: str = "",
) -> tuple[Referral, bool]:
    """Create a draft (and send it when ``send``); returns (referral, created)."""
    scope = user_scope(actor)
    # Only staff of the sending institution refer; a system administrator does not act for a hospital.
    if from_institution.pk not in scope.institution_ids_with(Permission.MANAGE_REFERRALS_SEND):
        raise PermissionDenied(_("You may not refer patients on behalf of this institution."))
    if idempotency_key:
        earlier = _idempotent_result(actor, idempotency_key, request_hash)
        if earlier is not None:
            return earlier, False
    errors: dict[str, str] = {}
    if direction not in Direction.values:
        errors["direction"] = _("Choose up, down or lateral.")
    if urgency not in Urgency.values:
        errors["urgency"] = _("Choose routine or urgent.")
    if requested_service not in RequestedService.values:
        errors["requested_service"] = _("Choose the service requested.")
    if not reason.strip():
        errors["reason"] = _("Say why the patient is referred.")
    if from_department is not None and from_department.institution_id != from_institution.pk:
        errors["from_department"] = _("The department is not part of the referring institution.")
    if to_department is not None and (to_institution is None or to_department.institution_id != to_institution.pk):
        errors["to_department"] = _("The department is not part of the receiving institution.")
    if to_institution is not None and to_institution.pk == from_institution.pk:
        errors["to_institution"] = _("A referral goes to another institution.")
    if from_practitioner is None:
        from_practitioner = Practitioner.objects.filter(user=actor, institution=from_institution).first()
    elif from_practitioner.institution_id != from_institution.pk:
        errors["from_practitioner"] = _("The referring doctor does not work at the referring institution.")
    if from_department is None and from_practitioner is not None:
        from_department = from_practitioner.department
    if to_institution is not None and "to_institution" not in errors:
        if consortium is None:
            consortium = common_consortium(from_institution, to_institution)
        if consortium is None or not (
            _is_current_member(consortium, from_institution) and _is_current_member(consortium, to_institution)
        ):
            errors["to_institution"] = _("The two institutions are not members of one consortium.")
    elif to_institution is None:
        if consortium is None:
            errors["consortium"] = _(
                "Choose the receiving institution, or the consortium whose office should route it."
            )
        elif not _is_current_member(consortium, from_institution):
            errors["consortium"] = _("Your institution is not a member of this consortium.")
    if errors:
        raise ValidationError(errors)
    assert consortium is not None
    plan = care_plan or {}
    now = timezone.now()
    referral = Referral(
        number=_new_number(now),
        direction=direction,
        urgency=urgency,
        consortium=consortium,
        patient=patient,
        from_institution=from_institution,
        from_department=from_department,
        from_practitioner=from_practitioner,
        to_institution=to_institution,
        to_department=to_department,
        created_by=actor,
        reason=reason.strip(),
        requested_service=requested_service,
        diagnosis_code=diagnosis_code.strip(),
        diagnosis_name=diagnosis_name.strip(),
        key_findings=key_findings.strip(),
        current_treatment=current_treatment.strip(),
        allergies=allergies.strip(),
        plan_diagnosis=plan.get("diagnosis", "").strip(),
        plan_treatment_done=plan.get("treatment_done", "").strip(),
        plan_medication=plan.get("medication", "").strip(),
        plan_follow_up=plan.get("follow_up", "").strip(),
        plan_warning_signs=plan.get("warning_signs", "").strip(),
    )
    if consent is not None:
        referral.consent_obtained_by = consent.obtained_by.strip()
        referral.consent_method = consent.method
        referral.consent_at = consent.at
    referral.full_clean(exclude=["patient", "consortium", "created_by", "status_token", "number"])
    try:
        with transaction.atomic():
            referral.save()
            from yilian.referrals.models import ReferralEvent

            ReferralEvent.objects.create(
                referral=referral,
                action="create",
                to_status=Status.DRAFT,
                at=now,
                actor=actor,
                actor_label=actor.display_name or actor.get_username(),
                side=Side.SENDER,
                institution=from_institution,
            )
            audit_record(
                actor=actor,
                action=AuditAction.CREATE,
                obj=referral,
                changes={
                    "direction": direction,
                    "urgency": urgency,
                    "from": from_institution.code,
                    "to": to_institution.code if to_institution else None,
                    "patient": str(patient.public_id),
                },
            )
            if idempotency_key:
                IdempotencyKey.objects.create(
                    user=actor, key=idempotency_key, request_hash=request_hash, referral=referral
                )
    except IntegrityError:
        if idempotency_key:  # a concurrent retry with the same key won; return its result
            earlier = _idempotent_result(actor, idempotency_key, request_hash)
            if earlier is not None:
                return earlier, False
        raise
    if send:
        referral = referral_send(actor=actor, referral=referral)
    return referral, True


def _idempotent_result(actor: User, key: str, request_hash: str) -> Referral | None:
    row = IdempotencyKey.objects.filter(user=actor, key=key).select_related("referral").first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise ValidationError(
            _("This Idempotency-Key was already used for a different request."), code="idempotency_mismatch"
        )
    return row.referral


# What a draft's sender may still change: the clinical summary, the consent and the care plan.
# The patient, the two institutions and the direction are fixed once the draft exists.
DRAFT_FIELDS = (
    "urgency",
    "requested_service",
    "diagnosis_code",
    "diagnosis_name",
    "reason",
    "key_findings",
    "current_treatment",
    "allergies",
    "consent_obtained_by",
    "consent_method",
    "consent_at",
    "plan_diagnosis",
    "plan_treatment_done",
    "plan_medication",
    "plan_follow_up",
    "plan_warning_signs",
)


def referral_update_draft(*, actor: User, referral: Referral, **fields: Any) -> Referral:
    """Change a draft's clinical summary, consent or care plan (sender side only)."""
    unknown = set(fields) - set(DRAFT_FIELDS)
    if unknown:
        raise ValidationError(_("These fields cannot be changed: %(fields)s.") % {"fields": ", ".join(sorted(unknown))})
    with transaction.atomic():
        locked = Referral.objects.select_for_update().get(pk=referral.pk)
        if workflow.Side.SENDER not in workflow.sides_of(actor, locked):
            raise PermissionDenied(_("Only the referring side may edit the referral."))
        if locked.status != Status.DRAFT:
            message = _("Only a draft can be edited: the referral is now “%(status)s”.") % {
                "status": Status(locked.status).label
            }
            raise workflow.TransitionNotAllowed(locked, Action.SEND, message)
        for key, value in fields.items():
            setattr(locked, key, value.strip() if isinstance(value, str) else value)
        locked.full_clean(exclude=["patient", "consortium", "created_by", "status_token", "number"])
        locked.save()
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=locked, changes={"fields": sorted(fields)})
    return locked


# ----------------------------------------------------------------------------------------
# Steps


def _set_deadlines(referral: Referral, now: dt.datetime) -> None:
    levels = service_levels_for(referral.consortium_id, referral.urgency)
    referral.receive_due_at = now + levels.receive_within
    referral.decide_due_at = now + levels.decide_within
    referral.escalation_level = 0


def referral_send(*, actor: User, referral: Referral, consent: Consent | None = None) -> Referral:
    now = timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        if consent is not None:
            r.consent_obtained_by, r.consent_method, r.consent_at = (
                consent.obtained_by.strip(),
                consent.method,
                consent.at,
            )
        errors: dict[str, str] = {}
        if not (r.consent_obtained_by and r.consent_method and r.consent_at):
            errors["consent"] = _(
                "Record the patient's consent (who obtained it, how and when) before sending the referral."
            )
        elif r.consent_method not in ConsentMethod.values:
            errors["consent"] = _("Choose how consent was obtained.")
        elif r.consent_at > now + dt.timedelta(minutes=5):
            errors["consent"] = _("The consent cannot be dated in the future.")
        if r.direction == Direction.DOWN and not r.has_care_plan():
            errors["care_plan"] = _(
                "A down-referral needs a care plan: diagnosis, treatment done, medication, follow-up and warning signs."
            )
        if errors:
            raise ValidationError(errors)
        r.sent_at = now
        _set_deadlines(r, now)
        return {}

    return workflow.apply(referral_id=referral.pk, action=Action.SEND, actor=actor, effect=effect, at=now)


def referral_receive(*, actor: User, referral: Referral) -> Referral:
    now = timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        if r.received_at is None:
            r.received_at = now
        if r.decide_due_at is not None and now < r.decide_due_at:
            r.escalation_level = 0  # the receipt notice is answered; the decision deadline starts fresh
        return {}

    return workflow.apply(referral_id=referral.pk, action=Action.RECEIVE, actor=actor, effect=effect, at=now)


def referral_mark_received_if_receiver(*, actor: User, referral: Referral) -> Referral:
    """Opening a referral on the receiving side receives it (the FHIR Task ``received`` step)."""
    if referral.status not in workflow.AWAITING_RECEIPT or referral.green_channel:
        return referral  # a green-channel case is accepted or declined, never merely received
    sides = workflow.sides_of(actor, referral)
    if Side.RECEIVER in sides or (referral.to_institution_id is None and Side.OFFICE in sides):
        try:
            return referral_receive(actor=actor, referral=referral)
        except workflow.TransitionNotAllowed:  # someone else opened it a moment earlier
            return Referral.objects.get(pk=referral.pk)
    return referral


def _green(referral: Referral, step: str, **kwargs: Any) -> Referral:
    """A green-channel referral's answers go through the green channel (offers, re-offers, boards)."""
    from yilian.referrals import green_services

    getattr(green_services, step)(case=green_services.case_of(referral), **kwargs)
    return Referral.objects.get(pk=referral.pk)


def _decided(r: Referral, now: dt.datetime) -> None:
    if r.decided_at is None:
        r.decided_at = now


def referral_accept(*, actor: User, referral: Referral, to_department: Department | None = None) -> Referral:
    if referral.green_channel:
        return _green(referral, "green_accept", actor=actor)
    now = timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        if r.to_institution_id is None:
            raise ValidationError(
                _("Forward the referral to an institution first; the office routes, it does not treat."),
                code="needs_destination",
            )
        if to_department is not None:
            if to_department.institution_id != r.to_institution_id:
                raise ValidationError({"to_department": _("The department is not part of the receiving institution.")})
            r.to_department = to_department
        _decided(r, now)
        return {}

    return workflow.apply(referral_id=referral.pk, action=Action.ACCEPT, actor=actor, effect=effect, at=now)


def referral_decline(*, actor: User, referral: Referral, reason: str) -> Referral:
    if referral.green_channel:
        return _green(referral, "green_decline", actor=actor, reason=reason)
    now = timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        _decided(r, now)
        return {}

    return workflow.apply(
        referral_id=referral.pk, action=Action.DECLINE, actor=actor, reason=reason, effect=effect, at=now
    )


def referral_forward(
    *,
    actor: User,
    referral: Referral,
    to_institution: Institution,
    reason: str,
    to_department: Department | None = None,
) -> Referral:
    if referral.green_channel:
        return _green(referral, "green_forward", actor=actor, to_institution=to_institution, reason=reason)
    now = timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        if to_institution.pk in (r.from_institution_id, r.to_institution_id):
            raise ValidationError({"to_institution": _("Forward to a third institution.")})
        if not _is_current_member(r.consortium, to_institution):
            raise ValidationError(
                {"to_institution": _("The institution is not a current member of the referral's consortium.")}
            )
        if to_department is not None and to_department.institution_id != to_institution.pk:
            raise ValidationError({"to_department": _("The department is not part of the receiving institution.")})
        previous = r.to_institution
        r.to_institution = to_institution
        r.to_department = to_department
        # The new receiver has not opened it yet (the timeline keeps when the former one did).
        r.received_at = None
        r.escalation_level = 0
        _set_deadlines(r, now)
        return {"from_institution": previous.code if previous else None, "to_institution": to_institution.code}

    return workflow.apply(
        referral_id=referral.pk, action=Action.FORWARD, actor=actor, reason=reason, effect=effect, at=now
    )


def referral_schedule(
    *, actor: User, referral: Referral, scheduled_at: dt.datetime, place: str, instructions: str = ""
) -> Referral:
    now = timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        errors: dict[str, str] = {}
        if timezone.is_naive(scheduled_at):
            errors["scheduled_at"] = _("Give the appointment time with its time zone.")
        elif scheduled_at < now - dt.timedelta(minutes=5):
            errors["scheduled_at"] = _("The appointment cannot be in the past.")
        if not place.strip():
            errors["place"] = _("Say where the patient should go.")
        if errors:
            raise ValidationError(errors)
        previous = r.scheduled_at
        r.scheduled_at = scheduled_at
        r.scheduled_place = place.strip()[:200]
        r.patient_instructions = instructions.strip()
        ReferralAppointment.objects.create(
            referral=r, scheduled_at=scheduled_at, place=r.scheduled_place, instructions=r.patient_instructions,
            created_by=actor,
        )  # fmt: skip
        data: dict[str, Any] = {"scheduled_at": scheduled_at.isoformat(), "place": r.scheduled_place}
        if previous is not None:
            data["previous"] = previous.isoformat()
        return data

    return workflow.apply(referral_id=referral.pk, action=Action.SCHEDULE, actor=actor, effect=effect, at=now)


def _stamped(*, actor: User, referral: Referral, action: Action, moment_field: str) -> Referral:
    """A step whose only effect is to record when it happened in ``moment_field``."""
    now = timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        setattr(r, moment_field, now)
        return {}

    return workflow.apply(referral_id=referral.pk, action=action, actor=actor, effect=effect, at=now)


def referral_check_in(*, actor: User, referral: Referral) -> Referral:
    if referral.green_channel:  # arrival is the green channel's time node
        from yilian.referrals import green_services

        green_services.green_node_record(actor=actor, case=green_services.case_of(referral), node="arrival")
        return Referral.objects.get(pk=referral.pk)
    return _stamped(actor=actor, referral=referral, action=Action.CHECK_IN, moment_field="arrived_at")


def referral_start_treatment(*, actor: User, referral: Referral) -> Referral:
    return workflow.apply(referral_id=referral.pk, action=Action.START_TREATMENT, actor=actor)


def referral_return_outcome(
    *,
    actor: User,
    referral: Referral,
    diagnosis: str,
    treatment: str,
    result: str,
    recommendations: str = "",
    refer_back: bool | None = None,
    refer_back_on: dt.date | None = None,
) -> Referral:
    now = timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        errors: dict[str, str] = {}
        if not diagnosis.strip():
            errors["diagnosis"] = _("Give the final diagnosis.")
        if not treatment.strip():
            errors["treatment"] = _("Say what treatment was given.")
        if not result.strip():
            errors["result"] = _("Say how the patient is.")
        if r.direction == Direction.UP and refer_back is None:
            errors["refer_back"] = _("Say whether the patient should be referred back down.")
        if refer_back and refer_back_on is None:
            errors["refer_back_on"] = _("Say when the patient can be referred back down.")
        if errors:
            raise ValidationError(errors)
        r.outcome_diagnosis = diagnosis.strip()[:200]
        r.outcome_treatment = treatment.strip()
        r.outcome_result = result.strip()
        r.outcome_recommendations = recommendations.strip()
        r.refer_back = refer_back
        r.refer_back_on = refer_back_on if refer_back else None
        r.outcome_at = now
        return {}

    return workflow.apply(referral_id=referral.pk, action=Action.RETURN_OUTCOME, actor=actor, effect=effect, at=now)


def referral_acknowledge(*, actor: User, referral: Referral) -> Referral:
    return _stamped(actor=actor, referral=referral, action=Action.ACKNOWLEDGE, moment_field="closed_at")


def referral_cancel(*, actor: User, referral: Referral, reason: str = "") -> Referral:
    if referral.green_channel:
        return _green(referral, "green_cancel", actor=actor, reason=reason)
    return workflow.apply(referral_id=referral.pk, action=Action.CANCEL, actor=actor, reason=reason)


def referral_mark_no_show(*, actor: User | None, referral: Referral, now: dt.datetime | None = None) -> Referral:
    now = now or timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        grace = service_levels_for(r.consortium_id, r.urgency).no_show_grace
        if r.scheduled_at is None or now < r.scheduled_at + grace:
            raise ValidationError(
                _("A no-show can be recorded only after the appointment time plus the grace period."),
                code="too_early",
            )
        return {"scheduled_at": r.scheduled_at.isoformat()}

    return workflow.apply(referral_id=referral.pk, action=Action.MARK_NO_SHOW, actor=actor, effect=effect, at=now)


def referral_reopen(*, actor: User, referral: Referral, reason: str) -> Referral:
    def effect(r: Referral, side: Side) -> dict[str, Any]:
        r.scheduled_at = None
        r.scheduled_place = ""
        return {}

    return workflow.apply(referral_id=referral.pk, action=Action.REOPEN, actor=actor, reason=reason, effect=effect)


# ----------------------------------------------------------------------------------------
# Attachments


def referral_attach(
    *, actor: User, referral: Referral, upload: UploadedFile, description: str = ""
) -> ReferralAttachment:
    sides = workflow.sides_of(actor, referral)
    if not sides & {Side.SENDER, Side.RECEIVER, Side.OFFICE}:
        raise PermissionDenied(_("You may not add files to this referral."))
    _refuse_files_when_ended(referral)
    inspected = inspect_upload(upload, max_bytes=ATTACHMENT_MAX_BYTES)
    with transaction.atomic():
        locked = Referral.objects.select_for_update().get(pk=referral.pk)
        _refuse_files_when_ended(locked)  # again under the lock: it may have ended a moment ago
        if locked.attachments.count() >= ATTACHMENTS_PER_REFERRAL:
            raise ValidationError(
                {"file": _("A referral can carry at most %(n)s files.") % {"n": ATTACHMENTS_PER_REFERRAL}}
            )
        attachment = ReferralAttachment(
            referral=locked,
            filename=inspected.name,
            kind=inspected.kind,
            content_type=inspected.content_type,
            size=inspected.size,
            sha256=inspected.sha256,
            description=description.strip()[:200],
            uploaded_by=actor,
        )
        attachment.file.save(inspected.name, upload, save=False)
        try:
            attachment.save()
            audit_record(
                actor=actor,
                action=AuditAction.CREATE,
                obj=attachment,
                changes={"referral": locked.number, "kind": inspected.kind.value, "size": inspected.size},
            )
        except BaseException:
            attachment.file.delete(save=False)  # no stored document without its record
            raise
    return attachment


def _refuse_files_when_ended(referral: Referral) -> None:
    if referral.status in workflow.TERMINAL:
        raise workflow.TransitionNotAllowed(
            referral,
            Action.SEND,
            _("Files can no longer be added: the referral is now “%(status)s”.")
            % {"status": Status(referral.status).label},
        )


# ----------------------------------------------------------------------------------------
# The worker's sweep


@dataclass(frozen=True)
class SweepReport:
    notified: int = 0
    escalated: int = 0
    no_shows: int = 0


def _service_level_groups() -> list[tuple[Q, Levels]]:
    """(which referrals, their service levels): one group per configured consortium and urgency,
    then one per urgency for all other consortia, which use the defaults."""
    groups: list[tuple[Q, Levels]] = []
    configured: dict[str, list[int]] = {u: [] for u in Urgency.values}
    for row in ServiceLevel.objects.all():
        configured[row.urgency].append(row.consortium_id)
        groups.append((Q(consortium_id=row.consortium_id, urgency=row.urgency), _levels_of(row)))
    for urgency, levels in DEFAULT_SERVICE_LEVELS.items():
        groups.append((Q(urgency=urgency) & ~Q(consortium_id__in=configured[urgency]), levels))
    return groups


def referral_sweep(*, now: dt.datetime | None = None) -> SweepReport:
    """Flag overdue referrals, notify the receiving side, escalate to the office, mark no-shows."""
    from yilian.referrals import events

    now = now or timezone.now()
    overdue = Q(status__in=workflow.AWAITING_RECEIPT, receive_due_at__lt=now) | Q(
        status__in=workflow.AWAITING_DECISION, decide_due_at__lt=now
    )
    notified = escalated = 0
    for referral in Referral.objects.filter(overdue, escalation_level=0).order_by("pk")[:SWEEP_BATCH]:
        with transaction.atomic():
            locked = Referral.objects.select_for_update().get(pk=referral.pk)
            if locked.escalation_level != 0:
                continue
            locked.escalation_level = 1
            locked.save(update_fields=["escalation_level", "updated_at"])
            audit_record(actor=None, action=AuditAction.UPDATE, obj=locked, changes={"escalation_level": 1})
            transaction.on_commit(partial(events.overdue, locked.pk, level=1))
        notified += 1
    # Escalation and no-show wait for windows set per consortium and urgency: select only the
    # referrals whose window has passed, so that those still waiting never crowd out the due ones.
    escalate_due, no_show_due = Q(pk__in=[]), Q(pk__in=[])
    for group, levels in _service_level_groups():
        late = now - levels.escalate_after
        escalate_due |= group & (
            Q(status__in=workflow.AWAITING_RECEIPT, receive_due_at__lt=late)
            | Q(status=Status.RECEIVED, decide_due_at__lt=late)
        )
        no_show_due |= group & Q(scheduled_at__lt=now - levels.no_show_grace)
    for referral in Referral.objects.filter(escalate_due, escalation_level=1).order_by("pk")[:SWEEP_BATCH]:
        with transaction.atomic():
            locked = Referral.objects.select_for_update().get(pk=referral.pk)
            if locked.escalation_level != 1:
                continue
            locked.escalation_level = 2
            locked.save(update_fields=["escalation_level", "updated_at"])
            audit_record(actor=None, action=AuditAction.UPDATE, obj=locked, changes={"escalation_level": 2})
            transaction.on_commit(partial(events.overdue, locked.pk, level=2))
        escalated += 1
    no_shows = 0
    for referral in Referral.objects.filter(no_show_due, status=Status.SCHEDULED).order_by("pk")[:SWEEP_BATCH]:
        try:
            referral_mark_no_show(actor=None, referral=referral, now=now)
        except (ValidationError, workflow.TransitionNotAllowed):
            continue  # checked in meanwhile
        no_shows += 1
    return SweepReport(notified=notified, escalated=escalated, no_shows=no_shows)
