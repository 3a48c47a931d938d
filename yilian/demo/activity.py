"""Synthetic clinical activity (discharges, operations, visits) for the demo and the benchmarks.

The facts tell the stories of DOMAIN.md section 4 and the issue "clinical activity import" at a
glance, over three calendar years: a baseline year and the two story years (the three years
before the current one):

- Bijie centre (``bjfph``): level-3/4 operations and minimally invasive operations grow about
  30 % a year, two years running; robot-assisted operations appear in the second half of the
  baseline year (20+ in the first half-year) and grow; visits from outside the city over the two
  story years are exactly ``OUT_OF_CITY_VISITS`` (68,560), of which ``OUT_OF_CITY_PROVINCE_VISITS``
  (45,662) come from elsewhere in Guizhou and the rest from Yunnan, Sichuan and Chongqing;
- Quzhou: the residents of each county are treated more and more at their own county hospital
  and primary-care centres and less at Quzhou People's Hospital or in Hangzhou, so the in-county
  visit rate of every county rises year on year;
- everything else is plausible: each institution's departments from the registry, ICD-10
  diagnoses, ICD-9-CM-3 style operations with levels, categories and minimally invasive flags,
  sexes and ages that fit the department, lengths of stay, costs, first / follow-up / tele
  visits, emergencies, and the township and community centres' visits.

Invariants:
- vectorised: numpy draws whole columns; the only Python loops run over the specification
  (institutions, flows, operation groups), never over rows;
- deterministic: the facts are a function of ``seed``, the round, the multiplier and the years
  (and of the pseudonym key, which only changes ``patient_key``), never of the database or clock;
- the story totals are exact by construction, not by luck: flows are counts, and the Bijie
  centre's level-3/4, minimally invasive and robot-assisted stays are allocated exactly (each such
  stay has exactly one such operation; further operations of a stay are level-1/2 diagnostic or
  therapeutic procedures);
- ``patient_key`` is the keyed pseudonym (``yilian.activity.pseudonyms.pseudonymise``) of a
  synthetic patient number; the numbers themselves are never written anywhere;
- scale N is rounds 0 .. N-1, each a full copy of the demo volumes with its own record and
  patient numbers; seeding lands one batch per dataset and year for each missing round (a round's
  batches are recognised by their file names), so seeding again lands nothing and a larger scale
  adds only the missing rounds. Each round's tables are cached as Parquet under
  ``DATA_DIR/demo-cache`` so that a re-seed into an empty database only reads and lands them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings

from yilian.activity.columns import Kind, complete, fact_schema
from yilian.registry.models import Discipline

D = Discipline
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

BIJIE = "bjfph"
OUT_OF_CITY_VISITS = 68_560  # visits to the Bijie centre from outside Bijie, over the two story years
OUT_OF_CITY_PROVINCE_VISITS = 45_662  # of which from elsewhere in Guizhou
CACHE_VERSION = 1  # bump when the generator changes, so that old caches are not reused
BATCH_PREFIX = "demo-activity"

# ----------------------------------------------------------------------------------------
# Years


def demo_years(today: dt.date | None = None) -> tuple[int, int, int]:
    """The baseline year and the two story years: the three calendar years before ``today``'s."""
    year = (today or dt.date.today()).year
    return (year - 3, year - 2, year - 1)


# ----------------------------------------------------------------------------------------
# Places: residence regions (GB/T 2260 county-level codes) and the demo institutions' regions

INSTITUTION_REGIONS: dict[str, str] = {
    "zju1": "330102", "zju2": "330102", "srrsh": "330102", "zjuwc": "330102", "zjus": "330106",
    "zjpph": "330105", "qzph": "330802", "qz2ph": "330802", "qzmch": "330802", "khph": "330824",
    "csph": "330822", "jsph": "330881", "lyph": "330825", "qjph": "330803", "kh-huabu": "330824",
    "kh-chengguan": "330824", "cs-tianma": "330822", "bjfph": "520502", "qxgph": "520502", "gzph": "520102",
}  # fmt: skip
PRIMARY_CARE = ("kh-huabu", "kh-chengguan", "cs-tianma")
HANGZHOU = ("zju1", "zju2", "srrsh", "zjuwc", "zjus", "zjpph")

# Residence regions the facts use, with names, for a registry that wants to label them
# (code, name_zh, name_en, level, parent).
RESIDENCE_REGIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("330108", "滨江区", "Binjiang District", "county", "330100"),
    ("330110", "余杭区", "Yuhang District", "county", "330100"),
    ("330200", "宁波市", "Ningbo", "city", "330000"),
    ("330203", "海曙区", "Haishu District", "county", "330200"),
    ("330300", "温州市", "Wenzhou", "city", "330000"),
    ("330302", "鹿城区", "Lucheng District", "county", "330300"),
    ("330600", "绍兴市", "Shaoxing", "city", "330000"),
    ("330602", "越城区", "Yuecheng District", "county", "330600"),
    ("330700", "金华市", "Jinhua", "city", "330000"),
    ("330702", "婺城区", "Wucheng District", "county", "330700"),
    ("330781", "兰溪市", "Lanxi", "county", "330700"),
    ("360000", "江西省", "Jiangxi", "province", ""),
    ("361100", "上饶市", "Shangrao", "city", "360000"),
    ("361102", "信州区", "Xinzhou District", "county", "361100"),
    ("361123", "玉山县", "Yushan County", "county", "361100"),
    ("350000", "福建省", "Fujian", "province", ""),
    ("350700", "南平市", "Nanping", "city", "350000"),
    ("350783", "建瓯市", "Jian'ou", "county", "350700"),
    ("340000", "安徽省", "Anhui", "province", ""),
    ("341000", "黄山市", "Huangshan", "city", "340000"),
    ("341004", "徽州区", "Huizhou District", "county", "341000"),
    ("310000", "上海市", "Shanghai", "province", ""),
    ("310100", "上海市市辖区", "Shanghai (districts)", "city", "310000"),
    ("310101", "黄浦区", "Huangpu District", "county", "310100"),
    ("520103", "云岩区", "Yunyan District", "county", "520100"),
    ("520111", "花溪区", "Huaxi District", "county", "520100"),
    ("520115", "观山湖区", "Guanshanhu District", "county", "520100"),
    ("520181", "清镇市", "Qingzhen", "county", "520100"),
    ("520200", "六盘水市", "Liupanshui", "city", "520000"),
    ("520201", "钟山区", "Zhongshan District", "county", "520200"),
    ("520204", "水城区", "Shuicheng District", "county", "520200"),
    ("520281", "盘州市", "Panzhou", "county", "520200"),
    ("520300", "遵义市", "Zunyi", "city", "520000"),
    ("520302", "红花岗区", "Honghuagang District", "county", "520300"),
    ("520303", "汇川区", "Huichuan District", "county", "520300"),
    ("520382", "仁怀市", "Renhuai", "county", "520300"),
    ("520400", "安顺市", "Anshun", "city", "520000"),
    ("520402", "西秀区", "Xixiu District", "county", "520400"),
    ("520521", "大方县", "Dafang County", "county", "520500"),
    ("520523", "金沙县", "Jinsha County", "county", "520500"),
    ("520524", "织金县", "Zhijin County", "county", "520500"),
    ("520525", "纳雍县", "Nayong County", "county", "520500"),
    ("520526", "威宁彝族回族苗族自治县", "Weining County", "county", "520500"),
    ("520527", "赫章县", "Hezhang County", "county", "520500"),
    ("520581", "黔西市", "Qianxi", "county", "520500"),
    ("520600", "铜仁市", "Tongren", "city", "520000"),
    ("520602", "碧江区", "Bijiang District", "county", "520600"),
    ("522300", "黔西南布依族苗族自治州", "Qianxinan Prefecture", "city", "520000"),
    ("522301", "兴义市", "Xingyi", "county", "522300"),
    ("522600", "黔东南苗族侗族自治州", "Qiandongnan Prefecture", "city", "520000"),
    ("522601", "凯里市", "Kaili", "county", "522600"),
    ("522700", "黔南布依族苗族自治州", "Qiannan Prefecture", "city", "520000"),
    ("522701", "都匀市", "Duyun", "county", "522700"),
    ("530000", "云南省", "Yunnan", "province", ""),
    ("530100", "昆明市", "Kunming", "city", "530000"),
    ("530102", "五华区", "Wuhua District", "county", "530100"),
    ("530600", "昭通市", "Zhaotong", "city", "530000"),
    ("530602", "昭阳区", "Zhaoyang District", "county", "530600"),
    ("530628", "彝良县", "Yiliang County", "county", "530600"),
    ("530629", "威信县", "Weixin County", "county", "530600"),
    ("510000", "四川省", "Sichuan", "province", ""),
    ("510500", "泸州市", "Luzhou", "city", "510000"),
    ("510502", "江阳区", "Jiangyang District", "county", "510500"),
    ("510524", "叙永县", "Xuyong County", "county", "510500"),
    ("510525", "古蔺县", "Gulin County", "county", "510500"),
    ("500000", "重庆市", "Chongqing", "province", ""),
    ("500100", "重庆市市辖区", "Chongqing (districts)", "city", "500000"),
    ("500103", "渝中区", "Yuzhong District", "county", "500100"),
    ("500112", "渝北区", "Yubei District", "county", "500100"),
)

