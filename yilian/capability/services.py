"""Writes of capability building.

Domain rules enforced here:
- techniques: a restricted technique is level 4; codes are unique;
- a ledger is one technique at one host department, opened by whoever may keep that department's
  ledger (see ``selectors``); the expert who brings it works elsewhere than the host;
- a case is an operation of the technique at the host: the expert alone, or a named local surgeon
  of the host assisting, operating under supervision, or operating alone. Cases are copied from
  the experts' work logs and from imported operation records (``transfer_collect``: each record
  once) or recorded by hand. No case is dated in the future;
- a stage is reached only on evidence: ``introduced`` on a case the expert performed; each later
  stage belongs to one local surgeon and needs a case of that surgeon in that part. A surgeon may
  skip a stage only when the ledger already holds evidence of the skipped stage (the skipped step
  is then recorded with its own evidence); steps are dated by their evidence and never go back in
  time; ``independent`` further needs the surgeon's privilege for the technique, held on the day of
  the evidence (2022 grading rules: privileges are granted per surgeon by the hospital);
- a privilege is granted by the surgeon's hospital's administrators, one current grant per
  surgeon and technique; revoking keeps the grant's history;
- a first is claimed for a city, a province or a macro-region and checked against every recorded
  case of the technique (ledgers, work logs, imported operations) of the institutions of that
  region: verified when no earlier case is on record and the imported operations cover every
  institution of the region for the ``FIRST_LOOKBACK_MONTHS`` before the case (a primary-care
  centre that never sent operations is not asked to, for a level-3/4 technique); contradicted, with
  the earliest earlier case; unverifiable, naming the institutions and months the records miss;
- a teaching activity has a leader, one or more places, a start and an end; attendees sign in with
  a one-time code shown as a QR (valid ``SIGN_IN_CODE_SECONDS``, from ``SIGN_IN_OPENS_MINUTES``
  before the start until ``SIGN_IN_CLOSES_MINUTES`` after the end), or the organiser records them;
  an expired, used or unknown code is refused, a person signs in once, and each attendee is
  credited the activity's hours; a cancelled activity takes no sign-ins;
- a training programme has a mentor and mentees; the mentor or the programme's managers record
  assessments against milestones; only the mentor signs them off, once; a passed, signed-off
  assessment reaches the milestone (so does the ledger's step, for a milestone on a technique stage);
- every write leaves an audit row in its transaction.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.capability import selectors
from yilian.capability.models import (
    EVIDENCE_FOR,
    STAGE_ORDER,
    Assessment,
    AssessmentResult,
    CaseSource,
    FirstClaim,
    FirstStatus,
    LocalRole,
    MacroRegion,
    Mentee,
    Milestone,
    SignInCode,
    SignInMethod,
    Stage,
    SurgicalPrivilege,
    TeachingActivity,
    TeachingAttendance,
    TeachingKind,
    Technique,
    TrainingKind,
    TrainingProgramme,
    Transfer,
    TransferCase,
    TransferStep,
    stage_rank,
)
from yilian.core.audit import audit_record
from yilian.core.errors import Conflict
from yilian.core.models import AuditAction
from yilian.registry.models import Department, Institution, InstitutionType, Practitioner, Region, RegionLevel, User

FIRST_LOOKBACK_MONTHS = 24
SIGN_IN_CODE_SECONDS = 120
SIGN_IN_OPENS_MINUTES = 30
SIGN_IN_CLOSES_MINUTES = 120
MAX_OTHER_ATTENDEES = 5000
COLLECT_LIMIT = 200_000  # imported operations of one technique at one host read per collection


def _today() -> dt.date:
    return timezone.localdate()


def _full_clean(obj: Any, exclude: list[str] | None = None) -> None:
    obj.full_clean(exclude=exclude)


def _visible(actor: User, practitioner: Practitioner, field: str) -> None:
    """A practitioner named in a write must be one the actor may see (else the write would both
    reach into another hospital and hand its staff's names back)."""
    if not selectors.practitioner_visible(actor, practitioner):
        raise ValidationError({field: [_("No such practitioner among those you may see.")]})


# --------------------------------------------------------------------------------------------
# Catalogue

TECHNIQUE_FIELDS = ("name_zh", "name_en", "operation_code", "level", "restricted", "discipline", "is_active")


def technique_create(
    *,
    actor: User,
    code: str,
    name_zh: str,
    name_en: str = "",
    operation_code: str = "",
    level: int,
    restricted: bool = False,
    discipline: str,
) -> Technique:
    if not selectors.can_manage_catalogue(actor):
        raise PermissionDenied(_("Only the consortium office keeps the techniques catalogue."))
    technique = Technique(
        code=code.strip(),
        name_zh=name_zh.strip(),
        name_en=name_en.strip(),
        operation_code=operation_code.strip(),
        level=level,
        restricted=restricted,
        discipline=discipline,
    )
    _full_clean(technique)
    with transaction.atomic():
        technique.save()
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=technique,
            changes={"code": technique.code, **{f: getattr(technique, f) for f in TECHNIQUE_FIELDS}},
        )
    return technique


def technique_update(*, actor: User, technique: Technique, **fields: Any) -> Technique:
    if not selectors.can_manage_catalogue(actor):
        raise PermissionDenied(_("Only the consortium office keeps the techniques catalogue."))
    unknown = set(fields) - set(TECHNIQUE_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown fields: %(names)s.") % {"names": ", ".join(sorted(unknown))})
    with transaction.atomic():
        technique = Technique.objects.select_for_update().get(pk=technique.pk)
        before = {f: getattr(technique, f) for f in fields}
        for name, value in fields.items():
            setattr(technique, name, value.strip() if isinstance(value, str) else value)
        _full_clean(technique)
        technique.save()
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=technique,
            changes={f: [before[f], getattr(technique, f)] for f in fields if before[f] != getattr(technique, f)},
        )
    return technique


