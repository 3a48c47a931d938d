"""Writes of consults and MDT meetings. Every status change goes through ``workflow.apply``.

Domain rules enforced here (2018 national teleconsultation rules, DOMAIN.md section 6):
- a request needs an agreement in force between the two institutions (both parties to it);
  without one it is refused with a message that says so;
- the requesting side records the patient's written consent (who obtained it, how, when; not in
  the future);
- the request states reason, purpose, the question, a case summary with a working diagnosis and
  the specialty wanted (optionally the title, or a named expert); an urgent reading says what
  is to be read;
- declining and cancelling need a reason; the expert chosen must work at the consulted
  institution, answer consults there and hold the title wanted;
- diagnostic responsibility stays with the requesting doctor: experts write answers and
  opinions, the consult never changes the patient's own record;
- service levels per kind and urgency set the accept-by and answer-by deadlines (defaults in
  ``DEFAULT_SERVICE_LEVELS``; frozen sections have their own); the worker's sweep reminds the
  consulted side, then tells the consortium office, and lets unanswered requests expire;
- scheduling a teleconsultation or an MDT meeting refuses a time at which an expert is already
  in another meeting or teleconsultation, or on leave (stationing); days on site at a host
  hospital are shown as a note, not refused (the meeting is online).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.consults import selectors, workflow
from yilian.consults.models import (
    Attachment,
    ConsentMethod,
    Consult,
    ConsultEvent,
    Kind,
    Meeting,
    Message,
    MessageKind,
    Opinion,
    Participant,
    ReadingType,
    ServiceLevel,
    Status,
    Urgency,
    new_number,
)
from yilian.consults.workflow import Action, Side
from yilian.core.audit import audit_record
from yilian.core.files import inspect_upload
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.patients.models import Patient
from yilian.registry.models import (
    Agreement,
    AgreementStatus,
    Consortium,
    Department,
    Discipline,
    Institution,
    Practitioner,
    ProfessionalTitle,
    User,
)
from yilian.registry.selectors import user_scope

ATTACHMENT_MAX_BYTES = 20 * 1024 * 1024
ATTACHMENTS_PER_CONSULT = 30
SWEEP_BATCH = 500
MEETING_MAX_HOURS = 8


# ----------------------------------------------------------------------------------------
# Service levels


@dataclass(frozen=True)
class Levels:
    accept_within: dt.timedelta
    # eConsult and reading: from the request; teleconsultation and MDT: from the end of the session.
    answer_within: dt.timedelta
    escalate_after: dt.timedelta


def _m(accept: int, answer: int, escalate: int) -> Levels:
    return Levels(dt.timedelta(minutes=accept), dt.timedelta(minutes=answer), dt.timedelta(minutes=escalate))


H = 60
DEFAULT_SERVICE_LEVELS: dict[tuple[str, str, str], Levels] = {
    (Kind.ECONSULT, Urgency.ROUTINE, ""): _m(24 * H, 48 * H, 24 * H),
    (Kind.ECONSULT, Urgency.URGENT, ""): _m(1 * H, 4 * H, 1 * H),
    (Kind.TELECONSULTATION, Urgency.ROUTINE, ""): _m(24 * H, 24 * H, 8 * H),
    (Kind.TELECONSULTATION, Urgency.URGENT, ""): _m(1 * H, 4 * H, 1 * H),
    (Kind.MDT, Urgency.ROUTINE, ""): _m(48 * H, 24 * H, 24 * H),
    (Kind.MDT, Urgency.URGENT, ""): _m(4 * H, 4 * H, 2 * H),
    (Kind.READING, Urgency.ROUTINE, ""): _m(1 * H, 4 * H, 1 * H),
    (Kind.READING, Urgency.URGENT, ""): _m(10, 30, 10),
    # A frozen section is read while the patient is on the table: 30 minutes whatever the label.
    (Kind.READING, Urgency.ROUTINE, ReadingType.FROZEN_SECTION): _m(5, 30, 5),
    (Kind.READING, Urgency.URGENT, ReadingType.FROZEN_SECTION): _m(5, 30, 5),
}
# A request nobody accepted ends after this long (the requester may ask again).
EXPIRE_AFTER = {Urgency.ROUTINE: dt.timedelta(days=7), Urgency.URGENT: dt.timedelta(days=1)}


def _level_key(kind: str, urgency: str, reading_type: str) -> tuple[str, str, str]:
    return (kind, urgency, reading_type if kind == Kind.READING and reading_type == ReadingType.FROZEN_SECTION else "")


def service_levels_for(consortium_id: int, kind: str, urgency: str, reading_type: str = "") -> Levels:
    key = _level_key(kind, urgency, reading_type)
    row = ServiceLevel.objects.filter(
        consortium_id=consortium_id, kind=key[0], urgency=key[1], reading_type=key[2]
    ).first()
    if row is None:
        return DEFAULT_SERVICE_LEVELS[key]
    return _m(row.accept_within_minutes, row.answer_within_minutes, row.escalate_after_minutes)


def service_level_set(
    *,
    actor: User,
    consortium: Consortium,
    kind: str,
    urgency: str,
    reading_type: str = "",
    accept_within_minutes: int,
    answer_within_minutes: int,
    escalate_after_minutes: int,
) -> ServiceLevel:
    scope = user_scope(actor)
    if Permission.OVERSEE_CONSULTS not in scope.permissions or not (
        scope.is_global or consortium.pk in scope.consortium_ids
    ):
        raise PermissionDenied(_("Only the consortium office may set its service levels."))
    errors: dict[str, str] = {}
    if kind not in Kind.values:
        errors["kind"] = _("Choose the kind of consult.")
    if urgency not in Urgency.values:
        errors["urgency"] = _("Choose routine or urgent.")
    if reading_type and (kind != Kind.READING or reading_type != ReadingType.FROZEN_SECTION):
        errors["reading_type"] = _("Only frozen sections have service levels of their own.")
    values = {
        "accept_within_minutes": accept_within_minutes,
        "answer_within_minutes": answer_within_minutes,
        "escalate_after_minutes": escalate_after_minutes,
    }
    for name, value in values.items():
        if value < 1 or value > 60 * 24 * 60:
            errors[name] = _("Enter a number of minutes between 1 and 86400 (60 days).")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        row, created = ServiceLevel.objects.update_or_create(
            consortium=consortium, kind=kind, urgency=urgency, reading_type=reading_type, defaults=values
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE if created else AuditAction.UPDATE,
            obj=row,
            changes={"kind": kind, "urgency": urgency, "reading_type": reading_type, **values},
        )
    return row


# ----------------------------------------------------------------------------------------
# Request


@dataclass
class Consent:
    obtained_by: str
    method: str
    at: dt.datetime | None


def agreement_between(a: Institution, b: Institution, *, on: dt.date | None = None) -> Agreement | None:
    """An agreement in force today to which both institutions are parties (the most recent)."""
    day = on or timezone.localdate()
    return (
        Agreement.objects.filter(status=AgreementStatus.ACTIVE, valid_from__lte=day, parties=a)
        .filter(parties=b)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))
        .order_by("-valid_from", "-id")
        .first()
    )


def _consortium_for(agreement: Agreement, a: Institution, b: Institution) -> Consortium | None:
    if agreement.consortium_id is not None:
        return agreement.consortium
    from yilian.referrals.services import common_consortium

    return common_consortium(a, b)


def answers_consults(practitioner: Practitioner) -> bool:
    """The practitioner's account may answer consults at their institution."""
    return selectors.answering(Practitioner.objects.filter(pk=practitioner.pk)).exists()


