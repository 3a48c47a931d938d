"""Forms of the referral pages. They parse and check shapes; the services decide the rules."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yilian.patients.models import Sex
from yilian.referrals.models import ConsentMethod, Direction, RequestedService, Status, Urgency
from yilian.referrals.services import DRAFT_FIELDS
from yilian.registry.models import Department, Institution, Region
from yilian.web.forms import EARLIEST, LATEST, DayInput, bootstrap_style
from yilian.web.forms import AttachmentForm as AttachmentForm  # re-exported for the views

_style = bootstrap_style


def _department_label(d: Department) -> str:
    return f"{d.institution.short_name or d.institution.name} · {d.name}"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


def _datetime_field(label: Any, required: bool = True) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label, required=required, widget=DateTimeLocalInput(), input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
    )


class _ConsentMomentCheck:
    """A consent moment typed by hand stays within the years the application knows."""

    cleaned_data: dict[str, Any]

    def clean_consent_at(self) -> dt.datetime | None:
        moment: dt.datetime | None = self.cleaned_data.get("consent_at")
        if moment is not None and not (EARLIEST.year <= moment.year <= LATEST.year):
            raise forms.ValidationError(_("Enter a real date and time."))
        return moment


class ReferralForm(_ConsentMomentCheck, forms.Form):
    # Patient
    name = forms.CharField(label=_("Patient name"), max_length=60)
    id_number = forms.CharField(
        label=_("Resident ID number"),
        max_length=20,
        required=False,
        help_text=_("Leave empty for an unidentified patient; the record can be merged later."),
    )
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices, initial=Sex.UNKNOWN)
    birth_date = forms.DateField(label=_("Birth date"), required=False, widget=DayInput())
    approximate_age = forms.IntegerField(label=_("Approximate age"), required=False, min_value=0, max_value=130)
    phone = forms.CharField(label=_("Phone"), max_length=20, required=False)
    residence_region = forms.ModelChoiceField(
        label=_("Residence (county)"), queryset=Region.objects.none(), required=False, to_field_name="code"
    )
    address = forms.CharField(label=_("Address"), max_length=200, required=False)
    emergency_contact_name = forms.CharField(label=_("Emergency contact"), max_length=60, required=False)
    emergency_contact_relation = forms.CharField(label=_("Relationship to the patient"), max_length=20, required=False)
    emergency_contact_phone = forms.CharField(label=_("Contact phone"), max_length=20, required=False)
    # Referral
    direction = forms.ChoiceField(label=_("Direction"), choices=Direction.choices, widget=forms.RadioSelect)
    urgency = forms.ChoiceField(
        label=_("Urgency"), choices=Urgency.choices, initial=Urgency.ROUTINE, widget=forms.RadioSelect
    )
    from_institution = forms.ModelChoiceField(
        label=_("Referring institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    from_department = forms.ModelChoiceField(
        label=_("Referring department"), queryset=Department.objects.none(), required=False, to_field_name="public_id"
    )
    destination = forms.ChoiceField(label=_("Refer to"), choices=())
    to_department = forms.ModelChoiceField(
        label=_("Receiving department"), queryset=Department.objects.none(), required=False, to_field_name="public_id"
    )
    requested_service = forms.ChoiceField(label=_("Service requested"), choices=RequestedService.choices)
    reason = forms.CharField(label=_("Reason for referral"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    diagnosis_code = forms.CharField(label=_("ICD-10 code"), max_length=16)
    diagnosis_name = forms.CharField(label=_("Working diagnosis"), max_length=120)
    key_findings = forms.CharField(
        label=_("Key findings"), max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    current_treatment = forms.CharField(
        label=_("Current treatment"), max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    allergies = forms.CharField(label=_("Allergies"), max_length=400, required=False)
    # Consent
    consent_obtained_by = forms.CharField(label=_("Consent obtained by"), max_length=60, required=False)
    consent_method = forms.ChoiceField(
        label=_("Consent method"), choices=[("", "—"), *ConsentMethod.choices], required=False
    )
    consent_at = _datetime_field(_("Consent given at"), required=False)
    # Care plan (down-referrals)
    plan_diagnosis = forms.CharField(label=_("Discharge diagnosis"), max_length=200, required=False)
    plan_treatment_done = forms.CharField(
        label=_("Treatment done"), max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    plan_medication = forms.CharField(
        label=_("Medication"), max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    plan_follow_up = forms.CharField(
        label=_("Follow-up schedule"), max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    plan_warning_signs = forms.CharField(
        label=_("Warning signs"), max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(
        self,
        *args: Any,
        institutions: list[Institution],
        destinations: list[tuple[str, list[tuple[str, str]]]],
        departments: Any,
        regions: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["from_institution"].queryset = Institution.objects.filter(pk__in=[i.pk for i in institutions])  # type: ignore[attr-defined]
        if len(institutions) == 1:
            self.fields["from_institution"].initial = institutions[0].code
        self.fields["destination"].choices = [("", "—"), *destinations]  # type: ignore[attr-defined]
        self.fields["from_department"].queryset = departments  # type: ignore[attr-defined]
        self.fields["to_department"].queryset = departments  # type: ignore[attr-defined]
        self.fields["to_department"].label_from_instance = _department_label  # type: ignore[attr-defined]
        self.fields["residence_region"].queryset = regions  # type: ignore[attr-defined]
        _style(self)

    def clean_birth_date(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data.get("birth_date")
        if day is not None and not (EARLIEST <= day <= timezone.localdate()):
            raise forms.ValidationError(_("The birth date must be between 1900 and today."))
        return day


class DraftForm(_ConsentMomentCheck, forms.Form):
    """The draft's editable fields, with the same labels and limits as the referral form."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in DRAFT_FIELDS:
            self.fields[name] = copy.deepcopy(ReferralForm.base_fields[name])
        _style(self)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class ConsentForm(_ConsentMomentCheck, forms.Form):
    consent_obtained_by = forms.CharField(label=_("Consent obtained by"), max_length=60, required=False)
    consent_method = forms.ChoiceField(
        label=_("Consent method"), choices=[("", "—"), *ConsentMethod.choices], required=False
    )
    consent_at = _datetime_field(_("Consent given at"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class ForwardForm(forms.Form):
    to_institution = forms.ModelChoiceField(
        label=_("Forward to"), queryset=Institution.objects.none(), to_field_name="code"
    )
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, institutions: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if institutions is not None:
            self.fields["to_institution"].queryset = institutions  # type: ignore[attr-defined]
        _style(self, small=True)


class ScheduleForm(forms.Form):
    scheduled_at = _datetime_field(_("Appointment"))
    place = forms.CharField(label=_("Place"), max_length=200)
    instructions = forms.CharField(
        label=_("Instructions for the patient"),
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class OutcomeForm(forms.Form):
    diagnosis = forms.CharField(label=_("Final diagnosis"), max_length=200)
    treatment = forms.CharField(label=_("Treatment given"), max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    result = forms.CharField(label=_("Result"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    recommendations = forms.CharField(
        label=_("Recommendations"), max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    refer_back = forms.TypedChoiceField(
        label=_("Refer back down?"),
        choices=[("", "—"), ("yes", _("Yes")), ("no", _("No"))],
        coerce=lambda v: v == "yes",
        empty_value=None,
        required=False,
    )
    refer_back_on = forms.DateField(label=_("Refer back on"), required=False, widget=DayInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class BoardFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), required=False, choices=[("", _("All statuses")), *Status.choices])
    urgency = forms.ChoiceField(label=_("Urgency"), required=False, choices=[("", _("Any urgency")), *Urgency.choices])
    direction = forms.ChoiceField(
        label=_("Direction"), required=False, choices=[("", _("Any direction")), *Direction.choices]
    )
    department = forms.ChoiceField(label=_("Department"), required=False, choices=())
    date_from = forms.DateField(label=_("From"), required=False, widget=DayInput())
    date_to = forms.DateField(label=_("To"), required=False, widget=DayInput())
    overdue = forms.BooleanField(label=_("Overdue only"), required=False)
    q = forms.CharField(label=_("Referral number"), required=False, max_length=20)

    def __init__(self, *args: Any, departments: list[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [("", _("All departments")), *(departments or [])]  # type: ignore[attr-defined]
        _style(self, small=True)
        self.fields["overdue"].widget.attrs["class"] = "form-check-input"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("date_from", "date_to"):
            day = data.get(name)
            if day is not None and not (EARLIEST <= day <= LATEST):
                self.add_error(name, _("Choose a date between 1900 and 9998."))
        return data
