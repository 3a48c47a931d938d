"""The green-channel API (绿色通道): protocols, destination ranking, activation, the live boards'
cases, answers and time nodes, the monthly report, and the consortium's routing settings.

Handlers parse the request, authorise and read through ``green_selectors`` (and the referral
selectors a green case shares), write through ``green_services``. Refusals map to HTTP as for
referrals: a step the caller could never take is 403; a step not possible now is 409 with the
referral's current status, also when someone else answered first or the case has moved on to
another destination. Boards show a patient summary (sex, age, scores, findings), never who the
patient is; the case detail shows the patient as the referral detail does, each read audited.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import File, Query, Router, Schema, UploadedFile
from ninja import Status as Answer

from yilian.core.errors import Conflict
from yilian.core.permissions import Permission
from yilian.referrals import green_schemas as schemas
from yilian.referrals import green_selectors, green_services, protocols, routing, selectors, workflow
from yilian.referrals.api import institution_by_code, referring_institution
from yilian.referrals.models import (
    GreenCase,
    GreenNode,
    GreenProtocol,
    GreenProtocolVersion,
    GreenSettings,
    Referral,
    TravelTime,
)
from yilian.referrals.schemas import ConflictOut
from yilian.registry.api import ERRORS as REGISTRY_ERRORS
from yilian.registry.models import Consortium, ConsortiumMember, Institution, User
from yilian.registry.selectors import access_consortium, user_scope

router = Router(tags=["green channel"])

ERRORS: dict[int, type[Schema]] = {**REGISTRY_ERRORS, 409: ConflictOut}

GREEN_ACTIONS = ("accept", "decline", "forward", "cancel")
MAX_REPORT_MONTHS = 36
MAX_TRAVEL_FILE_BYTES = 5 * 1024 * 1024


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _ref(obj: Institution | Consortium) -> dict[str, str]:
    return {"code": obj.code, "name": obj.name}


# ----------------------------------------------------------------------------------------
# Shapes


def _window(window: protocols.Window, now: dt.datetime) -> dict[str, Any]:
    return {
        "code": window.code,
        "name": window.name,
        "capability": window.capability,
        "closes_at": window.closes_at,
        "extended_closes_at": window.extended_closes_at,
        "minutes_left": window.minutes_left(now),
        "extended_minutes_left": window.minutes_left(now, extended=True),
        "applies": window.applies,
    }


def _protocol_ref(version: GreenProtocolVersion) -> dict[str, Any]:
    protocol = version.protocol
    return {"code": protocol.code, "name_zh": protocol.name_zh, "name_en": protocol.name_en, "version": version.version}


def _node(node: GreenNode, definition: protocols.ProtocolDefinition, codes: dict[int, str]) -> dict[str, Any]:
    spec = definition.node(node.node)
    institution = None
    if node.institution_id is not None:
        institution = codes.get(node.institution_id) or Institution.objects.get(pk=node.institution_id).code
    return {
        "node": node.node,
        "name": spec.name if spec else node.node,
        "side": spec.side if spec else "",
        "at": node.at,
        "recorded_at": node.recorded_at,
        "recorded_by": node.recorded_by_label,
        "institution": institution,
        "note": node.note,
        "superseded_at": node.superseded_at,
    }


def _case_out(user: User, view: green_selectors.CaseView, now: dt.datetime | None = None) -> dict[str, Any]:
    """A case as the schemas show it (no patient identity)."""
    now = now or timezone.now()
    case, referral = view.case, view.referral
    codes = {referral.from_institution_id: referral.from_institution.code}
    codes.update({o.institution_id: o.institution.code for o in view.offers})
    current = [node for _spec, node in view.nodes_in_order() if node is not None]
    return {
        "id": referral.public_id,
        "number": referral.number,
        "status": referral.status,
        "protocol": _protocol_ref(case.protocol_version),
        "consortium": _ref(referral.consortium),
        "sender": _ref(referral.from_institution),
        "destination": _ref(referral.to_institution) if referral.to_institution else None,
        "direction": view.direction,
        "activated_at": case.activated_at,
        "onset_at": case.onset_at,
        "onset_unknown": case.onset_at is None,
        "eta_minutes": case.eta_minutes,
        "expected_arrival_at": view.eta_at,
        "patient_summary": view.patient_summary,
        "scores": case.scores,
        "findings": case.findings,
        "imaging_done": case.imaging_done,
        "imaging_result": case.imaging_result,
        "note": case.note,
        "windows": [_window(w, now) for w in view.windows],
        "offers": [
            {
                "institution": _ref(o.institution),
                "rank": o.rank,
                "eta_minutes": o.eta_minutes,
                "eta_basis": o.eta_basis,
                "offered_at": o.offered_at,
                "answer_due_at": o.answer_due_at,
                "outcome": o.outcome,
                "answered_at": o.answered_at,
                "reason": o.reason,
            }
            for o in sorted(view.offers, key=lambda o: (o.rank, o.offered_at))
        ],
        "nodes": [_node(n, view.definition, codes) for n in current],
        "node_history": [_node(n, view.definition, codes) for n in view.history],
        "metrics": [
            {
                "code": m.code,
                "name": m.name,
                "minutes": m.minutes,
                "target_minutes": m.target_minutes,
                "missed": m.missed,
            }
            for m in view.metrics
        ],
        "allowed_actions": [a.value for a in workflow.allowed_actions(user, referral) if a.value in GREEN_ACTIONS],
        "recordable_nodes": green_selectors.recordable_nodes(user, view),
    }


# ----------------------------------------------------------------------------------------
# Protocols


def _office_consortium_ids(user: User) -> frozenset[int] | None:
    """Consortia whose protocols the user runs (None: all, for a system administrator)."""
    scope = user_scope(user)
    if Permission.MANAGE_REFERRAL_ROUTING not in scope.permissions:
        return frozenset()
    return None if scope.is_global else scope.consortium_ids


def _protocols_visible(user: User) -> QuerySet[GreenProtocol]:
    """Active protocols of the user's consortia, and every protocol (retired ones too) of the
    consortia whose office they are."""
    office = _office_consortium_ids(user)
    q = Q(pk__in=green_selectors.protocols_for(user).values("pk"))
    if office is None:
        q = Q()
    elif office:
        q |= Q(consortium_id__in=office)
    return GreenProtocol.objects.filter(q).select_related("consortium").order_by("consortium__code", "position")


def _access_protocol(user: User, public_id: uuid.UUID) -> GreenProtocol:
    protocol = GreenProtocol.objects.select_related("consortium").filter(public_id=public_id).first()
    if protocol is None:
        raise Http404(_("No such protocol."))
    if not _protocols_visible(user).filter(pk=protocol.pk).exists():
        raise PermissionDenied(_("This protocol belongs to a consortium you are not part of."))
    return protocol


def _protocol_out(protocol: GreenProtocol, version: GreenProtocolVersion) -> dict[str, Any]:
    return {
        "id": protocol.public_id,
        "consortium": _ref(protocol.consortium),
        "code": protocol.code,
        "name_zh": protocol.name_zh,
        "name_en": protocol.name_en,
        "is_active": protocol.is_active,
        "position": protocol.position,
        "version": version.version,
        "note": version.note,
        "changed_at": version.created_at,
        "definition": version.definition,
    }


def _protocol_detail(protocol: GreenProtocol) -> dict[str, Any]:
    versions = list(protocol.versions.select_related("created_by").order_by("-version"))
    if not versions:
        raise ValidationError(_("The protocol has no version yet."))
    return {
        **_protocol_out(protocol, versions[0]),
        "versions": [
            {
                "version": v.version,
                "note": v.note,
                "created_at": v.created_at,
                "created_by": (v.created_by.display_name or v.created_by.get_username()) if v.created_by else None,
                "definition": v.definition,
            }
            for v in versions
        ],
    }


@router.get("/green/protocols", response={200: list[schemas.ProtocolOut], **ERRORS})
def green_protocol_list(request: HttpRequest, consortium: str = "") -> list[dict[str, Any]]:
    """The protocols the caller sees, each with its current version's full definition;
    `consortium` (a code) keeps one consortium's."""
    protocols_qs = _protocols_visible(_user(request))
    if consortium:
        protocols_qs = protocols_qs.filter(consortium__code=consortium)
    found = list(protocols_qs)
    latest: dict[int, GreenProtocolVersion] = {}
    for version in GreenProtocolVersion.objects.filter(protocol__in=found).order_by("protocol_id", "-version"):
        latest.setdefault(version.protocol_id, version)
    return [_protocol_out(p, latest[p.pk]) for p in found if p.pk in latest]