# --------------------------------------------------------------------------------------------
# Ledger


def transfer_open(
    *,
    actor: User,
    department: Department,
    technique: Technique,
    expert: Practitioner,
    programme: Any = None,
    note: str = "",
) -> Transfer:
    """Open the ledger of a technique at a host department."""
    if not selectors.can_record_transfer(actor, department):
        raise PermissionDenied(_("You do not keep the technique ledger of this department."))
    errors: dict[str, list[str]] = {}
    if expert.institution_id == department.institution_id:
        errors["expert"] = [_("The expert who brings a technique works at another hospital than the host.")]
    if not technique.is_active:
        errors["technique"] = [_("This technique is no longer in the catalogue.")]
    if programme is not None and programme.host_institution_id != department.institution_id:
        errors["programme"] = [_("The stationing programme is hosted by another hospital.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        try:
            with transaction.atomic():
                transfer = Transfer.objects.create(
                    department=department,
                    technique=technique,
                    expert=expert,
                    programme=programme,
                    note=note.strip(),
                    created_by=actor,
                )
        except IntegrityError as exc:
            raise Conflict(_("This department already has a ledger for this technique.")) from exc
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=transfer,
            changes={
                "department": str(department.public_id),
                "technique": technique.code,
                "expert": str(expert.public_id),
            },
        )
    return transfer


def _check_case(
    transfer: Transfer, *, performed_on: dt.date, local_role: str, local_surgeon: Practitioner | None
) -> None:
    errors: dict[str, list[str]] = {}
    if local_role not in LocalRole.values:
        errors["local_role"] = [
            _("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(LocalRole.values)}
        ]
    elif local_role != LocalRole.NONE and local_surgeon is None:
        errors["local_surgeon"] = [_("Name the local surgeon.")]
    if local_surgeon is not None and local_surgeon.institution_id != transfer.department.institution_id:
        errors["local_surgeon"] = [_("The local surgeon must work at the host hospital.")]
    if performed_on > _today():
        errors["performed_on"] = [_("A case cannot be dated in the future.")]
    if errors:
        raise ValidationError(errors)


def transfer_case_add(
    *,
    actor: User,
    transfer: Transfer,
    performed_on: dt.date,
    local_role: str,
    local_surgeon: Practitioner | None = None,
    operation_code: str = "",
    note: str = "",
) -> TransferCase:
    """Record a case by hand (an operation the work logs and imported records do not hold)."""
    if not selectors.can_record_transfer(actor, transfer.department):
        raise PermissionDenied(_("You do not keep the technique ledger of this department."))
    _check_case(transfer, performed_on=performed_on, local_role=local_role, local_surgeon=local_surgeon)
    operator = (
        transfer.expert.name_zh
        if local_role in (LocalRole.NONE, LocalRole.ASSISTED) or local_surgeon is None
        else local_surgeon.name_zh
    )
    with transaction.atomic():
        case = TransferCase.objects.create(
            transfer=transfer,
            performed_on=performed_on,
            local_role=local_role,
            local_surgeon=local_surgeon if local_role != LocalRole.NONE else None,
            operator_name=operator,
            source=CaseSource.MANUAL,
            operation_code=operation_code.strip() or transfer.technique.operation_code,
            note=note.strip()[:200],
            recorded_by=actor,
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=case,
            changes={"ledger": str(transfer.public_id), "date": performed_on, "local_role": local_role},
        )
    return case


_WORK_LOG_ROLE = {
    # the expert's role in a logged operation -> what the local surgeon did
    "operator": LocalRole.ASSISTED,
    "assistant": LocalRole.SUPERVISED,
    "supervisor": LocalRole.SUPERVISED,
}


@dataclass(frozen=True)
class Collected:
    from_work_logs: int
    from_activity: int
    unmatched_surgeons: list[str]

    @property
    def total(self) -> int:
        return self.from_work_logs + self.from_activity


def transfer_collect(*, actor: User, transfer: Transfer) -> Collected:
    """Copy the evidence on record into the ledger, each source record once:

    - the experts' work logs at the host department: an operation the expert performed alone is
      an introduction case; with a local surgeon as assistant the surgeon assisted; where the
      expert assisted or supervised, the local surgeon operated under supervision (a local surgeon
      the registry does not know is listed back, and the case is left out rather than counted as
      the expert's own);
    - imported operations of the host with the technique's code: by a stationed expert, an
      introduction case (unless the expert's work log holds that day: the same operation, once); by
      a surgeon of the host on a day without an expert's logged case of the technique, the surgeon
      operated alone. Operators that match no practitioner are listed.
    """
    from yilian.activity.selectors import operations_matching
    from yilian.dispatch.selectors import experts_stationed_at, logged_operations_matching

    if not selectors.can_record_transfer(actor, transfer.department):
        raise PermissionDenied(_("You do not keep the technique ledger of this department."))
    technique = transfer.technique
    host = transfer.department.institution
    today = _today()
    with transaction.atomic():
        # The ledger's row serialises collections: the second reads what the first wrote.
        Transfer.objects.select_for_update().filter(pk=transfer.pk).first()
        known = set(transfer.cases.exclude(source_ref="").values_list("source_ref", flat=True))
        host_staff = list(Practitioner.objects.filter(institution=host))
        staff = {p.name_zh: p for p in host_staff}
        staff_by_id = {p.pk: p for p in host_staff}
        new: list[TransferCase] = []
        expert_days: set[dt.date] = set()
        unmatched: set[str] = set()
        for op in logged_operations_matching(
            institution_ids=[host.pk],
            department_id=transfer.department_id,
            code_prefix=technique.operation_code,
            name=technique.name_zh,
        ):
            expert_days.add(op.date)
            if op.key in known or op.date > today:
                continue
            surgeon = staff_by_id.get(op.local_surgeon_id) if op.local_surgeon_id else None
            if surgeon is None and op.local_surgeon_name:
                surgeon = staff.get(op.local_surgeon_name)
            if surgeon is None and op.role != "operator":
                # The local surgeon operated but is not in the registry: the case cannot be credited
                # to anyone, nor counted as the expert's own. Listed back to the user.
                unmatched.add(op.local_surgeon_name or "?")
                continue
            role = _WORK_LOG_ROLE.get(op.role, LocalRole.NONE) if surgeon is not None else LocalRole.NONE
            new.append(
                TransferCase(
                    transfer=transfer,
                    performed_on=op.date,
                    local_role=role,
                    local_surgeon=surgeon if role != LocalRole.NONE else None,
                    operator_name=(surgeon.name_zh if role == LocalRole.SUPERVISED and surgeon else op.expert_name)[
                        :40
                    ],
                    source=CaseSource.WORK_LOG,
                    source_ref=op.key,
                    operation_code=op.procedure_code[:20],
                    recorded_by=actor,
                )
            )
            known.add(op.key)
        from_activity = 0
        if technique.operation_code:
            experts = experts_stationed_at([host.pk]).get(host.pk, set()) | {transfer.expert.name_zh}
            for rec in operations_matching(
                institution_codes=[host.code], code_prefix=technique.operation_code, limit=COLLECT_LIMIT
            ):
                if rec.key in known or rec.date > today:
                    continue
                if rec.operator in experts:
                    if rec.date in expert_days:
                        continue  # the expert's own work log already holds that day's cases
                    role, surgeon = LocalRole.NONE, None
                elif rec.operator in staff and rec.date not in expert_days:
                    role, surgeon = LocalRole.INDEPENDENT, staff[rec.operator]
                else:
                    if rec.operator and rec.operator not in staff:
                        unmatched.add(rec.operator)
                    continue
                new.append(
                    TransferCase(
                        transfer=transfer,
                        performed_on=rec.date,
                        local_role=role,
                        local_surgeon=surgeon,
                        operator_name=rec.operator[:40],
                        source=CaseSource.ACTIVITY,
                        source_ref=rec.key,
                        operation_code=rec.operation_code[:20],
                        recorded_by=actor,
                    )
                )
                known.add(rec.key)
                from_activity += 1
        TransferCase.objects.bulk_create(new)
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=transfer,
            changes={"collected": len(new), "from_activity": from_activity},
        )
    return Collected(
        from_work_logs=len(new) - from_activity, from_activity=from_activity, unmatched_surgeons=sorted(unmatched)
    )


def _surgeon_stage(transfer: Transfer, surgeon_id: int) -> tuple[int, dt.date | None]:
    """Rank of the surgeon's furthest stage (0 = introduced only) and its date."""
    steps = list(transfer.steps.filter(surgeon_id=surgeon_id).values_list("stage", "reached_on"))
    if not steps:
        return 0, None
    rank, day = max((stage_rank(s), d) for s, d in steps)
    return rank, day


def transfer_advance(*, actor: User, transfer: Transfer, evidence: TransferCase) -> list[TransferStep]:
    """Record the stage ``evidence`` proves (and any skipped stage the ledger holds evidence of).
    Returns the steps written, in order."""
    if not selectors.can_record_transfer(actor, transfer.department):
        raise PermissionDenied(_("You do not keep the technique ledger of this department."))
    if evidence.transfer_id != transfer.pk:
        raise ValidationError({"evidence": [_("This case belongs to another ledger.")]})
    target = EVIDENCE_FOR[evidence.local_role]
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().select_related("technique", "department").get(pk=transfer.pk)
        introduction = transfer.steps.filter(stage=Stage.INTRODUCED).first()
        written: list[TransferStep] = []
        if target == Stage.INTRODUCED:
            if introduction is not None:
                raise Conflict(
                    _("The technique was already introduced on %(date)s.") % {"date": introduction.reached_on}
                )
            written.append(
                TransferStep.objects.create(
                    transfer=transfer,
                    stage=Stage.INTRODUCED,
                    reached_on=evidence.performed_on,
                    evidence=evidence,
                    recorded_by=actor,
                )
            )
        else:
            surgeon = evidence.local_surgeon
            assert surgeon is not None  # the case's check constraint
            if introduction is None:
                raise ValidationError(
                    {
                        "evidence": [
                            _("Record the introduction (the expert's first case) before a local surgeon's stage.")
                        ]
                    }
                )
            if evidence.performed_on < introduction.reached_on:
                raise ValidationError(
                    {
                        "evidence": [
                            _("This case is older than the technique's introduction on %(date)s.")
                            % {"date": introduction.reached_on}
                        ]
                    }
                )
            reached, last_day = _surgeon_stage(transfer, surgeon.pk)
            want = stage_rank(target)
            if reached >= want:
                raise Conflict(_("%(surgeon)s has already reached this stage.") % {"surgeon": surgeon.name})
            if last_day is not None and evidence.performed_on < last_day:
                raise ValidationError(
                    {
                        "evidence": [
                            _("A stage cannot be dated before the surgeon's previous stage (%(date)s).")
                            % {"date": last_day}
                        ]
                    }
                )
            # Skipped stages need evidence of their own, in order: each no earlier than the stage
            # before it (the surgeon's last step, else the introduction) and no later than this case.
            plan: list[tuple[Stage, TransferCase]] = []
            floor = last_day or introduction.reached_on
            for rank in range(reached + 1, want):
                stage = STAGE_ORDER[rank]
                role = next(r for r, s in EVIDENCE_FOR.items() if s == stage)
                earlier = (
                    transfer.cases.filter(
                        local_surgeon=surgeon,
                        local_role=role,
                        performed_on__gte=floor,
                        performed_on__lte=evidence.performed_on,
                    )
                    .order_by("performed_on", "id")
                    .first()
                )
                if earlier is None:
                    raise ValidationError(
                        {
                            "evidence": [
                                _(
                                    "%(surgeon)s cannot skip the stage “%(stage)s”: the ledger holds no case of it. "
                                    "Record that case first."
                                )
                                % {"surgeon": surgeon.name, "stage": stage.label}
                            ]
                        }
                    )
                plan.append((stage, earlier))
                floor = earlier.performed_on
            plan.append((target, evidence))
            privilege = None
            if target == Stage.INDEPENDENT:
                privilege = (
                    SurgicalPrivilege.objects.filter(
                        practitioner=surgeon, technique=transfer.technique, granted_on__lte=evidence.performed_on
                    )
                    .order_by("-granted_on")
                    .first()
                )
                if privilege is None or not privilege.holds_on(evidence.performed_on):
                    raise ValidationError(
                        {
                            "evidence": [
                                _(
                                    "%(surgeon)s held no privilege for %(technique)s on %(date)s: the hospital "
                                    "grants it before the surgeon counts as independent."
                                )
                                % {
                                    "surgeon": surgeon.name,
                                    "technique": transfer.technique.name,
                                    "date": evidence.performed_on,
                                }
                            ]
                        }
                    )
            for stage, case in plan:
                written.append(
                    TransferStep.objects.create(
                        transfer=transfer,
                        stage=stage,
                        surgeon=surgeon,
                        reached_on=case.performed_on,
                        evidence=case,
                        privilege=privilege if stage == Stage.INDEPENDENT else None,
                        recorded_by=actor,
                    )
                )
        _refresh_transfer(transfer)
        for step in written:
            audit_record(
                actor=actor,
                action=AuditAction.CREATE,
                obj=step,
                object_repr=f"{transfer} · {step.get_stage_display()}",
                changes={
                    "ledger": str(transfer.public_id),
                    "stage": step.stage,
                    "surgeon": str(step.surgeon.public_id) if step.surgeon else None,
                    "evidence": str(step.evidence.public_id),
                },
            )
    return written


def _refresh_transfer(transfer: Transfer) -> None:
    steps = list(transfer.steps.values_list("stage", "reached_on"))
    transfer.stage = max((s for s, _d in steps), key=stage_rank, default="")
    transfer.introduced_on = min((d for s, d in steps if s == Stage.INTRODUCED), default=None)
    transfer.independent_on = min((d for s, d in steps if s == Stage.INDEPENDENT), default=None)
    transfer.save(update_fields=["stage", "introduced_on", "independent_on", "updated_at"])


def privilege_grant(
    *, actor: User, practitioner: Practitioner, technique: Technique, granted_on: dt.date, note: str = ""
) -> SurgicalPrivilege:
    if not selectors.can_grant_privilege(actor, practitioner):
        raise PermissionDenied(_("Only the surgeon's hospital grants surgical privileges."))
    if granted_on > _today():
        raise ValidationError({"granted_on": [_("A privilege cannot be granted in the future.")]})
    with transaction.atomic():
        try:
            with transaction.atomic():
                privilege = SurgicalPrivilege.objects.create(
                    practitioner=practitioner,
                    technique=technique,
                    granted_on=granted_on,
                    granted_by=actor,
                    note=note.strip()[:200],
                )
        except IntegrityError as exc:
            raise Conflict(_("This surgeon already holds this privilege.")) from exc
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=privilege,
            changes={"surgeon": str(practitioner.public_id), "technique": technique.code, "granted_on": granted_on},
        )
    return privilege


