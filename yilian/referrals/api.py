"""The referral API: create, list, detail, the workflow's actions, timeline, attachments,
patients and the figures the indicators need.

Handlers parse the request, authorise and read through ``selectors``, write through
``services``. The workflow's refusals map to HTTP as the table defines them: a step the caller
could never take is 403; a step not possible from the current status (or lost to someone who
acted a moment earlier) is 409 with the current status. Lists show patients masked; the
unmasked patient is only in the detail and the patient record, each read audited.
"""

import datetime as dt
import uuid
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import FileResponse, Http404, HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, File, Query, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate
from ninja.params import FormEx, HeaderEx, P
from pydantic import field_validator, model_validator

from yilian.core.permissions import Permission
from yilian.core.schemas import iso_text, plausible_day
from yilian.patients import services as patient_services
from yilian.patients.models import Patient
from yilian.referrals import schemas, selectors, services, workflow
from yilian.referrals.models import Direction, Referral, ReferralAttachment, ReferralEvent, Urgency
from yilian.referrals.models import Status as ReferralStatus
from yilian.referrals.views import attachment_response
from yilian.referrals.workflow import Action
from yilian.registry.api import ERRORS as REGISTRY_ERRORS
from yilian.registry.api import Pagination
from yilian.registry.models import Consortium, Department, Institution, Region, User
from yilian.registry.selectors import user_scope

router = Router(tags=["referrals"])

ERRORS: dict[int, type[Schema]] = {**REGISTRY_ERRORS, 409: schemas.ConflictOut}


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def institution_by_code(code: str, field: str) -> Institution:
    """The institution with this code; a 400 located at ``field`` when there is none."""
    institution = Institution.objects.filter(code=code).first()
    if institution is None:
        raise ValidationError({field: [_("No institution with code %(code)s.") % {"code": code}]})
    return institution


def _department(public_id: uuid.UUID | None, field: str) -> Department | None:
    if public_id is None:
        return None
    department = Department.objects.filter(public_id=public_id).first()
    if department is None:
        raise ValidationError({field: [_("No such department.")]})
    return department


def _consent(consent: schemas.ConsentIn | None) -> services.Consent | None:
    return None if consent is None else services.Consent(consent.obtained_by, consent.method, consent.at)


# ----------------------------------------------------------------------------------------
# Create


def referring_institution(user: User, code: str, *, field: str = "from_institution") -> Institution:
    """The institution named, or the caller's only referring one; refused before anything is written.
    ``field`` locates the errors (shared with the green-channel API's ``sender``)."""
    scope = user_scope(user)
    mine = scope.institution_ids_with(Permission.MANAGE_REFERRALS_SEND)
    if code:
        institution = institution_by_code(code, field)
        if institution.pk not in mine:
            raise PermissionDenied(_("You may not refer patients on behalf of this institution."))
        return institution
    if not mine:
        raise PermissionDenied(_("You may not refer patients."))
    if len(mine) > 1:
        raise ValidationError({field: [_("You refer for several institutions: say which one.")]})
    return Institution.objects.get(pk=next(iter(mine)))


def _patient(user: User, payload: schemas.ReferralIn, institution: Institution) -> Patient:
    if payload.patient_id is not None:
        patient = selectors.access_patient(user, str(payload.patient_id))
        # A record merged into another is referred as the person's current record.
        return patient.merged_into or patient
    assert payload.patient is not None  # the schema requires one of the two
    return register_given_patient(user, payload.patient, institution)


def register_given_patient(user: User, given: schemas.PatientIn, institution: Institution) -> Patient:
    """Register (or find by ID number) a patient given inline in a request; the patient's field
    errors are located under ``patient.``. Shared by every API that takes a patient inline."""
    region = None
    if given.residence_region:
        region = Region.objects.filter(code=given.residence_region).first()
        if region is None:
            raise ValidationError(
                {"patient.residence_region": [_("No region with code %(code)s.") % {"code": given.residence_region}]}
            )
    contact = given.emergency_contact
    try:
        return patient_services.patient_register(
            actor=user,
            institution=institution,
            name=given.name,
            sex=given.sex,
            birth_date=given.birth_date,
            approximate_age=given.approximate_age,
            id_number=given.id_number,
            phone=given.phone,
            residence_region=region,
            address=given.address,
            emergency_contact_name=contact.name if contact else "",
            emergency_contact_relation=contact.relation if contact else "",
            emergency_contact_phone=contact.phone if contact else "",
        )
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise ValidationError({f"patient.{k}": v for k, v in exc.message_dict.items()}) from None
        raise