@router.get("/green/protocols/{public_id}", response={200: schemas.ProtocolDetailOut, **ERRORS})
def green_protocol_detail(request: HttpRequest, public_id: uuid.UUID) -> dict[str, Any]:
    """One protocol with every version, newest first."""
    return _protocol_detail(_access_protocol(_user(request), public_id))


@router.post(
    "/green/protocols/{public_id}/versions",
    response={201: schemas.ProtocolDetailOut, **ERRORS},
    summary="Revise a protocol (consortium office): a new version; cases already activated keep theirs",
)
def green_protocol_revise(request: HttpRequest, public_id: uuid.UUID, payload: schemas.ProtocolReviseIn) -> Answer[Any]:
    user = _user(request)
    protocol = _access_protocol(user, public_id)
    green_services.green_protocol_revise(
        actor=user,
        protocol=protocol,
        definition=payload.definition,
        note=payload.note,
        name_zh=payload.name_zh,
        name_en=payload.name_en,
        is_active=payload.is_active,
    )
    protocol.refresh_from_db()
    return Answer(201, _protocol_detail(protocol))


# ----------------------------------------------------------------------------------------
# Destinations and activation


def _sender(user: User, code: str) -> Institution:
    """The sending institution named, or the caller's only referring one."""
    return referring_institution(user, code, field="sender")


