"""Readers: a hospital export (CSV, .xlsx or a FHIR R4B Bundle) -> an Arrow table of strings.

Every reader returns a ``RawTable``: one string column per input column (named ``c0``, ``c1``, ...
so that odd or repeated headers cannot clash), the headers exactly as written in the file, and
the row number a person would point at (for CSV and .xlsx the spreadsheet row: 2 is the first
data line under the header; for FHIR the 1-based position of the entry in the Bundle).

CSV: UTF-8 (with or without BOM) or GB18030 (which includes GBK and GB2312): the bytes are
decoded as strict UTF-8 and, if that fails anywhere, read as GB18030. Parsing is pyarrow's
multithreaded CSV reader with every column typed as string. Values may not contain line breaks.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from django.utils.translation import gettext as _

from yilian.activity.columns import Kind

_CHUNK = 1 << 24


class ReadError(ValueError):
    """The file cannot be read at all (the message is for the user)."""


@dataclass
class RawTable:
    table: pa.Table
    headers: list[str]
    row_numbers: pa.Array | None = None  # int64, one per row; None means first_row + index
    first_row: int = 2
    format: str = "csv"
    encoding: str = ""
    notes: list[str] = field(default_factory=list)
    slots: pa.Array | None = None  # int16 per row: which numbered column group a row came from

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


def scan(path: Path) -> tuple[str, str]:
    """(SHA-256 hex digest, encoding) in one pass over the bytes. The encoding is ``utf-16`` when
    the file starts with a UTF-16 byte-order mark (Excel's "Unicode text"), ``utf-8-sig`` or
    ``utf-8`` when every byte decodes as strict UTF-8, else ``gb18030``."""
    digest = hashlib.sha256()
    decoder: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")(errors="strict")
    bom = utf16 = False
    first = True
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            if first:
                bom, first = chunk.startswith(codecs.BOM_UTF8), False
                utf16 = chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
                if utf16:
                    decoder = None
            if decoder is not None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    decoder = None
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            decoder = None
    if utf16:
        return digest.hexdigest(), "utf-16"
    if decoder is None:
        return digest.hexdigest(), "gb18030"
    return digest.hexdigest(), "utf-8-sig" if bom else "utf-8"


def detect_encoding(path: Path) -> str:
    return scan(path)[1]


def _skip(path: Path, encoding: str) -> int:
    """Bytes to skip before the text: a UTF-8 byte-order mark in front of GB18030 text (some
    export tools write one whatever the encoding); for UTF-8 the decoder drops it itself."""
    if encoding != "gb18030":
        return 0
    with path.open("rb") as handle:
        return len(codecs.BOM_UTF8) if handle.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8 else 0


def _text(path: Path, encoding: str) -> io.TextIOWrapper:
    handle = path.open("rb")
    handle.seek(_skip(path, encoding))
    return io.TextIOWrapper(handle, encoding=encoding, newline="")


def _first_line(path: Path, encoding: str) -> str:
    with _text(path, encoding) as handle:
        return handle.readline()


def _undecodable() -> ReadError:
    return ReadError(
        _(
            "The file is neither UTF-8 nor GB18030 text throughout (were parts of it saved in different "
            "encodings?). Save the whole file as UTF-8 or GB18030 and upload it again."
        )
    )


def read_csv(path: Path, *, encoding: str = "") -> RawTable:
    encoding = encoding or detect_encoding(path)
    try:
        header_line = _first_line(path, encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise _undecodable() from exc
    if not header_line.strip():
        raise ReadError(_("The file is empty or its first line (the column headers) is blank."))
    # Excel's "Unicode text" separates with tabs: a header line with tabs and no commas is read so.
    delimiter = "\t" if "\t" in header_line and "," not in header_line else ","
    headers = next(csv.reader([header_line.rstrip("\r\n")], delimiter=delimiter))
    names = [f"c{i}" for i in range(len(headers))]
    bad_rows: list[int | None] = []

    def invalid(row: Any) -> str:
        bad_rows.append(row.number)
        return "skip"

    source = pa.OSFile(str(path))  # native reads, as fast as a path
    source.seek(_skip(path, encoding))
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(
                encoding="utf8" if encoding.startswith("utf-8") else encoding,
                skip_rows=1,
                column_names=names,
                block_size=1 << 23,
            ),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except UnicodeDecodeError as exc:
        raise _undecodable() from exc
    except pa.ArrowInvalid as exc:
        raise ReadError(_("The file could not be read as CSV: %(reason)s") % {"reason": str(exc)[:300]}) from exc
    finally:
        source.close()
    if bad_rows:
        # pyarrow's parallel parser does not know line numbers: find the first few here (only
        # for a broken file, so the slow way is fine).
        shown = ", ".join(str(n) for n in _ragged_rows(path, encoding, len(headers), delimiter))
        raise ReadError(
            _("%(count)s line(s) do not have the %(columns)s values of the header line (lines %(lines)s).")
            % {"count": len(bad_rows), "columns": len(headers), "lines": shown or "?"}
        )
    return RawTable(table=table, headers=headers, format="csv", encoding=encoding)


def _ragged_rows(path: Path, encoding: str, width: int, delimiter: str, limit: int = 10) -> list[int]:
    found: list[int] = []
    with _text(path, encoding) as handle:
        for number, row in enumerate(csv.reader(handle, delimiter=delimiter), start=1):
            if number > 1 and row and len(row) != width:
                found.append(number)
                if len(found) >= limit:
                    break
    return found


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 2**53:
            # Beyond a float's exact integers (an 18-digit ID number Excel kept 15 digits of):
            # written as Excel shows it, so that it reads as damaged rather than as other digits.
            return f"{value:.15G}"
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def read_xlsx(path: Path) -> RawTable:
    """The first worksheet; its first non-empty row holds the headers. Date cells become
    YYYY-MM-DD (with the time when there is one); whole numbers lose Excel's ``.0``."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged or foreign file
        raise ReadError(_("The file could not be read as an Excel workbook (.xlsx).")) from exc
    try:
        sheet = workbook.worksheets[0]
        headers: list[str] | None = None
        columns: list[list[str]] = []
        rows: list[int] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell(v) for v in values]
            if not any(c.strip() for c in cells):
                continue
            if headers is None:
                while cells and not cells[-1].strip():
                    cells.pop()
                headers = cells
                columns = [[] for _ in headers]
                continue
            for i, column in enumerate(columns):
                column.append(cells[i] if i < len(cells) else "")
            rows.append(number)
    finally:
        workbook.close()
    if headers is None:
        raise ReadError(_("The workbook's first sheet is empty."))
    table = pa.table({f"c{i}": pa.array(column, pa.string()) for i, column in enumerate(columns)})
    return RawTable(table=table, headers=headers, row_numbers=pa.array(rows, pa.int64()), format="xlsx")


