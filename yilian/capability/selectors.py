"""Reads of capability building, scoped to the acting user.

Who sees what (``capability.view``): the techniques catalogue is shared; a ledger, a claimed first,
a training programme are seen by whoever may see their institution (the host department's, the
claimant's, the programme's); a teaching activity by whoever may see one of its places.

Who writes where:
- the catalogue: the consortium office and system administrators;
- a department's ledger: its hospital's administrators, the consortium office of a consortium the
  hospital belongs to, and the experts stationed in that department;
- surgical privileges: the surgeon's own hospital's administrators;
- firsts: hospital administrators for their institution, the consortium office for its members;
- teaching: whoever leads it or recorded it, and the managers of its places; anyone with a
  practitioner record signs in with a code;
- training: the host's administrators and the consortium office; the mentor records assessments
  and alone signs them off.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.capability.models import (
    STAGE_ORDER,
    Assessment,
    FirstClaim,
    Mentee,
    Milestone,
    Stage,
    SurgicalPrivilege,
    TeachingActivity,
    TeachingAttendance,
    Technique,
    TrainingProgramme,
    Transfer,
    TransferCase,
    TransferStep,
    stage_rank,
)
from yilian.core.permissions import Permission, Role
from yilian.registry.models import ConsortiumMember, Department, Institution, Practitioner
from yilian.registry.selectors import AnyUser, institution_queryset_visible_to, require_perm, user_scope


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _visible_institutions(user: AnyUser) -> QuerySet[Institution]:
    if Permission.VIEW_CAPABILITY not in user_scope(user).permissions:
        return Institution.objects.none()
    return institution_queryset_visible_to(user)


def practitioner_visible(user: AnyUser, practitioner: Practitioner) -> bool:
    """Whether the user may see the practitioner: one of an institution they may see."""
    return institution_queryset_visible_to(user).filter(pk=practitioner.institution_id).exists()


def own_practitioner(user: AnyUser) -> Practitioner | None:
    if not user.is_authenticated:
        return None
    return Practitioner.objects.filter(user_id=user.pk, is_active=True).select_related("institution").first()


# --------------------------------------------------------------------------------------------
# Who may write


def _office_reaches(user: AnyUser, institution_id: int) -> bool:
    scope = user_scope(user)
    if not scope.consortium_ids:
        return False
    return (
        ConsortiumMember.objects.filter(consortium_id__in=scope.consortium_ids, institution_id=institution_id).exists()
        or Institution.objects.filter(pk=institution_id, led_consortia__in=scope.consortium_ids).exists()
    )


def _manages(user: AnyUser, permission: Permission, institution_id: int) -> bool:
    """Holds ``permission`` as an administrator of the institution or through the consortium office."""
    scope = user_scope(user)
    if permission not in scope.permissions:
        return False
    if scope.is_global:
        return True
    if institution_id in scope.admin_institution_ids and institution_id in scope.institution_ids_with(permission):
        return True
    return Role.CONSORTIUM_OFFICE in scope.roles and _office_reaches(user, institution_id)


def can_manage_catalogue(user: AnyUser) -> bool:
    scope = user_scope(user)
    return Permission.MANAGE_TECHNIQUES in scope.permissions


def can_record_transfer(user: AnyUser, department: Department) -> bool:
    """The host's administrators, the consortium office, and the experts stationed in the department."""
    if _manages(user, Permission.RECORD_TRANSFER, department.institution_id):
        return True
    scope = user_scope(user)
    if Permission.RECORD_TRANSFER not in scope.permissions or Role.STATIONED_EXPERT not in scope.roles:
        return False
    from yilian.dispatch.models import Assignment

    return (
        user.pk is not None
        # A withdrawn assignment no longer speaks for the department.
        and Assignment.objects.filter(
            practitioner__user_id=user.pk, host_department_id=department.pk, withdrawn_on__isnull=True
        ).exists()
    )


def can_grant_privilege(user: AnyUser, practitioner: Practitioner) -> bool:
    scope = user_scope(user)
    if Permission.GRANT_PRIVILEGES not in scope.permissions:
        return False
    return scope.is_global or practitioner.institution_id in scope.institution_ids_with(Permission.GRANT_PRIVILEGES)


def can_claim_first(user: AnyUser, institution: Institution) -> bool:
    return _manages(user, Permission.CLAIM_FIRSTS, institution.pk)


