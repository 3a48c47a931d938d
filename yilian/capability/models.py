"""Capability building (从"输血"到"造血"): the techniques catalogue, the technique-transfer ledger of
host departments, claimed regional firsts and their verification, teaching activities with QR
sign-in, and mentoring programmes (master-doctor studios, backbone training)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yilian.core.models import BaseModel
from yilian.registry.models import Department, Discipline, Institution, Practitioner, Region, localized

# --------------------------------------------------------------------------------------------
# Techniques


class Technique(BaseModel):
    """A technique a department can acquire. ``operation_code`` is the national operation code (or
    its stem: every code starting with it counts) where one exists; records are matched on it."""

    code = models.SlugField(_("code"), max_length=60, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=160, blank=True)
    operation_code = models.CharField(
        _("national operation code"),
        max_length=20,
        blank=True,
        validators=[RegexValidator(r"^[0-9A-Za-z.x]+$", _("Digits, letters, dots and x only."))],
    )
    level = models.PositiveSmallIntegerField(
        _("operation level"), validators=[MinValueValidator(1), MaxValueValidator(4)]
    )
    restricted = models.BooleanField(_("restricted technique"), default=False)
    discipline = models.CharField(_("specialty"), max_length=30, choices=Discipline.choices)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["discipline", "code"]
        verbose_name = _("technique")
        verbose_name_plural = _("techniques")
        constraints = [
            # The 2022 rules: a restricted technique is managed as a level-4 operation.
            models.CheckConstraint(
                condition=Q(restricted=False) | Q(level=4),
                name="technique_restricted_is_level_4",
                violation_error_message=_("A restricted technique is a level-4 operation."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return localized(self.name_zh, self.name_en)


# --------------------------------------------------------------------------------------------
# The transfer ledger


class Stage(models.TextChoices):
    """Stages of a technique's transfer, in order. A department's stage is the furthest any of its
    surgeons reached; ``INTRODUCED`` belongs to the department (the expert's first case)."""

    INTRODUCED = "introduced", _("Introduced by the expert")
    ASSISTS = "assists", _("Local surgeon assists")
    SUPERVISED = "supervised", _("Local surgeon performs under supervision")
    INDEPENDENT = "independent", _("Local surgeon independent")


STAGE_ORDER: tuple[Stage, ...] = (Stage.INTRODUCED, Stage.ASSISTS, Stage.SUPERVISED, Stage.INDEPENDENT)


def stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(Stage(stage))


class Transfer(BaseModel):
    """One technique being transferred to one host department (a ledger)."""

    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="transfers", verbose_name=_("host department")
    )
    technique = models.ForeignKey(
        Technique, on_delete=models.PROTECT, related_name="transfers", verbose_name=_("technique")
    )
    expert = models.ForeignKey(
        Practitioner,
        on_delete=models.PROTECT,
        related_name="techniques_brought",
        verbose_name=_("expert who brings it"),
    )
    programme = models.ForeignKey(
        "dispatch.Programme",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="transfers",
        verbose_name=_("stationing programme"),
    )
    stage = models.CharField(_("stage"), max_length=12, choices=Stage.choices, blank=True)
    introduced_on = models.DateField(_("introduced on"), null=True, blank=True)
    independent_on = models.DateField(_("first independent on"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("opened by")
    )

    class Meta:
        ordering = ["department__institution__code", "technique__code"]
        verbose_name = _("technique transfer")
        verbose_name_plural = _("technique transfers")
        constraints = [
            models.UniqueConstraint(
                fields=["department", "technique"],
                name="transfer_once_per_department",
                violation_error_message=_("This department already has a ledger for this technique."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.department} · {self.technique}"

    @property
    def days_to_independence(self) -> int | None:
        if self.introduced_on is None or self.independent_on is None:
            return None
        return (self.independent_on - self.introduced_on).days


class CaseSource(models.TextChoices):
    WORK_LOG = "work_log", _("Expert's work log")
    ACTIVITY = "activity", _("Imported operation record")
    MANUAL = "manual", _("Recorded by hand")


class LocalRole(models.TextChoices):
    """What the local surgeon did in a case, which is the stage the case is evidence for."""

    NONE = "none", _("Expert operated (no local surgeon)")
    ASSISTED = "assisted", _("Local surgeon assisted the expert")
    SUPERVISED = "supervised", _("Local surgeon operated, expert supervising")
    INDEPENDENT = "independent", _("Local surgeon operated alone")


EVIDENCE_FOR: dict[str, Stage] = {
    LocalRole.NONE: Stage.INTRODUCED,
    LocalRole.ASSISTED: Stage.ASSISTS,
    LocalRole.SUPERVISED: Stage.SUPERVISED,
    LocalRole.INDEPENDENT: Stage.INDEPENDENT,
}


class TransferCase(BaseModel):
    """One operation of the technique at the host department: the evidence for a stage. Cases from
    work logs and imported records are copies (``source_ref`` names the original), so a later
    correction of the work log does not silently change the ledger's evidence."""

    transfer = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="cases", verbose_name=_("ledger"))
    performed_on = models.DateField(_("date"))
    local_role = models.CharField(_("local surgeon's part"), max_length=12, choices=LocalRole.choices)
    local_surgeon = models.ForeignKey(
        Practitioner,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="transfer_cases",
        verbose_name=_("local surgeon"),
    )
    operator_name = models.CharField(_("operator"), max_length=40)
    source = models.CharField(_("source"), max_length=10, choices=CaseSource.choices)
    source_ref = models.CharField(_("source record"), max_length=120, blank=True)
    operation_code = models.CharField(_("operation code"), max_length=20, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )

    class Meta:
        ordering = ["performed_on", "id"]
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        constraints = [
            models.UniqueConstraint(
                fields=["transfer", "source_ref"],
                condition=~Q(source_ref=""),
                name="transfer_case_source_once",
                violation_error_message=_("This record is already evidence in the ledger."),
            ),
            models.CheckConstraint(
                condition=Q(local_role=LocalRole.NONE) | Q(local_surgeon__isnull=False),
                name="transfer_case_local_surgeon_named",
                violation_error_message=_("Name the local surgeon."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.performed_on} {self.operator_name}"

    @property
    def evidence_for(self) -> Stage:
        return EVIDENCE_FOR[self.local_role]


class TransferStep(BaseModel):
    """A stage reached, with its evidence: the department's introduction (no surgeon) or one local
    surgeon's step. Steps are only ever added; the ledger's history is these rows."""

    transfer = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="steps", verbose_name=_("ledger"))
    stage = models.CharField(_("stage"), max_length=12, choices=Stage.choices)
    surgeon = models.ForeignKey(
        Practitioner,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="transfer_steps",
        verbose_name=_("local surgeon"),
    )
    reached_on = models.DateField(_("reached on"))
    evidence = models.ForeignKey(
        TransferCase, on_delete=models.PROTECT, related_name="steps", verbose_name=_("evidence")
    )
    privilege = models.ForeignKey(
        "SurgicalPrivilege",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("privilege"),
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )

    class Meta:
        ordering = ["reached_on", "id"]
        verbose_name = _("stage reached")
        verbose_name_plural = _("stages reached")
        constraints = [
            models.UniqueConstraint(
                fields=["transfer", "stage", "surgeon"],
                name="transfer_step_once",
                violation_error_message=_("This stage is already recorded."),
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=Q(stage=Stage.INTRODUCED, surgeon__isnull=True)
                | (~Q(stage=Stage.INTRODUCED) & Q(surgeon__isnull=False)),
                name="transfer_step_surgeon_after_introduction",
                violation_error_message=_("Every stage after the introduction belongs to a local surgeon."),
            ),
            models.CheckConstraint(
                condition=~Q(stage=Stage.INDEPENDENT) | Q(privilege__isnull=False),
                name="transfer_step_independent_needs_privilege",
                violation_error_message=_("Independence needs the surgeon's privilege for the technique."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} {self.reached_on}"


class SurgicalPrivilege(BaseModel):
    """The hospital's grant of a technique to one of its surgeons (手术授权, 2022 grading rules)."""

    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="privileges", verbose_name=_("surgeon")
    )
    technique = models.ForeignKey(
        Technique, on_delete=models.PROTECT, related_name="privileges", verbose_name=_("technique")
    )
    granted_on = models.DateField(_("granted on"))
    revoked_on = models.DateField(_("revoked on"), null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("granted by")
    )
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ["-granted_on"]
        verbose_name = _("surgical privilege")
        verbose_name_plural = _("surgical privileges")
        constraints = [
            models.UniqueConstraint(
                fields=["practitioner", "technique"],
                condition=Q(revoked_on__isnull=True),
                name="privilege_one_current",
                violation_error_message=_("This surgeon already holds this privilege."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.practitioner} · {self.technique}"

    def holds_on(self, day: dt.date) -> bool:
        return self.granted_on <= day and (self.revoked_on is None or day < self.revoked_on)


# --------------------------------------------------------------------------------------------
# Regional firsts


class MacroRegion(models.TextChoices):
    """The seven geographic macro-regions, by province code (GB/T 2260)."""

    NORTH = "north", _("North China")
    NORTHEAST = "northeast", _("North-east China")
    EAST = "east", _("East China")
    CENTRAL = "central", _("Central China")
    SOUTH = "south", _("South China")
    SOUTHWEST = "southwest", _("South-west China")
    NORTHWEST = "northwest", _("North-west China")


MACRO_REGION_PROVINCES: dict[str, tuple[str, ...]] = {
    MacroRegion.NORTH: ("11", "12", "13", "14", "15"),
    MacroRegion.NORTHEAST: ("21", "22", "23"),
    MacroRegion.EAST: ("31", "32", "33", "34", "35", "36", "37", "71"),
    MacroRegion.CENTRAL: ("41", "42", "43"),
    MacroRegion.SOUTH: ("44", "45", "46", "81", "82"),
    MacroRegion.SOUTHWEST: ("50", "51", "52", "53", "54"),
    MacroRegion.NORTHWEST: ("61", "62", "63", "64", "65"),
}


class FirstStatus(models.TextChoices):
    VERIFIED = "verified", _("Verified: no earlier case on record")
    CONTRADICTED = "contradicted", _("Contradicted: an earlier case is on record")
    UNVERIFIABLE = "unverifiable", _("Unverifiable: the records do not cover the region")


class FirstClaim(BaseModel):
    """A claim that a case was the first of a technique in a region (首例). Either ``region`` (a
    city or a province) or ``macro_region`` is set. The verdict is recomputed on demand and kept
    with its evidence (the earlier case, or the institutions and months the records miss)."""

    technique = models.ForeignKey(
        Technique, on_delete=models.PROTECT, related_name="first_claims", verbose_name=_("technique")
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="first_claims", verbose_name=_("institution")
    )
    performed_on = models.DateField(_("date of the case"))
    case = models.ForeignKey(
        TransferCase,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="first_claims",
        verbose_name=_("case in the ledger"),
    )
    region = models.ForeignKey(
        Region, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("region")
    )
    macro_region = models.CharField(_("macro-region"), max_length=12, choices=MacroRegion.choices, blank=True)
    programme = models.ForeignKey(
        "dispatch.Programme",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="first_claims",
        verbose_name=_("stationing programme"),
    )
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(_("verdict"), max_length=12, choices=FirstStatus.choices, blank=True)
    checked_at = models.DateTimeField(_("checked at"), null=True, blank=True)
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("claimed by")
    )

    class Meta:
        ordering = ["-performed_on", "id"]
        verbose_name = _("regional first")
        verbose_name_plural = _("regional firsts")
        constraints = [
            models.CheckConstraint(
                condition=(Q(region__isnull=False) & Q(macro_region=""))
                | (Q(region__isnull=True) & ~Q(macro_region="")),
                name="first_claim_one_region",
                violation_error_message=_("Claim the first for a region or for a macro-region, not both."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.technique} · {self.region_name}"

    @property
    def region_name(self) -> str:
        if self.region is not None:
            return self.region.name
        return str(MacroRegion(self.macro_region).label)

    def province_prefixes(self) -> tuple[str, ...]:
        """Region-code prefixes of the claimed region."""
        if self.region is not None:
            return (self.region.code_prefix(),)
        return MACRO_REGION_PROVINCES[self.macro_region]


# --------------------------------------------------------------------------------------------
# Teaching


class TeachingKind(models.TextChoices):
    WARD_ROUND = "ward_round", _("Teaching ward round")
    CONSULTATION = "consultation", _("Teaching consultation")
    SURGERY_DEMONSTRATION = "surgery_demo", _("Surgery demonstration")
    CASE_DISCUSSION = "case_discussion", _("Case discussion")
    LECTURE = "lecture", _("Lecture")
    COURSE = "course", _("Training course or salon")
    VISITING_LECTURE = "visiting_lecture", _("Visiting-scholar lecture")


class TeachingActivity(BaseModel):
    """A teaching session: who led it, where (one or several institutions), on what, and who came."""

    kind = models.CharField(_("kind"), max_length=20, choices=TeachingKind.choices)
    topic = models.CharField(_("topic"), max_length=200)
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    leader = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="teaching_led", verbose_name=_("leader")
    )
    institutions = models.ManyToManyField(Institution, related_name="teaching_activities", verbose_name=_("places"))
    place = models.CharField(_("room or address"), max_length=200, blank=True)
    materials = models.TextField(_("materials"), blank=True, help_text=_("Titles or links, one per line."))
    other_attendees = models.PositiveIntegerField(_("other attendees (count)"), default=0)
    programme = models.ForeignKey(
        "dispatch.Programme",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="teaching_activities",
        verbose_name=_("stationing programme"),
    )
    training = models.ForeignKey(
        "TrainingProgramme",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="teaching_activities",
        verbose_name=_("training programme"),
    )
    cancelled = models.BooleanField(_("cancelled"), default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )

    class Meta:
        ordering = ["-starts_at"]
        verbose_name = _("teaching activity")
        verbose_name_plural = _("teaching activities")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")),
                name="teaching_ends_after_start",
                violation_error_message=_("The end must be after the start."),
            ),
        ]

    def __str__(self) -> str:
        return self.topic

    @property
    def hours(self) -> Decimal:
        """Credited hours: the duration rounded to the nearest half hour (at least half an hour)."""
        minutes = (self.ends_at - self.starts_at).total_seconds() / 60
        halves = max(1, round(minutes / 30))
        return Decimal(halves) / 2


class SignInMethod(models.TextChoices):
    QR = "qr", _("QR code on the attendee's phone")
    RECORDED = "recorded", _("Recorded by the organiser")


class TeachingAttendance(BaseModel):
    activity = models.ForeignKey(
        TeachingActivity, on_delete=models.PROTECT, related_name="attendances", verbose_name=_("activity")
    )
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="teaching_attended", verbose_name=_("attendee")
    )
    signed_in_at = models.DateTimeField(_("signed in at"))
    method = models.CharField(_("how"), max_length=10, choices=SignInMethod.choices)
    hours = models.DecimalField(_("hours credited"), max_digits=5, decimal_places=1)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )

    class Meta:
        ordering = ["signed_in_at"]
        verbose_name = _("attendance")
        verbose_name_plural = _("attendances")
        constraints = [
            models.UniqueConstraint(
                fields=["activity", "practitioner"],
                name="teaching_attendance_once",
                violation_error_message=_("This person has already signed in."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.practitioner} · {self.activity}"


class SignInCode(models.Model):
    """A one-time sign-in code shown as a QR on the organiser's screen. Only its SHA-256 is stored;
    it is valid until ``expires_at`` and for one attendee (``used_by``)."""

    activity = models.ForeignKey(TeachingActivity, on_delete=models.CASCADE, related_name="sign_in_codes")
    digest = models.CharField(max_length=64, unique=True)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(Practitioner, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-issued_at"]
        verbose_name = _("sign-in code")
        verbose_name_plural = _("sign-in codes")

    def __str__(self) -> str:
        return f"{self.activity_id} {self.issued_at:%H:%M:%S}"


# --------------------------------------------------------------------------------------------
# Training programmes


class TrainingKind(models.TextChoices):
    STUDIO = "studio", _("Master-doctor studio (名医工作室)")
    BACKBONE = "backbone", _("Backbone training (骨干培育)")


class TrainingProgramme(BaseModel):
    kind = models.CharField(_("kind"), max_length=10, choices=TrainingKind.choices)
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=160, blank=True)
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="training_programmes", verbose_name=_("host institution")
    )
    mentor = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="training_mentored", verbose_name=_("mentor")
    )
    stationing = models.ForeignKey(
        "dispatch.Programme",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_programmes",
        verbose_name=_("stationing programme"),
    )
    goals = models.TextField(_("goals"), blank=True)
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )

    class Meta:
        ordering = ["-starts_on", "id"]
        verbose_name = _("training programme")
        verbose_name_plural = _("training programmes")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=models.F("starts_on")),
                name="training_programme_dates",
                violation_error_message=_("The end cannot be before the start."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return localized(self.name_zh, self.name_en)


class Milestone(BaseModel):
    """A goal of a programme every mentee works towards; optionally a stage of a technique."""

    programme = models.ForeignKey(
        TrainingProgramme, on_delete=models.PROTECT, related_name="milestones", verbose_name=_("programme")
    )
    order = models.PositiveSmallIntegerField(_("order"), default=1)
    title_zh = models.CharField(_("title (Chinese)"), max_length=120)
    title_en = models.CharField(_("title (English)"), max_length=160, blank=True)
    due_months = models.PositiveSmallIntegerField(
        _("due after (months)"), default=6, validators=[MinValueValidator(1), MaxValueValidator(120)]
    )
    technique = models.ForeignKey(
        Technique, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("technique")
    )
    stage = models.CharField(_("stage of the technique"), max_length=12, choices=Stage.choices, blank=True)

    class Meta:
        ordering = ["programme_id", "order", "id"]
        verbose_name = _("milestone")
        verbose_name_plural = _("milestones")

    def __str__(self) -> str:
        return self.title

    @property
    def title(self) -> str:
        return localized(self.title_zh, self.title_en)


class Mentee(BaseModel):
    programme = models.ForeignKey(
        TrainingProgramme, on_delete=models.PROTECT, related_name="mentees", verbose_name=_("programme")
    )
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="mentorships", verbose_name=_("mentee")
    )
    joined_on = models.DateField(_("joined on"))
    left_on = models.DateField(_("left on"), null=True, blank=True)

    class Meta:
        ordering = ["programme_id", "practitioner__name_en"]
        verbose_name = _("mentee")
        verbose_name_plural = _("mentees")
        constraints = [
            models.UniqueConstraint(
                fields=["programme", "practitioner"],
                name="mentee_once",
                violation_error_message=_("This practitioner is already a mentee of the programme."),
            )
        ]

    def __str__(self) -> str:
        return str(self.practitioner)


