"""Capability building through its services: the stage rules of the transfer ledger, the three
verdicts of a regional first on crafted records, QR sign-in and credited hours, mentoring sign-off,
and the indicator inputs."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation

from yilian.activity.columns import Kind
from yilian.capability import selectors, services
from yilian.capability.models import (
    AssessmentResult,
    FirstStatus,
    LocalRole,
    Stage,
    TeachingKind,
    Technique,
    TrainingKind,
)
from yilian.core.errors import Conflict
from yilian.core.models import AuditEvent
from yilian.core.permissions import Role
from yilian.dispatch.tests.factories import (
    account_of,
    expert_create,
    hospital_admin,
    practitioner_create,
    user,
    user_with_role,
)
from yilian.indicators.tests.factories import land
from yilian.registry import services as registry_services
from yilian.registry.models import Department, Discipline, Institution, Region, RegionLevel

pytestmark = pytest.mark.django_db
D = dt.date
TODAY = timezone.localdate()


def _code() -> str:
    return uuid.uuid4().hex[:8]


def technique(*, operation_code: str | None = None, level: int = 4, name_zh: str = "") -> Technique:
    suffix = _code()
    return services.technique_create(
        actor=user("office"),
        code=f"t-{suffix}",
        name_zh=name_zh or f"测试技术{suffix}",
        name_en=f"Test technique {suffix}",
        operation_code=f"T{suffix}" if operation_code is None else operation_code,
        level=level,
        discipline=Discipline.NEUROSURGERY,
    )


@pytest.fixture
def ledger() -> dict[str, Any]:
    """A ledger at Quzhou People's Hospital's neurosurgery: an expert of the Second Affiliated
    Hospital, two local surgeons, the host's hospital administrator."""
    admin = hospital_admin("qzph")
    expert = expert_create()
    department = Department.objects.filter(institution__code="qzph", discipline=Discipline.NEUROSURGERY).first()
    assert department is not None
    tech = technique()
    transfer = services.transfer_open(actor=admin, department=department, technique=tech, expert=expert)
    return {
        "admin": admin,
        "expert": expert,
        "technique": tech,
        "transfer": transfer,
        "li": practitioner_create(institution_code="qzph", name_zh=f"李{_code()[:3]}"),
        "wang": practitioner_create(institution_code="qzph", name_zh=f"王{_code()[:3]}"),
    }


def case(w: dict[str, Any], day: D, role: str, surgeon: Any = None) -> Any:
    return services.transfer_case_add(
        actor=w["admin"], transfer=w["transfer"], performed_on=day, local_role=role, local_surgeon=surgeon
    )


def messages(exc: ValidationError) -> str:
    return " ".join(exc.messages)


# --------------------------------------------------------------------------------------------
# Catalogue


def test_restricted_technique_must_be_level_4() -> None:
    with pytest.raises(ValidationError) as exc, translation.override("en"):
        services.technique_create(
            actor=user("office"),
            code=f"t-{_code()}",
            name_zh="限制类",
            level=3,
            restricted=True,
            discipline=Discipline.NEUROSURGERY,
        )
    assert "restricted technique is a level-4 operation" in messages(exc.value)


def test_only_the_consortium_office_keeps_the_catalogue() -> None:
    doctor = user_with_role(Role.DOCTOR, institution_code="qzph")
    with pytest.raises(PermissionDenied):
        services.technique_create(
            actor=doctor, code=f"t-{_code()}", name_zh="x", level=2, discipline=Discipline.NEUROSURGERY
        )


# --------------------------------------------------------------------------------------------
# Ledger stages