def can_manage_teaching(user: AnyUser, activity: TeachingActivity) -> bool:
    """The leader, whoever recorded it, and the managers of its places."""
    scope = user_scope(user)
    if Permission.LEAD_TEACHING not in scope.permissions:
        return False
    if scope.is_global or activity.created_by_id == user.pk or activity.leader.user_id == user.pk:
        return True
    return any(_manages(user, Permission.LEAD_TEACHING, i.pk) for i in activity.institutions.all())


def can_lead_teaching_at(user: AnyUser, institution: Institution) -> bool:
    """Whether the user may hold teaching at the institution: its staff, those stationed there, its
    managers."""
    scope = user_scope(user)
    if Permission.LEAD_TEACHING not in scope.permissions:
        return False
    if scope.is_global or institution.pk in scope.institution_ids_with(Permission.LEAD_TEACHING):
        return True
    if _manages(user, Permission.LEAD_TEACHING, institution.pk):
        return True
    from yilian.dispatch.models import Assignment

    return (
        user.pk is not None
        and Assignment.objects.filter(
            practitioner__user_id=user.pk, programme__host_institution=institution, withdrawn_on__isnull=True
        ).exists()
    )


def can_manage_training(user: AnyUser, programme: TrainingProgramme | None = None, *, institution_id: int = 0) -> bool:
    return _manages(user, Permission.MANAGE_TRAINING, programme.institution_id if programme else institution_id)


def is_mentor(user: AnyUser, programme: TrainingProgramme) -> bool:
    return user.is_authenticated and programme.mentor.user_id == user.pk


# --------------------------------------------------------------------------------------------
# Catalogue


def technique_list(
    user: AnyUser, *, search: str = "", discipline: str = "", active_only: bool = True
) -> QuerySet[Technique]:
    require_perm(user, Permission.VIEW_CAPABILITY)
    qs = Technique.objects.all()
    if active_only:
        qs = qs.filter(is_active=True)
    if search:
        qs = qs.filter(
            Q(name_zh__icontains=search)
            | Q(name_en__icontains=search)
            | Q(code__icontains=search)
            | Q(operation_code__startswith=search)
        )
    if discipline:
        qs = qs.filter(discipline=discipline)
    return qs.order_by("discipline", "code")


def access_technique(user: AnyUser, code: str) -> Technique:
    require_perm(user, Permission.VIEW_CAPABILITY)
    technique = Technique.objects.filter(code=code).first()
    if technique is None:
        raise Http404(_("No technique with code %(code)s.") % {"code": code})
    return technique


# --------------------------------------------------------------------------------------------
# Ledger


def transfer_list_visible_to(
    user: AnyUser, *, institution: str = "", technique: str = "", stage: str = "", department: str = ""
) -> QuerySet[Transfer]:
    qs = Transfer.objects.filter(department__institution__in=_visible_institutions(user)).select_related(
        "department__institution", "technique", "expert__institution", "programme"
    )
    if institution:
        qs = qs.filter(department__institution__code=institution)
    if technique:
        qs = qs.filter(technique__code=technique)
    if stage:
        qs = qs.filter(stage=stage)
    if department and _is_uuid(department):
        qs = qs.filter(department__public_id=department)
    return qs.order_by("department__institution__code", "department__discipline", "technique__code")


def access_transfer(user: AnyUser, public_id: str) -> Transfer:
    require_perm(user, Permission.VIEW_CAPABILITY)
    transfer = (
        Transfer.objects.select_related("department__institution", "technique", "expert__institution", "programme")
        .filter(public_id=public_id)
        .first()
        if _is_uuid(public_id)
        else None
    )
    if transfer is None:
        raise Http404(_("No such technique ledger."))
    if not _visible_institutions(user).filter(pk=transfer.department.institution_id).exists():
        raise PermissionDenied(_("This ledger is outside what you may see."))
    return transfer


@dataclass
class SurgeonProgress:
    surgeon: Practitioner
    stage: Stage | None = None
    steps: list[TransferStep] = field(default_factory=list)
    cases: int = 0
    privilege: SurgicalPrivilege | None = None

    @property
    def rank(self) -> int:
        return -1 if self.stage is None else stage_rank(self.stage)


@dataclass
class LedgerView:
    transfer: Transfer
    cases: list[TransferCase]
    steps: list[TransferStep]
    by_operator: list[tuple[str, bool, int]]  # (operator, is local, cases)
    surgeons: list[SurgeonProgress]
    stages: list[tuple[Stage, TransferStep | None]]  # the department's first step of each stage


