"""The capability-building API: the techniques catalogue, technique-transfer ledgers, surgical
privileges, regional firsts, teaching with one-time sign-in codes, training programmes and the
indicator figures.

Handlers parse, authorise and read through ``selectors``, write through ``services``. A refusal is
403, an unknown object 404, a rule broken 400, a collision with what is recorded (a used code, a
second sign-off) 409.
"""

# No ``from __future__ import annotations``: django-ninja reads the ``Query[...]`` annotations of
# paginated handlers at import time and cannot resolve them from strings.

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from ninja import Query, Router, Status
from ninja.pagination import paginate

from yilian.capability import schemas, selectors, services
from yilian.capability.models import (
    Assessment,
    FirstClaim,
    Mentee,
    Milestone,
    SurgicalPrivilege,
    TeachingActivity,
    TeachingAttendance,
    Technique,
    TrainingProgramme,
    Transfer,
    TransferCase,
    TransferStep,
)
from yilian.core.permissions import Permission
from yilian.dispatch.models import Programme
from yilian.registry.api import ERRORS, Pagination
from yilian.registry.models import Department, Institution, Practitioner, Region, User
from yilian.registry.selectors import require_perm

router = Router(tags=["capability"])

MAX_FIGURE_DAYS = 367 * 3


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


class _Page:
    """A queryset whose page only is turned into answers: the pagination counts and slices it in
    the database."""

    def __init__(self, queryset: QuerySet[Any], out: Callable[[Any], dict[str, Any]]) -> None:
        self.queryset, self.out = queryset, out

    def all(self) -> "_Page":
        return self

    def count(self) -> int:
        return self.queryset.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        return [self.out(obj) for obj in self.queryset[window]]


# ----------------------------------------------------------------------------------------
# Looking up what a body names (an unknown name is the caller's mistake: 400 on the field)


def _technique(code: str, field: str = "technique") -> Technique:
    technique = Technique.objects.filter(code=code).first()
    if technique is None:
        raise ValidationError({field: [_("No technique with code %(code)s.") % {"code": code}]})
    return technique


def _institution(code: str, field: str = "institution") -> Institution:
    institution = Institution.objects.select_related("region").filter(code=code).first()
    if institution is None:
        raise ValidationError({field: [_("No institution with code %(code)s.") % {"code": code}]})
    return institution


def _practitioner(public_id: uuid.UUID, field: str) -> Practitioner:
    practitioner = Practitioner.objects.select_related("institution").filter(public_id=public_id).first()
    if practitioner is None:
        raise ValidationError({field: [_("No such practitioner.")]})
    return practitioner


def _programme(code: str | None, field: str = "programme") -> Programme | None:
    if not code:
        return None
    programme = Programme.objects.filter(code=code).first()
    if programme is None:
        raise ValidationError({field: [_("No stationing programme with code %(code)s.") % {"code": code}]})
    return programme


