"""The demo consortium seed: idempotent, deterministic, and faithful to the stories of DOMAIN.md §3."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db.models import Min, Model
from django.test import RequestFactory
from django.utils import timezone

from yilian.core.audit import audit_verify
from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Role
from yilian.demo.activity import RESIDENCE_REGIONS
from yilian.demo.capability import MENTOR_ACCOUNT, CapabilityReport
from yilian.demo.consults import ACCOUNTS as CONSULT_ACCOUNTS
from yilian.demo.referrals import HISTORY_USERNAME, ROUND_SIZE, seed_referrals
from yilian.demo.seed import (
    ALLOCATION,
    DEMO_PASSWORD,
    DEMO_USERS,
    SeedReport,
    practitioner_specs,
    seed_demo,
)
from yilian.patients.models import Patient
from yilian.patients.services import id_number_clean
from yilian.referrals import selectors as referral_selectors
from yilian.referrals.models import (
    Direction,
    GreenCase,
    GreenNode,
    GreenOffer,
    GreenProtocol,
    GreenProtocolVersion,
    IdempotencyKey,
    Referral,
    ReferralAppointment,
    ReferralAttachment,
    ReferralEvent,
    Status,
    Urgency,
)
from yilian.referrals.workflow import TRANSITIONS, Action, Side
from yilian.registry import selectors
from yilian.registry.models import (
    Agreement,
    AgreementStatus,
    Capability,
    CapabilityKind,
    Consortium,
    ConsortiumMember,
    ConsortiumType,
    Department,
    DepartmentPairing,
    Institution,
    MemberRelation,
    MemberRole,
    Membership,
    PairingKind,
    Practitioner,
    ProfessionalTitle,
    Region,
    RegionLevel,
    User,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
GREEN_ACTORS = {"doctor", "coordinator", "kaihua"}  # the green channel's story and live cases are theirs
# Capability building goes through its services as the office, the experts, the hospitals' admins and a mentor.
CAPABILITY_ACTORS = {"office", "expert", "hospadmin", "bjadmin", "bjexpert", MENTOR_ACCOUNT}
# What of the report capability building wrote as people (the rest, staff and the mentor's account, as the seed).
CAPABILITY_BY_PEOPLE = tuple(
    name for name in CapabilityReport.__dataclass_fields__ if name not in ("users", "memberships", "practitioners")
)
GENERATED_PER_ROUND = sum(count for _code, count in ALLOCATION)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _row_counts() -> dict[str, int]:
    counts = {
        model._meta.label: model._default_manager.count()
        for app in ("registry", "patients", "referrals", "consults")
        for model in apps.get_app_config(app).get_models()
    }
    counts["agreement parties"] = Agreement.parties.through.objects.count()
    counts["audit events"] = AuditEvent.objects.count()
    return counts


def _snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Everything the seed writes, by natural key, without ids or timestamps."""
    return {
        "regions": sorted(Region.objects.values_list("code", "name_zh", "name_en", "level", "parent__code")),
        "institutions": sorted(
            Institution.objects.values_list(
                "code", "name_zh", "name_en", "short_name", "grade", "type", "region__code", "address",
                "latitude", "longitude", "phone",
            )
        ),
        "departments": sorted(
            Department.objects.values_list("institution__code", "discipline", "name_zh", "name_en")
        ),
        "capabilities": sorted(
            Capability.objects.values_list(
                "institution__code", "kind", "all_hours", "weekdays", "opens_at", "closes_at", "valid_from",
                "valid_to", "note",
            ),
            key=repr,
        ),
        "consortia": sorted(
            Consortium.objects.values_list(
                "code", "name_zh", "name_en", "type", "lead_institution__code", "region__code",
                "established_on", "description_zh", "description_en",
            )
        ),
        "members": sorted(
            ConsortiumMember.objects.values_list(
                "consortium__code", "institution__code", "role", "relation", "joined_on", "left_on"
            ),
            key=repr,
        ),
        "agreements": sorted(
            (
                a.code, a.consortium.code if a.consortium else None, a.title_zh, a.title_en, a.signed_on,
                a.valid_from, a.valid_to, a.status, a.scope, a.goals,
                tuple(sorted(p.code for p in a.parties.all())),
            )
            for a in Agreement.objects.select_related("consortium").prefetch_related("parties")
        ),
        "pairings": sorted(
            DepartmentPairing.objects.values_list(
                "agreement__code", "lead_department__institution__code", "lead_department__name_zh",
                "member_department__institution__code", "member_department__name_zh", "kind", "label_zh",
                "label_en",
            )
        ),
        "practitioners": sorted(
            Practitioner.objects.values_list(
                "licence_number", "name_zh", "name_en", "title", "institution__code", "department__name_zh",
                "specialties", "user__username",
            )
        ),
        "users": sorted(User.objects.values_list("username", "display_name", "language", "is_staff")),
        "memberships": sorted(
            Membership.objects.values_list(
                "user__username", "role", "institution__code", "consortium__code", "region__code"
            ),
            key=repr,
        ),
    }  # fmt: skip


def _wipe_capability() -> None:
    """Delete the capability-building story (it refers to the stationing programmes and staff)."""
    for name in (
        "Assessment", "Mentee", "Milestone", "SignInCode", "TeachingAttendance", "TeachingActivity",
        "TrainingProgramme", "FirstClaim", "TransferStep", "TransferCase", "SurgicalPrivilege", "Transfer", "Technique",
    ):  # fmt: skip
        apps.get_model("capability", name)._default_manager.all().delete()


