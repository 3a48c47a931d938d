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

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.activity.models import ImportBatch
from yilian.core.permissions import Permission
from yilian.registry.models import Consortium, ConsortiumMember, Institution
from yilian.registry.selectors import require_perm, user_scope

AnyUser = AbstractBaseUser | AnonymousUser


def institution_queryset_importable_by(user: AnyUser) -> QuerySet[Institution]:
    scope = user_scope(user)
    if Permission.IMPORT_ACTIVITY not in scope.permissions:
        return Institution.objects.none()
    if scope.is_global:
        return Institution.objects.all()
    q = Q(pk__in=scope.institution_ids_with(Permission.IMPORT_ACTIVITY))
    if scope.consortium_ids:
        today = timezone.localdate()
        members = ConsortiumMember.objects.filter(consortium_id__in=scope.consortium_ids).filter(
            Q(left_on__isnull=True) | Q(left_on__gte=today)
        )
        q |= Q(pk__in=members.values("institution_id"))
        q |= Q(pk__in=Consortium.objects.filter(pk__in=scope.consortium_ids).values("lead_institution_id"))
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
