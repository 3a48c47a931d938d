"""Forms of the consult pages. They parse and check shapes; the services decide the rules
(agreement, consent, who may answer, conflicts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from yilian.consults.models import ConsentMethod, Kind, OutcomeValue, ReadingType, Status, Urgency
from yilian.patients.models import Sex
from yilian.registry.models import Discipline, Institution, Practitioner, ProfessionalTitle
from yilian.web.forms import EARLIEST, LATEST, DayInput, bootstrap_style
from yilian.web.forms import AttachmentForm as AttachmentForm  # re-exported for the views

_style = bootstrap_style


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


def _datetime_field(label: Any, required: bool = True) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label, required=required, widget=DateTimeLocalInput(), input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
    )


def _text(label: Any, rows: int = 3, required: bool = True, max_length: int = 2000) -> forms.CharField:
    return forms.CharField(
        label=label, max_length=max_length, required=required, widget=forms.Textarea(attrs={"rows": rows})
    )


def _in_range(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is not None and not (EARLIEST.year <= moment.year <= LATEST.year):
        raise forms.ValidationError(_("Enter a real date and time."))
    return moment


def expert_label(p: Practitioner) -> str:
    parts = [p.name, str(ProfessionalTitle(p.title).label) if p.title else ""]
    if p.department_id is not None:
        parts.append(p.department.name)  # type: ignore[union-attr]
    return " · ".join(x for x in parts if x)


_YES_NO = [("yes", _("Yes")), ("no", _("No"))]


def _yes_no(label: Any) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label,
        choices=_YES_NO,
        coerce=lambda v: v == "yes",
        empty_value=None,
        required=False,
        widget=forms.RadioSelect,
    )


class ConsultRequestForm(forms.Form):
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
    # The request
    from_institution = forms.ModelChoiceField(
        label=_("Requesting institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    kind = forms.ChoiceField(label=_("Kind of consultation"), choices=Kind.choices, initial=Kind.ECONSULT)
    reading_type = forms.ChoiceField(label=_("What to read"), choices=[("", "—"), *ReadingType.choices], required=False)
    urgency = forms.ChoiceField(
        label=_("Urgency"), choices=Urgency.choices, initial=Urgency.ROUTINE, widget=forms.RadioSelect
    )
    to_institution = forms.ModelChoiceField(
        label=_("Consulted institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    discipline = forms.ChoiceField(label=_("Specialty wanted"), choices=[("", "—"), *Discipline.choices])
    wanted_title = forms.ChoiceField(
        label=_("Title wanted (at least)"),
        choices=[("", _("Any title")), *ProfessionalTitle.choices],
        required=False,
    )
    named_expert = forms.ModelChoiceField(
        label=_("Named expert (optional)"),
        queryset=Practitioner.objects.none(),
        to_field_name="public_id",
        required=False,
        help_text=_("Without a name, the request goes to the specialty's experts."),
    )
    reason = _text(_("Reason for the consultation"), rows=2)
    purpose = _text(_("Purpose"), rows=2)
    question = _text(_("Question for the expert"), rows=3)
    history = _text(_("History of present illness"), rows=3, required=False, max_length=6000)
    examination = _text(_("Examination findings"), rows=2, required=False, max_length=4000)
    investigations = _text(_("Investigations (laboratory, imaging)"), rows=3, required=False, max_length=6000)
    diagnosis_code = forms.CharField(label=_("ICD-10 code"), max_length=16, required=False)
    diagnosis_name = forms.CharField(label=_("Working diagnosis"), max_length=120)
    current_treatment = _text(_("Current treatment"), rows=2, required=False, max_length=4000)
    # Consent: required by the service, which says so in its own words.
    consent_obtained_by = forms.CharField(label=_("Consent obtained by"), max_length=60, required=False)
    consent_method = forms.ChoiceField(
        label=_("Consent method"), choices=[("", "—"), *ConsentMethod.choices], required=False
    )
    consent_at = _datetime_field(_("Consent given at"), required=False)

    def __init__(
        self,
        *args: Any,
        institutions: list[Institution],
        partners: list[Institution],
        reachable: Any,
        experts: list[tuple[str, list[Practitioner]]],
        expert_queryset: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["from_institution"].queryset = Institution.objects.filter(pk__in=[i.pk for i in institutions])  # type: ignore[attr-defined]
        if len(institutions) == 1:
            self.fields["from_institution"].initial = institutions[0].code
        # The list offers the agreement partners; any institution the user sees is accepted, so
        # that a request to one without an agreement gets the service's own explanation.
        to_field = self.fields["to_institution"]
        to_field.queryset = reachable  # type: ignore[attr-defined]
        to_field.widget.choices = [("", "—"), *((i.code, i.name) for i in partners)]
        expert_field = self.fields["named_expert"]
        expert_field.queryset = expert_queryset  # type: ignore[attr-defined]
        expert_field.widget.choices = [
            ("", _("Any expert of the specialty")),
            *((group, [(str(p.public_id), expert_label(p)) for p in people]) for group, people in experts),
        ]
        _style(self)

    def clean_birth_date(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data.get("birth_date")
        if day is not None and not (EARLIEST <= day <= timezone.localdate()):
            raise forms.ValidationError(_("The birth date must be between 1900 and today."))
        return day

    def clean_consent_at(self) -> dt.datetime | None:
        return _in_range(self.cleaned_data.get("consent_at"))


class ReasonForm(forms.Form):
    reason = _text(_("Reason"), rows=2, max_length=500)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class TextForm(forms.Form):
    text = _text(_("Text"), rows=3, max_length=8000)

    def __init__(self, *args: Any, label: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if label:
            self.fields["text"].label = label
        _style(self, small=True)


class AssignForm(forms.Form):
    expert = forms.ModelChoiceField(label=_("Expert"), queryset=Practitioner.objects.none(), to_field_name="public_id")

    def __init__(self, *args: Any, experts: list[Practitioner], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["expert"]
        field.queryset = Practitioner.objects.filter(pk__in=[p.pk for p in experts])  # type: ignore[attr-defined]
        field.widget.choices = [("", "—"), *((str(p.public_id), expert_label(p)) for p in experts)]
        _style(self, small=True)


class SessionForm(forms.Form):
    """A teleconsultation's time and video link."""

    starts_at = _datetime_field(_("Starts at"))
    ends_at = _datetime_field(_("Ends at"))
    meeting_url = forms.URLField(label=_("Video-meeting link"), max_length=300, required=False, assume_scheme="https")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)

    def clean_starts_at(self) -> dt.datetime | None:
        return _in_range(self.cleaned_data.get("starts_at"))

    def clean_ends_at(self) -> dt.datetime | None:
        return _in_range(self.cleaned_data.get("ends_at"))