def _wipe_referrals() -> None:
    """Delete the capability, survey, stationing, consult and referral history and its patients (inside the
    test's transaction)."""
    _wipe_capability()
    survey_models = ("SurveyAnswer", "PosterScan", "SurveyResponse", "SurveyToken", "Poster")
    for name in survey_models:
        apps.get_model("surveys", name)._default_manager.all().delete()
    dispatch_models = (
        "LoggedOperation",
        "WorkLog",
        "Attendance",
        "RosterDay",
        "RosterRun",
        "Leave",
        "HostDemand",
        "Assignment",
        "Objective",
        "Programme",
        "CalendarDay",
    )
    for name in dispatch_models:
        apps.get_model("dispatch", name)._default_manager.all().delete()
    for name in ("Opinion", "Message", "ConsultEvent", "Attachment", "Participant", "Consult", "Meeting"):
        apps.get_model("consults", name)._default_manager.all().delete()
    for model in (GreenNode, GreenOffer, GreenCase, ReferralEvent, ReferralAppointment, ReferralAttachment,
                  IdempotencyKey, Referral, Patient):  # fmt: skip
        model._default_manager.all().delete()


def _wipe_registry() -> None:
    """Delete what the seed created, children first (the audit trail stays, as it must)."""
    _wipe_referrals()
    children_first: tuple[type[Model], ...] = (
        GreenProtocolVersion,
        GreenProtocol,
        Membership,
        Practitioner,
        DepartmentPairing,
        Agreement,
        ConsortiumMember,
        Consortium,
        Capability,
        Department,
        Institution,
    )
    for model in children_first:
        model._default_manager.all().delete()
    for level in (RegionLevel.COUNTY, RegionLevel.CITY, RegionLevel.PROVINCE):
        Region.objects.filter(level=level).delete()
    # The accounts the audit trail names as actors (the personas who took the green channel's
    # story and live steps) stay, as the trail does; the seed finds them and grants their roles again.
    User.objects.exclude(pk__in=AuditEvent.objects.exclude(actor=None).values("actor_id")).delete()


@pytest.fixture
def seeded() -> SeedReport:
    """The demo data present (the root conftest may have seeded it already for the session)."""
    return seed_demo()


@pytest.fixture
def fresh_seed(time_machine: Any) -> SeedReport:
    """A seed into an empty registry (emptied inside the test's transaction, so it comes back).

    The clock stands still for the test: the histories are cut at "now", so a second seed a few
    seconds later could otherwise take in a step that fell due in between."""
    time_machine.move_to(timezone.now(), tick=False)
    _wipe_registry()
    report = seed_demo()
    assert report.total > 0
    return report


# -- idempotency and determinism ------------------------------------------------------------


def test_second_run_creates_nothing_and_writes_no_audit_rows(fresh_seed: SeedReport) -> None:
    before = _row_counts()

    again = seed_demo()

    assert again == SeedReport()
    assert again.total == 0
    assert _row_counts() == before


def test_every_created_row_is_audited_and_the_chain_verifies() -> None:
    _wipe_registry()
    last_before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    report = seed_demo()

    new_events = AuditEvent.objects.filter(id__gt=last_before)
    # The green channel's story and live cases go through its services, audited as the people who acted.
    by_people = new_events.exclude(actor=None)
    assert set(by_people.values_list("actor__username", flat=True)) == GREEN_ACTORS | CAPABILITY_ACTORS
    new_events = new_events.filter(actor=None)
    # A consortium's audit row also covers the lead membership the service adds with it; the
    # referral, consult, survey and green-channel histories (patients, referrals, consults, survey
    # responses) are synthetic and have one row for each run, and the green channel's settings and
    # travel times one more; a stationing programme has one row for itself and its history (roster days).
    assert report.referrals > 0
    assert report.consults > 0
    assert report.survey_responses > 0
    assert report.programmes == 5
    synthetic = report.patients + report.referrals + report.consults + report.survey_responses + report.roster_days
    assert report.green_protocols > 0
    # Capability building's rows are audited as the people who wrote them; the seed links the
    # backbone-training mentor's account to him (one row more).
    by_capability = sum(getattr(report, name) for name in CAPABILITY_BY_PEOPLE)
    assert report.ledgers > 0 and report.attendances > 0
    assert new_events.count() == report.total - report.consortia - synthetic - by_capability + 5 + 1
    history = new_events.get(object_type="referrals.referral")
    green = new_events.get(object_type="referrals.greencase")
    activated = by_people.filter(object_type="referrals.greencase", action=AuditAction.CREATE).count()
    assert history.action == green.action == AuditAction.CREATE
    assert history.changes["seeded"] + green.changes["seeded"] + activated == report.referrals
    consults = new_events.get(object_type="consults.consult")
    assert (consults.action, consults.changes["seeded"]) == (AuditAction.CREATE, report.consults)
    surveys = new_events.get(object_type="surveys.surveyresponse")
    assert (surveys.action, surveys.changes["seeded"]) == (AuditAction.CREATE, report.survey_responses)
    assert set(new_events.values_list("actor", flat=True)) == {None}
    assert audit_verify().ok