def ledger(transfer: Transfer) -> LedgerView:
    cases = list(transfer.cases.select_related("local_surgeon", "recorded_by").order_by("performed_on", "id"))
    steps = list(transfer.steps.select_related("surgeon", "evidence", "privilege").order_by("reached_on", "id"))
    counts: dict[tuple[str, bool], int] = defaultdict(int)
    surgeons: dict[int, SurgeonProgress] = {}
    for case in cases:
        local = case.local_role in ("supervised", "independent")
        counts[(case.operator_name, local)] += 1
        if case.local_surgeon is not None:
            progress = surgeons.setdefault(case.local_surgeon_id or 0, SurgeonProgress(case.local_surgeon))
            progress.cases += 1
    for step in steps:
        if step.surgeon is None:
            continue
        progress = surgeons.setdefault(step.surgeon_id or 0, SurgeonProgress(step.surgeon))
        progress.steps.append(step)
        if progress.stage is None or stage_rank(step.stage) > progress.rank:
            progress.stage = Stage(step.stage)
    privileges = {
        p.practitioner_id: p
        for p in SurgicalPrivilege.objects.filter(
            technique_id=transfer.technique_id, practitioner_id__in=list(surgeons), revoked_on__isnull=True
        )
    }
    for sid, progress in surgeons.items():
        progress.privilege = privileges.get(sid)
    first_of: dict[str, TransferStep] = {}
    for step in steps:
        first_of.setdefault(step.stage, step)
    return LedgerView(
        transfer=transfer,
        cases=cases,
        steps=steps,
        by_operator=sorted(((name, local, n) for (name, local), n in counts.items()), key=lambda r: (-r[2], r[0])),
        surgeons=sorted(surgeons.values(), key=lambda s: (-s.rank, s.surgeon.name_zh)),
        stages=[(stage, first_of.get(stage)) for stage in STAGE_ORDER],
    )


def privilege_list_visible_to(user: AnyUser, *, institution: str = "") -> QuerySet[SurgicalPrivilege]:
    qs = SurgicalPrivilege.objects.filter(practitioner__institution__in=_visible_institutions(user)).select_related(
        "practitioner__institution", "technique"
    )
    if institution:
        qs = qs.filter(practitioner__institution__code=institution)
    return qs.order_by("practitioner__institution__code", "-granted_on")


# --------------------------------------------------------------------------------------------
# Firsts


def first_list_visible_to(
    user: AnyUser, *, programme: str = "", consortium: str = "", status: str = "", institution: str = ""
) -> QuerySet[FirstClaim]:
    qs = FirstClaim.objects.filter(institution__in=_visible_institutions(user)).select_related(
        "technique", "institution", "region", "programme__consortium", "case"
    )
    if programme:
        qs = qs.filter(programme__code=programme)
    if consortium:
        members = ConsortiumMember.objects.filter(consortium__code=consortium).values("institution_id")
        qs = qs.filter(Q(institution_id__in=members) | Q(institution__led_consortia__code=consortium)).distinct()
    if status:
        qs = qs.filter(status=status)
    if institution:
        qs = qs.filter(institution__code=institution)
    return qs.order_by("-performed_on", "id")


def access_first(user: AnyUser, public_id: str) -> FirstClaim:
    require_perm(user, Permission.VIEW_CAPABILITY)
    claim = (
        FirstClaim.objects.select_related("technique", "institution", "region", "programme", "case")
        .filter(public_id=public_id)
        .first()
        if _is_uuid(public_id)
        else None
    )
    if claim is None:
        raise Http404(_("No such regional first."))
    if not _visible_institutions(user).filter(pk=claim.institution_id).exists():
        raise PermissionDenied(_("This regional first is outside what you may see."))
    return claim


# --------------------------------------------------------------------------------------------
# Teaching


