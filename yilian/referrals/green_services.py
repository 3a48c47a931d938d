"""Writes of the green channel (绿色通道): protocols, activation, offers, escalation, time nodes.

Domain rules enforced here:
- protocols are data per consortium; editing one writes a new version (checked by
  ``protocols.ProtocolDefinition``) and a case keeps the version it was activated with; only the
  consortium office edits them, and the travel settings and matrix;
- activation needs the right to refer at the sending hospital, a protocol of a consortium the
  sender belongs to now, last known well (not in the future, not more than 7 days back) or
  "unknown", scores within the protocol's ranges and only its imaging findings. The patient may be
  unidentified (sex and approximate age). The case goes to the chosen destination, which must be
  one the ranking offers (the needed capabilities available now), else to the first ranked;
- activation records the decision to transfer (now), the onset and, when given, the door-in time;
- a destination answers within the consortium's offer timeout (default 5 minutes). Accepting is
  one step; of two people accepting at once the second gets 409, and a destination whose offer
  has moved on is told where the case is now (409). Declining (with a reason) or no answer in
  time re-offers the case to the next-ranked destination not yet offered; with none left the case
  waits for the consortium office, which may offer it to any member institution. A time-out also
  tells the office. Exactly one offer is pending at a time (a database constraint), and the
  referral row lock orders every step on a case, so exactly one destination ends up holding it;
- time nodes are recorded by the side the protocol names (sender, receiver, either); a node
  already recorded is corrected with a reason, and the earlier value stays in history;
  recording arrival at the receiving hospital moves the referral to "arrived";
- every write is audited in its transaction, and announced after commit to the live boards
  (events bus), in-app notifications and webhooks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core import events as bus
from yilian.core.audit import audit_record
from yilian.core.errors import Conflict
from yilian.core.files import inspect_upload
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.patients import services as patient_services
from yilian.patients.models import Patient, Sex
from yilian.referrals import protocols, routing, workflow
from yilian.referrals.models import (
    Direction,
    GreenCase,
    GreenNode,
    GreenOffer,
    GreenProtocol,
    GreenProtocolVersion,
    GreenSettings,
    OfferOutcome,
    Referral,
    RequestedService,
    Status,
    TravelTime,
    Urgency,
)
from yilian.referrals.services import (
    ATTACHMENT_MAX_BYTES,
    ATTACHMENTS_PER_REFERRAL,
    _new_number,
    referral_attach,
)
from yilian.referrals.workflow import Action, Side
from yilian.registry.models import Consortium, ConsortiumMember, Institution, User
from yilian.registry.selectors import user_scope

log = logging.getLogger("yilian.green")

DEFAULT_OFFER_TIMEOUT_MINUTES = 5
ONSET_MAX_AGE = dt.timedelta(days=7)
FUTURE_SLACK = dt.timedelta(minutes=2)  # phone clocks drift
SWEEP_BATCH = 200
MAX_ROW_ERRORS = 50  # a travel-time file's problems listed one by one; beyond, how many more
ACTIVE_STATUSES = (Status.SENT, Status.FORWARDED, Status.ACCEPTED, Status.ARRIVED, Status.IN_TREATMENT)


# --- protocols and settings -------------------------------------------------------------------


def _require_office(actor: User, consortium: Consortium) -> None:
    scope = user_scope(actor)
    if Permission.MANAGE_REFERRAL_ROUTING not in scope.permissions or not (
        scope.is_global or consortium.pk in scope.consortium_ids
    ):
        raise PermissionDenied(_("Only the consortium office sets the green channel up."))


def green_protocols_install_defaults(*, consortium: Consortium, actor: User | None = None) -> list[GreenProtocol]:
    """Give the consortium the default protocols it does not have yet (version 1 each)."""
    out = []
    now = timezone.now()
    with transaction.atomic():
        have = set(GreenProtocol.objects.filter(consortium=consortium).values_list("code", flat=True))
        for position, (code, spec) in enumerate(protocols.DEFAULT_PROTOCOLS.items()):
            if code in have:
                continue
            protocol = GreenProtocol.objects.create(
                consortium=consortium, code=code, name_zh=spec["name_zh"], name_en=spec["name_en"], position=position
            )
            GreenProtocolVersion.objects.create(
                protocol=protocol, version=1, definition=spec["definition"], created_at=now, created_by=actor,
                note="默认方案 / default protocol",
            )  # fmt: skip
            audit_record(actor=actor, action=AuditAction.CREATE, obj=protocol, changes={"code": code, "version": 1})
            out.append(protocol)
    return out


def current_version(protocol: GreenProtocol) -> GreenProtocolVersion:
    version = protocol.versions.order_by("-version").first()
    if version is None:
        raise ValidationError(_("The protocol has no version yet."))
    return version


def green_protocol_revise(
    *,
    actor: User,
    protocol: GreenProtocol,
    definition: dict[str, Any],
    note: str,
    name_zh: str | None = None,
    name_en: str | None = None,
    is_active: bool | None = None,
) -> GreenProtocolVersion:
    """A new version of the protocol; cases already activated keep theirs."""
    _require_office(actor, protocol.consortium)
    errors = protocols.definition_errors(definition)
    if errors:
        raise ValidationError({"definition": errors})
    note = note.strip()
    if not note:
        raise ValidationError({"note": _("Say what changed in this version.")})
    with transaction.atomic():
        locked = GreenProtocol.objects.select_for_update().get(pk=protocol.pk)
        if name_zh is not None and name_zh.strip():
            locked.name_zh = name_zh.strip()[:60]
        if name_en is not None and name_en.strip():
            locked.name_en = name_en.strip()[:80]
        if is_active is not None:
            locked.is_active = is_active
        locked.save()
        last = locked.versions.aggregate(v=Max("version"))["v"] or 0
        version = GreenProtocolVersion.objects.create(
            protocol=locked,
            version=last + 1,
            definition=protocols.parse(definition).model_dump(mode="json"),
            note=note[:300],
            created_at=timezone.now(),
            created_by=actor,
        )
        audit_record(
            actor=actor, action=AuditAction.UPDATE, obj=locked, changes={"version": version.version, "note": note}
        )
    return version


def green_settings_set(
    *,
    actor: User,
    consortium: Consortium,
    road_factor: Decimal | float | str,
    average_speed_kmh: int,
    offer_timeout_minutes: int,
) -> GreenSettings:
    _require_office(actor, consortium)
    try:
        factor = Decimal(str(road_factor)).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise ValidationError({"road_factor": _("Enter a number such as 1.35.")}) from None
    with transaction.atomic():
        row, _created = GreenSettings.objects.select_for_update().get_or_create(consortium=consortium)
        row.road_factor = factor
        row.average_speed_kmh = average_speed_kmh
        row.offer_timeout_minutes = offer_timeout_minutes
        row.full_clean(exclude=["consortium"])
        row.save()
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=row,
            changes={
                "road_factor": str(factor),
                "average_speed_kmh": average_speed_kmh,
                "offer_timeout_minutes": offer_timeout_minutes,
            },
        )
    return row


def offer_timeout(consortium_id: int) -> dt.timedelta:
    minutes = (
        GreenSettings.objects.filter(consortium_id=consortium_id)
        .values_list("offer_timeout_minutes", flat=True)
        .first()
    )
    return dt.timedelta(minutes=minutes or DEFAULT_OFFER_TIMEOUT_MINUTES)


TRAVEL_HEADERS = {
    "from": ("from", "from_institution", "出发机构", "出发机构代码", "起点"),
    "to": ("to", "to_institution", "到达机构", "到达机构代码", "终点"),
    "minutes": ("minutes", "travel_minutes", "分钟", "用时", "用时（分钟）", "用时(分钟)"),
}


@dataclass
class TravelImport:
    rows: int
    created: int
    updated: int


def travel_times_import(*, actor: User, consortium: Consortium, data: bytes) -> TravelImport:
    """Import a travel-time matrix (CSV: from institution code, to institution code, minutes;
    Chinese or English headers; UTF-8 or GB18030). It lands whole or not at all; every problem
    is reported with its row number."""
    _require_office(actor, consortium)
    text = None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        raise ValidationError({"file": _("The file is neither UTF-8 nor GB18030 text.")})
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValidationError(
            {"file": _("The file is not a readable CSV table (%(error)s).") % {"error": exc}}
        ) from None
    header = [h.strip().lower() for h in (table[0] if table else [])]
    columns: dict[str, int] = {}
    for key, names in TRAVEL_HEADERS.items():
        for i, h in enumerate(header):
            if h in names:
                columns[key] = i
    missing = [TRAVEL_HEADERS[k][0] for k in TRAVEL_HEADERS if k not in columns]
    if missing:
        raise ValidationError(
            {"file": _("Missing column(s): %(columns)s. Expected from, to, minutes.") % {"columns": ", ".join(missing)}}
        )
    members = {
        code: pk
        for code, pk in ConsortiumMember.objects.filter(consortium=consortium, left_on__isnull=True).values_list(
            "institution__code", "institution_id"
        )
    }
    errors: list[str] = []
    pairs: dict[tuple[int, int], int] = {}
    for n, row in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            a, b, m = (row[columns[k]].strip() for k in ("from", "to", "minutes"))
        except IndexError:
            errors.append(_("Row %(row)s: too few columns.") % {"row": n})
            continue
        problems = []
        for code in (a, b):
            if code not in members:
                problems.append(_("%(code)s is not a member institution of the consortium") % {"code": code or "∅"})
        try:
            minutes = int(float(m))
            if not 1 <= minutes <= 24 * 60:
                raise ValueError
        except (ValueError, OverflowError):
            problems.append(_("minutes must be a whole number from 1 to 1440, not “%(value)s”") % {"value": m})
            minutes = 0
        if a and a == b:
            problems.append(_("from and to are the same institution"))
        if problems:
            errors.append(_("Row %(row)s: %(problems)s.") % {"row": n, "problems": "; ".join(problems)})
            continue
        pairs[(members[a], members[b])] = minutes
    if errors:
        shown = errors[:MAX_ROW_ERRORS]
        if len(errors) > MAX_ROW_ERRORS:
            shown.append(_("…and %(n)s more rows with problems.") % {"n": len(errors) - MAX_ROW_ERRORS})
        raise ValidationError({"file": shown})
    if not pairs:
        raise ValidationError({"file": _("The file has no rows.")})
    now = timezone.now()
    created = updated = 0
    with transaction.atomic():
        existing = {
            (r.from_institution_id, r.to_institution_id): r
            for r in TravelTime.objects.select_for_update().filter(consortium=consortium)
        }
        new: list[TravelTime] = []
        for (a_id, b_id), minutes in pairs.items():
            known = existing.get((a_id, b_id))
            if known is None:
                new.append(
                    TravelTime(
                        consortium=consortium, from_institution_id=a_id, to_institution_id=b_id, minutes=minutes,
                        imported_at=now,
                    )
                )  # fmt: skip
            elif known.minutes != minutes:
                known.minutes, known.imported_at = minutes, now
                known.save(update_fields=["minutes", "imported_at"])
                updated += 1
        TravelTime.objects.bulk_create(new)
        created = len(new)
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=consortium,
            changes={"travel_times": {"rows": len(pairs), "created": created, "updated": updated}},
        )
    return TravelImport(rows=len(pairs), created=created, updated=updated)


# --- activation ---------------------------------------------------------------------------------


@dataclass
class PatientGiven:
    """The patient at activation: an existing record, or what is known now (possibly only sex and age)."""

    patient: Patient | None = None
    name: str = ""
    sex: str = Sex.UNKNOWN
    approximate_age: int | None = None
    id_number: str = ""


def validate_case_inputs(
    definition: protocols.ProtocolDefinition,
    *,
    onset_at: dt.datetime | None,
    onset_unknown: bool,
    scores: dict[str, Any],
    findings: list[str],
    now: dt.datetime,
) -> tuple[dict[str, int], list[str]]:
    errors: dict[str, list[str]] = {}
    if onset_at is None and not onset_unknown:
        errors["onset_at"] = [_("Enter the time last known well, or tick “unknown”.")]
    if onset_at is not None:
        if onset_at > now + FUTURE_SLACK:
            errors["onset_at"] = [_("The time last known well cannot be in the future.")]
        elif onset_at < now - ONSET_MAX_AGE:
            errors["onset_at"] = [_("The time last known well is more than 7 days ago; check the date.")]
    clean_scores: dict[str, int] = {}
    known_scores = {s.code: s for s in definition.scores}
    for code, value in scores.items():
        if value in (None, ""):
            continue
        score = known_scores.get(code)
        if score is None:
            errors.setdefault("scores", []).append(_("This protocol has no score “%(code)s”.") % {"code": code})
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = score.min - 1
        if not score.min <= number <= score.max:
            errors.setdefault("scores", []).append(
                _("%(score)s must be from %(min)s to %(max)s.")
                % {"score": score.name, "min": score.min, "max": score.max}
            )
            continue
        clean_scores[code] = number
    known_findings = {f.code for f in definition.findings}
    unknown = [f for f in findings if f not in known_findings]
    if unknown:
        errors["findings"] = [_("This protocol has no finding “%(code)s”.") % {"code": ", ".join(unknown)}]
    if errors:
        raise ValidationError(errors)
    return clean_scores, [f.code for f in definition.findings if f.code in findings]


def _patient_for(actor: User, sender: Institution, given: PatientGiven) -> Patient:
    if given.patient is not None:
        return given.patient
    if given.approximate_age is not None and not 0 <= given.approximate_age <= 120:
        raise ValidationError({"approximate_age": _("Enter an age from 0 to 120.")})
    name = given.name.strip() or _("Unidentified (%(sex)s, about %(age)s)") % {
        "sex": Sex(given.sex).label if given.sex in Sex.values else Sex.UNKNOWN.label,
        "age": given.approximate_age if given.approximate_age is not None else "?",
    }
    return patient_services.patient_register(
        actor=actor,
        institution=sender,
        name=name[:60],
        sex=given.sex if given.sex in Sex.values else Sex.UNKNOWN,
        approximate_age=given.approximate_age,
        id_number=given.id_number,
    )


def rank_for(
    *,
    version: GreenProtocolVersion,
    sender: Institution,
    onset_at: dt.datetime | None,
    findings: list[str],
    now: dt.datetime | None = None,
    exclude: Iterable[int] = (),
) -> list[routing.Destination]:
    """The destinations for a case as it would be activated now (also what the form shows)."""
    now = now or timezone.now()
    definition = protocols.parse(version.definition)
    wins = protocols.windows(definition, onset_at=onset_at, findings=findings)
    return routing.rank_for_case(
        protocol=definition,
        windows=wins,
        consortium_id=version.protocol.consortium_id,
        sender=sender,
        now=now,
        exclude=exclude,
    )


def green_activate(
    *,
    actor: User,
    sender: Institution,
    protocol: GreenProtocol,
    patient: PatientGiven,
    onset_at: dt.datetime | None,
    onset_unknown: bool = False,
    scores: dict[str, Any] | None = None,
    imaging_done: bool = False,
    findings: Iterable[str] = (),
    imaging_result: str = "",
    note: str = "",
    destination: Institution | None = None,
    door_in_at: dt.datetime | None = None,
    attachments: Sequence[UploadedFile] = (),
    now: dt.datetime | None = None,
) -> GreenCase:
    """Open a green channel: create the referral and its case, and offer it to the destination.

    ``attachments`` (CT/CTA images, ECG, letters: PDF, PNG/JPEG or DICOM) are checked before
    anything is written and stored with the case in the same transaction."""
    now = now or timezone.now()
    onset_at, door_in_at = _aware(onset_at), _aware(door_in_at)
    scope = user_scope(actor)
    if sender.pk not in scope.institution_ids_with(Permission.MANAGE_REFERRALS_SEND):
        raise PermissionDenied(_("You may not refer patients from %(institution)s.") % {"institution": sender.name})
    if not protocol.is_active:
        raise ValidationError({"protocol": _("This protocol is no longer in use.")})
    consortium = protocol.consortium
    on = timezone.localdate(now)
    if not ConsortiumMember.objects.filter(
        Q(left_on__isnull=True) | Q(left_on__gte=on), consortium=consortium, institution=sender, joined_on__lte=on
    ).exists():
        raise ValidationError(
            {"protocol": _("%(institution)s is not a member of %(consortium)s.")
             % {"institution": sender.name, "consortium": consortium.name}}
        )  # fmt: skip
    version = current_version(protocol)
    definition = protocols.parse(version.definition)
    finding_list = list(dict.fromkeys(findings))
    clean_scores, finding_list = validate_case_inputs(
        definition, onset_at=onset_at, onset_unknown=onset_unknown, scores=scores or {}, findings=finding_list, now=now
    )
    if onset_unknown:
        onset_at = None
    if len(attachments) > ATTACHMENTS_PER_REFERRAL:
        raise ValidationError(
            {"attachments": _("At most %(n)s files can be attached.") % {"n": ATTACHMENTS_PER_REFERRAL}}
        )
    for upload in attachments:
        try:
            inspect_upload(upload, max_bytes=ATTACHMENT_MAX_BYTES)
        except ValidationError as exc:
            raise ValidationError({"attachments": [f"{upload.name}: {m}" for m in exc.messages]}) from None
    if door_in_at is not None and door_in_at > now + FUTURE_SLACK:
        raise ValidationError({"door_in_at": _("The door-in time cannot be in the future.")})
    ranked = rank_for(version=version, sender=sender, onset_at=onset_at, findings=finding_list, now=now)
    if not ranked:
        raise ValidationError(
            {"destination": _("No member institution has %(needs)s available now. Call the consortium office.")
             % {"needs": _capability_names(definition.capabilities)}}
        )  # fmt: skip
    chosen = ranked[0]
    if destination is not None:
        match = next((d for d in ranked if d.institution.pk == destination.pk), None)
        if match is None:
            raise ValidationError(
                {"destination": _("%(institution)s cannot take this case now: it lacks %(needs)s at this hour.")
                 % {"institution": destination.name, "needs": _capability_names(definition.capabilities)}}
            )  # fmt: skip
        chosen = match
    timeout = offer_timeout(consortium.pk)
    with transaction.atomic():
        person = _patient_for(actor, sender, patient)
        practitioner = getattr(actor, "practitioner", None)
        referral = Referral.objects.create(
            number=_new_number(now),
            status=Status.DRAFT,
            direction=Direction.UP,
            urgency=Urgency.URGENT,
            green_channel=True,
            consortium=consortium,
            patient=person,
            from_institution=sender,
            from_practitioner=practitioner if practitioner and practitioner.institution_id == sender.pk else None,
            to_institution=chosen.institution,
            created_by=actor,
            reason=(f"{protocol.name_zh} / {protocol.name_en}" + (f"\n{note.strip()}" if note.strip() else ""))[:2000],
            requested_service=RequestedService.PROCEDURE,
            diagnosis_code=definition.diagnosis_code,
            diagnosis_name=definition.diagnosis_zh,
            key_findings=imaging_result.strip()[:4000],
        )
        case = GreenCase.objects.create(
            referral=referral,
            protocol_version=version,
            onset_at=onset_at,
            scores=clean_scores,
            imaging_done=imaging_done or bool(finding_list),
            findings=finding_list,
            imaging_result=imaging_result.strip()[:300],
            note=note.strip()[:2000],
            activated_at=now,
            eta_minutes=chosen.eta_minutes,
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=case,
            changes={"protocol": protocol.code, "version": version.version, "referral": referral.number},
        )
        _offer(case, chosen, rank=1, now=now, timeout=timeout)

        def effect(r: Referral, side: Side) -> dict[str, Any]:
            r.sent_at = now
            return {
                "protocol": protocol.code,
                "to_institution": chosen.institution.code,
                "eta_minutes": chosen.eta_minutes,
            }

        workflow.apply(referral_id=referral.pk, action=Action.SEND, actor=actor, effect=effect, at=now)
        label = actor.display_name if hasattr(actor, "display_name") else actor.get_username()
        if onset_at is not None and definition.node("onset"):
            _node_write(case, "onset", onset_at, actor=actor, label=label, institution=sender, now=now)
        if door_in_at is not None and definition.node("door_in"):
            _node_write(case, "door_in", door_in_at, actor=actor, label=label, institution=sender, now=now)
        if definition.node("decision"):
            _node_write(case, "decision", now, actor=actor, label=label, institution=sender, now=now)
        for upload in attachments:
            referral_attach(actor=actor, referral=referral, upload=upload)
        _broadcast(case, "activated")
    return case


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """A time given without a zone is read in the consortium's (the current) time zone."""
    if moment is not None and timezone.is_naive(moment):
        return timezone.make_aware(moment)
    return moment