def privilege_revoke(*, actor: User, privilege: SurgicalPrivilege, on: dt.date, reason: str) -> SurgicalPrivilege:
    if not selectors.can_grant_privilege(actor, privilege.practitioner):
        raise PermissionDenied(_("Only the surgeon's hospital grants surgical privileges."))
    if not reason.strip():
        raise ValidationError({"reason": [_("Give the reason for revoking.")]})
    with transaction.atomic():
        privilege = SurgicalPrivilege.objects.select_for_update().get(pk=privilege.pk)
        if privilege.revoked_on is not None:
            raise Conflict(_("This privilege was already revoked on %(date)s.") % {"date": privilege.revoked_on})
        if on < privilege.granted_on:
            raise ValidationError({"on": [_("A privilege cannot be revoked before it was granted.")]})
        used = TransferStep.objects.filter(privilege=privilege, reached_on__gte=on).order_by("-reached_on").first()
        if used is not None:
            raise ValidationError(
                {
                    "on": [
                        _("The ledger used this privilege on %(date)s: revoke it after that day.")
                        % {"date": used.reached_on}
                    ]
                }
            )
        privilege.revoked_on = on
        privilege.note = (privilege.note + " / " if privilege.note else "") + reason.strip()
        privilege.note = privilege.note[:200]
        privilege.save(update_fields=["revoked_on", "note", "updated_at"])
        audit_record(
            actor=actor, action=AuditAction.UPDATE, obj=privilege, changes={"revoked_on": on, "reason": reason}
        )
    return privilege