Weights = dict[str, float]

HANGZHOU_LOCAL: Weights = {"330102": 3, "330105": 3, "330106": 2, "330108": 1, "330110": 1}
ZHEJIANG_OTHER: Weights = {"330203": 2, "330302": 2, "330602": 2, "330702": 3, "330781": 1}
FAR_FROM_HANGZHOU: Weights = {"310101": 2, "361102": 1, "341004": 1}
AROUND_QUZHOU: Weights = {"330702": 3, "330781": 1, "361102": 3, "361123": 2, "350783": 2, "341004": 1}
BIJIE_COUNTIES: Weights = {"520521": 3, "520523": 2, "520524": 3, "520525": 2, "520526": 3, "520527": 2, "520581": 2}
GUIZHOU_OTHER: Weights = {
    "520102": 4, "520103": 3, "520111": 1, "520115": 1, "520181": 1,  # Guiyang
    "520201": 4, "520204": 3, "520281": 3,  # Liupanshui, next to Weining
    "520302": 3, "520303": 2, "520382": 2,  # Zunyi
    "520402": 2,  # Anshun
    "520602": 1,  # Tongren
    "522301": 2, "522601": 1, "522701": 1,  # the three prefectures
}  # fmt: skip
BEYOND_GUIZHOU: Weights = {
    "530602": 5, "530628": 3, "530629": 2, "530102": 1,  # Yunnan: Zhaotong borders Bijie; Kunming
    "510502": 2, "510524": 2, "510525": 2,  # Sichuan: Luzhou
    "500103": 1, "500112": 1,  # Chongqing
}  # fmt: skip
GUIYANG_LOCAL: Weights = {"520102": 4, "520103": 4, "520111": 2, "520115": 2, "520181": 1}

# ----------------------------------------------------------------------------------------
# Flows: how many visits (and discharges) the residents of a place make at an institution


@dataclass(frozen=True)
class _County:
    """The residents of a Quzhou county: visits a year, the share treated in the county in each of
    the three years (rising), where in the county, and where outside."""

    code: str
    visits: int
    in_county: tuple[float, float, float]
    inside: Weights
    outside: Weights


QUZHOU_COUNTIES: tuple[_County, ...] = (
    _County("330824", 15_000, (0.74, 0.80, 0.86), {"khph": 62, "kh-huabu": 22, "kh-chengguan": 16},
            {"qzph": 55, "qz2ph": 15, "qzmch": 5, "zju2": 12, "zju1": 4, "srrsh": 3, "zjpph": 3, "zjuwc": 2,
             "zjus": 1}),
    _County("330822", 14_000, (0.72, 0.78, 0.83), {"csph": 80, "cs-tianma": 20},
            {"qzph": 50, "qz2ph": 15, "qzmch": 5, "zju1": 12, "zju2": 8, "srrsh": 3, "zjpph": 3, "zjuwc": 3,
             "zjus": 1}),
    _County("330881", 16_000, (0.78, 0.81, 0.84), {"jsph": 1},
            {"qzph": 50, "qz2ph": 15, "qzmch": 5, "zju1": 15, "zju2": 6, "srrsh": 3, "zjpph": 3, "zjuwc": 2,
             "zjus": 1}),
    _County("330825", 13_000, (0.70, 0.75, 0.81), {"lyph": 1},
            {"qzph": 45, "qz2ph": 15, "qzmch": 5, "srrsh": 18, "zju2": 7, "zju1": 4, "zjpph": 3, "zjuwc": 2,
             "zjus": 1}),
    _County("330803", 12_000, (0.55, 0.60, 0.66), {"qjph": 1},
            {"qzph": 60, "qz2ph": 20, "qzmch": 8, "srrsh": 6, "zju2": 3, "zju1": 1, "zjpph": 1, "zjuwc": 1}),
    _County("330802", 20_000, (0.90, 0.91, 0.92), {"qzph": 60, "qz2ph": 25, "qzmch": 15},
            {"zju2": 35, "zju1": 20, "srrsh": 15, "zjpph": 15, "zjuwc": 10, "zjus": 5}),
)  # fmt: skip

# Bijie centre visits by origin group, per year (baseline, story 1, story 2). The two story
# years' out-of-city totals are the story's figures exactly.
BIJIE_VISITS: dict[str, tuple[int, int, int]] = {
    "same_county": (22_000, 23_000, 24_000),
    "same_city": (12_000, 13_500, 15_000),
    "same_province": (14_500, 20_050, 25_612),
    "other_province": (6_800, 10_090, 12_808),
}
assert sum(BIJIE_VISITS["same_province"][1:]) == OUT_OF_CITY_PROVINCE_VISITS
assert sum(BIJIE_VISITS["same_province"][1:]) + sum(BIJIE_VISITS["other_province"][1:]) == OUT_OF_CITY_VISITS
BIJIE_DISCHARGES: dict[str, tuple[int, int, int]] = {
    "same_county": (6_800, 7_000, 7_200),
    "same_city": (3_900, 4_300, 4_700),
    "same_province": (1_600, 2_200, 2_800),
    "other_province": (700, 1_000, 1_300),
}
# Bijie centre stays with surgery, and among them (exactly) those with a level-3/4 operation,
# with a minimally invasive operation, and with a robot-assisted one: +31 % / +30 % and
# +30 % / +31.5 % a year for level 3/4 and minimally invasive.
BIJIE_SURGICAL_STAYS = (5_600, 6_700, 7_900)
BIJIE_LEVEL34_STAYS = (2_600, 3_406, 4_428)
BIJIE_MINIMALLY_INVASIVE_STAYS = (1_480, 1_924, 2_530)
BIJIE_ROBOT_STAYS = (23, 58, 96)  # baseline year: from July only (the robot came with the co-building)

# Other visits per year at an institution (residents not covered by the Quzhou counties).
OTHER_VISITS: dict[str, list[tuple[Weights, int]]] = {
    **{code: [(HANGZHOU_LOCAL, 3_000), (ZHEJIANG_OTHER, 1_000), (FAR_FROM_HANGZHOU, 400)] for code in HANGZHOU},
    "qzph": [(AROUND_QUZHOU, 2_000)],
    "qz2ph": [(AROUND_QUZHOU, 400)],
    "qzmch": [(AROUND_QUZHOU, 300)],
    "jsph": [({"350783": 2, "361123": 1}, 500)],
    "qxgph": [({"520502": 1}, 9_000), (BIJIE_COUNTIES, 1_500), (GUIZHOU_OTHER, 300)],
    "gzph": [(GUIYANG_LOCAL, 7_000), (GUIZHOU_OTHER, 1_700), (BIJIE_COUNTIES, 800), (BEYOND_GUIZHOU, 300)],
}
UNKNOWN_RESIDENCE_SHARE = 0.005  # rows whose residence is missing (origin "unknown"), outside the story flows
INPATIENT_PER_VISIT = 0.11  # discharges per visit outside the Bijie centre
INPATIENT_IN_COUNTY_LAG = 0.05  # counties keep a little fewer inpatients than outpatients

