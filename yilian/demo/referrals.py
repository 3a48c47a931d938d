"""Two years of demo referral history: the patient flow of the Quzhou and Bijie stories.

What the history shows (DOMAIN.md §3, issue "two-way referral"):
- county hospitals send stroke and haemorrhage patients up to Quzhou People's Hospital, city
  hospitals send complex cases to the provincial hospitals, the big hospitals send recovering
  patients back down with a care plan, and the county hospitals hand chronic patients to the
  township and community centres; a few referrals go sideways;
- down-referrals grow from about 15 % of the referrals two years ago to about 40 % now;
  about a fifth are urgent; patients are mostly 55 to 85 years old, about 3 % unidentified;
- a patient sent up whose outcome says "refer back" is often referred back down later by the
  hospital that treated them: the same patient, the loop closed;
- every status occurs; old referrals are mostly closed, recent ones are open, and round 0
  adds live work for the demo personas (the coordinator's incoming board at qzph, the
  Changshan doctor's outgoing board), some of it overdue.

Invariants:
- every referral is a walk through ``workflow.TRANSITIONS``, each step by a side the table
  allows, with one ``ReferralEvent`` per step, cut where ``now`` falls;
- deterministic: the data is a function of ``seed``, the round, ``now`` and the seeded
  registry; numbers, public ids and status tokens come from the round's own generator, never
  from ``secrets`` or ``uuid4``;
- scale N is rounds 0 .. N-1 of ``ROUND_SIZE`` referrals each; a round is recognised by the
  status token of its first referral, drawn first from the round's generator and so
  independent of ``now``: seeding again, or seeding a larger scale over a smaller one, adds
  only the missing rounds;
- written in bulk, since this is synthetic history and not operator input: one audit row per
  run says how many referrals were seeded.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import heapq
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from stdnum.cn import ric

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.patients.models import Patient, Sex
from yilian.referrals.models import (
    ConsentMethod,
    Direction,
    Referral,
    ReferralAppointment,
    ReferralEvent,
    RequestedService,
    ServiceLevel,
    Status,
    Urgency,
)
from yilian.referrals.services import DEFAULT_SERVICE_LEVELS, Levels
from yilian.referrals.workflow import TRANSITIONS, Action, Side
from yilian.registry import services as registry_services
from yilian.registry.models import (
    Consortium,
    Department,
    Discipline,
    Institution,
    Practitioner,
    ProfessionalTitle,
    Region,
    User,
)

ROUND_SIZE = 1500  # history referrals per round; round 0 adds the live ones
HISTORY_DAYS = 730
HISTORY_USERNAME = "demo-history"
NUMBER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # as services._new_number: no 0/O, 1/I

D = Discipline
S = Status
A = Action
SENDER, RECEIVER, OFFICE, SYSTEM = Side.SENDER, Side.RECEIVER, Side.OFFICE, Side.SYSTEM
UP, DOWN, LATERAL = Direction.UP, Direction.DOWN, Direction.LATERAL
RS = RequestedService
CREATE = "create"  # the timeline's first event (not a workflow action: it has no from-status)

_NURSES = frozenset(
    {
        ProfessionalTitle.CHIEF_NURSE,
        ProfessionalTitle.ASSOCIATE_CHIEF_NURSE,
        ProfessionalTitle.NURSE_IN_CHARGE,
        ProfessionalTitle.SENIOR_NURSE,
        ProfessionalTitle.NURSE,
    }
)
_INPATIENT = frozenset({RS.ADMISSION, RS.PROCEDURE, RS.REHABILITATION})


@dataclass(frozen=True)
class ReferralSeedReport:
    """What one run created (zero everywhere when every round was already there)."""

    users: int = 0
    patients: int = 0
    referrals: int = 0
    events: int = 0
    appointments: int = 0


# ----------------------------------------------------------------------------------------
# Clinical cases


@dataclass(frozen=True)
class _Case:
    code: str  # ICD-10
    name: str
    service: RequestedService
    sender_disciplines: tuple[Discipline, ...]
    receiver_disciplines: tuple[Discipline, ...]
    urgent: float  # share of urgent referrals
    reason: str
    findings: tuple[str, ...]
    treatment: str
    # Outcome report: diagnosis, treatment, result, recommendations.
    outcome: tuple[str, str, str, str]
    # Care plan (down-referrals): diagnosis, treatment done, medication, follow-up, warning signs.
    plan: tuple[str, str, str, str, str] | None = None
    back: str = ""  # the case a completed up-referral is referred back down with
    stage: str = ""  # for a referral back down: how the up-referral's diagnosis is qualified
    stay_days: tuple[float, float] = (5.0, 12.0)
    ages: tuple[int, int] = (55, 85)
    male: float = 0.55
    routine: tuple[str, str] | None = None  # reason and treatment when not urgent (else the urgent ones)


_NEURO_SENDERS = (D.NEUROLOGY, D.NEUROSURGERY, D.EMERGENCY, D.INTERNAL_MEDICINE, D.GENERAL_PRACTICE)
_REHAB_RECEIVERS = (D.REHABILITATION, D.NEUROLOGY, D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE)
_STROKE_WARNING = "再次出现口角歪斜、肢体无力、言语不清或剧烈头痛、呕吐时立即拨打120，并告知卒中病史"

CASES: dict[str, _Case] = {
    # -- up: neurology and neurosurgery (the alliance's everyday work)
    "stroke": _Case(
        "I63.9", "急性脑梗死", RS.PROCEDURE, _NEURO_SENDERS, (D.NEUROLOGY, D.NEUROSURGERY, D.EMERGENCY), 0.65,
        "急性缺血性卒中，疑大血管闭塞，本院无取栓条件，发病6小时内申请绿色通道转上级医院评估动脉取栓。",
        (
            "晨练时突发左侧肢体无力伴言语含糊，发病至到院1.5小时；NIHSS 14分；头颅CT未见出血；"
            "CTA示右侧大脑中动脉M1段闭塞。",
            "家属发现右侧肢体无力、不能言语，最后正常时间约3小时前；NIHSS 17分；CT ASPECTS 8分；"
            "CTA示左侧颈内动脉末端闭塞。",
            "午睡后出现左侧肢体麻木无力，最后正常时间约2小时前；NIHSS 9分；CT未见出血；房颤病史。",
        ),
        "阿替普酶静脉溶栓（0.9 mg/kg）已开始；心电监护，控制血压低于180/105 mmHg。",
        (
            "急性脑梗死（大脑中动脉M1段闭塞）",
            "急诊机械取栓术，术后mTICI 2b级再通；抗血小板、强化降脂治疗。",
            "肢体肌力由2级恢复至4级，NIHSS 4分，生命体征平稳。",
            "阿司匹林联合氯吡格雷21天后改单药；控制血压、血糖；病情稳定后转回当地医院康复治疗。",
        ),
        back="stroke_rehab",
        stay_days=(6, 12),
        routine=(
            "急性脑梗死，发病已超过静脉溶栓时间窗，症状波动加重，申请上级医院评估血管内治疗并进一步诊治。",
            "阿司匹林联合氯吡格雷、阿托伐他汀40 mg；监测血压、血糖。",
        ),
    ),
    "stroke_stenosis": _Case(
        "I63.5", "脑梗死（大脑中动脉重度狭窄）", RS.ADMISSION, _NEURO_SENDERS, (D.NEUROLOGY, D.NEUROSURGERY), 0.1,
        "反复短暂性脑缺血发作后脑梗死，MRA示责任血管重度狭窄，申请上级医院评估血管内治疗。",
        (
            "近1月反复右手无力发作3次，每次持续10分钟；MRI示左侧放射冠急性梗死灶；MRA示左侧大脑中动脉重度狭窄。",
            "言语不利2天；MRI示多发急性梗死灶；颈部血管超声示颈内动脉起始段重度狭窄（约80%）。",
        ),
        "阿司匹林联合氯吡格雷、阿托伐他汀40 mg；监测血压。",
        (
            "大脑中动脉重度狭窄所致脑梗死",
            "全脑血管造影及球囊扩张支架植入术。",
            "症状无复发，穿刺点愈合良好。",
            "双抗血小板3个月；3个月后复查CTA；转回当地医院随访。",
        ),
        back="stroke_rehab",
        stay_days=(5, 9),
    ),
    "ich": _Case(
        "I61.0", "基底节区脑出血", RS.PROCEDURE, _NEURO_SENDERS, (D.NEUROSURGERY, D.EMERGENCY), 0.65,
        "高血压性脑出血，血肿量大伴中线移位，本院无神经外科手术条件，申请急诊转上级医院手术。",
        (
            "突发头痛、呕吐伴右侧肢体偏瘫；GCS 11分；头颅CT示左侧基底节区血肿约35 ml，中线右移4 mm。",
            "打麻将时突发左侧肢体无力、意识模糊；GCS 10分；CT示右侧基底节区血肿约40 ml，破入脑室。",
        ),
        "甘露醇脱水降颅压，乌拉地尔控制血压，必要时气管插管。",
        (
            "基底节区脑出血（高血压性）",
            "神经内镜下血肿清除术，术后复查CT血肿清除满意。",
            "意识转清，偏瘫侧肌力3级，可简单交流。",
            "严格控制血压；1个月后神经外科门诊复查头颅CT；病情稳定后转回当地医院康复。",
        ),
        back="ich_rehab",
        stay_days=(10, 20),
        routine=(
            "脑出血保守治疗中，复查CT血肿较前扩大，申请上级医院评估手术指征。",
            "控制血压，甘露醇脱水，卧床休息。",
        ),
    ),
    "ich_mass": _Case(
        "I61.9", "脑出血伴脑深部占位", RS.PROCEDURE, _NEURO_SENDERS, (D.NEUROSURGERY,), 0.3,
        "脑出血伴脑深部约0.5 cm占位，性质待定，申请转上级医院手术并行术中病理诊断。",
        ("头痛伴右侧肢体麻木1周；MRI示左侧丘脑旁深部0.5 cm强化病灶伴周围出血。",),
        "控制血压，脱水降颅压，卧床休息。",
        (
            "脑出血（深部海绵状血管瘤）",
            "神经内镜与显微镜联合手术切除病灶，术中快速冰冻病理。",
            "术后恢复顺利，无新发神经功能缺损。",
            "3个月后复查头颅MRI；转回当地医院康复随访。",
        ),
        back="ich_rehab",
        stay_days=(8, 14),
    ),
    "ventricle": _Case(
        "D33.0", "侧脑室肿瘤", RS.ADMISSION, _NEURO_SENDERS, (D.NEUROSURGERY,), 0.05,
        "侧脑室巨大占位，患者高龄体弱，家属希望在本市手术，申请上级医院神经外科手术治疗。",
        ("头痛伴步态不稳2月，体重40 kg；MRI示侧脑室三角区占位约7.3 cm，伴梗阻性脑积水。",),
        "甘露醇脱水，营养支持。",
        (
            "侧脑室脑膜瘤",
            "显微镜下侧脑室肿瘤切除术，手术约6小时，出血约400 ml。",
            "术后第5天明显好转，可下床活动。",
            "神经外科门诊定期复查；转回当地医院康复及护理。",
        ),
        back="neuro_postop",
        stay_days=(10, 18),
        ages=(65, 85),
    ),
    # -- up: cardiology
    "stemi": _Case(
        "I21.0", "急性前壁ST段抬高型心肌梗死", RS.PROCEDURE,
        (D.CARDIOLOGY, D.EMERGENCY, D.INTERNAL_MEDICINE, D.GENERAL_PRACTICE), (D.CARDIOLOGY,), 0.95,
        "急性ST段抬高型心肌梗死，本院无急诊PCI条件，首次医疗接触后即启动转运行直接PCI。",
        (
            "持续胸痛2小时；心电图V1–V5导联ST段抬高0.3–0.5 mV；肌钙蛋白I升高。",
            "胸闷、大汗1小时；心电图II、III、aVF导联ST段抬高；血压92/60 mmHg。",
        ),
        "阿司匹林300 mg、替格瑞洛180 mg负荷，肝素抗凝，吸氧。",
        (
            "急性ST段抬高型心肌梗死",
            "急诊冠状动脉造影，罪犯血管近段支架植入1枚，门-球时间68分钟。",
            "胸痛缓解，心功能Killip I级。",
            "双联抗血小板12个月；他汀强化降脂；心脏康复；转回当地医院慢病随访。",
        ),
        back="pci_follow",
        stay_days=(5, 8),
    ),
    "nstemi": _Case(
        "I21.4", "急性非ST段抬高型心肌梗死", RS.ADMISSION,
        (D.CARDIOLOGY, D.EMERGENCY, D.INTERNAL_MEDICINE, D.GENERAL_PRACTICE), (D.CARDIOLOGY,), 0.4,
        "非ST段抬高型心肌梗死，GRACE评分高危，申请转上级医院行冠状动脉造影。",
        ("胸闷气促3天加重；心电图ST段压低；肌钙蛋白I 2.3 ng/ml。",),
        "双联抗血小板、低分子肝素抗凝、他汀。",
        (
            "急性非ST段抬高型心肌梗死",
            "冠状动脉造影，回旋支支架植入1枚。",
            "症状缓解，病情稳定出院。",
            "双联抗血小板12个月；控制血压、血脂；转回当地医院随访。",
        ),
        back="pci_follow",
        stay_days=(4, 7),
    ),
    "valve": _Case(
        "I35.0", "重度主动脉瓣狭窄", RS.ADMISSION, (D.CARDIOLOGY,), (D.CARDIAC_SURGERY, D.CARDIOLOGY), 0.05,
        "重度主动脉瓣狭窄伴活动后晕厥，外科手术高危，申请上级医院评估经导管主动脉瓣置换。",
        ("活动后胸闷、晕厥2次；心脏超声示主动脉瓣峰值流速4.6 m/s，瓣口面积0.7 cm²。",),
        "利尿、控制心室率，限制活动。",
        (
            "重度主动脉瓣狭窄",
            "经导管主动脉瓣置换术（TAVR）。",
            "术后心功能改善，活动耐量增加。",
            "抗血小板治疗；术后1、3、12个月复查心脏超声；转回当地医院随访。",
        ),
        back="pci_follow",
        stay_days=(6, 10),
        ages=(65, 85),
    ),
    # -- up: orthopaedics
    "hip": _Case(
        "S72.0", "股骨颈骨折", RS.ADMISSION, (D.ORTHOPEDICS, D.EMERGENCY, D.GENERAL_SURGERY, D.GENERAL_PRACTICE),
        (D.ORTHOPEDICS,), 0.15,
        "老年股骨颈骨折，合并多种基础疾病，申请转上级医院行关节置换手术。",
        (
            "跌倒后右髋疼痛、不能站立；X线示右股骨颈骨折（Garden IV型）；高血压病史10年。",
            "滑倒后左髋疼痛2小时，左下肢短缩外旋；X线示左股骨颈骨折；糖尿病史。",
        ),
        "患肢制动、镇痛，预防深静脉血栓。",
        (
            "股骨颈骨折（Garden IV型）",
            "人工全髋关节置换术。",
            "术后第3天扶助行器下地行走。",
            "抗凝至术后5周；转回当地医院康复训练，6周后骨科门诊复查。",
        ),
        back="hip_rehab",
        stay_days=(6, 10),
        ages=(62, 85),
        male=0.4,
    ),
    "spine": _Case(
        "M48.0", "腰椎管狭窄症", RS.ADMISSION, (D.ORTHOPEDICS, D.GENERAL_SURGERY), (D.ORTHOPEDICS,), 0.0,
        "腰椎管狭窄保守治疗半年无效，申请上级医院行微创腰椎融合术。",
        ("间歇性跛行1年，行走200米即需休息；MRI示L4/5椎管狭窄。",),
        "非甾体抗炎药、营养神经、理疗。",
        (
            "腰椎管狭窄症（L4/5）",
            "微创经椎间孔腰椎椎间融合术（MIS-TLIF）。",
            "下肢疼痛明显缓解，术后第2天下地。",
            "佩戴腰围3个月；转回当地医院康复，3个月后复查。",
        ),
        back="spine_rehab",
        stay_days=(5, 9),
    ),
    # -- up: oncology
    "lung_ca": _Case(
        "C34.1", "右上肺恶性肿瘤", RS.ADMISSION, (D.RESPIRATORY, D.INTERNAL_MEDICINE, D.ONCOLOGY, D.GENERAL_SURGERY),
        (D.ONCOLOGY, D.THORACIC_SURGERY, D.RESPIRATORY), 0.0,
        "右上肺占位考虑恶性肿瘤，本院无法完成穿刺活检及分期评估，申请转上级医院明确诊断并制定治疗方案。",
        ("体检发现右上肺结节3.2 cm，分叶、毛刺；CEA 12.6 ng/ml。",),
        "暂无抗肿瘤治疗。",
        (
            "右上肺腺癌（IIB期）",
            "胸腔镜右上肺叶切除及系统性淋巴结清扫术。",
            "术后恢复顺利，拔除胸腔引流管。",
            "辅助靶向治疗；每3个月复查胸部CT；转回当地医院随访化验。",
        ),
        back="onc_follow",
        stay_days=(6, 12),
    ),
    "gastric_ca": _Case(
        "C16.3", "胃窦恶性肿瘤", RS.ADMISSION, (D.GASTROENTEROLOGY, D.INTERNAL_MEDICINE, D.GENERAL_SURGERY),
        (D.GASTROINTESTINAL_SURGERY, D.GENERAL_SURGERY, D.ONCOLOGY), 0.0,
        "胃镜活检示胃窦腺癌，申请转上级医院手术治疗。",
        ("上腹痛伴消瘦3月；胃镜示胃窦溃疡型肿物，病理：腺癌。",),
        "抑酸、营养支持。",
        (
            "胃窦腺癌（pT2N0M0）",
            "腹腔镜根治性远端胃切除术（D2淋巴结清扫）。",
            "术后恢复顺利，进半流质饮食。",
            "肿瘤内科评估辅助化疗；转回当地医院营养支持及随访。",
        ),
        back="onc_follow",
        stay_days=(8, 14),
    ),
    "duodenal": _Case(
        "D13.2", "十二指肠肿瘤", RS.ADMISSION, (D.GENERAL_SURGERY, D.INTERNAL_MEDICINE),
        (D.GASTROINTESTINAL_SURGERY, D.HEPATOBILIARY_SURGERY, D.GENERAL_SURGERY), 0.0,
        "十二指肠降部肿瘤，需行保留胰头的十二指肠切除，申请转上级医院手术。",
        ("黑便、贫血2月；超声内镜示十二指肠降部肿物约2.5 cm。",),
        "纠正贫血，抑酸。",
        (
            "十二指肠腺瘤伴高级别上皮内瘤变",
            "机器人辅助保留胰头的十二指肠切除术。",
            "术后第7天出院。",
            "1个月后复查胃镜；转回当地医院随访。",
        ),
        back="onc_follow",
        stay_days=(7, 9),
        ages=(50, 70),
    ),
    "hcc": _Case(
        "C22.0", "原发性肝细胞癌", RS.ADMISSION, (D.GASTROENTEROLOGY, D.INTERNAL_MEDICINE, D.GENERAL_SURGERY),
        (D.HEPATOBILIARY_SURGERY, D.GENERAL_SURGERY, D.ONCOLOGY), 0.0,
        "乙肝肝硬化背景下肝右叶占位，申请转上级医院评估手术切除。",
        ("乙肝病史20年；增强CT示肝右叶4.5 cm占位，快进快出；AFP 860 ng/ml。",),
        "恩替卡韦抗病毒，保肝治疗。",
        (
            "原发性肝细胞癌（BCLC A期）",
            "腹腔镜肝右叶部分切除术。",
            "术后肝功能恢复良好。",
            "继续抗病毒治疗；每3个月复查AFP及增强CT；转回当地医院随访。",
        ),
        back="onc_follow",
        stay_days=(7, 12),
    ),
    "oral_ca": _Case(
        "C03.1", "下牙龈鳞状细胞癌", RS.ADMISSION, (D.STOMATOLOGY,), (D.STOMATOLOGY,), 0.0,
        "下牙龈溃疡活检示鳞状细胞癌，申请转上级医院行根治手术。",
        ("下牙龈溃疡不愈2月，活检示高分化鳞状细胞癌；颈部未触及肿大淋巴结。",),
        "口腔护理，营养支持。",
        (
            "下牙龈鳞状细胞癌（T2N0M0）",
            "下颌骨方块切除及选择性颈淋巴清扫术。",
            "伤口愈合良好，经口进食。",
            "术后3个月内每月复查；转回当地医院口腔科随访。",
        ),
        back="onc_follow",
        stay_days=(8, 12),
    ),
    # -- up: medicine, from the grassroots
    "copd": _Case(
        "J44.1", "慢性阻塞性肺疾病急性加重", RS.ADMISSION, (D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE, D.RESPIRATORY),
        (D.RESPIRATORY, D.INTERNAL_MEDICINE), 0.3,
        "慢阻肺急性加重伴II型呼吸衰竭，本院无无创通气条件，申请上转。",
        ("咳嗽咳痰气促加重5天；未吸氧SpO2 86%；血气PaCO2 58 mmHg。",),
        "低流量吸氧，雾化，抗感染。",
        (
            "慢性阻塞性肺疾病急性加重伴II型呼吸衰竭",
            "抗感染、雾化吸入、无创正压通气。",
            "气促缓解，已脱离无创通气。",
            "规律吸入长效支气管扩张剂；家庭氧疗；转回基层签约医生随访。",
        ),
        back="copd_follow",
        stay_days=(6, 10),
        male=0.7,
    ),
    "ckd": _Case(
        "N18.5", "慢性肾脏病5期", RS.ADMISSION, (D.NEPHROLOGY, D.INTERNAL_MEDICINE),
        (D.NEPHROLOGY, D.INTERNAL_MEDICINE), 0.05,
        "慢性肾脏病5期，需建立血管通路并开始透析，申请上转。",
        ("乏力、纳差1月；血肌酐820 μmol/L，eGFR 6 ml/min；血钾5.8 mmol/L。",),
        "降钾、纠正酸中毒、控制血压。",
        (
            "慢性肾脏病5期（糖尿病肾病）",
            "左前臂动静脉内瘘成形术，开始规律血液透析。",
            "内瘘功能良好，透析耐受。",
            "每周3次血液透析；转回当地医院维持性透析。",
        ),
        back="dialysis",
        stay_days=(7, 12),
    ),
    "htn": _Case(
        "I10", "高血压3级（控制不佳）", RS.OUTPATIENT, (D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE),
        (D.CARDIOLOGY, D.INTERNAL_MEDICINE, D.NEUROLOGY), 0.05,
        "三种降压药联合使用血压仍控制不佳，申请上级医院排查继发性高血压并调整方案。",
        ("家庭自测血压165–180/95–105 mmHg；尿蛋白（+）；头晕乏力。",),
        "氨氯地平、缬沙坦、氢氯噻嗪联合降压。",
        (
            "原发性高血压3级（很高危）",
            "排除继发性高血压，调整降压方案。",
            "门诊复测血压142/88 mmHg。",
            "回基层继续随访，家庭医生每月测量血压并记录。",
        ),
        stay_days=(0, 0),
    ),
    "dm": _Case(
        "E11.9", "2型糖尿病（血糖控制不佳）", RS.OUTPATIENT, (D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE),
        (D.ENDOCRINOLOGY, D.INTERNAL_MEDICINE), 0.0,
        "口服降糖药联合治疗血糖仍不达标，申请上级医院调整方案。",
        ("糖化血红蛋白9.8%，空腹血糖11.2 mmol/L；双下肢麻木。",),
        "二甲双胍、格列美脲口服。",
        (
            "2型糖尿病伴周围神经病变",
            "启用基础胰岛素，调整口服药。",
            "血糖监测趋于平稳。",
            "回基层继续随访，每3个月复查糖化血红蛋白。",
        ),
        stay_days=(0, 0),
    ),
    "preeclampsia": _Case(
        "O14.1", "重度子痫前期", RS.ADMISSION, (D.OBSTETRICS_GYNECOLOGY,), (D.OBSTETRICS_GYNECOLOGY,), 0.6,
        "孕32周重度子痫前期，需新生儿重症监护支持，申请转上级医院。",
        ("孕32周，血压170/112 mmHg，尿蛋白（+++），头痛视物模糊。",),
        "硫酸镁解痉，拉贝洛尔降压，地塞米松促胎肺成熟。",
        (
            "重度子痫前期（孕32周）",
            "剖宫产终止妊娠，新生儿转NICU。",
            "产后血压逐渐平稳。",
            "产后6周复查血压、尿蛋白；转回当地医院随访。",
        ),
        back="postpartum",
        stay_days=(5, 9),
        ages=(24, 41),
        male=0.0,
    ),
    # -- down: rehabilitation and chronic follow-up, each with its care plan
    "stroke_rehab": _Case(
        "I63.9", "脑梗死恢复期", RS.REHABILITATION, (D.NEUROLOGY, D.NEUROSURGERY, D.REHABILITATION),
        _REHAB_RECEIVERS, 0.0,
        "急性期治疗结束、病情稳定，转回当地医院继续康复治疗和二级预防。",
        (
            "左侧肢体肌力4级，可扶拐行走；吞咽功能正常；NIHSS 3分。",
            "右侧肢体肌力3级，言语欠流利；改良Rankin评分3分。",
        ),
        "阿司匹林、阿托伐他汀口服；床旁康复训练。",
        (
            "脑梗死恢复期",
            "运动疗法、作业疗法、言语训练；二级预防药物继续。",
            "4周后可独立行走，改良Rankin评分2分。",
            "继续社区随访，家庭医生每月随访一次。",
        ),
        plan=(
            "急性脑梗死（恢复期）",
            "急性期取栓或溶栓治疗，抗血小板、调脂治疗",
            "阿司匹林肠溶片 100 mg 每日一次；阿托伐他汀钙片 20 mg 每晚一次；氨氯地平 5 mg 每日一次",
            "出院后2周、1个月、3个月神经内科门诊复查；每日肢体功能训练；3个月后复查颈部血管超声",
            _STROKE_WARNING,
        ),
        stage="恢复期",
        stay_days=(14, 35),
    ),
    "ich_rehab": _Case(
        "I61.0", "脑出血术后恢复期", RS.REHABILITATION, (D.NEUROSURGERY, D.NEUROLOGY, D.REHABILITATION),
        _REHAB_RECEIVERS, 0.0,
        "脑出血术后病情稳定，转回当地医院康复治疗及血压管理。",
        ("偏瘫侧肌力3级，坐位平衡可；复查CT无再出血；血压控制在140/90 mmHg以下。",),
        "降压药口服；床旁康复训练。",
        (
            "脑出血术后恢复期",
            "综合康复训练，血压管理。",
            "6周后可扶助行器行走。",
            "继续康复训练，家庭医生随访血压。",
        ),
        plan=(
            "基底节区脑出血（术后）",
            "神经内镜下血肿清除术，术后脱水、控制血压",
            "氨氯地平 5 mg 每日一次；厄贝沙坦 150 mg 每日一次",
            "出院后2周、1个月、3个月神经外科门诊复查头颅CT；血压每日监测",
            "头痛加重、呕吐、意识改变或肢体无力加重时立即就诊",
        ),
        stage="术后恢复期",
        stay_days=(21, 42),
    ),
    "neuro_postop": _Case(
        "D33.0", "侧脑室肿瘤术后", RS.REHABILITATION, (D.NEUROSURGERY,), _REHAB_RECEIVERS, 0.0,
        "开颅肿瘤切除术后恢复良好，转回当地医院康复及护理。",
        ("术后第10天，切口愈合良好，可下床活动；复查MRI肿瘤全切。",),
        "丙戊酸钠预防癫痫。",
        (
            "侧脑室肿瘤术后",
            "康复训练，伤口护理，抗癫痫药物维持。",
            "日常生活基本自理。",
            "3个月后神经外科门诊复查MRI。",
        ),
        plan=(
            "侧脑室肿瘤（术后）",
            "显微镜下肿瘤切除术",
            "丙戊酸钠缓释片 500 mg 每日两次，服用3个月",
            "术后1个月、3个月神经外科门诊复查，3个月复查头颅MRI",
            "头痛、呕吐、抽搐或意识改变时立即就诊",
        ),
        stage="术后",
        stay_days=(14, 28),
        ages=(60, 85),
    ),
    "hip_rehab": _Case(
        "S72.0", "股骨颈骨折术后", RS.REHABILITATION, (D.ORTHOPEDICS, D.REHABILITATION),
        (D.REHABILITATION, D.ORTHOPEDICS, D.GENERAL_PRACTICE), 0.0,
        "关节置换术后恢复顺利，转回当地医院康复训练。",
        ("术后第5天，切口干燥，助行器辅助下行走20米。",),
        "利伐沙班抗凝，镇痛。",
        (
            "股骨颈骨折（全髋关节置换术后）",
            "下肢肌力及步态训练，抗凝治疗。",
            "6周后弃拐行走。",
            "6周及3个月骨科门诊复查X线。",
        ),
        plan=(
            "股骨颈骨折（全髋关节置换术后）",
            "人工全髋关节置换术",
            "利伐沙班 10 mg 每日一次至术后5周；塞来昔布 200 mg 必要时",
            "术后2周拆线，6周、3个月骨科门诊复查X线；每日康复训练",
            "患肢肿胀疼痛加重、胸闷气促或切口渗液发热时立即就诊",
        ),
        stage="术后",
        stay_days=(14, 28),
        ages=(62, 85),
        male=0.4,
    ),
    "spine_rehab": _Case(
        "M48.0", "腰椎融合术后", RS.REHABILITATION, (D.ORTHOPEDICS, D.REHABILITATION),
        (D.REHABILITATION, D.ORTHOPEDICS, D.GENERAL_PRACTICE), 0.0,
        "腰椎融合术后恢复良好，转回当地医院康复。",
        ("术后第4天，下肢疼痛缓解，佩戴腰围下地行走。",),
        "镇痛、营养神经。",
        (
            "腰椎融合术后",
            "腰背肌功能训练。",
            "行走距离明显增加。",
            "3个月后骨科门诊复查。",
        ),
        plan=(
            "腰椎管狭窄症（融合术后）",
            "微创经椎间孔腰椎椎间融合术",
            "甲钴胺 0.5 mg 每日三次；塞来昔布 200 mg 必要时",
            "佩戴腰围3个月；1个月、3个月骨科门诊复查X线",
            "下肢麻木无力加重、大小便异常或切口红肿渗液时立即就诊",
        ),
        stage="术后",
        stay_days=(14, 28),
    ),
    "pci_follow": _Case(
        "I25.1", "冠心病（介入术后）", RS.CHRONIC_FOLLOW_UP, (D.CARDIOLOGY, D.CARDIAC_SURGERY),
        (D.CARDIOLOGY, D.INTERNAL_MEDICINE, D.GENERAL_PRACTICE), 0.0,
        "介入治疗后病情稳定，转回当地医院长期随访和心脏康复。",
        ("术后无胸痛，心功能I级；LDL-C 2.1 mmol/L。",),
        "双联抗血小板、他汀、β受体阻滞剂。",
        (
            "冠心病（介入术后）",
            "规范二级预防，心脏康复指导。",
            "无心绞痛发作，血脂达标。",
            "每3个月随访血脂、肝功能。",
        ),
        plan=(
            "冠状动脉粥样硬化性心脏病（介入术后）",
            "冠状动脉介入治疗",
            "阿司匹林 100 mg 每日一次；替格瑞洛 90 mg 每日两次至满12个月；阿托伐他汀 20 mg 每晚一次；"
            "美托洛尔缓释片 47.5 mg 每日一次",
            "术后1、3、6、12个月心内科门诊复查；每3个月查血脂、肝功能",
            "胸痛持续超过15分钟、黑便或明显气促时立即拨打120",
        ),
        stage="术后随访",
        stay_days=(10, 30),
    ),
    "onc_follow": _Case(
        "C34.1", "肺恶性肿瘤（术后随访）", RS.CHRONIC_FOLLOW_UP, (D.ONCOLOGY, D.THORACIC_SURGERY, D.GENERAL_SURGERY),
        (D.ONCOLOGY, D.INTERNAL_MEDICINE, D.GENERAL_SURGERY, D.GENERAL_PRACTICE), 0.0,
        "术后恢复良好，转回当地医院随访、营养支持和复查。",
        ("术后恢复顺利，体力评分ECOG 1分。",),
        "口服靶向药物，营养支持。",
        (
            "恶性肿瘤（术后随访）",
            "复查血常规、肝肾功能及肿瘤标志物，营养支持。",
            "无复发征象，耐受治疗。",
            "按期复查影像，有异常及时上转。",
        ),
        plan=(
            "恶性肿瘤（术后）",
            "根治性手术",
            "按肿瘤科处方口服药物；营养补充",
            "每月血常规、肝肾功能；每3个月复查肿瘤标志物及影像",
            "发热、咯血、黑便、消瘦明显或新发疼痛时及时就诊",
        ),
        stage="术后随访",
        stay_days=(14, 30),
    ),
    "copd_follow": _Case(
        "J44.9", "慢性阻塞性肺疾病（稳定期）", RS.CHRONIC_FOLLOW_UP, (D.RESPIRATORY, D.INTERNAL_MEDICINE),
        (D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE), 0.0,
        "急性加重已控制，转回基层签约医生随访和家庭氧疗管理。",
        ("静息SpO2 93%（吸氧2 L/min）；mMRC 2级。",),
        "噻托溴铵吸入。",
        (
            "慢性阻塞性肺疾病（稳定期）",
            "吸入药物使用指导，家庭氧疗随访。",
            "无急性加重。",
            "每月随访，冬季接种流感疫苗。",
        ),
        plan=(
            "慢性阻塞性肺疾病（稳定期）",
            "抗感染、无创通气后病情稳定",
            "噻托溴铵 18 μg 每日一次吸入；家庭氧疗每日15小时以上",
            "每月家庭医生随访；3个月后呼吸科复查肺功能",
            "气促加重、口唇发紫、嗜睡或发热时立即就诊",
        ),
        stage="稳定期",
        stay_days=(14, 30),
        male=0.7,
    ),
    "htn_follow": _Case(
        "I10", "原发性高血压（方案调整后）", RS.CHRONIC_FOLLOW_UP, (D.CARDIOLOGY, D.INTERNAL_MEDICINE, D.NEUROLOGY),
        (D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE), 0.0,
        "降压方案已调整，血压趋于平稳，转回基层家庭医生随访管理。",
        ("门诊血压138/86 mmHg；无靶器官损害进展。",),
        "氨氯地平、缬沙坦口服。",
        (
            "原发性高血压",
            "纳入家庭医生签约随访。",
            "血压达标。",
            "每月随访一次。",
        ),
        plan=(
            "原发性高血压2级",
            "调整降压方案",
            "氨氯地平 5 mg 每日一次；缬沙坦 80 mg 每日一次",
            "每月家庭医生测量血压；每年查肾功能、尿蛋白、心电图",
            "血压超过180/110 mmHg，或出现头痛、胸痛、肢体无力时立即就诊",
        ),
        stage="随访期",
        stay_days=(7, 21),
    ),
    "dm_follow": _Case(
        "E11.9", "2型糖尿病（方案调整后）", RS.CHRONIC_FOLLOW_UP, (D.ENDOCRINOLOGY, D.INTERNAL_MEDICINE),
        (D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE), 0.0,
        "降糖方案已调整，转回基层随访管理。",
        ("空腹血糖7.2 mmol/L；已掌握胰岛素注射。",),
        "基础胰岛素联合二甲双胍。",
        (
            "2型糖尿病",
            "纳入家庭医生签约随访。",
            "血糖达标。",
            "每3个月复查糖化血红蛋白。",
        ),
        plan=(
            "2型糖尿病",
            "启用基础胰岛素，调整口服降糖药",
            "甘精胰岛素 12 U 每晚一次；二甲双胍 0.5 g 每日三次",
            "每周自测空腹血糖；每3个月查糖化血红蛋白；每年眼底及足部检查",
            "血糖低于3.9 mmol/L伴心慌出汗，或高于16.7 mmol/L时及时就诊",
        ),
        stage="随访期",
        stay_days=(7, 21),
    ),
    "dialysis": _Case(
        "N18.5", "慢性肾脏病5期（维持性血液透析）", RS.CHRONIC_FOLLOW_UP, (D.NEPHROLOGY, D.INTERNAL_MEDICINE),
        (D.NEPHROLOGY, D.INTERNAL_MEDICINE), 0.0,
        "内瘘成熟、透析方案确定，转回就近医院维持性血液透析。",
        ("内瘘杂音清晰；干体重58 kg；血红蛋白102 g/L。",),
        "每周3次血液透析；促红素、铁剂。",
        (
            "慢性肾脏病5期（维持性血液透析）",
            "规律血液透析，贫血及钙磷管理。",
            "透析充分性达标。",
            "每月化验，每3个月评估透析充分性。",
        ),
        plan=(
            "慢性肾脏病5期",
            "动静脉内瘘成形术，开始规律血液透析",
            "重组人促红素 3000 U 每周两次；碳酸司维拉姆 0.8 g 每日三次随餐",
            "每周3次透析；每月血常规、生化；每3个月甲状旁腺激素",
            "内瘘震颤消失、胸闷气促、下肢明显水肿或血钾升高时立即就诊",
        ),
        stage="维持透析期",
        stay_days=(14, 30),
    ),
    "postpartum": _Case(
        "O14.1", "重度子痫前期（产后）", RS.CHRONIC_FOLLOW_UP, (D.OBSTETRICS_GYNECOLOGY,),
        (D.OBSTETRICS_GYNECOLOGY,), 0.0,
        "产后病情稳定，转回当地医院产后随访。",
        ("产后第6天，血压135/85 mmHg，尿蛋白（+）。",),
        "拉贝洛尔口服。",
        (
            "重度子痫前期（产后）",
            "产后血压及尿蛋白随访。",
            "血压恢复正常。",
            "产后42天复查。",
        ),
        plan=(
            "重度子痫前期（产后）",
            "剖宫产终止妊娠",
            "拉贝洛尔 100 mg 每日两次，血压正常后逐步减量",
            "每周测血压；产后42天复查血压、尿蛋白",
            "头痛、视物模糊、血压超过160/110 mmHg时立即就诊",
        ),
        stage="产后",
        stay_days=(14, 42),
        ages=(24, 41),
        male=0.0,
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------------------
# Routes: who refers to whom, in which consortium, with which cases (weights relative)


@dataclass(frozen=True)
class _Route:
    consortium: str
    sender: str
    receiver: str
    direction: Direction
    weight: float
    cases: tuple[tuple[str, float], ...]


_NEURO_UP = (("stroke", 4), ("ich", 2.5), ("stroke_stenosis", 3), ("ich_mass", 0.7), ("ventricle", 0.5))
_NEURO_DOWN = (("stroke_rehab", 3), ("ich_rehab", 2), ("neuro_postop", 0.3))
_GRASSROOTS_UP = (("copd", 2), ("stroke", 1.5), ("hip", 1), ("htn", 1), ("dm", 1), ("nstemi", 0.5))
_GRASSROOTS_DOWN = (("stroke_rehab", 2), ("copd_follow", 1.5), ("htn_follow", 2), ("dm_follow", 1.5))
_PROVINCIAL_UP = (("stemi", 2), ("nstemi", 1), ("lung_ca", 1), ("gastric_ca", 1), ("hcc", 0.7), ("spine", 1))


def _r(consortium: str, sender: str, receiver: str, direction: Direction, weight: float, *cases: Any) -> _Route:
    flat: list[tuple[str, float]] = []
    for item in cases:
        flat.extend(item if isinstance(item[0], tuple) else (item,))
    return _Route(consortium, sender, receiver, direction, weight, tuple(flat))


ROUTES: tuple[_Route, ...] = (
    # up: county -> city (the Quzhou neurosurgery alliance), community -> county
    _r("quzhou-neuro", "csph", "qzph", UP, 10, _NEURO_UP),
    _r("quzhou-neuro", "khph", "qzph", UP, 6, _NEURO_UP, ("ventricle", 0.8)),
    _r("quzhou-neuro", "jsph", "qzph", UP, 4, _NEURO_UP),
    _r("quzhou-neuro", "lyph", "qzph", UP, 4, _NEURO_UP),
    _r("quzhou-neuro", "qjph", "qzph", UP, 4, _NEURO_UP),
    _r("quzhou-neuro", "cs-tianma", "csph", UP, 1.5, ("stroke", 3), ("htn", 2), ("dm", 1)),
    _r("zju2-quzhou", "khph", "qzph", UP, 3, ("hip", 3), ("stemi", 2), ("nstemi", 1), ("lung_ca", 1),
       ("gastric_ca", 1)),
    _r("kaihua-ccm", "kh-huabu", "khph", UP, 2, _GRASSROOTS_UP),
    _r("kaihua-ccm", "kh-chengguan", "khph", UP, 2, _GRASSROOTS_UP),
    # up: city/county -> provincial
    _r("zju2-quzhou", "qzph", "zju2", UP, 3, ("ich_mass", 1), ("ventricle", 1), ("lung_ca", 1), ("gastric_ca", 1),
       ("spine", 1)),
    _r("zju2-quzhou", "khph", "zju2", UP, 1.5, ("hip", 1), ("ich", 1), ("spine", 1)),
    _r("zju2-quzhou", "qz2ph", "zju2", UP, 1.5, ("stroke_stenosis", 1), ("ckd", 1), ("spine", 1)),
    _r("zju1-quzhou", "csph", "zju1", UP, 1.5, _PROVINCIAL_UP),
    _r("zju1-quzhou", "jsph", "zju1", UP, 1.5, _PROVINCIAL_UP),
    _r("srrsh-quzhou", "lyph", "srrsh", UP, 1.5, ("gastric_ca", 2), ("hcc", 1), ("hip", 1), ("spine", 1)),
    _r("srrsh-quzhou", "qjph", "srrsh", UP, 1.5, ("gastric_ca", 2), ("hcc", 1), ("hip", 1), ("spine", 1)),
    _r("zjuwc-quzhou", "qzmch", "zjuwc", UP, 0.8, ("preeclampsia", 1)),
    _r("zjus-quzhou", "qzph", "zjus", UP, 0.5, ("oral_ca", 1)),
    # up: Bijie
    _r("bijie-nrmc", "qxgph", "bjfph", UP, 3, ("stroke", 2), ("stemi", 2), ("hip", 2), ("spine", 1),
       ("duodenal", 1), ("ich", 1)),
    _r("bijie-nrmc", "bjfph", "zjpph", UP, 1.5, ("valve", 1), ("hcc", 1), ("lung_ca", 1), ("ich_mass", 1)),
    # down
    _r("quzhou-neuro", "qzph", "csph", DOWN, 4, _NEURO_DOWN),
    _r("quzhou-neuro", "qzph", "khph", DOWN, 3, _NEURO_DOWN),
    _r("quzhou-neuro", "qzph", "jsph", DOWN, 2, _NEURO_DOWN),
    _r("quzhou-neuro", "qzph", "lyph", DOWN, 2, _NEURO_DOWN),
    _r("quzhou-neuro", "qzph", "qjph", DOWN, 2, _NEURO_DOWN),
    _r("quzhou-neuro", "qzph", "cs-tianma", DOWN, 1.5, ("stroke_rehab", 2), ("ich_rehab", 1)),
    _r("quzhou-neuro", "csph", "cs-tianma", DOWN, 2.5, ("stroke_rehab", 2), ("htn_follow", 2), ("dm_follow", 1)),
    _r("kaihua-ccm", "khph", "kh-huabu", DOWN, 2.5, _GRASSROOTS_DOWN),
    _r("kaihua-ccm", "khph", "kh-chengguan", DOWN, 2.5, _GRASSROOTS_DOWN, ("hip_rehab", 1)),
    _r("zju2-quzhou", "zju2", "qzph", DOWN, 2, ("neuro_postop", 1), ("onc_follow", 1), ("spine_rehab", 1)),
    _r("zju2-quzhou", "zju2", "khph", DOWN, 1, ("hip_rehab", 1), ("neuro_postop", 1)),
    _r("zju2-quzhou", "qzph", "khph", DOWN, 1.5, ("hip_rehab", 1), ("pci_follow", 1), ("onc_follow", 1)),
    _r("zju1-quzhou", "zju1", "csph", DOWN, 1, ("pci_follow", 1), ("onc_follow", 1)),
    _r("zju1-quzhou", "zju1", "jsph", DOWN, 1, ("pci_follow", 1)),
    _r("srrsh-quzhou", "srrsh", "lyph", DOWN, 1, ("onc_follow", 1), ("hip_rehab", 1)),
    _r("srrsh-quzhou", "srrsh", "qjph", DOWN, 1, ("onc_follow", 1), ("hip_rehab", 1)),
    _r("bijie-nrmc", "zjpph", "bjfph", DOWN, 1.5, ("onc_follow", 1), ("pci_follow", 1)),
    _r("bijie-nrmc", "bjfph", "qxgph", DOWN, 2, ("stroke_rehab", 1), ("pci_follow", 1), ("hip_rehab", 1),
       ("spine_rehab", 1)),
    _r("zjuwc-quzhou", "zjuwc", "qzmch", DOWN, 0.5, ("postpartum", 1)),
    # lateral
    _r("zju2-quzhou", "qzph", "qz2ph", LATERAL, 2, ("stroke_rehab", 2), ("dialysis", 1)),
    _r("zju1-quzhou", "jsph", "csph", LATERAL, 1, ("dialysis", 1)),
    _r("srrsh-quzhou", "lyph", "qjph", LATERAL, 1, ("stroke_rehab", 1), ("hip_rehab", 1)),
    _r("kaihua-ccm", "kh-huabu", "kh-chengguan", LATERAL, 0.5, ("stroke_rehab", 1)),
)  # fmt: skip

# Level of care, to know which end of a route is the patient's home.
_LEVEL = {
    **dict.fromkeys(("zju1", "zju2", "srrsh", "zjuwc", "zjus", "zjpph", "gzph"), 3),
    **dict.fromkeys(("qzph", "qz2ph", "qzmch", "bjfph"), 2),
    **dict.fromkeys(("khph", "csph", "jsph", "lyph", "qjph", "qxgph"), 1),
    **dict.fromkeys(("kh-huabu", "kh-chengguan", "cs-tianma"), 0),
}
# City hospitals draw patients from the whole city (region code, weight).
_CITY_CATCHMENT = (("330802", 5), ("330803", 2), ("330822", 1), ("330824", 1), ("330825", 1), ("330881", 1))

# Towns and villages of the patients' counties (for addresses).
_TOWNS: dict[str, tuple[str, ...]] = {
    "330802": ("府山街道", "信安街道", "花园街道", "石梁镇", "航埠镇", "九华乡"),
    "330803": ("樟潭街道", "廿里镇", "全旺镇", "上方镇", "莲花镇"),
    "330822": ("天马街道", "紫港街道", "金川街道", "球川镇", "辉埠镇", "芳村镇"),
    "330824": ("芹阳办事处", "华埠镇", "马金镇", "池淮镇", "村头镇", "音坑乡"),
    "330825": ("龙洲街道", "湖镇镇", "溪口镇", "小南海镇", "詹家镇"),
    "330881": ("双塔街道", "虎山街道", "贺村镇", "峡口镇", "廿八都镇"),
    "520502": ("市西街道", "洪山街道", "德溪街道", "朱昌镇", "杨家湾镇", "清水铺镇"),
}
_VILLAGES = ("前山村", "下溪村", "新塘村", "东岸村", "大坞村", "金星村", "和平村", "永丰村", "桥头村", "上坂村")

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙朱胡郭何林郑叶汪祝毛姜余徐童邵蒋方程应"
_MALE_NAMES = (
    "建国", "国强", "志明", "永康", "德福", "金水", "长生", "根法", "土根", "福林", "明华", "水生", "炳荣",
    "松林", "樟根", "荣华", "志刚", "顺发", "金龙", "树根",
)  # fmt: skip
_FEMALE_NAMES = (
    "秀英", "桂芳", "玉兰", "淑珍", "翠花", "美娟", "凤英", "彩娥", "菊香", "小妹", "金凤", "月娥", "素珍",
    "秀兰", "爱华", "春花", "彩凤", "雪英",
)  # fmt: skip
_YOUNG_NAMES = ("伟", "磊", "敏", "静", "丽", "军", "强", "芳", "俊", "婷", "涛", "燕", "斌", "琴")
_PHONE_PREFIXES = ("130", "133", "135", "137", "138", "139", "150", "152", "158", "159", "180", "186", "187", "189")
_ALLERGIES = ("无", "无", "无", "无", "无", "青霉素过敏", "磺胺类药物过敏", "头孢类抗生素过敏史")

_DECLINE_REASONS = (
    "本院神经外科床位已满，建议转浙大二院或就近上级医院。",
    "经远程阅片评估，患者病情不符合手术指征，建议当地医院保守治疗。",
    "患者发病已超过取栓时间窗，影像评估无获益，建议当地继续内科治疗。",
    "本院暂无该亚专科诊疗条件，建议转省级医院。",
    "资料不全，无法评估，请补充影像资料后重新转诊。",
)
_FORWARD_REASONS = (
    "病情复杂，需省级医院多学科会诊，转至上级医院。",
    "本院该专科今日无床位，经协调转至联盟内其他医院。",
)
_OFFICE_ROUTE_REASONS = ("根据病情与各院床位情况，安排至该院接诊。", "按专科能力分配：该院为对口帮扶学科牵头单位。")
_CANCEL_REASONS = (
    "患者家属要求就近治疗，取消转诊。",
    "患者病情好转，暂不需要转诊。",
    "患者病情变化，已在本院继续救治。",
    "家属经济原因放弃转诊。",
)
_REOPEN_REASONS = ("患者家属来电说明未按时就诊原因，重新预约。", "患者因交通原因未能按时到院，重新安排就诊。")


def _plain(value: float) -> dt.timedelta:
    return dt.timedelta(minutes=value)


def _hours(value: float) -> dt.timedelta:
    return dt.timedelta(hours=value)


def _days(value: float) -> dt.timedelta:
    return dt.timedelta(days=value)


# ----------------------------------------------------------------------------------------
# What the generator knows about the seeded registry


@dataclass(frozen=True)
class _Who:
    """Who took a step: a user account (or none) and the name the timeline shows."""

    user_id: int | None
    label: str


@dataclass
class _Place:
    institution: Institution
    departments: dict[str, Department]  # discipline -> the institution's first department of it
    doctors: dict[str, list[tuple[str, _Who, int]]]  # discipline -> (name, who, practitioner id)
    all_doctors: list[tuple[str, _Who, int]]

    def department(self, disciplines: Sequence[str]) -> Department | None:
        for discipline in disciplines:
            if discipline in self.departments:
                return self.departments[discipline]
        for fallback in (D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE, D.EMERGENCY):
            if fallback in self.departments:
                return self.departments[fallback]
        return next(iter(self.departments.values()), None)


class _Registry:
    """The seeded institutions, departments, practitioners and persona accounts, loaded once."""

    def __init__(self, history_user: User) -> None:
        self.history_user = history_user
        self.consortia = {c.code: c for c in Consortium.objects.select_related("lead_institution").order_by("pk")}
        self.regions = {r.code: r for r in Region.objects.order_by("pk")}
        institutions = {i.code: i for i in Institution.objects.select_related("region").order_by("pk")}
        self.places: dict[str, _Place] = {
            code: _Place(institution, {}, {}, []) for code, institution in institutions.items()
        }
        for department in Department.objects.filter(is_active=True).select_related("institution").order_by("pk"):
            place = self.places[department.institution.code]
            place.departments.setdefault(department.discipline, department)
        practitioners = (
            Practitioner.objects.filter(is_active=True)
            .exclude(title__in=_NURSES)
            .select_related("institution", "department", "user")
            .order_by("licence_number")
        )
        self.personas: dict[tuple[str, str], tuple[str, _Who, int]] = {}
        for p in practitioners:
            place = self.places[p.institution.code]
            who = _Who(p.user_id, p.user.display_name or p.name_zh) if p.user is not None else _Who(None, p.name_zh)
            entry = (p.name_zh, who, p.pk)
            place.all_doctors.append(entry)
            if p.department is not None:
                place.doctors.setdefault(p.department.discipline, []).append(entry)
                if p.user is not None:
                    self.personas[(p.institution.code, p.department.discipline)] = entry
        users = {u.username: u for u in User.objects.filter(username__in=["doctor", "coordinator", "office"])}
        self.doctor = users.get("doctor")
        self.coordinator = _who(users.get("coordinator"))
        office = users.get("office")
        self.office_of = {"zju2-quzhou": _who(office)} if office is not None else {}
        self.levels: dict[tuple[int, str], Levels] = {}
        for row in ServiceLevel.objects.all():
            self.levels[(row.consortium_id, row.urgency)] = Levels(
                _plain(row.receive_within_minutes),
                _plain(row.decide_within_minutes),
                _plain(row.escalate_after_minutes),
                _plain(row.no_show_grace_minutes),
            )

    def service_levels(self, consortium: Consortium, urgency: str) -> Levels:
        return self.levels.get((consortium.pk, urgency)) or DEFAULT_SERVICE_LEVELS[Urgency(urgency)]

    def office(self, consortium: Consortium) -> _Who:
        return self.office_of.get(consortium.code) or _Who(None, str(Side.OFFICE.label))


def _who(user: User | None) -> _Who:
    if user is None:
        return _Who(None, "")
    return _Who(user.pk, user.display_name or user.get_username())


# ----------------------------------------------------------------------------------------
# One referral being written

Row = dict[str, Any]
# A timeline step: action, from-status, to-status, at, actor id, actor label, side, institution id, note, data.
EventRow = tuple[str, str, str, dt.datetime, int | None, str, str, int | None, str, dict[str, Any]]
# An appointment: time, place, instructions, given at, given by.
AppointmentRow = tuple[dt.datetime, str, str, dt.datetime, int | None]


@dataclass
class _Draft:
    route: _Route
    case: _Case
    urgency: Urgency
    created: dt.datetime
    sender: _Who
    patient: Row | int  # a new patient's row, or the id of one already stored
    fields: Row  # the referral's columns, with institutions and departments as objects
    receiver: str | None  # institution code now addressed (None: with the office)
    events: list[EventRow] = field(default_factory=list)
    appointments: list[AppointmentRow] = field(default_factory=list)
    status: str = ""
    stopped: bool = False
    refer_back_at: dt.datetime | None = None
    treated_by: tuple[str, _Who, int] | None = None


class _Round:
    """Generates one round: its referrals, patients, timeline events and appointments."""

    def __init__(
        self,
        *,
        registry: _Registry,
        rng: random.Random,
        marker: str,
        now: dt.datetime,
        numbers: set[str],
        id_numbers: dict[str, Row | int],
    ) -> None:
        self.reg = registry
        self.rng = rng
        self.marker: str | None = marker
        self.now = now
        self.numbers = numbers
        self.id_numbers = id_numbers
        self.tz = timezone.get_default_timezone()
        self.taken: set[str] = set()  # ID numbers drawn in this round
        self.urgent = False  # the referral being drafted is urgent (unidentified patients are likelier)
        self.drafts: list[_Draft] = []
        self.patients: list[Row] = []
        self.routes = {d: [r for r in ROUTES if r.direction == d] for d in (UP, DOWN, LATERAL)}
        self.route_weights = {d: _cumulative([r.weight for r in routes]) for d, routes in self.routes.items()}
        self.system = _Who(None, _("System"))

    # -- random helpers

    def choose(self, items: Sequence[Any]) -> Any:
        return items[int(self.rng.random() * len(items))]

    def weighted(self, pairs: Sequence[tuple[Any, float]]) -> Any:
        x = self.rng.random() * sum(w for _item, w in pairs)
        for item, w in pairs:
            x -= w
            if x < 0:
                return item
        return pairs[-1][0]

    def token(self) -> str:
        if self.marker is not None:
            token, self.marker = self.marker, None
            return token
        return _token(self.rng)

    def number(self, at: dt.datetime) -> str:
        day = at.astimezone(self.tz).strftime("%y%m%d")
        while True:
            n = self.rng.getrandbits(30)
            number = "R" + day + "".join(NUMBER_ALPHABET[(n >> (5 * i)) & 31] for i in range(6))
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def local(self, day: dt.datetime, hour: float) -> dt.datetime:
        """``hour`` hours after local midnight of ``day`` (working hours in China time)."""
        midnight = day.astimezone(self.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight + _hours(hour)

    def phone(self) -> str:
        prefix: str = self.choose(_PHONE_PREFIXES)
        return prefix + f"{self.rng.randrange(10**8):08d}"

    # -- patients

    def new_patient(self, region_code: str, case: _Case, at: dt.datetime, registered_by: Institution) -> Row | int:
        rng = self.rng
        male = rng.random() < case.male
        age = rng.randint(*case.ages)
        surname = self.choose(_SURNAMES)
        if rng.random() < (0.08 if self.urgent else 0.01):
            # Brought in unconscious and alone: registered unidentified, merged later.
            row: Row = {
                "name": "无名氏",
                "sex": Sex.MALE if male else Sex.FEMALE,
                "approximate_age": age,
                "residence_region_id": self.reg.regions[region_code].pk,
            }
        else:
            birth = at.date() - dt.timedelta(days=int((age + rng.random()) * 365.25))
            while True:
                # Sequence numbers from 500 up (an odd 17th digit is male), clear of hand-written examples.
                seq = 500 + 2 * rng.randrange(250) + (1 if male else 0)
                body = f"{region_code}{birth:%Y%m%d}{seq:03d}"
                number = body + ric.calc_check_digit(body + "0")
                if number not in self.taken:
                    break
            self.taken.add(number)
            existing = self.id_numbers.get(number)
            if existing is not None:  # one ID number, one patient: referred again
                return existing
            row = {
                "name": surname + self.choose(_MALE_NAMES if male else _FEMALE_NAMES),
                "sex": Sex.MALE if male else Sex.FEMALE,
                "birth_date": birth,
                "id_number": number,
                "phone": self.phone(),
                "residence_region_id": self.reg.regions[region_code].pk,
                "address": f"{self.choose(_TOWNS[region_code])}{self.choose(_VILLAGES)}{rng.randint(1, 120)}号",
                "emergency_contact_name": surname + self.choose(_YOUNG_NAMES),
                "emergency_contact_relation": self.choose(("儿子", "女儿", "配偶", "儿媳")),
                "emergency_contact_phone": self.phone(),
            }
            self.id_numbers[number] = row
        row.update(public_id=self.uuid(), registered_by_id=registered_by.pk, created_at=at, updated_at=at)
        self.patients.append(row)
        return row

    def home_region(self, route: _Route) -> str:
        """Where the patient lives: by the lower-level end of the route."""
        home = route.sender if _LEVEL[route.sender] <= _LEVEL[route.receiver] else route.receiver
        region = self.reg.places[home].institution.region.code
        if region == "330802":  # the city hospitals' catchment is the whole city
            return str(self.weighted(_CITY_CATCHMENT))
        return region if region in _TOWNS else "330802"

    # -- people

    def doctor(self, code: str, department: Department | None) -> tuple[str, _Who, int] | None:
        place = self.reg.places[code]
        pool = place.all_doctors
        if department is not None:
            persona = self.reg.personas.get((code, department.discipline))
            if persona is not None and self.rng.random() < 0.6:
                return persona
            pool = place.doctors.get(department.discipline) or pool
        return self.choose(pool) if pool else None

    def receiver_who(self, d: _Draft, clinical: bool = False) -> _Who:
        code = d.receiver
        assert code is not None
        if code == "qzph" and not clinical and self.reg.coordinator.user_id is not None:
            return self.reg.coordinator
        if d.treated_by is None:  # the doctor who treats the patient there, the same at every step
            d.treated_by = self.doctor(code, d.fields["to_department"])
        if d.treated_by is None:
            return _Who(None, self.reg.places[code].institution.name_zh)
        return d.treated_by[1]

    # -- the referral

    def draft(
        self,
        route: _Route,
        case: _Case,
        urgency: Urgency,
        created: dt.datetime,
        *,
        patient: Row | int | None = None,
        via_office: bool = False,
        sender_doctor: tuple[str, _Who, int] | None = None,
        plan_from: _Draft | None = None,
    ) -> _Draft:
        rng = self.rng
        reg = self.reg
        frm = reg.places[route.sender]
        to = reg.places[route.receiver]
        from_department = frm.department(case.sender_disciplines)
        to_department = to.department(case.receiver_disciplines)
        doctor = sender_doctor or self.doctor(route.sender, from_department)
        # Who writes it: the demo doctor at Changshan, a doctor with an account, or else the
        # history account (the timeline then names the referring doctor, who has no account).
        if route.sender == "csph" and reg.doctor is not None:
            sender, created_by_id = _who(reg.doctor), reg.doctor.pk
        elif doctor is not None and doctor[1].user_id is not None:
            sender, created_by_id = doctor[1], doctor[1].user_id
        else:
            sender = _Who(None, doctor[0] if doctor else frm.institution.name_zh)
            created_by_id = reg.history_user.pk
        self.urgent = urgency == Urgency.URGENT
        if patient is None:
            patient = self.new_patient(self.home_region(route), case, created, frm.institution)
        fields: Row = {
            "public_id": self.uuid(),
            "status_token": self.token(),
            "number": self.number(created),
            "direction": route.direction,
            "urgency": urgency,
            "consortium": reg.consortia[route.consortium],
            "from_institution": frm.institution,
            "from_department": from_department,
            "from_practitioner_id": doctor[2] if doctor else None,
            "to_institution": None if via_office else to.institution,
            "to_department": None if via_office else to_department,
            "created_by_id": created_by_id,
            "reason": case.reason if urgency == Urgency.URGENT or case.routine is None else case.routine[0],
            "requested_service": case.service,
            "diagnosis_code": case.code,
            "diagnosis_name": case.name,
            "key_findings": self.choose(case.findings),
            "current_treatment": case.treatment
            if urgency == Urgency.URGENT or case.routine is None
            else case.routine[1],
            "allergies": self.choose(_ALLERGIES),
            "consent_obtained_by": doctor[0] if doctor else sender.label,
            "consent_method": self.weighted(_CONSENT_METHODS),
            "consent_at": created - _plain(rng.uniform(3, 45)),
            "created_at": created,
            "updated_at": created,
        }
        if plan_from is not None:
            up = plan_from.fields
            fields["diagnosis_code"] = up["diagnosis_code"]
            fields["diagnosis_name"] = f"{up['outcome_diagnosis']}（{case.stage}）"[:120]
            fields["reason"] = f"{up['number']}号上转患者治疗结束，病情稳定，按计划转回继续{case.stage}管理。"
        if case.plan is not None:
            diagnosis, done, medication, follow_up, warning = case.plan
            if plan_from is not None:
                diagnosis, done = plan_from.fields["outcome_diagnosis"], plan_from.fields["outcome_treatment"]
            fields.update(
                plan_diagnosis=diagnosis[:200],
                plan_treatment_done=done,
                plan_medication=medication,
                plan_follow_up=follow_up,
                plan_warning_signs=warning,
            )
        d = _Draft(
            route=route,
            case=case,
            urgency=urgency,
            created=created,
            sender=sender,
            patient=patient,
            fields=fields,
            receiver=None if via_office else route.receiver,
        )
        if via_office:
            d.fields["_destination"] = (to.institution, to_department)
        self.drafts.append(d)
        return d

    def step(self, d: _Draft, action: str, at: dt.datetime, side: Side, who: _Who, note: str = "", **data: Any) -> bool:
        """One step of the walk, or nothing (and no later step) once ``at`` is past ``now``."""
        if d.stopped or at > self.now:
            d.stopped = True
            return False
        if d.events and at <= d.events[-1][3]:  # the timeline only moves forward
            at = d.events[-1][3] + _plain(1)
            if at > self.now:
                d.stopped = True
                return False
        action = str(action)  # plain strings: a TextChoices member hashes by its name, not its value
        if action == CREATE:
            from_status, to_status = "", _DRAFT
        else:
            to_status, sides = _TABLE[(d.status, action)]
            assert side in sides, (d.status, action, side)
            from_status = d.status
        institution: Institution | None
        if side == SENDER:
            institution = d.fields["from_institution"]
        elif side == RECEIVER:
            institution = d.fields["to_institution"]
        elif side == OFFICE:
            institution = d.fields["consortium"].lead_institution
        else:
            institution = None
        d.events.append(
            (action, from_status, to_status, at, who.user_id, who.label, str(side),
             institution.pk if institution else None, note, data)
        )  # fmt: skip
        d.status = to_status
        d.fields["updated_at"] = at
        if note:
            d.fields["last_reason"] = note[:500]
        return True

    def _deadlines(self, d: _Draft, at: dt.datetime) -> None:
        levels = self.reg.service_levels(d.fields["consortium"], d.urgency)
        d.fields["receive_due_at"] = at + levels.receive_within
        d.fields["decide_due_at"] = at + levels.decide_within

    # Each method below is one service step, setting the fields the service sets.

    def create(self, d: _Draft) -> bool:
        return self.step(d, CREATE, d.created, SENDER, d.sender)

    def send(self, d: _Draft, at: dt.datetime) -> bool:
        if not self.step(d, A.SEND, at, SENDER, d.sender):
            return False
        d.fields["sent_at"] = at
        self._deadlines(d, at)
        return True

    def receive(self, d: _Draft, at: dt.datetime) -> bool:
        if not self.step(d, A.RECEIVE, at, RECEIVER, self.receiver_who(d)):
            return False
        d.fields.setdefault("received_at", at)
        return True

    def forward(self, d: _Draft, at: dt.datetime, *, office: bool) -> bool:
        consortium = d.fields["consortium"]
        if office:
            institution, department = d.fields["_destination"]
            who, note = self.reg.office(consortium), self.choose(_OFFICE_ROUTE_REASONS)
        else:
            target = self._forward_target(d)
            if target is None:
                return False
            institution = target
            department = self.reg.places[target.code].department(d.case.receiver_disciplines)
            who, note = self.receiver_who(d), self.choose(_FORWARD_REASONS)
        previous = d.fields["to_institution"]
        side = OFFICE if office else RECEIVER
        if not self.step(
            d, A.FORWARD, at, side, who, note,
            from_institution=previous.code if previous else None, to_institution=institution.code,
        ):  # fmt: skip
            return False
        d.fields["to_institution"] = institution
        d.fields["to_department"] = department
        d.receiver = institution.code
        d.treated_by = None
        self._deadlines(d, at)
        return True

    def _forward_target(self, d: _Draft) -> Institution | None:
        """A third member of the consortium at the same or a higher level of care."""
        consortium = d.fields["consortium"]
        members = [r.receiver for r in ROUTES if r.consortium == consortium.code and r.direction == UP]
        members.append(consortium.lead_institution.code)
        skip = {d.route.sender, d.receiver}
        level = _LEVEL[d.receiver or d.route.receiver]
        candidates = sorted({m for m in members if m not in skip and _LEVEL[m] >= level})
        if not candidates:
            return None
        return self.reg.places[self.choose(candidates)].institution

    def accept(self, d: _Draft, at: dt.datetime) -> bool:
        if not self.step(d, A.ACCEPT, at, RECEIVER, self.receiver_who(d)):
            return False
        d.fields.setdefault("decided_at", at)
        return True

    def decline(self, d: _Draft, at: dt.datetime) -> bool:
        if not self.step(d, A.DECLINE, at, RECEIVER, self.receiver_who(d), self.choose(_DECLINE_REASONS)):
            return False
        d.fields.setdefault("decided_at", at)
        return True

    def cancel(self, d: _Draft, at: dt.datetime, side: Side = SENDER) -> bool:
        who = d.sender if side == SENDER else self.receiver_who(d)
        reason = "" if d.status == S.DRAFT else self.choose(_CANCEL_REASONS)
        return self.step(d, A.CANCEL, at, side, who, reason)

    def schedule(self, d: _Draft, at: dt.datetime, appointment: dt.datetime) -> bool:
        to = d.fields["to_institution"]
        department = d.fields["to_department"]
        if d.urgency == Urgency.URGENT:
            place = f"{to.short_name or to.name_zh}急诊科（绿色通道）"
            instructions = "救护车直接送至急诊抢救室，出发前电话告知；携带影像资料及用药记录。"
        else:
            where = "住院部护士站" if d.case.service in _INPATIENT else "门诊"
            place = f"{to.short_name or to.name_zh}{department.name_zh if department else ''}{where}"
            instructions = "请携带身份证、医保卡、既往病历及影像资料按时到达；如需改期请提前一天电话联系。"
        place = place[:200]
        who = self.receiver_who(d)
        data: dict[str, Any] = {"scheduled_at": appointment.isoformat(), "place": place}
        previous = d.fields.get("scheduled_at")
        if previous is not None:
            data["previous"] = previous.isoformat()
        if not self.step(d, A.SCHEDULE, at, RECEIVER, who, **data):
            return False
        d.fields.update(scheduled_at=appointment, scheduled_place=place, patient_instructions=instructions)
        d.appointments.append((appointment, place, instructions, at, who.user_id))
        return True

    def check_in(self, d: _Draft, at: dt.datetime) -> bool:
        if not self.step(d, A.CHECK_IN, at, RECEIVER, self.receiver_who(d)):
            return False
        d.fields["arrived_at"] = at
        return True

    def start_treatment(self, d: _Draft, at: dt.datetime) -> bool:
        return self.step(d, A.START_TREATMENT, at, RECEIVER, self.receiver_who(d, clinical=True))

    def return_outcome(self, d: _Draft, at: dt.datetime) -> bool:
        diagnosis, treatment, result, recommendations = d.case.outcome
        if d.route.direction != UP and d.fields.get("plan_diagnosis"):
            diagnosis = d.fields["plan_diagnosis"]
        if not self.step(d, A.RETURN_OUTCOME, at, RECEIVER, self.receiver_who(d, clinical=True)):
            return False
        d.fields.update(
            outcome_diagnosis=diagnosis[:200],
            outcome_treatment=treatment,
            outcome_result=result,
            outcome_recommendations=recommendations,
            outcome_at=at,
        )
        if d.route.direction == UP:  # an up-referral's outcome says whether to refer back down
            back = bool(d.case.back) and self.rng.random() < 0.75
            d.fields["refer_back"] = back
            if back:
                on = (at + _days(self.rng.randint(0, 3))).astimezone(self.tz).date()
                d.fields["refer_back_on"] = on
                d.refer_back_at = dt.datetime.combine(on, dt.time(9), tzinfo=self.tz)
        return True

    def acknowledge(self, d: _Draft, at: dt.datetime) -> bool:
        if not self.step(d, A.ACKNOWLEDGE, at, SENDER, d.sender):
            return False
        d.fields["closed_at"] = at
        return True

    def no_show(self, d: _Draft, at: dt.datetime) -> bool:
        appointment = d.fields["scheduled_at"]
        return self.step(d, A.MARK_NO_SHOW, at, SYSTEM, self.system, scheduled_at=appointment.isoformat())

    def reopen(self, d: _Draft, at: dt.datetime) -> bool:
        if not self.step(d, A.REOPEN, at, RECEIVER, self.receiver_who(d), self.choose(_REOPEN_REASONS)):
            return False
        d.fields.update(scheduled_at=None, scheduled_place="")
        return True

    # -- a whole life, cut where "now" falls

    def walk(self, d: _Draft) -> None:
        """Every step a referral of this kind usually takes, at plausible times."""
        rng = self.rng
        urgent = d.urgency == Urgency.URGENT
        levels = self.reg.service_levels(d.fields["consortium"], d.urgency)
        if not self.create(d):
            return
        fate = rng.random()
        if fate < 0.006:  # a draft never sent
            return
        if fate < 0.012:
            self.cancel(d, d.created + _plain(rng.uniform(10, 600)))
            return
        t = d.created + _plain(rng.uniform(1, 12) if urgent else rng.uniform(3, 60))
        if not self.send(d, t):
            return
        if d.receiver is None:  # addressed to the office, which routes it
            t += _plain(rng.uniform(8, 40) if urgent else rng.uniform(20, 240))
            if not self.forward(d, t, office=True):
                return
        if rng.random() < 0.01:
            self.cancel(d, t + _plain(rng.uniform(10, 120)))
            return
        # Receipt: within minutes when urgent, within hours when routine; a few late.
        if rng.random() < 0.04:
            t += levels.receive_within * rng.uniform(1.1, 1.8)
        else:
            t += _plain(rng.uniform(2, 35) if urgent else rng.uniform(10, 420))
        if not self.receive(d, t):
            return
        if d.route.direction == UP and rng.random() < 0.025:  # passed on to a better-placed hospital
            if self.forward(d, t + _plain(rng.uniform(5, 120)), office=False):
                t = d.events[-1][3] + _plain(rng.uniform(5, 90))
                if not self.receive(d, t):
                    return
            elif d.stopped:
                return
        decision = rng.random()
        t += _plain(rng.uniform(3, 40) if urgent else rng.uniform(20, 900))
        if rng.random() < 0.02:
            t = d.fields["decide_due_at"] + _plain(rng.uniform(30, 600))
        if decision < 0.06:
            self.decline(d, t)
            return
        if decision < 0.07:
            self.cancel(d, t, side=self.weighted(((SENDER, 3), (RECEIVER, 1))))
            return
        if not self.accept(d, t):
            return
        if rng.random() < 0.012:
            self.cancel(d, t + _hours(rng.uniform(1, 30)))
            return
        # Green channel: an urgent transfer comes straight in; everyone else gets an appointment.
        if urgent and d.route.direction == UP and rng.random() < 0.7:
            t += _plain(rng.uniform(35, 150))
        else:
            booked = t + _plain(rng.uniform(3, 180))
            if urgent:
                appointment = booked + _plain(rng.uniform(30, 180))
            else:
                days = rng.randint(1, 5 if d.route.direction == DOWN else 7)
                appointment = self.local(booked + _days(days), self.choose(_CLINIC_HOURS))
            if not self.schedule(d, booked, appointment):
                return
            if not urgent and rng.random() < 0.05:  # rescheduled once; the old slot stays in history
                moved = booked + _hours(rng.uniform(2, 30))
                if moved < appointment:
                    appointment = self.local(appointment + _days(rng.randint(1, 3)), 9.0)
                    if not self.schedule(d, moved, appointment):
                        return
            if rng.random() < 0.012:
                self.cancel(d, min(appointment, d.events[-1][3] + _hours(rng.uniform(2, 24))))
                return
            if not urgent and rng.random() < 0.035:
                if not self.no_show(d, appointment + levels.no_show_grace + _plain(rng.uniform(1, 15))):
                    return
                after = rng.random()
                if after >= 0.4:
                    if after < 0.8:  # the referring doctor learns the patient went elsewhere, and ends it
                        self.cancel(d, d.events[-1][3] + _days(rng.uniform(1, 7)))
                    return
                t = d.events[-1][3] + _hours(rng.uniform(2, 48))
                if not self.reopen(d, t):
                    return
                booked = t + _plain(rng.uniform(5, 60))
                appointment = self.local(booked + _days(rng.randint(1, 4)), 9.0)
                if not self.schedule(d, booked, appointment):
                    return
            t = max(appointment + _plain(rng.uniform(-40, 50)), d.events[-1][3] + _plain(5))
        if not self.check_in(d, t):
            return
        if d.case.service in _INPATIENT:
            t += _plain(rng.uniform(10, 180))
            if not self.start_treatment(d, t):
                return
            low, high = d.case.stay_days
            t = self.local(t + _days(rng.uniform(low, high)), rng.uniform(9, 17))
        else:
            t += _hours(rng.uniform(1, 6))
        if not self.return_outcome(d, t):
            return
        ending = rng.random()
        if ending < 0.05:  # the sender never confirms: the loop stays open
            return
        self.acknowledge(d, t + _hours(rng.uniform(1, 96)))

    # -- the round

    def history(self) -> None:
        """``ROUND_SIZE`` referrals over the two years before ``now``, in time order."""
        rng = self.rng
        start = self.now - _days(HISTORY_DAYS)
        growth = 0.35  # about a third more referrals at the end of the period than at its start
        slots: list[tuple[dt.datetime, float]] = []
        for _slot in range(ROUND_SIZE):
            u = rng.random()
            f = ((1 + 2 * growth * u * (1 + growth / 2)) ** 0.5 - 1) / growth  # inverse of the growing density
            hour = rng.uniform(0, 24) if rng.random() < 0.2 else rng.uniform(7.8, 17.5)
            at = self.local(start + _days(f * HISTORY_DAYS), hour) + _plain(rng.random())
            if at > self.now - _plain(20):
                at = self.now - _plain(20 + rng.uniform(0, 600))
            slots.append((at, f))
        slots.sort(key=lambda s: s[0])
        pending: list[tuple[dt.datetime, int, _Draft]] = []  # up-referrals whose outcome says "refer back"
        serial = 0
        for at, f in slots:
            x = rng.random()
            down_share = 0.12 + 0.34 * f
            direction = DOWN if x < down_share else LATERAL if x < down_share + 0.05 else UP
            if direction == DOWN:
                while pending and pending[0][0] < at - _days(45):
                    heapq.heappop(pending)  # went home without a formal referral back
                if pending and pending[0][0] <= at and rng.random() < 0.65:
                    up = heapq.heappop(pending)[2]
                    self.refer_back(up, at)
                    continue
            routes = self.routes[direction]
            route = routes[bisect.bisect_right(self.route_weights[direction], rng.random())]
            case = CASES[self.weighted(route.cases)]
            urgency = Urgency.URGENT if rng.random() < case.urgent else Urgency.ROUTINE
            via_office = direction == UP and route.consortium in ("zju2-quzhou", "quzhou-neuro") and rng.random() < 0.03
            d = self.draft(route, case, urgency, at, via_office=via_office)
            self.walk(d)
            if d.refer_back_at is not None:
                serial += 1
                heapq.heappush(pending, (d.refer_back_at, serial, d))

    def refer_back(self, up: _Draft, at: dt.datetime) -> _Draft:
        """The hospital that treated a patient sends them home: the same patient, the loop closed."""
        back = CASES[up.case.back]
        route = _Route(up.route.consortium, up.receiver or up.route.receiver, up.route.sender, DOWN, 0, ())
        d = self.draft(route, back, Urgency.ROUTINE, at, patient=up.patient, sender_doctor=up.treated_by, plan_from=up)
        self.walk(d)
        return d

    def live_work(self) -> None:
        """Open referrals of the last days, so the personas find work waiting (some overdue)."""
        route = {(r.consortium, r.sender, r.receiver): r for r in ROUTES}
        neuro_up = route[("quzhou-neuro", "csph", "qzph")]
        kh_up = route[("quzhou-neuro", "khph", "qzph")]
        jsph_up = route[("quzhou-neuro", "jsph", "qzph")]
        neuro_down = route[("quzhou-neuro", "qzph", "csph")]
        tianma_down = route[("quzhou-neuro", "qzph", "cs-tianma")]
        bijie_up = route[("bijie-nrmc", "qxgph", "bjfph")]
        zju2_up = route[("zju2-quzhou", "qzph", "zju2")]
        kh_qzph = route[("zju2-quzhou", "khph", "qzph")]
        urgent, routine = Urgency.URGENT, Urgency.ROUTINE
        hour, day = 60, 24 * 60
        # Incoming at Quzhou People's Hospital (the coordinator's board) and outgoing at Changshan.
        self.scripted(neuro_up, "stroke", urgent, 25, "sent")
        self.scripted(neuro_up, "ich", routine, 200, "sent")
        self.scripted(neuro_up, "stroke_stenosis", routine, 31 * hour, "sent")  # not received in 24 h: overdue
        self.scripted(kh_up, "ich", urgent, 200, "sent")  # urgent and unread for over 2 h: overdue
        self.scripted(neuro_up, "ich_mass", routine, 300, "received")
        self.scripted(jsph_up, "stroke_stenosis", routine, 53 * hour, "received")  # undecided after 48 h: overdue
        self.scripted(neuro_up, "ventricle", routine, 20 * hour, "accepted")
        self.scripted(neuro_up, "stroke", urgent, 50, "accepted")
        self.scripted(neuro_up, "ich", routine, 26 * hour, "arriving_today")
        self.scripted(neuro_up, "stroke_stenosis", routine, 30 * hour, "scheduled")
        self.scripted(kh_up, "stroke", routine, 3 * day, "arrived")
        self.scripted(neuro_up, "ich", urgent, 4 * day, "in_treatment")
        self.scripted(neuro_up, "stroke", urgent, 9 * day, "outcome_returned")
        self.scripted(neuro_up, "stroke", urgent, 12 * day, "closed")
        self.scripted(neuro_up, "ich", routine, 6 * day, "declined")
        self.scripted(neuro_up, "stroke_stenosis", routine, 2 * day, "cancelled")
        self.scripted(neuro_up, "stroke_stenosis", routine, 8 * day, "no_show")
        self.scripted(neuro_up, "ich_mass", routine, 90, "draft")
        self.scripted(kh_qzph, "hip", routine, 180, "forwarded", via_office=True)  # routed by the office
        self.scripted(kh_qzph, "stemi", urgent, 15, "sent", via_office=True)  # waiting for the office
        # Down to Changshan (the doctor receives too) and to the Tianma community centre.
        self.scripted(neuro_down, "stroke_rehab", routine, 150, "sent")
        self.scripted(neuro_down, "ich_rehab", routine, 22 * hour, "scheduled")
        self.scripted(tianma_down, "stroke_rehab", routine, 28 * hour, "accepted")
        # The stationed expert's board at zju2 and the Bijie doctor's.
        self.scripted(zju2_up, "ventricle", routine, 400, "received")
        self.scripted(bijie_up, "hip", urgent, 40, "sent")
        self.scripted(bijie_up, "spine", routine, 26 * hour, "scheduled")

    def scripted(
        self, route: _Route, case: str, urgency: Urgency, age: float, until: str, *, via_office: bool = False
    ) -> _Draft:
        """A referral created ``age`` minutes ago, walked by ``_LIVE_PLANS[until]``."""

        def ago(minutes: float) -> dt.datetime:
            return self.now - _plain(minutes)

        d = self.draft(route, CASES[case], urgency, ago(age), via_office=via_office)
        self.create(d)
        steps: dict[str, Any] = {
            "send": self.send,
            "receive": self.receive,
            "accept": self.accept,
            "decline": self.decline,
            "cancel": self.cancel,
            "no_show": self.no_show,
            "check_in": self.check_in,
            "start_treatment": self.start_treatment,
            "return_outcome": self.return_outcome,
            "acknowledge": self.acknowledge,
        }
        appointment = _LIVE_APPOINTMENTS.get(until)
        for action, fraction in _LIVE_PLANS[until]:
            at = ago(age * (1 - fraction))
            if action == "route":
                done = self.forward(d, at, office=True)
            elif action == "schedule":
                when = self.local(self.now + _days(3), 9.0) if appointment is None else ago(-appointment)
                done = self.schedule(d, at, when)
            else:
                done = steps[action](d, at)
            assert done, (until, action)
        return d


# The workflow table by plain strings (the walk checks every step against it).
_TABLE: dict[tuple[str, str], tuple[str, frozenset[Side]]] = {
    (str(status), str(action)): (str(t.to), t.sides) for (status, action), t in TRANSITIONS.items()
}
_DRAFT = str(S.DRAFT)

_CONSENT_METHODS = (
    (ConsentMethod.WRITTEN, 70),
    (ConsentMethod.ELECTRONIC, 12),
    (ConsentMethod.GUARDIAN, 12),
    (ConsentMethod.VERBAL, 6),
)
_CLINIC_HOURS = (8.0, 8.5, 9.0, 9.5, 10.0, 14.0, 14.5, 15.0)

# Scripted walks for the live referrals: (step, share of the referral's age elapsed when it was taken).
_LIVE_PLANS: dict[str, tuple[tuple[str, float], ...]] = {
    "draft": (),
    "sent": (("send", 0.1),),
    "forwarded": (("send", 0.1), ("route", 0.4)),
    "received": (("send", 0.05), ("receive", 0.2)),
    "accepted": (("send", 0.05), ("receive", 0.15), ("accept", 0.3)),
    "scheduled": (("send", 0.05), ("receive", 0.15), ("accept", 0.3), ("schedule", 0.4)),
    "arriving_today": (("send", 0.05), ("receive", 0.15), ("accept", 0.3), ("schedule", 0.4)),
    "arrived": (("send", 0.02), ("receive", 0.05), ("accept", 0.1), ("schedule", 0.15), ("check_in", 0.9)),
    "in_treatment": (("send", 0.01), ("receive", 0.02), ("accept", 0.03), ("check_in", 0.05),
                     ("start_treatment", 0.07)),
    "outcome_returned": (("send", 0.01), ("receive", 0.015), ("accept", 0.02), ("check_in", 0.03),
                         ("start_treatment", 0.04), ("return_outcome", 0.97)),
    "closed": (("send", 0.01), ("receive", 0.015), ("accept", 0.02), ("check_in", 0.03),
               ("start_treatment", 0.04), ("return_outcome", 0.75), ("acknowledge", 0.85)),
    "declined": (("send", 0.01), ("receive", 0.05), ("decline", 0.1)),
    "cancelled": (("send", 0.05), ("receive", 0.1), ("accept", 0.2), ("cancel", 0.5)),
    "no_show": (("send", 0.01), ("receive", 0.03), ("accept", 0.05), ("schedule", 0.07), ("no_show", 0.4)),
}  # fmt: skip
# Their appointments, in minutes from now (negative: past); absent: in three days at 9:00.
_LIVE_APPOINTMENTS: dict[str, float] = {"arriving_today": 120, "arrived": -450, "no_show": -9000}


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    out, running = [], 0.0
    for w in weights:
        running += w / total
        out.append(running)
    out[-1] = 1.0 + 1e-9
    return out


def _token(rng: random.Random) -> str:
    """32 URL-safe characters, as ``secrets.token_urlsafe(24)`` gives, from the seeded generator."""
    return base64.urlsafe_b64encode(rng.getrandbits(192).to_bytes(24, "big")).decode()


def _round_rng(seed: int, round_no: int) -> tuple[random.Random, str]:
    """A round's generator and its marker (the first thing drawn, so it does not depend on ``now``)."""
    rng = random.Random(f"yilian-demo-referrals:{seed}:{round_no}")
    return rng, _token(rng)


