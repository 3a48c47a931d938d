"""What happens after a consult step commits: in-app notifications and webhooks.

Who is told:
- a new request: the named expert, else the experts of the specialty pool holding the title
  wanted, and the consulted institution's consult coordinators;
- an assignment: the chosen expert;
- accepted, declined, scheduled, more information asked, answered, concluded, expired: the
  requesting doctor and the person who wrote the request;
- information provided, a follow-up question, a cancellation by the requester: the expert (or
  the pool and coordinators when none is chosen yet);
- closed: the expert (the close-out is feedback on their advice);
- overdue: first the consulted side, then the consortium office;
- an MDT invitation or change: the invited experts (with a calendar file on the meeting page).
The institution on the receiving end of a message also gets its webhooks.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.urls import reverse
from django.utils import translation

from yilian.consults import workflow
from yilian.consults.models import Consult, ConsultEvent, Meeting, Message, Status
from yilian.consults.workflow import Action, Side
from yilian.core.permissions import Role
from yilian.notifications import services as notifications
from yilian.registry.models import Institution, Membership, Practitioner, User


def _link(consult: Consult) -> str:
    return reverse("consults:detail", args=[consult.public_id])


def _active(users: Iterable[User | None]) -> list[User]:
    return [u for u in users if u is not None and u.is_active]


def coordinators(institution_id: int) -> list[User]:
    ids = Membership.objects.filter(
        institution_id=institution_id,
        role__in=[Role.ONCALL_COORDINATOR, Role.HOSPITAL_ADMIN],
        is_active=True,
    ).values("user_id")
    return list(User.objects.filter(pk__in=ids, is_active=True))


def experts(consult: Consult) -> list[User]:
    """The consult's expert, else its named expert, else the pool that may take it."""
    chosen = consult.expert or consult.named_expert
    if chosen is not None:
        return _active([chosen.user])
    if consult.meeting_id is not None:
        return meeting_people(consult.meeting)  # type: ignore[arg-type]
    pool = Practitioner.objects.filter(
        institution_id=consult.to_institution_id, is_active=True, user__isnull=False
    ).select_related("user")
    if consult.to_department_id is not None:
        pool = pool.filter(department_id=consult.to_department_id)
    members = Membership.objects.filter(
        institution_id=consult.to_institution_id,
        role__in=[Role.DOCTOR, Role.STATIONED_EXPERT],
        is_active=True,
    ).values("user_id")
    pool = pool.filter(user_id__in=members)
    return _active(p.user for p in pool if workflow.meets_title(p, consult.wanted_title))


def consulted_side(consult: Consult) -> list[User]:
    return experts(consult) + coordinators(consult.to_institution_id)


def requesters(consult: Consult) -> list[User]:
    return _active([consult.created_by, consult.from_practitioner.user])


def office(consult: Consult) -> list[User]:
    ids = Membership.objects.filter(
        role=Role.CONSORTIUM_OFFICE, consortium_id=consult.consortium_id, is_active=True
    ).values("user_id")
    return list(User.objects.filter(pk__in=ids, is_active=True))


def meeting_people(meeting: Meeting) -> list[User]:
    return _active(p.practitioner.user for p in meeting.participants.select_related("practitioner__user"))


def _text(consult: Consult, zh: str, en: str) -> tuple[str, str]:
    with translation.override("zh-hans"):
        title_zh = f"{zh} · {consult.number} · {consult.get_kind_display()} · {consult.get_urgency_display()}"
    with translation.override("en"):
        title_en = f"{en} · {consult.number} · {consult.get_kind_display()} · {consult.get_urgency_display()}"
    return title_zh, title_en


def _tell(users: Iterable[User], institution: Institution | None, consult: Consult, zh: str, en: str) -> None:
    title_zh, title_en = _text(consult, zh, en)
    link = _link(consult)
    notifications.notify(users=users, kind="consult", title_zh=title_zh, title_en=title_en, link=link)
    notifications.webhooks_enqueue(
        institution=institution, text=f"{title_zh}\n{title_en}", link=settings.SITE_URL + link
    )