def _protocol(sender: Institution, code: str, consortium_code: str | None) -> GreenProtocol:
    """The protocol ``code`` of one of the sender's consortia (the one named, or the only one)."""
    today = timezone.localdate()
    member_of = (
        ConsortiumMember.objects.filter(institution=sender, joined_on__lte=today)
        .filter(Q(left_on__isnull=True) | Q(left_on__gte=today))
        .values("consortium_id")
    )
    if consortium_code:
        consortium = Consortium.objects.filter(code=consortium_code).first()
        if consortium is None:
            raise ValidationError({"consortium": [_("No consortium with code %(code)s.") % {"code": consortium_code}]})
        if not member_of.filter(consortium_id=consortium.pk).exists():
            message = _("%(institution)s is not a member of %(consortium)s.")
            raise ValidationError(
                {"consortium": [message % {"institution": sender.name, "consortium": consortium.name}]}
            )
        protocol = GreenProtocol.objects.select_related("consortium").filter(consortium=consortium, code=code).first()
        if protocol is None:
            message = _("%(consortium)s has no green-channel protocol “%(code)s”.")
            raise ValidationError({"protocol": [message % {"consortium": consortium.name, "code": code}]})
    else:
        found = list(
            GreenProtocol.objects.select_related("consortium")
            .filter(code=code, is_active=True, consortium_id__in=member_of)
            .order_by("consortium__code")
        )
        if not found:
            message = _("No consortium of %(institution)s has a green-channel protocol “%(code)s”.")
            raise ValidationError({"protocol": [message % {"institution": sender.name, "code": code}]})
        if len(found) > 1:
            message = _("%(institution)s belongs to several consortia with this protocol (%(codes)s): say which one.")
            codes = ", ".join(p.consortium.code for p in found)
            raise ValidationError({"consortium": [message % {"institution": sender.name, "codes": codes}]})
        protocol = found[0]
    if not protocol.is_active:
        raise ValidationError({"protocol": [_("This protocol is no longer in use.")]})
    return protocol