def test_report_counts_match_the_rows_created(fresh_seed: SeedReport) -> None:
    seeded = fresh_seed
    # The registry's 17 places, and the places the activity's patients come from.
    assert seeded.regions == Region.objects.count() == 17 + len(RESIDENCE_REGIONS)
    assert seeded.institutions == Institution.objects.count() == 20
    assert seeded.departments == Department.objects.count()
    assert seeded.capabilities == Capability.objects.count()
    assert seeded.consortia == Consortium.objects.count() == 8
    assert seeded.consortium_members == ConsortiumMember.objects.count()
    assert seeded.agreements == Agreement.objects.count()
    assert seeded.pairings == DepartmentPairing.objects.count()
    # and the history account, and the consult experts' accounts
    kept = len(GREEN_ACTORS | CAPABILITY_ACTORS)  # accounts the audit trail names survive the wipe (see _wipe_registry)
    # and the backbone-training mentor's account
    assert seeded.users + kept == User.objects.count() == len(DEMO_USERS) + 1 + len(CONSULT_ACCOUNTS) + 1
    assert seeded.memberships == Membership.objects.count() == len(DEMO_USERS) + len(CONSULT_ACCOUNTS) + 1
    assert seeded.practitioners == Practitioner.objects.count()
    assert seeded.patients == Patient.objects.count()
    assert seeded.referrals == Referral.objects.count() >= ROUND_SIZE
    assert seeded.consults == apps.get_model("consults", "Consult")._default_manager.count() > 0
    assert seeded.programmes == apps.get_model("dispatch", "Programme")._default_manager.count() == 5
    assert seeded.roster_days == apps.get_model("dispatch", "RosterDay")._default_manager.count() > 0


def test_same_seed_reproduces_identical_data(fresh_seed: SeedReport) -> None:
    first = _snapshot()
    _wipe_registry()

    second_report = seed_demo(seed=2018)

    assert second_report == fresh_seed
    assert _snapshot() == first


def test_a_different_seed_changes_only_the_generated_practitioners(fresh_seed: SeedReport) -> None:
    first = _snapshot()
    _wipe_registry()

    seed_demo(seed=7)

    second = _snapshot()
    assert second["practitioners"] != first["practitioners"]
    assert {k: v for k, v in second.items() if k != "practitioners"} == {
        k: v for k, v in first.items() if k != "practitioners"
    }


def test_practitioner_specs_depend_only_on_seed_and_scale() -> None:
    assert practitioner_specs(seed=2018) == practitioner_specs(seed=2018)
    names_2018 = [s.name_zh for s in practitioner_specs(seed=2018)]
    names_7 = [s.name_zh for s in practitioner_specs(seed=7)]
    assert names_2018 != names_7


def test_a_larger_scale_extends_the_smaller_one() -> None:
    one = practitioner_specs(seed=2018, scale=1)
    three = practitioner_specs(seed=2018, scale=3)
    assert len(one) == GENERATED_PER_ROUND
    assert len(three) == 3 * GENERATED_PER_ROUND
    assert three[: len(one)] == one


def test_scale_two_seeds_more_practitioners_and_activity_than_scale_one(seeded: SeedReport) -> None:
    at_scale_one = Practitioner.objects.count()

    report = seed_demo(scale=2)

    assert report.practitioners == GENERATED_PER_ROUND
    # Only the staff and the clinical activity (a second round of batches) are scaled.
    assert report.activity_batches > 0
    assert report.total == report.practitioners + report.activity_batches
    assert Practitioner.objects.count() == at_scale_one + GENERATED_PER_ROUND


def test_scale_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="scale"):
        seed_demo(scale=0)


# -- the practitioners ------------------------------------------------------------------------


def test_at_least_44_practitioners_with_unique_15_digit_licences(seeded: SeedReport) -> None:
    licences = list(Practitioner.objects.values_list("licence_number", flat=True))
    assert len(licences) >= 44
    assert len(set(licences)) == len(licences)
    assert all(re.fullmatch(r"\d{15}", number) for number in licences)
    for practitioner in Practitioner.objects.select_related("department"):
        assert practitioner.department is not None
        assert practitioner.department.institution_id == practitioner.institution_id


def test_practitioners_cluster_where_the_stories_happen(seeded: SeedReport) -> None:
    for code in ("zju2", "zjpph", "qzph", "csph", "khph", "bjfph"):
        assert Practitioner.objects.filter(institution__code=code).count() >= 5, code
    assert not Practitioner.objects.filter(department__discipline="management").exists()


def test_names_are_chinese_with_pinyin(seeded: SeedReport) -> None:
    for name_zh, name_en in Practitioner.objects.values_list("name_zh", "name_en"):
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,3}", name_zh)
        assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", name_en)


def test_the_stationed_neurosurgeon_is_chen_zhiyuan(seeded: SeedReport) -> None:
    chen = Practitioner.objects.select_related("institution", "department", "user").get(name_en="Chen Zhiyuan")
    assert chen.name_zh == "陈志远"
    assert chen.title == ProfessionalTitle.CHIEF_PHYSICIAN
    assert chen.institution.code == "zju2"
    assert chen.department is not None
    assert chen.department.discipline == "neurosurgery"
    assert "衢州市人民医院" in chen.specialties
    assert "每周驻点3天" in chen.specialties
    assert "2018年9月" in chen.specialties
    assert chen.user is not None
    assert chen.user.username == "expert"


def test_doctor_personas_are_linked_to_their_accounts(seeded: SeedReport) -> None:
    wang = Practitioner.objects.get(user__username="doctor")
    assert (wang.name_zh, wang.name_en, wang.title) == (
        "王建国",
        "Wang Jianguo",
        ProfessionalTitle.ATTENDING_PHYSICIAN,
    )
    assert (wang.institution.code, wang.department and wang.department.discipline) == ("csph", "neurology")

    li = Practitioner.objects.get(user__username="bijie")
    assert (li.name_zh, li.name_en, li.title) == (
        "李海燕",
        "Li Haiyan",
        ProfessionalTitle.ASSOCIATE_CHIEF_PHYSICIAN,
    )
    assert (li.institution.code, li.department and li.department.discipline) == ("bjfph", "orthopedics")


