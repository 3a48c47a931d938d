"""What happens after a referral step commits: in-app notifications and webhooks.

Who is told:
- a referral arriving (sent, forwarded to them): the receiving institution's on-call
  coordinators and the doctors of the receiving department; with no destination, the
  consortium office;
- a decision, appointment, no-show, outcome or cancellation: the referring doctor and the
  person who created the referral; a forward also tells them where it went;
- a cancellation by the sender: the receiving side;
- overdue: first the receiving coordinators, then the consortium office.
The institution on the receiving end of the message also gets its webhooks.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import translation

from yilian.core.permissions import Role
from yilian.notifications import services as notifications
from yilian.referrals.models import Referral, ReferralEvent, Status
from yilian.referrals.workflow import Action, Side
from yilian.registry.models import Institution, Membership, User


def _link(referral: Referral) -> str:
    return reverse("referrals:detail", args=[referral.public_id])


def receivers(referral: Referral) -> list[User]:
    if referral.to_institution_id is None:
        return office(referral)
    q = Q(memberships__role=Role.ONCALL_COORDINATOR, memberships__institution_id=referral.to_institution_id)
    if referral.to_department_id is not None:
        q |= Q(
            practitioner__department_id=referral.to_department_id,
            memberships__institution_id=referral.to_institution_id,
            memberships__role__in=[Role.DOCTOR, Role.STATIONED_EXPERT],
        )
    return list(User.objects.filter(q, is_active=True, memberships__is_active=True).distinct())


def senders(referral: Referral) -> list[User]:
    users = [referral.created_by]
    if referral.from_practitioner is not None and referral.from_practitioner.user is not None:
        users.append(referral.from_practitioner.user)
    return [u for u in users if u.is_active]


def office(referral: Referral) -> list[User]:
    ids = Membership.objects.filter(
        role=Role.CONSORTIUM_OFFICE, consortium_id=referral.consortium_id, is_active=True
    ).values("user_id")
    return list(User.objects.filter(pk__in=ids, is_active=True))


def _text(referral: Referral, zh: str, en: str) -> tuple[str, str]:
    with translation.override("zh-hans"):
        title_zh = f"{zh} · {referral.number} · {referral.get_direction_display()} · {referral.get_urgency_display()}"
    with translation.override("en"):
        title_en = f"{en} · {referral.number} · {referral.get_direction_display()} · {referral.get_urgency_display()}"
    return title_zh, title_en


_MESSAGES: dict[str, tuple[str, str]] = {
    Action.SEND: ("新转诊待接收", "New referral to receive"),
    Action.FORWARD: ("转诊已转至贵院", "Referral forwarded to you"),
    Action.ACCEPT: ("转诊已接受", "Referral accepted"),
    Action.DECLINE: ("转诊被拒绝", "Referral declined"),
    Action.SCHEDULE: ("转诊已预约", "Referral scheduled"),
    Action.CHECK_IN: ("患者已到院", "Patient arrived"),
    Action.RETURN_OUTCOME: ("转诊结果已回传", "Referral outcome returned"),
    Action.CANCEL: ("转诊已取消", "Referral cancelled"),
    Action.MARK_NO_SHOW: ("患者未按时到院", "Patient did not arrive"),
    Action.ACKNOWLEDGE: ("转诊已闭环", "Referral closed"),
}


def _tell(users: Iterable[User], institution: Institution | None, referral: Referral, zh: str, en: str) -> None:
    title_zh, title_en = _text(referral, zh, en)
    link = _link(referral)
    notifications.notify(users=users, kind="referral", title_zh=title_zh, title_en=title_en, link=link)
    notifications.webhooks_enqueue(
        institution=institution, text=f"{title_zh}\n{title_en}", link=settings.SITE_URL + link
    )


def announce(referral_id: int, event_id: int) -> None:
    referral = Referral.objects.select_related(
        "from_practitioner__user", "created_by", "to_institution", "from_institution"
    ).get(pk=referral_id)
    event = ReferralEvent.objects.get(pk=event_id)
    action = event.action
    if referral.green_channel:
        _announce_green(referral, event)
        return
    if action not in _MESSAGES:
        return
    zh, en = _MESSAGES[action]
    if action in (Action.SEND, Action.FORWARD):
        _tell(receivers(referral), referral.to_institution, referral, zh, en)
        if action == Action.FORWARD:
            _tell(senders(referral), None, referral, zh.replace("贵院", "他院"), "Referral forwarded")
        return
    if action == Action.CANCEL and event.side != Side.RECEIVER and event.from_status != Status.DRAFT:
        _tell(receivers(referral), referral.to_institution, referral, zh, en)
    if action == Action.ACKNOWLEDGE:
        _tell(receivers(referral), None, referral, zh, en)
        return
    if event.side != Side.SENDER:
        _tell(senders(referral), referral.from_institution, referral, zh, en)


def overdue(referral_id: int, *, level: int) -> None:
    referral = Referral.objects.select_related("to_institution", "consortium__lead_institution").get(pk=referral_id)
    if level == 1:
        _tell(receivers(referral), referral.to_institution, referral, "转诊已超时，请尽快处理", "Referral overdue")
    else:
        _tell(office(referral), referral.consortium.lead_institution, referral, "转诊超时升级", "Referral escalated")


# --- green channel ------------------------------------------------------------------------------

_GREEN: dict[str, tuple[str, str]] = {
    Action.SEND: ("绿色通道：新病例待接收", "Green channel: new case to accept"),
    Action.ACCEPT: ("绿色通道：已接收", "Green channel: accepted"),
    Action.DECLINE: ("绿色通道：对方拒绝，已转下一家", "Green channel: declined, offered to the next hospital"),
    Action.FORWARD: ("绿色通道：已转下一家", "Green channel: offered to the next hospital"),
    Action.CHECK_IN: ("绿色通道：患者已到院", "Green channel: patient arrived"),
    Action.CANCEL: ("绿色通道：已取消", "Green channel: cancelled"),
}
_GREEN_NEW = ("绿色通道：新病例待接收", "Green channel: new case to accept")
_GREEN_NOBODY = (
    "绿色通道：无医院接收，请办公室协调",
    "Green channel: no hospital took the case; the office must route it",
)


def _green_link(referral: Referral) -> str:
    return reverse("referrals:green_case", args=[referral.public_id])


def _tell_green(users: Iterable[User], institution: Institution | None, referral: Referral, zh: str, en: str) -> None:
    protocol = referral.green.protocol_version.protocol
    title_zh = f"{zh} · {protocol.name_zh} · {referral.number}"
    title_en = f"{en} · {protocol.name_en} · {referral.number}"
    link = _green_link(referral)
    notifications.notify(users=users, kind="green_channel", title_zh=title_zh, title_en=title_en, link=link)
    notifications.webhooks_enqueue(
        institution=institution, text=f"{title_zh}\n{title_en}", link=settings.SITE_URL + link
    )


def _announce_green(referral: Referral, event: ReferralEvent) -> None:
    """Who hears of a green-channel step: a new destination's coordinators (or the office when no
    destination is left), the sender for answers, arrival and moves, the receiver for a cancellation."""
    action = event.action
    if action not in _GREEN:
        return
    zh, en = _GREEN[action]
    if action in (Action.SEND, Action.DECLINE, Action.FORWARD):
        if referral.to_institution_id is None:
            _tell_green(office(referral), referral.consortium.lead_institution, referral, *_GREEN_NOBODY)
        else:
            _tell_green(receivers(referral), referral.to_institution, referral, *_GREEN_NEW)
        if action == Action.SEND:
            return
    if action == Action.CANCEL:  # everyone concerned hears of it, except who did it
        if event.side != Side.RECEIVER and referral.to_institution_id is not None:
            _tell_green(receivers(referral), referral.to_institution, referral, zh, en)
        if event.side != Side.SENDER:
            _tell_green(senders(referral), referral.from_institution, referral, zh, en)
        if event.side != Side.OFFICE:
            _tell_green(office(referral), None, referral, zh, en)
        return
    _tell_green(senders(referral), referral.from_institution, referral, zh, en)


def green_escalated(referral_id: int, reason: str) -> None:
    """An offer timed out: the consortium office hears of it (with the reason) at once."""
    referral = Referral.objects.select_related("consortium__lead_institution", "green__protocol_version__protocol").get(
        pk=referral_id
    )
    _tell_green(
        office(referral), referral.consortium.lead_institution, referral, f"绿色通道超时升级：{reason}",
        f"Green channel escalated: {reason}",
    )  # fmt: skip