# --------------------------------------------------------------------------------------------
# Regional firsts


def _month_start(day: dt.date, back: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def _months(start: dt.date, end: dt.date) -> list[tuple[int, int]]:
    """(year, month) from start's month up to, not including, end's month."""
    out, day = [], start.replace(day=1)
    while day < end.replace(day=1):
        out.append((day.year, day.month))
        day = _month_start(day, -1)
    return out


def _ranges(months: list[tuple[int, int]]) -> list[str]:
    """Consecutive months as "2023-01–2023-06" (or one "2023-04")."""
    out: list[list[tuple[int, int]]] = []
    for ym in sorted(months):
        if out and (out[-1][-1][0] * 12 + out[-1][-1][1] + 1) == ym[0] * 12 + ym[1]:
            out[-1].append(ym)
        else:
            out.append([ym])
    labels = []
    for run in out:
        first, last = run[0], run[-1]
        a, b = f"{first[0]}-{first[1]:02d}", f"{last[0]}-{last[1]:02d}"
        labels.append(a if a == b else f"{a}–{b}")
    return labels


def first_check(claim: FirstClaim) -> tuple[str, dict[str, Any]]:
    """The verdict on a claim and its evidence (see the module docstring). Reads every record of the
    region, whoever asks: the evidence names institutions, dates and codes, never patients."""
    from yilian.activity.selectors import operations_coverage, operations_matching
    from yilian.dispatch.selectors import logged_operations_matching

    technique = claim.technique
    prefixes = claim.province_prefixes()
    in_region = Q()
    for prefix in prefixes:
        in_region |= Q(region__code__startswith=prefix)
    institutions = list(Institution.objects.filter(in_region).order_by("code"))
    by_id = {i.pk: i for i in institutions}
    by_code = {i.code: i for i in institutions}
    before = claim.performed_on
    earlier: list[dict[str, Any]] = []
    cases = (
        TransferCase.objects.filter(
            transfer__technique=technique,
            transfer__department__institution_id__in=list(by_id),
            performed_on__lt=before,
        )
        .exclude(pk=claim.case_id or 0)
        .select_related("transfer__department__institution")
        .order_by("performed_on", "id")[:1]
    )
    for case in cases:
        inst = case.transfer.department.institution
        earlier.append(
            {
                "source": "ledger",
                "date": case.performed_on.isoformat(),
                "institution": inst.code,
                "institution_name": inst.name_zh,
                "operator": case.operator_name,
                "code": case.operation_code,
            }
        )
    logged = logged_operations_matching(
        institution_ids=list(by_id), code_prefix=technique.operation_code, name=technique.name_zh, before=before
    )
    for op in logged[:1]:
        inst = by_id[op.institution_id]
        earlier.append(
            {
                "source": "work_log",
                "date": op.date.isoformat(),
                "institution": inst.code,
                "institution_name": inst.name_zh,
                "operator": op.expert_name,
                "code": op.procedure_code,
            }
        )
    if technique.operation_code:
        records = operations_matching(
            institution_codes=list(by_code), code_prefix=technique.operation_code, before=before, limit=1
        )
        for rec in records:
            inst = by_code[rec.institution_code]
            earlier.append(
                {
                    "source": "activity",
                    "date": rec.date.isoformat(),
                    "institution": inst.code,
                    "institution_name": inst.name_zh,
                    "operator": rec.operator,
                    "code": rec.operation_code,
                }
            )
    since = _month_start(before, FIRST_LOOKBACK_MONTHS)
    window = {"from": since.isoformat(), "to": before.isoformat(), "institutions": len(institutions)}
    if earlier:
        earliest = min(earlier, key=lambda e: e["date"])
        return FirstStatus.CONTRADICTED, {"window": window, "earlier": earliest}
    gaps: list[dict[str, Any]] = []
    if not technique.operation_code:
        return FirstStatus.UNVERIFIABLE, {
            "window": window,
            "reason": "no_code",
            "missing": [],
        }
    covered = operations_coverage()
    wanted = _months(since, before)
    for inst in institutions:
        if not inst.is_active:
            continue
        if technique.level >= 3 and inst.type == InstitutionType.PRIMARY_CARE and inst.code not in covered:
            # A primary-care centre that never sent operations performs no level-3/4 surgery: its
            # silence is not a gap (one that sends operations must cover the window like any other).
            continue
        have = covered.get(inst.code, set())
        missing = [m for m in wanted if m not in have]
        if missing:
            gaps.append(
                {
                    "institution": inst.code,
                    "institution_name": inst.name_zh,
                    "months": _ranges(missing),
                    "month_count": len(missing),
                }
            )
    if gaps:
        return FirstStatus.UNVERIFIABLE, {"window": window, "reason": "coverage", "missing": gaps}
    return FirstStatus.VERIFIED, {"window": window}


def first_claim(
    *,
    actor: User,
    technique: Technique,
    institution: Institution,
    performed_on: dt.date,
    region: Region | None = None,
    macro_region: str = "",
    programme: Any = None,
    case: TransferCase | None = None,
    description: str = "",
) -> FirstClaim:
    """Claim a first and check it at once."""
    if not selectors.can_claim_first(actor, institution):
        raise PermissionDenied(_("You may not claim firsts for this institution."))
    errors: dict[str, list[str]] = {}
    if (region is None) == (not macro_region):
        errors["region"] = [_("Claim the first for a region or for a macro-region, not both.")]
    elif region is not None:
        if region.level == RegionLevel.COUNTY:
            errors["region"] = [_("A first is claimed for a city, a province or a macro-region.")]
        elif institution.region is None or not institution.region.code.startswith(region.code_prefix()):
            errors["region"] = [_("The institution is not in %(region)s.") % {"region": region.name}]
    elif macro_region not in MacroRegion.values:
        errors["macro_region"] = [
            _("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(MacroRegion.values)}
        ]
    elif institution.region is None or not institution.region.code.startswith(
        FirstClaim(macro_region=macro_region).province_prefixes()
    ):
        errors["macro_region"] = [
            _("The institution is not in %(region)s.") % {"region": MacroRegion(macro_region).label}
        ]
    if performed_on > _today():
        errors["performed_on"] = [_("A case cannot be dated in the future.")]
    if case is not None and (
        case.transfer.technique_id != technique.pk or case.transfer.department.institution_id != institution.pk
    ):
        errors["case"] = [_("This case is of another technique or hospital.")]
    elif case is not None and case.performed_on != performed_on:
        errors["performed_on"] = [_("The claim is dated by its case: %(date)s.") % {"date": case.performed_on}]
    if programme is not None and programme.host_institution_id != institution.pk:
        errors["programme"] = [_("The stationing programme is hosted by another hospital.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        claim = FirstClaim.objects.create(
            technique=technique,
            institution=institution,
            performed_on=performed_on,
            region=region,
            macro_region=macro_region if region is None else "",
            programme=programme,
            case=case,
            description=description.strip(),
            claimed_by=actor,
        )
        claim.status, claim.evidence = first_check(claim)
        claim.checked_at = timezone.now()
        claim.save(update_fields=["status", "evidence", "checked_at", "updated_at"])
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=claim,
            changes={
                "technique": technique.code,
                "institution": institution.code,
                "performed_on": performed_on,
                "region": region.code if region else macro_region,
                "status": claim.status,
            },
        )
    return claim


def first_verify(*, actor: User, claim: FirstClaim) -> FirstClaim:
    """Check the claim again against the records as they are now."""
    if not selectors.can_claim_first(actor, claim.institution):
        raise PermissionDenied(_("You may not claim firsts for this institution."))
    status, evidence = first_check(claim)
    with transaction.atomic():
        claim = FirstClaim.objects.select_for_update().get(pk=claim.pk)
        before = claim.status
        claim.status, claim.evidence, claim.checked_at = status, evidence, timezone.now()
        claim.save(update_fields=["status", "evidence", "checked_at", "updated_at"])
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=claim, changes={"status": [before, status]})
    return claim


# --------------------------------------------------------------------------------------------
# Teaching


def _check_activity(
    *,
    kind: str,
    topic: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    institutions: list[Institution],
    other_attendees: int,
) -> None:
    errors: dict[str, list[str]] = {}
    if kind not in TeachingKind.values:
        errors["kind"] = [
            _("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(TeachingKind.values)}
        ]
    if not topic.strip():
        errors["topic"] = [_("Give the topic.")]
    if ends_at <= starts_at:
        errors["ends_at"] = [_("The end must be after the start.")]
    elif ends_at - starts_at > dt.timedelta(hours=12):
        errors["ends_at"] = [_("A teaching session lasts at most 12 hours; record each day on its own.")]
    if not institutions:
        errors["institutions"] = [_("Name at least one place (institution).")]
    if not 0 <= other_attendees <= MAX_OTHER_ATTENDEES:
        errors["other_attendees"] = [_("Between 0 and %(n)d.") % {"n": MAX_OTHER_ATTENDEES}]
    if errors:
        raise ValidationError(errors)


def teaching_create(
    *,
    actor: User,
    kind: str,
    topic: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    leader: Practitioner,
    institutions: list[Institution],
    place: str = "",
    materials: str = "",
    other_attendees: int = 0,
    programme: Any = None,
    training: TrainingProgramme | None = None,
) -> TeachingActivity:
    _check_activity(
        kind=kind,
        topic=topic,
        starts_at=starts_at,
        ends_at=ends_at,
        institutions=institutions,
        other_attendees=other_attendees,
    )
    if not all(selectors.can_lead_teaching_at(actor, i) for i in institutions):
        raise PermissionDenied(_("You may not record teaching at every one of these places."))
    _visible(actor, leader, "leader")
    places = {i.pk for i in institutions}
    if programme is not None and programme.host_institution_id not in places:
        raise ValidationError({"programme": [_("The stationing programme is hosted by another hospital.")]})
    if training is not None and training.institution_id not in places:
        raise ValidationError({"training": [_("The training programme belongs to another hospital.")]})
    with transaction.atomic():
        activity = TeachingActivity.objects.create(
            kind=kind,
            topic=topic.strip()[:200],
            starts_at=starts_at,
            ends_at=ends_at,
            leader=leader,
            place=place.strip()[:200],
            materials=materials.strip(),
            other_attendees=other_attendees,
            programme=programme,
            training=training,
            created_by=actor,
        )
        activity.institutions.set(institutions)
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=activity,
            changes={
                "kind": kind,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "leader": str(leader.public_id),
                "institutions": [i.code for i in institutions],
            },
        )
    return activity


TEACHING_FIELDS = ("kind", "topic", "starts_at", "ends_at", "place", "materials", "other_attendees")


def teaching_update(*, actor: User, activity: TeachingActivity, **fields: Any) -> TeachingActivity:
    if not selectors.can_manage_teaching(actor, activity):
        raise PermissionDenied(_("Only the leader, the organiser or the places' managers change this activity."))
    unknown = set(fields) - set(TEACHING_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown fields: %(names)s.") % {"names": ", ".join(sorted(unknown))})
    with transaction.atomic():
        activity = TeachingActivity.objects.select_for_update().get(pk=activity.pk)
        before = {f: getattr(activity, f) for f in fields}
        for name, value in fields.items():
            setattr(activity, name, value)
        _check_activity(
            kind=activity.kind,
            topic=activity.topic,
            starts_at=activity.starts_at,
            ends_at=activity.ends_at,
            institutions=list(activity.institutions.all()),
            other_attendees=activity.other_attendees,
        )
        activity.save()
        # Hours follow the activity's length.
        activity.attendances.update(hours=activity.hours)
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=activity,
            changes={f: [before[f], getattr(activity, f)] for f in fields if before[f] != getattr(activity, f)},
        )
    return activity


def teaching_cancel(*, actor: User, activity: TeachingActivity) -> TeachingActivity:
    if not selectors.can_manage_teaching(actor, activity):
        raise PermissionDenied(_("Only the leader, the organiser or the places' managers change this activity."))
    with transaction.atomic():
        activity = TeachingActivity.objects.select_for_update().get(pk=activity.pk)
        if activity.cancelled:
            raise Conflict(_("This activity is already cancelled."))
        activity.cancelled = True
        activity.save(update_fields=["cancelled", "updated_at"])
        activity.sign_in_codes.filter(used_at__isnull=True).update(expires_at=timezone.now())
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=activity, changes={"cancelled": True})
    return activity


