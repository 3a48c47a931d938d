"""Teleconsultation pages: the queues, the request form, the consult with its steps, thread,
opinions, files and timeline, the printable report, the MDT calendar and meetings, the figures.
Views authorise with an ``access_*`` selector, parse a form, call a service or selector, render;
every page works without JavaScript (HTMX only refreshes a list)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
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
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_POST

from yilian.consults import export, selectors, services, workflow
from yilian.consults.forms import (
    AnswerForm,
    AssignForm,
    AttachmentForm,
    CloseOutForm,
    ConclusionForm,
    ConsultRequestForm,
    InviteForm,
    MeetingChoiceForm,
    MeetingForm,
    MeetingTimeForm,
    PeriodForm,
    QueueFilterForm,
    ReasonForm,
    SessionForm,
    TextForm,
)
from yilian.consults.models import Attachment, Consult, Kind, Meeting, Status
from yilian.consults.workflow import Action, Side
from yilian.core.permissions import Permission
from yilian.patients import services as patient_services
from yilian.patients.models import mask_id_number, mask_name
from yilian.registry.models import Agreement, AgreementStatus, Institution, Practitioner, User
from yilian.registry.selectors import user_scope
from yilian.web.forms import attempt, errors_to_form

PAGE_SIZE = 25


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.boosted  # type: ignore[attr-defined]


# Service error keys with no field of that name on the page, and where to show them.
# (A meeting's times are a date with two times on the page.)
_ERROR_FIELD = {"consent": "consent_obtained_by", "starts_at": "date", "ends_at": "end"}


def _holder() -> forms.Form:
    """An empty, validated form to carry a service's refusal for a step that has no form."""
    form = forms.Form(data={})
    form.is_valid()
    return form


# ----------------------------------------------------------------------------------------
# Queues


_BOX_LABELS = {
    selectors.Box.ASKED: (gettext_lazy("Asked by me"), "bi-send"),
    selectors.Box.FOR_ME: (gettext_lazy("For me"), "bi-person-check"),
    selectors.Box.INCOMING: (pgettext_lazy("consult box", "Incoming"), "bi-box-arrow-in-down-right"),
    selectors.Box.OUTGOING: (pgettext_lazy("consult box", "Outgoing"), "bi-box-arrow-up-right"),
    selectors.Box.OFFICE: (gettext_lazy("Consortium"), "bi-diagram-3"),
}