def test_stages_advance_on_evidence_and_independence_needs_the_privilege(ledger: dict[str, Any]) -> None:
    w = ledger
    first = case(w, D(2025, 1, 10), LocalRole.NONE)
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=first)
    assisted = case(w, D(2025, 3, 1), LocalRole.ASSISTED, w["li"])
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=assisted)
    supervised = case(w, D(2025, 6, 1), LocalRole.SUPERVISED, w["li"])
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=supervised)
    alone = case(w, D(2025, 9, 1), LocalRole.INDEPENDENT, w["li"])

    with pytest.raises(ValidationError) as exc, translation.override("en"):
        services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=alone)
    assert "held no privilege" in messages(exc.value)

    # A privilege granted after the case does not make that case independent.
    services.privilege_grant(
        actor=w["admin"], practitioner=w["li"], technique=w["technique"], granted_on=D(2025, 10, 1)
    )
    with pytest.raises(ValidationError):
        services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=alone)

    later = case(w, D(2025, 10, 20), LocalRole.INDEPENDENT, w["li"])
    steps = services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=later)
    assert [s.stage for s in steps] == [Stage.INDEPENDENT]
    assert steps[0].privilege is not None
    transfer = w["transfer"]
    transfer.refresh_from_db()
    assert transfer.stage == Stage.INDEPENDENT
    assert transfer.introduced_on == D(2025, 1, 10)
    assert transfer.independent_on == D(2025, 10, 20)
    assert transfer.days_to_independence == (D(2025, 10, 20) - D(2025, 1, 10)).days
    view = selectors.ledger(transfer)
    assert [(stage, step.reached_on if step else None) for stage, step in view.stages] == [
        (Stage.INTRODUCED, D(2025, 1, 10)),
        (Stage.ASSISTS, D(2025, 3, 1)),
        (Stage.SUPERVISED, D(2025, 6, 1)),
        (Stage.INDEPENDENT, D(2025, 10, 20)),
    ]
    assert view.surgeons[0].surgeon == w["li"] and view.surgeons[0].stage == Stage.INDEPENDENT
    # Cases by who performed them: the expert's two, the local surgeon's three.
    assert {(name, local): n for name, local, n in view.by_operator} == {
        (w["expert"].name_zh, False): 2,
        (w["li"].name_zh, True): 3,
    }


def test_a_local_stage_needs_the_introduction_first(ledger: dict[str, Any]) -> None:
    w = ledger
    assisted = case(w, D(2025, 3, 1), LocalRole.ASSISTED, w["li"])
    with pytest.raises(ValidationError) as exc, translation.override("en"):
        services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=assisted)
    assert "introduction" in messages(exc.value)


def test_skipping_a_stage_needs_evidence_of_the_skipped_stage(ledger: dict[str, Any]) -> None:
    w = ledger
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 1, 5), "none"))
    supervised = case(w, D(2025, 4, 1), LocalRole.SUPERVISED, w["wang"])
    with pytest.raises(ValidationError) as exc, translation.override("en"):
        services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=supervised)
    assert "cannot skip the stage" in messages(exc.value)
    assert not w["transfer"].steps.filter(surgeon=w["wang"]).exists()

    # With a case of the skipped stage on record (even recorded later), both steps are written.
    case(w, D(2025, 2, 1), LocalRole.ASSISTED, w["wang"])
    steps = services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=supervised)
    assert [(s.stage, s.reached_on) for s in steps] == [
        (Stage.ASSISTS, D(2025, 2, 1)),
        (Stage.SUPERVISED, D(2025, 4, 1)),
    ]
    # The same stage twice is a conflict, and so is a second introduction.
    with pytest.raises(Conflict):
        services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=supervised)
    with pytest.raises(Conflict):
        services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 5, 1), "none"))


def test_cases_name_a_surgeon_of_the_host_and_are_not_in_the_future(ledger: dict[str, Any]) -> None:
    w = ledger
    outsider = practitioner_create(institution_code="zju2")
    with pytest.raises(ValidationError) as exc, translation.override("en"):
        case(w, D(2025, 3, 1), LocalRole.ASSISTED, outsider)
    assert "must work at the host hospital" in messages(exc.value)
    with pytest.raises(ValidationError):
        case(w, D(2025, 3, 1), LocalRole.ASSISTED, None)
    with pytest.raises(ValidationError) as exc:
        case(w, TODAY + dt.timedelta(days=1), LocalRole.NONE)
    assert messages(exc.value) == "病例日期不能晚于今天。"  # the user's language: Chinese by default


def test_a_doctor_of_another_hospital_cannot_keep_the_ledger(ledger: dict[str, Any]) -> None:
    stranger = user_with_role(Role.HOSPITAL_ADMIN, institution_code="zju2")
    with pytest.raises(PermissionDenied):
        services.transfer_case_add(
            actor=stranger, transfer=ledger["transfer"], performed_on=D(2025, 1, 1), local_role=LocalRole.NONE
        )