def _capability_names(kinds: list[str]) -> str:
    from yilian.registry.models import CapabilityKind

    return "、".join(str(CapabilityKind(k).label) for k in kinds) or "—"


def _offer(
    case: GreenCase, dest: routing.Destination, *, rank: int, now: dt.datetime, timeout: dt.timedelta
) -> GreenOffer:
    return GreenOffer.objects.create(
        case=case,
        institution=dest.institution,
        rank=rank,
        eta_minutes=dest.eta_minutes,
        eta_basis=dest.basis,
        offered_at=now,
        answer_due_at=now + timeout,
    )


def _pending(case: GreenCase) -> GreenOffer | None:
    return GreenOffer.objects.select_for_update().filter(case=case, outcome=OfferOutcome.PENDING).first()


def _close_pending(
    case: GreenCase, outcome: OfferOutcome, *, now: dt.datetime, actor: User | None, reason: str = ""
) -> GreenOffer | None:
    """Close the case's pending offer (if any) with ``outcome``; inside the referral's lock."""
    offer = _pending(case)
    if offer is not None:
        offer.outcome, offer.answered_at, offer.answered_by = outcome, now, actor
        offer.reason = reason.strip()[:500]
        offer.save(update_fields=["outcome", "answered_at", "answered_by", "reason"])
    return offer