def teaching_list_visible_to(
    user: AnyUser,
    *,
    institution: str = "",
    kind: str = "",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> QuerySet[TeachingActivity]:
    visible = _visible_institutions(user)
    ids = TeachingActivity.institutions.through.objects.filter(institution__in=visible).values("teachingactivity_id")
    qs = TeachingActivity.objects.filter(pk__in=ids).select_related("leader__institution", "programme")
    qs = qs.prefetch_related("institutions")
    if institution:
        qs = qs.filter(institutions__code=institution)
    if kind:
        qs = qs.filter(kind=kind)
    if start:
        qs = qs.filter(starts_at__date__gte=start)
    if end:
        qs = qs.filter(starts_at__date__lt=end)
    return qs.order_by("-starts_at", "id")


def access_teaching(user: AnyUser, public_id: str) -> TeachingActivity:
    require_perm(user, Permission.VIEW_CAPABILITY)
    activity = (
        TeachingActivity.objects.select_related("leader__institution", "programme", "training")
        .prefetch_related("institutions")
        .filter(public_id=public_id)
        .first()
        if _is_uuid(public_id)
        else None
    )
    if activity is None:
        raise Http404(_("No such teaching activity."))
    if not _visible_institutions(user).filter(pk__in=[i.pk for i in activity.institutions.all()]).exists():
        raise PermissionDenied(_("This teaching activity is outside what you may see."))
    return activity


def activity_for_sign_in(public_id: str) -> TeachingActivity:
    """The activity a sign-in page names (anyone holding a code may open it; nothing but the topic,
    time and place is shown before the code is redeemed)."""
    activity = (
        TeachingActivity.objects.select_related("leader")
        .prefetch_related("institutions")
        .filter(public_id=public_id)
        .first()
        if _is_uuid(public_id)
        else None
    )
    if activity is None:
        raise Http404(_("No such teaching activity."))
    return activity


def attendances(activity: TeachingActivity) -> list[TeachingAttendance]:
    return list(activity.attendances.select_related("practitioner__institution").order_by("signed_in_at", "id"))


def teaching_hours_of(practitioner: Practitioner) -> Decimal:
    total = TeachingAttendance.objects.filter(practitioner=practitioner, activity__cancelled=False).aggregate(
        h=Sum("hours")
    )["h"]
    return Decimal(total or 0)


# --------------------------------------------------------------------------------------------
# Training


def training_list_visible_to(user: AnyUser, *, institution: str = "", kind: str = "") -> QuerySet[TrainingProgramme]:
    qs = TrainingProgramme.objects.filter(institution__in=_visible_institutions(user)).select_related(
        "institution", "mentor__institution", "stationing"
    )
    if institution:
        qs = qs.filter(institution__code=institution)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-starts_on", "id")


def access_training(user: AnyUser, public_id: str) -> TrainingProgramme:
    require_perm(user, Permission.VIEW_CAPABILITY)
    programme = (
        TrainingProgramme.objects.select_related("institution", "mentor__institution", "stationing")
        .filter(public_id=public_id)
        .first()
        if _is_uuid(public_id)
        else None
    )
    if programme is None:
        raise Http404(_("No such training programme."))
    if not _visible_institutions(user).filter(pk=programme.institution_id).exists():
        raise PermissionDenied(_("This training programme is outside what you may see."))
    return programme


def access_mentee(user: AnyUser, public_id: str) -> Mentee:
    mentee = (
        Mentee.objects.select_related("programme", "practitioner__institution").filter(public_id=public_id).first()
        if _is_uuid(public_id)
        else None
    )
    if mentee is None:
        raise Http404(_("No such mentee."))
    access_training(user, str(mentee.programme.public_id))
    return mentee


@dataclass
class MilestoneProgress:
    milestone: Milestone
    due_on: dt.date
    assessments: list[Assessment]
    reached_on: dt.date | None
    technique_stage: Stage | None  # the furthest stage the mentee reached in the milestone's technique

    @property
    def overdue(self) -> bool:
        return self.reached_on is None and self.due_on < timezone.localdate()


@dataclass
class MenteeProgress:
    mentee: Mentee
    milestones: list[MilestoneProgress]
    reached: int
    teaching_hours: Decimal
    activities: list[TeachingAttendance]
    steps: list[TransferStep]


def _add_months(day: dt.date, months: int) -> dt.date:
    import calendar

    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _ledger_reach_of(practitioner_ids: Iterable[int]) -> dict[int, dict[int, dict[Stage, dt.date]]]:
    """Surgeon id -> technique id -> stage -> the first day the surgeon reached it in any ledger (the
    evidence of a technique milestone, wherever the ledger is kept). One query for all of them."""
    reach: dict[int, dict[int, dict[Stage, dt.date]]] = defaultdict(lambda: defaultdict(dict))
    for surgeon_id, technique_id, stage, day in TransferStep.objects.filter(
        surgeon_id__in=list(practitioner_ids)
    ).values_list("surgeon_id", "transfer__technique_id", "stage", "reached_on"):
        known = reach[surgeon_id][technique_id].get(Stage(stage))
        if known is None or day < known:
            reach[surgeon_id][technique_id][Stage(stage)] = day
    return reach


def mentee_progress(mentee: Mentee, *, user: AnyUser) -> MenteeProgress:
    """A mentee's progress as ``user`` may see it: the ledger stages and the teaching attended are
    those of institutions the user may see (the milestones are the programme's own)."""
    visible = _visible_institutions(user)
    milestones = list(mentee.programme.milestones.select_related("technique").order_by("order", "id"))
    assessments = defaultdict(list)
    for a in mentee.assessments.select_related("assessor", "signed_off_by").order_by("assessed_on", "id"):
        assessments[a.milestone_id].append(a)
    steps = list(
        TransferStep.objects.filter(surgeon=mentee.practitioner, transfer__department__institution__in=visible)
        .select_related("transfer__technique", "transfer__department__institution")
        .order_by("reached_on", "id")
    )
    ledger = _ledger_reach_of([mentee.practitioner_id])[mentee.practitioner_id]
    rows = []
    for m in milestones:
        passed = [a for a in assessments.get(m.pk, []) if a.counts]
        dates = [a.assessed_on for a in passed]
        reach = ledger.get(m.technique_id or 0, {})
        if m.technique_id and m.stage:
            # A milestone on a technique is reached by the ledger's evidence of that stage, too.
            dates += [day for stage, day in reach.items() if stage_rank(stage) >= stage_rank(m.stage)]
        rows.append(
            MilestoneProgress(
                milestone=m,
                due_on=_add_months(mentee.joined_on, m.due_months),
                assessments=assessments.get(m.pk, []),
                reached_on=min(dates, default=None),
                technique_stage=max(reach, key=stage_rank, default=None) if m.technique_id else None,
            )
        )
    attended = list(
        TeachingAttendance.objects.filter(
            practitioner=mentee.practitioner,
            activity__cancelled=False,
            activity__in=TeachingActivity.institutions.through.objects.filter(institution__in=visible).values(
                "teachingactivity_id"
            ),
        )
        .select_related("activity")
        .order_by("-signed_in_at")
    )
    return MenteeProgress(
        mentee=mentee,
        milestones=rows,
        reached=sum(1 for r in rows if r.reached_on is not None),
        teaching_hours=sum((a.hours for a in attended), Decimal(0)),
        activities=attended,
        steps=steps,
    )


def training_mentees(programme: TrainingProgramme, *, user: AnyUser) -> list[MenteeProgress]:
    mentees = programme.mentees.select_related("practitioner__institution", "programme").prefetch_related(
        Prefetch("assessments", queryset=Assessment.objects.order_by("assessed_on"))
    )
    return [mentee_progress(m, user=user) for m in mentees]


# --------------------------------------------------------------------------------------------
# Indicator inputs


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def capability_figures_by_month(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: Iterable[int] | None = None
) -> dict[dt.date, dict[int, dict[str, Any]]]:
    """Month -> institution id -> the capability figures of [start, end] (inclusive end):

    - ``techniques_introduced``: ledgers whose technique was introduced (the expert's first case)
      in the month, at the host institution;
    - ``techniques_independent``: ledgers where a local surgeon first became independent;
    - ``ops_34_total`` / ``ops_34_local``: level-3/4 ledger cases at the host, and those a local
      surgeon performed (supervised or alone): the "blood-making" ratio;
    - ``teaching_hours_delivered``: hours of teaching led by the institution's staff (each activity
      once); ``teaching_hours_received``: hours credited to the institution's staff who attended;
    - ``milestones_reached``: mentees of the institution's programmes whose signed-off assessment
      reached a milestone in the month.
    """
    require_perm(user, Permission.VIEW_CAPABILITY)
    visible = _visible_institutions(user)
    if institution_ids is not None:
        visible = visible.filter(pk__in=list(institution_ids))
    ids = set(visible.values_list("pk", flat=True))
    out: dict[dt.date, dict[int, dict[str, Any]]] = defaultdict(dict)

    def bump(day: dt.date, iid: int, name: str, value: float = 1) -> None:
        figures = out[_month(day)].setdefault(iid, dict.fromkeys(CAPABILITY_FIGURES, 0))
        figures[name] += value

    for iid, day in Transfer.objects.filter(
        department__institution_id__in=ids, introduced_on__gte=start, introduced_on__lte=end
    ).values_list("department__institution_id", "introduced_on"):
        if day is not None:
            bump(day, iid, "techniques_introduced")
    for iid, day in Transfer.objects.filter(
        department__institution_id__in=ids, independent_on__gte=start, independent_on__lte=end
    ).values_list("department__institution_id", "independent_on"):
        if day is not None:
            bump(day, iid, "techniques_independent")
    for iid, day, role in TransferCase.objects.filter(
        transfer__department__institution_id__in=ids,
        transfer__technique__level__gte=3,
        performed_on__gte=start,
        performed_on__lte=end,
    ).values_list("transfer__department__institution_id", "performed_on", "local_role"):
        bump(day, iid, "ops_34_total")
        if role in ("supervised", "independent"):
            bump(day, iid, "ops_34_local")
    activities = TeachingActivity.objects.filter(
        cancelled=False, starts_at__date__gte=start, starts_at__date__lte=end, leader__institution_id__in=ids
    ).select_related("leader")
    for activity in activities:
        bump(
            activity.starts_at.date(), activity.leader.institution_id, "teaching_hours_delivered", float(activity.hours)
        )
    for iid, when, hours in TeachingAttendance.objects.filter(
        activity__cancelled=False,
        activity__starts_at__date__gte=start,
        activity__starts_at__date__lte=end,
        practitioner__institution_id__in=ids,
    ).values_list("practitioner__institution_id", "activity__starts_at", "hours"):
        bump(when.date(), iid, "teaching_hours_received", float(hours))
    reached: dict[tuple[int, int], tuple[dt.date, int]] = {}

    def reach(key: tuple[int, int], day: dt.date, iid: int) -> None:
        if key not in reached or day < reached[key][0]:
            reached[key] = (day, iid)

    for mentee_id, milestone_id, day, iid in Assessment.objects.filter(
        result="passed", signed_off_at__isnull=False, mentee__programme__institution_id__in=ids
    ).values_list("mentee_id", "milestone_id", "assessed_on", "mentee__programme__institution_id"):
        reach((mentee_id, milestone_id), day, iid)
    # Milestones on a technique stage are reached by the ledger's evidence, too.
    on_technique = list(
        Milestone.objects.filter(programme__institution_id__in=ids, technique__isnull=False)
        .exclude(stage="")
        .select_related("programme")
    )
    mentees = list(
        Mentee.objects.filter(programme_id__in={m.programme_id for m in on_technique}).values_list(
            "pk", "programme_id", "practitioner_id"
        )
    )
    ledger = _ledger_reach_of({practitioner_id for _pk, _programme, practitioner_id in mentees})
    for milestone in on_technique:
        for mentee_id, programme_id, practitioner_id in mentees:
            if programme_id != milestone.programme_id:
                continue
            days = [
                day
                for stage, day in ledger[practitioner_id].get(milestone.technique_id or 0, {}).items()
                if stage_rank(stage) >= stage_rank(milestone.stage)
            ]
            if days:
                reach((mentee_id, milestone.pk), min(days), milestone.programme.institution_id)
    for day, iid in reached.values():
        if start <= day <= end:
            bump(day, iid, "milestones_reached")
    return dict(out)


CAPABILITY_FIGURES = (
    "techniques_introduced",
    "techniques_independent",
    "ops_34_total",
    "ops_34_local",
    "teaching_hours_delivered",
    "teaching_hours_received",
    "milestones_reached",
)


# --------------------------------------------------------------------------------------------
# Sign-in codes (the organiser's QR panel and the attendee's page)


def code_digest(code: str) -> str:
    """The digest a sign-in code is stored and looked up by: only the SHA-256 of a code is kept."""
    return hashlib.sha256(code.strip().encode()).hexdigest()


def sign_in_code_state(activity: TeachingActivity, *, code: str = "", code_id: int = 0) -> str:
    """Whether a sign-in code of the activity (given as the code itself or as its row id) is
    ``open``, ``used``, ``expired`` or ``unknown``; a code of a cancelled activity is expired."""
    from yilian.capability.models import SignInCode

    rows = SignInCode.objects.filter(activity=activity)
    if code:
        row = rows.filter(digest=code_digest(code)).first()
    elif code_id:
        row = rows.filter(pk=code_id).first()
    else:
        row = None
    if row is None:
        return "unknown"
    if row.used_at is not None:
        return "used"
    if row.expires_at < timezone.now() or activity.cancelled:
        return "expired"
    return "open"
