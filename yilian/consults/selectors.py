"""Reads of consults and MDT meetings, always scoped to what the acting user may see.

Visibility (minimum necessary access):
- on the requesting side: the requesting doctor, the person who wrote the request, the doctors
  of the requesting department, and the requesting institution's consult coordinators;
- on the consulted side: the consult's expert (or named expert), before one is chosen the
  experts of the specialty pool, the experts and chair of its MDT meeting, and the consulted
  institution's consult coordinators. An expert does not see the rest of the hospital's consults;
- the consortium office sees its consortia's consults; a system administrator sees all;
- reading the patient's identity on a consult (its page, its printable report) leaves an audit row.
Figures (counts and times, no patients) are for those holding the figures permission.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.consults import workflow
from yilian.consults.models import (
    Attachment,
    Consult,
    ConsultEvent,
    Kind,
    Meeting,
    Message,
    Opinion,
    Participant,
    Status,
)
from yilian.core.audit import audit_pii_read
from yilian.core.permissions import ROLE_PERMISSIONS, Permission
from yilian.patients.models import Patient
from yilian.registry.models import Institution, Membership, Practitioner
from yilian.registry.selectors import AnyUser, user_scope


def _practitioner_ids(user: AnyUser) -> list[int]:
    if not user.is_authenticated:
        return []
    return list(Practitioner.objects.filter(user_id=user.pk, is_active=True).values_list("pk", flat=True))


def _answering_q(user: AnyUser) -> Q | None:
    """The consults the user answers (or may take) as an expert: their own, named to them, their
    pool's (the specialty's department, holding the title wanted, as ``workflow.may_answer_for``
    has it), and the cases of their MDT meetings. None when they answer none."""
    answer_at = user_scope(user).institution_ids_with(Permission.ANSWER_CONSULTS)
    if not answer_at:
        return None
    assert user.pk is not None
    mine = Practitioner.objects.filter(user_id=user.pk, is_active=True)
    in_pool = Q(pk__in=[])
    for department_id, title in mine.exclude(department__isnull=True).values_list("department_id", "title"):
        rank = workflow.TITLE_RANK.get(title, 0)
        titles = ["", *(t for t, r in workflow.TITLE_RANK.items() if r <= rank)]
        in_pool |= Q(to_department_id=department_id, wanted_title__in=titles)
    pool = Q(expert__isnull=True, named_expert__isnull=True, meeting__isnull=True) & in_pool
    return Q(to_institution_id__in=answer_at) & (
        Q(expert__in=mine)
        | Q(named_expert__in=mine, expert__isnull=True)
        | pool
        | Q(meeting__participants__practitioner__in=mine)
        | Q(meeting__chair__in=mine)
    )


def _visible_q(user: AnyUser) -> Q | None:
    """None: no restriction (system administrator)."""
    scope = user_scope(user)
    if scope.is_global:
        return None
    q = Q(pk__in=[])
    assert user.pk is not None
    mine = Practitioner.objects.filter(user_id=user.pk, is_active=True)
    request_at = scope.institution_ids_with(Permission.REQUEST_CONSULTS)
    if request_at:
        q |= Q(from_institution_id__in=request_at) & (
            Q(created_by_id=user.pk)
            | Q(from_practitioner__in=mine)
            | Q(from_department_id__in=mine.exclude(department__isnull=True).values("department_id"))
        )
    answering = _answering_q(user)
    if answering is not None:
        q |= answering
    coordinate_at = scope.institution_ids_with(Permission.COORDINATE_CONSULTS)
    if coordinate_at:
        q |= Q(from_institution_id__in=coordinate_at) | Q(to_institution_id__in=coordinate_at)
    if Permission.OVERSEE_CONSULTS in scope.permissions and scope.consortium_ids:
        q |= Q(consortium_id__in=scope.consortium_ids)
    return q


def consult_queryset_visible_to(user: AnyUser) -> QuerySet[Consult]:
    if not user.is_authenticated:
        return Consult.objects.none()
    q = _visible_q(user)
    qs = Consult.objects.all() if q is None else Consult.objects.filter(pk__in=Consult.objects.filter(q).values("pk"))
    return qs


def can_use_consults(user: AnyUser) -> bool:
    perms = user_scope(user).permissions
    return bool(
        perms
        & {
            Permission.REQUEST_CONSULTS,
            Permission.ANSWER_CONSULTS,
            Permission.COORDINATE_CONSULTS,
            Permission.OVERSEE_CONSULTS,
        }
    )


def access_consult(user: AnyUser, public_id: str) -> Consult:
    """The consult with what its page shows: 404 when unknown, 403 when out of scope."""
    try:
        consult = (
            Consult.objects.select_related(
                "patient",
                "consortium__lead_institution",
                "agreement",
                "from_institution",
                "from_department",
                "from_practitioner",
                "to_institution",
                "to_department",
                "named_expert",
                "expert",
                "concluded_by",
                "meeting__chair",
                "created_by",
            )
            .filter(public_id=public_id)
            .first()
        )
    except (ValueError, TypeError, ValidationError):
        consult = None
    if consult is None:
        raise Http404(_("No such consult."))
    if not consult_queryset_visible_to(user).filter(pk=consult.pk).exists():
        if consult.expert is not None and workflow.may_answer_for(
            workflow.practitioner_of(user), consult, user, as_offered=True
        ):
            # Offered to this expert's pool, then taken by a colleague: a race lost (409), not a refusal.
            raise workflow.TransitionNotAllowed(
                consult,
                workflow.Action.ACCEPT,
                _("%(name)s has already taken this consult; it is no longer in your pool.")
                % {"name": consult.expert.name},
            )
        raise PermissionDenied(_("This consult was not sent to you or by you."))
    return consult


IDENTITY_FIELDS = ["name", "id_number", "phone", "address"]


def consult_patient(user: AnyUser, consult: Consult, *, purpose: str) -> Patient:
    """The consult's patient, unmasked, leaving an audit row (the caller checked access)."""
    audit_pii_read(actor=user, obj=consult.patient, fields=IDENTITY_FIELDS, purpose=f"{consult.number} {purpose}")
    return consult.patient