def test_the_stationed_expert_keeps_the_ledger_of_the_department_they_serve(ledger: dict[str, Any]) -> None:
    from yilian.dispatch.tests.factories import assignment_create, programme_create

    expert = ledger["expert"]
    assert not selectors.can_record_transfer(expert.user, ledger["transfer"].department)
    assignment_create(programme_create(starts_on=D(2025, 1, 1)), expert)
    del expert.user._yilian_scope
    assert selectors.can_record_transfer(expert.user, ledger["transfer"].department)


def test_collecting_imported_operations_tells_the_expert_from_local_surgeons(ledger: dict[str, Any]) -> None:
    w = ledger
    code = w["technique"].operation_code
    rows = []
    for i, (day, operator) in enumerate(
        [(D(2025, 2, 3), w["expert"].name_zh), (D(2025, 7, 9), w["li"].name_zh), (D(2025, 8, 1), "外院某医师")]
    ):
        rows.append(
            {
                "institution_code": "qzph",
                "record_id": f"R{_code()}{i}",
                "department": "神经外科",
                "discharge_date": day + dt.timedelta(days=3),
                "operation_date": day,
                "operation_seq": 1,
                "is_main": True,
                "operation_code": f"{code}01",
                "operation_name": "测试手术",
                "operation_level": 4,
                "category": "surgery",
                "minimally_invasive": False,
                "robot_assisted": False,
                "operator": operator,
            }
        )
    land(Kind.OPERATIONS, rows)
    collected = services.transfer_collect(actor=w["admin"], transfer=w["transfer"])
    assert collected.from_activity == 2
    assert collected.unmatched_surgeons == ["外院某医师"]
    cases = list(w["transfer"].cases.order_by("performed_on"))
    assert [(c.performed_on, c.local_role, c.local_surgeon) for c in cases] == [
        (D(2025, 2, 3), LocalRole.NONE, None),
        (D(2025, 7, 9), LocalRole.INDEPENDENT, w["li"]),
    ]
    assert all(c.source_ref.startswith("activity:") and "R" not in c.source_ref.split(":")[1][:1] for c in cases)
    # Collecting again adds nothing.
    assert services.transfer_collect(actor=w["admin"], transfer=w["transfer"]).total == 0


# --------------------------------------------------------------------------------------------
# Regional firsts on crafted records


@pytest.fixture
def city() -> dict[str, Any]:
    """A city of two hospitals that nothing else in the database touches."""
    admin = user("admin")
    code = next(c for c in (f"339{d}00" for d in range(10)) if not Region.objects.filter(code=c).exists())
    region = registry_services.region_create(
        actor=admin,
        code=code,
        name_zh="测试市",
        name_en="Test City",
        level=RegionLevel.CITY,
        parent=Region.objects.get(code="330000"),
    )
    hospitals = []
    for tag in ("a", "b"):
        inst = registry_services.institution_create(
            actor=admin,
            code=f"tc{tag}{_code()[:5]}",
            name_zh=f"测试市{tag}医院",
            grade="3A",
            type="general",
            region=region,
        )
        registry_services.department_create(actor=admin, institution=inst, discipline=Discipline.NEUROSURGERY)
        hospitals.append(inst)
    return {"region": region, "a": hospitals[0], "b": hospitals[1], "admin": admin}


