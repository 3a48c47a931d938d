"""Demo green channel (绿色通道): protocols, travel times, the Changshan stroke case, two years of
time-critical transfers and live work for the personas.

What the data shows (DOMAIN.md §3 and §5, the green-channel issue):
- every consortium has the default protocols (stroke, STEMI, major trauma, high-risk obstetrics,
  critically ill newborn) and the default travel settings (road factor 1.35, 60 km/h, an answer
  within 5 minutes); the Quzhou neurosurgery alliance has an imported road travel-time matrix
  between its hospitals (Changshan to Quzhou People's Hospital 45 minutes);
- the seed story: on 2018-11-26 a 66-year-old man from Changshan county had an acute ischaemic
  stroke during his morning exercise (晨练时突发); Changshan County People's Hospital found a
  large-vessel occlusion (NIHSS 14) and opened the green channel to Quzhou People's Hospital, which
  had started thrombectomy that month and accepted within two minutes; groin puncture 3 h 32 min
  after onset, inside the 6-hour window. It is written through the green-channel services with the
  clock of that morning, so that it is a case like any other (audited as the two people who acted);
- two years of transfers from county hospitals (and the city maternal and child hospital) to the
  city and provincial hospitals with the capabilities each protocol needs, in four consortia:
  mostly stroke, then STEMI, some major trauma, high-risk obstetric and newborn cases, more of them
  each month; log-normal intervals whose medians improve over the two years (stroke door-in-door-out
  about 110 to 70 minutes, door-to-puncture about 100 to 75, STEMI door-to-balloon about 95 to 70),
  so that some targets are missed, mostly early on; a few declines and time-outs re-offered to the
  next destination (Kaihua's cases go to Quzhou People's first, then to the Second Affiliated
  Hospital), a few cancellations, a few corrected time nodes;
- live work at seed time: a stroke case from Changshan waiting for Quzhou People's answer (the
  coordinator's board counts down the 5 minutes), a STEMI from Kaihua accepted and on the road,
  a stroke case from Changshan arrived and in treatment (its groin puncture recorded).

Invariants:
- every case walks ``workflow.GREEN_TRANSITIONS``, each step by a side the table allows, with one
  ``ReferralEvent`` per step as the services write them (activation sends at once, a decline or a
  time-out re-offers, arrival checks in); offers are ranked, at most one is pending, and every case
  that was not cancelled has exactly one accepted offer, from the institution holding it; time
  nodes are those of the case's protocol version, recorded by the side it names, one current row
  per node (a correction supersedes the earlier row);
- deterministic: the history is a function of ``seed``, ``now`` and the seeded registry; numbers,
  public ids and status tokens come from the seeded generator; the history is recognised by the
  status token of its first referral, drawn first and so independent of ``now``; the story by its
  sender, time and note (its number and public ids, like the live cases', are the services' own).
  Seeding again creates nothing;
- the history is synthetic and written in bulk (plain rows, as the referral history is), with one
  audit row for the run and one for the settings and travel times, and no notifications or
  webhooks; the story and the live cases go through the services, audited as the people who acted,
  and their announcements are dropped: a transfer of 2018 is news to nobody today, and the live
  cases wait on the boards (as the referral history's live work does, without notifications).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from stdnum.cn import ric

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.demo.referrals import (
    _FEMALE_NAMES,
    _MALE_NAMES,
    _PHONE_PREFIXES,
    _SURNAMES,
    _TOWNS,
    _VILLAGES,
    _YOUNG_NAMES,
    NUMBER_ALPHABET,
    _history_user,
    _reserve_ids,
    _Table,
    _token,
)
from yilian.patients import services as patient_services
from yilian.patients.models import Patient, Sex
from yilian.referrals import green_services, protocols, routing, workflow
from yilian.referrals.models import (
    Direction,
    GreenCase,
    GreenNode,
    GreenOffer,
    GreenProtocol,
    GreenProtocolVersion,
    GreenSettings,
    OfferOutcome,
    Referral,
    ReferralEvent,
    RequestedService,
    Status,
    TravelTime,
    Urgency,
)
from yilian.referrals.workflow import Action, Side
from yilian.registry.models import Consortium, Discipline, Institution, Practitioner, ProfessionalTitle, Region, User

CHINA = ZoneInfo("Asia/Shanghai")
HISTORY_DAYS = 730
HISTORY_CASES = 640
OFFER_TIMEOUT = dt.timedelta(minutes=green_services.DEFAULT_OFFER_TIMEOUT_MINUTES)
STORY_SENDER = "csph"
STORY_DESTINATION = "qzph"
STORY_PHRASE = "晨练时突发"
# The morning of the story, in China time (Quzhou People's Hospital has done thrombectomy since 2018-11-01).
STORY_ONSET = dt.datetime(2018, 11, 26, 6, 40, tzinfo=CHINA)
STORY_ACTIVATED = dt.datetime(2018, 11, 26, 8, 1, tzinfo=CHINA)

D = Discipline
S = Status
A = Action
SENDER, RECEIVER, OFFICE, SYSTEM = Side.SENDER, Side.RECEIVER, Side.OFFICE, Side.SYSTEM


@dataclass(frozen=True)
class GreenSeedReport:
    """What one run created (zero everywhere on a second run)."""

    protocols: int = 0
    settings: int = 0
    travel_times: int = 0
    patients: int = 0
    cases: int = 0
    offers: int = 0
    nodes: int = 0
    events: int = 0


# ----------------------------------------------------------------------------------------
# Travel times of the Quzhou neurosurgery alliance: minutes by ambulance, both ways.

TRAVEL_MINUTES: tuple[tuple[str, str, int], ...] = (
    ("qzph", "csph", 45), ("qzph", "khph", 75), ("qzph", "jsph", 42), ("qzph", "lyph", 40), ("qzph", "qjph", 15),
    ("qzph", "cs-tianma", 47), ("csph", "khph", 50), ("csph", "jsph", 40), ("csph", "lyph", 70),
    ("csph", "qjph", 52), ("csph", "cs-tianma", 6), ("khph", "jsph", 85), ("khph", "lyph", 95),
    ("khph", "qjph", 80), ("khph", "cs-tianma", 52), ("jsph", "lyph", 65), ("jsph", "qjph", 50),
    ("jsph", "cs-tianma", 42), ("lyph", "qjph", 30), ("lyph", "cs-tianma", 72), ("qjph", "cs-tianma", 54),
)  # fmt: skip
MATRIX_CONSORTIUM = "quzhou-neuro"


# ----------------------------------------------------------------------------------------
# Routes: who sends what where, in the order the ranking offers the destinations.


@dataclass(frozen=True)
class _Route:
    consortium: str
    sender: str
    destinations: tuple[str, ...]
    protocol: str
    weight: float
    # Share of cases the first destination declines or lets time out (then the next one accepts).
    reoffer: float = 0.0


ROUTES: tuple[_Route, ...] = (
    _Route("quzhou-neuro", "csph", ("qzph",), "stroke", 10),
    _Route("quzhou-neuro", "jsph", ("qzph",), "stroke", 7),
    _Route("quzhou-neuro", "lyph", ("qzph",), "stroke", 6),
    _Route("quzhou-neuro", "qjph", ("qzph",), "stroke", 5),
    _Route("quzhou-neuro", "khph", ("qzph",), "stroke", 2),
    _Route("quzhou-neuro", "csph", ("qzph",), "stemi", 5),
    _Route("quzhou-neuro", "jsph", ("qzph",), "stemi", 4),
    _Route("quzhou-neuro", "lyph", ("qzph",), "stemi", 3),
    _Route("quzhou-neuro", "qjph", ("qzph",), "stemi", 3),
    _Route("zju2-quzhou", "khph", ("qzph", "zju2"), "stroke", 5, reoffer=0.2),
    _Route("zju2-quzhou", "khph", ("qzph", "zju2"), "stemi", 4, reoffer=0.2),
    _Route("zju2-quzhou", "khph", ("zju2",), "trauma", 3),
    _Route("bijie-nrmc", "qxgph", ("bjfph",), "stroke", 4),
    _Route("bijie-nrmc", "qxgph", ("bjfph",), "stemi", 3),
    _Route("zjuwc-quzhou", "qzmch", ("zjuwc",), "obstetric", 3),
    _Route("zjuwc-quzhou", "qzmch", ("zjuwc",), "newborn", 2.5),
)

_ROUTE_CONSORTIA = frozenset(r.consortium for r in ROUTES)
_ROUTE_INSTITUTIONS = frozenset(code for r in ROUTES for code in (r.sender, *r.destinations))

# Sending hospitals are not all equally quick (a factor on every interval's median).
_PACE = {"csph": 0.95, "jsph": 1.0, "lyph": 1.05, "qjph": 0.9, "khph": 1.1, "qxgph": 1.12, "qzmch": 1.0}

# Medians at the start and the end of the two years (minutes), and the spread (log-normal sigma).
_TRENDS: dict[str, tuple[float, float, float]] = {
    "stroke.dido": (118, 70, 0.33),
    "stroke.imaging": (32, 18, 0.35),
    "stroke.decide": (14, 9, 0.4),
    "stroke.puncture": (100, 75, 0.3),
    "stroke.needle": (48, 32, 0.3),
    "stemi.dido": (50, 32, 0.35),
    "stemi.ecg": (11, 6, 0.45),
    "stemi.decide": (12, 8, 0.4),
    "stemi.cath_lab": (30, 20, 0.3),
    "stemi.balloon": (100, 70, 0.26),
    "trauma.dido": (80, 55, 0.33),
    "trauma.decide": (25, 15, 0.4),
    "trauma.ct": (28, 18, 0.3),
    "trauma.surgery": (80, 55, 0.3),
    "obstetric.dido": (65, 45, 0.33),
    "obstetric.decide": (20, 12, 0.4),
    "obstetric.delivery": (40, 25, 0.3),
    "newborn.dido": (60, 40, 0.33),
    "newborn.decide": (15, 10, 0.4),
    "newborn.nicu": (22, 12, 0.3),
}

_SENDER_DISCIPLINES: dict[str, tuple[str, ...]] = {
    "stroke": (D.NEUROLOGY, D.EMERGENCY, D.INTERNAL_MEDICINE),
    "stemi": (D.CARDIOLOGY, D.EMERGENCY, D.INTERNAL_MEDICINE),
    "trauma": (D.EMERGENCY, D.GENERAL_SURGERY, D.ORTHOPEDICS),
    "obstetric": (D.OBSTETRICS_GYNECOLOGY,),
    "newborn": (D.NEONATOLOGY, D.PEDIATRICS),
}
_RECEIVER_DISCIPLINES: dict[str, tuple[str, ...]] = {
    "stroke": (D.NEUROLOGY, D.NEUROSURGERY, D.EMERGENCY),
    "stemi": (D.CARDIOLOGY, D.EMERGENCY),
    "trauma": (D.EMERGENCY, D.CRITICAL_CARE, D.GENERAL_SURGERY),
    "obstetric": (D.OBSTETRICS_GYNECOLOGY,),
    "newborn": (D.NEONATOLOGY, D.PEDIATRICS),
}
# The on-call coordinators who answer offers where the demo has one.
_COORDINATORS = {"qzph": "coordinator", "zju2": "telecentre"}
_PERSONAS = {("csph", "stroke"): "doctor", ("khph", "stroke"): "kaihua"}
_NURSES = frozenset(
    {
        ProfessionalTitle.CHIEF_NURSE,
        ProfessionalTitle.ASSOCIATE_CHIEF_NURSE,
        ProfessionalTitle.NURSE_IN_CHARGE,
        ProfessionalTitle.SENIOR_NURSE,
        ProfessionalTitle.NURSE,
    }
)


# ----------------------------------------------------------------------------------------
# Clinical texts (data, in Chinese as the hospitals write them)

_STROKE_IMAGING = (
    ("右侧大脑中动脉M1段", "头颅CT未见出血，ASPECTS 9分；CTA示右侧大脑中动脉M1段闭塞"),
    ("左侧大脑中动脉M1段", "头颅CT未见出血，ASPECTS 8分；CTA示左侧大脑中动脉M1段闭塞"),
    ("左侧颈内动脉末端", "头颅CT未见出血；CTA示左侧颈内动脉末端闭塞"),
    ("右侧大脑中动脉M2段", "头颅CT未见出血；CTA示右侧大脑中动脉M2段闭塞"),
    ("基底动脉", "头颅CT未见出血；CTA示基底动脉中段闭塞"),
)
_STROKE_NOTES = (
    "家属发现{side}侧肢体无力、言语含糊，呼叫120送至我院。",
    "午睡后出现{side}侧肢体麻木无力，最后正常时间由家属提供。",
    "打牌时突发{side}侧肢体偏瘫伴口角歪斜，既往房颤病史。",
    "田间劳作时突发{side}侧肢体无力跌倒，由村医陪同送院。",
    "早餐时突发言语不清、{side}侧肢体无力，既往高血压、糖尿病史。",
)
_STEMI_ECG = (
    ("前壁", "LAD", "心电图示V1–V5导联ST段抬高0.3–0.5 mV"),
    ("下壁", "RCA", "心电图示II、III、aVF导联ST段抬高0.2–0.4 mV，肌钙蛋白升高"),
    ("广泛前壁", "LAD", "心电图示V1–V6、I、aVL导联ST段抬高"),
    ("下后壁", "LCX", "心电图示II、III、aVF及V7–V9导联ST段抬高"),
)
_STEMI_NOTES = (
    "持续胸骨后压榨样疼痛伴大汗，含服硝酸甘油不缓解。",
    "晨起胸闷胸痛2小时，伴恶心呕吐。",
    "劳作后突发胸痛向左肩放射，吸烟史30年。",
    "夜间胸痛惊醒，伴气促，既往高血压病史。",
)
_TRAUMA = (
    ("摩托车与货车相撞", "FAST示腹腔积液；CT示脾破裂、左侧多发肋骨骨折", "多发伤（脾破裂、多发肋骨骨折）",
     "急诊剖腹探查、脾切除术；胸腔闭式引流"),
    ("高处坠落（约6米）", "CT示骨盆粉碎性骨折、右股骨干骨折，盆腔血肿", "多发伤（骨盆骨折、股骨干骨折）",
     "骨盆外固定支架、介入栓塞止血，二期股骨髓内钉固定"),
    ("工地重物砸伤", "CT示急性硬膜下血肿、右侧血气胸", "多发伤（急性硬膜下血肿、血气胸）",
     "急诊开颅血肿清除术、胸腔闭式引流"),
    ("电动车翻车", "CT示肝破裂（III级）、腰椎横突骨折", "多发伤（肝破裂、腰椎横突骨折）",
     "急诊剖腹探查、肝修补术"),
)  # fmt: skip
_OBSTETRIC = (
    ("haemorrhage", "阴道分娩后2小时出血约1500 ml，血压85/50 mmHg，宫缩乏力", "产后出血（子宫收缩乏力）",
     "输血、宫腔球囊压迫、子宫动脉栓塞", "出血控制，生命体征平稳"),
    ("eclampsia", "孕34周，血压180/115 mmHg，抽搐1次", "子痫（孕34周）",
     "硫酸镁解痉、降压，急诊剖宫产", "母婴平安，血压控制良好"),
    ("haemorrhage", "孕37周，凶险性前置胎盘，阴道出血约600 ml", "凶险性前置胎盘伴出血",
     "多学科协作下剖宫产，腹主动脉球囊阻断", "保留子宫，母婴平安"),
    ("", "孕30周，胎膜早破伴规律宫缩，超声示胎儿偏小", "先兆早产（孕30周）",
     "促胎肺成熟、保胎，必要时剖宫产", "孕周延长至33周后分娩"),
)  # fmt: skip
_NEWBORN = (
    ("早产儿（孕31周），生后进行性呼吸困难、呻吟", "胸片示双肺透亮度减低，呈毛玻璃样改变",
     "新生儿呼吸窘迫综合征（早产儿）", "肺表面活性物质气管内给药，无创通气", "撤离呼吸机，奶量逐渐增加"),
    ("出生时重度窒息，Apgar 1分钟3分", "血气示代谢性酸中毒",
     "新生儿重度窒息、缺氧缺血性脑病", "亚低温治疗72小时，呼吸支持", "神经系统查体好转，吸吮有力"),
    ("生后发绀，吸氧不能改善，心前区杂音", "心脏超声示复杂先天性心脏病",
     "先天性心脏病（大动脉转位）", "前列腺素维持动脉导管开放，转心外科手术", "术后恢复顺利"),
)  # fmt: skip
_DECLINES = {
    "stroke": (
        "取栓团队正在台上，预计1小时后方可开台，请转下一家。",
        "神经介入导管室设备检修中，无法及时取栓。",
    ),
    "stemi": (
        "导管室正在行另一例急诊PCI，请转下一家。",
        "CCU床位已满，建议转浙大二院。",
    ),
}
_CANCELS = {
    "stroke": (
        "复查NIHSS降至2分，症状明显好转，不再转运。",
        "家属商量后放弃转院，要求在本院保守治疗。",
    ),
    "stemi": (
        "溶栓后胸痛缓解、ST段回落，暂不转运，择期造影。",
        "患者转运前出现心室颤动，经抢救后血流动力学不稳定，就地治疗。",
    ),
    "trauma": ("患者病情恶化，不宜长途转运，就地抢救。",),
    "obstetric": ("已在本院顺利分娩，出血控制，不再转运。",),
    "newborn": ("患儿经处理后呼吸平稳，暂不转运。",),
}
_ACCEPTED_CANCEL = "患者转运前病情变化，经双方医生沟通后取消转运，就地治疗。"
_CORRECTION = "按救护车出车记录更正"


# ----------------------------------------------------------------------------------------
# What the generator knows about the seeded registry


@dataclass(frozen=True)
class _Who:
    """Who took a step or recorded a time: a user account (or none), a name, maybe a practitioner."""

    user_id: int | None
    label: str
    practitioner_id: int | None = None


class _Registry:
    """The seeded institutions, staff, persona accounts, protocol versions and travel times, loaded once."""

    def __init__(self, history_user: User) -> None:
        self.history_user = history_user
        self.consortia = {c.code: c for c in Consortium.objects.order_by("pk")}
        self.institutions = {i.code: i for i in Institution.objects.select_related("region").order_by("pk")}
        self.regions = {r.code: r for r in Region.objects.order_by("pk")}
        self.users = {
            u.username: u for u in User.objects.filter(username__in=[*_COORDINATORS.values(), *_PERSONAS.values()])
        }
        self.practitioner_of: dict[int, int] = dict(
            Practitioner.objects.filter(user__in=list(self.users.values())).values_list("user_id", "pk")
        )
        self.staff: dict[tuple[str, str], list[_Who]] = {}
        self.any_staff: dict[str, list[_Who]] = {}
        practitioners = (
            Practitioner.objects.filter(is_active=True, institution__code__in=_ROUTE_INSTITUTIONS)
            .exclude(title__in=_NURSES)
            .select_related("institution", "department", "user")
            .order_by("licence_number")
        )
        for p in practitioners:
            who = _Who(p.user_id, (p.user.display_name if p.user else "") or p.name_zh, p.pk)
            self.any_staff.setdefault(p.institution.code, []).append(who)
            if p.department is not None:
                self.staff.setdefault((p.institution.code, p.department.discipline), []).append(who)
        self.versions: dict[tuple[str, str], GreenProtocolVersion] = {}
        for version in GreenProtocolVersion.objects.select_related("protocol__consortium").order_by(
            "protocol_id", "-version"
        ):
            self.versions.setdefault((version.protocol.consortium.code, version.protocol.code), version)
        self.definitions = {key: protocols.parse(v.definition) for key, v in self.versions.items()}
        self.matrix: dict[tuple[str, str, str], int] = {
            (c, a, b): m
            for c, a, b, m in TravelTime.objects.values_list(
                "consortium__code", "from_institution__code", "to_institution__code", "minutes"
            )
        }
        self.travel = {code: routing.travel_of(self.consortia[code].pk) for code in _ROUTE_CONSORTIA}

    def eta(self, consortium: str, sender: str, destination: str) -> tuple[int, str]:
        """Minutes by road as the ranking estimates them, and from what."""
        minutes = self.matrix.get((consortium, sender, destination))
        if minutes is not None:
            return minutes, "matrix"
        a, b = self.institutions[sender], self.institutions[destination]
        assert a.latitude is not None and a.longitude is not None
        assert b.latitude is not None and b.longitude is not None
        km = routing.great_circle_km(float(a.latitude), float(a.longitude), float(b.latitude), float(b.longitude))
        travel = self.travel[consortium]
        return max(1, math.ceil(km * travel.road_factor / travel.speed_kmh * 60)), "distance"


# ----------------------------------------------------------------------------------------
# One case being written


Row = dict[str, Any]  # a row by attribute name, as ``yilian.demo.referrals._Table`` writes it


@dataclass
class _Draft:
    """One case: its patient, referral and case rows, then its offers, time nodes and timeline."""

    patient: Row
    referral: Row
    case: Row
    offers: list[Row] = field(default_factory=list)
    nodes: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)


def _m(minutes: float) -> dt.timedelta:
    return dt.timedelta(minutes=minutes)


class _History:
    """Generates the two years of cases as rows, then writes them."""

    def __init__(self, *, registry: _Registry, rng: random.Random, marker: str, now: dt.datetime) -> None:
        self.reg = registry
        self.rng = rng
        self.marker: str | None = marker
        self.now = now
        self.start = now - dt.timedelta(days=HISTORY_DAYS)
        self.numbers: set[str] = set(Referral.objects.values_list("number", flat=True))
        self.id_numbers: set[str] = {
            n for n in Patient.objects.filter(id_number__isnull=False).values_list("id_number", flat=True) if n
        }
        self.drafts: list[_Draft] = []
        self.cumulative = _cumulative([r.weight for r in ROUTES])
        self.system = _Who(None, _("System"))

    # -- random helpers

    def choose(self, items: Sequence[Any]) -> Any:
        return items[int(self.rng.random() * len(items))]

    def interval(self, key: str, f: float, pace: float = 1.0, low: float = 1.0, high: float = 24 * 60) -> float:
        """Minutes: log-normal around a median that moves from its start to its end value over the years."""
        first, last, sigma = _TRENDS[key]
        median = first * math.pow(last / first, f) * pace
        return min(high, max(low, median * math.exp(self.rng.gauss(0, sigma))))

    def token(self) -> str:
        if self.marker is not None:
            token, self.marker = self.marker, None
            return token
        return _token(self.rng)

    def number(self, at: dt.datetime) -> str:
        day = at.astimezone(CHINA).strftime("%y%m%d")
        while True:
            n = self.rng.getrandbits(30)
            number = "R" + day + "".join(NUMBER_ALPHABET[(n >> (5 * i)) & 31] for i in range(6))
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def phone(self) -> str:
        prefix: str = self.choose(_PHONE_PREFIXES)
        return prefix + f"{self.rng.randrange(10**8):08d}"

    # -- people

    def staff(self, code: str, disciplines: Sequence[str]) -> _Who:
        for discipline in disciplines:
            pool = self.reg.staff.get((code, discipline))
            if pool:
                return self.choose(pool)  # type: ignore[no-any-return]
        pool = self.reg.any_staff.get(code)
        if pool:
            return self.choose(pool)  # type: ignore[no-any-return]
        return _Who(None, self.reg.institutions[code].short_name + "急诊值班医生")

    def sender_who(self, route: _Route) -> _Who:
        username = _PERSONAS.get((route.sender, route.protocol))
        user = self.reg.users.get(username) if username else None
        if user is not None and self.rng.random() < 0.5:
            return _Who(user.pk, user.display_name or user.username, self.reg.practitioner_of.get(user.pk))
        return self.staff(route.sender, _SENDER_DISCIPLINES[route.protocol])

    def coordinator(self, code: str, protocol: str) -> _Who:
        user = self.reg.users.get(_COORDINATORS.get(code, ""))
        if user is not None:
            return _Who(user.pk, user.display_name or user.username)
        return self.staff(code, _RECEIVER_DISCIPLINES[protocol])

    # -- patients

    def patient(self, route: _Route, at: dt.datetime) -> Row:
        rng = self.rng
        sender = self.reg.institutions[route.sender]
        region = sender.region.code if sender.region.code in _TOWNS else "330802"
        protocol = route.protocol
        if protocol == "obstetric":
            male, age = False, rng.randint(21, 42)
        elif protocol == "newborn":
            male, age = rng.random() < 0.55, 0
        elif protocol == "stemi":
            male, age = rng.random() < 0.75, int(rng.triangular(38, 88, 63))
        elif protocol == "trauma":
            male, age = rng.random() < 0.75, int(rng.triangular(18, 78, 45))
        else:
            male, age = rng.random() < 0.6, int(rng.triangular(45, 92, 70))
        sex = Sex.MALE if male else Sex.FEMALE
        common: Row = {
            "public_id": self.uuid(),
            "created_at": at,
            "updated_at": at,
            "sex": sex,
            "residence_region_id": self.reg.regions[region].pk,
            "registered_by_id": sender.pk,
        }
        surname = self.choose(_SURNAMES)
        if protocol == "newborn":
            # Named after the mother until registered; born at the sending hospital a few hours ago.
            mother = self.choose(_SURNAMES) + self.choose(_FEMALE_NAMES)
            return {
                "name": f"{mother}之{'子' if male else '女'}",
                "birth_date": at.astimezone(CHINA).date(),
                "emergency_contact_name": mother,
                "emergency_contact_relation": "母亲",
                "emergency_contact_phone": self.phone(),
                **common,
            }
        if protocol in ("stroke", "trauma") and rng.random() < 0.05:
            # Brought in alone and unable to speak: sex and approximate age only.
            return {"name": "无名氏", "approximate_age": age, **common}
        birth = at.astimezone(CHINA).date() - dt.timedelta(days=int((age + rng.random()) * 365.25))
        while True:
            # Sequence numbers 100-299 (an odd 17th digit is male), clear of the other demo histories'.
            seq = 100 + 2 * rng.randrange(100) + (1 if male else 0)
            body = f"{region}{birth:%Y%m%d}{seq:03d}"
            number = body + ric.calc_check_digit(body + "0")
            if number not in self.id_numbers:
                self.id_numbers.add(number)
                break
        names: Sequence[str] = _YOUNG_NAMES if protocol == "obstetric" else _MALE_NAMES if male else _FEMALE_NAMES
        return {
            "name": surname + self.choose(names),
            "birth_date": birth,
            "id_number": number,
            "phone": self.phone(),
            "address": f"{self.choose(_TOWNS[region])}{self.choose(_VILLAGES)}{rng.randint(1, 120)}号",
            "emergency_contact_name": surname + self.choose(_YOUNG_NAMES),
            "emergency_contact_relation": self.choose(
                ("配偶", "儿子", "女儿") if protocol != "obstetric" else ("丈夫",)
            ),
            "emergency_contact_phone": self.phone(),
            **common,
        }

    # -- the run

    def history(self) -> None:
        """``HISTORY_CASES`` cases over the two years before ``now``, more each month, in time order."""
        rng = self.rng
        growth = 0.8  # about 80 % more cases at the end of the period than at its start
        slots: list[tuple[dt.datetime, float]] = []
        for _slot in range(HISTORY_CASES):
            u = rng.random()
            f = ((1 + 2 * growth * u * (1 + growth / 2)) ** 0.5 - 1) / growth  # inverse of the growing density
            day = self.start + dt.timedelta(days=f * (HISTORY_DAYS - 3))
            hour = rng.uniform(0, 24) if rng.random() < 0.3 else rng.uniform(6.5, 22.5)
            midnight = day.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
            slots.append((midnight + dt.timedelta(hours=hour), f))
        slots.sort(key=lambda s: s[0])
        for door_in, f in slots:
            route = ROUTES[bisect.bisect_right(self.cumulative, rng.random())]
            self.case(route, door_in, min(1.0, max(0.0, f)))

    def case(self, route: _Route, door_in: dt.datetime, f: float) -> None:
        rng = self.rng
        reg = self.reg
        protocol = route.protocol
        version = reg.versions[(route.consortium, protocol)]
        definition = reg.definitions[(route.consortium, protocol)]
        pace = _PACE.get(route.sender, 1.0)
        sender = reg.institutions[route.sender]
        who = self.sender_who(route)
        times: dict[str, dt.datetime] = {"door_in": door_in}
        scores: dict[str, int] = {}
        findings: list[str] = []
        imaging_result = ""
        note = ""
        outcome: tuple[str, str, str, str] = ("", "", "", "")
        refer_back = rng.random() < 0.6
        dido = self.interval(f"{protocol}.dido", f, pace, low=12)

        # Before the decision to transfer: onset, imaging or ECG, scores and findings.
        if protocol == "stroke":
            vessel, imaging_result = self.choose(_STROKE_IMAGING)
            lvo = rng.random() < 0.92
            findings = ["lvo", "no_bleed"] if lvo else ["no_bleed"]
            nihss = int(rng.triangular(6, 26, 15)) if lvo else rng.randint(4, 10)
            scores = {"nihss": nihss}
            note = self.choose(_STROKE_NOTES).format(side=self.choose("左右"))
            if rng.random() > 0.05:  # else a wake-up stroke: last known well unknown
                times["onset"] = door_in - _m(min(330, max(20, 95 * math.exp(rng.gauss(0, 0.5)))))
            times["imaging"] = door_in + _m(self.interval("stroke.imaging", f, pace, low=6, high=dido * 0.6))
            decide_from = times["imaging"]
        elif protocol == "stemi":
            wall, artery, imaging_result = self.choose(_STEMI_ECG)
            findings = ["st_elevation"]
            scores = {"killip": self.choose((1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4))}
            note = self.choose(_STEMI_NOTES)
            by_ambulance = rng.random() < 0.6
            contact = door_in - _m(rng.uniform(12, 40)) if by_ambulance else door_in
            times["first_contact"] = contact
            times["ecg"] = contact + _m(self.interval("stemi.ecg", f, pace, low=2, high=45))
            times["onset"] = contact - _m(min(600, max(20, 110 * math.exp(rng.gauss(0, 0.6)))))
            decide_from = max(times["ecg"], door_in + _m(3))
        elif protocol == "trauma":
            mechanism, imaging_result, diagnosis, surgery = self.choose(_TRAUMA)
            findings = ["haemodynamic_instability"] if rng.random() < 0.45 else []
            scores = {"gcs": rng.randint(6, 14)}
            note = f"{mechanism}后约{rng.randint(30, 70)}分钟送达。"
            times["onset"] = door_in - _m(min(180, max(10, 45 * math.exp(rng.gauss(0, 0.5)))))
            decide_from = door_in
            outcome = (diagnosis, surgery, "生命体征平稳，转入普通病房。", "骨科、普外科门诊随访；康复治疗。")
        elif protocol == "obstetric":
            finding, imaging_result, diagnosis, treatment, result = self.choose(_OBSTETRIC)
            findings = [finding] if finding else []
            note = "孕产妇危急重症，已开放两路静脉通道，备血。"
            times["onset"] = door_in - _m(min(600, max(10, 60 * math.exp(rng.gauss(0, 0.6)))))
            decide_from = door_in
            outcome = (diagnosis, treatment, result, "产后42天产科门诊复查；当地妇幼保健院随访。")
        else:
            note, imaging_result, diagnosis, treatment, result = self.choose(_NEWBORN)
            scores = {"apgar": rng.randint(2, 7)}
            times["onset"] = door_in - _m(min(240, max(5, 30 * math.exp(rng.gauss(0, 0.6)))))
            decide_from = door_in
            outcome = (diagnosis, treatment, result, "出院后新生儿科门诊随访，按时预防接种。")
        times["decision"] = decide_from + _m(self.interval(f"{protocol}.decide", f, pace, low=2, high=90))
        activated = times["decision"]

        # Offers: the first destination accepts, or declines / lets the offer time out and the next accepts.
        plan: list[str] = []  # outcome of each offer in turn
        if len(route.destinations) > 1 and rng.random() < route.reoffer:
            plan = [OfferOutcome.DECLINED if rng.random() < 0.6 else OfferOutcome.TIMED_OUT, OfferOutcome.ACCEPTED]
        else:
            plan = [OfferOutcome.ACCEPTED]
        cancel = rng.random()
        cancelled_before_answer = cancel < 0.02
        cancelled_after_accept = 0.02 <= cancel < 0.03

        number = self.number(activated)
        patient = self.patient(route, activated)
        first = reg.institutions[route.destinations[0]]
        referral: Row = {
            "public_id": self.uuid(),
            "status_token": self.token(),
            "created_at": activated,
            "number": number,
            "direction": Direction.UP,
            "urgency": Urgency.URGENT,
            "green_channel": True,
            "consortium_id": reg.consortia[route.consortium].pk,
            "from_institution_id": sender.pk,
            "from_practitioner_id": who.practitioner_id,
            "to_institution_id": first.pk,
            "created_by_id": who.user_id if who.user_id is not None else reg.history_user.pk,
            "reason": f"{version.protocol.name_zh} / {version.protocol.name_en}\n{note}"[:2000],
            "requested_service": RequestedService.PROCEDURE,
            "diagnosis_code": definition.diagnosis_code,
            "diagnosis_name": definition.diagnosis_zh,
            "key_findings": imaging_result,
            "sent_at": activated,
            "escalation_level": 0,
        }
        case: Row = {
            "public_id": self.uuid(),
            "created_at": activated,
            "updated_at": activated,
            "protocol_version": version,
            "onset_at": times.get("onset"),
            "scores": scores,
            "imaging_done": bool(findings) or protocol in ("stroke", "trauma"),
            "findings": findings,
            "imaging_result": imaging_result,
            "note": note,
            "activated_at": activated,
        }
        d = _Draft(patient=patient, referral=referral, case=case)
        self.drafts.append(d)
        nodes_known = {n.code for n in definition.nodes}
        to_institution = first

        def node(code: str, at: dt.datetime, recorded: dt.datetime, by: _Who, institution: Institution) -> Row:
            row: Row = {
                "node": code, "at": at, "recorded_at": recorded, "recorded_by_id": by.user_id,
                "recorded_by_label": by.label, "institution_id": institution.pk, "note": "", "superseded_at": None,
            }  # fmt: skip
            if code in nodes_known:  # a protocol revised since may have dropped it
                d.nodes.append(row)
            return row

        status = S.DRAFT

        def event(
            action: Action, at: dt.datetime, side: Side, by: _Who, reason: str = "", data: Row | None = None
        ) -> None:
            """One step of the walk: to where the table says, by a side it allows."""
            nonlocal status
            transition = workflow.GREEN_TRANSITIONS[(status, action)]
            assert side in transition.sides, (status, action, side)
            institution = {SENDER: sender, RECEIVER: to_institution}.get(side)
            d.events.append(
                {
                    "action": action, "from_status": status, "to_status": transition.to, "at": at,
                    "actor_id": by.user_id, "actor_label": by.label, "side": side,
                    "institution_id": institution.pk if institution else None, "note": reason, "data": data or {},
                }
            )  # fmt: skip
            status = transition.to
            referral["status"] = status
            referral["updated_at"] = at
            if reason:
                referral["last_reason"] = reason[:500]

        # Activation: the case is sent, onset, door-in and decision are recorded at once.
        first_eta, first_basis = reg.eta(route.consortium, route.sender, route.destinations[0])
        event(A.SEND, activated, SENDER, who, data={"protocol": protocol, "to": route.destinations[0],
                                                   "eta_minutes": first_eta})  # fmt: skip
        for code in ("onset", "door_in", "decision"):
            if code in times:
                node(code, times[code], activated, who, sender)
        for code in ("imaging", "first_contact", "ecg"):
            if code in times:
                node(code, times[code], activated + _m(rng.uniform(0.5, 3)), who, sender)

        offered = activated
        accepted_at: dt.datetime | None = None
        receiver = self.coordinator(route.destinations[0], protocol)
        for rank, (code, outcome_of) in enumerate(zip(route.destinations, plan, strict=False), start=1):
            eta, basis = (first_eta, first_basis) if rank == 1 else reg.eta(route.consortium, route.sender, code)
            to_institution = reg.institutions[code]
            receiver = self.coordinator(code, protocol)
            offer: Row = {
                "institution_id": to_institution.pk, "rank": rank, "eta_minutes": eta, "eta_basis": basis,
                "offered_at": offered, "answer_due_at": offered + OFFER_TIMEOUT, "answered_by_id": None, "reason": "",
            }  # fmt: skip
            d.offers.append(offer)
            referral["to_institution_id"] = to_institution.pk
            case["eta_minutes"] = eta
            if cancelled_before_answer:
                at = offered + _m(rng.uniform(1, 4))
                reason = self.choose(_CANCELS[protocol])
                offer.update(outcome=OfferOutcome.WITHDRAWN, answered_at=at, answered_by_id=who.user_id, reason=reason)
                event(A.CANCEL, at, SENDER, who, reason)
                break
            if outcome_of == OfferOutcome.ACCEPTED:
                at = offered + dt.timedelta(seconds=min(290, max(20, 95 * math.exp(rng.gauss(0, 0.6)))))
                offer.update(outcome=OfferOutcome.ACCEPTED, answered_at=at, answered_by_id=receiver.user_id)
                referral["decided_at"] = accepted_at = at
                answer = {"offer_rank": rank, "answer_seconds": int((at - offered).total_seconds())}
                event(A.ACCEPT, at, RECEIVER, receiver, data=answer)
                break
            data: Row = {"from": code, "to": route.destinations[rank], "rank": rank + 1}
            if outcome_of == OfferOutcome.DECLINED:
                at = offered + _m(rng.uniform(1, 4))
                reason = self.choose(_DECLINES[protocol])
                offer.update(outcome=OfferOutcome.DECLINED, answered_at=at, answered_by_id=receiver.user_id)
                offer["reason"] = reason
                event(A.DECLINE, at, RECEIVER, receiver, reason, data)
            else:
                at = offer["answer_due_at"] + dt.timedelta(seconds=rng.uniform(5, 60))  # the worker's next sweep
                reason = _("No answer from %(institution)s within %(minutes)s minutes.") % {
                    "institution": to_institution.name,
                    "minutes": OFFER_TIMEOUT.seconds // 60,
                }
                offer.update(outcome=OfferOutcome.TIMED_OUT, answered_at=at, reason=reason)
                referral["escalation_level"] = 2
                event(A.FORWARD, at, SYSTEM, self.system, reason, data)
            offered = at
        if accepted_at is None:
            return

        # The patient leaves, travels and arrives; the receiving hospital treats.
        destination = to_institution
        door_out = max(door_in + _m(dido), accepted_at + _m(rng.uniform(8, 15)))
        if cancelled_after_accept:
            event(A.CANCEL, accepted_at + _m(rng.uniform(5, 20)), SENDER, who, _ACCEPTED_CANCEL)
            return
        if protocol == "stemi":
            activation = accepted_at + _m(rng.uniform(1, 4))
            node("cath_lab_activation", activation, activation, receiver, destination)
        if rng.random() < 0.03:  # first entered from memory, corrected from the ambulance log
            wrong = door_out + _m(rng.uniform(6, 15))
            fixed = wrong + _m(rng.uniform(60, 600))
            node("door_out", wrong, wrong + _m(1), who, sender)["superseded_at"] = fixed
            node("door_out", door_out, fixed, who, sender)["note"] = _CORRECTION
        else:
            node("door_out", door_out, door_out + _m(rng.uniform(0, 2)), who, sender)
        travel = float(case["eta_minutes"])
        if travel > 120:  # the estimate from distance is long on the expressway to Hangzhou
            travel *= rng.uniform(0.65, 0.8)
        elif travel < 10:  # across town: loading and traffic
            travel = rng.uniform(9, 16)
        else:
            travel *= math.exp(rng.gauss(-0.03, 0.1))
        arrival = door_out + _m(travel)
        arrived_recorded = arrival + _m(rng.uniform(0, 3))
        node("arrival", arrival, arrived_recorded, receiver, destination)
        referral["arrived_at"] = arrival
        event(A.CHECK_IN, arrived_recorded, RECEIVER, receiver, data={"node": "arrival"})
        clinician = self.staff(destination.code, _RECEIVER_DISCIPLINES[protocol])
        treated: list[dt.datetime] = []

        def treat(code: str, at: dt.datetime) -> None:
            node(code, at, at + _m(rng.uniform(0, 4)), clinician, destination)
            treated.append(at)

        if protocol == "stroke":
            onset = times.get("onset")
            if onset is not None and arrival - onset < dt.timedelta(hours=4) and rng.random() < 0.25:
                treat("needle", arrival + _m(self.interval("stroke.needle", f, low=12)))
            punctured = "lvo" in findings and rng.random() < 0.88
            if punctured:
                puncture = arrival + _m(self.interval("stroke.puncture", f, low=20))
                treat("puncture", puncture)
                grade = self.choose(("2b", "2b", "3", "3", "2c"))
                if rng.random() < 0.85:
                    treat("reperfusion", puncture + _m(min(150, max(12, 40 * math.exp(rng.gauss(0, 0.4))))))
                    treatment = f"急诊机械取栓术，术后mTICI {grade}级再通；抗血小板、强化降脂治疗。"
                else:
                    treatment = "急诊全脑血管造影及取栓，未能再通；强化内科治疗。"
            else:
                treatment = "评估后未行取栓，予抗血小板、强化降脂等内科治疗。"
            outcome = (
                f"急性脑梗死（{vessel}闭塞）" if "lvo" in findings else "急性脑梗死",
                treatment,
                f"NIHSS由{nihss}分降至{max(0, nihss - rng.randint(3, 12))}分，生命体征平稳。",
                "抗血小板、强化降脂；控制血压、血糖；病情稳定后转回当地医院康复治疗。",
            )
        elif protocol == "stemi":
            ready = activation + _m(self.interval("stemi.cath_lab", f, low=8, high=120))
            node("cath_lab_ready", ready, ready + _m(rng.uniform(0, 2)), clinician, destination)
            balloon = arrival + _m(self.interval("stemi.balloon", f, low=25))
            balloon = max(balloon, ready + _m(rng.uniform(5, 15)), arrival + _m(18))
            treat("balloon", balloon)
            outcome = (
                f"急性{wall}ST段抬高型心肌梗死",
                f"急诊PCI，{artery}植入支架1枚，术后TIMI 3级血流。",
                "胸痛缓解，心电图ST段回落超过50%。",
                "双联抗血小板12个月，他汀、β受体阻滞剂；心脏康复；1个月后心内科门诊复查。",
            )
        elif protocol == "trauma":
            treat("ct", arrival + _m(self.interval("trauma.ct", f, low=6)))
            if rng.random() < 0.7:
                treat("surgery", arrival + _m(self.interval("trauma.surgery", f, low=20)))
        elif protocol == "obstetric":
            if rng.random() < 0.7:
                treat("delivery", arrival + _m(self.interval("obstetric.delivery", f, low=8)))
        else:
            treat("nicu_admission", arrival + _m(self.interval("newborn.nicu", f, low=4)))
        started = min(treated) if treated else arrived_recorded + _m(rng.uniform(5, 25))
        event(A.START_TREATMENT, max(started, arrived_recorded + _m(1)), RECEIVER, clinician)

        # The outcome comes back days later, and the sending doctor closes the loop.
        stay = {"stroke": (5, 12), "stemi": (4, 8), "trauma": (8, 20), "obstetric": (3, 7), "newborn": (6, 16)}
        outcome_at = arrival + dt.timedelta(days=rng.uniform(*stay[protocol]))
        outcome_at = min(outcome_at, self.now - _m(rng.uniform(60, 300)))
        back = refer_back and protocol in ("stroke", "stemi", "trauma")
        back_on = outcome_at + dt.timedelta(days=rng.randint(1, 5))
        referral.update(
            outcome_diagnosis=outcome[0], outcome_treatment=outcome[1], outcome_result=outcome[2],
            outcome_recommendations=outcome[3], outcome_at=outcome_at, refer_back=back,
            refer_back_on=back_on.astimezone(CHINA).date() if back else None,
        )  # fmt: skip
        event(A.RETURN_OUTCOME, outcome_at, RECEIVER, clinician)
        closed_at = outcome_at + dt.timedelta(hours=rng.uniform(2, 72))
        if rng.random() < 0.88 and closed_at < self.now - _m(30):
            referral["closed_at"] = closed_at
            event(A.ACKNOWLEDGE, closed_at, SENDER, who)

    # -- writing

    def write(self) -> tuple[int, int, int, int]:
        """Insert the cases; returns the numbers of patients, offers, nodes and events written.

        Plain rows through executemany or COPY (``yilian.demo.referrals._Table``), as the referral
        history is written: ``bulk_create`` builds a model instance per row and compiles every
        value, which made this history alone take over a second. The cases are the exception
        (their JSON fields include empty lists, and they are few): ``bulk_create``.
        """
        drafts = self.drafts
        patients = [d.patient for d in drafts]
        for row, pk in zip(patients, _reserve_ids(Patient, len(patients)), strict=True):
            row["id"] = pk
        _Table(Patient).insert(patients)
        referrals = [d.referral for d in drafts]
        for d, pk in zip(drafts, _reserve_ids(Referral, len(drafts)), strict=True):
            d.referral.update(id=pk, patient_id=d.patient["id"])
        _Table(Referral).insert(referrals)
        cases = GreenCase.objects.bulk_create([GreenCase(referral_id=d.referral["id"], **d.case) for d in drafts])
        # ``created_at`` is stamped with the clock on insert; the history happened when it happened.
        GreenCase.objects.filter(pk__in=[c.pk for c in cases]).update(
            created_at=F("activated_at"), updated_at=F("activated_at")
        )
        offers: list[Row] = []
        nodes: list[Row] = []
        events: list[Row] = []
        for d, case in zip(drafts, cases, strict=True):
            offers.extend({"case_id": case.pk, **row} for row in d.offers)
            nodes.extend({"case_id": case.pk, **row} for row in d.nodes)
            events.extend({"referral_id": d.referral["id"], **row} for row in d.events)
        _Table(GreenOffer, with_id=False).insert(offers)
        _Table(GreenNode, with_id=False).insert(nodes)
        _Table(ReferralEvent, with_id=False).insert(events)
        return len(patients), len(offers), len(nodes), len(events)


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    out, running = [], 0.0
    for w in weights:
        running += w / total
        out.append(running)
    out[-1] = 1.0 + 1e-9
    return out


def _rng(seed: int) -> tuple[random.Random, str]:
    """The history's generator and its marker (the first thing drawn, so it does not depend on ``now``)."""
    rng = random.Random(f"yilian-demo-green:{seed}")
    return rng, _token(rng)


