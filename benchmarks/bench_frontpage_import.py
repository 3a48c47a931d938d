"""Inpatient front-page import: a year of a tertiary hospital's stays (100,000 rows, 800 columns, GB18030).

Target (issue: front-page import): "A real tertiary hospital's year is about 100,000 stays with about 800
columns. Benchmark: a 100,000-row, 800-column GB18030 CSV of that shape imports in under 30 s with peak
memory under 2 GB on this machine (vectorised, no per-row Python loop), reported with rows/s."

The file has the headers of the 2019 national interface (every field of
``yilian/activity/reference/frontpage-2019-fields.tsv``, the NN groups expanded to 01..40 and
interleaved per diagnosis and per operation as exports write them: 642 columns) and hospital-specific
columns after them (operation start and end times and sites for the 41 operation groups, insurance,
DRG and staff-number columns) up to 800. One hospital's year (Quzhou People's Hospital, named by the
organisation code the demo registry gives it), made by numpy and Arrow with a fixed seed:

- stays: 病案号 + 住院次数 unique (about a fifth of the patients come back), discharges over the last
  365 days, admission 0-60 days before with 实际住院天数 consistent, ages from the 18-character ID
  number's birth date (sex from its 17th digit, a valid check character; 3 % without an ID number),
  Chinese names, current addresses from a handful of real counties (Quzhou's six, 七星关 in Bijie,
  玉山 in Jiangxi, Hangzhou's 上城): 60 % with the province, 25 % from the city, 10 % from the county,
  5 % empty with the postcode alone; 诊疗科目 department codes (RC023), ICD-10 principal diagnoses and
  0-15 other diagnoses, discharge modes 1-5/9, costs with their breakdown;
- operations: 40 % of the stays have 1-5, 0.5 % have 6-40 and 50 stays have 41 (the main one and the
  40 others), with national clinical-version codes (01.2401, 36.0601, 81.0700x001…), levels 1-4,
  RC014 incision and healing codes, dates within the stay, operators and anaesthesia;
- many columns empty, as in real exports (newborn weights, coma times, pathology, most of the
  other-diagnosis and operation groups).

The file is written once per parameter set (and month) and kept (``--files-dir``, default
``$TMPDIR/yilian-bench-frontpage``), so a rerun skips the generation.

The import runs in a fresh process (Django set up, the demo consortium seeded beforehand in a fresh
SQLite data directory) as the system administrator through the public service
``yilian.activity.services.batch_import`` with ``kind=frontpages`` (detect the encoding and hash the
file, read the CSV, prepare the stays and the operations, check both, pseudonymise, place the
residence, write the two Parquet datasets, the manifest and the audit row). Reported: seconds and
rows/s of ``batch_import`` alone, where the time went (timers around the stages, installed by this
script), the importing process's peak resident memory (``ru_maxrss``; Python, Django and the
libraries included, their share given as the peak before the import) and what landed.

``--rows`` changes the size (``--quick``: 10,000 rows). Writes benchmarks/results/frontpage_import.json
(``frontpage_import_quick.json`` with ``--quick``) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from _common import machine, peak_rss_mb, run_child

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FIELDS_TSV = ROOT / "yilian" / "activity" / "reference" / "frontpage-2019-fields.tsv"
TARGET_SECONDS = 30.0
TARGET_PEAK_MB = 2048
SEED = 2019
COLUMNS = 800
INSTITUTION = "qzph"
FILE_VERSION = 3  # bump when the generator changes: cached files of other versions are not reused

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
    import django

    django.setup()


# ----------------------------------------------------------------------------------------
# Headers


def interface_headers() -> list[str]:
    """The 2019 interface's headers in the reference file's order, each run of NN fields
    expanded group by group (C06x01C, C07x01N, C08x01C, C06x02C, …)."""
    headers: list[str] = []
    run: list[str] = []

    def flush() -> None:
        for n in range(1, 41):
            headers.extend(code.replace("NN", f"{n:02d}") for code in run)
        run.clear()

    for line in FIELDS_TSV.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("field_code"):
            continue
        code = line.split("\t", 1)[0].strip()
        if "NN" in code:
            run.append(code)
            continue
        flush()
        headers.append(code)
    flush()
    return headers


# Hospital-specific columns after the interface's (names that no dialect of the importer uses).
EXTRA_FEES = [f"D{n}" for n in range(35, 45)]
EXTRA_MISC = [
    "ZYH",  # 住院号
    "BRID",  # 病人ID
    "JZLSH",  # 就诊流水号
    "YBLX",  # 医保类型
    "YBKH",  # 医保卡号
    "RYZDBM",  # 入院诊断编码
    "RYZDMC",  # 入院诊断名称
    "DRGBM",
    "DRGMC",
    "DRGQZ",  # DRG 权重
    "KZRGH",  # 科主任工号
    "ZRYSGH",
    "ZZYSGH",
    "ZYYSGH",
    "ZRHSGH",
    "BMYGH",  # 编码员工号
    "GDRQ",  # 归档日期
    "SYZT",  # 首页状态
    "TJRQ",  # 提交日期
    "TCZF",  # 统筹支付
    "GRZF",  # 个人自付
    "GRZIF",  # 个人自费
    "DBZF",  # 大病支付
    "YLJZ",  # 医疗救助
    "QTZF",  # 其他支付
]


def all_headers(columns: int) -> list[str]:
    headers = interface_headers()
    extra = [f"{stem}{n}" for n in range(1, 42) for stem in ("SSKSSJ", "SSJSSJ", "SSBW")]
    extra += EXTRA_FEES + EXTRA_MISC
    extra += [f"ZDY{n:03d}" for n in range(1, max(0, columns - len(headers) - len(extra)) + 1)]
    headers += extra[: max(0, columns - len(headers))]
    if len(headers) != columns or len(set(headers)) != columns:
        raise SystemExit(f"cannot make {columns} distinct columns (the interface alone has {len(interface_headers())})")
    return headers


# ----------------------------------------------------------------------------------------
# Vocabularies (Chinese text as hospitals write it; codes of the 2019 value sets)

SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红文玉兰萍燕辉鹏飞宇浩然思雨欣怡子涵梓轩嘉琪俊")
DOCTORS = [
    f"{s}{g}" for s, g in zip("王李张刘陈杨黄赵吴周徐孙马朱胡郭", "建国明华志强文涛海峰晓东立新永红", strict=True)
]
NURSES = [f"{s}{g}" for s, g in zip("叶程苏魏吕丁任沈姚卢", "丽娟秀英燕萍玉兰桂芳敏静艳霞红梅", strict=False)]

# Counties the patients live in: province, city, county, region code, postcode, share, towns, roads.
COUNTY_TABLE = """
浙江省 衢州市 柯城区 330802 324000 0.30 荷花街道,府山街道,信安街道,白云街道,石梁镇 荷花中路,县西街,新桥街,衢化路,百汇路
浙江省 衢州市 衢江区 330803 324022 0.14 樟潭街道,廿里镇,高家镇,杜泽镇 振兴东路,东迹大道,龙腾路
浙江省 衢州市 开化县 330824 324300 0.12 华埠镇,芹阳办事处,马金镇,池淮镇,村头镇 新华路,凤凰中路,解放街,城华路
浙江省 衢州市 常山县 330822 324200 0.10 天马街道,球川镇,辉埠镇,紫港街道 定阳北路,文峰西路,人民路
浙江省 衢州市 江山市 330881 324100 0.10 双塔街道,虎山街道,贺村镇,清湖街道 寺后山路,鹿溪南路,中山路
浙江省 衢州市 龙游县 330825 324400 0.08 龙洲街道,湖镇镇,詹家镇 荣昌大道,太平东路
贵州省 毕节市 七星关区 520502 551700 0.06 市东街道,洪山街道,观音桥街道,碧阳街道 威宁路,洪山路,麻园路
江西省 上饶市 玉山县 361123 334700 0.05 冰溪街道,下镇镇,樟村镇 博士大道,城中路
浙江省 杭州市 上城区 330102 310000 0.05 湖滨街道,清波街道,小营街道 解放路,庆春路
"""
COUNTIES = [line.split() for line in COUNTY_TABLE.strip().splitlines()]

# Departments: RC023 code, ward, share of the stays, principal diagnoses, main operations.
DEPARTMENT_TABLE = """
0402 神经外科一病区 0.08 I61.900,S06.500,I67.100,I63.900 01.2401,39.7903,01.3901,96.0401
0301 呼吸内科病区 0.10 J18.900,J44.100,C34.900 33.2200,87.4101,96.0401
0403 骨科一病区 0.10 S72.000,M51.202,S82.200 79.3501,81.5100,81.0700x001
0302 消化内科病区 0.08 K29.700,K92.200,C16.900,K80.100 45.4201,45.1300,44.4300x001
0303 神经内科病区 0.09 I63.900,G45.900,I61.900 88.9101,99.1000x003,39.7401
0304 心血管内科病区 0.10 I21.900,I25.103,I48.x00,I10.x00 36.0601,88.5700,37.3400x001
0401 普外科一病区 0.12 K35.800,K80.100,K40.900,C16.900 47.0100,51.2300,53.0200,43.7x00
0404 泌尿外科病区 0.06 N20.000,N40.x00 55.0400,60.2900x001,59.9500x001
0405 胸外科病区 0.04 C34.900,J93.100 32.2000x003,32.4100,34.0401
0501 妇科病区 0.06 D25.900,N83.200 68.4100x001,65.2501,69.0900
0502 产科病区 0.07 O80.000,O82.000 74.1x00,73.5900,75.6200
07 儿科病区 0.05 J18.900,J06.900,A09.900 99.0401,38.9300
10 眼科病区 0.03 H25.900,H40.900 13.4100,12.6400
11 耳鼻咽喉科病区 0.02 J35.000,J32.900 28.2x00,22.6300x001
"""
DEPARTMENTS = [line.split() for line in DEPARTMENT_TABLE.strip().splitlines()]

DIAGNOSES = {  # ICD-10 (national clinical version 2.0) -> name
    "I63.900": "脑梗死",
    "I61.900": "脑内出血",
    "S06.500": "创伤性硬脑膜下血肿",
    "I67.100": "脑动脉瘤",
    "J18.900": "肺炎",
    "J44.100": "慢性阻塞性肺病伴有急性加重",
    "C34.900": "肺恶性肿瘤",
    "S72.000": "股骨颈骨折",
    "M51.202": "腰椎间盘突出",
    "S82.200": "胫骨干骨折",
    "K29.700": "胃炎",
    "K92.200": "胃肠道出血",
    "C16.900": "胃恶性肿瘤",
    "K80.100": "胆囊结石伴慢性胆囊炎",
    "G45.900": "短暂性脑缺血发作",
    "I21.900": "急性心肌梗死",
    "I25.103": "冠状动脉粥样硬化性心脏病",
    "I48.x00": "心房颤动",
    "I10.x00": "特发性(原发性)高血压",
    "K35.800": "急性阑尾炎",
    "K40.900": "腹股沟疝",
    "N20.000": "肾结石",
    "N40.x00": "前列腺增生",
    "J93.100": "自发性气胸",
    "D25.900": "子宫平滑肌瘤",
    "N83.200": "卵巢囊肿",
    "O80.000": "单胎顺产",
    "O82.000": "经选择性剖宫产术的分娩",
    "J06.900": "急性上呼吸道感染",
    "A09.900": "胃肠炎",
    "H25.900": "老年性白内障",
    "H40.900": "青光眼",
    "J35.000": "慢性扁桃体炎",
    "J32.900": "慢性鼻窦炎",
    "E11.900": "2型糖尿病",
    "E78.500": "高脂血症",
    "N18.900": "慢性肾脏病",
    "D64.900": "贫血",
    "E87.600": "低钾血症",
}
# Other diagnoses: the usual comorbidities, then any diagnosis.
COMORBIDITIES = ["I10.x00", "E11.900", "I25.103", "E78.500", "J44.100", "N18.900", "D64.900", "E87.600", "I48.x00"]

OPERATIONS = {  # national clinical version codes: name, level (RC029), usual incision (RC014)
    "01.2401": ("开颅术", "4", "1"),
    "39.7903": ("颅内动脉瘤血管内栓塞术", "4", "0"),
    "01.3901": ("颅内血肿清除术", "4", "1"),
    "33.2200": ("纤维支气管镜检查", "1", "0"),
    "87.4101": ("胸部CT检查", "1", "0"),
    "79.3501": ("股骨骨折切开复位内固定术", "3", "1"),
    "81.5100": ("全髋关节置换术", "4", "1"),
    "81.0700x001": ("腰椎后路椎间融合术", "4", "1"),
    "45.4201": ("内镜下结肠息肉切除术", "2", "0"),
    "45.1300": ("胃镜检查", "1", "0"),
    "44.4300x001": ("内镜下胃出血止血术", "3", "0"),
    "88.9101": ("头颅磁共振成像", "1", "0"),
    "99.1000x003": ("静脉溶栓治疗", "2", "0"),
    "39.7401": ("颅内动脉取栓术", "4", "0"),
    "36.0601": ("冠状动脉药物洗脱支架置入术", "4", "0"),
    "88.5700": ("冠状动脉造影", "2", "0"),
    "37.3400x001": ("心脏射频消融术", "4", "0"),
    "47.0100": ("腹腔镜下阑尾切除术", "2", "4"),
    "51.2300": ("腹腔镜下胆囊切除术", "3", "4"),
    "53.0200": ("腹股沟斜疝修补术", "2", "1"),
    "43.7x00": ("胃部分切除术伴胃空肠吻合术", "4", "4"),
    "55.0400": ("经皮肾镜取石术", "3", "4"),
    "60.2900x001": ("经尿道前列腺电切术", "3", "0"),
    "59.9500x001": ("输尿管支架置入术", "2", "0"),
    "32.2000x003": ("胸腔镜下肺楔形切除术", "4", "4"),
    "32.4100": ("胸腔镜下肺叶切除术", "4", "4"),
    "34.0401": ("胸腔闭式引流术", "1", "1"),
    "68.4100x001": ("腹腔镜下全子宫切除术", "3", "4"),
    "65.2501": ("腹腔镜下卵巢囊肿剥除术", "3", "4"),
    "69.0900": ("诊断性刮宫术", "1", "0"),
    "74.1x00": ("子宫下段剖宫产术", "3", "4"),
    "73.5900": ("手法助产", "1", "0"),
    "75.6200": ("产科会阴裂伤缝合术", "1", "5"),
    "99.0401": ("输注浓缩红细胞", "1", "0"),
    "38.9300": ("静脉导管插入术", "1", "0"),
    "13.4100": ("白内障超声乳化抽吸术", "3", "1"),
    "12.6400": ("小梁切除术", "3", "1"),
    "28.2x00": ("扁桃体切除术", "2", "5"),
    "22.6300x001": ("鼻内镜下筛窦开放术", "3", "4"),
    "96.0401": ("气管插管", "1", "0"),
}
# Any stay's other operations: the department's and these.
COMMON_OPERATIONS = ["99.0401", "38.9300", "96.0401", "88.9101", "87.4101", "34.0401"]
INCISIONS = ["0", "1", "2", "3", "10", "4", "5", "6", "20", "7", "8", "9", "30"]  # RC014
ANAESTHESIA = ["01", "0101", "02", "03", "0301", "04", "05", "06"]  # 全身, 椎管内, 局部…
SITES = ["头部", "胸部", "腹部", "腰椎", "左下肢", "右下肢", "左眼", "右眼", "盆腔", "咽喉"]


# ----------------------------------------------------------------------------------------
# Generation (vectorised: numpy draws, Arrow string kernels)


def _generate(rows: int, columns: int, org_code: str, hospital: str, today: str) -> Any:
    """The file's table (800 string columns, nulls for empty cells)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(SEED)
    null = pa.scalar(None, pa.string())

    def text(values: Any) -> Any:
        return pa.array(values).cast(pa.string())

    def take(words: list[str], index: IntArray) -> Any:
        return pa.array(words, pa.string()).take(pa.array(index))

    def pick(words: list[str], size: int, p: list[float] | None = None) -> Any:
        weights = None if p is None else np.asarray(p) / np.sum(p)
        return take(words, rng.choice(len(words), size=size, p=weights))

    def join(*parts: Any) -> Any:
        return pc.binary_join_element_wise(*parts, "")

    def zpad(values: IntArray, width: int) -> Any:
        return pc.utf8_lpad(text(values), width, "0")

    def only(values: Any, keep: BoolArray) -> Any:
        return pc.if_else(pa.array(keep), values, null)

    def stamp(seconds: IntArray) -> Any:
        """YYYY-MM-DD HH:MM:SS (a cast: much faster than ``strftime``)."""
        return pa.array(seconds, pa.int64()).cast(pa.timestamp("s")).cast(pa.string())

    def day_text(days: IntArray) -> Any:
        """YYYY-MM-DD."""
        return pa.array(days.astype(np.int32), pa.int32()).cast(pa.date32()).cast(pa.string())

    def money(cents: IntArray) -> Any:
        return join(text(cents // 100), ".", zpad(cents % 100, 2))

    def ymd(days: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        day = days.astype("datetime64[D]")
        year = day.astype("datetime64[Y]").astype(np.int64) + 1970
        month = day.astype("datetime64[M]").astype(np.int64) % 12 + 1
        dom = (day - day.astype("datetime64[M]")).astype(np.int64) + 1
        return year, month, dom

    def person_names(size: int) -> Any:
        two = rng.random(size) < 0.7
        given = join(pick(GIVEN, size), only(pick(GIVEN, size), two))
        return join(pick(SURNAMES, size), pc.fill_null(given, ""))

    def phone(size: int) -> Any:
        return join(pick(["13", "15", "17", "18", "19"], size), zpad(rng.integers(0, 10**9, size), 9))

    n = rows
    data: dict[str, Any] = {}

    # --- patients (a fifth of them come back within the year) -------------------------------
    patients = int(n * 0.8)
    patient = np.concatenate([np.arange(patients), rng.integers(0, patients, n - patients)])
    rng.shuffle(patient)

    # --- dates: discharges over the last 365 days; stays 0-60 days ------------------------------
    today_day = int(np.datetime64(today, "D").astype(np.int64))
    discharge_day = today_day - rng.integers(1, 366, n)
    stay_days = np.minimum(rng.geometric(1 / 8, n) - 1, 60)
    admission_day = discharge_day - stay_days
    admission_s = admission_day * 86400 + rng.integers(7 * 3600, 22 * 3600, n)
    discharge_s = discharge_day * 86400 + rng.integers(8 * 3600, 17 * 3600, n)
    discharge_s = np.maximum(discharge_s, admission_s + 3600)
    # 住院次数: a patient's stays numbered in the order of admission.
    order = np.lexsort((admission_s, patient))
    sorted_patient = patient[order]
    starts = np.flatnonzero(np.r_[True, sorted_patient[1:] != sorted_patient[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    admission_count = np.empty(n, np.int64)
    admission_count[order] = np.arange(n) - run_start + 1

    # --- per patient: birth, ID number, sex, name, address -----------------------------------
    age_years = np.clip(rng.normal(56, 20, patients), 2, 98).astype(np.int64)
    birth_day = today_day - age_years * 365 - rng.integers(0, 365, patients)
    county = rng.choice(len(COUNTIES), size=patients, p=[float(c[5]) for c in COUNTIES])
    prefix = np.array([int(c[3]) for c in COUNTIES], np.int64)[county]
    by, bm, bd = ymd(birth_day)
    serial = rng.integers(0, 1000, patients)
    digits = np.stack(
        [(prefix // 10 ** (5 - i)) % 10 for i in range(6)]
        + [(by // 10 ** (3 - i)) % 10 for i in range(4)]
        + [bm // 10, bm % 10, bd // 10, bd % 10]
        + [serial // 100, (serial // 10) % 10, serial % 10]
    )
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], np.int64)
    check = take(list("10X98765432"), (weights @ digits) % 11)
    id_number = join(text(prefix), text(by), zpad(bm, 2), zpad(bd, 2), zpad(serial, 3), check)
    id_number = only(id_number, rng.random(patients) >= 0.03)
    sex = np.where(serial % 2 == 1, "1", "2")
    name = person_names(patients)
    province = take([c[0] for c in COUNTIES], county)
    city = take([c[1] for c in COUNTIES], county)
    county_name = take([c[2] for c in COUNTIES], county)
    postcode = take([c[4] for c in COUNTIES], county)
    towns = [c[6].split(",") for c in COUNTIES]
    roads = [c[7].split(",") for c in COUNTIES]
    town_of = [rng.integers(0, len(t), patients) for t in towns]
    road_of = [rng.integers(0, len(r), patients) for r in roads]
    town = pc.fill_null(pc.coalesce(*[only(take(t, town_of[i]), county == i) for i, t in enumerate(towns)]), "")
    road = pc.fill_null(pc.coalesce(*[only(take(r, road_of[i]), county == i) for i, r in enumerate(roads)]), "")
    house = join(road, text(rng.integers(1, 300, patients)), "号")
    village = join(
        pick(["金星", "新安", "朝阳", "下山", "上宅", "王家"], patients),
        "村",
        text(rng.integers(1, 12, patients)),
        "组",
    )
    street = pc.if_else(pa.array(rng.random(patients) < 0.35), village, house)
    style = rng.choice(4, size=patients, p=[0.60, 0.25, 0.10, 0.05])
    address = pc.if_else(
        pa.array(style == 0),
        join(province, city, county_name, town, street),
        pc.if_else(
            pa.array(style == 1),
            join(city, county_name, town, street),
            pc.if_else(pa.array(style == 2), join(county_name, town, street), null),
        ),
    )
    birthplace = join(province, city, county_name)
    contact = person_names(patients)
    contact_phone = phone(patients)

    def per_stay(values: Any) -> Any:
        return values.take(pa.array(patient))

    record_no = zpad(600000 + patient, 8)
    admission = admission_s // 86400
    discharge = discharge_s // 86400
    ay, am, ad = ymd(admission)
    pby, pbm, pbd = by[patient], bm[patient], bd[patient]
    age = ay - pby - ((am < pbm) | ((am == pbm) & (ad < pbd))).astype(np.int64)
    age = np.maximum(age, 0)

    department = rng.choice(len(DEPARTMENTS), size=n, p=[float(d[2]) for d in DEPARTMENTS])
    dept_code = take([d[0] for d in DEPARTMENTS], department)
    ward = take([d[1] for d in DEPARTMENTS], department)
    diagnosis_codes = list(DIAGNOSES)
    operation_codes = list(OPERATIONS)

    def by_department(lists: list[list[str]], codes: list[str]) -> IntArray:
        """Per stay, the index (in ``codes``) of a code drawn from its department's list."""
        chosen = np.zeros(n, np.int64)
        for d, listed in enumerate(lists):
            mask = department == d
            index = np.array([codes.index(c) for c in listed], np.int64)
            chosen[mask] = index[rng.integers(0, len(index), int(mask.sum()))]
        return chosen

    diagnosis = by_department([d[3].split(",") for d in DEPARTMENTS], diagnosis_codes)
    diagnosis_names = [DIAGNOSES[c] for c in diagnosis_codes]

    data.update(
        {
            "A01": pa.array([org_code] * n, pa.string()),
            "A02": pa.array([hospital] * n, pa.string()),
            "A48": record_no,
            "A49": text(admission_count),
            "B12": stamp(admission_s),
            "B15": stamp(discharge_s),
            "A46C": pick(["1", "2", "3", "4", "7", "8"], n, [0.35, 0.45, 0.05, 0.05, 0.05, 0.05]),
            "A11": per_stay(name),
            "A12C": per_stay(pa.array(sex)),
            "A13": per_stay(day_text(birth_day)),
            "A14": text(age),
            "A15C": pa.array(["中国"] * n, pa.string()),
            "A21C": pick(["1", "2", "3", "4", "9"], n, [0.2, 0.7, 0.05, 0.04, 0.01]),
            "A38C": pick(["11", "13", "17", "21", "27", "80", "90"], n),
            "A19C": pick(["01", "03", "05", "09"], n, [0.94, 0.02, 0.02, 0.02]),
            "A20": per_stay(id_number),
            "A22": per_stay(birthplace),
            "A23C": per_stay(province),
            "A24": per_stay(address),
            "A25C": per_stay(postcode),
            "A26": per_stay(address),
            "A27": per_stay(phone(patients)),
            "A28C": per_stay(postcode),
            "A29": only(pick(["无", "个体", "衢州市某某公司", "退休"], n), rng.random(n) < 0.6),
            "A32": per_stay(contact),
            "A33C": pick(["1", "2", "3", "4", "9"], n),
            "A34": per_stay(address),
            "A35": per_stay(contact_phone),
            "B11C": pick(["1", "2", "3", "9"], n, [0.55, 0.40, 0.04, 0.01]),
            "B13C": dept_code,
            "B14": ward,
            "B16C": dept_code,
            "B17": ward,
            "B20": text(np.maximum(discharge - admission, 1)),
            "C01C": take(diagnosis_codes, diagnosis),
            "C02N": take(diagnosis_names, diagnosis),
            "C03C": take(diagnosis_codes, diagnosis),
            "C04N": take(diagnosis_names, diagnosis),
            "C05C": pick(["1", "2", "3", "4"], n, [0.85, 0.1, 0.03, 0.02]),
            "C24C": pick(["1", "2"], n, [0.9, 0.1]),
            "B22": pick(DOCTORS, n),
            "B23": pick(DOCTORS, n),
            "B24": pick(DOCTORS, n),
            "B25": pick(DOCTORS, n),
            "B26": pick(NURSES, n),
            "B29": pick(NURSES, n),
            "B30C": pick(["1", "2"], n, [0.97, 0.03]),
            "B31": pick(DOCTORS, n),
            "B32": pick(NURSES, n),
            "B33": day_text(discharge_s // 86400 + 3),
            "C26C": pick(["1", "2", "3", "4", "5", "6"], n, [0.3, 0.25, 0.1, 0.3, 0.02, 0.03]),
            "C27C": pick(["1", "2", "3", "4"], n, [0.01, 0.9, 0.07, 0.02]),
            "B36C": pick(["1", "2"], n, [0.1, 0.9]),
            "B34C": pick(["1", "2", "3", "4", "5", "9"], n, [0.92, 0.03, 0.01, 0.02, 0.01, 0.01]),
        }
    )
    for code in ("C28", "C29", "C30", "C31", "C32", "C33"):
        data[code] = only(pa.array(["0"] * n, pa.string()), department == 0)
    # Other diagnoses: 0-15 a stay, the groups after them empty.
    others = np.minimum(rng.poisson(3.5, n), 15)
    for k in range(1, int(others.max()) + 1):
        has = others >= k
        common = np.array([diagnosis_codes.index(c) for c in COMORBIDITIES], np.int64)
        which = np.where(
            rng.random(n) < 0.7,
            common[rng.integers(0, len(common), n)],
            rng.integers(0, len(diagnosis_codes), n),
        )
        data[f"C06x{k:02d}C"] = only(take(diagnosis_codes, which), has)
        data[f"C07x{k:02d}N"] = only(take(diagnosis_names, which), has)
        data[f"C08x{k:02d}C"] = only(pick(["1", "2", "3", "4"], n, [0.8, 0.1, 0.05, 0.05]), has)
    # Costs (cents): the total, what the patient paid, the breakdown.
    total = (np.exp(rng.normal(9.3, 0.8, n)) * 100).astype(np.int64)
    data["D01"] = money(total)
    data["D09"] = money(total * rng.integers(5, 40, n) // 100)
    for k, code in enumerate(["D11", "D12", "D13", "D14", "D16", "D17", "D19", "D20", "D23", "D31", "D32", "D34"]):
        share = total * rng.integers(1, 12, n) // 100
        data[code] = only(money(share), rng.random(n) < (0.95 if k < 9 else 0.5))
    for code in ("D15", "D19x01", "D20x01", "D20x02", "D21", "D22", "D23x01", "D24", "D25", "D26", "D33"):
        data[code] = only(money(total * rng.integers(0, 6, n) // 100), rng.random(n) < 0.3)
    for code in ("D27", "D28", "D29", "D30", *EXTRA_FEES):
        data[code] = only(pa.array(["0.00"] * n, pa.string()), rng.random(n) < 0.7)

    # --- operations -------------------------------------------------------------------------
    count = np.zeros(n, np.int64)
    draw = rng.random(n)
    few = draw < 0.40
    count[few] = rng.choice([1, 2, 3, 4, 5], size=int(few.sum()), p=[0.45, 0.25, 0.15, 0.09, 0.06])
    many = (draw >= 0.40) & (draw < 0.405)
    count[many] = rng.integers(6, 41, int(many.sum()))
    count[rng.choice(n, size=min(50, n), replace=False)] = 41
    names = [OPERATIONS[c][0] for c in operation_codes]
    levels = [OPERATIONS[c][1] for c in operation_codes]
    usual_incisions = [OPERATIONS[c][2] for c in operation_codes]
    is_surgery = np.array([level != "1" for level in levels])
    main_lists = [d[4].split(",") for d in DEPARTMENTS]
    other_lists = [[*d[4].split(","), *COMMON_OPERATIONS] for d in DEPARTMENTS]
    for slot in range(1, 42):
        has = count >= slot
        if not has.any():
            break
        which = by_department(main_lists if slot == 1 else other_lists, operation_codes)
        incision = pc.if_else(pa.array(rng.random(n) < 0.9), take(usual_incisions, which), pick(INCISIONS, n))
        when = admission_s + (rng.random(n) * (discharge_s - admission_s - 3600)).astype(np.int64)
        when = when // 60 * 60
        minutes = rng.integers(20, 300, n) * 60
        surgery = pa.array(is_surgery[which])
        if slot == 1:
            group = [
                "C14x01C",
                "C15x01N",
                "C16x01",
                "C17x01",
                "C18x01",
                "C19x01",
                "C20x01",
                "C21x01C",
                "C22x01C",
                "C23x01",
            ]
        else:
            nn = f"{slot - 1:02d}"
            group = [
                f"C35x{nn}C",
                f"C36x{nn}N",
                f"C37x{nn}",
                f"C38x{nn}",
                f"C39x{nn}",
                f"C40x{nn}",
                f"C41x{nn}",
                f"C42x{nn}C",
                f"C43x{nn}C",
                f"C44x{nn}",
            ]
        values = [
            take(operation_codes, which),
            take(names, which),
            stamp(when),
            take(levels, which),
            pick(DOCTORS, n),
            pick(DOCTORS, n),
            pc.if_else(surgery, pick(DOCTORS, n), null),
            incision,
            pc.if_else(surgery, pick(ANAESTHESIA, n), null),
            pc.if_else(surgery, pick(DOCTORS, n), null),
        ]
        for header, value in zip(group, values, strict=True):
            data[header] = only(value, has)
        data[f"SSKSSJ{slot}"] = only(stamp(when), has)
        data[f"SSJSSJ{slot}"] = only(stamp(when + minutes), has)
        data[f"SSBW{slot}"] = only(pick(SITES, n), has & (rng.random(n) < 0.5))

    # --- hospital-specific columns ----------------------------------------------------------
    data.update(
        {
            "ZYH": join("ZY", text(admission_day % 100), zpad(np.arange(n), 7)),
            "BRID": join("P", zpad(patient, 9)),
            "JZLSH": join(text(admission_day), zpad(np.arange(n), 7)),
            "YBLX": data["A46C"],
            "YBKH": only(join("K", zpad(rng.integers(0, 10**9, n), 9)), rng.random(n) < 0.8),
            "RYZDBM": data["C01C"],
            "RYZDMC": data["C02N"],
            "DRGBM": only(
                join(pick(["BR2", "ES3", "FM1", "GE1", "HC3", "IF1"], n), pick(["1", "3", "5"], n)), rng.random(n) < 0.9
            ),
            "KZRGH": join("G", zpad(rng.integers(0, 2000, n), 5)),
            "ZRYSGH": join("G", zpad(rng.integers(0, 2000, n), 5)),
            "ZZYSGH": join("G", zpad(rng.integers(0, 2000, n), 5)),
            "ZYYSGH": join("G", zpad(rng.integers(0, 2000, n), 5)),
            "BMYGH": join("G", zpad(rng.integers(0, 2000, n), 5)),
            "GDRQ": day_text(discharge_s // 86400 + 7),
            "SYZT": pa.array(["已归档"] * n, pa.string()),
            "TJRQ": day_text(discharge_s // 86400 + 10),
            "TCZF": money(total * 6 // 10),
        }
    )
    headers = all_headers(columns)
    empty = pa.nulls(n, pa.string())
    return pa.table({h: data.get(h, empty) for h in headers}), headers


def _write_file(rows: int, columns: int, folder: Path) -> dict[str, Any]:
    """The GB18030 file for these parameters; made only when it is not already in ``folder``."""
    _django()
    from django.utils import timezone

    from yilian.registry.models import Institution

    org_code, hospital = Institution.objects.filter(code=INSTITUTION).values_list("org_code", "name_zh").get()
    if not org_code:
        raise SystemExit(f"the demo institution {INSTITUTION} has no organisation code")
    # Keyed by the month too: the stays are of the year before the day the file was made.
    month = timezone.localdate().strftime("%Y%m")
    path = folder / f"frontpages-2019-{rows}x{columns}-seed{SEED}-{org_code}-{month}-v{FILE_VERSION}.csv"
    info = path.with_suffix(".json")
    if path.exists() and info.exists():
        made: dict[str, Any] = json.loads(info.read_text())
        return {**made, "path": str(path), "cached": True, "seconds": 0.0}

    import pyarrow as pa
    import pyarrow.csv as pacsv

    started = time.perf_counter()
    table, headers = _generate(rows, columns, org_code, hospital, timezone.localdate().isoformat())
    generated = time.perf_counter() - started
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    options = pacsv.WriteOptions(include_header=False, quoting_style="none", eol="\r\n")
    filled = 0
    with tmp.open("wb") as out:
        out.write((",".join(headers) + "\r\n").encode("gb18030"))
        for batch in table.to_batches(max_chunksize=5000):
            filled += sum(batch.num_rows - column.null_count for column in batch.columns)
            sink = pa.BufferOutputStream()
            pacsv.write_csv(batch, sink, write_options=options)
            out.write(sink.getvalue().to_pybytes().decode("utf-8").encode("gb18030"))
    tmp.rename(path)
    made = {
        "rows": rows,
        "columns": len(headers),
        "interface_columns": len(interface_headers()),
        "institution": INSTITUTION,
        "organisation_code": org_code,
        "seed": SEED,
        "gb18030_mb": round(path.stat().st_size / 1e6, 1),
        "filled_cells_share": round(filled / (rows * len(headers)), 3),
        "generated_on": timezone.localdate().isoformat(),
        "generate_seconds": round(generated, 1),
        "write_seconds": round(time.perf_counter() - started - generated, 1),
    }
    info.write_text(json.dumps(made, indent=2))
    return {**made, "path": str(path), "cached": False, "seconds": round(time.perf_counter() - started, 1)}


# ----------------------------------------------------------------------------------------
# Children


def _setup() -> dict[str, Any]:
    """Migrate and seed the demo consortium (the registry the rows refer to)."""
    _django()
    from django.core.management import call_command

    from yilian.demo.seed import seed_demo

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    seed_demo()
    return {"seconds": round(time.perf_counter() - started, 1)}


def _time_calls(stages: dict[str, float], module: Any, name: str, label: str) -> None:
    """Replace ``module.name`` by a wrapper adding its run time to ``stages[label]`` (the import's
    code looks the function up through its module at each call)."""
    function: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            stages[label] = round(stages.get(label, 0.0) + time.perf_counter() - started, 2)

    setattr(module, name, wrapper)


def _import(path: Path, filename: str) -> dict[str, Any]:
    _django()
    from yilian.activity import frontpage, readers, residence, services
    from yilian.activity.columns import BatchKind
    from yilian.registry.models import User

    admin = User.objects.get(username="admin")
    stages: dict[str, float] = {}
    _time_calls(stages, readers, "scan", "scan (hash, encoding)")
    _time_calls(stages, readers, "read_file", "read CSV")
    _time_calls(stages, frontpage, "prepare", "prepare")
    _time_calls(stages, residence, "place", "prepare: place residence")
    _time_calls(stages, frontpage, "validate", "validate (stays + operations)")
    _time_calls(stages, services, "_land", "land (Parquet, manifest, audit)")
    before = peak_rss_mb()
    started = time.perf_counter()
    result = services.batch_import(user=admin, kind=BatchKind.FRONTPAGES, path=path, filename=filename)
    seconds = time.perf_counter() - started
    batch = result.batch
    report = batch.report or {}
    return {
        "status": batch.status,
        "rows_total": batch.rows_total,
        "rows_landed": batch.rows_landed,
        "rows_rejected": batch.rows_rejected,
        "errors": batch.errors_total,
        "first_errors": [f"row {e.row} {e.column}: {e.message}" for e in result.errors[:5]],
        "ignored_columns": len(batch.ignored_columns),
        "seconds": round(seconds, 2),
        "rows_per_s": round(batch.rows_landed / seconds) if seconds else 0,
        "stages_seconds": stages,
        "report": {
            key: report.get(key)
            for key in (
                "dialect",
                "encoding",
                "stays",
                "operations",
                "max_operations_per_stay",
                "known_unused_columns",
                "residence",
                "unknown_origin",
                "repairs",
            )
        },
        "peak_rss_mb_before_import": before,
        "peak_rss_mb": peak_rss_mb(),
    }


# ----------------------------------------------------------------------------------------
# Driver


def _child(env: dict[str, str], *args: str) -> dict[str, Any]:
    return run_child(__file__, env, *args, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=COLUMNS)
    parser.add_argument("--quick", action="store_true", help="10,000 rows")
    parser.add_argument(
        "--files-dir", help="where the generated files are kept (default: $TMPDIR/yilian-bench-frontpage)"
    )
    parser.add_argument("--data-dir", help="data directory to use (kept; default: a fresh temporary one)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        step = args.child[0]
        if step == "setup":
            out = _setup()
        elif step == "file":
            out = _write_file(int(args.child[1]), int(args.child[2]), Path(args.child[3]))
        else:
            out = _import(Path(args.child[1]), args.child[2])
        print(json.dumps(out, ensure_ascii=False))
        return 0

    rows = 10_000 if args.quick else args.rows
    files = Path(args.files_dir or Path(tempfile.gettempdir()) / "yilian-bench-frontpage")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="yilian-bench-frontpage-")
    env = {k: v for k, v in os.environ.items() if k not in ("YILIAN_DATABASE_URL", "YILIAN_ACTIVITY_DIR")}
    env["YILIAN_DATA_DIR"] = data_dir
    try:
        setup = _child(env, "setup")
        made = _child(env, "file", str(rows), str(args.columns), str(files))
        path = Path(made.pop("path"))
        run = _child(env, "import", str(path), path.name)
    finally:
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)

    met = (
        run["status"] == "landed"
        and run["rows_landed"] == rows
        and run["seconds"] < TARGET_SECONDS
        and run["peak_rss_mb"] < TARGET_PEAK_MB
    )
    result = {
        "benchmark": "frontpage_import",
        "target_seconds": TARGET_SECONDS,
        "target_peak_mb": TARGET_PEAK_MB,
        "machine": machine(),
        "database": "sqlite",
        "setup_seconds": setup["seconds"],
        "file": made,
        "import": run,
        "target_met": met,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "frontpage_import_quick.json" if args.quick else "frontpage_import.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    how = "cached" if made["cached"] else f"made in {made['seconds']} s"
    print(
        f"front pages, GB18030 CSV: {rows:,} rows x {made['columns']} columns, {made['gb18030_mb']} MB "
        f"({how}, {made['filled_cells_share']:.0%} of the cells filled)"
    )
    report = run["report"]
    print(
        f"  {run['status']}: {run['seconds']:.2f} s, {run['rows_per_s']:,} rows/s, "
        f"peak RSS {run['peak_rss_mb']:,.0f} MB "
        f"(before the import {run['peak_rss_mb_before_import']:,.0f} MB); {run['rows_landed']:,} stays and "
        f"{report.get('operations') or 0:,} operations landed (up to {report.get('max_operations_per_stay')} a stay), "
        f"{run['errors']} errors"
    )
    print(f"  stages (s): {run['stages_seconds']}")
    print(f"  residence: {report.get('residence')}")
    print(f"  target < {TARGET_SECONDS:.0f} s and peak < {TARGET_PEAK_MB:,} MB: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