def _months_rows(inst: Institution, until: D, months: int, code: str = "Z99.99") -> list[dict[str, Any]]:
    rows = []
    for back in range(1, months + 1):
        index = until.year * 12 + until.month - 1 - back
        day = D(index // 12, index % 12 + 1, 15)
        rows.append(
            {
                "institution_code": inst.code,
                "record_id": f"C{_code()}",
                "department": "神经外科",
                "discharge_date": day,
                "operation_date": day,
                "operation_seq": 1,
                "is_main": True,
                "operation_code": code,
                "operation_name": "其他手术",
                "operation_level": 2,
                "category": "surgery",
                "minimally_invasive": False,
                "robot_assisted": False,
                "operator": "某医师",
            }
        )
    return rows


def _claim(city: dict[str, Any], tech: Technique, day: D) -> Any:
    return services.first_claim(
        actor=city["admin"], technique=tech, institution=city["a"], performed_on=day, region=city["region"]
    )


def test_a_first_is_verified_when_the_records_cover_the_region_and_hold_no_earlier_case(city: dict[str, Any]) -> None:
    tech = technique()
    day = D(2025, 6, 20)
    land(Kind.OPERATIONS, _months_rows(city["a"], day, 24) + _months_rows(city["b"], day, 24))
    claim = _claim(city, tech, day)
    assert claim.status == FirstStatus.VERIFIED
    assert claim.evidence["window"] == {"from": "2023-06-01", "to": "2025-06-20", "institutions": 2}


def test_a_first_is_contradicted_by_an_earlier_imported_case(city: dict[str, Any]) -> None:
    tech = technique()
    day = D(2025, 6, 20)
    earlier = _months_rows(city["b"], D(2024, 4, 1), 1, code=f"{tech.operation_code}00")
    land(Kind.OPERATIONS, _months_rows(city["a"], day, 24) + earlier)
    claim = _claim(city, tech, day)
    assert claim.status == FirstStatus.CONTRADICTED
    assert claim.evidence["earlier"]["institution"] == city["b"].code
    assert claim.evidence["earlier"]["date"] == "2024-03-15"
    assert claim.evidence["earlier"]["source"] == "activity"


def test_a_first_is_contradicted_by_an_earlier_ledger_case_elsewhere_in_the_region(city: dict[str, Any]) -> None:
    tech = technique()
    admin = city["admin"]
    dept = Department.objects.get(institution=city["b"])
    transfer = services.transfer_open(actor=admin, department=dept, technique=tech, expert=expert_create())
    services.transfer_case_add(actor=admin, transfer=transfer, performed_on=D(2025, 1, 2), local_role=LocalRole.NONE)
    claim = _claim(city, tech, D(2025, 6, 20))
    assert claim.status == FirstStatus.CONTRADICTED
    assert claim.evidence["earlier"] == {
        "source": "ledger",
        "date": "2025-01-02",
        "institution": city["b"].code,
        "institution_name": city["b"].name_zh,
        "operator": transfer.expert.name_zh,
        "code": tech.operation_code,
    }


def test_a_first_is_unverifiable_where_the_records_miss_months_of_a_hospital(city: dict[str, Any]) -> None:
    tech = technique()
    day = D(2025, 6, 20)
    # Hospital b sent only the last 20 months: 2023-06 .. 2023-09 are missing.
    land(Kind.OPERATIONS, _months_rows(city["a"], day, 24) + _months_rows(city["b"], day, 20))
    claim = _claim(city, tech, day)
    assert claim.status == FirstStatus.UNVERIFIABLE
    assert claim.evidence["reason"] == "coverage"
    assert claim.evidence["missing"] == [
        {
            "institution": city["b"].code,
            "institution_name": city["b"].name_zh,
            "months": ["2023-06–2023-09"],
            "month_count": 4,
        }
    ]
    # The missing months arrive: checking again verifies it.
    land(Kind.OPERATIONS, [r for r in _months_rows(city["b"], day, 24)][20:])
    claim = services.first_verify(actor=city["admin"], claim=claim)
    assert claim.status == FirstStatus.VERIFIED


def test_a_first_of_a_technique_without_a_national_code_is_unverifiable(city: dict[str, Any]) -> None:
    claim = _claim(city, technique(operation_code=""), D(2025, 6, 20))
    assert claim.status == FirstStatus.UNVERIFIABLE
    assert claim.evidence["reason"] == "no_code"


def test_a_first_is_claimed_for_a_region_the_institution_is_in(city: dict[str, Any]) -> None:
    tech = technique()
    with pytest.raises(ValidationError) as exc, translation.override("en"):
        services.first_claim(
            actor=city["admin"],
            technique=tech,
            institution=city["a"],
            performed_on=D(2025, 1, 1),
            region=Region.objects.get(code="330800"),
        )
    assert "is not in" in messages(exc.value)
    with pytest.raises(ValidationError):
        services.first_claim(
            actor=city["admin"],
            technique=tech,
            institution=city["a"],
            performed_on=D(2025, 1, 1),
            macro_region="southwest",
        )
    claim = services.first_claim(
        actor=city["admin"], technique=tech, institution=city["a"], performed_on=D(2025, 1, 1), macro_region="east"
    )
    assert claim.region_name in ("华东", "East China")
    assert AuditEvent.objects.filter(object_id=str(claim.public_id)).exists()


# --------------------------------------------------------------------------------------------
# Teaching and QR sign-in


@pytest.fixture
def session(time_machine: Any) -> dict[str, Any]:
    start = timezone.now().replace(microsecond=0) + dt.timedelta(minutes=10)
    time_machine.move_to(start - dt.timedelta(minutes=5), tick=False)
    leader = expert_create()
    organiser = hospital_admin("qzph")
    activity = services.teaching_create(
        actor=organiser,
        kind=TeachingKind.SURGERY_DEMONSTRATION,
        topic="神经内镜手术示范",
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=100),
        leader=leader,
        institutions=[Institution.objects.get(code="qzph")],
        other_attendees=12,
    )
    attendees = []
    for _ in range(2):
        account = user_with_role(Role.DOCTOR, institution_code="qzph")
        practitioner_create(institution_code="qzph", account=account)
        attendees.append(account)
    return {"activity": activity, "organiser": organiser, "attendees": attendees, "tm": time_machine, "start": start}