def _check_expert(practitioner: Practitioner, *, institution_id: int, wanted_title: str, field: str) -> None:
    if practitioner.institution_id != institution_id:
        raise ValidationError({field: _("The expert does not work at the consulted institution.")})
    if not answers_consults(practitioner):
        raise ValidationError({field: _("This practitioner does not answer consultations in Yilian.")})
    if not workflow.meets_title(practitioner, wanted_title):
        raise ValidationError(
            {field: _("The request asks for at least a %(title)s.") % {"title": ProfessionalTitle(wanted_title).label}}
        )


def consult_request(
    *,
    actor: User,
    patient: Patient,
    kind: str,
    from_institution: Institution,
    to_institution: Institution,
    discipline: str,
    reason: str,
    purpose: str,
    question: str,
    diagnosis_name: str,
    consent: Consent | None,
    urgency: str = Urgency.ROUTINE,
    reading_type: str = "",
    wanted_title: str = "",
    named_expert: Practitioner | None = None,
    from_practitioner: Practitioner | None = None,
    history: str = "",
    examination: str = "",
    investigations: str = "",
    diagnosis_code: str = "",
    current_treatment: str = "",
    at: dt.datetime | None = None,
) -> Consult:
    """Send a request to the lead institution: to the named expert, else to the specialty's pool."""
    scope = user_scope(actor)
    if from_institution.pk not in scope.institution_ids_with(Permission.REQUEST_CONSULTS):
        raise PermissionDenied(_("You may not ask for consultations on behalf of this institution."))
    now = at or timezone.now()
    errors: dict[str, str] = {}
    if kind not in Kind.values:
        errors["kind"] = _("Choose the kind of consultation.")
    if urgency not in Urgency.values:
        errors["urgency"] = _("Choose routine or urgent.")
    if kind == Kind.READING and reading_type not in ReadingType.values:
        errors["reading_type"] = _("Say what is to be read: imaging, ECG, pathology or a frozen section.")
    if kind != Kind.READING:
        reading_type = ""
    if discipline not in Discipline.values:
        errors["discipline"] = _("Choose the specialty wanted.")
    if wanted_title and wanted_title not in ProfessionalTitle.values:
        errors["wanted_title"] = _("Choose a professional title.")
    for name, value, message in (
        ("reason", reason, _("Say why a consultation is needed.")),
        ("purpose", purpose, _("Say what the consultation should achieve.")),
        ("question", question, _("Write the question for the expert.")),
        ("diagnosis_name", diagnosis_name, _("Enter the working diagnosis.")),
    ):
        if not value.strip():
            errors[name] = message
    if to_institution.pk == from_institution.pk:
        errors["to_institution"] = _("A consultation is asked of another institution.")
    if from_practitioner is None:
        from_practitioner = Practitioner.objects.filter(user=actor, institution=from_institution).first()
        if from_practitioner is None:
            errors["from_practitioner"] = _("Name the requesting doctor: the diagnosis stays their responsibility.")
    elif from_practitioner.institution_id != from_institution.pk:
        errors["from_practitioner"] = _("The requesting doctor does not work at the requesting institution.")
    if consent is None or not consent.obtained_by.strip():
        errors["consent_obtained_by"] = _("Record who obtained the patient's written consent.")
    elif consent.method not in ConsentMethod.values:
        errors["consent_method"] = _("Record how the patient consented in writing.")
    elif consent.at is None:
        errors["consent_at"] = _("Record when the patient consented.")
    elif consent.at > now + dt.timedelta(minutes=5):
        errors["consent_at"] = _("The consent cannot be dated in the future.")
    agreement = None
    if "to_institution" not in errors:
        agreement = agreement_between(from_institution, to_institution, on=timezone.localdate(now))
        if agreement is None:
            errors["to_institution"] = _(
                "No agreement in force links %(a)s and %(b)s: a teleconsultation needs one (ask the consortium office)."
            ) % {"a": from_institution.name, "b": to_institution.name}
    if named_expert is not None and "wanted_title" not in errors:
        try:
            _check_expert(
                named_expert, institution_id=to_institution.pk, wanted_title=wanted_title, field="named_expert"
            )
        except ValidationError as exc:
            errors.update({k: v[0] for k, v in exc.message_dict.items()})
    consortium = _consortium_for(agreement, from_institution, to_institution) if agreement else None
    if agreement is not None and consortium is None:
        errors["to_institution"] = _("The two institutions are not members of one consortium.")
    if errors:
        raise ValidationError(errors)
    assert agreement is not None and consortium is not None and consent is not None and from_practitioner
    assert consent.at is not None
    to_department = (
        Department.objects.filter(institution=to_institution, discipline=discipline, is_active=True)
        .order_by("id")
        .first()
    )
    if named_expert is not None and named_expert.department_id is not None:
        to_department = named_expert.department
    elif named_expert is None and to_department is None:
        raise ValidationError(
            {
                "discipline": _(
                    "%(institution)s has no %(discipline)s department: name an expert or choose another specialty."
                )
                % {"institution": to_institution.name, "discipline": Discipline(discipline).label}
            }
        )
    levels = service_levels_for(consortium.pk, kind, urgency, reading_type)
    consult = Consult(
        number=new_number(),
        kind=kind,
        reading_type=reading_type,
        urgency=urgency,
        consortium=consortium,
        agreement=agreement,
        patient=patient,
        from_institution=from_institution,
        from_department=from_practitioner.department,
        from_practitioner=from_practitioner,
        created_by=actor,
        to_institution=to_institution,
        to_department=to_department,
        discipline=discipline,
        wanted_title=wanted_title,
        named_expert=named_expert,
        reason=reason.strip(),
        purpose=purpose.strip(),
        question=question.strip(),
        history=history.strip(),
        examination=examination.strip(),
        investigations=investigations.strip(),
        diagnosis_code=diagnosis_code.strip().upper()[:16],
        diagnosis_name=diagnosis_name.strip(),
        current_treatment=current_treatment.strip(),
        consent_obtained_by=consent.obtained_by.strip(),
        consent_method=consent.method,
        consent_at=consent.at,
        requested_at=now,
        accept_due_at=now + levels.accept_within,
        answer_due_at=(now + levels.answer_within) if kind in workflow.WRITTEN else None,
    )
    consult.full_clean(exclude=["patient", "consortium", "agreement", "created_by", "number"])
    with transaction.atomic():
        consult.save()
        event = ConsultEvent.objects.create(
            consult=consult,
            action="request",
            to_status=Status.REQUESTED,
            at=now,
            actor=actor,
            actor_label=actor.display_name or actor.get_username(),
            side=Side.REQUESTER,
            institution=from_institution,
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=consult,
            changes={
                "kind": kind,
                "urgency": urgency,
                "from": from_institution.code,
                "to": to_institution.code,
                "agreement": agreement.code,
                "patient": str(patient.public_id),
            },
        )
        from yilian.consults import events

        transaction.on_commit(partial(events.announce, consult.pk, event.pk))
    return consult


