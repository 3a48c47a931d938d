"""The green channel's services and selectors, walked through the demo alliance's stroke story.

Wang Jianguo (``doctor``, Changshan County People's Hospital, csph) activates a stroke case; with
a CTA large-vessel occlusion it is offered first to Quzhou People's Hospital (qzph, on-call
``coordinator``), then, if qzph declines or does not answer within the alliance's offer timeout
(5 minutes), to the next-ranked hospitals: Jiangshan (jsph), Kaihua (khph), Qujiang (qjph),
Longyou (lyph); with none left the alliance's office routes it. The clock is frozen with
``time_machine`` at a Monday morning and moved by the tests. Steps announce themselves after
commit (notifications, boards): tests that check announcements run them with the on-commit
callbacks executed, as the real transaction would.

The demo seeds two years of green-channel history up to the moment it runs, a few cases still
open, and the alliance's travel-time matrix. The tests' clock therefore stands days after the
seed, and what a test checks is its own cases (boards also list the demo's open ones).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model
from django.test.utils import override_settings
from django.utils import timezone, translation

from yilian.core import events as bus
from yilian.core.errors import Conflict
from yilian.core.models import AuditEvent
from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD
from yilian.notifications.models import Notification
from yilian.patients.models import Patient
from yilian.referrals import green_selectors, green_services, protocols, services, workflow
from yilian.referrals.green_services import PatientGiven
from yilian.referrals.models import (
    GreenCase,
    GreenNode,
    GreenOffer,
    GreenProtocol,
    OfferOutcome,
    Referral,
    ReferralEvent,
    Status,
    TravelTime,
)
from yilian.registry import services as registry_services
from yilian.registry.models import Consortium, Institution, User

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _monday_morning_after(days: int) -> dt.datetime:
    day = timezone.localdate() + dt.timedelta(days=days)
    day += dt.timedelta(days=(7 - day.weekday()) % 7)
    return dt.datetime.combine(day, dt.time(9, 0), tzinfo=SHANGHAI)


# A Monday morning in Quzhou, days after the demo's history ends.
T0 = _monday_morning_after(3)
# A month that starts after the demo's history ends, for the report.
REPORT_MONTH = (timezone.localdate() + dt.timedelta(days=45)).replace(day=1)
NEXT_MONTH = (REPORT_MONTH + dt.timedelta(days=32)).replace(day=1)
MINUTE = dt.timedelta(minutes=1)
SECOND = dt.timedelta(seconds=1)
DESTINATIONS = ("qzph", "jsph", "khph", "qjph", "lyph")  # the ranking of a Changshan stroke with occlusion

Clock = Callable[[dt.timedelta], None]


@pytest.fixture
def clock(time_machine: Any) -> Clock:
    """Stand the clock still at T0; ``clock(delta)`` moves it to T0 + delta."""
    time_machine.move_to(T0, tick=False)

    def move(delta: dt.timedelta) -> None:
        time_machine.move_to(T0 + delta, tick=False)

    return move


@pytest.fixture
def stroke(neuro: Consortium) -> GreenProtocol:
    green_services.green_protocols_install_defaults(consortium=neuro)
    return GreenProtocol.objects.get(consortium=neuro, code="stroke")


@pytest.fixture
def coordinators(db: None, persona: Callable[[str], User]) -> dict[str, User]:
    """An on-call coordinator at each destination (the demo has one, at qzph)."""
    out = {"qzph": persona("coordinator")}
    for code in DESTINATIONS[1:]:
        user = registry_services.user_create(
            actor=None, username=f"oncall-{code}", password=DEMO_PASSWORD, display_name=f"{code} 值班"
        )
        registry_services.membership_grant(
            actor=None, user=user, role=Role.ONCALL_COORDINATOR, institution=Institution.objects.get(code=code)
        )
        out[code] = User.objects.get(pk=user.pk)
    return out


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Run a step and what it announces after commit, as a real transaction would."""

    def run(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(**kwargs)

    return run


def csph() -> Institution:
    return Institution.objects.get(code="csph")


def activation(protocol: GreenProtocol, **overrides: Any) -> dict[str, Any]:
    """The 30-second form as the doctor fills it in: a 66-year-old man, last known well an hour
    ago, NIHSS 14, CTA showing an occlusion, at the door 25 minutes ago."""
    now = dt.datetime.now(tz=SHANGHAI)
    return {
        "actor": User.objects.get(username="doctor"),
        "sender": csph(),
        "protocol": protocol,
        "patient": PatientGiven(name="徐卫东", sex="male", approximate_age=66),
        "onset_at": now - dt.timedelta(hours=1),
        "scores": {"nihss": 14},
        "imaging_done": True,
        "findings": ["lvo", "no_bleed"],
        "imaging_result": "CTA：右侧大脑中动脉 M1 段闭塞",
        "door_in_at": now - 25 * MINUTE,
        **overrides,
    }


def activate(protocol: GreenProtocol, **overrides: Any) -> GreenCase:
    return green_services.green_activate(**activation(protocol, **overrides))


def fresh(case: GreenCase) -> tuple[Referral, list[GreenOffer]]:
    referral = Referral.objects.select_related("to_institution").get(pk=case.referral_id)
    return referral, list(GreenOffer.objects.filter(case=case).select_related("institution").order_by("rank"))


def minutes(a: str, b: str) -> int:
    """The alliance's imported travel time from ``a`` to ``b``."""
    return TravelTime.objects.get(from_institution__code=a, to_institution__code=b).minutes


def on_board(user: User, cases: list[GreenCase]) -> list[int]:
    """Which of ``cases`` the user's first board lists, in the board's order; every row on it
    involves the board's institution (or consortium)."""
    scope = green_selectors.board_scopes_for(user)[0]
    views = green_selectors.green_board(user, scope)
    for v in views:
        if scope.kind == "institution":
            assert scope.obj.pk in (v.referral.from_institution_id, v.referral.to_institution_id)
        else:
            assert v.referral.consortium_id == scope.obj.pk
    wanted = {c.pk for c in cases}
    return [v.case.pk for v in views if v.case.pk in wanted]


def offers_of(case: GreenCase) -> list[tuple[str, str]]:
    return [(o.institution.code, o.outcome) for o in fresh(case)[1]]


def notices(user: User, case: GreenCase, title_en: str) -> int:
    referral = Referral.objects.get(pk=case.referral_id)
    return Notification.objects.filter(
        user=user, link__contains=str(referral.public_id), title_en__startswith=title_en
    ).count()


def assert_every_step_audited(case: GreenCase) -> None:
    """Each timeline event of the referral has its audit row (same action, same status change)."""
    referral = Referral.objects.get(pk=case.referral_id)
    audited = {
        (a.changes.get("action"), a.changes.get("from"), a.changes.get("to"))
        for a in AuditEvent.objects.filter(object_type="referrals.referral", object_id=str(referral.public_id))
    }
    events = ReferralEvent.objects.filter(referral=referral)
    assert events.exists()
    for event in events:
        assert (event.action, event.from_status, event.to_status) in audited, event


def row_counts() -> dict[str, int]:
    models: list[type[Model]] = [Referral, GreenCase, GreenOffer, GreenNode, Patient, ReferralEvent]
    return {m.__name__: m._default_manager.count() for m in models}


# --- activation ----------------------------------------------------------------------------------


def test_activation_offers_the_case_to_the_first_ranked_destination_and_records_the_first_nodes(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User], committed: Callable[..., Any]
) -> None:
    case = committed(green_services.green_activate, **activation(stroke))
    referral, offers = fresh(case)
    assert referral.green_channel and referral.status == Status.SENT
    assert referral.urgency == "urgent" and referral.diagnosis_code == "I63.9"
    assert referral.to_institution is not None and referral.to_institution.code == "qzph"
    assert [(o.institution.code, o.rank, o.outcome) for o in offers] == [("qzph", 1, OfferOutcome.PENDING)]
    assert offers[0].offered_at == T0 and offers[0].answer_due_at == T0 + 5 * MINUTE
    assert offers[0].eta_minutes == minutes("csph", "qzph") and offers[0].eta_basis == "matrix"
    assert case.protocol_version.version == 1
    assert case.scores == {"nihss": 14} and case.findings == ["lvo", "no_bleed"] and case.imaging_done
    view = green_selectors.access_green_case(User.objects.get(username="doctor"), str(referral.public_id))
    assert {code: node.at for code, node in view.nodes.items()} == {
        "onset": T0 - dt.timedelta(hours=1),
        "door_in": T0 - 25 * MINUTE,
        "decision": T0,
    }
    assert {n.institution_id for n in view.nodes.values()} == {csph().pk}
    assert {n.recorded_by.username for n in view.nodes.values() if n.recorded_by} == {"doctor"}
    assert notices(coordinators["qzph"], case, "Green channel: new case to accept") == 1
    assert notices(coordinators["jsph"], case, "Green channel") == 0
    assert AuditEvent.objects.filter(object_type="referrals.greencase", object_id=str(case.public_id)).exists()
    assert_every_step_audited(case)


