"""The demo's capability building tells the stories of DOMAIN.md §3 through the capability services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from yilian.capability import selectors
from yilian.capability.models import (
    Assessment,
    AssessmentResult,
    FirstClaim,
    FirstStatus,
    LocalRole,
    MacroRegion,
    Mentee,
    Milestone,
    Stage,
    SurgicalPrivilege,
    TeachingActivity,
    TeachingAttendance,
    TeachingKind,
    Technique,
    TrainingKind,
    TrainingProgramme,
    Transfer,
    TransferCase,
    TransferStep,
    stage_rank,
)
from yilian.core.models import AuditEvent
from yilian.demo.capability import CHEN, LI_HAIYAN, CapabilityReport, seed_capability
from yilian.demo.seed import SeedReport, seed_demo
from yilian.registry.models import Practitioner, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded() -> SeedReport:
    """The demo data present (the root conftest may have seeded it already for the session)."""
    return seed_demo()


def _ledger(host: str, technique: str) -> Transfer:
    return Transfer.objects.select_related("technique", "expert").get(
        department__institution__code=host, technique__code=technique
    )


def _wipe() -> None:
    for model in (Assessment, Mentee, Milestone, TeachingAttendance, TeachingActivity, TrainingProgramme, FirstClaim,
                  TransferStep, TransferCase, SurgicalPrivilege, Transfer, Technique):  # fmt: skip
        model._default_manager.all().delete()


def _snapshot() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "techniques": sorted(Technique.objects.values_list("code", "operation_code", "level", "restricted")),
        "ledgers": sorted(
            Transfer.objects.values_list(
                "department__institution__code", "technique__code", "expert__licence_number", "stage",
                "introduced_on", "independent_on",
            )
        ),
        "cases": sorted(
            TransferCase.objects.values_list(
                "transfer__technique__code", "performed_on", "local_role", "local_surgeon__licence_number", "source"
            ),
            key=repr,
        ),
        "steps": sorted(
            TransferStep.objects.values_list(
                "transfer__technique__code", "stage", "surgeon__licence_number", "reached_on"
            ),
            key=repr,
        ),
        "firsts": sorted(
            FirstClaim.objects.values_list("technique__code", "region__code", "macro_region", "performed_on", "status"),
            key=repr,
        ),
        "attendances": sorted(
            TeachingAttendance.objects.values_list("activity__topic", "practitioner__licence_number", "hours")
        ),
        "assessments": sorted(
            Assessment.objects.values_list(
                "mentee__practitioner__licence_number", "milestone__title_zh", "assessed_on", "result", "score"
            )
        ),
    }  # fmt: skip


# -- the catalogue --------------------------------------------------------------------------------


def test_the_catalogue_holds_the_quzhou_and_bijie_techniques(seeded: SeedReport) -> None:
    techniques = {t.code: t for t in Technique.objects.all()}
    assert len(techniques) >= 12
    assert techniques["neuro-endoscope-microscope-deep-lesion"].operation_code == "01.59"
    assert techniques["mis-tlif"].operation_code == "81.08"
    robot = techniques["robot-phpd"]
    assert (robot.restricted, robot.level, robot.discipline) == (True, 4, "hpb_surgery")
    assert AuditEvent.objects.filter(object_type="capability.technique", actor__username="office").count() >= 12


# -- ledgers --------------------------------------------------------------------------------------


def test_the_quzhou_ledger_collects_the_business_directors_work_logs(seeded: SeedReport) -> None:
    transfer = _ledger("qzph", "neuro-endoscope-microscope-deep-lesion")

    assert transfer.expert.licence_number == CHEN
    assert transfer.programme is not None and transfer.programme.code == "zju2-qzph-1"
    assert transfer.introduced_on is not None and transfer.introduced_on.strftime("%Y-%m") == "2018-09"
    assert transfer.cases.filter(source="work_log").count() > 30
    assert transfer.stage == Stage.INDEPENDENT
    assert AuditEvent.objects.filter(object_type="capability.transferstep", actor__username="expert").exists()


@pytest.mark.parametrize("technique", ["mis-tlif", "scoliosis-correction"])
def test_bijie_local_surgeons_became_independent_with_privileges(seeded: SeedReport, technique: str) -> None:
    transfer = _ledger("bjfph", technique)
    li = Practitioner.objects.get(licence_number=LI_HAIYAN)

    step = transfer.steps.get(surgeon=li, stage=Stage.INDEPENDENT)

    # Evidence of every stage, in order, and the privilege the hospital granted before the last.
    stages = list(transfer.steps.filter(surgeon=li).order_by("reached_on", "id").values_list("stage", flat=True))
    assert stages == [Stage.ASSISTS, Stage.SUPERVISED, Stage.INDEPENDENT]
    assert step.evidence.local_role == LocalRole.INDEPENDENT and step.evidence.local_surgeon == li
    assert step.privilege is not None and step.privilege.granted_on <= step.reached_on
    assert step.privilege.granted_by is not None and step.privilege.granted_by.username == "bjadmin"
    assert transfer.stage == Stage.INDEPENDENT
    assert transfer.days_to_independence is not None and transfer.days_to_independence > 0


def test_the_robot_surgeon_handed_the_duodenectomy_to_a_local_surgeon(seeded: SeedReport) -> None:
    transfer = _ledger("bjfph", "robot-phpd")

    assert transfer.expert.name_zh == "徐立峰"
    independent = transfer.steps.get(stage=Stage.INDEPENDENT)
    assert independent.surgeon is not None and independent.surgeon.institution.code == "bjfph"
    assert SurgicalPrivilege.objects.filter(practitioner=independent.surgeon, technique=transfer.technique).exists()


def test_some_techniques_are_still_on_the_way(seeded: SeedReport) -> None:
    stages = set(Transfer.objects.values_list("stage", flat=True))
    assert {Stage.ASSISTS, Stage.SUPERVISED, Stage.INDEPENDENT} <= stages


def test_no_case_step_or_assessment_is_in_the_future_and_steps_match_their_evidence(seeded: SeedReport) -> None:
    today = timezone.localdate()
    assert not TransferCase.objects.filter(performed_on__gt=today).exists()
    assert not Assessment.objects.filter(assessed_on__gt=today).exists()
    for step in TransferStep.objects.select_related("evidence"):
        assert step.evidence.evidence_for == step.stage
        assert step.reached_on == step.evidence.performed_on <= today
    for step in TransferStep.objects.filter(stage=Stage.INDEPENDENT).select_related("privilege"):
        assert step.privilege is not None and step.privilege.holds_on(step.reached_on)


# -- firsts ---------------------------------------------------------------------------------------


def test_the_quzhou_first_is_unverifiable_for_want_of_records_before_2018(seeded: SeedReport) -> None:
    claim = FirstClaim.objects.select_related("region", "case").get(
        technique__code="neuro-endoscope-microscope-deep-lesion", region__code="330800"
    )

    assert claim.institution.code == "qzph"
    assert claim.case is not None and claim.case.local_role == LocalRole.NONE
    assert claim.performed_on == claim.case.performed_on == _ledger("qzph", claim.technique.code).introduced_on
    assert claim.status == FirstStatus.UNVERIFIABLE
    assert claim.evidence["reason"] == "coverage"
    missing = {gap["institution"]: gap["months"] for gap in claim.evidence["missing"]}
    start = (claim.performed_on.year - 2, claim.performed_on.month)
    assert missing["qzph"][0].startswith(f"{start[0]}-{start[1]:02d}")
    assert claim.claimed_by is not None and claim.claimed_by.username == "hospadmin"


def test_bijie_firsts_have_each_verdict_the_records_support(seeded: SeedReport) -> None:
    claims = FirstClaim.objects.filter(institution__code="bjfph").select_related("technique", "region")
    by_status = {status: [c for c in claims if c.status == status] for status in FirstStatus.values}

    assert {c.region.code for c in claims if c.region} == {"520000"}
    assert any(c.macro_region == MacroRegion.SOUTHWEST for c in claims)
    # Verified: two full years of imported operations of every Guizhou hospital, no earlier case.
    assert [c.technique.code for c in by_status[FirstStatus.VERIFIED]] == ["laa-occlusion"]
    # Contradicted: an earlier operation of the same code at the provincial hospital in Guiyang.
    [contradicted] = by_status[FirstStatus.CONTRADICTED]
    earlier = contradicted.evidence["earlier"]
    assert earlier["institution"] == "gzph"
    assert dt.date.fromisoformat(earlier["date"]) < contradicted.performed_on
    # Unverifiable: the 2023 firsts, before which no records were imported.
    assert {c.technique.code for c in by_status[FirstStatus.UNVERIFIABLE]} >= {"robot-phpd"}
    assert all(c.performed_on.year == 2023 for c in by_status[FirstStatus.UNVERIFIABLE])


# -- teaching -------------------------------------------------------------------------------------


def test_teaching_of_every_kind_with_hours_credited(seeded: SeedReport) -> None:
    activities = TeachingActivity.objects.all()
    assert activities.count() >= 24
    assert set(activities.values_list("kind", flat=True)) == set(TeachingKind.values)
    assert not activities.filter(starts_at__gt=timezone.now()).exists()
    for attendance in TeachingAttendance.objects.select_related("activity")[:200]:
        assert attendance.hours == attendance.activity.hours
    zhu = Practitioner.objects.get(name_zh="祝海涛", institution__code="qzph")
    assert selectors.teaching_hours_of(zhu) >= Decimal(10)


def test_the_city_wide_thrombectomy_salon_reached_doctors_across_quzhou(seeded: SeedReport) -> None:
    salon = TeachingActivity.objects.get(kind=TeachingKind.COURSE, topic__contains="取栓")

    assert salon.other_attendees >= 100
    assert {"qzph", "qz2ph", "khph"} <= set(salon.institutions.values_list("code", flat=True))
    assert salon.leader.licence_number == CHEN
    places = set(salon.attendances.values_list("practitioner__institution__code", flat=True))
    assert {"qzph", "qz2ph", "khph"} <= places


def test_a_visiting_professor_lectured_in_quzhou(seeded: SeedReport) -> None:
    lecture = TeachingActivity.objects.get(kind=TeachingKind.VISITING_LECTURE)
    assert "Prof." in lecture.topic
    assert lecture.attendances.exists()


# -- training programmes --------------------------------------------------------------------------


def test_studios_and_backbone_training_have_mentees_and_milestones(seeded: SeedReport) -> None:
    programmes = TrainingProgramme.objects.select_related("institution", "mentor")
    assert {(p.institution.code, p.kind) for p in programmes} >= {
        ("qzph", TrainingKind.STUDIO),
        ("bjfph", TrainingKind.STUDIO),
        ("bjfph", TrainingKind.BACKBONE),
    }
    for programme in programmes:
        assert 3 <= programme.mentees.count() <= 5
        assert 3 <= programme.milestones.count() <= 4
        assert programme.milestones.exclude(technique=None).exists()
        assert programme.mentor.user is not None


def test_mentees_reached_milestones_the_mentor_signed_off(seeded: SeedReport) -> None:
    signed = Assessment.objects.exclude(signed_off_at=None).select_related("mentee__programme__mentor")
    assert signed.exists()
    for assessment in signed:
        assert assessment.signed_off_by_id == assessment.mentee.programme.mentor.user_id
    # Some await the mentor's signature.
    assert Assessment.objects.filter(signed_off_at=None).exists()
    backbone = TrainingProgramme.objects.get(kind=TrainingKind.BACKBONE)
    li = backbone.mentees.get(practitioner__licence_number=LI_HAIYAN)
    progress = selectors.mentee_progress(li, user=User.objects.get(username="bjadmin"))
    tlif = next(r for r in progress.milestones if r.milestone.technique and r.milestone.technique.code == "mis-tlif")
    assert tlif.reached_on is not None
    assert tlif.technique_stage is not None and stage_rank(tlif.technique_stage) >= stage_rank(Stage.INDEPENDENT)
    assert any(a.result == AssessmentResult.NOT_YET for a in Assessment.objects.all())


# -- idempotency and determinism ------------------------------------------------------------------


def test_seeding_again_creates_nothing(seeded: SeedReport) -> None:
    before = AuditEvent.objects.count()

    assert seed_capability() == CapabilityReport()

    assert AuditEvent.objects.count() == before


def test_the_same_seed_and_clock_write_the_same_story(seeded: SeedReport, time_machine: Any) -> None:
    time_machine.move_to(timezone.now(), tick=False)
    first = _snapshot()
    _wipe()
    report = seed_capability(seed=2018)

    assert report.ledgers == len(first["ledgers"]) and report.firsts == len(first["firsts"])
    assert _snapshot() == first
