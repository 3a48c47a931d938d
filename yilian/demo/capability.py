# ruff: noqa: E501  (the tables of techniques, ledgers and sessions read best one entry per line)
"""Demo capability building (从"输血"到"造血"), written through ``yilian.capability.services`` as the
people who would do it, so every row is audited and every rule is checked:

- the techniques catalogue (kept by the consortium office): the Quzhou neurosurgery techniques of
  story A, the Bijie techniques of story B, each with an ICD-9-CM-3 style code stem matching the
  demo's work logs and imported operations where those hold the operation;
- ledgers at the host departments of the stationing programmes: the experts' work logs are
  collected into them (``transfer_collect``), cases the logs do not hold are recorded by hand, and
  named local surgeons reach "assists", "supervised" and, once their hospital has granted the
  privilege, "independent"; some techniques are still at "assists" or "supervised";
- regional firsts, whose verdicts are whatever the verification finds in the demo's records: the
  Quzhou-region first of 2018 and the Bijie firsts of 2023 are unverifiable (the imported
  operations start three calendar years before today's), the left-atrial-appendage occlusion of
  the last story year is verified, and a south-west China first for robot-assisted prostatectomy
  is contradicted by an earlier imported operation in Guiyang;
- teaching sessions led by the experts (ward rounds, surgery demonstrations, case discussions,
  lectures, a visiting professor's lecture, the city-wide thrombectomy salon) with their
  attendees recorded by the organisers;
- a master-doctor studio at Quzhou and at Bijie and a backbone-training programme at Bijie, with
  milestones (some on a technique's stage) and assessments, most signed off by the mentor.

Deterministic (fixed story dates, a seeded generator for attendees and scores; nothing dated after
``today`` is written) and written once: if the first ledger exists the story is left alone.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, fields

from django.db.models import Model
from django.utils import timezone

from yilian.capability import services
from yilian.capability.models import (
    Assessment,
    AssessmentResult,
    FirstClaim,
    LocalRole,
    MacroRegion,
    Mentee,
    Milestone,
    Stage,
    SurgicalPrivilege,
    TeachingActivity,
    TeachingAttendance,
    TeachingKind,
    Technique,
    TrainingKind,
    TrainingProgramme,
    Transfer,
    TransferCase,
    TransferStep,
    stage_rank,
)
from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Role
from yilian.demo.activity import demo_years
from yilian.dispatch.models import Assignment, HostRole, Programme
from yilian.registry import services as registry_services
from yilian.registry.models import (
    Department,
    Discipline,
    Institution,
    Membership,
    Practitioner,
    ProfessionalTitle,
    Region,
    User,
)

D = Discipline
T = ProfessionalTitle
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

# ----------------------------------------------------------------------------------------
# The catalogue: (code, name zh, name en, operation-code stem, level, restricted, specialty)

TECHNIQUES: tuple[tuple[str, str, str, str, int, bool, str], ...] = (
    ("neuro-endoscope-microscope-deep-lesion", "神经内镜联合显微镜深部脑病损切除术（术中快速冰冻病理）", "Combined neuro-endoscope and microscope resection of a deep brain lesion with intra-operative frozen section", "01.59", 4, False, D.NEUROSURGERY),
    ("endoscopic-ich-evacuation", "神经内镜下脑内血肿清除术", "Endoscopic evacuation of intracerebral haemorrhage", "01.39", 4, False, D.NEUROSURGERY),
    ("mechanical-thrombectomy", "急性缺血性卒中血管内机械取栓术", "Endovascular mechanical thrombectomy for acute ischaemic stroke", "39.74", 4, False, D.NEUROSURGERY),
    ("aneurysm-clipping", "颅内动脉瘤夹闭术", "Microsurgical clipping of intracranial aneurysm", "39.51", 4, False, D.NEUROSURGERY),
    ("robot-phpd", "机器人辅助保留胰头十二指肠切除术", "Robot-assisted pancreas-head-preserving duodenectomy", "45.62", 4, True, D.HEPATOBILIARY_SURGERY),
    ("robot-hepatectomy", "机器人辅助肝部分切除术", "Robot-assisted partial hepatectomy", "50.22", 4, True, D.HEPATOBILIARY_SURGERY),
    ("mis-tlif", "微创经椎间孔腰椎椎间融合术（MIS-TLIF）", "Minimally invasive transforaminal lumbar interbody fusion (MIS-TLIF)", "81.08", 4, False, D.ORTHOPEDICS),
    ("scoliosis-correction", "脊柱侧弯后路矫形融合术", "Posterior correction and fusion of scoliosis", "81.05", 4, False, D.ORTHOPEDICS),
    ("robot-radical-prostatectomy", "机器人辅助腹腔镜根治性前列腺切除术", "Robot-assisted laparoscopic radical prostatectomy", "60.5", 4, True, D.UROLOGY),
    ("plasma-turp", "经尿道前列腺等离子电切术", "Transurethral plasma resection of the prostate", "60.29", 3, False, D.UROLOGY),
    ("laa-occlusion", "经皮左心耳封堵术", "Percutaneous left atrial appendage occlusion", "37.90", 4, False, D.CARDIOLOGY),
    ("ecmo", "体外膜肺氧合（ECMO）", "Extracorporeal membrane oxygenation (ECMO)", "39.65", 4, False, D.CRITICAL_CARE),
)  # fmt: skip
MARKER = "neuro-endoscope-microscope-deep-lesion"  # its Quzhou ledger marks a seeded story

# ----------------------------------------------------------------------------------------
# People. Local surgeons already in the demo (personas and the consult demo's staff, by licence)
# and a few more the hospitals' teams need (created here).

CHEN = "113301020180901"  # 陈志远, the Quzhou neurosurgery business director
XU = "113301050051108"  # 徐立峰, the robot-assisted hepatobiliary surgeon at Bijie
LI_HAIYAN = "115205020090607"  # the Bijie orthopaedic surgeon persona, a backbone trainee
ZHU_HAITAO = "113308028100031"  # qzph neurosurgery (consult demo)
ZHENG_WENJIE = "113308028100032"  # qzph neurosurgery (consult demo)
MAO_ZHIGANG = "113308248100023"  # khph neurosurgery (consult demo)
CHENG_HONGMEI = "113308028100041"  # qz2ph neurology (consult demo)
XU_CHUNHUA = "113308240140822"  # khph neurology persona
YANG_GUANGHUI = "115205028100061"  # bjfph cardiology (consult demo)
LUO_ZHENHUA = "115205028100062"  # bjfph hepatobiliary surgery (consult demo)
LONG_MEILING = "115205028100063"  # bjfph neurology (consult demo)


def _licence(region: str, serial: int) -> str:
    # 15 digits: physician (1), category 1, the institution's region, a serial reserved for this demo.
    return f"11{region}{8_200_000 + serial:07d}"


@dataclass(frozen=True)
class _Local:
    name_zh: str
    name_en: str
    title: ProfessionalTitle
    institution: str
    department: str
    licence: str
    specialties: str


LOCALS: tuple[_Local, ...] = (
    _Local("徐晨光", "Xu Chenguang", T.ATTENDING_PHYSICIAN, "qzph", "神经外科", _licence("330802", 1), "神经内镜、脑出血微创手术"),
    _Local("毛一凡", "Mao Yifan", T.RESIDENT_PHYSICIAN, "qzph", "神经外科", _licence("330802", 2), "颅脑创伤、神经重症"),
    _Local("龙志强", "Long Zhiqiang", T.ATTENDING_PHYSICIAN, "bjfph", "肝胆胰外科", _licence("520502", 11), "肝胆胰微创手术"),
    _Local("吴晓丽", "Wu Xiaoli", T.ATTENDING_PHYSICIAN, "bjfph", "肝胆胰外科", _licence("520502", 12), "胆道外科、腹腔镜手术"),
    _Local("安思远", "An Siyuan", T.ATTENDING_PHYSICIAN, "bjfph", "骨科", _licence("520502", 13), "脊柱外科、脊柱微创"),
    _Local("禄文军", "Lu Wenjun", T.ATTENDING_PHYSICIAN, "bjfph", "骨科", _licence("520502", 14), "脊柱畸形矫形"),
    _Local("杨明杰", "Yang Mingjie", T.RESIDENT_PHYSICIAN, "bjfph", "骨科", _licence("520502", 15), "创伤骨科"),
    _Local("陈永福", "Chen Yongfu", T.ASSOCIATE_CHIEF_PHYSICIAN, "bjfph", "泌尿外科", _licence("520502", 16), "泌尿系肿瘤、腹腔镜手术"),
)  # fmt: skip
_BY_NAME = {p.name_zh: p.licence for p in LOCALS}

# The Bijie backbone-training mentor is the current round's orthopaedic discipline leader; the
# dispatch demo draws his name, so his account is made here (it cannot log in by password, like
# the consult demo's experts' accounts) and linked to him.
MENTOR_ACCOUNT = "demo-zjpph-ortho-1"

# Who acts (demo personas, see ``yilian.demo.seed.DEMO_USERS``).
OFFICE, EXPERT, QZ_ADMIN, BJ_ADMIN, BJ_EXPERT = "office", "expert", "hospadmin", "bjadmin", "bjexpert"
ADMIN_OF = {"qzph": QZ_ADMIN, "khph": OFFICE, "bjfph": BJ_ADMIN}  # who grants privileges / claims firsts

# ----------------------------------------------------------------------------------------
# Ledgers


@dataclass(frozen=True)
class _Track:
    """One local surgeon's way through a technique: the planned day of each stage (a collected case
    of that part, on or after the previous step, is used instead when the work logs hold one) and
    the day the hospital grants the privilege (before independence)."""

    surgeon: str  # licence
    assists: dt.date | None = None
    supervised: dt.date | None = None
    privilege: dt.date | None = None
    independent: dt.date | None = None


@dataclass(frozen=True)
class _Ledger:
    host: str
    department: str
    technique: str
    expert: str | tuple[str, str, HostRole]  # licence, or (programme, host department, role)
    programme: str
    actor: str
    introduced: dt.date  # the expert's first case, when the work logs hold none earlier
    tracks: tuple[_Track, ...]
    collect: bool = True
    note: str = ""


def _d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


_BJ1_ORTHO = ("zjpph-bjfph-1", "骨科", HostRole.DISCIPLINE_LEADER)
_BJ2_ORTHO = ("zjpph-bjfph-2", "骨科", HostRole.DISCIPLINE_LEADER)


def _ledgers(last_story_year: int) -> tuple[_Ledger, ...]:
    """The ledgers. The left-atrial-appendage occlusion is dated in the last story year (the last
    year of imported operations) so that its first can be verified against two full years."""
    laao = dt.date(last_story_year, 6, 12)
    return (
        _Ledger("qzph", "神经外科", "neuro-endoscope-microscope-deep-lesion", CHEN, "zju2-qzph-1", EXPERT, _d("2018-09-06"), (
            _Track(ZHU_HAITAO, _d("2018-11-14"), _d("2019-06-19"), _d("2020-01-06"), _d("2020-03-11")),
            _Track(ZHENG_WENJIE, _d("2019-04-10"), _d("2020-09-16")),
            _Track(_BY_NAME["徐晨光"], _d("2020-05-20")),
        ), note="衢州地区首例：脑出血合并0.5 cm深部占位，内镜+显微镜联合手术，术中快速冰冻病理"),
        _Ledger("qzph", "神经外科", "endoscopic-ich-evacuation", CHEN, "zju2-qzph-1", EXPERT, _d("2018-09-10"), (
            _Track(ZHENG_WENJIE, _d("2018-12-05"), _d("2019-05-15"), _d("2019-12-02"), _d("2020-01-08")),
            _Track(_BY_NAME["毛一凡"], _d("2019-10-09"), _d("2020-07-22")),
        )),
        _Ledger("qzph", "神经外科", "mechanical-thrombectomy", CHEN, "zju2-qzph-2", EXPERT, _d("2025-09-11"), (
            _Track(ZHENG_WENJIE, _d("2025-10-16"), _d("2026-01-22")),
            _Track(_BY_NAME["徐晨光"], _d("2026-03-12")),
        ), collect=False, note="市神经外科工作组：6小时黄金窗内转运取栓（常山县患者）"),
        _Ledger("khph", "神经外科", "endoscopic-ich-evacuation", ("zju2-khph-1", "神经外科", HostRole.DISCIPLINE_LEADER), "zju2-khph-1", OFFICE, _d("2025-11-10"), (
            _Track(MAO_ZHIGANG, _d("2025-12-08")),
        ), note="县域脑出血患者不出县"),
        _Ledger("bjfph", "肝胆胰外科", "robot-phpd", XU, "zjpph-bjfph-1", BJ_EXPERT, _d("2023-01-05"), (
            _Track(LUO_ZHENHUA, _d("2023-03-15"), _d("2023-11-22"), _d("2024-06-03"), _d("2024-07-10")),
            _Track(_BY_NAME["龙志强"], _d("2024-03-20"), _d("2024-12-11")),
        ), note="55岁十二指肠肿瘤患者，机器人辅助保留胰头十二指肠切除，术后7天出院"),
        _Ledger("bjfph", "肝胆胰外科", "robot-hepatectomy", XU, "zjpph-bjfph-1", BJ_EXPERT, _d("2023-01-09"), (
            _Track(LUO_ZHENHUA, _d("2023-05-10"), _d("2024-01-17")),
            _Track(_BY_NAME["吴晓丽"], _d("2024-09-04")),
        )),
        _Ledger("bjfph", "骨科", "mis-tlif", _BJ1_ORTHO, "zjpph-bjfph-1", BJ_ADMIN, _d("2023-01-04"), (
            _Track(LI_HAIYAN, _d("2023-02-15"), _d("2023-08-16"), _d("2024-03-04"), _d("2024-04-17")),
            _Track(_BY_NAME["安思远"], _d("2023-09-13"), _d("2024-08-21"), _d("2025-04-01"), _d("2025-05-14")),
            _Track(_BY_NAME["禄文军"], _d("2024-10-09")),
        )),
        _Ledger("bjfph", "骨科", "scoliosis-correction", _BJ1_ORTHO, "zjpph-bjfph-1", BJ_ADMIN, _d("2023-01-03"), (
            _Track(LI_HAIYAN, _d("2023-03-22"), _d("2023-12-06"), _d("2025-01-06"), _d("2025-02-19")),
            _Track(_BY_NAME["禄文军"], _d("2024-05-08"), _d("2025-06-25")),
        )),
        _Ledger("bjfph", "心血管内科", "laa-occlusion", ("zjpph-bjfph-2", "心血管内科", HostRole.CENTRE_CHIEF), "zjpph-bjfph-2", BJ_ADMIN, laao, (
            _Track(YANG_GUANGHUI, laao + dt.timedelta(days=97)),
        ), collect=False),
        _Ledger("bjfph", "泌尿外科", "robot-radical-prostatectomy", ("zjpph-bjfph-1", "泌尿外科", HostRole.DISCIPLINE_LEADER), "zjpph-bjfph-1", BJ_ADMIN, _d("2024-05-20"), (
            _Track(_BY_NAME["陈永福"], _d("2024-08-14")),
        )),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------
# Firsts: (technique, host, region code or "", macro-region or "", description)

FIRSTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("neuro-endoscope-microscope-deep-lesion", "qzph", "330800", "", "衢州地区首例神经内镜联合显微镜深部脑病损切除术（术中快速冰冻病理）：附近乡镇脑出血患者，脑深部0.5 cm占位。"),
    ("robot-phpd", "bjfph", "520000", "", "贵州省首例机器人辅助保留胰头十二指肠切除术。"),
    ("robot-phpd", "bjfph", "", MacroRegion.SOUTHWEST, "西南地区首例机器人辅助保留胰头十二指肠切除术。"),
    ("scoliosis-correction", "bjfph", "520000", "", "毕节地区首例脊柱侧弯后路矫形融合术，申报贵州省首例。"),
    ("laa-occlusion", "bjfph", "520000", "", "贵州省首例零造影剂经皮左心耳封堵术（心血管病诊疗中心）。"),
    ("robot-radical-prostatectomy", "bjfph", "", MacroRegion.SOUTHWEST, "申报西南地区首例机器人辅助腹腔镜根治性前列腺切除术。"),
)  # fmt: skip

# ----------------------------------------------------------------------------------------
# Teaching: (host, kind, topic, day, start hour, hours, leader, actor, departments attending,
# other attendees, training programme key)

K = TeachingKind
_NEURO = ("神经外科", "神经内科", "急诊医学科", "重症医学科")


@dataclass(frozen=True)
class _Session:
    host: str
    kind: TeachingKind
    topic: str
    day: dt.date
    hours: float
    leader: str | tuple[str, str, HostRole]
    actor: str
    departments: tuple[str, ...]
    start: int = 14
    others: int = 0
    places: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # licences of attendees from elsewhere
    training: str = ""
    programme: str = ""


_BJ1_HPB = XU
_BJ2_CARDIO = ("zjpph-bjfph-2", "心血管内科", HostRole.CENTRE_CHIEF)


def _sessions(last_story_year: int) -> tuple[_Session, ...]:
    q, b = "zju2-qzph-1", "zjpph-bjfph-1"
    return (
        # Story A: the business director's teaching at Quzhou People's Hospital, 2018-2020.
        _Session("qzph", K.WARD_ROUND, "神经外科教学查房：脑室内肿瘤的术前评估", _d("2018-09-13"), 2, CHEN, EXPERT, ("神经外科",), 9, programme=q),
        _Session("qzph", K.SURGERY_DEMONSTRATION, "手术示范：神经内镜联合显微镜深部病变切除（术中快速冰冻病理）", _d("2018-10-11"), 4, CHEN, EXPERT, ("神经外科", "病理科", "麻醉科"), 8, programme=q),
        _Session("qzph", K.CASE_DISCUSSION, "疑难病例讨论：脑出血合并脑深部0.5 cm占位", _d("2018-10-25"), 1.5, CHEN, EXPERT, ("神经外科", "神经内科", "放射科", "病理科"), 16, programme=q),
        _Session("qzph", K.LECTURE, "学术讲座：颅底与脑室肿瘤显微外科进展", _d("2018-11-22"), 1.5, CHEN, EXPERT, ("神经外科", "神经内科", "肿瘤内科"), 18, others=12, programme=q),
        _Session("qzph", K.COURSE, "衢州市急性缺血性卒中规范化取栓学术沙龙（全市神经内科、神经外科、急诊科医生）", _d("2018-12-15"), 4, CHEN, OFFICE, _NEURO, 13, others=136, places=("qz2ph", "khph"), extra=(CHENG_HONGMEI, MAO_ZHIGANG, XU_CHUNHUA), programme=q),
        _Session("qzph", K.CONSULTATION, "教学会诊：78岁、40 kg患者侧脑室7.3 cm肿瘤的手术决策", _d("2019-01-17"), 2, CHEN, EXPERT, ("神经外科", "麻醉科", "重症医学科"), 10, programme=q),
        _Session("qzph", K.VISITING_LECTURE, "外籍教授学术讲座：脑室内肿瘤的内镜与显微手术策略（美国匹兹堡大学神经外科 Prof. J. Miller）", _d("2019-03-21"), 2, CHEN, EXPERT, ("神经外科", "神经内科", "放射科"), 15, others=64, programme=q),
        _Session("qzph", K.SURGERY_DEMONSTRATION, "手术示范：神经内镜下脑内血肿清除术", _d("2019-04-18"), 3, CHEN, EXPERT, ("神经外科", "麻醉科"), 8, training="qz-studio", programme=q),
        _Session("qzph", K.WARD_ROUND, "教学查房：高血压脑出血的分型与手术指征", _d("2019-06-13"), 2, CHEN, EXPERT, ("神经外科", "重症医学科"), 9, training="qz-studio", programme=q),
        _Session("qzph", K.CASE_DISCUSSION, "病例讨论：颅内动脉瘤夹闭与介入的选择", _d("2019-09-19"), 1.5, CHEN, EXPERT, ("神经外科", "神经内科", "放射科"), 16, training="qz-studio", programme=q),
        _Session("qzph", K.LECTURE, "神经外科围手术期质量与安全管理", _d("2019-11-21"), 1.5, CHEN, EXPERT, ("神经外科", "麻醉科", "重症医学科"), 18, programme=q),
        _Session("qzph", K.WARD_ROUND, "教学查房：神经内镜术后并发症的识别", _d("2020-05-14"), 2, CHEN, EXPERT, ("神经外科",), 9, training="qz-studio", programme=q),
        _Session("qzph", K.SURGERY_DEMONSTRATION, "手术示范：显微镜下颅内动脉瘤夹闭术", _d("2020-08-20"), 4, CHEN, EXPERT, ("神经外科", "麻醉科"), 8, training="qz-studio", programme=q),
        # The current round: a stroke centre, thrombectomy done by local doctors.
        _Session("qzph", K.LECTURE, "取栓流程与门-股穿刺时间管理", _d("2025-10-09"), 1.5, CHEN, EXPERT, _NEURO, 16, programme="zju2-qzph-2"),
        _Session("qzph", K.SURGERY_DEMONSTRATION, "手术示范：急性缺血性卒中血管内机械取栓", _d("2026-01-15"), 3, CHEN, EXPERT, ("神经外科", "神经内科", "急诊医学科"), 9, programme="zju2-qzph-2"),
        _Session("qzph", K.CASE_DISCUSSION, "病例讨论：常山县晨练突发卒中患者6小时内转运取栓", _d("2026-04-16"), 1.5, CHEN, EXPERT, _NEURO, 16, programme="zju2-qzph-2"),
        _Session("khph", K.WARD_ROUND, "县域脑出血患者的微创手术指征", _d("2025-11-20"), 2, ("zju2-khph-1", "神经外科", HostRole.DISCIPLINE_LEADER), OFFICE, ("神经外科", "神经内科", "急诊医学科"), 9, programme="zju2-khph-1"),
        _Session("khph", K.LECTURE, "神经内镜下血肿清除术要点", _d("2026-02-26"), 1.5, ("zju2-khph-1", "神经外科", HostRole.DISCIPLINE_LEADER), OFFICE, ("神经外科", "神经内科"), 15, programme="zju2-khph-1"),
        # Story B: the stationed team at the Bijie centre, 2023 onwards.
        _Session("bjfph", K.SURGERY_DEMONSTRATION, "手术示范：机器人辅助保留胰头十二指肠切除术", _d("2023-02-16"), 4, _BJ1_HPB, BJ_EXPERT, ("肝胆胰外科", "普外科", "麻醉科"), 8, programme=b),
        _Session("bjfph", K.LECTURE, "达芬奇机器人手术系统与围手术期管理", _d("2023-03-09"), 1.5, _BJ1_HPB, BJ_EXPERT, ("肝胆胰外科", "普外科", "胃肠外科", "泌尿外科"), 18, others=20, training="bj-studio", programme=b),
        _Session("bjfph", K.LECTURE, "MIS-TLIF 技术要点与学习曲线", _d("2023-03-02"), 1.5, _BJ1_ORTHO, BJ_ADMIN, ("骨科", "麻醉科"), 18, programme=b),
        _Session("bjfph", K.WARD_ROUND, "教学查房：胰头及壶腹周围肿瘤的术式选择", _d("2023-04-20"), 2, _BJ1_HPB, BJ_EXPERT, ("肝胆胰外科",), 9, training="bj-studio", programme=b),
        _Session("bjfph", K.CASE_DISCUSSION, "病例讨论：55岁十二指肠肿瘤患者机器人术后7天出院", _d("2023-05-25"), 1.5, _BJ1_HPB, BJ_EXPERT, ("肝胆胰外科", "普外科", "病理科", "放射科"), 16, training="bj-studio", programme=b),
        _Session("bjfph", K.SURGERY_DEMONSTRATION, "手术示范：微创经椎间孔腰椎椎间融合术（MIS-TLIF）", _d("2023-06-15"), 4, _BJ1_ORTHO, BJ_ADMIN, ("骨科", "麻醉科"), 8, programme=b),
        _Session("bjfph", K.SURGERY_DEMONSTRATION, "手术示范：脊柱侧弯后路矫形融合术", _d("2023-10-19"), 5, _BJ1_ORTHO, BJ_ADMIN, ("骨科", "麻醉科", "重症医学科"), 8, programme=b),
        _Session("bjfph", K.WARD_ROUND, "教学查房：机器人肝切除术后管理", _d("2023-11-16"), 2, _BJ1_HPB, BJ_EXPERT, ("肝胆胰外科", "重症医学科"), 9, training="bj-studio", programme=b),
        _Session("bjfph", K.CASE_DISCUSSION, "病例讨论：退变性腰椎侧凸的手术策略", _d("2024-01-18"), 1.5, _BJ1_ORTHO, BJ_ADMIN, ("骨科", "放射科"), 16, programme=b),
        _Session("bjfph", K.LECTURE, "机器人手术二十例回顾：技术推广与质量控制", _d("2024-06-20"), 1.5, _BJ1_HPB, BJ_EXPERT, ("肝胆胰外科", "普外科", "胃肠外科", "泌尿外科", "医务部"), 18, others=35, training="bj-studio", programme=b),
        _Session("bjfph", K.LECTURE, "经皮左心耳封堵术：适应证与围手术期管理", dt.date(last_story_year, 5, 22), 1.5, _BJ2_CARDIO, BJ_ADMIN, ("心血管内科", "神经内科", "急诊医学科"), 18, programme="zjpph-bjfph-2"),
        _Session("bjfph", K.WARD_ROUND, "骨干培育：骨科教学查房（学员主持、导师点评）", _d("2025-04-10"), 2, _BJ2_ORTHO, BJ_ADMIN, ("骨科",), 9, training="bj-backbone", programme="zjpph-bjfph-2"),
        _Session("bjfph", K.CASE_DISCUSSION, "骨干培育：脊柱手术并发症病例讨论", _d("2025-07-17"), 1.5, _BJ2_ORTHO, BJ_ADMIN, ("骨科", "麻醉科"), 16, training="bj-backbone", programme="zjpph-bjfph-2"),
        _Session("bjfph", K.SURGERY_DEMONSTRATION, "骨干培育：学员主刀、导师指导的MIS-TLIF手术", _d("2025-10-16"), 4, _BJ2_ORTHO, BJ_ADMIN, ("骨科",), 8, training="bj-backbone", programme="zjpph-bjfph-2"),
        _Session("bjfph", K.LECTURE, "骨干培育：脊柱外科新技术申报与临床研究设计", _d("2026-03-12"), 2, _BJ2_ORTHO, BJ_ADMIN, ("骨科", "医务部"), 18, training="bj-backbone", programme="zjpph-bjfph-2"),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------
# Training programmes


@dataclass(frozen=True)
class _Milestone:
    title_zh: str
    title_en: str
    due_months: int
    technique: str = ""
    stage: Stage | None = None


@dataclass(frozen=True)
class _Training:
    key: str
    kind: TrainingKind
    name_zh: str
    name_en: str
    host: str
    mentor: str | tuple[str, str, HostRole]
    mentor_user: str
    actor: str
    stationing: str
    starts_on: dt.date
    goals: str
    mentees: tuple[tuple[str, dt.date], ...]
    milestones: tuple[_Milestone, ...]


TRAININGS: tuple[_Training, ...] = (
    _Training(
        "qz-studio", TrainingKind.STUDIO, "陈志远名医工作室（神经外科）", "Chen Zhiyuan master-doctor studio (neurosurgery)",
        "qzph", CHEN, EXPERT, QZ_ADMIN, "zju2-qzph-1", _d("2019-01-07"),
        "带出一支能独立开展神经内镜与显微镜联合手术的本地团队。",
        ((ZHU_HAITAO, _d("2019-01-07")), (ZHENG_WENJIE, _d("2019-01-07")), (_BY_NAME["徐晨光"], _d("2019-09-02")), (_BY_NAME["毛一凡"], _d("2019-09-02"))),
        (
            _Milestone("独立主持神经外科教学查房", "Leads a neurosurgery teaching ward round", 6),
            _Milestone("神经内镜联合显微镜手术：上级指导下主刀", "Combined endoscope-microscope surgery under supervision", 12, "neuro-endoscope-microscope-deep-lesion", Stage.SUPERVISED),
            _Milestone("神经内镜下脑内血肿清除术：独立完成", "Endoscopic haematoma evacuation on one's own", 18, "endoscopic-ich-evacuation", Stage.INDEPENDENT),
            _Milestone("在市级学术会议作专题报告", "Presents at a city-level academic meeting", 24),
        ),
    ),
    _Training(
        "bj-studio", TrainingKind.STUDIO, "徐立峰名医工作室（机器人肝胆胰外科）", "Xu Lifeng master-doctor studio (robot-assisted HPB surgery)",
        "bjfph", XU, BJ_EXPERT, BJ_ADMIN, "zjpph-bjfph-1", _d("2023-03-01"),
        "本地医生掌握机器人辅助肝胆胰手术，实现“走了能留下”。",
        ((LUO_ZHENHUA, _d("2023-03-01")), (_BY_NAME["龙志强"], _d("2023-03-01")), (_BY_NAME["吴晓丽"], _d("2023-09-01"))),
        (
            _Milestone("机器人辅助保留胰头十二指肠切除术：担任一助", "Robot-assisted PHPD: first assistant", 6, "robot-phpd", Stage.ASSISTS),
            _Milestone("通过机器人手术围手术期管理考核", "Passes the robot-surgery peri-operative management assessment", 9),
            _Milestone("机器人辅助肝部分切除术：上级指导下主刀", "Robot-assisted hepatectomy under supervision", 12, "robot-hepatectomy", Stage.SUPERVISED),
            _Milestone("机器人辅助保留胰头十二指肠切除术：独立完成", "Robot-assisted PHPD on one's own", 18, "robot-phpd", Stage.INDEPENDENT),
        ),
    ),
    _Training(
        "bj-backbone", TrainingKind.BACKBONE, "骨科骨干培育项目", "Orthopaedics backbone training",
        "bjfph", _BJ2_ORTHO, MENTOR_ACCOUNT, BJ_ADMIN, "zjpph-bjfph-2", _d("2025-03-17"),
        "培养能独立开展微创腰椎融合、脊柱侧弯矫形的本地骨干。",
        ((LI_HAIYAN, _d("2025-03-17")), (_BY_NAME["安思远"], _d("2025-03-17")), (_BY_NAME["禄文军"], _d("2025-03-17")), (_BY_NAME["杨明杰"], _d("2025-03-17"))),
        (
            _Milestone("独立主持骨科教学查房", "Leads an orthopaedic teaching ward round", 3),
            _Milestone("MIS-TLIF：独立完成", "MIS-TLIF on one's own", 6, "mis-tlif", Stage.INDEPENDENT),
            _Milestone("脊柱侧弯后路矫形融合术：上级指导下主刀", "Scoliosis correction under supervision", 12, "scoliosis-correction", Stage.SUPERVISED),
            _Milestone("完成一项院内新技术新项目申报", "Files a new-technique application with the hospital", 18),
        ),
    ),
)  # fmt: skip


# ----------------------------------------------------------------------------------------
# Report


@dataclass
class CapabilityReport:
    """What one run created (zero everywhere on a re-run)."""

    users: int = 0
    memberships: int = 0
    practitioners: int = 0
    techniques: int = 0
    ledgers: int = 0
    ledger_cases: int = 0
    privileges: int = 0
    firsts: int = 0
    teaching_activities: int = 0
    attendances: int = 0
    training_programmes: int = 0
    assessments: int = 0

    @property
    def total(self) -> int:
        return sum(int(getattr(self, f.name)) for f in fields(self))


_COUNTED: dict[str, type[Model]] = {
    "techniques": Technique,
    "ledgers": Transfer,
    "ledger_cases": TransferCase,
    "privileges": SurgicalPrivilege,
    "firsts": FirstClaim,
    "teaching_activities": TeachingActivity,
    "attendances": TeachingAttendance,
    "training_programmes": TrainingProgramme,
    "assessments": Assessment,
}


# ----------------------------------------------------------------------------------------
# The writer


class _Writer:
    def __init__(self, seed: int, today: dt.date) -> None:
        self.rng = random.Random(f"yilian-demo-capability:{seed}")
        self.today = today
        self.report = CapabilityReport()
        self.institutions = {i.code: i for i in Institution.objects.select_related("region")}
        self.users = {
            u.username: u for u in User.objects.filter(username__in=[OFFICE, EXPERT, QZ_ADMIN, BJ_ADMIN, BJ_EXPERT])
        }
        self.programmes = {p.code: p for p in Programme.objects.all()}
        self.techniques: dict[str, Technique] = {}
        self.transfers: dict[tuple[str, str], Transfer] = {}
        self.trainings: dict[str, TrainingProgramme] = {}

    def ready(self) -> bool:
        """The registry, personas and stationing programmes this story builds on are there."""
        needed_programmes = {"zju2-qzph-1", "zju2-qzph-2", "zju2-khph-1", "zjpph-bjfph-1", "zjpph-bjfph-2"}
        return (
            {"qzph", "khph", "bjfph"} <= set(self.institutions)
            and len(self.users) == 5
            and needed_programmes <= set(self.programmes)
        )

    # -- lookups -----------------------------------------------------------------------
    def person(self, key: str | tuple[str, str, HostRole]) -> Practitioner:
        if isinstance(key, str):
            return Practitioner.objects.select_related("institution").get(licence_number=key)
        programme, department, role = key
        assignment = (
            Assignment.objects.filter(programme__code=programme, host_department__name_zh=department, role=role)
            .select_related("practitioner__institution")
            .order_by("pk")
            .first()
        )
        assert assignment is not None, key
        return assignment.practitioner

    def department(self, host: str, name_zh: str) -> Department:
        return Department.objects.get(institution=self.institutions[host], name_zh=name_zh)

    def past(self, day: dt.date | None) -> bool:
        return day is not None and day <= self.today

    # -- catalogue and people ----------------------------------------------------------
    def catalogue(self) -> None:
        existing = {t.code: t for t in Technique.objects.filter(code__in=[row[0] for row in TECHNIQUES])}
        for code, name_zh, name_en, stem, level, restricted, discipline in TECHNIQUES:
            if code not in existing:
                existing[code] = services.technique_create(
                    actor=self.users[OFFICE],
                    code=code,
                    name_zh=name_zh,
                    name_en=name_en,
                    operation_code=stem,
                    level=level,
                    restricted=restricted,
                    discipline=discipline,
                )
        self.techniques = existing

    def locals(self) -> None:
        for spec in LOCALS:
            if Practitioner.objects.filter(licence_number=spec.licence).exists():
                continue
            registry_services.practitioner_create(
                actor=None,
                name_zh=spec.name_zh,
                name_en=spec.name_en,
                title=spec.title,
                institution=self.institutions[spec.institution],
                department=self.department(spec.institution, spec.department),
                licence_number=spec.licence,
                specialties=spec.specialties,
            )
            self.report.practitioners += 1

    def mentor_account(self) -> None:
        """An account for the Bijie backbone-training mentor, linked to him (see ``MENTOR_ACCOUNT``)."""
        mentor = self.person(_BJ2_ORTHO)
        account = User.objects.filter(username=MENTOR_ACCOUNT).first()
        if account is None:
            account = registry_services.user_create(
                actor=None, username=MENTOR_ACCOUNT, password=None, display_name=mentor.name_zh
            )
            self.report.users += 1
        if not Membership.objects.filter(user=account, role=Role.STATIONED_EXPERT).exists():
            registry_services.membership_grant(
                actor=None, user=account, role=Role.STATIONED_EXPERT, institution=mentor.institution
            )
            self.report.memberships += 1
        if mentor.user_id is None and not Practitioner.objects.filter(user=account).exists():
            # The registry has no service that links an existing practitioner to an account; the
            # link is written here with its audit row, as the services do.
            mentor.user = account
            mentor.save(update_fields=["user", "updated_at"])
            audit_record(actor=None, action=AuditAction.UPDATE, obj=mentor, changes={"user": MENTOR_ACCOUNT})
        self.users[MENTOR_ACCOUNT] = account

    # -- ledgers -----------------------------------------------------------------------
    def ledger(self, spec: _Ledger) -> None:
        actor = self.users[spec.actor]
        department = self.department(spec.host, spec.department)
        technique = self.techniques[spec.technique]
        transfer = services.transfer_open(
            actor=actor,
            department=department,
            technique=technique,
            expert=self.person(spec.expert),
            programme=self.programmes[spec.programme],
            note=spec.note,
        )
        self.transfers[(spec.host, spec.technique)] = transfer
        if spec.collect:
            services.transfer_collect(actor=actor, transfer=transfer)
        # The introduction: the expert's earliest case, recorded by hand on the story's day when
        # the work logs hold none before every other case.
        first = transfer.cases.order_by("performed_on", "id").first()
        earliest_own = transfer.cases.filter(local_role=LocalRole.NONE).order_by("performed_on", "id").first()
        if earliest_own is None or (first is not None and first.performed_on < earliest_own.performed_on):
            day = min(spec.introduced, first.performed_on) if first is not None else spec.introduced
            if not self.past(day):
                return
            earliest_own = services.transfer_case_add(
                actor=actor,
                transfer=transfer,
                performed_on=day,
                local_role=LocalRole.NONE,
                note="专家示范手术",
            )
        services.transfer_advance(actor=actor, transfer=transfer, evidence=earliest_own)
        tracked: set[int] = set()
        for track in spec.tracks:
            surgeon = self.person(track.surgeon)
            tracked.add(surgeon.pk)
            self.track(transfer, actor, surgeon, track)
        # Local surgeons the work logs name beyond the story's: their stages follow their cases.
        others = (
            transfer.cases.exclude(local_surgeon=None)
            .exclude(local_surgeon_id__in=tracked)
            .values_list("local_surgeon_id", flat=True)
            .distinct()
        )
        for surgeon in Practitioner.objects.filter(pk__in=list(others)).order_by("licence_number"):
            self.track(transfer, actor, surgeon, _Track(surgeon.licence_number))

    def track(self, transfer: Transfer, actor: User, surgeon: Practitioner, track: _Track) -> None:
        last = transfer.steps.get(stage=Stage.INTRODUCED).reached_on
        for role, planned in ((LocalRole.ASSISTED, track.assists), (LocalRole.SUPERVISED, track.supervised)):
            collected = (
                transfer.cases.filter(local_surgeon=surgeon, local_role=role, performed_on__gte=last)
                .order_by("performed_on", "id")
                .first()
            )
            if collected is None or (planned is not None and planned < collected.performed_on):
                if planned is None or not self.past(max(planned, last)):
                    return
                collected = services.transfer_case_add(
                    actor=actor,
                    transfer=transfer,
                    performed_on=max(planned, last),
                    local_role=role,
                    local_surgeon=surgeon,
                )
            services.transfer_advance(actor=actor, transfer=transfer, evidence=collected)
            last = collected.performed_on
        if track.privilege is None or track.independent is None:
            return
        granted_on = max(track.privilege, last)
        independent_on = max(track.independent, granted_on)
        if not self.past(independent_on):
            return
        services.privilege_grant(
            actor=self.users[ADMIN_OF[transfer.department.institution.code]],
            practitioner=surgeon,
            technique=transfer.technique,
            granted_on=granted_on,
            note="经医院医疗技术临床应用管理委员会考核授权",
        )
        case = services.transfer_case_add(
            actor=actor,
            transfer=transfer,
            performed_on=independent_on,
            local_role=LocalRole.INDEPENDENT,
            local_surgeon=surgeon,
            note="本地医生独立完成",
        )
        services.transfer_advance(actor=actor, transfer=transfer, evidence=case)

    # -- firsts ------------------------------------------------------------------------
    def firsts(self) -> None:
        regions = {r.code: r for r in Region.objects.filter(code__in={row[2] for row in FIRSTS if row[2]})}
        for technique, host, region, macro, description in FIRSTS:
            transfer = self.transfers.get((host, technique))
            introduction = transfer.steps.filter(stage=Stage.INTRODUCED).first() if transfer else None
            if introduction is None or (region and region not in regions):
                continue
            services.first_claim(
                actor=self.users[ADMIN_OF[host]],
                technique=self.techniques[technique],
                institution=self.institutions[host],
                performed_on=introduction.reached_on,
                region=regions[region] if region else None,
                macro_region=macro,
                programme=transfer.programme if transfer else None,
                case=introduction.evidence,
                description=description,
            )

    # -- teaching ----------------------------------------------------------------------
    def teaching(self, sessions: tuple[_Session, ...]) -> None:
        for spec in sessions:
            starts_at = dt.datetime.combine(spec.day, dt.time(spec.start), tzinfo=SHANGHAI)
            ends_at = starts_at + dt.timedelta(minutes=round(spec.hours * 60))
            if starts_at > timezone.now():
                continue
            host = self.institutions[spec.host]
            actor = self.users[spec.actor]
            activity = services.teaching_create(
                actor=actor,
                kind=spec.kind,
                topic=spec.topic,
                starts_at=starts_at,
                ends_at=ends_at,
                leader=self.person(spec.leader),
                institutions=[host, *(self.institutions[c] for c in spec.places)],
                place="示教室" if spec.kind != TeachingKind.COURSE else "学术报告厅",
                other_attendees=spec.others,
                programme=self.programmes.get(spec.programme),
                training=self.trainings.get(spec.training),
            )
            staff = list(
                Practitioner.objects.filter(institution=host, department__name_zh__in=spec.departments, is_active=True)
                .exclude(pk=activity.leader_id)
                .order_by("licence_number")
            )
            if spec.training and spec.training in self.trainings:
                mentees = Practitioner.objects.filter(mentorships__programme=self.trainings[spec.training])
                staff = [*staff, *(p for p in mentees.order_by("licence_number") if p not in staff)]
            # Most come; someone is on call or in theatre now and then.
            present = [p for p in staff if self.rng.random() < 0.85] or staff[:1]
            present += list(Practitioner.objects.filter(licence_number__in=spec.extra).order_by("licence_number"))
            for practitioner in present:
                services.attendance_record(actor=actor, activity=activity, practitioner=practitioner)

    # -- training ----------------------------------------------------------------------
    def training(self, spec: _Training) -> None:
        actor = self.users[spec.actor]
        programme = services.training_create(
            actor=actor,
            kind=spec.kind,
            name_zh=spec.name_zh,
            name_en=spec.name_en,
            institution=self.institutions[spec.host],
            mentor=self.person(spec.mentor),
            starts_on=spec.starts_on,
            goals=spec.goals,
            stationing=self.programmes[spec.stationing],
        )
        self.trainings[spec.key] = programme
        milestones = [
            services.milestone_add(
                actor=actor,
                programme=programme,
                title_zh=m.title_zh,
                title_en=m.title_en,
                due_months=m.due_months,
                technique=self.techniques[m.technique] if m.technique else None,
                stage=m.stage or "",
            )
            for m in spec.milestones
        ]
        mentor = self.users[spec.mentor_user]
        for licence, joined_on in spec.mentees:
            mentee = services.mentee_add(
                actor=actor, programme=programme, practitioner=self.person(licence), joined_on=joined_on
            )
            for milestone in milestones:
                self.assess(mentee, milestone, mentor)

    def assess(self, mentee: Mentee, milestone: Milestone, mentor: User) -> None:
        """The mentor assesses each milestone when it falls due: a technique milestone is passed
        when the ledgers show the stage (assessed two weeks after it, or when due if earlier), the
        others mostly passed; the mentor signs off all but the latest month's."""
        due = _add_months(mentee.joined_on, milestone.due_months)
        reached: dt.date | None = None
        if milestone.technique_id:
            steps = TransferStep.objects.filter(
                surgeon=mentee.practitioner, transfer__technique_id=milestone.technique_id
            )
            days = [s.reached_on for s in steps if stage_rank(s.stage) >= stage_rank(milestone.stage)]
            reached = min(days, default=None)
        elif self.rng.random() < 0.85:
            reached = due - dt.timedelta(days=self.rng.randrange(7, 40))
        if reached is not None:
            day = max(reached + dt.timedelta(days=14), mentee.joined_on + dt.timedelta(days=14))
            result, score = AssessmentResult.PASSED, self.rng.randrange(78, 97)
        else:
            day, result, score = due, AssessmentResult.NOT_YET, self.rng.randrange(55, 72)
        if not self.past(day):
            return
        assessment = services.assessment_record(
            actor=mentor,
            mentee=mentee,
            milestone=milestone,
            assessed_on=day,
            result=result,
            score=score,
            comment="达到阶段目标" if result == AssessmentResult.PASSED else "需继续在上级指导下积累病例",
        )
        # The mentor signs off at the next review: not yet for the last two months' assessments,
        # and a "not yet" now and then waits for the mentee's next attempt.
        if day <= self.today - dt.timedelta(days=60) and (result == AssessmentResult.PASSED or self.rng.random() < 0.6):
            services.assessment_sign_off(actor=mentor, assessment=assessment)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, 28))


def seed_capability(*, seed: int = 2018, today: dt.date | None = None) -> CapabilityReport:
    """Write the capability story unless it is there already; say what was created."""
    today = today or timezone.localdate()
    writer = _Writer(seed, today)
    if not writer.ready():
        return CapabilityReport()
    before = {name: model._default_manager.count() for name, model in _COUNTED.items()}
    writer.catalogue()
    if not Transfer.objects.filter(technique__code=MARKER, department__institution__code="qzph").exists():
        last_story_year = demo_years(today)[-1]
        writer.locals()
        writer.mentor_account()
        for spec in _ledgers(last_story_year):
            writer.ledger(spec)
        writer.firsts()
        for training in TRAININGS:
            writer.training(training)
        writer.teaching(_sessions(last_story_year))
    for name, model in _COUNTED.items():
        setattr(writer.report, name, model._default_manager.count() - before[name])
    return writer.report
