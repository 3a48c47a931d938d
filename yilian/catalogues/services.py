"""Writes of the operation catalogues: load a version from a file, withdraw one.

Domain rules enforced here:
- the national kinds (classification, level-4, minimally invasive) are loaded and withdrawn by
  holders of "Load the national operation catalogues"; an institution's own minimally invasive list
  by those who may keep that institution's list (``selectors.institution_queryset_listable_by``);
  an institution's list names its institution, a national catalogue none;
- a file is read like an activity import (CSV in UTF-8 or GB18030, or .xlsx; headers matched after
  the same normalisation): a column of codes, optionally of names, and for a classification a
  column of categories;
- a version loads whole or not at all: a missing code, a code not shaped like an operation code
  (after normalisation: trimmed, upper case, Excel's trailing ``.0`` removed), a code listed twice,
  or in a classification a missing or unknown category rejects the file, with every problem named
  by row, column and value (the first ``MAX_PROBLEMS``), and nothing is stored;
- one active version of each name, and one starting on any day, per kind (and institution): a
  version takes over from its ``valid_from`` until the next one starts;
- a withdrawn version stays on record but applies nowhere (the one before it applies again);
- every load and withdrawal writes an audit row in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.activity.columns import CATEGORY_VALUES, normalise_header
from yilian.activity.readers import RawTable, ReadError, read_csv, read_xlsx, scan
from yilian.catalogues import selectors
from yilian.catalogues.models import Catalogue, CatalogueCode, CatalogueKind
from yilian.core.audit import audit_record
from yilian.core.errors import Conflict
from yilian.core.models import AuditAction
from yilian.registry.models import Institution, User

AnyUser = AbstractBaseUser | AnonymousUser

__all__ = [
    "CatalogueRejected",
    "Problem",
    "catalogue_import",
    "catalogue_withdraw",
    "normalise_code",
]

MAX_PROBLEMS = 50
CODE_SHAPE = re.compile(r"^[0-9]{2}(\.[0-9A-Z]{1,8})?$")
HEADERS: dict[str, tuple[str, ...]] = {
    "code": (
        "编码",
        "代码",
        "手术操作编码",
        "手术及操作编码",
        "手术编码",
        "code",
        "operation code",
        "procedure code",
    ),
    "name": ("名称", "手术操作名称", "手术及操作名称", "手术名称", "name", "operation name", "procedure name"),
    "category": ("类别", "手术操作类别", "操作类别", "category", "operation category"),
}
_HEADER_MAP = {normalise_header(h): column for column, headers in HEADERS.items() for h in headers}
_CATEGORIES = {key.lower(): value for key, value in CATEGORY_VALUES.items()}


def normalise_code(text: str) -> str:
    """A code as the catalogues store it and as the engine compares the facts' codes: trimmed
    (full-width spaces too), upper case, without a trailing ``.0`` (Excel's damage to a code it
    took for a number)."""
    code = text.replace("\u3000", " ").strip().upper()
    return re.sub(r"\.0$", "", code)


@dataclass(frozen=True)
class Problem:
    """One reason a file is rejected: the spreadsheet row (1 is the header line; 0 the whole
    file), the column's header as written, the value as written, and what is wrong."""

    row: int
    column: str
    value: str
    message: str

    @property
    def text(self) -> str:
        if self.row == 0:
            return self.message
        return _("Row %(row)s, column “%(column)s”: %(message)s") % {
            "row": self.row,
            "column": self.column,
            "message": self.message,
        }


class CatalogueRejected(ValidationError):
    """The file was read and rejected whole: ``problems`` are the first ones, ``total`` counts all."""

    def __init__(self, problems: list[Problem], total: int) -> None:
        self.problems = problems
        self.total = total
        summary = _("The file was rejected: nothing was loaded (%(n)s problem(s)).") % {"n": total}
        super().__init__({"file": [summary, *(p.text for p in problems)]})


def _account(user: AnyUser) -> User | None:
    return user if isinstance(user, User) and user.is_authenticated else None


def _allowed_categories() -> str:
    """The accepted spellings (the same as an operations import's), quoted as they are in any language."""
    return ", ".join(CATEGORY_VALUES)


