"""Forms of the catalogue pages: the upload, the list's filters, the withdrawal."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from yilian.catalogues.models import CatalogueKind
from yilian.registry.models import Institution
from yilian.web.forms import DayInput

EXTENSIONS = (".csv", ".xlsx")
MAX_BYTES = 64 * 1024 * 1024  # a national classification is a few MB


def check_file(upload: UploadedFile | None) -> UploadedFile:
    """The upload, or a ValidationError on ``file`` saying what is wrong with it."""
    if upload is None:
        raise ValidationError({"file": [_("Choose a file.")]})
    suffix = PurePath(upload.name or "").suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValidationError(
            {"file": [_("Upload a .csv or .xlsx file; %(name)s is not one.") % {"name": upload.name}]}
        )
    size = upload.size or 0
    if size == 0:
        raise ValidationError({"file": [_("The file is empty.")]})
    if size > MAX_BYTES:
        raise ValidationError({"file": [_("The file is larger than %(mb)s MB.") % {"mb": MAX_BYTES // (1024 * 1024)}]})
    return upload


class UploadForm(forms.Form):
    kind = forms.ChoiceField(
        label=pgettext_lazy("catalogue", "Kind"),
        error_messages={"required": gettext_lazy("Choose the kind of catalogue.")},
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    name = forms.CharField(
        label=pgettext_lazy("catalogue", "Name"),
        max_length=120,
        help_text=gettext_lazy("As the basis of the indicators will quote it, e.g. 国家四级手术目录."),
        widget=forms.TextInput(attrs={"class": "form-control"}),
    )
    version = forms.CharField(
        label=gettext_lazy("Version"),
        max_length=40,
        help_text=gettext_lazy("E.g. 2022版."),
        widget=forms.TextInput(attrs={"class": "form-control"}),
    )
    valid_from = forms.DateField(
        label=gettext_lazy("Valid from"),
        help_text=gettext_lazy("Operations of stays discharged from this day on are read by this version."),
        widget=DayInput(attrs={"class": "form-control"}),
    )
    institution = forms.ModelChoiceField(
        label=gettext_lazy("Institution"),
        queryset=Institution.objects.none(),
        required=False,
        help_text=gettext_lazy("Only for an institution's own list of minimally invasive codes."),
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    file = forms.FileField(
        label=gettext_lazy("File"),
        required=False,  # checked in clean_file, with a message of our own
        help_text=gettext_lazy(
            "CSV (UTF-8 or GB18030) or Excel .xlsx with a column 编码 (code), optionally 名称 (name), and for a "
            "classification 类别 (category)."
        ),
        widget=forms.ClearableFileInput(attrs={"class": "form-control", "accept": ",".join(EXTENSIONS)}),
    )
    note = forms.CharField(
        label=gettext_lazy("Note"),
        max_length=500,
        required=False,
        widget=forms.TextInput(attrs={"class": "form-control"}),
    )

    def __init__(
        self, *args: Any, kinds: list[tuple[str, str]], institutions: QuerySet[Institution], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)
        kind.choices = [("", gettext_lazy("Choose…")), *kinds]
        field = self.fields["institution"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = institutions.order_by("code")
        field.to_field_name = "code"

    def clean_file(self) -> UploadedFile:
        try:
            return check_file(self.cleaned_data.get("file"))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["file"]) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, institution = data.get("kind"), data.get("institution")
        if kind == CatalogueKind.INSTITUTION_MI and institution is None and "institution" not in self.errors:
            self.add_error("institution", gettext_lazy("Choose the institution whose list this is."))
        if kind and kind != CatalogueKind.INSTITUTION_MI and institution is not None:
            self.add_error("institution", gettext_lazy("A national catalogue belongs to no institution."))
        return data


class FilterForm(forms.Form):
    kind = forms.ChoiceField(
        label=pgettext_lazy("catalogue", "Kind"),
        required=False,
        choices=[("", gettext_lazy("All kinds")), *CatalogueKind.choices],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[
            ("", gettext_lazy("Active and withdrawn")),
            ("active", pgettext_lazy("catalogue", "Active")),
            ("withdrawn", gettext_lazy("Withdrawn")),
        ],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=500,
        error_messages={"required": gettext_lazy("Say why the catalogue is withdrawn.")},
        widget=forms.Textarea(attrs={"class": "form-control", "rows": 2}),
    )