def _sign_in_window(activity: TeachingActivity) -> tuple[dt.datetime, dt.datetime]:
    return (
        activity.starts_at - dt.timedelta(minutes=SIGN_IN_OPENS_MINUTES),
        activity.ends_at + dt.timedelta(minutes=SIGN_IN_CLOSES_MINUTES),
    )


def sign_in_code_issue(*, actor: User, activity: TeachingActivity) -> tuple[str, SignInCode]:
    """A new one-time code for the QR on the organiser's screen (shown once, stored as a digest)."""
    if not selectors.can_manage_teaching(actor, activity):
        raise PermissionDenied(_("Only the leader, the organiser or the places' managers run the sign-in."))
    now = timezone.now()
    opens, closes = _sign_in_window(activity)
    if activity.cancelled:
        raise Conflict(_("This activity is cancelled."))
    if now < opens:
        raise Conflict(_("Sign-in opens %(minutes)d minutes before the start.") % {"minutes": SIGN_IN_OPENS_MINUTES})
    if now > closes:
        raise Conflict(_("Sign-in for this activity has closed."))
    code = secrets.token_urlsafe(12)
    with transaction.atomic():
        row = SignInCode.objects.create(
            activity=activity,
            digest=selectors.code_digest(code),
            issued_at=now,
            expires_at=min(now + dt.timedelta(seconds=SIGN_IN_CODE_SECONDS), closes),
        )
    return code, row