# ----------------------------------------------------------------------------------------
# Institutions: what kind of care, how much surgery


@dataclass(frozen=True)
class _Profile:
    surgical: float  # share of stays with surgery
    level34: tuple[float, float, float]  # share of surgical stays with a level-3/4 operation, per year
    minimally_invasive: tuple[float, float, float]
    robot: float  # share of robot-capable operations done with the robot
    emergency: float  # share of visits in the emergency department
    tele: tuple[float, float, float]  # share of tele visits, per year
    daily_cost: float  # yuan per inpatient day


_TERTIARY_HZ = _Profile(0.55, (0.70, 0.71, 0.72), (0.45, 0.47, 0.49), 0.04, 0.10, (0.06, 0.08, 0.10), 2_200)
_CITY = _Profile(0.45, (0.50, 0.53, 0.56), (0.30, 0.33, 0.36), 0.0, 0.12, (0.02, 0.03, 0.04), 1_300)
_COUNTY = _Profile(0.35, (0.25, 0.28, 0.31), (0.18, 0.21, 0.24), 0.0, 0.12, (0.02, 0.04, 0.06), 800)
PROFILES: dict[str, _Profile] = {
    **{code: _TERTIARY_HZ for code in HANGZHOU},
    "qzph": _CITY, "qz2ph": _CITY, "qzmch": _Profile(0.40, (0.30, 0.31, 0.32), (0.35, 0.36, 0.37), 0.0, 0.08,
                                                     (0.01, 0.02, 0.03), 1_100),
    **{code: _COUNTY for code in ("khph", "csph", "jsph", "lyph", "qjph", "qxgph")},
    **{code: _Profile(0.0, (0, 0, 0), (0, 0, 0), 0.0, 0.0, (0.03, 0.05, 0.08), 400) for code in PRIMARY_CARE},
    "bjfph": _Profile(0.0, (0, 0, 0), (0, 0, 0), 0.0, 0.11, (0.03, 0.05, 0.07), 1_200),  # surgery: exact counts
    "gzph": _Profile(0.45, (0.62, 0.63, 0.64), (0.40, 0.41, 0.42), 0.02, 0.10, (0.03, 0.04, 0.05), 1_600),
}  # fmt: skip

# ----------------------------------------------------------------------------------------
# Clinical vocabulary

# Relative weight of each discipline among outpatient visits (0: no clinic) and among stays.
VISIT_WEIGHT: dict[str, float] = {
    D.GENERAL_PRACTICE: 20, D.INTERNAL_MEDICINE: 10, D.CARDIOLOGY: 8, D.NEUROLOGY: 6, D.RESPIRATORY: 7,
    D.GASTROENTEROLOGY: 7, D.NEPHROLOGY: 3, D.ENDOCRINOLOGY: 6, D.HEMATOLOGY: 2, D.ONCOLOGY: 4,
    D.GENERAL_SURGERY: 6, D.GASTROINTESTINAL_SURGERY: 3, D.HEPATOBILIARY_SURGERY: 3, D.NEUROSURGERY: 3,
    D.ORTHOPEDICS: 7, D.UROLOGY: 4, D.THORACIC_SURGERY: 2, D.CARDIAC_SURGERY: 1, D.OBSTETRICS_GYNECOLOGY: 8,
    D.PEDIATRICS: 8, D.NEONATOLOGY: 1, D.OPHTHALMOLOGY: 5, D.ENT: 5, D.STOMATOLOGY: 6, D.DERMATOLOGY: 4,
    D.REHABILITATION: 3, D.TCM: 5, D.RADIOTHERAPY: 1, D.ANESTHESIOLOGY: 0.5,
}  # fmt: skip
STAY_WEIGHT: dict[str, float] = {
    D.INTERNAL_MEDICINE: 8, D.CARDIOLOGY: 8, D.NEUROLOGY: 8, D.RESPIRATORY: 8, D.GASTROENTEROLOGY: 5,
    D.NEPHROLOGY: 3, D.ENDOCRINOLOGY: 3, D.HEMATOLOGY: 2, D.ONCOLOGY: 5, D.PEDIATRICS: 6, D.NEONATOLOGY: 2,
    D.OBSTETRICS_GYNECOLOGY: 3, D.REHABILITATION: 2, D.TCM: 2, D.CRITICAL_CARE: 1, D.RADIOTHERAPY: 1,
    D.GENERAL_SURGERY: 1, D.ORTHOPEDICS: 1, D.NEUROSURGERY: 1, D.UROLOGY: 1,
}  # fmt: skip
CHILD_ONLY = {D.PEDIATRICS, D.NEONATOLOGY}
FEMALE_ONLY = {D.OBSTETRICS_GYNECOLOGY}

DIAGNOSES: dict[str, tuple[str, ...]] = {
    D.INTERNAL_MEDICINE: ("I10", "E11.9", "J18.9", "K29.7", "I25.1"),
    D.CARDIOLOGY: ("I21.9", "I20.0", "I48.9", "I50.9", "I10"),
    D.NEUROLOGY: ("I63.9", "G45.9", "G40.9", "I67.8", "G20"),
    D.RESPIRATORY: ("J18.9", "J44.1", "J45.9", "J20.9", "C34.9"),
    D.GASTROENTEROLOGY: ("K29.7", "K25.9", "K92.2", "K74.6", "K85.9"),
    D.NEPHROLOGY: ("N18.5", "N04.9", "N39.0"),
    D.ENDOCRINOLOGY: ("E11.9", "E11.6", "E05.9"),
    D.HEMATOLOGY: ("D64.9", "C92.0", "D69.3"),
    D.ONCOLOGY: ("Z51.1", "C34.9", "C16.9", "C50.9", "C22.0"),
    D.PEDIATRICS: ("J18.0", "A09.9", "J06.9", "J21.9"),
    D.NEONATOLOGY: ("P07.3", "P59.9", "P22.1"),
    D.OBSTETRICS_GYNECOLOGY: ("O80.0", "O47.0", "D25.9", "N83.2"),
    D.REHABILITATION: ("I69.3", "S32.0", "M51.2"),
    D.TCM: ("M54.5", "I69.3", "M47.8"),
    D.CRITICAL_CARE: ("A41.9", "J96.0", "R57.0"),
    D.RADIOTHERAPY: ("Z51.0", "C11.9", "C53.9"),
    D.GENERAL_SURGERY: ("K80.2", "K35.8", "K56.6"),
    D.ORTHOPEDICS: ("M54.5", "S32.0", "M81.9"),
    D.NEUROSURGERY: ("S06.0", "I61.9"),
    D.UROLOGY: ("N20.0", "N39.0"),
}


@dataclass(frozen=True)
class _Op:
    code: str
    name: str
    discipline: str
    level: int
    category: str
    mi: bool
    weight: float
    diagnosis: str
    who: str = "a"  # a: adult, f: woman, p: woman of child-bearing age, m: man, x: anyone
    robot: bool = False


_S, _I, _DX, _TX = "surgery", "interventional", "diagnostic", "therapeutic"