def _create(user: User, payload: schemas.ReferralIn, *, key: str, request_hash: str) -> tuple[Referral, bool]:
    from_institution = referring_institution(user, payload.from_institution)
    to_institution = institution_by_code(payload.to_institution, "to_institution") if payload.to_institution else None
    consortium = None
    if payload.consortium:
        consortium = Consortium.objects.filter(code=payload.consortium).first()
        if consortium is None:
            raise ValidationError(
                {"consortium": [_("No consortium with code %(code)s.") % {"code": payload.consortium}]}
            )
    # One transaction: the patient, the referral and its sending stand or fall together.
    with transaction.atomic():
        patient = _patient(user, payload, from_institution)
        referral, created = services.referral_create(
            actor=user,
            patient=patient,
            direction=payload.direction,
            urgency=payload.urgency,
            from_institution=from_institution,
            from_department=_department(payload.from_department, "from_department"),
            to_institution=to_institution,
            to_department=_department(payload.to_department, "to_department"),
            consortium=consortium,
            reason=payload.reason,
            requested_service=payload.requested_service,
            diagnosis_code=payload.diagnosis.code,
            diagnosis_name=payload.diagnosis.name,
            key_findings=payload.key_findings,
            current_treatment=payload.current_treatment,
            allergies=payload.allergies,
            consent=_consent(payload.consent),
            care_plan=payload.care_plan.dict() if payload.care_plan else None,
            send=payload.send,
            idempotency_key=key,
            request_hash=request_hash,
        )
        if not created:
            # A retried request: the first one's referral stands, and whatever this attempt
            # wrote on the way (an unidentified patient registered again) is undone.
            transaction.set_rollback(True)
    return referral, created


IDEMPOTENCY_KEY = P(
    alias="Idempotency-Key",
    max_length=100,
    description="Any unique string per intended referral: a retry with the same key and body returns the first "
    "result (200) and creates nothing; the same key with a different body is refused (422).",
)


@router.post(
    "/referrals",
    response={200: schemas.ReferralOut, 201: schemas.ReferralOut, **ERRORS},
    summary="Create a referral (and send it with `send`)",
)
def referral_create(
    request: HttpRequest, payload: schemas.ReferralIn, idempotency_key: HeaderEx[str, IDEMPOTENCY_KEY] = ""
) -> Status[Any]:
    user = _user(request)
    key = idempotency_key.strip()
    request_hash = services.request_fingerprint(payload.model_dump(mode="json"))
    try:
        try:
            referral, created = _create(user, payload, key=key, request_hash=request_hash)
        except IntegrityError:
            if not key:
                raise
            # A concurrent request with the same key committed first: asking again finds its referral.
            referral, created = _create(user, payload, key=key, request_hash=request_hash)
    except ValidationError as exc:
        if getattr(exc, "code", None) != "idempotency_mismatch":
            raise
        message = " ".join(exc.messages)
        return Status(422, {"detail": message, "errors": {"Idempotency-Key": [message]}})
    return Status(201 if created else 200, selectors.access_referral(user, str(referral.public_id)))


# ----------------------------------------------------------------------------------------
# Lists and figures


class ReferralFilters(Schema):
    box: schemas.BoxName | None = Field(
        None, description="incoming or outgoing of `institution`, or office (the consortium office's referrals)."
    )
    institution: str = Field("", max_length=32, description="Code; defaults to your first institution.")
    status: ReferralStatus | None = None
    urgency: Urgency | None = None
    direction: Direction | None = None
    department: uuid.UUID | None = Field(None, description="A department on this box's side.")
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    overdue: bool = False
    q: str = Field("", max_length=20, description="A referral number.")

    _iso = field_validator("date_from", "date_to", mode="before")(iso_text)
    _dates = field_validator("date_from", "date_to")(plausible_day)


@router.get("/referrals", response={200: list[schemas.ReferralRowOut], **ERRORS})
@paginate(Pagination)
def referral_list(request: HttpRequest, filters: Query[ReferralFilters]) -> Any:
    user = _user(request)
    institutions = selectors.referral_institutions_for(user)
    is_office = Permission.MANAGE_REFERRAL_ROUTING in user_scope(user).permissions
    box = filters.box or (selectors.Box.INCOMING if institutions and not is_office else selectors.Box.OFFICE)
    institution: Institution | None = None
    if box != selectors.Box.OFFICE:
        if filters.institution:
            institution = Institution.objects.filter(code=filters.institution).first()
            if institution is None:
                raise Http404(_("No institution with code %(code)s.") % {"code": filters.institution})
        elif institutions:
            institution = institutions[0]
        else:
            raise PermissionDenied(_("You do not see the referrals of any institution."))
    board = selectors.referral_board(
        user,
        box=box,
        institution=institution,
        filters=selectors.BoardFilters(
            status=filters.status or "",
            urgency=filters.urgency or "",
            direction=filters.direction or "",
            department=str(filters.department) if filters.department else "",
            date_from=filters.date_from,
            date_to=filters.date_to,
            overdue=filters.overdue,
            query=filters.q,
        ),
    )
    return board.rows.select_related("consortium")


