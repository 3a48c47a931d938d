"""Expert stationing (专家下沉派驻): programmes, assignments, host demand, the working calendar,
rosters and their optimisation runs, attendance and work logs."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yilian.core.models import BaseModel
from yilian.registry.models import (
    Agreement,
    Consortium,
    Department,
    Institution,
    Practitioner,
    localized,
)


class ProgrammeStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class Programme(BaseModel):
    """One batch of experts a sending (lead) institution stations at a host institution."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    consortium = models.ForeignKey(
        Consortium, on_delete=models.PROTECT, related_name="stationing_programmes", verbose_name=_("consortium")
    )
    agreement = models.ForeignKey(
        Agreement,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stationing_programmes",
        verbose_name=_("agreement"),
    )
    sending_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="programmes_sent", verbose_name=_("sending institution")
    )
    host_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="programmes_hosted", verbose_name=_("host institution")
    )
    batch = models.PositiveSmallIntegerField(_("batch"), default=1, validators=[MinValueValidator(1)])
    title_zh = models.CharField(_("title (Chinese)"), max_length=120)
    title_en = models.CharField(_("title (English)"), max_length=160, blank=True)
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=ProgrammeStatus.choices, default=ProgrammeStatus.ACTIVE
    )
    require_location = models.BooleanField(
        _("check-in must be on site"),
        default=False,
        help_text=_("Check-ins are compared with the host's coordinates and refused when too far away."),
    )
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["-starts_on", "code"]
        verbose_name = _("stationing programme")
        verbose_name_plural = _("stationing programmes")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=models.F("starts_on")), name="programme_dates"
            ),
            models.CheckConstraint(
                condition=~Q(sending_institution=models.F("host_institution")), name="programme_two_institutions"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def title(self) -> str:
        return localized(self.title_zh, self.title_en)


class ObjectiveKind(models.TextChoices):
    CENTRE = "centre", _("Diagnosis-and-treatment centre")
    KEY_DISCIPLINE = "key_discipline", _("Key clinical discipline")
    TECHNIQUE = "technique", _("Technique to introduce")
    MANAGEMENT = "management", _("Management")


class Objective(BaseModel):
    programme = models.ForeignKey(
        Programme, on_delete=models.CASCADE, related_name="objectives", verbose_name=_("programme")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=ObjectiveKind.choices)
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=160, blank=True)
    target = models.CharField(_("target"), max_length=200, blank=True)

    class Meta:
        ordering = ["kind", "id"]
        verbose_name = _("objective")
        verbose_name_plural = _("objectives")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return localized(self.name_zh, self.name_en)


class HostRole(models.TextChoices):
    BUSINESS_DIRECTOR = "business_director", _("Business director")
    DISCIPLINE_LEADER = "discipline_leader", _("Discipline leader")
    CENTRE_CHIEF = "centre_chief", _("Chief of a centre")
    MANAGEMENT_POST = "management_post", _("Hospital management post")
    CLINICAL_MEMBER = "clinical_member", _("Clinical member")


class Commitment(models.TextChoices):
    DAYS_PER_WEEK = "days_per_week", _("Days per week")
    FULL_TIME = "full_time", _("Full-time residence")


weekdays_validator = RegexValidator(r"^[1-7]{0,7}$", _("ISO weekday numbers, e.g. 2 for Tuesday."))


class Assignment(BaseModel):
    """One expert stationed in one host department under a programme."""

    programme = models.ForeignKey(
        Programme, on_delete=models.PROTECT, related_name="assignments", verbose_name=_("programme")
    )
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="assignments", verbose_name=_("expert")
    )
    host_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="hosted_assignments", verbose_name=_("host department")
    )
    home_department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sent_assignments",
        verbose_name=_("home department"),
    )
    role = models.CharField(_("role at the host"), max_length=20, choices=HostRole.choices)
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"), null=True, blank=True)
    commitment = models.CharField(
        _("commitment"), max_length=16, choices=Commitment.choices, default=Commitment.DAYS_PER_WEEK
    )
    days_per_week = models.PositiveSmallIntegerField(
        _("on-site days per week"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(7)]
    )
    blocked_weekdays = models.CharField(
        _("home-duty weekdays"), max_length=7, blank=True, validators=[weekdays_validator]
    )
    blocked_note = models.CharField(_("home duties"), max_length=120, blank=True)
    withdrawn_on = models.DateField(_("withdrawn on"), null=True, blank=True)
    withdrawn_reason = models.CharField(_("reason for withdrawal"), max_length=200, blank=True)

    class Meta:
        ordering = ["programme", "host_department", "starts_on", "id"]
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=models.F("starts_on")), name="assignment_dates"
            ),
            models.CheckConstraint(
                condition=Q(commitment="full_time", days_per_week__isnull=True)
                | Q(commitment="days_per_week", days_per_week__gte=1, days_per_week__lte=7),
                name="assignment_commitment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.practitioner.name_zh} → {self.host_department}"

    @property
    def weekly_days(self) -> int | None:
        """On-site days per week, None for full-time residence."""
        return self.days_per_week if self.commitment == Commitment.DAYS_PER_WEEK else None

    @property
    def blocked_iso_weekdays(self) -> frozenset[int]:
        return frozenset(int(c) for c in self.blocked_weekdays)

    @property
    def last_day(self) -> dt.date | None:
        """The last day the assignment runs: the earlier of its end and its withdrawal."""
        days = [d for d in (self.ends_on, self.withdrawn_on) if d is not None]
        return min(days) if days else None


class Leave(BaseModel):
    """Days an expert is away (leave, training, illness): never planned on site."""

    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.CASCADE, related_name="leaves", verbose_name=_("expert")
    )
    starts_on = models.DateField(_("from"))
    ends_on = models.DateField(_("to"))
    reason = models.CharField(_("reason"), max_length=120, blank=True)

    class Meta:
        ordering = ["starts_on"]
        verbose_name = _("leave")
        verbose_name_plural = _("leave")
        constraints = [models.CheckConstraint(condition=Q(ends_on__gte=models.F("starts_on")), name="leave_dates")]

    def __str__(self) -> str:
        return f"{self.practitioner.name_zh} {self.starts_on}–{self.ends_on}"