# ----------------------------------------------------------------------------------------
# Set-up: protocols, settings, travel times


def _setup() -> tuple[int, int, int]:
    """Default protocols and settings for every consortium, the alliance's travel times; what was created.

    The protocols through the service (an audit row each); the settings and the matrix as an office
    would have entered and imported them, with one audit row for both."""
    protocols_created = 0
    for consortium in Consortium.objects.order_by("pk"):
        protocols_created += len(green_services.green_protocols_install_defaults(consortium=consortium))
    have = set(GreenSettings.objects.values_list("consortium_id", flat=True))
    missing = [
        GreenSettings(
            consortium=c,
            road_factor=routing.DEFAULT_ROAD_FACTOR,
            average_speed_kmh=routing.DEFAULT_SPEED_KMH,
            offer_timeout_minutes=green_services.DEFAULT_OFFER_TIMEOUT_MINUTES,
        )
        for c in Consortium.objects.exclude(pk__in=have).order_by("pk")
    ]
    GreenSettings.objects.bulk_create(missing)
    settings_created = len(missing)
    neuro = Consortium.objects.filter(code=MATRIX_CONSORTIUM).first()
    travel_created = 0
    if neuro is not None:
        ids = dict(Institution.objects.values_list("code", "pk"))
        present = set(
            TravelTime.objects.filter(consortium=neuro).values_list("from_institution_id", "to_institution_id")
        )
        now = timezone.now()
        rows = []
        for a, b, minutes in TRAVEL_MINUTES:
            if a not in ids or b not in ids:
                continue
            for x, y in ((ids[a], ids[b]), (ids[b], ids[a])):
                if (x, y) not in present:
                    rows.append(
                        TravelTime(consortium=neuro, from_institution_id=x, to_institution_id=y, minutes=minutes,
                                   imported_at=now)
                    )  # fmt: skip
        TravelTime.objects.bulk_create(rows)
        travel_created = len(rows)
    if settings_created or travel_created:
        audit_record(
            actor=None,
            action=AuditAction.CREATE,
            object_type="referrals.greensettings",
            object_repr="demo green-channel settings and travel times",
            changes={"settings": settings_created, "travel_times": travel_created},
        )
    return protocols_created, settings_created, travel_created


