"""Scheduling teleconsultations and MDT meetings: another session of the same expert or leave
refuses a time; a day on site at a host hospital is only a note (the meeting is online); free
times skip what blocks and the days nobody works; a meeting is called, moved, joined and
cancelled by the host's coordinator."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from yilian.consults import selectors, services
from yilian.consults.models import Consult, Kind, Meeting, Participant, Status
from yilian.consults.tests import factories
from yilian.consults.tests.factories import Cast
from yilian.core.permissions import Role
from yilian.dispatch import selectors as stationing_selectors
from yilian.dispatch.models import DayKind, Leave, RosterDay
from yilian.dispatch.tests import factories as stationing
from yilian.notifications.models import Notification
from yilian.registry.models import Practitioner

pytestmark = pytest.mark.django_db

HOUR = dt.timedelta(hours=1)


def working_day(after_days: int = 3) -> dt.date:
    """The first Monday-to-Wednesday at least ``after_days`` ahead (never a weekend, seldom a holiday)."""
    day = timezone.localdate() + dt.timedelta(days=after_days)
    while day.weekday() > 2:
        day += dt.timedelta(days=1)
    return day


def at(day: dt.date, hour: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def accepted_by(expert: Practitioner) -> Consult:
    """A teleconsultation a coordinator gave to ``expert``, who accepted it."""
    consult = factories.request(Kind.TELECONSULTATION)
    services.consult_assign(actor=factories.user("telecentre"), consult=consult, expert=expert)
    return services.consult_accept(actor=factories.user_of(expert), consult=consult)


def schedule(consult: Consult, start: dt.datetime, hours: int = 1) -> Consult:
    return services.consult_schedule(
        actor=factories.user("telecentre"), consult=consult, starts_at=start, ends_at=start + hours * HOUR
    )


def conflict_messages(call: Callable[[], object]) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        call()
    return refused.value.message_dict["starts_at"]


# ----------------------------------------------------------------------------------------
# Teleconsultations


def test_a_teleconsultation_is_refused_over_another_of_the_same_expert() -> None:
    expert = factories.doctor()
    day = working_day()
    first = schedule(accepted_by(expert), at(day, 10))
    second = accepted_by(expert)
    (message,) = conflict_messages(lambda: schedule(second, at(day, 10) + HOUR / 2))
    assert first.number in message
    assert schedule(second, at(day, 11)).status == Status.SCHEDULED  # back to back is fine
    stored = factories.reload(second)
    assert (stored.scheduled_start, stored.scheduled_end) == (at(day, 11), at(day, 12))


def test_rescheduling_a_teleconsultation_does_not_conflict_with_itself() -> None:
    expert = factories.doctor()
    day = working_day()
    consult = schedule(accepted_by(expert), at(day, 10))
    moved = schedule(consult, at(day, 10) + HOUR / 2)
    assert moved.scheduled_start == at(day, 10) + HOUR / 2
    assert moved.answer_due_at == at(day, 11) + HOUR / 2 + 24 * HOUR  # routine: a day after the session


def test_a_teleconsultation_is_refused_during_an_mdt_meeting_of_the_expert(people: Cast) -> None:
    day = working_day()
    meeting = factories.meeting(starts_at=at(day, 14))
    consult = factories.consult_in(Status.ACCEPTED, Kind.TELECONSULTATION)  # people.expert's
    (message,) = conflict_messages(lambda: schedule(consult, at(day, 14) + HOUR / 2))
    assert meeting.title in message


def test_a_teleconsultation_is_refused_on_the_experts_leave() -> None:
    expert = factories.doctor()
    day = working_day()
    Leave.objects.create(practitioner=expert, starts_on=day, ends_on=day, reason="学术会议")
    consult = accepted_by(expert)
    (message,) = conflict_messages(lambda: schedule(consult, at(day, 10)))
    assert expert.name in message
    assert schedule(consult, at(day + dt.timedelta(days=1), 10)).status == Status.SCHEDULED


def test_a_day_on_site_at_a_host_hospital_is_a_note_not_a_block() -> None:
    expert = stationing.expert_create()
    day = working_day()
    programme = stationing.programme_create(starts_on=timezone.localdate())
    assignment = stationing.assignment_create(programme, expert)
    RosterDay.objects.create(assignment=assignment, date=day, kind=DayKind.ON_SITE)
    (note,) = selectors.conflicts_for([expert.pk], at(day, 10), at(day, 11))
    assert note.blocking is False and note.practitioner_id == expert.pk
    assert programme.host_institution.name in note.text
    consult = factories.request(Kind.TELECONSULTATION, wanted_title="")
    services.consult_assign(actor=factories.user("telecentre"), consult=consult, expert=expert)
    services.consult_accept(actor=stationing.account_of(expert), consult=consult)
    assert schedule(consult, at(day, 10)).status == Status.SCHEDULED


def test_a_teleconsultation_is_scheduled_only_with_its_expert_known(people: Cast) -> None:
    consult = services.consult_accept(actor=people.coordinator, consult=factories.request(Kind.TELECONSULTATION))
    with pytest.raises(ValidationError) as refused:
        schedule(consult, at(working_day(), 10))
    assert "expert" in refused.value.message_dict


def test_a_session_time_must_be_ahead_ordered_and_at_most_eight_hours() -> None:
    consult = accepted_by(factories.doctor())
    day = working_day()
    for start, end, field in (
        (timezone.now() - 2 * HOUR, timezone.now() - HOUR, "starts_at"),
        (at(day, 10), at(day, 9), "ends_at"),
        (at(day, 8), at(day, 17), "ends_at"),
    ):
        with pytest.raises(ValidationError) as refused:
            services.consult_schedule(actor=factories.user("telecentre"), consult=consult, starts_at=start, ends_at=end)
        assert field in refused.value.message_dict


def test_only_a_teleconsultation_is_scheduled_on_its_own(people: Cast) -> None:
    mdt = factories.consult_in(Status.ACCEPTED, Kind.MDT)
    start = at(working_day(), 10)
    with pytest.raises(ValidationError):
        services.consult_schedule(actor=people.coordinator, consult=mdt, starts_at=start, ends_at=start + HOUR)


# ----------------------------------------------------------------------------------------
# Free times


def test_free_slots_skip_blocked_times_and_days_nobody_works() -> None:
    expert = factories.doctor()
    monday = timezone.localdate() + dt.timedelta(days=7 - timezone.localdate().weekday())  # next Monday
    if monday - timezone.localdate() < dt.timedelta(days=2):
        monday += dt.timedelta(days=7)
    tuesday, saturday = monday + dt.timedelta(days=1), monday + dt.timedelta(days=5)
    schedule(accepted_by(expert), at(monday, 10))
    Leave.objects.create(practitioner=expert, starts_on=tuesday, ends_on=tuesday)
    slots = selectors.free_slots([expert.pk], first_day=monday, days=7, limit=40)
    starts = [s.starts_at for s in slots]
    working = stationing_selectors.calendar_horizon(monday, monday + dt.timedelta(days=7)).working_days
    if monday in working:
        assert at(monday, 8) in starts and at(monday, 14) in starts
        assert at(monday, 10) not in starts  # the teleconsultation
    assert not any(timezone.localdate(s) == tuesday for s in starts)  # leave
    assert not any(timezone.localdate(s) == saturday for s in starts)  # weekend
    assert all(timezone.localdate(s) in working for s in starts)
    assert all(s.ends_at - s.starts_at == HOUR for s in slots)


# ----------------------------------------------------------------------------------------
# MDT meetings


def test_an_mdt_meeting_is_called_by_a_coordinator_of_the_host_with_its_chair_invited(
    people: Cast, announced: Callable[[], AbstractContextManager[None]]
) -> None:
    with announced():
        meeting = factories.meeting(starts_at=at(working_day(), 14))
    invited = set(Participant.objects.filter(meeting=meeting).values_list("practitioner__user__username", flat=True))
    assert invited == {"pathologist", "expert"}
    assert meeting.consortium.code == "zju2-quzhou" and meeting.sequence == 0
    for username in ("pathologist", "expert"):
        assert Notification.objects.filter(
            user__username=username, title_en__startswith="MDT meeting invitation"
        ).exists()
    with pytest.raises(PermissionDenied):
        services.meeting_create(
            actor=people.expert,
            institution=factories.institution("zju2"),
            title="MDT",
            chair=factories.practitioner(people.expert),
            starts_at=at(working_day(), 16),
            ends_at=at(working_day(), 17),
            experts=[],
        )


def test_a_meeting_is_refused_over_another_meeting_of_an_expert_or_with_someone_who_does_not_answer() -> None:
    day = working_day()
    factories.meeting(starts_at=at(day, 14))
    assert conflict_messages(lambda: factories.meeting(starts_at=at(day, 14) + HOUR / 2, title="第二场"))
    no_account = factories.doctor(with_account=False)
    with pytest.raises(ValidationError) as refused:
        factories.meeting(starts_at=at(day, 9), experts=[no_account])
    assert "experts" in refused.value.message_dict


def test_inviting_adds_an_expert_once_and_bumps_the_sequence(people: Cast) -> None:
    day = working_day()
    meeting = factories.meeting(starts_at=at(day, 14))
    radiologist = factories.practitioner(people.other_expert)
    services.meeting_invite(actor=people.coordinator, meeting=meeting, expert=radiologist)
    assert Meeting.objects.get(pk=meeting.pk).sequence == 1
    with pytest.raises(ValidationError):
        services.meeting_invite(actor=people.coordinator, meeting=meeting, expert=radiologist)
    with pytest.raises(PermissionDenied):
        services.meeting_invite(actor=people.chair, meeting=meeting, expert=factories.doctor())
    busy = factories.doctor()
    schedule(accepted_by(busy), at(day, 14))
    with pytest.raises(ValidationError):
        services.meeting_invite(actor=people.coordinator, meeting=meeting, expert=busy)


def test_rescheduling_a_meeting_moves_its_cases_and_their_deadlines(
    people: Cast, django_capture_on_commit_callbacks: Any
) -> None:
    day = working_day()
    meeting = factories.meeting(starts_at=at(day, 14))
    case = factories.consult_in(Status.SCHEDULED, Kind.MDT, on_meeting=meeting)
    assert case.scheduled_start == at(day, 14) and case.answer_due_at == at(day, 15) + 24 * HOUR
    later = day + dt.timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        moved = services.meeting_reschedule(
            actor=people.coordinator, meeting=meeting, starts_at=at(later, 9), ends_at=at(later, 11)
        )
    assert moved.sequence == 1 and moved.starts_at == at(later, 9)
    # The invited experts and the requesting doctor of the case are told.
    assert Notification.objects.filter(user=people.expert, title_en__startswith="MDT meeting moved").count() == 1
    told = Notification.objects.filter(user=people.requester, title_en__startswith="Consult moved")
    assert told.filter(link__contains=str(case.public_id)).count() == 1
    stored = factories.reload(case)
    assert (stored.scheduled_start, stored.scheduled_end) == (at(later, 9), at(later, 11))
    assert stored.answer_due_at == at(later, 11) + 24 * HOUR
    busy = factories.user_of(factories.doctor())
    with pytest.raises(PermissionDenied):
        services.meeting_reschedule(actor=busy, meeting=meeting, starts_at=at(later, 14), ends_at=at(later, 15))


def test_rescheduling_a_meeting_onto_an_experts_other_session_is_refused(people: Cast) -> None:
    day = working_day()
    meeting = factories.meeting(starts_at=at(day, 14))
    other = factories.consult_in(Status.ACCEPTED, Kind.TELECONSULTATION)
    schedule(other, at(day, 9))  # people.expert, invited to the meeting
    with pytest.raises(ValidationError):
        services.meeting_reschedule(
            actor=people.coordinator, meeting=meeting, starts_at=at(day, 9), ends_at=at(day, 10)
        )
    assert Meeting.objects.get(pk=meeting.pk).starts_at == at(day, 14)


def test_a_meeting_is_not_cancelled_while_cases_are_on_its_agenda(people: Cast) -> None:
    meeting = factories.meeting(starts_at=at(working_day(), 14))
    case = factories.consult_in(Status.SCHEDULED, Kind.MDT, on_meeting=meeting)
    with pytest.raises(ValidationError) as refused:
        services.meeting_cancel(actor=people.coordinator, meeting=meeting, reason="专家出差")
    assert "meeting" in refused.value.message_dict
    with pytest.raises(ValidationError):
        services.meeting_cancel(actor=people.coordinator, meeting=meeting, reason=" ")
    services.consult_cancel(actor=people.requester, consult=case, reason="患者已转院")
    cancelled = services.meeting_cancel(actor=people.coordinator, meeting=meeting, reason="专家出差")
    assert cancelled.status == Meeting.MeetingStatus.CANCELLED and cancelled.sequence == 1
    with pytest.raises(ValidationError):
        services.meeting_add_case(
            actor=people.coordinator, meeting=cancelled, consult=factories.consult_in(Status.ACCEPTED, Kind.MDT)
        )
    # A cancelled meeting no longer holds its experts' time.
    conflicts = selectors.conflicts_for([factories.practitioner(people.expert).pk], meeting.starts_at, meeting.ends_at)
    assert [c for c in conflicts if c.blocking] == []


def test_an_mdt_case_goes_on_a_meeting_of_the_consulted_institution_only(people: Cast) -> None:
    elsewhere = services.meeting_create(
        actor=factories.account(role=Role.ONCALL_COORDINATOR, institution_code="qzph"),
        institution=factories.institution("qzph"),
        title="衢州MDT",
        chair=factories.doctor(institution_code="qzph"),
        starts_at=at(working_day(), 14),
        ends_at=at(working_day(), 15),
        experts=[],
    )
    case = factories.consult_in(Status.ACCEPTED, Kind.MDT)
    with pytest.raises(ValidationError):
        services.meeting_add_case(actor=people.coordinator, meeting=elsewhere, consult=case)
    econsult = factories.consult_in(Status.ACCEPTED)
    with pytest.raises(ValidationError):
        services.meeting_add_case(actor=people.coordinator, meeting=factories.meeting(), consult=econsult)


def test_mdt_experts_come_from_the_hospital_that_holds_the_meeting(people: Cast) -> None:
    day = working_day()
    county_doctor = factories.practitioner(people.requester)  # answers consults, at khph
    with pytest.raises(ValidationError) as refused:
        factories.meeting(starts_at=at(day, 9), experts=[county_doctor])
    assert "experts" in refused.value.message_dict
    meeting = factories.meeting(starts_at=at(day, 14))
    with pytest.raises(ValidationError) as refused:
        services.meeting_invite(actor=people.coordinator, meeting=meeting, expert=county_doctor)
    assert "expert" in refused.value.message_dict
