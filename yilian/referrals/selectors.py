"""Reads of referrals and their patients, always scoped to what the acting user may see.

Visibility:
- staff holding the referral-viewing permission at an institution see the referrals sent
  from it and those addressed to it now (after a forward, the former receiver no longer does);
- a consortium office sees every referral of its consortia;
- a draft (perhaps without the patient's consent yet) is seen only by the referring institution;
- a system administrator sees all;
- a patient is seen only through a referral the user sees; reading a patient's identifying
  data (name, ID number, phone, address, contact) leaves an audit row (``patient_identity``).
A board is three queries whatever the data size: the counts per status, the page's total and
the page's rows (with their patients and institutions joined).
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.audit import audit_pii_read
from yilian.core.permissions import ROLE_PERMISSIONS, Permission, Role
from yilian.patients.models import Patient
from yilian.referrals import workflow
from yilian.referrals.models import Direction, Referral, ReferralAttachment, ReferralEvent, Status
from yilian.registry.models import Institution
from yilian.registry.selectors import AnyUser, Scope, institution_queryset_visible_to, user_scope


def staff_institution_ids(scope: Scope) -> frozenset[int]:
    """Institutions whose own referrals the user works on: clinical and coordinating roles.

    A consortium-office membership also names an institution (the lead hospital), but the office
    sees referrals by consortium, not all of its hospital's patients (minimum necessary access).
    """
    return frozenset(
        i
        for role, i in scope.roles_at
        if role != Role.CONSORTIUM_OFFICE and Permission.VIEW_REFERRALS in ROLE_PERMISSIONS[role]
    )


def _visible_q(user: AnyUser) -> Q | None:
    """None: no restriction (system administrator)."""
    scope = user_scope(user)
    if scope.is_global:
        return None
    q = Q(pk__in=[])
    sent = ~Q(status=Status.DRAFT)  # a draft is seen by the referring side only, until it is sent
    staff_at = staff_institution_ids(scope)
    if staff_at:
        q |= Q(from_institution_id__in=staff_at) | (Q(to_institution_id__in=staff_at) & sent)
    if Permission.VIEW_REFERRALS in scope.permissions and scope.consortium_ids:
        q |= Q(consortium_id__in=scope.consortium_ids) & sent
    return q


def referral_queryset_visible_to(user: AnyUser) -> QuerySet[Referral]:
    if Permission.VIEW_REFERRALS not in user_scope(user).permissions:
        return Referral.objects.none()
    q = _visible_q(user)
    return Referral.objects.all() if q is None else Referral.objects.filter(q)


def access_referral(user: AnyUser, public_id: str) -> Referral:
    """The referral with what its page shows: 404 when unknown, 403 when out of scope."""
    try:
        referral = (
            Referral.objects.select_related(
                "patient",
                "consortium__lead_institution",
                "from_institution",
                "from_department",
                "from_practitioner",
                "to_institution",
                "to_department",
                "created_by",
            )
            .filter(public_id=public_id)
            .first()
        )
    except (ValueError, TypeError, ValidationError):  # not a UUID (Django raises ValidationError)
        referral = None
    if referral is None:
        raise Http404(_("No such referral."))
    if not referral_queryset_visible_to(user).filter(pk=referral.pk).exists():
        raise PermissionDenied(_("This referral does not involve your institution."))
    return referral


def attachment_open(user: AnyUser, public_id: str, attachment_id: str) -> ReferralAttachment:
    """An attachment of a referral the user sees. A clinical document is the patient's data:
    opening it leaves the same audit trace as reading the patient's identity."""
    referral = access_referral(user, public_id)
    attachment = referral.attachments.filter(public_id=attachment_id).first()
    if attachment is None:
        raise Http404(_("No such file."))
    audit_pii_read(
        actor=user, obj=referral.patient, fields=["attachment"], purpose=f"{referral.number} {attachment.filename}"
    )
    return attachment


def referral_by_status_token(token: str) -> Referral | None:
    """For the patient's status page: no login, only the unguessable token."""
    if not token or len(token) > 64:
        return None
    return Referral.objects.select_related("to_institution", "to_department").filter(status_token=token).first()