# Main operations of surgical stays (surgery or interventional treatment).
OPERATIONS: tuple[_Op, ...] = (
    _Op("51.2300", "腹腔镜下胆囊切除术", D.GENERAL_SURGERY, 3, _S, True, 8, "K80.2"),
    _Op("47.0100", "腹腔镜下阑尾切除术", D.GENERAL_SURGERY, 2, _S, True, 5, "K35.8", "x"),
    _Op("47.0900", "阑尾切除术", D.GENERAL_SURGERY, 2, _S, False, 3, "K35.8", "x"),
    _Op("53.0200", "腹股沟斜疝修补术", D.GENERAL_SURGERY, 2, _S, False, 4, "K40.9"),
    _Op("17.1100", "腹腔镜下腹股沟直疝修补术", D.GENERAL_SURGERY, 3, _S, True, 2, "K40.9"),
    _Op("06.3900", "甲状腺部分切除术", D.GENERAL_SURGERY, 3, _S, False, 3, "E04.1"),
    _Op("85.2100", "乳腺病损局部切除术", D.GENERAL_SURGERY, 1, _S, False, 3, "D24", "f"),
    _Op("86.0400", "皮肤和皮下组织切开引流术", D.GENERAL_SURGERY, 1, _S, False, 3, "L02.9", "x"),
    _Op("17.3300", "腹腔镜下右半结肠切除术", D.GASTROINTESTINAL_SURGERY, 4, _S, True, 3, "C18.9", robot=True),
    _Op("48.6300", "直肠前切除术", D.GASTROINTESTINAL_SURGERY, 4, _S, False, 2, "C20"),
    _Op("43.7x00", "胃部分切除术伴空肠吻合术", D.GASTROINTESTINAL_SURGERY, 4, _S, False, 2, "C16.9"),
    _Op("50.2200", "肝部分切除术", D.HEPATOBILIARY_SURGERY, 4, _S, False, 2, "C22.0"),
    _Op("51.2200", "胆囊切除术", D.HEPATOBILIARY_SURGERY, 2, _S, False, 3, "K80.2"),
    _Op("52.7x00", "胰十二指肠切除术", D.HEPATOBILIARY_SURGERY, 4, _S, False, 1, "C25.0"),
    _Op("51.8800", "内镜下胆管取石术", D.HEPATOBILIARY_SURGERY, 3, _I, True, 3, "K80.5"),
    _Op("81.5400", "全膝关节置换术", D.ORTHOPEDICS, 4, _S, False, 4, "M17.9"),
    _Op("81.5100", "全髋关节置换术", D.ORTHOPEDICS, 4, _S, False, 3, "M16.9", robot=True),
    _Op("79.3500", "股骨骨折切开复位内固定术", D.ORTHOPEDICS, 3, _S, False, 5, "S72.0"),
    _Op("80.6x00", "关节镜下膝关节半月板切除术", D.ORTHOPEDICS, 3, _S, True, 3, "S83.2"),
    _Op("81.0800", "腰椎椎体间融合术", D.ORTHOPEDICS, 4, _S, False, 2, "M51.2"),
    _Op("78.6700", "胫腓骨内固定装置去除术", D.ORTHOPEDICS, 2, _S, False, 4, "Z47.0", "x"),
    _Op("79.3600", "胫骨骨折切开复位内固定术", D.ORTHOPEDICS, 3, _S, False, 3, "S82.2"),
    _Op("01.2400", "开颅术", D.NEUROSURGERY, 4, _S, False, 2, "I61.9"),
    _Op("01.5900", "脑病损切除术", D.NEUROSURGERY, 4, _S, False, 2, "D32.0"),
    _Op("01.3900", "神经内镜下脑内血肿清除术", D.NEUROSURGERY, 4, _S, True, 2, "I61.9"),
    _Op("02.3400", "脑室腹腔分流术", D.NEUROSURGERY, 3, _S, False, 1, "G91.9"),
    _Op("39.7400", "血管内脑动脉取栓术", D.NEUROSURGERY, 4, _I, True, 2, "I63.9"),
    _Op("39.7200", "血管内头颈部血管栓塞术", D.NEUROSURGERY, 4, _I, True, 1, "I67.1"),
    _Op("00.6600", "经皮冠状动脉腔内成形术", D.CARDIOLOGY, 4, _I, True, 6, "I21.9"),
    _Op("37.3400", "心导管射频消融术", D.CARDIOLOGY, 4, _I, True, 2, "I48.9"),
    _Op("37.8000", "永久起搏器置入术", D.CARDIOLOGY, 3, _I, True, 2, "I44.2"),
    _Op("60.5x00", "根治性前列腺切除术", D.UROLOGY, 4, _S, True, 2, "C61", "m", robot=True),
    _Op("55.5100", "腹腔镜下根治性肾切除术", D.UROLOGY, 4, _S, True, 1, "C64", robot=True),
    _Op("56.0x00", "输尿管镜下取石术", D.UROLOGY, 3, _S, True, 4, "N20.1"),
    _Op("60.2900", "经尿道前列腺电切术", D.UROLOGY, 3, _S, True, 3, "N40", "m"),
    _Op("57.4900", "经尿道膀胱病损切除术", D.UROLOGY, 3, _S, True, 2, "C67.9"),
    _Op("59.8x00", "输尿管支架置入术", D.UROLOGY, 2, _S, True, 2, "N13.2"),
    _Op("32.4100", "胸腔镜下肺叶切除术", D.THORACIC_SURGERY, 4, _S, True, 3, "C34.1", robot=True),
    _Op("34.0400", "胸腔闭式引流术", D.THORACIC_SURGERY, 1, _S, False, 2, "J93.1"),
    _Op("36.1200", "冠状动脉旁路移植术", D.CARDIAC_SURGERY, 4, _S, False, 2, "I25.1"),
    _Op("35.2200", "主动脉瓣置换术", D.CARDIAC_SURGERY, 4, _S, False, 1, "I35.0"),
    _Op("74.1x00", "子宫下段剖宫产术", D.OBSTETRICS_GYNECOLOGY, 2, _S, False, 8, "O82.0", "p"),
    _Op("68.4100", "腹腔镜下全子宫切除术", D.OBSTETRICS_GYNECOLOGY, 3, _S, True, 3, "D25.9", "f"),
    _Op("65.2500", "腹腔镜下卵巢病损切除术", D.OBSTETRICS_GYNECOLOGY, 3, _S, True, 3, "N83.2", "f"),
    _Op("69.0900", "刮宫术", D.OBSTETRICS_GYNECOLOGY, 1, _S, False, 3, "N92.0", "f"),
    _Op("28.2x00", "扁桃体切除术", D.ENT, 2, _S, False, 3, "J35.0", "x"),
    _Op("22.6300", "鼻内镜下筛窦切除术", D.ENT, 3, _S, True, 2, "J32.9"),
    _Op("13.4100", "白内障超声乳化抽吸术", D.OPHTHALMOLOGY, 3, _S, False, 5, "H25.9"),
    _Op("14.7400", "玻璃体切除术", D.OPHTHALMOLOGY, 4, _S, False, 1, "H33.0"),
    _Op("23.1900", "阻生牙拔除术", D.STOMATOLOGY, 1, _S, False, 3, "K01.1"),
    _Op("76.2x00", "面骨病损切除术", D.STOMATOLOGY, 3, _S, False, 1, "D16.5"),
    _Op("45.4200", "内镜下结肠息肉切除术", D.GASTROENTEROLOGY, 2, _I, True, 5, "K63.5"),
    _Op("45.4300", "内镜黏膜下剥离术", D.GASTROENTEROLOGY, 4, _I, True, 1, "D12.6"),
    _Op("39.2700", "动静脉造瘘术", D.NEPHROLOGY, 2, _S, False, 2, "N18.5"),
    _Op("31.1x00", "气管切开术", D.CRITICAL_CARE, 2, _S, False, 1, "J96.0", "x"),
)
# Diagnostic and therapeutic procedures (levels 1-2, never minimally invasive): the further
# procedures of surgical stays and the only ones of some medical stays.
PROCEDURES: tuple[_Op, ...] = (
    _Op("99.0400", "红细胞输注", "", 1, _TX, False, 4, ""),
    _Op("96.7100", "持续性有创机械通气小于96小时", "", 2, _TX, False, 1, ""),
    _Op("45.2300", "结肠镜检查", "", 1, _DX, False, 3, ""),
    _Op("44.1300", "胃镜检查", "", 1, _DX, False, 4, ""),
    _Op("33.2200", "纤维支气管镜检查", "", 1, _DX, False, 2, ""),
    _Op("03.3100", "腰椎穿刺术", "", 1, _DX, False, 2, ""),
    _Op("38.9300", "中心静脉置管术", "", 1, _TX, False, 3, ""),
    _Op("88.5700", "冠状动脉造影", "", 2, _DX, False, 2, ""),
    _Op("99.2500", "化学治疗药物注射", "", 1, _TX, False, 3, ""),
    _Op("39.9500", "血液透析", "", 1, _TX, False, 2, ""),
    _Op("99.1000", "静脉溶栓治疗", "", 2, _TX, False, 1, ""),
)