def attachment_open(user: AnyUser, public_id: str, attachment_id: str) -> Attachment:
    consult = access_consult(user, public_id)
    attachment = consult.attachments.filter(public_id=attachment_id).first()
    if attachment is None:
        raise Http404(_("No such file."))
    audit_pii_read(
        actor=user, obj=consult.patient, fields=["attachment"], purpose=f"{consult.number} {attachment.filename}"
    )
    return attachment


def consult_timeline(consult: Consult) -> list[ConsultEvent]:
    return list(consult.events.select_related("institution").order_by("at", "id"))


def consult_thread(consult: Consult) -> list[Message]:
    return list(consult.messages.select_related("institution").order_by("created_at", "id"))


@dataclass(frozen=True)
class CurrentOpinion:
    opinion: Opinion
    corrections: int  # earlier versions by the same expert


def consult_opinions(consult: Consult) -> list[CurrentOpinion]:
    """The latest opinion of each expert, with how many times it was corrected."""
    rows = list(consult.opinions.select_related("practitioner__department").order_by("created_at", "id"))
    latest: dict[int, Opinion] = {}
    count: dict[int, int] = defaultdict(int)
    for row in rows:
        latest[row.practitioner_id] = row
        count[row.practitioner_id] += 1
    return [CurrentOpinion(opinion=o, corrections=count[pid] - 1) for pid, o in latest.items()]


# ----------------------------------------------------------------------------------------
# Queues


class Box:
    ASKED = "asked"  # requested by me or my department
    FOR_ME = "for_me"  # sent to me, assigned to me, or my pool's, or my meetings' cases
    INCOMING = "incoming"  # all of my institution's incoming (coordinators)
    OUTGOING = "outgoing"  # all of my institution's outgoing (coordinators)
    OFFICE = "office"  # the consortium's (office)


@dataclass
class Queue:
    box: str
    rows: QuerySet[Consult]
    counts: dict[str, int] = field(default_factory=dict)


def boxes_for(user: AnyUser) -> list[str]:
    scope = user_scope(user)
    boxes = []
    if scope.institution_ids_with(Permission.REQUEST_CONSULTS):
        boxes.append(Box.ASKED)
    if scope.institution_ids_with(Permission.ANSWER_CONSULTS):
        boxes.append(Box.FOR_ME)
    if scope.institution_ids_with(Permission.COORDINATE_CONSULTS):
        boxes += [Box.INCOMING, Box.OUTGOING]
    if Permission.OVERSEE_CONSULTS in scope.permissions:
        boxes.append(Box.OFFICE)
    return boxes