@router.post(
    "/green/destinations",
    response={200: schemas.DestinationsOut, **ERRORS},
    summary="Rank the destinations for a case as it would be activated now",
)
def green_destinations(request: HttpRequest, payload: schemas.DestinationsIn) -> dict[str, Any]:
    """Member institutions with the protocol's capabilities available now, the most preferred window
    they reach in time first, then by estimated arrival; with the case's windows and minutes left."""
    user = _user(request)
    sender = _sender(user, payload.sender or "")
    protocol = _protocol(sender, payload.protocol, payload.consortium)
    version = green_services.current_version(protocol)
    definition = protocols.parse(version.definition)
    now = timezone.now()
    onset_unknown = payload.onset_unknown or payload.onset_at is None
    _scores, findings = green_services.validate_case_inputs(
        definition,
        onset_at=payload.onset_at,
        onset_unknown=onset_unknown,
        scores={},
        findings=list(dict.fromkeys(payload.findings)),
        now=now,
    )
    onset_at = None if payload.onset_unknown else payload.onset_at
    ranked = green_services.rank_for(version=version, sender=sender, onset_at=onset_at, findings=findings, now=now)
    return {
        "at": now,
        "consortium": _ref(protocol.consortium),
        "sender": _ref(sender),
        "protocol": _protocol_ref(version),
        "windows": [_window(w, now) for w in protocols.windows(definition, onset_at=onset_at, findings=findings)],
        "destinations": [_destination(d, rank) for rank, d in enumerate(ranked, start=1)],
    }


def _destination(dest: routing.Destination, rank: int) -> dict[str, Any]:
    return {
        "institution": _ref(dest.institution),
        "rank": rank,
        "eta_minutes": dest.eta_minutes,
        "basis": dest.basis,
        "distance_km": None if dest.distance_km is None else round(dest.distance_km, 1),
        "arrival_at": dest.arrival_at,
        "inside_window": dest.inside_window,
        "best_window": dest.best_window,
        "must_leave_by": dest.must_leave_by,
        "reach": [
            {"code": r.code, "name": r.name, "reachable": r.reachable, "must_leave_by": r.must_leave_by}
            for r in dest.reach
        ],
    }


# The patient's fields as the patient services name them in their errors; located under ``patient.``.
_PATIENT_FIELDS = frozenset({"name", "sex", "approximate_age", "id_number", "birth_date", "phone", "address"})


@router.post(
    "/green/cases",
    response={201: schemas.GreenCaseOut, **ERRORS},
    summary="Activate a green channel: the case is offered to the chosen (or first ranked) destination",
)
def green_case_activate(request: HttpRequest, payload: schemas.ActivateIn) -> Answer[Any]:
    user = _user(request)
    sender = _sender(user, payload.sender or "")
    protocol = _protocol(sender, payload.protocol, payload.consortium)
    destination = institution_by_code(payload.destination, "destination") if payload.destination else None
    if payload.patient_id is not None:
        known = selectors.access_patient(user, str(payload.patient_id))
        # A record merged into another is treated as the person's current record.
        given = green_services.PatientGiven(patient=known.merged_into or known)
    else:
        assert payload.patient is not None  # the schema requires one of the two
        given = green_services.PatientGiven(
            name=payload.patient.name,
            sex=payload.patient.sex,
            approximate_age=payload.patient.approximate_age,
            id_number=payload.patient.id_number,
        )
    try:
        case = green_services.green_activate(
            actor=user,
            sender=sender,
            protocol=protocol,
            patient=given,
            onset_at=payload.onset_at,
            onset_unknown=payload.onset_unknown,
            scores={k: v for k, v in payload.scores.items() if v is not None},
            imaging_done=payload.imaging_done,
            findings=payload.findings,
            imaging_result=payload.imaging_result,
            note=payload.note,
            destination=destination,
            door_in_at=payload.door_in_at,
        )
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise ValidationError(
                {(f"patient.{k}" if k in _PATIENT_FIELDS else k): v for k, v in exc.message_dict.items()}
            ) from None
        raise
    view = green_selectors.access_green_case(user, str(case.referral.public_id))
    return Answer(201, _case_out(user, view))


