"""Forms of the stationing pages. They parse and check shapes; the services decide the rules."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from yilian.dispatch.models import (
    Commitment,
    HostRole,
    ObjectiveKind,
    OperationRole,
    ProgrammeStatus,
)
from yilian.registry.models import Agreement, Consortium, Department, Institution, Practitioner
from yilian.web.forms import EARLIEST, LATEST

WEEKDAY_SHORT = (_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun"))
WEEKDAY_CHOICES = [(str(i + 1), label) for i, label in enumerate(WEEKDAY_SHORT)]
MAX_WEEKS = 12
MAX_REPORT_MONTHS = 24
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def style(form: forms.BaseForm, small: bool = False) -> None:
    """Bootstrap classes on every widget (check boxes and radio buttons keep their own)."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, forms.CheckboxSelectMultiple | forms.RadioSelect):
            continue
        if isinstance(widget, forms.CheckboxInput):
            widget.attrs.setdefault("class", "form-check-input")
            continue
        if isinstance(widget, forms.Select):
            css = "form-select form-select-sm" if small else "form-select"
        else:
            css = "form-control form-control-sm" if small else "form-control"
        widget.attrs.setdefault("class", css)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%d")


def date_field(label: Any, required: bool = True, **kwargs: Any) -> forms.DateField:
    return forms.DateField(label=label, required=required, widget=DateInput(), **kwargs)


def check_dates(form: forms.Form, *names: str) -> None:
    """Dates typed by hand stay within the years the application handles."""
    for name in names:
        day = form.cleaned_data.get(name)
        if isinstance(day, dt.date) and not (EARLIEST <= day <= LATEST):
            form.add_error(name, _("Choose a date between 1900 and 9998."))


def weekdays_value(values: Iterable[str]) -> str:
    return "".join(sorted(set(values)))


# ----------------------------------------------------------------------------------------
# Programmes


class ProgrammeFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All statuses")), *ProgrammeStatus.choices]
    )
    q = forms.CharField(label=_("Search"), required=False, max_length=80)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["q"].widget.attrs["placeholder"] = _("Code, title or host hospital")
        style(self, small=True)


class ProgrammeEditForm(forms.Form):
    """What the office may change of a programme once it exists (the status has its own form)."""

    title_zh = forms.CharField(label=_("Title (Chinese)"), max_length=120)
    title_en = forms.CharField(label=_("Title (English)"), max_length=160, required=False)
    batch = forms.IntegerField(label=_("Batch"), min_value=1, max_value=99, initial=1)
    starts_on = date_field(_("Starts on"))
    ends_on = date_field(_("Ends on"), required=False)
    require_location = forms.BooleanField(
        label=_("Check-in must be on site"),
        required=False,
        help_text=_("Check-ins are compared with the host's coordinates and refused when too far away."),
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "starts_on", "ends_on")
        return data


