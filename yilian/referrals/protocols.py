"""Green-channel protocols as data: what a destination needs, the time nodes, the windows and targets.

A definition is JSON stored on a ``GreenProtocolVersion`` and checked by ``ProtocolDefinition``:

- ``capabilities``: what every destination must have available now (registry capability kinds);
- ``windows``: treatment windows counted from last known well, in order of preference (the most
  definitive treatment first). A window may apply only with an imaging finding (thrombectomy with a
  large-vessel occlusion) and names the capability that delivers it; ``extended_hours`` is the
  longer window with imaging selection, shown beside the standard one;
- ``nodes``: the time nodes to record and which side records each (sender, receiver or either);
- ``metrics``: intervals between nodes (``to`` may list several nodes: the first one recorded
  counts, e.g. onset to needle or puncture) with a target in minutes;
- ``scores`` (NIHSS 0-42, Killip class I-IV, ...) and imaging ``findings`` offered at activation.

The functions below are pure: windows, the time left in each, and the metrics of a case from its
nodes. Times are aware datetimes; displays are in the consortium's time zone (Asia/Shanghai).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.utils.translation import get_language
from django.utils.translation import gettext as _
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yilian.registry.models import CapabilityKind


class _Named(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,29}$")
    name_zh: str = Field(min_length=1, max_length=60)
    name_en: str = Field(min_length=1, max_length=80)

    @property
    def name(self) -> str:
        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en


class NodeDef(_Named):
    side: Literal["sender", "receiver", "either"] = "either"


class WindowDef(_Named):
    hours: float = Field(gt=0, le=72)
    extended_hours: float | None = Field(default=None, gt=0, le=72)
    capability: str = ""
    when_finding: str = ""

    @model_validator(mode="after")
    def _extended_longer(self) -> WindowDef:
        if self.extended_hours is not None and self.extended_hours <= self.hours:
            raise ValueError(_("window %(code)s: extended_hours must be longer than hours") % {"code": self.code})
        return self


class MetricDef(_Named):
    start: str
    end: list[str] = Field(min_length=1)
    target_minutes: int | None = Field(default=None, gt=0, le=24 * 60)


class ScoreDef(_Named):
    min: int = 0
    max: int
    labels: list[str] = Field(default_factory=list)  # e.g. Killip I-IV shown for 1-4

    @model_validator(mode="after")
    def _range(self) -> ScoreDef:
        if self.max < self.min:
            raise ValueError(_("score %(code)s: max is below min") % {"code": self.code})
        if self.labels and len(self.labels) != self.max - self.min + 1:
            raise ValueError(
                _("score %(code)s: give one label for each value from %(min)s to %(max)s, or none")
                % {"code": self.code, "min": self.min, "max": self.max}
            )
        return self


class ProtocolDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    diagnosis_code: str = Field(pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")
    diagnosis_zh: str = Field(min_length=1, max_length=60)
    diagnosis_en: str = Field(min_length=1, max_length=120)
    capabilities: list[str] = Field(default_factory=list)
    windows: list[WindowDef] = Field(default_factory=list)
    nodes: list[NodeDef] = Field(min_length=2)
    metrics: list[MetricDef] = Field(default_factory=list)
    scores: list[ScoreDef] = Field(default_factory=list)
    findings: list[_Named] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> ProtocolDefinition:
        kinds = set(CapabilityKind.values)
        for kind in self.capabilities + [w.capability for w in self.windows if w.capability]:
            if kind not in kinds:
                raise ValueError(
                    _("unknown capability “%(kind)s”; known: %(known)s")
                    % {"kind": kind, "known": ", ".join(sorted(kinds))}
                )
        nodes = [n.code for n in self.nodes]
        if len(set(nodes)) != len(nodes):
            raise ValueError(_("each node code once"))
        for m in self.metrics:
            for code in [m.start, *m.end]:
                if code not in nodes:
                    raise ValueError(_("metric %(metric)s: no node “%(node)s”") % {"metric": m.code, "node": code})
        findings = {f.code for f in self.findings}
        for w in self.windows:
            if w.when_finding and w.when_finding not in findings:
                raise ValueError(
                    _("window %(window)s: no finding “%(finding)s”") % {"window": w.code, "finding": w.when_finding}
                )
        if "onset" not in nodes and self.windows:
            raise ValueError(_("windows are counted from the node “onset”"))
        if "arrival" not in nodes:
            raise ValueError(_("the node “arrival” is needed: it records the patient reaching the destination"))
        return self

    def node(self, code: str) -> NodeDef | None:
        return next((n for n in self.nodes if n.code == code), None)

    @property
    def diagnosis(self) -> str:
        return self.diagnosis_zh if (get_language() or "").startswith("zh") else self.diagnosis_en


def parse(definition: Mapping[str, Any]) -> ProtocolDefinition:
    """The definition checked; raises ``pydantic.ValidationError``."""
    return ProtocolDefinition.model_validate(definition)


def definition_errors(definition: Any) -> list[str]:
    """Readable problems of a definition (empty: valid), each prefixed with where it is."""
    try:
        ProtocolDefinition.model_validate(definition)
    except ValidationError as exc:
        return [
            (".".join(str(p) for p in err["loc"]) + ": " if err["loc"] else "") + _message(err) for err in exc.errors()
        ]
    return []


def _message(err: Any) -> str:
    """The message of a check of ours without pydantic's "Value error, " prefix."""
    ctx = err.get("ctx") or {}
    if err["type"] == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return str(err["msg"])