# ----------------------------------------------------------------------------------------
# Boards and cases


@router.get("/green/boards", response={200: list[schemas.BoardOut], **ERRORS})
def green_board_list(request: HttpRequest) -> list[dict[str, Any]]:
    """The boards the caller may open: their hospitals', then their consortia's (office)."""
    return [
        {"key": s.key, "kind": s.kind, "code": s.obj.code, "name": s.obj.name}
        for s in green_selectors.board_scopes_for(_user(request))
    ]


@router.get("/green/cases", response={200: schemas.BoardCasesOut, **ERRORS})
def green_case_board(request: HttpRequest, board: str = "") -> dict[str, Any]:
    """The cases of a board (`board` is a key from /green/boards; default the caller's first): open
    cases and those activated in the last 24 hours, incoming cases waiting for an answer first.
    No patient identity."""
    user = _user(request)
    scope = green_selectors.board_scope(user, board.strip()[:100] or None)
    now = timezone.now()
    views = green_selectors.green_board(user, scope, now=now)
    return {
        "board": {"key": scope.key, "kind": scope.kind, "code": scope.obj.code, "name": scope.obj.name},
        "at": now,
        "cases": [_case_out(user, v, now) for v in views],
    }


@router.get("/green/cases/{public_id}", response={200: schemas.GreenCaseDetailOut, **ERRORS})
def green_case_detail(request: HttpRequest, public_id: uuid.UUID) -> dict[str, Any]:
    """The case with its patient unmasked; the read is audited."""
    user = _user(request)
    view = green_selectors.access_green_case(user, str(public_id))
    referral = view.referral
    patient = selectors.patient_identity(user, referral.patient, purpose=f"green case {referral.number}")
    return {**_case_out(user, view), "patient": patient}


def _case_for_step(user: User, public_id: uuid.UUID) -> green_selectors.CaseView:
    """The case to act on; a destination whose offer has moved on is told where the case is now (409)."""
    try:
        return green_selectors.access_green_case(user, str(public_id))
    except PermissionDenied:
        case = GreenCase.objects.filter(referral__public_id=public_id).first()
        moved = green_services.moved_on(user, case) if case is not None else None
        if moved is not None:
            raise moved from None
        raise


def _conflict(exc: Conflict, public_id: uuid.UUID) -> Answer[Any]:
    status = Referral.objects.filter(public_id=public_id).values_list("status", flat=True).first()
    return Answer(409, {"detail": str(exc), "status": status})


def _step(user: User, public_id: uuid.UUID, step: Callable[[GreenCase], object]) -> Answer[Any]:
    try:
        step(_case_for_step(user, public_id).case)
    except Conflict as exc:
        return _conflict(exc, public_id)
    return Answer(200, _case_out(user, green_selectors.access_green_case(user, str(public_id))))


@router.post("/green/cases/{public_id}/accept", response={200: schemas.GreenCaseOut, **ERRORS})
def green_case_accept(request: HttpRequest, public_id: uuid.UUID) -> Answer[Any]:
    """One tap by the destination holding the offer; the second of two gets 409."""
    user = _user(request)
    return _step(user, public_id, lambda case: green_services.green_accept(actor=user, case=case))