def _answer(
    actor: User, case: GreenCase, action: Action, effect: workflow.Effect, reason: str, now: dt.datetime
) -> None:
    """A destination's answer; one whose offer has moved on is told where the case is now (409)."""
    try:
        workflow.apply(referral_id=case.referral_id, action=action, actor=actor, reason=reason, effect=effect, at=now)
    except PermissionDenied:
        moved = moved_on(actor, case)
        if moved is not None:
            raise moved from None
        raise


# --- answers --------------------------------------------------------------------------------------


def case_of(referral: Referral) -> GreenCase:
    return GreenCase.objects.select_related("protocol_version__protocol", "referral").get(referral=referral)


def moved_on(actor: User, case: GreenCase) -> Conflict | None:
    """A conflict naming where the case is now, when the actor's institution's offer has passed."""
    referral = Referral.objects.select_related("to_institution").get(pk=case.referral_id)
    mine = user_scope(actor).institution_ids_with(Permission.MANAGE_REFERRALS_RECEIVE)
    if referral.to_institution_id in mine:
        return None
    if not GreenOffer.objects.filter(case=case, institution_id__in=mine).exists():
        return None
    where = referral.to_institution.name if referral.to_institution else _("the consortium office")
    return Conflict(
        _("This case is no longer offered to your hospital: it is now with %(where)s (%(status)s).")
        % {"where": where, "status": Status(referral.status).label}
    )