def test_an_unidentified_patient_needs_only_sex_and_approximate_age(stroke: GreenProtocol, clock: Clock) -> None:
    case = activate(stroke, patient=PatientGiven(sex="female", approximate_age=70))
    patient = Referral.objects.get(pk=case.referral_id).patient
    assert (patient.sex, patient.approximate_age) == ("female", 70) and not patient.id_number
    assert patient.name  # a placeholder the staff recognise, to be replaced once known
    view = green_selectors.access_green_case(User.objects.get(username="doctor"), str(case.referral.public_id))
    assert str(patient.get_sex_display()) in view.patient_summary and "70" in view.patient_summary


def test_onset_unknown_is_accepted_and_opens_no_window(stroke: GreenProtocol, clock: Clock) -> None:
    case = activate(stroke, onset_at=None, onset_unknown=True)
    view = green_selectors.access_green_case(User.objects.get(username="doctor"), str(case.referral.public_id))
    assert case.onset_at is None and "onset" not in view.nodes
    assert all(w.closes_at is None for w in view.windows)


REFUSALS: dict[str, tuple[Callable[[GreenProtocol], dict[str, Any]], type[Exception], str]] = {
    "onset in the future": (lambda p: {"onset_at": T0 + 10 * MINUTE}, ValidationError, "onset_at"),
    "onset eight days ago": (lambda p: {"onset_at": T0 - dt.timedelta(days=8)}, ValidationError, "onset_at"),
    "onset missing, not ticked unknown": (lambda p: {"onset_at": None}, ValidationError, "onset_at"),
    "NIHSS above 42": (lambda p: {"scores": {"nihss": 43}}, ValidationError, "scores"),
    "NIHSS not a number": (lambda p: {"scores": {"nihss": "severe"}}, ValidationError, "scores"),
    "a score of another protocol": (lambda p: {"scores": {"killip": 2}}, ValidationError, "scores"),
    "a finding the protocol lacks": (lambda p: {"findings": ["st_elevation"]}, ValidationError, "findings"),
    "a destination lacking the capabilities": (
        lambda p: {"destination": Institution.objects.get(code="cs-tianma")},
        ValidationError,
        "destination",
    ),
    "a door-in time in the future": (lambda p: {"door_in_at": T0 + 10 * MINUTE}, ValidationError, "door_in_at"),
    "an age of 130": (
        lambda p: {"patient": PatientGiven(sex="male", approximate_age=130)},
        ValidationError,
        "approximate_age",
    ),
    "a doctor of another hospital": (
        lambda p: {"actor": User.objects.get(username="kaihua")},
        PermissionDenied,
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_activation_is_refused_with_nothing_written(case: str, stroke: GreenProtocol, clock: Clock) -> None:
    change, error, field = REFUSALS[case]
    before = row_counts()
    with pytest.raises(error) as caught:
        activate(stroke, **change(stroke))
    if field:
        assert isinstance(caught.value, ValidationError)
        assert field in caught.value.message_dict, caught.value.message_dict
    assert row_counts() == before


def test_activation_with_an_inactive_protocol_is_refused(
    stroke: GreenProtocol, clock: Clock, neuro_office: User
) -> None:
    definition = stroke.versions.get().definition
    green_services.green_protocol_revise(
        actor=neuro_office, protocol=stroke, definition=definition, note="改用新卒中方案", is_active=False
    )
    before = row_counts()
    with pytest.raises(ValidationError) as caught:
        activate(GreenProtocol.objects.get(pk=stroke.pk))
    assert "protocol" in caught.value.message_dict
    assert row_counts() == before


def test_a_case_keeps_the_protocol_version_it_started_with(
    stroke: GreenProtocol, clock: Clock, neuro_office: User
) -> None:
    first = activate(stroke)
    definition = stroke.versions.get().definition
    definition["metrics"][0]["target_minutes"] = 90  # door-in-door-out target tightened
    green_services.green_protocol_revise(actor=neuro_office, protocol=stroke, definition=definition, note="DIDO 90")
    second = activate(stroke)
    assert (first.protocol_version.version, second.protocol_version.version) == (1, 2)
    doctor = User.objects.get(username="doctor")
    dido = [
        next(
            m for m in green_selectors.access_green_case(doctor, str(c.referral.public_id)).metrics if m.code == "dido"
        )
        for c in (first, second)
    ]
    assert [m.target_minutes for m in dido] == [120, 90]


def test_times_without_a_zone_are_read_as_china_time(stroke: GreenProtocol, clock: Clock) -> None:
    """A client that sends "08:00" means 08:00 in Quzhou, for the case and for the ranking alike."""
    onset, door_in = T0 - dt.timedelta(hours=1), T0 - 25 * MINUTE
    case = activate(stroke, onset_at=onset.replace(tzinfo=None), door_in_at=door_in.replace(tzinfo=None))
    assert case.onset_at == onset
    view = green_selectors.access_green_case(User.objects.get(username="doctor"), str(case.referral.public_id))
    assert (view.nodes["onset"].at, view.nodes["door_in"].at) == (onset, door_in)
    evt = next(w for w in view.windows if w.code == "evt")
    assert evt.closes_at == onset + dt.timedelta(hours=6)
    with pytest.raises(ValidationError) as caught:
        activate(stroke, door_in_at=(T0 + 10 * MINUTE).replace(tzinfo=None))
    assert "door_in_at" in caught.value.message_dict


def test_a_phone_clock_a_minute_fast_is_tolerated(stroke: GreenProtocol, clock: Clock) -> None:
    case = activate(stroke, onset_at=T0 + MINUTE, door_in_at=T0 + MINUTE)
    assert case.onset_at == T0 + MINUTE


def test_the_doctor_may_pick_another_destination_the_ranking_offers(stroke: GreenProtocol, clock: Clock) -> None:
    case = activate(stroke, destination=Institution.objects.get(code="khph"))
    assert offers_of(case) == [("khph", OfferOutcome.PENDING)]


# --- answers -------------------------------------------------------------------------------------


def test_the_destination_coordinator_accepts_with_one_step(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User], committed: Callable[..., Any]
) -> None:
    case = activate(stroke)
    clock(2 * MINUTE)
    committed(green_services.green_accept, actor=coordinators["qzph"], case=case)
    referral, (offer,) = fresh(case)
    assert referral.status == Status.ACCEPTED and referral.decided_at == T0 + 2 * MINUTE
    assert (offer.outcome, offer.answered_by, offer.answered_at) == (
        OfferOutcome.ACCEPTED,
        coordinators["qzph"],
        T0 + 2 * MINUTE,
    )
    doctor = User.objects.get(username="doctor")
    assert notices(doctor, case, "Green channel: accepted") == 1
    event = ReferralEvent.objects.get(referral=referral, action="accept")
    assert (event.side, event.actor, event.data["answer_seconds"]) == ("receiver", coordinators["qzph"], 120)
    assert_every_step_audited(case)


def test_someone_of_another_destination_cannot_accept(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = activate(stroke)
    with pytest.raises(PermissionDenied):
        green_services.green_accept(actor=coordinators["jsph"], case=case)
    with pytest.raises(PermissionDenied):
        green_services.green_accept(actor=User.objects.get(username="doctor"), case=case)
    assert offers_of(case) == [("qzph", OfferOutcome.PENDING)]


def test_a_decline_with_a_reason_offers_the_case_to_the_next_destination(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User], committed: Callable[..., Any]
) -> None:
    case = activate(stroke)
    clock(MINUTE)
    with pytest.raises(ValidationError):
        green_services.green_decline(actor=coordinators["qzph"], case=case, reason="  ")
    committed(green_services.green_decline, actor=coordinators["qzph"], case=case, reason="导管室正在手术，无法取栓")
    referral, offers = fresh(case)
    assert referral.status == Status.FORWARDED
    assert referral.to_institution is not None and referral.to_institution.code == "jsph"
    assert [(o.institution.code, o.rank, o.outcome) for o in offers] == [
        ("qzph", 1, OfferOutcome.DECLINED),
        ("jsph", 2, OfferOutcome.PENDING),
    ]
    assert offers[0].reason == "导管室正在手术，无法取栓" and offers[0].answered_by == coordinators["qzph"]
    assert offers[1].offered_at == T0 + MINUTE and offers[1].answer_due_at == T0 + 6 * MINUTE
    assert case.eta_minutes == minutes("csph", "jsph")
    assert notices(coordinators["jsph"], case, "Green channel: new case to accept") == 1
    assert notices(User.objects.get(username="doctor"), case, "Green channel: declined") == 1
    # Jiangshan holds the offer now: Quzhou's coordinator is told where the case went.
    with translation.override("en"), pytest.raises(Conflict) as caught:
        green_services.green_accept(actor=coordinators["qzph"], case=case)
    assert "no longer offered" in str(caught.value)
    with translation.override("en"):
        assert Institution.objects.get(code="jsph").name in str(caught.value)
    with pytest.raises(Conflict):
        green_services.green_decline(actor=coordinators["qzph"], case=case, reason="再次拒绝")
    green_services.green_accept(actor=coordinators["jsph"], case=case)
    assert fresh(case)[0].status == Status.ACCEPTED
    assert_every_step_audited(case)


def test_when_every_destination_declines_the_office_is_told_and_routes_the_case(
    stroke: GreenProtocol,
    clock: Clock,
    coordinators: dict[str, User],
    neuro_office: User,
    committed: Callable[..., Any],
) -> None:
    case = activate(stroke)
    for code in DESTINATIONS:
        committed(green_services.green_decline, actor=coordinators[code], case=case, reason=f"{code} 无床位")
    referral, offers = fresh(case)
    assert referral.status == Status.FORWARDED and referral.to_institution is None
    assert [(o.institution.code, o.outcome) for o in offers] == [(c, OfferOutcome.DECLINED) for c in DESTINATIONS]
    assert notices(neuro_office, case, "Green channel: no hospital took the case") == 1
    assert on_board(neuro_office, [case]) == [case.pk]
    # The office offers it to Quzhou again (a theatre has freed up); Quzhou accepts.
    clock(10 * MINUTE)
    with pytest.raises(ValidationError):
        green_services.green_forward(
            actor=neuro_office, case=case, to_institution=Institution.objects.get(code="cs-tianma"), reason="就近"
        )
    committed(
        green_services.green_forward,
        actor=neuro_office,
        case=case,
        to_institution=Institution.objects.get(code="qzph"),
        reason="已协调衢州市人民医院第二导管室",
    )
    referral, offers = fresh(case)
    assert referral.to_institution is not None and referral.to_institution.code == "qzph"
    assert (offers[-1].institution.code, offers[-1].rank, offers[-1].outcome) == ("qzph", 6, OfferOutcome.PENDING)
    assert offers[-1].answer_due_at == T0 + 15 * MINUTE
    assert notices(coordinators["qzph"], case, "Green channel: new case to accept") == 1
    assert notices(User.objects.get(username="doctor"), case, "Green channel: offered to the next hospital") == 1
    green_services.green_accept(actor=User.objects.get(pk=coordinators["qzph"].pk), case=case)
    assert fresh(case)[0].status == Status.ACCEPTED
    assert_every_step_audited(case)


def test_the_sender_cancels_and_the_offer_is_withdrawn(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User], committed: Callable[..., Any]
) -> None:
    case = activate(stroke)
    doctor = User.objects.get(username="doctor")
    committed(green_services.green_cancel, actor=doctor, case=case, reason="家属决定转往杭州")
    referral, (offer,) = fresh(case)
    assert referral.status == Status.CANCELLED and offer.outcome == OfferOutcome.WITHDRAWN
    assert notices(coordinators["qzph"], case, "Green channel: cancelled") == 1
    with pytest.raises((workflow.TransitionNotAllowed, PermissionDenied)):
        green_services.green_accept(actor=coordinators["qzph"], case=case)