class AssessmentResult(models.TextChoices):
    PASSED = "passed", _("Passed")
    NOT_YET = "not_yet", _("Not yet")


class Assessment(BaseModel):
    """The mentor's (or an assessor's) judgement of a mentee against a milestone. It counts once
    the mentor has signed it off; a passed, signed-off assessment reaches the milestone."""

    mentee = models.ForeignKey(Mentee, on_delete=models.PROTECT, related_name="assessments", verbose_name=_("mentee"))
    milestone = models.ForeignKey(
        Milestone, on_delete=models.PROTECT, related_name="assessments", verbose_name=_("milestone")
    )
    assessed_on = models.DateField(_("assessed on"))
    result = models.CharField(_("result"), max_length=10, choices=AssessmentResult.choices)
    score = models.PositiveSmallIntegerField(
        _("score"), null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    comment = models.TextField(_("comment"), blank=True)
    assessor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("assessor")
    )
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("signed off by"),
    )
    signed_off_at = models.DateTimeField(_("signed off at"), null=True, blank=True)

    class Meta:
        ordering = ["assessed_on", "id"]
        verbose_name = _("assessment")
        verbose_name_plural = _("assessments")

    def __str__(self) -> str:
        return f"{self.mentee} · {self.milestone}"

    @property
    def counts(self) -> bool:
        return self.result == AssessmentResult.PASSED and self.signed_off_at is not None
