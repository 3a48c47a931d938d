"""Reads of the operation catalogues, scoped to the acting user, and what the indicator engine
reads from them.

Who may load and withdraw what (``may_load``):
- the national kinds (classification, level-4, minimally invasive): holders of "Load the national
  operation catalogues" (system administrator, consortium office);
- an institution's own minimally invasive list: a system administrator for any institution, a
  consortium office for the lead and current members of its consortia, a hospital administrator for
  the institutions where they hold that role (``institution_queryset_listable_by``).
Who sees them: whoever sees indicators or may load catalogues sees the national catalogues, and the
institutions' lists of the institutions they see in the registry or may keep lists for.

For the engine (``operations_with_basis``): per operation, at its discharge date,
- ``category``: the classification's category when a classification version in force lists the
  code, else the fact's own; ``category_basis`` ``catalogue`` or the fact's own basis (``file``
  when the fact has none);
- ``level4``: when a level-4 catalogue version is in force, whether it lists the code, else whether
  the reported ``operation_level`` is 4; ``level4_basis`` ``catalogue`` | ``reported``;
- ``minimally_invasive``: when a minimally invasive catalogue version is in force, whether it lists
  the code, else the reported flag or the code being on the institution's own list in force;
  ``mi_basis`` ``catalogue`` | ``institution_list`` | ``reported``.
A version is in force from its ``valid_from`` until the next active version of the same kind (and
institution) starts; a withdrawn version is never in force. Codes are compared after the same
normalisation on both sides (trimmed, upper case, without a trailing ``.0``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from yilian.catalogues.models import Catalogue, CatalogueCode, CatalogueKind
from yilian.core.permissions import Permission
from yilian.registry.models import Institution
from yilian.registry.selectors import consortium_institutions_q, institution_queryset_visible_to, user_scope

AnyUser = AbstractBaseUser | AnonymousUser

VIEW_PERMISSIONS = frozenset(
    {Permission.VIEW_INDICATORS, Permission.MANAGE_CATALOGUES, Permission.MANAGE_INSTITUTION_MI}
)

# --------------------------------------------------------------------------------------------
# Scope


def can_see_catalogues(user: AnyUser) -> bool:
    return bool(user_scope(user).permissions & VIEW_PERMISSIONS)


def require_see(user: AnyUser) -> None:
    if not can_see_catalogues(user):
        raise PermissionDenied(_("You may not see the operation catalogues."))


def may_load_national(user: AnyUser) -> bool:
    return Permission.MANAGE_CATALOGUES in user_scope(user).permissions


def institution_queryset_listable_by(user: AnyUser) -> QuerySet[Institution]:
    """Institutions whose own minimally invasive list the user may load and withdraw."""
    scope = user_scope(user)
    if scope.is_global:
        return Institution.objects.all()
    q = Q(pk__in=scope.institution_ids_with(Permission.MANAGE_INSTITUTION_MI))
    if Permission.MANAGE_CATALOGUES in scope.permissions and scope.consortium_ids:
        q |= consortium_institutions_q(scope.consortium_ids)
    return Institution.objects.filter(q)


def may_load_any(user: AnyUser) -> bool:
    """Whether the user may load some kind of catalogue (the upload form is shown)."""
    return may_load_national(user) or institution_queryset_listable_by(user).exists()


def may_load(user: AnyUser, kind: str, institution: Institution | None) -> bool:
    if kind == CatalogueKind.INSTITUTION_MI:
        return institution is not None and institution_queryset_listable_by(user).filter(pk=institution.pk).exists()
    return may_load_national(user)


def may_withdraw(user: AnyUser, catalogue: Catalogue) -> bool:
    return catalogue.is_active and may_load(user, catalogue.kind, catalogue.institution)


def catalogue_list_visible_to(
    user: AnyUser, *, kind: str = "", institution: str = "", active_only: bool = False
) -> QuerySet[Catalogue]:
    """The catalogues the user may see: newest valid_from first within each kind."""
    if not can_see_catalogues(user):
        return Catalogue.objects.none()
    qs = Catalogue.objects.select_related("institution", "loaded_by", "withdrawn_by")
    scope = user_scope(user)
    if not scope.is_global:
        seen = institution_queryset_visible_to(user).values("pk")
        listable = institution_queryset_listable_by(user).values("pk")
        qs = qs.filter(Q(institution__isnull=True) | Q(institution__in=seen) | Q(institution__in=listable))
    if kind:
        qs = qs.filter(kind=kind)
    if institution:
        qs = qs.filter(institution__code=institution)
    if active_only:
        qs = qs.filter(is_active=True)
    return qs.order_by("kind", "institution__code", "-valid_from", "-id")


def access_catalogue(user: AnyUser, public_id: str) -> Catalogue:
    """The catalogue: 404 when there is none, 403 when the user may not see it."""
    require_see(user)
    try:
        catalogue = Catalogue.objects.select_related("institution", "loaded_by", "withdrawn_by").get(
            public_id=public_id
        )
    except (Catalogue.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise Http404(_("No such operation catalogue.")) from exc
    if not catalogue_list_visible_to(user).filter(pk=catalogue.pk).exists():
        raise PermissionDenied(_("You may not see this operation catalogue."))
    return catalogue


def catalogue_codes(catalogue: Catalogue, *, search: str = "") -> QuerySet[CatalogueCode]:
    """The catalogue's codes in code order; ``search`` matches the start of the code (as normalised)
    or any part of the name."""
    qs = catalogue.codes.all()
    search = search.strip()
    if search:
        qs = qs.filter(Q(code__startswith=search.upper()) | Q(name__icontains=search))
    return qs.order_by("code")


# --------------------------------------------------------------------------------------------
# What the engine reads

FAR_FUTURE = dt.date(9999, 12, 31)


@dataclass(frozen=True)
class Version:
    """An active catalogue version and the day the next one of its kind (and institution) takes over."""

    id: int
    kind: str
    institution_code: str | None
    name: str
    version: str
    valid_from: dt.date
    valid_to: dt.date = FAR_FUTURE  # exclusive

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}".strip()

    def overlaps(self, start: dt.date, end: dt.date) -> bool:
        return self.valid_from < end and self.valid_to > start


@dataclass(frozen=True)
class CatalogueState:
    """The active versions (a few rows), read once per change of the catalogues (``stamp``)."""

    stamp: str
    versions: tuple[Version, ...] = ()
    _chains: dict[tuple[str, str | None], list[Version]] = field(default_factory=dict, compare=False)

    def chain(self, kind: str, institution_code: str | None = None) -> list[Version]:
        """The versions of one kind (and institution), oldest first."""
        return self._chains.get((kind, institution_code), [])

    def institution_chains(self) -> dict[str, list[Version]]:
        return {
            code: versions
            for (kind, code), versions in self._chains.items()
            if kind == CatalogueKind.INSTITUTION_MI and code is not None
        }


def catalogue_stamp() -> str:
    """Changes whenever a catalogue is loaded or withdrawn (the engine's cache key for operations)."""
    summary = Catalogue.objects.aggregate(n=Count("id"), last=Max("id"), changed=Max("updated_at"))
    changed = summary["changed"].isoformat() if summary["changed"] else "-"
    return f"{summary['n']}:{summary['last'] or 0}:{changed}"


def catalogue_state() -> CatalogueState:
    """The active versions with the day each gives way to the next (one query)."""
    rows = list(
        Catalogue.objects.filter(is_active=True)
        .order_by("valid_from", "id")
        .values_list("id", "kind", "institution__code", "name", "version", "valid_from")
    )
    stamp = catalogue_stamp()
    grouped: dict[tuple[str, str | None], list[tuple[int, str, str, dt.date]]] = defaultdict(list)
    for pk, kind, code, name, version, valid_from in rows:
        grouped[(kind, code)].append((pk, name, version, valid_from))
    chains: dict[tuple[str, str | None], list[Version]] = {}
    versions: list[Version] = []
    for (kind_of, institution_code), items in grouped.items():
        chain = []
        for i, (pk, name, version, valid_from) in enumerate(items):
            valid_to = items[i + 1][3] if i + 1 < len(items) else FAR_FUTURE
            chain.append(Version(pk, kind_of, institution_code, name, version, valid_from, valid_to))
        chains[(kind_of, institution_code)] = chain
        versions.extend(chain)
    return CatalogueState(stamp=stamp, versions=tuple(versions), _chains=chains)


def _codes_table(version_ids: Iterable[int], *, prefix: str, with_category: bool = False) -> ir.Table:
    """(version, code[, category]) of the versions as a small in-memory table, columns prefixed."""
    ids = sorted(set(version_ids))
    rows = list(CatalogueCode.objects.filter(catalogue_id__in=ids).values_list("catalogue_id", "code", "category"))
    columns: dict[str, pa.Array] = {
        f"{prefix}ver_": pa.array([r[0] for r in rows], pa.int64()),
        f"{prefix}code_": pa.array([r[1] for r in rows], pa.string()),
    }
    if with_category:
        columns[f"{prefix}category_"] = pa.array([r[2] for r in rows], pa.string())
    return ibis.memtable(pa.table(columns))


def _in_force(
    day: ir.DateValue, chain: list[Version], extra: ir.BooleanValue | None = None
) -> list[tuple[ir.BooleanValue, int]]:
    """CASE branches giving the version of ``chain`` in force on ``day``: the latest that started."""
    branches = []
    for version in reversed(chain):
        condition = day >= version.valid_from
        branches.append((condition if extra is None else extra & condition, version.id))
    return branches


def normalised_code(code: ir.StringValue) -> ir.StringValue:
    """An operation code as the catalogues store theirs (``normalise_code``), in Ibis."""
    return code.strip().upper().re_replace(r"\.0$", "")


def operations_with_basis(facts: ir.Table, state: CatalogueState | None = None) -> ir.Table:
    """The operation facts with ``category``, ``minimally_invasive`` derived and ``category_basis``,
    ``level4``, ``level4_basis``, ``mi_basis`` added (see the module docstring). Plain Ibis over small
    in-memory tables: it runs on every backend the engine uses.

    The version in force on a fact's day is a CASE over the (few) versions' start days; the codes
    are then an equality join on (version, code), so a fact meets at most one row of each list."""
    state = state if state is not None else catalogue_state()
    null_int = ibis.null("int64")
    t = facts.mutate(cb_code_=normalised_code(facts.operation_code))

    classification = state.chain(CatalogueKind.CLASSIFICATION)
    level4 = state.chain(CatalogueKind.LEVEL4)
    national_mi = state.chain(CatalogueKind.MINIMALLY_INVASIVE)
    institution_lists = state.institution_chains()

    def join(t: ir.Table, prefix: str, branches: list[tuple[ir.BooleanValue, int]], ids: list[int]) -> ir.Table:
        t = t.mutate(**{f"{prefix}in_force_": ibis.cases(*branches, else_=null_int)})
        codes = _codes_table(ids, prefix=prefix, with_category=prefix == "cb_cls_")
        return t.left_join(
            codes, [t[f"{prefix}in_force_"] == codes[f"{prefix}ver_"], t.cb_code_ == codes[f"{prefix}code_"]]
        )

    if classification:
        t = join(t, "cb_cls_", _in_force(t.discharge_date, classification), [v.id for v in classification])
    if level4:
        t = join(t, "cb_l4_", _in_force(t.discharge_date, level4), [v.id for v in level4])
    if national_mi:
        t = join(t, "cb_mi_", _in_force(t.discharge_date, national_mi), [v.id for v in national_mi])
    if institution_lists:
        branches = [
            branch
            for code, chain in sorted(institution_lists.items())
            for branch in _in_force(t.discharge_date, chain, t.institution_code == code)
        ]
        ids = [v.id for chain in institution_lists.values() for v in chain]
        t = join(t, "cb_imi_", branches, ids)

    own_basis: ir.StringValue = (
        t.category_basis.fill_null("file") if "category_basis" in facts.columns else ibis.literal("file")
    )
    if classification:
        listed = t.cb_cls_category_.notnull()
        category: ir.Value = listed.ifelse(t.cb_cls_category_, t.category)
        category_basis: ir.Value = listed.ifelse("catalogue", own_basis)
    else:
        category, category_basis = t.category, own_basis

    reported_level4 = (t.operation_level == 4).fill_null(False)
    if level4:
        in_force = t.cb_l4_in_force_.notnull()
        level4_value: ir.Value = in_force.ifelse(t.cb_l4_code_.notnull(), reported_level4)
        level4_basis: ir.Value = in_force.ifelse("catalogue", "reported")
    else:
        level4_value, level4_basis = reported_level4, ibis.literal("reported")

    fallback_mi: ir.BooleanValue = t.minimally_invasive.fill_null(False)
    fallback_basis: ir.Value = ibis.literal("reported")
    if institution_lists:
        fallback_mi = fallback_mi | t.cb_imi_code_.notnull()
        fallback_basis = t.cb_imi_in_force_.notnull().ifelse("institution_list", "reported")
    if national_mi:
        in_force = t.cb_mi_in_force_.notnull()
        mi_value: ir.Value = in_force.ifelse(t.cb_mi_code_.notnull(), fallback_mi)
        mi_basis: ir.Value = in_force.ifelse("catalogue", fallback_basis)
    else:
        mi_value, mi_basis = fallback_mi, fallback_basis

    derived: dict[str, ir.Value] = {
        "category": category,
        "category_basis": category_basis,
        "minimally_invasive": mi_value,
    }
    out: dict[str, ir.Value] = {name: derived.get(name, t[name]) for name in facts.columns}
    out.setdefault("category_basis", category_basis)
    out["level4"] = level4_value
    out["level4_basis"] = level4_basis
    out["mi_basis"] = mi_basis
    return t.select(**{name: expr.name(name) for name, expr in out.items()})


def valid_until(state: CatalogueState) -> dict[int, dt.date]:
    """Catalogue id -> the day the next active version takes over (only the versions that have one)."""
    return {v.id: v.valid_to for v in state.versions if v.valid_to != FAR_FUTURE}


# --------------------------------------------------------------------------------------------
# Which basis a figure used, in words

# The derived columns whose value depends on a catalogue (a measure filtering on one of them gets a
# sentence saying which basis the figure used).
BASIS_COLUMNS = frozenset(
    {"category", "category_basis", "level4", "level4_basis", "minimally_invasive", "mi_basis", "operation_level"}
)


def _listing(chain: list[Version], start: dt.date, end: dt.date) -> str:
    return "; ".join(
        _("%(catalogue)s (from %(date)s)") % {"catalogue": v.label, "date": v.valid_from.isoformat()}
        for v in chain
        if v.overlaps(start, end)
    )


def _coverage(chain: list[Version], start: dt.date, end: dt.date) -> str:
    """``whole``, ``part``, ``later`` (loaded, but only from after the period) or ``none``."""
    if not chain:
        return "none"
    first = chain[0].valid_from
    if first <= start:
        return "whole"
    return "part" if first < end else "later"


def basis_sentences(
    state: CatalogueState, columns: Iterable[str], *, start: dt.date, end: dt.date, institution_codes: Iterable[str]
) -> list[str]:
    """What a figure over [start, end) of the given institutions rests on, one sentence per derived
    column that its conditions use (category, level 4, minimally invasive, reported level)."""
    used = set(columns)
    out: list[str] = []
    if used & {"category", "category_basis"}:
        chain = state.chain(CatalogueKind.CLASSIFICATION)
        cover = _coverage(chain, start, end)
        values = {"catalogues": _listing(chain, start, end), "date": chain[0].valid_from.isoformat() if chain else ""}
        if cover == "whole":
            out.append(
                _(
                    "Category by the operation classification %(catalogues)s; codes it does not list by the file's "
                    "category or the code's chapter."
                )
                % values
            )
        elif cover == "part":
            out.append(
                _(
                    "Category by the operation classification %(catalogues)s; before %(date)s, and for codes it "
                    "does not list, by the file's category or the code's chapter."
                )
                % values
            )
        elif cover == "later":
            out.append(
                _(
                    "Category by the file's category or the code's chapter (the operation classification applies "
                    "only from %(date)s)."
                )
                % values
            )
        else:
            out.append(_("Category by the file's category or the code's chapter (no operation classification loaded)."))
    if used & {"level4", "level4_basis"}:
        chain = state.chain(CatalogueKind.LEVEL4)
        cover = _coverage(chain, start, end)
        values = {"catalogues": _listing(chain, start, end), "date": chain[0].valid_from.isoformat() if chain else ""}
        if cover == "whole":
            out.append(_("Level 4 by the catalogue %(catalogues)s.") % values)
        elif cover == "part":
            out.append(
                _("Level 4 by the catalogue %(catalogues)s; before %(date)s as reported by the hospitals.") % values
            )
        elif cover == "later":
            out.append(
                _("Level 4 as reported by the hospitals (the level-4 catalogue applies only from %(date)s).") % values
            )
        else:
            out.append(_("Level 4 as reported by the hospitals (no level-4 catalogue loaded)."))
    if used & {"minimally_invasive", "mi_basis"}:
        out.append(_mi_sentence(state, start, end, set(institution_codes)))
    if "operation_level" in used:
        out.append(_("Operation level as reported by the hospitals."))
    return out


def _mi_sentence(state: CatalogueState, start: dt.date, end: dt.date, codes: set[str]) -> str:
    chain = state.chain(CatalogueKind.MINIMALLY_INVASIVE)
    cover = _coverage(chain, start, end)
    values = {"catalogues": _listing(chain, start, end), "date": chain[0].valid_from.isoformat() if chain else ""}
    if cover == "whole":
        return _("Minimally invasive by the catalogue %(catalogues)s.") % values
    # Before the national catalogue (or without one): the institutions' own lists where they have
    # one in force during the period, and the flags the files reported.
    lists = any(
        v.overlaps(start, min(end, chain[0].valid_from) if chain else end)
        for code, versions in state.institution_chains().items()
        if code in codes
        for v in versions
    )
    if cover == "part":
        if lists:
            return (
                _(
                    "Minimally invasive by the catalogue %(catalogues)s; before %(date)s by the institutions' own "
                    "lists and the reported flags."
                )
                % values
            )
        return (
            _("Minimally invasive by the catalogue %(catalogues)s; before %(date)s as reported by the hospitals.")
            % values
        )
    if cover == "later":
        if lists:
            return (
                _(
                    "Minimally invasive by the institutions' own lists and the reported flags (the minimally "
                    "invasive catalogue applies only from %(date)s)."
                )
                % values
            )
        return (
            _(
                "Minimally invasive as reported by the hospitals (the minimally invasive catalogue applies only "
                "from %(date)s)."
            )
            % values
        )
    if lists:
        return _(
            "Minimally invasive by the institutions' own lists and the reported flags (no minimally invasive "
            "catalogue loaded)."
        )
    return _("Minimally invasive as reported by the hospitals (no minimally invasive catalogue loaded).")