def consult_queue(user: AnyUser, *, box: str, status: str = "", kind: str = "", overdue: bool = False) -> Queue:
    if box not in boxes_for(user):
        raise PermissionDenied(_("This list is not yours."))
    scope = user_scope(user)
    visible = consult_queryset_visible_to(user)
    mine = _practitioner_ids(user)
    if box == Box.ASKED:
        qs = visible.filter(from_institution_id__in=scope.institution_ids_with(Permission.REQUEST_CONSULTS))
        qs = qs.filter(
            Q(created_by_id=user.pk)
            | Q(from_practitioner_id__in=mine)
            | Q(from_department_id__in=Practitioner.objects.filter(pk__in=mine).values("department_id"))
        )
    elif box == Box.FOR_ME:
        # As an expert only: someone who also coordinates finds the rest under "incoming".
        answering = _answering_q(user)
        qs = Consult.objects.none() if answering is None else visible.filter(answering)
    elif box == Box.INCOMING:
        qs = visible.filter(to_institution_id__in=scope.institution_ids_with(Permission.COORDINATE_CONSULTS))
    elif box == Box.OUTGOING:
        qs = visible.filter(from_institution_id__in=scope.institution_ids_with(Permission.COORDINATE_CONSULTS))
    else:
        qs = visible if scope.is_global else visible.filter(consortium_id__in=scope.consortium_ids)
    if kind:
        qs = qs.filter(kind=kind)
    counts = {row["status"]: row["n"] for row in qs.order_by().values("status").annotate(n=Count("*"))}
    if overdue:
        now = timezone.now()
        qs = qs.filter(overdue_q(now))
    if status:
        qs = qs.filter(status=status)
    rows = qs.select_related(
        "patient", "from_institution", "to_institution", "to_department", "expert", "named_expert", "from_practitioner"
    ).order_by("-requested_at", "-id")
    return Queue(box=box, rows=rows, counts=dict(counts))


def due_at(consult: Consult) -> dt.datetime | None:
    """The deadline running now: to accept, else to answer (or schedule); None once it has ended."""
    if consult.status in workflow.AWAITING_ACCEPT:
        return consult.accept_due_at
    if consult.status in workflow.AWAITING_ANSWER:
        return consult.answer_due_at
    return None


def overdue_q(now: dt.datetime) -> Q:
    """The consults past the deadline running now (as ``due_at``), for queries."""
    return Q(status__in=workflow.AWAITING_ACCEPT, accept_due_at__lt=now) | Q(
        status__in=workflow.AWAITING_ANSWER, answer_due_at__lt=now
    )


def is_overdue(consult: Consult, now: dt.datetime | None = None) -> bool:
    due = due_at(consult)
    return due is not None and due < (now or timezone.now())


@dataclass(frozen=True)
class Worklist:
    to_accept: int = 0
    to_answer: int = 0
    to_close: int = 0
    overdue: int = 0

    @property
    def total(self) -> int:
        return self.to_accept + self.to_answer + self.to_close


def consult_worklist(user: AnyUser) -> Worklist | None:
    """What waits for the user (home page); None when the user has no part in consults."""
    boxes = boxes_for(user)
    if not boxes:
        return None
    now = timezone.now()
    to_accept = to_answer = to_close = overdue = 0
    answering = _answering_q(user) if Box.FOR_ME in boxes else None
    if answering is not None:
        # One query, whatever the queue's length: the consults the user answers as an expert.
        mine = Consult.objects.filter(pk__in=Consult.objects.filter(answering).values("pk"))
        late = overdue_q(now)
        row = mine.aggregate(
            to_accept=Count("pk", filter=Q(status__in=workflow.AWAITING_ACCEPT)),
            to_answer=Count("pk", filter=Q(status__in=workflow.AWAITING_ANSWER)),
            overdue=Count("pk", filter=late),
        )
        to_accept, to_answer, overdue = int(row["to_accept"]), int(row["to_answer"]), int(row["overdue"])
    if Box.ASKED in boxes:
        to_close = (
            consult_queue(user, box=Box.ASKED).rows.filter(status__in=[Status.ANSWERED, Status.CONCLUDED]).count()
        )
    return Worklist(to_accept=to_accept, to_answer=to_answer, to_close=to_close, overdue=overdue)


def answering(practitioners: QuerySet[Practitioner]) -> QuerySet[Practitioner]:
    """Those whose account answers consults at their own institution: one query for any number
    (an active membership there with a role that may answer)."""
    roles = [role for role, perms in ROLE_PERMISSIONS.items() if Permission.ANSWER_CONSULTS in perms]
    members = Membership.objects.filter(
        user_id=OuterRef("user_id"), institution_id=OuterRef("institution_id"), role__in=roles, is_active=True
    )
    return practitioners.filter(is_active=True, user__is_active=True).filter(Exists(members))