def green_accept(*, actor: User, case: GreenCase, now: dt.datetime | None = None) -> GreenCase:
    now = now or timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        offer = _pending(case)
        if offer is None or offer.institution_id != r.to_institution_id:
            raise Conflict(_("This case has no open offer to your hospital."))
        offer.outcome, offer.answered_at, offer.answered_by = OfferOutcome.ACCEPTED, now, actor
        offer.save(update_fields=["outcome", "answered_at", "answered_by"])
        r.decided_at = now
        return {"offer_rank": offer.rank, "answer_seconds": int((now - offer.offered_at).total_seconds())}

    _answer(actor, case, Action.ACCEPT, effect, "", now)
    _broadcast(case, "accepted")
    return case


def _reoffer(
    case: GreenCase, r: Referral, *, now: dt.datetime, outcome: OfferOutcome, actor: User | None, reason: str
) -> dict[str, Any]:
    """Close the pending offer with ``outcome`` and offer the case to the next-ranked destination
    not yet offered (or to nobody: the office routes). Runs inside the referral's lock.

    The step's data names institutions ``from_institution``/``to_institution``: ``workflow.apply``
    merges it into the audit row, whose ``from``/``to`` are the statuses."""
    offer = _close_pending(case, outcome, now=now, actor=actor, reason=reason)
    offered = set(GreenOffer.objects.filter(case=case).values_list("institution_id", flat=True))
    ranked = rank_for(
        version=case.protocol_version,
        sender=r.from_institution,
        onset_at=case.onset_at,
        findings=list(case.findings),
        now=now,
        exclude=offered,
    )
    rank = len(offered) + 1
    if ranked:
        nxt = ranked[0]
        _offer(case, nxt, rank=rank, now=now, timeout=offer_timeout(r.consortium_id))
        r.to_institution = nxt.institution
        case.eta_minutes = nxt.eta_minutes
        case.save(update_fields=["eta_minutes", "updated_at"])
        return {
            "from_institution": offer.institution.code if offer else "",
            "to_institution": nxt.institution.code,
            "rank": rank,
        }
    r.to_institution = None
    return {"from_institution": offer.institution.code if offer else "", "to_institution": "", "rank": rank}