# ----------------------------------------------------------------------------------------
# Generation. Rows carry small integers (institution, residence, department, operation) that
# index vocabularies; strings are made once per column at the end with ``take``.

INSTITUTIONS = tuple(sorted(INSTITUTION_REGIONS))
_INST = {code: i for i, code in enumerate(INSTITUTIONS)}
NON_CLINICAL = {D.RADIOLOGY, D.PATHOLOGY, D.LABORATORY}
ORIGINS = ("same_county", "same_city", "same_province", "other_province", "unknown")


def origin_code(residence: str, institution_region: str) -> str:
    """The contract's origin: the residence relative to the treating institution's region."""
    if not residence:
        return "unknown"
    if residence == institution_region:
        return "same_county"
    if residence[:4] == institution_region[:4]:
        return "same_city"
    if residence[:2] == institution_region[:2]:
        return "same_province"
    return "other_province"


@dataclass
class _Flows:
    """Rows to generate, as counts: (year index, institution, residence code or "" when unknown)."""

    year: list[int]
    institution: list[int]
    residence: list[str]
    count: list[int]

    def add(self, year: int, institution: str, residence: str, count: int) -> None:
        if count > 0:
            self.year.append(year)
            self.institution.append(_INST[institution])
            self.residence.append(residence)
            self.count.append(count)


def _spread(rng: np.random.Generator, weights: Weights, total: int) -> list[tuple[str, int]]:
    """``total`` split over the weighted places, exactly (a multinomial draw)."""
    codes = list(weights)
    p = np.array([weights[c] for c in codes], dtype=float)
    counts = rng.multinomial(total, p / p.sum())
    return [(c, int(n)) for c, n in zip(codes, counts, strict=True)]


def _flows(rng: np.random.Generator, multiplier: int, *, inpatient: bool) -> _Flows:
    """Visits (or discharges) by year, institution and residence."""
    flows = _Flows([], [], [], [])
    ratio = INPATIENT_PER_VISIT if inpatient else 1.0
    lag = INPATIENT_IN_COUNTY_LAG if inpatient else 0.0
    bijie = BIJIE_DISCHARGES if inpatient else BIJIE_VISITS
    for y in range(3):
        growth = 1.0 + 0.02 * y
        for county in QUZHOU_COUNTIES:
            total = round(county.visits * growth * ratio) * multiplier
            inside = round(total * (county.in_county[y] - lag))
            hospitals = {c: w for c, w in county.inside.items() if not (inpatient and c in PRIMARY_CARE)}
            for code, n in _spread(rng, hospitals, inside):
                flows.add(y, code, county.code, n)
            for code, n in _spread(rng, county.outside, total - inside):
                flows.add(y, code, county.code, n)
        for code, sources in OTHER_VISITS.items():
            for weights, n in sources:
                for residence, count in _spread(rng, weights, round(n * growth * ratio) * multiplier):
                    flows.add(y, code, residence, count)
        # The Bijie centre: exact counts by origin group.
        flows.add(y, BIJIE, "520502", bijie["same_county"][y] * multiplier)
        for group, weights in (
            ("same_city", BIJIE_COUNTIES),
            ("same_province", GUIZHOU_OTHER),
            ("other_province", BEYOND_GUIZHOU),
        ):
            for residence, count in _spread(rng, weights, bijie[group][y] * multiplier):
                flows.add(y, BIJIE, residence, count)
    # A few rows per institution and year without a residence (origin "unknown"); none at the
    # Bijie centre, whose origin mix is the story.
    totals: dict[tuple[int, int], int] = {}
    for y, i, n in zip(flows.year, flows.institution, flows.count, strict=True):
        totals[(y, i)] = totals.get((y, i), 0) + n
    for (y, i), n in sorted(totals.items()):
        if INSTITUTIONS[i] != BIJIE:
            flows.add(y, INSTITUTIONS[i], "", round(n * UNKNOWN_RESIDENCE_SHARE))
    return flows


@dataclass
class _Rows:
    """One row per counted visit or stay."""

    year: IntArray
    institution: IntArray
    residence: IntArray  # index into ``residences``
    residences: list[str]
    origin: IntArray  # index into ORIGINS

    @property
    def n(self) -> int:
        return len(self.year)


def _expand(flows: _Flows) -> _Rows:
    residences = sorted(set(flows.residence))
    res_index = {r: i for i, r in enumerate(residences)}
    counts = np.array(flows.count, dtype=np.int64)
    flow_origin = [
        ORIGINS.index(origin_code(r, INSTITUTION_REGIONS[INSTITUTIONS[i]]))
        for r, i in zip(flows.residence, flows.institution, strict=True)
    ]
    return _Rows(
        year=np.repeat(np.array(flows.year, dtype=np.int64), counts),
        institution=np.repeat(np.array(flows.institution, dtype=np.int64), counts),
        residence=np.repeat(np.array([res_index[r] for r in flows.residence], dtype=np.int64), counts),
        residences=residences,
        origin=np.repeat(np.array(flow_origin, dtype=np.int64), counts),
    )


# Patient segments: children (0-13), women, men, and women of child-bearing age (20-42).
CHILD, WOMAN, MAN, MOTHER = 0, 1, 2, 3
SEGMENTS = 4
SEGMENT_SHARE = (0.15, 0.33, 0.42, 0.10)


@dataclass
class _Patients:
    """The round's synthetic patients, in blocks by residence, then segment (child, woman, man)."""

    keys: pa.Array  # pseudonyms
    birth_year: IntArray
    female: BoolArray
    first: IntArray  # [residence * SEGMENTS + segment] -> first index of the block
    size: IntArray  # [residence * SEGMENTS + segment] -> size of the block


