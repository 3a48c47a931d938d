"""The demo consortium: the Quzhou (2018) and Bijie (2022) stories of the domain brief (§3) as data.

Invariants:
- every write goes through ``yilian.registry.services`` with ``actor=None``, so each row
  has its audit event, exactly as if an operator had entered it; the exception is the
  referral history (``yilian.demo.referrals``), the consult history (``yilian.demo.consults``),
  the survey history (``yilian.demo.surveys``) and the green-channel history (``yilian.demo.green``):
  synthetic history written in bulk, with one audit row for each whole run (the green channel's
  story and live cases go through its services, audited as the people who acted);
- seeding is idempotent: every object is looked up by its natural key first and skipped
  when present, so a second run creates nothing and appends no audit rows;
- everything random comes from ``random.Random(seed)``; the generated practitioners depend
  only on ``seed`` and ``scale`` (never on what is already in the database), and the
  practitioners of scale N are a prefix of those of scale N + 1;
- the codes, usernames and story facts here are a contract other code and tests rely on.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, fields
from decimal import Decimal

from django.core.files.base import ContentFile
from django.db import transaction

from yilian.core.permissions import Role
from yilian.demo.activity import register_residence_regions, seed_activity
from yilian.demo.capability import seed_capability
from yilian.demo.consults import seed_consults
from yilian.demo.dispatch import seed_dispatch
from yilian.demo.green import seed_green
from yilian.demo.pdf import simple_pdf
from yilian.demo.referrals import seed_referrals
from yilian.demo.surveys import seed_surveys
from yilian.indicators.defaults import load_defaults
from yilian.indicators.models import Indicator
from yilian.registry import services
from yilian.registry.models import (
    Agreement,
    AgreementStatus,
    Capability,
    CapabilityKind,
    Consortium,
    ConsortiumMember,
    ConsortiumType,
    Department,
    DepartmentPairing,
    Discipline,
    Institution,
    InstitutionGrade,
    InstitutionType,
    MemberRelation,
    Membership,
    PairingKind,
    Practitioner,
    ProfessionalTitle,
    Region,
    RegionLevel,
    User,
)

DEMO_PASSWORD = "Yilian-demo-2026"  # noqa: S105  (published on purpose: demo logins only)

# ----------------------------------------------------------------------------------------
# Demo users (the named cast used by the README, `make demo` and the browser tests)


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name_zh: str
    display_name_en: str
    role: Role
    institution_code: str | None
    consortium_code: str | None
    region_code: str | None
    description_en: str
    description_zh: str


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser(
        "admin",
        "系统管理员",
        "System administrator",
        Role.SYSTEM_ADMIN,
        None,
        None,
        None,
        "Runs the platform: every institution, consortium, user and the audit trail.",
        "平台系统管理员：管理全部机构、医联体、用户，查看审计日志。",
    ),
    DemoUser(
        "office",
        "周敏",
        "Zhou Min",
        Role.CONSORTIUM_OFFICE,
        "zju2",
        "zju2-quzhou",
        None,
        "Consortium office of the Second Affiliated Hospital: partners, agreements, stationed experts.",
        "浙大二院医联体办公室：管理成员单位、合作协议和下沉专家。",
    ),
    DemoUser(
        "expert",
        "陈志远",
        "Chen Zhiyuan",
        Role.STATIONED_EXPERT,
        "zju2",
        None,
        None,
        "Provincial neurosurgeon, neurosurgery business director at Quzhou People's Hospital 3 days a week.",
        "浙大二院神经外科主任医师，2018年9月起任衢州市人民医院神经外科业务主任，每周驻点3天。",
    ),
    DemoUser(
        "doctor",
        "王建国",
        "Wang Jianguo",
        Role.DOCTOR,
        "csph",
        None,
        None,
        "Neurologist at Changshan County People's Hospital who refers stroke patients up.",
        "常山县人民医院神经内科主治医师，负责卒中患者上转。",
    ),
    DemoUser(
        "coordinator",
        "赵磊",
        "Zhao Lei",
        Role.ONCALL_COORDINATOR,
        "qzph",
        None,
        None,
        "On-call coordinator at Quzhou People's Hospital: accepts incoming transfers.",
        "衢州市人民医院急诊值班协调员：接收转诊、记录时间节点。",
    ),
    DemoUser(
        "hospadmin",
        "孙丽华",
        "Sun Lihua",
        Role.HOSPITAL_ADMIN,
        "qzph",
        None,
        None,
        "Medical affairs at Quzhou People's Hospital: staff, accounts and the hospital's audit trail.",
        "衢州市人民医院医务部管理员：管理本院人员、账号和审计日志。",
    ),
    DemoUser(
        "commission",
        "吴海峰",
        "Wu Haifeng",
        Role.COMMISSION_VIEWER,
        None,
        None,
        "330800",
        "Quzhou health commission: read-only view of the city's institutions, consortia and agreements.",
        "衢州市卫生健康委员会：只读查看全市机构、医联体和合作协议。",
    ),
    DemoUser(
        "bijie",
        "李海燕",
        "Li Haiyan",
        Role.DOCTOR,
        "bjfph",
        None,
        None,
        "Orthopaedic surgeon at the Bijie regional medical centre, trained by the stationed team.",
        "浙江省人民医院毕节医院骨科副主任医师，骨干培育项目学员。",
    ),
    DemoUser(
        "kaihua",
        "徐春华",
        "Xu Chunhua",
        Role.DOCTOR,
        "khph",
        None,
        None,
        "Neurologist at Kaihua County People's Hospital who asks the provincial experts for eConsults and MDTs.",
        "开化县人民医院神经内科主治医师，向省级专家申请远程会诊和多学科讨论。",
    ),
    DemoUser(
        "telecentre",
        "冯雅琴",
        "Feng Yaqin",
        Role.ONCALL_COORDINATOR,
        "zju2",
        None,
        None,
        "Teleconsultation centre of the Second Affiliated Hospital: routes consults, assigns experts, runs MDTs.",
        "浙大二院远程会诊中心协调员：分派会诊、安排专家、组织多学科讨论。",
    ),
    DemoUser(
        "pathologist",
        "蒋文博",
        "Jiang Wenbo",
        Role.DOCTOR,
        "zju2",
        None,
        None,
        "Pathologist at the Second Affiliated Hospital: reads the county hospitals' frozen sections online.",
        "浙大二院病理科主任医师：远程阅读县级医院的术中冰冻切片。",
    ),
    DemoUser(
        "radiologist",
        "何静",
        "He Jing",
        Role.DOCTOR,
        "zju2",
        None,
        None,
        "Radiologist at the Second Affiliated Hospital: urgent image readings and MDT imaging opinions.",
        "浙大二院放射科副主任医师：急会诊读片、多学科讨论影像意见。",
    ),
    DemoUser(
        "quality",
        "钱芳",
        "Qian Fang",
        Role.QUALITY_STAFF,
        "qzph",
        None,
        None,
        "Quality office at Quzhou People's Hospital: survey links and posters, satisfaction results and comments.",
        "衢州市人民医院质控办：发放满意度调查链接和海报，查看满意度结果和患者留言。",
    ),
    DemoUser(
        "bjadmin",
        "张晓燕",
        "Zhang Xiaoyan",
        Role.HOSPITAL_ADMIN,
        "bjfph",
        None,
        None,
        "Medical affairs at the Bijie centre: surgical privileges, technique ledgers, firsts, training.",
        "毕节医院医务部管理员：手术授权、技术转移台账、首例申报和骨干培育项目。",
    ),
    DemoUser(
        "bjexpert",
        "徐立峰",
        "Xu Lifeng",
        Role.STATIONED_EXPERT,
        "zjpph",
        None,
        None,
        "Robot-assisted hepatobiliary surgeon of Zhejiang Provincial People's Hospital, stationed in Bijie.",
        "浙江省人民医院肝胆胰外科主任医师，派驻毕节医院，机器人辅助手术，名医工作室导师。",
    ),
)


# ----------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class SeedReport:
    """How many rows of each kind one run created (zero everywhere on a re-run)."""

    regions: int = 0
    institutions: int = 0
    departments: int = 0
    capabilities: int = 0
    consortia: int = 0
    consortium_members: int = 0
    agreements: int = 0
    pairings: int = 0
    users: int = 0
    memberships: int = 0
    practitioners: int = 0
    documents: int = 0
    patients: int = 0
    referrals: int = 0
    programmes: int = 0
    roster_days: int = 0
    consults: int = 0
    survey_responses: int = 0
    green_protocols: int = 0
    activity_batches: int = 0
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

    def summary(self) -> str:
        parts = [f"{getattr(self, f.name)} {f.name.replace('_', ' ')}" for f in fields(self)]
        return ", ".join(parts)


def _agreement_pdf(spec: _Agreement) -> bytes:
    """A stand-in for the scanned, signed agreement (the demo's documents are generated)."""
    return simple_pdf(
        [
            spec.title_en or spec.code,
            "",
            f"Agreement {spec.code}",
            f"Parties: {', '.join(spec.parties)}",
            f"Signed on {spec.signed_on:%Y-%m-%d}; valid {spec.valid_from:%Y-%m-%d} to "
            + (f"{spec.valid_to:%Y-%m-%d}" if spec.valid_to else "open end"),
            "",
            "Demo document generated by Yilian: a real installation stores the scanned signed agreement here.",
        ]
    )


# ----------------------------------------------------------------------------------------
# Regions (GB/T 2260)


@dataclass(frozen=True)
class _Region:
    code: str
    name_zh: str
    name_en: str
    level: RegionLevel
    parent: str | None


_P, _C, _K = RegionLevel.PROVINCE, RegionLevel.CITY, RegionLevel.COUNTY

REGIONS: tuple[_Region, ...] = (
    _Region("330000", "浙江省", "Zhejiang", _P, None),
    _Region("330100", "杭州市", "Hangzhou", _C, "330000"),
    _Region("330102", "上城区", "Shangcheng District", _K, "330100"),
    _Region("330105", "拱墅区", "Gongshu District", _K, "330100"),
    _Region("330106", "西湖区", "Xihu District", _K, "330100"),
    _Region("330800", "衢州市", "Quzhou", _C, "330000"),
    _Region("330802", "柯城区", "Kecheng District", _K, "330800"),
    _Region("330803", "衢江区", "Qujiang District", _K, "330800"),
    _Region("330822", "常山县", "Changshan County", _K, "330800"),
    _Region("330824", "开化县", "Kaihua County", _K, "330800"),
    _Region("330825", "龙游县", "Longyou County", _K, "330800"),
    _Region("330881", "江山市", "Jiangshan", _K, "330800"),
    _Region("520000", "贵州省", "Guizhou", _P, None),
    _Region("520100", "贵阳市", "Guiyang", _C, "520000"),
    _Region("520102", "南明区", "Nanming District", _K, "520100"),
    _Region("520500", "毕节市", "Bijie", _C, "520000"),
    _Region("520502", "七星关区", "Qixingguan District", _K, "520500"),
)


# ----------------------------------------------------------------------------------------
# Departments: default names per discipline, and each institution's set


DEPARTMENT_NAMES: dict[Discipline, tuple[str, str]] = {
    Discipline.GENERAL_PRACTICE: ("全科医学科", "General Practice"),
    Discipline.INTERNAL_MEDICINE: ("内科", "Internal Medicine"),
    Discipline.CARDIOLOGY: ("心血管内科", "Cardiology"),
    Discipline.NEUROLOGY: ("神经内科", "Neurology"),
    Discipline.RESPIRATORY: ("呼吸与危重症医学科", "Pulmonary and Critical Care Medicine"),
    Discipline.GASTROENTEROLOGY: ("消化内科", "Gastroenterology"),
    Discipline.NEPHROLOGY: ("肾脏病科", "Nephrology"),
    Discipline.ENDOCRINOLOGY: ("内分泌科", "Endocrinology"),
    Discipline.HEMATOLOGY: ("血液科", "Hematology"),
    Discipline.ONCOLOGY: ("肿瘤内科", "Medical Oncology"),
    Discipline.GENERAL_SURGERY: ("普外科", "General Surgery"),
    Discipline.GASTROINTESTINAL_SURGERY: ("胃肠外科", "Gastrointestinal Surgery"),
    Discipline.HEPATOBILIARY_SURGERY: ("肝胆胰外科", "Hepatobiliary and Pancreatic Surgery"),
    Discipline.NEUROSURGERY: ("神经外科", "Neurosurgery"),
    Discipline.ORTHOPEDICS: ("骨科", "Orthopaedics"),
    Discipline.UROLOGY: ("泌尿外科", "Urology"),
    Discipline.THORACIC_SURGERY: ("胸外科", "Thoracic Surgery"),
    Discipline.CARDIAC_SURGERY: ("心脏大血管外科", "Cardiac and Great Vessel Surgery"),
    Discipline.OBSTETRICS_GYNECOLOGY: ("妇产科", "Obstetrics and Gynaecology"),
    Discipline.PEDIATRICS: ("儿科", "Paediatrics"),
    Discipline.NEONATOLOGY: ("新生儿科", "Neonatology"),
    Discipline.OPHTHALMOLOGY: ("眼科", "Ophthalmology"),
    Discipline.ENT: ("耳鼻咽喉头颈外科", "Otorhinolaryngology – Head and Neck Surgery"),
    Discipline.STOMATOLOGY: ("口腔科", "Stomatology"),
    Discipline.DERMATOLOGY: ("皮肤科", "Dermatology"),
    Discipline.ANESTHESIOLOGY: ("麻醉科", "Anaesthesiology"),
    Discipline.EMERGENCY: ("急诊医学科", "Emergency Medicine"),
    Discipline.CRITICAL_CARE: ("重症医学科", "Critical Care Medicine"),
    Discipline.RADIOLOGY: ("放射科", "Radiology"),
    Discipline.RADIOTHERAPY: ("放疗科", "Radiation Oncology"),
    Discipline.PATHOLOGY: ("病理科", "Pathology"),
    Discipline.LABORATORY: ("检验科", "Laboratory Medicine"),
    Discipline.REHABILITATION: ("康复医学科", "Rehabilitation Medicine"),
    Discipline.TCM: ("中医科", "Traditional Chinese Medicine"),
    Discipline.MANAGEMENT: ("医务部", "Medical Affairs"),
}


@dataclass(frozen=True)
class _Dept:
    discipline: Discipline
    name_zh: str
    name_en: str


def _depts(*items: Discipline | tuple[Discipline, str, str]) -> tuple[_Dept, ...]:
    """Departments with their discipline's default name, or an explicit (discipline, zh, en)."""
    out: list[_Dept] = []
    for item in items:
        if isinstance(item, tuple):
            out.append(_Dept(*item))
        else:
            zh, en = DEPARTMENT_NAMES[item]
            out.append(_Dept(item, zh, en))
    return tuple(out)


D = Discipline

_COUNTY_CORE = (
    D.INTERNAL_MEDICINE,
    D.NEUROLOGY,
    D.CARDIOLOGY,
    D.GENERAL_SURGERY,
    D.ORTHOPEDICS,
    D.OBSTETRICS_GYNECOLOGY,
    D.PEDIATRICS,
    D.EMERGENCY,
    D.CRITICAL_CARE,
    D.RADIOLOGY,
)

DEPARTMENTS: dict[str, tuple[_Dept, ...]] = {
    "zju1": _depts(
        D.CARDIOLOGY, D.NEUROLOGY, D.NEUROSURGERY, D.RESPIRATORY, D.GASTROENTEROLOGY, D.NEPHROLOGY,
        D.HEMATOLOGY, D.ENDOCRINOLOGY, D.HEPATOBILIARY_SURGERY, D.GASTROINTESTINAL_SURGERY, D.ORTHOPEDICS,
        D.UROLOGY, D.THORACIC_SURGERY, D.OBSTETRICS_GYNECOLOGY, D.ANESTHESIOLOGY, D.EMERGENCY,
        D.CRITICAL_CARE, D.RADIOLOGY, D.PATHOLOGY, D.LABORATORY,
    ),
    "zju2": _depts(
        D.NEUROSURGERY, D.NEUROLOGY, D.CARDIOLOGY, D.OPHTHALMOLOGY, D.ORTHOPEDICS, D.ANESTHESIOLOGY,
        D.EMERGENCY, D.CRITICAL_CARE, D.RADIOTHERAPY, D.RADIOLOGY, D.PATHOLOGY, D.ONCOLOGY,
        D.HEPATOBILIARY_SURGERY, D.GASTROINTESTINAL_SURGERY, D.UROLOGY, D.THORACIC_SURGERY, D.RESPIRATORY,
        D.GASTROENTEROLOGY, D.REHABILITATION,
        (D.MANAGEMENT, "医联体管理办公室", "Consortium Office"),
    ),
    "srrsh": _depts(
        D.GENERAL_SURGERY, D.GASTROINTESTINAL_SURGERY, D.HEPATOBILIARY_SURGERY, D.ORTHOPEDICS, D.CARDIOLOGY,
        D.NEUROLOGY, D.RESPIRATORY, D.GASTROENTEROLOGY, D.UROLOGY, D.OPHTHALMOLOGY, D.ANESTHESIOLOGY,
        D.EMERGENCY, D.CRITICAL_CARE, D.RADIOLOGY, D.PATHOLOGY, D.REHABILITATION,
    ),
    "zjuwc": _depts(
        (D.OBSTETRICS_GYNECOLOGY, "妇科", "Gynaecology"),
        (D.OBSTETRICS_GYNECOLOGY, "产科", "Obstetrics"),
        (D.ENDOCRINOLOGY, "生殖内分泌科", "Reproductive Endocrinology"),
        (D.ONCOLOGY, "妇科肿瘤科", "Gynaecological Oncology"),
        (D.GENERAL_SURGERY, "乳腺外科", "Breast Surgery"),
        D.NEONATOLOGY, D.ANESTHESIOLOGY, D.EMERGENCY, D.CRITICAL_CARE, D.RADIOLOGY, D.PATHOLOGY,
        D.LABORATORY,
    ),
    "zjus": _depts(
        (D.STOMATOLOGY, "口腔颌面外科", "Oral and Maxillofacial Surgery"),
        (D.STOMATOLOGY, "口腔修复科", "Prosthodontics"),
        (D.STOMATOLOGY, "口腔正畸科", "Orthodontics"),
        (D.STOMATOLOGY, "牙体牙髓科", "Endodontics"),
        (D.STOMATOLOGY, "牙周病科", "Periodontics"),
        (D.STOMATOLOGY, "儿童口腔科", "Paediatric Dentistry"),
        (D.STOMATOLOGY, "口腔种植科", "Oral Implantology"),
        (D.EMERGENCY, "口腔急诊科", "Dental Emergency"),
        (D.RADIOLOGY, "口腔颌面影像科", "Oral and Maxillofacial Radiology"),
        (D.PATHOLOGY, "口腔病理科", "Oral Pathology"),
        D.ANESTHESIOLOGY, D.LABORATORY,
    ),
    "zjpph": _depts(
        D.CARDIOLOGY, D.NEUROLOGY, D.NEUROSURGERY, D.RESPIRATORY, D.GASTROENTEROLOGY, D.ENDOCRINOLOGY,
        D.ONCOLOGY, D.HEPATOBILIARY_SURGERY, D.GASTROINTESTINAL_SURGERY, D.ORTHOPEDICS, D.UROLOGY,
        D.THORACIC_SURGERY, D.CARDIAC_SURGERY, D.ANESTHESIOLOGY, D.EMERGENCY, D.CRITICAL_CARE, D.RADIOLOGY,
        D.PATHOLOGY, D.REHABILITATION,
    ),
    "qzph": _depts(
        D.NEUROSURGERY, D.NEUROLOGY, D.ANESTHESIOLOGY, D.EMERGENCY, D.RADIOTHERAPY, D.ORTHOPEDICS,
        D.CARDIOLOGY, D.RESPIRATORY, D.GASTROENTEROLOGY, D.ONCOLOGY, D.GENERAL_SURGERY, D.UROLOGY,
        D.OBSTETRICS_GYNECOLOGY, D.PEDIATRICS, D.CRITICAL_CARE, D.RADIOLOGY, D.PATHOLOGY, D.STOMATOLOGY,
    ),
    "qz2ph": _depts(
        D.INTERNAL_MEDICINE, D.NEUROLOGY, D.CARDIOLOGY, D.NEPHROLOGY, D.GENERAL_SURGERY, D.ORTHOPEDICS,
        D.EMERGENCY, D.CRITICAL_CARE, D.ANESTHESIOLOGY, D.RADIOLOGY, D.REHABILITATION, D.LABORATORY,
    ),
    "qzmch": _depts(
        (D.OBSTETRICS_GYNECOLOGY, "妇科", "Gynaecology"),
        (D.OBSTETRICS_GYNECOLOGY, "产科", "Obstetrics"),
        (D.GENERAL_SURGERY, "乳腺外科", "Breast Surgery"),
        D.NEONATOLOGY, D.PEDIATRICS, D.ANESTHESIOLOGY, D.EMERGENCY, D.RADIOLOGY, D.LABORATORY,
    ),
    "khph": _depts(*_COUNTY_CORE, D.NEUROSURGERY, D.ANESTHESIOLOGY),
    "csph": _depts(*_COUNTY_CORE, D.NEPHROLOGY),
    "jsph": _depts(*_COUNTY_CORE, D.UROLOGY, D.ANESTHESIOLOGY),
    "lyph": _depts(*_COUNTY_CORE, D.TCM),
    "qjph": _depts(
        D.INTERNAL_MEDICINE, D.NEUROLOGY, D.GENERAL_SURGERY, D.ORTHOPEDICS, D.OBSTETRICS_GYNECOLOGY,
        D.PEDIATRICS, D.EMERGENCY, D.RADIOLOGY, D.REHABILITATION,
    ),
    "kh-huabu": _depts(D.GENERAL_PRACTICE, D.TCM),
    "kh-chengguan": _depts(D.GENERAL_PRACTICE, D.REHABILITATION, D.TCM),
    "cs-tianma": _depts(D.GENERAL_PRACTICE, D.REHABILITATION, D.TCM),
    "bjfph": _depts(
        D.CARDIOLOGY, D.NEUROLOGY, D.NEUROSURGERY, D.RESPIRATORY, D.ONCOLOGY, D.GENERAL_SURGERY,
        D.HEPATOBILIARY_SURGERY, D.GASTROINTESTINAL_SURGERY, D.ORTHOPEDICS, D.UROLOGY,
        D.OBSTETRICS_GYNECOLOGY, D.PEDIATRICS, D.ANESTHESIOLOGY, D.EMERGENCY, D.CRITICAL_CARE,
        D.RADIOLOGY, D.PATHOLOGY,
    ),
    "qxgph": _depts(*_COUNTY_CORE, D.NEPHROLOGY),
    "gzph": _depts(
        D.CARDIOLOGY, D.NEUROLOGY, D.NEUROSURGERY, D.RESPIRATORY, D.GASTROENTEROLOGY, D.NEPHROLOGY,
        D.ONCOLOGY, D.GENERAL_SURGERY, D.ORTHOPEDICS, D.UROLOGY, D.OBSTETRICS_GYNECOLOGY, D.PEDIATRICS,
        D.ANESTHESIOLOGY, D.EMERGENCY, D.CRITICAL_CARE, D.RADIOLOGY,
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------------------
# Institutions. Switchboard numbers are fictional: a local number never starts with 0.


@dataclass(frozen=True)
class _Institution:
    code: str
    name_zh: str
    name_en: str
    short_name: str
    grade: InstitutionGrade
    type: InstitutionType
    region: str
    address: str
    latitude: str
    longitude: str
    phone: str


_G, _WC, _SP, _PC = (
    InstitutionType.GENERAL,
    InstitutionType.WOMEN_CHILDREN,
    InstitutionType.SPECIALTY,
    InstitutionType.PRIMARY_CARE,
)
_3A, _3B, _2A, _PRIM = (
    InstitutionGrade.GRADE_3A,
    InstitutionGrade.GRADE_3B,
    InstitutionGrade.GRADE_2A,
    InstitutionGrade.PRIMARY,
)
_ZJU = "Zhejiang University School of Medicine"


def demo_identifiers(index: int, region: str) -> dict[str, str]:
    """Fictional but well-formed external identifiers of the demo's institution number ``index``: an
    organisation code (8 digits and the GB 11714 check character) and the unified social credit
    code built on it (public institution, registered in the institution's region)."""
    from stdnum.cn import uscc

    body = f"{47000000 + index * 37:08d}"
    total = sum(int(d) * w for d, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    check = {10: "X", 11: "0"}.get(11 - total % 11, str(11 - total % 11))
    org_code = body + check
    credit = "12" + region + org_code
    return {"org_code": org_code, "uscc": credit + uscc.calc_check_digit(credit)}


INSTITUTIONS: tuple[_Institution, ...] = (
    _Institution("zju1", "浙江大学医学院附属第一医院", f"First Affiliated Hospital, {_ZJU}", "浙大一院",
                 _3A, _G, "330102", "浙江省杭州市上城区庆春路79号", "30.2563", "120.1775", "0571-01000001"),
    _Institution("zju2", "浙江大学医学院附属第二医院", f"Second Affiliated Hospital, {_ZJU}", "浙大二院",
                 _3A, _G, "330102", "浙江省杭州市上城区解放路88号", "30.2537", "120.1783", "0571-01000002"),
    _Institution("srrsh", "浙江大学医学院附属邵逸夫医院", f"Sir Run Run Shaw Hospital, {_ZJU}", "邵逸夫医院",
                 _3A, _G, "330102", "浙江省杭州市上城区庆春东路3号", "30.2631", "120.2021", "0571-01000003"),
    _Institution("zjuwc", "浙江大学医学院附属妇产科医院", f"Women's Hospital, {_ZJU}", "浙大妇院",
                 _3A, _WC, "330102", "浙江省杭州市上城区学士路1号", "30.2478", "120.1702",
                 "0571-01000004"),
    _Institution("zjus", "浙江大学医学院附属口腔医院", f"Stomatology Hospital, {_ZJU}", "浙大口腔医院",
                 _3A, _SP, "330106", "浙江省杭州市西湖区天目山路166号", "30.2789", "120.1386",
                 "0571-01000005"),
    _Institution("zjpph", "浙江省人民医院", "Zhejiang Provincial People's Hospital", "浙江省人民医院",
                 _3A, _G, "330105", "浙江省杭州市拱墅区上塘路158号", "30.2934", "120.1642", "0571-01000006"),
    _Institution("qzph", "衢州市人民医院", "Quzhou People's Hospital", "衢州市人民医院",
                 _3A, _G, "330802", "浙江省衢州市柯城区钟楼底2号", "28.9662", "118.8721", "0570-01000001"),
    _Institution("qz2ph", "衢州市第二人民医院", "Quzhou Second People's Hospital", "衢州二院",
                 _3B, _G, "330802", "浙江省衢州市柯城区新桥街4号", "28.9587", "118.8604", "0570-01000002"),
    _Institution("qzmch", "衢州市妇幼保健院", "Quzhou Maternal and Child Health Hospital", "衢州妇保院",
                 _3B, _WC, "330802", "浙江省衢州市柯城区南湖路18号", "28.9718", "118.8826", "0570-01000003"),
    _Institution("khph", "开化县人民医院", "Kaihua County People's Hospital", "开化县人民医院",
                 _2A, _G, "330824", "浙江省衢州市开化县芹阳办事处凤凰中路28号", "29.1392", "118.4148",
                 "0570-01000004"),
    _Institution("csph", "常山县人民医院", "Changshan County People's Hospital", "常山县人民医院",
                 _2A, _G, "330822", "浙江省衢州市常山县天马街道定阳北路66号", "28.9013", "118.5106",
                 "0570-01000005"),
    _Institution("jsph", "江山市人民医院", "Jiangshan People's Hospital", "江山市人民医院",
                 _2A, _G, "330881", "浙江省衢州市江山市双塔街道寺后山路9号", "28.7386", "118.6268",
                 "0570-01000006"),
    _Institution("lyph", "龙游县人民医院", "Longyou County People's Hospital", "龙游县人民医院",
                 _2A, _G, "330825", "浙江省衢州市龙游县龙洲街道荣昌大道109号", "29.0288", "119.1714",
                 "0570-01000007"),
    _Institution("qjph", "衢江区人民医院", "Qujiang District People's Hospital", "衢江区人民医院",
                 _2A, _G, "330803", "浙江省衢州市衢江区樟潭街道振兴东路117号", "28.9795", "118.9586",
                 "0570-01000008"),
    _Institution("kh-huabu", "开化县华埠镇中心卫生院", "Huabu Town Health Centre, Kaihua", "华埠镇中心卫生院",
                 _PRIM, _PC, "330824", "浙江省衢州市开化县华埠镇华兴路12号", "29.0486", "118.4097",
                 "0570-01000009"),
    _Institution("kh-chengguan", "开化县城关镇社区卫生服务中心",
                 "Chengguan Community Health Service Centre, Kaihua", "城关镇社区卫生服务中心",
                 _PRIM, _PC, "330824", "浙江省衢州市开化县芹阳办事处江滨北路5号", "29.1421", "118.4102",
                 "0570-01000010"),
    _Institution("cs-tianma", "常山县天马街道社区卫生服务中心",
                 "Tianma Community Health Service Centre, Changshan", "天马街道社区卫生服务中心",
                 _PRIM, _PC, "330822", "浙江省衢州市常山县天马街道文峰西路21号", "28.8992", "118.5057",
                 "0570-01000011"),
    _Institution("bjfph", "浙江省人民医院毕节医院（毕节市第一人民医院）",
                 "Bijie Hospital of Zhejiang Provincial People's Hospital (Bijie First People's Hospital)",
                 "省人民医院毕节医院", _3A, _G, "520502", "贵州省毕节市七星关区广惠路8号", "27.3021",
                 "105.2896", "0857-01000001"),
    _Institution("qxgph", "七星关区人民医院", "Qixingguan District People's Hospital", "七星关区人民医院",
                 _2A, _G, "520502", "贵州省毕节市七星关区洪山路35号", "27.2968", "105.2853", "0857-01000002"),
    _Institution("gzph", "贵州省人民医院", "Guizhou Provincial People's Hospital", "贵州省人民医院",
                 _3A, _G, "520102", "贵州省贵阳市南明区中山东路83号", "26.5792", "106.7138", "0851-01000001"),
)  # fmt: skip


# ----------------------------------------------------------------------------------------
# Capabilities


@dataclass(frozen=True)
class _Capability:
    institution: str
    kind: CapabilityKind
    valid_from: dt.date
    all_hours: bool = True
    weekdays: str = "1234567"
    opens_at: dt.time | None = None
    closes_at: dt.time | None = None
    note: str = ""


K = CapabilityKind
_PROVINCIAL_CORE = (
    K.CT, K.MRI, K.IV_THROMBOLYSIS, K.THROMBECTOMY, K.PRIMARY_PCI, K.ICU, K.FROZEN_SECTION, K.NEUROENDOSCOPY,
    K.DIALYSIS,
)  # fmt: skip
_WEEKDAYS = "12345"


def _capabilities() -> tuple[_Capability, ...]:
    out: list[_Capability] = []

    def add(code: str, kinds: tuple[CapabilityKind, ...], since: dt.date) -> None:
        out.extend(_Capability(code, kind, since) for kind in kinds)

    def office_hours(code: str, kind: CapabilityKind, since: dt.date, opens: str, closes: str, note: str) -> None:
        out.append(
            _Capability(
                code,
                kind,
                since,
                all_hours=False,
                weekdays=_WEEKDAYS,
                opens_at=dt.time.fromisoformat(opens),
                closes_at=dt.time.fromisoformat(closes),
                note=note,
            )
        )

    start = dt.date(2018, 1, 1)
    for code in ("zju1", "zju2", "srrsh", "zjpph"):
        add(code, (*_PROVINCIAL_CORE, K.ROBOT_SURGERY, K.TELECONSULTATION), start)
    add("zju2", (K.TRAUMA_CENTRE,), start)
    add("gzph", _PROVINCIAL_CORE, start)
    add(
        "zjuwc",
        (K.CT, K.MRI, K.ICU, K.FROZEN_SECTION, K.NICU, K.HIGH_RISK_OBSTETRICS, K.TELECONSULTATION),
        start,
    )
    add("zjus", (K.CT, K.FROZEN_SECTION, K.TELECONSULTATION), start)

    add("qzph", (K.CT, K.MRI, K.IV_THROMBOLYSIS, K.ICU, K.DIALYSIS), start)
    add("qzph", (K.PRIMARY_PCI,), dt.date(2018, 6, 1))
    add("qzph", (K.THROMBECTOMY,), dt.date(2018, 11, 1))
    # The endoscope + microscope operations began once the stationed neurosurgeon arrived (2018-09).
    add("qzph", (K.NEUROENDOSCOPY,), dt.date(2018, 10, 8))
    office_hours("qzph", K.FROZEN_SECTION, dt.date(2018, 10, 8), "08:00", "17:30", "病理科工作日值守")
    office_hours("qzph", K.TELECONSULTATION, dt.date(2018, 5, 18), "08:00", "17:30", "远程会诊中心")

    add("qz2ph", (K.CT, K.MRI, K.IV_THROMBOLYSIS, K.ICU, K.DIALYSIS), dt.date(2019, 1, 1))
    office_hours("qz2ph", K.TELECONSULTATION, dt.date(2019, 1, 1), "08:00", "17:00", "")
    add("qzmch", (K.CT, K.NICU, K.HIGH_RISK_OBSTETRICS), dt.date(2019, 1, 1))
    office_hours("qzmch", K.TELECONSULTATION, dt.date(2019, 1, 1), "08:00", "17:00", "")

    county_since = {
        "khph": dt.date(2019, 3, 1),
        "csph": dt.date(2019, 6, 1),
        "jsph": dt.date(2019, 1, 1),
        "lyph": dt.date(2020, 1, 1),
        "qjph": dt.date(2020, 7, 1),
        "qxgph": dt.date(2023, 3, 1),
    }
    for code, since in county_since.items():
        add(code, (K.CT, K.IV_THROMBOLYSIS, K.ICU, K.DIALYSIS), since)
        office_hours(code, K.TELECONSULTATION, since, "08:00", "17:30", "")
    for code in ("kh-huabu", "kh-chengguan", "cs-tianma"):
        office_hours(code, K.TELECONSULTATION, dt.date(2021, 1, 1), "08:30", "16:30", "与县医院远程会诊")

    add(
        "bjfph",
        (K.CT, K.MRI, K.IV_THROMBOLYSIS, K.ICU, K.PRIMARY_PCI, K.THROMBECTOMY, K.FROZEN_SECTION),
        dt.date(2023, 1, 1),
    )
    out.append(_Capability("bjfph", K.ROBOT_SURGERY, dt.date(2023, 6, 1), note="派驻专家开展机器人辅助手术"))
    return tuple(out)


CAPABILITIES = _capabilities()


# ----------------------------------------------------------------------------------------
# Consortia and members

FRAMEWORK_DAY = dt.date(2017, 4, 20)
ZJU2_SIGNING_DAY = dt.date(2018, 5, 18)
BIJIE_CENTRE_DAY = dt.date(2022, 12, 27)

_FIVE_BY_FIVE_ZH = (
    "2017年4月20日，浙江大学与衢州市人民政府签署医联体合作框架协议，按“五纵五横”模式组建："
    "五家浙大附属医院各牵头一个纵向医联体，学校学科力量横向支撑，覆盖衢州6个县（市、区）。"
)
_FIVE_BY_FIVE_EN = (
    "On 2017-04-20 Zhejiang University and the Quzhou city government signed the consortium framework "
    "(五纵五横, 'five vertical, five horizontal'): five affiliated hospitals each lead one vertical "
    "consortium, with horizontal support from the university's schools and disciplines, covering "
    "Quzhou's 6 county-level districts."
)


@dataclass(frozen=True)
class _Consortium:
    code: str
    name_zh: str
    name_en: str
    type: ConsortiumType
    lead: str
    region: str
    established_on: dt.date
    description: str
    members: tuple[tuple[str, dt.date, MemberRelation], ...]


_V, _H = MemberRelation.VERTICAL, MemberRelation.HORIZONTAL


def _vertical(code: str, lead_zh: str, lead_en: str, kind: ConsortiumType, lead: str, *members: str) -> _Consortium:
    suffix_zh, suffix_en = (
        ("医联体", "Medical Consortium")
        if kind == ConsortiumType.CITY_MEDICAL_GROUP
        else ("专科联盟", "Specialty Alliance")
    )
    return _Consortium(
        code=code,
        name_zh=f"{lead_zh}—衢州{suffix_zh}",
        name_en=f"{lead_en}–Quzhou {suffix_en}",
        type=kind,
        lead=lead,
        region="330800",
        established_on=FRAMEWORK_DAY,
        description=f"{_FIVE_BY_FIVE_ZH}\n\n{_FIVE_BY_FIVE_EN}",
        members=tuple((m, FRAMEWORK_DAY, _V) for m in members),
    )


CONSORTIA: tuple[_Consortium, ...] = (
    _vertical("zju1-quzhou", "浙大一院", "ZJU First Affiliated Hospital", ConsortiumType.CITY_MEDICAL_GROUP,
              "zju1", "jsph", "csph"),
    _Consortium(
        code="zju2-quzhou",
        name_zh="浙大二院—衢州医联体",
        name_en="ZJU Second Affiliated Hospital–Quzhou Medical Consortium",
        type=ConsortiumType.CITY_MEDICAL_GROUP,
        lead="zju2",
        region="330800",
        established_on=FRAMEWORK_DAY,
        description=(
            f"{_FIVE_BY_FIVE_ZH}2018年5月，浙大二院与衢州市人民医院、衢州市第二人民医院、开化县人民医院签署"
            "高水平医联体协议，首批帮扶麻醉、急诊、放疗、骨科、神经外科，科室对科室精准帮扶；"
            "浙大口腔医院作为横向学科支撑加入。\n\n"
            f"{_FIVE_BY_FIVE_EN} In May 2018 the Second Affiliated Hospital signed high-level consortium "
            "agreements with Quzhou People's Hospital, Quzhou Second People's Hospital and Kaihua County "
            "People's Hospital; first-round department-to-department support: anaesthesiology, emergency, "
            "radiotherapy, orthopaedics, neurosurgery. The Stomatology Hospital joined as horizontal "
            "discipline support."
        ),
        members=(
            ("qzph", ZJU2_SIGNING_DAY, _V),
            ("qz2ph", ZJU2_SIGNING_DAY, _V),
            ("khph", ZJU2_SIGNING_DAY, _V),
            ("zjus", ZJU2_SIGNING_DAY, _H),
        ),
    ),
    _vertical("srrsh-quzhou", "邵逸夫医院", "Sir Run Run Shaw Hospital", ConsortiumType.CITY_MEDICAL_GROUP,
              "srrsh", "lyph", "qjph"),
    _vertical("zjuwc-quzhou", "浙大妇院", "ZJU Women's Hospital", ConsortiumType.SPECIALTY_ALLIANCE,
              "zjuwc", "qzmch"),
    _vertical("zjus-quzhou", "浙大口腔医院", "ZJU Stomatology Hospital", ConsortiumType.SPECIALTY_ALLIANCE,
              "zjus", "qzph"),
    _Consortium(
        code="quzhou-neuro",
        name_zh="衢州市神经外科专科联盟",
        name_en="Quzhou Neurosurgery Specialty Alliance",
        type=ConsortiumType.SPECIALTY_ALLIANCE,
        lead="qzph",
        region="330800",
        established_on=dt.date(2018, 9, 1),
        description=(
            "衢州市人民医院神经外科牵头（浙大二院下沉专家任业务主任），联合各县（市、区）医院神经内外科，"
            "卒中和脑出血患者上转、康复期患者下转，全市神经外科工作群由此而来。\n\n"
            "Led by the neurosurgery department of Quzhou People's Hospital (whose business director is a "
            "stationed expert of the Second Affiliated Hospital) with the neurology and neurosurgery "
            "departments of the county hospitals: stroke and haemorrhage patients referred up, recovering "
            "patients referred back down; the city's neurosurgery work group grew out of it."
        ),
        members=tuple(
            (m, dt.date(2018, 9, 1), _V) for m in ("csph", "khph", "jsph", "lyph", "qjph", "cs-tianma")
        ),
    ),
    _Consortium(
        code="kaihua-ccm",
        name_zh="开化县医共体",
        name_en="Kaihua County Medical Community",
        type=ConsortiumType.COUNTY_COMMUNITY,
        lead="khph",
        region="330824",
        established_on=dt.date(2019, 3, 28),
        description=(
            "开化县人民医院牵头，整合乡镇卫生院和社区卫生服务中心，人财物统一管理，基层首诊、双向转诊。\n\n"
            "Led by Kaihua County People's Hospital with the township health centres and community "
            "health service centres: one management, first contact at the grassroots, two-way referral."
        ),
        members=(
            ("kh-huabu", dt.date(2019, 3, 28), _V),
            ("kh-chengguan", dt.date(2019, 3, 28), _V),
        ),
    ),
    _Consortium(
        code="bijie-nrmc",
        name_zh="浙江省人民医院毕节医院国家区域医疗中心",
        name_en="Bijie National Regional Medical Centre (Zhejiang Provincial People's Hospital)",
        type=ConsortiumType.REGIONAL_CENTRE,
        lead="zjpph",
        region="520500",
        established_on=BIJIE_CENTRE_DAY,
        description=(
            "2022年底，浙江省人民医院与毕节市第一人民医院共建国家区域医疗中心，品牌、技术、管理三平移；"
            "分两批派驻34名临床和管理人员，共建3个诊疗中心和5个重点专科。\n\n"
            "At the end of 2022 Zhejiang Provincial People's Hospital and Bijie First People's Hospital "
            "co-built a national regional medical centre (brand, technology and management translated); "
            "34 clinical and management staff stationed in 2 batches; 3 diagnosis-and-treatment centres "
            "and 5 key clinical disciplines."
        ),
        members=(
            ("bjfph", BIJIE_CENTRE_DAY, _V),
            ("qxgph", dt.date(2023, 6, 1), _V),
        ),
    ),
)  # fmt: skip


# ----------------------------------------------------------------------------------------
# Agreements and department pairings


@dataclass(frozen=True)
class _Pairing:
    lead: tuple[str, str]  # (institution code, department name_zh)
    member: tuple[str, str]
    kind: PairingKind = PairingKind.SUPPORTED_DISCIPLINE
    label_zh: str = ""
    label_en: str = ""


@dataclass(frozen=True)
class _Agreement:
    code: str
    consortium: str | None
    title_zh: str
    title_en: str
    parties: tuple[str, ...]
    signed_on: dt.date
    valid_from: dt.date
    valid_to: dt.date | None
    status: AgreementStatus
    scope: str = ""
    goals: str = ""
    pairings: tuple[_Pairing, ...] = ()


def _same(
    lead: str, member: str, *disciplines: Discipline, kind: PairingKind = PairingKind.SUPPORTED_DISCIPLINE
) -> tuple[_Pairing, ...]:
    """Pairings between the same-named (default-named) departments of two institutions."""
    return tuple(_Pairing((lead, DEPARTMENT_NAMES[d][0]), (member, DEPARTMENT_NAMES[d][0]), kind) for d in disciplines)


_ACTIVE, _EXPIRED = AgreementStatus.ACTIVE, AgreementStatus.EXPIRED
_ZJU2_SCOPE = "专家派驻、双向转诊、远程会诊、进修培训、科室对科室精准帮扶。"
_ZJU2_UNTIL = dt.date(2028, 5, 17)
_FRAMEWORK_UNTIL = dt.date(2027, 4, 19)

AGREEMENTS: tuple[_Agreement, ...] = (
    _Agreement(
        code="zju2-qzph-2018",
        consortium="zju2-quzhou",
        title_zh="浙江大学医学院附属第二医院与衢州市人民医院高水平医联体合作协议",
        title_en="High-level consortium agreement: Second Affiliated Hospital and Quzhou People's Hospital",
        parties=("zju2", "qzph"),
        signed_on=ZJU2_SIGNING_DAY,
        valid_from=ZJU2_SIGNING_DAY,
        valid_to=_ZJU2_UNTIL,
        status=_ACTIVE,
        scope=_ZJU2_SCOPE,
        goals="首批帮扶学科：麻醉、急诊、放疗、骨科、神经外科；神经外科派驻业务主任，每周驻点3天。",
        pairings=_same(
            "zju2", "qzph", D.ANESTHESIOLOGY, D.EMERGENCY, D.RADIOTHERAPY, D.ORTHOPEDICS, D.NEUROSURGERY
        ),
    ),
    _Agreement(
        code="zju2-qz2ph-2018",
        consortium="zju2-quzhou",
        title_zh="浙江大学医学院附属第二医院与衢州市第二人民医院高水平医联体合作协议",
        title_en=(
            "High-level consortium agreement: Second Affiliated Hospital and Quzhou Second People's Hospital"
        ),
        parties=("zju2", "qz2ph"),
        signed_on=ZJU2_SIGNING_DAY,
        valid_from=ZJU2_SIGNING_DAY,
        valid_to=_ZJU2_UNTIL,
        status=_ACTIVE,
        scope=_ZJU2_SCOPE,
        pairings=_same("zju2", "qz2ph", D.NEUROLOGY, D.REHABILITATION),
    ),
    _Agreement(
        code="zju2-khph-2018",
        consortium="zju2-quzhou",
        title_zh="浙江大学医学院附属第二医院与开化县人民医院高水平医联体合作协议",
        title_en=(
            "High-level consortium agreement: Second Affiliated Hospital and Kaihua County People's Hospital"
        ),
        parties=("zju2", "khph"),
        signed_on=ZJU2_SIGNING_DAY,
        valid_from=ZJU2_SIGNING_DAY,
        valid_to=_ZJU2_UNTIL,
        status=_ACTIVE,
        scope=_ZJU2_SCOPE,
        pairings=_same("zju2", "khph", D.EMERGENCY, D.ORTHOPEDICS, D.CRITICAL_CARE),
    ),
    _Agreement(
        code="zju1-quzhou-2017",
        consortium="zju1-quzhou",
        title_zh="浙江大学医学院附属第一医院衢州医联体合作协议（江山、常山）",
        title_en="First Affiliated Hospital–Quzhou consortium agreement (Jiangshan, Changshan)",
        parties=("zju1", "jsph", "csph"),
        signed_on=FRAMEWORK_DAY,
        valid_from=FRAMEWORK_DAY,
        valid_to=_FRAMEWORK_UNTIL,
        status=_ACTIVE,
        scope="专家派驻、双向转诊、卒中与胸痛绿色通道、远程会诊。",
        pairings=(
            *_same("zju1", "csph", D.NEUROLOGY),
            *_same("zju1", "jsph", D.CARDIOLOGY),
        ),
    ),
    _Agreement(
        code="srrsh-quzhou-2017",
        consortium="srrsh-quzhou",
        title_zh="浙江大学医学院附属邵逸夫医院衢州医联体合作协议（龙游、衢江）",
        title_en="Sir Run Run Shaw Hospital–Quzhou consortium agreement (Longyou, Qujiang)",
        parties=("srrsh", "lyph", "qjph"),
        signed_on=FRAMEWORK_DAY,
        valid_from=FRAMEWORK_DAY,
        valid_to=_FRAMEWORK_UNTIL,
        status=_ACTIVE,
        scope="专家派驻、双向转诊、远程会诊、管理输出。",
        pairings=(
            *_same("srrsh", "lyph", D.GENERAL_SURGERY),
            *_same("srrsh", "qjph", D.ORTHOPEDICS),
        ),
    ),
    _Agreement(
        code="zjuwc-qzmch-2017",
        consortium="zjuwc-quzhou",
        title_zh="浙江大学医学院附属妇产科医院与衢州市妇幼保健院妇幼专科联盟协议",
        title_en=(
            "Women's Hospital and Quzhou Maternal and Child Health Hospital specialty alliance agreement"
        ),
        parties=("zjuwc", "qzmch"),
        signed_on=FRAMEWORK_DAY,
        valid_from=FRAMEWORK_DAY,
        valid_to=_FRAMEWORK_UNTIL,
        status=_ACTIVE,
        scope="危重孕产妇与新生儿救治协作、转诊、进修培训。",
        pairings=(
            _Pairing(("zjuwc", "产科"), ("qzmch", "产科")),
            *_same("zjuwc", "qzmch", D.NEONATOLOGY),
        ),
    ),
    _Agreement(
        code="zjus-qzph-2017",
        consortium="zjus-quzhou",
        title_zh="浙江大学医学院附属口腔医院与衢州市人民医院口腔专科联盟协议",
        title_en="Stomatology Hospital and Quzhou People's Hospital specialty alliance agreement",
        parties=("zjus", "qzph"),
        signed_on=FRAMEWORK_DAY,
        valid_from=FRAMEWORK_DAY,
        valid_to=_FRAMEWORK_UNTIL,
        status=_ACTIVE,
        scope="口腔颌面外科专家派驻、疑难病例转诊、进修培训。",
        pairings=(_Pairing(("zjus", "口腔颌面外科"), ("qzph", "口腔科")),),
    ),
    _Agreement(
        code="zjpph-bjfph-2022",
        consortium="bijie-nrmc",
        title_zh="浙江省人民医院与毕节市第一人民医院共建国家区域医疗中心合作协议",
        title_en=(
            "Agreement to co-build a national regional medical centre: Zhejiang Provincial People's "
            "Hospital and Bijie First People's Hospital"
        ),
        parties=("zjpph", "bjfph"),
        signed_on=BIJIE_CENTRE_DAY,
        valid_from=dt.date(2023, 1, 1),
        valid_to=dt.date(2032, 12, 31),
        status=_ACTIVE,
        scope="品牌、技术、管理三平移；分两批派驻34名临床和管理人员。",
        goals="共建3个诊疗中心、5个重点专科；名医工作室与骨干培育；填补省内及西南地区技术空白。",
        pairings=(
            _Pairing(("zjpph", "心血管内科"), ("bjfph", "心血管内科"), PairingKind.CENTRE,
                     "心血管病诊疗中心", "Cardiovascular Centre"),
            _Pairing(("zjpph", "神经内科"), ("bjfph", "神经内科"), PairingKind.CENTRE,
                     "神经疾病诊疗中心", "Neuroscience Centre"),
            _Pairing(("zjpph", "肿瘤内科"), ("bjfph", "肿瘤内科"), PairingKind.CENTRE,
                     "肿瘤诊疗中心", "Cancer Centre"),
            *_same("zjpph", "bjfph", D.ORTHOPEDICS, D.UROLOGY, D.CRITICAL_CARE, D.HEPATOBILIARY_SURGERY,
                   D.GASTROINTESTINAL_SURGERY, kind=PairingKind.KEY_DISCIPLINE),
        ),
    ),
    # The east-west cooperation that preceded the regional centre; kept for its history.
    _Agreement(
        code="zjpph-bjfph-2019",
        consortium=None,
        title_zh="浙江省人民医院对口帮扶毕节市第一人民医院协议（东西部协作）",
        title_en=(
            "East-west cooperation: Zhejiang Provincial People's Hospital supports "
            "Bijie First People's Hospital"
        ),
        parties=("zjpph", "bjfph"),
        signed_on=dt.date(2019, 3, 15),
        valid_from=dt.date(2019, 4, 1),
        valid_to=dt.date(2021, 12, 31),
        status=_EXPIRED,
        scope="短期专家派驻、进修培训。",
    ),
)  # fmt: skip


# ----------------------------------------------------------------------------------------
# Practitioners: the named personas, then generated staff


@dataclass(frozen=True)
class PractitionerSpec:
    name_zh: str
    name_en: str
    title: ProfessionalTitle
    institution: str
    department: str  # department name_zh at that institution
    licence_number: str
    specialties: str
    username: str | None = None


PERSONAS: tuple[PractitionerSpec, ...] = (
    PractitionerSpec(
        "徐春华",
        "Xu Chunhua",
        ProfessionalTitle.ATTENDING_PHYSICIAN,
        "khph",
        "神经内科",
        "113308240140822",
        "脑血管病、癫痫；县域神经系统疾病诊治与远程会诊申请",
        "kaihua",
    ),
    PractitionerSpec(
        "蒋文博",
        "Jiang Wenbo",
        ProfessionalTitle.CHIEF_PHYSICIAN,
        "zju2",
        "病理科",
        "113301020050411",
        "神经病理、术中冰冻切片快速诊断、远程病理会诊",
        "pathologist",
    ),
    PractitionerSpec(
        "何静",
        "He Jing",
        ProfessionalTitle.ASSOCIATE_CHIEF_PHYSICIAN,
        "zju2",
        "放射科",
        "113301020090703",
        "神经影像、急诊CT/MRI读片",
        "radiologist",
    ),
    PractitionerSpec(
        "陈志远",
        "Chen Zhiyuan",
        ProfessionalTitle.CHIEF_PHYSICIAN,
        "zju2",
        "神经外科",
        "113301020180901",
        "颅底及脑室肿瘤、神经内镜与显微镜联合手术；2018年9月起任衢州市人民医院神经外科业务主任，"
        "每周驻点3天（门诊、查房、手术、学术活动、科室管理）",
        "expert",
    ),
    PractitionerSpec(
        "王建国",
        "Wang Jianguo",
        ProfessionalTitle.ATTENDING_PHYSICIAN,
        "csph",
        "神经内科",
        "113308220120315",
        "脑血管病、急性缺血性卒中静脉溶栓与上转评估",
        "doctor",
    ),
    PractitionerSpec(
        "李海燕",
        "Li Haiyan",
        ProfessionalTitle.ASSOCIATE_CHIEF_PHYSICIAN,
        "bjfph",
        "骨科",
        "115205020090607",
        "脊柱外科、微创腰椎融合、脊柱侧弯矫形；骨干培育项目学员",
        "bijie",
    ),
    PractitionerSpec(
        "徐立峰",
        "Xu Lifeng",
        ProfessionalTitle.CHIEF_PHYSICIAN,
        "zjpph",
        "肝胆胰外科",
        "113301050051108",
        "机器人辅助肝胆胰手术；派驻毕节医院，半年完成20余台机器人手术，含机器人辅助保留胰头十二指肠切除",
        "bjexpert",
    ),
)

# Generated staff per round; scale N runs N rounds. Most sit where the stories happen.
ALLOCATION: tuple[tuple[str, int], ...] = (
    ("zju2", 7),
    ("zjpph", 6),
    ("qzph", 7),
    ("csph", 4),
    ("khph", 5),
    ("bjfph", 5),
    ("zju1", 1),
    ("srrsh", 1),
    ("zjuwc", 1),
    ("zjus", 1),
    ("qz2ph", 1),
    ("qzmch", 1),
    ("jsph", 1),
    ("lyph", 1),
    ("qjph", 1),
    ("kh-huabu", 1),
    ("kh-chengguan", 1),
    ("cs-tianma", 1),
    ("qxgph", 1),
    ("gzph", 1),
)

SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"), ("杨", "Yang"),
    ("黄", "Huang"), ("赵", "Zhao"), ("吴", "Wu"), ("周", "Zhou"), ("徐", "Xu"), ("孙", "Sun"),
    ("马", "Ma"), ("朱", "Zhu"), ("胡", "Hu"), ("郭", "Guo"), ("何", "He"), ("林", "Lin"),
    ("罗", "Luo"), ("郑", "Zheng"), ("梁", "Liang"), ("谢", "Xie"), ("宋", "Song"), ("唐", "Tang"),
    ("韩", "Han"), ("冯", "Feng"), ("邓", "Deng"), ("曹", "Cao"), ("彭", "Peng"), ("曾", "Zeng"),
    ("肖", "Xiao"), ("田", "Tian"), ("董", "Dong"), ("潘", "Pan"), ("袁", "Yuan"), ("蒋", "Jiang"),
    ("蔡", "Cai"), ("余", "Yu"), ("杜", "Du"), ("叶", "Ye"), ("程", "Cheng"), ("魏", "Wei"),
    ("苏", "Su"), ("丁", "Ding"), ("沈", "Shen"), ("范", "Fan"), ("方", "Fang"), ("汪", "Wang"),
    ("毛", "Mao"), ("钱", "Qian"), ("应", "Ying"), ("童", "Tong"), ("祝", "Zhu"), ("龚", "Gong"),
)  # fmt: skip

GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("建华", "Jianhua"), ("晓东", "Xiaodong"), ("海涛", "Haitao"), ("丽萍", "Liping"), ("文杰", "Wenjie"),
    ("雅琴", "Yaqin"), ("国强", "Guoqiang"), ("慧敏", "Huimin"), ("明辉", "Minghui"), ("春燕", "Chunyan"),
    ("俊杰", "Junjie"), ("晓红", "Xiaohong"), ("永刚", "Yonggang"), ("秀英", "Xiuying"), ("伟", "Wei"),
    ("静", "Jing"), ("磊", "Lei"), ("敏", "Min"), ("洁", "Jie"), ("勇", "Yong"), ("芳", "Fang"),
    ("思远", "Siyuan"), ("立新", "Lixin"), ("玉兰", "Yulan"), ("红梅", "Hongmei"), ("振华", "Zhenhua"),
    ("卫东", "Weidong"), ("海波", "Haibo"), ("鹏飞", "Pengfei"), ("佳怡", "Jiayi"), ("雪梅", "Xuemei"),
    ("德明", "Deming"), ("少华", "Shaohua"), ("文娟", "Wenjuan"), ("凯", "Kai"), ("宁", "Ning"),
    ("斌", "Bin"), ("涛", "Tao"), ("欣怡", "Xinyi"), ("晓明", "Xiaoming"), ("嘉伟", "Jiawei"),
    ("建军", "Jianjun"), ("桂芳", "Guifang"), ("淑珍", "Shuzhen"), ("一鸣", "Yiming"), ("亚楠", "Yanan"),
    ("光辉", "Guanghui"), ("志强", "Zhiqiang"), ("美玲", "Meiling"), ("天宇", "Tianyu"),
)  # fmt: skip

SPECIALTIES: dict[Discipline, tuple[str, ...]] = {
    D.GENERAL_PRACTICE: ("慢病管理、家庭医生签约服务", "高血压、糖尿病基层随访"),
    D.INTERNAL_MEDICINE: ("常见病多发病诊治", "老年综合评估"),
    D.CARDIOLOGY: ("冠心病介入治疗、急性心梗急诊PCI", "心力衰竭、心律失常"),
    D.NEUROLOGY: ("脑血管病、卒中静脉溶栓", "癫痫、帕金森病"),
    D.RESPIRATORY: ("慢阻肺、呼吸介入", "肺部感染、机械通气"),
    D.GASTROENTEROLOGY: ("消化内镜诊疗", "炎症性肠病、消化道出血"),
    D.NEPHROLOGY: ("血液透析、慢性肾脏病", "腹膜透析"),
    D.ENDOCRINOLOGY: ("糖尿病、甲状腺疾病", "生殖内分泌"),
    D.HEMATOLOGY: ("白血病、淋巴瘤",),
    D.ONCOLOGY: ("肺癌、消化道肿瘤综合治疗", "靶向与免疫治疗"),
    D.GENERAL_SURGERY: ("腹腔镜胆囊、疝手术", "乳腺甲状腺外科"),
    D.GASTROINTESTINAL_SURGERY: ("腹腔镜胃肠肿瘤根治术", "结直肠外科"),
    D.HEPATOBILIARY_SURGERY: ("肝胆胰肿瘤、腹腔镜肝切除", "胰十二指肠切除"),
    D.NEUROSURGERY: ("脑血管病介入与取栓", "颅脑创伤、脑肿瘤显微手术"),
    D.ORTHOPEDICS: ("脊柱微创、关节置换", "创伤骨科"),
    D.UROLOGY: ("泌尿系结石微创治疗", "泌尿系肿瘤腹腔镜手术"),
    D.THORACIC_SURGERY: ("胸腔镜肺叶切除", "食管外科"),
    D.CARDIAC_SURGERY: ("冠脉搭桥、瓣膜手术",),
    D.OBSTETRICS_GYNECOLOGY: ("高危妊娠管理", "妇科腹腔镜手术"),
    D.PEDIATRICS: ("小儿呼吸、消化疾病", "儿童保健"),
    D.NEONATOLOGY: ("早产儿救治、新生儿重症监护",),
    D.OPHTHALMOLOGY: ("白内障、眼底病", "青光眼"),
    D.ENT: ("鼻内镜手术", "耳科、听力重建"),
    D.STOMATOLOGY: ("口腔颌面外科", "口腔种植修复", "牙周病治疗"),
    D.DERMATOLOGY: ("皮肤病诊治",),
    D.ANESTHESIOLOGY: ("临床麻醉、舒适化医疗", "围术期管理、疼痛治疗"),
    D.EMERGENCY: ("急危重症救治、创伤急救", "胸痛与卒中绿色通道"),
    D.CRITICAL_CARE: ("脓毒症、多器官功能支持", "ECMO"),
    D.RADIOLOGY: ("神经影像诊断", "胸腹部CT诊断"),
    D.RADIOTHERAPY: ("精准放疗、调强放疗",),
    D.PATHOLOGY: ("术中冰冻病理诊断", "肿瘤病理"),
    D.LABORATORY: ("临床检验",),
    D.REHABILITATION: ("卒中后康复", "骨科术后康复"),
    D.TCM: ("中医内科、针灸推拿",),
    D.MANAGEMENT: ("医院管理",),
}  # fmt: skip

# Departments with their own name (not their discipline's default) have their own focus.
SPECIALTIES_BY_DEPARTMENT: dict[str, tuple[str, ...]] = {
    "妇科": ("妇科腹腔镜手术", "宫颈疾病诊治"),
    "产科": ("高危妊娠管理", "产前诊断"),
    "生殖内分泌科": ("不孕症、辅助生殖",),
    "妇科肿瘤科": ("妇科恶性肿瘤综合治疗",),
    "乳腺外科": ("乳腺癌保乳手术", "乳腺良性疾病微创治疗"),
    "口腔颌面外科": ("颌面部肿瘤、正颌外科",),
    "口腔修复科": ("固定与活动义齿修复",),
    "口腔正畸科": ("错颌畸形矫治",),
    "牙体牙髓科": ("显微根管治疗",),
    "牙周病科": ("牙周病系统治疗",),
    "儿童口腔科": ("儿童龋病防治",),
    "口腔种植科": ("种植牙修复",),
    "口腔急诊科": ("口腔颌面部外伤急诊",),
    "口腔颌面影像科": ("锥形束CT诊断",),
    "口腔病理科": ("口腔颌面部肿瘤病理",),
}

T = ProfessionalTitle
_HOSPITAL_TITLES: tuple[tuple[ProfessionalTitle, int], ...] = (
    (T.CHIEF_PHYSICIAN, 12),
    (T.ASSOCIATE_CHIEF_PHYSICIAN, 22),
    (T.ATTENDING_PHYSICIAN, 28),
    (T.RESIDENT_PHYSICIAN, 18),
    (T.CHIEF_NURSE, 2),
    (T.ASSOCIATE_CHIEF_NURSE, 4),
    (T.NURSE_IN_CHARGE, 8),
    (T.SENIOR_NURSE, 4),
    (T.NURSE, 2),
)
_PRIMARY_TITLES: tuple[tuple[ProfessionalTitle, int], ...] = (
    (T.ASSOCIATE_CHIEF_PHYSICIAN, 1),
    (T.ATTENDING_PHYSICIAN, 4),
    (T.RESIDENT_PHYSICIAN, 3),
    (T.NURSE_IN_CHARGE, 2),
    (T.NURSE, 1),
)
_NURSES = frozenset({T.CHIEF_NURSE, T.ASSOCIATE_CHIEF_NURSE, T.NURSE_IN_CHARGE, T.SENIOR_NURSE, T.NURSE})
_NON_WARD = frozenset({D.RADIOLOGY, D.PATHOLOGY, D.LABORATORY, D.MANAGEMENT})


def _licence(title: ProfessionalTitle, region_code: str, serial: int) -> str:
    """15 digits: certificate kind (1 physician, 2 nurse), category 1, the region code, a serial."""
    kind = "2" if title in _NURSES else "1"
    return f"{kind}1{region_code}{serial:07d}"


def practitioner_specs(*, seed: int = 2018, scale: int = 1) -> list[PractitionerSpec]:
    """The generated practitioners: a pure function of ``seed`` and ``scale``.

    Round r (0-based) draws the same numbers whatever the scale, so scale N's list is a
    prefix of scale N + 1's and seeding a larger scale on top of a smaller one only adds.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    rng = random.Random(seed)
    regions = {i.code: i.region for i in INSTITUTIONS}
    primary = {i.code for i in INSTITUTIONS if i.type == InstitutionType.PRIMARY_CARE}
    used_names = {p.name_zh for p in PERSONAS}
    used_serials = {int(p.licence_number[-7:]) for p in PERSONAS}
    specs: list[PractitionerSpec] = []
    for _round in range(scale):
        for code, count in ALLOCATION:
            for _ in range(count):
                surname, given = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES)
                for _attempt in range(20):  # prefer distinct names; accept a clash past that
                    if surname[0] + given[0] not in used_names:
                        break
                    surname, given = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES)
                name_zh, name_en = surname[0] + given[0], f"{surname[1]} {given[1]}"
                used_names.add(name_zh)

                weights = _PRIMARY_TITLES if code in primary else _HOSPITAL_TITLES
                title = rng.choices([t for t, _w in weights], weights=[w for _t, w in weights])[0]
                departments = tuple(d for d in DEPARTMENTS[code] if d.discipline != D.MANAGEMENT)
                if title in _NURSES:
                    departments = tuple(d for d in departments if d.discipline not in _NON_WARD)
                department = rng.choice(departments)

                serial = rng.randrange(1, 10**7)
                while serial in used_serials:
                    serial = rng.randrange(1, 10**7)
                used_serials.add(serial)

                if title in _NURSES:
                    specialties = f"{department.name_zh}专科护理"
                else:
                    specialties = rng.choice(
                        SPECIALTIES_BY_DEPARTMENT.get(department.name_zh) or SPECIALTIES[department.discipline]
                    )
                specs.append(
                    PractitionerSpec(
                        name_zh=name_zh,
                        name_en=name_en,
                        title=title,
                        institution=code,
                        department=department.name_zh,
                        licence_number=_licence(title, regions[code], serial),
                        specialties=specialties,
                    )
                )
    return specs


# ----------------------------------------------------------------------------------------
# The seeding itself


class _Seeder:
    """Creates what is missing, remembering natural keys so each lookup is one dict access."""

    def __init__(self) -> None:
        self.created: dict[str, int] = {f.name: 0 for f in fields(SeedReport)}
        self.regions: dict[str, Region] = {r.code: r for r in Region.objects.all()}
        self.institutions: dict[str, Institution] = {i.code: i for i in Institution.objects.all()}
        self.departments: dict[tuple[str, str, str], Department] = {
            (d.institution.code, d.discipline, d.name_zh): d for d in Department.objects.select_related("institution")
        }
        self.capabilities: set[tuple[str, str]] = set(Capability.objects.values_list("institution__code", "kind"))
        self.consortia: dict[str, Consortium] = {c.code: c for c in Consortium.objects.all()}
        self.members: set[tuple[str, str]] = set(
            ConsortiumMember.objects.values_list("consortium__code", "institution__code")
        )
        self.agreements: dict[str, Agreement] = {a.code: a for a in Agreement.objects.all()}
        self.pairings: set[tuple[str, int, int]] = set(
            DepartmentPairing.objects.values_list("agreement__code", "lead_department_id", "member_department_id")
        )
        self.licences: set[str] = set(Practitioner.objects.values_list("licence_number", flat=True))

    def count(self, kind: str) -> None:
        self.created[kind] += 1

    def report(self) -> SeedReport:
        return SeedReport(**self.created)

    # -- places

    def seed_regions(self) -> None:
        for spec in REGIONS:
            if spec.code in self.regions:
                continue
            parent = self.regions[spec.parent] if spec.parent else None
            self.regions[spec.code] = services.region_create(
                actor=None,
                code=spec.code,
                name_zh=spec.name_zh,
                name_en=spec.name_en,
                level=spec.level,
                parent=parent,
            )
            self.count("regions")

    def seed_institutions(self) -> None:
        for spec in INSTITUTIONS:
            if spec.code in self.institutions:
                continue
            self.institutions[spec.code] = services.institution_create(
                actor=None,
                code=spec.code,
                name_zh=spec.name_zh,
                name_en=spec.name_en,
                short_name=spec.short_name,
                grade=spec.grade,
                type=spec.type,
                region=self.regions[spec.region],
                address=spec.address,
                latitude=Decimal(spec.latitude),
                longitude=Decimal(spec.longitude),
                phone=spec.phone,
                **demo_identifiers(INSTITUTIONS.index(spec), spec.region),
            )
            self.count("institutions")

    def seed_departments(self) -> None:
        for code, departments in DEPARTMENTS.items():
            institution = self.institutions[code]
            for spec in departments:
                key = (code, str(spec.discipline), spec.name_zh)
                if key in self.departments:
                    continue
                self.departments[key] = services.department_create(
                    actor=None,
                    institution=institution,
                    discipline=spec.discipline,
                    name_zh=spec.name_zh,
                    name_en=spec.name_en,
                )
                self.count("departments")

    def department(self, code: str, name_zh: str) -> Department:
        for spec in DEPARTMENTS[code]:
            if spec.name_zh == name_zh:
                return self.departments[(code, str(spec.discipline), name_zh)]
        raise KeyError(f"{code} has no department named {name_zh}")

    def seed_capabilities(self) -> None:
        for spec in CAPABILITIES:
            key = (spec.institution, str(spec.kind))
            if key in self.capabilities:
                continue
            services.capability_create(
                actor=None,
                institution=self.institutions[spec.institution],
                kind=spec.kind,
                valid_from=spec.valid_from,
                all_hours=spec.all_hours,
                weekdays=spec.weekdays,
                opens_at=spec.opens_at,
                closes_at=spec.closes_at,
                note=spec.note,
            )
            self.capabilities.add(key)
            self.count("capabilities")

    # -- consortia and agreements

    def seed_consortia(self) -> None:
        for spec in CONSORTIA:
            consortium = self.consortia.get(spec.code)
            if consortium is None:
                consortium = services.consortium_create(
                    actor=None,
                    code=spec.code,
                    name_zh=spec.name_zh,
                    name_en=spec.name_en,
                    type=spec.type,
                    lead_institution=self.institutions[spec.lead],
                    region=self.regions[spec.region],
                    established_on=spec.established_on,
                    description_zh=spec.description.partition("\n\n")[0],
                    description_en=spec.description.partition("\n\n")[2],
                )
                self.consortia[spec.code] = consortium
                self.members.add((spec.code, spec.lead))  # the service adds the lead as first member
                self.count("consortia")
                self.count("consortium_members")
            for code, joined_on, relation in spec.members:
                if (spec.code, code) in self.members:
                    continue
                services.consortium_member_add(
                    actor=None,
                    consortium=consortium,
                    institution=self.institutions[code],
                    joined_on=joined_on,
                    relation=relation,
                )
                self.members.add((spec.code, code))
                self.count("consortium_members")

    def seed_agreements(self) -> None:
        for spec in AGREEMENTS:
            agreement = self.agreements.get(spec.code)
            if agreement is None:
                agreement = services.agreement_create(
                    actor=None,
                    code=spec.code,
                    title_zh=spec.title_zh,
                    title_en=spec.title_en,
                    consortium=self.consortia[spec.consortium] if spec.consortium else None,
                    parties=[self.institutions[code] for code in spec.parties],
                    signed_on=spec.signed_on,
                    valid_from=spec.valid_from,
                    valid_to=spec.valid_to,
                    scope=spec.scope,
                    goals=spec.goals,
                    status=spec.status,
                )
                self.agreements[spec.code] = agreement
                self.count("agreements")
            if not agreement.document:
                services.agreement_document_attach(
                    actor=None, agreement=agreement, document=ContentFile(_agreement_pdf(spec), name=f"{spec.code}.pdf")
                )
                self.count("documents")
            for pairing in spec.pairings:
                lead = self.department(*pairing.lead)
                member = self.department(*pairing.member)
                if (spec.code, lead.pk, member.pk) in self.pairings:
                    continue
                services.pairing_add(
                    actor=None,
                    agreement=agreement,
                    lead_department=lead,
                    member_department=member,
                    kind=pairing.kind,
                    label_zh=pairing.label_zh,
                    label_en=pairing.label_en,
                )
                self.pairings.add((spec.code, lead.pk, member.pk))
                self.count("pairings")

    # -- people

    def seed_users(self) -> dict[str, User]:
        users: dict[str, User] = {}
        for spec in DEMO_USERS:
            user = User.objects.filter(username__iexact=spec.username).first()
            if user is None:
                user = services.user_create(
                    actor=None,
                    username=spec.username,
                    password=DEMO_PASSWORD,
                    display_name=spec.display_name_zh,
                )
                self.count("users")
            users[spec.username] = user
            institution = self.institutions[spec.institution_code] if spec.institution_code else None
            consortium = self.consortia[spec.consortium_code] if spec.consortium_code else None
            region = self.regions[spec.region_code] if spec.region_code else None
            exists = Membership.objects.filter(
                user=user, role=spec.role, institution=institution, consortium=consortium, region=region
            ).exists()
            if not exists:
                services.membership_grant(
                    actor=None,
                    user=user,
                    role=spec.role,
                    institution=institution,
                    consortium=consortium,
                    region=region,
                )
                self.count("memberships")
        return users

    def seed_practitioners(self, specs: list[PractitionerSpec], users: dict[str, User]) -> None:
        for spec in specs:
            if spec.licence_number in self.licences:
                continue
            user = users.get(spec.username) if spec.username else None
            if user is not None and Practitioner.objects.filter(user=user).exists():
                user = None  # that account already stands for someone; never steal the link
            services.practitioner_create(
                actor=None,
                name_zh=spec.name_zh,
                name_en=spec.name_en,
                title=spec.title,
                institution=self.institutions[spec.institution],
                department=self.department(spec.institution, spec.department),
                licence_number=spec.licence_number,
                specialties=spec.specialties,
                user=user,
            )
            self.licences.add(spec.licence_number)
            self.count("practitioners")


def seed_demo(*, seed: int = 2018, scale: int = 1) -> SeedReport:
    """Create the demo consortium (whatever of it is missing) and say what was created.

    ``scale`` multiplies the generated staff and the clinical activity facts (rounds of
    ``yilian.demo.activity``); the two years of referral history are seeded at scale 1
    (``seed_referrals`` writes more for benchmarks).
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    specs = [*PERSONAS, *practitioner_specs(seed=seed, scale=scale)]
    with transaction.atomic():
        seeder = _Seeder()
        seeder.seed_regions()
        seeder.seed_institutions()
        seeder.seed_departments()
        seeder.seed_capabilities()
        seeder.seed_consortia()
        seeder.seed_agreements()
        users = seeder.seed_users()
        seeder.seed_practitioners(specs, users)
        history = seed_referrals(seed=seed)
        seeder.created["users"] += history.users
        seeder.created["patients"] += history.patients
        seeder.created["referrals"] += history.referrals
        stationing = seed_dispatch(seed=seed)
        seeder.created["practitioners"] += stationing.practitioners
        seeder.created["departments"] += stationing.departments
        seeder.created["programmes"] += stationing.programmes
        seeder.created["roster_days"] += stationing.roster_days
        consults = seed_consults(seed=seed)
        for name in ("users", "memberships", "practitioners", "patients", "consults"):
            seeder.created[name] += getattr(consults, name)
        seeder.created["survey_responses"] += seed_surveys(seed=seed)
        # Last, so that the other histories do not depend on it (the surveys sample referrals).
        green = seed_green(seed=seed)
        seeder.created["green_protocols"] += green.protocols
        seeder.created["patients"] += green.patients
        seeder.created["referrals"] += green.cases
        # The indicator definitions come with a data migration; a database emptied since (the
        # browser tests' flush) gets them back, so the dashboards have something to compute.
        if not Indicator.objects.exists():
            load_defaults(Indicator)
        # Clinical activity facts (Parquet batches, one audit row each), at the requested scale.
        # The residence regions the activity's patients come from (other cities and provinces).
        seeder.created["regions"] += register_residence_regions()
        seeder.created["activity_batches"] += seed_activity(seed=seed, scale=scale).batches
        # Capability building comes after the activity: a regional first is verified when it is
        # claimed, against the imported operations among other records, so they must be there.
        capability = seed_capability(seed=seed)
        for name in (
            "users", "memberships", "practitioners", "techniques", "ledgers", "ledger_cases", "privileges",
            "firsts", "teaching_activities", "attendances", "training_programmes", "assessments",
        ):  # fmt: skip
            seeder.created[name] += getattr(capability, name)
    return seeder.report()