# FHIR R4B mapping (documented in docs/indicators.md). Extensions carrying what FHIR has no
# element for are matched by the end of their url.
FHIR_VISIT_CLASSES = {"AMB": "outpatient", "EMER": "emergency", "VR": "outpatient"}
FHIR_STAY_CLASSES = ("IMP", "ACUTE", "NONAC")
FHIR_CATEGORIES = {"387713003": "surgery", "103693007": "diagnostic", "277132007": "therapeutic"}
FHIR_SEX = {"male": "male", "female": "female", "other": "unknown", "unknown": "unknown"}


def _fhir_date(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).replace("T", " ")[:19]


def _first_code(concept: Any) -> str:
    codings = getattr(concept, "coding", None) or []
    return str(codings[0].code or "") if codings else ""


def _concept_text(concept: Any) -> str:
    if concept is None:
        return ""
    if getattr(concept, "text", None):
        return str(concept.text)
    codings = getattr(concept, "coding", None) or []
    return str(codings[0].display or "") if codings else ""


def _extension(resource: Any, suffix: str) -> str:
    for extension in getattr(resource, "extension", None) or []:
        if str(extension.url).endswith(suffix):
            for attribute in ("valueCode", "valueString", "valueInteger", "valueBoolean"):
                value = getattr(extension, attribute, None)
                if value is not None:
                    return str(value).lower() if isinstance(value, bool) else str(value)
    return ""