# ----------------------------------------------------------------------------------------
# Writing: plain rows through executemany or COPY (bulk_create on SQLite inserts 15 referrals per
# statement and builds a model instance per row; this is ten times faster).


class _Table:
    """An INSERT of all of a model's columns, values adapted as Django adapts them."""

    def __init__(self, model: type[models.Model], *, with_id: bool = True) -> None:
        fields = [f for f in model._meta.concrete_fields if with_id or not f.primary_key]
        self.names = [f.attname for f in fields]
        self.defaults = [None if f.primary_key else f.get_default() for f in fields]
        ops = connection.ops
        self.adapters = [_adapter(f) for f in fields]
        columns = ", ".join(ops.quote_name(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        table = ops.quote_name(model._meta.db_table)
        self.sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
        self.copy_sql = f"COPY {table} ({columns}) FROM STDIN"

    def insert(self, rows: Sequence[Row]) -> None:
        """Rows as dicts by attribute name; a missing column takes the field's default."""
        columns = list(zip(self.names, self.defaults, strict=True))
        self.insert_values([[row.get(name, default) for name, default in columns] for row in rows])

    def insert_values(self, values: Sequence[list[Any]]) -> None:
        """Rows as lists in column order, adapted here (in place)."""
        convert = [(i, adapt) for i, adapt in enumerate(self.adapters) if adapt is not _identity]
        for row in values:
            for i, adapt in convert:
                row[i] = adapt(row[i])
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":  # COPY: several times faster than executemany
                with cursor.cursor.copy(self.copy_sql) as copy:
                    for row in values:
                        copy.write_row(row)
                return
            for start in range(0, len(values), 5000):
                cursor.executemany(self.sql, values[start : start + 5000])


def _identity(value: Any) -> Any:
    return value


def _adapter(f: models.Field[Any, Any]) -> Any:
    kind = f.get_internal_type()
    if connection.vendor == "sqlite":
        if kind == "DateTimeField":
            return _sqlite_datetime
        if kind == "DateField":
            return lambda v: None if v is None else v.isoformat()
        if kind == "UUIDField":
            return lambda v: None if v is None else v.hex
    if kind == "JSONField":
        encoder = getattr(f, "encoder", None)
        adapt_json = connection.ops.adapt_json_value
        empty = adapt_json({}, encoder)  # most timeline steps carry no data
        return lambda v: adapt_json(v, encoder) if v else empty
    return _identity


def _sqlite_datetime(value: dt.datetime | None) -> str | None:
    """As Django stores it on SQLite: naive UTC (USE_TZ), ``YYYY-MM-DD HH:MM:SS[.ffffff]``."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(" ")[:-6]  # without the "+00:00"


def _reserve_ids(model: type[models.Model], n: int) -> list[int]:
    """Primary keys for ``n`` new rows, so that referrals and events can point at them before the insert."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, n])
            return [row[0] for row in cursor.fetchall()]
        # SQLite: the write lock is held (IMMEDIATE transaction); continue after the highest id ever used.
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}")  # noqa: S608
        highest = cursor.fetchone()[0]
        if connection.vendor == "sqlite":
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            highest = max(highest, row[0] if row else 0)
    return list(range(highest + 1, highest + 1 + n))


_FOREIGN_KEYS = ("consortium", "from_institution", "from_department", "to_institution", "to_department")


def _write(drafts: list[_Draft], patients: list[Row]) -> tuple[int, int]:
    """Insert one round; returns the number of timeline events and appointments written."""
    for row, pk in zip(patients, _reserve_ids(Patient, len(patients)), strict=True):
        row["id"] = pk
    _Table(Patient).insert(patients)
    drafts.sort(key=lambda d: (d.created, d.fields["number"]))
    referrals: list[Row] = []
    events: list[list[Any]] = []
    appointments: list[list[Any]] = []
    for d, pk in zip(drafts, _reserve_ids(Referral, len(drafts)), strict=True):
        row = d.fields
        row.pop("_destination", None)
        for name in _FOREIGN_KEYS:
            obj = row.pop(name)
            row[f"{name}_id"] = obj.pk if obj is not None else None
        row["id"] = pk
        row["status"] = d.status
        row["patient_id"] = d.patient if isinstance(d.patient, int) else d.patient["id"]
        referrals.append(row)
        events.extend([pk, *event] for event in d.events)
        appointments.extend([pk, *appointment] for appointment in d.appointments)
    _Table(Referral).insert(referrals)
    event_table = _Table(ReferralEvent, with_id=False)
    order = ["referral_id", "action", "from_status", "to_status", "at", "actor_id", "actor_label", "side",
             "institution_id", "note", "data"]  # fmt: skip
    assert event_table.names == order, event_table.names  # the order EventRow is built in
    event_table.insert_values(events)
    appointment_table = _Table(ReferralAppointment, with_id=False)
    order = ["referral_id", "scheduled_at", "place", "instructions", "created_at", "created_by_id"]
    assert appointment_table.names == order, appointment_table.names
    appointment_table.insert_values(appointments)
    return len(events), len(appointments)


def _history_user() -> tuple[User, bool]:
    """The account that stands for senders who have no login of their own (it cannot log in)."""
    user = User.objects.filter(username=HISTORY_USERNAME).first()
    if user is not None:
        return user, False
    user = registry_services.user_create(
        actor=None, username=HISTORY_USERNAME, password=None, display_name="转诊历史数据（演示）"
    )
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user, True


def seed_referrals(seed: int = 2018, scale: int = 1, *, now: dt.datetime | None = None) -> ReferralSeedReport:
    """Write the rounds of referral history not yet in the database; say what was created."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    now = now or timezone.now()
    rounds = [(n, *_round_rng(seed, n)) for n in range(scale)]
    markers = [marker for _n, _rng, marker in rounds]
    present = set(Referral.objects.filter(status_token__in=markers).values_list("status_token", flat=True))
    todo = [r for r in rounds if r[2] not in present]
    if not todo:
        return ReferralSeedReport()
    created = {"patients": 0, "referrals": 0, "events": 0, "appointments": 0}
    with transaction.atomic():
        history_user, user_created = _history_user()
        registry = _Registry(history_user)
        numbers: set[str] = set(Referral.objects.values_list("number", flat=True))
        id_numbers: dict[str, Row | int] = {
            number: pk
            for number, pk in Patient.objects.filter(id_number__isnull=False).values_list("id_number", "pk")
            if number
        }
        for round_no, rng, marker in todo:
            generator = _Round(
                registry=registry, rng=rng, marker=marker, now=now, numbers=numbers, id_numbers=id_numbers
            )
            if round_no == 0:
                generator.live_work()
            generator.history()
            events, appointments = _write(generator.drafts, generator.patients)
            for row in generator.patients:
                if row.get("id_number"):
                    id_numbers[row["id_number"]] = row["id"]
            created["patients"] += len(generator.patients)
            created["referrals"] += len(generator.drafts)
            created["events"] += events
            created["appointments"] += appointments
        audit_record(
            actor=None,
            action=AuditAction.CREATE,
            object_type="referrals.referral",
            object_repr="demo referral history",
            changes={"seeded": created["referrals"], "patients": created["patients"], "seed": seed, "scale": scale},
        )
    return ReferralSeedReport(users=int(user_created), **created)
