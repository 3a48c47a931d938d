"""Reads of the import manifest, scoped to the acting user.

Who may import for which institution (``institution_codes_importable_by``):
- a system administrator: every institution;
- a consortium office: the lead and current members of its consortia (and its own institution);
- a hospital administrator or quality staff: the institutions where they hold that role.
A user sees the batches of the institutions they may import for, and the batches they uploaded.
The rows of a batch (its problems, which quote values of the rows, and its rejected rows' file) are
for the uploader and a system administrator: a hospital sees that the consortium office landed a
batch holding its data, but not the rows of other hospitals the file held (``may_see_rows``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from yilian.activity.models import ImportBatch
from yilian.core.permissions import Permission
from yilian.registry.models import Institution
from yilian.registry.selectors import consortium_institutions_q, require_perm, user_scope

AnyUser = AbstractBaseUser | AnonymousUser


def institution_queryset_importable_by(user: AnyUser) -> QuerySet[Institution]:
    scope = user_scope(user)
    if Permission.IMPORT_ACTIVITY not in scope.permissions:
        return Institution.objects.none()
    if scope.is_global:
        return Institution.objects.all()
    q = Q(pk__in=scope.institution_ids_with(Permission.IMPORT_ACTIVITY))
    if scope.consortium_ids:
        q |= consortium_institutions_q(scope.consortium_ids)
    return Institution.objects.filter(q)


def institution_codes_importable_by(user: AnyUser) -> frozenset[str]:
    return frozenset(institution_queryset_importable_by(user).values_list("code", flat=True))


def batch_list_visible_to(user: AnyUser) -> QuerySet[ImportBatch]:
    """Newest first. A batch is visible when it covers an institution the user may import for
    (all of them for a system administrator) or when the user uploaded it."""
    scope = user_scope(user)
    if Permission.IMPORT_ACTIVITY not in scope.permissions:
        return ImportBatch.objects.none()
    batches = ImportBatch.objects.select_related("uploaded_by", "withdrawn_by")
    if scope.is_global:
        return batches.all()
    importable = institution_queryset_importable_by(user).values("pk")
    return batches.filter(Q(uploaded_by_id=user.pk) | Q(institutions__in=importable)).distinct()


def access_batch(user: AnyUser, public_id: str) -> ImportBatch:
    require_perm(user, Permission.IMPORT_ACTIVITY)
    try:
        batch = ImportBatch.objects.select_related("uploaded_by", "withdrawn_by").get(public_id=public_id)
    except (ImportBatch.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise Http404(_("No such import batch.")) from exc
    if not batch_list_visible_to(user).filter(pk=batch.pk).exists():
        raise PermissionDenied(_("You may not see this import batch."))
    return batch


def may_see_rows(user: AnyUser, batch: ImportBatch) -> bool:
    """Whether the user may see the batch's rows: its problems (they quote the rows' values) and
    its rejected rows. Those rows may belong to any institution the file names, including ones the
    batch does not cover (a row for an institution the uploader may not import for is rejected, not
    landed), so only the uploader, who sent the file, and a system administrator see them."""
    scope = user_scope(user)
    if Permission.IMPORT_ACTIVITY not in scope.permissions:
        return False
    return scope.is_global or (batch.uploaded_by_id is not None and batch.uploaded_by_id == user.pk)


def access_batch_rows(user: AnyUser, public_id: str) -> ImportBatch:
    """The batch (as ``access_batch``) when the user may also see its rows; PermissionDenied otherwise."""
    batch = access_batch(user, public_id)
    if not may_see_rows(user, batch):
        raise PermissionDenied(_("The rows of this batch include other institutions' data you may not see."))
    return batch


@dataclass(frozen=True)
class OperationRecord:
    """An imported operation as the capability app reads it: where, when, which code, who operated
    (the stay is named only by a digest, never by its record number)."""

    key: str
    institution_code: str
    department: str
    date: dt.date
    operation_code: str
    operation_name: str
    level: int | None
    operator: str
    operator_role: str


def operations_matching(
    *, institution_codes: Iterable[str], code_prefix: str, before: dt.date | None = None, limit: int = 5000
) -> list[OperationRecord]:
    """Current imported operations of the institutions whose code starts with ``code_prefix``
    (optionally dated before a day: the operation's date, else the discharge date), oldest first.
    Not scoped to a user: callers hand out only the fields above."""
    import ibis

    from yilian.activity import facts
    from yilian.activity.columns import Kind

    codes = sorted(set(institution_codes))
    if not codes or not code_prefix:
        return []
    con = ibis.duckdb.connect()
    table = facts.current_facts(con, Kind.OPERATIONS)
    if table is None:
        return []
    day = table.operation_date.fill_null(table.discharge_date)
    expr = table.filter(table.institution_code.isin(codes), table.operation_code.startswith(code_prefix))
    if before is not None:
        expr = expr.filter(day < before)
    expr = expr.mutate(day=day).order_by(["day", "institution_code", "record_id", "operation_seq"]).limit(limit)
    frame = expr.select(
        "institution_code",
        "record_id",
        "operation_seq",
        "department",
        "day",
        "operation_code",
        "operation_name",
        "operation_level",
        "operator",
        "operator_role",
    ).to_pyarrow()
    out = []
    for row in frame.to_pylist():
        digest = hashlib.sha256(f"{row['institution_code']}|{row['record_id']}|{row['operation_seq']}".encode())
        out.append(
            OperationRecord(
                key=f"activity:{digest.hexdigest()[:32]}",
                institution_code=row["institution_code"],
                department=row["department"] or "",
                date=row["day"],
                operation_code=row["operation_code"],
                operation_name=row["operation_name"] or "",
                level=row["operation_level"],
                operator=row["operator"] or "",
                operator_role=row["operator_role"] or "",
            )
        )
    return out


def operations_coverage() -> dict[str, set[tuple[int, int]]]:
    """Institution code -> (year, month) that landed operation batches cover."""
    from yilian.activity import facts
    from yilian.activity.columns import Kind

    return facts.coverage(Kind.OPERATIONS)