# ----------------------------------------------------------------------------------------
# Cases through the services: the story (2018) and the live work (now)


@contextmanager
def _unannounced() -> Iterator[None]:
    """Drop the announcements (live boards, notifications, webhooks) of the steps taken inside,
    which wait for the commit of the enclosing transaction."""
    connection = transaction.get_connection()
    assert connection.in_atomic_block, "only inside a transaction are announcements deferred"
    before = len(connection.run_on_commit)
    yield
    del connection.run_on_commit[before:]


def _id_number(region: str, birth: dt.date, seq: int) -> str:
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")


def _register(actor: User, institution: Institution, at: dt.datetime, **fields: Any) -> Patient:
    patient = patient_services.patient_register(actor=actor, institution=institution, **fields)
    Patient.objects.filter(pk=patient.pk, created_at__gt=at).update(created_at=at, updated_at=at)
    return patient


def _step(case: GreenCase, action: Action, actor: User, at: dt.datetime, **fields: Any) -> None:
    """A step after treatment began (the services take these with the clock; the demo gives the time)."""

    def effect(r: Referral, side: Side) -> dict[str, Any]:
        for name, value in fields.items():
            setattr(r, name, value)
        return {}

    workflow.apply(referral_id=case.referral_id, action=action, actor=actor, effect=effect, at=at)


