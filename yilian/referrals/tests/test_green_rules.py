"""Rules settled on second reading: who may cancel after acceptance and who hears of it, ranking by
extended windows and unknown onset, the onset node moving the windows, out-of-order metrics, each
case judged by its own protocol version, and definitions and travel files that used to fail."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation

from yilian.notifications.models import Notification
from yilian.referrals import green_services, protocols
from yilian.referrals.green_selectors import MetricFigures
from yilian.referrals.green_services import PatientGiven
from yilian.referrals.models import GreenCase, GreenProtocol, Status
from yilian.referrals.tests import factories
from yilian.registry.models import Consortium, Institution

pytestmark = pytest.mark.django_db


@pytest.fixture
def stroke(db: None) -> GreenProtocol:
    neuro = Consortium.objects.get(code="quzhou-neuro")
    green_services.green_protocols_install_defaults(consortium=neuro)
    return GreenProtocol.objects.get(consortium=neuro, code="stroke")


def _activate(persona: Any, stroke: GreenProtocol, **kwargs: Any) -> GreenCase:
    given: dict[str, Any] = {
        "onset_at": timezone.now() - dt.timedelta(hours=1),
        "findings": ["lvo"],
        "destination": Institution.objects.get(code="qzph"),
    } | kwargs
    return green_services.green_activate(
        actor=persona("doctor"),
        sender=Institution.objects.get(code="csph"),
        protocol=stroke,
        patient=PatientGiven(sex="male", approximate_age=66),
        **given,
    )


def test_an_accepting_hospital_cannot_cancel_the_case_but_the_sender_can_and_everyone_hears(
    persona: Any, stroke: GreenProtocol, django_capture_on_commit_callbacks: Any
) -> None:
    case = _activate(persona, stroke)
    green_services.green_accept(actor=persona("coordinator"), case=case)
    with pytest.raises(PermissionDenied):
        green_services.green_cancel(actor=persona("coordinator"), case=case, reason="bed shortage")
    office = factories.neuro_office_create()
    with django_capture_on_commit_callbacks(execute=True):
        green_services.green_cancel(actor=persona("doctor"), case=case, reason="the family chose another hospital")
    case.referral.refresh_from_db()
    assert case.referral.status == Status.CANCELLED
    cancelled = Notification.objects.filter(
        link__contains=str(case.referral.public_id), title_en__startswith="Green channel: cancelled"
    )
    told = set(cancelled.values_list("user__username", flat=True))
    assert "coordinator" in told and office.username in told
    assert "doctor" not in told  # who cancelled is not told of it


def test_past_the_standard_window_a_thrombectomy_centre_ranks_before_a_nearer_thrombolysis_hospital(
    stroke: GreenProtocol,
) -> None:
    version = green_services.current_version(stroke)
    csph = Institution.objects.get(code="csph")
    now = timezone.now()
    for onset in (now - dt.timedelta(hours=8), None):  # inside the 24 h extended window; unknown
        ranked = green_services.rank_for(version=version, sender=csph, onset_at=onset, findings=["lvo"], now=now)
        codes = [d.institution.code for d in ranked]
        assert codes.index("qzph") < codes.index("jsph"), (onset, codes)
        assert ranked[0].institution.code == "qzph" and ranked[0].selection_window == "evt"
        assert not ranked[0].inside_window


def test_recording_the_onset_of_an_unknown_onset_case_starts_its_windows(persona: Any, stroke: GreenProtocol) -> None:
    case = _activate(persona, stroke, onset_at=None, onset_unknown=True)
    assert case.onset_at is None
    onset = timezone.now() - dt.timedelta(hours=2)
    green_services.green_node_record(actor=persona("doctor"), case=case, node="onset", at=onset)
    case.refresh_from_db()
    assert case.onset_at == onset


def test_a_metric_whose_end_comes_before_its_start_has_no_value() -> None:
    definition = protocols.parse(protocols.DEFAULT_PROTOCOLS["stroke"]["definition"])
    t = timezone.now()
    values = {m.code: m for m in protocols.metrics(definition, {"arrival": t, "needle": t - dt.timedelta(minutes=90)})}
    assert values["door_to_needle"].minutes is None and values["door_to_needle"].missed is None


def test_each_case_is_judged_by_the_target_of_its_own_protocol_version() -> None:
    figures = MetricFigures("door_to_needle", "DNT", 45)
    figures.add(50, 60)  # an older case, activated under the 60-minute target: met
    figures.add(50, 45)  # a newer one under the tightened 45-minute target: missed
    figures.add(30, None)  # a version without a target: not judged
    assert (figures.met, figures.judged, figures.compliance) == (1, 2, 0.5)


@translation.override("en")
def test_definitions_with_mismatched_score_labels_or_without_arrival_are_refused() -> None:
    good = protocols.DEFAULT_PROTOCOLS["stemi"]["definition"]
    assert protocols.definition_errors(good) == []
    labels = copy.deepcopy(good)
    labels["scores"][0]["labels"] = ["I", "II"]
    assert any("label" in e for e in protocols.definition_errors(labels))
    no_arrival = copy.deepcopy(good)
    no_arrival["nodes"] = [n for n in no_arrival["nodes"] if n["code"] != "arrival"]
    no_arrival["metrics"] = [m for m in no_arrival["metrics"] if "arrival" not in (m["start"], *m["end"])]
    assert any("arrival" in e for e in protocols.definition_errors(no_arrival))


def test_a_travel_file_with_absurd_minutes_or_a_broken_field_is_refused_with_a_message(stroke: GreenProtocol) -> None:
    office = factories.neuro_office_create()
    for data in (
        b"from,to,minutes\ncsph,qzph,inf\n",
        b"from,to,minutes\ncsph,qzph,1e999\n",
        b'from,to,minutes\ncsph,qzph,"45\n' + b"x" * 200_000,
    ):
        with pytest.raises(ValidationError) as excinfo:
            green_services.travel_times_import(actor=office, consortium=stroke.consortium, data=data)
        assert excinfo.value.message_dict["file"]