# --- windows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    code: str
    name: str
    capability: str
    closes_at: dt.datetime | None  # None: onset unknown
    extended_closes_at: dt.datetime | None
    applies: bool  # False when it needs an imaging finding the case does not have

    def minutes_left(self, now: dt.datetime, *, extended: bool = False) -> int | None:
        closes = self.extended_closes_at if extended else self.closes_at
        if closes is None:
            return None
        return int((closes - now).total_seconds() // 60)

    def is_open(self, now: dt.datetime) -> bool:
        return self.closes_at is not None and now < self.closes_at


def windows(protocol: ProtocolDefinition, *, onset_at: dt.datetime | None, findings: list[str]) -> list[Window]:
    """The protocol's windows for a case: when each closes, and whether it applies."""
    out = []
    # In UTC: a window is elapsed time since onset. Adding to a local time would add wall-clock
    # hours (wrong across a daylight-saving change), and comparing two times of one zone object
    # ignores their offsets.
    if onset_at is not None and onset_at.tzinfo is None:
        raise ValueError("onset_at must be an aware datetime")
    onset = None if onset_at is None else onset_at.astimezone(dt.UTC)
    for w in protocol.windows:
        closes = None if onset is None else onset + dt.timedelta(hours=w.hours)
        extended = None if onset is None or w.extended_hours is None else onset + dt.timedelta(hours=w.extended_hours)
        out.append(
            Window(
                code=w.code,
                name=w.name,
                capability=w.capability,
                closes_at=closes,
                extended_closes_at=extended,
                applies=not w.when_finding or w.when_finding in findings,
            )
        )
    return out


# --- metrics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    code: str
    name: str
    minutes: float | None  # None: a node is missing
    target_minutes: int | None

    @property
    def missed(self) -> bool | None:
        """True when the target was missed, None when there is no target or no value."""
        if self.minutes is None or self.target_minutes is None:
            return None
        return self.minutes > self.target_minutes


def metrics(protocol: ProtocolDefinition, nodes: Mapping[str, dt.datetime]) -> list[Metric]:
    """Each metric of the protocol from the case's current nodes (node code -> time)."""
    out = []
    for m in protocol.metrics:
        start = nodes.get(m.start)
        ends = [nodes[c] for c in m.end if c in nodes]
        minutes = None
        if start is not None and ends:
            minutes = round((min(ends) - start).total_seconds() / 60, 1)
            if minutes < 0:
                # The end before the start: nodes out of order (a correction pending, or treatment
                # given at the sending hospital before arrival). Not a value, never "on target".
                minutes = None
        out.append(Metric(code=m.code, name=m.name, minutes=minutes, target_minutes=m.target_minutes))
    return out


# --- the defaults a consortium starts with --------------------------------------------------


def _n(code: str, zh: str, en: str, side: str = "either") -> dict[str, str]:
    return {"code": code, "name_zh": zh, "name_en": en, "side": side}


def _m(code: str, zh: str, en: str, start: str, end: list[str], target: int | None) -> dict[str, Any]:
    return {"code": code, "name_zh": zh, "name_en": en, "start": start, "end": end, "target_minutes": target}


ONSET = _n("onset", "发病/最后正常时间", "Onset / last known well")
FIRST_CONTACT = _n("first_contact", "首次医疗接触", "First medical contact", "sender")
DOOR_IN = _n("door_in", "到达首诊医院", "Door-in (sending hospital)", "sender")
DECISION = _n("decision", "决定转运", "Decision to transfer", "sender")
DOOR_OUT = _n("door_out", "离开首诊医院", "Door-out (sending hospital)", "sender")
ARRIVAL = _n("arrival", "到达接收医院", "Arrival (receiving hospital)", "receiver")

DIDO = "dido"

DEFAULT_PROTOCOLS: dict[str, dict[str, Any]] = {
    "stroke": {
        "name_zh": "急性缺血性卒中",
        "name_en": "Acute ischaemic stroke",
        "definition": {
            "diagnosis_code": "I63.9",
            "diagnosis_zh": "急性缺血性脑卒中",
            "diagnosis_en": "Acute ischaemic stroke",
            "capabilities": ["ct", "iv_thrombolysis"],
            "windows": [
                {
                    "code": "evt",
                    "name_zh": "取栓",
                    "name_en": "Thrombectomy",
                    "hours": 6,
                    "extended_hours": 24,
                    "capability": "thrombectomy",
                    "when_finding": "lvo",
                },
                {
                    "code": "ivt",
                    "name_zh": "静脉溶栓",
                    "name_en": "IV thrombolysis",
                    "hours": 4.5,
                    "capability": "iv_thrombolysis",
                },
            ],
            "nodes": [
                ONSET,
                DOOR_IN,
                _n("imaging", "影像检查完成", "Imaging done", "sender"),
                DECISION,
                DOOR_OUT,
                ARRIVAL,
                _n("needle", "溶栓给药", "Needle (thrombolysis)"),
                _n("puncture", "股动脉穿刺", "Groin puncture", "receiver"),
                _n("reperfusion", "血管再通", "Reperfusion", "receiver"),
            ],
            "metrics": [
                _m(DIDO, "入门-出门时间", "Door-in-door-out", "door_in", ["door_out"], 120),
                _m("door_to_imaging", "入院-影像时间", "Door-to-imaging", "door_in", ["imaging"], 25),
                _m("door_to_needle", "入院-溶栓时间", "Door-to-needle", "arrival", ["needle"], 60),
                _m("door_to_puncture", "入院-穿刺时间", "Door-to-puncture", "arrival", ["puncture"], 90),
                _m("onset_to_treatment", "发病-治疗时间", "Onset-to-treatment", "onset", ["needle", "puncture"], None),
                _m("transfer", "转运时间", "Transfer time", "door_out", ["arrival"], None),
            ],
            "scores": [{"code": "nihss", "name_zh": "NIHSS 评分", "name_en": "NIHSS", "min": 0, "max": 42}],
            "findings": [
                {"code": "lvo", "name_zh": "CTA 大血管闭塞", "name_en": "CTA large-vessel occlusion"},
                {"code": "no_bleed", "name_zh": "CT 排除出血", "name_en": "CT: no haemorrhage"},
            ],
        },
    },
    "stemi": {
        "name_zh": "ST 段抬高型心肌梗死",
        "name_en": "STEMI",
        "definition": {
            "diagnosis_code": "I21.3",
            "diagnosis_zh": "急性 ST 段抬高型心肌梗死",
            "diagnosis_en": "ST-elevation myocardial infarction",
            "capabilities": ["primary_pci"],
            "windows": [
                {
                    "code": "pci",
                    "name_zh": "直接 PCI",
                    "name_en": "Primary PCI",
                    "hours": 12,
                    "extended_hours": 24,
                    "capability": "primary_pci",
                },
            ],
            "nodes": [
                ONSET,
                FIRST_CONTACT,
                _n("ecg", "首份心电图", "First ECG", "sender"),
                DOOR_IN,
                DECISION,
                DOOR_OUT,
                ARRIVAL,
                _n("cath_lab_activation", "启动导管室", "Cath-lab activation", "receiver"),
                _n("cath_lab_ready", "导管室就绪", "Cath lab ready", "receiver"),
                _n("balloon", "球囊扩张", "Balloon (wire crossing)", "receiver"),
            ],
            "metrics": [
                _m("contact_to_ecg", "首次医疗接触-心电图", "First contact to ECG", "first_contact", ["ecg"], 10),
                _m(DIDO, "入门-出门时间", "Door-in-door-out", "door_in", ["door_out"], 30),
                _m("door_to_balloon", "入门-球囊时间", "Door-to-balloon", "arrival", ["balloon"], 90),
                _m(
                    "cath_lab_activation",
                    "导管室激活时间",
                    "Cath-lab activation",
                    "cath_lab_activation",
                    ["cath_lab_ready"],
                    30,
                ),
                _m("onset_to_treatment", "发病-治疗时间", "Onset-to-treatment", "onset", ["balloon"], None),
                _m("transfer", "转运时间", "Transfer time", "door_out", ["arrival"], None),
            ],
            "scores": [
                {
                    "code": "killip",
                    "name_zh": "Killip 分级",
                    "name_en": "Killip class",
                    "min": 1,
                    "max": 4,
                    "labels": ["I", "II", "III", "IV"],
                }
            ],
            "findings": [{"code": "st_elevation", "name_zh": "心电图 ST 段抬高", "name_en": "ECG: ST elevation"}],
        },
    },
    "trauma": {
        "name_zh": "严重创伤",
        "name_en": "Major trauma",
        "definition": {
            "diagnosis_code": "T07",
            "diagnosis_zh": "多发性损伤",
            "diagnosis_en": "Multiple injuries",
            "capabilities": ["trauma_centre", "ct", "icu"],
            "windows": [
                {
                    "code": "golden_hour",
                    "name_zh": "黄金一小时",
                    "name_en": "Golden hour",
                    "hours": 1,
                    "capability": "trauma_centre",
                }
            ],
            "nodes": [
                ONSET,
                DOOR_IN,
                DECISION,
                DOOR_OUT,
                ARRIVAL,
                _n("ct", "创伤 CT", "Trauma CT", "receiver"),
                _n("surgery", "急诊手术", "Emergency surgery", "receiver"),
            ],
            "metrics": [
                _m(DIDO, "入门-出门时间", "Door-in-door-out", "door_in", ["door_out"], 60),
                _m("door_to_ct", "入院-CT 时间", "Door-to-CT", "arrival", ["ct"], 30),
                _m("door_to_surgery", "入院-手术时间", "Door-to-surgery", "arrival", ["surgery"], 60),
                _m("transfer", "转运时间", "Transfer time", "door_out", ["arrival"], None),
            ],
            "scores": [{"code": "gcs", "name_zh": "GCS 评分", "name_en": "Glasgow coma scale", "min": 3, "max": 15}],
            "findings": [
                {
                    "code": "haemodynamic_instability",
                    "name_zh": "血流动力学不稳定",
                    "name_en": "Haemodynamically unstable",
                }
            ],
        },
    },
    "obstetric": {
        "name_zh": "危重孕产妇",
        "name_en": "High-risk obstetrics",
        "definition": {
            "diagnosis_code": "O99.8",
            "diagnosis_zh": "危重孕产妇",
            "diagnosis_en": "Critically ill pregnant or postpartum woman",
            "capabilities": ["high_risk_obstetrics", "icu"],
            "windows": [],
            "nodes": [
                ONSET,
                DOOR_IN,
                DECISION,
                DOOR_OUT,
                ARRIVAL,
                _n("delivery", "分娩/剖宫产", "Delivery / caesarean", "receiver"),
            ],
            "metrics": [
                _m(DIDO, "入门-出门时间", "Door-in-door-out", "door_in", ["door_out"], 60),
                _m("door_to_delivery", "入院-分娩时间", "Door-to-delivery", "arrival", ["delivery"], 30),
                _m("transfer", "转运时间", "Transfer time", "door_out", ["arrival"], None),
            ],
            "scores": [],
            "findings": [
                {"code": "haemorrhage", "name_zh": "产后出血", "name_en": "Postpartum haemorrhage"},
                {"code": "eclampsia", "name_zh": "子痫", "name_en": "Eclampsia"},
            ],
        },
    },
    "newborn": {
        "name_zh": "危重新生儿",
        "name_en": "Critically ill newborn",
        "definition": {
            "diagnosis_code": "P96.9",
            "diagnosis_zh": "危重新生儿",
            "diagnosis_en": "Critically ill newborn",
            "capabilities": ["nicu"],
            "windows": [],
            "nodes": [
                ONSET,
                DOOR_IN,
                DECISION,
                DOOR_OUT,
                ARRIVAL,
                _n("nicu_admission", "收入 NICU", "NICU admission", "receiver"),
            ],
            "metrics": [
                _m(DIDO, "入门-出门时间", "Door-in-door-out", "door_in", ["door_out"], 60),
                _m("door_to_nicu", "入院-NICU 时间", "Door-to-NICU", "arrival", ["nicu_admission"], 30),
                _m("transfer", "转运时间", "Transfer time", "door_out", ["arrival"], None),
            ],
            "scores": [{"code": "apgar", "name_zh": "Apgar 评分", "name_en": "Apgar score", "min": 0, "max": 10}],
            "findings": [],
        },
    },
}
