"""Builders for referral tests: valid resident ID numbers, patients, the office of the Quzhou
neurosurgery alliance, and referrals driven to any status through the services, the way the
people involved would (never by writing the status field).

The default referral is the alliance's everyday case: Wang Jianguo (``doctor``, neurology at
Changshan County People's Hospital, csph) refers a stroke patient up to Quzhou People's Hospital
(qzph), where the on-call coordinator (``coordinator``) handles it. Both hospitals are members
of ``quzhou-neuro``, whose office ``neuro_office_create`` adds (the demo ``office`` runs another
consortium).
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, Protocol

from django.utils import timezone
from stdnum.cn import ric

from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD
from yilian.patients.models import Patient
from yilian.patients.services import patient_register
from yilian.referrals import services
from yilian.referrals.models import Referral, Status
from yilian.registry.models import Consortium, Department, Institution, User
from yilian.registry.services import membership_grant, user_create

NEURO_OFFICE = "neuro_office"

_serial = itertools.count(101)


class MakeReferral(Protocol):
    """The signature of ``referral_create`` below (and of the ``make_referral`` fixture)."""

    def __call__(
        self,
        status: Status = ...,
        *,
        urgency: str = ...,
        direction: str = ...,
        patient: Patient | None = ...,
        sender: User | None = ...,
        receiver: User | None = ...,
        office: User | None = ...,
        from_code: str = ...,
        to_code: str = ...,
        **create_kwargs: Any,
    ) -> Referral: ...


def valid_id_number(body: str) -> str:
    """The 18-character resident ID number for 17 digits: appends the check digit.

    ``ric.calc_check_digit`` takes the whole number and ignores its last character, so it is
    given the 17 digits with a placeholder.
    """
    assert len(body) == 17 and body.isdigit()
    return body + ric.calc_check_digit(body + "0")


def next_id_number(*, region: str = "330822", birth: str = "19580315", male: bool = True) -> str:
    """A fresh valid number (another sequence number each call); an odd 17th digit is male."""
    seq = f"{next(_serial) % 1000:03d}"
    if (int(seq[-1]) % 2 == 1) != male:
        seq = seq[:2] + str((int(seq[-1]) + 1) % 10)
    return valid_id_number(region + birth + seq)


def consent(*, minutes_ago: int = 10) -> services.Consent:
    return services.Consent(
        obtained_by="王建国", method="written", at=timezone.now() - dt.timedelta(minutes=minutes_ago)
    )


CARE_PLAN = {
    "diagnosis": "右侧基底节区脑出血（术后）",
    "treatment_done": "神经内镜下血肿清除术，术后第5天转入康复",
    "medication": "氨氯地平 5 mg 每日一次；阿托伐他汀 20 mg 每晚一次",
    "follow_up": "出院后2周、1个月、3个月神经外科门诊复查头颅CT",
    "warning_signs": "头痛加重、呕吐、意识改变或肢体无力加重时立即就诊",
}


def user(username: str) -> User:
    return User.objects.get(username=username)


def neuro_office_create() -> User:
    """A consortium-office user of the Quzhou neurosurgery alliance (lead qzph)."""
    existing = User.objects.filter(username=NEURO_OFFICE).first()
    if existing is not None:
        return existing
    neuro = Consortium.objects.get(code="quzhou-neuro")
    office = user_create(actor=None, username=NEURO_OFFICE, password=DEMO_PASSWORD, display_name="徐晓燕")
    membership_grant(
        actor=None, user=office, role=Role.CONSORTIUM_OFFICE, institution=neuro.lead_institution, consortium=neuro
    )
    return office


def patient_create(
    *, name: str = "陈福生", id_number: str | None = None, registered_at: str = "csph", **fields: Any
) -> Patient:
    """Register a patient through the service; a fresh valid ID number unless given ("" = unidentified)."""
    return patient_register(
        actor=user("doctor"),
        institution=Institution.objects.get(code=registered_at),
        name=name,
        id_number=next_id_number() if id_number is None else id_number,
        phone=fields.pop("phone", "13905701234"),
        **fields,
    )


def referral_create(
    status: Status = Status.SENT,
    *,
    urgency: str = "routine",
    direction: str = "up",
    patient: Patient | None = None,
    sender: User | None = None,
    receiver: User | None = None,
    office: User | None = None,
    from_code: str = "csph",
    to_code: str = "qzph",
    **create_kwargs: Any,
) -> Referral:
    """A referral driven to ``status`` through the services.

    Paths: draft (created) -> sent -> received (coordinator) -> accepted -> scheduled (tomorrow)
    -> arrived -> in_treatment -> outcome_returned -> closed (the sender acknowledges); declined
    branches off received, cancelled (by the sender) off sent; no_show is the worker's step once
    the grace period has passed; forwarded is a referral addressed to the consortium office which
    the office forwards to ``to_code``. Other people can stand for the sides (``sender``,
    ``receiver``, ``office``) when other institutions are involved; extra keyword arguments go to
    ``services.referral_create``.
    """
    sender = sender or user("doctor")
    receiver = receiver or user("coordinator")
    office = office or neuro_office_create()
    status = Status(status)
    frm = Institution.objects.get(code=from_code)
    to = Institution.objects.get(code=to_code)
    routed = status == Status.FORWARDED
    kwargs: dict[str, Any] = {
        "reason": "晨练时突发左侧肢体无力2小时，CTA 提示右侧大脑中动脉闭塞，需机械取栓",
        "requested_service": "admission",
        "diagnosis_code": "I63.9",
        "diagnosis_name": "急性脑梗死",
        "key_findings": "NIHSS 12分；头颅CT未见出血",
        "current_treatment": "阿替普酶静脉溶栓中",
        "allergies": "青霉素",
        "consent": consent(),
        **create_kwargs,
    }
    if direction == "down":
        kwargs.setdefault("care_plan", CARE_PLAN)
    if routed:
        kwargs.setdefault("consortium", services.common_consortium(frm, to))
    else:
        kwargs.setdefault("to_department", Department.objects.filter(institution=to, discipline="neurosurgery").first())
    referral, _created = services.referral_create(
        actor=sender,
        patient=patient or patient_create(),
        direction=direction,
        urgency=urgency,
        from_institution=frm,
        to_institution=None if routed else to,
        send=status != Status.DRAFT,
        **kwargs,
    )
    if status in (Status.DRAFT, Status.SENT):
        return referral
    if routed:
        return services.referral_forward(
            actor=office, referral=referral, to_institution=to, reason="神经外科在衢州市人民医院"
        )
    if status == Status.CANCELLED:
        return services.referral_cancel(actor=sender, referral=referral, reason="家属决定转往杭州")
    referral = services.referral_receive(actor=receiver, referral=referral)
    if status == Status.RECEIVED:
        return referral
    if status == Status.DECLINED:
        return services.referral_decline(actor=receiver, referral=referral, reason="本院导管室检修，无法取栓")
    referral = services.referral_accept(actor=receiver, referral=referral)
    if status == Status.ACCEPTED:
        return referral
    referral = services.referral_schedule(
        actor=receiver,
        referral=referral,
        scheduled_at=timezone.now() + dt.timedelta(days=1),
        place="门诊楼三楼 神经外科诊室",
        instructions="携带身份证、医保卡和既往影像资料",
    )
    if status == Status.SCHEDULED:
        return referral
    if status == Status.NO_SHOW:
        assert referral.scheduled_at is not None
        grace = services.service_levels_for(referral.consortium_id, referral.urgency).no_show_grace
        return services.referral_mark_no_show(
            actor=None, referral=referral, now=referral.scheduled_at + grace + dt.timedelta(minutes=1)
        )
    referral = services.referral_check_in(actor=receiver, referral=referral)
    if status == Status.ARRIVED:
        return referral
    referral = services.referral_start_treatment(actor=receiver, referral=referral)
    if status == Status.IN_TREATMENT:
        return referral
    up = direction == "up"
    referral = services.referral_return_outcome(
        actor=receiver,
        referral=referral,
        diagnosis="右侧大脑中动脉M1段闭塞 急性脑梗死",
        treatment="机械取栓术，TICI 3级再通",
        result="肌力恢复至4级，NIHSS 3分",
        recommendations="继续双抗血小板治疗3个月；康复训练",
        refer_back=True if up else None,
        refer_back_on=timezone.localdate() + dt.timedelta(days=7) if up else None,
    )
    if status == Status.OUTCOME_RETURNED:
        return referral
    referral = services.referral_acknowledge(actor=sender, referral=referral)
    assert status == Status.CLOSED, status
    return referral