_TO_REQUESTER: dict[str, tuple[str, str]] = {
    Action.ACCEPT: ("会诊已接受", "Consult accepted"),
    Action.DECLINE: ("会诊被拒绝", "Consult declined"),
    Action.SCHEDULE: ("会诊已排期", "Consult scheduled"),
    Action.ASK_INFO: ("专家需要补充资料", "The expert asks for more information"),
    Action.ANSWER: ("会诊已答复", "Consult answered"),
    Action.CONCLUDE: ("会诊已出结论", "Consult concluded"),
    Action.EXPIRE: ("会诊申请已过期", "Consult request expired"),
}
_TO_EXPERT: dict[str, tuple[str, str]] = {
    Action.PROVIDE_INFO: ("申请方已补充资料", "More information provided"),
    Action.FOLLOW_UP: ("申请方追问", "Follow-up question"),
    Action.CLOSE: ("会诊已关闭并反馈", "Consult closed with feedback"),
    Action.CANCEL: ("会诊已取消", "Consult cancelled"),
}


def announce(consult_id: int, event_id: int) -> None:
    consult = Consult.objects.select_related(
        "from_practitioner__user", "created_by", "to_institution", "from_institution", "expert__user", "meeting"
    ).get(pk=consult_id)
    event = ConsultEvent.objects.get(pk=event_id)
    action = event.action
    if action == "request":
        _tell(consulted_side(consult), consult.to_institution, consult, "新会诊申请", "New consult request")
        return
    if action == Action.ASSIGN:
        _tell(experts(consult), None, consult, "会诊已分派给您", "Consult assigned to you")
        return
    if action in _TO_REQUESTER and event.side != Side.REQUESTER:
        zh, en = _TO_REQUESTER[action]
        _tell(requesters(consult), consult.from_institution, consult, zh, en)
    if action == Action.CANCEL and event.side in (Side.COORDINATOR, Side.OFFICE):
        _tell(requesters(consult), consult.from_institution, consult, "会诊已取消", "Consult cancelled")
    if action in _TO_EXPERT and event.side in (Side.REQUESTER, Side.SYSTEM, Side.COORDINATOR, Side.OFFICE):
        zh, en = _TO_EXPERT[action]
        _tell(experts(consult), consult.to_institution, consult, zh, en)


def message_posted(consult_id: int, message_id: int) -> None:
    consult = Consult.objects.select_related("from_practitioner__user", "created_by", "expert__user").get(pk=consult_id)
    message = Message.objects.get(pk=message_id)
    if message.institution_id == consult.from_institution_id:
        _tell(experts(consult), None, consult, "会诊新留言", "New message on a consult")
    else:
        _tell(requesters(consult), None, consult, "会诊新留言", "New message on a consult")


def overdue(consult_id: int, *, level: int) -> None:
    consult = Consult.objects.select_related("to_institution", "consortium__lead_institution", "expert__user").get(
        pk=consult_id
    )
    if level == 1:
        _tell(consulted_side(consult), consult.to_institution, consult, "会诊已超时，请尽快处理", "Consult overdue")
    else:
        _tell(office(consult), consult.consortium.lead_institution, consult, "会诊超时升级", "Consult escalated")


def _meeting_text(meeting: Meeting, zh: str, en: str) -> tuple[str, str]:
    when = meeting.starts_at.astimezone().strftime("%Y-%m-%d %H:%M")
    return f"{zh} · {meeting.title} · {when}", f"{en} · {meeting.title} · {when}"


def meeting_invited(meeting_id: int, practitioner_ids: list[int]) -> None:
    meeting = Meeting.objects.get(pk=meeting_id)
    users = _active(p.user for p in Practitioner.objects.filter(pk__in=practitioner_ids).select_related("user"))
    title_zh, title_en = _meeting_text(meeting, "MDT会议邀请", "MDT meeting invitation")
    notifications.notify(
        users=users,
        kind="consult",
        title_zh=title_zh,
        title_en=title_en,
        link=reverse("consults:meeting", args=[meeting.public_id]),
    )


def meeting_changed(meeting_id: int) -> None:
    meeting = Meeting.objects.get(pk=meeting_id)
    if meeting.status == Meeting.MeetingStatus.CANCELLED:
        title_zh, title_en = _meeting_text(meeting, "MDT会议已取消", "MDT meeting cancelled")
    else:
        title_zh, title_en = _meeting_text(meeting, "MDT会议时间变更", "MDT meeting moved")
    notifications.notify(
        users=meeting_people(meeting),
        kind="consult",
        title_zh=title_zh,
        title_en=title_en,
        link=reverse("consults:meeting", args=[meeting.public_id]),
    )
    # The requesting doctors of the cases still on its agenda learn the new time on their consult.
    for case in meeting.cases.filter(status__in=[Status.SCHEDULED, Status.IN_DISCUSSION]).select_related(
        "from_practitioner__user", "created_by"
    ):
        _tell(requesters(case), None, case, "会诊时间变更", "Consult moved")