class ProgrammeForm(ProgrammeEditForm):
    code = forms.SlugField(
        label=_("Code"), max_length=40, help_text=_("Letters, digits and hyphens, e.g. zju2-qzph-3.")
    )
    consortium = forms.ModelChoiceField(label=_("Consortium"), queryset=Consortium.objects.none(), to_field_name="code")
    sending_institution = forms.ModelChoiceField(
        label=_("Sending institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    host_institution = forms.ModelChoiceField(
        label=_("Host institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    agreement = forms.ModelChoiceField(
        label=_("Agreement"), queryset=Agreement.objects.none(), to_field_name="code", required=False
    )
    status = forms.ChoiceField(label=_("Status"), choices=ProgrammeStatus.choices, initial=ProgrammeStatus.ACTIVE)
    field_order = [
        "code",
        "consortium",
        "sending_institution",
        "host_institution",
        "agreement",
        "title_zh",
        "title_en",
        "batch",
        "starts_on",
        "ends_on",
        "status",
    ]

    def __init__(
        self,
        *args: Any,
        consortia: Any = None,
        institutions: Any = None,
        agreements: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["consortium"].queryset = consortia if consortia is not None else Consortium.objects.none()  # type: ignore[attr-defined]
        for name in ("sending_institution", "host_institution"):
            self.fields[name].queryset = institutions if institutions is not None else Institution.objects.none()  # type: ignore[attr-defined]
        self.fields["agreement"].queryset = agreements if agreements is not None else Agreement.objects.none()  # type: ignore[attr-defined]


class ProgrammeStatusForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=ProgrammeStatus.choices)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        style(self, small=True)


class ObjectiveForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=ObjectiveKind.choices)
    name_zh = forms.CharField(label=_("Name (Chinese)"), max_length=120)
    name_en = forms.CharField(label=_("Name (English)"), max_length=160, required=False)
    target = forms.CharField(label=_("Target"), max_length=200, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        style(self, small=True)


def _department_choices(departments: Iterable[Department]) -> list[tuple[str, str]]:
    return [(str(d.public_id), d.name) for d in departments]


class DemandForm(forms.Form):
    department = forms.ChoiceField(label=_("Host department"), choices=())
    days_per_week = forms.IntegerField(label=_("Expert-days per week (at least)"), min_value=0, max_value=70)
    need_weekdays = forms.MultipleChoiceField(
        label=_("Weekdays that need an expert on site"),
        choices=WEEKDAY_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    need_label_zh = forms.CharField(label=_("Need (Chinese)"), max_length=40, required=False)
    need_label_en = forms.CharField(label=_("Need (English)"), max_length=60, required=False)

    def __init__(self, *args: Any, departments: Iterable[Department] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = _department_choices(departments)  # type: ignore[attr-defined]
        self.fields["need_label_zh"].widget.attrs["placeholder"] = "手术日"
        style(self, small=True)


class AssignmentEditForm(forms.Form):
    """What the office may change of an assignment once the expert is stationed: the role, the dates,
    the commitment and the home duties (who goes where stays)."""

    role = forms.ChoiceField(label=_("Role at the host"), choices=HostRole.choices)
    starts_on = date_field(_("Starts on"))
    ends_on = date_field(_("Ends on"), required=False, help_text=_("Empty: the end of the programme."))
    commitment = forms.ChoiceField(
        label=_("Commitment"), choices=Commitment.choices, initial=Commitment.DAYS_PER_WEEK, widget=forms.RadioSelect
    )
    days_per_week = forms.IntegerField(label=_("On-site days per week"), min_value=1, max_value=7, required=False)
    blocked_weekdays = forms.MultipleChoiceField(
        label=_("Home-duty weekdays"), choices=WEEKDAY_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )
    blocked_note = forms.CharField(label=_("Home duties"), max_length=120, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["blocked_note"].widget.attrs["placeholder"] = "本院周二专家门诊"
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "starts_on", "ends_on")
        return data


class AssignmentForm(AssignmentEditForm):
    practitioner = forms.ModelChoiceField(
        label=_("Expert"), queryset=Practitioner.objects.none(), to_field_name="public_id"
    )
    host_department = forms.ChoiceField(label=_("Host department"), choices=())
    home_department = forms.ChoiceField(
        label=_("Home department"),
        choices=(),
        required=False,
        help_text=_("Leave empty for the expert's own department."),
    )
    field_order = ["practitioner", "host_department", "home_department"]

    def __init__(
        self,
        *args: Any,
        practitioners: Any = None,
        host_departments: Iterable[Department] = (),
        home_departments: Iterable[Department] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["practitioner"]
        field.queryset = practitioners if practitioners is not None else Practitioner.objects.none()  # type: ignore[attr-defined]
        field.label_from_instance = _practitioner_label  # type: ignore[attr-defined]
        self.fields["host_department"].choices = _department_choices(host_departments)  # type: ignore[attr-defined]
        self.fields["home_department"].choices = [("", "—"), *_department_choices(home_departments)]  # type: ignore[attr-defined]


def _practitioner_label(p: Practitioner) -> str:
    department = p.department.name if p.department else ""
    return f"{p.name} · {department}" if department else p.name


class WithdrawForm(forms.Form):
    on = date_field(_("Last day on site"))
    reason = forms.CharField(label=_("Reason"), max_length=200)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        style(self, small=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "on")
        return data


class LeaveForm(forms.Form):
    starts_on = date_field(_("From"))
    ends_on = date_field(_("To"))
    reason = forms.CharField(label=_("Reason"), max_length=120, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].widget.attrs["placeholder"] = _("e.g. conference, training, illness")
        style(self, small=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "starts_on", "ends_on")
        return data


class AttendanceForm(forms.Form):
    ACTIONS = (("confirm", _("Confirm")), ("absent", _("Absent")), ("clear", _("Clear")))

    date = forms.DateField(label=_("Date"))
    action = forms.ChoiceField(label=_("Action"), choices=ACTIONS)
    reason = forms.CharField(label=_("Reason for absence"), max_length=200, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "date")
        return data


# ----------------------------------------------------------------------------------------
# Rosters


class FixForm(forms.Form):
    KINDS = (("on_site", _("Fix on site")), ("off", _("Fix off")), ("clear", _("Clear")))

    assignment = forms.UUIDField()
    date = forms.DateField()
    kind = forms.ChoiceField(choices=KINDS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "date")
        return data


class OptimiseForm(forms.Form):
    start = date_field(_("From Monday"))
    weeks = forms.IntegerField(label=_("Weeks"), min_value=1, max_value=MAX_WEEKS, initial=4)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        style(self, small=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "start")
        return data


class RosterQueryForm(forms.Form):
    view = forms.ChoiceField(choices=(("week", _("Week")), ("month", _("Month"))), required=False)
    start = forms.DateField(required=False)
    department = forms.UUIDField(required=False)
    expert = forms.UUIDField(required=False)
    cell = forms.CharField(required=False, max_length=60)


# ----------------------------------------------------------------------------------------
# The expert's own pages


class CheckInForm(forms.Form):
    latitude = forms.DecimalField(required=False, max_digits=12, decimal_places=8, widget=forms.HiddenInput)
    longitude = forms.DecimalField(required=False, max_digits=12, decimal_places=8, widget=forms.HiddenInput)


class WorkLogForm(forms.Form):
    outpatient_sessions = forms.IntegerField(label=_("Outpatient sessions"), min_value=0, max_value=500, initial=0)
    patients_seen = forms.IntegerField(label=_("Outpatients seen"), min_value=0, max_value=500, initial=0)
    ward_rounds = forms.IntegerField(label=_("Ward rounds"), min_value=0, max_value=500, initial=0)
    teaching_sessions = forms.IntegerField(label=_("Teaching sessions"), min_value=0, max_value=500, initial=0)
    consultations = forms.IntegerField(label=_("Consultations"), min_value=0, max_value=500, initial=0)
    management_meetings = forms.IntegerField(label=_("Management meetings"), min_value=0, max_value=500, initial=0)
    note = forms.CharField(label=_("Note"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        style(self)
        for name, field in self.fields.items():
            if isinstance(field, forms.IntegerField):
                field.widget.attrs.update(
                    {"inputmode": "numeric", "class": "form-control form-control-lg text-center count-input"}
                )
            else:
                field.widget.attrs["placeholder"] = _("Cases discussed, lectures given, what the department needs…")
            field.widget.attrs.setdefault("id", f"id_{name}")


class OperationForm(forms.Form):
    """One row of the operations table; a row without a procedure is ignored."""

    procedure = forms.CharField(label=_("Procedure"), max_length=120, required=False)
    procedure_code = forms.CharField(label=_("Operation code"), max_length=20, required=False)
    level = forms.TypedChoiceField(
        label=_("Level"),
        choices=[("", "—"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4")],
        coerce=int,
        required=False,
        empty_value=None,
    )
    role = forms.ChoiceField(label=_("Your role"), choices=[("", "—"), *OperationRole.choices], required=False)
    minimally_invasive = forms.BooleanField(label=_("Minimally invasive"), required=False)
    local_surgeon = forms.ChoiceField(label=_("Local surgeon"), required=False, choices=())
    local_surgeon_name = forms.CharField(label=_("or their name"), max_length=40, required=False)

    def __init__(self, *args: Any, surgeons: list[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["local_surgeon"].choices = [("", "—"), *(surgeons or [])]  # type: ignore[attr-defined]
        self.fields["procedure"].widget.attrs["placeholder"] = _("Name of the operation")
        self.fields["local_surgeon_name"].widget.attrs["placeholder"] = _("Name, if not in the list")
        style(self)

    @property
    def is_blank(self) -> bool:
        return not (self.cleaned_data.get("procedure") or "").strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("procedure") or "").strip():
            if data.get("level") is None:
                self.add_error("level", _("Choose the level."))
            if not data.get("role"):
                self.add_error("role", _("Choose your role."))
        return data


# ----------------------------------------------------------------------------------------
# Working calendar


class CalendarDayForm(forms.Form):
    date = date_field(_("Date"))
    is_workday = forms.TypedChoiceField(
        label=_("Kind of day"),
        choices=(("0", _("Public holiday")), ("1", _("Adjusted working day"))),
        coerce=lambda v: v == "1",
    )
    name_zh = forms.CharField(label=_("Name (Chinese)"), max_length=40, required=False)
    name_en = forms.CharField(label=_("Name (English)"), max_length=60, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name_zh"].widget.attrs["placeholder"] = "春节"
        self.fields["name_en"].widget.attrs["placeholder"] = "Spring Festival"
        style(self, small=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "date")
        return data


def parse_month(value: str) -> dt.date | None:
    """The first day of a ``YYYY-MM`` month, None when the text is no such month."""
    match = MONTH_RE.match(value.strip())
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and EARLIEST.year <= year < LATEST.year):
        return None
    return dt.date(year, month, 1)