def green_decline(*, actor: User, case: GreenCase, reason: str, now: dt.datetime | None = None) -> GreenCase:
    now = now or timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        return _reoffer(case, r, now=now, outcome=OfferOutcome.DECLINED, actor=actor, reason=reason.strip())

    _answer(actor, case, Action.DECLINE, effect, reason, now)
    _broadcast(case, "declined")
    return case


def green_forward(
    *, actor: User, case: GreenCase, to_institution: Institution, reason: str, now: dt.datetime | None = None
) -> GreenCase:
    """The office offers the case to an institution of its choice (e.g. after every destination declined)."""
    now = now or timezone.now()
    referral = case.referral
    if to_institution.pk == referral.from_institution_id:
        raise ValidationError({"to_institution": _("The case cannot go back to the sending hospital.")})
    ranked = rank_for(
        version=case.protocol_version,
        sender=referral.from_institution,
        onset_at=case.onset_at,
        findings=list(case.findings),
        now=now,
    )
    dest = next((d for d in ranked if d.institution.pk == to_institution.pk), None)
    if dest is None:
        raise ValidationError(
            {"to_institution": _("%(institution)s lacks what this protocol needs at this hour.")
             % {"institution": to_institution.name}}
        )  # fmt: skip

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        _close_pending(case, OfferOutcome.WITHDRAWN, now=now, actor=actor, reason=reason)
        rank = GreenOffer.objects.filter(case=case).count() + 1
        _offer(case, dest, rank=rank, now=now, timeout=offer_timeout(r.consortium_id))
        r.to_institution = to_institution
        case.eta_minutes = dest.eta_minutes
        case.save(update_fields=["eta_minutes", "updated_at"])
        return {"to_institution": to_institution.code, "rank": rank}

    workflow.apply(
        referral_id=case.referral_id, action=Action.FORWARD, actor=actor, reason=reason, effect=effect, at=now
    )
    _broadcast(case, "offered")
    return case


