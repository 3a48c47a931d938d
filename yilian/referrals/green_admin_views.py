"""Green-channel office pages (绿色通道): the protocols, the travel settings and travel-time matrix,
and the monthly report with its Excel export.

- The protocols page is read by the staff of member hospitals (what a destination needs, the
  windows, the time nodes and who records them, the targets, the version history); the consortium
  office edits a protocol into a new version, and cases already activated keep theirs.
- The settings page is the office's: how arrival times are estimated without a matrix, how long a
  destination has to answer, and the travel-time matrix (CSV in, CSV out).
- The report is for people with referral figures, for the institutions they may see; it shows no
  patients. Its charts get their data as JSON in the page (``json_script``), drawn by the vendored
  ECharts.

Views parse, call a service or selector, render; the services refuse whoever may not write
(PermissionDenied, 403) and invalid input (ValidationError, 400).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Max, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy, pgettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.referrals import green_selectors, green_services, routing
from yilian.referrals import protocols as defs
from yilian.referrals.green_selectors import MetricFigures, ReportRow
from yilian.referrals.models import GreenProtocol, GreenProtocolVersion, GreenSettings, TravelTime
from yilian.registry.models import CapabilityKind, Consortium, Institution, User
from yilian.registry.selectors import consortium_members, user_scope
from yilian.web.forms import bootstrap_style, errors_to_form

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_REPORT_MONTHS = 60
MAX_MATRIX_BYTES = 2 * 1024 * 1024

SIDES = {
    "sender": gettext_lazy("Sending hospital"),
    "receiver": gettext_lazy("Receiving hospital"),
    "either": gettext_lazy("Either side"),
}
BY_CHOICES = [
    ("sender", gettext_lazy("Cases the hospital sent")),
    ("receiver", gettext_lazy("Cases the hospital accepted")),
]

# Column headers of the travel-time CSV; each is one the importer reads (the name columns are not
# read back, they are there for people).
MATRIX_HEADERS = {
    "zh": ["出发机构代码", "到达机构代码", "用时（分钟）", "出发机构名称", "到达机构名称"],
    "en": ["from", "to", "minutes", "from_name", "to_name"],
}


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _office_consortium_ids(user: User) -> frozenset[int] | None:
    """Consortia whose green channel the user sets up; None means all (system administrator)."""
    scope = user_scope(user)
    if Permission.MANAGE_REFERRAL_ROUTING not in scope.permissions:
        return frozenset()
    return None if scope.is_global else scope.consortium_ids


def _runs(managed: frozenset[int] | None, consortium_id: int) -> bool:
    return managed is None or consortium_id in managed


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _nav(user: User) -> dict[str, bool]:
    scope = user_scope(user)
    return {
        "nav_green_settings": _office_consortium_ids(user) != frozenset(),
        "nav_green_report": Permission.VIEW_REFERRAL_FIGURES in scope.permissions,
    }


# ----------------------------------------------------------------------------------------
# Protocols


@dataclass(frozen=True)
class WindowLine:
    name: str
    hours: str
    extended_hours: str
    capability: str
    when_finding: str


@dataclass(frozen=True)
class MetricLine:
    name: str
    start: str
    end: str
    target_minutes: int | None


@dataclass(frozen=True)
class VersionLine:
    version: int
    created_at: dt.datetime
    created_by: str
    note: str
    changes: list[str]


@dataclass
class ProtocolCard:
    protocol: GreenProtocol
    current: GreenProtocolVersion
    definition: defs.ProtocolDefinition
    capabilities: list[str]
    windows: list[WindowLine]
    nodes: list[tuple[str, str]]
    metrics: list[MetricLine]
    history: list[VersionLine]
    can_edit: bool


def _capability_label(kind: str) -> str:
    return str(CapabilityKind(kind).label) if kind in CapabilityKind.values else kind


def _changes(old: defs.ProtocolDefinition, new: defs.ProtocolDefinition) -> list[str]:
    """What a version changed in what the office edits: capabilities, window hours, targets."""
    out: list[str] = []
    added = [k for k in new.capabilities if k not in old.capabilities]
    removed = [k for k in old.capabilities if k not in new.capabilities]
    if added:
        out.append(_("Destinations now also need: %(what)s") % {"what": "、".join(map(_capability_label, added))})
    if removed:
        out.append(_("No longer needed: %(what)s") % {"what": "、".join(map(_capability_label, removed))})
    before = {w.code: w for w in old.windows}
    for w in new.windows:
        was = before.get(w.code)
        if was is None:
            out.append(_("New window: %(window)s") % {"window": w.name})
            continue
        if was.hours != w.hours:
            out.append(
                _("%(window)s window: %(old)s → %(new)s h")
                % {"window": w.name, "old": _hours(was.hours), "new": _hours(w.hours)}
            )
        if was.extended_hours != w.extended_hours:
            out.append(
                _("%(window)s extended window: %(old)s → %(new)s h")
                % {"window": w.name, "old": _hours(was.extended_hours) or "—", "new": _hours(w.extended_hours) or "—"}
            )
    targets = {m.code: m for m in old.metrics}
    for m in new.metrics:
        was_metric = targets.get(m.code)
        if was_metric is None:
            out.append(_("New metric: %(metric)s") % {"metric": m.name})
        elif was_metric.target_minutes != m.target_minutes:
            out.append(
                _("%(metric)s target: %(old)s → %(new)s")
                % {
                    "metric": m.name,
                    "old": _minutes_label(was_metric.target_minutes),
                    "new": _minutes_label(m.target_minutes),
                }
            )
    return out


def _minutes_label(minutes: int | None) -> str:
    return _("none") if minutes is None else _("%(n)s min") % {"n": minutes}


def _card(protocol: GreenProtocol, versions: list[GreenProtocolVersion], *, can_edit: bool) -> ProtocolCard:
    current = versions[0]
    definition = defs.parse(current.definition)
    findings = {f.code: f.name for f in definition.findings}
    node_names = {n.code: n.name for n in definition.nodes}
    parsed = [defs.parse(v.definition) for v in versions]
    history = []
    for i, version in enumerate(versions):
        older = parsed[i + 1] if i + 1 < len(parsed) else None
        history.append(
            VersionLine(
                version=version.version,
                created_at=version.created_at,
                created_by=(version.created_by.display_name or version.created_by.get_username())
                if version.created_by
                else _("the platform"),
                note=version.note,
                changes=_changes(older, parsed[i]) if older is not None else [],
            )
        )
    return ProtocolCard(
        protocol=protocol,
        current=current,
        definition=definition,
        capabilities=[_capability_label(k) for k in definition.capabilities],
        windows=[
            WindowLine(
                name=w.name,
                hours=_hours(w.hours),
                extended_hours=_hours(w.extended_hours),
                capability=_capability_label(w.capability) if w.capability else "",
                when_finding=findings.get(w.when_finding, w.when_finding),
            )
            for w in definition.windows
        ],
        nodes=[(n.name, str(SIDES[n.side])) for n in definition.nodes],
        metrics=[
            MetricLine(
                name=m.name,
                start=node_names.get(m.start, m.start),
                end=" / ".join(node_names.get(c, c) for c in m.end),
                target_minutes=m.target_minutes,
            )
            for m in definition.metrics
        ],
        history=history,
        can_edit=can_edit,
    )


def _visible_protocols(user: User) -> list[tuple[GreenProtocol, bool]]:
    """(protocol, may edit): active protocols of the user's consortia, and the withdrawn ones of
    the consortia whose office the user is (so that they can be brought back)."""
    managed = _office_consortium_ids(user)
    qs = green_selectors.protocols_for(user, include_inactive=True).prefetch_related(
        Prefetch(
            "versions",
            queryset=GreenProtocolVersion.objects.select_related("created_by").order_by("-version"),
            to_attr="version_list",
        )
    )
    out: list[tuple[GreenProtocol, bool]] = []
    for protocol in qs.order_by("consortium__code", "position", "code"):
        can_edit = _runs(managed, protocol.consortium_id)
        if protocol.is_active or can_edit:
            out.append((protocol, can_edit))
    return out


@login_required
@require_GET
def protocols(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    groups: list[tuple[Consortium, list[ProtocolCard]]] = []
    for protocol, can_edit in _visible_protocols(user):
        versions: list[GreenProtocolVersion] = getattr(protocol, "version_list", [])
        if not versions:
            continue
        card = _card(protocol, versions, can_edit=can_edit)
        if not groups or groups[-1][0].pk != protocol.consortium_id:
            groups.append((protocol.consortium, []))
        groups[-1][1].append(card)
    context = {"groups": groups, "any_editable": any(c.can_edit for _c, cards in groups for c in cards), **_nav(user)}
    return render(request, "referrals/green/protocols.html", context)


class ProtocolForm(forms.Form):
    """The parts of a protocol the office edits; everything else of the definition stays as it is."""

    name_zh = forms.CharField(label=gettext_lazy("Name (Chinese)"), max_length=60)
    name_en = forms.CharField(label=gettext_lazy("Name (English)"), max_length=80)
    is_active = forms.BooleanField(
        label=pgettext_lazy("protocol", "In use"),
        required=False,
        help_text=gettext_lazy("A protocol not in use cannot be chosen for new cases; open cases keep it."),
    )
    capabilities = forms.MultipleChoiceField(
        label=gettext_lazy("What every destination needs, available now"),
        choices=CapabilityKind.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    note = forms.CharField(
        label=gettext_lazy("What changed"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy(
            "Shown in the version history, e.g. “door-to-needle target 60 → 45 min (2025 guideline)”."
        ),
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, definition: defs.ProtocolDefinition, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.definition = definition
        for w in definition.windows:
            self.fields[f"window_{w.code}_hours"] = forms.DecimalField(
                label=pgettext_lazy("length of a treatment window", "Hours"),
                min_value=Decimal("0.1"),
                max_value=Decimal("72"),
                max_digits=4,
                decimal_places=2,
            )
            self.fields[f"window_{w.code}_extended"] = forms.DecimalField(
                label=gettext_lazy("Extended hours (with imaging selection)"),
                min_value=Decimal("0.1"),
                max_value=Decimal("72"),
                max_digits=4,
                decimal_places=2,
                required=False,
            )
        for m in definition.metrics:
            self.fields[f"metric_{m.code}_target"] = forms.IntegerField(
                label=gettext_lazy("Target (minutes)"), min_value=1, max_value=24 * 60, required=False
            )
        bootstrap_style(self)
        self.fields["capabilities"].widget.attrs["class"] = "form-check-input"
        self.fields["is_active"].widget.attrs["class"] = "form-check-input"

    @classmethod
    def initial_for(cls, protocol: GreenProtocol, version: GreenProtocolVersion) -> dict[str, Any]:
        definition = defs.parse(version.definition)
        initial: dict[str, Any] = {
            "name_zh": protocol.name_zh,
            "name_en": protocol.name_en,
            "is_active": protocol.is_active,
            "capabilities": list(definition.capabilities),
            "base_version": version.version,
        }
        for w in definition.windows:
            initial[f"window_{w.code}_hours"] = _hours(w.hours)
            initial[f"window_{w.code}_extended"] = _hours(w.extended_hours)
        for m in definition.metrics:
            initial[f"metric_{m.code}_target"] = m.target_minutes
        return initial

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "capabilities" in data and not data["capabilities"]:
            self.add_error("capabilities", _("Choose at least one capability a destination needs."))
        for w in self.definition.windows:
            hours, extended = data.get(f"window_{w.code}_hours"), data.get(f"window_{w.code}_extended")
            if hours is not None and extended is not None and extended <= hours:
                self.add_error(
                    f"window_{w.code}_extended",
                    _("The extended window must be longer than %(hours)s hours.") % {"hours": _hours(float(hours))},
                )
        return data

    def windows(self) -> list[tuple[defs.WindowDef, str, forms.BoundField, forms.BoundField]]:
        """Each window with the name of the imaging finding it needs ("" none) and its two fields."""
        findings = {f.code: f.name for f in self.definition.findings}
        return [
            (w, findings.get(w.when_finding, ""), self[f"window_{w.code}_hours"], self[f"window_{w.code}_extended"])
            for w in self.definition.windows
        ]

    def metrics(self) -> list[tuple[defs.MetricDef, forms.BoundField]]:
        return [(m, self[f"metric_{m.code}_target"]) for m in self.definition.metrics]

    def edited(self, current: dict[str, Any]) -> dict[str, Any]:
        """The current definition with the edited fields changed and nothing else."""
        data = self.cleaned_data
        out = copy.deepcopy(current)
        chosen = set(data["capabilities"])
        kept = [k for k in out.get("capabilities", []) if k in chosen]
        out["capabilities"] = kept + [k for k in CapabilityKind.values if k in chosen and k not in kept]
        for w in out.get("windows", []):
            hours, extended = data[f"window_{w['code']}_hours"], data[f"window_{w['code']}_extended"]
            w["hours"] = float(hours)
            w["extended_hours"] = float(extended) if extended is not None else None
        for m in out.get("metrics", []):
            m["target_minutes"] = data[f"metric_{m['code']}_target"]
        return out


def _access_protocol(user: User, public_id: str) -> GreenProtocol:
    protocol = green_selectors.protocols_for(user, include_inactive=True).filter(public_id=public_id).first()
    if protocol is None:
        raise Http404(_("No such protocol."))
    if not _runs(_office_consortium_ids(user), protocol.consortium_id):
        raise PermissionDenied(_("Only the consortium office edits the green-channel protocols."))
    return protocol


def _protocol_context(
    user: User, protocol: GreenProtocol, version: GreenProtocolVersion, form: ProtocolForm
) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "version": version,
        "form": form,
        "definition": form.definition,
        "capability_labels": dict(CapabilityKind.choices),
        **_nav(user),
    }


@login_required
@require_http_methods(["GET", "POST"])
def protocol_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    protocol = _access_protocol(user, str(public_id))
    version = green_services.current_version(protocol)
    definition = defs.parse(version.definition)
    if request.method != "POST":
        form = ProtocolForm(initial=ProtocolForm.initial_for(protocol, version), definition=definition)
        return render(request, "referrals/green/protocol_edit.html", _protocol_context(user, protocol, version, form))
    form = ProtocolForm(request.POST, definition=definition)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        edited = form.edited(version.definition)
        if data["base_version"] != version.version:
            # Someone saved a version meanwhile: show theirs, keep nothing of this edit silently.
            messages.warning(
                request,
                _("Version %(version)s was saved by someone else while you were editing; check it and edit again.")
                % {"version": version.version},
            )
            form = ProtocolForm(initial=ProtocolForm.initial_for(protocol, version), definition=definition)
            status = 409
        elif (
            defs.parse(edited) == definition
            and data["name_zh"].strip() == protocol.name_zh
            and data["name_en"].strip() == protocol.name_en
            and data["is_active"] == protocol.is_active
        ):
            form.add_error(None, _("Nothing was changed."))
        else:
            try:
                saved = green_services.green_protocol_revise(
                    actor=user,
                    protocol=protocol,
                    definition=edited,
                    note=data["note"],
                    name_zh=data["name_zh"],
                    name_en=data["name_en"],
                    is_active=data["is_active"],
                )
            except ValidationError as exc:
                errors_to_form(form, exc)
            else:
                name = data["name_zh"] if (get_language() or "").startswith("zh") else data["name_en"]
                messages.success(
                    request,
                    _("%(protocol)s: version %(version)s saved; cases already activated keep their version.")
                    % {"protocol": name, "version": saved.version},
                )
                return HttpResponseRedirect(reverse("referrals:green_protocols") + f"#protocol-{protocol.public_id}")
    context = _protocol_context(user, protocol, version, form)
    return render(request, "referrals/green/protocol_edit.html", context, status=status)


# ----------------------------------------------------------------------------------------
# Settings and the travel-time matrix


class SettingsForm(forms.Form):
    road_factor = forms.DecimalField(
        label=gettext_lazy("Road factor"),
        min_value=Decimal("1.00"),
        max_value=Decimal("3.00"),
        max_digits=3,
        decimal_places=2,
        help_text=gettext_lazy("Road distance divided by straight-line distance (1.00 to 3.00), e.g. 1.35."),
    )
    average_speed_kmh = forms.IntegerField(
        label=gettext_lazy("Average ambulance speed (km/h)"), min_value=10, max_value=150
    )
    offer_timeout_minutes = forms.IntegerField(
        label=gettext_lazy("A destination answers within (minutes)"),
        min_value=1,
        max_value=60,
        help_text=gettext_lazy(
            "Without an answer by then, the case is offered to the next destination and the office is told."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bootstrap_style(self)


class MatrixForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("Travel-time file (CSV)"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs.update({"class": "form-control", "accept": ".csv,text/csv"})

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_MATRIX_BYTES:
            raise forms.ValidationError(_("The file is larger than 2 MB; a travel-time matrix is much smaller."))
        return upload


def _office_consortia(user: User) -> list[Consortium]:
    managed = _office_consortium_ids(user)
    if managed == frozenset():
        raise PermissionDenied(_("Only the consortium office sets the green channel up."))
    qs = Consortium.objects.filter(is_active=True) if managed is None else Consortium.objects.filter(pk__in=managed)
    return list(qs.order_by("code"))


def _settings_of(consortium: Consortium) -> GreenSettings | None:
    return GreenSettings.objects.filter(consortium=consortium).first()


def _matrix_of(consortium: Consortium) -> list[TravelTime]:
    return list(
        TravelTime.objects.filter(consortium=consortium)
        .select_related("from_institution", "to_institution")
        .order_by("from_institution__code", "to_institution__code")
    )


def _matrix_summary(consortium: Consortium) -> tuple[int, dt.datetime | None]:
    """How many pairs the matrix has, and when it was last imported."""
    got = TravelTime.objects.filter(consortium=consortium).aggregate(pairs=Count("pk"), latest=Max("imported_at"))
    return got["pairs"], got["latest"]


def _matrix_csv(consortium: Consortium) -> HttpResponse:
    """The current matrix as CSV in UTF-8 with a byte-order mark, so that Excel opens it as such;
    the importer reads it back unchanged."""
    headers = MATRIX_HEADERS["zh" if (get_language() or "").startswith("zh") else "en"]
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for row in _matrix_of(consortium):
        writer.writerow(
            [row.from_institution.code, row.to_institution.code, row.minutes, row.from_institution.name,
             row.to_institution.name]
        )  # fmt: skip
    response = HttpResponse(out.getvalue().encode("utf-8"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="travel-times-{consortium.code}.csv"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def settings(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    consortia = _office_consortia(user)
    if not consortia:
        raise PermissionDenied(_("Only the consortium office sets the green channel up."))
    code = request.POST.get("consortium") or request.GET.get("consortium", "")
    consortium = next((c for c in consortia if c.code == code), None) if code else consortia[0]
    if consortium is None:
        raise Http404(_("No such consortium among those you run."))
    if request.method == "GET" and request.GET.get("format") == "csv":
        return _matrix_csv(consortium)
    here = reverse("referrals:green_settings") + f"?consortium={consortium.code}"
    current = _settings_of(consortium)
    initial = {
        "road_factor": current.road_factor if current else routing.DEFAULT_ROAD_FACTOR,
        "average_speed_kmh": current.average_speed_kmh if current else routing.DEFAULT_SPEED_KMH,
        "offer_timeout_minutes": current.offer_timeout_minutes if current
        else green_services.DEFAULT_OFFER_TIMEOUT_MINUTES,
    }  # fmt: skip
    settings_form = SettingsForm(initial=initial)
    matrix_form = MatrixForm()
    matrix_errors: list[str] = []
    status = 200
    if request.method == "POST":
        status = 400
        if request.POST.get("form") == "matrix":
            matrix_form = MatrixForm(request.POST, request.FILES)
            if matrix_form.is_valid():
                try:
                    result = green_services.travel_times_import(
                        actor=user, consortium=consortium, data=matrix_form.cleaned_data["file"].read()
                    )
                except ValidationError as exc:
                    matrix_errors = exc.messages
                else:
                    messages.success(
                        request,
                        _("Travel times imported: %(rows)s pairs, %(created)s new, %(updated)s changed.")
                        % {"rows": result.rows, "created": result.created, "updated": result.updated},
                    )
                    return HttpResponseRedirect(here + "#matrix")
        else:
            settings_form = SettingsForm(request.POST)
            if settings_form.is_valid():
                try:
                    green_services.green_settings_set(actor=user, consortium=consortium, **settings_form.cleaned_data)
                except ValidationError as exc:
                    errors_to_form(settings_form, exc)
                else:
                    messages.success(request, _("Green-channel settings saved."))
                    return HttpResponseRedirect(here)
    members = consortium_members(consortium)
    pairs, imported_at = _matrix_summary(consortium)
    context = {
        "consortia": consortia,
        "consortium": consortium,
        "settings_form": settings_form,
        "saved": current is not None,
        "matrix_form": matrix_form,
        "matrix_errors": matrix_errors,
        "pairs": pairs,
        "possible_pairs": len(members) * (len(members) - 1),
        "imported_at": imported_at,
        "members": members,
        "headers": MATRIX_HEADERS,
        **_nav(user),
    }
    return render(request, "referrals/green/settings.html", context, status=status)


# ----------------------------------------------------------------------------------------
# The monthly report

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _month_add(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def _parse_month(text: str) -> dt.date | None:
    """The first day of a month given as YYYY-MM (years 1900 to 9998), else None."""
    match = _MONTH.match(text.strip())
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return dt.date(year, month, 1) if 1900 <= year <= 9998 and 1 <= month <= 12 else None


class MonthField(forms.CharField):
    """A month as YYYY-MM (the browser's month picker), cleaned to its first day."""

    widget = forms.TextInput(attrs={"type": "month", "pattern": r"\d{4}-\d{2}", "placeholder": "2025-01"})

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return None
        month = _parse_month(text)
        if month is None:
            raise forms.ValidationError(_("Enter a month as year-month, e.g. 2025-01."))
        return month


class ReportForm(forms.Form):
    month_from = MonthField(label=gettext_lazy("From month"))
    month_to = MonthField(label=gettext_lazy("To month"))
    institution = forms.ChoiceField(label=gettext_lazy("Institution"), required=False)
    protocol = forms.ChoiceField(label=gettext_lazy("Protocol"), required=False)
    by = forms.ChoiceField(label=gettext_lazy("Which cases"), choices=BY_CHOICES)
    metric = forms.CharField(required=False, max_length=30, widget=forms.HiddenInput)

    def __init__(
        self, *args: Any, institutions: list[Institution], protocol_choices: list[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["institution"].choices = [  # type: ignore[attr-defined]
            ("", _("All institutions you may see")),
            *((i.code, i.short_name or i.name) for i in institutions),
        ]
        self.fields["protocol"].choices = [("", _("All protocols")), *protocol_choices]  # type: ignore[attr-defined]
        bootstrap_style(self, small=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start: dt.date | None = data.get("month_from")
        end: dt.date | None = data.get("month_to")
        if start is not None and end is not None:
            if start > end:
                self.add_error("month_to", _("The last month comes before the first."))
            elif _month_add(start, MAX_REPORT_MONTHS) <= end:
                self.add_error("month_to", _("Choose at most %(n)s months.") % {"n": MAX_REPORT_MONTHS})
        return data

    @staticmethod
    def with_defaults(given: Any) -> Any:
        """The query with what is not given filled in: the twelve months up to this one (or up to
        the last month given), cases sent."""
        data = given.copy()
        if not data.get("month_to"):
            data["month_to"] = f"{timezone.localdate():%Y-%m}"
        if not data.get("month_from"):
            last = _parse_month(data["month_to"]) or timezone.localdate().replace(day=1)
            data["month_from"] = f"{_month_add(last, -11):%Y-%m}"
        if not data.get("by"):
            data["by"] = "sender"
        return data


@dataclass
class Figure:
    """One metric in one month (or the period): median, 90th percentile, compliance."""

    median: float | None = None
    p90: float | None = None
    n: int = 0
    met: int = 0
    compliance: float | None = None  # percent within target
    target: int | None = None

    @classmethod
    def of(cls, figures: MetricFigures | None) -> Figure:
        if figures is None:
            return cls()
        compliance = figures.compliance
        return cls(
            median=figures.median,
            p90=figures.p90,
            n=figures.n,
            met=figures.met,
            compliance=round(compliance * 100, 1) if compliance is not None else None,
            target=figures.target_minutes,
        )

    @property
    def median_missed(self) -> bool:
        return self.target is not None and self.median is not None and self.median > self.target

    @property
    def p90_missed(self) -> bool:
        return self.target is not None and self.p90 is not None and self.p90 > self.target


@dataclass
class Line:
    month: dt.date | None  # None: the period's total
    cases: int
    accepted_first: int
    figures: list[Figure]

    @property
    def accepted_first_percent(self) -> float | None:
        return round(self.accepted_first * 100 / self.cases, 1) if self.cases else None


@dataclass
class MetricHead:
    code: str
    name: str
    target: int | None


@dataclass
class Section:
    key: str
    institution: Institution
    protocol_code: str
    protocol_name: str
    metrics: list[MetricHead]
    lines: list[Line]
    total: Line
    chart: dict[str, Any] = field(default_factory=dict)


def _bin_width(values: list[float]) -> int:
    """A round bin width giving at most about 24 bins."""
    span = max(values, default=0) - min(values, default=0)
    return next((w for w in (1, 2, 5, 10, 15, 20, 30, 60, 120) if span / w <= 24), 240)


def _sections(rows: list[ReportRow], months: list[dt.date]) -> list[Section]:
    totals = green_selectors.report_totals(rows)
    by_key: dict[tuple[int, str], dict[dt.date, ReportRow]] = {}
    for row in rows:
        by_key.setdefault((row.institution.pk, row.protocol_code), {})[row.month] = row
    sections = []
    for n, ((inst_id, code), per_month) in enumerate(by_key.items(), start=1):
        total_row = totals[(inst_id, code)]
        latest = per_month[max(per_month)]
        heads = [MetricHead(m.code, m.name, m.target_minutes) for m in latest.metrics]
        lines = []
        for month in months:
            found = per_month.get(month)
            got = {m.code: m for m in found.metrics} if found else {}
            lines.append(
                Line(
                    month=month,
                    cases=found.cases if found else 0,
                    accepted_first=found.accepted_first if found else 0,
                    figures=[Figure.of(got.get(h.code)) for h in heads],
                )
            )
        pooled = {m.code: m for m in total_row.metrics}
        total = Line(None, total_row.cases, total_row.accepted_first, [Figure.of(pooled.get(h.code)) for h in heads])
        section = Section(
            key=f"s{n}",
            institution=total_row.institution,
            protocol_code=code,
            protocol_name=latest.protocol_name,
            metrics=heads,
            lines=lines,
            total=total,
        )
        section.chart = _chart(section, pooled)
        sections.append(section)
    return sections


def _chart(section: Section, pooled: dict[str, MetricFigures]) -> dict[str, Any]:
    metrics = []
    for i, head in enumerate(section.metrics):
        figures = pooled.get(head.code)
        values = figures.values if figures else []
        width = _bin_width(values)
        bins = figures.histogram(width) if figures else []
        metrics.append(
            {
                "code": head.code,
                "name": head.name,
                "target": head.target,
                "median": [line.figures[i].median for line in section.lines],
                "p90": [line.figures[i].p90 for line in section.lines],
                "n": [line.figures[i].n for line in section.lines],
                "bins": [[lo, count] for lo, count in bins],
                "width": width,
                "total": len(values),
            }
        )
    return {"months": [line.month.strftime("%Y-%m") for line in section.lines if line.month], "metrics": metrics}


def _chart_labels() -> dict[str, str]:
    return {
        "median": _("Median"),
        "p90": _("90th percentile"),
        "target": _("Target"),
        "minutes": _("minutes"),
        "cases": _("Cases"),
        "within": _("Within target"),
        "straddles": _("Around the target"),
        "beyond": _("Beyond the target"),
        "no_target": _("No target"),
        "trend": _("By month"),
        "distribution": _("Distribution in the period"),
        "no_values": _("No values in the period."),
    }


@dataclass
class ReportQuery:
    form: ReportForm
    institutions: list[Institution]
    start: dt.date | None = None
    end: dt.date | None = None
    institution: Institution | None = None
    protocol_code: str = ""
    by: str = "sender"
    metric: str = ""

    @property
    def valid(self) -> bool:
        return self.start is not None

    @property
    def months(self) -> list[dt.date]:
        if self.start is None or self.end is None:
            return []
        out, month = [], self.start
        while month <= self.end:
            out.append(month)
            month = _month_add(month, 1)
        return out


def _protocol_choices(institutions: list[Institution]) -> list[tuple[str, str]]:
    """Protocol codes of the consortia the institutions belong to, once each."""
    seen: dict[str, str] = {}
    qs = GreenProtocol.objects.filter(consortium__members__institution__in=institutions).distinct()
    for protocol in qs.order_by("position", "code"):
        seen.setdefault(protocol.code, protocol.name)
    return list(seen.items())


def _report_query(request: HttpRequest) -> ReportQuery:
    user = _user(request)
    if Permission.VIEW_REFERRAL_FIGURES not in user_scope(user).permissions:
        raise PermissionDenied(_("You may not see green-channel figures."))
    institutions = list(green_selectors.report_institutions_for(user).order_by("code"))
    form = ReportForm(
        ReportForm.with_defaults(request.GET),
        institutions=institutions,
        protocol_choices=_protocol_choices(institutions),
    )
    query = ReportQuery(form=form, institutions=institutions)
    if form.is_valid():
        data = form.cleaned_data
        query.start, query.end = data["month_from"], data["month_to"]
        query.institution = next((i for i in institutions if i.code == data["institution"]), None)
        query.protocol_code = data["protocol"]
        query.by = data["by"]
        query.metric = data["metric"]
    return query


def _period_end(month: dt.date) -> dt.date:
    return _month_add(month, 1) - dt.timedelta(days=1)


def _report_rows(user: User, query: ReportQuery) -> list[ReportRow]:
    assert query.start is not None and query.end is not None
    return green_selectors.green_report(
        user,
        start=query.start,
        end=_period_end(query.end),
        institutions=[query.institution] if query.institution else None,
        protocol_code=query.protocol_code,
        by=query.by,
    )


@login_required
@require_GET
def report(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    query = _report_query(request)
    if request.GET.get("format") == "xlsx":
        if not query.valid:
            errors = "; ".join(
                f"{query.form.fields[name].label if name in query.form.fields else ''}: {' '.join(map(str, e))}"
                for name, e in query.form.errors.items()
            )
            return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
        return _xlsx_response(user, query, _sections(_report_rows(user, query), query.months))
    context: dict[str, Any] = {"form": query.form, "query": query, "by_choices": BY_CHOICES, **_nav(user)}
    if not query.valid:
        return render(request, "referrals/green/report.html", context, status=400)
    sections = _sections(_report_rows(user, query), query.months)
    params = request.GET.copy()
    params["format"] = "xlsx"
    context |= {
        "sections": sections,
        "charts": {
            "labels": _chart_labels(),
            "initial": query.metric,
            "sections": {s.key: s.chart for s in sections},
        },
        "export_query": params.urlencode(),
        "months": query.months,
    }
    return render(request, "referrals/green/report.html", context)


def _sheet(wb: Workbook, title: str, first: bool = False) -> Worksheet:
    ws = wb.active if first else wb.create_sheet()
    assert isinstance(ws, Worksheet)
    ws.title = re.sub(r"[\[\]:*?/\\]", " ", title)[:31]
    return ws


MISSED = PatternFill("solid", start_color="FDE2E1", end_color="FDE2E1")


def _report_workbook(user: User, query: ReportQuery, sections: list[Section]) -> bytes:
    """One sheet with the filters, then one sheet per protocol: a block of months and a total per
    institution. Minutes as numbers, compliance as a fraction shown in percent."""
    assert query.start is not None and query.end is not None
    wb = Workbook()
    ws = _sheet(wb, _("Report"), first=True)
    by_label = dict(BY_CHOICES)[query.by]
    for label, value in (
        (_("Green-channel monthly report"), ""),
        (_("Period"), f"{query.start:%Y-%m} – {query.end:%Y-%m}"),
        (_("Institution"), query.institution.name if query.institution else _("All institutions you may see")),
        (
            _("Protocol"),
            next((s.protocol_name for s in sections if s.protocol_code == query.protocol_code), "")
            or query.protocol_code
            or _("All protocols"),
        ),
        (_("Count"), str(by_label)),
        (_("Exported at"), timezone.localtime().strftime("%Y-%m-%d %H:%M")),
    ):
        ws.append([str(label), str(value)])
        ws.cell(row=ws.max_row, column=1).font = Font(bold=True)
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 40
    if not sections:
        ws.append([])
        ws.append([_("No data yet")])

    by_protocol: dict[str, list[Section]] = {}
    for section in sections:
        by_protocol.setdefault(section.protocol_code, []).append(section)
    for code, group in by_protocol.items():
        ws = _sheet(wb, f"{group[0].protocol_name} ({code})")
        heads = group[0].metrics
        header = [_("Institution"), _("Month"), _("Cases"), _("Accepted by the first destination")]
        for head in heads:
            target = _("target ≤ %(n)s min") % {"n": head.target} if head.target is not None else _("no target")
            header += [
                f"{head.name} ({target}): " + _("median (min)"),
                f"{head.name}: " + _("90th percentile (min)"),
                f"{head.name}: " + _("within target"),
            ]
        ws.append(header)
        for cell in ws[ws.max_row]:
            cell.font = Font(bold=True)
        for section in group:
            codes = [m.code for m in section.metrics]
            for line in [*section.lines, section.total]:
                row: list[Any] = [
                    section.institution.name,
                    line.month.strftime("%Y-%m") if line.month else _("Total"),
                    line.cases,
                    line.accepted_first,
                ]
                for head in heads:
                    fig = line.figures[codes.index(head.code)] if head.code in codes else Figure()
                    row += [fig.median, fig.p90, round(fig.met / fig.n, 3) if fig.target and fig.n else None]
                ws.append(row)
                cells = ws[ws.max_row]
                if line.month is None:
                    for cell in cells:
                        cell.font = Font(bold=True)
                for i, head in enumerate(heads):
                    fig = line.figures[codes.index(head.code)] if head.code in codes else Figure()
                    median_cell, p90_cell, share_cell = cells[4 + 3 * i], cells[5 + 3 * i], cells[6 + 3 * i]
                    share_cell.number_format = "0.0%"
                    if fig.median_missed:
                        median_cell.fill = MISSED
                    if fig.p90_missed:
                        p90_cell.fill = MISSED
        ws.freeze_panes = "C2"
        for i, width in enumerate([24, 9, 7, 12] + [14] * (3 * len(heads)), start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
    buffer = io.BytesIO()
    wb.save(buffer)
    with transaction.atomic():
        audit_record(
            actor=user,
            action=AuditAction.EXPORT,
            object_type="referrals.green_report",
            object_repr=_("Green-channel monthly report"),
            changes={
                "export": "green report",
                "period": f"{query.start:%Y-%m}/{query.end:%Y-%m}",
                "institution": query.institution.code if query.institution else "",
                "protocol": query.protocol_code,
                "by": query.by,
            },
        )
    return buffer.getvalue()


def _xlsx_response(user: User, query: ReportQuery, sections: list[Section]) -> HttpResponse:
    assert query.start is not None and query.end is not None
    response = HttpResponse(_report_workbook(user, query, sections), content_type=XLSX)
    name = f"green-report-{query.start:%Y-%m}-{query.end:%Y-%m}-{query.by}.xlsx"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