def test_a_robot_surgeon_from_zjpph_is_stationed_in_bijie(seeded: SeedReport) -> None:
    surgeon = Practitioner.objects.get(
        institution__code="zjpph", department__discipline="hpb_surgery", specialties__contains="机器人"
    )
    assert "毕节" in surgeon.specialties
    assert Capability.objects.filter(institution__code="bjfph", kind=CapabilityKind.ROBOT_SURGERY).exists()


# -- the places ---------------------------------------------------------------------------------


def test_regions_form_the_province_city_county_tree(seeded: SeedReport) -> None:
    jiangshan = Region.objects.get(code="330881")
    assert jiangshan.level == RegionLevel.COUNTY
    assert [r.code for r in jiangshan.ancestors()] == ["330000", "330800"]
    assert Region.objects.get(code="520502").parent.code == "520500"  # type: ignore[union-attr]
    # The institutions are in two provinces; patients also come from others.
    institution_regions = Region.objects.filter(institutions__isnull=False).distinct()
    assert {r.ancestors()[0].code for r in institution_regions} == {"330000", "520000"}
    provinces = set(Region.objects.filter(level=RegionLevel.PROVINCE).values_list("code", flat=True))
    assert provinces == {"330000", "520000"} | {r[0] for r in RESIDENCE_REGIONS if r[3] == "province"}
    assert Region.objects.get(code="361123").parent.parent.code == "360000"  # type: ignore[union-attr]
    quzhou_counties = Region.objects.filter(parent__code="330800")
    assert quzhou_counties.count() == 6  # the 6 county-level districts the framework covers
    assert set(quzhou_counties.values_list("level", flat=True)) == {RegionLevel.COUNTY}


def test_institutions_have_grades_places_and_coordinates(seeded: SeedReport) -> None:
    zju2 = Institution.objects.get(code="zju2")
    assert (zju2.grade, zju2.type, zju2.region.code) == ("3A", "general", "330102")
    assert Institution.objects.get(code="zjuwc").type == "women_children"
    assert Institution.objects.get(code="kh-huabu").grade == "primary"
    assert Institution.objects.get(code="bjfph").region.code == "520502"
    for institution in Institution.objects.all():
        assert institution.latitude is not None
        assert institution.longitude is not None
        assert institution.address
        assert institution.phone
    kaihua = Institution.objects.get(code="khph")
    assert abs(float(kaihua.latitude) - 29.14) < 0.1  # type: ignore[arg-type]
    assert abs(float(kaihua.longitude) - 118.41) < 0.1  # type: ignore[arg-type]


def test_department_counts_follow_hospital_size(seeded: SeedReport) -> None:
    def count(code: str) -> int:
        return Department.objects.filter(institution__code=code).count()

    for code in ("zju1", "zju2", "srrsh", "zjpph", "qzph", "bjfph", "gzph"):
        assert 12 <= count(code) <= 20, code
    for code in ("khph", "csph", "jsph", "lyph", "qjph", "qxgph"):
        assert 8 <= count(code) <= 12, code
    for code in ("kh-huabu", "kh-chengguan", "cs-tianma"):
        assert 2 <= count(code) <= 3, code
        assert set(Department.objects.filter(institution__code=code).values_list("discipline", flat=True)) <= {
            "general_practice",
            "rehabilitation",
            "tcm",
        }


def test_quzhou_frozen_section_runs_on_weekday_office_hours_only(seeded: SeedReport) -> None:
    frozen = Capability.objects.get(institution__code="qzph", kind=CapabilityKind.FROZEN_SECTION)
    assert not frozen.all_hours
    assert frozen.weekdays == "12345"
    assert frozen.hours_display() == "周一至周五 08:00–17:30"
    tuesday = dt.datetime(2024, 3, 12, 10, 0, tzinfo=SHANGHAI)
    assert frozen.is_available_at(tuesday)
    assert not frozen.is_available_at(tuesday.replace(hour=20))
    assert not frozen.is_available_at(dt.datetime(2024, 3, 16, 10, 0, tzinfo=SHANGHAI))  # Saturday

    thrombectomy = Capability.objects.get(institution__code="qzph", kind=CapabilityKind.THROMBECTOMY)
    assert thrombectomy.is_available_at(dt.datetime(2024, 3, 16, 3, 0, tzinfo=SHANGHAI))


def test_capabilities_match_each_level_of_care(seeded: SeedReport) -> None:
    def kinds(code: str) -> set[str]:
        return set(Capability.objects.filter(institution__code=code).values_list("kind", flat=True))

    for code in ("zju1", "zju2", "srrsh", "zjpph"):
        assert {"ct", "mri", "thrombectomy", "primary_pci", "icu", "robot_surgery"} <= kinds(code)
    assert {"nicu", "high_risk_obstetrics"} <= kinds("zjuwc")
    assert {"ct", "mri", "iv_thrombolysis", "thrombectomy", "primary_pci", "icu", "neuroendoscopy"} <= kinds("qzph")
    for code in ("khph", "csph", "jsph", "lyph", "qjph"):
        assert {"ct", "iv_thrombolysis", "icu", "dialysis", "teleconsultation"} <= kinds(code)
        assert "thrombectomy" not in kinds(code)  # why Changshan sends its stroke patients up
        tele = Capability.objects.get(institution__code=code, kind="teleconsultation")
        assert not tele.all_hours
        assert tele.weekdays == "12345"
    assert {"robot_surgery", "primary_pci", "thrombectomy", "icu", "ct", "mri", "frozen_section"} <= kinds("bjfph")
    assert all(dt.date(2018, 1, 1) <= c.valid_from <= dt.date(2023, 12, 31) for c in Capability.objects.all())


