"""Forms of the capability pages. They parse and check shapes; the services decide the rules.
Choices are narrowed by the views to what the user may see or write."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from yilian.capability.models import (
    AssessmentResult,
    FirstStatus,
    LocalRole,
    MacroRegion,
    Stage,
    TeachingKind,
    Technique,
    TrainingKind,
)
from yilian.dispatch.forms import check_dates, date_field, style
from yilian.dispatch.models import Programme
from yilian.registry.models import Department, Discipline, Institution, Practitioner, Region

MAX_DURATION_HOURS = 12


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class PractitionerChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        institution = obj.institution.short_name or obj.institution.name
        return f"{obj.name} · {institution}"


class DepartmentChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.institution.name} · {obj.name}"


class TechniqueChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        code = f" ({obj.operation_code})" if obj.operation_code else ""
        return f"{obj.name}{code}"


def _choices(form: forms.Form, name: str) -> forms.ChoiceField:
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    return field


def _filter_choices(items: Any, blank: Any) -> list[tuple[str, str]]:
    return [("", str(blank)), *[(str(value), str(label)) for value, label in items]]


# ----------------------------------------------------------------------------------------
# Catalogue


class TechniqueFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=80)
    discipline = forms.ChoiceField(
        label=_("Specialty"), required=False, choices=[("", _("All specialties")), *Discipline.choices]
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["q"].widget.attrs["placeholder"] = _("Name, code or operation code")
        style(self, small=True)


class TechniqueEditForm(forms.Form):
    name_zh = forms.CharField(label=_("Name (Chinese)"), max_length=120)
    name_en = forms.CharField(label=_("Name (English)"), max_length=160, required=False)
    operation_code = forms.CharField(
        label=_("National operation code"),
        max_length=20,
        required=False,
        help_text=_("The code or its stem: every code starting with it counts."),
    )
    level = forms.TypedChoiceField(
        label=_("Operation level"), coerce=int, choices=[(str(n), str(n)) for n in range(1, 5)], initial="3"
    )
    restricted = forms.BooleanField(label=_("Restricted technique (level 4)"), required=False)
    discipline = forms.ChoiceField(label=_("Specialty"), choices=Discipline.choices)
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        style(self)


class TechniqueForm(TechniqueEditForm):
    code = forms.SlugField(label=_("Code"), max_length=60, help_text=_("Letters, digits and hyphens."))

    field_order = ["code", "name_zh", "name_en", "operation_code", "level", "restricted", "discipline"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["is_active"]


# ----------------------------------------------------------------------------------------
# Ledger


class LedgerFilterForm(forms.Form):
    institution = forms.ChoiceField(label=_("Institution"), required=False)
    technique = forms.ChoiceField(label=_("Technique"), required=False)
    stage = forms.ChoiceField(label=_("Stage"), required=False)

    def __init__(
        self, *args: Any, institutions: QuerySet[Institution], techniques: QuerySet[Technique], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "institution").choices = _filter_choices(
            ((i.code, i.name) for i in institutions), _("All institutions")
        )
        _choices(self, "technique").choices = _filter_choices(
            ((t.code, t.name) for t in techniques), _("All techniques")
        )
        _choices(self, "stage").choices = _filter_choices(Stage.choices, _("All stages"))
        style(self, small=True)


class TransferForm(forms.Form):
    department = DepartmentChoiceField(label=_("Host department"), queryset=Department.objects.none())
    technique = TechniqueChoiceField(label=_("Technique"), queryset=Technique.objects.none(), to_field_name="code")
    expert = PractitionerChoiceField(label=_("Expert who brings it"), queryset=Practitioner.objects.none())
    note = forms.CharField(label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(
        self,
        *args: Any,
        departments: QuerySet[Department],
        techniques: QuerySet[Technique],
        experts: QuerySet[Practitioner],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["department"].queryset = departments  # type: ignore[attr-defined]
        self.fields["technique"].queryset = techniques  # type: ignore[attr-defined]
        self.fields["expert"].queryset = experts  # type: ignore[attr-defined]
        style(self)


class CaseForm(forms.Form):
    performed_on = date_field(_("Date"))
    local_role = forms.ChoiceField(label=_("Local surgeon's part"), choices=LocalRole.choices)
    local_surgeon = PractitionerChoiceField(
        label=_("Local surgeon"), queryset=Practitioner.objects.none(), required=False
    )
    operation_code = forms.CharField(label=_("Operation code"), max_length=20, required=False)
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args: Any, surgeons: QuerySet[Practitioner], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["local_surgeon"].queryset = surgeons  # type: ignore[attr-defined]
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "performed_on")
        return data


class PrivilegeForm(forms.Form):
    practitioner = PractitionerChoiceField(label=_("Surgeon"), queryset=Practitioner.objects.none())
    granted_on = date_field(_("Granted on"))
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args: Any, surgeons: QuerySet[Practitioner], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["practitioner"].queryset = surgeons  # type: ignore[attr-defined]
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "granted_on")
        return data


# ----------------------------------------------------------------------------------------
# Firsts


class FirstFilterForm(forms.Form):
    programme = forms.ChoiceField(label=_("Stationing programme"), required=False)
    consortium = forms.ChoiceField(label=_("Consortium"), required=False)
    status = forms.ChoiceField(label=_("Verdict"), required=False)

    def __init__(self, *args: Any, programmes: list[Any], consortia: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "programme").choices = _filter_choices(
            ((p.code, p.title) for p in programmes), _("All programmes")
        )
        _choices(self, "consortium").choices = _filter_choices(
            ((c.code, c.name) for c in consortia), _("All consortia")
        )
        _choices(self, "status").choices = _filter_choices(FirstStatus.choices, _("All verdicts"))
        style(self, small=True)


class RegionChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.get_level_display()})"


class FirstForm(forms.Form):
    technique = TechniqueChoiceField(label=_("Technique"), queryset=Technique.objects.none(), to_field_name="code")
    institution = forms.ModelChoiceField(
        label=_("Institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    performed_on = date_field(_("Date of the case"))
    region = RegionChoiceField(
        label=_("First in the region"),
        queryset=Region.objects.none(),
        to_field_name="code",
        required=False,
        help_text=_("A city or a province; or choose a macro-region instead."),
    )
    macro_region = forms.ChoiceField(
        label=_("or in the macro-region"), required=False, choices=[("", "—"), *MacroRegion.choices]
    )
    programme = forms.ModelChoiceField(
        label=_("Stationing programme"), queryset=Programme.objects.none(), required=False, to_field_name="code"
    )
    description = forms.CharField(
        label=_("Description"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(
        self,
        *args: Any,
        techniques: QuerySet[Technique],
        institutions: QuerySet[Institution],
        regions: QuerySet[Region],
        programmes: QuerySet[Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["technique"].queryset = techniques  # type: ignore[attr-defined]
        self.fields["institution"].queryset = institutions  # type: ignore[attr-defined]
        self.fields["region"].queryset = regions  # type: ignore[attr-defined]
        self.fields["programme"].queryset = programmes  # type: ignore[attr-defined]
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "performed_on")
        if data.get("region") is None and not data.get("macro_region"):
            self.add_error("region", _("Choose the region of the first, or a macro-region."))
        elif data.get("region") is not None and data.get("macro_region"):
            self.add_error("macro_region", _("Claim the first for a region or for a macro-region, not both."))
        return data


# ----------------------------------------------------------------------------------------
# Teaching


class TeachingFilterForm(forms.Form):
    institution = forms.ChoiceField(label=_("Place"), required=False)
    kind = forms.ChoiceField(label=_("Kind"), required=False)
    start = date_field(_("From"), required=False)
    end = date_field(_("Before"), required=False)

    def __init__(self, *args: Any, institutions: QuerySet[Institution], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "institution").choices = _filter_choices(
            ((i.code, i.name) for i in institutions), _("All places")
        )
        _choices(self, "kind").choices = _filter_choices(TeachingKind.choices, _("All kinds"))
        style(self, small=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "start", "end")
        return data


class TeachingForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=TeachingKind.choices)
    topic = forms.CharField(label=_("Topic"), max_length=200)
    starts_at = forms.DateTimeField(label=_("Starts at"), widget=DateTimeInput())
    ends_at = forms.DateTimeField(label=_("Ends at"), widget=DateTimeInput())
    leader = PractitionerChoiceField(label=_("Leader"), queryset=Practitioner.objects.none())
    institutions = forms.ModelMultipleChoiceField(
        label=_("Places"),
        queryset=Institution.objects.none(),
        to_field_name="code",
        widget=forms.CheckboxSelectMultiple,
        help_text=_("One institution, or several for a session held jointly or online."),
    )
    place = forms.CharField(label=_("Room or address"), max_length=200, required=False)
    materials = forms.CharField(
        label=_("Materials"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Titles or links, one per line."),
    )
    other_attendees = forms.IntegerField(
        label=_("Other attendees (count)"),
        min_value=0,
        initial=0,
        help_text=_("People without an account who came, e.g. nurses or students."),
    )

    def __init__(
        self, *args: Any, leaders: QuerySet[Practitioner], institutions: QuerySet[Institution], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["leader"].queryset = leaders  # type: ignore[attr-defined]
        self.fields["institutions"].queryset = institutions  # type: ignore[attr-defined]
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("starts_at", "ends_at"):
            moment = data.get(name)
            if isinstance(moment, dt.datetime) and not (1900 <= moment.year <= 9998):
                self.add_error(name, _("Choose a date between 1900 and 9998."))
        return data


class AttendeeForm(forms.Form):
    practitioner = PractitionerChoiceField(label=_("Attendee"), queryset=Practitioner.objects.none())

    def __init__(self, *args: Any, practitioners: QuerySet[Practitioner], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["practitioner"].queryset = practitioners  # type: ignore[attr-defined]
        style(self)


class SignInForm(forms.Form):
    code = forms.CharField(max_length=64)


# ----------------------------------------------------------------------------------------
# Training


class TrainingForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=TrainingKind.choices)
    name_zh = forms.CharField(label=_("Name (Chinese)"), max_length=120)
    name_en = forms.CharField(label=_("Name (English)"), max_length=160, required=False)
    institution = forms.ModelChoiceField(
        label=_("Host institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    mentor = PractitionerChoiceField(label=_("Mentor"), queryset=Practitioner.objects.none())
    starts_on = date_field(_("Starts on"))
    ends_on = date_field(_("Ends on"), required=False)
    goals = forms.CharField(label=_("Goals"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(
        self, *args: Any, institutions: QuerySet[Institution], mentors: QuerySet[Practitioner], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["institution"].queryset = institutions  # type: ignore[attr-defined]
        self.fields["mentor"].queryset = mentors  # type: ignore[attr-defined]
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "starts_on", "ends_on")
        return data


class MilestoneForm(forms.Form):
    title_zh = forms.CharField(label=_("Title (Chinese)"), max_length=120)
    title_en = forms.CharField(label=_("Title (English)"), max_length=160, required=False)
    due_months = forms.IntegerField(label=_("Due after (months)"), min_value=1, max_value=120, initial=6)
    technique = TechniqueChoiceField(
        label=_("Technique"), queryset=Technique.objects.none(), to_field_name="code", required=False
    )
    stage = forms.ChoiceField(label=_("Stage of the technique"), required=False, choices=[("", "—"), *Stage.choices])

    def __init__(self, *args: Any, techniques: QuerySet[Technique], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["technique"].queryset = techniques  # type: ignore[attr-defined]
        style(self)


class MenteeForm(forms.Form):
    practitioner = PractitionerChoiceField(label=_("Mentee"), queryset=Practitioner.objects.none())
    joined_on = date_field(_("Joined on"))

    def __init__(self, *args: Any, practitioners: QuerySet[Practitioner], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["practitioner"].queryset = practitioners  # type: ignore[attr-defined]
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "joined_on")
        return data


class AssessmentForm(forms.Form):
    milestone = forms.ChoiceField(label=_("Milestone"))
    assessed_on = date_field(_("Assessed on"))
    result = forms.ChoiceField(label=_("Result"), choices=AssessmentResult.choices)
    score = forms.IntegerField(label=_("Score"), min_value=0, max_value=100, required=False)
    comment = forms.CharField(
        label=_("Comment"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, milestones: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "milestone").choices = [(str(m.public_id), m.title) for m in milestones]
        style(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_dates(self, "assessed_on")
        return data