def _record(case: GreenCase, actor: User, node: str, at: dt.datetime, recorded: dt.datetime | None = None) -> None:
    green_services.green_node_record(actor=actor, case=case, node=node, at=at, now=recorded or at + _m(1))


def _backdate(case: GreenCase) -> None:
    """The referral and its case were created at activation, not when the seed ran."""
    at = case.activated_at
    last = ReferralEvent.objects.filter(referral_id=case.referral_id).order_by("-at").values_list("at", flat=True)[0]
    Referral.objects.filter(pk=case.referral_id).update(created_at=at, updated_at=last)
    GreenCase.objects.filter(pk=case.pk).update(created_at=at, updated_at=last)


def _protocol(consortium: str, code: str) -> GreenProtocol:
    return GreenProtocol.objects.select_related("consortium").get(consortium__code=consortium, code=code)


def story_case() -> GreenCase | None:
    """The Changshan stroke case of 2018, if it is there."""
    return (
        GreenCase.objects.filter(
            activated_at=STORY_ACTIVATED, referral__from_institution__code=STORY_SENDER, note__contains=STORY_PHRASE
        )
        .select_related("referral")
        .first()
    )


def _story() -> int:
    """The seed story, step by step through the services with the clock of 26 November 2018."""
    users = {u.username: u for u in User.objects.filter(username__in=["doctor", "coordinator"])}
    institutions = {i.code: i for i in Institution.objects.filter(code__in=[STORY_SENDER, STORY_DESTINATION])}
    if len(users) < 2 or len(institutions) < 2:
        return 0  # no demo registry to build on
    doctor, coordinator = users["doctor"], users["coordinator"]
    csph, qzph = institutions[STORY_SENDER], institutions[STORY_DESTINATION]

    def at(month: int, day: int, hour: int, minute: int) -> dt.datetime:
        return dt.datetime(2018, month, day, hour, minute, tzinfo=CHINA)

    patient = _register(
        doctor, csph, at(11, 26, 7, 30), name="毛根法", sex=Sex.MALE,
        id_number=_id_number("330822", dt.date(1952, 3, 14), 137), phone="13905701827",
        residence_region=Region.objects.get(code="330822"), address="天马街道金星村45号",
        emergency_contact_name="毛建军", emergency_contact_relation="儿子", emergency_contact_phone="13857068213",
    )  # fmt: skip
    case = green_services.green_activate(
        actor=doctor,
        sender=csph,
        protocol=_protocol(MATRIX_CONSORTIUM, "stroke"),
        patient=green_services.PatientGiven(patient=patient),
        onset_at=STORY_ONSET,
        scores={"nihss": 14},
        imaging_done=True,
        findings=["lvo", "no_bleed"],
        imaging_result="头颅CT未见出血，ASPECTS 9分；CTA示右侧大脑中动脉M1段闭塞",
        note=(
            "66岁男性，常山县人。今晨6:40在公园晨练时突发左侧肢体无力伴言语含糊，家属呼叫120送至我院，"
            "既往高血压病史。本院暂无取栓条件，申请转衢州市人民医院行急诊机械取栓。"
        ),
        destination=qzph,
        door_in_at=at(11, 26, 7, 22),
        now=STORY_ACTIVATED,
    )
    _record(case, doctor, "imaging", at(11, 26, 7, 46), recorded=at(11, 26, 8, 2))
    green_services.green_accept(actor=coordinator, case=case, now=at(11, 26, 8, 3))
    _record(case, doctor, "door_out", at(11, 26, 8, 36))
    _record(case, coordinator, "arrival", at(11, 26, 9, 20))
    _record(case, coordinator, "puncture", at(11, 26, 10, 12))
    _step(case, A.START_TREATMENT, coordinator, at(11, 26, 10, 13))
    _record(case, coordinator, "reperfusion", at(11, 26, 10, 47))
    _step(
        case,
        A.RETURN_OUTCOME,
        coordinator,
        at(12, 6, 16, 0),
        outcome_diagnosis="急性脑梗死（右侧大脑中动脉M1段闭塞）",
        outcome_treatment="急诊机械取栓术（支架取栓1次），术后mTICI 2b级再通；抗血小板、强化降脂治疗。",
        outcome_result="左侧肢体肌力由2级恢复至4级，NIHSS 3分，言语清晰，可搀扶行走。",
        outcome_recommendations="阿司匹林联合氯吡格雷21天后改单药；控制血压；转回常山县人民医院康复治疗。",
        refer_back=True,
        refer_back_on=dt.date(2018, 12, 8),
        outcome_at=at(12, 6, 16, 0),
    )
    _step(case, A.ACKNOWLEDGE, doctor, at(12, 7, 9, 30), closed_at=at(12, 7, 9, 30))
    _backdate(case)
    return 1