# -- consortia and agreements (story A: Quzhou) ---------------------------------------------------


def test_five_vertical_consortia_of_the_2017_framework(seeded: SeedReport) -> None:
    expected = {
        "zju1-quzhou": ("zju1", ConsortiumType.CITY_MEDICAL_GROUP, {"jsph", "csph"}),
        "zju2-quzhou": ("zju2", ConsortiumType.CITY_MEDICAL_GROUP, {"qzph", "qz2ph", "khph"}),
        "srrsh-quzhou": ("srrsh", ConsortiumType.CITY_MEDICAL_GROUP, {"lyph", "qjph"}),
        "zjuwc-quzhou": ("zjuwc", ConsortiumType.SPECIALTY_ALLIANCE, {"qzmch"}),
        "zjus-quzhou": ("zjus", ConsortiumType.SPECIALTY_ALLIANCE, {"qzph"}),
    }
    for code, (lead, kind, vertical_members) in expected.items():
        consortium = Consortium.objects.get(code=code)
        assert consortium.lead_institution.code == lead
        assert consortium.type == kind
        assert consortium.established_on == dt.date(2017, 4, 20)
        assert consortium.region is not None
        assert consortium.region.code == "330800"
        assert "五纵五横" in consortium.description
        members = selectors.consortium_members(consortium)
        assert {m.institution.code for m in members if m.role == MemberRole.LEAD} == {lead}
        assert {
            m.institution.code for m in members if m.role == MemberRole.MEMBER and m.relation == MemberRelation.VERTICAL
        } == vertical_members


def test_the_stomatology_hospital_supports_zju2_quzhou_horizontally(seeded: SeedReport) -> None:
    member = ConsortiumMember.objects.get(consortium__code="zju2-quzhou", institution__code="zjus")
    assert member.relation == MemberRelation.HORIZONTAL
    assert member.role == MemberRole.MEMBER


def test_the_second_affiliated_signed_with_three_hospitals_in_may_2018(seeded: SeedReport) -> None:
    for code, partner in (
        ("zju2-qzph-2018", "qzph"),
        ("zju2-qz2ph-2018", "qz2ph"),
        ("zju2-khph-2018", "khph"),
    ):
        agreement = Agreement.objects.get(code=code)
        assert (agreement.signed_on.year, agreement.signed_on.month) == (2018, 5)
        assert agreement.consortium is not None
        assert agreement.consortium.code == "zju2-quzhou"
        assert agreement.status == AgreementStatus.ACTIVE
        assert agreement.valid_to is not None
        assert (agreement.valid_to.year, agreement.valid_to.month) == (
            2028,
            5,
        )
        assert set(agreement.parties.values_list("code", flat=True)) == {"zju2", partner}
        assert agreement.is_in_force(dt.date(2025, 1, 1))


def test_first_round_disciplines_are_paired_department_to_department(seeded: SeedReport) -> None:
    pairings = DepartmentPairing.objects.filter(agreement__code="zju2-qzph-2018").select_related(
        "lead_department__institution", "member_department__institution"
    )
    assert {p.member_department.discipline for p in pairings} == {
        "anesthesiology",
        "emergency",
        "radiotherapy",
        "orthopedics",
        "neurosurgery",
    }
    for pairing in pairings:
        assert pairing.kind == PairingKind.SUPPORTED_DISCIPLINE
        assert pairing.lead_department.institution.code == "zju2"
        assert pairing.member_department.institution.code == "qzph"
        assert pairing.lead_department.discipline == pairing.member_department.discipline


def test_every_vertical_consortium_has_an_agreement(seeded: SeedReport) -> None:
    for code in ("zju1-quzhou", "zju2-quzhou", "srrsh-quzhou", "zjuwc-quzhou", "zjus-quzhou", "bijie-nrmc"):
        assert Agreement.objects.filter(consortium__code=code, status=AgreementStatus.ACTIVE).exists(), code


def test_one_older_agreement_has_expired(seeded: SeedReport) -> None:
    expired = Agreement.objects.filter(status=AgreementStatus.EXPIRED)
    assert expired.count() == 1
    assert not expired.get().is_in_force(dt.date(2025, 1, 1))


def test_kaihua_county_community_is_led_by_the_county_hospital(seeded: SeedReport) -> None:
    kaihua = Consortium.objects.get(code="kaihua-ccm")
    assert kaihua.type == ConsortiumType.COUNTY_COMMUNITY
    assert kaihua.lead_institution.code == "khph"
    assert kaihua.region is not None
    assert kaihua.region.code == "330824"
    assert kaihua.established_on is not None
    assert kaihua.established_on.year == 2019
    members = {m.institution.code for m in selectors.consortium_members(kaihua)}
    assert members == {"khph", "kh-huabu", "kh-chengguan"}


# -- story B: Bijie -------------------------------------------------------------------------------


def test_bijie_regional_centre_was_built_end_of_2022(seeded: SeedReport) -> None:
    centre = Consortium.objects.get(code="bijie-nrmc")
    assert centre.type == ConsortiumType.REGIONAL_CENTRE
    assert centre.lead_institution.code == "zjpph"
    assert centre.region is not None
    assert centre.region.code == "520500"
    assert centre.established_on is not None
    assert (
        centre.established_on.year,
        centre.established_on.month,
    ) == (
        2022,
        12,
    )
    assert {m.institution.code for m in selectors.consortium_members(centre)} == {"zjpph", "bjfph", "qxgph"}
    assert not ConsortiumMember.objects.filter(institution__code="gzph").exists()