class Period(Schema):
    start: dt.date = Field(..., description="First day.")
    end: dt.date = Field(..., description="Day after the last day.")

    _iso = field_validator("start", "end", mode="before")(iso_text)
    _dates = field_validator("start", "end")(plausible_day)

    @model_validator(mode="after")
    def _ordered(self) -> "Period":
        if self.end <= self.start:
            raise ValueError(_("The end must come after the start."))
        return self


@router.get("/referrals/figures", response={200: schemas.ReferralFiguresOut, **ERRORS}, tags=["figures"])
def referral_figures(request: HttpRequest, period: Query[Period]) -> dict[str, Any]:
    """Per institution, for referrals sent in [start, end): no patient data."""
    figures = selectors.referral_figures(_user(request), start=period.start, end=period.end)
    institutions = {i.pk: i for i in Institution.objects.filter(pk__in=list(figures))}
    rows = []
    for pk, f in figures.items():
        institution = institutions[pk]
        rows.append(
            {
                "institution": institution.code,
                "institution_name": institution.name,
                **{
                    name: getattr(f, name)
                    for name in schemas.FiguresRowOut.model_fields
                    if name not in ("institution", "institution_name")
                },
            }
        )
    rows.sort(key=lambda row: row["institution"])
    return {"start": period.start, "end": period.end, "institutions": rows}


# ----------------------------------------------------------------------------------------
# One referral


@router.get("/referrals/{public_id}", response={200: schemas.ReferralDetailOut, **ERRORS})
def referral_detail(request: HttpRequest, public_id: uuid.UUID) -> Referral:
    """Opening it on the receiving side receives it; the patient is shown unmasked and the read is audited."""
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    if referral.status in workflow.AWAITING_RECEIPT:
        received = services.referral_mark_received_if_receiver(actor=user, referral=referral)
        if received.status != referral.status:
            referral = selectors.access_referral(user, str(public_id))
    selectors.patient_identity(user, referral.patient, purpose=f"referral {referral.number}")
    return referral


_SERVICES: dict[Action, Any] = {
    Action.SEND: services.referral_send,
    Action.RECEIVE: services.referral_receive,
    Action.ACCEPT: services.referral_accept,
    Action.DECLINE: services.referral_decline,
    Action.FORWARD: services.referral_forward,
    Action.SCHEDULE: services.referral_schedule,
    Action.CHECK_IN: services.referral_check_in,
    Action.START_TREATMENT: services.referral_start_treatment,
    Action.RETURN_OUTCOME: services.referral_return_outcome,
    Action.ACKNOWLEDGE: services.referral_acknowledge,
    Action.CANCEL: services.referral_cancel,
    Action.MARK_NO_SHOW: services.referral_mark_no_show,
    Action.REOPEN: services.referral_reopen,
}


def _action_arguments(action: Action, body: schemas.ActionIn) -> dict[str, Any]:
    """The service's keyword arguments from the part of the body this action reads."""
    if action == Action.SEND:
        return {"consent": _consent(body.consent)}
    if action == Action.ACCEPT:
        return {"to_department": _department(body.to_department, "to_department")}
    if action in (Action.DECLINE, Action.CANCEL, Action.REOPEN):
        return {"reason": body.reason}
    if action == Action.FORWARD:
        if body.forward is None:
            raise ValidationError({"forward": [_("Say where to forward the referral (forward.to_institution).")]})
        return {
            "to_institution": institution_by_code(body.forward.to_institution, "forward.to_institution"),
            "to_department": _department(body.forward.to_department, "forward.to_department"),
            "reason": body.forward.reason or body.reason,
        }
    if action == Action.SCHEDULE:
        if body.schedule is None:
            raise ValidationError({"schedule": [_("Give the appointment (schedule.scheduled_at and schedule.place).")]})
        return {
            "scheduled_at": body.schedule.scheduled_at,
            "place": body.schedule.place,
            "instructions": body.schedule.instructions,
        }
    if action == Action.RETURN_OUTCOME:
        if body.outcome is None:
            raise ValidationError({"outcome": [_("Give the outcome report (diagnosis, treatment and result).")]})
        return body.outcome.dict()
    return {}