def sign_in_redeem(*, actor: User, activity: TeachingActivity, code: str) -> TeachingAttendance:
    """Sign the acting user in with a code from the QR. Exactly one attendee wins a code."""
    practitioner = selectors.own_practitioner(actor)
    if practitioner is None:
        raise PermissionDenied(_("Only a practitioner with an account signs in; ask the organiser to record you."))
    now = timezone.now()
    with transaction.atomic():
        row = (
            SignInCode.objects.select_for_update().filter(digest=selectors.code_digest(code), activity=activity).first()
        )
        # The activity's row too: a cancellation, or the same person's second phone, waits here.
        activity = TeachingActivity.objects.select_for_update().get(pk=activity.pk)
        if row is None:
            raise ValidationError({"code": [_("This sign-in code is not valid for this activity.")]})
        if row.used_at is not None:
            raise Conflict(_("This sign-in code has already been used. Scan the new code on the screen."))
        if row.expires_at < now:
            raise ValidationError({"code": [_("This sign-in code has expired. Scan the new code on the screen.")]})
        if activity.cancelled:
            raise Conflict(_("This activity is cancelled."))
        if TeachingAttendance.objects.filter(activity=activity, practitioner=practitioner).exists():
            raise Conflict(_("You have already signed in to this activity."))
        row.used_at, row.used_by = now, practitioner
        row.save(update_fields=["used_at", "used_by"])
        try:
            with transaction.atomic():
                attendance = TeachingAttendance.objects.create(
                    activity=activity,
                    practitioner=practitioner,
                    signed_in_at=now,
                    method=SignInMethod.QR,
                    hours=activity.hours,
                    recorded_by=actor,
                )
        except IntegrityError as exc:  # recorded by the organiser a moment earlier
            raise Conflict(_("You have already signed in to this activity.")) from exc
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=attendance,
            changes={"activity": str(activity.public_id), "method": "qr", "hours": attendance.hours},
        )
    return attendance


