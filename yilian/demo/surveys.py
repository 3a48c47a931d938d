"""Two years of demo satisfaction surveys: what patients and staff across the demo consortia said.

What the history shows (issue "satisfaction surveys", DOMAIN.md §1 "two improvements"):
- outpatient and inpatient answers at every institution, referred-patient answers at the hospitals
  that returned a referral's outcome (the link is tied to that referral), staff answers at the hosts
  of stationing programmes (local staff and stationed experts about the collaboration);
- the hosts of stationing programmes improve after the programme starts: waiting, access and
  communication most, "overall" by some twenty points over a few months (``STATIONING_STARTS``);
- waiting times and costs are the weakest dimensions everywhere, nursing the strongest;
- about a third of the answers carry a comment in plain Chinese; complaints recur about waiting
  (等候), registration (挂号), parking (停车), attitude (态度) and getting to see an expert (专家);
- links are issued per encounter by QR code, text message or link; about three in four are answered,
  the rest expire; a department poster at Quzhou People's Hospital adds poster links (which the
  response rate leaves out).

The improvement dates are the starts of the current stationing rounds of the demo
(``yilian.demo.dispatch.CURRENT_ROUNDS``), which the results page offers as its before/after points:
- ``qzph`` 2025-09-01: the Second Affiliated Hospital's batch 2 at Quzhou People's Hospital (the
  provincial neurosurgeon's team, DOMAIN.md story A);
- ``khph`` 2025-11-03: its first batch at Kaihua County People's Hospital;
- ``bjfph`` 2025-03-03: the second batch of Zhejiang Provincial People's Hospital staff at the Bijie
  regional medical centre (story B).
The history covers the two years before ``now``; the dates are fixed, so a demo seeded long after
2027 shows these hosts as improved throughout.

Invariants:
- deterministic: a function of ``seed``, ``now`` and the seeded registry and referrals (random draws,
  raw tokens and public ids come from a seeded generator, never from ``secrets`` or ``uuid4``);
- seeding again adds nothing: a run is recognised by the hash of its first token, drawn first;
- raw tokens are never stored, only their sha256, as for real links; answers hold no personal data;
- written in bulk (``bulk_create``; the answers as plain rows), since this is synthetic history: one
  audit row per run says how many responses.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import random
import secrets
import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.demo.dispatch import CURRENT_ROUNDS
from yilian.demo.referrals import HISTORY_USERNAME, _Table
from yilian.referrals.models import Referral
from yilian.registry.models import Department, Institution, InstitutionGrade, User
from yilian.surveys.models import (
    Channel,
    Poster,
    Questionnaire,
    QuestionnaireVersion,
    SurveyAnswer,
    SurveyKind,
    SurveyResponse,
    SurveyToken,
)

HISTORY_DAYS = 730
VALID_DAYS = 14
ANSWERED = 0.74  # share of encounter links answered
RAMP_DAYS = 120  # an improvement takes about four months to show fully

# Host institution -> the day its stationing programme's current round started (see the docstring).
STATIONING_STARTS: dict[str, dt.date] = CURRENT_ROUNDS
POSTER_AT = "qzph"  # one outpatient poster in a department of this hospital

# Monthly outpatient and inpatient responses by grade; the hosts get more so their trend reads clearly.
_VOLUME: dict[str, tuple[int, int]] = {
    InstitutionGrade.GRADE_3A: (9, 5),
    InstitutionGrade.GRADE_3B: (8, 4),
    InstitutionGrade.GRADE_2A: (7, 4),
    InstitutionGrade.PRIMARY: (4, 1),
}
_HOST_VOLUME = (24, 12)
_STAFF_PER_MONTH = 8
_REFERRED_SHARE = 0.5  # of the referrals whose outcome came back, those given a survey link

# Mean Likert score before any programme, by grade, and the shift of each dimension.
_BASE: dict[str, float] = {
    InstitutionGrade.GRADE_3A: 4.25,
    InstitutionGrade.GRADE_3B: 4.1,
    InstitutionGrade.GRADE_2A: 4.0,
    InstitutionGrade.PRIMARY: 4.15,
}
_HOST_BASE = 3.8
_OFFSET = {
    "access": -0.1,
    "waiting": -0.4,
    "communication": 0.1,
    "nursing": 0.2,
    "environment": -0.1,
    "costs": -0.3,
    "overall": 0.0,
    "recommend": 0.05,
    "collaboration": 0.0,
    "training": -0.05,
}
# How much a dimension gains once a programme is in full swing.
_GAIN = {"access": 0.6, "waiting": 0.7, "communication": 0.7, "overall": 0.65, "recommend": 0.6, "training": 0.7}
_DEFAULT_GAIN = 0.35

# -- comments ---------------------------------------------------------------------------------

_COMPLAINTS: dict[str, tuple[str, ...]] = {
    "access": (
        "挂号排队太久，希望多开几个窗口",
        "网上挂号经常挂不上",
        "自助挂号机老年人不会用，希望有人帮忙",
        "挂号、缴费、取药要来回跑好几趟",
        "挂号要排队，缴费又要排队",
    ),
    "waiting": (
        "等候时间太长，上午来的下午才看上",
        "检查预约要等好几天",
        "候诊等候时间长，叫号听不清楚",
        "等床位等了三天",
        "做检查排队等候太久",
    ),
    "communication": (
        "想看专家要去杭州，来回太折腾",
        "专家号太难挂",
        "专家每周只来一两天，时间对不上",
        "医生说得太快，没听明白怎么吃药",
    ),
    "nursing": (
        "个别护士态度不好，问路爱理不理",
        "收费窗口态度生硬",
        "晚上呼叫护士来得有点慢",
    ),
    "environment": (
        "停车太难了，绕了好几圈才找到车位",
        "停车位太少，停车要排队",
        "停车场太小，停车很不方便",
        "卫生间不够干净",
        "指示牌看不清，找科室找了半天",
        "病房有点吵，晚上睡不好",
    ),
    "costs": (
        "检查费用有点高",
        "有些检查重复做，费用增加了",
        "费用清单看不太懂",
    ),
    "collaboration": (
        "专家驻点时间太短，很多问题来不及请教",
        "沟通主要靠微信群，消息容易漏",
    ),
    "training": (
        "培训安排在下班以后，时间太紧",
        "带教机会不多，希望多一些手术示范",
        "设备跟不上，有些技术开展不了",
    ),
}
_STAFF_TOPICS = frozenset({"collaboration", "training"})
_PRAISE: tuple[str, ...] = (
    "医生很耐心，讲得很清楚",
    "护士态度很好，很细心",
    "环境干净整洁",
    "挂号比以前方便多了，手机上就能预约",
    "整体服务不错",
    "医生态度好，解释得很仔细",
    "护士打针技术好，态度也好",
)
_PRAISE_AFTER: tuple[str, ...] = (
    "现在省里的专家每周都来坐诊，在家门口就能看专家",
    "专家查房很仔细，讲解清楚",
    "等候时间比以前短了",
    "不用再跑杭州了，省了路费和时间",
    "挂号等候比去年快多了",
)
_PRAISE_REFERRED: tuple[str, ...] = (
    "转诊很顺利，不用重新排队挂号",
    "接诊医生已经知道我的病情，不用从头再讲",
    "回到当地复查，医生讲得很清楚",
)
_PRAISE_STAFF: tuple[str, ...] = (
    "下沉专家带教很认真，手术示范收获很大",
    "专家查房、病例讨论对我们帮助很大",
    "远程会诊沟通顺畅",
    "跟着专家学会了新技术，科室能力提高了",
)
_OPENINGS = ("", "", "", "总体还可以，", "总的来说不错，", "希望改进：", "说句实话，")
_CLOSINGS = ("", "", "", "。", "，希望改进。", "，谢谢！")
_THANKS = ("", "", "。", "，谢谢！", "，辛苦了。", "，点赞！")


def _comment(rng: random.Random, scores: dict[str, int], kind: str, improved: bool) -> str:
    staff = kind == SurveyKind.STAFF
    topics = [d for d in scores if d in _COMPLAINTS and (d in _STAFF_TOPICS) == staff]
    worst = min(topics, key=lambda d: (scores[d], d)) if topics else ""
    if worst and scores[worst] <= 3:
        text = rng.choice(_COMPLAINTS[worst])
        other = rng.choice(topics)
        if rng.random() < 0.3 and other != worst:
            text += "，" + rng.choice(_COMPLAINTS[other])
        return rng.choice(_OPENINGS[3:]) + text + rng.choice(_CLOSINGS)
    pool = list(_PRAISE_STAFF if kind == SurveyKind.STAFF else _PRAISE)
    if improved:
        pool += _PRAISE_AFTER if kind != SurveyKind.STAFF else _PRAISE_STAFF
    if kind == SurveyKind.REFERRED:
        pool += _PRAISE_REFERRED
    text = rng.choice(pool)
    if rng.random() < 0.25:
        text += "，" + rng.choice(pool)
    return text + rng.choice(_THANKS)


# -- generation -------------------------------------------------------------------------------


def _marker_token(rng: random.Random) -> str:
    """The run's marker link, the same for the same seed so that a second run finds it; it was
    issued two years ago and expired long since, so knowing it answers nothing."""
    return base64.urlsafe_b64encode(rng.getrandbits(128).to_bytes(16, "big")).decode().rstrip("=")


def _raw_token(rng: random.Random) -> str:
    """A real random token, not one from the seeded generator: the demo's open links must not be
    reproducible from this source. (``rng`` still advances, so the rest of the demo is unchanged.)"""
    rng.getrandbits(128)
    return secrets.token_urlsafe(16)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class _Batch:
    tokens: list[SurveyToken] = field(default_factory=list)
    # (index of the token, submitted at, department, answers as (item key, dimension, likert, choices, text))
    responses: list[tuple[int, dt.datetime, list[tuple[str, str, int | None, list[str], str]]]] = field(
        default_factory=list
    )


class _Generator:
    def __init__(self, rng: random.Random, now: dt.datetime, versions: dict[str, QuestionnaireVersion]) -> None:
        self.rng = rng
        self.now = now
        self.start = now - dt.timedelta(days=HISTORY_DAYS)
        self.versions = versions
        self.batch = _Batch()

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def gain(self, institution: Institution, day: dt.date) -> float:
        """0 before the host's programme, rising to 1 over ``RAMP_DAYS``."""
        start = STATIONING_STARTS.get(institution.code)
        if start is None or day < start:
            return 0.0
        return min(1.0, (day - start).days / RAMP_DAYS)

    def issue(
        self,
        *,
        kind: str,
        institution: Institution,
        department: Department | None,
        at: dt.datetime,
        channel: str,
        base: float,
        referral_id: int | None = None,
        poster: Poster | None = None,
        answered: float = ANSWERED,
    ) -> None:
        rng = self.rng
        version = self.versions[kind]
        token = SurveyToken(
            public_id=self.uuid(),
            token_hash=_hash(_raw_token(rng)),
            version=version,
            kind=kind,
            institution=institution,
            department=department,
            referral_id=referral_id,
            poster=poster,
            channel=channel,
            issued_at=at,
            expires_at=at + dt.timedelta(days=VALID_DAYS),
        )
        self.batch.tokens.append(token)
        submitted = at + dt.timedelta(minutes=rng.uniform(3, 60 * 30))
        if rng.random() >= answered or submitted >= self.now:
            return
        day = timezone.localtime(submitted).date()
        token.used_at = timezone.make_aware(dt.datetime.combine(day, dt.time.min))  # the day only
        gain = self.gain(institution, day)
        mood = rng.gauss(0, 0.45)
        scores: dict[str, int] = {}
        answers: list[tuple[str, str, int | None, list[str], str]] = []
        text_key = ""
        for item in version.items:
            dimension, kind_of = item["dimension"], item["type"]
            if kind_of == "likert":
                mean = base + _OFFSET.get(dimension, 0.0) + gain * _GAIN.get(dimension, _DEFAULT_GAIN) + mood
                score = max(1, min(5, round(rng.gauss(mean, 0.75))))
                scores.setdefault(dimension, score)
                answers.append((item["key"], dimension, score, [], ""))
            elif kind_of == "single":
                options = [o["key"] for o in item.get("options", [])]
                if kind == SurveyKind.STAFF:  # "you are": mostly local staff, some stationed experts
                    choice = options[0] if rng.random() < 0.8 else options[-1]
                else:
                    choice = rng.choice(options)
                answers.append((item["key"], dimension, None, [choice], ""))
            elif kind_of == "multiple":
                options = [o["key"] for o in item.get("options", [])]
                picked = sorted(rng.sample(options, rng.choice((0, 1, 1, 2))))
                if picked:
                    answers.append((item["key"], dimension, None, picked, ""))
            else:
                text_key = item["key"]
        if text_key and rng.random() < 0.34:
            answers.append((text_key, "comment", None, [], _comment(rng, scores, kind, gain > 0.5)))
        self.batch.responses.append((len(self.batch.tokens) - 1, submitted, answers))

    def moments(self, per_month: float) -> list[dt.datetime]:
        """Times of issue over the history, about ``per_month`` a month, in clinic hours (local time)."""
        n = self.rng.gauss(per_month * HISTORY_DAYS / 30.4, per_month**0.5)
        out = []
        for _ in range(max(0, round(n))):
            day = self.start + dt.timedelta(days=self.rng.uniform(0, HISTORY_DAYS))
            local = timezone.localtime(day).replace(hour=8, minute=0, second=0, microsecond=0)
            out.append(local + dt.timedelta(minutes=self.rng.uniform(0, 9 * 60)))
        return sorted(t for t in out if t < self.now)