class HostDemand(BaseModel):
    """What a host department needs from the experts of one programme (two programmes at one host,
    from two consortia or two batches, each state their own)."""

    programme = models.ForeignKey(
        Programme, on_delete=models.CASCADE, related_name="demands", verbose_name=_("programme")
    )
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="stationing_demands", verbose_name=_("host department")
    )
    days_per_week = models.PositiveSmallIntegerField(
        _("expert-days per week (at least)"), default=0, validators=[MaxValueValidator(70)]
    )
    need_weekdays = models.CharField(
        _("weekdays that need an expert on site"),
        max_length=7,
        blank=True,
        validators=[weekdays_validator],
        help_text=_("E.g. 4 when Thursday is the operating day."),
    )
    need_label_zh = models.CharField(_("need (Chinese)"), max_length=40, blank=True)
    need_label_en = models.CharField(_("need (English)"), max_length=60, blank=True)

    class Meta:
        verbose_name = _("host demand")
        verbose_name_plural = _("host demand")
        constraints = [models.UniqueConstraint(fields=["programme", "department"], name="host_demand_once")]

    def __str__(self) -> str:
        return str(self.department)

    @property
    def need_label(self) -> str:
        return localized(self.need_label_zh, self.need_label_en)


class CalendarDay(models.Model):
    """One day of the working calendar entered as data: a public holiday or an adjusted working
    weekend. Wins over the statutory table shipped with the software (and fills years it lacks)."""

    date = models.DateField(_("date"), unique=True)
    is_workday = models.BooleanField(_("working day"))
    name_zh = models.CharField(_("name (Chinese)"), max_length=40, blank=True)
    name_en = models.CharField(_("name (English)"), max_length=60, blank=True)

    class Meta:
        ordering = ["date"]
        verbose_name = _("calendar day")
        verbose_name_plural = _("working calendar")

    def __str__(self) -> str:
        return f"{self.date} {self.name_zh}"

    @property
    def name(self) -> str:
        return localized(self.name_zh, self.name_en)


class DayKind(models.TextChoices):
    ON_SITE = "on_site", _("On site")
    TRAVEL = "travel", _("Travel")
    OFF = "off", _("Not on site")


class RosterDay(models.Model):
    """A planned day of an assignment. ``is_fixed`` days were set by a person and are kept when the
    roster is re-optimised (a fixed OFF day keeps the solver away from that day)."""

    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="roster_days", verbose_name=_("assignment")
    )
    date = models.DateField(_("date"))
    kind = models.CharField(_("kind"), max_length=10, choices=DayKind.choices)
    is_fixed = models.BooleanField(_("fixed by hand"), default=False)
    fixed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["date"]
        verbose_name = _("roster day")
        verbose_name_plural = _("roster days")
        constraints = [models.UniqueConstraint(fields=["assignment", "date"], name="roster_day_once")]
        indexes = [models.Index(fields=["date", "kind"])]

    def __str__(self) -> str:
        return f"{self.date} {self.kind}"


class RosterRun(BaseModel):
    """One optimisation of a programme's roster over a horizon, with the solver's figures."""

    programme = models.ForeignKey(
        Programme, on_delete=models.CASCADE, related_name="roster_runs", verbose_name=_("programme")
    )
    starts_on = models.DateField(_("from"))
    weeks = models.PositiveSmallIntegerField(_("weeks"), validators=[MinValueValidator(1), MaxValueValidator(12)])
    status = models.CharField(_("solver status"), max_length=12)
    objective = models.FloatField(_("objective"))
    bound = models.FloatField(_("bound"))
    wall_time = models.FloatField(_("seconds"))
    demand_missing = models.PositiveIntegerField(_("expert-days short"), default=0)
    commitment_missing = models.PositiveIntegerField(_("committed days not planned"), default=0)
    travel_days = models.PositiveIntegerField(_("travel days"), default=0)
    fairness_spread = models.PositiveIntegerField(_("fairness spread"), default=0)
    shortfalls = models.JSONField(_("shortfalls"), default=list, blank=True)
    unknown_years = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("roster optimisation")
        verbose_name_plural = _("roster optimisations")

    def __str__(self) -> str:
        return f"{self.programme.code} {self.starts_on} +{self.weeks}w"

    @property
    def gap(self) -> float:
        if self.objective == 0:
            return 0.0 if self.bound == 0 else 1.0
        return abs(self.objective - self.bound) / abs(self.objective)


