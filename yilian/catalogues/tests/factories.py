"""Catalogue files and loaded catalogues for the tests, and a small operations dataset whose
indicator values are worked out by hand.

March 2025 at khph (Kaihua County People's Hospital), six stays:

    stay discharged  operation (code, file category, reported level, reported MI flag)
    S1   03-05       36.0601 surgery        L3  -
    S2   03-10       45.2301 diagnostic     -   -
    S3   03-20       00.6601 interventional L4  MI
    S4   03-25       81.0501 therapeutic    L4  -
    S5   03-12       (no operation)
    S6   03-28       51.2301 surgery        L3  -

March 2024 at khph: T1 (03-08) 36.0601 surgery L4; T2 (03-18) no operation.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from yilian.activity.columns import Kind
from yilian.activity.readers import csv_bytes
from yilian.catalogues import services
from yilian.catalogues.models import Catalogue
from yilian.indicators.tests.factories import land, operation, stay
from yilian.registry.models import Institution, User

D = dt.date
JAN_2022 = D(2022, 1, 1)


def admin() -> User:
    return User.objects.get(username="admin")


def write_csv(directory: Path, rows: list[list[str]], *, name: str = "catalogue.csv", encoding: str = "utf-8") -> Path:
    path = directory / name
    path.write_bytes(csv_bytes(rows, encoding=encoding))
    return path


def load(
    directory: Path,
    kind: str,
    codes: list[str] | list[tuple[str, str]],
    *,
    version: str = "2022版",
    valid_from: dt.date = JAN_2022,
    name: str = "",
    institution: str | None = None,
    user: User | None = None,
) -> Catalogue:
    """Load a catalogue of ``codes`` (for a classification: (code, category) pairs) through the service."""
    if kind == "classification":
        rows = [["手术操作编码", "手术操作名称", "类别"]] + [[c, f"操作{c}", cat] for c, cat in codes]  # type: ignore[misc]
    else:
        rows = [["编码", "名称"]] + [[str(c), f"操作{c}"] for c in codes]
    path = write_csv(directory, rows, name=f"{kind}-{version}.csv")
    default_names = {
        "classification": "国家临床版手术操作分类",
        "level4": "国家四级手术目录",
        "minimally_invasive": "国家微创手术目录",
        "institution_mi": "本院微创手术编码清单",
    }
    return services.catalogue_import(
        user=user or admin(),
        kind=kind,
        path=path,
        filename=path.name,
        name=name or default_names[kind],
        version=version,
        valid_from=valid_from,
        institution=Institution.objects.get(code=institution) if institution else None,
    )


def _operation(
    record: str, discharged: dt.date, code: str, category: str, level: int | None, mi: bool
) -> dict[str, Any]:
    row = operation("khph", record, discharged, 1, category=category, level=level, mi=mi)
    row["operation_code"] = code
    return row


def land_operations_dataset() -> None:
    land(
        Kind.DISCHARGES,
        [
            stay("khph", "S1", D(2025, 3, 5)),
            stay("khph", "S2", D(2025, 3, 10)),
            stay("khph", "S3", D(2025, 3, 20)),
            stay("khph", "S4", D(2025, 3, 25)),
            stay("khph", "S5", D(2025, 3, 12)),
            stay("khph", "S6", D(2025, 3, 28)),
            stay("khph", "T1", D(2024, 3, 8)),
            stay("khph", "T2", D(2024, 3, 18)),
        ],
        filename="discharges.csv",
    )
    land(
        Kind.OPERATIONS,
        [
            _operation("S1", D(2025, 3, 5), "36.0601", "surgery", 3, False),
            _operation("S2", D(2025, 3, 10), "45.2301", "diagnostic", None, False),
            _operation("S3", D(2025, 3, 20), "00.6601", "interventional", 4, True),
            _operation("S4", D(2025, 3, 25), "81.0501", "therapeutic", 4, False),
            _operation("S6", D(2025, 3, 28), "51.2301", "surgery", 3, False),
            _operation("T1", D(2024, 3, 8), "36.0601", "surgery", 4, False),
        ],
        filename="operations.csv",
    )