# ----------------------------------------------------------------------------------------
# Steps


def _actor_practitioner(actor: User, consult: Consult) -> Practitioner | None:
    return Practitioner.objects.filter(user=actor, institution=consult.to_institution, is_active=True).first()


def consult_accept(*, actor: User, consult: Consult, at: dt.datetime | None = None) -> Consult:
    """Accept: an expert who accepts becomes the consult's expert (a pool request is theirs now)."""

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        c.accepted_at = at or timezone.now()
        c.escalation_level = 0  # reminders so far were about accepting; the answer has its own deadline
        if c.kind in workflow.SESSION:
            # To be scheduled within the accept period; scheduling sets the answer time from the session's end.
            levels = service_levels_for(c.consortium_id, c.kind, c.urgency, c.reading_type)
            c.answer_due_at = c.accepted_at + levels.accept_within
        if side == Side.EXPERT and c.expert_id is None and c.kind != Kind.MDT:
            c.expert = _actor_practitioner(actor, c)
        return {"expert": c.expert.name if c.expert else None}

    return workflow.apply(consult_id=consult.pk, action=Action.ACCEPT, actor=actor, effect=effect, at=at)


def consult_decline(*, actor: User, consult: Consult, reason: str) -> Consult:
    return workflow.apply(consult_id=consult.pk, action=Action.DECLINE, actor=actor, reason=reason)