def pool_experts(consult: Consult) -> list[Practitioner]:
    """Who a coordinator may assign: the consulted institution's experts holding the title wanted,
    the specialty's department first."""
    candidates = answering(Practitioner.objects.filter(institution_id=consult.to_institution_id)).select_related(
        "department"
    )
    people = [p for p in candidates if workflow.meets_title(p, consult.wanted_title)]
    people.sort(key=lambda p: (p.department_id != consult.to_department_id, -workflow.TITLE_RANK.get(p.title, 0), p.pk))
    return people


def experts_at(institution: Institution) -> list[Practitioner]:
    return list(
        answering(Practitioner.objects.filter(institution=institution)).select_related("department").order_by("pk")
    )


# ----------------------------------------------------------------------------------------
# Meetings, conflicts and free times


def meeting_queryset_visible_to(user: AnyUser) -> QuerySet[Meeting]:
    scope = user_scope(user)
    if scope.is_global:
        return Meeting.objects.all()
    mine = _practitioner_ids(user)
    q = Q(participants__practitioner_id__in=mine) | Q(chair_id__in=mine)
    q |= Q(institution_id__in=scope.institution_ids_with(Permission.COORDINATE_CONSULTS))
    if Permission.OVERSEE_CONSULTS in scope.permissions:
        q |= Q(consortium_id__in=scope.consortium_ids)
    q |= Q(cases__in=consult_queryset_visible_to(user))
    return Meeting.objects.filter(pk__in=Meeting.objects.filter(q).values("pk"))


def access_meeting(user: AnyUser, public_id: str) -> Meeting:
    try:
        meeting = Meeting.objects.select_related("chair", "institution").filter(public_id=public_id).first()
    except (ValueError, TypeError, ValidationError):
        meeting = None
    if meeting is None:
        raise Http404(_("No such meeting."))
    if not meeting_queryset_visible_to(user).filter(pk=meeting.pk).exists():
        raise PermissionDenied(_("You are not part of this meeting."))
    return meeting


def meeting_cases(meeting: Meeting) -> list[Consult]:
    """The agenda in order. Callers show a case the user may not open by its number and status only."""
    return list(
        meeting.cases.select_related("patient", "from_institution", "from_practitioner").order_by("agenda_order", "id")
    )


def meeting_participants(meeting: Meeting) -> list[Participant]:
    return list(meeting.participants.select_related("practitioner__department").order_by("id"))


def meetings_between(user: AnyUser, start: dt.datetime, end: dt.datetime) -> list[Meeting]:
    return list(
        meeting_queryset_visible_to(user)
        .filter(starts_at__lt=end, ends_at__gt=start)
        .select_related("chair", "institution")
        .order_by("starts_at", "id")
    )


def sessions_between(user: AnyUser, start: dt.datetime, end: dt.datetime) -> list[Consult]:
    """Scheduled teleconsultations (not MDT cases) the user sees, in the window."""
    return list(
        consult_queryset_visible_to(user)
        .filter(kind=Kind.TELECONSULTATION, scheduled_start__lt=end, scheduled_end__gt=start)
        .exclude(status__in=[Status.CANCELLED, Status.DECLINED, Status.EXPIRED])
        .select_related("expert", "from_institution")
        .order_by("scheduled_start", "id")
    )


@dataclass(frozen=True)
class Conflict:
    practitioner_id: int
    text: str
    blocking: bool  # another session or leave: refused; a day on site elsewhere: a note


