from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from yilian.core.errors import Conflict
from yilian.core.models import AuditAction

T = TypeVar("T")

# Dates outside this range cannot be turned into time-zone-aware moments on every database.
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(9998, 12, 31)


class DayInput(forms.DateInput):
    """The browser's date picker; its value is always ISO (a localised date would show as empty)."""

    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


def errors_to_form(form: forms.Form, exc: ValidationError, field_for: dict[str, str] | None = None) -> None:
    """A service's ValidationError on the form: each message on its field when the form has one
    (``field_for`` maps a service's field name to the form's where they differ), else on the form."""
    if not hasattr(exc, "error_dict"):
        for message in exc.messages:
            form.add_error(None, message)
        return
    for name, errors in exc.message_dict.items():
        target = name if name in form.fields else (field_for or {}).get(name, name)
        for message in errors:
            form.add_error(target if target in form.fields else None, message)


def attempt(form: Any, call: Callable[[], T], field_for: dict[str, str] | None = None) -> tuple[T | None, int]:
    """Run a service for a valid form: (its result, 200); or (None, 400) with the service's
    ValidationError on the form's fields, or (None, 409) with a Conflict's reason on the form.
    A refusal (PermissionDenied) is not caught: it answers 403."""
    try:
        return call(), 200
    except ValidationError as exc:
        errors_to_form(form, exc, field_for)
        return None, 400
    except Conflict as exc:
        form.add_error(None, str(exc))
        return None, 409


class LoginForm(AuthenticationForm):
    error_messages = {
        "invalid_login": _("The username or password is wrong. Both are case-sensitive."),
        "inactive": _("This account is disabled. Ask your hospital administrator."),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"class": "form-control", "autocomplete": "username"})
        self.fields["password"].widget.attrs.update({"class": "form-control", "autocomplete": "current-password"})


class AuditFilterForm(forms.Form):
    user = forms.CharField(label=_("User"), required=False, max_length=150)
    object = forms.CharField(label=_("Object"), required=False, max_length=100)
    action = forms.ChoiceField(label=_("Action"), required=False, choices=[("", "—"), *AuditAction.choices])
    since = forms.DateField(label=_("From"), required=False, widget=DayInput())
    until = forms.DateField(label=_("To"), required=False, widget=DayInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            css = (
                "form-select form-select-sm" if isinstance(field, forms.ChoiceField) else "form-control form-control-sm"
            )
            field.widget.attrs.setdefault("class", css)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("since", "until"):
            day = data.get(name)
            if day is not None and not (EARLIEST <= day <= LATEST):
                self.add_error(name, _("Choose a date between 1900 and 9998."))
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data


def bootstrap_style(form: forms.Form, small: bool = False) -> None:
    """Bootstrap classes on a form's widgets (choices and check boxes keep their own)."""
    size = " form-control-sm" if small else ""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, forms.RadioSelect | forms.CheckboxInput | forms.CheckboxSelectMultiple):
            continue
        css = (
            ("form-select" + size.replace("control", "select"))
            if isinstance(widget, forms.Select)
            else ("form-control" + size)
        )
        widget.attrs.setdefault("class", css)


class AttachmentForm(forms.Form):
    """One clinical file added to a record (referral, consult), with an optional description."""

    file = forms.FileField(label=_("File"))
    description = forms.CharField(
        label=_("Description"),
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": _("What is it? (optional)")}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bootstrap_style(self, small=True)
