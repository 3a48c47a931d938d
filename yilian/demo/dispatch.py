# ruff: noqa: E501  (the tables of programmes and posts read best one entry per line)
"""Demo stationing: the seed stories' programmes with a year of rosters, attendance and work logs.

- Story A: the Second Affiliated Hospital (zju2) at Quzhou People's Hospital (qzph). Batch 1 from
  2018-09-03 (the five first-round disciplines; the provincial neurosurgeon 陈志远 becomes the
  neurosurgery business director, on site 3 days a week, his own clinic at home on Tuesdays);
  batch 2 from 2025-09-01 (the current round, the day the satisfaction demo pivots on) with him
  continuing. A smaller programme at Kaihua County People's Hospital (khph) from 2025-11-03.
- Story B: Zhejiang Provincial People's Hospital (zjpph) at the Bijie regional medical centre
  (bjfph): 34 staff in 2 batches of 17, full-time residence, for 3 centres and 5 key disciplines;
  the robot-assisted hepatobiliary surgeon 徐立峰 in batch 1.
- Each assignment has a roster from its start to its end (or four weeks ahead), and for each past
  on-site day an attendance (mostly the expert's check-in, some confirmed by the host,
  a few absences with reasons) and, for most present days, a work log: clinics, rounds, teaching,
  and operations in which, month by month, local surgeons take over from the expert (operator ->
  assistant -> supervisor), the "blood-making" the capability issue measures.
- Nothing is recorded for today, so the expert can check in in the demo.

Deterministic (a seeded generator; ``today`` fixes the window) and written once: a programme that
exists is left alone. Synthetic history is bulk-written; one audit row per programme says so.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.dispatch import selectors as dispatch_selectors
from yilian.dispatch.models import (
    Assignment,
    Attendance,
    AttendanceStatus,
    Commitment,
    DayKind,
    HostDemand,
    HostRole,
    Leave,
    LoggedOperation,
    Objective,
    ObjectiveKind,
    OperationRole,
    Programme,
    ProgrammeStatus,
    RosterDay,
    WorkLog,
)
from yilian.registry import services as registry_services
from yilian.registry.models import (
    Consortium,
    Department,
    Institution,
    Practitioner,
    ProfessionalTitle,
)

QUZHOU_ROUND_2 = dt.date(2025, 9, 1)
KAIHUA_START = dt.date(2025, 11, 3)
BIJIE_BATCH_2 = dt.date(2025, 3, 3)
# Host institution -> the day its current stationing round started (the satisfaction demo's pivots).
CURRENT_ROUNDS: dict[str, dt.date] = {"qzph": QUZHOU_ROUND_2, "khph": KAIHUA_START, "bjfph": BIJIE_BATCH_2}

FIRST_DAY = dt.date(2018, 9, 3)  # the first programme's start: history is written from there
AHEAD_DAYS = 28
T = ProfessionalTitle


@dataclass(frozen=True)
class _Person:
    name_zh: str
    name_en: str
    department: str  # home department name_zh at the sending institution
    title: ProfessionalTitle = T.ASSOCIATE_CHIEF_PHYSICIAN
    licence: str = ""  # an existing practitioner's licence number; else one is made


@dataclass(frozen=True)
class _Post:
    person: _Person
    host_department: str
    role: HostRole
    days_per_week: int | None  # None = full-time residence
    blocked: str = ""
    blocked_note: str = ""
    start: dt.date | None = None  # default: the programme's start


@dataclass(frozen=True)
class _Programme:
    code: str
    consortium: str
    sending: str
    host: str
    batch: int
    title_zh: str
    title_en: str
    starts_on: dt.date
    ends_on: dt.date
    status: ProgrammeStatus
    objectives: tuple[tuple[ObjectiveKind, str, str, str], ...]
    posts: tuple[_Post, ...]
    demand: tuple[tuple[str, int, str, str, str], ...] = ()  # department, days/week, weekdays, label zh, en


CHEN = _Person("陈志远", "Chen Zhiyuan", "神经外科", T.CHIEF_PHYSICIAN, licence="113301020180901")
XU = _Person("徐立峰", "Xu Lifeng", "肝胆胰外科", T.CHIEF_PHYSICIAN, licence="113301050051108")
_OP_DAY = ("手术日", "operating day")

_QUZHOU_OBJECTIVES: tuple[tuple[ObjectiveKind, str, str, str], ...] = (
    (ObjectiveKind.KEY_DISCIPLINE, "神经外科", "Neurosurgery", "市级重点学科"),
    (ObjectiveKind.KEY_DISCIPLINE, "麻醉科", "Anaesthesiology", ""),
    (ObjectiveKind.KEY_DISCIPLINE, "急诊医学科", "Emergency medicine", ""),
    (ObjectiveKind.KEY_DISCIPLINE, "放疗科", "Radiotherapy", ""),
    (ObjectiveKind.KEY_DISCIPLINE, "骨科", "Orthopaedics", ""),
    (ObjectiveKind.TECHNIQUE, "神经内镜与显微镜联合手术", "Combined neuro-endoscope and microscope surgery", "衢州地区首例"),
    (ObjectiveKind.MANAGEMENT, "神经外科科室管理与质控", "Neurosurgery department management and quality control", ""),
)  # fmt: skip

PROGRAMMES: tuple[_Programme, ...] = (
    _Programme(
        code="zju2-qzph-1",
        consortium="zju2-quzhou",
        sending="zju2",
        host="qzph",
        batch=1,
        title_zh="浙大二院派驻衢州市人民医院（第一批）",
        title_en="ZJU Second Affiliated Hospital at Quzhou People's Hospital (batch 1)",
        starts_on=dt.date(2018, 9, 3),
        ends_on=dt.date(2025, 8, 31),
        status=ProgrammeStatus.COMPLETED,
        objectives=_QUZHOU_OBJECTIVES,
        posts=(
            _Post(CHEN, "神经外科", HostRole.BUSINESS_DIRECTOR, 3, "2", "本院周二专家门诊"),
            _Post(_Person("沈立群", "Shen Liqun", "麻醉科"), "麻醉科", HostRole.DISCIPLINE_LEADER, 2),
            _Post(_Person("蒋晨阳", "Jiang Chenyang", "急诊医学科"), "急诊医学科", HostRole.CLINICAL_MEMBER, 2),
            _Post(_Person("林慧", "Lin Hui", "放疗科"), "放疗科", HostRole.CLINICAL_MEMBER, 1),
            _Post(_Person("黄维", "Huang Wei", "骨科"), "骨科", HostRole.DISCIPLINE_LEADER, 2),
        ),
    ),
    _Programme(
        code="zju2-qzph-2",
        consortium="zju2-quzhou",
        sending="zju2",
        host="qzph",
        batch=2,
        title_zh="浙大二院派驻衢州市人民医院（第二批）",
        title_en="ZJU Second Affiliated Hospital at Quzhou People's Hospital (batch 2)",
        starts_on=QUZHOU_ROUND_2,
        ends_on=dt.date(2027, 8, 31),
        status=ProgrammeStatus.ACTIVE,
        objectives=(*_QUZHOU_OBJECTIVES[:1], (ObjectiveKind.CENTRE, "卒中中心", "Stroke centre", "取栓门-股穿刺时间 ≤ 90 分钟"), (ObjectiveKind.KEY_DISCIPLINE, "重症医学科", "Critical care", ""), (ObjectiveKind.TECHNIQUE, "急性缺血性卒中血管内取栓", "Endovascular thrombectomy", "本地医生独立完成")),
        posts=(
            _Post(CHEN, "神经外科", HostRole.BUSINESS_DIRECTOR, 3, "2", "本院周二专家门诊"),
            _Post(_Person("沈立群", "Shen Liqun", "麻醉科"), "麻醉科", HostRole.DISCIPLINE_LEADER, 2),
            _Post(_Person("蒋晨阳", "Jiang Chenyang", "急诊医学科"), "急诊医学科", HostRole.CLINICAL_MEMBER, 2, "5", "本院周五急诊值班"),
            _Post(_Person("黄维", "Huang Wei", "骨科"), "骨科", HostRole.DISCIPLINE_LEADER, 2),
            _Post(_Person("潘一鸣", "Pan Yiming", "重症医学科"), "重症医学科", HostRole.CLINICAL_MEMBER, 2),
            _Post(_Person("韦晓岚", "Wei Xiaolan", "神经内科", T.ATTENDING_PHYSICIAN), "神经内科", HostRole.CLINICAL_MEMBER, 1),
        ),
        demand=(
            ("神经外科", 3, "4", *_OP_DAY),
            ("麻醉科", 2, "", "", ""),
            ("急诊医学科", 2, "", "", ""),
            ("骨科", 2, "3", *_OP_DAY),
            ("重症医学科", 2, "", "", ""),
        ),
    ),
    _Programme(
        code="zju2-khph-1",
        consortium="zju2-quzhou",
        sending="zju2",
        host="khph",
        batch=1,
        title_zh="浙大二院派驻开化县人民医院（第一批）",
        title_en="ZJU Second Affiliated Hospital at Kaihua County People's Hospital (batch 1)",
        starts_on=KAIHUA_START,
        ends_on=dt.date(2027, 10, 29),
        status=ProgrammeStatus.ACTIVE,
        objectives=(
            (ObjectiveKind.KEY_DISCIPLINE, "神经外科", "Neurosurgery", "县域脑出血患者不出县"),
            (ObjectiveKind.KEY_DISCIPLINE, "麻醉科", "Anaesthesiology", ""),
        ),
        posts=(
            _Post(_Person("俞海", "Yu Hai", "神经外科"), "神经外科", HostRole.DISCIPLINE_LEADER, 2, "1", "本院周一手术"),
            _Post(_Person("吕晴", "Lyu Qing", "麻醉科", T.ATTENDING_PHYSICIAN), "麻醉科", HostRole.CLINICAL_MEMBER, 1),
        ),
        demand=(("神经外科", 2, "", "", ""),),
    ),
)  # fmt: skip

# Story B: 3 centres and 5 key disciplines, 17 staff per batch, full-time residence.
_BIJIE_OBJECTIVES: tuple[tuple[ObjectiveKind, str, str, str], ...] = (
    (ObjectiveKind.CENTRE, "心血管病诊疗中心", "Cardiovascular centre", "胸痛中心国家认证"),
    (ObjectiveKind.CENTRE, "卒中中心", "Stroke centre", ""),
    (ObjectiveKind.CENTRE, "创伤中心", "Trauma centre", ""),
    (ObjectiveKind.KEY_DISCIPLINE, "骨科", "Orthopaedics", "微创腰椎融合、脊柱侧弯矫形本地开展"),
    (ObjectiveKind.KEY_DISCIPLINE, "泌尿外科", "Urology", ""),
    (ObjectiveKind.KEY_DISCIPLINE, "重症医学科", "Critical care", ""),
    (ObjectiveKind.KEY_DISCIPLINE, "肝胆胰外科", "Hepatobiliary and pancreatic surgery", "机器人辅助手术"),
    (ObjectiveKind.KEY_DISCIPLINE, "神经外科", "Neurosurgery", ""),
    (ObjectiveKind.TECHNIQUE, "机器人辅助保留胰头十二指肠切除术", "Robot-assisted pancreas-head-preserving duodenectomy", "贵州省首例"),
    (ObjectiveKind.MANAGEMENT, "医院管理：品牌、技术、管理三平移", "Hospital management: brand, technology, management", ""),
)  # fmt: skip

# (host department, role, how many per batch) — 17 per batch.
_BIJIE_POSTS: tuple[tuple[str, HostRole, int], ...] = (
    ("心血管内科", HostRole.CENTRE_CHIEF, 1),
    ("心血管内科", HostRole.CLINICAL_MEMBER, 2),
    ("神经内科", HostRole.CENTRE_CHIEF, 1),
    ("急诊医学科", HostRole.CENTRE_CHIEF, 1),
    ("骨科", HostRole.DISCIPLINE_LEADER, 1),
    ("骨科", HostRole.CLINICAL_MEMBER, 1),
    ("泌尿外科", HostRole.DISCIPLINE_LEADER, 1),
    ("重症医学科", HostRole.DISCIPLINE_LEADER, 1),
    ("重症医学科", HostRole.CLINICAL_MEMBER, 1),
    ("肝胆胰外科", HostRole.DISCIPLINE_LEADER, 1),  # 徐立峰
    ("神经外科", HostRole.DISCIPLINE_LEADER, 1),
    ("麻醉科", HostRole.CLINICAL_MEMBER, 1),
    ("放射科", HostRole.CLINICAL_MEMBER, 1),
    ("医务部", HostRole.MANAGEMENT_POST, 3),
)
_HOME_OF = {"医务部": "急诊医学科", "放射科": "放射科", "麻醉科": "麻醉科", "心血管内科": "心血管内科"}

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐韩冯邓曹彭曾肖田董潘袁蒋蔡余杜叶程魏苏丁沈范方汪"
_PINYIN = [
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Lin",
    "Luo",
    "Zheng",
    "Liang",
    "Xie",
    "Song",
    "Tang",
    "Han",
    "Feng",
    "Deng",
    "Cao",
    "Peng",
    "Zeng",
    "Xiao",
    "Tian",
    "Dong",
    "Pan",
    "Yuan",
    "Jiang",
    "Cai",
    "Yu",
    "Du",
    "Ye",
    "Cheng",
    "Wei",
    "Su",
    "Ding",
    "Shen",
    "Fan",
    "Fang",
    "Wang",
]
_GIVEN = (("志刚", "Zhigang"), ("文博", "Wenbo"), ("晓峰", "Xiaofeng"), ("丽娟", "Lijuan"), ("建平", "Jianping"),
          ("海燕", "Haiyan"), ("振宇", "Zhenyu"), ("雪莲", "Xuelian"), ("思源", "Siyuan"), ("俊峰", "Junfeng"),
          ("立明", "Liming"), ("婉清", "Wanqing"), ("明轩", "Mingxuan"), ("嘉怡", "Jiayi"), ("国栋", "Guodong"),
          ("秋实", "Qiushi"), ("子涵", "Zihan"), ("一帆", "Yifan"), ("泽宇", "Zeyu"), ("若曦", "Ruoxi"))  # fmt: skip

_ABSENCE_REASONS = ("本院临时手术任务", "参加省级学术会议", "病假", "家中急事", "上级医院质控检查")
_LOCAL_NAMES = ("周建华", "吴晓东", "郑海涛", "方丽萍", "毛文杰", "祝国强", "杨明辉", "龚俊杰")

# Procedures by host department: (name, national code, level, minimally invasive)
_PROCEDURES: dict[str, tuple[tuple[str, str, int, bool], ...]] = {
    "神经外科": (
        ("神经内镜联合显微镜脑室肿瘤切除术", "01.5907", 4, True),
        ("幕上深部血肿清除术", "01.3901", 3, False),
        ("慢性硬膜下血肿钻孔引流术", "01.3101", 2, False),
        ("颅内动脉瘤夹闭术", "39.5101", 4, False),
    ),
    "骨科": (
        ("微创经椎间孔腰椎椎间融合术", "81.0800", 4, True),
        ("脊柱侧弯后路矫形融合术", "81.0500", 4, False),
        ("关节镜下半月板修复术", "80.6x01", 3, True),
    ),
    "肝胆胰外科": (
        ("机器人辅助保留胰头十二指肠切除术", "45.6200", 4, True),
        ("机器人辅助肝部分切除术", "50.2203", 4, True),
        ("腹腔镜胆囊切除术", "51.2300", 2, True),
    ),
    "泌尿外科": (("经尿道前列腺等离子电切术", "60.2900", 3, True), ("腹腔镜肾部分切除术", "55.4x03", 4, True)),
    "心血管内科": (("经皮冠状动脉支架植入术", "36.0700", 3, True), ("冠状动脉造影术", "88.5500", 2, True)),
    "麻醉科": (),
}


def _licence(serial: int) -> str:
    # 15 digits: physician (1), category 1, Hangzhou region (330100), a serial reserved for the demo.
    return f"11330100{9_000_000 + serial:07d}"


class _Writer:
    def __init__(self, seed: int, today: dt.date) -> None:
        self.rng = random.Random(f"yilian-demo-dispatch:{seed}")
        self.today = today
        self.start = FIRST_DAY
        self.until = today + dt.timedelta(days=AHEAD_DAYS)
        horizon = dispatch_selectors.calendar_horizon(
            dispatch_selectors.monday(self.start), self.until + dt.timedelta(days=7)
        )
        self.workdays = horizon.working_days
        self.serial = 0
        self.names: set[str] = set()
        self.institutions = {i.code: i for i in Institution.objects.all()}
        self.report = DispatchSeed()

    def department(self, institution: str, name_zh: str) -> Department:
        inst = self.institutions[institution]
        found = Department.objects.filter(institution=inst, name_zh=name_zh).first()
        if found is not None:
            return found
        # A department the registry demo did not list (e.g. hospital management at Bijie).
        from yilian.registry.models import Discipline

        discipline = Discipline.MANAGEMENT if name_zh == "医务部" else Discipline.INTERNAL_MEDICINE
        self.report.departments += 1
        return registry_services.department_create(
            actor=None, institution=inst, discipline=discipline, name_zh=name_zh, name_en="Medical Affairs"
        )

    def practitioner(self, person: _Person, institution: str) -> Practitioner:
        if person.licence:
            found = Practitioner.objects.filter(licence_number=person.licence).first()
            if found is not None:
                return found
        found = Practitioner.objects.filter(
            institution=self.institutions[institution], name_zh=person.name_zh, licence_number__startswith="113301009"
        ).first()
        if found is not None:
            return found
        self.serial += 1
        licence = person.licence or _licence(self.serial)
        while Practitioner.objects.filter(licence_number=licence).exists():
            self.serial += 1
            licence = _licence(self.serial)
        self.report.practitioners += 1
        return registry_services.practitioner_create(
            actor=None,
            name_zh=person.name_zh,
            name_en=person.name_en,
            title=person.title,
            institution=self.institutions[institution],
            department=self.department(institution, person.department),
            licence_number=licence,
            specialties="",
        )

    # --------------------------------------------------------------------------------
    def programme(self, spec: _Programme) -> Programme | None:
        if Programme.objects.filter(code=spec.code).exists():
            return None
        consortium = Consortium.objects.get(code=spec.consortium)
        programme = Programme.objects.create(
            code=spec.code,
            consortium=consortium,
            agreement=consortium.agreements.filter(parties=self.institutions[spec.host]).order_by("signed_on").first(),
            sending_institution=self.institutions[spec.sending],
            host_institution=self.institutions[spec.host],
            batch=spec.batch,
            title_zh=spec.title_zh,
            title_en=spec.title_en,
            starts_on=spec.starts_on,
            ends_on=spec.ends_on,
            status=spec.status,
        )
        Objective.objects.bulk_create(
            [
                Objective(programme=programme, kind=kind, name_zh=zh, name_en=en, target=target)
                for kind, zh, en, target in spec.objectives
            ]
        )
        for department, per_week, weekdays, label_zh, label_en in spec.demand:
            HostDemand.objects.update_or_create(
                programme=programme,
                department=self.department(spec.host, department),
                defaults={
                    "days_per_week": per_week,
                    "need_weekdays": weekdays,
                    "need_label_zh": label_zh,
                    "need_label_en": label_en,
                },
            )
        for post in spec.posts:
            practitioner = self.practitioner(post.person, spec.sending)
            Assignment.objects.create(
                programme=programme,
                practitioner=practitioner,
                host_department=self.department(spec.host, post.host_department),
                home_department=practitioner.department,
                role=post.role,
                starts_on=post.start or spec.starts_on,
                ends_on=spec.ends_on,
                commitment=Commitment.FULL_TIME if post.days_per_week is None else Commitment.DAYS_PER_WEEK,
                days_per_week=post.days_per_week,
                blocked_weekdays=post.blocked,
                blocked_note=post.blocked_note,
            )
        return programme

    def bijie(self, batch: int, starts_on: dt.date, ends_on: dt.date, status: ProgrammeStatus) -> _Programme:
        posts: list[_Post] = []
        for department, role, count in _BIJIE_POSTS:
            for _n in range(count):
                if department == "肝胆胰外科" and batch == 1:
                    person = XU  # the story's robot-assisted surgeon (2023-2024); batch 2 brings another
                else:
                    surname = self.rng.randrange(len(_SURNAMES))
                    given_zh, given_en = _GIVEN[self.rng.randrange(len(_GIVEN))]
                    while _SURNAMES[surname] + given_zh in self.names:
                        surname = self.rng.randrange(len(_SURNAMES))
                        given_zh, given_en = _GIVEN[self.rng.randrange(len(_GIVEN))]
                    self.names.add(_SURNAMES[surname] + given_zh)
                    person = _Person(
                        _SURNAMES[surname] + given_zh,
                        f"{_PINYIN[surname]} {given_en}",
                        _HOME_OF.get(department, department),
                        self.rng.choice((T.CHIEF_PHYSICIAN, T.ASSOCIATE_CHIEF_PHYSICIAN, T.ATTENDING_PHYSICIAN)),
                    )
                posts.append(_Post(person, department, role, None))
        return _Programme(
            code=f"zjpph-bjfph-{batch}",
            consortium="bijie-nrmc",
            sending="zjpph",
            host="bjfph",
            batch=batch,
            title_zh=f"浙江省人民医院派驻毕节医院（第{'一二'[batch - 1]}批）",
            title_en=f"Zhejiang Provincial People's Hospital at the Bijie centre (batch {batch})",
            starts_on=starts_on,
            ends_on=ends_on,
            status=status,
            objectives=_BIJIE_OBJECTIVES,
            posts=tuple(posts),
            demand=(("骨科", 10, "", "", ""), ("肝胆胰外科", 5, "2", *_OP_DAY)) if batch == 2 else (),
        )

    # --------------------------------------------------------------------------------
    def history(self, programme: Programme) -> None:
        """Roster, attendance and work logs of the programme's assignments inside the window."""
        assignments = list(
            programme.assignments.select_related("practitioner", "host_department", "programme__host_institution")
        )
        locals_by_department: dict[int, list[Practitioner]] = {}
        for p in Practitioner.objects.filter(institution_id=programme.host_institution_id).select_related("department"):
            if p.department_id is not None:
                locals_by_department.setdefault(p.department_id, []).append(p)
        needs_of = dict(programme.demands.values_list("department_id", "need_weekdays"))
        roster: list[RosterDay] = []
        attendance: list[Attendance] = []
        logs: list[tuple[WorkLog, list[LoggedOperation]]] = []
        for a in assignments:
            first = max(a.starts_on, self.start)
            last = min(a.last_day or self.until, self.until)
            if first > last:
                continue
            needs = set(needs_of.get(a.host_department_id, ""))
            for day in self._plan(a, first, last, needs):
                roster.append(RosterDay(assignment=a, date=day, kind=DayKind.ON_SITE))
                if day >= self.today:
                    continue
                present, row = self._attendance(a, day)
                attendance.append(row)
                if present and self.rng.random() < 0.9:
                    logs.append(self._work_log(a, day, first, locals_by_department.get(a.host_department_id, [])))
        RosterDay.objects.bulk_create(roster, batch_size=2000)
        Attendance.objects.bulk_create(attendance, batch_size=2000)
        WorkLog.objects.bulk_create([log for log, _ops in logs], batch_size=2000)
        LoggedOperation.objects.bulk_create([op for _log, ops in logs for op in ops], batch_size=2000)
        self.report.roster_days += len(roster)

    def _plan(self, a: Assignment, first: dt.date, last: dt.date, needs: set[str]) -> list[dt.date]:
        days: list[dt.date] = []
        week = dispatch_selectors.monday(first)
        while week <= last:
            available = [
                week + dt.timedelta(days=i)
                for i in range(7)
                if first <= week + dt.timedelta(days=i) <= last
                and week + dt.timedelta(days=i) in self.workdays
                and str(i + 1) not in a.blocked_weekdays
            ]
            n = a.weekly_days
            if n is None:
                days.extend(available)
            else:
                # The operating day first, then Monday onwards: how an office plans by hand.
                ordered = sorted(available, key=lambda d: (str(d.isoweekday()) not in needs, d))
                days.extend(sorted(ordered[:n]))
            week += dt.timedelta(days=7)
        return days

    def _attendance(self, a: Assignment, day: dt.date) -> tuple[bool, Attendance]:
        draw = self.rng.random()
        if draw < 0.03:
            return False, Attendance(
                assignment=a,
                date=day,
                status=AttendanceStatus.ABSENT,
                absence_reason=self.rng.choice(_ABSENCE_REASONS),
            )
        if draw < 0.07:
            return True, Attendance(assignment=a, date=day, status=AttendanceStatus.CONFIRMED)
        moment = dt.datetime.combine(day, dt.time(7, 30)) + dt.timedelta(minutes=self.rng.randrange(70))
        return True, Attendance(
            assignment=a,
            date=day,
            status=AttendanceStatus.CHECKED_IN,
            checked_in_at=timezone.make_aware(moment),
            distance_m=self.rng.randrange(20, 400),
        )

    def _work_log(
        self, a: Assignment, day: dt.date, first: dt.date, local: list[Practitioner]
    ) -> tuple[WorkLog, list[LoggedOperation]]:
        rng = self.rng
        management = a.role == HostRole.MANAGEMENT_POST
        log = WorkLog(
            assignment=a,
            date=day,
            outpatient_sessions=0 if management else rng.choice((0, 1, 1, 2)),
            ward_rounds=0 if management else rng.choice((0, 1, 1, 1)),
            teaching_sessions=rng.choice((0, 0, 0, 1)),
            consultations=0 if management else rng.choice((0, 0, 1, 2)),
            management_meetings=rng.choice((1, 1, 2)) if management else rng.choice((0, 0, 0, 1)),
        )
        log.patients_seen = log.outpatient_sessions * rng.randrange(12, 30)
        operations: list[LoggedOperation] = []
        procedures = _PROCEDURES.get(a.host_department.name_zh, ())
        if procedures and not management:
            # Local surgeons take over as the months pass: the expert operates, then assists, then supervises.
            progress = (day - first).days / 365
            for _n in range(rng.choice((0, 0, 1, 1, 2, 3))):
                name, code, level, minimally_invasive = rng.choice(procedures)
                draw = rng.random()
                role = (
                    OperationRole.OPERATOR
                    if draw > progress
                    else OperationRole.ASSISTANT
                    if draw > progress / 2
                    else OperationRole.SUPERVISOR
                )
                surgeon = rng.choice(local) if local else None
                operations.append(
                    LoggedOperation(
                        work_log=log,
                        procedure=name,
                        procedure_code=code,
                        level=level,
                        role=role,
                        minimally_invasive=minimally_invasive,
                        local_surgeon=surgeon,
                        local_surgeon_name=surgeon.name_zh if surgeon else rng.choice(_LOCAL_NAMES),
                    )
                )
        return log, operations