def _age(birth: Any, on: str) -> str:
    if not isinstance(birth, dt.date) or len(on) < 10:
        return ""
    try:
        day = dt.date.fromisoformat(on[:10])
    except ValueError:
        return ""
    return str(day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day)))


def _fhir_problems(exc: Any, limit: int = 3) -> str:
    """Where the Bundle is wrong (element paths and the validator's reasons), without the values
    themselves: they may be patients' identifiers, names or birth dates."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    shown = [
        "{}: {}".format(".".join(str(part) for part in p.get("loc", ())) or "Bundle", str(p.get("msg", ""))[:150])
        for p in problems[:limit]
    ]
    if len(problems) > limit:
        shown.append("…")
    return "; ".join(shown)


def read_fhir_bundle(kind: Kind, path: Path) -> RawTable:
    """Encounters (class AMB/EMER/VR -> visits; IMP/ACUTE/NONAC -> discharges) and Procedures
    (-> operations of the inpatient Encounter they reference) of a FHIR R4B Bundle, with the
    Patient each Encounter's subject points to. The row number is the entry's position."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError as PydanticError

    try:
        bundle = Bundle.model_validate_json(path.read_bytes())
    except PydanticError as exc:
        raise ReadError(
            _("The file is not a valid FHIR R4B Bundle: %(reason)s") % {"reason": _fhir_problems(exc)}
        ) from exc
    except ValueError as exc:
        raise ReadError(_("The file is not a valid FHIR R4B Bundle: %(reason)s") % {"reason": _("not JSON")}) from exc
    by_ref: dict[str, Any] = {}
    entries: list[tuple[int, Any]] = []
    for position, entry in enumerate(bundle.entry or [], start=1):
        resource = entry.resource
        if resource is None:
            continue
        entries.append((position, resource))
        name = resource.get_resource_type()
        if entry.fullUrl:
            by_ref[str(entry.fullUrl)] = resource
        if resource.id:
            by_ref[f"{name}/{resource.id}"] = resource

    def resolve(reference: Any) -> Any:
        return by_ref.get(str(getattr(reference, "reference", "") or ""))

    def institution(encounter: Any) -> str:
        provider = encounter.serviceProvider
        if provider is None:
            return ""
        if provider.identifier is not None and provider.identifier.value:
            return str(provider.identifier.value)
        organisation = resolve(provider)
        if organisation is not None and organisation.identifier:
            return str(organisation.identifier[0].value or "")
        return str(provider.reference or "").rpartition("/")[2]

    def identifier(resource: Any) -> str:
        if resource.identifier:
            return str(resource.identifier[0].value or "")
        return str(resource.id or "")

    def patient(encounter: Any, on: str) -> dict[str, str]:
        found = resolve(encounter.subject)
        if found is None:
            return {"patient_id": "", "sex": "", "age": "", "residence_region": ""}
        region = ""
        for address in found.address or []:
            region = str(address.district or "") or _extension(address, "region-code")
            if region:
                break
        return {
            "patient_id": identifier(found),
            "sex": FHIR_SEX.get(str(found.gender or ""), ""),
            "age": _age(found.birthDate, on),
            "residence_region": region,
        }

    def encounter_class(encounter: Any) -> str:
        return str(encounter.class_fhir.code or "") if encounter.class_fhir is not None else ""

    records: list[dict[str, str]] = []
    rows: list[int] = []
    if kind == Kind.OPERATIONS:
        seen: dict[str, int] = {}
        for position, resource in entries:
            if resource.get_resource_type() != "Procedure":
                continue
            encounter = resolve(resource.encounter)
            stay = encounter if encounter is not None and encounter_class(encounter) in FHIR_STAY_CLASSES else None
            record_id = identifier(stay) if stay is not None else ""
            seen[record_id] = seen.get(record_id, 0) + 1
            performer = (resource.performer or [None])[0]
            category = _first_code(resource.category)
            records.append(
                {
                    "institution_code": institution(stay) if stay is not None else "",
                    "record_id": record_id,
                    "department": _concept_text(stay.serviceType) if stay is not None else "",
                    "discharge_date": _fhir_date(stay.period.end) if stay is not None and stay.period else "",
                    "operation_date": _fhir_date(
                        resource.performedDateTime
                        or (resource.performedPeriod.start if resource.performedPeriod else None)
                    ),
                    "operation_seq": str(seen[record_id]),
                    "operation_code": _first_code(resource.code),
                    "operation_name": _concept_text(resource.code),
                    "operation_level": _extension(resource, "operation-level"),
                    "category": FHIR_CATEGORIES.get(category, category),
                    "minimally_invasive": _extension(resource, "minimally-invasive"),
                    "robot_assisted": _extension(resource, "robot-assisted"),
                    "operator": str(performer.actor.display or "") if performer is not None else "",
                    "operator_role": _first_code(performer.function) if performer is not None else "",
                }
            )
            rows.append(position)
    else:
        wanted = FHIR_STAY_CLASSES if kind == Kind.DISCHARGES else tuple(FHIR_VISIT_CLASSES)
        for position, resource in entries:
            if resource.get_resource_type() != "Encounter" or encounter_class(resource) not in wanted:
                continue
            start = _fhir_date(resource.period.start) if resource.period else ""
            record = {"institution_code": institution(resource), "department": _concept_text(resource.serviceType)}
            record.update(patient(resource, start))
            if kind == Kind.DISCHARGES:
                length = resource.length
                hospitalization = resource.hospitalization
                record.update(
                    {
                        "record_id": identifier(resource),
                        "admission_date": start,
                        "discharge_date": _fhir_date(resource.period.end) if resource.period else "",
                        "principal_diagnosis": _first_code((resource.reasonCode or [None])[0]),
                        "discharge_outcome": _first_code(hospitalization.dischargeDisposition)
                        if hospitalization is not None
                        else "",
                        "length_of_stay": str(length.value) if length is not None and length.value is not None else "",
                    }
                )
            else:
                cls = encounter_class(resource)
                participant = (resource.participant or [None])[0]
                individual = participant.individual if participant is not None else None
                record.update(
                    {
                        "visit_id": identifier(resource),
                        "visit_date": start,
                        "setting": FHIR_VISIT_CLASSES[cls],
                        "visit_type": "tele" if cls == "VR" else _first_code((resource.type or [None])[0]),
                        "doctor": str(individual.display or "") if individual is not None else "",
                    }
                )
            records.append(record)
            rows.append(position)
    if not records:
        raise ReadError(_("The Bundle holds no resources for this dataset."))
    headers = list(records[0])
    table = text_table({name: [r.get(name, "") for r in records] for name in headers})
    table = table.rename_columns([f"c{i}" for i in range(len(headers))])
    return RawTable(table=table, headers=headers, row_numbers=pa.array(rows, pa.int64()), format="fhir")


def read_file(kind: Kind, path: Path, filename: str, *, encoding: str = "") -> RawTable:
    """Dispatch on the file name's extension (.csv/.txt, .xlsx, .json). ``encoding`` (CSV only)
    skips the detection when ``scan`` has already run."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".csv", ".txt", ""):
        return read_csv(path, encoding=encoding)
    if suffix == ".xlsx":
        return read_xlsx(path)
    if suffix == ".json":
        return read_fhir_bundle(kind, path)
    raise ReadError(
        _("Unsupported file type %(suffix)s: upload CSV, Excel (.xlsx) or a FHIR Bundle (.json).") % {"suffix": suffix}
    )


ProgressCallback = Callable[[str, int, int], None]


def text_table(columns: dict[str, list[str]]) -> pa.Table:
    """A table of strings from Python lists (for small inputs such as FHIR bundles)."""
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def csv_bytes(rows: list[list[str]], *, encoding: str = "utf-8") -> bytes:
    """Rows as CSV bytes (used by tests and the demo to build files)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode(encoding)