# --- escalation ----------------------------------------------------------------------------------


def sweep(committed: Callable[..., Any], **kwargs: Any) -> green_services.GreenSweepReport:
    with translation.override("en"):
        report: green_services.GreenSweepReport = committed(green_services.green_sweep, **kwargs)
    return report


def test_no_answer_in_time_escalates_to_the_office_and_offers_the_next_destination(
    stroke: GreenProtocol,
    clock: Clock,
    coordinators: dict[str, User],
    neuro_office: User,
    committed: Callable[..., Any],
) -> None:
    case = activate(stroke)
    clock(4 * MINUTE)
    sweep(committed)
    sweep(committed, now=T0 + 5 * MINUTE)  # due at T0 + 5 min, not yet past
    assert offers_of(case) == [("qzph", OfferOutcome.PENDING)]
    assert fresh(case)[0].status == Status.SENT
    assert notices(neuro_office, case, "Green channel escalated") == 0

    clock(5 * MINUTE + SECOND)
    assert sweep(committed).escalated >= 1
    referral, offers = fresh(case)
    assert referral.status == Status.FORWARDED and referral.escalation_level == 2
    assert referral.to_institution is not None and referral.to_institution.code == "jsph"
    timed_out, nxt = offers
    assert (timed_out.institution.code, timed_out.outcome, timed_out.answered_by) == (
        "qzph",
        OfferOutcome.TIMED_OUT,
        None,
    )
    assert "5 minutes" in timed_out.reason
    assert (nxt.institution.code, nxt.rank, nxt.outcome) == ("jsph", 2, OfferOutcome.PENDING)
    assert nxt.offered_at == T0 + 5 * MINUTE + SECOND
    assert nxt.answer_due_at == T0 + 10 * MINUTE + SECOND
    assert notices(neuro_office, case, "Green channel escalated") == 1
    assert notices(coordinators["jsph"], case, "Green channel: new case to accept") == 1
    event = ReferralEvent.objects.get(referral=referral, action="forward")
    assert (event.side, event.actor, event.actor_label != "") == ("system", None, True)
    assert (event.data["from_institution"], event.data["to_institution"], event.data["rank"]) == ("qzph", "jsph", 2)
    assert_every_step_audited(case)

    # Running the sweep again at once changes nothing; Jiangshan's own time runs out later.
    sweep(committed)
    assert len(fresh(case)[1]) == 2
    clock(10 * MINUTE + 2 * SECOND)
    sweep(committed)
    assert offers_of(case) == [
        ("qzph", OfferOutcome.TIMED_OUT),
        ("jsph", OfferOutcome.TIMED_OUT),
        ("khph", OfferOutcome.PENDING),
    ]
    assert notices(neuro_office, case, "Green channel escalated") == 2


