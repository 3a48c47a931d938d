"""The teleconsultation API: queues, requests, the workflow's steps, thread, opinions, files,
MDT meetings, free times and conflicts, service levels and the figures the indicators need.

Handlers parse the request, authorise and read through ``selectors``, write through
``services``. Refusals map to HTTP as the workflow table defines them: a step the caller could
never take is 403; a step not possible from the current status (or lost to someone who acted a
moment earlier) is 409 with the current status. Queues show patients masked; the detail shows
who the patient is after the audited read in ``selectors.consult_patient``.
"""

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, ParamSpec

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, File, Query, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate
from ninja.params import FormEx, P, QueryEx
from pydantic import field_validator, model_validator

from yilian.consults import schemas, selectors, services, workflow
from yilian.consults.models import Consult, Kind, Meeting, ServiceLevel
from yilian.consults.schemas import ActionName
from yilian.core.permissions import Permission
from yilian.core.schemas import iso_text, plausible_day
from yilian.patients.models import Patient, mask_name
from yilian.referrals.api import register_given_patient
from yilian.referrals.schemas import aware_moment
from yilian.referrals.selectors import patient_queryset_visible_to
from yilian.registry.api import ERRORS as REGISTRY_ERRORS
from yilian.registry.api import Pagination
from yilian.registry.models import Consortium, ConsortiumMember, Institution, Practitioner, User
from yilian.registry.selectors import access_consortium, user_scope

router = Router(tags=["consults"])

ERRORS: dict[int, type[Schema]] = {**REGISTRY_ERRORS, 409: schemas.ConsultConflictOut}

MAX_CALENDAR_DAYS = 93
MAX_FIGURES_DAYS = 3 * 366

P_ = ParamSpec("P_")


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _require_consults(user: User) -> None:
    if not selectors.can_use_consults(user):
        raise PermissionDenied(_("You have no part in teleconsultation."))


def _institution(code: str, field: str) -> Institution:
    institution = Institution.objects.filter(code=code).first()
    if institution is None:
        raise ValidationError({field: [_("No institution with code %(code)s.") % {"code": code}]})
    return institution


def _practitioner(public_id: uuid.UUID, field: str) -> Practitioner:
    practitioner = Practitioner.objects.select_related("department").filter(public_id=public_id).first()
    if practitioner is None:
        raise ValidationError({field: [_("No such practitioner.")]})
    return practitioner


def _only_institution(user: User, code: str, permission: Permission, field: str) -> Institution:
    """The institution named, or the caller's only one holding the permission."""
    mine = user_scope(user).institution_ids_with(permission)
    if code:
        return _institution(code, field)  # the service refuses an institution that is not theirs
    if not mine:
        raise PermissionDenied(_("You may not do this for any institution."))
    if len(mine) > 1:
        raise ValidationError({field: [_("You act for several institutions: say which one.")]})
    return Institution.objects.get(pk=next(iter(mine)))