def test_bijie_agreement_builds_three_centres_and_five_key_disciplines(seeded: SeedReport) -> None:
    agreement = Agreement.objects.get(code="zjpph-bjfph-2022")
    assert agreement.consortium is not None
    assert agreement.consortium.code == "bijie-nrmc"
    assert (agreement.signed_on.year, agreement.signed_on.month) == (2022, 12)
    assert set(agreement.parties.values_list("code", flat=True)) == {"zjpph", "bjfph"}

    centres = agreement.pairings.filter(kind=PairingKind.CENTRE)
    assert centres.count() == 3
    assert "心血管病诊疗中心" in {p.label_zh for p in centres}
    assert all(p.label_en for p in centres)

    key = agreement.pairings.filter(kind=PairingKind.KEY_DISCIPLINE).select_related("member_department")
    assert {p.member_department.discipline for p in key} == {
        "orthopedics",
        "urology",
        "critical_care",
        "hpb_surgery",
        "gi_surgery",
    }
    for pairing in agreement.pairings.select_related("lead_department__institution", "member_department__institution"):
        assert pairing.lead_department.institution.code == "zjpph"
        assert pairing.member_department.institution.code == "bjfph"


# -- users ------------------------------------------------------------------------------------------


def test_every_role_has_a_demo_user(seeded: SeedReport) -> None:
    assert {u.role for u in DEMO_USERS} == set(Role)
    for spec in DEMO_USERS:
        membership = Membership.objects.select_related("institution", "consortium", "region").get(
            user__username=spec.username
        )
        assert membership.role == spec.role
        assert (membership.institution.code if membership.institution else None) == spec.institution_code
        assert (membership.consortium.code if membership.consortium else None) == spec.consortium_code
        assert (membership.region.code if membership.region else None) == spec.region_code
        user = membership.user
        assert user.display_name == spec.display_name_zh
        assert user.language == ""


@pytest.mark.parametrize("username", [u.username for u in DEMO_USERS])
def test_each_demo_user_can_log_in_with_the_demo_password(seeded: SeedReport, username: str) -> None:
    user = authenticate(request=RequestFactory().get("/"), username=username, password=DEMO_PASSWORD)
    assert user is not None
    assert user.get_username() == username


def test_the_commission_viewer_sees_quzhou_but_not_hangzhou(seeded: SeedReport) -> None:
    commission = User.objects.get(username="commission")
    visible = set(selectors.institution_queryset_visible_to(commission).values_list("code", flat=True))
    assert {"qzph", "khph", "csph", "kh-huabu"} <= visible
    assert not visible & {"zju2", "zjpph", "bjfph"}


def test_the_changshan_doctor_sees_the_partners_of_his_consortia(seeded: SeedReport) -> None:
    doctor = User.objects.get(username="doctor")
    visible = set(selectors.institution_queryset_visible_to(doctor).values_list("code", flat=True))
    # zju1-quzhou (with Jiangshan), and the Quzhou neurosurgery alliance led by qzph
    assert visible == {"csph", "zju1", "jsph", "qzph", "khph", "lyph", "qjph", "cs-tianma"}


def test_the_office_manages_the_zju2_quzhou_consortium(seeded: SeedReport) -> None:
    office = User.objects.get(username="office")
    scope = selectors.user_scope(office)
    assert scope.consortium_ids == frozenset({Consortium.objects.get(code="zju2-quzhou").pk})
    visible = set(selectors.institution_queryset_visible_to(office).values_list("code", flat=True))
    assert {"zju2", "qzph", "qz2ph", "khph", "zjus"} <= visible


# -- the referral history ----------------------------------------------------------------------------

FIXED_NOW = dt.datetime(2026, 6, 15, 2, 0, tzinfo=dt.UTC)  # for the tests that seed the history again


def _down_share(start: dt.datetime, end: dt.datetime) -> float:
    period = Referral.objects.filter(created_at__gte=start, created_at__lt=end, green_channel=False)
    return period.filter(direction=Direction.DOWN).count() / period.count()


def _history_snapshot() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "referrals": list(
            Referral.objects.order_by("number").values_list(
                "number", "public_id", "status_token", "status", "direction", "urgency", "from_institution__code",
                "to_institution__code", "patient__public_id", "created_by__username", "created_at", "sent_at",
                "closed_at",
            )
        ),
        "patients": list(
            Patient.objects.order_by("public_id").values_list("public_id", "name", "id_number", "birth_date")
        ),
        "events": list(
            ReferralEvent.objects.order_by("referral__number", "at", "id").values_list(
                "referral__number", "action", "to_status", "at", "side", "actor_label"
            )
        ),
    }  # fmt: skip


def test_the_history_has_referrals_in_every_status_and_direction(seeded: SeedReport) -> None:
    assert set(Referral.objects.values_list("status", flat=True)) == set(Status.values)
    assert set(Referral.objects.values_list("direction", flat=True)) == set(Direction.values)
    routine = Referral.objects.filter(green_channel=False)  # the green channel's history: test_green_demo
    assert ROUND_SIZE <= routine.count() < ROUND_SIZE + 100  # scale 1: one round and the live work
    oldest = routine.order_by("created_at").values_list("created_at", flat=True).first()
    assert oldest is not None
    assert dt.timedelta(days=700) < timezone.now() - oldest < dt.timedelta(days=731)


def test_down_referrals_grow_from_the_first_year_to_the_second(seeded: SeedReport) -> None:
    now = timezone.now()
    first = _down_share(now - dt.timedelta(days=730), now - dt.timedelta(days=365))
    second = _down_share(now - dt.timedelta(days=365), now)
    assert first < 0.3 < second
    assert second - first > 0.08


