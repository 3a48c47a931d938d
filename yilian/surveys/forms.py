"""Forms of the staff survey pages. The answer page builds its inputs from the questionnaire's
items and hands them to the service, which checks them."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from yilian.registry.models import Department, Institution
from yilian.surveys.models import SurveyKind

ENCOUNTER_KIND_CHOICES = [(k.value, k.label) for k in (SurveyKind.OUTPATIENT, SurveyKind.INPATIENT)]


def _style(form: forms.Form) -> None:
    for field in form.fields.values():
        css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
        field.widget.attrs.setdefault("class", css)


class DepartmentField(forms.ModelChoiceField):  # type: ignore[type-arg]
    """A department, named with its institution when the user works at several."""

    with_institution = False

    def label_from_instance(self, obj: Any) -> str:
        if self.with_institution:
            return f"{obj.institution.short_name or obj.institution.name} · {obj.name}"
        return str(obj.name)


class _AtInstitution(forms.Form):
    institution = forms.ModelChoiceField(
        label=_("Institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    department = DepartmentField(
        label=_("Department"), queryset=Department.objects.none(), to_field_name="public_id", required=False
    )

    def __init__(self, *args: Any, institutions: list[Institution], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["institution"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Institution.objects.filter(pk__in=[i.pk for i in institutions]).order_by("code")
        if len(institutions) == 1:
            self.initial.setdefault("institution", institutions[0].code)
        department = self.fields["department"]
        assert isinstance(department, DepartmentField)
        department.queryset = (
            Department.objects.filter(institution__in=[i.pk for i in institutions], is_active=True)
            .select_related("institution")
            .order_by("institution__code", "discipline")
        )
        department.with_institution = len(institutions) > 1
        _style(self)


class IssueForm(_AtInstitution):
    kind = forms.ChoiceField(label=_("Survey"), choices=ENCOUNTER_KIND_CHOICES)


class StaffBatchForm(_AtInstitution):
    count = forms.IntegerField(label=_("Number of links"), min_value=1, max_value=500, initial=20)


class PosterForm(_AtInstitution):
    kind = forms.ChoiceField(label=_("Survey"), choices=ENCOUNTER_KIND_CHOICES)
    valid_days = forms.IntegerField(
        label=_("Each visitor's link is valid for (days)"), min_value=1, max_value=30, initial=1
    )


class SmsForm(forms.Form):
    phone = forms.CharField(
        label=_("Mobile number"),
        max_length=20,
        help_text=_("Used only to send this text message; it is not stored."),
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self)


class PublishForm(forms.Form):
    name_zh = forms.CharField(label=_("Name (Chinese)"), max_length=120)
    name_en = forms.CharField(label=_("Name (English)"), max_length=160, required=False)
    valid_days = forms.IntegerField(
        label=_("Links valid for (days)"),
        min_value=1,
        max_value=365,
        required=False,
        help_text=_("Empty: the site's default."),
    )
    items = forms.CharField(
        label=_("Items (JSON)"),
        widget=forms.Textarea(attrs={"rows": 24, "class": "form-control font-monospace", "spellcheck": "false"}),
        help_text=_(
            "A list of items. Each has key, dimension, type (likert, single, multiple or text), zh, en and "
            "required; single and multiple choices have options with key, zh and en. Exactly one text item."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self)

    def clean_items(self) -> Any:
        try:
            return json.loads(self.cleaned_data["items"])
        except ValueError as exc:
            raise ValidationError(
                _("Not valid JSON (line %(line)s, column %(column)s)."),
                params={"line": getattr(exc, "lineno", "?"), "column": getattr(exc, "colno", "?")},
            ) from exc