def test_the_offer_timeout_is_the_consortiums_setting(
    stroke: GreenProtocol, clock: Clock, neuro: Consortium, neuro_office: User, committed: Callable[..., Any]
) -> None:
    green_services.green_settings_set(
        actor=neuro_office, consortium=neuro, road_factor="1.35", average_speed_kmh=60, offer_timeout_minutes=3
    )
    case = activate(stroke)
    assert fresh(case)[1][0].answer_due_at == T0 + 3 * MINUTE
    clock(3 * MINUTE + SECOND)
    sweep(committed)
    assert fresh(case)[1][1].answer_due_at == T0 + 6 * MINUTE + SECOND


def test_an_answer_just_before_the_sweep_is_kept(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User], committed: Callable[..., Any]
) -> None:
    """The coordinator accepts a little late, before the worker's next round: the case stays."""
    case = activate(stroke)
    clock(5 * MINUTE + 30 * SECOND)
    green_services.green_accept(actor=coordinators["qzph"], case=case)
    sweep(committed)
    referral, offers = fresh(case)
    assert referral.status == Status.ACCEPTED and referral.escalation_level == 0
    assert [(o.institution.code, o.outcome) for o in offers] == [("qzph", OfferOutcome.ACCEPTED)]


def test_the_sweep_leaves_cancelled_and_declined_offers_alone(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User], committed: Callable[..., Any]
) -> None:
    cancelled = activate(stroke)
    green_services.green_cancel(actor=User.objects.get(username="doctor"), case=cancelled, reason="患者死亡")
    declined = activate(stroke)
    clock(MINUTE)
    green_services.green_decline(actor=coordinators["qzph"], case=declined, reason="无床位")
    clock(5 * MINUTE + SECOND)  # Jiangshan's offer is due at T0 + 6 min
    sweep(committed)
    assert offers_of(cancelled) == [("qzph", OfferOutcome.WITHDRAWN)]
    assert offers_of(declined) == [("qzph", OfferOutcome.DECLINED), ("jsph", OfferOutcome.PENDING)]