def test_about_a_fifth_are_urgent_and_the_stories_diagnoses_are_there(seeded: SeedReport) -> None:
    routine = Referral.objects.filter(green_channel=False)  # green-channel transfers are all urgent
    urgent = routine.filter(urgency=Urgency.URGENT).count() / routine.count()
    assert 0.12 < urgent < 0.32
    codes = set(Referral.objects.values_list("diagnosis_code", flat=True))
    for prefix in ("I61.", "I63.", "I21.", "S72.", "M48.", "C34."):  # haemorrhage, infarction, MI, hip, spine, lung
        assert any(code.startswith(prefix) for code in codes), prefix
    stroke_up = Referral.objects.filter(direction=Direction.UP, diagnosis_code__startswith="I63", urgency="urgent")
    assert stroke_up.filter(to_institution__code="qzph", from_institution__code="csph").exists()


def test_stored_id_numbers_are_valid_and_about_three_percent_are_unidentified(seeded: SeedReport) -> None:
    identified = Patient.objects.exclude(id_number=None)
    allowed_regions = {"330822", "330824", "330881", "330825", "330803", "330802", "520502"}
    for number, birth_date, sex, region in identified.values_list(
        "id_number", "birth_date", "sex", "residence_region__code"
    ):
        assert number is not None
        assert id_number_clean(number, birth_date=birth_date, sex=sex) == number
        assert number[:6] == region
        assert region in allowed_regions
    # Green-channel patients (newborns without an ID number among them): test_green_demo.
    referred = Patient.objects.exclude(referrals__green_channel=True)
    unidentified = referred.filter(id_number=None)
    assert 0.01 < unidentified.count() / referred.count() < 0.06
    assert all(p.approximate_age and p.name == "无名氏" for p in unidentified)


def test_patients_are_mostly_elderly(seeded: SeedReport) -> None:
    ages = [
        (first_referral.date() - birth).days // 365
        for birth, first_referral in Patient.objects.exclude(birth_date=None)
        .exclude(referrals__green_channel=True)  # mothers and newborns too: test_green_demo
        .annotate(first=Min("referrals__created_at"))
        .exclude(first=None)  # the consult history's patients were not referred
        .values_list("birth_date", "first")
    ]
    in_range = sum(55 <= age <= 85 for age in ages)
    assert in_range / len(ages) > 0.95  # the others are the obstetric patients
    assert min(ages) >= 20


def test_every_timeline_walks_the_transition_table(seeded: SeedReport) -> None:
    timelines: dict[int, list[tuple[str, str, str, dt.datetime, str, str]]] = {}
    for referral_id, *event in ReferralEvent.objects.order_by("at", "id").values_list(
        "referral_id", "action", "from_status", "to_status", "at", "side", "actor_label"
    ):
        timelines.setdefault(referral_id, []).append(tuple(event))  # type: ignore[arg-type]
    # Green-channel timelines walk GREEN_TRANSITIONS (test_green_demo).
    for pk, status in Referral.objects.filter(green_channel=False).values_list("pk", "status"):
        first, *steps = timelines[pk]
        assert first[:3] == ("create", "", Status.DRAFT) and first[4] == Side.SENDER
        current = Status.DRAFT
        for action, from_status, to_status, _at, side, label in steps:
            transition = TRANSITIONS[(Status(from_status), Action(action))]
            assert from_status == current
            assert to_status == transition.to
            assert side in transition.sides, (action, side)
            assert label
            current = Status(to_status)
        assert current == status


