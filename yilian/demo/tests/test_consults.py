"""The demo consult history: a year of teleconsultations that walk the transition table, keep the
service levels' deadlines, tell the stories' figures and leave live work for the personas."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import statistics
from collections import Counter, defaultdict
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.utils import timezone

from yilian.consults import selectors, services, workflow
from yilian.consults.models import (
    ConsentMethod,
    Consult,
    ConsultEvent,
    Kind,
    Meeting,
    Message,
    MessageKind,
    Opinion,
    Participant,
    ReadingType,
    Status,
    Urgency,
)
from yilian.consults.workflow import TRANSITIONS, Action, Side
from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Role
from yilian.demo.consults import ACCOUNTS, CASES, ConsultSeed, seed_consults
from yilian.patients.models import Patient
from yilian.patients.services import id_number_clean
from yilian.registry.models import Institution, Membership, Practitioner, User

pytestmark = pytest.mark.django_db

FIXED_NOW = dt.datetime(2026, 6, 15, 2, 0, tzinfo=dt.UTC)  # a Monday morning in China
NUMBER = re.compile(r"^C(\d{6})[A-HJ-NP-Z2-9]{6}$")


def _wipe() -> None:
    """Delete the consult history and its patients (inside the test's transaction)."""
    patients = list(Patient.objects.filter(consults__isnull=False).values_list("pk", flat=True).distinct())
    for model in (Opinion, Message, ConsultEvent, Participant):
        model._default_manager.all().delete()
    Consult.objects.all().delete()
    Meeting.objects.all().delete()
    Patient.objects.filter(pk__in=patients).delete()


def _snapshot() -> list[tuple[Any, ...]]:
    return list(
        Consult.objects.order_by("number").values_list(
            "number", "public_id", "kind", "status", "requested_at", "answered_at", "patient__name", "expert__name_zh"
        )
    )


def _counts() -> tuple[int, ...]:
    models = (Consult, ConsultEvent, Message, Opinion, Meeting, Participant, Patient, Practitioner, User, AuditEvent)
    return tuple(m._default_manager.count() for m in models)


def _hours(a: dt.datetime, b: dt.datetime) -> float:
    return (b - a).total_seconds() / 3600


# -- idempotency and determinism --------------------------------------------------------------


def test_a_second_run_creates_nothing_and_writes_no_audit_rows() -> None:
    before = _counts()

    again = seed_consults(seed=2018)

    assert again == ConsultSeed()
    assert _counts() == before


def test_the_same_seed_and_clock_reproduce_the_history_with_one_audit_row_per_run() -> None:
    _wipe()
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    report = seed_consults(seed=2018, now=FIXED_NOW)
    first = _snapshot()
    audit = AuditEvent.objects.filter(id__gt=last)
    assert audit.count() == 1  # the experts and doctors are there already: only the history's row
    assert (audit.get().action, audit.get().changes["seeded"]) == (AuditAction.CREATE, report.consults)
    _wipe()

    again = seed_consults(seed=2018, now=FIXED_NOW)

    assert again == report
    assert _snapshot() == first
    assert report.consults == len(first) > 500
    _wipe()
    seed_consults(seed=7, now=FIXED_NOW)
    assert not {row[0] for row in _snapshot()} & {row[0] for row in first}


def test_numbers_carry_the_request_day_and_are_unique() -> None:
    rows = list(Consult.objects.values_list("number", "requested_at"))
    assert len({n for n, _at in rows}) == len(rows)
    for number, at in rows:
        match = NUMBER.match(number)
        assert match, number
        assert match.group(1) == f"{timezone.localtime(at):%y%m%d}"


# -- every consult is a legal walk ---------------------------------------------------------------


def test_every_consult_walks_the_transition_table() -> None:
    timelines: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for consult_id, *event in ConsultEvent.objects.order_by("at", "id").values_list(
        "consult_id", "action", "from_status", "to_status", "at", "side", "actor_label", "note", "institution_id"
    ):
        timelines[consult_id].append(tuple(event))
    consults = list(Consult.objects.values_list("pk", "kind", "status", "requested_at", "from_institution_id"))
    assert consults
    for pk, kind, status, requested_at, from_institution in consults:
        first, *steps = timelines[pk]
        assert first[:3] == ("request", "", Status.REQUESTED)
        assert (first[3], first[4], first[7]) == (requested_at, Side.REQUESTER, from_institution)
        current, last = Status.REQUESTED, requested_at
        for action, from_status, to_status, at, side, label, note, _institution in steps:
            transition = TRANSITIONS[(Status(from_status), Action(action))]
            assert from_status == current, (pk, action)
            assert to_status == transition.to
            assert kind in transition.kinds, (kind, action)
            assert side in transition.sides_for(kind), (kind, action, side)
            assert note or not transition.reason_required
            assert label
            assert last <= at <= timezone.now()
            current, last = Status(to_status), at
        assert current == status


def test_each_kind_reading_and_status_occurs() -> None:
    kinds = Counter(Consult.objects.values_list("kind", flat=True))
    assert set(kinds) == set(Kind)
    assert kinds[Kind.ECONSULT] > sum(kinds.values()) / 2  # mostly eConsults
    readings = set(Consult.objects.filter(kind=Kind.READING).values_list("reading_type", flat=True))
    assert readings == set(ReadingType)
    statuses = Counter(Consult.objects.values_list("status", flat=True))
    assert set(statuses) == set(Status)
    assert statuses[Status.CLOSED] > sum(statuses.values()) / 2  # a year of history is mostly closed
    for status in (Status.DECLINED, Status.CANCELLED, Status.EXPIRED):
        assert 0 < statuses[status] < 0.06 * sum(statuses.values()), status
    declined = Consult.objects.filter(status__in=[Status.DECLINED, Status.CANCELLED, Status.EXPIRED])
    assert not declined.filter(last_reason="").exists()


def test_deadlines_are_the_ones_the_services_set() -> None:
    for c in Consult.objects.all():
        levels = services.service_levels_for(c.consortium_id, c.kind, c.urgency, c.reading_type)
        assert c.accept_due_at == c.requested_at + levels.accept_within, c.number
        if c.kind in workflow.WRITTEN:
            assert c.answer_due_at == c.requested_at + levels.answer_within, c.number
        elif c.scheduled_end is not None:
            session = services.service_levels_for(c.consortium_id, c.kind, c.urgency)
            assert c.answer_due_at == c.scheduled_end + session.answer_within, c.number
        else:
            assert c.answer_due_at is None, c.number


def test_fields_follow_the_steps_taken() -> None:
    for c in Consult.objects.select_related("meeting"):
        times = [t for t in (c.consent_at, c.requested_at, c.accepted_at, c.answered_at, c.closed_at) if t]
        assert times == sorted(times), c.number
        if c.status in (Status.ANSWERED, Status.CONCLUDED, Status.CLOSED):
            assert c.answered_at and c.conclusion and c.concluded_by_id, c.number
        if c.status == Status.CLOSED:
            assert c.closed_at and c.referral_avoided is not None and c.value_rating, c.number
        if c.kind != Kind.MDT and c.accepted_at is not None:
            assert c.expert_id is not None, c.number
        if c.kind in workflow.SESSION and c.status in (Status.SCHEDULED, Status.IN_DISCUSSION, Status.CONCLUDED):
            assert c.scheduled_start and c.scheduled_end and c.meeting_url, c.number
        if c.kind == Kind.MDT and c.meeting is not None:
            assert (c.scheduled_start, c.scheduled_end) == (c.meeting.starts_at, c.meeting.ends_at)
        if c.named_expert_id is not None:
            assert c.expert_id in (None, c.named_expert_id), c.number


def test_every_pair_has_an_agreement_in_force_and_its_consortium() -> None:
    pairs = set(
        Consult.objects.values_list("from_institution_id", "to_institution_id", "agreement_id", "consortium_id")
    )
    codes = dict(Institution.objects.values_list("pk", "code"))
    assert {(codes[a], codes[b]) for a, b, _agreement, _consortium in pairs} >= {
        ("khph", "zju2"), ("qzph", "zju2"), ("qz2ph", "zju2"), ("csph", "zju1"), ("jsph", "zju1"),
        ("bjfph", "zjpph"), ("qzph", "zjus"),
    }  # fmt: skip
    for a, b, agreement_id, consortium_id in pairs:
        agreement = services.agreement_between(Institution.objects.get(pk=a), Institution.objects.get(pk=b))
        assert agreement is not None and agreement.pk == agreement_id
        assert agreement.consortium_id == consortium_id


def test_patients_are_registered_with_written_consent_taken_by_a_nurse() -> None:
    nurses = set(Practitioner.objects.filter(title__contains="nurse").values_list("name_zh", flat=True))
    doctors = set(Practitioner.objects.exclude(title__contains="nurse").values_list("name_zh", flat=True))
    by_nurse = 0
    consults = list(Consult.objects.select_related("patient", "from_practitioner"))
    for c in consults:
        assert c.patient.registered_by_id == c.from_institution_id
        assert c.patient.id_number and id_number_clean(c.patient.id_number) == c.patient.id_number
        assert c.consent_method in ConsentMethod.values
        assert c.consent_at < c.requested_at
        assert c.consent_obtained_by and c.consent_obtained_by not in doctors
        by_nurse += c.consent_obtained_by in nurses
        assert c.from_practitioner.institution_id == c.from_institution_id
        assert c.from_department_id == c.from_practitioner.department_id
    assert by_nurse > 0
    assert len({c.patient_id for c in consults}) == len(consults)


# -- the stories' figures -------------------------------------------------------------------------


def test_econsults_are_answered_in_about_21_hours_mostly_avoiding_a_referral() -> None:
    answered = Consult.objects.filter(kind=Kind.ECONSULT, answered_at__isnull=False)
    hours = [_hours(c.requested_at, c.answered_at) for c in answered if c.answered_at]
    assert len(hours) > 200
    assert 17 <= statistics.median(hours) <= 25
    assert Message.objects.filter(consult__kind=Kind.ECONSULT, kind=MessageKind.INFO_REQUEST).count() >= 25
    closed = Consult.objects.filter(kind=Kind.ECONSULT, status=Status.CLOSED)
    avoided = closed.filter(referral_avoided=True).count() / closed.count()
    assert 0.55 <= avoided <= 0.78
    values = Counter(closed.values_list("value_rating", flat=True))
    assert (values[4] + values[5]) / closed.count() >= 0.7


def test_frozen_sections_from_the_county_hospitals_are_read_within_30_minutes() -> None:
    frozen = Consult.objects.filter(kind=Kind.READING, reading_type=ReadingType.FROZEN_SECTION).select_related(
        "from_institution", "to_institution", "concluded_by__department"
    )
    read = [c for c in frozen if c.answered_at is not None]
    assert len(read) >= 40
    for c in read:
        assert c.answered_at is not None
        assert c.answered_at - c.requested_at <= dt.timedelta(minutes=30), c.number
        assert c.concluded_by is not None and c.concluded_by.department is not None
        assert c.concluded_by.department.discipline == "pathology"
        assert timezone.localtime(c.requested_at).weekday() < 5 or c.requested_at.date()  # an operating day
    by_zju2 = [c for c in read if c.to_institution.code == "zju2"]
    assert len(by_zju2) > len(read) / 2
    assert {c.from_institution.code for c in by_zju2} == {"khph"}


def test_the_neuro_oncology_mdt_meets_every_two_weeks_chaired_by_chen_zhiyuan() -> None:
    chen = Practitioner.objects.get(user__username="expert")
    meetings = list(Meeting.objects.filter(institution__code="zju2").order_by("starts_at"))
    held = [m for m in meetings if m.status == Meeting.MeetingStatus.HELD]
    assert len(held) >= 22
    assert {m.chair_id for m in meetings} == {chen.pk}
    assert Meeting.objects.filter(status=Meeting.MeetingStatus.CANCELLED).count() == 1
    gaps = [(b.starts_at - a.starts_at).days for a, b in itertools.pairwise(meetings)]
    assert statistics.median(gaps) == 14
    for meeting in held:
        departments = set(meeting.participants.values_list("practitioner__department__discipline", flat=True))
        assert len(departments) >= 4 and "neurosurgery" in departments
        cases = list(meeting.cases.all())
        assert 2 <= len(cases) <= 4
        for case in cases:
            assert case.kind == Kind.MDT and case.concluded_by_id == chen.pk
            opinions = case.opinions.select_related("practitioner__department")
            assert len({o.practitioner.department.discipline for o in opinions if o.practitioner.department}) >= 2
            invited = set(meeting.participants.values_list("practitioner_id", flat=True))
            assert {o.practitioner_id for o in opinions} <= invited
            assert all(
                meeting.starts_at <= o.created_at <= meeting.ends_at + dt.timedelta(minutes=10) for o in opinions
            )
    chaired = ConsultEvent.objects.filter(consult__kind=Kind.MDT, action__in=["start", "conclude"])
    assert set(chaired.values_list("side", flat=True)) == {Side.CHAIR}


def test_the_cancelled_meetings_cases_moved_to_the_next() -> None:
    cancelled = Meeting.objects.get(status=Meeting.MeetingStatus.CANCELLED)
    moved = ConsultEvent.objects.filter(action="schedule", data__previous=cancelled.number)
    assert moved.exists()
    for event in moved:
        meeting = event.consult.meeting
        assert meeting is not None and meeting.pk != cancelled.pk
        assert meeting.starts_at > cancelled.starts_at


def test_the_mdt_experts_accounts_answer_consults_but_cannot_log_in() -> None:
    zju2 = Institution.objects.get(code="zju2")
    for username in ACCOUNTS:
        account = User.objects.get(username=username)
        assert not account.has_usable_password()
        assert authenticate(request=RequestFactory().get("/"), username=username, password="") is None
        assert Membership.objects.filter(user=account, role=Role.DOCTOR, institution=zju2).exists()
        practitioner = Practitioner.objects.get(user=account)
        assert services.answers_consults(practitioner)


def test_the_cases_are_told_in_full() -> None:
    for c in Consult.objects.all():
        case = next(v for v in CASES.values() if v.name == c.diagnosis_name)
        assert (c.reason, c.question, c.diagnosis_code) == (case.reason, case.question, case.code)
        assert c.discipline == case.discipline


# -- live work for the personas ------------------------------------------------------------------


def test_the_stationed_expert_has_requests_to_accept_and_an_econsult_in_discussion(persona: Any) -> None:
    expert = persona("expert")
    queue = selectors.consult_queue(expert, box="for_me")
    to_accept = [
        c for c in queue.rows.filter(status=Status.REQUESTED) if Action.ACCEPT in workflow.allowed_actions(expert, c)
    ]
    assert len(to_accept) >= 2
    assert any(selectors.is_overdue(c) for c in to_accept)
    chen = Practitioner.objects.get(user=expert)
    discussing = queue.rows.filter(status=Status.IN_DISCUSSION, kind=Kind.ECONSULT, expert=chen)
    assert discussing.exists()
    assert Action.ANSWER in workflow.allowed_actions(expert, discussing.first())  # type: ignore[arg-type]
    worklist = selectors.consult_worklist(expert)
    assert worklist is not None and worklist.to_accept >= 2 and worklist.to_answer >= 1


def test_the_kaihua_doctor_has_an_answer_to_close_out(persona: Any) -> None:
    kaihua = persona("kaihua")
    answered = selectors.consult_queue(kaihua, box="asked").rows.filter(status=Status.ANSWERED, kind=Kind.ECONSULT)
    recent = [c for c in answered if c.answered_at and c.answered_at > timezone.now() - dt.timedelta(days=1)]
    assert recent
    assert Action.CLOSE in workflow.allowed_actions(kaihua, recent[0])


def test_the_teleconsultation_centre_has_a_pool_and_next_weeks_mdt(persona: Any) -> None:
    telecentre = persona("telecentre")
    incoming = selectors.consult_queue(telecentre, box="incoming").rows
    pool = incoming.filter(status=Status.REQUESTED, expert__isnull=True, named_expert__isnull=True)
    assert pool.filter(requested_at__gte=timezone.now() - dt.timedelta(hours=12)).count() >= 2
    assert Action.ASSIGN in workflow.allowed_actions(telecentre, pool.first())  # type: ignore[arg-type]
    today = timezone.localdate()
    next_week = today + dt.timedelta(days=7 - today.weekday())
    planned = Meeting.objects.get(status=Meeting.MeetingStatus.PLANNED)
    assert next_week <= timezone.localdate(planned.starts_at) < next_week + dt.timedelta(days=7)
    assert planned.cases.filter(status=Status.SCHEDULED).count() >= 2
    assert planned.participants.filter(response=Participant.Response.PENDING).exists()
    assert incoming.filter(kind=Kind.MDT, status=Status.ACCEPTED, meeting__isnull=True).exists()
    assert any(selectors.is_overdue(c) for c in incoming.filter(status__in=workflow.OPEN))


def test_the_readers_have_work_waiting(persona: Any) -> None:
    for username, status in (("radiologist", Status.REQUESTED), ("pathologist", Status.ACCEPTED)):
        rows = selectors.consult_queue(persona(username), box="for_me").rows
        assert rows.filter(kind=Kind.READING, status=status).exists(), username


def test_future_sessions_keep_clear_of_each_other_and_of_leave() -> None:
    sessions = Consult.objects.filter(
        kind=Kind.TELECONSULTATION, status=Status.SCHEDULED, scheduled_start__gt=timezone.now()
    )
    assert sessions.exists()
    for c in sessions:
        assert c.scheduled_start is not None and c.scheduled_end is not None and c.expert_id is not None
        conflicts = selectors.conflicts_for([c.expert_id], c.scheduled_start, c.scheduled_end, exclude_consult=c.pk)
        assert not [x for x in conflicts if x.blocking], c.number
    urgent_open = Consult.objects.filter(urgency=Urgency.URGENT, status=Status.REQUESTED)
    stale = urgent_open.filter(requested_at__lt=timezone.now() - dt.timedelta(days=1))
    assert not stale.exists()  # the sweep would have expired them