def green_cancel(*, actor: User, case: GreenCase, reason: str, now: dt.datetime | None = None) -> GreenCase:
    now = now or timezone.now()

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        _close_pending(case, OfferOutcome.WITHDRAWN, now=now, actor=actor, reason=reason)
        return {}

    workflow.apply(
        referral_id=case.referral_id, action=Action.CANCEL, actor=actor, reason=reason, effect=effect, at=now
    )
    _broadcast(case, "cancelled")
    return case


@dataclass
class GreenSweepReport:
    escalated: int = 0
    failed: int = 0


def green_sweep(*, now: dt.datetime | None = None) -> GreenSweepReport:
    """Offers not answered in time: tell the office and offer the case to the next destination.

    Each offer is handled on its own: one that fails is logged and left for the next pass, never
    holding up the others. A new offer's answer time starts when it is made (``now`` given: then).
    """
    from yilian.referrals import events

    fixed = now
    cutoff = now or timezone.now()
    report = GreenSweepReport()
    due = (
        GreenOffer.objects.filter(outcome=OfferOutcome.PENDING, answer_due_at__lt=cutoff)
        .select_related("case__referral", "institution")
        .order_by("answer_due_at")[:SWEEP_BATCH]
    )
    for offer in due:
        case = offer.case
        at = fixed or timezone.now()
        minutes = max(1, int((offer.answer_due_at - offer.offered_at).total_seconds() // 60))
        reason = _("No answer from %(institution)s within %(minutes)s minutes.") % {
            "institution": offer.institution.name,
            "minutes": minutes,
        }

        def effect(
            r: Referral,
            side: Side,
            case: GreenCase = case,
            offer_id: int = offer.pk,
            reason: str = reason,
            at: dt.datetime = at,
        ) -> dict[str, Any]:
            pending = _pending(case)
            if pending is None or pending.pk != offer_id or pending.answer_due_at >= at:
                raise workflow.TransitionNotAllowed(r, Action.FORWARD)  # answered meanwhile
            data = _reoffer(case, r, now=at, outcome=OfferOutcome.TIMED_OUT, actor=None, reason=reason)
            r.escalation_level = max(r.escalation_level, 2)
            return data

        try:
            with transaction.atomic():
                workflow.apply(
                    referral_id=case.referral_id,
                    action=Action.FORWARD,
                    actor=None,
                    reason=reason,
                    effect=effect,
                    at=at,
                )
                transaction.on_commit(partial(events.green_escalated, case.referral_id, reason))
                _broadcast(case, "escalated")
        except workflow.TransitionNotAllowed:
            continue
        except Exception:
            log.exception("green sweep: the offer %s could not be escalated; next pass tries again", offer.pk)
            report.failed += 1
            continue
        report.escalated += 1
    return report


# --- time nodes -----------------------------------------------------------------------------------


def _node_write(
    case: GreenCase,
    node: str,
    at: dt.datetime,
    *,
    actor: User | None,
    label: str,
    institution: Institution | None,
    now: dt.datetime,
    note: str = "",
) -> GreenNode:
    GreenNode.objects.filter(case=case, node=node, superseded_at__isnull=True).update(superseded_at=now)
    row = GreenNode.objects.create(
        case=case,
        node=node,
        at=at,
        recorded_at=now,
        recorded_by=actor,
        recorded_by_label=label,
        institution=institution,
        note=note[:300],
    )
    audit_record(
        actor=actor,
        action=AuditAction.UPDATE,
        obj=case,
        changes={"node": node, "at": at.isoformat(), **({"correction": note} if note else {})},
    )
    return row


def node_sides(user: User | None, case: GreenCase) -> frozenset[str]:
    """Which node sides ("sender", "receiver") the user may record on this case now."""
    if user is None:
        return frozenset()
    referral = case.referral
    scope = user_scope(user)
    sides = set()
    if referral.from_institution_id in scope.institution_ids_with(Permission.MANAGE_REFERRALS_SEND):
        sides.add("sender")
    accepted = referral.status in (Status.ACCEPTED, Status.ARRIVED, Status.IN_TREATMENT, Status.OUTCOME_RETURNED)
    if accepted and referral.to_institution_id in scope.institution_ids_with(Permission.MANAGE_REFERRALS_RECEIVE):
        sides.add("receiver")
    return frozenset(sides)


def green_node_record(
    *,
    actor: User,
    case: GreenCase,
    node: str,
    at: dt.datetime | None = None,
    correction_reason: str = "",
    now: dt.datetime | None = None,
) -> GreenNode:
    """Record a time node (now, or the time given); a node already recorded needs a reason to correct it."""
    now = now or timezone.now()
    at = at or now
    if timezone.is_naive(at):
        at = timezone.make_aware(at)
    definition = protocols.parse(case.protocol_version.definition)
    spec = definition.node(node)
    if spec is None:
        raise ValidationError({"node": _("This protocol has no time node “%(node)s”.") % {"node": node}})
    if at > now + FUTURE_SLACK:
        raise ValidationError({"at": _("A time node cannot be in the future.")})
    if at < case.activated_at - ONSET_MAX_AGE:
        raise ValidationError({"at": _("The time is more than 7 days before activation; check the date.")})
    with transaction.atomic():
        # Lock the referral row only: PostgreSQL refuses FOR UPDATE on the nullable side of the
        # outer join that the (nullable) destination brings in.
        referral = (
            Referral.objects.select_for_update(of=("self",))
            .select_related("from_institution", "to_institution")
            .get(pk=case.referral_id)
        )
        case.referral = referral
        sides = node_sides(actor, case)
        allowed = sides if spec.side == "either" else sides & {spec.side}
        if not allowed:
            if spec.side == "receiver" and "sender" in sides:
                msg = _("“%(node)s” is recorded by the receiving hospital.")
            elif spec.side == "sender":
                msg = _("“%(node)s” is recorded by the sending hospital.")
            else:
                msg = _("You may not record “%(node)s” on this case.")
            raise PermissionDenied(msg % {"node": spec.name})
        if referral.status in (Status.CANCELLED, Status.CLOSED, Status.DECLINED):
            raise Conflict(_("The case is %(status)s; its times can no longer change.") % {
                "status": Status(referral.status).label})  # fmt: skip
        current = GreenNode.objects.filter(case=case, node=node, superseded_at__isnull=True).first()
        reason = correction_reason.strip()
        if current is not None and not reason:
            raise Conflict(
                _("“%(node)s” was already recorded at %(time)s by %(who)s; give a reason to correct it.")
                % {"node": spec.name, "time": timezone.localtime(current.at).strftime("%H:%M"),
                   "who": current.recorded_by_label}
            )  # fmt: skip
        side = (
            "receiver" if "receiver" in allowed and (spec.side == "receiver" or "sender" not in allowed) else "sender"
        )
        institution = referral.to_institution if side == "receiver" else referral.from_institution
        label = getattr(actor, "display_name", "") or actor.get_username()
        row = _node_write(case, node, at, actor=actor, label=label, institution=institution, now=now, note=reason)
        if node == "arrival" and referral.status == Status.ACCEPTED:

            def arrived(r: Referral, side: Side) -> dict[str, Any]:
                r.arrived_at = at
                return {"node": node}

            workflow.apply(referral_id=referral.pk, action=Action.CHECK_IN, actor=actor, effect=arrived, at=now)
        elif node == "arrival" and referral.arrived_at is not None:
            # A corrected arrival: the referral's arrival time is the node's, not a second truth.
            Referral.objects.filter(pk=referral.pk).update(arrived_at=at, updated_at=now)
        if node == "onset":
            # The windows count from the case's onset: a late or corrected onset moves them.
            GreenCase.objects.filter(pk=case.pk).update(onset_at=at, updated_at=now)
            case.onset_at = at
        _broadcast(case, "node")
    return row


# --- announcing -----------------------------------------------------------------------------------


def channels_for(case: GreenCase) -> list[str]:
    """The live-board channels a case's change goes to: its sender, every institution it was offered
    to (a board drops a case that moved on) and its consortium's office."""
    referral = case.referral
    ids = {referral.from_institution_id, *GreenOffer.objects.filter(case=case).values_list("institution_id", flat=True)}
    return [institution_channel(i) for i in sorted(ids)] + [consortium_channel(referral.consortium_id)]


def institution_channel(institution_id: int) -> str:
    return f"green.institution.{institution_id}"


def consortium_channel(consortium_id: int) -> str:
    return f"green.consortium.{consortium_id}"


def _broadcast(case: GreenCase, kind: str) -> None:
    referral = Referral.objects.only("public_id", "number", "status").get(pk=case.referral_id)
    for channel in channels_for(case):
        bus.publish_on_commit(
            channel,
            kind=kind,
            case=str(referral.public_id),
            number=referral.number,
            status=referral.status,
            at=timezone.now().isoformat(),
        )