def test_an_attendee_signs_in_with_a_code_and_is_credited_the_hours(session: dict[str, Any]) -> None:
    s = session
    code, _row = services.sign_in_code_issue(actor=s["organiser"], activity=s["activity"])
    attendance = services.sign_in_redeem(actor=s["attendees"][0], activity=s["activity"], code=code)
    # 100 minutes are credited as 1.5 hours (nearest half hour).
    assert attendance.hours == Decimal("1.5")
    assert attendance.method == "qr"
    assert selectors.teaching_hours_of(attendance.practitioner) == Decimal("1.5")


def test_a_used_code_is_refused_to_the_next_person(session: dict[str, Any]) -> None:
    s = session
    code, _row = services.sign_in_code_issue(actor=s["organiser"], activity=s["activity"])
    services.sign_in_redeem(actor=s["attendees"][0], activity=s["activity"], code=code)
    with pytest.raises(Conflict) as exc, translation.override("en"):
        services.sign_in_redeem(actor=s["attendees"][1], activity=s["activity"], code=code)
    assert "already been used" in str(exc.value)
    assert s["activity"].attendances.count() == 1


def test_an_expired_code_is_refused(session: dict[str, Any]) -> None:
    s = session
    code, _row = services.sign_in_code_issue(actor=s["organiser"], activity=s["activity"])
    s["tm"].shift(dt.timedelta(seconds=services.SIGN_IN_CODE_SECONDS + 1))
    with pytest.raises(ValidationError) as exc, translation.override("en"):
        services.sign_in_redeem(actor=s["attendees"][0], activity=s["activity"], code=code)
    assert "expired" in messages(exc.value)
    with pytest.raises(ValidationError):
        services.sign_in_redeem(actor=s["attendees"][0], activity=s["activity"], code="not-a-code")


def test_a_person_signs_in_once_and_only_a_practitioner_signs_in(session: dict[str, Any]) -> None:
    s = session
    first, _ = services.sign_in_code_issue(actor=s["organiser"], activity=s["activity"])
    second, _ = services.sign_in_code_issue(actor=s["organiser"], activity=s["activity"])
    services.sign_in_redeem(actor=s["attendees"][0], activity=s["activity"], code=first)
    with pytest.raises(Conflict):
        services.sign_in_redeem(actor=s["attendees"][0], activity=s["activity"], code=second)
    with pytest.raises(PermissionDenied):
        services.sign_in_redeem(actor=user("office"), activity=s["activity"], code=second)