def conflicts_for(
    practitioner_ids: list[int],
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    *,
    exclude_meeting: int | None = None,
    exclude_consult: int | None = None,
) -> list[Conflict]:
    """What stands in the way of these experts meeting in this window."""
    names = {p.pk: p.name for p in Practitioner.objects.filter(pk__in=practitioner_ids)}
    out: list[Conflict] = []
    meetings = (
        Meeting.objects.filter(status=Meeting.MeetingStatus.PLANNED, starts_at__lt=ends_at, ends_at__gt=starts_at)
        .filter(Q(participants__practitioner_id__in=practitioner_ids) | Q(chair_id__in=practitioner_ids))
        .distinct()
    )
    if exclude_meeting is not None:
        meetings = meetings.exclude(pk=exclude_meeting)
    for meeting in meetings.prefetch_related("participants"):
        involved = {p.practitioner_id for p in meeting.participants.all()} | {meeting.chair_id}
        for pid in sorted(involved & set(practitioner_ids)):
            out.append(
                Conflict(
                    pid,
                    _("%(name)s is in the MDT meeting “%(title)s” from %(start)s to %(end)s.")
                    % {
                        "name": names[pid],
                        "title": meeting.title,
                        "start": timezone.localtime(meeting.starts_at).strftime("%Y-%m-%d %H:%M"),
                        "end": timezone.localtime(meeting.ends_at).strftime("%H:%M"),
                    },
                    True,
                )
            )
    sessions = Consult.objects.filter(
        kind=Kind.TELECONSULTATION,
        status__in=[Status.SCHEDULED, Status.IN_DISCUSSION],
        scheduled_start__lt=ends_at,
        scheduled_end__gt=starts_at,
        expert_id__in=practitioner_ids,
    )
    if exclude_consult is not None:
        sessions = sessions.exclude(pk=exclude_consult)
    for session in sessions:
        assert session.expert_id is not None and session.scheduled_start is not None
        out.append(
            Conflict(
                session.expert_id,
                _("%(name)s has the teleconsultation %(number)s at %(start)s.")
                % {
                    "name": names[session.expert_id],
                    "number": session.number,
                    "start": timezone.localtime(session.scheduled_start).strftime("%Y-%m-%d %H:%M"),
                },
                True,
            )
        )
    out += _stationing_conflicts(practitioner_ids, names, starts_at, ends_at)
    return out


def _stationing_conflicts(
    practitioner_ids: list[int], names: dict[int, str], starts_at: dt.datetime, ends_at: dt.datetime
) -> list[Conflict]:
    """Leave blocks; a rostered day on site at a host hospital is a note (the meeting is online)."""
    from yilian.dispatch import selectors as stationing

    first, last = timezone.localdate(starts_at), timezone.localdate(ends_at)
    out: list[Conflict] = []
    for pid, days in stationing.leave_days(practitioner_ids, first, last).items():
        for day in sorted(days):
            out.append(Conflict(pid, _("%(name)s is on leave on %(day)s.") % {"name": names[pid], "day": day}, True))
    for pid, day, host in stationing.on_site_days(practitioner_ids, first, last):
        out.append(
            Conflict(
                pid,
                _("%(name)s is on site at %(host)s on %(day)s (join online from there).")
                % {"name": names[pid], "host": host, "day": day},
                False,
            )
        )
    return out


@dataclass(frozen=True)
class Slot:
    starts_at: dt.datetime
    ends_at: dt.datetime
    notes: list[str]


def free_slots(
    practitioner_ids: list[int],
    *,
    first_day: dt.date,
    days: int = 10,
    minutes: int = 60,
    hours: tuple[int, ...] = (8, 10, 14, 16),
    limit: int = 8,
    exclude_meeting: int | None = None,
) -> list[Slot]:
    """Times on working days when none of these experts has a blocking conflict, earliest first;
    each with its notes (who is on site where)."""
    from yilian.dispatch import selectors as stationing

    horizon = stationing.calendar_horizon(first_day, first_day + dt.timedelta(days=days))
    now = timezone.now()
    slots: list[Slot] = []
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        if day not in horizon.working_days:
            continue
        for hour in hours:
            start = timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))
            if start < now:
                continue
            end = start + dt.timedelta(minutes=minutes)
            conflicts = conflicts_for(practitioner_ids, start, end, exclude_meeting=exclude_meeting)
            if any(c.blocking for c in conflicts):
                continue
            slots.append(Slot(start, end, [c.text for c in conflicts]))
            if len(slots) >= limit:
                return slots
    return slots


# ----------------------------------------------------------------------------------------
# Figures for the indicators


