"""Forms of the green-channel pages. They parse and check shapes; the services decide the rules.

The activation form carries every protocol the user may start, each with its own score and
finding fields (named after the protocol's public id, so that two consortia's stroke protocols
do not share a field); only the chosen protocol's fields are read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from yilian.patients.models import Sex
from yilian.referrals import protocols
from yilian.referrals.forms import DateTimeLocalInput
from yilian.referrals.models import GreenProtocol, GreenProtocolVersion
from yilian.registry.models import Institution
from yilian.web.forms import bootstrap_style

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]

# Quick choices for "last known well": minutes before now.
ONSET_AGO = [
    ("0", pgettext_lazy("moment", "Now")),
    ("30", _("30 min ago")),
    ("60", _("1 h ago")),
    ("120", _("2 h ago")),
    ("180", _("3 h ago")),
]


def _moment(label: Any) -> forms.DateTimeField:
    return forms.DateTimeField(label=label, required=False, widget=DateTimeLocalInput(), input_formats=DATETIME_FORMATS)


@dataclass
class ProtocolOption:
    """A protocol the user may start, with its current version's definition."""

    protocol: GreenProtocol
    version: GreenProtocolVersion
    definition: protocols.ProtocolDefinition

    @property
    def key(self) -> str:
        return self.protocol.public_id.hex

    def score_field(self, code: str) -> str:
        return f"s_{self.key}_{code}"

    @property
    def findings_field(self) -> str:
        return f"f_{self.key}"


class ActivationForm(forms.Form):
    protocol = forms.ChoiceField(label=_("Protocol"), choices=(), widget=forms.RadioSelect)
    sender = forms.ModelChoiceField(
        label=_("Sending hospital"), queryset=Institution.objects.none(), to_field_name="code", empty_label=None
    )
    # Patient: all optional; an unidentified patient is sex and approximate age.
    name = forms.CharField(label=_("Name"), max_length=60, required=False)
    id_number = forms.CharField(label=_("Resident ID number"), max_length=20, required=False)
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices, required=False, widget=forms.RadioSelect)
    approximate_age = forms.IntegerField(label=_("Approximate age"), required=False, min_value=0, max_value=120)
    # Last known well
    onset_ago = forms.ChoiceField(
        label=_("Last known well"), choices=ONSET_AGO, required=False, widget=forms.RadioSelect
    )
    onset_at = _moment(_("Last known well at"))
    onset_unknown = forms.BooleanField(label=_("Unknown"), required=False)
    # Imaging and notes
    imaging_done = forms.BooleanField(label=_("Imaging done"), required=False)
    imaging_result = forms.CharField(label=_("Imaging result"), max_length=300, required=False)
    note = forms.CharField(label=_("Note"), max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    door_in_at = _moment(_("Door-in (arrival at your hospital)"))
    destination = forms.CharField(max_length=40, required=False)

    def __init__(self, *args: Any, options: list[ProtocolOption], senders: list[Institution], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = options
        self.senders = senders
        self.fields["protocol"].choices = [(o.key, o.protocol.name) for o in options]  # type: ignore[attr-defined]
        self.fields["sender"].queryset = Institution.objects.filter(  # type: ignore[attr-defined]
            pk__in=[i.pk for i in senders]
        ).order_by("code")
        for option in options:
            for score in option.definition.scores:
                name = option.score_field(score.code)
                if score.labels:
                    self.fields[name] = forms.TypedChoiceField(
                        label=score.name,
                        choices=[(str(score.min + i), label) for i, label in enumerate(score.labels)],
                        coerce=int,
                        empty_value=None,
                        required=False,
                        widget=forms.RadioSelect,
                    )
                else:
                    self.fields[name] = forms.IntegerField(
                        label=score.name,
                        min_value=score.min,
                        max_value=score.max,
                        required=False,
                        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
                    )
            if option.definition.findings:
                self.fields[option.findings_field] = forms.MultipleChoiceField(
                    label=_("Imaging findings"),
                    choices=[(f.code, f.name) for f in option.definition.findings],
                    required=False,
                    widget=forms.CheckboxSelectMultiple,
                )
        bootstrap_style(self)
        self.fields["approximate_age"].widget.attrs["inputmode"] = "numeric"
        self.fields["id_number"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})
        self.fields["name"].widget.attrs["autocomplete"] = "off"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Said here too (the service checks it again), so that every gap shows at the first try.
        given = data.get("onset_unknown") or data.get("onset_at") is not None or data.get("onset_ago")
        if not given and "onset_at" not in self.errors:
            self.add_error("onset_at", _("Enter the time last known well, or tick “unknown”."))
        return data

    # -- what the views read (also from a form with errors, for the destinations panel) --

    @property
    def option(self) -> ProtocolOption | None:
        key = self.cleaned_data.get("protocol") if hasattr(self, "cleaned_data") else None
        return next((o for o in self.options if o.key == key), None)

    def bound_option(self) -> ProtocolOption | None:
        """The protocol chosen in the submitted data (before or without validation)."""
        key = self.data.get("protocol") if self.is_bound else self.initial.get("protocol")
        return next((o for o in self.options if o.key == key), None)

    def scores(self) -> dict[str, int]:
        option = self.option
        if option is None:
            return {}
        out = {}
        for score in option.definition.scores:
            value = self.cleaned_data.get(option.score_field(score.code))
            if value is not None:
                out[score.code] = int(value)
        return out

    def findings(self) -> list[str]:
        option = self.option
        if option is None:
            return []
        return list(self.cleaned_data.get(option.findings_field) or [])

    def onset(self, now: dt.datetime | None = None) -> tuple[dt.datetime | None, bool]:
        """(last known well, unknown): a time typed in wins over a quick choice."""
        data = self.cleaned_data
        if data.get("onset_unknown"):
            return None, True
        if data.get("onset_at") is not None:
            moment: dt.datetime = data["onset_at"]
            return moment, False
        ago = data.get("onset_ago")
        if ago:
            now = now or timezone.now()
            return now - dt.timedelta(minutes=int(ago)), False
        return None, False


class GreenReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bootstrap_style(self, small=True)


class GreenForwardForm(forms.Form):
    to_institution = forms.ChoiceField(label=_("Offer to"), choices=())
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["to_institution"].choices = choices  # type: ignore[attr-defined]
        bootstrap_style(self, small=True)


class NodeForm(forms.Form):
    """Record a time node now (no time given) or at a time; a correction also needs a reason."""

    node = forms.CharField(max_length=30, widget=forms.HiddenInput)
    at = _moment(pgettext_lazy("moment", "Time"))
    reason = forms.CharField(label=_("Reason for the correction"), max_length=300, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bootstrap_style(self, small=True)