def _current_versions() -> dict[str, QuestionnaireVersion]:
    """The built-in questionnaires' current versions (the demo consortia have none of their own)."""
    versions: dict[str, QuestionnaireVersion] = {}
    for questionnaire in Questionnaire.objects.filter(consortium__isnull=True):
        version = questionnaire.current_version()
        if version is not None:
            versions[questionnaire.kind] = version
    return versions


def seed_surveys(*, seed: int = 2018, now: dt.datetime | None = None) -> int:
    """Write the survey history if it is not there yet; returns the number of responses created.

    The history ends at the start of today (China time), so that two runs on one day write the
    same answers whatever the hour."""
    now = now or timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time.min))
    rng = random.Random(f"yilian-demo-surveys:{seed}")
    marker = _hash(_marker_token(rng))
    if SurveyToken.objects.filter(token_hash=marker).exists():
        return 0
    versions = _current_versions()
    if set(versions) != set(SurveyKind.values):
        return 0  # no questionnaires: nothing to answer
    institutions = list(Institution.objects.filter(is_active=True).order_by("code"))
    departments: dict[int, list[Department]] = {}
    for department in Department.objects.filter(is_active=True).exclude(discipline="management").order_by("pk"):
        departments.setdefault(department.institution_id, []).append(department)
    gen = _Generator(rng, now, versions)
    with transaction.atomic():
        poster = _poster(institutions, departments, versions)
        # The marker: the first link of the run, issued long ago and never answered.
        gen.batch.tokens.append(
            SurveyToken(
                public_id=gen.uuid(),
                token_hash=marker,
                version=versions[SurveyKind.OUTPATIENT],
                kind=SurveyKind.OUTPATIENT,
                institution=institutions[0],
                channel=Channel.LINK,
                issued_at=gen.start,
                expires_at=gen.start + dt.timedelta(days=VALID_DAYS),
            )
        )
        for institution in institutions:
            _encounters(gen, institution, departments.get(institution.pk, []), poster)
        _referred(gen, {i.pk: i for i in institutions}, departments)
        created = _write(gen)
        audit_record(
            actor=None,
            action=AuditAction.CREATE,
            object_type="surveys.surveyresponse",
            object_repr="demo survey history",
            changes={"seeded": created, "links": len(gen.batch.tokens), "seed": seed},
        )
    return created