class MeetingChoiceForm(forms.Form):
    """An MDT case goes on the agenda of a planned meeting of the consulted institution."""

    meeting = forms.ChoiceField(label=_("MDT meeting"), choices=())

    def __init__(self, *args: Any, meetings: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["meeting"].choices = [("", "—"), *meetings]  # type: ignore[attr-defined]
        _style(self, small=True)


class AnswerForm(forms.Form):
    answer = _text(_("Answer"), rows=5, max_length=8000)
    recommendations = _text(_("Recommendations"), rows=3, required=False, max_length=8000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class ConclusionForm(forms.Form):
    conclusion = _text(_("Conclusion"), rows=5, max_length=8000)
    recommendations = _text(_("Recommendations"), rows=3, required=False, max_length=8000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class CloseOutForm(forms.Form):
    """The requester's close-out: each answer is required by the service, which says so."""

    referral_avoided = _yes_no(_("Was a referral or visit avoided?"))
    management_changed = _yes_no(_("Did the advice change the management?"))
    value_rating = forms.TypedChoiceField(
        label=_("Value of the advice"),
        choices=OutcomeValue.choices,
        coerce=int,
        empty_value=None,
        required=False,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(
        label=_("Comment"), max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), required=False, choices=[("", _("All statuses")), *Status.choices])
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[("", _("All kinds")), *Kind.choices])
    overdue = forms.BooleanField(label=_("Overdue only"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)
        self.fields["overdue"].widget.attrs["class"] = "form-check-input"


class PeriodForm(forms.Form):
    start = forms.DateField(label=_("From"), widget=DayInput())
    end = forms.DateField(label=_("To"), widget=DayInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("start", "end"):
            day = data.get(name)
            if day is not None and not (EARLIEST <= day <= LATEST):
                self.add_error(name, _("Choose a date between 1900 and 9998."))
        return data


class MeetingTimeForm(forms.Form):
    """A date with a start and an end time (a meeting is held within one day)."""

    date = forms.DateField(label=_("Date"), widget=DayInput())
    start = forms.TimeField(label=_("Start"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    end = forms.TimeField(label=_("End"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self, small=True)

    def clean_date(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data.get("date")
        if day is not None and not (EARLIEST <= day <= LATEST):
            raise forms.ValidationError(_("Choose a date between 1900 and 9998."))
        return day

    def moments(self) -> tuple[dt.datetime, dt.datetime]:
        data = self.cleaned_data
        start = timezone.make_aware(dt.datetime.combine(data["date"], data["start"]))
        end = timezone.make_aware(dt.datetime.combine(data["date"], data["end"]))
        return start, end


class MeetingForm(MeetingTimeForm):
    institution = forms.ModelChoiceField(
        label=pgettext_lazy("meeting", "Held by"), queryset=Institution.objects.none(), to_field_name="code"
    )
    title = forms.CharField(label=pgettext_lazy("meeting", "Title"), max_length=120)
    chair = forms.ModelChoiceField(label=_("Chair"), queryset=Practitioner.objects.none(), to_field_name="public_id")
    experts = forms.ModelMultipleChoiceField(
        label=_("Invited experts"),
        queryset=Practitioner.objects.none(),
        to_field_name="public_id",
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The chair is invited too."),
    )
    meeting_url = forms.URLField(label=_("Video-meeting link"), max_length=300, required=False, assume_scheme="https")

    field_order = ["institution", "title", "chair", "experts", "date", "start", "end", "meeting_url"]

    def __init__(self, *args: Any, institutions: list[Institution], experts: list[Practitioner], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["institution"].queryset = Institution.objects.filter(pk__in=[i.pk for i in institutions])  # type: ignore[attr-defined]
        people = Practitioner.objects.filter(pk__in=[p.pk for p in experts])
        for name in ("chair", "experts"):
            field = self.fields[name]
            field.queryset = people  # type: ignore[attr-defined]
            field.widget.choices = [
                *([("", "—")] if name == "chair" else []),
                *((str(p.public_id), expert_label(p)) for p in experts),
            ]
        _style(self)


class InviteForm(forms.Form):
    expert = forms.ModelChoiceField(label=_("Expert"), queryset=Practitioner.objects.none(), to_field_name="public_id")

    def __init__(self, *args: Any, experts: list[Practitioner], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["expert"]
        field.queryset = Practitioner.objects.filter(pk__in=[p.pk for p in experts])  # type: ignore[attr-defined]
        field.widget.choices = [("", "—"), *((str(p.public_id), expert_label(p)) for p in experts)]
        _style(self, small=True)