@dataclass(frozen=True)
class Row:
    consult: Consult
    patient: str
    overdue: bool
    due: dt.datetime | None


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    boxes = selectors.boxes_for(user)
    if not boxes:
        if Permission.VIEW_CONSULT_FIGURES in user_scope(user).permissions:
            return HttpResponseRedirect(reverse("consults:figures"))
        raise PermissionDenied(_("You have no part in teleconsultations."))
    box = request.GET.get("box") or boxes[0]
    if box not in boxes:
        raise Http404(_("No such list."))
    form = QueueFilterForm(request.GET or None)
    status = kind = ""
    overdue = False
    if form.is_valid():
        status, kind, overdue = form.cleaned_data["status"], form.cleaned_data["kind"], form.cleaned_data["overdue"]
    result = selectors.consult_queue(user, box=box, status=status, kind=kind, overdue=overdue)
    page = Paginator(result.rows, PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [Row(c, mask_name(c.patient.name), selectors.is_overdue(c, now), selectors.due_at(c)) for c in page]
    context = {
        "box": box,
        "boxes": [(b, *_BOX_LABELS[b]) for b in boxes],
        "form": form,
        "page": page,
        "rows": rows,
        "counts": [(s, result.counts[s.value]) for s in Status if result.counts.get(s.value)],
        "total": sum(result.counts.values()),
        "status_filter": status,
        "can_request": bool(user_scope(user).institution_ids_with(Permission.REQUEST_CONSULTS)),
    }
    template = "consults/_queue_rows.html" if _is_htmx(request) else "consults/queue.html"
    return render(request, template, context)


# ----------------------------------------------------------------------------------------
# New request


def _partners(institutions: list[Institution]) -> list[Institution]:
    """Institutions bound to one of these by an agreement in force today (the other parties)."""
    today = timezone.localdate()
    agreements = Agreement.objects.filter(
        Q(valid_to__isnull=True) | Q(valid_to__gte=today),
        status=AgreementStatus.ACTIVE,
        valid_from__lte=today,
        parties__in=institutions,
    )
    return list(
        Institution.objects.filter(agreements__in=agreements, is_active=True)
        .exclude(pk__in=[i.pk for i in institutions])
        .distinct()
        .order_by("code")
    )


def _request_form(user: User, data: Any = None, initial: dict[str, Any] | None = None) -> ConsultRequestForm:
    scope = user_scope(user)
    institutions = list(
        Institution.objects.filter(pk__in=scope.institution_ids_with(Permission.REQUEST_CONSULTS)).order_by("code")
    )
    if not institutions:
        raise PermissionDenied(_("You may not ask for consultations."))
    partners = _partners(institutions)
    experts = [(p.name, selectors.experts_at(p)) for p in partners]
    # Any active institution is accepted (names of hospitals are public); the service refuses one
    # without an agreement in force, in words that say why.
    reachable = Institution.objects.filter(is_active=True).exclude(pk__in=[i.pk for i in institutions])
    expert_queryset = Practitioner.objects.filter(is_active=True, institution__in=reachable)
    return ConsultRequestForm(
        data,
        institutions=institutions,
        partners=partners,
        reachable=reachable,
        experts=[(group, people) for group, people in experts if people],
        expert_queryset=expert_queryset,
        initial=initial,
    )


@login_required
def new(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method != "POST":
        initial = {
            "consent_obtained_by": user.display_name or user.get_username(),
            "consent_at": timezone.localtime().replace(second=0, microsecond=0),
        }
        return render(request, "consults/new.html", {"form": _request_form(user, initial=initial)})
    form = _request_form(user, request.POST)
    status = 400
    data = form.data
    if data.get("consent_obtained_by") and data.get("consent_method") and not data.get("consent_at"):
        form.add_error("consent_at", _("Enter when the consent was given."))
    if form.is_valid():
        files = request.FILES.getlist("attachments")
        consult, status = attempt(form, lambda: _request_from_form(user, form.cleaned_data, files), _ERROR_FIELD)
        if consult is not None:
            messages.success(request, _("Consultation %(number)s requested.") % {"number": consult.number})
            return HttpResponseRedirect(reverse("consults:detail", args=[consult.public_id]))
    return render(request, "consults/new.html", {"form": form}, status=status or 400)


def _request_from_form(user: User, data: dict[str, Any], files: list[Any]) -> Consult:
    stored: list[Attachment] = []
    # Whatever part of the consent was given goes to the service, which names what is missing.
    consent = None
    if data["consent_obtained_by"] or data["consent_method"]:
        consent = services.Consent(
            data["consent_obtained_by"], data["consent_method"], data["consent_at"] or timezone.now()
        )
    try:
        with transaction.atomic():
            patient = patient_services.patient_register(
                actor=user,
                institution=data["from_institution"],
                name=data["name"],
                sex=data["sex"],
                birth_date=data["birth_date"],
                approximate_age=data["approximate_age"],
                id_number=data["id_number"],
            )
            consult = services.consult_request(
                actor=user,
                patient=patient,
                kind=data["kind"],
                reading_type=data["reading_type"],
                urgency=data["urgency"],
                from_institution=data["from_institution"],
                to_institution=data["to_institution"],
                discipline=data["discipline"],
                wanted_title=data["wanted_title"],
                named_expert=data["named_expert"],
                reason=data["reason"],
                purpose=data["purpose"],
                question=data["question"],
                history=data["history"],
                examination=data["examination"],
                investigations=data["investigations"],
                diagnosis_code=data["diagnosis_code"],
                diagnosis_name=data["diagnosis_name"],
                current_treatment=data["current_treatment"],
                consent=consent,
            )
            for upload in files:
                stored.append(services.consult_attach(actor=user, consult=consult, upload=upload))
    except BaseException:
        # The rows are rolled back; the files written to storage must go with them.
        for attachment in stored:
            attachment.file.delete(save=False)
        raise
    return consult


# ----------------------------------------------------------------------------------------
# The consult page and its steps


_ACTION_STYLE: dict[Action, str] = {
    Action.ACCEPT: "success",
    Action.DECLINE: "outline-danger",
    Action.ASSIGN: "outline-primary",
    Action.SCHEDULE: "primary",
    Action.START: "primary",
    Action.ASK_INFO: "outline-secondary",
    Action.PROVIDE_INFO: "primary",
    Action.ANSWER: "success",
    Action.FOLLOW_UP: "outline-secondary",
    Action.CONCLUDE: "success",
    Action.CLOSE: "success",
    Action.CANCEL: "outline-danger",
    Action.EXPIRE: "outline-secondary",
}
_TEXT_LABELS = {
    Action.ASK_INFO: gettext_lazy("What do you need to know?"),
    Action.PROVIDE_INFO: gettext_lazy("The information asked for"),
    Action.FOLLOW_UP: gettext_lazy("Your follow-up question"),
}


def _planned_meetings(user: User, consult: Consult) -> list[Meeting]:
    now = timezone.now()
    return [
        m
        for m in selectors.meetings_between(user, now, now + dt.timedelta(days=90))
        if m.institution_id == consult.to_institution_id and m.status == Meeting.MeetingStatus.PLANNED
    ]


def _meeting_choices(user: User, consult: Consult) -> list[tuple[str, str]]:
    return [
        (
            str(m.public_id),
            f"{timezone.localtime(m.starts_at):%Y-%m-%d %H:%M}–{timezone.localtime(m.ends_at):%H:%M} {m.title}",
        )
        for m in _planned_meetings(user, consult)
    ]


def _blank_form(user: User, consult: Consult, action: Action) -> Any:
    if action in (Action.DECLINE, Action.CANCEL):
        return ReasonForm()
    if action == Action.ASSIGN:
        return AssignForm(experts=selectors.pool_experts(consult))
    if action == Action.SCHEDULE:
        if consult.kind == Kind.MDT:
            return MeetingChoiceForm(meetings=_meeting_choices(user, consult))
        return SessionForm(
            initial={
                "starts_at": timezone.localtime(consult.scheduled_start) if consult.scheduled_start else None,
                "ends_at": timezone.localtime(consult.scheduled_end) if consult.scheduled_end else None,
                "meeting_url": consult.meeting_url,
            }
        )
    if action in _TEXT_LABELS:
        return TextForm(label=_TEXT_LABELS[action])
    if action == Action.ANSWER:
        return AnswerForm()
    if action == Action.CONCLUDE:
        return ConclusionForm()
    if action == Action.CLOSE:
        return CloseOutForm()
    return None


def _visible_actions(user: User, consult: Consult) -> list[Action]:
    # An MDT case is discussed by its meeting's experts: it has no single expert to assign.
    return [a for a in workflow.allowed_actions(user, consult) if not (a == Action.ASSIGN and consult.kind == Kind.MDT)]


def _action_forms(user: User, consult: Consult, bound: dict[Action, Any]) -> list[dict[str, Any]]:
    out = []
    for action in _visible_actions(user, consult):
        form = bound.get(action) or _blank_form(user, consult, action)
        out.append(
            {
                "action": action,
                "form": form,
                "style": _ACTION_STYLE[action],
                "open": action in bound,
                "no_meetings": action == Action.SCHEDULE and consult.kind == Kind.MDT and not form.fields[
                    "meeting"].choices[1:],
            }
        )  # fmt: skip
    return out


_TALKING = {Side.REQUESTER, Side.EXPERT, Side.CHAIR, Side.COORDINATOR, Side.OFFICE}
_FILING = {Side.REQUESTER, Side.EXPERT, Side.CHAIR, Side.COORDINATOR}


def _detail_context(
    user: User,
    consult: Consult,
    *,
    bound: dict[Action, Any] | None = None,
    message_form: TextForm | None = None,
    opinion_form: TextForm | None = None,
    attachment_form: AttachmentForm | None = None,
) -> dict[str, Any]:
    sides = workflow.sides_of(user, consult)
    patient = selectors.consult_patient(user, consult, purpose="consult page")
    is_open = consult.status not in workflow.TERMINAL
    opinions = selectors.consult_opinions(consult) if consult.kind in workflow.SESSION else []
    may_opine = (
        consult.kind in workflow.SESSION
        and bool(sides & {Side.EXPERT, Side.CHAIR})
        and consult.status in services.OPINION_STATUSES
    )
    return {
        "consult": consult,
        "patient": patient,
        "masked_id_number": mask_id_number(patient.id_number),
        "age": _age(patient.birth_date, patient.approximate_age),
        "sides": sides,
        "side_labels": [s.label for s in Side if s in sides],
        "actions": _action_forms(user, consult, bound or {}),
        "thread": selectors.consult_thread(consult),
        "opinions": opinions,
        "may_opine": may_opine,
        "my_opinion": next((o for o in opinions if o.opinion.practitioner.user_id == user.pk), None),
        "opinion_form": opinion_form or TextForm(label=_("Your opinion")),
        "can_message": bool(sides & _TALKING) and is_open,
        "message_form": message_form or TextForm(label=_("Message")),
        "can_attach": bool(sides & _FILING) and is_open,
        "attachment_form": attachment_form or AttachmentForm(),
        "attachments": list(consult.attachments.select_related("uploaded_by")),
        "timeline": [
            (e, _step_label(e.action), _status_label(e.to_status)) for e in selectors.consult_timeline(consult)
        ],
        "overdue": selectors.is_overdue(consult),
        "due": selectors.due_at(consult),
        "is_session": consult.kind in workflow.SESSION,
        "delivered": consult.status in workflow.DELIVERED,
    }


def _step_label(action: str) -> str:
    if action == "request":
        return _("Requested")
    return str(Action(action).label) if action in Action.values else action


def _status_label(status: str) -> str:
    return str(Status(status).label) if status in Status.values else status


def _age(birth: dt.date | None, approximate: int | None) -> int | None:
    if birth is None:
        return approximate
    today = timezone.localdate()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _detail_url(consult: Consult, anchor: str = "") -> str:
    return reverse("consults:detail", args=[consult.public_id]) + anchor


@login_required
@require_GET
def detail(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    consult = selectors.access_consult(user, str(public_id))
    return render(request, "consults/detail.html", _detail_context(user, consult))


def _parse(request: HttpRequest, user: User, consult: Consult, action: Action) -> tuple[Any, dict[str, Any] | None]:
    """The bound form of the step and, when it is valid, the keyword arguments of its service."""
    form = _blank_form(user, consult, action)
    if form is None:
        return None, {}
    if isinstance(form, AssignForm):
        form = AssignForm(request.POST, experts=selectors.pool_experts(consult))
    elif isinstance(form, MeetingChoiceForm):
        form = MeetingChoiceForm(request.POST, meetings=_meeting_choices(user, consult))
    elif isinstance(form, TextForm):
        form = TextForm(request.POST, label=_TEXT_LABELS[action])
    else:
        form = type(form)(request.POST)
    if not form.is_valid():
        return form, None
    data = dict(form.cleaned_data)
    if isinstance(form, MeetingChoiceForm):
        meeting = Meeting.objects.get(public_id=data["meeting"])
        return form, {"meeting": meeting}
    if isinstance(form, CloseOutForm):
        data["comment"] = data.pop("comment")
    return form, data


def _step(user: User, consult: Consult, action: Action, kwargs: dict[str, Any]) -> Consult:
    common: dict[str, Any] = {"actor": user, "consult": consult}
    if action == Action.SCHEDULE and "meeting" in kwargs:
        return services.meeting_add_case(actor=user, consult=consult, meeting=kwargs["meeting"])
    call: dict[Action, Callable[..., Consult]] = {
        Action.ACCEPT: services.consult_accept,
        Action.DECLINE: services.consult_decline,
        Action.ASSIGN: services.consult_assign,
        Action.SCHEDULE: services.consult_schedule,
        Action.START: services.consult_start,
        Action.ASK_INFO: services.consult_ask_info,
        Action.PROVIDE_INFO: services.consult_provide_info,
        Action.ANSWER: services.consult_answer,
        Action.FOLLOW_UP: services.consult_follow_up,
        Action.CONCLUDE: services.consult_conclude,
        Action.CLOSE: services.consult_close,
        Action.CANCEL: services.consult_cancel,
    }
    if action not in call:
        raise PermissionDenied(_("This step is taken by the system."))
    return call[action](**common, **kwargs)


_DONE = {
    Action.ACCEPT: gettext_lazy("Accepted: the consult is yours to answer."),
    Action.CLOSE: gettext_lazy("Closed. Thank you for the close-out."),
    Action.ANSWER: gettext_lazy("Answer sent to the requesting doctor."),
}


@login_required
@require_POST
def act(request: HttpRequest, public_id: str, action: str) -> HttpResponse:
    user = _user(request)
    consult = selectors.access_consult(user, str(public_id))
    try:
        step = Action(action)
    except ValueError:
        raise Http404(_("No such action.")) from None
    form, kwargs = _parse(request, user, consult, step)
    status = 400
    if kwargs is not None:
        holder = form if form is not None else _holder()
        done, status = attempt(holder, lambda: _step(user, consult, step, kwargs), _ERROR_FIELD)
        if done is not None:
            messages.success(request, _DONE.get(step) or _("Done: %(action)s.") % {"action": step.label})
            return HttpResponseRedirect(_detail_url(consult))
        if status == 409:
            messages.warning(request, " ".join(str(e) for e in holder.non_field_errors()))
            consult = selectors.access_consult(user, str(public_id))
            return render(request, "consults/detail.html", _detail_context(user, consult), status=409)
        form = holder
    consult = selectors.access_consult(user, str(public_id))
    return render(request, "consults/detail.html", _detail_context(user, consult, bound={step: form}), status=status)


def _posted(
    request: HttpRequest,
    public_id: str,
    form: Any,
    call: Callable[[User, Consult], object],
    done: str,
    anchor: str,
    context_key: str,
) -> HttpResponse:
    """A thread message, an opinion or a file: the service, then back to the page (or the page
    with the form's errors: 400, or 409 when the consult moved on meanwhile)."""
    user = _user(request)
    consult = selectors.access_consult(user, str(public_id))
    status = 400
    if form.is_valid():
        result, status = attempt(form, lambda: call(user, consult), _ERROR_FIELD)
        if result is not None:
            messages.success(request, done)
            return HttpResponseRedirect(_detail_url(consult, anchor))
    consult = selectors.access_consult(user, str(public_id))
    return render(request, "consults/detail.html", _detail_context(user, consult, **{context_key: form}), status=status)


@login_required
@require_POST
def message(request: HttpRequest, public_id: str) -> HttpResponse:
    form = TextForm(request.POST, label=_("Message"))
    return _posted(
        request,
        public_id,
        form,
        lambda user, consult: services.consult_message(actor=user, consult=consult, text=form.cleaned_data["text"]),
        _("Message posted."),
        "#thread",
        "message_form",
    )


@login_required
@require_POST
def opinion(request: HttpRequest, public_id: str) -> HttpResponse:
    form = TextForm(request.POST, label=_("Your opinion"))
    return _posted(
        request,
        public_id,
        form,
        lambda user, consult: services.consult_opinion(actor=user, consult=consult, text=form.cleaned_data["text"]),
        _("Opinion saved."),
        "#opinions",
        "opinion_form",
    )


@login_required
@require_POST
def attach(request: HttpRequest, public_id: str) -> HttpResponse:
    form = AttachmentForm(request.POST, request.FILES)
    return _posted(
        request,
        public_id,
        form,
        lambda user, consult: services.consult_attach(
            actor=user,
            consult=consult,
            upload=form.cleaned_data["file"],
            description=form.cleaned_data["description"],
        ),
        _("File added."),
        "#attachments",
        "attachment_form",
    )


@login_required
@require_GET
def attachment(request: HttpRequest, public_id: str, attachment_id: str) -> FileResponse:
    """The file itself (its opening is audited): PDF and pictures open in the browser, DICOM is downloaded."""
    found = selectors.attachment_open(_user(request), str(public_id), str(attachment_id))
    inline = found.content_type in ("application/pdf", "image/png", "image/jpeg")
    response = FileResponse(
        found.file.open("rb"), as_attachment=not inline, filename=found.filename, content_type=found.content_type
    )
    response["Cache-Control"] = "private, no-store"
    return response


# ----------------------------------------------------------------------------------------
# The printable report


@login_required
@require_GET
def report(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    consult = selectors.access_consult(user, str(public_id))
    patient = selectors.consult_patient(user, consult, purpose="printable report")
    opinions = selectors.consult_opinions(consult) if consult.kind in workflow.SESSION else []
    context = {
        "consult": consult,
        "patient": patient,
        "masked_id_number": mask_id_number(patient.id_number),
        "age": _age(patient.birth_date, patient.approximate_age),
        "opinions": opinions,
        "delivered": consult.status in workflow.DELIVERED,
        "printed_at": timezone.now(),
    }
    response = render(request, "consults/report.html", context)
    response["Cache-Control"] = "private, no-store"
    return response


# ----------------------------------------------------------------------------------------
# MDT calendar and meetings


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _coordinated(user: User) -> list[Institution]:
    ids = user_scope(user).institution_ids_with(Permission.COORDINATE_CONSULTS)
    return list(Institution.objects.filter(pk__in=ids).order_by("code"))


@dataclass
class Day:
    date: dt.date
    meetings: list[Meeting]
    sessions: list[Consult]
    is_today: bool


@login_required
@require_GET
def calendar(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not selectors.can_use_consults(user):
        raise PermissionDenied(_("You have no part in teleconsultations."))
    today = timezone.localdate()
    try:
        asked = dt.date.fromisoformat(request.GET.get("week", "")) if request.GET.get("week") else today
    except ValueError:
        asked = today
    if not (dt.date(1900, 1, 8) <= asked <= dt.date(9998, 12, 20)):
        asked = today
    first = _monday(asked)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min))
    end = start + dt.timedelta(days=7)
    meetings = selectors.meetings_between(user, start, end)
    sessions = selectors.sessions_between(user, start, end)
    days = []
    for offset in range(7):
        day = first + dt.timedelta(days=offset)
        days.append(
            Day(
                day,
                [m for m in meetings if timezone.localdate(m.starts_at) == day],
                [s for s in sessions if s.scheduled_start and timezone.localdate(s.scheduled_start) == day],
                day == today,
            )
        )
    context = {
        "days": days,
        "first": first,
        "last": first + dt.timedelta(days=6),
        "previous": first - dt.timedelta(days=7),
        "next": first + dt.timedelta(days=7),
        "this_week": _monday(today),
        "can_plan": bool(_coordinated(user)),
        "empty": not meetings and not sessions,
    }
    return render(request, "consults/calendar.html", context)


def _meeting_form_parts(user: User, request: HttpRequest) -> tuple[list[Institution], Institution, list[Practitioner]]:
    institutions = _coordinated(user)
    if not institutions:
        raise PermissionDenied(_("Only a consult coordinator may call an MDT meeting."))
    code = request.POST.get("institution") or request.GET.get("institution") or ""
    institution = next((i for i in institutions if i.code == code), institutions[0])
    return institutions, institution, selectors.experts_at(institution)


def _slots(experts: list[Practitioner], chair: Practitioner | None, first_day: dt.date) -> list[selectors.Slot]:
    ids = sorted({p.pk for p in experts} | ({chair.pk} if chair else set()))
    if not ids:
        return []
    return selectors.free_slots(ids, first_day=max(first_day, timezone.localdate()))


@login_required
def meeting_new(request: HttpRequest) -> HttpResponse:
    """Call an MDT meeting. "Suggest times" (a GET with the chosen experts, or the same button
    under HTMX) lists free times of the chosen people; a suggestion fills the date and times."""
    user = _user(request)
    institutions, institution, experts = _meeting_form_parts(user, request)
    status = 200
    source = request.POST if request.method == "POST" else request.GET
    asked_for_times = bool(source.get("suggest"))
    if request.method == "POST" and not asked_for_times:
        form = MeetingForm(request.POST, institutions=institutions, experts=experts)
        if form.is_valid():
            data = form.cleaned_data
            starts_at, ends_at = form.moments()
            meeting, status = attempt(
                form,
                lambda: services.meeting_create(
                    actor=user,
                    institution=data["institution"],
                    title=data["title"],
                    chair=data["chair"],
                    experts=list(data["experts"]),
                    starts_at=starts_at,
                    ends_at=ends_at,
                    meeting_url=data["meeting_url"],
                ),
                _ERROR_FIELD,
            )
            if meeting is not None:
                messages.success(request, _("MDT meeting %(number)s planned.") % {"number": meeting.number})
                return HttpResponseRedirect(reverse("consults:meeting", args=[meeting.public_id]))
        else:
            status = 400
    else:
        # A first visit, a suggested time picked without JavaScript, or "Suggest free times":
        # the form is filled in from the address or the posted fields, not checked yet.
        initial: dict[str, Any] = {"institution": institution.code}
        for name in ("title", "date", "start", "end", "meeting_url", "chair"):
            if source.get(name):
                initial[name] = source[name]
        if source.getlist("experts"):
            initial["experts"] = source.getlist("experts")
        form = MeetingForm(initial=initial, institutions=institutions, experts=experts)
    chosen = _chosen(request, experts)
    chair = _chosen_chair(request, experts)
    # Suggestions on asking, and after a refusal (another time for the same people).
    suggest = asked_for_times or bool(request.GET.getlist("experts")) or status != 200
    slots = _slots(chosen, chair, _first_day(request)) if suggest else []
    context = {
        "form": form,
        "institutions": institutions,
        "institution": institution,
        "slots": slots,
        "suggested": suggest,
        "chosen": chosen,
        "chair_chosen": chair,
    }
    if _is_htmx(request) and request.method == "GET":
        return render(request, "consults/_slots.html", context)
    return render(request, "consults/meeting_new.html", context, status=status)


def _chosen(request: HttpRequest, experts: list[Practitioner]) -> list[Practitioner]:
    source = request.POST if request.method == "POST" else request.GET
    wanted = set(source.getlist("experts"))
    return [p for p in experts if str(p.public_id) in wanted]


def _chosen_chair(request: HttpRequest, experts: list[Practitioner]) -> Practitioner | None:
    source = request.POST if request.method == "POST" else request.GET
    wanted = source.get("chair", "")
    return next((p for p in experts if str(p.public_id) == wanted), None)


def _first_day(request: HttpRequest) -> dt.date:
    source = request.POST if request.method == "POST" else request.GET
    try:
        day = dt.date.fromisoformat(source.get("date", ""))
    except ValueError:
        return timezone.localdate()
    return day if dt.date(1900, 1, 1) <= day <= dt.date(9998, 12, 1) else timezone.localdate()


def _meeting_context(
    user: User, meeting: Meeting, forms: dict[str, Any] | None = None, error: str = ""
) -> dict[str, Any]:
    forms = forms or {}
    participants = selectors.meeting_participants(meeting)
    cases = selectors.meeting_cases(meeting)
    visible = set(
        selectors.consult_queryset_visible_to(user).filter(pk__in=[c.pk for c in cases]).values_list("pk", flat=True)
    )
    planned = meeting.status == Meeting.MeetingStatus.PLANNED
    coordinator = meeting.institution_id in user_scope(user).institution_ids_with(Permission.COORDINATE_CONSULTS)
    mine = next((p for p in participants if p.practitioner.user_id == user.pk), None)
    invitable = [
        p for p in selectors.experts_at(meeting.institution) if p.pk not in {x.practitioner_id for x in participants}
    ]
    local_start = timezone.localtime(meeting.starts_at)
    return {
        "meeting": meeting,
        "participants": participants,
        "cases": [
            {
                "consult": c,
                "patient": mask_name(c.patient.name) if c.pk in visible else "",
                "visible": c.pk in visible,
            }
            for c in cases
        ],
        "planned": planned,
        "coordinator": coordinator and planned,
        "mine": mine if planned else None,
        "reschedule_form": forms.get("reschedule")
        or MeetingTimeForm(
            initial={
                "date": local_start.date(),
                "start": local_start.time(),
                "end": timezone.localtime(meeting.ends_at).time(),
            }
        ),
        "invite_form": forms.get("invite") or InviteForm(experts=invitable),
        "cancel_form": forms.get("cancel") or ReasonForm(),
        "open": next(iter(forms), ""),
        "error": error,
    }


@login_required
@require_GET
def meeting(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    found = selectors.access_meeting(user, str(public_id))
    return render(request, "consults/meeting.html", _meeting_context(user, found))


def _meeting_step(user: User, meeting: Meeting, action: str, form: Any) -> object:
    if action in ("attend", "decline"):
        return services.meeting_respond(actor=user, meeting=meeting, attend=action == "attend")
    if action == "held":
        return services.meeting_mark_held(actor=user, meeting=meeting)
    if action == "reschedule":
        starts_at, ends_at = form.moments()
        return services.meeting_reschedule(actor=user, meeting=meeting, starts_at=starts_at, ends_at=ends_at)
    if action == "invite":
        return services.meeting_invite(actor=user, meeting=meeting, expert=form.cleaned_data["expert"])
    return services.meeting_cancel(actor=user, meeting=meeting, reason=form.cleaned_data["reason"])


_MEETING_DONE = {
    "attend": gettext_lazy("Your answer was sent to the coordinator."),
    "decline": gettext_lazy("Your answer was sent to the coordinator."),
    "held": gettext_lazy("The meeting is marked as held."),
    "reschedule": gettext_lazy("The meeting was moved; the invited experts are told."),
    "invite": gettext_lazy("The expert is invited."),
    "cancel": gettext_lazy("The meeting is cancelled."),
}
_MEETING_FORMS = ("reschedule", "invite", "cancel")


@login_required
@require_POST
def meeting_act(request: HttpRequest, public_id: str, action: str) -> HttpResponse:
    """Attend or decline (an invited expert); reschedule, invite, mark held, cancel (a coordinator)."""
    user = _user(request)
    found = selectors.access_meeting(user, str(public_id))
    if action not in _MEETING_DONE:
        raise Http404(_("No such action."))
    form: Any
    if action == "reschedule":
        form = MeetingTimeForm(request.POST)
    elif action == "invite":
        participants = {p.practitioner_id for p in selectors.meeting_participants(found)}
        invitable = [p for p in selectors.experts_at(found.institution) if p.pk not in participants]
        form = InviteForm(request.POST, experts=invitable)
    elif action == "cancel":
        form = ReasonForm(request.POST)
    else:
        form = _holder()
    status = 400
    if form.is_valid():
        result, status = attempt(form, lambda: _meeting_step(user, found, action, form), _ERROR_FIELD)
        if result is not None:
            messages.success(request, _MEETING_DONE[action])
            return HttpResponseRedirect(reverse("consults:meeting", args=[found.public_id]))
    found = selectors.access_meeting(user, str(public_id))
    bound = {action: form} if action in _MEETING_FORMS else {}
    error = "" if bound else " ".join(str(e) for e in form.non_field_errors())
    return render(request, "consults/meeting.html", _meeting_context(user, found, bound, error), status=status)


@login_required
@require_GET
def meeting_ics(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    found = selectors.access_meeting(user, str(public_id))
    url = settings.SITE_URL + reverse("consults:meeting", args=[found.public_id])
    with translation.override(user.language or settings.LANGUAGE_CODE):
        content = export.meeting_ics(found, selectors.meeting_participants(found), url=url, host=request.get_host())
    response = HttpResponse(content, content_type="text/calendar; charset=utf-8; method=REQUEST")
    response["Content-Disposition"] = f'attachment; filename="mdt-{found.number}.ics"'
    response["Cache-Control"] = "private, no-store"
    return response


# ----------------------------------------------------------------------------------------
# Figures


@login_required
@require_GET
def figures(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if Permission.VIEW_CONSULT_FIGURES not in user_scope(user).permissions:
        raise PermissionDenied(_("You may not see consultation figures."))
    today = timezone.localdate()
    form = PeriodForm(request.GET or None, initial={"start": today.replace(month=1, day=1), "end": today})
    start, end = today.replace(month=1, day=1), today
    status = 200
    rows: list[selectors.ConsultFigures] = []
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        if form.is_bound:
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        try:
            rows = selectors.consult_figures(user, start=start, end=end)
        except ValidationError as exc:
            errors_to_form(form, exc)
            status = 400
    totals = {
        "requested": sum(r.requested for r in rows),
        "delivered": sum(r.delivered for r in rows),
        "for_others": sum(r.answered_for_others for r in rows),
        "closed": sum(r.closed for r in rows),
    }
    context = {
        "form": form,
        "rows": rows,
        "kinds": list(Kind),
        "start": start,
        "end": end,
        "totals": totals,
    }
    return render(request, "consults/figures.html", context, status=status)
