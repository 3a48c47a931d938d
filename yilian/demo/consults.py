# ruff: noqa: E501  (the clinical tables read best one entry per line)
"""A year of demo teleconsultations: the consortium asking its lead hospitals for advice.

What the history shows (DOMAIN.md §3 and §6, the teleconsultation issue):
- county and city members ask the lead hospitals of the agreements in force (Kaihua, Quzhou and
  Quzhou Second to the Second Affiliated, Changshan and Jiangshan to the First Affiliated, Bijie to
  the Provincial People's, Quzhou to the Stomatology Hospital); ``services.agreement_between``
  finds an agreement for every pair, and the consult's consortium is that agreement's;
- most are eConsults answered in a thread within about a day (median about 21 hours, as in the
  Champlain BASE service), some after asking for more information, a few with a follow-up
  question; about two thirds of the close-outs say a referral was avoided, value mostly 4 or 5;
- scheduled teleconsultations with a time slot and a video link; urgent readings (imaging, ECG,
  pathology slides) and intra-operative frozen sections from the county hospitals, read by the
  lead hospital's pathologists within 30 minutes while the patient is on the table;
- every second Thursday at noon the neuro-oncology MDT of the Second Affiliated Hospital, chaired
  by the stationed neurosurgeon 陈志远 with radiology, pathology, medical and radiation oncology
  and neurology, discusses two to four cases: one opinion per expert, the chair's conclusion;
  one meeting was cancelled and its cases moved to the next;
- a few requests are declined with a reason, cancelled or left to expire;
- live work for the personas: requests waiting for 陈志远 (one overdue) and an eConsult in
  discussion with him; an answered eConsult waiting for 徐春华's close-out; unassigned requests in
  the teleconsultation centre's pool and next week's MDT meeting with cases on its agenda; a
  reading waiting for 何静 and one for 蒋文博.

Invariants:
- every consult is a walk through ``workflow.TRANSITIONS``, each step by a side the table allows
  for its kind, with one ``ConsultEvent`` per step after the request's, cut where ``now`` falls;
  the deadlines (accept by, answer by) are those ``services`` would set, from the consortium's
  service levels;
- deterministic: the data is a function of ``seed``, ``now`` and the seeded registry; numbers
  (C + yymmdd + 6 characters) and public ids come from the seeded generator; the run is
  recognised by the public id of its first consult, drawn first and so independent of ``now``:
  seeding again creates nothing;
- the experts and requesting doctors the stories need and the registry lacks are created
  through the registry services (audited one by one; the zju2 MDT experts get accounts that
  cannot log in by password); the history itself (patients, meetings, consults, timelines,
  threads, opinions) is written in bulk, with one audit row for the run.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from stdnum.cn import ric

from yilian.consults import services as consult_services
from yilian.consults.models import (
    ConsentMethod,
    Consult,
    ConsultEvent,
    Kind,
    Meeting,
    Message,
    MessageKind,
    Opinion,
    Participant,
    ReadingType,
    Status,
    Urgency,
)
from yilian.consults.services import EXPIRE_AFTER, Levels
from yilian.consults.workflow import TITLE_RANK, TRANSITIONS, Action, Side
from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Role
from yilian.demo.referrals import (
    _CITY_CATCHMENT,
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
)
from yilian.dispatch import selectors as dispatch_selectors
from yilian.patients.models import Patient, Sex
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

HISTORY_DAYS = 365
MDT_EVERY_DAYS = 14
MDT_TITLE = "神经肿瘤多学科讨论（MDT）"
RUN = "yilian-demo-consults"

D = Discipline
T = ProfessionalTitle
K = Kind
S = Status
A = Action
RT = ReadingType
REQUESTER, EXPERT, CHAIR, COORDINATOR, SYSTEM = Side.REQUESTER, Side.EXPERT, Side.CHAIR, Side.COORDINATOR, Side.SYSTEM
REQUEST = "request"  # the timeline's first event (not a workflow action: it has no from-status)

_NURSES = frozenset({T.CHIEF_NURSE, T.ASSOCIATE_CHIEF_NURSE, T.NURSE_IN_CHARGE, T.SENIOR_NURSE, T.NURSE})


@dataclass(frozen=True)
class ConsultSeed:
    """What one run created (zero everywhere when the history was already there)."""

    users: int = 0
    memberships: int = 0
    practitioners: int = 0
    patients: int = 0
    meetings: int = 0
    consults: int = 0
    events: int = 0

    @property
    def total(self) -> int:
        return sum(int(getattr(self, f.name)) for f in fields(self))


# ----------------------------------------------------------------------------------------
# People the stories need and the registry lacks


@dataclass(frozen=True)
class _Person:
    name_zh: str
    name_en: str
    title: ProfessionalTitle
    institution: str
    discipline: Discipline
    licence: str
    specialties: str
    username: str = ""  # an account (DOCTOR at the institution) that cannot log in by password


def _licence(region: str, serial: int) -> str:
    # 15 digits: physician (1), category 1, the institution's region, a serial reserved for this demo.
    return f"11{region}{8_100_000 + serial:07d}"


PEOPLE: tuple[_Person, ...] = (
    # The MDT experts of the Second Affiliated Hospital (with accounts: they are invited to meetings
    # and sign opinions), then its reading experts.
    _Person("方建中", "Fang Jianzhong", T.CHIEF_PHYSICIAN, "zju2", D.ONCOLOGY, _licence("330102", 1), "胶质瘤及脑转移瘤内科治疗、靶向与免疫治疗", "demo-zju2-onc-1"),
    _Person("邵雪琴", "Shao Xueqin", T.CHIEF_PHYSICIAN, "zju2", D.RADIOTHERAPY, _licence("330102", 2), "中枢神经系统肿瘤精准放疗、立体定向放射外科", "demo-zju2-rt-1"),
    _Person("楼国平", "Lou Guoping", T.CHIEF_PHYSICIAN, "zju2", D.NEUROLOGY, _licence("330102", 3), "脑血管病、癫痫、神经系统疑难病远程会诊", "demo-zju2-neuro-1"),
    _Person("葛明远", "Ge Mingyuan", T.ASSOCIATE_CHIEF_PHYSICIAN, "zju2", D.CARDIOLOGY, _licence("330102", 4), "心律失常、远程心电诊断、胸痛中心"),
    _Person("金晓燕", "Jin Xiaoyan", T.ASSOCIATE_CHIEF_PHYSICIAN, "zju2", D.PATHOLOGY, _licence("330102", 5), "术中冰冻切片快速诊断、乳腺及甲状腺病理"),
    # Experts of the other lead hospitals (no accounts: their answers are history).
    _Person("陆永华", "Lu Yonghua", T.CHIEF_PHYSICIAN, "zju1", D.NEUROLOGY, _licence("330102", 11), "脑血管病、卒中二级预防"),
    _Person("章海燕", "Zhang Haiyan", T.CHIEF_PHYSICIAN, "zju1", D.CARDIOLOGY, _licence("330102", 12), "冠心病介入、远程心电诊断"),
    _Person("虞文龙", "Yu Wenlong", T.ASSOCIATE_CHIEF_PHYSICIAN, "zju1", D.PATHOLOGY, _licence("330102", 13), "术中冰冻切片诊断、消化道肿瘤病理"),
    _Person("鲍立军", "Bao Lijun", T.CHIEF_PHYSICIAN, "zjus", D.STOMATOLOGY, _licence("330106", 14), "口腔颌面部肿瘤、口腔黏膜病"),
    # Requesting doctors of the member hospitals, so that every line below has one whatever staff the
    # seed generates.
    _Person("郑国强", "Zheng Guoqiang", T.ATTENDING_PHYSICIAN, "khph", D.EMERGENCY, _licence("330824", 20), "急危重症、胸痛与卒中绿色通道"),
    _Person("汪建平", "Wang Jianping", T.ATTENDING_PHYSICIAN, "khph", D.GENERAL_SURGERY, _licence("330824", 21), "甲状腺、乳腺及胃肠外科手术"),
    _Person("余丽娟", "Yu Lijuan", T.ASSOCIATE_CHIEF_PHYSICIAN, "khph", D.OBSTETRICS_GYNECOLOGY, _licence("330824", 22), "妇科腹腔镜手术"),
    _Person("毛志刚", "Mao Zhigang", T.ATTENDING_PHYSICIAN, "khph", D.NEUROSURGERY, _licence("330824", 23), "颅脑创伤、脑出血微创手术"),
    _Person("叶俊杰", "Ye Junjie", T.ATTENDING_PHYSICIAN, "khph", D.ORTHOPEDICS, _licence("330824", 24), "创伤骨科、关节外科"),
    _Person("祝海涛", "Zhu Haitao", T.ASSOCIATE_CHIEF_PHYSICIAN, "qzph", D.NEUROSURGERY, _licence("330802", 31), "脑肿瘤显微手术、神经内镜；陈志远业务主任团队成员"),
    _Person("郑文杰", "Zheng Wenjie", T.ATTENDING_PHYSICIAN, "qzph", D.NEUROSURGERY, _licence("330802", 32), "脑血管病、颅脑创伤"),
    _Person("姜慧敏", "Jiang Huimin", T.ATTENDING_PHYSICIAN, "qzph", D.PATHOLOGY, _licence("330802", 33), "外科病理诊断"),
    _Person("童立新", "Tong Lixin", T.ATTENDING_PHYSICIAN, "qzph", D.ORTHOPEDICS, _licence("330802", 34), "脊柱外科"),
    _Person("应晓峰", "Ying Xiaofeng", T.ATTENDING_PHYSICIAN, "qzph", D.ONCOLOGY, _licence("330802", 35), "肺癌、消化道肿瘤综合治疗"),
    _Person("吴佳怡", "Wu Jiayi", T.ATTENDING_PHYSICIAN, "qzph", D.STOMATOLOGY, _licence("330802", 36), "口腔黏膜病、口腔颌面外科"),
    _Person("程红梅", "Cheng Hongmei", T.ATTENDING_PHYSICIAN, "qz2ph", D.NEUROLOGY, _licence("330802", 41), "帕金森病、癫痫、卒中康复"),
    _Person("方永康", "Fang Yongkang", T.ATTENDING_PHYSICIAN, "csph", D.GENERAL_SURGERY, _licence("330822", 45), "甲状腺、乳腺及胃肠外科手术"),
    _Person("徐海波", "Xu Haibo", T.ATTENDING_PHYSICIAN, "csph", D.CARDIOLOGY, _licence("330822", 46), "胸痛中心、急性心梗早期识别"),
    _Person("毛卫东", "Mao Weidong", T.ATTENDING_PHYSICIAN, "jsph", D.CARDIOLOGY, _licence("330881", 51), "高血压、心律失常"),
    _Person("周德明", "Zhou Deming", T.ATTENDING_PHYSICIAN, "jsph", D.GENERAL_SURGERY, _licence("330881", 52), "甲状腺、乳腺外科"),
    _Person("杨光辉", "Yang Guanghui", T.ATTENDING_PHYSICIAN, "bjfph", D.CARDIOLOGY, _licence("520502", 61), "冠心病、心力衰竭"),
    _Person("龙美玲", "Long Meiling", T.ASSOCIATE_CHIEF_PHYSICIAN, "bjfph", D.NEUROLOGY, _licence("520502", 63), "脑血管病、帕金森病"),
    _Person("罗振华", "Luo Zhenhua", T.ATTENDING_PHYSICIAN, "bjfph", D.HEPATOBILIARY_SURGERY, _licence("520502", 62), "肝胆胰外科"),
)  # fmt: skip

# The accounts made for the MDT experts (they cannot log in by password).
ACCOUNTS: tuple[str, ...] = tuple(p.username for p in PEOPLE if p.username)

# The MDT: the chair's department first, then the invited departments.
MDT_DISCIPLINES = (D.NEUROSURGERY, D.RADIOLOGY, D.PATHOLOGY, D.ONCOLOGY, D.RADIOTHERAPY, D.NEUROLOGY)


# ----------------------------------------------------------------------------------------
# Clinical cases


@dataclass(frozen=True)
class _Case:
    code: str  # ICD-10
    name: str  # working diagnosis
    discipline: Discipline  # the specialty wanted
    senders: tuple[Discipline, ...]  # requesting departments, likeliest first
    reason: str
    purpose: str
    question: str
    history: tuple[str, ...]
    investigations: tuple[str, ...]
    answers: tuple[str, ...]  # the answer, report or conclusion (one is drawn)
    recommendations: str = ""
    examination: str = ""
    treatment: str = ""
    info: tuple[str, str] = ("", "")  # what the expert asks for, what the requester sends
    ages: tuple[int, int] = (45, 80)
    male: float = 0.55
    avoided: float = 0.66  # share of close-outs saying a referral or visit was avoided
    opinions: tuple[tuple[Discipline, str], ...] = ()  # MDT: one per department


_NEURO_ASKERS = (D.NEUROLOGY, D.EMERGENCY, D.INTERNAL_MEDICINE, D.NEUROSURGERY)
_BRAIN_TUMOUR_ASKERS = (D.NEUROSURGERY, D.NEUROLOGY, D.ONCOLOGY)
_ECG_ASKERS = (D.EMERGENCY, D.CARDIOLOGY, D.INTERNAL_MEDICINE)
_IMAGING_ASKERS = (D.EMERGENCY, D.NEUROLOGY, D.RADIOLOGY, D.INTERNAL_MEDICINE)

CASES: dict[str, _Case] = {
    # -- eConsults
    "ich_small": _Case(
        "I61.0", "高血压性脑出血（少量）", D.NEUROSURGERY, _NEURO_ASKERS,
        "基底节区少量脑出血，家属询问是否需要手术或转上级医院。",
        "明确手术指征，决定能否在本院继续保守治疗。",
        "出血量约15–20 ml、无中线移位，是否需要手术？保守治疗期间何时复查CT？",
        ("高血压病史10年，服药不规律；晨起突发右侧肢体无力、言语含糊3小时。", "打牌时突发左侧肢体麻木无力伴头痛，无呕吐；高血压病史8年。"),
        ("头颅CT：左侧基底节区血肿约18 ml，中线无移位，未破入脑室。", "头颅CT：右侧壳核血肿约15 ml，周围轻度水肿，中线居中。"),
        ("出血量小于30 ml，无中线移位，意识清楚，目前无手术指征，建议在当地继续保守治疗。", "幕上出血约15 ml，神经功能缺损轻，保守治疗获益明确，暂不建议手术或上转。"),
        "收缩压控制在140 mmHg左右；24小时及72小时复查头颅CT；如血肿扩大超过30 ml、意识下降或中线移位，立即经绿色通道上转；病情稳定后早期康复。",
        "神志清，GCS 14分；一侧肢体肌力4级；血压178/102 mmHg。",
        "乌拉地尔控制血压，甘露醇脱水，卧床休息。",
        ("请补充发病6小时内的头颅CT原始影像及凝血功能、血小板结果。", "已上传发病后2小时及6小时头颅CT；凝血功能正常，血小板186×10⁹/L，未服用抗凝药。"),
        ages=(50, 80), avoided=0.7,
    ),
    "aneurysm": _Case(
        "I67.1", "未破裂颅内动脉瘤", D.NEUROSURGERY, (D.NEUROLOGY, D.NEUROSURGERY, D.INTERNAL_MEDICINE),
        "体检头颅MRA发现颅内动脉瘤，患者焦虑，询问是否需要处理。",
        "评估破裂风险，决定随访还是介入或手术治疗。",
        "动脉瘤大小约4 mm，是否需要干预？随访间隔多久？",
        ("体检发现，无头痛及神经系统症状；高血压病史，吸烟30年。", "偶有头痛，行头颅MRA检查发现；母亲有蛛网膜下腔出血病史。"),
        ("头颅MRA：右侧颈内动脉后交通段囊状动脉瘤约4 mm。", "CTA：前交通动脉瘤约5 mm，瘤颈宽约3 mm，形态规则。"),
        ("动脉瘤小于7 mm、形态规则、无症状，PHASES评分低，破裂风险低，建议戒烟、控制血压并影像随访。", "瘤体约5 mm但有家族史，建议择期到我院行DSA评估，可考虑弹簧圈栓塞。"),
        "严格控制血压，戒烟限酒；6个月后复查CTA或MRA，以后每年1次；如出现剧烈头痛立即就诊。",
        info=("请补充CTA原始薄层数据，便于测量瘤颈。", "已上传CTA薄层影像（0.625 mm）。"),
        ages=(40, 70), male=0.4, avoided=0.7,
    ),
    "meningioma_small": _Case(
        "D32.0", "偶发脑膜瘤", D.NEUROSURGERY, (D.NEUROLOGY, D.NEUROSURGERY, D.INTERNAL_MEDICINE),
        "头颅MRI偶然发现颅内占位，考虑脑膜瘤，询问处理方式。",
        "决定随访观察还是手术。",
        "凸面脑膜瘤约1.8 cm，无症状，是否需要手术？",
        ("因头晕行头颅MRI检查发现，无癫痫发作，无肢体无力。",),
        ("头颅MRI：右额凸面脑膜瘤样病灶约1.8 cm，均匀强化，可见脑膜尾征，周围无水肿。",),
        ("无症状小型凸面脑膜瘤，无瘤周水肿，建议影像随访，暂不手术。",),
        "6个月后复查增强MRI，若增大明显或出现症状，再评估手术；可在陈志远主任衢州驻点门诊复诊。",
        ages=(45, 75), male=0.3, avoided=0.75,
    ),
    "epilepsy": _Case(
        "G40.9", "癫痫（药物控制不佳）", D.NEUROLOGY, (D.NEUROLOGY, D.PEDIATRICS, D.INTERNAL_MEDICINE),
        "癫痫患者两种抗癫痫药联用后仍每月发作，申请调整方案意见。",
        "优化抗癫痫药物方案，判断是否需要术前评估。",
        "左乙拉西坦联合丙戊酸钠后仍每月发作1–2次，下一步如何调整？是否属于药物难治性癫痫？",
        ("癫痫病史6年，局灶性发作继发全面性发作；服药依从性尚可。", "脑外伤后继发癫痫3年，近2月发作增多。"),
        ("脑电图：左颞区尖慢波；头颅MRI：左侧海马体积缩小。", "视频脑电图：右额区棘波；头颅MRI未见明确异常。"),
        ("已足量足疗程使用两种药物仍未控制，符合药物难治性癫痫，建议加用拉考沙胺并到我院癫痫中心行术前评估。", "目前丙戊酸钠剂量偏低，建议先加量至足量并监测血药浓度，3个月后再评估。"),
        "记录发作日记；1个月后复查肝功能及血药浓度；避免熬夜、饮酒；驾驶及高空作业需暂停。",
        info=("请补充近期血药浓度及发作日记。", "丙戊酸钠血药浓度42 μg/ml；近3月发作日记已上传。"),
        ages=(18, 60), avoided=0.65,
    ),
    "tia": _Case(
        "G45.9", "短暂性脑缺血发作", D.NEUROLOGY, (D.NEUROLOGY, D.EMERGENCY, D.INTERNAL_MEDICINE),
        "反复短暂性脑缺血发作，询问抗栓方案及是否需要血管评估。",
        "明确卒中风险分层和二级预防方案。",
        "ABCD²评分5分，双抗血小板疗程多久？是否需要上转行血管评估？",
        ("近1周右手麻木无力发作2次，每次持续约20分钟后完全缓解；高血压、糖尿病病史。",),
        ("头颅MRI DWI未见新发梗死；颈部血管超声：左侧颈内动脉起始段狭窄约50%。",),
        ("高危TIA，建议阿司匹林联合氯吡格雷21天后改单抗，强化他汀治疗；颈动脉中度狭窄暂不需手术，当地随访即可。",),
        "阿托伐他汀20–40 mg，LDL-C目标<1.8 mmol/L；控制血压、血糖；3个月后复查颈部血管超声；再发作立即就诊。",
        info=("请补充颈部血管超声报告及血脂、糖化血红蛋白结果。", "已上传颈部血管超声报告；LDL-C 3.4 mmol/L，糖化血红蛋白7.2%。"),
        ages=(55, 85), avoided=0.65,
    ),
    "parkinson": _Case(
        "G20", "帕金森病", D.NEUROLOGY, (D.NEUROLOGY, D.INTERNAL_MEDICINE),
        "帕金森病患者出现剂末现象，申请调整用药意见。",
        "优化多巴胺能药物方案，减少运动波动。",
        "多巴丝肼每日3次，出现剂末现象和晨僵，如何调整？",
        ("帕金森病5年，近半年每次服药后3小时症状重新加重，夜间翻身困难。",),
        ("UPDRS-III评分：“关”期38分，“开”期18分。",),
        ("存在剂末现象，建议多巴丝肼改为每日4次，加用恩他卡朋或普拉克索缓释片。",),
        "逐步调整剂量，观察异动症；坚持康复锻炼；3个月后门诊随访。",
        info=("请补充完整的服药时间表及“开”“关”期症状记录。", "已上传近1周服药时间及症状日记。"),
        ages=(55, 80), avoided=0.7,
    ),
    "af_anticoag": _Case(
        "I48.9", "心房颤动（抗凝决策）", D.CARDIOLOGY, (D.CARDIOLOGY, D.INTERNAL_MEDICINE, D.NEUROLOGY),
        "高龄房颤患者合并出血风险，询问抗凝药物选择。",
        "权衡卒中与出血风险，确定抗凝方案。",
        "CHA₂DS₂-VASc评分4分、HAS-BLED评分3分，能否抗凝？选用哪种药物及剂量？",
        ("持续性房颤2年，未抗凝；半年前有上消化道出血史，已治愈。", "阵发性房颤，合并高血压、糖尿病，肌酐清除率45 ml/min。"),
        ("动态心电图：房颤，平均心室率88次/分；心脏超声：左房内径46 mm。",),
        ("卒中风险高于出血风险，建议利伐沙班15 mg每日1次，同时纠正可逆出血因素。", "建议达比加群110 mg每日2次，联用质子泵抑制剂保护胃黏膜。"),
        "每3个月复查血常规、肾功能；如出现黑便、血尿及时就诊；可在当地随访。",
        info=("请补充肌酐清除率、血红蛋白及近期胃镜结果。", "肌酐清除率58 ml/min，血红蛋白118 g/L；半年前胃镜示十二指肠球部溃疡已愈合。"),
        ages=(65, 88), avoided=0.65,
    ),
    "htn_resistant": _Case(
        "I10", "难治性高血压", D.CARDIOLOGY, (D.CARDIOLOGY, D.INTERNAL_MEDICINE),
        "三种降压药联用血压仍控制不佳，申请调整方案并排查继发因素。",
        "明确是否为继发性高血压，调整降压方案。",
        "氨氯地平、缬沙坦、氢氯噻嗪足量联用后血压仍160/100 mmHg，需要做哪些检查？",
        ("高血压病史12年，近1年血压控制不佳，伴夜间打鼾。",),
        ("血钾3.3 mmol/L；肾动脉超声未见狭窄。",),
        ("低血钾提示原发性醛固酮增多症可能，建议查醛固酮/肾素比值，并加用螺内酯20 mg每日1次。",),
        "家庭血压监测，每日早晚各1次；必要时上转行肾上腺CT及分侧静脉取血。",
        ages=(40, 75), avoided=0.6,
    ),
    "lung_nodule": _Case(
        "R91", "肺结节", D.RESPIRATORY, (D.RESPIRATORY, D.INTERNAL_MEDICINE, D.ONCOLOGY),
        "胸部CT发现磨玻璃结节，询问随访还是手术。",
        "评估结节恶性风险，确定随访方案。",
        "右上肺混杂磨玻璃结节8 mm，实性成分3 mm，下一步？",
        ("体检发现，无咳嗽咯血；吸烟20年。",),
        ("胸部薄层CT：右上肺混杂磨玻璃结节约8 mm，实性成分约3 mm。",),
        ("结节以磨玻璃成分为主，建议3个月后复查薄层CT，如实性成分增大再考虑胸腔镜手术。",),
        "戒烟；3个月后复查胸部薄层CT（1 mm），复查影像可再次远程会诊。",
        info=("请上传1 mm薄层胸部CT原始影像。", "已上传1 mm薄层胸部CT DICOM影像。"),
        ages=(40, 70), male=0.5, avoided=0.7,
    ),
    "knee_oa": _Case(
        "M17.1", "膝骨关节炎", D.ORTHOPEDICS, (D.ORTHOPEDICS, D.GENERAL_PRACTICE, D.INTERNAL_MEDICINE),
        "膝骨关节炎保守治疗效果差，询问是否需要关节置换。",
        "明确手术时机，决定是否转诊。",
        "K-L分级III级，疼痛影响行走，是否需要膝关节置换？",
        ("双膝疼痛5年，上下楼困难，近半年行走300米即需休息。",),
        ("X线：右膝关节间隙内侧变窄，骨赘形成，K-L分级III级。",),
        ("目前III级，可先行规范保守治疗3–6个月（减重、股四头肌训练、关节腔注射），无效再考虑单髁或全膝置换。",),
        "减重，避免爬山爬楼；非甾体抗炎药短期使用；3个月后复诊。",
        info=("请补充双膝负重位X线片。", "已上传双膝负重位正侧位X线片。"),
        ages=(55, 80), male=0.35, avoided=0.6,
    ),
    "hepatic_mass": _Case(
        "K76.8", "肝占位性病变", D.HEPATOBILIARY_SURGERY, (D.GENERAL_SURGERY, D.INTERNAL_MEDICINE, D.HEPATOBILIARY_SURGERY),
        "超声发现肝内占位，性质待定，询问下一步检查。",
        "明确占位性质，决定是否手术。",
        "肝右叶2.5 cm低回声占位，AFP正常，需要做哪些检查？",
        ("体检发现，无乙肝病史，无腹痛。",),
        ("腹部超声：肝右叶2.5 cm低回声结节；AFP 4.2 ng/ml。",),
        ("建议行上腹部增强MRI（肝胆特异性对比剂），典型血管瘤或局灶性结节增生可随访。",),
        "增强MRI后结果可再次远程会诊；如考虑恶性，转省人民医院手术。",
        ages=(35, 70), avoided=0.5,
    ),
    "oral_leukoplakia": _Case(
        "K13.2", "口腔黏膜白斑", D.STOMATOLOGY, (D.STOMATOLOGY,),
        "舌缘白色斑块3月不消退，询问是否需要活检。",
        "评估癌变风险，确定处理方式。",
        "舌缘白斑1.5 cm，表面粗糙，是否需要活检或切除？",
        ("吸烟饮酒史，舌缘白色斑块3个月，无疼痛。",),
        ("口腔检查：左舌缘1.5 cm白色斑块，表面粗糙，触之稍硬。",),
        ("白斑位于舌缘高危部位且表面粗糙，建议尽快切取活检，明确有无异常增生。",),
        "戒烟酒；活检标本可送我院口腔病理科会诊。",
        ages=(45, 75), male=0.7, avoided=0.5,
    ),
    # -- scheduled teleconsultations
    "ich_post": _Case(
        "I61.0", "脑出血术后", D.NEUROSURGERY, (D.NEUROSURGERY, D.NEUROLOGY, D.CRITICAL_CARE),
        "脑出血去骨瓣减压术后，意识恢复慢，申请远程会诊指导后续治疗。",
        "制定后续治疗、颅骨修补时机和康复方案。",
        "术后3周GCS 9分，脑积水是否需要分流？颅骨修补何时进行？",
        ("脑出血去骨瓣减压术后3周，意识由浅昏迷转为嗜睡，气管切开状态。",),
        ("复查头颅CT：血肿吸收，脑室轻度扩大，骨窗压力不高。",),
        ("脑室轻度扩大，暂无分流指征，动态观察；建议术后3个月行颅骨修补，可在衢州市人民医院由陈志远主任团队完成。", "目前无需再次手术，重点加强气道管理和营养支持，早期床旁康复。"),
        "每2周复查头颅CT；营养支持；康复科介入；如出现意识下降或骨窗张力增高，及时复诊。",
        ages=(45, 78), avoided=0.6,
    ),
    "stroke_rehab": _Case(
        "I69.3", "脑梗死恢复期", D.NEUROLOGY, (D.NEUROLOGY, D.REHABILITATION, D.INTERNAL_MEDICINE),
        "脑梗死恢复期，家属希望在本地康复，申请远程会诊制定方案。",
        "制定二级预防和康复方案，避免往返杭州。",
        "取栓术后1月，左侧肢体肌力3级，如何安排康复和抗栓治疗？",
        ("大脑中动脉闭塞取栓术后1个月，左侧肢体无力，吞咽功能基本恢复。",),
        ("头颅MRI：右侧基底节区陈旧性梗死灶；血脂LDL-C 2.6 mmol/L。",),
        ("建议继续阿司匹林单抗，强化降脂使LDL-C<1.8 mmol/L；在当地康复医学科开展运动疗法和作业治疗。",),
        "每月复查血脂、肝功能；3个月后远程随访评估康复效果。",
        ages=(55, 85), avoided=0.85,
    ),
    "spine": _Case(
        "M48.0", "腰椎管狭窄症", D.ORTHOPEDICS, (D.ORTHOPEDICS,),
        "腰椎管狭窄保守治疗无效，申请远程会诊评估手术方式。",
        "明确手术指征及术式，决定在本地还是上转手术。",
        "L4/5椎管狭窄，能否在本院开展微创融合？",
        ("间歇性跛行1年，行走200米即需休息，保守治疗半年无效。",),
        ("腰椎MRI：L4/5椎管狭窄，黄韧带肥厚；动力位片未见明显不稳。",),
        ("手术指征明确，可行单节段减压融合；本院骨科有条件开展，专家可远程指导或现场示范。",),
        "完善术前评估；术后3个月复查；可预约专家下沉时现场手术示范。",
        ages=(55, 80), avoided=0.7,
    ),
    "hcc": _Case(
        "C22.0", "原发性肝细胞癌", D.HEPATOBILIARY_SURGERY, (D.HEPATOBILIARY_SURGERY, D.GENERAL_SURGERY, D.ONCOLOGY),
        "乙肝肝硬化背景下肝癌，申请远程会诊评估手术切除可能。",
        "确定治疗方式（切除、消融或介入）。",
        "肝右叶4.5 cm单发病灶，Child-Pugh A级，能否切除？",
        ("乙肝病史20年；增强CT示肝右叶4.5 cm占位，快进快出；AFP 860 ng/ml。",),
        ("ICG R15 8%；血小板 110×10⁹/L。",),
        ("单发病灶、肝功能储备良好，建议腹腔镜肝右叶部分切除，可由派驻专家在毕节医院完成。",),
        "继续抗病毒治疗；术后每3个月复查AFP及增强CT。",
        ages=(40, 70), male=0.75, avoided=0.8,
    ),
    "chf": _Case(
        "I50.9", "慢性心力衰竭", D.CARDIOLOGY, (D.CARDIOLOGY, D.INTERNAL_MEDICINE),
        "射血分数降低的心衰反复住院，申请远程会诊优化药物。",
        "优化心衰药物治疗，评估器械治疗指征。",
        "LVEF 30%，已用ARNI和β受体阻滞剂，是否加用SGLT2抑制剂，是否需要CRT？",
        ("扩张型心肌病5年，近半年因心衰加重住院2次。",),
        ("心脏超声：LVEF 30%，左室舒张末径68 mm；心电图：完全性左束支传导阻滞，QRS 160 ms。",),
        ("建议加用达格列净及螺内酯；QRS≥150 ms伴左束支阻滞，具备CRT-D指征，可择期上转植入。",),
        "每日称体重；2周后复查血钾、肾功能；3个月后评估器械治疗。",
        ages=(50, 80), avoided=0.5,
    ),
    "oral_ca_plan": _Case(
        "C03.1", "下牙龈鳞状细胞癌", D.STOMATOLOGY, (D.STOMATOLOGY,),
        "下牙龈鳞癌活检确诊，申请远程会诊制定手术方案。",
        "确定手术范围和颈部淋巴结处理方式。",
        "T2N0，是否需要颈淋巴清扫？能否在本院手术？",
        ("下牙龈溃疡不愈2月，活检示高分化鳞状细胞癌。",),
        ("增强CT：下颌骨未见明显骨质破坏，颈部未见肿大淋巴结。",),
        ("建议下颌骨方块切除加选择性颈淋巴清扫，可由我院专家到衢州市人民医院口腔科联合手术。",),
        "术前完善检查；术后3个月内每月复查。",
        ages=(50, 80), male=0.65, avoided=0.7,
    ),
    # -- MDT cases (neuro-oncology)
    "glioma": _Case(
        "C71.1", "左额叶胶质瘤术后", D.NEUROSURGERY, _BRAIN_TUMOUR_ASKERS,
        "左额叶胶质瘤切除术后，申请多学科讨论制定术后辅助治疗方案。",
        "明确病理分型后的放化疗方案。",
        "术后病理为胶质母细胞瘤，是否行同步放化疗？剂量和疗程？",
        ("头痛伴性格改变1月，行左额叶占位切除术，术后恢复可。",),
        ("术后MRI：左额叶术腔，未见明显强化残留；病理：胶质母细胞瘤，IDH野生型，MGMT启动子甲基化。",),
        ("诊断胶质母细胞瘤（IDH野生型，WHO 4级），MGMT甲基化，建议术后4周内开始替莫唑胺同步放化疗（60 Gy/30次），随后6周期辅助替莫唑胺。",),
        "放疗在衢州市人民医院放疗科完成，治疗计划由浙大二院放疗科远程审核；每2–3个月复查增强MRI。",
        ages=(40, 70),
        opinions=(
            (D.NEUROSURGERY, "手术已达影像学全切，切口愈合好，可按期开始放化疗。"),
            (D.RADIOLOGY, "术后48小时MRI未见强化残留，术腔周围T2/FLAIR高信号为水肿，作为放疗后随访基线。"),
            (D.PATHOLOGY, "胶质母细胞瘤，IDH1/2野生型，TERT启动子突变，MGMT启动子甲基化，Ki-67约30%。"),
            (D.ONCOLOGY, "MGMT甲基化，替莫唑胺获益明确，同步期75 mg/m²每日，辅助期150–200 mg/m²，注意血象。"),
            (D.RADIOTHERAPY, "建议调强放疗60 Gy/30次，靶区为术腔及强化区外扩1.5–2 cm，计划可远程审核。"),
        ),
    ),
    "gbm_recurrent": _Case(
        "C71.9", "胶质母细胞瘤复发", D.NEUROSURGERY, _BRAIN_TUMOUR_ASKERS,
        "胶质母细胞瘤术后放化疗后1年，复查MRI示强化灶增大，申请多学科讨论。",
        "鉴别复发与放射性坏死，制定下一步治疗。",
        "强化灶增大是复发还是放射性坏死？再次手术还是贝伐珠单抗？",
        ("胶质母细胞瘤术后放化疗及6周期辅助替莫唑胺后1年，近期头痛加重。",),
        ("增强MRI：原术腔旁强化灶较前增大至2.5 cm；灌注成像rCBV升高。",),
        ("考虑肿瘤复发可能大，病灶位于非功能区，建议再次手术切除后行二线治疗。", "复发与放射性坏死难以鉴别，建议先行PET-MRI，暂予贝伐珠单抗控制水肿。"),
        "术后病理再次远程会诊；家属充分知情预后。",
        ages=(40, 70),
        opinions=(
            (D.NEUROSURGERY, "病灶位于右颞非功能区，再次手术风险可控，可获得病理并减瘤。"),
            (D.RADIOLOGY, "灌注成像rCBV明显升高，波谱Cho/NAA升高，更支持肿瘤复发。"),
            (D.ONCOLOGY, "术后可考虑洛莫司汀或贝伐珠单抗，建议同时送检分子病理寻找临床试验机会。"),
            (D.RADIOTHERAPY, "距首程放疗1年，再程放疗需谨慎，可考虑小体积立体定向放疗。"),
        ),
    ),
    "skull_base": _Case(
        "D32.0", "颅底脑膜瘤", D.NEUROSURGERY, _BRAIN_TUMOUR_ASKERS,
        "蝶骨嵴脑膜瘤包绕颈内动脉，申请多学科讨论手术及放疗策略。",
        "确定手术范围，是否需要术后放疗。",
        "肿瘤包绕颈内动脉，能否全切？残留部分如何处理？",
        ("视力下降3月，右眼视野缺损。",),
        ("增强MRI：右侧蝶骨嵴内侧脑膜瘤约3.5 cm，包绕颈内动脉床突上段。",),
        ("建议显微镜下次全切除，保护颈内动脉及视神经，残留部分术后立体定向放射外科治疗。",),
        "术后3个月复查MRI；残留部分行立体定向放疗；眼科随访视力视野。",
        ages=(40, 70), male=0.3,
        opinions=(
            (D.NEUROSURGERY, "强行全切血管损伤风险大，宜次全切除，视神经减压是首要目标。"),
            (D.RADIOLOGY, "肿瘤包绕颈内动脉约270°，管腔无明显狭窄，海绵窦受累可疑。"),
            (D.RADIOTHERAPY, "残留灶小于3 cm可行立体定向放射外科，单次12–14 Gy，注意视路受量。"),
        ),
    ),
    "brain_mets": _Case(
        "C79.3", "肺癌脑转移", D.NEUROSURGERY, (D.ONCOLOGY, D.NEUROSURGERY, D.RESPIRATORY, D.NEUROLOGY),
        "肺腺癌出现多发脑转移，申请多学科讨论局部与全身治疗。",
        "确定手术、放疗与靶向治疗的顺序。",
        "EGFR突变肺腺癌，3个脑转移灶，最大2.8 cm伴水肿，先手术还是先靶向？",
        ("肺腺癌（EGFR 19外显子缺失）确诊1年，一代TKI治疗中，近期头痛、左侧肢体乏力。",),
        ("增强MRI：颅内3个转移灶，右顶叶最大2.8 cm伴明显水肿；胸部CT原发灶稳定。",),
        ("建议右顶叶最大病灶手术切除缓解占位效应，其余病灶立体定向放疗，全身治疗换用三代EGFR-TKI。",),
        "术后4周内完成放疗；三代TKI每3个月评估疗效；监测颅压症状。",
        ages=(45, 75), male=0.5, avoided=0.5,
        opinions=(
            (D.NEUROSURGERY, "右顶叶病灶有症状且水肿明显，手术切除可迅速减压并获得病理。"),
            (D.RADIOLOGY, "3个病灶均为转移瘤表现，无脑膜强化，未见新发病灶。"),
            (D.ONCOLOGY, "一代TKI治疗中颅内进展，建议换用奥希替尼，其颅内控制率高。"),
            (D.RADIOTHERAPY, "其余2个病灶小于1 cm，建议立体定向放疗，不推荐全脑放疗。"),
        ),
    ),
    "pcnsl": _Case(
        "C85.9", "原发中枢神经系统淋巴瘤（疑）", D.NEUROSURGERY, _BRAIN_TUMOUR_ASKERS,
        "脑室旁多发强化病灶，疑原发中枢神经系统淋巴瘤，申请多学科讨论诊断路径。",
        "明确是否活检及激素使用时机。",
        "影像疑淋巴瘤，是否先行立体定向活检？活检前能否使用激素？",
        ("记忆力下降、反应迟钝1月，未使用激素。",),
        ("增强MRI：胼胝体及脑室旁多发均匀强化病灶，DWI弥散受限。",),
        ("高度怀疑原发中枢神经系统淋巴瘤，活检前避免使用激素，尽快行立体定向活检，确诊后以大剂量甲氨蝶呤为基础化疗。",),
        "活检标本送浙大二院病理科会诊；完善眼科裂隙灯检查及脑脊液检查。",
        ages=(50, 75),
        opinions=(
            (D.NEUROSURGERY, "病灶深在，不宜切除，立体定向活检创伤小、诊断率高。"),
            (D.RADIOLOGY, "均匀强化、弥散受限、沿室管膜分布，符合淋巴瘤表现。"),
            (D.PATHOLOGY, "活检前请勿使用激素，否则可能导致假阴性；标本需足量送免疫组化。"),
            (D.ONCOLOGY, "确诊后首选大剂量甲氨蝶呤联合利妥昔单抗方案，需评估肾功能。"),
        ),
    ),
    "ventricle": _Case(
        "D33.0", "侧脑室巨大占位", D.NEUROSURGERY, (D.NEUROSURGERY, D.NEUROLOGY),
        "高龄体弱患者侧脑室三角区巨大占位，家属希望在本市手术，申请多学科讨论评估风险。",
        "评估手术风险与获益，确定能否在衢州完成手术。",
        "78岁、体重40 kg，肿瘤7.3 cm，能否耐受手术？手术入路如何选择？",
        ("头痛伴步态不稳2月，近1周嗜睡，体重40 kg。",),
        ("MRI：左侧侧脑室三角区占位约7.3 cm，均匀强化，伴梗阻性脑积水。",),
        ("考虑侧脑室脑膜瘤，手术获益大于风险，建议经顶上小叶入路显微切除，由陈志远主任在衢州市人民医院主刀，预计手术约6小时，做好输血准备。",),
        "术前营养支持及麻醉评估；术后监护室过渡；转回当地医院康复及护理。",
        ages=(75, 82), male=0.4, avoided=0.9,
        opinions=(
            (D.NEUROSURGERY, "肿瘤血供来自脉络膜前动脉，术中先处理供血可减少出血；衢州市人民医院具备手术条件。"),
            (D.RADIOLOGY, "肿瘤均匀强化、边界清楚，符合脑膜瘤；CTA示脉络膜前动脉供血。"),
            (D.PATHOLOGY, "术中可送冰冻切片，明确脑膜瘤后无需扩大切除范围。"),
            (D.NEUROLOGY, "高龄低体重，术前需评估心肺功能及营养状态，术后注意谵妄及癫痫预防。"),
        ),
    ),
    "deep_mass": _Case(
        "D43.2", "脑出血伴脑深部占位", D.NEUROSURGERY, (D.NEUROSURGERY, D.NEUROLOGY),
        "脑出血伴丘脑旁约0.5 cm占位，性质待定，申请多学科讨论手术方式。",
        "明确病灶性质及手术入路。",
        "0.5 cm深部病灶伴出血，能否神经内镜联合显微镜切除并行术中冰冻？",
        ("头痛伴右侧肢体麻木1周，近日加重。",),
        ("MRI：左侧丘脑旁深部0.5 cm强化病灶伴周围出血，SWI可见含铁血黄素环。",),
        ("考虑海绵状血管瘤出血可能大，建议神经内镜与显微镜联合手术切除，术中快速冰冻病理，为衢州地区首例该类手术。",),
        "术中导航定位；冰冻切片由浙大二院病理科远程诊断；术后3个月复查MRI。",
        ages=(35, 65), avoided=0.9,
        opinions=(
            (D.NEUROSURGERY, "病灶深在，内镜可提供深部照明，显微镜下精细分离，二者联合可减少脑组织损伤。"),
            (D.RADIOLOGY, "SWI含铁血黄素环及“爆米花”样信号，符合海绵状血管瘤。"),
            (D.PATHOLOGY, "术中冰冻可远程数字切片诊断，30分钟内报告。"),
        ),
    ),
    "pituitary": _Case(
        "D35.2", "垂体大腺瘤", D.NEUROSURGERY, (D.NEUROSURGERY, D.NEUROLOGY),
        "垂体大腺瘤压迫视交叉，申请多学科讨论手术时机。",
        "确定手术方式及内分泌评估。",
        "无功能垂体大腺瘤2.6 cm伴视野缺损，经鼻内镜手术还是开颅？",
        ("视物模糊3月，双颞侧视野缺损。",),
        ("MRI：鞍区占位2.6 cm，向鞍上生长压迫视交叉；垂体激素水平基本正常。",),
        ("建议经鼻蝶神经内镜下肿瘤切除，尽早解除视路压迫，术前补充内分泌评估。",),
        "术后监测电解质及尿量；3个月后复查MRI和垂体功能；眼科随访视野。",
        ages=(35, 70), male=0.5,
        opinions=(
            (D.NEUROSURGERY, "肿瘤质地影像提示较软，经鼻内镜可达满意切除，视力恢复机会大。"),
            (D.RADIOLOGY, "肿瘤未包绕颈内动脉，Knosp 1级，海绵窦未受侵。"),
            (D.NEUROLOGY, "视野缺损3月，尽早手术有利于视功能恢复。"),
        ),
    ),
    # -- readings: intra-operative frozen sections
    "fs_thyroid": _Case(
        "D44.0", "甲状腺结节（术中冰冻）", D.PATHOLOGY, (D.GENERAL_SURGERY,),
        "甲状腺结节切除术中，送冰冻切片明确性质以决定手术范围。",
        "术中快速病理诊断。",
        "结节良恶性？如为恶性，是否需要扩大切除？",
        ("术前超声：甲状腺结节TI-RADS 4a类。",),
        ("标本：右侧甲状腺结节及部分腺体。", "标本：左侧甲状腺结节约1.2 cm。"),
        ("（右侧甲状腺）结节性甲状腺肿，未见恶性证据。", "（左侧甲状腺）甲状腺乳头状癌，直径约0.8 cm，建议行患侧腺叶切除加中央区淋巴结清扫。", "（甲状腺）滤泡性肿瘤，良恶性待石蜡切片及免疫组化确定。"),
        ages=(30, 65), male=0.25, avoided=0.9,
    ),
    "fs_breast": _Case(
        "D48.6", "乳腺肿物（术中冰冻）", D.PATHOLOGY, (D.GENERAL_SURGERY,),
        "乳腺肿物切除术中，送冰冻切片明确性质。",
        "术中快速病理诊断。",
        "肿物良恶性？切缘情况？",
        ("术前超声：左乳肿物BI-RADS 4b类。",),
        ("标本：左乳肿物约2.0 cm。",),
        ("（左乳）纤维腺瘤，切缘未见病变。", "（左乳）浸润性导管癌，切缘阴性；建议前哨淋巴结活检。"),
        ages=(30, 65), male=0.0, avoided=0.9,
    ),
    "fs_gastric": _Case(
        "C16.9", "胃癌根治术（切缘冰冻）", D.PATHOLOGY, (D.GENERAL_SURGERY,),
        "胃癌根治术中，送上下切缘冰冻切片。",
        "确认切缘有无癌残留。",
        "上、下切缘是否有癌残留？",
        ("胃镜活检：胃窦腺癌。",),
        ("标本：上切缘、下切缘各一块。",),
        ("上、下切缘均未见癌组织。", "下切缘可见癌组织残留，建议扩大切除后再送检。"),
        ages=(50, 80), male=0.65, avoided=0.9,
    ),
    "fs_brain": _Case(
        "D43.2", "颅内占位（术中冰冻）", D.PATHOLOGY, (D.NEUROSURGERY,),
        "颅内占位切除术中，送冰冻切片明确性质，指导切除范围。",
        "术中快速病理诊断。",
        "肿瘤性质？是否需要扩大切除？",
        ("术前MRI：颅内占位，边界欠清。",),
        ("标本：颅内肿物组织数块。",),
        ("（颅内）脑膜瘤，WHO 1级可能。", "（颅内）高级别胶质瘤，建议在功能区安全范围内最大程度切除。", "（颅内）海绵状血管瘤。"),
        ages=(35, 75), avoided=0.8,
    ),
    "fs_ovary": _Case(
        "D39.1", "卵巢肿物（术中冰冻）", D.PATHOLOGY, (D.OBSTETRICS_GYNECOLOGY,),
        "卵巢肿物腹腔镜手术中，送冰冻切片决定手术范围。",
        "术中快速病理诊断。",
        "肿物良恶性？是否需要分期手术？",
        ("术前超声：右侧附件区囊实性包块约6 cm，CA125 58 U/ml。",),
        ("标本：右侧卵巢肿物。",),
        ("（右侧卵巢）成熟性囊性畸胎瘤。", "（右侧卵巢）交界性浆液性肿瘤，建议行全面分期手术。"),
        ages=(25, 60), male=0.0, avoided=0.85,
    ),
    # -- readings: imaging, ECG, pathology slides
    "ct_head": _Case(
        "R90.8", "头颅CT急诊读片", D.RADIOLOGY, _IMAGING_ASKERS,
        "急诊头颅CT，本院夜间无高年资影像医师，申请远程读片。",
        "明确有无出血及早期梗死征象，决定是否溶栓或上转。",
        "有无出血？有无早期缺血改变？",
        ("突发头痛、呕吐2小时。", "突发右侧肢体无力1.5小时。", "头部外伤后意识障碍30分钟。"),
        ("头颅CT平扫，层厚5 mm。",),
        ("鞍上池及外侧裂池高密度影，考虑蛛网膜下腔出血，建议急查CTA并上转。", "左侧大脑中动脉高密度征，ASPECTS 9分，未见出血，符合溶栓条件。", "颅内未见出血及占位，建议必要时复查。", "右侧额颞部硬膜外血肿约30 ml，中线左移约6 mm，建议立即手术。"),
        ages=(40, 85), avoided=0.6,
    ),
    "mri_brain": _Case(
        "R90.0", "头颅MRI读片", D.RADIOLOGY, (D.NEUROLOGY, D.RADIOLOGY, D.NEUROSURGERY),
        "头颅MRI发现异常信号，本院诊断困难，申请远程读片。",
        "明确病变性质。",
        "病灶性质？需要补充哪些序列？",
        ("反复头痛1月。", "记忆力下降2月。"),
        ("头颅MRI平扫加增强。",),
        ("右侧额叶占位，不均匀环形强化，考虑高级别胶质瘤可能，建议神经外科会诊。", "双侧脑室旁多发小缺血灶，考虑脑小血管病。", "左侧海马硬化，结合临床考虑颞叶癫痫。"),
        ages=(30, 80), avoided=0.7,
    ),
    "ecg_stemi": _Case(
        "I21.1", "急诊心电图（疑急性心梗）", D.CARDIOLOGY, _ECG_ASKERS,
        "胸痛患者心电图疑似ST段抬高，申请远程心电诊断。",
        "首次医疗接触10分钟内明确是否STEMI。",
        "是否为ST段抬高型心肌梗死？",
        ("持续胸痛1小时，伴大汗。", "胸闷、恶心40分钟。"),
        ("12导联心电图。",),
        ("II、III、aVF导联ST段抬高0.2–0.3 mV，符合急性下壁ST段抬高型心肌梗死，建议立即启动胸痛中心流程转运行直接PCI。", "V1–V4导联ST段抬高，符合急性前壁心肌梗死，立即转运。", "早期复极改变，非STEMI，建议动态复查心电图及肌钙蛋白。"),
        ages=(45, 85), male=0.7, avoided=0.4,
    ),
    "ecg_af": _Case(
        "I48.9", "心电图（心律失常）", D.CARDIOLOGY, _ECG_ASKERS,
        "心悸患者心电图异常，申请远程心电诊断。",
        "明确心律失常类型。",
        "心律失常类型？是否需要紧急处理？",
        ("心悸2小时。",),
        ("12导联心电图。",),
        ("心房颤动伴快速心室率（约140次/分），建议控制心室率并评估抗凝。", "阵发性室上性心动过速，建议刺激迷走神经或静推腺苷。"),
        ages=(45, 85), avoided=0.85,
    ),
    "ecg_qt": _Case(
        "I45.8", "心电图（QT间期延长）", D.CARDIOLOGY, _ECG_ASKERS,
        "用药后心电图QT间期延长，申请远程心电诊断。",
        "评估心律失常风险。",
        "QTc是否显著延长？需要停药吗？",
        ("服用抗菌药物后出现头晕。",),
        ("12导联心电图。",),
        ("QTc约510 ms，显著延长，建议停用可疑药物，纠正低钾低镁，心电监护。",),
        ages=(40, 85), avoided=0.9,
    ),
    "slides_glioma": _Case(
        "C71.9", "脑肿瘤病理切片会诊", D.PATHOLOGY, (D.PATHOLOGY, D.NEUROSURGERY),
        "脑肿瘤术后病理诊断困难，申请远程病理会诊。",
        "明确病理分型及分子检测建议。",
        "组织学类型及WHO分级？需要补充哪些分子检测？",
        ("颅内占位切除术后。",),
        ("HE切片及免疫组化切片已扫描上传。",),
        ("弥漫性星形细胞瘤，IDH突变型，WHO 2级，建议补充1p/19q检测。", "少突胶质细胞瘤，IDH突变伴1p/19q共缺失，WHO 2级。"),
        ages=(30, 65), avoided=0.9,
    ),
    "slides_lymph": _Case(
        "R59.0", "淋巴结病理切片会诊", D.PATHOLOGY, (D.PATHOLOGY, D.ONCOLOGY),
        "颈部淋巴结活检病理诊断困难，申请远程病理会诊。",
        "明确淋巴结病变性质。",
        "反应性增生还是淋巴瘤？",
        ("颈部无痛性淋巴结肿大2月。",),
        ("HE切片及CD20、CD3、Ki-67免疫组化切片已扫描上传。",),
        ("弥漫大B细胞淋巴瘤（非生发中心型），建议血液科就诊。", "淋巴结反应性增生，建议随访。"),
        ages=(30, 75), avoided=0.8,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class _Line:
    """Who asks whom for what kind of consult, and how often."""

    sender: str
    receiver: str
    kind: Kind
    reading: str
    cases: tuple[tuple[str, float], ...]
    weight: float


_FS = RT.FROZEN_SECTION
LINES: tuple[_Line, ...] = (
    # eConsults
    _Line("khph", "zju2", K.ECONSULT, "", (("ich_small", 3), ("epilepsy", 2), ("tia", 2), ("aneurysm", 1), ("meningioma_small", 1), ("knee_oa", 1), ("af_anticoag", 1)), 10),
    _Line("qzph", "zju2", K.ECONSULT, "", (("aneurysm", 2), ("meningioma_small", 2), ("lung_nodule", 1), ("ich_small", 1)), 6),
    _Line("qz2ph", "zju2", K.ECONSULT, "", (("parkinson", 2), ("epilepsy", 1), ("tia", 1)), 3),
    _Line("csph", "zju1", K.ECONSULT, "", (("tia", 2), ("epilepsy", 1), ("af_anticoag", 1)), 3),
    _Line("jsph", "zju1", K.ECONSULT, "", (("af_anticoag", 2), ("htn_resistant", 1)), 2),
    _Line("bjfph", "zjpph", K.ECONSULT, "", (("af_anticoag", 1), ("parkinson", 1), ("hepatic_mass", 1), ("knee_oa", 1)), 4),
    _Line("qzph", "zjus", K.ECONSULT, "", (("oral_leukoplakia", 1),), 0.8),
    # scheduled teleconsultations
    _Line("khph", "zju2", K.TELECONSULTATION, "", (("ich_post", 2), ("stroke_rehab", 1), ("spine", 1)), 2.5),
    _Line("qzph", "zju2", K.TELECONSULTATION, "", (("ich_post", 1), ("spine", 1)), 1.5),
    _Line("qz2ph", "zju2", K.TELECONSULTATION, "", (("stroke_rehab", 1),), 1),
    _Line("bjfph", "zjpph", K.TELECONSULTATION, "", (("hcc", 1), ("chf", 1)), 1.5),
    _Line("qzph", "zjus", K.TELECONSULTATION, "", (("oral_ca_plan", 1),), 0.3),
    # intra-operative frozen sections (county hospitals)
    _Line("khph", "zju2", K.READING, _FS, (("fs_thyroid", 3), ("fs_breast", 2), ("fs_gastric", 1), ("fs_ovary", 1), ("fs_brain", 1)), 4.5),
    _Line("csph", "zju1", K.READING, _FS, (("fs_thyroid", 2), ("fs_breast", 1), ("fs_gastric", 1)), 1.2),
    _Line("jsph", "zju1", K.READING, _FS, (("fs_thyroid", 2), ("fs_breast", 1), ("fs_gastric", 1)), 0.8),
    # urgent readings
    _Line("khph", "zju2", K.READING, RT.IMAGING, (("ct_head", 3), ("mri_brain", 1)), 2),
    _Line("qz2ph", "zju2", K.READING, RT.IMAGING, (("ct_head", 1), ("mri_brain", 1)), 0.8),
    _Line("bjfph", "zjpph", K.READING, RT.IMAGING, (("ct_head", 1), ("mri_brain", 1)), 0.8),
    _Line("khph", "zju2", K.READING, RT.ECG, (("ecg_stemi", 2), ("ecg_af", 1), ("ecg_qt", 1)), 1),
    _Line("csph", "zju1", K.READING, RT.ECG, (("ecg_stemi", 2), ("ecg_af", 1)), 0.8),
    _Line("jsph", "zju1", K.READING, RT.ECG, (("ecg_stemi", 1), ("ecg_af", 1), ("ecg_qt", 1)), 0.7),
    _Line("qzph", "zju2", K.READING, RT.PATHOLOGY, (("slides_glioma", 1), ("slides_lymph", 1)), 0.8),
)  # fmt: skip

# MDT cases by requesting institution (the agenda of the zju2 neuro-oncology MDT).
MDT_SOURCES: tuple[tuple[str, float], ...] = (("qzph", 5), ("khph", 3), ("qz2ph", 1))
MDT_CASES: tuple[tuple[str, float], ...] = (
    ("glioma", 3), ("gbm_recurrent", 1.5), ("skull_base", 1), ("brain_mets", 2), ("pcnsl", 0.7),
    ("ventricle", 0.5), ("deep_mass", 0.5), ("pituitary", 1.5),
)  # fmt: skip

_DECLINE_REASONS = (
    "该问题超出本专业范围，建议改约相应专科。",
    "资料不全（缺少影像原始数据），无法给出意见，请补充后重新申请。",
    "患者病情危重，远程会诊不能替代现场救治，建议立即经绿色通道转诊。",
    "本周专家外出参加学术会议，建议改约其他专家。",
)
_CANCEL_REASONS = (
    "患者已转上级医院就诊，取消会诊。",
    "患者病情好转，暂不需要会诊。",
    "家属决定放弃进一步诊治。",
    "已在本院多学科讨论中解决，取消申请。",
)
_FOLLOW_UPS = (
    "按建议调整后患者出现轻度头晕，是否需要减量？",
    "复查结果已上传，请专家再看一下是否需要调整方案。",
    "家属询问能否在当地继续治疗，还需注意什么？",
)
_CLOSE_COMMENTS = (
    "",
    "",
    "专家回复及时、具体，患者免于往返杭州。",
    "已按建议调整治疗，家属满意。",
    "建议清楚，本院可以独立完成后续治疗。",
    "会诊意见对手术决策帮助很大。",
)
_NURSE_GIVEN = ("丽萍", "春燕", "晓红", "慧敏", "雪梅", "文娟", "佳怡", "美玲", "红梅", "秀英", "亚楠", "欣怡")
_CONSENT_METHODS = ((ConsentMethod.WRITTEN, 75), (ConsentMethod.ELECTRONIC, 15), (ConsentMethod.GUARDIAN, 10))
_TITLES_WANTED = ((T.CHIEF_PHYSICIAN, 30), (T.ASSOCIATE_CHIEF_PHYSICIAN, 40), ("", 30))
_VALUES = ((5, 45), (4, 35), (3, 13), (2, 5), (1, 2))

Row = dict[str, Any]


# ----------------------------------------------------------------------------------------
# What the generator knows about the seeded registry


@dataclass(frozen=True)
class _Who:
    """Who took a step: a user account (or none) and the name the timeline shows."""

    user_id: int | None
    label: str


@dataclass(frozen=True)
class _Doc:
    pk: int
    name: str
    title: str
    institution: str
    discipline: str
    department_id: int | None
    user_id: int | None

    @property
    def who(self) -> _Who:
        return _Who(self.user_id, self.name)


class _Registry:
    """Institutions, departments, practitioners and persona accounts, loaded once."""

    def __init__(self, history_user: User, now: dt.datetime) -> None:
        self.history_user = history_user
        self.today = timezone.localdate(now)
        self.first_day = self.today - dt.timedelta(days=HISTORY_DAYS)
        self.institutions = {i.code: i for i in Institution.objects.select_related("region").order_by("pk")}
        self.regions = dict(Region.objects.values_list("code", "pk"))
        self.departments: dict[tuple[str, str], int] = {}
        for code, discipline, pk in (
            Department.objects.filter(is_active=True)
            .order_by("pk")
            .values_list("institution__code", "discipline", "pk")
        ):
            self.departments.setdefault((code, discipline), pk)
        users = {u.pk: u for u in User.objects.filter(practitioner__isnull=False, is_active=True)}
        self.doctors: dict[str, list[_Doc]] = {}
        self.nurses: dict[tuple[str, int | None], list[str]] = {}
        for p in (
            Practitioner.objects.filter(is_active=True)
            .select_related("institution", "department")
            .order_by("licence_number")
        ):
            code = p.institution.code
            if p.title in _NURSES:
                self.nurses.setdefault((code, p.department_id), []).append(p.name_zh)
                continue
            self.doctors.setdefault(code, []).append(
                _Doc(
                    p.pk,
                    p.name_zh,
                    p.title,
                    code,
                    p.department.discipline if p.department else "",
                    p.department_id,
                    p.user_id,
                )
            )
        self.doctor_names = {doc.name for docs in self.doctors.values() for doc in docs}
        accounts = {u.username: u for u in User.objects.filter(username__in=["expert", "kaihua", "telecentre"])}
        self.telecentre = accounts["telecentre"]
        self.chen = self.doc_of(accounts["expert"])
        self.kaihua = self.doc_of(accounts["kaihua"])
        self.labels = {u.pk: u.display_name or u.get_username() for u in users.values()}
        self.labels[self.telecentre.pk] = self.telecentre.display_name or self.telecentre.get_username()
        self.levels: dict[tuple[int, str, str, str], Levels] = {}
        self.agreements: dict[tuple[str, str], tuple[int, int]] = {}

    def doc_of(self, user: User) -> _Doc:
        for docs in self.doctors.values():
            for doc in docs:
                if doc.user_id == user.pk:
                    return doc
        raise LookupError(user.username)

    def who(self, doc: _Doc) -> _Who:
        return _Who(doc.user_id, self.labels.get(doc.user_id, doc.name) if doc.user_id else doc.name)

    def department(self, code: str, discipline: str) -> int | None:
        """The department a request for ``discipline`` goes to (the service's choice: the first)."""
        return self.departments.get((code, discipline))

    def agreement(self, sender: str, receiver: str) -> tuple[int, int]:
        """(agreement id, consortium id) of the pair: the agreement the service finds, in force over
        the whole year of history (so every request of it was made under it)."""
        key = (sender, receiver)
        if key not in self.agreements:
            a, b = self.institutions[sender], self.institutions[receiver]
            first = consult_services.agreement_between(a, b, on=self.first_day)
            last = consult_services.agreement_between(a, b, on=self.today)
            if first is None or last is None or first.pk != last.pk or first.consortium_id is None:
                raise LookupError(f"no one agreement with a consortium links {sender} and {receiver} all year")
            self.agreements[key] = (first.pk, first.consortium_id)
        return self.agreements[key]

    def service_levels(self, consortium_id: int, kind: str, urgency: str, reading_type: str) -> Levels:
        key = (consortium_id, kind, urgency, reading_type)
        if key not in self.levels:
            self.levels[key] = consult_services.service_levels_for(consortium_id, kind, urgency, reading_type)
        return self.levels[key]


# ----------------------------------------------------------------------------------------
# One consult being written


@dataclass
class _Draft:
    kind: str
    case: _Case
    fields: Row
    sender: _Doc
    requester: _Who
    events: list[list[Any]] = field(default_factory=list)
    messages: list[Row] = field(default_factory=list)
    opinions: list[Row] = field(default_factory=list)
    status: str = str(S.REQUESTED)
    last: dt.datetime | None = None  # the time of the latest step
    stopped: bool = False

    @property
    def at(self) -> dt.datetime:
        assert self.last is not None
        return self.last


def _hours(value: float) -> dt.timedelta:
    return dt.timedelta(hours=value)


def _minutes(value: float) -> dt.timedelta:
    return dt.timedelta(minutes=value)


class _Writer:
    """Generates the history and the live work; ``write`` inserts it."""

    def __init__(self, *, reg: _Registry, rng: random.Random, marker: uuid.UUID, now: dt.datetime) -> None:
        self.reg = reg
        self.rng = rng
        self.marker: uuid.UUID | None = marker
        self.now = now
        self.tz = timezone.get_default_timezone()
        self.drafts: list[_Draft] = []
        self.patients: list[Row] = []
        self.meetings: list[Row] = []
        self.participants: list[Row] = []
        self.numbers: set[str] = set(Consult.objects.values_list("number", flat=True))
        self.numbers |= set(Meeting.objects.values_list("number", flat=True))
        self.id_numbers: set[str] = {
            n for n in Patient.objects.filter(id_number__isnull=False).values_list("id_number", flat=True) if n
        }
        today = timezone.localdate(now)
        horizon = dispatch_selectors.calendar_horizon(today - dt.timedelta(days=HISTORY_DAYS + 30), today + _days(30))
        self.working_days = horizon.working_days
        self.busy: set[tuple[int, dt.datetime]] = set()  # (expert, session start) already taken
        self.system = _Who(None, _("System"))
        self.coordinator = _Who(reg.telecentre.pk, reg.labels[reg.telecentre.pk])

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

    def lognormal_hours(self, median: float, sigma: float, lo: float, hi: float) -> dt.timedelta:
        return _hours(min(hi, max(lo, median * math.exp(self.rng.gauss(0.0, sigma)))))

    def uuid(self) -> uuid.UUID:
        if self.marker is not None:
            value, self.marker = self.marker, None
            return value
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def number(self, prefix: str, at: dt.datetime) -> str:
        day = at.astimezone(self.tz).strftime("%y%m%d")
        while True:
            n = self.rng.getrandbits(30)
            number = prefix + day + "".join(NUMBER_ALPHABET[(n >> (5 * i)) & 31] for i in range(6))
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def local(self, day: dt.date, hour: float) -> dt.datetime:
        """``hour`` hours after local midnight of ``day``."""
        return dt.datetime.combine(day, dt.time(), tzinfo=self.tz) + _hours(hour)

    def working_day_on_or_after(self, day: dt.date) -> dt.date:
        while day not in self.working_days:
            day += dt.timedelta(days=1)
        return day

    def phone(self) -> str:
        prefix: str = self.choose(_PHONE_PREFIXES)
        return prefix + f"{self.rng.randrange(10**8):08d}"

    # -- people

    def sender(self, code: str, case: _Case) -> _Doc:
        """A doctor of one of the case's requesting departments (the likelier first); 徐春华 when it is his."""
        docs = self.reg.doctors[code]
        pools = [
            (pool, len(case.senders) - i)
            for i, s in enumerate(case.senders)
            if (pool := [d for d in docs if d.discipline == s])
        ]
        if not pools:
            raise LookupError(f"{code} has no doctor to ask about {case.name}")
        chosen: list[_Doc] = self.weighted(pools)
        if self.reg.kaihua in chosen and self.rng.random() < 0.6:
            return self.reg.kaihua
        doc: _Doc = self.choose(chosen)
        return doc

    def experts(self, code: str, discipline: str, wanted: str) -> list[_Doc]:
        """Who may answer: the discipline's senior doctors holding the title wanted (attendings when there is no senior)."""
        pool = [d for d in self.reg.doctors[code] if d.discipline == discipline and _meets(d.title, wanted)]
        senior = [d for d in pool if TITLE_RANK.get(d.title, 0) >= 3]
        return senior or [d for d in pool if TITLE_RANK.get(d.title, 0) >= 2]

    def expert(self, code: str, discipline: str, wanted: str) -> _Doc | None:
        pool = self.experts(code, discipline, wanted)
        if not pool:
            return None
        # Those with accounts answer most: they are the ones the platform invites.
        doc: _Doc = self.weighted([(d, 4.0 if d.user_id else 1.0) for d in pool])
        return doc

    def nurse(self, doc: _Doc) -> str:
        names = self.reg.nurses.get((doc.institution, doc.department_id))
        if names and self.rng.random() < 0.7:
            return str(self.choose(names))
        while True:  # a nurse of the ward the registry does not list; never a doctor's name
            name = str(self.choose(_SURNAMES)) + str(self.choose(_NURSE_GIVEN))
            if name not in self.reg.doctor_names:
                return name

    # -- patients

    def patient(self, code: str, case: _Case, at: dt.datetime) -> Row:
        rng = self.rng
        institution = self.reg.institutions[code]
        region = institution.region.code
        if region == "330802":  # the city hospitals' catchment is the whole city
            region = str(self.weighted(_CITY_CATCHMENT))
        elif region not in _TOWNS:
            region = "330802"
        male = rng.random() < case.male
        age = rng.randint(*case.ages)
        surname = self.choose(_SURNAMES)
        birth = at.date() - dt.timedelta(days=int((age + rng.random()) * 365.25))
        while True:
            # Sequence numbers 300-499 (an odd 17th digit is male): clear of the referral history's 500-999.
            seq = 300 + 2 * rng.randrange(100) + (1 if male else 0)
            body = f"{region}{birth:%Y%m%d}{seq:03d}"
            number = body + ric.calc_check_digit(body + "0")
            if number not in self.id_numbers:
                break
        self.id_numbers.add(number)
        registered = at - _minutes(rng.uniform(20, 90))
        row: Row = {
            "public_id": self.uuid(),
            "name": surname + self.choose(_MALE_NAMES if male else _FEMALE_NAMES),
            "sex": Sex.MALE if male else Sex.FEMALE,
            "birth_date": birth,
            "id_number": number,
            "phone": self.phone(),
            "residence_region_id": self.reg.regions[region],
            "address": f"{self.choose(_TOWNS[region])}{self.choose(_VILLAGES)}{rng.randint(1, 120)}号",
            "emergency_contact_name": surname + self.choose(_YOUNG_NAMES),
            "emergency_contact_relation": self.choose(("儿子", "女儿", "配偶", "儿媳")),
            "emergency_contact_phone": self.phone(),
            "registered_by_id": institution.pk,
            "created_at": registered,
            "updated_at": registered,
        }
        self.patients.append(row)
        return row

    # -- the consult

    def draft(
        self,
        *,
        kind: str,
        sender_code: str,
        receiver_code: str,
        case_key: str,
        at: dt.datetime,
        reading: str = "",
        urgency: str = Urgency.ROUTINE,
        sender: _Doc | None = None,
        named: _Doc | None = None,
        wanted: str | None = None,
    ) -> _Draft:
        """The request as ``services.consult_request`` would store it."""
        rng = self.rng
        reg = self.reg
        case = CASES[case_key]
        public_id = self.uuid()
        doc = sender or self.sender(sender_code, case)
        patient = self.patient(sender_code, case, at)
        agreement_id, consortium_id = reg.agreement(sender_code, receiver_code)
        if wanted is None:
            wanted = "" if kind in (K.READING, K.MDT) and rng.random() < 0.7 else str(self.weighted(_TITLES_WANTED))
            if not self.experts(receiver_code, case.discipline, wanted):
                wanted = ""
        to_department = reg.department(receiver_code, case.discipline)
        if named is not None and named.department_id is not None:
            to_department = named.department_id  # a named expert's own department, as the service sets it
        levels = reg.service_levels(consortium_id, kind, urgency, reading)
        written = kind in (K.ECONSULT, K.READING)
        # Who writes it: the doctor's own account, or the history account standing for a doctor without one.
        created_by = doc.user_id or reg.history_user.pk
        requester = reg.who(doc)
        fields: Row = {
            "public_id": public_id,
            "number": self.number("C", at),
            "kind": kind,
            "reading_type": reading if kind == K.READING else "",
            "urgency": urgency,
            "consortium_id": consortium_id,
            "agreement_id": agreement_id,
            "patient_id": patient,  # resolved to the id on writing
            "from_institution_id": reg.institutions[sender_code].pk,
            "from_department_id": doc.department_id,
            "from_practitioner_id": doc.pk,
            "created_by_id": created_by,
            "to_institution_id": reg.institutions[receiver_code].pk,
            "to_department_id": to_department,
            "discipline": case.discipline,
            "wanted_title": wanted,
            "named_expert_id": named.pk if named else None,
            "expert_id": None,
            "reason": case.reason,
            "purpose": case.purpose,
            "question": case.question,
            "history": self.choose(case.history),
            "examination": case.examination,
            "investigations": self.choose(case.investigations),
            "diagnosis_code": case.code,
            "diagnosis_name": case.name,
            "current_treatment": case.treatment,
            "consent_obtained_by": self.nurse(doc),
            "consent_method": self.weighted(_CONSENT_METHODS),
            "consent_at": at - _minutes(rng.uniform(5, 60)),
            "requested_at": at,
            "accept_due_at": at + levels.accept_within,
            "answer_due_at": (at + levels.answer_within) if written else None,
            "created_at": at,
            "updated_at": at,
        }
        d = _Draft(kind=kind, case=case, fields=fields, sender=doc, requester=requester, last=at)
        d.events.append(
            [REQUEST, "", str(S.REQUESTED), at, requester.user_id or created_by, requester.label, str(REQUESTER),
             fields["from_institution_id"], "", {}]
        )  # fmt: skip
        self.drafts.append(d)
        return d

    def institution_of(self, d: _Draft, side: Side) -> int | None:
        if side == REQUESTER:
            return int(d.fields["from_institution_id"])
        if side in (EXPERT, CHAIR, COORDINATOR):
            return int(d.fields["to_institution_id"])
        return None

    def step(
        self,
        d: _Draft,
        action: Action,
        at: dt.datetime,
        who: _Who,
        side: Side,
        *,
        note: str = "",
        data: Row | None = None,
    ) -> bool:
        """Take one step of the table if its time has come; False once the walk is cut at ``now``."""
        if d.stopped or at > self.now:
            d.stopped = True
            return False
        transition = TRANSITIONS[(S(d.status), action)]
        assert d.kind in transition.kinds and side in transition.sides_for(d.kind), (d.kind, d.status, action, side)
        assert transition.reason_required <= bool(note), (action, "needs a reason")
        at = max(at, d.last or at)
        d.events.append(
            [str(action), d.status, str(transition.to), at, who.user_id, who.label, str(side), self.institution_of(d, side),
             note, data or {}]
        )  # fmt: skip
        d.status = str(transition.to)
        d.last = at
        d.fields["updated_at"] = at
        if note:
            d.fields["last_reason"] = note[:500]
        return True

    def message(self, d: _Draft, kind: str, text: str, at: dt.datetime, who: _Who, institution_id: int) -> None:
        d.messages.append(
            {
                "public_id": self.uuid(),
                "kind": kind,
                "text": text,
                "author_id": who.user_id or self.reg.history_user.pk,
                "author_label": who.label,
                "institution_id": institution_id,
                "created_at": at,
                "updated_at": at,
            }
        )

    # -- steps with their effects, as the services take them

    def accept(self, d: _Draft, at: dt.datetime, expert: _Doc, *, by_coordinator: bool = False) -> bool:
        if by_coordinator:
            if not self.step(d, A.ACCEPT, at, self.coordinator, COORDINATOR, data={"expert": None}):
                return False
        else:
            if d.kind != K.MDT:
                d.fields["expert_id"] = expert.pk
            data = {"expert": expert.name if d.kind != K.MDT else None}
            if not self.step(d, A.ACCEPT, at, self.reg.who(expert), EXPERT, data=data):
                return False
        d.fields["accepted_at"] = d.at
        return True

    def assign(self, d: _Draft, at: dt.datetime, expert: _Doc) -> bool:
        previous = self.expert_name(d)
        if not self.step(
            d, A.ASSIGN, at, self.coordinator, COORDINATOR, data={"expert": expert.name, "previous": previous}
        ):
            return False
        d.fields["expert_id"] = expert.pk
        return True

    def expert_name(self, d: _Draft) -> str | None:
        pk = d.fields.get("expert_id")
        if pk is None:
            return None
        for docs in self.reg.doctors.values():
            for doc in docs:
                if doc.pk == pk:
                    return doc.name
        return None

    def answer(self, d: _Draft, at: dt.datetime, expert: _Doc, text: str) -> bool:
        if not self.step(d, A.ANSWER, at, self.reg.who(expert), EXPERT):
            return False
        d.fields.update(conclusion=text, recommendations=d.case.recommendations, concluded_by_id=expert.pk)
        if d.fields.get("expert_id") is None:
            d.fields["expert_id"] = expert.pk
        d.fields.setdefault("answered_at", d.at)
        self.message(d, MessageKind.ANSWER, text, d.at, self.reg.who(expert), d.fields["to_institution_id"])
        return True

    def close(self, d: _Draft, at: dt.datetime, *, avoided: bool | None = None) -> bool:
        rng = self.rng
        value = int(self.weighted(_VALUES))
        if avoided is None:
            avoided = rng.random() < d.case.avoided
        changed = rng.random() < (0.35 if avoided else 0.7)
        data = {"referral_avoided": avoided, "management_changed": changed, "value": value}
        if not self.step(d, A.CLOSE, at, d.requester, REQUESTER, data=data):
            return False
        d.fields.update(
            referral_avoided=avoided,
            management_changed=changed,
            value_rating=value,
            closeout_comment=self.choose(_CLOSE_COMMENTS),
            closed_at=d.last,
        )
        return True

    def refuse(self, d: _Draft, at: dt.datetime, outcome: str, expert: _Doc | None) -> None:
        """End a request without an answer: declined, cancelled or expired."""
        if outcome == "declined":
            by_expert = expert is not None and (
                d.fields["to_institution_id"] != self.reg.institutions["zju2"].pk or self.rng.random() < 0.6
            )
            who, side = (self.reg.who(expert), EXPERT) if by_expert and expert else (self.coordinator, COORDINATOR)
            self.step(d, A.DECLINE, at, who, side, note=self.choose(_DECLINE_REASONS))
        elif outcome == "cancelled":
            self.step(d, A.CANCEL, at, d.requester, REQUESTER, note=self.choose(_CANCEL_REASONS))
        else:
            after = EXPIRE_AFTER[Urgency(d.fields["urgency"])]
            self.step(d, A.EXPIRE, d.fields["requested_at"] + after + _minutes(self.rng.uniform(1, 15)), self.system,
                      SYSTEM, note=_("Nobody accepted it in time."))  # fmt: skip

    # -- walks

    def take(self, d: _Draft, at: dt.datetime, expert: _Doc) -> bool:
        """The consulted side takes the request: the expert from the pool or as named, or the
        teleconsultation centre assigns an expert with an account who then accepts."""
        zju2 = d.fields["to_institution_id"] == self.reg.institutions["zju2"].pk
        assigned = zju2 and d.fields["named_expert_id"] is None and expert.user_id and self.rng.random() < 0.4
        if assigned and not self.assign(d, at - _minutes(self.rng.uniform(5, 40)), expert):
            return False
        return self.accept(d, at, expert)

    def outcome(self, refused: float) -> str:
        x = self.rng.random()
        if x >= refused:
            return "delivered"
        return str(self.weighted((("declined", 4), ("cancelled", 3), ("expired", 2))))

    def econsult(self, d: _Draft, expert: _Doc) -> None:
        rng = self.rng
        start: dt.datetime = d.fields["requested_at"]
        urgent = d.fields["urgency"] == Urgency.URGENT
        outcome = self.outcome(0.08)
        if outcome != "delivered":
            self.refuse(d, start + self.lognormal_hours(3 if urgent else 8, 0.8, 0.2, 60), outcome, expert)
            return
        # Request to first answer: median about 21 hours (urgent: about 2), in a thread.
        response = self.lognormal_hours(2 if urgent else 21, 0.6 if urgent else 0.7, 0.5, 110)
        accepted = start + response * rng.uniform(0.05, 0.3)
        if not self.take(d, accepted, expert):
            return
        ask, provide = d.case.info
        if ask and rng.random() < 0.18:
            if not self.step(d, A.ASK_INFO, start + response * rng.uniform(0.3, 0.45), self.reg.who(expert), EXPERT):
                return
            self.message(d, MessageKind.INFO_REQUEST, ask, d.at, self.reg.who(expert), d.fields["to_institution_id"])
            if not self.step(d, A.PROVIDE_INFO, start + response * rng.uniform(0.55, 0.8), d.requester, REQUESTER):
                return
            self.message(d, MessageKind.MESSAGE, provide, d.at, d.requester, d.fields["from_institution_id"])
        if not self.answer(d, start + response, expert, self.choose(d.case.answers)):
            return
        answered: dt.datetime = d.fields["answered_at"]
        if rng.random() < 0.06:
            question = self.choose(_FOLLOW_UPS)
            if not self.step(d, A.FOLLOW_UP, answered + _hours(rng.uniform(3, 48)), d.requester, REQUESTER):
                return
            self.message(d, MessageKind.FOLLOW_UP, question, d.at, d.requester, d.fields["from_institution_id"])
            reply = "可以在当地继续治疗，按原方案执行，如有变化随时再联系。"
            if not self.answer(d, d.at + self.lognormal_hours(6, 0.6, 1, 30), expert, reply):
                return
        if rng.random() < 0.92:  # a few are never closed out
            self.close(d, (d.last or answered) + self.lognormal_hours(20, 0.9, 1, 240))

    def reading(self, d: _Draft, expert: _Doc) -> None:
        rng = self.rng
        start: dt.datetime = d.fields["requested_at"]
        reading = d.fields["reading_type"]
        if reading == RT.FROZEN_SECTION:
            # The patient is on the table: accepted within minutes, read within 30.
            accepted, answered = start + _minutes(rng.uniform(1, 4.5)), start + _minutes(rng.triangular(11, 29, 19))
        elif d.fields["urgency"] == Urgency.URGENT:
            if self.outcome(0.03) == "cancelled":
                self.refuse(d, start + _minutes(rng.uniform(5, 25)), "cancelled", expert)
                return
            accepted, answered = start + _minutes(rng.uniform(1, 9)), start + _minutes(rng.triangular(12, 40, 22))
        else:
            outcome = self.outcome(0.05)
            if outcome != "delivered":
                self.refuse(d, start + _hours(rng.uniform(0.3, 3)), outcome, expert)
                return
            accepted, answered = start + _minutes(rng.uniform(8, 55)), start + _hours(rng.triangular(1, 5, 2.2))
        if not self.take(d, accepted, expert):
            return
        if not self.answer(d, answered, expert, self.choose(d.case.answers)):
            return
        if rng.random() < 0.85:
            self.close(d, answered + self.lognormal_hours(6, 1.0, 0.5, 120))

    def session_slot(self, expert: _Doc, earliest: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """A free half hour or so at 15:00 or 17:00 on a working day after ``earliest``'s (clear of
        the noon MDT and of the hours other tests and demos book)."""
        day = self.working_day_on_or_after(timezone.localdate(earliest) + dt.timedelta(days=1))
        while True:
            for hour in self.rng.sample((15.0, 17.0), 2):
                start = self.local(day, hour)
                if (expert.pk, start) not in self.busy and start > earliest:
                    self.busy.add((expert.pk, start))
                    return start, start + _minutes(self.choose((30, 40, 45)))
            day = self.working_day_on_or_after(day + dt.timedelta(days=1))

    def schedule(
        self, d: _Draft, at: dt.datetime, expert: _Doc, by_coordinator: bool, *, earliest: dt.datetime | None = None
    ) -> bool:
        start, end = self.session_slot(expert, earliest or at + _hours(20))
        who, side = (self.coordinator, COORDINATOR) if by_coordinator else (self.reg.who(expert), EXPERT)
        previous = d.fields["scheduled_start"].isoformat() if d.fields.get("scheduled_start") else None
        data = {"starts_at": start.isoformat(), "ends_at": end.isoformat(), "previous": previous}
        if not self.step(d, A.SCHEDULE, at, who, side, data=data):
            return False
        levels = self.reg.service_levels(d.fields["consortium_id"], d.kind, d.fields["urgency"], "")
        d.fields.update(
            scheduled_start=start,
            scheduled_end=end,
            meeting_url=f"https://meeting.example.cn/j/{self.rng.randrange(10**8, 10**9)}",
            answer_due_at=end + levels.answer_within,
            escalation_level=0,
        )
        return True

    def teleconsultation(self, d: _Draft, expert: _Doc) -> None:
        rng = self.rng
        start: dt.datetime = d.fields["requested_at"]
        outcome = self.outcome(0.1)
        if outcome in ("declined", "expired"):
            self.refuse(d, start + self.lognormal_hours(6, 0.8, 0.5, 60), outcome, expert)
            return
        if not self.take(d, start + self.lognormal_hours(4, 0.8, 0.3, 30), expert):
            return
        zju2 = d.fields["to_institution_id"] == self.reg.institutions["zju2"].pk
        by_coordinator = zju2 and rng.random() < 0.6
        if not self.schedule(d, d.at + _hours(rng.uniform(0.5, 6)), expert, by_coordinator):
            return
        if rng.random() < 0.08 and not self.schedule(d, d.at + _hours(rng.uniform(2, 20)), expert, by_coordinator):
            return  # the expert moved it: the new time keeps the old in the timeline
        session_start: dt.datetime = d.fields["scheduled_start"]
        if outcome == "cancelled":
            self.step(d, A.CANCEL, session_start - _hours(rng.uniform(2, 18)), d.requester, REQUESTER,
                      note=self.choose(_CANCEL_REASONS))  # fmt: skip
            return
        who, side = (self.coordinator, COORDINATOR) if by_coordinator else (self.reg.who(expert), EXPERT)
        if not self.step(d, A.START, session_start + _minutes(rng.uniform(0, 4)), who, side):
            return
        if not self.step(
            d, A.CONCLUDE, d.fields["scheduled_end"] + _minutes(rng.uniform(-5, 40)), self.reg.who(expert), EXPERT
        ):
            return
        d.fields.update(
            conclusion=self.choose(d.case.answers),
            recommendations=d.case.recommendations,
            concluded_by_id=expert.pk,
            answered_at=d.last,
        )
        if rng.random() < 0.9:
            self.close(d, d.at + self.lognormal_hours(30, 0.8, 2, 300))

    # -- the history

    def history(self) -> None:
        rng = self.rng
        start_day = timezone.localdate(self.now) - dt.timedelta(days=HISTORY_DAYS)
        cumulative = list(itertools.accumulate(line.weight for line in LINES))
        for offset in range(HISTORY_DAYS + 1):
            day = start_day + dt.timedelta(days=offset)
            working = day in self.working_days
            growth = 0.7 + 0.6 * offset / HISTORY_DAYS  # the service takes hold over the year
            rate = (2.4 if working else 0.35) * growth
            for _n in range(self._poisson(rate)):
                line = LINES[rng.choices(range(len(LINES)), cum_weights=cumulative)[0]]
                if line.reading == _FS and not working:
                    continue  # operations with frozen sections run on working days
                self.arrival(line, day)

    def _poisson(self, rate: float) -> int:
        limit, k, p = math.exp(-rate), 0, 1.0
        while True:
            p *= self.rng.random()
            if p < limit:
                return k
            k += 1

    def arrival(self, line: _Line, day: dt.date) -> None:
        rng = self.rng
        case_key = str(self.weighted(line.cases))
        case = CASES[case_key]
        if line.reading == _FS:
            at, urgency = self.local(day, rng.uniform(8.5, 16.0)), Urgency.URGENT
        elif line.kind == K.READING and line.reading in (RT.IMAGING, RT.ECG) and rng.random() < 0.75:
            at, urgency = self.local(day, rng.uniform(0, 24)), Urgency.URGENT
        else:
            urgent = rng.random() < (0.08 if line.kind == K.ECONSULT else 0.04)
            at = self.local(day, rng.uniform(7.5, 21.0) if urgent else rng.uniform(8.0, 17.5))
            urgency = Urgency.URGENT if urgent else Urgency.ROUTINE
        if at > self.now:
            return
        wanted = None
        named = None
        expert = self.expert(line.receiver, case.discipline, "")
        if expert is None:
            return
        if line.kind in (K.ECONSULT, K.TELECONSULTATION) and expert.user_id and rng.random() < 0.25:
            named, wanted = expert, ""
        d = self.draft(
            kind=line.kind,
            sender_code=line.sender,
            receiver_code=line.receiver,
            case_key=case_key,
            at=at,
            reading=line.reading,
            urgency=urgency,
            named=named,
            wanted=wanted,
        )
        if named is None:
            expert = self.expert(line.receiver, case.discipline, d.fields["wanted_title"]) or expert
        if line.kind == K.ECONSULT:
            self.econsult(d, expert)
        elif line.kind == K.READING:
            self.reading(d, expert)
        else:
            self.teleconsultation(d, expert)

    # -- MDT meetings

    def mdt_experts(self) -> list[_Doc]:
        zju2 = self.reg.doctors["zju2"]
        people = [self.reg.chen]
        for discipline in MDT_DISCIPLINES[1:]:
            with_account = [d for d in zju2 if d.discipline == discipline and d.user_id]
            if with_account:
                people.append(max(with_account, key=lambda d: (TITLE_RANK.get(d.title, 0), -d.pk)))
        return people

    def meeting(self, starts: dt.datetime, created: dt.datetime, serial: int, status: str) -> Row:
        reg = self.reg
        _agreement, consortium_id = reg.agreement("qzph", "zju2")
        row: Row = {
            "id": None,  # reserved on writing
            "public_id": self.uuid(),
            "number": self.number("M", created),
            "consortium_id": consortium_id,
            "institution_id": reg.institutions["zju2"].pk,
            "title": f"{MDT_TITLE}第{serial}期",
            "chair_id": reg.chen.pk,
            "starts_at": starts,
            "ends_at": starts + _minutes(90),
            "meeting_url": f"https://meeting.example.cn/j/{self.rng.randrange(10**8, 10**9)}",
            "status": status,
            "created_by_id": reg.telecentre.pk,
            "sequence": 1 if status == Meeting.MeetingStatus.CANCELLED else 0,
            "created_at": created,
            "updated_at": created,
        }
        self.meetings.append(row)
        return row

    def invite(self, meeting: Row, people: list[_Doc], responses: Mapping[int, str]) -> list[_Doc]:
        """Participants (the chair included); returns those who attend."""
        attending = []
        for doc in people:
            response = responses.get(doc.pk, Participant.Response.ACCEPTED)
            self.participants.append(
                {
                    "meeting": meeting,
                    "practitioner_id": doc.pk,
                    "response": response,
                    "public_id": self.uuid(),
                    "created_at": meeting["created_at"],
                    "updated_at": meeting["created_at"],
                }
            )
            if response == Participant.Response.ACCEPTED:
                attending.append(doc)
        return attending

    def mdt_case(self, meeting: Row, at: dt.datetime, *, sender_code: str | None = None, case_key: str | None = None,
                 sender: _Doc | None = None) -> _Draft | None:  # fmt: skip
        sender_code = sender_code or str(self.weighted(MDT_SOURCES))
        case_key = case_key or str(self.weighted(MDT_CASES))
        d = self.draft(
            kind=K.MDT, sender_code=sender_code, receiver_code="zju2", case_key=case_key, at=at, sender=sender
        )
        rng = self.rng
        accepted = at + self.lognormal_hours(5, 0.7, 0.5, 30)
        if rng.random() < 0.8:
            ok = self.accept(d, accepted, self.reg.chen, by_coordinator=True)
        else:
            ok = self.accept(d, accepted, self.reg.chen)
        if not ok:
            return d
        self.put_on_agenda(d, max(d.last or at, meeting["created_at"]) + _hours(rng.uniform(0.5, 8)), meeting)
        return d

    def put_on_agenda(self, d: _Draft, at: dt.datetime, meeting: Row) -> bool:
        previous = d.fields.get("_meeting")
        data = {
            "meeting": meeting["number"],
            "previous": previous["number"] if previous else None,
            "starts_at": meeting["starts_at"].isoformat(),
        }
        if not self.step(d, A.SCHEDULE, at, self.coordinator, COORDINATOR, data=data):
            return False
        agenda = meeting.setdefault("_agenda", [])
        agenda.append(d)
        levels = self.reg.service_levels(d.fields["consortium_id"], d.kind, d.fields["urgency"], "")
        d.fields.update(
            _meeting=meeting,
            agenda_order=len(agenda),
            scheduled_start=meeting["starts_at"],
            scheduled_end=meeting["ends_at"],
            meeting_url=meeting["meeting_url"],
            answer_due_at=meeting["ends_at"] + levels.answer_within,
            escalation_level=0,
        )
        return True

    def discuss(self, meeting: Row, attending: list[_Doc]) -> None:
        """The meeting is held: each case in turn, the experts' opinions, the chair's conclusion."""
        rng = self.rng
        chen = self.reg.who(self.reg.chen)
        agenda: list[_Draft] = [d for d in meeting.get("_agenda", []) if d.fields.get("_meeting") is meeting]
        if not agenda:
            return
        slot = 90 / len(agenda)
        by_discipline = {doc.discipline: doc for doc in attending}
        for i, d in enumerate(agenda):
            d.fields["agenda_order"] = i + 1
            begin = meeting["starts_at"] + _minutes(i * slot + rng.uniform(0, 3))
            if not self.step(d, A.START, begin, chen, CHAIR):
                return
            minute = 2.0
            for discipline, text in d.case.opinions:
                doc = by_discipline.get(discipline)
                if doc is None:
                    continue
                minute += rng.uniform(1.5, slot / (len(d.case.opinions) + 2))
                at = begin + _minutes(minute)
                d.opinions.append(
                    {
                        "public_id": self.uuid(),
                        "practitioner_id": doc.pk,
                        "text": text,
                        "author_id": doc.user_id,
                        "supersedes_id": None,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            if not self.step(d, A.CONCLUDE, begin + _minutes(max(minute + 2, slot - 3)), chen, CHAIR):
                return
            d.fields.update(
                conclusion=self.choose(d.case.answers),
                recommendations=d.case.recommendations,
                concluded_by_id=self.reg.chen.pk,
                answered_at=d.last,
            )
            if rng.random() < 0.93:
                self.close(d, d.at + self.lognormal_hours(40, 0.8, 3, 400))

    def mdt_history(self, upcoming: dt.date) -> None:
        """Every second Thursday for a year before ``upcoming``; one meeting cancelled (the chair at a
        congress), its cases moved to the next."""
        rng = self.rng
        people = self.mdt_experts()
        count = HISTORY_DAYS // MDT_EVERY_DAYS
        days = [upcoming - dt.timedelta(days=MDT_EVERY_DAYS * k) for k in range(count, 0, -1)]
        cancelled_index = len(days) // 2
        moved: list[_Draft] = []
        for serial, day in enumerate(days, start=1):
            day = self.working_day_on_or_after(day)
            starts = self.local(day, 12.0)
            created = starts - dt.timedelta(days=13)
            cancelled = serial - 1 == cancelled_index
            status = Meeting.MeetingStatus.CANCELLED if cancelled else Meeting.MeetingStatus.HELD
            meeting = self.meeting(starts, created, serial, status)
            responses = {doc.pk: Participant.Response.DECLINED for doc in people[1:] if rng.random() < 0.1}
            attending = self.invite(meeting, people, responses)
            for d in moved:
                self.put_on_agenda(d, created + _hours(rng.uniform(2, 30)), meeting)
            for _n in range(rng.choice((2, 3, 3, 4)) - len(moved)):  # the moved cases take their places
                at = self.local(
                    self.working_day_on_or_after(day - dt.timedelta(days=rng.randint(3, 11))), rng.uniform(8.5, 17)
                )
                self.mdt_case(meeting, at)
            moved = [d for d in meeting.get("_agenda", []) if d.status == S.SCHEDULED] if cancelled else []
            if cancelled:
                continue
            self.discuss(meeting, attending)

    # -- live work for the personas

    def live_work(self, upcoming: dt.date) -> None:
        reg = self.reg
        rng = self.rng
        now = self.now
        chen, kaihua = reg.chen, reg.kaihua

        def ago(hours: float) -> dt.datetime:
            return now - _hours(hours)

        neuro = self.expert("zju2", D.NEUROLOGY, T.CHIEF_PHYSICIAN)
        radiologist = next(d for d in reg.doctors["zju2"] if d.discipline == D.RADIOLOGY and d.user_id)
        pathologist = next(
            d for d in reg.doctors["zju2"] if d.discipline == D.PATHOLOGY and d.user_id and d.title == T.CHIEF_PHYSICIAN
        )
        assert neuro is not None
        qzph_neurosurgeon = self.sender("qzph", CASES["glioma"])
        # For 陈志远: two requests to accept (one named, overdue: reminded), one eConsult in discussion.
        self.draft(kind=K.ECONSULT, sender_code="qzph", receiver_code="zju2", case_key="aneurysm", at=ago(3),
                   sender=qzph_neurosurgeon, named=chen, wanted="")  # fmt: skip
        overdue = self.draft(kind=K.TELECONSULTATION, sender_code="khph", receiver_code="zju2", case_key="ich_post",
                             at=ago(27), named=chen, wanted=T.CHIEF_PHYSICIAN)  # fmt: skip
        overdue.fields["escalation_level"] = 1  # the worker's sweep reminded the consulted side
        d = self.draft(kind=K.ECONSULT, sender_code="khph", receiver_code="zju2", case_key="ich_small", at=ago(22),
                       sender=kaihua, wanted=T.CHIEF_PHYSICIAN)  # fmt: skip
        ask, provide = d.case.info
        self.accept(d, ago(19), chen)
        self.step(d, A.ASK_INFO, ago(16), reg.who(chen), EXPERT)
        self.message(d, MessageKind.INFO_REQUEST, ask, ago(16), reg.who(chen), d.fields["to_institution_id"])
        self.step(d, A.PROVIDE_INFO, ago(2), d.requester, REQUESTER)
        self.message(d, MessageKind.MESSAGE, provide, ago(2), d.requester, d.fields["from_institution_id"])
        # For 徐春华: an answered eConsult waiting for his close-out.
        d = self.draft(kind=K.ECONSULT, sender_code="khph", receiver_code="zju2", case_key="epilepsy", at=ago(26),
                       sender=kaihua, wanted="")  # fmt: skip
        self.accept(d, ago(23), neuro)
        self.answer(d, ago(5), neuro, d.case.answers[0])
        # For the teleconsultation centre: unassigned requests in the pool.
        self.draft(kind=K.ECONSULT, sender_code="khph", receiver_code="zju2", case_key="knee_oa", at=ago(2), wanted="")
        self.draft(kind=K.ECONSULT, sender_code="qz2ph", receiver_code="zju2", case_key="parkinson", at=ago(0.7),
                   wanted=T.ASSOCIATE_CHIEF_PHYSICIAN)  # fmt: skip
        self.draft(kind=K.TELECONSULTATION, sender_code="qzph", receiver_code="zju2", case_key="spine", at=ago(6),
                   wanted="")  # fmt: skip
        # A scheduled teleconsultation of 陈志远's in the coming days.
        d = self.draft(kind=K.TELECONSULTATION, sender_code="qzph", receiver_code="zju2", case_key="ich_post",
                       at=ago(50), sender=qzph_neurosurgeon, wanted=T.CHIEF_PHYSICIAN)  # fmt: skip
        self.accept(d, ago(46), chen)
        self.schedule(d, ago(45), chen, by_coordinator=True, earliest=now + _days(1))
        # A reading waiting for 何静, one accepted by 蒋文博.
        self.draft(kind=K.READING, reading=RT.IMAGING, sender_code="khph", receiver_code="zju2", case_key="mri_brain",
                   at=ago(0.4), named=radiologist, wanted="")  # fmt: skip
        d = self.draft(kind=K.READING, reading=RT.PATHOLOGY, sender_code="qzph", receiver_code="zju2",
                       case_key="slides_glioma", at=ago(1.2), wanted="")  # fmt: skip
        self.accept(d, ago(0.8), pathologist)
        # Next week's MDT meeting: three cases on the agenda, one accepted case still to be put on it.
        people = self.mdt_experts()
        day = self.working_day_on_or_after(upcoming)
        starts = self.local(day, 12.0)
        serial = HISTORY_DAYS // MDT_EVERY_DAYS + 1
        meeting = self.meeting(starts, ago(60), serial, Meeting.MeetingStatus.PLANNED)
        pending = {doc.pk: Participant.Response.PENDING for doc in people[3:5]}
        self.invite(meeting, people, pending)
        for hours, code, case_key, sender in (
            (50, "qzph", "glioma", qzph_neurosurgeon),
            (30, "khph", "deep_mass", None),
            (20, "qz2ph", "brain_mets", None),
        ):
            d = self.draft(kind=K.MDT, sender_code=code, receiver_code="zju2", case_key=case_key, at=ago(hours),
                           sender=sender, wanted="")  # fmt: skip
            self.accept(d, ago(hours * 0.7), chen, by_coordinator=True)
            self.put_on_agenda(d, ago(hours * 0.5), meeting)
        d = self.draft(kind=K.MDT, sender_code="khph", receiver_code="zju2", case_key="skull_base", at=ago(5),
                       sender=kaihua, wanted="")  # fmt: skip
        self.accept(d, ago(3), chen, by_coordinator=True)
        assert rng is self.rng

    # -- escalation as the worker's sweep would have left it

    def escalate(self, d: _Draft) -> None:
        f = d.fields
        if f.get("escalation_level"):
            return
        levels = self.reg.service_levels(f["consortium_id"], d.kind, f["urgency"], f["reading_type"])
        checks = ((f["accept_due_at"], f.get("accepted_at")), (f.get("answer_due_at"), f.get("answered_at")))
        level = 0
        for due, done in checks:
            if due is None:
                continue
            late = (done or self.now) - due
            if late > dt.timedelta(0) and (done is not None or d.status in _OPEN):
                level = max(level, 2 if late > levels.escalate_after else 1)
        f["escalation_level"] = level


def _meets(title: str, wanted: str) -> bool:
    """``workflow.meets_title`` on a title."""
    return not wanted or TITLE_RANK.get(title, 0) >= TITLE_RANK.get(wanted, 0)


_OPEN = frozenset({str(S.REQUESTED), str(S.ACCEPTED), str(S.SCHEDULED), str(S.IN_DISCUSSION)})


def _days(value: float) -> dt.timedelta:
    return dt.timedelta(days=value)


# ----------------------------------------------------------------------------------------
# Writing


def _write(writer: _Writer) -> int:
    """Insert everything generated; returns the number of timeline events written."""
    patients = writer.patients
    for row, pk in zip(patients, _reserve_ids(Patient, len(patients)), strict=True):
        row["id"] = pk
    _Table(Patient).insert(patients)
    for row, pk in zip(writer.meetings, _reserve_ids(Meeting, len(writer.meetings)), strict=True):
        row["id"] = pk
    _Table(Meeting).insert([{k: v for k, v in row.items() if not k.startswith("_")} for row in writer.meetings])
    _Table(Participant, with_id=False).insert(
        [{**row, "meeting_id": row["meeting"]["id"]} for row in writer.participants]
    )
    drafts = sorted(writer.drafts, key=lambda d: (d.fields["requested_at"], d.fields["number"]))
    consults: list[Row] = []
    events: list[list[Any]] = []
    messages: list[Row] = []
    opinions: list[Row] = []
    for d, pk in zip(drafts, _reserve_ids(Consult, len(drafts)), strict=True):
        writer.escalate(d)
        row = {k: v for k, v in d.fields.items() if not k.startswith("_")}
        meeting = d.fields.get("_meeting")
        row.update(id=pk, status=d.status, patient_id=d.fields["patient_id"]["id"])
        row["meeting_id"] = meeting["id"] if meeting else None
        consults.append(row)
        events.extend([pk, *event] for event in d.events)
        messages.extend({**m, "consult_id": pk} for m in d.messages)
        opinions.extend({**o, "consult_id": pk} for o in d.opinions)
    _Table(Consult).insert(consults)
    event_table = _Table(ConsultEvent, with_id=False)
    order = ["consult_id", "action", "from_status", "to_status", "at", "actor_id", "actor_label", "side",
             "institution_id", "note", "data"]  # fmt: skip
    assert event_table.names == order, event_table.names  # the order the events are built in
    event_table.insert_values(events)
    _Table(Message, with_id=False).insert(messages)
    _Table(Opinion, with_id=False).insert(opinions)
    return len(events)


def _ensure_people() -> tuple[int, int, int]:
    """Create the practitioners (and the MDT experts' accounts) that are missing; (users, memberships, practitioners)."""
    users = memberships = practitioners = 0
    institutions = {i.code: i for i in Institution.objects.filter(code__in={p.institution for p in PEOPLE})}
    for person in PEOPLE:
        account: User | None = None
        institution = institutions[person.institution]
        if person.username:
            account = User.objects.filter(username=person.username).first()
            if account is None:
                account = registry_services.user_create(
                    actor=None, username=person.username, password=None, display_name=person.name_zh
                )
                users += 1
            if not Membership.objects.filter(user=account, role=Role.DOCTOR, institution=institution).exists():
                registry_services.membership_grant(actor=None, user=account, role=Role.DOCTOR, institution=institution)
                memberships += 1
        if Practitioner.objects.filter(licence_number=person.licence).exists():
            continue
        department = (
            Department.objects.filter(institution=institution, discipline=person.discipline, is_active=True)
            .order_by("pk")
            .first()
        )
        registry_services.practitioner_create(
            actor=None,
            name_zh=person.name_zh,
            name_en=person.name_en,
            title=person.title,
            institution=institution,
            department=department,
            licence_number=person.licence,
            specialties=person.specialties,
            user=account if account is not None and not Practitioner.objects.filter(user=account).exists() else None,
        )
        practitioners += 1
    return users, memberships, practitioners


def _rng(seed: int) -> tuple[random.Random, uuid.UUID]:
    """The run's generator and its marker (the first consult's public id, drawn first)."""
    rng = random.Random(f"{RUN}:{seed}")
    return rng, uuid.UUID(int=rng.getrandbits(128), version=4)


def seed_consults(*, seed: int = 2018, now: dt.datetime | None = None) -> ConsultSeed:
    """Write the year of consults unless it is there already; say what was created."""
    rng, marker = _rng(seed)
    if Consult.objects.filter(public_id=marker).exists():
        return ConsultSeed()
    if not Institution.objects.filter(code="zju2").exists() or not User.objects.filter(username="expert").exists():
        return ConsultSeed()  # no demo registry to build on
    now = now or timezone.now()
    with transaction.atomic():
        users, memberships, practitioners = _ensure_people()
        history_user, made = _history_user()
        registry = _Registry(history_user, now)
        writer = _Writer(reg=registry, rng=rng, marker=marker, now=now)
        upcoming = dispatch_selectors.monday(timezone.localdate(now)) + dt.timedelta(days=10)  # next week's Thursday
        writer.live_work(upcoming)
        writer.mdt_history(upcoming)
        writer.history()
        events = _write(writer)
        report = ConsultSeed(
            users=users + int(made),
            memberships=memberships,
            practitioners=practitioners,
            patients=len(writer.patients),
            meetings=len(writer.meetings),
            consults=len(writer.drafts),
            events=events,
        )
        audit_record(
            actor=None,
            action=AuditAction.CREATE,
            object_type="consults.consult",
            object_repr="demo consult history",
            changes={
                "seeded": report.consults,
                "meetings": report.meetings,
                "patients": report.patients,
                "seed": seed,
            },
        )
    return report