def _live(now: dt.datetime) -> int:
    """Work waiting for the personas: an offer counting down, a STEMI on the road, a stroke in treatment."""
    users = {u.username: u for u in User.objects.filter(username__in=["doctor", "coordinator", "kaihua"])}
    institutions = {i.code: i for i in Institution.objects.filter(code__in=["csph", "qzph", "khph"])}
    if len(users) < 3 or len(institutions) < 3:
        return 0
    doctor, coordinator, kaihua = users["doctor"], users["coordinator"], users["kaihua"]
    csph, qzph, khph = institutions["csph"], institutions["qzph"], institutions["khph"]
    changshan, kaihua_county = Region.objects.get(code="330822"), Region.objects.get(code="330824")

    def ago(minutes: float) -> dt.datetime:
        return now - _m(minutes)

    today = timezone.localdate(now)

    def born(age: int) -> dt.date:
        return today.replace(year=today.year - age, month=3, day=9)

    # In treatment at Quzhou People's: arrived 42 minutes ago, groin puncture 9 minutes ago.
    patient = _register(
        doctor, csph, ago(140), name="郑樟根", sex=Sex.MALE, id_number=_id_number("330822", born(74), 153),
        phone="13957011642", residence_region=changshan, address="球川镇上坂村12号",
        emergency_contact_name="郑丽", emergency_contact_relation="女儿", emergency_contact_phone="13705707731",
    )  # fmt: skip
    stroke = _protocol(MATRIX_CONSORTIUM, "stroke")
    treated = green_services.green_activate(
        actor=doctor, sender=csph, protocol=stroke, patient=green_services.PatientGiven(patient=patient),
        onset_at=ago(215), scores={"nihss": 17}, imaging_done=True, findings=["lvo", "no_bleed"],
        imaging_result="头颅CT未见出血，ASPECTS 8分；CTA示左侧颈内动脉末端闭塞",
        note="家属发现右侧肢体无力、不能言语，最后正常时间约3.5小时前。", destination=qzph,
        door_in_at=ago(170), now=ago(138),
    )  # fmt: skip
    _record(treated, doctor, "imaging", ago(150), recorded=ago(137))
    green_services.green_accept(actor=coordinator, case=treated, now=ago(136))
    _record(treated, doctor, "door_out", ago(88))
    _record(treated, coordinator, "arrival", ago(42))
    _record(treated, coordinator, "puncture", ago(9))
    _step(treated, A.START_TREATMENT, coordinator, ago(8))

    # A STEMI from Kaihua, accepted and on the road (door-out 20 minutes ago).
    patient = _register(
        kaihua, khph, ago(50), name="余金水", sex=Sex.MALE, id_number=_id_number("330824", born(58), 171),
        phone="13867012395", residence_region=kaihua_county, address="华埠镇东岸村8号",
        emergency_contact_name="余敏", emergency_contact_relation="儿子", emergency_contact_phone="15857093366",
    )  # fmt: skip
    stemi = green_services.green_activate(
        actor=kaihua, sender=khph, protocol=_protocol("zju2-quzhou", "stemi"),
        patient=green_services.PatientGiven(patient=patient), onset_at=ago(150), scores={"killip": 2},
        findings=["st_elevation"], imaging_result="心电图示V1–V5导联ST段抬高0.4 mV",
        note="持续胸骨后压榨样疼痛2小时伴大汗，已嚼服阿司匹林300 mg、替格瑞洛180 mg。", destination=qzph,
        door_in_at=ago(58), now=ago(46),
    )  # fmt: skip
    _record(stemi, kaihua, "first_contact", ago(70), recorded=ago(45))
    _record(stemi, kaihua, "ecg", ago(66), recorded=ago(45))
    green_services.green_accept(actor=coordinator, case=stemi, now=ago(44))
    _record(stemi, coordinator, "cath_lab_activation", ago(42))
    _record(stemi, kaihua, "door_out", ago(20))

    # A stroke from Changshan offered to Quzhou People's just now: the answer is due in 5 minutes.
    patient = _register(
        doctor, csph, ago(40), name="祝秀英", sex=Sex.FEMALE, id_number=_id_number("330822", born(71), 186),
        phone="13605708249", residence_region=changshan, address="天马街道和平村30号",
        emergency_contact_name="汪强", emergency_contact_relation="儿子", emergency_contact_phone="13967032570",
    )  # fmt: skip
    waiting = green_services.green_activate(
        actor=doctor, sender=csph, protocol=stroke, patient=green_services.PatientGiven(patient=patient),
        onset_at=ago(95), scores={"nihss": 16}, imaging_done=True, findings=["lvo", "no_bleed"],
        imaging_result="头颅CT未见出血，ASPECTS 9分；CTA示右侧大脑中动脉M1段闭塞",
        note="家属发现左侧肢体无力、口角歪斜，最后正常时间约1.5小时前；既往房颤病史。", destination=qzph,
        door_in_at=ago(42), now=now,
    )  # fmt: skip
    _record(waiting, doctor, "imaging", ago(24), recorded=now)
    for case in (treated, stemi, waiting):
        _backdate(case)
    return 3