def test_sign_in_runs_only_around_the_session_and_not_when_cancelled(session: dict[str, Any]) -> None:
    s = session
    s["tm"].move_to(s["start"] - dt.timedelta(minutes=services.SIGN_IN_OPENS_MINUTES + 1), tick=False)
    with pytest.raises(Conflict):
        services.sign_in_code_issue(actor=s["organiser"], activity=s["activity"])
    s["tm"].move_to(s["start"], tick=False)
    code, _ = services.sign_in_code_issue(actor=s["organiser"], activity=s["activity"])
    services.teaching_cancel(actor=s["organiser"], activity=s["activity"])
    s["activity"].refresh_from_db()
    with pytest.raises((Conflict, ValidationError)):
        services.sign_in_redeem(actor=s["attendees"][0], activity=s["activity"], code=code)
    with pytest.raises(Conflict):
        services.sign_in_code_issue(actor=s["organiser"], activity=s["activity"])


def test_an_attendee_cannot_run_the_sign_in(session: dict[str, Any]) -> None:
    with pytest.raises(PermissionDenied):
        services.sign_in_code_issue(actor=session["attendees"][0], activity=session["activity"])


# --------------------------------------------------------------------------------------------
# Training programmes


def test_only_the_mentor_signs_off_and_a_signed_pass_reaches_the_milestone() -> None:
    admin = hospital_admin("qzph")
    mentor = expert_create()
    mentee_doc = practitioner_create(institution_code="qzph")
    programme = services.training_create(
        actor=admin,
        kind=TrainingKind.STUDIO,
        name_zh="神经外科名医工作室",
        institution=Institution.objects.get(code="qzph"),
        mentor=mentor,
        starts_on=D(2025, 1, 1),
    )
    milestone = services.milestone_add(actor=admin, programme=programme, title_zh="独立完成内镜血肿清除", due_months=6)
    mentee = services.mentee_add(actor=admin, programme=programme, practitioner=mentee_doc, joined_on=D(2025, 1, 1))
    assessment = services.assessment_record(
        actor=account_of(mentor),
        mentee=mentee,
        milestone=milestone,
        assessed_on=D(2025, 5, 1),
        result=AssessmentResult.PASSED,
        score=88,
    )
    assert selectors.mentee_progress(mentee, user=admin).reached == 0  # not signed off yet
    with pytest.raises(PermissionDenied):
        services.assessment_sign_off(actor=admin, assessment=assessment)
    services.assessment_sign_off(actor=account_of(mentor), assessment=assessment)
    with pytest.raises(Conflict):
        services.assessment_sign_off(actor=account_of(mentor), assessment=assessment)
    progress = selectors.mentee_progress(mentee, user=admin)
    assert progress.reached == 1
    assert progress.milestones[0].reached_on == D(2025, 5, 1)
    assert progress.milestones[0].due_on == D(2025, 7, 1)
    figures = selectors.capability_figures_by_month(admin, start=D(2025, 5, 1), end=D(2025, 5, 31))
    assert figures[D(2025, 5, 1)][programme.institution_id]["milestones_reached"] == 1
    with pytest.raises(ValidationError):
        services.mentee_add(actor=admin, programme=programme, practitioner=mentor, joined_on=D(2025, 2, 1))
    with pytest.raises(Conflict):
        services.mentee_add(actor=admin, programme=programme, practitioner=mentee_doc, joined_on=D(2025, 2, 1))


# --------------------------------------------------------------------------------------------
# Indicator inputs


def test_figures_count_introductions_independence_and_the_blood_making_cases(ledger: dict[str, Any]) -> None:
    w = ledger
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 1, 10), "none"))
    case(w, D(2025, 1, 20), LocalRole.ASSISTED, w["li"])
    services.privilege_grant(actor=w["admin"], practitioner=w["li"], technique=w["technique"], granted_on=D(2025, 1, 1))
    services.transfer_advance(
        actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 1, 25), "assisted", w["li"])
    )
    case(w, D(2025, 1, 26), LocalRole.SUPERVISED, w["li"])
    services.transfer_advance(
        actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 1, 28), "independent", w["li"])
    )
    host = w["transfer"].department.institution_id
    figures = selectors.capability_figures_by_month(w["admin"], start=D(2025, 1, 1), end=D(2025, 1, 31))
    january = figures[D(2025, 1, 1)][host]
    assert january["techniques_introduced"] >= 1
    assert january["techniques_independent"] >= 1
    mine = w["transfer"].cases.count()
    assert mine == 5
    # Of the five level-4 cases two were the local surgeon's own operations (supervised, alone).
    assert (january["ops_34_total"], january["ops_34_local"]) >= (5, 2)


