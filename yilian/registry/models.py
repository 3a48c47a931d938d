"""The shared vocabulary: regions, institutions, departments, capabilities, consortia,
agreements, practitioners, users and their roles."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from yilian.core.models import BaseModel
from yilian.core.permissions import Role


def validate_pdf(upload: Any) -> None:
    """The file must really be a PDF (its first bytes), not just be named like one."""
    upload.seek(0)
    head = upload.read(5)
    upload.seek(0)
    if head != b"%PDF-":
        raise ValidationError(_("The file is not a PDF document."), code="not_pdf")


def localized(zh: str, en: str) -> str:
    """The English text when the active language is English and one exists, else the Chinese."""
    language = translation.get_language() or "zh-hans"
    if language.startswith("en") and en:
        return en
    return zh or en


class Named(models.Model):
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=160, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return localized(self.name_zh, self.name_en)


class RegionLevel(models.TextChoices):
    PROVINCE = "province", _("Province")
    CITY = "city", _("City")
    COUNTY = "county", _("County / district")


class Region(Named):
    """An administrative division with its 6-digit code (GB/T 2260)."""

    code = models.CharField(
        _("code"), max_length=6, unique=True, validators=[RegexValidator(r"^\d{6}$", _("Six digits."))]
    )
    level = models.CharField(_("level"), max_length=10, choices=RegionLevel.choices)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        verbose_name=_("parent"),
    )

    class Meta:
        ordering = ["code"]
        verbose_name = _("region")
        verbose_name_plural = _("regions")

    def ancestors(self) -> list[Region]:
        """From the province down to the direct parent."""
        chain: list[Region] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return list(reversed(chain))

    def code_prefix(self) -> str:
        """The code prefix shared by this region and everything inside it (330800 -> 3308)."""
        if self.level == RegionLevel.PROVINCE:
            return self.code[:2]
        if self.level == RegionLevel.CITY:
            return self.code[:4]
        return self.code


class InstitutionGrade(models.TextChoices):
    GRADE_3A = "3A", _("Grade 3A (三级甲等)")
    GRADE_3B = "3B", _("Grade 3B (三级乙等)")
    GRADE_3 = "3", _("Grade 3 (三级)")
    GRADE_2A = "2A", _("Grade 2A (二级甲等)")
    GRADE_2B = "2B", _("Grade 2B (二级乙等)")
    GRADE_2 = "2", _("Grade 2 (二级)")
    GRADE_1 = "1", _("Grade 1 (一级)")
    PRIMARY = "primary", _("Primary care (基层)")


class InstitutionType(models.TextChoices):
    GENERAL = "general", _("General hospital")
    TCM = "tcm", _("Traditional Chinese medicine hospital")
    WOMEN_CHILDREN = "women_children", _("Women and children's hospital")
    SPECIALTY = "specialty", _("Specialty hospital")
    PRIMARY_CARE = "primary_care", _("Primary care centre")


class Institution(BaseModel, Named):
    code = models.SlugField(
        _("code"),
        max_length=32,
        unique=True,
        help_text=_("Short unique code used in addresses, the API and the command line."),
    )
    short_name = models.CharField(_("short name"), max_length=40, blank=True)
    grade = models.CharField(_("grade"), max_length=10, choices=InstitutionGrade.choices)
    type = models.CharField(_("type"), max_length=20, choices=InstitutionType.choices)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="institutions", verbose_name=_("region"))
    address = models.CharField(_("address"), max_length=200, blank=True)
    latitude = models.DecimalField(_("latitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("longitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    phone = models.CharField(_("switchboard"), max_length=40, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # External identifiers: how the national interfaces name the institution (the front page's A01 /
    # ZZJGDM column holds one of them). Stored upper case, without spaces or hyphens.
    org_code = models.CharField(
        _("organisation code (组织机构代码)"), max_length=22, blank=True, help_text=_("E.g. 47000001X.")
    )
    uscc = models.CharField(
        _("unified social credit code (统一社会信用代码)"), max_length=18, blank=True, help_text=_("18 characters.")
    )
    licence_no = models.CharField(
        _("licence registration number (登记号)"),
        max_length=40,
        blank=True,
        help_text=_("Registration number of the practising licence of the medical institution."),
    )

    IDENTIFIER_FIELDS = ("org_code", "uscc", "licence_no")

    class Meta:
        ordering = ["code"]
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")
        constraints = [
            models.UniqueConstraint(
                fields=["org_code"],
                condition=~Q(org_code=""),
                name="institution_org_code_unique",
                violation_error_message=_("Another institution has this organisation code."),
            ),
            models.UniqueConstraint(
                fields=["uscc"],
                condition=~Q(uscc=""),
                name="institution_uscc_unique",
                violation_error_message=_("Another institution has this unified social credit code."),
            ),
            models.UniqueConstraint(
                fields=["licence_no"],
                condition=~Q(licence_no=""),
                name="institution_licence_no_unique",
                violation_error_message=_("Another institution has this licence registration number."),
            ),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90),
                name="institution_latitude_range",
                violation_error_message=_("Latitude must be between -90 and 90."),
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True) | Q(longitude__gte=-180, longitude__lte=180),
                name="institution_longitude_range",
                violation_error_message=_("Longitude must be between -180 and 180."),
            ),
        ]

    def clean(self) -> None:
        from stdnum.cn import uscc
        from stdnum.exceptions import ValidationError as NumberError

        for name in self.IDENTIFIER_FIELDS:
            value = getattr(self, name) or ""
            setattr(self, name, "".join(ch for ch in value.upper() if ch not in " -\u3000"))
        # A file's A01 column may hold any of them: no identifier may name two institutions, in
        # whichever field (the unique constraints cover each field alone).
        given = {getattr(self, name) for name in self.IDENTIFIER_FIELDS} - {""}
        if given:
            others = Institution.objects.exclude(pk=self.pk)
            clash = Q(org_code__in=given) | Q(uscc__in=given) | Q(licence_no__in=given)
            if others.filter(clash).exists():
                raise ValidationError(
                    _("Another institution already has the identifier %(values)s.")
                    % {"values": ", ".join(sorted(given))}
                )
        if self.uscc:
            try:
                uscc.validate(self.uscc)
            except NumberError as exc:
                raise ValidationError(
                    {"uscc": _("“%(value)s” is not a valid unified social credit code.") % {"value": self.uscc}}
                ) from exc


class Discipline(models.TextChoices):
    """Clinical disciplines, after the national list of diagnosis-and-treatment subjects (诊疗科目)."""

    GENERAL_PRACTICE = "general_practice", _("General practice")
    INTERNAL_MEDICINE = "internal_medicine", _("Internal medicine")
    CARDIOLOGY = "cardiology", _("Cardiology")
    NEUROLOGY = "neurology", _("Neurology")
    RESPIRATORY = "respiratory", _("Respiratory medicine")
    GASTROENTEROLOGY = "gastroenterology", _("Gastroenterology")
    NEPHROLOGY = "nephrology", _("Nephrology")
    ENDOCRINOLOGY = "endocrinology", _("Endocrinology")
    HEMATOLOGY = "hematology", _("Hematology")
    ONCOLOGY = "oncology", _("Oncology")
    GENERAL_SURGERY = "general_surgery", _("General surgery")
    GASTROINTESTINAL_SURGERY = "gi_surgery", _("Gastro-intestinal surgery")
    HEPATOBILIARY_SURGERY = "hpb_surgery", _("Hepatobiliary and pancreatic surgery")
    NEUROSURGERY = "neurosurgery", _("Neurosurgery")
    ORTHOPEDICS = "orthopedics", _("Orthopedics")
    UROLOGY = "urology", _("Urology")
    THORACIC_SURGERY = "thoracic_surgery", _("Thoracic surgery")
    CARDIAC_SURGERY = "cardiac_surgery", _("Cardiac surgery")
    OBSTETRICS_GYNECOLOGY = "obgyn", _("Obstetrics and gynecology")
    PEDIATRICS = "pediatrics", _("Pediatrics")
    NEONATOLOGY = "neonatology", _("Neonatology")
    OPHTHALMOLOGY = "ophthalmology", _("Ophthalmology")
    ENT = "ent", _("Otorhinolaryngology")
    STOMATOLOGY = "stomatology", _("Stomatology")
    DERMATOLOGY = "dermatology", _("Dermatology")
    ANESTHESIOLOGY = "anesthesiology", _("Anesthesiology")
    EMERGENCY = "emergency", _("Emergency medicine")
    CRITICAL_CARE = "critical_care", _("Critical care medicine")
    RADIOLOGY = "radiology", _("Radiology")
    RADIOTHERAPY = "radiotherapy", _("Radiotherapy")
    PATHOLOGY = "pathology", _("Pathology")
    LABORATORY = "laboratory", _("Laboratory medicine")
    REHABILITATION = "rehabilitation", _("Rehabilitation medicine")
    TCM = "tcm", _("Traditional Chinese medicine")
    MANAGEMENT = "management", _("Hospital management")


class Department(BaseModel):
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="departments", verbose_name=_("institution")
    )
    discipline = models.CharField(_("discipline"), max_length=30, choices=Discipline.choices)
    name_zh = models.CharField(_("name (Chinese)"), max_length=80, blank=True)
    name_en = models.CharField(_("name (English)"), max_length=120, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["institution__code", "discipline"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        constraints = [
            models.UniqueConstraint(
                fields=["institution", "discipline", "name_zh"],
                name="department_unique_per_institution",
                violation_error_message=_("This institution already has a department of this discipline and name."),
            )
        ]

    @property
    def name(self) -> str:
        """The department's own name, else its discipline's label."""
        own = localized(self.name_zh, self.name_en)
        return own or str(Discipline(self.discipline).label)

    def __str__(self) -> str:
        return self.name


class CapabilityKind(models.TextChoices):
    CT = "ct", _("CT scanning")
    MRI = "mri", _("MRI")
    IV_THROMBOLYSIS = "iv_thrombolysis", _("Intravenous thrombolysis")
    THROMBECTOMY = "thrombectomy", _("Mechanical thrombectomy")
    PRIMARY_PCI = "primary_pci", _("Primary PCI (cath lab)")
    ROBOT_SURGERY = "robot_surgery", _("Robot-assisted surgery")
    NEUROENDOSCOPY = "neuroendoscopy", _("Neuro-endoscopy")
    FROZEN_SECTION = "frozen_section", _("Intra-operative frozen section")
    ICU = "icu", _("Intensive care unit")
    NICU = "nicu", _("Neonatal intensive care unit")
    TRAUMA_CENTRE = "trauma_centre", _("Major trauma centre")
    HIGH_RISK_OBSTETRICS = "high_risk_obstetrics", _("High-risk obstetrics")
    DIALYSIS = "dialysis", _("Haemodialysis")
    TELECONSULTATION = "teleconsultation", _("Teleconsultation room")


class Capability(BaseModel):
    """What an institution can do, and when. ``all_hours`` means 24/7; otherwise the
    service runs on ``weekdays`` (ISO numbers, "12345" = Monday to Friday) between the times."""

    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="capabilities", verbose_name=_("institution")
    )
    kind = models.CharField(_("capability"), max_length=30, choices=CapabilityKind.choices)
    all_hours = models.BooleanField(_("24/7"), default=True)
    weekdays = models.CharField(
        _("weekdays"),
        max_length=7,
        default="1234567",
        validators=[RegexValidator(r"^[1-7]{1,7}$", _("ISO weekday numbers, e.g. 12345."))],
    )
    opens_at = models.TimeField(_("opens at"), null=True, blank=True)
    closes_at = models.TimeField(_("closes at"), null=True, blank=True)
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ["institution__code", "kind"]
        verbose_name = _("capability")
        verbose_name_plural = _("capabilities")
        constraints = [
            models.CheckConstraint(
                condition=Q(all_hours=True) | (Q(opens_at__isnull=False) & Q(closes_at__isnull=False)),
                name="capability_hours_when_not_24_7",
                violation_error_message=_("A capability that is not 24/7 needs opening and closing times."),
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="capability_valid_range",
                violation_error_message=_("The end of validity cannot be before its start."),
            ),
            models.UniqueConstraint(
                fields=["institution", "kind", "valid_from"],
                name="capability_unique_period",
                violation_error_message=_("This capability is already recorded from that date."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.institution.code}: {self.get_kind_display()}"

    def is_available_at(self, moment: dt.datetime) -> bool:
        """Whether the service runs at ``moment`` (aware datetime, judged in local time)."""
        local = timezone.localtime(moment)
        if local.date() < self.valid_from or (self.valid_to is not None and local.date() > self.valid_to):
            return False
        if self.all_hours:
            return True
        return hours_open_at(local, weekdays=self.weekdays, opens_at=self.opens_at, closes_at=self.closes_at)

    def hours_display(self) -> str:
        """E.g. "24/7", "周一至周五 08:00–17:30" / "Mon–Fri 08:00–17:30"."""
        if self.all_hours:
            return "24/7"
        return f"{weekdays_display(self.weekdays)} {self.opens_at:%H:%M}–{self.closes_at:%H:%M}"


def hours_open_at(local: dt.datetime, *, weekdays: str, opens_at: dt.time | None, closes_at: dt.time | None) -> bool:
    """Whether a service with these hours (not 24/7) runs at ``local`` (a local time).

    Split from ``Capability.is_available_at`` so that a reader of many rows (destination ranking)
    can judge plain column values without building a model instance per row.
    """
    if str(local.isoweekday()) not in weekdays:
        return False
    assert opens_at is not None and closes_at is not None
    now = local.time()
    if closes_at <= opens_at:  # overnight, e.g. a night clinic 18:00-08:00
        return now >= opens_at or now < closes_at
    return opens_at <= now < closes_at


WEEKDAY_NAMES = {
    "1": _("Mon"),
    "2": _("Tue"),
    "3": _("Wed"),
    "4": _("Thu"),
    "5": _("Fri"),
    "6": _("Sat"),
    "7": _("Sun"),
}


def weekdays_display(weekdays: str) -> str:
    """ISO weekday digits as words: "1234567" -> daily, "12345" -> Mon–Fri, "135" -> Mon, Wed, Fri."""
    days = sorted(set(weekdays))
    if len(days) == 7:
        return str(_("daily"))
    numbers = [int(d) for d in days]
    if len(numbers) >= 3 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return str(_("%(first)s–%(last)s") % {"first": WEEKDAY_NAMES[days[0]], "last": WEEKDAY_NAMES[days[-1]]})
    return str(_(", ")).join(str(WEEKDAY_NAMES[d]) for d in days)


class ConsortiumType(models.TextChoices):
    CITY_MEDICAL_GROUP = "city_group", _("City medical group (城市医疗集团)")
    COUNTY_COMMUNITY = "county_community", _("County medical community (县域医共体)")
    SPECIALTY_ALLIANCE = "specialty_alliance", _("Specialty alliance (专科联盟)")
    REGIONAL_CENTRE = "regional_centre", _("National regional medical centre (国家区域医疗中心)")
    TELEMEDICINE = "telemedicine", _("Tele-medicine network (远程医疗协作网)")


class Consortium(BaseModel, Named):
    code = models.SlugField(_("code"), max_length=40, unique=True)
    type = models.CharField(_("type"), max_length=20, choices=ConsortiumType.choices)
    lead_institution = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        related_name="led_consortia",
        verbose_name=_("lead institution"),
    )
    region = models.ForeignKey(
        Region, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("region")
    )
    established_on = models.DateField(_("established on"), null=True, blank=True)
    description_zh = models.TextField(_("description (Chinese)"), blank=True)
    description_en = models.TextField(_("description (English)"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("consortium")
        verbose_name_plural = _("consortia")

    @property
    def description(self) -> str:
        return localized(self.description_zh, self.description_en)


class MemberRelation(models.TextChoices):
    VERTICAL = "vertical", _("Vertical (lead hospital to member)")
    HORIZONTAL = "horizontal", _("Horizontal (school or discipline support)")


class MemberRole(models.TextChoices):
    LEAD = "lead", _("Lead institution")
    MEMBER = "member", _("Member institution")


class ConsortiumMember(BaseModel):
    consortium = models.ForeignKey(
        Consortium, on_delete=models.PROTECT, related_name="members", verbose_name=_("consortium")
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="memberships", verbose_name=_("institution")
    )
    role = models.CharField(_("role"), max_length=10, choices=MemberRole.choices, default=MemberRole.MEMBER)
    relation = models.CharField(
        _("relation"), max_length=12, choices=MemberRelation.choices, default=MemberRelation.VERTICAL
    )
    joined_on = models.DateField(_("joined on"))
    left_on = models.DateField(_("left on"), null=True, blank=True)

    class Meta:
        ordering = ["consortium__code", "-role", "institution__code"]
        verbose_name = _("consortium member")
        verbose_name_plural = _("consortium members")
        constraints = [
            models.UniqueConstraint(
                fields=["consortium", "institution"],
                condition=Q(left_on__isnull=True),
                name="consortium_member_once_while_active",
                violation_error_message=_("This institution is already a member of the consortium."),
            ),
            models.UniqueConstraint(
                fields=["consortium"],
                condition=Q(role="lead"),
                name="consortium_one_lead",
                violation_error_message=_("A consortium has exactly one lead institution."),
            ),
            models.CheckConstraint(
                condition=Q(left_on__isnull=True) | Q(left_on__gte=models.F("joined_on")),
                name="consortium_member_dates",
                violation_error_message=_("The leaving date cannot be before the joining date."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.consortium.code} / {self.institution.code}"

    def clean(self) -> None:
        if self.role == MemberRole.LEAD and self.left_on is not None:
            raise ValidationError({"left_on": _("The lead institution cannot leave its own consortium.")})


class AgreementStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("In force")
    EXPIRED = "expired", _("Expired")
    TERMINATED = "terminated", _("Terminated")


class Agreement(BaseModel):
    code = models.SlugField(_("code"), max_length=40, unique=True)
    consortium = models.ForeignKey(
        Consortium,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="agreements",
        verbose_name=_("consortium"),
    )
    title_zh = models.CharField(_("title (Chinese)"), max_length=200)
    title_en = models.CharField(_("title (English)"), max_length=240, blank=True)
    parties = models.ManyToManyField(Institution, related_name="agreements", verbose_name=_("parties"))
    signed_on = models.DateField(_("signed on"))
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)
    scope = models.TextField(_("scope"), blank=True)
    goals = models.TextField(_("goals"), blank=True)
    document = models.FileField(
        _("signed document (PDF)"),
        upload_to="agreements/%Y/",
        blank=True,
        validators=[FileExtensionValidator(["pdf"]), validate_pdf],
    )
    status = models.CharField(
        _("status"), max_length=12, choices=AgreementStatus.choices, default=AgreementStatus.DRAFT
    )

    class Meta:
        ordering = ["-signed_on", "code"]
        verbose_name = _("agreement")
        verbose_name_plural = _("agreements")
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="agreement_valid_range",
                violation_error_message=_("The end of validity cannot be before its start."),
            )
        ]

    @property
    def title(self) -> str:
        return localized(self.title_zh, self.title_en)

    def __str__(self) -> str:
        return self.title

    def is_in_force(self, on: dt.date | None = None) -> bool:
        day = on or timezone.localdate()
        return (
            self.status == AgreementStatus.ACTIVE
            and self.valid_from <= day
            and (self.valid_to is None or day <= self.valid_to)
        )


class PairingKind(models.TextChoices):
    SUPPORTED_DISCIPLINE = "supported", _("Supported discipline")
    KEY_DISCIPLINE = "key_discipline", _("Key clinical discipline")
    CENTRE = "centre", _("Diagnosis and treatment centre")


class DepartmentPairing(BaseModel):
    """Department-to-department support (科室对科室帮扶) under an agreement."""

    agreement = models.ForeignKey(
        Agreement, on_delete=models.PROTECT, related_name="pairings", verbose_name=_("agreement")
    )
    lead_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="+", verbose_name=_("supporting department")
    )
    member_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="+", verbose_name=_("supported department")
    )
    kind = models.CharField(
        _("kind"), max_length=20, choices=PairingKind.choices, default=PairingKind.SUPPORTED_DISCIPLINE
    )
    label_zh = models.CharField(_("label (Chinese)"), max_length=80, blank=True)
    label_en = models.CharField(_("label (English)"), max_length=120, blank=True)

    class Meta:
        ordering = ["agreement__code", "kind", "member_department__discipline"]
        verbose_name = _("department pairing")
        verbose_name_plural = _("department pairings")
        constraints = [
            models.UniqueConstraint(
                fields=["agreement", "lead_department", "member_department"],
                name="pairing_unique",
                violation_error_message=_("These two departments are already paired under this agreement."),
            ),
            models.CheckConstraint(
                condition=~Q(lead_department=models.F("member_department")),
                name="pairing_distinct_departments",
                violation_error_message=_("A pairing links departments of two different institutions."),
            ),
        ]

    @property
    def label(self) -> str:
        return localized(self.label_zh, self.label_en) or self.member_department.name

    def clean(self) -> None:
        """Both departments belong to parties of the agreement, and to two different institutions."""
        if self.lead_department_id is None or self.member_department_id is None or self.agreement_id is None:
            return
        if self.lead_department.institution_id == self.member_department.institution_id:
            raise ValidationError(_("A pairing links departments of two different institutions."))
        party_ids = set(self.agreement.parties.values_list("pk", flat=True))
        if not {self.lead_department.institution_id, self.member_department.institution_id} <= party_ids:
            raise ValidationError(_("Both departments must belong to parties of the agreement."))

    def __str__(self) -> str:
        return f"{self.lead_department} → {self.member_department}"


class ProfessionalTitle(models.TextChoices):
    CHIEF_PHYSICIAN = "chief_physician", _("Chief physician (主任医师)")
    ASSOCIATE_CHIEF_PHYSICIAN = "associate_chief_physician", _("Associate chief physician (副主任医师)")
    ATTENDING_PHYSICIAN = "attending_physician", _("Attending physician (主治医师)")
    RESIDENT_PHYSICIAN = "resident_physician", _("Resident physician (住院医师)")
    CHIEF_NURSE = "chief_nurse", _("Chief nurse (主任护师)")
    ASSOCIATE_CHIEF_NURSE = "associate_chief_nurse", _("Associate chief nurse (副主任护师)")
    NURSE_IN_CHARGE = "nurse_in_charge", _("Nurse in charge (主管护师)")
    SENIOR_NURSE = "senior_nurse", _("Senior nurse (护师)")
    NURSE = "nurse", _("Nurse (护士)")


class Practitioner(BaseModel):
    name_zh = models.CharField(_("name (Chinese)"), max_length=40)
    name_en = models.CharField(_("name (pinyin)"), max_length=80, blank=True)
    title = models.CharField(_("professional title"), max_length=30, choices=ProfessionalTitle.choices)
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="practitioners", verbose_name=_("institution")
    )
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="practitioners",
        verbose_name=_("department"),
    )
    specialties = models.CharField(_("specialties"), max_length=200, blank=True)
    licence_number = models.CharField(_("licence number"), max_length=30, unique=True)
    user = models.OneToOneField(
        "User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="practitioner",
        verbose_name=_("user account"),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["institution__code", "name_en"]
        verbose_name = _("practitioner")
        verbose_name_plural = _("practitioners")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return localized(self.name_zh, self.name_en)


class User(AbstractUser):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    display_name = models.CharField(_("display name"), max_length=80, blank=True)
    language = models.CharField(
        _("language"),
        max_length=10,
        blank=True,
        choices=[("zh-hans", "简体中文"), ("en", "English")],
    )

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.display_name or self.username


class Membership(BaseModel):
    """A role a user holds: at an institution, for a consortium (the office), or over a region
    (the health commission). Which scope field is required depends on the role."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user"))
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    institution = models.ForeignKey(
        Institution,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
        verbose_name=_("institution"),
    )
    consortium = models.ForeignKey(
        Consortium,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="office_staff",
        verbose_name=_("consortium"),
    )
    region = models.ForeignKey(
        Region, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("region")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["user__username", "role"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.CheckConstraint(
                condition=~Q(role=Role.COMMISSION_VIEWER) | Q(region__isnull=False),
                name="membership_commission_needs_region",
                violation_error_message=_("A health-commission viewer needs a region."),
            ),
            models.CheckConstraint(
                condition=~Q(role=Role.CONSORTIUM_OFFICE) | Q(consortium__isnull=False),
                name="membership_office_needs_consortium",
                violation_error_message=_("A consortium-office role needs a consortium."),
            ),
            models.CheckConstraint(
                condition=Q(role__in=[Role.COMMISSION_VIEWER, Role.SYSTEM_ADMIN]) | Q(institution__isnull=False),
                name="membership_institution_roles_need_institution",
                violation_error_message=_("This role needs an institution."),
            ),
        ]

    def __str__(self) -> str:
        scope = self.institution or self.consortium or self.region or ""
        return f"{self.user} · {self.get_role_display()} · {scope}"


class ApiToken(BaseModel):
    """A bearer token for the API. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user"))
    name = models.CharField(_("name"), max_length=80, blank=True)
    prefix = models.CharField(_("prefix"), max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