def consult_assign(*, actor: User, consult: Consult, expert: Practitioner) -> Consult:
    """A coordinator (or the office) chooses the expert; before acceptance the expert still accepts."""
    if consult.kind == Kind.MDT:
        raise ValidationError({"expert": _("An MDT case is discussed by the experts invited to its meeting.")})

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        _check_expert(expert, institution_id=c.to_institution_id, wanted_title=c.wanted_title, field="expert")
        previous = c.expert.name if c.expert else None
        c.expert = expert
        return {"expert": expert.name, "previous": previous}

    return workflow.apply(consult_id=consult.pk, action=Action.ASSIGN, actor=actor, effect=effect)


def _check_session_times(starts_at: dt.datetime, ends_at: dt.datetime, *, now: dt.datetime) -> None:
    if ends_at <= starts_at:
        raise ValidationError({"ends_at": _("The end must come after the start.")})
    if ends_at - starts_at > dt.timedelta(hours=MEETING_MAX_HOURS):
        raise ValidationError({"ends_at": _("A session lasts at most %(h)s hours.") % {"h": MEETING_MAX_HOURS}})
    if starts_at < now - dt.timedelta(minutes=5):
        raise ValidationError({"starts_at": _("Choose a time that has not passed.")})


def _refuse_conflicts(
    practitioners: list[Practitioner],
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    *,
    exclude_meeting: int | None = None,
    exclude_consult: int | None = None,
) -> None:
    # The people's rows are locked (in one order) so that two bookings of one expert at once are
    # checked one after the other: the second sees the first. Callers hold a transaction.
    list(Practitioner.objects.select_for_update().filter(pk__in=[p.pk for p in practitioners]).order_by("pk"))
    hard = [
        c
        for c in selectors.conflicts_for(
            [p.pk for p in practitioners],
            starts_at,
            ends_at,
            exclude_meeting=exclude_meeting,
            exclude_consult=exclude_consult,
        )
        if c.blocking
    ]
    if hard:
        raise ValidationError({"starts_at": [c.text for c in hard]}, code="conflict")