def test_timestamps_and_fields_follow_the_steps_taken(seeded: SeedReport) -> None:
    order = ("created_at", "sent_at", "received_at", "decided_at", "arrived_at", "outcome_at", "closed_at")
    hours_to_receive = []
    for referral in Referral.objects.filter(green_channel=False):  # no consent form or service levels in an emergency
        times = [getattr(referral, name) for name in order if getattr(referral, name) is not None]
        assert times == sorted(times), referral.number
        assert referral.consent_at is not None and referral.consent_at <= referral.created_at
        if referral.status not in (Status.DRAFT, Status.CANCELLED):
            assert referral.sent_at and referral.receive_due_at and referral.decide_due_at
        if referral.received_at and referral.sent_at:
            hours_to_receive.append((referral.received_at - referral.sent_at).total_seconds() / 3600)
        if referral.status == Status.SCHEDULED:
            assert referral.scheduled_at and referral.scheduled_place
        if referral.status in (Status.OUTCOME_RETURNED, Status.CLOSED):
            assert referral.outcome_diagnosis and referral.outcome_treatment and referral.outcome_result
            assert (referral.refer_back is not None) == (referral.direction == Direction.UP)
            if referral.refer_back:
                assert referral.refer_back_on is not None
        if referral.status == Status.CLOSED:
            assert referral.closed_at is not None
        if referral.direction == Direction.DOWN:
            assert referral.has_care_plan(), referral.number
    hours_to_receive.sort()
    assert hours_to_receive[len(hours_to_receive) // 2] < 6  # received within hours
    rescheduled = ReferralEvent.objects.filter(action="schedule", data__has_key="previous").values("referral_id")
    assert ReferralAppointment.objects.filter(referral_id__in=rescheduled).count() > rescheduled.count()


def test_senders_and_receivers_are_members_of_the_referrals_consortium(seeded: SeedReport) -> None:
    members = set(ConsortiumMember.objects.values_list("consortium_id", "institution_id"))
    for consortium, sender, receiver in Referral.objects.values_list(
        "consortium_id", "from_institution_id", "to_institution_id"
    ):
        assert (consortium, sender) in members
        assert receiver is None or (consortium, receiver) in members


def test_patients_sent_up_come_back_down_from_the_hospital_that_treated_them(seeded: SeedReport) -> None:
    loops = 0
    for back in Referral.objects.filter(direction=Direction.DOWN, reason__contains="号上转患者").select_related(
        "patient"
    ):
        up = Referral.objects.get(number=back.reason[:13])
        assert (up.patient_id, up.direction, up.refer_back) == (back.patient_id, Direction.UP, True)
        assert (back.from_institution_id, back.to_institution_id) == (up.to_institution_id, up.from_institution_id)
        assert up.outcome_at is not None and up.outcome_at < back.created_at
        loops += back.status == Status.CLOSED
    assert loops >= 20


def test_the_coordinator_finds_open_and_overdue_referrals_on_the_incoming_board(
    seeded: SeedReport, persona: Any, login: Any
) -> None:
    qzph = Institution.objects.get(code="qzph")
    board = referral_selectors.referral_board(persona("coordinator"), box="incoming", institution=qzph)
    for status in (Status.SENT, Status.RECEIVED, Status.ACCEPTED, Status.SCHEDULED):
        assert board.counts.get(status, 0) >= 1, status
    first_page = list(board.rows[:25])
    overdue = [r for r in first_page if referral_selectors.is_overdue(r)]
    assert overdue

    page = login("coordinator").get("/referrals/", {"box": "incoming", "institution": "qzph"})
    assert page.status_code == 200
    assert overdue[0].number in page.content.decode()


def test_the_changshan_doctor_has_live_work_both_ways(seeded: SeedReport, persona: Any) -> None:
    csph = Institution.objects.get(code="csph")
    doctor = persona("doctor")
    outgoing = referral_selectors.referral_board(doctor, box="outgoing", institution=csph)
    for status in (Status.DRAFT, Status.SENT, Status.OUTCOME_RETURNED):
        assert outgoing.counts.get(status, 0) >= 1, status
    recent = timezone.now() - dt.timedelta(days=3)
    assert outgoing.rows.filter(created_by=doctor, created_at__gte=recent).exists()
    incoming = referral_selectors.referral_board(doctor, box="incoming", institution=csph)
    assert incoming.rows.filter(direction=Direction.DOWN, status=Status.SENT).exists()


def test_the_history_account_cannot_log_in(seeded: SeedReport) -> None:
    account = User.objects.get(username=HISTORY_USERNAME)
    assert not account.is_active
    assert not account.has_usable_password()
    assert Referral.objects.filter(created_by=account).exists()
    assert not Membership.objects.filter(user=account).exists()


def test_the_same_seed_and_clock_reproduce_the_history(seeded: SeedReport) -> None:
    _wipe_referrals()
    seed_referrals(seed=2018, now=FIXED_NOW)
    first = _history_snapshot()
    _wipe_referrals()

    seed_referrals(seed=2018, now=FIXED_NOW)

    assert _history_snapshot() == first
    assert len(first["referrals"]) >= ROUND_SIZE
    _wipe_referrals()
    seed_referrals(seed=7, now=FIXED_NOW)
    other = {row[0] for row in _history_snapshot()["referrals"]}
    assert not other & {row[0] for row in first["referrals"]}


def test_seeding_again_adds_only_missing_rounds_with_one_audit_row_each(seeded: SeedReport) -> None:
    before = (Referral.objects.count(), AuditEvent.objects.count())
    assert seed_referrals() == type(seed_referrals())()
    assert (Referral.objects.count(), AuditEvent.objects.count()) == before

    report = seed_referrals(scale=2)

    assert report.referrals == ROUND_SIZE
    assert Referral.objects.count() == before[0] + ROUND_SIZE
    assert AuditEvent.objects.count() == before[1] + 1
    assert seed_referrals(scale=2).referrals == 0


# -- the management command --------------------------------------------------------------------------


def test_command_reports_what_it_created_then_that_nothing_was_left() -> None:
    _wipe_registry()
    out = StringIO()
    call_command("seed_demo", stdout=out)
    first = out.getvalue().strip()
    assert "\n" not in first
    assert "20 institutions" in first

    out = StringIO()
    call_command("seed_demo", "--seed", "2018", "--scale", "1", stdout=out)
    assert out.getvalue().strip() == "already seeded, nothing to do"


def test_command_refuses_a_scale_below_one() -> None:
    with pytest.raises(CommandError, match="scale"):
        call_command("seed_demo", "--scale", "0")


@pytest.mark.django_db
def test_demo_agreements_carry_an_openable_pdf() -> None:
    import re

    from yilian.registry.models import Agreement

    agreement = Agreement.objects.get(code="zju2-qzph-2018")
    with agreement.document.open("rb") as f:
        content = f.read()
    assert content.startswith(b"%PDF-1.4") and content.rstrip().endswith(b"%%EOF")
    # the cross-reference offsets point at the objects (a reader can open the file)
    found = re.search(rb"startxref\n(\d+)", content)
    assert found is not None
    xref_at = int(found.group(1))
    assert content[xref_at:].startswith(b"xref")
    offsets = [int(o) for o in re.findall(rb"(\d{10}) 00000 n", content)]
    assert [content[o:].split(b" ")[0] for o in offsets] == [b"1", b"2", b"3", b"4", b"5"]
    assert b"Second Affiliated Hospital and Quzhou People's Hospital" in content
    assert Agreement.objects.exclude(document="").count() == Agreement.objects.count()