@router.post("/green/cases/{public_id}/decline", response={200: schemas.GreenDeclineOut, **ERRORS})
def green_case_decline(
    request: HttpRequest, public_id: uuid.UUID, payload: schemas.ReasonIn | None = None
) -> Answer[Any]:
    """Decline with a reason: the case is offered to the next-ranked destination (or, with none left,
    waits for the consortium office). Answers where it went."""
    user = _user(request)
    try:
        case = _case_for_step(user, public_id).case
        green_services.green_decline(actor=user, case=case, reason=payload.reason if payload else "")
    except Conflict as exc:
        return _conflict(exc, public_id)
    referral = Referral.objects.select_related("to_institution").get(pk=case.referral_id)
    return Answer(
        200,
        {
            "id": referral.public_id,
            "number": referral.number,
            "status": referral.status,
            "destination": _ref(referral.to_institution) if referral.to_institution else None,
        },
    )


@router.post("/green/cases/{public_id}/forward", response={200: schemas.GreenCaseOut, **ERRORS})
def green_case_forward(request: HttpRequest, public_id: uuid.UUID, payload: schemas.GreenForwardIn) -> Answer[Any]:
    """The consortium office offers the case to an institution of its choice (one that has what the
    protocol needs now); the pending offer is withdrawn."""
    user = _user(request)
    to = institution_by_code(payload.to_institution, "to_institution")
    return _step(
        user,
        public_id,
        lambda case: green_services.green_forward(actor=user, case=case, to_institution=to, reason=payload.reason),
    )


@router.post("/green/cases/{public_id}/cancel", response={200: schemas.GreenCaseOut, **ERRORS})
def green_case_cancel(
    request: HttpRequest, public_id: uuid.UUID, payload: schemas.ReasonIn | None = None
) -> Answer[Any]:
    user = _user(request)
    reason = payload.reason if payload else ""
    return _step(user, public_id, lambda case: green_services.green_cancel(actor=user, case=case, reason=reason))


@router.post("/green/cases/{public_id}/nodes", response={200: schemas.GreenCaseOut, **ERRORS})
def green_case_node(request: HttpRequest, public_id: uuid.UUID, payload: schemas.NodeIn) -> Answer[Any]:
    """Record a time node (now, or `at`); one already recorded is corrected only with
    `correction_reason` (409 otherwise), and the earlier value stays in `node_history`."""
    user = _user(request)
    return _step(
        user,
        public_id,
        lambda case: green_services.green_node_record(
            actor=user, case=case, node=payload.node, at=payload.at, correction_reason=payload.correction_reason
        ),
    )


# ----------------------------------------------------------------------------------------
# Report


def _month(text: str) -> dt.date:
    return dt.date(int(text[:4]), int(text[5:7]), 1)


def _months_before(first: dt.date, months: int) -> dt.date:
    index = first.year * 12 + first.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_end(first: dt.date) -> dt.date:
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def _report_row(row: green_selectors.ReportRow, month: str | None) -> dict[str, Any]:
    return {
        "institution": _ref(row.institution),
        "protocol": {"code": row.protocol_code, "name": row.protocol_name},
        "month": month,
        "cases": row.cases,
        "accepted_first": row.accepted_first,
        "metrics": [
            {
                "code": m.code,
                "name": m.name,
                "target_minutes": m.target_minutes,
                "n": m.n,
                "median": m.median,
                "p90": m.p90,
                "met": m.met,
                "compliance": m.compliance,
            }
            for m in row.metrics
        ],
    }