@router.patch(
    "/referrals/{public_id}", response={200: schemas.ReferralOut, **ERRORS}, summary="Change a draft before it is sent"
)
def referral_update_draft(request: HttpRequest, public_id: uuid.UUID, payload: schemas.DraftPatchIn) -> Referral:
    """The referring side completes its draft: clinical summary, consent, care plan. A referral
    already sent answers 409 with its status; anyone but the referring side 403."""
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    services.referral_update_draft(actor=user, referral=referral, **payload.changes())
    return selectors.access_referral(user, str(public_id))


@router.post("/referrals/{public_id}/actions/{action}", response={200: schemas.ReferralOut, **ERRORS})
def referral_act(
    request: HttpRequest, public_id: uuid.UUID, action: Action, payload: schemas.ActionIn | None = None
) -> Referral:
    """Take one step of the workflow; answers the referral as it is now (patient masked)."""
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    # Refusals first (403 never yours, 409 not now), so that a late click is not told about its body.
    workflow.side_for(user, referral, action)
    arguments = _action_arguments(action, payload or schemas.ActionIn.model_validate({}))
    _SERVICES[action](actor=user, referral=referral, **arguments)
    return selectors.access_referral(user, str(public_id))


@router.get("/referrals/{public_id}/timeline", response={200: list[schemas.EventOut], **ERRORS})
def referral_timeline(request: HttpRequest, public_id: uuid.UUID) -> list[ReferralEvent]:
    return selectors.referral_timeline(selectors.access_referral(_user(request), str(public_id)))


# ----------------------------------------------------------------------------------------
# Attachments


@router.get("/referrals/{public_id}/attachments", response={200: list[schemas.AttachmentOut], **ERRORS})
def attachment_list(request: HttpRequest, public_id: uuid.UUID) -> list[ReferralAttachment]:
    referral = selectors.access_referral(_user(request), str(public_id))
    return list(referral.attachments.select_related("uploaded_by", "referral"))


@router.post("/referrals/{public_id}/attachments", response={201: schemas.AttachmentOut, **ERRORS})
def attachment_upload(
    request: HttpRequest,
    public_id: uuid.UUID,
    file: File[UploadedFile],
    description: FormEx[str, P(max_length=200)] = "",
) -> Status[Any]:
    """A PDF, PNG/JPEG image or DICOM file, recognised by its content, within the size limit."""
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    try:
        attachment = services.referral_attach(actor=user, referral=referral, upload=file, description=description)
    except workflow.TransitionNotAllowed as exc:
        detail = _("Files can no longer be added: the referral is %(status)s.") % {"status": exc.status.label}
        return Status(409, {"detail": detail, "status": exc.status.value})
    return Status(201, attachment)


_FILE = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/referrals/{public_id}/attachments/{attachment_id}",
    response=ERRORS,
    url_name="referral_attachment_download",
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
    return attachment_response(selectors.attachment_open(_user(request), str(public_id), str(attachment_id)))


# ----------------------------------------------------------------------------------------
# Patients


patients_router = Router(tags=["patients"])


@patients_router.get("/patients/{public_id}", response={200: schemas.PatientDetailOut, **ERRORS})
def patient_detail(request: HttpRequest, public_id: uuid.UUID) -> Patient:
    """The patient unmasked with the referrals the caller sees; the read is audited."""
    user = _user(request)
    patient = selectors.access_patient(user, str(public_id))
    return selectors.patient_identity(user, patient, purpose="patient record")


@patients_router.post("/patients/{public_id}/merge", response={200: schemas.PatientDetailOut, **ERRORS})
def patient_merge(request: HttpRequest, public_id: uuid.UUID, payload: schemas.MergeIn) -> Patient:
    """Merge an unidentified record into an identified one (consortium office); answers the identified one."""
    user = _user(request)
    if Permission.MANAGE_PATIENTS_MERGE not in user_scope(user).permissions:
        raise PermissionDenied(_("You may not merge patient records."))
    source = selectors.access_patient(user, str(public_id))
    target = selectors.access_patient(user, str(payload.into))
    merged = patient_services.patient_merge(actor=user, source=source, target=target)
    return selectors.patient_identity(user, selectors.access_patient(user, str(merged.public_id)), purpose="merge")