# --- time nodes ----------------------------------------------------------------------------------


def accepted_case(stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]) -> GreenCase:
    case = activate(stroke)
    clock(2 * MINUTE)
    green_services.green_accept(actor=coordinators["qzph"], case=case)
    return case


def test_the_sender_cannot_record_the_receivers_nodes(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = accepted_case(stroke, clock, coordinators)
    doctor = User.objects.get(username="doctor")
    for node in ("arrival", "puncture"):
        with translation.override("en"), pytest.raises(PermissionDenied) as caught:
            green_services.green_node_record(actor=doctor, case=case, node=node)
        assert "receiving hospital" in str(caught.value)
    with translation.override("en"), pytest.raises(PermissionDenied) as caught:
        green_services.green_node_record(actor=coordinators["qzph"], case=case, node="door_out")
    assert "sending hospital" in str(caught.value)
    assert not GreenNode.objects.filter(case=case, node__in=["arrival", "puncture", "door_out"]).exists()


def test_the_receiver_records_only_after_accepting(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = activate(stroke)
    coordinator = coordinators["qzph"]
    view = green_selectors.access_green_case(coordinator, str(case.referral.public_id))
    assert green_selectors.recordable_nodes(coordinator, view) == []
    with pytest.raises(PermissionDenied):
        green_services.green_node_record(actor=coordinator, case=case, node="needle")
    clock(2 * MINUTE)
    green_services.green_accept(actor=coordinator, case=case)
    row = green_services.green_node_record(actor=coordinator, case=case, node="needle")
    assert (row.at, row.institution.code if row.institution else None, row.recorded_by) == (
        T0 + 2 * MINUTE,
        "qzph",
        coordinator,
    )
    view = green_selectors.access_green_case(coordinator, str(case.referral.public_id))
    assert set(green_selectors.recordable_nodes(coordinator, view)) == {
        "onset",
        "arrival",
        "needle",
        "puncture",
        "reperfusion",
    }
    doctor = User.objects.get(username="doctor")
    assert "arrival" not in green_selectors.recordable_nodes(doctor, view)
    # A coordinator of a hospital the case never reached records nothing.
    with pytest.raises(PermissionDenied):
        green_services.green_node_record(actor=coordinators["jsph"], case=case, node="needle")


def test_a_correction_needs_a_reason_and_keeps_the_earlier_time(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = activate(stroke)
    doctor = User.objects.get(username="doctor")
    clock(40 * MINUTE)
    first = green_services.green_node_record(actor=doctor, case=case, node="door_out")
    with pytest.raises(Conflict):
        green_services.green_node_record(actor=doctor, case=case, node="door_out", at=T0 + 35 * MINUTE)
    clock(45 * MINUTE)
    second = green_services.green_node_record(
        actor=doctor, case=case, node="door_out", at=T0 + 35 * MINUTE, correction_reason="救护车实际 9:35 出发"
    )
    first.refresh_from_db()
    assert first.superseded_at == T0 + 45 * MINUTE and first.at == T0 + 40 * MINUTE
    assert second.superseded_at is None and second.note == "救护车实际 9:35 出发"
    assert GreenNode.objects.filter(case=case, node="door_out", superseded_at__isnull=True).count() == 1
    view = green_selectors.access_green_case(doctor, str(case.referral.public_id))
    assert view.nodes["door_out"].at == T0 + 35 * MINUTE
    assert [n.at for n in view.history if n.node == "door_out"] == [T0 + 40 * MINUTE, T0 + 35 * MINUTE]
    assert next(m for m in view.metrics if m.code == "dido").minutes == 60.0  # from door-in at 8:35
    corrections = AuditEvent.objects.filter(object_type="referrals.greencase", object_id=str(case.public_id))
    assert any(a.changes.get("correction") == "救护车实际 9:35 出发" for a in corrections)


def test_node_times_in_the_future_or_unknown_nodes_are_refused(stroke: GreenProtocol, clock: Clock) -> None:
    case = activate(stroke)
    doctor = User.objects.get(username="doctor")
    with pytest.raises(ValidationError):
        green_services.green_node_record(actor=doctor, case=case, node="door_out", at=T0 + 10 * MINUTE)
    with pytest.raises(ValidationError):
        green_services.green_node_record(actor=doctor, case=case, node="balloon")  # a STEMI node


def test_recording_arrival_moves_the_referral_to_arrived(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User], committed: Callable[..., Any]
) -> None:
    case = accepted_case(stroke, clock, coordinators)
    clock(55 * MINUTE)
    committed(green_services.green_node_record, actor=coordinators["qzph"], case=case, node="arrival")
    referral = Referral.objects.get(pk=case.referral_id)
    assert referral.status == Status.ARRIVED and referral.arrived_at == T0 + 55 * MINUTE
    assert ReferralEvent.objects.filter(referral=referral, action="check_in").count() == 1
    assert notices(User.objects.get(username="doctor"), case, "Green channel: patient arrived") == 1


def test_correcting_the_arrival_corrects_the_referrals_arrival_time(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = accepted_case(stroke, clock, coordinators)
    clock(60 * MINUTE)
    green_services.green_node_record(actor=coordinators["qzph"], case=case, node="arrival")
    green_services.green_node_record(
        actor=coordinators["qzph"],
        case=case,
        node="arrival",
        at=T0 + 52 * MINUTE,
        correction_reason="急诊分诊台记录 9:52 到院",
    )
    referral = Referral.objects.get(pk=case.referral_id)
    assert referral.status == Status.ARRIVED
    assert referral.arrived_at == T0 + 52 * MINUTE
    assert ReferralEvent.objects.filter(referral=referral, action="check_in").count() == 1


def test_times_can_no_longer_change_once_cancelled(stroke: GreenProtocol, clock: Clock) -> None:
    case = activate(stroke)
    doctor = User.objects.get(username="doctor")
    green_services.green_cancel(actor=doctor, case=case, reason="患者症状完全缓解")
    with pytest.raises(Conflict):
        green_services.green_node_record(actor=doctor, case=case, node="door_out")


def test_the_case_page_shows_the_metrics_and_flags_missed_targets(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = accepted_case(stroke, clock, coordinators)  # onset 8:00, door-in 8:35, decision 9:00
    doctor, coordinator = User.objects.get(username="doctor"), coordinators["qzph"]
    clock(3 * dt.timedelta(hours=1))
    record = green_services.green_node_record
    record(actor=doctor, case=case, node="imaging", at=T0 + 5 * MINUTE)  # 30 min after door-in
    record(actor=doctor, case=case, node="door_out", at=T0 + 40 * MINUTE)  # DIDO 65 min
    record(actor=coordinator, case=case, node="arrival", at=T0 + 85 * MINUTE)  # transfer 45 min
    record(actor=coordinator, case=case, node="needle", at=T0 + 110 * MINUTE)  # door-to-needle 25 min
    record(actor=coordinator, case=case, node="puncture", at=T0 + 180 * MINUTE)  # door-to-puncture 95 min
    view = green_selectors.access_green_case(doctor, str(case.referral.public_id))
    figures = {m.code: (m.minutes, m.missed) for m in view.metrics}
    assert figures == {
        "dido": (65.0, False),
        "door_to_imaging": (30.0, True),
        "door_to_needle": (25.0, False),
        "door_to_puncture": (95.0, True),
        "onset_to_treatment": (170.0, None),  # the needle came first
        "transfer": (45.0, None),
    }
    assert view.eta_at is None  # arrived


def test_the_board_shows_the_expected_arrival_once_the_patient_has_left(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = accepted_case(stroke, clock, coordinators)
    clock(20 * MINUTE)
    green_services.green_node_record(actor=User.objects.get(username="doctor"), case=case, node="door_out")
    view = green_selectors.access_green_case(coordinators["qzph"], str(case.referral.public_id))
    assert view.eta_at == T0 + 20 * MINUTE + minutes("csph", "qzph") * MINUTE
    assert view.direction == "in"


# --- the monthly report --------------------------------------------------------------------------


def report_case(
    stroke: GreenProtocol,
    time_machine: Any,
    at: dt.datetime,
    *,
    dido: int,
    accept: bool = True,
    cancel: bool = False,
    needle_after_arrival: int | None = None,
) -> GreenCase:
    """A case activated at ``at`` (door-in 10 min before) with door-out ``dido`` minutes after door-in."""
    time_machine.move_to(at, tick=False)
    case = activate(stroke, door_in_at=at - 10 * MINUTE)
    doctor, coordinator = User.objects.get(username="doctor"), User.objects.get(username="coordinator")
    if accept:
        green_services.green_accept(actor=coordinator, case=case)
    time_machine.move_to(at + dt.timedelta(hours=6), tick=False)
    door_out = at - 10 * MINUTE + dido * MINUTE
    green_services.green_node_record(actor=doctor, case=case, node="door_out", at=door_out)
    if needle_after_arrival is not None:
        arrival = door_out + 49 * MINUTE
        green_services.green_node_record(actor=coordinator, case=case, node="arrival", at=arrival)
        green_services.green_node_record(
            actor=coordinator, case=case, node="needle", at=arrival + needle_after_arrival * MINUTE
        )
    if cancel:
        green_services.green_cancel(actor=doctor, case=case, reason="家属放弃转院")
    return case


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI)


def test_the_monthly_report_gives_medians_90th_percentiles_and_compliance(
    stroke: GreenProtocol, time_machine: Any, neuro_office: User
) -> None:
    month = [local(REPORT_MONTH.replace(day=day), 14) for day in (3, 9, 17, 28)]
    last_day = NEXT_MONTH - dt.timedelta(days=1)
    report_case(stroke, time_machine, month[0], dido=40, needle_after_arrival=30)
    report_case(stroke, time_machine, month[1], dido=100, needle_after_arrival=75)
    report_case(stroke, time_machine, month[2], dido=150, accept=False)
    report_case(stroke, time_machine, month[3], dido=70, needle_after_arrival=50)
    report_case(stroke, time_machine, month[3], dido=10, cancel=True)  # not counted
    # Activated at 23:30 on the month's last day in China (15:30 UTC): still this month's case.
    report_case(stroke, time_machine, local(last_day, 23, 30), dido=200, accept=False)
    report_case(stroke, time_machine, local(NEXT_MONTH, 0, 30), dido=20)  # the next month's

    rows = green_selectors.green_report(neuro_office, start=REPORT_MONTH, end=last_day, institutions=[csph()])
    assert [(r.institution.code, r.protocol_code, r.month) for r in rows] == [("csph", "stroke", REPORT_MONTH)]
    (row,) = rows
    assert (row.cases, row.accepted_first) == (5, 3)
    dido = next(m for m in row.metrics if m.code == "dido")
    # 40, 70, 100, 150, 200: median 100; nearest-rank p90 is the 5th of 5 (ceil 4.5); within 120: 3 of 5.
    assert (dido.n, dido.median, dido.p90, dido.met, dido.compliance) == (5, 100.0, 200.0, 3, 0.6)
    assert dido.histogram(width=50) == [(0, 1), (50, 1), (100, 1), (150, 1), (200, 1)]

    received = green_selectors.green_report(
        neuro_office,
        start=REPORT_MONTH,
        end=last_day,
        institutions=[Institution.objects.get(code="qzph")],
        by="receiver",
    )
    (row,) = received
    assert row.cases == 3  # the cases qzph accepted
    needle = next(m for m in row.metrics if m.code == "door_to_needle")
    # 30, 50, 75: median 50; p90 is the 3rd of 3; within 60: 2 of 3.
    assert (needle.n, needle.median, needle.p90, needle.compliance) == (3, 50.0, 75.0, 0.667)

    both = green_selectors.green_report(
        neuro_office, start=REPORT_MONTH, end=NEXT_MONTH + dt.timedelta(days=20), institutions=[csph()]
    )
    assert [(r.month, r.cases) for r in both] == [(REPORT_MONTH, 5), (NEXT_MONTH, 1)]
    total = green_selectors.report_totals(both)[(csph().pk, "stroke")]
    assert total.cases == 6
    assert next(m for m in total.metrics if m.code == "dido").median == 85.0  # 20 40 70 | 100 150 200


def test_the_report_is_for_people_with_referral_figures(stroke: GreenProtocol, time_machine: Any) -> None:
    report_case(stroke, time_machine, local(REPORT_MONTH.replace(day=3), 14), dido=40)
    doctor = User.objects.get(username="doctor")
    assert green_selectors.report_institutions_for(doctor).count() == 0
    assert green_selectors.green_report(doctor, start=REPORT_MONTH, end=NEXT_MONTH) == []


# --- scoping and boards --------------------------------------------------------------------------


def test_a_user_of_an_unrelated_hospital_cannot_open_the_case(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = activate(stroke)
    public_id = str(case.referral.public_id)
    with pytest.raises(PermissionDenied):
        green_selectors.access_green_case(User.objects.get(username="kaihua"), public_id)
    with pytest.raises(PermissionDenied):
        green_selectors.access_green_case(coordinators["jsph"], public_id)  # not offered to Jiangshan
    assert green_selectors.access_green_case(coordinators["qzph"], public_id).case.pk == case.pk


def test_each_board_shows_only_its_scopes_cases(
    stroke: GreenProtocol,
    clock: Clock,
    coordinators: dict[str, User],
    neuro_office: User,
    persona: Callable[[str], User],
) -> None:
    to_quzhou = activate(stroke)
    to_jiangshan = activate(stroke, findings=["no_bleed"])  # no occlusion: the nearest thrombolysis
    kaihua = persona("kaihua")
    from_kaihua = activate(stroke, actor=kaihua, sender=Institution.objects.get(code="khph"))
    assert offers_of(to_jiangshan) == [("jsph", OfferOutcome.PENDING)]
    assert offers_of(from_kaihua) == [("qzph", OfferOutcome.PENDING)]

    mine = [to_quzhou, to_jiangshan, from_kaihua]

    def board(user: User) -> list[int]:
        return sorted(on_board(user, mine))

    assert board(persona("doctor")) == sorted([to_quzhou.pk, to_jiangshan.pk])
    assert board(coordinators["qzph"]) == sorted([to_quzhou.pk, from_kaihua.pk])
    assert board(coordinators["jsph"]) == [to_jiangshan.pk]
    assert board(kaihua) == [from_kaihua.pk]
    assert board(neuro_office) == sorted([to_quzhou.pk, to_jiangshan.pk, from_kaihua.pk])
    assert board(persona("office")) == []  # another alliance's office
    doctor_board = green_selectors.board_scopes_for(persona("doctor"))[0]
    with pytest.raises(PermissionDenied):
        green_selectors.board_scope(kaihua, doctor_board.key)
    coordinator = coordinators["qzph"]
    views = green_selectors.green_board(coordinator, green_selectors.board_scopes_for(coordinator)[0])
    assert {v.case.pk: v.direction for v in views if v.case.pk in (to_quzhou.pk, from_kaihua.pk)} == {
        to_quzhou.pk: "in",
        from_kaihua.pk: "in",
    }
    views = green_selectors.green_board(kaihua, green_selectors.board_scopes_for(kaihua)[0])
    assert [v.direction for v in views if v.case.pk == from_kaihua.pk] == ["out"]


def test_a_case_that_moved_on_leaves_the_first_destinations_board(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = activate(stroke)
    assert on_board(coordinators["qzph"], [case]) == [case.pk]
    green_services.green_decline(actor=coordinators["qzph"], case=case, reason="无床位")
    assert on_board(User.objects.get(pk=coordinators["qzph"].pk), [case]) == []
    assert on_board(coordinators["jsph"], [case]) == [case.pk]


def test_the_board_lists_waiting_incoming_cases_first(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    accepted = activate(stroke)
    green_services.green_accept(actor=coordinators["qzph"], case=accepted)
    clock(MINUTE)
    waiting = activate(stroke)
    clock(2 * MINUTE)
    newest_accepted = activate(stroke)
    green_services.green_accept(actor=coordinators["qzph"], case=newest_accepted)
    cases = [accepted, waiting, newest_accepted]
    assert on_board(coordinators["qzph"], cases) == [waiting.pk, newest_accepted.pk, accepted.pk]


def test_a_finished_case_leaves_the_board_a_day_after_activation(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    case = activate(stroke)
    green_services.green_cancel(actor=User.objects.get(username="doctor"), case=case, reason="患者症状缓解")
    clock(23 * dt.timedelta(hours=1))
    assert on_board(coordinators["qzph"], [case]) == [case.pk]
    clock(25 * dt.timedelta(hours=1))
    assert on_board(coordinators["qzph"], [case]) == []


def render_board(user: User) -> list[tuple[Any, ...]]:
    """What a board row shows, read the way the template reads it."""
    scope = green_selectors.board_scope(user, None)
    return [
        (
            v.referral.number,
            v.case.protocol_version.protocol.name,
            v.patient_summary,
            v.pending_offer.institution.name if v.pending_offer else "",
            v.referral.to_institution.name if v.referral.to_institution else "",
            v.referral.from_institution.name,
            [w.minutes_left(T0) for w in v.applicable_windows],
            [(n.code, node.at if node else None) for n, node in v.nodes_in_order()],
            v.door_in,
            v.eta_at,
            [(m.code, m.minutes) for m in v.metrics],
        )
        for v in green_selectors.green_board(user, scope)
    ]


# The user's boards; the cases with their referral, patient, institutions and protocol version;
# their time nodes; their offers with the institutions.
BOARD_QUERIES = 4


@pytest.mark.parametrize("cases", [2, 10])
def test_the_board_query_count_does_not_grow_with_the_cases(
    cases: int,
    stroke: GreenProtocol,
    clock: Clock,
    coordinators: dict[str, User],
    django_assert_num_queries: Any,
) -> None:
    coordinator = User.objects.get(pk=coordinators["qzph"].pk)
    open_before = len(render_board(coordinator))  # the demo's open cases
    for i in range(cases):
        case = activate(stroke, patient=PatientGiven(sex="male" if i % 2 else "female", approximate_age=50 + i))
        if i % 3 == 0:
            green_services.green_accept(actor=coordinators["qzph"], case=case)
    green_selectors.board_scope(coordinator, None)  # the user's scope, read once per request
    with django_assert_num_queries(BOARD_QUERIES):
        rows = render_board(coordinator)
    assert len(rows) == open_before + cases


# --- the referral services on a green referral ---------------------------------------------------


def test_the_referral_services_answer_a_green_referral_through_its_offers(
    stroke: GreenProtocol, clock: Clock, coordinators: dict[str, User]
) -> None:
    accepted, declined, cancelled = activate(stroke), activate(stroke), activate(stroke)
    referral = services.referral_accept(actor=coordinators["qzph"], referral=accepted.referral)
    assert referral.status == Status.ACCEPTED
    assert offers_of(accepted) == [("qzph", OfferOutcome.ACCEPTED)]
    referral = services.referral_decline(actor=coordinators["qzph"], referral=declined.referral, reason="无床位")
    assert referral.status == Status.FORWARDED and referral.to_institution_id == Institution.objects.get(code="jsph").pk
    assert offers_of(declined) == [("qzph", OfferOutcome.DECLINED), ("jsph", OfferOutcome.PENDING)]
    referral = services.referral_cancel(
        actor=User.objects.get(username="doctor"), referral=cancelled.referral, reason="家属拒绝"
    )
    assert referral.status == Status.CANCELLED
    assert offers_of(cancelled) == [("qzph", OfferOutcome.WITHDRAWN)]
    # Opening it on the receiving side never merely "receives" a green case.
    assert services.referral_mark_received_if_receiver(actor=coordinators["jsph"], referral=referral).status == (
        Status.CANCELLED
    )
    clock(30 * MINUTE)
    services.referral_check_in(actor=coordinators["qzph"], referral=accepted.referral)
    referral = Referral.objects.get(pk=accepted.referral_id)
    assert referral.status == Status.ARRIVED
    assert GreenNode.objects.get(case=accepted, node="arrival", superseded_at__isnull=True).at == T0 + 30 * MINUTE


# --- the live boards hear of every step ----------------------------------------------------------


@pytest.fixture
def inprocess_bus() -> Iterator[None]:
    bus.reset()
    with override_settings(EVENTS_BACKEND="inprocess"):
        yield
    bus.reset()


def test_every_step_is_announced_to_the_boards_after_commit(
    stroke: GreenProtocol,
    clock: Clock,
    coordinators: dict[str, User],
    neuro: Consortium,
    committed: Callable[..., Any],
    inprocess_bus: None,
) -> None:
    assert settings.EVENTS_BACKEND == "inprocess"
    qzph, jsph = Institution.objects.get(code="qzph"), Institution.objects.get(code="jsph")
    channels = [
        green_services.institution_channel(csph().pk),
        green_services.institution_channel(qzph.pk),
        green_services.institution_channel(jsph.pk),
        green_services.consortium_channel(neuro.pk),
    ]
    subs = {ch: bus.subscribe([ch]) for ch in channels}
    try:
        case = committed(green_services.green_activate, **activation(stroke))
        committed(green_services.green_decline, actor=coordinators["qzph"], case=case, reason="无床位")
        committed(green_services.green_accept, actor=coordinators["jsph"], case=case)
        heard = {}
        for ch, sub in subs.items():
            kinds = []
            while (message := sub.get(timeout=0.5)) is not None:
                assert message["case"] == str(case.referral.public_id)
                assert set(message) == {"channel", "kind", "case", "number", "status", "at"}  # no patient
                kinds.append(message["kind"])
            heard[ch] = kinds
    finally:
        for sub in subs.values():
            sub.close()
    assert heard[channels[0]] == ["activated", "declined", "accepted"]  # the sender
    assert heard[channels[1]] == ["activated", "declined", "accepted"]  # Quzhou hears that it moved on
    assert heard[channels[2]] == ["declined", "accepted"]  # Jiangshan from the moment it was offered
    assert heard[channels[3]] == ["activated", "declined", "accepted"]  # the office


def test_nothing_is_announced_for_a_step_that_was_refused(
    stroke: GreenProtocol,
    clock: Clock,
    coordinators: dict[str, User],
    committed: Callable[..., Any],
    inprocess_bus: None,
) -> None:
    case = activate(stroke)
    with bus.subscribe([green_services.institution_channel(csph().pk)]) as sub:
        with pytest.raises(PermissionDenied):
            committed(green_services.green_accept, actor=coordinators["jsph"], case=case)
        assert sub.get(timeout=0.2) is None


def test_protocol_checks_refuse_an_invalid_revision(stroke: GreenProtocol, neuro_office: User) -> None:
    definition = stroke.versions.get().definition
    definition["capabilities"] = ["ct", "teleportation"]
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        green_services.green_protocol_revise(actor=neuro_office, protocol=stroke, definition=definition, note="x")
    assert any("teleportation" in m for m in caught.value.message_dict["definition"])
    assert stroke.versions.count() == 1
    with pytest.raises(PermissionDenied):
        green_services.green_protocol_revise(
            actor=User.objects.get(username="doctor"),
            protocol=stroke,
            definition=protocols.DEFAULT_PROTOCOLS["stroke"]["definition"],
            note="x",
        )