# ----------------------------------------------------------------------------------------
# Entry point


def seed_green(*, seed: int = 2018, now: dt.datetime | None = None) -> GreenSeedReport:
    """Set the green channel up and write the story, the history and the live work unless they are there."""
    if not Institution.objects.filter(code=STORY_DESTINATION).exists():
        return GreenSeedReport()  # no demo registry to build on
    now = now or timezone.now()
    rng, marker = _rng(seed)
    # The seed tells nobody: notifications and webhooks are for what happens while people use the
    # system (a transfer of 2018 is news to nobody, and the live cases wait on the boards).
    with transaction.atomic(), _unannounced():
        protocols_created, settings_created, travel_created = _setup()
        stories = 0 if story_case() is not None else _story()
        if Referral.objects.filter(status_token=marker).exists():
            return GreenSeedReport(
                protocols=protocols_created, settings=settings_created, travel_times=travel_created, cases=stories,
                patients=stories,
            )  # fmt: skip
        history_user, _made = _history_user()
        generator = _History(registry=_Registry(history_user), rng=rng, marker=marker, now=now)
        generator.history()
        patients, offers, nodes, events = generator.write()
        audit_record(
            actor=None,
            action=AuditAction.CREATE,
            object_type="referrals.greencase",
            object_repr="demo green-channel history",
            changes={"seeded": len(generator.drafts), "patients": patients, "seed": seed},
        )
        live = _live(now)
    return GreenSeedReport(
        protocols=protocols_created,
        settings=settings_created,
        travel_times=travel_created,
        patients=patients + stories + live,
        cases=len(generator.drafts) + stories + live,
        offers=offers,
        nodes=nodes,
        events=events,
    )
