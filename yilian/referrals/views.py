"""Referral pages: boards, the referral with its timeline and actions, the create form, the
printable slip and the patient's status page. Views parse, call a service or selector, render."""

from __future__ import annotations

from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from yilian.core.permissions import Permission
from yilian.patients import services as patient_services
from yilian.patients.models import Patient
from yilian.referrals import selectors, services, workflow
from yilian.referrals.forms import (
    AttachmentForm,
    BoardFilterForm,
    ConsentForm,
    DraftForm,
    ForwardForm,
    OutcomeForm,
    ReasonForm,
    ReferralForm,
    ScheduleForm,
)
from yilian.referrals.models import Direction, Referral, ReferralAttachment, Status
from yilian.referrals.services import DRAFT_FIELDS
from yilian.referrals.workflow import Action, Side
from yilian.registry.models import Consortium, ConsortiumMember, Department, Institution, Region, RegionLevel, User
from yilian.registry.selectors import user_scope
from yilian.surveys import services as survey_services
from yilian.web.forms import errors_to_form

PAGE_SIZE = 25


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.boosted  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------
# Boards


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    scope = user_scope(user)
    if Permission.VIEW_REFERRALS not in scope.permissions:
        raise PermissionDenied(_("You do not have permission to see referrals."))
    institutions = selectors.referral_institutions_for(user)
    is_office = Permission.MANAGE_REFERRAL_ROUTING in scope.permissions
    default_box = selectors.Box.INCOMING if institutions and not is_office else selectors.Box.OFFICE
    box = request.GET.get("box") or default_box
    if box not in (selectors.Box.INCOMING, selectors.Box.OUTGOING, selectors.Box.OFFICE):
        raise Http404(_("No such board."))
    institution: Institution | None = None
    if box != selectors.Box.OFFICE:
        code = request.GET.get("institution", "")
        institution = next((i for i in institutions if i.code == code), None) if code else None
        if institution is None and not code and institutions:
            institution = institutions[0]
        if institution is None:
            raise Http404(_("Choose an institution you work at."))
    departments = (
        [(str(d.public_id), d.name) for d in Department.objects.filter(institution=institution, is_active=True)]
        if institution
        else []
    )
    form = BoardFilterForm(request.GET or None, departments=departments)
    filters = selectors.BoardFilters()
    if form.is_valid():
        data = form.cleaned_data
        filters = selectors.BoardFilters(
            status=data["status"],
            urgency=data["urgency"],
            direction=data["direction"],
            department=data["department"],
            date_from=data["date_from"],
            date_to=data["date_to"],
            overdue=data["overdue"],
            query=data["q"],
        )
    result = selectors.referral_board(user, box=box, institution=institution, filters=filters)
    page = Paginator(result.rows, PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [(r, selectors.is_overdue(r, now)) for r in page]
    counts = [(s, result.counts.get(s.value, 0)) for s in Status if result.counts.get(s.value)]
    context = {
        "box": box,
        "institution": institution,
        "institutions": institutions,
        "is_office": is_office,
        "can_refer": bool(scope.institution_ids_with(Permission.MANAGE_REFERRALS_SEND)),
        "form": form,
        "page": page,
        "rows": rows,
        "counts": counts,
        "total": sum(result.counts.values()),
        "status_filter": filters.status,
    }
    template = "referrals/_board_rows.html" if _is_htmx(request) else "referrals/board.html"
    return render(request, template, context)


# ----------------------------------------------------------------------------------------
# Create


def _destinations(user: User, institutions: list[Institution]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Partners grouped by consortium, plus "let the office route it" for each consortium."""
    today = timezone.localdate()
    current = ConsortiumMember.objects.filter(Q(left_on__isnull=True) | Q(left_on__gte=today), joined_on__lte=today)
    own = [i.pk for i in institutions]
    consortium_ids = current.filter(institution_id__in=own).values("consortium_id")
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for consortium in Consortium.objects.filter(pk__in=consortium_ids).order_by("code"):
        members = (
            current.filter(consortium=consortium)
            .exclude(institution_id__in=own)
            .select_related("institution")
            .order_by("institution__code")
        )
        options = [(f"inst:{m.institution.code}:{consortium.code}", m.institution.name) for m in members]
        options.append((f"office:{consortium.code}", _("Consortium office: route it for me")))
        groups.append((str(consortium.name), options))
    return groups


def _form_context(user: User, data: Any = None, initial: dict[str, Any] | None = None) -> dict[str, Any]:
    scope = user_scope(user)
    institutions = list(
        Institution.objects.filter(pk__in=scope.institution_ids_with(Permission.MANAGE_REFERRALS_SEND)).order_by("code")
    )
    if not institutions:
        raise PermissionDenied(_("You may not refer patients."))
    destinations = _destinations(user, institutions)
    partner_codes = {
        value.split(":")[1] for _g, options in destinations for value, _l in options if value.startswith("inst:")
    }
    departments = Department.objects.filter(
        Q(institution__in=institutions) | Q(institution__code__in=partner_codes), is_active=True
    ).select_related("institution")
    regions = Region.objects.filter(level=RegionLevel.COUNTY).order_by("code")
    form = ReferralForm(
        data,
        institutions=institutions,
        destinations=destinations,
        departments=departments,
        regions=regions,
        initial=initial,
    )
    dept_groups: dict[str, list[Department]] = {}
    for d in departments:
        dept_groups.setdefault(d.institution.code, []).append(d)
    return {"form": form, "institutions": institutions, "dept_groups": dept_groups}


@login_required
def create(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    practitioner = getattr(user, "practitioner", None)
    initial = {
        "consent_obtained_by": user.display_name or user.get_username(),
        "consent_at": timezone.localtime().replace(second=0, microsecond=0),
        "from_department": practitioner.department.public_id if practitioner and practitioner.department else None,
        "direction": Direction.UP,
    }
    if request.method != "POST":
        return render(request, "referrals/create.html", _form_context(user, initial=initial))
    context = _form_context(user, request.POST)
    form: ReferralForm = context["form"]
    send = request.POST.get("submit") != "draft"
    if form.is_valid():
        data = form.cleaned_data
        try:
            referral = _create_from_form(user, data, send=send, files=request.FILES.getlist("attachments"))
        except ValidationError as exc:
            _errors_to_form(form, exc)
        else:
            if send:
                messages.success(request, _("Referral %(number)s sent.") % {"number": referral.number})
            else:
                messages.info(request, _("Draft %(number)s saved.") % {"number": referral.number})
            return HttpResponseRedirect(reverse("referrals:detail", args=[referral.public_id]))
    return render(request, "referrals/create.html", context, status=400)


# Service error keys that have no field of that name on the page, and where to show them.
_ERROR_FIELD = {
    "consent": "consent_obtained_by",
    "care_plan": "plan_diagnosis",
    "to_institution": "destination",
    "consortium": "destination",
    "diagnosis": "diagnosis",
    "file": "file",
}


def _errors_to_form(form: Any, exc: ValidationError) -> None:
    errors_to_form(form, exc, _ERROR_FIELD)


def _create_from_form(user: User, data: dict[str, Any], *, send: bool, files: list[Any]) -> Referral:
    destination: str = data["destination"]
    kind, _sep, rest = destination.partition(":")
    to_institution: Institution | None = None
    if kind == "inst":
        code, _sep, consortium_code = rest.partition(":")
        to_institution = Institution.objects.filter(code=code).first()
    else:
        consortium_code = rest
    consortium = Consortium.objects.filter(code=consortium_code).first()
    consent = None
    if data["consent_obtained_by"] and data["consent_method"] and data["consent_at"]:
        consent = services.Consent(data["consent_obtained_by"], data["consent_method"], data["consent_at"])
    stored: list[ReferralAttachment] = []
    try:
        return _create_in_one_transaction(user, data, send=send, files=files, stored=stored, consent=consent,
                                          to_institution=to_institution, consortium=consortium)  # fmt: skip
    except BaseException:
        # The rows are rolled back; the files written to storage must go with them.
        for attachment in stored:
            attachment.file.delete(save=False)
        raise


def _create_in_one_transaction(
    user: User,
    data: dict[str, Any],
    *,
    send: bool,
    files: list[Any],
    stored: list[ReferralAttachment],
    consent: services.Consent | None,
    to_institution: Institution | None,
    consortium: Consortium | None,
) -> Referral:
    with transaction.atomic():
        patient = patient_services.patient_register(
            actor=user,
            institution=data["from_institution"],
            name=data["name"],
            sex=data["sex"],
            birth_date=data["birth_date"],
            approximate_age=data["approximate_age"],
            id_number=data["id_number"],
            phone=data["phone"],
            residence_region=data["residence_region"],
            address=data["address"],
            emergency_contact_name=data["emergency_contact_name"],
            emergency_contact_relation=data["emergency_contact_relation"],
            emergency_contact_phone=data["emergency_contact_phone"],
        )
        referral, _created = services.referral_create(
            actor=user,
            patient=patient,
            direction=data["direction"],
            urgency=data["urgency"],
            from_institution=data["from_institution"],
            from_department=data["from_department"],
            to_institution=to_institution,
            to_department=data["to_department"],
            consortium=consortium,
            reason=data["reason"],
            requested_service=data["requested_service"],
            diagnosis_code=data["diagnosis_code"],
            diagnosis_name=data["diagnosis_name"],
            key_findings=data["key_findings"],
            current_treatment=data["current_treatment"],
            allergies=data["allergies"],
            consent=consent,
            care_plan={
                "diagnosis": data["plan_diagnosis"],
                "treatment_done": data["plan_treatment_done"],
                "medication": data["plan_medication"],
                "follow_up": data["plan_follow_up"],
                "warning_signs": data["plan_warning_signs"],
            },
        )
        for upload in files:
            stored.append(services.referral_attach(actor=user, referral=referral, upload=upload))
        # Sending last, so that attachments are in place when the receiving side is told.
        if send:
            referral = services.referral_send(actor=user, referral=referral)
    return referral


@login_required
def edit_draft(request: HttpRequest, public_id: str) -> HttpResponse:
    """The sender completes a saved draft: clinical summary, consent and care plan."""
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    if Side.SENDER not in workflow.sides_of(user, referral):
        raise PermissionDenied(_("Only the referring side may edit the referral."))
    detail_url = reverse("referrals:detail", args=[referral.public_id])
    if referral.status != Status.DRAFT:
        messages.warning(request, _("Referral %(number)s was already sent; it can no longer be edited.") % {
            "number": referral.number})  # fmt: skip
        return HttpResponseRedirect(detail_url)
    if request.method != "POST":
        initial = {name: getattr(referral, name) for name in DRAFT_FIELDS}
        if referral.consent_at:
            initial["consent_at"] = timezone.localtime(referral.consent_at)
        form = DraftForm(initial=initial)
        return render(request, "referrals/edit.html", {"form": form, "referral": referral})
    form = DraftForm(request.POST)
    if form.is_valid():
        try:
            services.referral_update_draft(actor=user, referral=referral, **form.cleaned_data)
        except ValidationError as exc:
            _errors_to_form(form, exc)
        except workflow.TransitionNotAllowed as exc:
            messages.warning(request, str(exc))
            return HttpResponseRedirect(detail_url)
        else:
            messages.success(request, _("Draft %(number)s saved.") % {"number": referral.number})
            return HttpResponseRedirect(detail_url)
    return render(request, "referrals/edit.html", {"form": form, "referral": referral}, status=400)


# ----------------------------------------------------------------------------------------
# Detail and actions


_ACTION_STYLE: dict[Action, str] = {
    Action.SEND: "primary",
    Action.ACCEPT: "success",
    Action.SCHEDULE: "primary",
    Action.CHECK_IN: "success",
    Action.START_TREATMENT: "primary",
    Action.RETURN_OUTCOME: "primary",
    Action.ACKNOWLEDGE: "success",
    Action.RECEIVE: "outline-primary",
    Action.DECLINE: "outline-danger",
    Action.FORWARD: "outline-secondary",
    Action.CANCEL: "outline-danger",
    Action.MARK_NO_SHOW: "outline-warning",
    Action.REOPEN: "outline-secondary",
}


def _action_forms(user: User, referral: Referral, bound: dict[Action, Any] | None = None) -> list[dict[str, Any]]:
    bound = bound or {}
    forms: list[dict[str, Any]] = []
    for action in workflow.allowed_actions(user, referral):
        transition = workflow.table_for(referral)[(Status(referral.status), action)]
        form: Any = bound.get(action)
        if form is None:
            if action == Action.SEND:
                form = ConsentForm(
                    initial={
                        "consent_obtained_by": referral.consent_obtained_by or user.display_name,
                        "consent_method": referral.consent_method,
                        "consent_at": timezone.localtime(referral.consent_at) if referral.consent_at else
                        timezone.localtime().replace(second=0, microsecond=0),
                    }
                )  # fmt: skip
            elif action == Action.FORWARD:
                form = ForwardForm(institutions=_forward_targets(referral))
            elif action == Action.SCHEDULE:
                form = ScheduleForm(
                    initial={
                        "scheduled_at": timezone.localtime(referral.scheduled_at) if referral.scheduled_at else None,
                        "place": referral.scheduled_place,
                        "instructions": referral.patient_instructions,
                    }
                )
            elif action == Action.RETURN_OUTCOME:
                form = OutcomeForm()
            elif transition.reason_required:
                form = ReasonForm()
        forms.append(
            {
                "action": action,
                "form": form,
                "style": _ACTION_STYLE[action],
                "reason_required": transition.reason_required,
                "to": transition.to,
                "open": action in bound,
            }
        )
    return forms


def _forward_targets(referral: Referral) -> Any:
    today = timezone.localdate()
    members = ConsortiumMember.objects.filter(
        Q(left_on__isnull=True) | Q(left_on__gte=today), consortium_id=referral.consortium_id
    ).values("institution_id")
    return (
        Institution.objects.filter(pk__in=members)
        .exclude(pk__in=[referral.from_institution_id, referral.to_institution_id or 0])
        .order_by("code")
    )


def _detail_context(user: User, referral: Referral, bound: dict[Action, Any] | None = None) -> dict[str, Any]:
    sides = workflow.sides_of(user, referral)
    patient = selectors.patient_identity(user, referral.patient, purpose=f"referral {referral.number}")
    return {
        "referral": referral,
        "patient": patient,
        "timeline": selectors.referral_timeline(referral),
        "appointments": list(referral.appointments.all()),
        "attachments": list(referral.attachments.select_related("uploaded_by")),
        "actions": _action_forms(user, referral, bound),
        "overdue": selectors.is_overdue(referral),
        "can_attach": bool(sides & {Side.SENDER, Side.RECEIVER, Side.OFFICE})
        and referral.status not in workflow.TERMINAL,
        "attachment_form": AttachmentForm(),
        "is_sender": Side.SENDER in sides,
        "can_edit": Side.SENDER in sides and referral.status == Status.DRAFT,
        "can_print": bool(sides & {Side.SENDER, Side.RECEIVER, Side.OFFICE}),
    }


@login_required
@require_GET
def detail(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    if referral.status in workflow.AWAITING_RECEIPT:
        received = services.referral_mark_received_if_receiver(actor=user, referral=referral)
        if received.status != referral.status:
            referral = selectors.access_referral(user, str(public_id))
    return render(request, "referrals/detail.html", _detail_context(user, referral))


def _parse_action(request: HttpRequest, referral: Referral, action: Action) -> tuple[Any, dict[str, Any] | None]:
    """The bound form for the action and, when valid, the keyword arguments for its service."""
    if action == Action.SEND:
        form: Any = ConsentForm(request.POST)
        if not form.is_valid():
            return form, None
        d = form.cleaned_data
        consent = (
            services.Consent(d["consent_obtained_by"], d["consent_method"], d["consent_at"])
            if d["consent_obtained_by"] and d["consent_method"] and d["consent_at"]
            else None
        )
        return form, {"consent": consent}
    if action == Action.FORWARD:
        form = ForwardForm(request.POST, institutions=_forward_targets(referral))
        if not form.is_valid():
            return form, None
        return form, {"to_institution": form.cleaned_data["to_institution"], "reason": form.cleaned_data["reason"]}
    if action == Action.SCHEDULE:
        form = ScheduleForm(request.POST)
        return (form, dict(form.cleaned_data)) if form.is_valid() else (form, None)
    if action == Action.RETURN_OUTCOME:
        form = OutcomeForm(request.POST)
        return (form, dict(form.cleaned_data)) if form.is_valid() else (form, None)
    transition = workflow.TRANSITIONS.get((Status(referral.status), action))
    if action in (Action.DECLINE, Action.CANCEL, Action.REOPEN) or (transition and transition.reason_required):
        form = ReasonForm(request.POST)
        return (form, {"reason": form.cleaned_data["reason"]}) if form.is_valid() else (form, None)
    return None, {}


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


@login_required
@require_POST
def act(request: HttpRequest, public_id: str, action: str) -> HttpResponse:
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    try:
        step = Action(action)
    except ValueError:
        raise Http404(_("No such action.")) from None
    form, kwargs = _parse_action(request, referral, step)
    status = 400
    if kwargs is not None:
        try:
            _SERVICES[step](actor=user, referral=referral, **kwargs)
        except ValidationError as exc:
            if form is None:
                form = ReasonForm()
            _errors_to_form(form, exc)
        except workflow.TransitionNotAllowed as exc:
            messages.warning(request, str(exc))
            referral = selectors.access_referral(user, str(public_id))
            return render(request, "referrals/detail.html", _detail_context(user, referral), status=409)
        else:
            messages.success(request, _("Done: %(action)s.") % {"action": step.label})
            return HttpResponseRedirect(reverse("referrals:detail", args=[referral.public_id]))
    bound = {step: form} if form is not None else {}
    return render(request, "referrals/detail.html", _detail_context(user, referral, bound), status=status)


@login_required
@require_POST
def attachment_upload(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    form = AttachmentForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            services.referral_attach(
                actor=user,
                referral=referral,
                upload=form.cleaned_data["file"],
                description=form.cleaned_data["description"],
            )
        except ValidationError as exc:
            _errors_to_form(form, exc)
        except workflow.TransitionNotAllowed:
            form.add_error(None, _("Files can no longer be added: the referral is %(status)s.") % {
                "status": referral.get_status_display()})  # fmt: skip
        else:
            messages.success(request, _("File added."))
            return HttpResponseRedirect(reverse("referrals:detail", args=[referral.public_id]) + "#attachments")
    context = _detail_context(user, referral)
    context["attachment_form"] = form
    return render(request, "referrals/detail.html", context, status=400)


@login_required
@require_GET
def attachment_download(request: HttpRequest, public_id: str, attachment_id: str) -> FileResponse:
    return attachment_response(selectors.attachment_open(_user(request), str(public_id), str(attachment_id)))


def attachment_response(attachment: ReferralAttachment) -> FileResponse:
    """The file itself: PDF and pictures open in the browser, DICOM is downloaded."""
    inline = attachment.content_type in ("application/pdf", "image/png", "image/jpeg")
    return FileResponse(
        attachment.file.open("rb"),
        as_attachment=not inline,
        filename=attachment.filename,
        content_type=attachment.content_type,
    )


# ----------------------------------------------------------------------------------------
# Slip and the patient's status page


def status_url(referral: Referral) -> str:
    return settings.SITE_URL + reverse("referral_status", args=[referral.status_token])


@login_required
@require_GET
def slip(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    referral = selectors.access_referral(user, str(public_id))
    if not workflow.sides_of(user, referral) & {Side.SENDER, Side.RECEIVER, Side.OFFICE}:
        raise PermissionDenied(_("Only the two institutions and the consortium office print the slip."))
    patient = selectors.patient_identity(user, referral.patient, purpose=f"slip {referral.number}")
    url = status_url(referral)
    qr = segno.make(url, error="m").svg_inline(scale=4, dark="#0b3a4a", omitsize=True)
    context = {"referral": referral, "patient": patient, "qr": qr, "url": url}
    # Once the outcome is back, the slip also carries the referred-patient survey (one link per referral).
    survey = survey_services.token_issue_for_referral(actor=user, referral=referral)
    if survey is not None:
        context |= {
            "survey_url": survey.url,
            "survey_qr": segno.make(survey.url, error="m").svg_inline(scale=3, omitsize=True),
        }
    return render(request, "referrals/slip.html", context)


@require_GET
def status_page(request: HttpRequest, token: str) -> HttpResponse:
    """For the patient: status, appointment and instructions, nothing medical, no login."""
    referral = selectors.referral_by_status_token(token)
    if referral is None:
        return render(request, "referrals/status_unknown.html", status=404)
    response = render(request, "referrals/status.html", {"referral": referral, "now": timezone.now()})
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


# ----------------------------------------------------------------------------------------
# Patient


@login_required
def patient_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    patient = selectors.access_patient(user, str(public_id))
    can_merge = Permission.MANAGE_PATIENTS_MERGE in user_scope(user).permissions and not patient.id_number
    merge_error = ""
    if request.method == "POST":
        if not can_merge:
            raise PermissionDenied(_("You may not merge patient records."))
        target = selectors.patient_find_by_id_number(user, request.POST.get("id_number", ""))
        if target is None:
            merge_error = _("No patient with this ID number is visible to you.")
        else:
            try:
                patient_services.patient_merge(actor=user, source=patient, target=target)
            except ValidationError as exc:
                merge_error = " ".join(exc.messages)
            else:
                messages.success(request, _("The records were merged."))
                return HttpResponseRedirect(reverse("referrals:patient", args=[target.public_id]))
    patient = selectors.patient_identity(user, patient, purpose="patient page")
    context = {
        "patient": patient,
        "referrals": selectors.patient_referrals(user, patient)[:50],
        "merged_records": list(Patient.objects.filter(merged_into=patient)),
        "can_merge": can_merge and patient.merged_into_id is None,
        "merge_error": merge_error,
        "age": patient.age,
    }
    return render(request, "referrals/patient.html", context, status=400 if merge_error else 200)