def consult_schedule(
    *,
    actor: User,
    consult: Consult,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    meeting_url: str = "",
    now: dt.datetime | None = None,
) -> Consult:
    """Give a teleconsultation its time slot and video link (a new slot keeps the old in the timeline)."""
    if consult.kind != Kind.TELECONSULTATION:
        raise ValidationError(
            {"starts_at": _("Only a teleconsultation is scheduled on its own; an MDT case joins a meeting.")}
        )
    _check_session_times(starts_at, ends_at, now=now or timezone.now())

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        if c.expert is None:
            if side == Side.EXPERT:
                c.expert = _actor_practitioner(actor, c)
            else:
                raise ValidationError({"expert": _("Assign the expert before scheduling.")})
        assert c.expert is not None
        _refuse_conflicts([c.expert], starts_at, ends_at, exclude_consult=c.pk)
        previous = c.scheduled_start.isoformat() if c.scheduled_start else None
        c.scheduled_start, c.scheduled_end = starts_at, ends_at
        c.meeting_url = meeting_url.strip()
        c.full_clean(exclude=["patient", "consortium", "agreement", "created_by", "number"])
        levels = service_levels_for(c.consortium_id, c.kind, c.urgency, c.reading_type)
        c.answer_due_at = ends_at + levels.answer_within
        c.escalation_level = 0
        return {"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(), "previous": previous}

    return workflow.apply(consult_id=consult.pk, action=Action.SCHEDULE, actor=actor, effect=effect)


def consult_start(*, actor: User, consult: Consult) -> Consult:
    return workflow.apply(consult_id=consult.pk, action=Action.START, actor=actor)


def _message(consult: Consult, actor: User, kind: str, text: str, institution_id: int) -> Message:
    return Message.objects.create(
        consult=consult,
        kind=kind,
        text=text,
        author=actor,
        author_label=actor.display_name or actor.get_username(),
        institution_id=institution_id,
    )


def _need_text(text: str, field: str = "text") -> str:
    text = text.strip()
    if not text:
        raise ValidationError({field: _("Write something first.")})
    if len(text) > 8000:
        raise ValidationError({field: _("Keep it under 8,000 characters.")})
    return text


def consult_ask_info(*, actor: User, consult: Consult, text: str) -> Consult:
    text = _need_text(text)

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        _message(c, actor, MessageKind.INFO_REQUEST, text, c.to_institution_id)
        # The answer clock stops while the expert waits for the requester.
        c.answer_due_at = None
        c.escalation_level = 0
        return {}

    return workflow.apply(consult_id=consult.pk, action=Action.ASK_INFO, actor=actor, effect=effect)


def consult_provide_info(*, actor: User, consult: Consult, text: str, at: dt.datetime | None = None) -> Consult:
    """The requester's reply to a request for information: the expert's answer clock starts again."""
    text = _need_text(text)

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        _message(c, actor, MessageKind.MESSAGE, text, c.from_institution_id)
        levels = service_levels_for(c.consortium_id, c.kind, c.urgency, c.reading_type)
        c.answer_due_at = (at or timezone.now()) + levels.answer_within
        c.escalation_level = 0
        return {}

    return workflow.apply(consult_id=consult.pk, action=Action.PROVIDE_INFO, actor=actor, effect=effect, at=at)


def consult_answer(
    *, actor: User, consult: Consult, answer: str, recommendations: str = "", at: dt.datetime | None = None
) -> Consult:
    """The expert's written answer (eConsult) or report (reading). A later answer after a
    follow-up replaces the current one; every answer stays in the thread."""
    answer = _need_text(answer, "answer")

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        now = at or timezone.now()
        c.conclusion = answer
        c.recommendations = recommendations.strip()
        c.concluded_by = _actor_practitioner(actor, c)
        if c.expert_id is None:
            c.expert = c.concluded_by
        c.answered_at = c.answered_at or now
        _message(c, actor, MessageKind.ANSWER, answer, c.to_institution_id)
        return {}

    return workflow.apply(consult_id=consult.pk, action=Action.ANSWER, actor=actor, effect=effect, at=at)


def consult_follow_up(*, actor: User, consult: Consult, text: str, at: dt.datetime | None = None) -> Consult:
    """A question on the answer: the expert has the service level's answer time again, from now
    (the first answer's deadline has passed long ago and must not make the question overdue)."""
    text = _need_text(text)

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        _message(c, actor, MessageKind.FOLLOW_UP, text, c.from_institution_id)
        levels = service_levels_for(c.consortium_id, c.kind, c.urgency, c.reading_type)
        c.answer_due_at = (at or timezone.now()) + levels.answer_within
        c.escalation_level = 0
        return {}

    return workflow.apply(consult_id=consult.pk, action=Action.FOLLOW_UP, actor=actor, effect=effect, at=at)


def consult_conclude(
    *, actor: User, consult: Consult, conclusion: str, recommendations: str = "", at: dt.datetime | None = None
) -> Consult:
    """The teleconsultation's expert or the MDT's chair writes the conclusion and recommendations."""
    conclusion = _need_text(conclusion, "conclusion")

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        now = at or timezone.now()
        c.conclusion = conclusion
        c.recommendations = recommendations.strip()
        c.concluded_by = (
            c.meeting.chair if side == Side.CHAIR and c.meeting is not None else _actor_practitioner(actor, c)
        )
        c.answered_at = c.answered_at or now
        return {}

    return workflow.apply(consult_id=consult.pk, action=Action.CONCLUDE, actor=actor, effect=effect, at=at)


def consult_close(
    *,
    actor: User,
    consult: Consult,
    referral_avoided: bool | None,
    management_changed: bool | None,
    value_rating: int | None,
    comment: str = "",
    at: dt.datetime | None = None,
) -> Consult:
    """The requester closes with the close-out: was a referral avoided, did the advice change
    the management, how valuable was it (1-5). All three are required."""
    errors: dict[str, str] = {}
    if referral_avoided is None:
        errors["referral_avoided"] = _("Say whether a referral or visit was avoided.")
    if management_changed is None:
        errors["management_changed"] = _("Say whether the advice changed the management.")
    if value_rating is None or not 1 <= value_rating <= 5:
        errors["value_rating"] = _("Rate the value of the advice from 1 to 5.")
    if errors:
        raise ValidationError(errors)

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        c.referral_avoided = referral_avoided
        c.management_changed = management_changed
        c.value_rating = value_rating
        c.closeout_comment = comment.strip()[:500]
        c.closed_at = at or timezone.now()
        return {"referral_avoided": referral_avoided, "management_changed": management_changed, "value": value_rating}

    return workflow.apply(consult_id=consult.pk, action=Action.CLOSE, actor=actor, effect=effect, at=at)


def consult_cancel(*, actor: User, consult: Consult, reason: str) -> Consult:
    return workflow.apply(consult_id=consult.pk, action=Action.CANCEL, actor=actor, reason=reason)


def consult_expire(*, consult: Consult, now: dt.datetime) -> Consult:
    return workflow.apply(
        consult_id=consult.pk, action=Action.EXPIRE, actor=None, reason=_("Nobody accepted it in time."), at=now
    )


# ----------------------------------------------------------------------------------------
# Thread, opinions, files


def consult_message(*, actor: User, consult: Consult, text: str) -> Message:
    """A note in the thread from either side while the consult is open."""
    text = _need_text(text)
    with transaction.atomic():
        locked = Consult.objects.select_for_update().get(pk=consult.pk)
        sides = workflow.sides_of(actor, locked)
        if not sides & {Side.REQUESTER, Side.EXPERT, Side.CHAIR, Side.COORDINATOR, Side.OFFICE}:
            raise PermissionDenied(_("You may not write in this consult."))
        if locked.status in workflow.TERMINAL:
            raise workflow.TransitionNotAllowed(
                locked,
                Action.PROVIDE_INFO,
                _("The consult is “%(status)s”: the thread is closed.") % {"status": Status(locked.status).label},
            )
        institution_id = (
            locked.from_institution_id
            if Side.REQUESTER in sides and Side.EXPERT not in sides
            else locked.to_institution_id
        )
        message = _message(locked, actor, MessageKind.MESSAGE, text, institution_id)
        audit_record(actor=actor, action=AuditAction.CREATE, obj=message, changes={"consult": locked.number})
        from yilian.consults import events

        transaction.on_commit(partial(events.message_posted, locked.pk, message.pk))
    return message


OPINION_STATUSES = frozenset({Status.SCHEDULED, Status.IN_DISCUSSION})


def consult_opinion(*, actor: User, consult: Consult, text: str) -> Opinion:
    """An expert's opinion on a teleconsultation or an MDT case; writing again corrects it
    (the earlier text stays, superseded)."""
    text = _need_text(text)
    with transaction.atomic():
        locked = Consult.objects.select_for_update().get(pk=consult.pk)
        if locked.kind not in workflow.SESSION:
            raise ValidationError({"text": _("An eConsult or a reading is answered, not given opinions.")})
        sides = workflow.sides_of(actor, locked)
        if not sides & {Side.EXPERT, Side.CHAIR}:
            raise PermissionDenied(_("Only the experts of this consult write opinions."))
        if locked.status not in OPINION_STATUSES:
            raise workflow.TransitionNotAllowed(
                locked,
                Action.CONCLUDE,
                _("Opinions are written while the case is scheduled or in discussion; it is now “%(status)s”.")
                % {"status": Status(locked.status).label},
            )
        practitioner = _actor_practitioner(actor, locked)
        assert practitioner is not None
        previous = (
            Opinion.objects.filter(consult=locked, practitioner=practitioner).order_by("-created_at", "-id").first()
        )
        opinion = Opinion.objects.create(
            consult=locked, practitioner=practitioner, text=text, author=actor, supersedes=previous
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE if previous is None else AuditAction.UPDATE,
            obj=opinion,
            changes={"consult": locked.number, "expert": practitioner.name},
        )
    return opinion


def consult_attach(*, actor: User, consult: Consult, upload: UploadedFile, description: str = "") -> Attachment:
    sides = workflow.sides_of(actor, consult)
    if not sides & {Side.REQUESTER, Side.EXPERT, Side.CHAIR, Side.COORDINATOR}:
        raise PermissionDenied(_("You may not add files to this consult."))
    inspected = inspect_upload(upload, max_bytes=ATTACHMENT_MAX_BYTES)
    with transaction.atomic():
        locked = Consult.objects.select_for_update().get(pk=consult.pk)
        if locked.status in workflow.TERMINAL:
            raise workflow.TransitionNotAllowed(
                locked,
                Action.PROVIDE_INFO,
                _("Files can no longer be added: the consult is now “%(status)s”.")
                % {"status": Status(locked.status).label},
            )
        if locked.attachments.count() >= ATTACHMENTS_PER_CONSULT:
            raise ValidationError(
                {"file": _("A consult can carry at most %(n)s files.") % {"n": ATTACHMENTS_PER_CONSULT}}
            )
        attachment = Attachment(
            consult=locked,
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
                changes={"consult": locked.number, "kind": inspected.kind.value, "size": inspected.size},
            )
        except BaseException:
            attachment.file.delete(save=False)
            raise
    return attachment


# ----------------------------------------------------------------------------------------
# MDT meetings


def _coordinates_at(actor: User, institution_id: int) -> bool:
    return institution_id in user_scope(actor).institution_ids_with(Permission.COORDINATE_CONSULTS)


def _audit_meeting(actor: User, meeting: Meeting, action: AuditAction, **changes: Any) -> None:
    audit_record(actor=actor, action=action, obj=meeting, changes={"meeting": meeting.number, **changes})


def meeting_create(
    *,
    actor: User,
    institution: Institution,
    title: str,
    chair: Practitioner,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    experts: list[Practitioner],
    meeting_url: str = "",
    consortium: Consortium | None = None,
    now: dt.datetime | None = None,
) -> Meeting:
    """An MDT meeting at the lead institution, with its chair and invited experts (chair included)."""
    if not _coordinates_at(actor, institution.pk):
        raise PermissionDenied(_("Only a consult coordinator of this institution may call an MDT meeting."))
    errors: dict[str, Any] = {}
    if not title.strip():
        errors["title"] = _("Give the meeting a title.")
    for person in [chair, *experts]:
        if person.institution_id != institution.pk:
            errors["experts"] = _("%(name)s does not work at %(institution)s, which holds the meeting.") % {
                "name": person.name,
                "institution": institution.name,
            }
        elif not answers_consults(person):
            errors["experts"] = _("%(name)s does not answer consultations in Yilian.") % {"name": person.name}
    if errors:
        raise ValidationError(errors)
    _check_session_times(starts_at, ends_at, now=now or timezone.now())
    people = list({p.pk: p for p in [chair, *experts]}.values())
    if consortium is None:
        from yilian.registry.models import ConsortiumMember

        member = (
            ConsortiumMember.objects.filter(institution=institution, left_on__isnull=True)
            .order_by("consortium_id")
            .first()
        )
        if member is None:
            raise ValidationError({"institution": _("The institution is not a member of any consortium.")})
        consortium = member.consortium
    with transaction.atomic():
        _refuse_conflicts(people, starts_at, ends_at)
        meeting = Meeting.objects.create(
            number=new_number().replace("C", "M", 1),
            consortium=consortium,
            institution=institution,
            title=title.strip()[:120],
            chair=chair,
            starts_at=starts_at,
            ends_at=ends_at,
            meeting_url=meeting_url.strip(),
            created_by=actor,
        )
        meeting.full_clean()
        Participant.objects.bulk_create([Participant(meeting=meeting, practitioner=p) for p in people])
        _audit_meeting(
            actor, meeting, AuditAction.CREATE, starts_at=starts_at.isoformat(), experts=[p.name for p in people]
        )
        from yilian.consults import events

        transaction.on_commit(partial(events.meeting_invited, meeting.pk, [p.pk for p in people]))
    return meeting


def _locked_meeting(actor: User, meeting: Meeting) -> Meeting:
    locked = Meeting.objects.select_for_update().get(pk=meeting.pk)
    if not _coordinates_at(actor, locked.institution_id):
        raise PermissionDenied(_("Only a consult coordinator of the host institution may change this meeting."))
    if locked.status != Meeting.MeetingStatus.PLANNED:
        raise ValidationError(
            {"meeting": _("The meeting is “%(status)s”.") % {"status": locked.get_status_display()}},
            code="meeting_closed",
        )
    return locked


def meeting_reschedule(
    *, actor: User, meeting: Meeting, starts_at: dt.datetime, ends_at: dt.datetime, now: dt.datetime | None = None
) -> Meeting:
    with transaction.atomic():
        locked = _locked_meeting(actor, meeting)
        _check_session_times(starts_at, ends_at, now=now or timezone.now())
        people = [p.practitioner for p in locked.participants.select_related("practitioner")]
        _refuse_conflicts(people, starts_at, ends_at, exclude_meeting=locked.pk)
        previous = locked.starts_at.isoformat()
        locked.starts_at, locked.ends_at = starts_at, ends_at
        locked.sequence += 1
        locked.save()
        for case in locked.cases.filter(status__in=workflow.AWAITING_ANSWER):
            levels = service_levels_for(case.consortium_id, case.kind, case.urgency)
            case.scheduled_start, case.scheduled_end = starts_at, ends_at
            case.answer_due_at = ends_at + levels.answer_within
            case.escalation_level = 0
            case.save(
                update_fields=["scheduled_start", "scheduled_end", "answer_due_at", "escalation_level", "updated_at"]
            )
        _audit_meeting(actor, locked, AuditAction.UPDATE, starts_at=starts_at.isoformat(), previous=previous)
        from yilian.consults import events

        transaction.on_commit(partial(events.meeting_changed, locked.pk))
    return locked


def meeting_invite(*, actor: User, meeting: Meeting, expert: Practitioner) -> Participant:
    with transaction.atomic():
        locked = _locked_meeting(actor, meeting)
        if expert.institution_id != locked.institution_id:
            raise ValidationError(
                {
                    "expert": _("%(name)s does not work at %(institution)s, which holds the meeting.")
                    % {"name": expert.name, "institution": locked.institution.name}
                }
            )
        if not answers_consults(expert):
            raise ValidationError(
                {"expert": _("%(name)s does not answer consultations in Yilian.") % {"name": expert.name}}
            )
        if locked.participants.filter(practitioner=expert).exists():
            raise ValidationError({"expert": _("%(name)s is already invited.") % {"name": expert.name}})
        _refuse_conflicts([expert], locked.starts_at, locked.ends_at, exclude_meeting=locked.pk)
        participant = Participant.objects.create(meeting=locked, practitioner=expert)
        locked.sequence += 1
        locked.save(update_fields=["sequence", "updated_at"])
        _audit_meeting(actor, locked, AuditAction.UPDATE, invited=expert.name)
        from yilian.consults import events

        transaction.on_commit(partial(events.meeting_invited, locked.pk, [expert.pk]))
    return participant


def meeting_respond(*, actor: User, meeting: Meeting, attend: bool) -> Participant:
    """An invited expert says whether they will attend."""
    with transaction.atomic():
        participant = (
            Participant.objects.select_for_update()
            .filter(meeting=meeting, practitioner__user=actor)
            .select_related("meeting")
            .first()
        )
        if participant is None:
            raise PermissionDenied(_("You are not invited to this meeting."))
        participant.response = Participant.Response.ACCEPTED if attend else Participant.Response.DECLINED
        participant.save(update_fields=["response", "updated_at"])
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=participant,
            changes={"meeting": participant.meeting.number, "response": participant.response},
        )
    return participant