def _base(institution: Institution) -> float:
    if institution.code in STATIONING_STARTS:
        return _HOST_BASE
    return _BASE.get(institution.grade, 4.0)


def _poster(
    institutions: list[Institution], departments: dict[int, list[Department]], versions: dict[str, QuestionnaireVersion]
) -> Poster | None:
    host = next((i for i in institutions if i.code == POSTER_AT), None)
    creator = User.objects.filter(username=HISTORY_USERNAME).first()
    if host is None or creator is None:
        return None
    department = next(iter(departments.get(host.pk, [])), None)
    poster, _created = Poster.objects.get_or_create(
        code=f"demo-{host.code}",
        defaults={
            "institution": host,
            "department": department,
            "questionnaire": versions[SurveyKind.OUTPATIENT].questionnaire,
            "created_by": creator,
        },
    )
    return poster


def _encounters(
    gen: _Generator, institution: Institution, departments: list[Department], poster: Poster | None
) -> None:
    rng = gen.rng
    is_host = institution.code in STATIONING_STARTS
    outpatient, inpatient = _HOST_VOLUME if is_host else _VOLUME.get(institution.grade, (5, 2))
    base = _base(institution)

    def department() -> Department | None:
        return rng.choice(departments) if departments else None

    for at in gen.moments(outpatient):
        channel = rng.choice((Channel.QR, Channel.QR, Channel.QR, Channel.SMS, Channel.LINK))
        gen.issue(
            kind=SurveyKind.OUTPATIENT,
            institution=institution,
            department=department(),
            at=at,
            channel=channel,
            base=base,
        )
    for at in gen.moments(inpatient):
        channel = rng.choice((Channel.QR, Channel.SMS, Channel.SMS))
        gen.issue(
            kind=SurveyKind.INPATIENT,
            institution=institution,
            department=department(),
            at=at,
            channel=channel,
            base=base,
        )
    if is_host:
        for at in gen.moments(_STAFF_PER_MONTH):
            gen.issue(
                kind=SurveyKind.STAFF,
                institution=institution,
                department=department(),
                at=at,
                channel=Channel.LINK,
                base=base + 0.1,
            )
    if poster is not None and poster.institution_id == institution.pk:
        # A poster scan issues a fresh link that is nearly always answered on the spot.
        for at in gen.moments(6):
            gen.issue(
                kind=SurveyKind.OUTPATIENT,
                institution=institution,
                department=poster.department,
                at=at,
                channel=Channel.POSTER,
                base=base,
                poster=poster,
                answered=0.95,
            )