def _patients(rng: np.random.Generator, rows: _Rows, base_year: int, round_no: int) -> _Patients:
    from yilian.activity.pseudonyms import pseudonymise

    per_residence = np.bincount(rows.residence, minlength=len(rows.residences))
    pool = np.maximum(60, per_residence // 3)
    size = np.maximum(20, np.round(pool[:, None] * np.array(SEGMENT_SHARE)[None, :]).astype(np.int64)).reshape(-1)
    first = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    total = int(size.sum())
    block = np.repeat(np.arange(len(size)), size)
    segment = block % SEGMENTS
    residence = block // SEGMENTS
    # Ages at the baseline year: children 0-13; adults 18-95, older patients more often.
    adult_age = 18 + np.floor(77 * rng.beta(2.2, 1.9, total)).astype(np.int64)
    age = np.where(segment == CHILD, rng.integers(0, 14, total), adult_age)
    age = np.where(segment == MOTHER, rng.integers(20, 43, total), age)
    female = (segment == WOMAN) | (segment == MOTHER) | ((segment == CHILD) & (rng.random(total) < 0.47))
    # A patient number as a hospital system would export it (synthetic; only its pseudonym is kept).
    places = pa.array([r or "000000" for r in rows.residences], pa.string()).take(pa.array(residence))
    serial = pc.utf8_lpad(pa.array(np.arange(total, dtype=np.int64)).cast(pa.string()), 8, "0")
    numbers = pc.binary_join_element_wise("P", places, f"{round_no:03d}", serial, "")
    return _Patients(pseudonymise(numbers), base_year - age, female, first, size)


def _pick_patients(rng: np.random.Generator, patients: _Patients, residence: IntArray, segment: IntArray) -> IntArray:
    """A patient of the row's residence and segment; a few patients come often, most rarely."""
    block = residence * SEGMENTS + segment
    offset: IntArray = np.floor(patients.size[block] * rng.random(len(block)) ** 1.6).astype(np.int64)
    picked: IntArray = patients.first[block] + offset
    return picked


def _dates(rng: np.random.Generator, years: Sequence[int], year_index: IntArray, weekend: float) -> IntArray:
    """A day (days since 1970-01-01) in the row's year: weekdays busier than weekends, winter a
    little busier, and volumes growing a little within the year."""
    out = np.empty(len(year_index), dtype=np.int64)
    for y, year in enumerate(years):
        mask = year_index == y
        first = (dt.date(year, 1, 1) - dt.date(1970, 1, 1)).days
        days = np.arange(first, (dt.date(year + 1, 1, 1) - dt.date(1970, 1, 1)).days)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        t = (days - first) / len(days)
        w = np.where(weekday >= 5, weekend, 1.0) * (1 + 0.12 * np.cos(2 * np.pi * t)) * (1 + 0.15 * t)
        out[mask] = rng.choice(days, size=int(mask.sum()), p=w / w.sum())
    return out


def _ids(prefix: str, year: IntArray, years: Sequence[int], round_no: int, serial: IntArray) -> pa.Array:
    """Record numbers such as ``MZ2024-003-00012345`` (dataset prefix, year, round, serial)."""
    year_s = pa.array(np.asarray(years, dtype=np.int64)[year]).cast(pa.string())
    serial_s = pc.utf8_lpad(pa.array(serial).cast(pa.string()), 8, "0")
    return pc.binary_join_element_wise(
        pc.binary_join_element_wise(prefix, year_s, ""), f"{round_no:03d}", serial_s, "-"
    )


def _serials(rng: np.random.Generator, rows: _Rows) -> IntArray:
    """Record serials numbered within each institution and year, in a shuffled order."""
    order = np.lexsort((rng.random(rows.n), rows.year, rows.institution))
    serial = np.empty(rows.n, dtype=np.int64)
    group = rows.institution[order] * 10 + rows.year[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    serial[order] = np.arange(rows.n) - np.repeat(starts, np.diff(np.r_[starts, rows.n])) + 1
    return serial


@dataclass(frozen=True)
class _Departments:
    """Every demo institution's clinical departments as one vocabulary."""

    name: tuple[str, ...]
    discipline: tuple[str, ...]
    institution: tuple[int, ...]

    def of(self, institution: int) -> list[int]:
        return [i for i, inst in enumerate(self.institution) if inst == institution]


def _departments() -> _Departments:
    from yilian.demo.seed import DEPARTMENTS

    names, disciplines, institutions = [], [], []
    for code in INSTITUTIONS:
        for d in DEPARTMENTS[code]:
            if d.discipline == D.MANAGEMENT or d.discipline in NON_CLINICAL:
                continue
            names.append(d.name_zh)
            disciplines.append(str(d.discipline))
            institutions.append(_INST[code])
    return _Departments(tuple(names), tuple(disciplines), tuple(institutions))


def _department_by_segment(
    rng: np.random.Generator, rows: _Rows, segment: IntArray, depts: _Departments, weights: dict[str, float]
) -> IntArray:
    """A department of the row's institution that fits the patient's segment (index into depts)."""
    out = np.zeros(rows.n, dtype=np.int64)
    for i in np.unique(rows.institution):
        own = depts.of(int(i))
        for seg in range(SEGMENTS):
            mask = (rows.institution == i) & (segment == seg)
            n = int(mask.sum())
            if n == 0:
                continue
            w = []
            for d in own:
                disc = depts.discipline[d]
                base = weights.get(disc, 0.0)
                if seg == CHILD:
                    base = 0.0 if disc in FEMALE_ONLY else base * 8 if disc in CHILD_ONLY else base * 0.3
                elif disc in CHILD_ONLY or (seg == MAN and disc in FEMALE_ONLY):
                    base = 0.0
                elif seg == MOTHER and disc in FEMALE_ONLY:
                    base *= 6
                w.append(base)
            if sum(w) == 0:  # nothing fits (a children's clinic at a stomatology hospital): any department
                w = [0.0 if depts.discipline[d] == D.EMERGENCY else 1.0 for d in own]
            p = np.array(w) / sum(w)
            out[mask] = np.array(own, dtype=np.int64)[rng.choice(len(own), size=n, p=p)]
    return out


def _segments(rng: np.random.Generator, rows: _Rows) -> IntArray:
    seg = rng.choice(SEGMENTS, size=rows.n, p=np.array(SEGMENT_SHARE)).astype(np.int64)
    women_and_children = np.isin(rows.institution, [_INST["zjuwc"], _INST["qzmch"]])
    seg[women_and_children & (seg == MAN)] = WOMAN
    return seg


def _per_institution(values: dict[str, float]) -> npt.NDArray[np.float64]:
    return np.array([values[code] for code in INSTITUTIONS], dtype=float)


def _strings(vocabulary: Sequence[str | None], index: IntArray) -> pa.Array:
    return pa.array(list(vocabulary), pa.string()).take(pa.array(index))


def _days(days: IntArray) -> pa.Array:
    return pa.array(days.astype(np.int32)).cast(pa.date32())


def _common(rows: _Rows, patients: _Patients, patient: IntArray, years: Sequence[int]) -> dict[str, pa.Array]:
    age = np.asarray(years, dtype=np.int64)[rows.year] - patients.birth_year[patient]
    return {
        "institution_code": _strings(INSTITUTIONS, rows.institution),
        "patient_key": patients.keys.take(pa.array(patient)),
        "sex": _strings(("male", "female"), patients.female[patient].astype(np.int64)),
        "age": pa.array(np.clip(age, 0, 120).astype(np.int16)),
        "residence_region": _strings([r or None for r in rows.residences], rows.residence),
        "origin": _strings(ORIGINS, rows.origin),
    }


def _staff(rng: np.random.Generator, n: int) -> pa.Array:
    """A staff number such as ``D0123`` (doctors and surgeons)."""
    return pc.binary_join_element_wise(
        "D", pc.utf8_lpad(pa.array(rng.integers(1, 400, n)).cast(pa.string()), 4, "0"), ""
    )


def generate_visits(*, seed: int, round_no: int, years: Sequence[int], multiplier: int = 1) -> pa.Table:
    """All visits of one round over the three years, in the fact schema (without ``batch_seq``)."""
    rng = np.random.default_rng([seed, round_no, multiplier, 1])
    depts = _departments()
    rows = _expand(_flows(rng, multiplier, inpatient=False))
    n = rows.n
    patients = _patients(rng, rows, years[0], round_no)
    segment = _segments(rng, rows)
    patient = _pick_patients(rng, patients, rows.residence, segment)
    department = _department_by_segment(rng, rows, segment, depts, VISIT_WEIGHT)

    emergency_dept = np.array(
        [next((d for d in depts.of(i) if depts.discipline[d] == D.EMERGENCY), -1) for i in range(len(INSTITUTIONS))]
    )
    share = _per_institution({c: PROFILES[c].emergency for c in INSTITUTIONS})
    emergency = (rng.random(n) < share[rows.institution]) & (emergency_dept[rows.institution] >= 0)
    department = np.where(emergency, emergency_dept[rows.institution], department)
    tele = np.array([[PROFILES[c].tele[y] for y in range(3)] for c in INSTITUTIONS])[rows.institution, rows.year]
    draw = rng.random(n)
    visit_type = np.where(draw < tele, 2, np.where(draw < tele + 0.5, 0, 1))  # first, follow_up, tele
    visit_type = np.where(emergency, np.where(rng.random(n) < 0.85, 0, 1), visit_type)
    table = pa.table(
        {
            **_common(rows, patients, patient, years),
            "visit_id": _ids("MZ", rows.year, years, round_no, _serials(rng, rows)),
            "department": _strings(depts.name, department),
            "visit_date": _days(_dates(rng, years, rows.year, weekend=0.45)),
            "setting": _strings(("outpatient", "emergency"), emergency.astype(np.int64)),
            "visit_type": _strings(("first", "follow_up", "tele"), visit_type),
            "doctor": _staff(rng, n),
        }
    )
    return _sorted(table.select(fact_schema(Kind.VISITS, with_batch_seq=False).names), Kind.VISITS)


def _sorted(table: pa.Table, kind: Kind) -> pa.Table:
    date_column = "visit_date" if kind == Kind.VISITS else "discharge_date"
    table = complete(kind, table)
    return table.sort_by([("institution_code", "ascending"), (date_column, "ascending")])


_OPS = (*OPERATIONS, *PROCEDURES)
OP_DISCIPLINE = np.array([o.discipline for o in _OPS], dtype=object)
OP_LEVEL = np.array([o.level for o in _OPS], dtype=np.int64)
OP_MI = np.array([o.mi for o in _OPS])
OP_ROBOT = np.array([o.robot for o in _OPS])
OP_WEIGHT = np.array([o.weight for o in _OPS], dtype=float)
OP_WHO = np.array([o.who for o in _OPS], dtype=object)


def generate_inpatient(
    *, seed: int, round_no: int, years: Sequence[int], multiplier: int = 1
) -> tuple[pa.Table, pa.Table]:
    """All discharges of one round over the three years and their operations, in the fact schemas
    (without ``batch_seq``)."""
    rng = np.random.default_rng([seed, round_no, multiplier, 2])
    depts = _departments()
    rows = _expand(_flows(rng, multiplier, inpatient=True))
    n = rows.n
    patients = _patients(rng, rows, years[0], round_no)
    discharge = _dates(rng, years, rows.year, weekend=0.7)

    # Which stays have surgery, and of which kind (level 3/4? minimally invasive? robot?).
    surgical = np.zeros(n, dtype=bool)
    level34 = np.zeros(n, dtype=bool)
    mi = np.zeros(n, dtype=bool)
    robot = np.zeros(n, dtype=bool)
    for i in np.unique(rows.institution):
        code = INSTITUTIONS[int(i)]
        profile = PROFILES[code]
        for y in range(3):
            idx = np.flatnonzero((rows.institution == i) & (rows.year == y))
            if code == BIJIE:
                _allocate_bijie(rng, idx, y, multiplier, discharge, years, surgical, level34, mi, robot)
                continue
            s = idx[rng.random(len(idx)) < profile.surgical]
            surgical[s] = True
            level34[s] = rng.random(len(s)) < profile.level34[y]
            mi[s] = rng.random(len(s)) < profile.minimally_invasive[y]
            robot[s] = level34[s] & mi[s] & (rng.random(len(s)) < profile.robot)

    # The main operation: one the institution's departments do, of the stay's kind.
    main_op = np.full(n, -1, dtype=np.int64)
    surgery = np.arange(len(OPERATIONS))
    for i in np.unique(rows.institution[surgical]):
        offered = surgery[np.isin(OP_DISCIPLINE[surgery], [depts.discipline[d] for d in depts.of(int(i))])]
        here = surgical & (rows.institution == i)
        for want34 in (False, True):
            for want_mi in (False, True):
                for want_robot in (False, True):
                    mask = here & (level34 == want34) & (mi == want_mi) & (robot == want_robot)
                    k = int(mask.sum())
                    if k == 0:
                        continue
                    fits = offered[((OP_LEVEL[offered] >= 3) == want34) & (OP_MI[offered] == want_mi)]
                    if want_robot:
                        fits = fits[OP_ROBOT[fits]]
                    if len(fits) == 0:  # nothing of that kind here: the level decides, the flag follows
                        fits = offered[(OP_LEVEL[offered] >= 3) == want34]
                    if len(fits) == 0:
                        fits = offered
                    main_op[mask] = rng.choice(fits, size=k, p=OP_WEIGHT[fits] / OP_WEIGHT[fits].sum())
    has_main = main_op >= 0
    op = np.maximum(main_op, 0)
    robot &= has_main & OP_ROBOT[op]

    # The patient's segment follows the operation; medical stays pick a department by segment.
    segment = _segments(rng, rows)
    who = np.where(has_main, OP_WHO[op], "")
    segment = np.where(who == "f", np.where(segment == MOTHER, MOTHER, WOMAN), segment)
    segment = np.where(who == "p", MOTHER, segment)
    segment = np.where(who == "m", MAN, segment)
    segment = np.where((who == "a") & (segment == CHILD), np.where(rng.random(n) < 0.5, WOMAN, MAN), segment)
    department = _department_by_segment(rng, rows, segment, depts, STAY_WEIGHT)
    dept_discipline = np.array(depts.discipline, dtype=object)
    dept_institution = np.array(depts.institution, dtype=np.int64)
    for disc in np.unique(OP_DISCIPLINE[op[has_main]]):
        for i in np.unique(rows.institution[has_main & (OP_DISCIPLINE[op] == disc)]):
            sub = np.flatnonzero(has_main & (OP_DISCIPLINE[op] == disc) & (rows.institution == i))
            candidates = np.flatnonzero((dept_discipline == disc) & (dept_institution == i))
            department[sub] = candidates[rng.integers(0, len(candidates), len(sub))]
    diagnosis = np.empty(n, dtype=object)
    diagnosis[has_main] = np.array([o.diagnosis for o in _OPS], dtype=object)[op[has_main]]
    discipline = dept_discipline[department]
    for disc in np.unique(discipline[~has_main]):
        sub = np.flatnonzero(~has_main & (discipline == disc))
        codes = DIAGNOSES.get(str(disc), DIAGNOSES[D.INTERNAL_MEDICINE])
        diagnosis[sub] = np.array(codes, dtype=object)[rng.integers(0, len(codes), len(sub))]
    patient = _pick_patients(rng, patients, rows.residence, segment)

    # Length of stay, cost, discharge mode.
    level = np.where(has_main, OP_LEVEL[op], 0)
    mean_los = np.select([level == 4, level == 3, has_main], [11.0, 8.0, 5.0], 7.0)
    los = np.maximum(1, np.round(rng.lognormal(np.log(mean_los), 0.45))).astype(np.int64)
    daily = _per_institution({c: PROFILES[c].daily_cost for c in INSTITUTIONS})[rows.institution]
    op_cost = np.select([level == 4, level == 3, level == 2, level == 1], [38_000.0, 16_000.0, 6_000.0, 2_000.0], 0.0)
    cost = np.round((daily * los + op_cost * np.where(has_main & OP_MI[op], 1.15, 1.0)) * rng.lognormal(0, 0.25, n), 2)
    modes = np.array([90, 2, 1.5, 5, 0.8, 0.7])
    outcome = rng.choice(6, size=n, p=modes / modes.sum())

    record_id = _ids("ZY", rows.year, years, round_no, _serials(rng, rows))
    discharges = pa.table(
        {
            **_common(rows, patients, patient, years),
            "record_id": record_id,
            "department": _strings(depts.name, department),
            "admission_date": _days(discharge - los),
            "discharge_date": _days(discharge),
            "principal_diagnosis": pa.array(diagnosis, pa.string()),
            "discharge_outcome": _strings(("1", "2", "3", "4", "5", "9"), outcome),
            "length_of_stay": pa.array(los.astype(np.int32)),
            "total_cost": pa.array(cost),
        }
    )
    stays = _Stays(rows.institution, department, record_id, discharge, los, main_op, robot)
    operations = _operations(rng, stays, depts)
    return (
        _sorted(discharges, Kind.DISCHARGES),
        _sorted(operations, Kind.OPERATIONS),
    )


def _allocate_bijie(
    rng: np.random.Generator,
    idx: IntArray,
    y: int,
    multiplier: int,
    discharge: IntArray,
    years: Sequence[int],
    surgical: BoolArray,
    level34: BoolArray,
    mi: BoolArray,
    robot: BoolArray,
) -> None:
    """Exactly the story's numbers of surgical, level-3/4, minimally invasive and robot stays."""
    s = rng.permutation(idx)[: BIJIE_SURGICAL_STAYS[y] * multiplier]
    surgical[s] = True
    level34[rng.permutation(s)[: BIJIE_LEVEL34_STAYS[y] * multiplier]] = True
    mi[rng.permutation(s)[: BIJIE_MINIMALLY_INVASIVE_STAYS[y] * multiplier]] = True
    # The robot arrived with the co-building: from July of the baseline year.
    since = (dt.date(years[0], 7, 1) - dt.date(1970, 1, 1)).days
    eligible = s[level34[s] & mi[s] & (discharge[s] >= since)]
    robot[rng.permutation(eligible)[: BIJIE_ROBOT_STAYS[y] * multiplier]] = True


@dataclass
class _Stays:
    institution: IntArray
    department: IntArray
    record_id: pa.Array
    discharge: IntArray
    los: IntArray
    main_op: IntArray  # -1: no surgery
    robot: BoolArray


def _operations(rng: np.random.Generator, stays: _Stays, depts: _Departments) -> pa.Table:
    """Operation rows: the main operation of each surgical stay first, then 0-2 procedures; a
    quarter of the medical stays have one procedure."""
    n = len(stays.institution)
    has_main = stays.main_op >= 0
    extra = np.where(has_main, rng.choice(3, size=n, p=[0.6, 0.3, 0.1]), rng.random(n) < 0.25).astype(np.int64)
    per_stay = has_main.astype(np.int64) + extra
    stay = np.repeat(np.arange(n), per_stay)
    m = len(stay)
    first_of_stay = np.concatenate([[0], np.cumsum(per_stay)[:-1]])
    seq = np.arange(m) - np.repeat(first_of_stay, per_stay) + 1
    is_main = has_main[stay] & (seq == 1)
    procedure_weight = OP_WEIGHT[len(OPERATIONS) :]
    procedure = len(OPERATIONS) + rng.choice(len(PROCEDURES), size=m, p=procedure_weight / procedure_weight.sum())
    which = np.where(is_main, stays.main_op[stay], procedure)
    admission = stays.discharge[stay] - stays.los[stay]
    op_day = np.minimum(admission + np.floor(rng.random(m) * stays.los[stay]).astype(np.int64), stays.discharge[stay])
    return pa.table(
        {
            "institution_code": _strings(INSTITUTIONS, stays.institution[stay]),
            "record_id": stays.record_id.take(pa.array(stay)),
            "department": _strings(depts.name, stays.department[stay]),
            "discharge_date": _days(stays.discharge[stay]),
            "operation_date": _days(op_day),
            "operation_seq": pa.array(seq.astype(np.int16)),
            "is_main": pa.array(is_main),
            "operation_code": _strings([o.code for o in _OPS], which),
            "operation_name": _strings([o.name for o in _OPS], which),
            "operation_level": pa.array(OP_LEVEL[which].astype(np.int8)),
            "category": _strings([o.category for o in _OPS], which),
            "minimally_invasive": pa.array(OP_MI[which]),
            "robot_assisted": pa.array(is_main & stays.robot[stay]),
            "operator": _staff(rng, m),
            "operator_role": _strings(("chief", "assistant"), (rng.random(m) >= 0.92).astype(np.int64)),
        }
    )


# ----------------------------------------------------------------------------------------
# Cache and seeding


def _key_fingerprint() -> str:
    """Which pseudonym key the cached ``patient_key`` values were made with (not the key)."""
    from yilian.activity.pseudonyms import pseudonym_key

    return hashlib.sha256(b"demo-cache:" + pseudonym_key()).hexdigest()[:12]


def cache_dir(*, seed: int, round_no: int, years: Sequence[int], multiplier: int = 1) -> Path:
    name = f"v{CACHE_VERSION}-s{seed}-r{round_no}-m{multiplier}-{years[0]}-{years[-1]}-{_key_fingerprint()}"
    return Path(settings.DATA_DIR) / "demo-cache" / name


def round_tables(
    *, seed: int, round_no: int, years: Sequence[int], multiplier: int = 1, kinds: Iterable[Kind] = tuple(Kind)
) -> dict[tuple[Kind, int], pa.Table]:
    """The round's facts by (dataset, year), from the cache when it has them, else generated
    (and cached)."""
    kinds = tuple(Kind(k) for k in kinds)
    folder = cache_dir(seed=seed, round_no=round_no, years=years, multiplier=multiplier)
    wanted = [(k, y) for k in kinds for y in years]
    if all((folder / f"{k.value}-{y}.parquet").exists() for k, y in wanted):
        return {(k, y): pq.read_table(folder / f"{k.value}-{y}.parquet") for k, y in wanted}
    generated: dict[Kind, pa.Table] = {}
    if Kind.VISITS in kinds:
        generated[Kind.VISITS] = generate_visits(seed=seed, round_no=round_no, years=years, multiplier=multiplier)
    if Kind.DISCHARGES in kinds or Kind.OPERATIONS in kinds:
        discharges, operations = generate_inpatient(seed=seed, round_no=round_no, years=years, multiplier=multiplier)
        generated[Kind.DISCHARGES] = discharges
        generated[Kind.OPERATIONS] = operations
    out: dict[tuple[Kind, int], pa.Table] = {}
    for kind, y in wanted:
        table = generated[kind]
        date_column = "visit_date" if kind == Kind.VISITS else "discharge_date"
        day = pc.year(table[date_column])
        out[(kind, y)] = table.filter(pc.equal(day, y))
    # Each file is written under a private name and renamed into place, so a reader (or another
    # process seeding at the same time) never sees half a file.
    folder.mkdir(parents=True, exist_ok=True)
    for (kind, y), table in out.items():
        final = folder / f"{kind.value}-{y}.parquet"
        temporary = folder / f".{final.name}.{os.getpid()}.tmp"
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, final)
    return out


def batch_filename(*, seed: int, round_no: int, kind: Kind, year: int) -> str:
    return f"{BATCH_PREFIX}-s{seed}-r{round_no}-{Kind(kind).value}-{year}.parquet"


@dataclass(frozen=True)
class ActivityReport:
    batches: int = 0
    rows: int = 0


def register_residence_regions() -> int:
    """The residence regions the generator uses beyond the registry's own (other cities and
    provinces patients come from), so that charts name them instead of showing codes. Returns how
    many were added."""
    from yilian.registry import services
    from yilian.registry.models import Region, RegionLevel

    levels = {"province": 0, "city": 1, "county": 2}
    known = {r.code: r for r in Region.objects.all()}
    added = 0
    for code, name_zh, name_en, level, parent in sorted(RESIDENCE_REGIONS, key=lambda r: (levels[r[3]], r[0])):
        if code in known:
            continue
        known[code] = services.region_create(  # audited, like every region of the registry
            actor=None, code=code, name_zh=name_zh, name_en=name_en, level=RegionLevel(level), parent=known.get(parent)
        )
        added += 1
    return added


def seed_activity(*, seed: int = 2018, scale: int = 1, today: dt.date | None = None) -> ActivityReport:
    """Land whatever of the demo activity is missing: for each round 0 .. scale-1, one batch per
    dataset and year (nine a round), through ``batch_land_table`` (which audits each batch)."""
    from yilian.activity.models import BatchStatus, ImportBatch
    from yilian.activity.services import batch_land_table

    if scale < 1:
        raise ValueError("scale must be at least 1")
    register_residence_regions()
    years = demo_years(today)
    present = set(
        ImportBatch.objects.filter(
            filename__startswith=f"{BATCH_PREFIX}-s{seed}-",
            status__in=[BatchStatus.LANDED, BatchStatus.WITHDRAWN, BatchStatus.PROCESSING],
        ).values_list("filename", flat=True)
    )
    batches = rows = 0
    for round_no in range(scale):
        names = {
            (kind, year): batch_filename(seed=seed, round_no=round_no, kind=kind, year=year)
            for kind in Kind
            for year in years
        }
        if all(name in present for name in names.values()):
            continue
        tables = round_tables(seed=seed, round_no=round_no, years=years)
        for (kind, year), name in names.items():
            if name in present:
                continue
            batch_land_table(
                user=None,
                kind=kind,
                table=tables[(kind, year)],
                filename=name,
                note=f"Synthetic demo activity (seed {seed}, round {round_no})",
            )
            batches += 1
            rows += tables[(kind, year)].num_rows
    return ActivityReport(batches=batches, rows=rows)