def meeting_add_case(*, actor: User, meeting: Meeting, consult: Consult) -> Consult:
    """Put an accepted MDT case on a planned meeting's agenda (or move it from another meeting)."""
    if consult.kind != Kind.MDT:
        raise ValidationError({"consult": _("Only an MDT case goes on a meeting's agenda.")})
    if meeting.status != Meeting.MeetingStatus.PLANNED:
        raise ValidationError({"meeting": _("The meeting is “%(status)s”.") % {"status": meeting.get_status_display()}})
    if meeting.institution_id != consult.to_institution_id:
        raise ValidationError({"meeting": _("The meeting is held by another institution than the one consulted.")})

    def effect(c: Consult, side: Side) -> dict[str, Any]:
        # Under the meeting's lock: a meeting cancelled a moment ago takes no more cases.
        locked = Meeting.objects.select_for_update().get(pk=meeting.pk)
        if locked.status != Meeting.MeetingStatus.PLANNED:
            raise ValidationError(
                {"meeting": _("The meeting is “%(status)s”.") % {"status": locked.get_status_display()}}
            )
        previous = c.meeting.number if c.meeting else None
        c.meeting = locked
        c.agenda_order = (locked.cases.exclude(pk=c.pk).aggregate(n=Max("agenda_order"))["n"] or 0) + 1
        c.scheduled_start, c.scheduled_end = locked.starts_at, locked.ends_at
        c.meeting_url = locked.meeting_url
        levels = service_levels_for(c.consortium_id, c.kind, c.urgency)
        c.answer_due_at = locked.ends_at + levels.answer_within
        c.escalation_level = 0
        return {"meeting": locked.number, "previous": previous, "starts_at": locked.starts_at.isoformat()}

    return workflow.apply(consult_id=consult.pk, action=Action.SCHEDULE, actor=actor, effect=effect)


