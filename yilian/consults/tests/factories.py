"""Builders for consult tests: people, patients, meetings and consults driven to any status through
the services, the way the people involved would (never by writing the status field).

The default consult is the Kaihua story: Xu Chunhua (``kaihua``, neurology at Kaihua County
People's Hospital, khph) asks the neurosurgery department of the Second Affiliated Hospital (zju2)
for advice under the agreement zju2-khph-2018 (consortium zju2-quzhou), wanting at least a chief
physician. Chen Zhiyuan (``expert``, chief neurosurgeon) takes it from the pool and answers; the
teleconsultation centre (``telecentre``) coordinates at zju2; the demo ``office`` oversees the
consortium. An MDT case goes on a meeting called by ``telecentre``, chaired by the pathologist
(``pathologist``) with ``expert`` invited.

Other people (a junior neurosurgeon, a colleague in another department, a coordinator at khph)
are made fresh through the registry services. Every builder is additive: tests of other modules
(views, API) import what they need from here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from yilian.consults import services
from yilian.consults.models import Consult, Kind, Meeting, ReadingType, Status
from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD
from yilian.patients.models import Patient
from yilian.patients.services import patient_register
from yilian.registry import services as registry_services
from yilian.registry.models import (
    Consortium,
    Department,
    Discipline,
    Institution,
    Practitioner,
    ProfessionalTitle,
    User,
)

REQUESTING = "khph"
CONSULTED = "zju2"
CONSORTIUM = "zju2-quzhou"

# Smallest files the upload check recognises by their first bytes.
PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TEXT_BYTES = "头颅CT报告：右侧基底节区高密度影。\n".encode()


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


def user(username: str) -> User:
    """A fresh copy of the account (its cached scope is not carried over)."""
    return User.objects.get(username=username)


def institution(code: str) -> Institution:
    return Institution.objects.get(code=code)


def department(code: str, discipline: str) -> Department:
    found = Department.objects.filter(institution__code=code, discipline=discipline).order_by("id").first()
    assert found is not None, f"{code} has no {discipline} department"
    return found


def practitioner(account: User) -> Practitioner:
    return Practitioner.objects.get(user=account, is_active=True)


def account(*, role: Role, institution_code: str | None = None, consortium_code: str | None = None) -> User:
    """A new account holding one role, granted by the system as the seed does."""
    made = registry_services.user_create(
        actor=None, username=f"{role.value[:10]}-{_suffix()}", password=DEMO_PASSWORD, display_name="测试用户"
    )
    registry_services.membership_grant(
        actor=None,
        user=made,
        role=role,
        institution=institution(institution_code) if institution_code else None,
        consortium=Consortium.objects.get(code=consortium_code) if consortium_code else None,
    )
    return user(made.username)


def doctor(
    *,
    institution_code: str = CONSULTED,
    discipline: str = Discipline.NEUROSURGERY,
    title: str = ProfessionalTitle.CHIEF_PHYSICIAN,
    role: Role = Role.DOCTOR,
    with_account: bool = True,
) -> Practitioner:
    """A practitioner in the department of ``discipline``; with an account holding ``role`` there
    (``practitioner.user``) unless ``with_account`` is False."""
    login = account(role=role, institution_code=institution_code) if with_account else None
    return registry_services.practitioner_create(
        actor=None,
        name_zh=f"医师{_suffix()[:4]}",
        title=title,
        institution=institution(institution_code),
        department=department(institution_code, discipline),
        licence_number=f"T{uuid.uuid4().hex[:20]}",
        user=login,
    )


def user_of(person: Practitioner) -> User:
    assert person.user is not None
    return user(person.user.username)


@dataclass(frozen=True)
class Cast:
    """Everyone who may try a step on the default consult, and the sides they hold on it."""

    requester: User  # kaihua, the requesting doctor
    requester_coordinator: User  # a consult coordinator of khph
    expert: User  # Chen Zhiyuan: in the pool, then the consult's expert
    other_expert: User  # the radiologist: an expert of zju2 not on the case
    junior: User  # a zju2 neurosurgeon below the title wanted
    coordinator: User  # telecentre, coordinator at zju2
    chair: User  # the pathologist, chair of the MDT meeting
    office: User  # the zju2-quzhou consortium office
    unrelated: User  # bijie, a doctor in another consortium


def cast() -> Cast:
    return Cast(
        requester=user("kaihua"),
        requester_coordinator=account(role=Role.ONCALL_COORDINATOR, institution_code=REQUESTING),
        expert=user("expert"),
        other_expert=user("radiologist"),
        junior=user_of(doctor(title=ProfessionalTitle.ATTENDING_PHYSICIAN)),
        coordinator=user("telecentre"),
        chair=user("pathologist"),
        office=user("office"),
        unrelated=user("bijie"),
    )


def patient(name: str = "徐桂英") -> Patient:
    return patient_register(actor=user("kaihua"), institution=institution(REQUESTING), name=name, sex="female")


def consent(*, at: dt.datetime | None = None, method: str = "written") -> services.Consent:
    """Written consent obtained ten minutes before ``at`` (default: now)."""
    return services.Consent(obtained_by="徐春华", method=method, at=(at or timezone.now()) - dt.timedelta(minutes=10))


def request(kind: str = Kind.ECONSULT, *, actor: User | None = None, **fields: Any) -> Consult:
    """A request from kaihua (khph) to zju2 neurosurgery, at least a chief physician; any field
    of ``services.consult_request`` can be given."""
    at = fields.get("at")
    values: dict[str, Any] = {
        "patient": None,
        "from_institution": institution(REQUESTING),
        "to_institution": institution(CONSULTED),
        "discipline": Discipline.NEUROSURGERY,
        "wanted_title": ProfessionalTitle.CHIEF_PHYSICIAN,
        "reason": "右侧基底节区脑出血约25 ml，家属询问手术指征",
        "purpose": "明确是否需要手术及是否上转",
        "question": "保守治疗还是微创血肿清除？",
        "history": "高血压病史10年，晨起突发左侧肢体无力3小时",
        "diagnosis_code": "i61.0",
        "diagnosis_name": "高血压性脑出血",
        "consent": consent(at=at),
        **fields,
    }
    if kind == Kind.READING:
        values.setdefault("reading_type", ReadingType.IMAGING)
    if values["patient"] is None:
        values["patient"] = patient()
    return services.consult_request(actor=actor or user("kaihua"), kind=kind, **values)


def session_time(*, days: int = 2, hour: int = 10, minutes: int = 60) -> tuple[dt.datetime, dt.datetime]:
    """A slot ``days`` from today at ``hour`` China time."""
    day = timezone.localdate() + dt.timedelta(days=days)
    start = timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))
    return start, start + dt.timedelta(minutes=minutes)


def meeting(
    *,
    chair: Practitioner | None = None,
    experts: list[Practitioner] | None = None,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    title: str = "神经肿瘤MDT",
) -> Meeting:
    """An MDT meeting at zju2 called by telecentre: the pathologist chairs, ``expert`` is invited."""
    default_start, default_end = session_time(hour=14)
    return services.meeting_create(
        actor=user("telecentre"),
        institution=institution(CONSULTED),
        title=title,
        chair=chair or practitioner(user("pathologist")),
        experts=experts if experts is not None else [practitioner(user("expert"))],
        starts_at=starts_at or default_start,
        ends_at=ends_at or (starts_at + dt.timedelta(hours=1) if starts_at else default_end),
        meeting_url="https://meeting.example.cn/j/123456",
    )


WRITTEN_PATH = (Status.REQUESTED, Status.ACCEPTED, Status.IN_DISCUSSION, Status.ANSWERED, Status.CLOSED)
SESSION_PATH = (
    Status.REQUESTED,
    Status.ACCEPTED,
    Status.SCHEDULED,
    Status.IN_DISCUSSION,
    Status.CONCLUDED,
    Status.CLOSED,
)


def consult_in(
    status: str,
    kind: str = Kind.ECONSULT,
    *,
    on_meeting: Meeting | None = None,
    starts_at: dt.datetime | None = None,
    **request_fields: Any,
) -> Consult:
    """A consult driven to ``status`` through the services.

    Paths: requested -> accepted (``expert`` takes it from the pool) then, for an eConsult or a
    reading, -> in_discussion (the expert asks for more) or -> answered -> closed (kaihua's
    close-out); for a teleconsultation -> scheduled (the expert picks ``starts_at``, default two
    days ahead at 10:00) -> in_discussion -> concluded -> closed; for an MDT case -> scheduled
    (telecentre puts it on ``on_meeting`` or a new meeting) -> in_discussion and concluded (the
    chair) -> closed. declined (by the expert) and cancelled (by kaihua) branch off requested;
    expired is the worker's step after eight days.
    """
    status = Status(status)
    requester, expert, telecentre = user("kaihua"), user("expert"), user("telecentre")
    consult = request(kind, **request_fields)
    if status == Status.REQUESTED:
        return consult
    if status == Status.DECLINED:
        return services.consult_decline(actor=expert, consult=consult, reason="本院该亚专业专家本周外出")
    if status == Status.CANCELLED:
        return services.consult_cancel(actor=requester, consult=consult, reason="患者已转上级医院")
    if status == Status.EXPIRED:
        return services.consult_expire(consult=consult, now=consult.requested_at + dt.timedelta(days=8))
    consult = services.consult_accept(actor=expert, consult=consult)
    if status == Status.ACCEPTED:
        return consult
    if kind in (Kind.ECONSULT, Kind.READING):
        assert status in WRITTEN_PATH, f"a {kind} is never {status}"
        if status == Status.IN_DISCUSSION:
            return services.consult_ask_info(actor=expert, consult=consult, text="请补充头颅CT原始影像")
        consult = services.consult_answer(
            actor=expert, consult=consult, answer="出血量约25 ml，建议保守治疗，复查CT", recommendations="控制血压"
        )
        if status == Status.ANSWERED:
            return consult
        return services.consult_close(
            actor=requester, consult=consult, referral_avoided=True, management_changed=True, value_rating=5
        )
    assert status in SESSION_PATH, f"a {kind} is never {status}"
    chair = expert
    if kind == Kind.TELECONSULTATION:
        start, end = (starts_at, starts_at + dt.timedelta(hours=1)) if starts_at else session_time()
        consult = services.consult_schedule(
            actor=expert, consult=consult, starts_at=start, ends_at=end, meeting_url="https://meeting.example.cn/j/1"
        )
    else:
        held = on_meeting or meeting()
        chair = user_of(held.chair)
        consult = services.meeting_add_case(actor=telecentre, meeting=held, consult=consult)
    if status == Status.SCHEDULED:
        return consult
    consult = services.consult_start(actor=chair, consult=consult)
    if status == Status.IN_DISCUSSION:
        return consult
    consult = services.consult_conclude(
        actor=chair, consult=consult, conclusion="建议神经内镜下血肿清除术", recommendations="术前完善凝血功能"
    )
    if status == Status.CONCLUDED:
        return consult
    assert status == Status.CLOSED, status
    return services.consult_close(
        actor=requester, consult=consult, referral_avoided=False, management_changed=True, value_rating=4
    )


def pdf_upload(name: str = "ct-report.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PDF_BYTES, content_type="application/pdf")


def text_upload(name: str = "ct-report.txt") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, TEXT_BYTES, content_type="text/plain")


def reload(consult: Consult) -> Consult:
    return Consult.objects.get(pk=consult.pk)
