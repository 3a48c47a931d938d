"""Green-channel pages (绿色通道): activation at the sending hospital, the live board, the case page.

Views parse, call a service or selector, render. Every page works without JavaScript (forms post
and redirect; the board refreshes itself by a meta refresh); with it, the destinations are
re-ranked as the form changes, countdowns tick each second, and the board and the case page
follow the events stream (``green_stream``), fetching their scoped rows from the server.

Errors: invalid input is 400 with the form shown again, a refusal 403, and a step that collides
with what someone else did a moment earlier (accepted already, offer moved on) 409 with the
message; an HTMX request gets the message as plain text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from yilian.core.errors import Conflict
from yilian.core.permissions import Permission
from yilian.patients.models import Sex
from yilian.referrals import green_selectors, green_services, protocols, routing, selectors, workflow
from yilian.referrals import services as referral_services
from yilian.referrals.green_forms import (
    ActivationForm,
    GreenForwardForm,
    GreenReasonForm,
    NodeForm,
    ProtocolOption,
)
from yilian.referrals.green_selectors import BoardScope, CaseView
from yilian.referrals.models import GreenCase, GreenProtocolVersion, Status
from yilian.referrals.workflow import Action, Side
from yilian.registry.models import Consortium, Institution, User
from yilian.registry.selectors import user_scope
from yilian.web.forms import AttachmentForm, errors_to_form

# The steps of the green-channel table that these pages take (the others are on the referral page).
ACTIONS: dict[str, Action] = {
    "accept": Action.ACCEPT,
    "decline": Action.DECLINE,
    "forward": Action.FORWARD,
    "cancel": Action.CANCEL,
}
WAITING = (Status.SENT, Status.FORWARDED)
DONE = (Status.CANCELLED, Status.CLOSED, Status.DECLINED, Status.OUTCOME_RETURNED)

# Service error keys without a field of that name on the activation form, and where to show them.
_ACTIVATION_ERROR_FIELD = {"scores": "", "findings": "", "destination": "", "consortium": "protocol"}


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.boosted  # type: ignore[attr-defined]


def _plain(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _server_now() -> str:
    return timezone.now().isoformat()


# ----------------------------------------------------------------------------------------
# Activation


def _senders(user: User) -> list[Institution]:
    ids = user_scope(user).institution_ids_with(Permission.MANAGE_REFERRALS_SEND)
    return list(Institution.objects.filter(pk__in=ids).order_by("code"))


def _protocol_options(user: User) -> list[ProtocolOption]:
    latest = Prefetch("versions", queryset=GreenProtocolVersion.objects.order_by("-version"), to_attr="newest_first")
    out = []
    for protocol in (
        green_selectors.protocols_for(user).prefetch_related(latest).order_by("consortium__code", "position", "code")
    ):
        versions: list[GreenProtocolVersion] = getattr(protocol, "newest_first", [])
        if versions:
            out.append(ProtocolOption(protocol, versions[0], protocols.parse(versions[0].definition)))
    return out


def _activation_form(user: User, data: Any = None) -> ActivationForm:
    senders = _senders(user)
    if not senders:
        raise PermissionDenied(_("You may not refer patients."))
    options = _protocol_options(user)
    practitioner = getattr(user, "practitioner", None)
    home = next((i for i in senders if practitioner is not None and practitioner.institution_id == i.pk), senders[0])
    initial: dict[str, Any] = {"sender": home.code, "sex": Sex.UNKNOWN}
    if len(options) == 1:
        initial["protocol"] = options[0].key
    return ActivationForm(data, options=options, senders=senders, initial=initial)


@dataclass
class WindowRow:
    window: protocols.Window
    needs: str  # the finding the window needs, when it does not apply


@dataclass
class DestinationRow:
    destination: routing.Destination
    reach: list[tuple[WindowRow, routing.WindowReach | None]]


@dataclass
class Ranking:
    option: ProtocolOption | None
    windows: list[WindowRow] = field(default_factory=list)
    destinations: list[DestinationRow] = field(default_factory=list)
    onset_unknown: bool = False
    sender: Institution | None = None

    @property
    def first(self) -> DestinationRow | None:
        return self.destinations[0] if self.destinations else None


def _window_rows(definition: protocols.ProtocolDefinition, windows: list[protocols.Window]) -> list[WindowRow]:
    findings = {f.code: f.name for f in definition.findings}
    specs = {w.code: w for w in definition.windows}
    return [
        WindowRow(window=w, needs="" if w.applies else findings.get(specs[w.code].when_finding, "")) for w in windows
    ]


def _ranking(form: ActivationForm) -> Ranking:
    """The destinations for what the form holds so far (a form with errors too)."""
    if not form.is_bound:
        if not form.initial.get("protocol"):
            return Ranking(option=None)
        form = ActivationForm(dict(form.initial), options=form.options, senders=form.senders)
    form.is_valid()
    option = form.option
    sender = form.cleaned_data.get("sender")
    if option is None or sender is None:
        return Ranking(option=option, sender=sender)
    now = timezone.now()
    onset_at, unknown = form.onset(now)
    if onset_at is not None and timezone.is_naive(onset_at):
        onset_at = timezone.make_aware(onset_at)
    findings = form.findings()
    windows = protocols.windows(option.definition, onset_at=onset_at, findings=findings)
    rows = _window_rows(option.definition, windows)
    ranked = green_services.rank_for(
        version=option.version, sender=sender, onset_at=onset_at, findings=findings, now=now
    )
    destinations = []
    for dest in ranked:
        by_code = {r.code: r for r in dest.reach}
        destinations.append(
            DestinationRow(
                destination=dest, reach=[(row, by_code.get(row.window.code)) for row in rows if row.window.applies]
            )
        )
    return Ranking(option=option, windows=rows, destinations=destinations, onset_unknown=unknown, sender=sender)


def _grouped(options: list[ProtocolOption]) -> list[tuple[Consortium, list[ProtocolOption]]]:
    groups: dict[int, tuple[Consortium, list[ProtocolOption]]] = {}
    for option in options:
        consortium = option.protocol.consortium
        groups.setdefault(consortium.pk, (consortium, []))[1].append(option)
    return list(groups.values())


def _activation_context(form: ActivationForm) -> dict[str, Any]:
    groups = _grouped(form.options)
    blocks = [
        (
            o,
            [form[o.score_field(s.code)] for s in o.definition.scores],
            form[o.findings_field] if o.definition.findings else None,
        )
        for o in form.options
    ]
    return {
        "form": form,
        "groups": groups,
        "blocks": blocks,
        "several_consortia": len(groups) > 1,
        "ranking": _ranking(form),
        "chosen_key": getattr(form.bound_option(), "key", ""),
        "server_now": _server_now(),
        "utc_offset_minutes": int((timezone.localtime().utcoffset() or dt.timedelta()).total_seconds() // 60),
    }


@login_required
def activate(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method != "POST":
        form = _activation_form(user)
        return render(request, "referrals/green/activate.html", _activation_context(form))
    form = _activation_form(user, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        option = form.option
        assert option is not None  # the protocol field is required and checked against the options
        onset_at, unknown = form.onset()
        destination = None
        if data["destination"]:
            destination = Institution.objects.filter(code=data["destination"]).first()
            if destination is None:
                form.add_error(None, _("That destination is unknown; choose one from the list."))
        if not form.errors:
            try:
                case = green_services.green_activate(
                    actor=user,
                    sender=data["sender"],
                    protocol=option.protocol,
                    patient=green_services.PatientGiven(
                        name=data["name"],
                        sex=data["sex"] or Sex.UNKNOWN,
                        approximate_age=data["approximate_age"],
                        id_number=data["id_number"],
                    ),
                    onset_at=onset_at,
                    onset_unknown=unknown,
                    scores=form.scores(),
                    imaging_done=data["imaging_done"],
                    findings=form.findings(),
                    imaging_result=data["imaging_result"],
                    note=data["note"],
                    destination=destination,
                    door_in_at=data["door_in_at"],
                    attachments=request.FILES.getlist("attachments"),
                )
            except ValidationError as exc:
                errors_to_form(form, exc, _ACTIVATION_ERROR_FIELD)
            else:
                referral = case.referral
                messages.success(
                    request,
                    _("Green channel %(number)s sent to %(institution)s.")
                    % {"number": referral.number, "institution": referral.to_institution},
                )
                return HttpResponseRedirect(reverse("referrals:green_case", args=[referral.public_id]))
    return render(request, "referrals/green/activate.html", _activation_context(form), status=400)


@login_required
@require_GET
def destinations(request: HttpRequest) -> HttpResponse:
    """The destinations panel for the activation form as it stands (HTMX, on each change)."""
    form = _activation_form(_user(request), request.GET)
    context = {"ranking": _ranking(form), "oob": True, "server_now": _server_now()}
    return render(request, "referrals/green/_destinations.html", context)


# ----------------------------------------------------------------------------------------
# Live board


@dataclass
class BoardCard:
    view: CaseView
    group: str  # "waiting": this board must answer or route; "active"; "done"
    state: str  # "red", "amber", "green", "grey"
    phase: str
    can_accept: bool
    can_decline: bool
    can_route: bool
    # While the windows matter: until treatment has begun.
    running: tuple[Status, ...] = (Status.SENT, Status.FORWARDED, Status.ACCEPTED, Status.ARRIVED)

    @property
    def door_out(self) -> bool:
        return "door_out" in self.view.nodes

    @property
    def dido_target(self) -> int | None:
        """The door-in-door-out target in minutes (the time since door-in turns amber, then red)."""
        return next((m.target_minutes for m in self.view.metrics if m.code == protocols.DIDO), None)

    @property
    def dido_warn(self) -> int:
        return int((self.dido_target or 0) * 60 * 0.75)

    @property
    def dido_alarm(self) -> int:
        return (self.dido_target or 0) * 60


def _phase(view: CaseView) -> tuple[str, str]:
    """A sentence for where the case stands, and its colour."""
    referral = view.referral
    status = Status(referral.status)
    pending = view.pending_offer
    where = referral.to_institution.name if referral.to_institution else ""
    if status in WAITING:
        if pending is not None:
            return _("Offered to %(institution)s: waiting for an answer") % {"institution": where}, "amber"
        return _("No hospital left: the consortium office must route it"), "red"
    if status == Status.ACCEPTED:
        return _("Accepted by %(institution)s") % {"institution": where}, "green"
    if status in (Status.ARRIVED, Status.IN_TREATMENT):
        return _("At %(institution)s: %(status)s") % {"institution": where, "status": status.label}, "green"
    if status == Status.CANCELLED:
        return _("Cancelled"), "grey"
    return str(status.label), "grey"


def _card(user: User, scope: BoardScope, view: CaseView) -> BoardCard:
    referral = view.referral
    status = Status(referral.status)
    allowed = workflow.allowed_actions(user, referral) if status in WAITING else []
    pending = view.pending_offer
    phase, state = _phase(view)
    if scope.kind == "institution":
        here = pending is not None and pending.institution_id == scope.obj.pk and status in WAITING
    else:
        here = status in WAITING and referral.to_institution_id is None
    if here:
        state = "red"
    group = "waiting" if here else "done" if status in DONE else "active"
    return BoardCard(
        view=view,
        group=group,
        state=state,
        phase=phase,
        can_accept=here and Action.ACCEPT in allowed,
        can_decline=here and Action.DECLINE in allowed,
        can_route=Action.FORWARD in allowed,
    )


def _board_context(user: User, scope: BoardScope) -> dict[str, Any]:
    cards = [_card(user, scope, v) for v in green_selectors.green_board(user, scope)]
    return {
        "scope": scope,
        "cards": cards,
        "waiting": [c for c in cards if c.group == "waiting"],
        "active": [c for c in cards if c.group == "active"],
        "done": [c for c in cards if c.group == "done"],
        "server_now": _server_now(),
        "board_url": reverse("referrals:green_board") + f"?board={scope.key}",
    }


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    scope = green_selectors.board_scope(user, request.GET.get("board"))
    context = _board_context(user, scope)
    if _is_htmx(request):
        return render(request, "referrals/green/_board_rows.html", context)
    scopes = green_selectors.board_scopes_for(user)
    permissions = user_scope(user).permissions
    context |= {
        "scopes": scopes,
        "can_activate": bool(user_scope(user).institution_ids_with(Permission.MANAGE_REFERRALS_SEND)),
        "can_set_up": Permission.MANAGE_REFERRAL_ROUTING in permissions,
        "can_report": Permission.VIEW_REFERRAL_FIGURES in permissions,
    }
    return render(request, "referrals/green/board.html", context)


@login_required
@require_GET
def board_rows(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    scope = green_selectors.board_scope(user, request.GET.get("board"))
    return render(request, "referrals/green/_board_rows.html", _board_context(user, scope))


# ----------------------------------------------------------------------------------------
# Case page


def _events_key(user: User, view: CaseView) -> str:
    """The board whose stream carries this case's changes (the user's side of it)."""
    channels = set(green_services.channels_for(view.case))
    for scope in green_selectors.board_scopes_for(user):
        if scope.channel in channels:
            return scope.key
    return ""


def _forward_choices(view: CaseView) -> list[tuple[str, str]]:
    ranked = green_services.rank_for(
        version=view.case.protocol_version,
        sender=view.referral.from_institution,
        onset_at=view.case.onset_at,
        findings=list(view.case.findings),
    )
    out = []
    for dest in ranked:
        eta = _("%(minutes)s min") % {"minutes": dest.eta_minutes} if dest.eta_minutes is not None else "?"
        out.append((dest.institution.code, f"{dest.institution.name} · {eta}"))
    return out


def _action_forms(user: User, view: CaseView, bound: dict[str, Any]) -> list[dict[str, Any]]:
    referral = view.referral
    out = []
    for action in workflow.allowed_actions(user, referral):
        slug = next((s for s, a in ACTIONS.items() if a == action), None)
        if slug is None:
            continue
        form: Any = bound.get(slug)
        if form is None:
            if action == Action.FORWARD:
                form = GreenForwardForm(choices=_forward_choices(view))
            elif action in (Action.DECLINE, Action.CANCEL):
                form = GreenReasonForm()
        out.append({"slug": slug, "action": action, "form": form, "open": slug in bound})
    return out


@dataclass
class NodeRow:
    spec: protocols.NodeDef
    current: Any  # GreenNode | None
    earlier: list[Any]  # superseded GreenNode rows, newest first
    recordable: bool
    form: NodeForm | None


def _node_rows(user: User, view: CaseView, bound: NodeForm | None) -> list[NodeRow]:
    allowed = set(green_selectors.recordable_nodes(user, view))
    bound_code = bound.data.get("node") if bound is not None else None
    rows = []
    for spec, current in view.nodes_in_order():
        earlier = [n for n in reversed(view.history) if n.node == spec.code and n.superseded_at is not None]
        form = bound if bound_code == spec.code else None
        if form is None and spec.code in allowed:
            initial: dict[str, Any] = {"node": spec.code}
            if current is not None:
                initial["at"] = timezone.localtime(current.at).replace(second=0, microsecond=0)
            form = NodeForm(initial=initial, auto_id=f"id_{spec.code}_%s")
        rows.append(NodeRow(spec=spec, current=current, earlier=earlier, recordable=spec.code in allowed, form=form))
    return rows


def _live_context(
    user: User, view: CaseView, *, action_forms: dict[str, Any] | None = None, node_form: NodeForm | None = None
) -> dict[str, Any]:
    phase, state = _phase(view)
    definition = view.definition
    actions = _action_forms(user, view, action_forms or {})
    return {
        "v": view,
        "referral": view.referral,
        "case": view.case,
        "phase": phase,
        "state": state,
        "protocol": view.case.protocol_version.protocol,
        "version": view.case.protocol_version,
        "windows": _window_rows(definition, view.windows),
        "scores": [
            (s.name, s.labels[view.case.scores[s.code] - s.min] if s.labels else view.case.scores[s.code])
            for s in definition.scores
            if s.code in view.case.scores
        ],
        "findings": [f.name for f in definition.findings if f.code in view.case.findings],
        "offers": sorted(view.offers, key=lambda o: (o.offered_at, o.rank)),
        "nodes": _node_rows(user, view, node_form),
        "actions": [a for a in actions if a["slug"] != "cancel"],
        "cancel": next((a for a in actions if a["slug"] == "cancel"), None),
        "server_now": _server_now(),
        "pending": view.pending_offer,
    }


def _case_page(
    request: HttpRequest,
    user: User,
    view: CaseView,
    *,
    status: int = 200,
    action_forms: dict[str, Any] | None = None,
    node_form: NodeForm | None = None,
    attachment_form: AttachmentForm | None = None,
) -> HttpResponse:
    referral = view.referral
    patient = selectors.patient_identity(user, referral.patient, purpose=f"green channel {referral.number}")
    context = _live_context(user, view, action_forms=action_forms, node_form=node_form) | {
        "patient": patient,
        "age": patient.age,
        "events_key": _events_key(user, view),
        "attachments": list(referral.attachments.all()),
        "can_attach": referral.status not in workflow.TERMINAL
        and bool(workflow.sides_of(user, referral) & {Side.SENDER, Side.RECEIVER, Side.OFFICE}),
        "attachment_form": attachment_form or AttachmentForm(),
    }
    return render(request, "referrals/green/case.html", context, status=status)


@login_required
@require_POST
def files(request: HttpRequest, public_id: str) -> HttpResponse:
    """Add a file (images, ECG, letters) to the case; the referral's attachment rules apply."""
    user = _user(request)
    view = green_selectors.access_green_case(user, str(public_id))
    form = AttachmentForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            referral_services.referral_attach(
                actor=user,
                referral=view.referral,
                upload=form.cleaned_data["file"],
                description=form.cleaned_data["description"],
            )
        except ValidationError as exc:
            errors_to_form(form, exc)
        except PermissionDenied as exc:
            return _refused(request, exc)
        else:
            messages.success(request, _("File added."))
            return HttpResponseRedirect(reverse("referrals:green_case", args=[view.referral.public_id]) + "#g-files")
    return _case_page(request, user, view, status=400, attachment_form=form)