def meeting_cancel(*, actor: User, meeting: Meeting, reason: str) -> Meeting:
    """Cancel a meeting whose agenda is empty or fully discussed (move or cancel open cases first)."""
    if not reason.strip():
        raise ValidationError({"reason": _("Give a reason.")})
    with transaction.atomic():
        locked = _locked_meeting(actor, meeting)
        if locked.cases.filter(status__in=[Status.SCHEDULED, Status.IN_DISCUSSION]).exists():
            raise ValidationError(
                {"meeting": _("Cases are still on the agenda: move them to another meeting or cancel them first.")}
            )
        locked.status = Meeting.MeetingStatus.CANCELLED
        locked.sequence += 1
        locked.save()
        _audit_meeting(actor, locked, AuditAction.UPDATE, status="cancelled", reason=reason.strip())
        from yilian.consults import events

        transaction.on_commit(partial(events.meeting_changed, locked.pk))
    return locked


def meeting_mark_held(*, actor: User, meeting: Meeting, now: dt.datetime | None = None) -> Meeting:
    with transaction.atomic():
        locked = _locked_meeting(actor, meeting)
        if locked.starts_at > (now or timezone.now()):
            raise ValidationError({"meeting": _("The meeting has not started yet.")})
        locked.status = Meeting.MeetingStatus.HELD
        locked.save()
        _audit_meeting(actor, locked, AuditAction.UPDATE, status="held")
    return locked