def test_indicator_engine_reads_the_capability_figures(ledger: dict[str, Any]) -> None:
    from yilian.indicators import selectors as indicator_selectors

    assert hasattr(indicator_selectors, "__name__")
    w = ledger
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2024, 3, 10), "none"))
    from yilian.indicators.sources import OperationalSources

    sources = OperationalSources(w["admin"], [(D(2024, 3, 1), D(2024, 4, 1))])
    from yilian.indicators.dsl import Measure

    measure = Measure(source="capability", measure="sum:techniques_introduced")
    value, allowed = sources.value(measure, D(2024, 3, 1), D(2024, 4, 1), [w["transfer"].department.institution])
    assert allowed and value is not None and value >= 1


def test_collecting_work_logs_reads_the_experts_role_as_the_local_surgeons_part(
    ledger: dict[str, Any], time_machine: Any
) -> None:
    from yilian.dispatch import services as dispatch_services
    from yilian.dispatch.services import OperationEntry
    from yilian.dispatch.tests.factories import account_of, assignment_create, at, programme_create

    w = ledger
    day = D(2026, 10, 14)  # a Wednesday
    time_machine.move_to(at(day, 18), tick=False)
    assignment = assignment_create(
        programme_create(starts_on=D(2026, 9, 1)), w["expert"], host_department=w["transfer"].department
    )
    dispatch_services.attendance_check_in(actor=account_of(w["expert"]), assignment=assignment, now=at(day, 8))
    name = w["technique"].name_zh
    dispatch_services.work_log_save(
        actor=account_of(w["expert"]),
        assignment=assignment,
        date=day,
        counts={},
        operations=[
            OperationEntry(name, level=4, role="operator"),
            OperationEntry(name, level=4, role="operator", local_surgeon=w["li"]),
            OperationEntry(name, level=4, role="supervisor", local_surgeon=w["wang"]),
            OperationEntry("其他手术", level=2, role="operator"),
        ],
    )
    collected = services.transfer_collect(actor=w["admin"], transfer=w["transfer"])
    assert (collected.from_work_logs, collected.from_activity) == (3, 0)
    cases = {(c.local_role, c.local_surgeon_id, c.operator_name) for c in w["transfer"].cases.all()}
    assert cases == {
        (LocalRole.NONE, None, w["expert"].name_zh),
        (LocalRole.ASSISTED, w["li"].pk, w["expert"].name_zh),
        (LocalRole.SUPERVISED, w["wang"].pk, w["wang"].name_zh),
    }
    # The same day's operation imported from the front page, the expert as operator: not a second case.
    row = {
        "institution_code": "qzph",
        "record_id": f"W{_code()}",
        "department": "神经外科",
        "discharge_date": day,
        "operation_date": day,
        "operation_seq": 1,
        "is_main": True,
        "operation_code": f"{w['technique'].operation_code}01",
        "operation_name": name,
        "operation_level": 4,
        "category": "surgery",
        "minimally_invasive": False,
        "robot_assisted": False,
        "operator": w["expert"].name_zh,
    }
    land(Kind.OPERATIONS, [row])
    assert services.transfer_collect(actor=w["admin"], transfer=w["transfer"]).total == 0


def test_a_skipped_stage_cannot_be_proven_by_a_case_older_than_the_introduction(ledger: dict[str, Any]) -> None:
    w = ledger
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 3, 1), "none"))
    case(w, D(2025, 2, 1), LocalRole.ASSISTED, w["li"])  # before the introduction
    supervised = case(w, D(2025, 5, 1), LocalRole.SUPERVISED, w["li"])
    with pytest.raises(ValidationError) as exc, translation.override("en"):
        services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=supervised)
    assert "cannot skip the stage" in messages(exc.value)