def _read(path: Path, filename: str) -> tuple[RawTable, str]:
    """The file's cells and its SHA-256 digest; a ValidationError on ``file`` when it cannot be read."""
    suffix = Path(filename).suffix.lower()
    if suffix not in (".csv", ".txt", ".xlsx"):
        raise ValidationError(
            {"file": [_("Upload a .csv or .xlsx file; %(name)s is not one.") % {"name": filename[:100]}]}
        )
    digest, encoding = scan(path)
    try:
        raw = read_xlsx(path) if suffix == ".xlsx" else read_csv(path, encoding=encoding)
    except ReadError as exc:
        raise ValidationError({"file": [str(exc)]}) from exc
    return raw, digest


@dataclass(frozen=True)
class _Row:
    code: str
    name: str
    category: str | None


def _rows(kind: str, raw: RawTable) -> list[_Row]:
    """The file's codes, or CatalogueRejected naming every problem (row, column, value)."""
    columns: dict[str, int] = {}
    for index, written in enumerate(raw.headers):
        column = _HEADER_MAP.get(normalise_header(written))
        if column is not None:
            columns.setdefault(column, index)
    problems: list[Problem] = []
    if "code" not in columns:
        problems.append(
            Problem(
                0,
                "",
                "",
                _(
                    "The file has no column of codes: name it 编码, 手术操作编码, 代码 or code. "
                    "Its columns are: %(headers)s."
                )
                % {"headers": ", ".join(raw.headers)[:300]},
            )
        )
    classification = kind == CatalogueKind.CLASSIFICATION
    if classification and "category" not in columns:
        problems.append(
            Problem(
                0,
                "",
                "",
                _("An operation classification needs a column of categories: name it 类别, 手术操作类别 or category."),
            )
        )
    if problems:
        raise CatalogueRejected(problems, len(problems))

    def cells(column: str) -> list[str]:
        if column not in columns:
            return [""] * raw.num_rows
        return [v or "" for v in raw.table.column(f"c{columns[column]}").to_pylist()]

    def header(column: str) -> str:
        return raw.headers[columns[column]]

    codes, names, categories = cells("code"), cells("name"), cells("category")
    everything = [raw.table.column(i).to_pylist() for i in range(raw.table.num_columns)]
    numbers = raw.row_numbers.to_pylist() if raw.row_numbers is not None else None
    seen: dict[str, int] = {}
    out: list[_Row] = []
    total = 0

    def problem(row: int, column: str, value: str, message: str) -> None:
        nonlocal total
        total += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(row, header(column), value, message))

    for i in range(raw.num_rows):
        row = numbers[i] if numbers is not None else raw.first_row + i
        if not any((column[i] or "").strip() for column in everything):
            continue  # a blank line
        written = codes[i].strip()
        code = normalise_code(written)
        category: str | None = None
        if not code:
            problem(row, "code", written, _("The code is missing."))
        elif not CODE_SHAPE.match(code):
            problem(
                row,
                "code",
                written,
                _("“%(value)s” is not an operation code (ICD-9-CM-3) such as 36.0601.") % {"value": written[:60]},
            )
        elif code in seen:
            problem(
                row,
                "code",
                written,
                _("“%(value)s” is listed twice (first in row %(first)s).")
                % {"value": written[:60], "first": seen[code]},
            )
        else:
            seen[code] = row
        if classification:
            text = categories[i].strip()
            category = _CATEGORIES.get(text.lower())
            if not text:
                problem(
                    row,
                    "category",
                    text,
                    _("The category is missing; use one of: %(allowed)s.") % {"allowed": _allowed_categories()},
                )
            elif category is None:
                problem(
                    row,
                    "category",
                    text,
                    _("“%(value)s” is not a category; use one of: %(allowed)s.")
                    % {"value": text[:60], "allowed": _allowed_categories()},
                )
        out.append(_Row(code, names[i].strip()[:200], category))
    if total:
        raise CatalogueRejected(problems, total)
    if not out:
        raise CatalogueRejected([Problem(0, "", "", _("The file lists no codes."))], 1)
    return out


