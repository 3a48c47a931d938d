"""Clinical files attached to records: what is accepted and how it is recognised.

A file is recognised by its first bytes, never by its name or the browser's content type:
PDF documents, PNG or JPEG images and DICOM files; at most ``max_bytes`` each.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy


class FileKind(models.TextChoices):
    PDF = "pdf", gettext_lazy("PDF document")
    IMAGE = "image", gettext_lazy("Image")
    DICOM = "dicom", gettext_lazy("DICOM image")


@dataclass(frozen=True)
class Inspected:
    kind: FileKind
    content_type: str
    size: int
    sha256: str
    name: str


def sniff(head: bytes) -> tuple[FileKind, str] | None:
    if head.startswith(b"%PDF-"):
        return FileKind.PDF, "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind.IMAGE, "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return FileKind.IMAGE, "image/jpeg"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return FileKind.DICOM, "application/dicom"
    return None


def inspect_upload(upload: UploadedFile, *, max_bytes: int) -> Inspected:
    """Refuse an empty, oversized or unrecognised file (``ValidationError`` on ``file``)."""
    size = upload.size or 0
    if size == 0:
        raise ValidationError({"file": _("The file is empty.")})
    if size > max_bytes:
        raise ValidationError({"file": _("The file is larger than %(mb)s MB.") % {"mb": max_bytes // (1024 * 1024)}})
    upload.seek(0)
    head = upload.read(132)
    upload.seek(0)
    sniffed = sniff(head)
    if sniffed is None:
        raise ValidationError({"file": _("Only PDF documents, PNG or JPEG images and DICOM files can be attached.")})
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    name = (upload.name or "file").replace("/", "_").replace("\\", "_")[-120:]
    return Inspected(kind=sniffed[0], content_type=sniffed[1], size=size, sha256=digest.hexdigest(), name=name)