def _referred(gen: _Generator, institutions: dict[int, Institution], departments: dict[int, list[Department]]) -> None:
    """A link for about half the referrals whose outcome came back, sent to the patient when it did."""
    rows = (
        Referral.objects.filter(outcome_at__isnull=False, outcome_at__gte=gen.start, outcome_at__lt=gen.now)
        .filter(survey_tokens__isnull=True)
        .order_by("number")
        .values_list("pk", "to_institution_id", "to_department_id", "outcome_at")
    )
    by_pk = {d.pk: d for ds in departments.values() for d in ds}
    for pk, institution_id, department_id, outcome_at in rows:
        institution = institutions.get(institution_id)
        if institution is None or outcome_at is None or gen.rng.random() >= _REFERRED_SHARE:
            continue
        gen.issue(
            kind=SurveyKind.REFERRED,
            institution=institution,
            department=by_pk.get(department_id) if department_id else None,
            at=outcome_at + dt.timedelta(hours=1),
            channel=Channel.SMS,
            base=_base(institution) + 0.15,
            referral_id=pk,
        )


def _write(gen: _Generator) -> int:
    batch = gen.batch
    SurveyToken.objects.bulk_create(batch.tokens, batch_size=2000)
    responses: list[SurveyResponse] = []
    for index, submitted, _answers in batch.responses:
        token = batch.tokens[index]
        responses.append(
            SurveyResponse(
                public_id=gen.uuid(),
                version=token.version,
                kind=token.kind,
                institution=token.institution,
                department=token.department,
                day=timezone.localtime(submitted).date(),
            )
        )
    SurveyResponse.objects.bulk_create(responses, batch_size=2000)
    # Ten answers a response: plain rows (executemany or COPY) rather than a model instance each.
    table = _Table(SurveyAnswer, with_id=False)
    assert table.names == ["response_id", "item_key", "dimension", "likert", "choices", "text"], table.names
    table.insert_values(
        [
            [response.pk, key, dimension, likert, choices, text]
            for response, (_index, _submitted, rows) in zip(responses, batch.responses, strict=True)
            for key, dimension, likert, choices, text in rows
        ]
    )
    return len(responses)