def attendance_record(*, actor: User, activity: TeachingActivity, practitioner: Practitioner) -> TeachingAttendance:
    """The organiser records an attendee by hand (no phone, no account)."""
    if not selectors.can_manage_teaching(actor, activity):
        raise PermissionDenied(_("Only the leader, the organiser or the places' managers run the sign-in."))
    _visible(actor, practitioner, "practitioner")
    if activity.cancelled:
        raise Conflict(_("This activity is cancelled."))
    if activity.starts_at > timezone.now():
        raise ValidationError({"practitioner": [_("Attendance is recorded once the activity has started.")]})
    with transaction.atomic():
        try:
            with transaction.atomic():
                attendance = TeachingAttendance.objects.create(
                    activity=activity,
                    practitioner=practitioner,
                    signed_in_at=timezone.now(),
                    method=SignInMethod.RECORDED,
                    hours=activity.hours,
                    recorded_by=actor,
                )
        except IntegrityError as exc:
            raise Conflict(_("%(name)s has already signed in.") % {"name": practitioner.name}) from exc
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=attendance,
            changes={"activity": str(activity.public_id), "method": "recorded", "hours": attendance.hours},
        )
    return attendance


# --------------------------------------------------------------------------------------------
# Training programmes


def training_create(
    *,
    actor: User,
    kind: str,
    name_zh: str,
    name_en: str = "",
    institution: Institution,
    mentor: Practitioner,
    starts_on: dt.date,
    ends_on: dt.date | None = None,
    goals: str = "",
    stationing: Any = None,
) -> TrainingProgramme:
    if not selectors.can_manage_training(actor, institution_id=institution.pk):
        raise PermissionDenied(_("Only the host's administrators or the consortium office run its programmes."))
    if kind not in TrainingKind.values:
        raise ValidationError(
            {"kind": [_("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(TrainingKind.values)}]}
        )
    _visible(actor, mentor, "mentor")
    if stationing is not None and stationing.host_institution_id != institution.pk:
        raise ValidationError({"stationing": [_("The stationing programme is hosted by another hospital.")]})
    programme = TrainingProgramme(
        kind=kind,
        name_zh=name_zh.strip(),
        name_en=name_en.strip(),
        institution=institution,
        mentor=mentor,
        starts_on=starts_on,
        ends_on=ends_on,
        goals=goals.strip(),
        stationing=stationing,
        created_by=actor,
    )
    _full_clean(programme, exclude=["created_by"])
    with transaction.atomic():
        programme.save()
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=programme,
            changes={"kind": kind, "institution": institution.code, "mentor": str(mentor.public_id)},
        )
    return programme


def milestone_add(
    *,
    actor: User,
    programme: TrainingProgramme,
    title_zh: str,
    title_en: str = "",
    due_months: int = 6,
    technique: Technique | None = None,
    stage: str = "",
) -> Milestone:
    if not selectors.can_manage_training(actor, programme):
        raise PermissionDenied(_("Only the host's administrators or the consortium office run its programmes."))
    if bool(technique) != bool(stage):
        raise ValidationError({"stage": [_("A milestone on a technique names the stage, and a stage its technique.")]})
    with transaction.atomic():
        # The programme's row orders its milestones: two added at once get 1 and 2, not 1 and 1.
        TrainingProgramme.objects.select_for_update().filter(pk=programme.pk).first()
        order = programme.milestones.count() + 1
        return _milestone_save(
            actor=actor,
            programme=programme,
            order=order,
            title_zh=title_zh,
            title_en=title_en,
            due_months=due_months,
            technique=technique,
            stage=stage,
        )


def _milestone_save(
    *,
    actor: User,
    programme: TrainingProgramme,
    order: int,
    title_zh: str,
    title_en: str,
    due_months: int,
    technique: Technique | None,
    stage: str,
) -> Milestone:
    milestone = Milestone(
        programme=programme,
        order=order,
        title_zh=title_zh.strip(),
        title_en=title_en.strip(),
        due_months=due_months,
        technique=technique,
        stage=stage,
    )
    _full_clean(milestone)
    with transaction.atomic():
        milestone.save()
        audit_record(
            actor=actor, action=AuditAction.CREATE, obj=milestone, changes={"programme": str(programme.public_id)}
        )
    return milestone


def mentee_add(*, actor: User, programme: TrainingProgramme, practitioner: Practitioner, joined_on: dt.date) -> Mentee:
    if not selectors.can_manage_training(actor, programme):
        raise PermissionDenied(_("Only the host's administrators or the consortium office run its programmes."))
    _visible(actor, practitioner, "practitioner")
    if practitioner.pk == programme.mentor_id:
        raise ValidationError({"practitioner": [_("The mentor cannot be their own mentee.")]})
    if joined_on < programme.starts_on or (programme.ends_on and joined_on > programme.ends_on):
        raise ValidationError({"joined_on": [_("Mentees join within the programme's dates.")]})
    with transaction.atomic():
        try:
            with transaction.atomic():
                mentee = Mentee.objects.create(programme=programme, practitioner=practitioner, joined_on=joined_on)
        except IntegrityError as exc:
            raise Conflict(_("This practitioner is already a mentee of the programme.")) from exc
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=mentee,
            changes={"programme": str(programme.public_id), "practitioner": str(practitioner.public_id)},
        )
    return mentee


def assessment_record(
    *,
    actor: User,
    mentee: Mentee,
    milestone: Milestone,
    assessed_on: dt.date,
    result: str,
    score: int | None = None,
    comment: str = "",
) -> Assessment:
    programme = mentee.programme
    if not (selectors.is_mentor(actor, programme) or selectors.can_manage_training(actor, programme)):
        raise PermissionDenied(_("Only the mentor or the programme's managers assess its mentees."))
    errors: dict[str, list[str]] = {}
    if milestone.programme_id != programme.pk:
        errors["milestone"] = [_("This milestone belongs to another programme.")]
    if result not in AssessmentResult.values:
        errors["result"] = [
            _("Not one of the allowed values: %(expected)s.") % {"expected": ", ".join(AssessmentResult.values)}
        ]
    if score is not None and not 0 <= score <= 100:
        errors["score"] = [_("Between 0 and 100.")]
    if assessed_on > _today():
        errors["assessed_on"] = [_("An assessment cannot be dated in the future.")]
    elif assessed_on < mentee.joined_on:
        errors["assessed_on"] = [_("The mentee joined on %(date)s.") % {"date": mentee.joined_on}]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        assessment = Assessment.objects.create(
            mentee=mentee,
            milestone=milestone,
            assessed_on=assessed_on,
            result=result,
            score=score,
            comment=comment.strip(),
            assessor=actor,
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=assessment,
            changes={"mentee": str(mentee.public_id), "milestone": str(milestone.public_id), "result": result},
        )
    return assessment


def assessment_sign_off(*, actor: User, assessment: Assessment) -> Assessment:
    """The mentor's signature. Once signed, an assessment is final."""
    if not selectors.is_mentor(actor, assessment.mentee.programme):
        raise PermissionDenied(_("Only the programme's mentor signs assessments off."))
    with transaction.atomic():
        assessment = Assessment.objects.select_for_update().get(pk=assessment.pk)
        if assessment.signed_off_at is not None:
            raise Conflict(_("This assessment was already signed off."))
        assessment.signed_off_by, assessment.signed_off_at = actor, timezone.now()
        assessment.save(update_fields=["signed_off_by", "signed_off_at", "updated_at"])
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=assessment, changes={"signed_off": True})
    return assessment