@dataclass
class DispatchSeed:
    """What one run created: practitioners and departments (each audited), programmes (one audit row
    each, covering their assignments, objectives and history) and roster days (synthetic)."""

    practitioners: int = 0
    departments: int = 0
    programmes: int = 0
    roster_days: int = 0


def seed_dispatch(*, seed: int = 2018, today: dt.date | None = None) -> DispatchSeed:
    """Write the demo programmes that are missing and say what was created."""
    today = today or timezone.localdate()
    writer = _Writer(seed, today)
    specs = list(PROGRAMMES)
    specs.append(writer.bijie(1, dt.date(2023, 1, 3), dt.date(2025, 2, 28), ProgrammeStatus.COMPLETED))
    specs.append(writer.bijie(2, BIJIE_BATCH_2, dt.date(2027, 2, 26), ProgrammeStatus.ACTIVE))
    with transaction.atomic():
        for spec in specs:
            programme = writer.programme(spec)
            if programme is None:
                continue
            writer.history(programme)
            writer.report.programmes += 1
            audit_record(
                actor=None,
                action=AuditAction.CREATE,
                obj=programme,
                changes={"demo": True, "assignments": programme.assignments.count()},
            )
        chen = Practitioner.objects.filter(licence_number=CHEN.licence).first()
        if chen is not None and not Leave.objects.filter(practitioner=chen).exists():
            # A conference week three weeks ahead, so the roster shows leave.
            monday = dispatch_selectors.monday(today) + dt.timedelta(days=21)
            Leave.objects.create(
                practitioner=chen, starts_on=monday, ends_on=monday + dt.timedelta(days=4), reason="全国神经外科年会"
            )
            removed, _detail = RosterDay.objects.filter(
                assignment__practitioner=chen, date__gte=monday, date__lte=monday + dt.timedelta(days=4)
            ).delete()
            writer.report.roster_days -= removed
    return writer.report