@router.get("/green/report", response={200: schemas.ReportOut, **ERRORS}, tags=["figures"])
def green_report(request: HttpRequest, query: Query[schemas.ReportQuery]) -> dict[str, Any]:
    """Per institution, protocol and month of activation: cases, cases accepted by the first
    destination offered, and for each metric n, median, 90th percentile and the share within target.
    Figures permission (health commission, consortium office, hospital administrators); no patients."""
    user = _user(request)
    if Permission.VIEW_REFERRAL_FIGURES not in user_scope(user).permissions:
        raise PermissionDenied(_("You may not see green-channel figures."))
    end = _month(query.to_month) if query.to_month else timezone.localdate().replace(day=1)
    start = _month(query.from_month) if query.from_month else _months_before(end, 11)
    if end < start:
        raise ValidationError({"to": [_("The end must come after the start.")]})
    if (end.year - start.year) * 12 + end.month - start.month >= MAX_REPORT_MONTHS:
        raise ValidationError({"from": [_("Ask for at most %(n)d months at a time.") % {"n": MAX_REPORT_MONTHS}]})
    institutions = None
    if query.institution:
        institution = institution_by_code(query.institution, "institution")
        if not green_selectors.report_institutions_for(user).filter(pk=institution.pk).exists():
            raise PermissionDenied(_("You may not see the figures of this institution."))
        institutions = [institution]
    rows = green_selectors.green_report(
        user,
        start=start,
        end=_month_end(end),
        institutions=institutions,
        protocol_code=query.protocol,
        by=query.by,
    )
    totals = green_selectors.report_totals(rows)
    return {
        "from_month": f"{start:%Y-%m}",
        "to_month": f"{end:%Y-%m}",
        "by": query.by,
        "rows": [_report_row(r, f"{r.month:%Y-%m}") for r in rows],
        "totals": [_report_row(t, None) for t in totals.values()],
    }


# ----------------------------------------------------------------------------------------
# Settings and travel times


def _settings_out(consortium: Consortium) -> dict[str, Any]:
    row = GreenSettings.objects.filter(consortium=consortium).first()
    return {
        "consortium": _ref(consortium),
        "road_factor": float(row.road_factor if row else routing.DEFAULT_ROAD_FACTOR),
        "average_speed_kmh": row.average_speed_kmh if row else routing.DEFAULT_SPEED_KMH,
        "offer_timeout_minutes": row.offer_timeout_minutes if row else green_services.DEFAULT_OFFER_TIMEOUT_MINUTES,
        "travel_times": TravelTime.objects.filter(consortium=consortium).count(),
    }


@router.get("/green/settings/{code}", response={200: schemas.SettingsOut, **ERRORS})
def green_settings(request: HttpRequest, code: str) -> dict[str, Any]:
    """How arrival is estimated without a travel-time matrix, and how long a destination has to answer."""
    return _settings_out(access_consortium(_user(request), code))


@router.put("/green/settings/{code}", response={200: schemas.SettingsOut, **ERRORS})
def green_settings_set(request: HttpRequest, code: str, payload: schemas.SettingsIn) -> dict[str, Any]:
    """The consortium office sets them; cases offered afterwards use them."""
    user = _user(request)
    consortium = access_consortium(user, code)
    green_services.green_settings_set(
        actor=user,
        consortium=consortium,
        road_factor=str(payload.road_factor),
        average_speed_kmh=payload.average_speed_kmh,
        offer_timeout_minutes=payload.offer_timeout_minutes,
    )
    return _settings_out(consortium)


@router.post("/green/travel-times/{code}", response={200: schemas.TravelImportOut, **ERRORS})
def green_travel_times_import(request: HttpRequest, code: str, file: File[UploadedFile]) -> dict[str, Any]:
    """The consortium office imports a travel-time matrix: CSV with the columns from, to (institution
    codes) and minutes (Chinese headers too; UTF-8 or GB18030). Lands whole or not at all; 400 lists
    the problems by row."""
    user = _user(request)
    consortium = access_consortium(user, code)
    if (file.size or 0) > MAX_TRAVEL_FILE_BYTES:
        raise ValidationError({"file": [_("The file is larger than %(mb)s MB.") % {"mb": MAX_TRAVEL_FILE_BYTES >> 20}]})
    result = green_services.travel_times_import(actor=user, consortium=consortium, data=file.read())
    return {"rows": result.rows, "created": result.created, "updated": result.updated}