def _check_fields(*, kind: str, name: str, version: str, valid_from: dt.date, institution: Institution | None) -> None:
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Name the catalogue, e.g. 国家四级手术目录.")]
    elif len(name) > 120:
        errors["name"] = [_("At most %(n)d characters.") % {"n": 120}]
    if not version:
        errors["version"] = [_("Give the version, e.g. 2022版.")]
    elif len(version) > 40:
        errors["version"] = [_("At most %(n)d characters.") % {"n": 40}]
    if not dt.date(1900, 1, 1) <= valid_from <= dt.date(2100, 12, 31):
        errors["valid_from"] = [_("Choose a date between 1900 and 2100.")]
    if kind == CatalogueKind.INSTITUTION_MI and institution is None:
        errors["institution"] = [_("Choose the institution whose list this is.")]
    if kind != CatalogueKind.INSTITUTION_MI and institution is not None:
        errors["institution"] = [_("A national catalogue belongs to no institution.")]
    if errors:
        raise ValidationError(errors)


def _check_collisions(*, kind: str, version: str, valid_from: dt.date, institution: Institution | None) -> None:
    active = Catalogue.objects.filter(kind=kind, institution=institution, is_active=True)
    errors: dict[str, list[str]] = {}
    if active.filter(version=version).exists():
        errors["version"] = [
            _("Version %(version)s is already loaded: withdraw it first to load a corrected file.")
            % {"version": version}
        ]
    other = active.filter(valid_from=valid_from).first()
    if other is not None:
        errors["valid_from"] = [
            _("Version %(version)s already starts on %(date)s: choose another day, or withdraw it first.")
            % {"version": other.version, "date": valid_from.isoformat()}
        ]
    if errors:
        raise ValidationError(errors)


def catalogue_import(
    *,
    user: AnyUser,
    kind: str,
    path: Path,
    filename: str,
    name: str,
    version: str,
    valid_from: dt.date,
    institution: Institution | None = None,
    note: str = "",
) -> Catalogue:
    """Load one version of a catalogue from a file (whole or nothing; see the module docstring)."""
    if kind not in CatalogueKind.values:
        raise ValidationError(
            {"kind": [_("Choose the kind of catalogue: %(kinds)s.") % {"kinds": ", ".join(CatalogueKind.values)}]}
        )
    name, version, note = name.strip(), version.strip(), note.strip()[:500]
    _check_fields(kind=kind, name=name, version=version, valid_from=valid_from, institution=institution)
    if not selectors.may_load(user, kind, institution):
        if kind == CatalogueKind.INSTITUTION_MI:
            raise PermissionDenied(_("You may not keep this institution's list of minimally invasive codes."))
        raise PermissionDenied(_("You may not load the national operation catalogues."))
    _check_collisions(kind=kind, version=version, valid_from=valid_from, institution=institution)
    raw, digest = _read(path, filename)
    rows = _rows(kind, raw)
    with transaction.atomic():
        catalogue = Catalogue.objects.create(
            kind=kind,
            name=name,
            version=version,
            valid_from=valid_from,
            institution=institution,
            codes_count=len(rows),
            filename=filename[:255],
            file_sha256=digest,
            note=note,
            loaded_by=_account(user),
        )
        CatalogueCode.objects.bulk_create(
            [CatalogueCode(catalogue=catalogue, code=r.code, name=r.name, category=r.category) for r in rows],
            batch_size=2000,
        )
        audit_record(
            actor=user,
            action=AuditAction.CREATE,
            obj=catalogue,
            changes={
                "kind": kind,
                "name": name,
                "version": version,
                "valid_from": valid_from.isoformat(),
                "institution": institution.code if institution else None,
                "codes": len(rows),
                "filename": filename[:255],
                "file_sha256": digest,
            },
        )
    return catalogue


def catalogue_withdraw(*, user: AnyUser, catalogue: Catalogue, reason: str) -> Catalogue:
    """Take a version back: it stays on record but applies nowhere; the version before it (if any)
    applies again until the next one. 409 when it is already withdrawn."""
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": [_("Say why the catalogue is withdrawn.")]})
    if not selectors.may_load(user, catalogue.kind, catalogue.institution):
        raise PermissionDenied(_("You may not withdraw this catalogue."))
    with transaction.atomic():
        locked = Catalogue.objects.select_for_update().get(pk=catalogue.pk)  # no join: PostgreSQL locks no outer join
        if not locked.is_active:
            raise Conflict(_("This catalogue is already withdrawn."))
        locked.is_active = False
        locked.withdrawn_at = timezone.now()
        locked.withdrawn_by = _account(user)
        locked.withdrawal_reason = reason[:500]
        locked.save()
        audit_record(
            actor=user,
            action=AuditAction.DELETE,
            obj=locked,
            changes={"is_active": [True, False], "reason": reason[:500]},
        )
    return locked