@dataclass
class ConsultFigures:
    institution_id: int
    institution_name: str
    requested: int = 0
    delivered_by_kind: dict[str, int] = field(default_factory=dict)
    answered_for_others: int = 0  # delivered as the consulted institution
    closed: int = 0
    referral_avoided: int = 0
    response_hours: list[float] = field(default_factory=list)  # eConsults: request to first answer
    reading_minutes: list[float] = field(default_factory=list)  # urgent readings, frozen sections included

    @property
    def delivered(self) -> int:
        return sum(self.delivered_by_kind.values())

    @property
    def median_response_hours(self) -> float | None:
        return _median(self.response_hours)

    @property
    def p90_response_hours(self) -> float | None:
        return _p90(self.response_hours)

    @property
    def median_reading_minutes(self) -> float | None:
        return _median(self.reading_minutes)

    @property
    def p90_reading_minutes(self) -> float | None:
        return _p90(self.reading_minutes)

    @property
    def referral_avoided_share(self) -> float | None:
        return round(self.referral_avoided / self.closed, 3) if self.closed else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _p90(values: list[float]) -> float | None:
    """The inclusive 90th percentile (one value: itself)."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=10, method="inclusive")[-1], 1)


def consult_figures(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> list[ConsultFigures]:
    """Per requesting institution: consults requested and delivered (answered or concluded) in the
    period by kind; response time (request to first answer) median and 90th percentile, eConsults
    in hours (the Champlain BASE anchor) and urgent readings in minutes; the share of close-outs
    with a referral avoided. Per consulted institution: consults it delivered. Scoped to the
    institutions the user may see figures for (of ``institution_ids`` when given). ``end`` is
    inclusive."""
    figures = _consult_figures(user, start, end, institution_ids, by_month=False).get(None, {})
    return sorted(figures.values(), key=lambda f: f.institution_name)


def consult_figures_by_month(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[dt.date, dict[int, ConsultFigures]]:
    """``consult_figures`` split by month (China time; each event in the month it happened:
    requested, answered, closed): month (its first day) -> institution id -> figures."""
    by_month = _consult_figures(user, start, end, institution_ids, by_month=True)
    return {month: figures for month, figures in by_month.items() if month is not None}


def _consult_figures(
    user: AnyUser, start: dt.date, end: dt.date, institution_ids: list[int] | None, *, by_month: bool
) -> dict[dt.date | None, dict[int, ConsultFigures]]:
    scope = user_scope(user)
    if Permission.VIEW_CONSULT_FIGURES not in scope.permissions:
        raise PermissionDenied(_("You may not see consultation figures."))
    if end < start:
        raise ValidationError({"end": _("The end of the period is before its start.")})
    from yilian.registry.selectors import institution_queryset_visible_to

    institutions = institution_queryset_visible_to(user)
    if institution_ids is not None:
        institutions = institutions.filter(pk__in=institution_ids)
    visible = {i.pk: i.name for i in institutions}
    lo = timezone.make_aware(dt.datetime.combine(start, dt.time.min))
    hi = timezone.make_aware(dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min))
    out: dict[dt.date | None, dict[int, ConsultFigures]] = {}

    def row(iid: int, at: dt.datetime) -> ConsultFigures:
        month = timezone.localtime(at).date().replace(day=1) if by_month else None
        figures = out.setdefault(month, {})
        if iid not in figures:
            figures[iid] = ConsultFigures(iid, visible[iid])
        return figures[iid]

    ids = list(visible)
    requested = Consult.objects.filter(requested_at__gte=lo, requested_at__lt=hi, from_institution_id__in=ids)
    for iid, at in requested.values_list("from_institution_id", "requested_at"):
        row(iid, at).requested += 1
    # Delivered when first answered or concluded (a later follow-up does not undo it).
    delivered = Consult.objects.filter(answered_at__gte=lo, answered_at__lt=hi).filter(
        Q(from_institution_id__in=ids) | Q(to_institution_id__in=ids)
    )
    for c in delivered.values("from_institution_id", "to_institution_id", "kind", "requested_at", "answered_at"):
        answered = c["answered_at"]
        assert answered is not None  # filtered on it
        if c["from_institution_id"] in visible:
            r = row(c["from_institution_id"], answered)
            r.delivered_by_kind[c["kind"]] = r.delivered_by_kind.get(c["kind"], 0) + 1
            waited = (answered - c["requested_at"]).total_seconds()
            if c["kind"] == Kind.ECONSULT:
                r.response_hours.append(waited / 3600)
            elif c["kind"] == Kind.READING:
                r.reading_minutes.append(waited / 60)
        if c["to_institution_id"] in visible:
            row(c["to_institution_id"], answered).answered_for_others += 1
    closed = Consult.objects.filter(
        status=Status.CLOSED, closed_at__gte=lo, closed_at__lt=hi, from_institution_id__in=ids
    )
    for iid, avoided, closed_at in closed.values_list("from_institution_id", "referral_avoided", "closed_at"):
        assert closed_at is not None  # filtered on it
        r = row(iid, closed_at)
        r.closed += 1
        r.referral_avoided += bool(avoided)
    return out