class AttendanceStatus(models.TextChoices):
    CHECKED_IN = "checked_in", _("Checked in")
    CONFIRMED = "confirmed", _("Confirmed by the host")
    ABSENT = "absent", _("Absent")


PRESENT = (AttendanceStatus.CHECKED_IN, AttendanceStatus.CONFIRMED)


class Attendance(BaseModel):
    """Whether an expert was on site on a day: their own check-in, the host's confirmation, or an
    absence with its reason. One per assignment and day. A check-in keeps how far the phone was from
    the host, never where the phone was (a person's position is more than the platform needs)."""

    assignment = models.ForeignKey(
        Assignment, on_delete=models.PROTECT, related_name="attendance", verbose_name=_("assignment")
    )
    date = models.DateField(_("date"))
    status = models.CharField(_("status"), max_length=12, choices=AttendanceStatus.choices)
    was_planned = models.BooleanField(_("planned on site"), default=True)
    checked_in_at = models.DateTimeField(_("checked in at"), null=True, blank=True)
    distance_m = models.PositiveIntegerField(_("distance from the host (m)"), null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    absence_reason = models.CharField(_("reason for absence"), max_length=200, blank=True)

    class Meta:
        ordering = ["-date"]
        verbose_name = _("attendance")
        verbose_name_plural = _("attendance")
        constraints = [
            models.UniqueConstraint(fields=["assignment", "date"], name="attendance_once"),
            models.CheckConstraint(
                condition=~Q(status="absent") | ~Q(absence_reason=""), name="attendance_absence_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.status}"

    @property
    def is_present(self) -> bool:
        return self.status in PRESENT


class WorkLog(BaseModel):
    """What an expert did on one on-site day."""

    assignment = models.ForeignKey(
        Assignment, on_delete=models.PROTECT, related_name="work_logs", verbose_name=_("assignment")
    )
    date = models.DateField(_("date"))
    outpatient_sessions = models.PositiveSmallIntegerField(_("outpatient sessions"), default=0)
    patients_seen = models.PositiveSmallIntegerField(_("outpatients seen"), default=0)
    ward_rounds = models.PositiveSmallIntegerField(_("ward rounds"), default=0)
    teaching_sessions = models.PositiveSmallIntegerField(_("teaching sessions"), default=0)
    consultations = models.PositiveSmallIntegerField(_("consultations"), default=0)
    management_meetings = models.PositiveSmallIntegerField(_("management meetings"), default=0)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["-date"]
        verbose_name = _("work log")
        verbose_name_plural = _("work logs")
        constraints = [models.UniqueConstraint(fields=["assignment", "date"], name="work_log_once")]

    def __str__(self) -> str:
        return f"{self.date} {self.assignment_id}"


class OperationRole(models.TextChoices):
    OPERATOR = "operator", _("Operator")
    ASSISTANT = "assistant", _("Assistant")
    SUPERVISOR = "supervisor", _("Supervisor")


class LoggedOperation(models.Model):
    """An operation on a work log: the procedure, its level, the expert's role and the local
    surgeon who took part (the evidence for the technique-transfer ledger)."""

    work_log = models.ForeignKey(
        WorkLog, on_delete=models.CASCADE, related_name="operations", verbose_name=_("work log")
    )
    procedure = models.CharField(_("procedure"), max_length=120)
    procedure_code = models.CharField(_("operation code"), max_length=20, blank=True)
    level = models.PositiveSmallIntegerField(_("level"), validators=[MinValueValidator(1), MaxValueValidator(4)])
    role = models.CharField(_("expert's role"), max_length=12, choices=OperationRole.choices)
    minimally_invasive = models.BooleanField(_("minimally invasive"), default=False)
    local_surgeon = models.ForeignKey(
        Practitioner,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="logged_operations",
        verbose_name=_("local surgeon"),
    )
    local_surgeon_name = models.CharField(_("local surgeon"), max_length=40, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("operation")
        verbose_name_plural = _("operations")

    def __str__(self) -> str:
        return self.procedure


class FeedKey(models.Model):
    """The secret part of an expert's calendar-feed address. Resetting it (a new ``salt``) makes
    every address handed out before stop working."""

    practitioner = models.OneToOneField(
        Practitioner, on_delete=models.CASCADE, related_name="feed_key", verbose_name=_("expert")
    )
    salt = models.CharField(max_length=32)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("calendar feed key")
        verbose_name_plural = _("calendar feed keys")

    def __str__(self) -> str:
        return str(self.practitioner_id)