def referral_timeline(referral: Referral) -> list[ReferralEvent]:
    return list(referral.events.select_related("institution").order_by("at", "id"))


def referral_institutions_for(user: AnyUser) -> list[Institution]:
    """Institutions whose boards the user may open (their own, where they may view referrals)."""
    ids = staff_institution_ids(user_scope(user))
    return list(Institution.objects.filter(pk__in=ids).order_by("code"))


class Box:
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    OFFICE = "office"


@dataclass
class BoardFilters:
    status: str = ""
    urgency: str = ""
    direction: str = ""
    department: str = ""  # public id of a department on this side
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    overdue: bool = False
    query: str = ""  # referral number


@dataclass
class Board:
    box: str
    institution: Institution | None
    rows: QuerySet[Referral]
    counts: dict[str, int] = field(default_factory=dict)


def _overdue_q(now: dt.datetime) -> Q:
    return Q(status__in=workflow.AWAITING_RECEIPT, receive_due_at__lt=now) | Q(
        status__in=workflow.AWAITING_DECISION, decide_due_at__lt=now
    )


def referral_board(
    user: AnyUser, *, box: str, institution: Institution | None, filters: BoardFilters | None = None
) -> Board:
    """Incoming or outgoing referrals of one institution, or the office's consortium referrals."""
    filters = filters or BoardFilters()
    scope = user_scope(user)
    base = referral_queryset_visible_to(user)
    if box == Box.OFFICE:
        if Permission.MANAGE_REFERRAL_ROUTING not in scope.permissions:
            raise PermissionDenied(_("Only the consortium office has this board."))
        qs = base if scope.is_global else base.filter(consortium_id__in=scope.consortium_ids)
        qs = qs.exclude(status=Status.DRAFT)
    else:
        if institution is None:
            raise Http404(_("Choose an institution."))
        if not (scope.is_global or institution.pk in staff_institution_ids(scope)):
            raise PermissionDenied(_("You do not work at this institution."))
        # Staff of the institution see all its referrals, so the visibility filter would add
        # nothing but an OR on from_institution that keeps the counts off the covering
        # (to/from_institution, status) indexes: a table lookup per referral on a busy board.
        scoped = Referral.objects.all()
        if box == Box.INCOMING:
            qs = scoped.filter(to_institution=institution).exclude(status=Status.DRAFT)
        else:
            qs = scoped.filter(from_institution=institution)
    if filters.urgency:
        qs = qs.filter(urgency=filters.urgency)
    if filters.direction:
        qs = qs.filter(direction=filters.direction)
    if filters.department:
        side = "from_department" if box == Box.OUTGOING else "to_department"
        qs = qs.filter(**{f"{side}__public_id": filters.department})
    if filters.date_from:
        qs = qs.filter(created_at__gte=_start_of(filters.date_from))
    if filters.date_to:
        qs = qs.filter(created_at__lt=_start_of(filters.date_to + dt.timedelta(days=1)))
    if filters.query:
        qs = qs.filter(number__iexact=filters.query.strip())
    # COUNT(*), not COUNT(id): PostgreSQL can then answer from the (institution, status) index alone.
    counts = {row["status"]: row["n"] for row in qs.order_by().values("status").annotate(n=Count("*"))}
    if filters.overdue:
        qs = qs.filter(_overdue_q(timezone.now()))
    if filters.status:
        qs = qs.filter(status=filters.status)
    rows = qs.select_related(
        "patient", "from_institution", "to_institution", "from_department", "to_department"
    ).order_by("-created_at", "-id")
    return Board(box=box, institution=institution, rows=rows, counts=counts)


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def is_overdue(referral: Referral, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    if referral.status in workflow.AWAITING_RECEIPT and referral.receive_due_at and referral.receive_due_at < now:
        return True
    return bool(
        referral.status in workflow.AWAITING_DECISION and referral.decide_due_at and referral.decide_due_at < now
    )


@dataclass(frozen=True)
class Worklist:
    """What waits for the user at their institutions (home page)."""

    to_decide: int = 0
    overdue: int = 0
    to_acknowledge: int = 0
    arriving_today: int = 0

    @property
    def total(self) -> int:
        return self.to_decide + self.to_acknowledge + self.arriving_today


def referral_worklist(user: AnyUser) -> Worklist | None:
    """None when the user handles no referrals. One query."""
    scope = user_scope(user)
    receive_at = scope.institution_ids_with(Permission.MANAGE_REFERRALS_RECEIVE)
    send_at = scope.institution_ids_with(Permission.MANAGE_REFERRALS_SEND)
    if not receive_at and not send_at:
        return None
    now = timezone.now()
    today = timezone.localdate()
    incoming = Q(to_institution_id__in=receive_at)
    row = Referral.objects.filter(incoming | Q(from_institution_id__in=send_at)).aggregate(
        to_decide=Count("pk", filter=incoming & Q(status__in=workflow.AWAITING_DECISION)),
        overdue=Count("pk", filter=incoming & _overdue_q(now)),
        to_acknowledge=Count("pk", filter=Q(from_institution_id__in=send_at, status=Status.OUTCOME_RETURNED)),
        arriving_today=Count(
            "pk",
            filter=incoming
            & Q(
                status=Status.SCHEDULED,
                scheduled_at__gte=_start_of(today),
                scheduled_at__lt=_start_of(today + dt.timedelta(days=1)),
            ),
        ),
    )
    return Worklist(**{k: int(v or 0) for k, v in row.items()})


# ----------------------------------------------------------------------------------------
# Patients


def patient_queryset_visible_to(user: AnyUser) -> QuerySet[Patient]:
    referrals = referral_queryset_visible_to(user)
    return Patient.objects.filter(pk__in=referrals.values("patient_id"))


def access_patient(user: AnyUser, public_id: str) -> Patient:
    try:
        patient = Patient.objects.select_related("residence_region", "merged_into").filter(public_id=public_id).first()
    except (ValueError, TypeError, ValidationError):  # not a UUID
        patient = None
    if patient is None:
        raise Http404(_("No such patient."))
    visible = patient_queryset_visible_to(user).filter(pk=patient.pk).exists()
    # A merged record stays readable to whoever sees the record it was merged into.
    if not visible and patient.merged_into_id is not None:
        visible = patient_queryset_visible_to(user).filter(pk=patient.merged_into_id).exists()
    if not visible:
        raise PermissionDenied(_("This patient is not referred to or from your institution."))
    return patient


IDENTITY_FIELDS = ["name", "id_number", "phone", "address", "emergency_contact"]


def patient_identity(user: AnyUser, patient: Patient, *, purpose: str) -> Patient:
    """Hand out the unmasked patient, leaving an audit row; the caller has already checked access."""
    audit_pii_read(actor=user, obj=patient, fields=IDENTITY_FIELDS, purpose=purpose)
    return patient


def patient_referrals(user: AnyUser, patient: Patient) -> QuerySet[Referral]:
    return (
        referral_queryset_visible_to(user)
        .filter(Q(patient=patient) | Q(patient__merged_into=patient))
        .select_related("from_institution", "to_institution")
        .order_by("-created_at")
    )


def patient_find_by_id_number(user: AnyUser, id_number: str) -> Patient | None:
    """For a merge: the identified record with this number, if the user may see it."""
    return patient_queryset_visible_to(user).filter(id_number=id_number.strip().upper()).first()


# ----------------------------------------------------------------------------------------
# Figures for the indicators


@dataclass
class InstitutionFigures:
    institution_id: int
    up_out: int = 0
    down_out: int = 0
    lateral_out: int = 0
    received_in: int = 0
    accepted: int = 0
    declined: int = 0
    arrived: int = 0
    no_show: int = 0
    outcome_returned: int = 0
    closed: int = 0
    hours_to_receive: list[float] = field(default_factory=list)
    hours_to_decide: list[float] = field(default_factory=list)
    hours_to_outcome: list[float] = field(default_factory=list)

    @staticmethod
    def _rate(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    @staticmethod
    def _median(values: list[float]) -> float | None:
        return round(statistics.median(values), 2) if values else None

    @property
    def acceptance_rate(self) -> float | None:
        return self._rate(self.accepted, self.accepted + self.declined)

    @property
    def decline_rate(self) -> float | None:
        return self._rate(self.declined, self.accepted + self.declined)

    @property
    def loop_closure_rate(self) -> float | None:
        """Of the referrals whose patient arrived, those closed: the outcome came back and the
        referring side acknowledged it (the sender knows what happened)."""
        return self._rate(self.closed, self.arrived)

    @property
    def no_show_rate(self) -> float | None:
        return self._rate(self.no_show, self.arrived + self.no_show)

    @property
    def median_hours_to_receive(self) -> float | None:
        return self._median(self.hours_to_receive)

    @property
    def median_hours_to_decide(self) -> float | None:
        return self._median(self.hours_to_decide)

    @property
    def median_hours_to_outcome(self) -> float | None:
        return self._median(self.hours_to_outcome)


def referral_figures(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[int, InstitutionFigures]:
    """Per institution, for referrals sent in [start, end): counts, rates and median times.

    Outgoing counts (up/down/lateral) belong to the referring institution; receipt, decision,
    arrival, no-show and outcome belong to the institution that received the referral.
    Needs the figures permission; institutions are limited to those the user may see.
    """
    return _referral_figures(user, start, end, institution_ids, by_month=False).get(None, {})


def referral_figures_by_month(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[dt.date, dict[int, InstitutionFigures]]:
    """``referral_figures`` split by the month the referral was sent in (China time): month (its
    first day) -> institution id -> figures. The counts of the months add up to the range's."""
    by_month = _referral_figures(user, start, end, institution_ids, by_month=True)
    return {month: figures for month, figures in by_month.items() if month is not None}


def _referral_figures(
    user: AnyUser, start: dt.date, end: dt.date, institution_ids: list[int] | None, *, by_month: bool
) -> dict[dt.date | None, dict[int, InstitutionFigures]]:
    scope = user_scope(user)
    if Permission.VIEW_REFERRAL_FIGURES not in scope.permissions:
        raise PermissionDenied(_("You may not see referral figures."))
    visible = institution_queryset_visible_to(user)
    if institution_ids is not None:
        visible = visible.filter(pk__in=institution_ids)
    ids = set(visible.values_list("pk", flat=True))
    rows = Referral.objects.filter(sent_at__gte=_start_of(start), sent_at__lt=_start_of(end)).filter(
        Q(from_institution_id__in=ids) | Q(to_institution_id__in=ids)
    )
    out: dict[dt.date | None, dict[int, InstitutionFigures]] = {}
    out_field = {Direction.UP: "up_out", Direction.DOWN: "down_out", Direction.LATERAL: "lateral_out"}
    arrived_statuses = {Status.ARRIVED, Status.IN_TREATMENT, Status.OUTCOME_RETURNED, Status.CLOSED}

    def figure(month: dt.date | None, iid: int) -> InstitutionFigures:
        of_month = out.setdefault(month, {})
        if iid not in of_month:
            of_month[iid] = InstitutionFigures(iid)
        return of_month[iid]

    for r in rows.values_list(
        "from_institution_id", "to_institution_id", "direction", "status", "sent_at", "received_at", "decided_at",
        "arrived_at", "outcome_at",
    ).iterator(chunk_size=5000):  # fmt: skip
        frm, to, direction, status, sent, received, decided, arrived, outcome = r
        month = timezone.localtime(sent).date().replace(day=1) if by_month and sent is not None else None
        if frm in ids:
            f = figure(month, frm)
            setattr(f, out_field[Direction(direction)], getattr(f, out_field[Direction(direction)]) + 1)
        if to in ids and sent is not None:
            f = figure(month, to)
            if received is not None:
                f.received_in += 1
                f.hours_to_receive.append((received - sent).total_seconds() / 3600)
            if decided is not None:
                f.hours_to_decide.append((decided - sent).total_seconds() / 3600)
                if status == Status.DECLINED:
                    f.declined += 1
                else:
                    f.accepted += 1
            if status in arrived_statuses or arrived is not None:
                f.arrived += 1
            if status == Status.NO_SHOW:
                f.no_show += 1
            if status == Status.CLOSED:
                f.closed += 1
            if outcome is not None:
                f.outcome_returned += 1
                f.hours_to_outcome.append((outcome - sent).total_seconds() / 3600)
    return out
