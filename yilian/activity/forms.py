"""Forms of the activity pages: the upload, the batch list's filters and the withdrawal.

The upload form checks what can be checked before a byte is parsed: a dataset is chosen, the file
has one of the accepted extensions, is not empty and not larger than the limit
(``max_upload_bytes``). The rows themselves are checked by the importer.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yilian.activity.columns import BatchKind
from yilian.activity.models import BatchStatus

# The largest file accepted (uploads and the API; the command line has no limit). A province's
# month of visits as CSV is well below it; a proxy in front must allow as much (client_max_body_size).
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
EXTENSIONS = (".csv", ".xlsx", ".json")


def max_upload_bytes() -> int:
    """``settings.ACTIVITY_MAX_UPLOAD_BYTES`` when set, else 512 MB (read at call time)."""
    return int(getattr(settings, "ACTIVITY_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


def check_upload(upload: UploadedFile | None) -> UploadedFile:
    """The upload, or a ``ValidationError`` on ``file`` saying what is wrong with it."""
    if upload is None:
        raise ValidationError({"file": [_("Choose a file.")]})
    suffix = PurePath(upload.name or "").suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValidationError(
            {
                "file": [
                    _("Upload a .csv, .xlsx or .json (FHIR bundle) file; %(name)s is not one.") % {"name": upload.name}
                ]
            }
        )
    size = upload.size or 0
    if size == 0:
        raise ValidationError({"file": [_("The file is empty.")]})
    limit = max_upload_bytes()
    if size > limit:
        raise ValidationError({"file": [_("The file is larger than %(mb)s MB.") % {"mb": limit // (1024 * 1024)}]})
    return upload


def clean_filename(upload: UploadedFile) -> str:
    """The file's own name for the manifest (no directories, at most 255 characters)."""
    name = (upload.name or "file").replace("\\", "/").rsplit("/", 1)[-1]
    stem, suffix = os.path.splitext(name)
    return stem[: 255 - len(suffix)] + suffix


@contextmanager
def staged_file(upload: UploadedFile) -> Iterator[Path]:
    """A path on disk holding the upload, with the upload's extension: Django's own temporary file
    for a large upload, else a copy of the in-memory one, removed afterwards."""
    temporary = getattr(upload, "temporary_file_path", None)
    if temporary is not None:
        yield Path(temporary())
        return
    suffix = PurePath(upload.name or "").suffix.lower()
    handle, name = tempfile.mkstemp(prefix="yilian-upload-", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


class UploadForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("Dataset"),
        choices=[("", gettext_lazy("Choose…")), *BatchKind.choices],
        error_messages={"required": gettext_lazy("Choose the dataset: discharges, operations, visits or front pages.")},
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    file = forms.FileField(
        label=gettext_lazy("File"),
        required=False,  # checked in clean_file, with a message of our own
        error_messages={"empty": gettext_lazy("The file is empty.")},
        help_text=gettext_lazy(
            "CSV (UTF-8, GB18030 or UTF-16), Excel .xlsx or a FHIR R4B bundle (.json); at most %(mb)s MB."
        ),
        widget=forms.ClearableFileInput(attrs={"class": "form-control", "accept": ",".join(EXTENSIONS)}),
    )
    accept_valid = forms.BooleanField(
        label=gettext_lazy("Import the valid rows and give me the rejected ones"),
        required=False,
        help_text=gettext_lazy("Without it, a file with any invalid row is rejected whole and nothing is imported."),
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = str(self.fields["file"].help_text) % {"mb": max_upload_bytes() // (1024 * 1024)}

    def clean_file(self) -> UploadedFile:
        try:
            return check_upload(self.cleaned_data.get("file"))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["file"]) from exc


class BatchFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("Dataset"),
        required=False,
        choices=[("", gettext_lazy("All datasets")), *BatchKind.choices],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("All statuses")), *BatchStatus.choices],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=500,
        error_messages={"required": gettext_lazy("Say why the batch is withdrawn.")},
        widget=forms.Textarea(attrs={"class": "form-control", "rows": 2}),
    )