def _no_empty(fields: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in fields and fields[name] is None:
            raise ValidationError({name: [_("This field cannot be empty.")]})


def _period(start: dt.date, end: dt.date, *, longest: int) -> None:
    if end < start:
        raise ValidationError({"end": [_("The end cannot come before the start.")]})
    if (end - start).days >= longest:
        raise ValidationError({"end": [_("Ask for at most %(n)d days at a time.") % {"n": longest}]})


# ----------------------------------------------------------------------------------------
# Outputs


def _institution_out(i: Institution) -> dict[str, Any]:
    return {"code": i.code, "name": i.name}


def _practitioner_out(p: Practitioner) -> dict[str, Any]:
    return {
        "id": p.public_id,
        "name": p.name,
        "name_zh": p.name_zh,
        "name_en": p.name_en,
        "title": p.title,
        "institution": p.institution.code,
    }


def _technique_ref(t: Technique) -> dict[str, Any]:
    return {"code": t.code, "name": t.name, "level": t.level, "restricted": t.restricted}


def _technique_out(t: Technique) -> dict[str, Any]:
    return {
        "code": t.code,
        "name": t.name,
        "name_zh": t.name_zh,
        "name_en": t.name_en,
        "operation_code": t.operation_code,
        "level": t.level,
        "restricted": t.restricted,
        "discipline": t.discipline,
        "is_active": t.is_active,
    }


def _transfer_out(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.public_id,
        "department": {
            "id": t.department.public_id,
            "name": t.department.name,
            "institution": t.department.institution.code,
        },
        "technique": _technique_ref(t.technique),
        "expert": _practitioner_out(t.expert),
        "programme": t.programme.code if t.programme else None,
        "stage": t.stage or None,
        "introduced_on": t.introduced_on,
        "independent_on": t.independent_on,
        "days_to_independence": t.days_to_independence,
        "note": t.note,
    }


def _case_out(c: TransferCase) -> dict[str, Any]:
    return {
        "id": c.public_id,
        "performed_on": c.performed_on,
        "local_role": c.local_role,
        "evidence_for": c.evidence_for,
        "local_surgeon": _practitioner_out(c.local_surgeon) if c.local_surgeon else None,
        "operator_name": c.operator_name,
        "source": c.source,
        "source_ref": c.source_ref,
        "operation_code": c.operation_code,
        "note": c.note,
    }


def _step_out(s: TransferStep) -> dict[str, Any]:
    return {
        "id": s.public_id,
        "stage": s.stage,
        "surgeon": _practitioner_out(s.surgeon) if s.surgeon else None,
        "reached_on": s.reached_on,
        "evidence": s.evidence.public_id,
        "privilege": s.privilege.public_id if s.privilege else None,
    }


def _ledger_out(view: selectors.LedgerView) -> dict[str, Any]:
    return {
        **_transfer_out(view.transfer),
        "stages": [
            {
                "stage": stage,
                "label": str(stage.label),
                "reached_on": step.reached_on if step else None,
                "surgeon": _practitioner_out(step.surgeon) if step and step.surgeon else None,
            }
            for stage, step in view.stages
        ],
        "steps": [_step_out(s) for s in view.steps],
        "cases": [_case_out(c) for c in view.cases],
        "by_operator": [{"operator": name, "local": local, "cases": n} for name, local, n in view.by_operator],
        "surgeons": [
            {
                "surgeon": _practitioner_out(p.surgeon),
                "stage": p.stage,
                "cases": p.cases,
                "steps": [_step_out(s) for s in p.steps],
                "privilege": {"id": p.privilege.public_id, "granted_on": p.privilege.granted_on}
                if p.privilege
                else None,
            }
            for p in view.surgeons
        ],
    }


def _privilege_out(p: SurgicalPrivilege) -> dict[str, Any]:
    return {
        "id": p.public_id,
        "practitioner": _practitioner_out(p.practitioner),
        "technique": _technique_ref(p.technique),
        "granted_on": p.granted_on,
        "revoked_on": p.revoked_on,
        "current": p.revoked_on is None,
        "note": p.note,
    }


def _first_out(c: FirstClaim) -> dict[str, Any]:
    return {
        "id": c.public_id,
        "technique": _technique_ref(c.technique),
        "institution": _institution_out(c.institution),
        "performed_on": c.performed_on,
        "region": {"code": c.region.code, "name": c.region.name} if c.region else None,
        "macro_region": c.macro_region or None,
        "region_name": c.region_name,
        "programme": c.programme.code if c.programme else None,
        "case": c.case.public_id if c.case else None,
        "description": c.description,
        "status": c.status or None,
        "status_label": c.get_status_display() if c.status else "",
        "checked_at": c.checked_at,
        "evidence": c.evidence,
    }


def _teaching_out(a: TeachingActivity) -> dict[str, Any]:
    return {
        "id": a.public_id,
        "kind": a.kind,
        "topic": a.topic,
        "starts_at": a.starts_at,
        "ends_at": a.ends_at,
        "hours": float(a.hours),
        "leader": _practitioner_out(a.leader),
        "institutions": [_institution_out(i) for i in a.institutions.all()],
        "place": a.place,
        "materials": a.materials,
        "other_attendees": a.other_attendees,
        "programme": a.programme.code if a.programme else None,
        "training": a.training.public_id if a.training else None,
        "cancelled": a.cancelled,
    }


def _attendance_out(a: TeachingAttendance, activity: TeachingActivity) -> dict[str, Any]:
    return {
        "id": a.public_id,
        "activity": activity.public_id,
        "practitioner": _practitioner_out(a.practitioner),
        "signed_in_at": a.signed_in_at,
        "method": a.method,
        "hours": float(a.hours),
    }


def _teaching_detail_out(a: TeachingActivity) -> dict[str, Any]:
    rows = selectors.attendances(a)
    return {
        **_teaching_out(a),
        "attendances": [_attendance_out(r, a) for r in rows],
        "hours_credited": float(sum(r.hours for r in rows)),
    }


def _training_out(p: TrainingProgramme) -> dict[str, Any]:
    return {
        "id": p.public_id,
        "kind": p.kind,
        "name": p.name,
        "name_zh": p.name_zh,
        "name_en": p.name_en,
        "institution": _institution_out(p.institution),
        "mentor": _practitioner_out(p.mentor),
        "stationing": p.stationing.code if p.stationing else None,
        "goals": p.goals,
        "starts_on": p.starts_on,
        "ends_on": p.ends_on,
    }


def _milestone_out(m: Milestone) -> dict[str, Any]:
    return {
        "id": m.public_id,
        "order": m.order,
        "title": m.title,
        "title_zh": m.title_zh,
        "title_en": m.title_en,
        "due_months": m.due_months,
        "technique": m.technique.code if m.technique else None,
        "stage": m.stage or None,
    }


def _mentee_out(m: Mentee) -> dict[str, Any]:
    return {
        "id": m.public_id,
        "programme": m.programme.public_id,
        "practitioner": _practitioner_out(m.practitioner),
        "joined_on": m.joined_on,
        "left_on": m.left_on,
    }


def _assessment_out(a: Assessment) -> dict[str, Any]:
    return {
        "id": a.public_id,
        "mentee": a.mentee.public_id,
        "milestone": a.milestone.public_id,
        "assessed_on": a.assessed_on,
        "result": a.result,
        "score": a.score,
        "comment": a.comment,
        "assessor": a.assessor.display_name if a.assessor else None,
        "signed_off_by": a.signed_off_by.display_name if a.signed_off_by else None,
        "signed_off_at": a.signed_off_at,
        "counts": a.counts,
    }


def _progress_out(progress: selectors.MenteeProgress) -> dict[str, Any]:
    return {
        **_mentee_out(progress.mentee),
        "reached": progress.reached,
        "milestones_total": len(progress.milestones),
        "teaching_hours": float(progress.teaching_hours),
        "milestones": [
            {
                "milestone": _milestone_out(row.milestone),
                "due_on": row.due_on,
                "reached_on": row.reached_on,
                "overdue": row.overdue,
                "technique_stage": row.technique_stage,
                "assessments": [_assessment_out(a) for a in row.assessments],
            }
            for row in progress.milestones
        ],
        "steps": [
            {
                "technique": s.transfer.technique.code,
                "institution": s.transfer.department.institution.code,
                "stage": s.stage,
                "reached_on": s.reached_on,
            }
            for s in progress.steps
        ],
        "activities": [
            {
                "activity": a.activity.public_id,
                "topic": a.activity.topic,
                "starts_at": a.activity.starts_at,
                "hours": float(a.hours),
            }
            for a in progress.activities
        ],
    }


# ----------------------------------------------------------------------------------------
# Techniques


@router.get(
    "/capability/techniques",
    response={200: list[schemas.TechniqueOut], **ERRORS},
    summary="The techniques catalogue (shared by the consortium)",
)
@paginate(Pagination)
def technique_list(request: HttpRequest, q: str = "", discipline: str = "", include_inactive: bool = False) -> Any:
    qs = selectors.technique_list(
        _user(request), search=q[:80], discipline=discipline[:30], active_only=not include_inactive
    )
    return _Page(qs, _technique_out)


@router.post(
    "/capability/techniques",
    response={201: schemas.TechniqueOut, **ERRORS},
    summary="Add a technique to the catalogue (the consortium office)",
)
def technique_create(request: HttpRequest, payload: schemas.TechniqueIn) -> Any:
    technique = services.technique_create(actor=_user(request), **payload.model_dump())
    return Status(201, _technique_out(technique))


@router.get(
    "/capability/techniques/{code}",
    response={200: schemas.TechniqueOut, **ERRORS},
    summary="One technique",
)
def technique_detail(request: HttpRequest, code: str) -> Any:
    return _technique_out(selectors.access_technique(_user(request), code))


@router.patch(
    "/capability/techniques/{code}",
    response={200: schemas.TechniqueOut, **ERRORS},
    summary="Change a technique (the consortium office; only the fields sent)",
)
def technique_update(request: HttpRequest, code: str, payload: schemas.TechniquePatch) -> Any:
    user = _user(request)
    technique = selectors.access_technique(user, code)
    fields = payload.model_dump(exclude_unset=True)
    _no_empty(fields, ("name_zh", "level", "restricted", "discipline", "is_active"))
    for name in ("name_en", "operation_code"):
        if name in fields and fields[name] is None:
            fields[name] = ""
    return _technique_out(services.technique_update(actor=user, technique=technique, **fields))


# ----------------------------------------------------------------------------------------
# Transfer ledgers


@router.get(
    "/capability/transfers",
    response={200: list[schemas.TransferOut], **ERRORS},
    summary="Technique-transfer ledgers of the host departments the caller may see",
)
@paginate(Pagination)
def transfer_list(request: HttpRequest, filters: Query[schemas.TransferQuery]) -> Any:
    user = _user(request)
    require_perm(user, Permission.VIEW_CAPABILITY)
    qs = selectors.transfer_list_visible_to(
        user, institution=filters.institution, technique=filters.technique, stage=filters.stage or ""
    )
    return _Page(qs, _transfer_out)


@router.post(
    "/capability/transfers",
    response={201: schemas.TransferOut, **ERRORS},
    summary="Open the ledger of a technique at a host department",
)
def transfer_open(request: HttpRequest, payload: schemas.TransferIn) -> Any:
    user = _user(request)
    department = Department.objects.select_related("institution").filter(public_id=payload.department).first()
    if department is None:
        raise ValidationError({"department": [_("No such department.")]})
    transfer = services.transfer_open(
        actor=user,
        department=department,
        technique=_technique(payload.technique),
        expert=_practitioner(payload.expert, "expert"),
        programme=_programme(payload.programme),
        note=payload.note,
    )
    return Status(201, _transfer_out(selectors.access_transfer(user, str(transfer.public_id))))


@router.get(
    "/capability/transfers/{transfer_id}",
    response={200: schemas.TransferDetailOut, **ERRORS},
    summary="A ledger: stages, steps, cases, cases by operator, each surgeon's progress",
)
def transfer_detail(request: HttpRequest, transfer_id: uuid.UUID) -> Any:
    transfer = selectors.access_transfer(_user(request), str(transfer_id))
    return _ledger_out(selectors.ledger(transfer))


@router.post(
    "/capability/transfers/{transfer_id}/cases",
    response={201: schemas.LedgerCaseOut, **ERRORS},
    summary="Record a case by hand (the evidence for a stage)",
)
def transfer_case_add(request: HttpRequest, transfer_id: uuid.UUID, payload: schemas.CaseIn) -> Any:
    user = _user(request)
    transfer = selectors.access_transfer(user, str(transfer_id))
    surgeon = _practitioner(payload.local_surgeon, "local_surgeon") if payload.local_surgeon else None
    case = services.transfer_case_add(
        actor=user,
        transfer=transfer,
        performed_on=payload.performed_on,
        local_role=payload.local_role,
        local_surgeon=surgeon,
        operation_code=payload.operation_code,
        note=payload.note,
    )
    return Status(201, _case_out(case))


@router.post(
    "/capability/transfers/{transfer_id}/collect",
    response={200: schemas.CollectOut, **ERRORS},
    summary="Copy the experts' work logs and the imported operations of the technique into the ledger",
)
def transfer_collect(request: HttpRequest, transfer_id: uuid.UUID) -> Any:
    user = _user(request)
    transfer = selectors.access_transfer(user, str(transfer_id))
    collected = services.transfer_collect(actor=user, transfer=transfer)
    return {
        "from_work_logs": collected.from_work_logs,
        "from_activity": collected.from_activity,
        "total": collected.total,
        "unmatched_surgeons": collected.unmatched_surgeons,
    }


@router.post(
    "/capability/transfers/{transfer_id}/steps",
    response={201: schemas.AdvanceOut, **ERRORS},
    summary="Record the stage a case proves",
)
def transfer_advance(request: HttpRequest, transfer_id: uuid.UUID, payload: schemas.StepIn) -> Any:
    """A surgeon skips a stage only when the ledger holds a case of it; independence needs the
    surgeon's privilege for the technique on the day of the case."""
    user = _user(request)
    transfer = selectors.access_transfer(user, str(transfer_id))
    evidence = (
        TransferCase.objects.select_related("local_surgeon__institution")
        .filter(public_id=payload.evidence, transfer=transfer)
        .first()
    )
    if evidence is None:
        raise ValidationError({"evidence": [_("This ledger has no such case.")]})
    steps = services.transfer_advance(actor=user, transfer=transfer, evidence=evidence)
    return Status(
        201,
        {
            "steps": [_step_out(s) for s in steps],
            "ledger": _transfer_out(selectors.access_transfer(user, str(transfer_id))),
        },
    )


# ----------------------------------------------------------------------------------------
# Surgical privileges


def _access_privilege(user: User, public_id: uuid.UUID) -> SurgicalPrivilege:
    privilege = selectors.privilege_list_visible_to(user).filter(public_id=public_id).first()
    if privilege is not None:
        return privilege
    if SurgicalPrivilege.objects.filter(public_id=public_id).exists():
        raise PermissionDenied(_("This privilege is outside what you may see."))
    raise Http404(_("No such surgical privilege."))


@router.get(
    "/capability/privileges",
    response={200: list[schemas.PrivilegeOut], **ERRORS},
    summary="Surgical privileges of the surgeons the caller may see (current and revoked)",
)
@paginate(Pagination)
def privilege_list(request: HttpRequest, filters: Query[schemas.PrivilegeQuery]) -> Any:
    user = _user(request)
    require_perm(user, Permission.VIEW_CAPABILITY)
    qs = selectors.privilege_list_visible_to(user, institution=filters.institution)
    if filters.technique:
        qs = qs.filter(technique__code=filters.technique)
    return _Page(qs, _privilege_out)


@router.post(
    "/capability/privileges",
    response={201: schemas.PrivilegeOut, **ERRORS},
    summary="Grant a surgeon a technique (the surgeon's hospital's administrators)",
)
def privilege_grant(request: HttpRequest, payload: schemas.PrivilegeIn) -> Any:
    privilege = services.privilege_grant(
        actor=_user(request),
        practitioner=_practitioner(payload.practitioner, "practitioner"),
        technique=_technique(payload.technique),
        granted_on=payload.granted_on,
        note=payload.note,
    )
    return Status(201, _privilege_out(privilege))


@router.post(
    "/capability/privileges/{privilege_id}/revoke",
    response={200: schemas.PrivilegeOut, **ERRORS},
    summary="Revoke a privilege from a day, with the reason (the grant stays on record)",
)
def privilege_revoke(request: HttpRequest, privilege_id: uuid.UUID, payload: schemas.RevokeIn) -> Any:
    user = _user(request)
    privilege = _access_privilege(user, privilege_id)
    revoked = services.privilege_revoke(actor=user, privilege=privilege, on=payload.on, reason=payload.reason)
    return _privilege_out(_access_privilege(user, revoked.public_id))


# ----------------------------------------------------------------------------------------
# Regional firsts


@router.get(
    "/capability/firsts",
    response={200: list[schemas.FirstOut], **ERRORS},
    summary="Claimed regional firsts with their verdicts",
)
@paginate(Pagination)
def first_list(request: HttpRequest, filters: Query[schemas.FirstQuery]) -> Any:
    user = _user(request)
    require_perm(user, Permission.VIEW_CAPABILITY)
    qs = selectors.first_list_visible_to(
        user,
        programme=filters.programme,
        consortium=filters.consortium,
        status=filters.status or "",
        institution=filters.institution,
    )
    return _Page(qs, _first_out)


@router.post(
    "/capability/firsts",
    response={201: schemas.FirstOut, **ERRORS},
    summary="Claim a first for a city, a province or a macro-region; checked at once",
)
def first_claim(request: HttpRequest, payload: schemas.FirstIn) -> Any:
    user = _user(request)
    region = None
    if payload.region:
        region = Region.objects.filter(code=payload.region).first()
        if region is None:
            raise ValidationError({"region": [_("No region with code %(code)s.") % {"code": payload.region}]})
    case = None
    if payload.case is not None:
        case = TransferCase.objects.select_related("transfer__department").filter(public_id=payload.case).first()
        if case is None:
            raise ValidationError({"case": [_("No such case.")]})
    claim = services.first_claim(
        actor=user,
        technique=_technique(payload.technique),
        institution=_institution(payload.institution),
        performed_on=payload.performed_on,
        region=region,
        macro_region=payload.macro_region or "",
        programme=_programme(payload.programme),
        case=case,
        description=payload.description,
    )
    return Status(201, _first_out(selectors.access_first(user, str(claim.public_id))))


@router.get(
    "/capability/firsts/{first_id}",
    response={200: schemas.FirstOut, **ERRORS},
    summary="A claimed first with its verdict and evidence",
)
def first_detail(request: HttpRequest, first_id: uuid.UUID) -> Any:
    return _first_out(selectors.access_first(_user(request), str(first_id)))


@router.post(
    "/capability/firsts/{first_id}/verify",
    response={200: schemas.FirstOut, **ERRORS},
    summary="Check the claim again against the records as they are now",
)
def first_verify(request: HttpRequest, first_id: uuid.UUID) -> Any:
    user = _user(request)
    claim = selectors.access_first(user, str(first_id))
    services.first_verify(actor=user, claim=claim)
    return _first_out(selectors.access_first(user, str(first_id)))


# ----------------------------------------------------------------------------------------
# Teaching


@router.get(
    "/capability/teaching",
    response={200: list[schemas.TeachingOut], **ERRORS},
    summary="Teaching activities at the places the caller may see, newest first",
)
@paginate(Pagination)
def teaching_list(request: HttpRequest, filters: Query[schemas.TeachingQuery]) -> Any:
    user = _user(request)
    require_perm(user, Permission.VIEW_CAPABILITY)
    qs = selectors.teaching_list_visible_to(
        user, institution=filters.institution, kind=filters.kind or "", start=filters.start, end=filters.end
    ).select_related("training")
    return _Page(qs, _teaching_out)


@router.post(
    "/capability/teaching",
    response={201: schemas.TeachingDetailOut, **ERRORS},
    summary="Record a teaching activity",
)
def teaching_create(request: HttpRequest, payload: schemas.TeachingIn) -> Any:
    user = _user(request)
    if payload.leader is not None:
        leader = _practitioner(payload.leader, "leader")
    else:
        own = selectors.own_practitioner(user)
        if own is None:
            raise ValidationError({"leader": [_("Name the leader: your account has no practitioner record.")]})
        leader = own
    institutions = [_institution(code, "institutions") for code in dict.fromkeys(payload.institutions)]
    training = None
    if payload.training is not None:
        training = TrainingProgramme.objects.filter(public_id=payload.training).first()
        if training is None:
            raise ValidationError({"training": [_("No such training programme.")]})
    activity = services.teaching_create(
        actor=user,
        kind=payload.kind,
        topic=payload.topic,
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        leader=leader,
        institutions=institutions,
        place=payload.place,
        materials=payload.materials,
        other_attendees=payload.other_attendees,
        programme=_programme(payload.programme),
        training=training,
    )
    return Status(201, _teaching_detail_out(selectors.access_teaching(user, str(activity.public_id))))


@router.get(
    "/capability/teaching/{activity_id}",
    response={200: schemas.TeachingDetailOut, **ERRORS},
    summary="A teaching activity with its attendances",
)
def teaching_detail(request: HttpRequest, activity_id: uuid.UUID) -> Any:
    return _teaching_detail_out(selectors.access_teaching(_user(request), str(activity_id)))


@router.patch(
    "/capability/teaching/{activity_id}",
    response={200: schemas.TeachingDetailOut, **ERRORS},
    summary="Change a teaching activity (the leader, the organiser, the places' managers)",
)
def teaching_update(request: HttpRequest, activity_id: uuid.UUID, payload: schemas.TeachingPatch) -> Any:
    user = _user(request)
    activity = selectors.access_teaching(user, str(activity_id))
    fields = payload.model_dump(exclude_unset=True)
    _no_empty(fields, ("kind", "topic", "starts_at", "ends_at", "other_attendees"))
    for name in ("place", "materials"):
        if name in fields and fields[name] is None:
            fields[name] = ""
    services.teaching_update(actor=user, activity=activity, **fields)
    return _teaching_detail_out(selectors.access_teaching(user, str(activity_id)))


@router.post(
    "/capability/teaching/{activity_id}/cancel",
    response={200: schemas.TeachingDetailOut, **ERRORS},
    summary="Cancel a teaching activity (its open sign-in codes expire)",
)
def teaching_cancel(request: HttpRequest, activity_id: uuid.UUID) -> Any:
    user = _user(request)
    activity = selectors.access_teaching(user, str(activity_id))
    services.teaching_cancel(actor=user, activity=activity)
    return _teaching_detail_out(selectors.access_teaching(user, str(activity_id)))


def _sign_in_url(request: HttpRequest, activity: TeachingActivity, code: str) -> str:
    try:
        path = reverse("capability:sign_in", args=[activity.public_id])
    except NoReverseMatch:
        # The web sign-in page's address, should its URL name not be installed.
        path = f"/capability/teaching/{activity.public_id}/sign-in/"
    return request.build_absolute_uri(f"{path}?{urlencode({'code': code})}")


@router.post(
    "/capability/teaching/{activity_id}/codes",
    response={201: schemas.CodeOut, **ERRORS},
    summary="A new one-time sign-in code for the QR on the organiser's screen",
)
def sign_in_code_issue(request: HttpRequest, activity_id: uuid.UUID) -> Any:
    """The code is shown once (only its digest is stored); it signs in one attendee until it expires."""
    user = _user(request)
    activity = selectors.access_teaching(user, str(activity_id))
    code, row = services.sign_in_code_issue(actor=user, activity=activity)
    return Status(201, {"code": code, "url": _sign_in_url(request, activity, code), "expires_at": row.expires_at})


@router.post(
    "/capability/teaching/{activity_id}/sign-in",
    response={201: schemas.TeachingAttendanceOut, **ERRORS},
    summary="Sign in to a teaching activity with the code from its QR (the attendee)",
)
def sign_in(request: HttpRequest, activity_id: uuid.UUID, payload: schemas.SignInIn) -> Any:
    # Whoever holds a valid code may sign in, whatever else of the activity they may see.
    activity = selectors.activity_for_sign_in(str(activity_id))
    attendance = services.sign_in_redeem(actor=_user(request), activity=activity, code=payload.code)
    return Status(201, _attendance_out(attendance, activity))


@router.post(
    "/capability/teaching/{activity_id}/attendances",
    response={201: schemas.TeachingAttendanceOut, **ERRORS},
    summary="Record an attendee by hand (the organiser)",
)
def attendance_record(request: HttpRequest, activity_id: uuid.UUID, payload: schemas.TeachingAttendanceIn) -> Any:
    user = _user(request)
    activity = selectors.access_teaching(user, str(activity_id))
    attendance = services.attendance_record(
        actor=user, activity=activity, practitioner=_practitioner(payload.practitioner, "practitioner")
    )
    return Status(201, _attendance_out(attendance, activity))


# ----------------------------------------------------------------------------------------
# Training programmes


@router.get(
    "/capability/training",
    response={200: list[schemas.TrainingOut], **ERRORS},
    summary="Training programmes (master-doctor studios, backbone training) the caller may see",
)
@paginate(Pagination)
def training_list(request: HttpRequest, filters: Query[schemas.TrainingQuery]) -> Any:
    user = _user(request)
    require_perm(user, Permission.VIEW_CAPABILITY)
    qs = selectors.training_list_visible_to(user, institution=filters.institution, kind=filters.kind or "")
    return _Page(qs, _training_out)


@router.post(
    "/capability/training",
    response={201: schemas.TrainingOut, **ERRORS},
    summary="Start a training programme (the host's administrators, the consortium office)",
)
def training_create(request: HttpRequest, payload: schemas.TrainingIn) -> Any:
    programme = services.training_create(
        actor=_user(request),
        kind=payload.kind,
        name_zh=payload.name_zh,
        name_en=payload.name_en,
        institution=_institution(payload.institution),
        mentor=_practitioner(payload.mentor, "mentor"),
        starts_on=payload.starts_on,
        ends_on=payload.ends_on,
        goals=payload.goals,
        stationing=_programme(payload.stationing, "stationing"),
    )
    return Status(201, _training_out(programme))


@router.get(
    "/capability/training/{training_id}",
    response={200: schemas.TrainingDetailOut, **ERRORS},
    summary="A training programme with its milestones and each mentee's progress",
)
def training_detail(request: HttpRequest, training_id: uuid.UUID) -> Any:
    programme = selectors.access_training(_user(request), str(training_id))
    return {
        **_training_out(programme),
        "milestones": [_milestone_out(m) for m in programme.milestones.select_related("technique")],
        "mentees": [_progress_out(p) for p in selectors.training_mentees(programme, user=_user(request))],
    }


@router.post(
    "/capability/training/{training_id}/milestones",
    response={201: schemas.MilestoneOut, **ERRORS},
    summary="Add a milestone every mentee works towards",
)
def milestone_add(request: HttpRequest, training_id: uuid.UUID, payload: schemas.MilestoneIn) -> Any:
    user = _user(request)
    programme = selectors.access_training(user, str(training_id))
    milestone = services.milestone_add(
        actor=user,
        programme=programme,
        title_zh=payload.title_zh,
        title_en=payload.title_en,
        due_months=payload.due_months,
        technique=_technique(payload.technique) if payload.technique else None,
        stage=payload.stage or "",
    )
    return Status(201, _milestone_out(milestone))


@router.post(
    "/capability/training/{training_id}/mentees",
    response={201: schemas.MenteeOut, **ERRORS},
    summary="Add a mentee to the programme",
)
def mentee_add(request: HttpRequest, training_id: uuid.UUID, payload: schemas.MenteeIn) -> Any:
    user = _user(request)
    programme = selectors.access_training(user, str(training_id))
    mentee = services.mentee_add(
        actor=user,
        programme=programme,
        practitioner=_practitioner(payload.practitioner, "practitioner"),
        joined_on=payload.joined_on,
    )
    return Status(201, _mentee_out(mentee))


@router.get(
    "/capability/mentees/{mentee_id}",
    response={200: schemas.MenteeProgressOut, **ERRORS},
    summary="A mentee's progress: milestones, assessments, stages reached, teaching hours",
)
def mentee_detail(request: HttpRequest, mentee_id: uuid.UUID) -> Any:
    user = _user(request)
    return _progress_out(selectors.mentee_progress(selectors.access_mentee(user, str(mentee_id)), user=user))


@router.post(
    "/capability/mentees/{mentee_id}/assessments",
    response={201: schemas.AssessmentOut, **ERRORS},
    summary="Assess a mentee against a milestone (the mentor, the programme's managers)",
)
def assessment_record(request: HttpRequest, mentee_id: uuid.UUID, payload: schemas.AssessmentIn) -> Any:
    user = _user(request)
    mentee = selectors.access_mentee(user, str(mentee_id))
    milestone = Milestone.objects.filter(public_id=payload.milestone).first()
    if milestone is None:
        raise ValidationError({"milestone": [_("No such milestone.")]})
    assessment = services.assessment_record(
        actor=user,
        mentee=mentee,
        milestone=milestone,
        assessed_on=payload.assessed_on,
        result=payload.result,
        score=payload.score,
        comment=payload.comment,
    )
    return Status(201, _assessment_out(assessment))


@router.post(
    "/capability/assessments/{assessment_id}/sign-off",
    response={200: schemas.AssessmentOut, **ERRORS},
    summary="Sign an assessment off (the programme's mentor only, once)",
)
def assessment_sign_off(request: HttpRequest, assessment_id: uuid.UUID) -> Any:
    user = _user(request)
    assessment = (
        Assessment.objects.select_related("mentee__programme__mentor", "milestone", "assessor")
        .filter(public_id=assessment_id)
        .first()
    )
    if assessment is None:
        raise Http404(_("No such assessment."))
    selectors.access_mentee(user, str(assessment.mentee.public_id))
    signed = services.assessment_sign_off(actor=user, assessment=assessment)
    return _assessment_out(
        Assessment.objects.select_related("mentee", "milestone", "assessor", "signed_off_by").get(pk=signed.pk)
    )


# ----------------------------------------------------------------------------------------
# Figures


@router.get(
    "/capability/figures",
    response={200: list[schemas.FiguresOut], **ERRORS},
    summary="Indicator inputs per month and institution: techniques, level-3/4 cases, teaching hours, milestones",
)
def figures(request: HttpRequest, query: Query[schemas.FiguresQuery]) -> Any:
    user = _user(request)
    _period(query.start, query.end, longest=MAX_FIGURE_DAYS)
    by_month = selectors.capability_figures_by_month(user, start=query.start, end=query.end)
    codes = dict(
        Institution.objects.filter(pk__in={iid for month in by_month.values() for iid in month}).values_list(
            "pk", "code"
        )
    )
    return [
        {"month": f"{month:%Y-%m}", "institution": codes[iid], **values}
        for month in sorted(by_month)
        for iid, values in sorted(by_month[month].items(), key=lambda kv: codes[kv[0]])
    ]