@login_required
@require_GET
def case(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    view = green_selectors.access_green_case(user, str(public_id))
    if _is_htmx(request):
        # The live part only (no patient identity, so no audit row for each refresh).
        return render(request, "referrals/green/_case_live.html", _live_context(user, view))
    return _case_page(request, user, view)


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def _collision(request: HttpRequest, user: User, public_id: str, message: str) -> HttpResponse:
    """409: the case page as it is now with the message, or the message alone when the case has
    moved out of the user's sight (or for the live board)."""
    if _is_htmx(request):
        return _plain(message, 409)
    try:
        view = green_selectors.access_green_case(user, public_id)
    except PermissionDenied:
        return render(request, "409.html", {"exception": message}, status=409)
    messages.warning(request, message)
    return _case_page(request, user, view, status=409)


def _refused(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    if _is_htmx(request):
        return _plain(str(exc), 403)
    raise exc


def _offered_case(public_id: str) -> GreenCase | None:
    """The case behind a public id, for an answer from a hospital that can no longer see it."""
    try:
        return (
            GreenCase.objects.select_related("referral", "protocol_version__protocol")
            .filter(referral__public_id=public_id, referral__green_channel=True)
            .first()
        )
    except ValidationError:  # not a UUID
        return None


@login_required
@require_POST
def act(request: HttpRequest, public_id: str, action: str) -> HttpResponse:
    user = _user(request)
    step = ACTIONS.get(action)
    if step is None:
        raise Http404(_("No such action."))
    view: CaseView | None = None
    try:
        view = green_selectors.access_green_case(user, str(public_id))
        case = view.case
    except PermissionDenied as refused:
        # A hospital the case has moved on from (declined elsewhere, re-offered after a time-out)
        # answering from a card it still had open: the service says where the case is now (409).
        stale = _offered_case(str(public_id)) if step in (Action.ACCEPT, Action.DECLINE) else None
        if stale is None:
            return _refused(request, refused)
        case = stale
    form: Any = None
    if step == Action.FORWARD:
        assert view is not None
        form = GreenForwardForm(request.POST, choices=_forward_choices(view))
    elif step in (Action.DECLINE, Action.CANCEL):
        form = GreenReasonForm(request.POST)
    if form is None or form.is_valid():
        data = form.cleaned_data if form is not None else {}
        try:
            if step == Action.ACCEPT:
                green_services.green_accept(actor=user, case=case)
            elif step == Action.DECLINE:
                green_services.green_decline(actor=user, case=case, reason=data["reason"])
            elif step == Action.CANCEL:
                green_services.green_cancel(actor=user, case=case, reason=data["reason"])
            else:
                target = Institution.objects.get(code=data["to_institution"])
                green_services.green_forward(actor=user, case=case, to_institution=target, reason=data["reason"])
        except ValidationError as exc:
            form = form or GreenReasonForm()
            errors_to_form(form, exc, {"to_institution": "to_institution"})
        except (Conflict, workflow.TransitionNotAllowed) as exc:
            return _collision(request, user, str(public_id), str(exc))
        except PermissionDenied as exc:
            return _refused(request, exc)
        else:
            if _is_htmx(request):
                return HttpResponse(status=204, headers={"HX-Trigger": "greenChanged"})
            messages.success(request, _("Done: %(action)s.") % {"action": step.label})
            case_url = reverse("referrals:green_case", args=[case.referral.public_id])
            return HttpResponseRedirect(_next_url(request, case_url))
    if _is_htmx(request):
        return _plain(" ".join(str(m) for errors in form.errors.values() for m in errors), 400)
    if view is None:
        raise PermissionDenied(_("This referral does not involve your institution."))
    return _case_page(request, user, view, status=400, action_forms={action: form})


@login_required
@require_POST
def node(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    view = green_selectors.access_green_case(user, str(public_id))
    form = NodeForm(request.POST, auto_id=f"id_{request.POST.get('node', '')[:30]}_%s")
    if form.is_valid():
        code = form.cleaned_data["node"]
        at: dt.datetime | None = form.cleaned_data["at"]
        reason: str = form.cleaned_data["reason"].strip()
        spec = view.definition.node(code)
        if spec is None:
            raise Http404(_("This protocol has no such time node."))
        if code in view.nodes and (at is not None or reason):
            # A correction: the time it should have been, and why. (A bare "record now" on a node
            # recorded meanwhile goes to the service, which says who recorded it when: 409.)
            if at is None:
                form.add_error("at", _("Enter the corrected time."))
            if not reason:
                form.add_error("reason", _("Give a reason for the correction."))
        if not form.errors:
            try:
                green_services.green_node_record(actor=user, case=view.case, node=code, at=at, correction_reason=reason)
            except ValidationError as exc:
                errors_to_form(form, exc)
            except (Conflict, workflow.TransitionNotAllowed) as exc:
                return _collision(request, user, str(public_id), str(exc))
            else:
                if _is_htmx(request):
                    return HttpResponse(status=204, headers={"HX-Trigger": "greenChanged"})
                messages.success(request, _("Recorded: %(node)s.") % {"node": spec.name})
                url = reverse("referrals:green_case", args=[view.referral.public_id])
                return HttpResponseRedirect(f"{url}#node-{code}")
    if _is_htmx(request):
        return _plain(" ".join(str(m) for errors in form.errors.values() for m in errors), 400)
    return _case_page(request, user, view, status=400, node_form=form)