def _moment_window(starts_at: dt.datetime | None, ends_at: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    errors: dict[str, list[str]] = {}
    if starts_at is None:
        errors["starts_at"] = [_("Give the start.")]
    if ends_at is None:
        errors["ends_at"] = [_("Give the end.")]
    if errors:
        raise ValidationError(errors)
    assert starts_at is not None and ends_at is not None
    return starts_at, ends_at


# ----------------------------------------------------------------------------------------
# Meetings (before the consult paths: "/consults/meetings" is not a consult id)


def _meeting_summary(meeting: Meeting) -> dict[str, Any]:
    return {
        "public_id": meeting.public_id,
        "number": meeting.number,
        "title": meeting.title,
        "institution": {"code": meeting.institution.code, "name": meeting.institution.name},
        "chair": meeting.chair,
        "starts_at": meeting.starts_at,
        "ends_at": meeting.ends_at,
        "meeting_url": meeting.meeting_url,
        "status": meeting.status,
        "sequence": meeting.sequence,
    }


def _meeting_out(user: User, meeting: Meeting) -> dict[str, Any]:
    cases = selectors.meeting_cases(meeting)
    visible = set(
        selectors.consult_queryset_visible_to(user).filter(pk__in=[c.pk for c in cases]).values_list("pk", flat=True)
    )
    return {
        **_meeting_summary(meeting),
        "participants": selectors.meeting_participants(meeting),
        "agenda": [
            {
                "agenda_order": c.agenda_order,
                "id": c.public_id if c.pk in visible else None,
                "number": c.number,
                "status": c.status,
                "from_institution": (
                    {"code": c.from_institution.code, "name": c.from_institution.name} if c.pk in visible else None
                ),
                "patient": mask_name(c.patient.name) if c.pk in visible else None,
                "question": c.question if c.pk in visible else None,
            }
            for c in cases
        ],
    }


class CalendarQuery(schemas.ConsultPeriodQuery):
    @model_validator(mode="after")
    def _short(self) -> "CalendarQuery":
        if self.end < self.start:
            raise ValueError(_("The end cannot come before the start."))
        if (self.end - self.start).days >= MAX_CALENDAR_DAYS:
            raise ValueError(_("Ask for at most %(n)d days at a time.") % {"n": MAX_CALENDAR_DAYS})
        return self


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


@router.get(
    "/consults/meetings",
    response={200: list[schemas.MeetingOut], **ERRORS},
    summary="MDT meetings the caller takes part in, coordinates or oversees, in a period",
)
def meeting_list(request: HttpRequest, period: Query[CalendarQuery]) -> list[dict[str, Any]]:
    user = _user(request)
    _require_consults(user)
    end = _day_start(period.end + dt.timedelta(days=1))
    return [_meeting_summary(m) for m in selectors.meetings_between(user, _day_start(period.start), end)]


@router.post(
    "/consults/meetings",
    response={201: schemas.MeetingDetailOut, **ERRORS},
    summary="Call an MDT meeting (a consult coordinator of the host)",
)
def meeting_create(request: HttpRequest, payload: schemas.MeetingIn) -> Status[Any]:
    user = _user(request)
    institution = _only_institution(user, payload.institution, Permission.COORDINATE_CONSULTS, "institution")
    experts = [_practitioner(pid, "experts") for pid in dict.fromkeys(payload.experts)]
    meeting = services.meeting_create(
        actor=user,
        institution=institution,
        title=payload.title,
        chair=_practitioner(payload.chair, "chair"),
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        experts=experts,
        meeting_url=payload.meeting_url,
    )
    return Status(201, _meeting_out(user, selectors.access_meeting(user, str(meeting.public_id))))


@router.get("/consults/meetings/{public_id}", response={200: schemas.MeetingDetailOut, **ERRORS})
def meeting_detail(request: HttpRequest, public_id: uuid.UUID) -> dict[str, Any]:
    """The meeting with its invited experts (and their answers) and its agenda; cases the caller may
    not open are listed by number only."""
    user = _user(request)
    return _meeting_out(user, selectors.access_meeting(user, str(public_id)))


@router.post(
    "/consults/meetings/{public_id}/{action}",
    response={200: schemas.MeetingDetailOut, **ERRORS},
    summary="Reschedule, invite an expert, answer an invitation, cancel, or mark held",
)
def meeting_act(
    request: HttpRequest,
    public_id: uuid.UUID,
    action: schemas.MeetingActionName,
    payload: schemas.MeetingActionIn | None = None,
) -> dict[str, Any]:
    user = _user(request)
    meeting = selectors.access_meeting(user, str(public_id))
    body = payload or schemas.MeetingActionIn.model_validate({})
    if action == "reschedule":
        starts_at, ends_at = _moment_window(body.starts_at, body.ends_at)
        services.meeting_reschedule(actor=user, meeting=meeting, starts_at=starts_at, ends_at=ends_at)
    elif action == "invite":
        if body.expert is None:
            raise ValidationError({"expert": [_("Name the expert to invite.")]})
        services.meeting_invite(actor=user, meeting=meeting, expert=_practitioner(body.expert, "expert"))
    elif action == "respond":
        if body.attend is None:
            raise ValidationError({"attend": [_("Say whether you will attend.")]})
        services.meeting_respond(actor=user, meeting=meeting, attend=body.attend)
    elif action == "cancel":
        services.meeting_cancel(actor=user, meeting=meeting, reason=body.reason)
    else:
        services.meeting_mark_held(actor=user, meeting=meeting)
    return _meeting_out(user, selectors.access_meeting(user, str(public_id)))


# ----------------------------------------------------------------------------------------
# Free times and conflicts


def _experts(user: User, ids: list[uuid.UUID]) -> list[Practitioner]:
    """The experts named, each one whose diary the caller may read: their own, a colleague's where
    the caller answers or coordinates consults, or one of the caller's consortia (office)."""
    people = {p.public_id: p for p in Practitioner.objects.filter(public_id__in=ids)}
    unknown = [str(i) for i in ids if i not in people]
    if unknown:
        raise ValidationError({"experts": [_("No such practitioner: %(ids)s.") % {"ids": ", ".join(unknown)}]})
    scope = user_scope(user)
    allowed = scope.institution_ids_with(Permission.COORDINATE_CONSULTS) | scope.institution_ids_with(
        Permission.ANSWER_CONSULTS
    )
    if Permission.OVERSEE_CONSULTS in scope.permissions and scope.consortium_ids:
        allowed |= set(
            ConsortiumMember.objects.filter(consortium_id__in=scope.consortium_ids, left_on__isnull=True).values_list(
                "institution_id", flat=True
            )
        )
    for person in people.values():
        if not (scope.is_global or person.user_id == user.pk or person.institution_id in allowed):
            raise PermissionDenied(_("You may not read %(name)s's diary.") % {"name": person.name})
    return list(people.values())


class SlotQuery(Schema):
    experts: list[uuid.UUID] = Field(..., min_length=1, max_length=20, description="Practitioner ids (repeat).")
    first_day: dt.date | None = Field(None, alias="from", description="First day; today by default.")
    days: int = Field(10, ge=1, le=31)
    minutes: int = Field(60, ge=15, le=services.MEETING_MAX_HOURS * 60)

    _iso = field_validator("first_day", mode="before")(iso_text)
    _days = field_validator("first_day")(plausible_day)


@router.get(
    "/consults/free-slots",
    response={200: list[schemas.SlotOut], **ERRORS},
    summary="Times on working days when none of these experts has a blocking conflict",
)
def free_slots(request: HttpRequest, query: Query[SlotQuery]) -> list[selectors.Slot]:
    """At 08:00, 10:00, 14:00 and 16:00 on working days, earliest first (at most 8), each with its
    notes (an expert on site at a host hospital joins online from there)."""
    people = _experts(_user(request), query.experts)
    return selectors.free_slots(
        [p.pk for p in people],
        first_day=query.first_day or timezone.localdate(),
        days=query.days,
        minutes=query.minutes,
    )


class WindowQuery(Schema):
    experts: list[uuid.UUID] = Field(..., min_length=1, max_length=20, description="Practitioner ids (repeat).")
    starts_at: dt.datetime
    ends_at: dt.datetime

    _iso = field_validator("starts_at", "ends_at", mode="before")(iso_text)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        moment = aware_moment(value)
        assert moment is not None
        return moment

    @model_validator(mode="after")
    def _ordered(self) -> "WindowQuery":
        if self.ends_at <= self.starts_at:
            raise ValueError(_("The end must come after the start."))
        if self.ends_at - self.starts_at > dt.timedelta(days=7):
            raise ValueError(_("Ask for at most %(n)d days at a time.") % {"n": 7})
        return self


@router.get(
    "/consults/conflicts",
    response={200: list[schemas.ConflictItemOut], **ERRORS},
    summary="What stands in the way of these experts meeting at this time",
)
def conflicts(request: HttpRequest, query: Query[WindowQuery]) -> list[dict[str, Any]]:
    people = _experts(_user(request), query.experts)
    public = {p.pk: p.public_id for p in people}
    return [
        {"expert": public[c.practitioner_id], "text": c.text, "blocking": c.blocking}
        for c in selectors.conflicts_for(list(public), query.starts_at, query.ends_at)
    ]


# ----------------------------------------------------------------------------------------
# Service levels and figures


def _consortium_for_levels(user: User, code: str) -> Consortium:
    if code:
        return access_consortium(user, code)
    mine = user_scope(user).consortium_ids
    if len(mine) != 1:
        raise ValidationError({"consortium": [_("Say which consortium (its code).")]})
    return Consortium.objects.get(pk=next(iter(mine)))


def _levels(consortium: Consortium) -> list[dict[str, Any]]:
    rows = {(r.kind, r.urgency, r.reading_type): r for r in ServiceLevel.objects.filter(consortium=consortium)}
    out = []
    for key, default in services.DEFAULT_SERVICE_LEVELS.items():
        row = rows.get(key)
        out.append(
            {
                "consortium": consortium.code,
                "kind": key[0],
                "urgency": key[1],
                "reading_type": key[2],
                "accept_within_minutes": row.accept_within_minutes
                if row
                else int(default.accept_within.total_seconds() // 60),
                "answer_within_minutes": row.answer_within_minutes
                if row
                else int(default.answer_within.total_seconds() // 60),
                "escalate_after_minutes": row.escalate_after_minutes
                if row
                else int(default.escalate_after.total_seconds() // 60),
                "source": "consortium" if row else "default",
            }
        )
    return out


@router.get(
    "/consults/service-levels",
    response={200: list[schemas.ServiceLevelOut], **ERRORS},
    summary="The service levels in effect per kind and urgency (the consortium's own, else the defaults)",
)
def service_levels(request: HttpRequest, consortium: QueryEx[str, P(max_length=40)] = "") -> list[dict[str, Any]]:
    user = _user(request)
    _require_consults(user)
    return _levels(_consortium_for_levels(user, consortium))


@router.put(
    "/consults/service-levels",
    response={200: schemas.ServiceLevelOut, **ERRORS},
    summary="Set one service level of a consortium (its office)",
)
def service_level_set(request: HttpRequest, payload: schemas.ServiceLevelIn) -> dict[str, Any]:
    user = _user(request)
    consortium = Consortium.objects.filter(code=payload.consortium).first()
    if consortium is None:
        raise ValidationError({"consortium": [_("No consortium with code %(code)s.") % {"code": payload.consortium}]})
    services.service_level_set(
        actor=user,
        consortium=consortium,
        kind=payload.kind,
        urgency=payload.urgency,
        reading_type=payload.reading_type,
        accept_within_minutes=payload.accept_within_minutes,
        answer_within_minutes=payload.answer_within_minutes,
        escalate_after_minutes=payload.escalate_after_minutes,
    )
    key = (payload.kind.value, payload.urgency.value, payload.reading_type)
    return next(row for row in _levels(consortium) if (row["kind"], row["urgency"], row["reading_type"]) == key)


@router.get("/consults/figures", response={200: schemas.ConsultFiguresOut, **ERRORS}, tags=["figures"])
def figures(request: HttpRequest, period: Query[schemas.ConsultPeriodQuery]) -> dict[str, Any]:
    """Per institution, for the days from `from` to `to` (both included): consults requested,
    delivered (answered or concluded) by kind, delivered for others, response hours of eConsults
    and readings, the share of close-outs with a referral avoided. No patient data."""
    if period.end < period.start:
        raise ValidationError({"to": [_("The end cannot come before the start.")]})
    if (period.end - period.start).days >= MAX_FIGURES_DAYS:
        raise ValidationError({"to": [_("Ask for at most %(n)d days at a time.") % {"n": MAX_FIGURES_DAYS}]})
    rows = selectors.consult_figures(_user(request), start=period.start, end=period.end)
    codes = dict(Institution.objects.filter(pk__in=[r.institution_id for r in rows]).values_list("pk", "code"))
    return {
        "start": period.start,
        "end": period.end,
        "institutions": [
            {
                "institution": {"code": codes[r.institution_id], "name": r.institution_name},
                "requested": r.requested,
                "delivered": r.delivered,
                "delivered_by_kind": r.delivered_by_kind,
                "delivered_for_others": r.answered_for_others,
                "closed": r.closed,
                "referral_avoided": r.referral_avoided,
                "referral_avoided_share": r.referral_avoided_share,
                "median_response_hours": r.median_response_hours,
                "p90_response_hours": r.p90_response_hours,
                "median_reading_minutes": r.median_reading_minutes,
                "p90_reading_minutes": r.p90_reading_minutes,
            }
            for r in rows
        ],
    }


# ----------------------------------------------------------------------------------------
# Queues and requests


class ConsultFilters(Schema):
    box: schemas.BoxName | None = Field(
        None,
        description="asked (by you and your department), for_me, incoming and outgoing (coordinators), office; "
        "your first box by default.",
    )
    status: schemas.StatusField | None = None
    kind: schemas.KindField | None = None
    overdue: bool = Field(False, description="Only consults past their accept-by or answer-by time.")


@router.get("/consults", response={200: list[schemas.ConsultRowOut], **ERRORS})
@paginate(Pagination)
def consult_list(request: HttpRequest, filters: Query[ConsultFilters]) -> Any:
    user = _user(request)
    boxes = selectors.boxes_for(user)
    if not boxes:
        raise PermissionDenied(_("You have no part in teleconsultation."))
    queue = selectors.consult_queue(
        user,
        box=filters.box or boxes[0],
        status=filters.status or "",
        kind=filters.kind or "",
        overdue=filters.overdue,
    )
    return queue.rows


def _visible_patient(user: User, public_id: uuid.UUID) -> Patient:
    """A patient the caller already sees through a referral or a consult."""
    patient = Patient.objects.select_related("merged_into").filter(public_id=public_id).first()
    if patient is None:
        raise Http404(_("No such patient."))
    ids = {patient.pk, patient.merged_into_id} - {None}
    through_consults = selectors.consult_queryset_visible_to(user).filter(patient_id__in=ids).exists()
    if not through_consults and not patient_queryset_visible_to(user).filter(pk__in=ids).exists():
        raise PermissionDenied(_("This patient is not one you already see; give the patient inline instead."))
    # A record merged into another is consulted on as the person's current record.
    return patient.merged_into or patient


def _patient(user: User, payload: schemas.ConsultIn, institution: Institution) -> Patient:
    if payload.patient_id is not None:
        return _visible_patient(user, payload.patient_id)
    assert payload.patient is not None  # the schema requires one of the two
    return register_given_patient(user, payload.patient, institution)


def _located(exc: ValidationError, payload: schemas.ConsultIn) -> ValidationError:
    """The service names the consent's fields as the model does; the body nests them in `consent`."""
    if not hasattr(exc, "error_dict"):
        return exc
    errors: dict[str, list[str]] = {}
    for key, messages in exc.message_dict.items():
        if key.startswith("consent_"):
            key = "consent" if payload.consent is None else f"consent.{key.removeprefix('consent_')}"
        errors.setdefault(key, []).extend(messages)
    return ValidationError(errors)


@router.post(
    "/consults",
    response={201: schemas.ConsultOut, **ERRORS},
    summary="Ask the consulted institution for an eConsult, a teleconsultation, an MDT discussion or a reading",
)
def consult_create(request: HttpRequest, payload: schemas.ConsultIn) -> Status[Any]:
    user = _user(request)
    from_institution = _only_institution(
        user, payload.from_institution, Permission.REQUEST_CONSULTS, "from_institution"
    )
    to_institution = _institution(payload.to_institution, "to_institution")
    named_expert = _practitioner(payload.named_expert, "named_expert") if payload.named_expert else None
    consent = payload.consent
    # One transaction: a newly registered patient is not kept when the request is refused.
    with transaction.atomic():
        patient = _patient(user, payload, from_institution)
        try:
            consult = services.consult_request(
                actor=user,
                patient=patient,
                kind=payload.kind,
                from_institution=from_institution,
                to_institution=to_institution,
                discipline=payload.discipline,
                reason=payload.reason,
                purpose=payload.purpose,
                question=payload.question,
                diagnosis_name=payload.diagnosis_name,
                consent=services.Consent(consent.obtained_by, consent.method, consent.at) if consent else None,
                urgency=payload.urgency,
                reading_type=payload.reading_type or "",
                wanted_title=payload.wanted_title or "",
                named_expert=named_expert,
                history=payload.history,
                examination=payload.examination,
                investigations=payload.investigations,
                diagnosis_code=payload.diagnosis_code,
                current_treatment=payload.current_treatment,
            )
        except ValidationError as exc:
            raise _located(exc, payload) from None
    return Status(201, selectors.access_consult(user, str(consult.public_id)))


# ----------------------------------------------------------------------------------------
# One consult


@router.get("/consults/{public_id}", response={200: schemas.ConsultDetailOut, **ERRORS})
def consult_detail(request: HttpRequest, public_id: uuid.UUID) -> Consult:
    """The request, the case, who the patient is (the read is audited; the ID number stays masked),
    thread, current opinions, files, timeline and the steps the caller may take now."""
    user = _user(request)
    consult = selectors.access_consult(user, str(public_id))
    selectors.consult_patient(user, consult, purpose="API")
    return consult


@router.post("/consults/{public_id}/messages", response={201: schemas.MessageOut, **ERRORS})
def consult_message(request: HttpRequest, public_id: uuid.UUID, payload: schemas.TextIn) -> Status[Any]:
    """A note in the thread from either side while the consult is open; 409 once it is closed."""
    user = _user(request)
    consult = selectors.access_consult(user, str(public_id))
    return Status(201, services.consult_message(actor=user, consult=consult, text=payload.text))


@router.post("/consults/{public_id}/opinions", response={201: schemas.OpinionOut, **ERRORS})
def consult_opinion(request: HttpRequest, public_id: uuid.UUID, payload: schemas.TextIn) -> Status[Any]:
    """An expert's opinion on a teleconsultation or MDT case while it is scheduled or in discussion;
    writing again corrects it (the earlier version stays)."""
    user = _user(request)
    consult = selectors.access_consult(user, str(public_id))
    opinion = services.consult_opinion(actor=user, consult=consult, text=payload.text)
    earlier = consult.opinions.filter(practitioner_id=opinion.practitioner_id).exclude(pk=opinion.pk).count()
    return Status(
        201,
        {
            "public_id": opinion.public_id,
            "practitioner": opinion.practitioner,
            "text": opinion.text,
            "created_at": opinion.created_at,
            "corrections": earlier,
        },
    )


@router.post("/consults/{public_id}/attachments", response={201: schemas.ConsultAttachmentOut, **ERRORS})
def attachment_upload(
    request: HttpRequest,
    public_id: uuid.UUID,
    file: File[UploadedFile],
    description: FormEx[str, P(max_length=200)] = "",
) -> Status[Any]:
    """A PDF, PNG/JPEG image or DICOM file, recognised by its content, within the size limit."""
    user = _user(request)
    consult = selectors.access_consult(user, str(public_id))
    return Status(201, services.consult_attach(actor=user, consult=consult, upload=file, description=description))


_FILE = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/consults/{public_id}/attachments/{attachment_id}",
    response=ERRORS,
    url_name="consult_attachment_download",
    openapi_extra={
        "responses": {
            200: {
                "description": "The file (reading it is audited as a read of the patient's data).",
                "content": {
                    kind: _FILE for kind in ("application/pdf", "image/png", "image/jpeg", "application/dicom")
                },
            }
        }
    },
)
def attachment_download(request: HttpRequest, public_id: uuid.UUID, attachment_id: uuid.UUID) -> FileResponse:
    attachment = selectors.attachment_open(_user(request), str(public_id), str(attachment_id))
    inline = attachment.content_type in ("application/pdf", "image/png", "image/jpeg")
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=not inline,
        filename=attachment.filename,
        content_type=attachment.content_type,
    )
    response["Cache-Control"] = "private, no-store"  # a clinical document stays out of shared caches
    return response


def _schedule(user: User, consult: Consult, body: schemas.ConsultActionIn) -> None:
    if consult.kind == Kind.MDT:
        if body.meeting is None:
            raise ValidationError({"meeting": [_("Name the MDT meeting to put the case on.")]})
        meeting = Meeting.objects.filter(public_id=body.meeting).first()
        if meeting is None:
            raise ValidationError({"meeting": [_("No such meeting.")]})
        services.meeting_add_case(actor=user, meeting=meeting, consult=consult)
        return
    starts_at, ends_at = _moment_window(body.starts_at, body.ends_at)
    services.consult_schedule(
        actor=user, consult=consult, starts_at=starts_at, ends_at=ends_at, meeting_url=body.meeting_url
    )


def _assign(user: User, consult: Consult, body: schemas.ConsultActionIn) -> None:
    if body.expert is None:
        raise ValidationError({"expert": [_("Name the expert to assign.")]})
    services.consult_assign(actor=user, consult=consult, expert=_practitioner(body.expert, "expert"))


Step = Callable[[User, Consult, schemas.ConsultActionIn], Any]
_STEPS: dict[ActionName, Step] = {
    ActionName.ACCEPT: lambda u, c, b: services.consult_accept(actor=u, consult=c),
    ActionName.DECLINE: lambda u, c, b: services.consult_decline(actor=u, consult=c, reason=b.reason),
    ActionName.ASSIGN: _assign,
    ActionName.SCHEDULE: _schedule,
    ActionName.START: lambda u, c, b: services.consult_start(actor=u, consult=c),
    ActionName.ASK_INFO: lambda u, c, b: services.consult_ask_info(actor=u, consult=c, text=b.text),
    ActionName.PROVIDE_INFO: lambda u, c, b: services.consult_provide_info(actor=u, consult=c, text=b.text),
    ActionName.ANSWER: lambda u, c, b: services.consult_answer(
        actor=u, consult=c, answer=b.answer, recommendations=b.recommendations
    ),
    ActionName.FOLLOW_UP: lambda u, c, b: services.consult_follow_up(actor=u, consult=c, text=b.text),
    ActionName.CONCLUDE: lambda u, c, b: services.consult_conclude(
        actor=u, consult=c, conclusion=b.conclusion, recommendations=b.recommendations
    ),
    ActionName.CLOSE: lambda u, c, b: services.consult_close(
        actor=u,
        consult=c,
        referral_avoided=b.referral_avoided,
        management_changed=b.management_changed,
        value_rating=b.value_rating,
        comment=b.comment,
    ),
    ActionName.CANCEL: lambda u, c, b: services.consult_cancel(actor=u, consult=c, reason=b.reason),
}


@router.post(
    "/consults/{public_id}/{action}",
    response={200: schemas.ConsultOut, **ERRORS},
    summary="Take one step of the workflow",
)
def consult_act(
    request: HttpRequest, public_id: uuid.UUID, action: ActionName, payload: schemas.ConsultActionIn | None = None
) -> Consult:
    """Answers the consult as it is now (patient masked). A step the caller could never take is 403,
    one not possible now 409 with the current status."""
    user = _user(request)
    # A pool expert whom a colleague beat to it is told so by ``access_consult`` (409).
    consult = selectors.access_consult(user, str(public_id))
    # Refusals first (403 never yours, 409 not now), so that a late click is not told about its body.
    workflow.side_for(user, consult, action.step)
    _STEPS[action](user, consult, payload or schemas.ConsultActionIn.model_validate({}))
    return selectors.access_consult(user, str(public_id))
