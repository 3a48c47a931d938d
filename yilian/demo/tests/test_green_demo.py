"""The green channel's demo data: the Changshan stroke case of 2018, two years of transfers whose
medians improve, and live work waiting for the personas; seeding again adds nothing."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from typing import Any

import pytest
from django.db.models import Count, Q
from django.utils import timezone

from yilian.demo.green import HISTORY_DAYS, STORY_PHRASE, GreenSeedReport, seed_green
from yilian.demo.seed import SeedReport, seed_demo
from yilian.patients.models import Patient
from yilian.referrals import green_selectors
from yilian.referrals.models import (
    GreenCase,
    GreenNode,
    GreenOffer,
    GreenProtocol,
    GreenSettings,
    OfferOutcome,
    Referral,
    ReferralEvent,
    Status,
    TravelTime,
)
from yilian.referrals.workflow import GREEN_TRANSITIONS, Action
from yilian.registry.models import Capability, CapabilityKind, Consortium, Institution

pytestmark = pytest.mark.django_db

FIXED_NOW = dt.datetime(2026, 6, 15, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def seeded() -> SeedReport:
    """The demo data present (the root conftest has seeded it for the session)."""
    return seed_demo()


def _story() -> GreenCase:
    return GreenCase.objects.select_related("referral__patient", "protocol_version__protocol").get(
        note__contains=STORY_PHRASE, referral__from_institution__code="csph", activated_at__year=2018
    )


def _pooled(user: Any, *, start: dt.date, end: dt.date, protocol: str, metric: str, by: str) -> list[float]:
    rows = green_selectors.green_report(user, start=start, end=end, protocol_code=protocol, by=by)
    return [v for row in rows for m in row.metrics if m.code == metric for v in m.values]


# -- set-up ------------------------------------------------------------------------------------------


def test_every_consortium_has_the_default_protocols_and_travel_settings(seeded: SeedReport) -> None:
    for consortium in Consortium.objects.all():
        codes = set(GreenProtocol.objects.filter(consortium=consortium).values_list("code", flat=True))
        assert codes == {"stroke", "stemi", "trauma", "obstetric", "newborn"}, consortium.code
        settings = GreenSettings.objects.get(consortium=consortium)
        assert (str(settings.road_factor), settings.average_speed_kmh, settings.offer_timeout_minutes) == (
            "1.35",
            60,
            5,
        )


def test_the_alliance_has_a_travel_time_matrix_between_its_hospitals(seeded: SeedReport) -> None:
    neuro = Consortium.objects.get(code="quzhou-neuro")
    matrix = {
        (a, b): minutes
        for a, b, minutes in TravelTime.objects.filter(consortium=neuro).values_list(
            "from_institution__code", "to_institution__code", "minutes"
        )
    }
    assert matrix[("csph", "qzph")] == matrix[("qzph", "csph")] == 45
    assert len(matrix) == 7 * 6  # every ordered pair of the lead and its six members
    assert all(5 <= minutes <= 120 for minutes in matrix.values())


# -- the story -----------------------------------------------------------------------------------------


def test_the_changshan_stroke_case_reached_thrombectomy_inside_the_six_hour_window(
    seeded: SeedReport, persona: Any
) -> None:
    case = _story()
    referral = case.referral
    assert referral.to_institution is not None
    assert (referral.from_institution.code, referral.to_institution.code) == ("csph", "qzph")
    assert referral.status == Status.CLOSED and referral.green_channel
    assert case.protocol_version.protocol.code == "stroke"
    assert case.scores == {"nihss": 14} and "lvo" in case.findings
    born = referral.patient.birth_date
    assert referral.patient.sex == "male" and born is not None
    local = timezone.localtime(case.activated_at)
    assert local.year - born.year - ((local.month, local.day) < (born.month, born.day)) == 66
    # Quzhou People's Hospital had begun thrombectomy when the case came.
    since = Capability.objects.get(institution=referral.to_institution, kind=CapabilityKind.THROMBECTOMY).valid_from
    assert dt.date(2018, 11, 1) <= since < local.date() < dt.date(2019, 1, 1)

    nodes = {n.node: n.at for n in GreenNode.objects.filter(case=case, superseded_at__isnull=True)}
    order = ["onset", "door_in", "imaging", "decision", "door_out", "arrival", "puncture", "reperfusion"]
    assert set(order) <= set(nodes)
    assert [nodes[code] for code in order] == sorted(nodes[code] for code in order)
    assert nodes["puncture"] - nodes["onset"] < dt.timedelta(hours=6)

    (offer,) = GreenOffer.objects.filter(case=case)
    assert offer.outcome == OfferOutcome.ACCEPTED and offer.answered_by == persona("coordinator")
    assert offer.answered_at is not None and offer.answered_at - offer.offered_at <= dt.timedelta(minutes=2)
    steps = list(ReferralEvent.objects.filter(referral=referral).values_list("action", "actor__username"))
    assert steps == [
        (Action.SEND, "doctor"),
        (Action.ACCEPT, "coordinator"),
        (Action.CHECK_IN, "coordinator"),
        (Action.START_TREATMENT, "coordinator"),
        (Action.RETURN_OUTCOME, "coordinator"),
        (Action.ACKNOWLEDGE, "doctor"),
    ]
    assert referral.created_at == case.activated_at  # created that morning, not when the demo was seeded


def test_the_changshan_doctor_reads_the_story_with_its_metrics(seeded: SeedReport, persona: Any) -> None:
    view = green_selectors.access_green_case(persona("doctor"), str(_story().referral.public_id))
    metrics = {m.code: m.minutes for m in view.metrics}
    assert metrics["dido"] is not None and metrics["dido"] < 120
    assert metrics["door_to_puncture"] is not None and metrics["door_to_puncture"] < 90
    assert STORY_PHRASE in view.case.note


# -- the history ---------------------------------------------------------------------------------------


def test_two_years_of_history_with_every_protocol_mostly_stroke(seeded: SeedReport) -> None:
    now = timezone.now()
    history = GreenCase.objects.filter(activated_at__gte=now - dt.timedelta(days=HISTORY_DAYS + 1))
    first, last = (
        history.order_by(key).values_list("activated_at", flat=True)[0] for key in ("activated_at", "-activated_at")
    )
    assert now - first > dt.timedelta(days=700) and now - last < dt.timedelta(days=4)
    assert 400 <= history.count() <= 800
    protocols = Counter(history.values_list("protocol_version__protocol__code", flat=True))
    assert protocols.most_common(2)[0][0] == "stroke" and protocols.most_common(2)[1][0] == "stemi"
    assert {"trauma", "obstetric", "newborn"} <= set(protocols)
    # The consortia of the Quzhou and Bijie stories, county hospitals sending.
    consortia = set(history.values_list("referral__consortium__code", flat=True))
    assert {"quzhou-neuro", "zju2-quzhou", "bijie-nrmc", "zjuwc-quzhou"} <= consortia


def test_medians_improve_from_the_first_quarter_to_the_last(seeded: SeedReport, persona: Any) -> None:
    admin = persona("admin")
    today = timezone.localdate()
    first = {"start": today - dt.timedelta(days=HISTORY_DAYS), "end": today - dt.timedelta(days=HISTORY_DAYS - 90)}
    last = {"start": today - dt.timedelta(days=90), "end": today}
    for protocol, metric, by, target in (
        ("stroke", "dido", "sender", 120),
        ("stroke", "door_to_puncture", "receiver", 90),
        ("stemi", "door_to_balloon", "receiver", 90),
    ):
        early = _pooled(admin, **first, protocol=protocol, metric=metric, by=by)
        late = _pooled(admin, **last, protocol=protocol, metric=metric, by=by)
        assert len(early) >= 10 and len(late) >= 10, (metric, len(early), len(late))
        assert statistics.median(late) < statistics.median(early) - 10, metric
        # Targets were missed, more often at first.
        missed_early = sum(v > target for v in early) / len(early)
        missed_late = sum(v > target for v in late) / len(late)
        assert missed_early > missed_late, metric


def test_some_offers_were_declined_or_timed_out_and_some_cases_cancelled(seeded: SeedReport) -> None:
    outcomes = Counter(GreenOffer.objects.values_list("outcome", flat=True))
    assert outcomes[OfferOutcome.DECLINED] >= 3 and outcomes[OfferOutcome.TIMED_OUT] >= 3
    reoffered = GreenOffer.objects.filter(rank=2, outcome=OfferOutcome.ACCEPTED)
    assert reoffered.exists()
    assert Referral.objects.filter(green_channel=True, status=Status.CANCELLED).count() >= 3
    timed_out = ReferralEvent.objects.filter(referral__green_channel=True, action=Action.FORWARD, actor=None)
    assert timed_out.exists() and all(e.side == "system" for e in timed_out)
    corrected = GreenNode.objects.filter(superseded_at__isnull=False).values_list("case_id", "node")
    assert corrected and all(
        GreenNode.objects.filter(case_id=c, node=n, superseded_at__isnull=True).exists() for c, n in corrected
    )


def test_each_case_has_one_accepted_offer_unless_cancelled_and_never_two_pending(seeded: SeedReport) -> None:
    offers = GreenCase.objects.annotate(
        accepted=Count("offers", filter=Q(offers__outcome=OfferOutcome.ACCEPTED)),
        pending=Count("offers", filter=Q(offers__outcome=OfferOutcome.PENDING)),
    ).values_list("referral__status", "accepted", "pending")
    for status, accepted, pending in offers:
        assert pending <= 1
        if status in (Status.SENT, Status.FORWARDED):
            assert (accepted, pending) == (0, 1)
        elif status != Status.CANCELLED:
            assert accepted == 1, status
    holder = GreenOffer.objects.filter(outcome=OfferOutcome.ACCEPTED).values_list(
        "institution_id", "case__referral__to_institution_id"
    )
    assert all(a == b for a, b in holder)
    yesterday = timezone.now() - dt.timedelta(days=1)
    old = Referral.objects.filter(green_channel=True, created_at__lt=yesterday)
    assert set(old.values_list("status", flat=True)) == {Status.CLOSED, Status.OUTCOME_RETURNED, Status.CANCELLED}


def test_every_green_timeline_walks_the_green_transition_table(seeded: SeedReport) -> None:
    timelines: dict[int, list[tuple[str, str, str, str]]] = {}
    for referral_id, *step in (
        ReferralEvent.objects.filter(referral__green_channel=True)
        .order_by("at", "id")
        .values_list("referral_id", "action", "from_status", "to_status", "side")
    ):
        timelines.setdefault(referral_id, []).append(tuple(step))  # type: ignore[arg-type]
    for pk, status in Referral.objects.filter(green_channel=True).values_list("pk", "status"):
        current = Status.DRAFT
        for action, from_status, to_status, side in timelines[pk]:
            transition = GREEN_TRANSITIONS[(Status(from_status), Action(action))]
            assert from_status == current and to_status == transition.to
            assert side in transition.sides, (action, side)
            current = Status(to_status)
        assert current == status


def test_time_nodes_follow_the_protocol_and_come_in_order(seeded: SeedReport) -> None:
    for case in GreenCase.objects.select_related("protocol_version").prefetch_related("nodes")[:300]:
        known = {n["code"]: n["side"] for n in case.protocol_version.definition["nodes"]}
        current = {n.node: n for n in case.nodes.all() if n.superseded_at is None}
        assert set(current) <= set(known)
        assert current["decision"].at == case.activated_at
        if "door_out" in current and "arrival" in current:
            assert current["door_in"].at < current["door_out"].at < current["arrival"].at


def test_patients_of_the_green_channel_are_identified_or_known_by_sex_and_age(seeded: SeedReport) -> None:
    patients = Patient.objects.filter(referrals__green_channel=True).distinct()
    unidentified = patients.filter(id_number=None, birth_date=None)
    assert unidentified.exists()
    assert all(p.sex in ("male", "female") and p.approximate_age for p in unidentified)
    assert patients.exclude(id_number=None).count() > 0.8 * patients.count()


# -- live work -----------------------------------------------------------------------------------------


def test_the_coordinator_board_shows_the_incoming_case_counting_down(seeded: SeedReport, persona: Any) -> None:
    coordinator = persona("coordinator")
    scope = green_selectors.board_scope(coordinator, None)
    assert scope.obj == Institution.objects.get(code="qzph")
    views = green_selectors.green_board(coordinator, scope)
    waiting = views[0]
    assert (waiting.direction, waiting.referral.status) == ("in", Status.SENT)
    assert waiting.referral.from_institution.code == "csph"
    offer = waiting.pending_offer
    assert offer is not None and offer.institution == scope.obj
    assert offer.answer_due_at - offer.offered_at == dt.timedelta(minutes=5)
    statuses = {v.referral.status for v in views}
    assert {Status.SENT, Status.ACCEPTED, Status.IN_TREATMENT} <= statuses
    on_the_road = next(v for v in views if v.referral.status == Status.ACCEPTED)
    assert on_the_road.eta_at is not None and "arrival" not in on_the_road.nodes
    in_treatment = next(v for v in views if v.referral.status == Status.IN_TREATMENT)
    assert {"arrival", "puncture"} <= set(in_treatment.nodes)


def test_the_changshan_doctor_sees_his_outgoing_cases(seeded: SeedReport, persona: Any) -> None:
    doctor = persona("doctor")
    scope = green_selectors.board_scope(doctor, None)
    assert scope.obj == Institution.objects.get(code="csph")
    outgoing = [v for v in green_selectors.green_board(doctor, scope) if v.direction == "out"]
    assert {v.referral.status for v in outgoing} >= {Status.SENT, Status.IN_TREATMENT}


# -- idempotency and determinism -------------------------------------------------------------------------


def _counts() -> dict[str, int]:
    from yilian.core.models import AuditEvent

    models: list[Any] = [GreenProtocol, GreenSettings, TravelTime, GreenCase, GreenOffer, GreenNode, Referral,
                         ReferralEvent, Patient, AuditEvent]  # fmt: skip
    return {model.__name__: model.objects.count() for model in models}


def test_seeding_again_adds_nothing(seeded: SeedReport) -> None:
    before = _counts()

    assert seed_green() == GreenSeedReport()
    assert seed_demo().total == 0

    assert _counts() == before


def _wipe_green_history() -> None:
    cases = GreenCase.objects.all()
    referrals = Referral.objects.filter(green_channel=True)
    patients = list(referrals.values_list("patient_id", flat=True))
    GreenNode.objects.all().delete()
    GreenOffer.objects.all().delete()
    cases.delete()
    ReferralEvent.objects.filter(referral__green_channel=True).delete()
    referrals.delete()
    Patient.objects.filter(pk__in=patients, referrals=None).delete()


def _snapshot() -> list[tuple[Any, ...]]:
    return sorted(
        GreenCase.objects.exclude(activated_at__year=2018)
        .filter(activated_at__lt=FIXED_NOW - dt.timedelta(days=1))
        .values_list(
            "public_id", "referral__number", "referral__status", "referral__patient__public_id", "activated_at",
            "eta_minutes", "scores",
        )
    )  # fmt: skip


def test_the_same_seed_and_clock_reproduce_the_history(seeded: SeedReport) -> None:
    _wipe_green_history()
    seed_green(now=FIXED_NOW)
    first = _snapshot()
    _wipe_green_history()

    seed_green(now=FIXED_NOW)

    assert _snapshot() == first and len(first) >= 400


def test_seeding_tells_nobody(seeded: SeedReport, django_capture_on_commit_callbacks: Any) -> None:
    """No notification, webhook or board announcement for a transfer of 2018 or for the live cases."""
    _wipe_green_history()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = seed_green()

    assert report.cases >= 400
    assert callbacks == []