# ----------------------------------------------------------------------------------------
# The worker's sweep


@dataclass(frozen=True)
class SweepReport:
    reminded: int = 0
    escalated: int = 0
    expired: int = 0


def _bump(consult: Consult, level: int, now: dt.datetime) -> bool:
    from yilian.consults import events

    with transaction.atomic():
        locked = Consult.objects.select_for_update().get(pk=consult.pk)
        # Accepted, answered or rescheduled since it was selected: no longer due for this notice.
        if locked.escalation_level != level - 1 or not selectors.is_overdue(locked, now):
            return False
        locked.escalation_level = level
        locked.save(update_fields=["escalation_level", "updated_at"])
        audit_record(actor=None, action=AuditAction.UPDATE, obj=locked, changes={"escalation_level": level})
        transaction.on_commit(partial(events.overdue, locked.pk, level=level))
    return True


def consult_sweep(*, now: dt.datetime | None = None) -> SweepReport:
    """Remind the consulted side of an overdue consult, then tell the consortium office once the
    service level's further period has passed too; expire requests nobody accepted."""
    now = now or timezone.now()
    reminded = escalated = expired = 0
    for consult in Consult.objects.filter(selectors.overdue_q(now), escalation_level=0).order_by("pk")[:SWEEP_BATCH]:
        reminded += _bump(consult, 1, now)
    for consult in Consult.objects.filter(selectors.overdue_q(now), escalation_level=1).order_by("pk")[:SWEEP_BATCH]:
        due = selectors.due_at(consult)
        levels = service_levels_for(consult.consortium_id, consult.kind, consult.urgency, consult.reading_type)
        if due is not None and due + levels.escalate_after < now:
            escalated += _bump(consult, 2, now)
    for urgency, after in EXPIRE_AFTER.items():
        stale = Consult.objects.filter(status=Status.REQUESTED, urgency=urgency, requested_at__lt=now - after)
        for consult in stale.order_by("pk")[:SWEEP_BATCH]:
            try:
                consult_expire(consult=consult, now=now)
            except workflow.TransitionNotAllowed:
                continue  # accepted meanwhile
            expired += 1
    return SweepReport(reminded=reminded, escalated=escalated, expired=expired)