def test_a_privilege_the_ledger_relied_on_cannot_be_revoked_before_that_day(ledger: dict[str, Any]) -> None:
    w = ledger
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 1, 5), "none"))
    case(w, D(2025, 2, 1), LocalRole.ASSISTED, w["li"])
    case(w, D(2025, 3, 1), LocalRole.SUPERVISED, w["li"])
    privilege = services.privilege_grant(
        actor=w["admin"], practitioner=w["li"], technique=w["technique"], granted_on=D(2025, 3, 10)
    )
    services.transfer_advance(
        actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 4, 1), "independent", w["li"])
    )
    with pytest.raises(ValidationError) as exc, translation.override("en"):
        services.privilege_revoke(actor=w["admin"], privilege=privilege, on=D(2025, 3, 20), reason="审核")
    assert "used this privilege on 2025-04-01" in messages(exc.value)
    revoked = services.privilege_revoke(actor=w["admin"], privilege=privilege, on=D(2025, 6, 1), reason="暂停")
    assert revoked.revoked_on == D(2025, 6, 1)


def test_a_first_is_dated_by_its_case_and_names_a_programme_of_its_hospital(ledger: dict[str, Any]) -> None:
    from yilian.dispatch.tests.factories import programme_create

    w = ledger
    first = case(w, D(2025, 1, 5), LocalRole.NONE)
    qzph = w["transfer"].department.institution
    quzhou = Region.objects.get(code="330800")
    with pytest.raises(ValidationError) as exc:
        services.first_claim(
            actor=w["admin"],
            technique=w["technique"],
            institution=qzph,
            performed_on=D(2024, 1, 5),
            region=quzhou,
            case=first,
        )
    assert "performed_on" in exc.value.message_dict
    elsewhere = programme_create(starts_on=D(2025, 1, 1), host_code="khph")
    with pytest.raises(ValidationError) as exc:
        services.first_claim(
            actor=w["admin"],
            technique=w["technique"],
            institution=qzph,
            performed_on=D(2025, 1, 5),
            region=quzhou,
            case=first,
            programme=elsewhere,
        )
    assert "programme" in exc.value.message_dict


def test_teaching_names_a_leader_the_organiser_may_see() -> None:
    organiser = hospital_admin("qzph")
    stranger = practitioner_create(institution_code="bjfph")
    start = timezone.now() - dt.timedelta(hours=2)
    with pytest.raises(ValidationError) as exc:
        services.teaching_create(
            actor=organiser,
            kind=TeachingKind.LECTURE,
            topic="讲座",
            starts_at=start,
            ends_at=start + dt.timedelta(hours=1),
            leader=stranger,
            institutions=[Institution.objects.get(code="qzph")],
        )
    assert "leader" in exc.value.message_dict


def test_a_milestone_on_a_technique_stage_is_reached_by_the_ledger(ledger: dict[str, Any]) -> None:
    w = ledger
    qzph = w["transfer"].department.institution
    programme = services.training_create(
        actor=w["admin"],
        kind=TrainingKind.BACKBONE,
        name_zh="骨干培育",
        institution=qzph,
        mentor=w["expert"],
        starts_on=D(2025, 1, 1),
    )
    milestone = services.milestone_add(
        actor=w["admin"], programme=programme, title_zh="带教下主刀", technique=w["technique"], stage=Stage.SUPERVISED
    )
    mentee = services.mentee_add(actor=w["admin"], programme=programme, practitioner=w["li"], joined_on=D(2025, 1, 1))
    assert selectors.mentee_progress(mentee, user=w["admin"]).reached == 0
    services.transfer_advance(actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 2, 1), "none"))
    case(w, D(2025, 3, 1), LocalRole.ASSISTED, w["li"])
    services.transfer_advance(
        actor=w["admin"], transfer=w["transfer"], evidence=case(w, D(2025, 4, 2), "supervised", w["li"])
    )
    progress = selectors.mentee_progress(mentee, user=w["admin"])
    assert (progress.reached, progress.milestones[0].reached_on) == (1, D(2025, 4, 2))
    assert progress.milestones[0].milestone == milestone
    figures = selectors.capability_figures_by_month(w["admin"], start=D(2025, 4, 1), end=D(2025, 4, 30))
    assert figures[D(2025, 4, 1)][qzph.pk]["milestones_reached"] >= 1
