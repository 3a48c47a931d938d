"""Capability-building pages: the overview, the techniques catalogue, the transfer ledgers, the
regional firsts, teaching with its QR sign-in, and the training programmes with their mentees.

Every page works as plain HTML forms; HTMX only keeps the organiser's sign-in panel fresh (it polls
every few seconds and shows a new code once the current one is used or expired). Views parse, call
an ``access_*`` selector first (404 when there is no such row, 403 when it is out of scope), then a
service, and render. A service's ValidationError is shown next to its field with status 400, a
Conflict on the form with status 409; PermissionDenied becomes the 403 page.

The organiser's current sign-in code is kept in their session (the row id and the code itself: the
database keeps only its digest), so the panel can show the same QR until it is used or expires.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import segno
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from yilian.capability import selectors, services
from yilian.capability.forms import (
    AssessmentForm,
    AttendeeForm,
    CaseForm,
    FirstFilterForm,
    FirstForm,
    LedgerFilterForm,
    MenteeForm,
    MilestoneForm,
    PrivilegeForm,
    SignInForm,
    TeachingFilterForm,
    TeachingForm,
    TechniqueEditForm,
    TechniqueFilterForm,
    TechniqueForm,
    TrainingForm,
    TransferForm,
)
from yilian.capability.models import (
    STAGE_ORDER,
    FirstClaim,
    FirstStatus,
    Mentee,
    TeachingActivity,
    TeachingAttendance,
    Technique,
    TrainingProgramme,
    Transfer,
    stage_rank,
)
from yilian.core.errors import Conflict
from yilian.core.permissions import Permission
from yilian.dispatch.models import Programme
from yilian.registry.models import (
    Consortium,
    ConsortiumMember,
    Department,
    Institution,
    Practitioner,
    Region,
    RegionLevel,
    User,
)
from yilian.registry.selectors import institution_queryset_visible_to, require_perm, user_scope
from yilian.web.forms import attempt

SIGN_IN_SESSION_KEY = "capability_sign_in"
SIGN_IN_POLL_SECONDS = 3


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _visible(user: User) -> QuerySet[Institution]:
    require_perm(user, Permission.VIEW_CAPABILITY)
    return institution_queryset_visible_to(user)


def _practitioners(institutions: QuerySet[Institution] | list[Institution]) -> QuerySet[Practitioner]:
    return (
        Practitioner.objects.filter(institution__in=institutions, is_active=True)
        .select_related("institution")
        .order_by("institution__code", "name_zh")
    )


def _stage_labels() -> list[tuple[int, str]]:
    return [(i, str(stage.label)) for i, stage in enumerate(STAGE_ORDER)]


# ----------------------------------------------------------------------------------------
# Overview


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.VIEW_CAPABILITY)
    today = timezone.localdate()
    by_stage = {
        row["stage"]: row["n"]
        for row in selectors.transfer_list_visible_to(user).order_by().values("stage").annotate(n=Count("id"))
    }
    by_status = {
        row["status"]: row["n"]
        for row in selectors.first_list_visible_to(user).order_by().values("status").annotate(n=Count("id"))
    }
    activities = [
        a
        for a in selectors.teaching_list_visible_to(user, start=dt.date(today.year, 1, 1))
        if not a.cancelled and a.starts_at <= timezone.now()
    ]
    credited = TeachingAttendance.objects.filter(activity__in=[a.pk for a in activities]).aggregate(h=Sum("hours"))
    context = {
        "techniques": selectors.technique_list(user).count(),
        "ledgers": sum(by_stage.values()),
        "stages": [(stage, by_stage.get(stage.value, 0)) for stage in STAGE_ORDER],
        "not_started": by_stage.get("", 0),
        "firsts": sum(by_status.values()),
        "verdicts": [(status, by_status.get(status.value, 0)) for status in FirstStatus],
        "year": today.year,
        "activities": len(activities),
        "hours_taught": sum((a.hours for a in activities), Decimal(0)),
        "hours_credited": credited["h"] or Decimal(0),
        "programmes": selectors.training_list_visible_to(user).count(),
        "mentees": Mentee.objects.filter(
            programme__in=selectors.training_list_visible_to(user).values("pk"), left_on__isnull=True
        ).count(),
    }
    return render(request, "capability/overview.html", context)


# ----------------------------------------------------------------------------------------
# Techniques


def _technique_page(request: HttpRequest, status: int = 200, form: TechniqueForm | None = None) -> HttpResponse:
    user = _user(request)
    filters = TechniqueFilterForm(request.GET or None)
    search, discipline = "", ""
    if filters.is_valid():
        search, discipline = filters.cleaned_data["q"].strip(), filters.cleaned_data["discipline"]
    can_manage = selectors.can_manage_catalogue(user)
    techniques = list(
        selectors.technique_list(user, search=search, discipline=discipline, active_only=not can_manage).annotate(
            # Ledgers the user may see: another consortium's count is not theirs to read.
            ledgers=Count(
                "transfers",
                filter=Q(transfers__department__institution__in=institution_queryset_visible_to(user)),
            )
        )
    )
    context = {
        "filters": filters,
        "techniques": techniques,
        "can_manage": can_manage,
        "form": form or (TechniqueForm() if can_manage else None),
        "open_form": form is not None,
    }
    return render(request, "capability/techniques.html", context, status=status)


@login_required
def technique_list(request: HttpRequest) -> HttpResponse:
    require_perm(_user(request), Permission.VIEW_CAPABILITY)
    return _technique_page(request)


@login_required
@require_POST
def technique_create(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.VIEW_CAPABILITY)
    if not selectors.can_manage_catalogue(user):
        raise PermissionDenied(_("Only the consortium office keeps the techniques catalogue."))
    form = TechniqueForm(request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        technique, status = attempt(
            form,
            lambda: services.technique_create(
                actor=user,
                code=data["code"],
                name_zh=data["name_zh"],
                name_en=data["name_en"],
                operation_code=data["operation_code"],
                level=data["level"],
                restricted=data["restricted"],
                discipline=data["discipline"],
            ),
        )
        if technique is not None:
            messages.success(request, _("Technique %(name)s added to the catalogue.") % {"name": technique.name})
            return HttpResponseRedirect(reverse("capability:techniques"))
    return _technique_page(request, status, form)


@login_required
@require_http_methods(["GET", "POST"])
def technique_edit(request: HttpRequest, code: str) -> HttpResponse:
    user = _user(request)
    technique = selectors.access_technique(user, code)
    if not selectors.can_manage_catalogue(user):
        raise PermissionDenied(_("Only the consortium office keeps the techniques catalogue."))
    fields = ("name_zh", "name_en", "operation_code", "level", "restricted", "discipline", "is_active")
    if request.method != "POST":
        form = TechniqueEditForm(initial={f: getattr(technique, f) for f in fields})
        return render(request, "capability/technique_edit.html", {"technique": technique, "form": form})
    form = TechniqueEditForm(request.POST)
    status = 400
    if form.is_valid():
        changes = {f: v for f, v in form.cleaned_data.items() if getattr(technique, f) != v}
        _done, status = attempt(
            form, lambda: services.technique_update(actor=user, technique=technique, **changes) if changes else None
        )
        if status == 200:
            messages.success(request, _("The technique is saved.") if changes else _("Nothing was changed."))
            return HttpResponseRedirect(reverse("capability:techniques"))
    return render(request, "capability/technique_edit.html", {"technique": technique, "form": form}, status=status)


# ----------------------------------------------------------------------------------------
# Ledger


def _recordable_departments(user: User) -> list[Department]:
    scope = user_scope(user)
    if Permission.RECORD_TRANSFER not in scope.permissions:
        return []
    departments = (
        Department.objects.filter(institution__in=institution_queryset_visible_to(user), is_active=True)
        .select_related("institution")
        .order_by("institution__code", "discipline")
    )
    return [d for d in departments if selectors.can_record_transfer(user, d)]


def _transfer_form(user: User, data: Any = None, departments: list[Department] | None = None) -> TransferForm:
    departments = _recordable_departments(user) if departments is None else departments
    return TransferForm(
        data,
        departments=Department.objects.filter(pk__in=[d.pk for d in departments])
        .select_related("institution")
        .order_by("institution__code", "discipline"),
        techniques=Technique.objects.filter(is_active=True).order_by("discipline", "code"),
        experts=_practitioners(institution_queryset_visible_to(user)),
    )


def _ledger_list_page(request: HttpRequest, status: int = 200, form: TransferForm | None = None) -> HttpResponse:
    user = _user(request)
    visible = _visible(user)
    institutions = visible.filter(departments__transfers__isnull=False).distinct().order_by("code")
    techniques = Technique.objects.filter(transfers__department__institution__in=visible).distinct().order_by("code")
    filters = LedgerFilterForm(request.GET or None, institutions=institutions, techniques=techniques)
    wanted: dict[str, str] = {}
    if filters.is_valid():
        wanted = {k: filters.cleaned_data[k] for k in ("institution", "technique", "stage")}
    rows = [
        {"transfer": t, "rank": stage_rank(t.stage) if t.stage else -1}
        for t in selectors.transfer_list_visible_to(user, **wanted)
    ]
    if form is None:
        departments = _recordable_departments(user)
        form = _transfer_form(user, departments=departments) if departments else None
    context = {
        "filters": filters,
        "rows": rows,
        "stage_labels": _stage_labels(),
        "form": form,
        "open_form": status != 200,
    }
    return render(request, "capability/ledger_list.html", context, status=status)


@login_required
def ledger_list(request: HttpRequest) -> HttpResponse:
    return _ledger_list_page(request)


@login_required
@require_POST
def ledger_open(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.RECORD_TRANSFER)
    form = _transfer_form(user, request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        transfer, status = attempt(
            form,
            lambda: services.transfer_open(
                actor=user,
                department=data["department"],
                technique=data["technique"],
                expert=data["expert"],
                note=data["note"],
            ),
        )
        if transfer is not None:
            messages.success(request, _("The ledger is open."))
            return HttpResponseRedirect(reverse("capability:ledger", args=[transfer.public_id]))
    return _ledger_list_page(request, status, form)


def _host_staff(transfer: Transfer) -> QuerySet[Practitioner]:
    return _practitioners([transfer.department.institution])


def _ledger_page(
    request: HttpRequest,
    transfer: Transfer,
    status: int = 200,
    *,
    case_form: CaseForm | None = None,
    privilege_form: PrivilegeForm | None = None,
    advance_error: tuple[uuid.UUID, list[str]] | None = None,
    open_form: str = "",
) -> HttpResponse:
    user = _user(request)
    view = selectors.ledger(transfer)
    can_record = selectors.can_record_transfer(user, transfer.department)
    # Whoever grants privileges at the host (only the institution of the surgeon matters).
    can_grant = selectors.can_grant_privilege(user, Practitioner(institution_id=transfer.department.institution_id))
    used = {step.evidence_id for step in view.steps}
    today = timezone.localdate()
    context = {
        "transfer": transfer,
        "view": view,
        "stage_labels": _stage_labels(),
        "rank": stage_rank(transfer.stage) if transfer.stage else -1,
        "used": used,
        "can_record": can_record,
        "can_grant": can_grant,
        "case_form": case_form
        or (CaseForm(surgeons=_host_staff(transfer), initial={"performed_on": today}) if can_record else None),
        "privilege_form": privilege_form
        or (PrivilegeForm(surgeons=_host_staff(transfer), initial={"granted_on": today}) if can_grant else None),
        "advance_error": advance_error,
        "open_form": open_form,
    }
    return render(request, "capability/ledger_detail.html", context, status=status)


def _ledger_url(transfer: Transfer, anchor: str = "") -> str:
    url = reverse("capability:ledger", args=[transfer.public_id])
    return f"{url}#{anchor}" if anchor else url


@login_required
def ledger_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    transfer = selectors.access_transfer(_user(request), str(public_id))
    return _ledger_page(request, transfer)


def _recorder(user: User, transfer: Transfer) -> None:
    if not selectors.can_record_transfer(user, transfer.department):
        raise PermissionDenied(_("You do not keep the technique ledger of this department."))


@login_required
@require_POST
def case_add(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    transfer = selectors.access_transfer(user, str(public_id))
    _recorder(user, transfer)
    form = CaseForm(request.POST, surgeons=_host_staff(transfer))
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        _case, status = attempt(
            form,
            lambda: services.transfer_case_add(
                actor=user,
                transfer=transfer,
                performed_on=data["performed_on"],
                local_role=data["local_role"],
                local_surgeon=data["local_surgeon"],
                operation_code=data["operation_code"],
                note=data["note"],
            ),
        )
        if status == 200:
            messages.success(request, _("The case is recorded."))
            return HttpResponseRedirect(_ledger_url(transfer, "cases"))
    return _ledger_page(request, transfer, status, case_form=form, open_form="case")


@login_required
@require_POST
def ledger_collect(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    transfer = selectors.access_transfer(user, str(public_id))
    _recorder(user, transfer)
    collected = services.transfer_collect(actor=user, transfer=transfer)
    messages.success(
        request,
        _("%(total)d new cases collected: %(logs)d from work logs, %(records)d from imported records.")
        % {"total": collected.total, "logs": collected.from_work_logs, "records": collected.from_activity},
    )
    if collected.unmatched_surgeons:
        messages.warning(
            request,
            _("Operators in the imported records that match no practitioner of the host: %(names)s.")
            % {"names": "、".join(collected.unmatched_surgeons)},
        )
    return HttpResponseRedirect(_ledger_url(transfer, "cases"))


@login_required
@require_POST
def case_advance(request: HttpRequest, public_id: uuid.UUID, case_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    transfer = selectors.access_transfer(user, str(public_id))
    _recorder(user, transfer)
    case = transfer.cases.select_related("local_surgeon").filter(public_id=case_id).first()
    if case is None:
        raise Http404(_("No such case in this ledger."))
    try:
        steps = services.transfer_advance(actor=user, transfer=transfer, evidence=case)
    except ValidationError as exc:
        return _ledger_page(request, transfer, 400, advance_error=(case.public_id, [str(m) for m in exc.messages]))
    except Conflict as exc:
        return _ledger_page(request, transfer, 409, advance_error=(case.public_id, [str(exc)]))
    messages.success(
        request,
        _("Recorded: %(stages)s.") % {"stages": "、".join(str(s.get_stage_display()) for s in steps)},
    )
    return HttpResponseRedirect(_ledger_url(transfer, "stages"))


@login_required
@require_POST
def privilege_grant(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    transfer = selectors.access_transfer(user, str(public_id))
    form = PrivilegeForm(request.POST, surgeons=_host_staff(transfer))
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        _privilege, status = attempt(
            form,
            lambda: services.privilege_grant(
                actor=user,
                practitioner=data["practitioner"],
                technique=transfer.technique,
                granted_on=data["granted_on"],
                note=data["note"],
            ),
        )
        if status == 200:
            messages.success(
                request,
                _("%(surgeon)s holds the privilege for %(technique)s.")
                % {"surgeon": data["practitioner"].name, "technique": transfer.technique.name},
            )
            return HttpResponseRedirect(_ledger_url(transfer, "surgeons"))
    return _ledger_page(request, transfer, status, privilege_form=form, open_form="privilege")


# ----------------------------------------------------------------------------------------
# Firsts


SOURCE_LABELS = {
    "ledger": gettext_lazy("Technique ledger"),
    "work_log": gettext_lazy("Expert's work log"),
    "activity": gettext_lazy("Imported operation record"),
}


def _claimable(user: User) -> QuerySet[Institution]:
    if Permission.CLAIM_FIRSTS not in user_scope(user).permissions:
        return Institution.objects.none()
    visible = institution_queryset_visible_to(user).filter(is_active=True).order_by("code")
    return visible.filter(pk__in=[i.pk for i in visible if selectors.can_claim_first(user, i)])


def _first_form(user: User, data: Any = None, institutions: QuerySet[Institution] | None = None) -> FirstForm:
    institutions = _claimable(user) if institutions is None else institutions
    return FirstForm(
        data,
        techniques=Technique.objects.filter(is_active=True).order_by("discipline", "code"),
        institutions=institutions,
        regions=Region.objects.filter(level__in=[RegionLevel.PROVINCE, RegionLevel.CITY]).order_by("code"),
        programmes=Programme.objects.filter(host_institution__in=institutions).order_by("-starts_on", "code"),
        initial={"performed_on": timezone.localdate()},
    )


def _first_list_page(request: HttpRequest, status: int = 200, form: FirstForm | None = None) -> HttpResponse:
    user = _user(request)
    visible = _visible(user)
    firsts_all = selectors.first_list_visible_to(user)
    programmes = list(Programme.objects.filter(first_claims__in=firsts_all.values("pk")).distinct().order_by("code"))
    consortia = list(
        Consortium.objects.filter(
            Q(pk__in=ConsortiumMember.objects.filter(institution__in=visible).values("consortium_id"))
            | Q(lead_institution__in=visible)
        )
        .distinct()
        .order_by("code")
    )
    filters = FirstFilterForm(request.GET or None, programmes=programmes, consortia=consortia)
    wanted: dict[str, str] = {}
    if filters.is_valid():
        wanted = {k: filters.cleaned_data[k] for k in ("programme", "consortium", "status")}
    if form is None:
        institutions = _claimable(user)
        form = _first_form(user, institutions=institutions) if institutions.exists() else None
    context = {
        "filters": filters,
        "firsts": list(selectors.first_list_visible_to(user, **wanted)),
        "form": form,
        "open_form": status != 200,
        "lookback": services.FIRST_LOOKBACK_MONTHS,
    }
    return render(request, "capability/firsts.html", context, status=status)


@login_required
def first_list(request: HttpRequest) -> HttpResponse:
    return _first_list_page(request)


@login_required
@require_POST
def first_claim(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.CLAIM_FIRSTS)
    form = _first_form(user, request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        claim, status = attempt(
            form,
            lambda: services.first_claim(
                actor=user,
                technique=data["technique"],
                institution=data["institution"],
                performed_on=data["performed_on"],
                region=data["region"],
                macro_region=data["macro_region"] if data["region"] is None else "",
                programme=data["programme"],
                description=data["description"],
            ),
        )
        if claim is not None:
            messages.success(
                request, _("The first is claimed and checked: %(verdict)s.") % {"verdict": claim.get_status_display()}
            )
            return HttpResponseRedirect(reverse("capability:first", args=[claim.public_id]))
    return _first_list_page(request, status, form)


def _first_page(request: HttpRequest, claim: FirstClaim) -> HttpResponse:
    user = _user(request)
    evidence: dict[str, Any] = claim.evidence or {}
    earlier = evidence.get("earlier")
    if earlier:
        earlier = {**earlier, "source_label": SOURCE_LABELS.get(earlier.get("source", ""), earlier.get("source", ""))}
    context = {
        "claim": claim,
        "earlier": earlier,
        "window": evidence.get("window"),
        "missing": evidence.get("missing") or [],
        "no_code": evidence.get("reason") == "no_code",
        "can_verify": selectors.can_claim_first(user, claim.institution),
    }
    return render(request, "capability/first_detail.html", context)


@login_required
def first_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    return _first_page(request, selectors.access_first(_user(request), str(public_id)))


@login_required
@require_POST
def first_verify(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    claim = selectors.access_first(user, str(public_id))
    claim = services.first_verify(actor=user, claim=claim)
    messages.success(request, _("Checked again: %(verdict)s.") % {"verdict": claim.get_status_display()})
    return HttpResponseRedirect(reverse("capability:first", args=[claim.public_id]))


# ----------------------------------------------------------------------------------------
# Teaching


def _teaching_places(user: User) -> QuerySet[Institution]:
    if Permission.LEAD_TEACHING not in user_scope(user).permissions:
        return Institution.objects.none()
    visible = institution_queryset_visible_to(user).filter(is_active=True).order_by("code")
    return visible.filter(pk__in=[i.pk for i in visible if selectors.can_lead_teaching_at(user, i)])


def _teaching_form(user: User, data: Any = None, places: QuerySet[Institution] | None = None) -> TeachingForm:
    places = _teaching_places(user) if places is None else places
    own = selectors.own_practitioner(user)
    now = timezone.localtime().replace(second=0, microsecond=0)
    initial: dict[str, Any] = {"starts_at": now, "ends_at": now + dt.timedelta(hours=1)}
    if own is not None:
        initial["leader"] = own.pk
    return TeachingForm(
        data, leaders=_practitioners(institution_queryset_visible_to(user)), institutions=places, initial=initial
    )


def _teaching_list_page(request: HttpRequest, status: int = 200, form: TeachingForm | None = None) -> HttpResponse:
    user = _user(request)
    visible = _visible(user)
    filters = TeachingFilterForm(request.GET or None, institutions=visible.order_by("code"))
    wanted: dict[str, Any] = {}
    if filters.is_valid():
        wanted = {k: filters.cleaned_data[k] for k in ("institution", "kind", "start", "end")}
    activities = list(
        selectors.teaching_list_visible_to(user, **wanted).annotate(attendees=Count("attendances", distinct=True))
    )
    if form is None:
        places = _teaching_places(user)
        form = _teaching_form(user, places=places) if places.exists() else None
    context = {"filters": filters, "activities": activities, "form": form, "open_form": status != 200}
    return render(request, "capability/teaching_list.html", context, status=status)


@login_required
def teaching_list(request: HttpRequest) -> HttpResponse:
    return _teaching_list_page(request)


@login_required
@require_POST
def teaching_create(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.LEAD_TEACHING)
    form = _teaching_form(user, request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        activity, status = attempt(
            form,
            lambda: services.teaching_create(
                actor=user,
                kind=data["kind"],
                topic=data["topic"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                leader=data["leader"],
                institutions=list(data["institutions"]),
                place=data["place"],
                materials=data["materials"],
                other_attendees=data["other_attendees"],
            ),
        )
        if activity is not None:
            messages.success(request, _("The teaching activity is recorded."))
            return HttpResponseRedirect(reverse("capability:teaching", args=[activity.public_id]))
    return _teaching_list_page(request, status, form)


def _sign_in_url(request: HttpRequest, activity: TeachingActivity, code: str) -> str:
    path = reverse("capability:sign_in", args=[activity.public_id])
    return request.build_absolute_uri(f"{path}?{urlencode({'code': code})}")


def _session_codes(request: HttpRequest) -> dict[str, dict[str, Any]]:
    codes = request.session.get(SIGN_IN_SESSION_KEY)
    return codes if isinstance(codes, dict) else {}


def _panel(request: HttpRequest, activity: TeachingActivity, *, renew: bool) -> dict[str, Any]:
    """The organiser's sign-in panel: the current code while it is open; once it is used or expired
    a new one when ``renew`` (a POST: the start button or the panel's poll), else nothing to show."""
    codes = _session_codes(request)
    key = str(activity.public_id)
    entry = codes.get(key)
    panel: dict[str, Any] = {"running": entry is not None, "error": "", "code": "", "previous": ""}
    if entry is not None:
        state = selectors.sign_in_code_state(activity, code_id=int(entry.get("id", 0)))
        if state == "open":
            panel["code"], panel["expires_at"] = entry["code"], dt.datetime.fromisoformat(entry["expires_at"])
        else:
            panel["previous"] = state
    if renew and not panel["code"]:
        try:
            code, row = services.sign_in_code_issue(actor=_user(request), activity=activity)
        except Conflict as exc:
            codes.pop(key, None)
            request.session[SIGN_IN_SESSION_KEY] = codes
            return {"running": False, "error": str(exc), "code": "", "previous": ""}
        codes[key] = {"id": row.pk, "code": code, "expires_at": row.expires_at.isoformat()}
        request.session[SIGN_IN_SESSION_KEY] = codes
        panel.update(running=True, code=code, expires_at=row.expires_at)
    if panel["code"]:
        url = _sign_in_url(request, activity, panel["code"])
        panel["url"] = url
        panel["qr"] = mark_safe(  # noqa: S308 - segno's own SVG of our URL
            segno.make(url, error="m").svg_inline(scale=5, dark="#0b3a4a", omitsize=True)
        )
    return panel


def _teaching_context(
    request: HttpRequest, activity: TeachingActivity, *, renew: bool = False, attendee_form: AttendeeForm | None = None
) -> dict[str, Any]:
    user = _user(request)
    can_manage = selectors.can_manage_teaching(user, activity)
    attendances = selectors.attendances(activity)
    context: dict[str, Any] = {
        "activity": activity,
        "attendances": attendances,
        "credited": sum((a.hours for a in attendances), Decimal(0)),
        "can_manage": can_manage,
        "poll_seconds": SIGN_IN_POLL_SECONDS,
        "materials": [line for line in activity.materials.splitlines() if line.strip()],
    }
    if can_manage:
        context["panel"] = _panel(request, activity, renew=renew)
        signed = [a.practitioner_id for a in attendances]
        context["attendee_form"] = attendee_form or AttendeeForm(
            practitioners=_practitioners(institution_queryset_visible_to(user)).exclude(pk__in=signed)
        )
    return context


@login_required
def teaching_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    activity = selectors.access_teaching(_user(request), str(public_id))
    return render(request, "capability/teaching_detail.html", _teaching_context(request, activity))


def _teaching_manager(user: User, activity: TeachingActivity) -> None:
    if not selectors.can_manage_teaching(user, activity):
        raise PermissionDenied(_("Only the leader, the organiser or the places' managers run the sign-in."))


@login_required
@require_POST
def sign_in_start(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    activity = selectors.access_teaching(user, str(public_id))
    _teaching_manager(user, activity)
    context = _teaching_context(request, activity, renew=True)
    if context["panel"]["error"]:
        return render(request, "capability/teaching_detail.html", context, status=409)
    return HttpResponseRedirect(reverse("capability:teaching", args=[activity.public_id]) + "#sign-in")


@login_required
@require_POST
def sign_in_panel(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The live part of the organiser's page (the QR and the attendees), polled by HTMX."""
    user = _user(request)
    activity = selectors.access_teaching(user, str(public_id))
    _teaching_manager(user, activity)
    running = str(activity.public_id) in _session_codes(request)
    if not getattr(request, "htmx", None):
        return HttpResponseRedirect(reverse("capability:teaching", args=[activity.public_id]) + "#sign-in")
    context = _teaching_context(request, activity, renew=running)
    return render(request, "capability/_teaching_live.html", context)


@login_required
@require_POST
def sign_in_stop(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    activity = selectors.access_teaching(user, str(public_id))
    _teaching_manager(user, activity)
    codes = _session_codes(request)
    codes.pop(str(activity.public_id), None)
    request.session[SIGN_IN_SESSION_KEY] = codes
    messages.info(request, _("Sign-in stopped on this screen."))
    return HttpResponseRedirect(reverse("capability:teaching", args=[activity.public_id]))


@login_required
@require_POST
def attendee_add(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    activity = selectors.access_teaching(user, str(public_id))
    _teaching_manager(user, activity)
    form = AttendeeForm(request.POST, practitioners=_practitioners(institution_queryset_visible_to(user)))
    status = 400
    if form.is_valid():
        practitioner = form.cleaned_data["practitioner"]
        _done, status = attempt(
            form, lambda: services.attendance_record(actor=user, activity=activity, practitioner=practitioner)
        )
        if status == 200:
            messages.success(request, _("%(name)s is recorded as attending.") % {"name": practitioner.name})
            return HttpResponseRedirect(reverse("capability:teaching", args=[activity.public_id]) + "#attendees")
    context = _teaching_context(request, activity, attendee_form=form)
    return render(request, "capability/teaching_detail.html", context, status=status)


CODE_MESSAGES = {
    "unknown": (400, gettext_lazy("This sign-in code is not valid for this activity.")),
    "expired": (400, gettext_lazy("This sign-in code has expired. Scan the new code on the screen.")),
    "used": (409, gettext_lazy("This sign-in code has already been used. Scan the new code on the screen.")),
}


@login_required
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The page the attendee's phone opens from the QR: the activity and a big button."""
    user = _user(request)
    activity = selectors.activity_for_sign_in(str(public_id))
    practitioner = selectors.own_practitioner(user)
    code = (request.POST.get("code") if request.method == "POST" else request.GET.get("code")) or ""
    # Before a code is redeemed the page names the activity (topic, time, place) only to someone
    # holding an open code, or who may see the activity anyway.
    may_see = (
        selectors.teaching_list_visible_to(user).filter(pk=activity.pk).exists()
        or (practitioner is not None and activity.attendances.filter(practitioner=practitioner).exists())
        or (bool(code) and selectors.sign_in_code_state(activity, code=code) == "open")
    )
    context: dict[str, Any] = {
        "activity": activity,
        "code": code,
        "error": "",
        "attendance": None,
        "show_details": may_see,
    }
    if practitioner is None:
        context["error"] = _("Only a practitioner with an account signs in; ask the organiser to record you.")
        return render(request, "capability/sign_in.html", context, status=403)
    existing = TeachingAttendance.objects.filter(activity=activity, practitioner=practitioner).first()
    if existing is not None:
        context.update(attendance=existing, already=True)
        return render(request, "capability/sign_in.html", context, status=409)
    if request.method == "POST":
        form = SignInForm(request.POST)
        if not form.is_valid():
            context["error"] = str(CODE_MESSAGES["unknown"][1])
            return render(request, "capability/sign_in.html", context, status=400)
        try:
            attendance = services.sign_in_redeem(actor=user, activity=activity, code=form.cleaned_data["code"])
        except ValidationError as exc:
            context["error"] = " ".join(str(m) for m in exc.messages)
            return render(request, "capability/sign_in.html", context, status=400)
        except Conflict as exc:
            context["error"] = str(exc)
            return render(request, "capability/sign_in.html", context, status=409)
        context.update(attendance=attendance, show_details=True)
        return render(request, "capability/sign_in.html", context)
    state = selectors.sign_in_code_state(activity, code=code) if code else "unknown"
    if activity.cancelled:
        context["error"] = _("This activity is cancelled.")
        return render(request, "capability/sign_in.html", context, status=409)
    if state in CODE_MESSAGES:
        status, message = CODE_MESSAGES[state]
        context["error"] = str(message)
        return render(request, "capability/sign_in.html", context, status=status)
    return render(request, "capability/sign_in.html", context)


# ----------------------------------------------------------------------------------------
# Training


def _training_places(user: User) -> QuerySet[Institution]:
    if Permission.MANAGE_TRAINING not in user_scope(user).permissions:
        return Institution.objects.none()
    visible = institution_queryset_visible_to(user).filter(is_active=True).order_by("code")
    return visible.filter(pk__in=[i.pk for i in visible if selectors.can_manage_training(user, institution_id=i.pk)])


def _training_form(user: User, data: Any = None, places: QuerySet[Institution] | None = None) -> TrainingForm:
    places = _training_places(user) if places is None else places
    return TrainingForm(
        data,
        institutions=places,
        mentors=_practitioners(institution_queryset_visible_to(user)),
        initial={"starts_on": timezone.localdate()},
    )


def _training_list_page(request: HttpRequest, status: int = 200, form: TrainingForm | None = None) -> HttpResponse:
    user = _user(request)
    _visible(user)
    programmes = list(
        selectors.training_list_visible_to(user).annotate(
            mentee_count=Count("mentees", distinct=True), milestone_count=Count("milestones", distinct=True)
        )
    )
    if form is None:
        places = _training_places(user)
        form = _training_form(user, places=places) if places.exists() else None
    context = {"programmes": programmes, "form": form, "open_form": status != 200}
    return render(request, "capability/training_list.html", context, status=status)


@login_required
def training_list(request: HttpRequest) -> HttpResponse:
    return _training_list_page(request)


@login_required
@require_POST
def training_create(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_perm(user, Permission.MANAGE_TRAINING)
    form = _training_form(user, request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        programme, status = attempt(form, lambda: services.training_create(actor=user, **data))
        if programme is not None:
            messages.success(request, _("The programme %(name)s is created.") % {"name": programme.name})
            return HttpResponseRedirect(reverse("capability:training", args=[programme.public_id]))
    return _training_list_page(request, status, form)


def _training_page(
    request: HttpRequest,
    programme: TrainingProgramme,
    status: int = 200,
    *,
    milestone_form: MilestoneForm | None = None,
    mentee_form: MenteeForm | None = None,
    open_form: str = "",
) -> HttpResponse:
    user = _user(request)
    can_manage = selectors.can_manage_training(user, programme)
    techniques = Technique.objects.filter(is_active=True).order_by("discipline", "code")
    mentees = selectors.training_mentees(programme, user=request.user)
    context = {
        "programme": programme,
        "milestones": list(programme.milestones.select_related("technique").order_by("order", "id")),
        "mentees": mentees,
        "can_manage": can_manage,
        "milestone_form": milestone_form or (MilestoneForm(techniques=techniques) if can_manage else None),
        "mentee_form": mentee_form
        or (
            MenteeForm(
                practitioners=_practitioners(institution_queryset_visible_to(user))
                .exclude(pk=programme.mentor_id)
                .exclude(pk__in=[m.mentee.practitioner_id for m in mentees]),
                initial={"joined_on": max(programme.starts_on, timezone.localdate())},
            )
            if can_manage
            else None
        ),
        "open_form": open_form,
        "activities": list(programme.teaching_activities.order_by("-starts_at")[:20]),
    }
    return render(request, "capability/training_detail.html", context, status=status)


@login_required
def training_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    return _training_page(request, selectors.access_training(_user(request), str(public_id)))


def _training_manager(user: User, programme: TrainingProgramme) -> None:
    if not selectors.can_manage_training(user, programme):
        raise PermissionDenied(_("Only the host's administrators or the consortium office run its programmes."))


@login_required
@require_POST
def milestone_add(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_training(user, str(public_id))
    _training_manager(user, programme)
    form = MilestoneForm(request.POST, techniques=Technique.objects.filter(is_active=True))
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        _done, status = attempt(form, lambda: services.milestone_add(actor=user, programme=programme, **data))
        if status == 200:
            messages.success(request, _("Milestone added."))
            return HttpResponseRedirect(reverse("capability:training", args=[programme.public_id]) + "#milestones")
    return _training_page(request, programme, status, milestone_form=form, open_form="milestone")


@login_required
@require_POST
def mentee_add(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    programme = selectors.access_training(user, str(public_id))
    _training_manager(user, programme)
    form = MenteeForm(request.POST, practitioners=_practitioners(institution_queryset_visible_to(user)))
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        _done, status = attempt(form, lambda: services.mentee_add(actor=user, programme=programme, **data))
        if status == 200:
            messages.success(request, _("%(name)s joined the programme.") % {"name": data["practitioner"].name})
            return HttpResponseRedirect(reverse("capability:training", args=[programme.public_id]) + "#mentees")
    return _training_page(request, programme, status, mentee_form=form, open_form="mentee")


def _mentee_page(
    request: HttpRequest, mentee: Mentee, status: int = 200, *, assessment_form: AssessmentForm | None = None
) -> HttpResponse:
    user = _user(request)
    programme = mentee.programme
    progress = selectors.mentee_progress(mentee, user=request.user)
    is_mentor = selectors.is_mentor(user, programme)
    can_assess = is_mentor or selectors.can_manage_training(user, programme)
    milestones = [row.milestone for row in progress.milestones]
    context = {
        "mentee": mentee,
        "programme": programme,
        "progress": progress,
        "today": timezone.localdate(),
        "is_mentor": is_mentor,
        "assessment_form": assessment_form
        or (
            AssessmentForm(milestones=milestones, initial={"assessed_on": timezone.localdate()})
            if can_assess and milestones
            else None
        ),
        "open_form": assessment_form is not None,
    }
    return render(request, "capability/mentee.html", context, status=status)


@login_required
def mentee_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    return _mentee_page(request, selectors.access_mentee(_user(request), str(public_id)))


@login_required
@require_POST
def assessment_add(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    mentee = selectors.access_mentee(user, str(public_id))
    programme = mentee.programme
    if not (selectors.is_mentor(user, programme) or selectors.can_manage_training(user, programme)):
        raise PermissionDenied(_("Only the mentor or the programme's managers assess its mentees."))
    milestones = list(programme.milestones.order_by("order", "id"))
    form = AssessmentForm(request.POST, milestones=milestones)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        milestone = next(m for m in milestones if str(m.public_id) == data["milestone"])
        _done, status = attempt(
            form,
            lambda: services.assessment_record(
                actor=user,
                mentee=mentee,
                milestone=milestone,
                assessed_on=data["assessed_on"],
                result=data["result"],
                score=data["score"],
                comment=data["comment"],
            ),
        )
        if status == 200:
            messages.success(request, _("The assessment is recorded."))
            return HttpResponseRedirect(reverse("capability:mentee", args=[mentee.public_id]) + "#milestones")
    return _mentee_page(request, mentee, status, assessment_form=form)


@login_required
@require_POST
def assessment_sign_off(request: HttpRequest, public_id: uuid.UUID, assessment_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    mentee = selectors.access_mentee(user, str(public_id))
    assessment = mentee.assessments.filter(public_id=assessment_id).first()
    if assessment is None:
        raise Http404(_("No such assessment."))
    try:
        services.assessment_sign_off(actor=user, assessment=assessment)
    except Conflict as exc:
        messages.error(request, str(exc))
        return _mentee_page(request, mentee, 409)
    messages.success(request, _("The assessment is signed off."))
    return HttpResponseRedirect(reverse("capability:mentee", args=[mentee.public_id]) + "#milestones")
