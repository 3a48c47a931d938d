"""Builders for stationing tests: people with the roles stationing needs, programmes and assignments
written through the services the way the consortium office would.

The default programme is the Quzhou story's: the Second Affiliated Hospital (zju2) stations experts
at Quzhou People's Hospital (qzph) in the consortium ``zju2-quzhou``, planned by its office (the demo
persona ``office``). Experts are made fresh (a zju2 practitioner with a ``stationed_expert`` account)
so that tests never meet the demo's own stationing data. Every builder is additive: tests of other
modules (views, API) import what they need from here.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

from yilian.core.permissions import Role
from yilian.demo.seed import DEMO_PASSWORD
from yilian.dispatch import services
from yilian.dispatch.models import Assignment, Commitment, HostRole, Programme
from yilian.registry import services as registry_services
from yilian.registry.models import (
    Consortium,
    Department,
    Discipline,
    Institution,
    Practitioner,
    ProfessionalTitle,
    Region,
    User,
)

DEFAULT_CONSORTIUM = "zju2-quzhou"
DEFAULT_SENDING = "zju2"
DEFAULT_HOST = "qzph"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day: dt.date, hour: int = 9, minute: int = 0) -> dt.datetime:
    """A moment of ``day`` in China time (the services' ``timezone.localdate`` is China's date)."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


def user(username: str) -> User:
    return User.objects.get(username=username)


def institution(code: str) -> Institution:
    return Institution.objects.get(code=code)


def consortium(code: str) -> Consortium:
    return Consortium.objects.get(code=code)


def department(institution_code: str, discipline: str = Discipline.NEUROSURGERY) -> Department:
    """The (first) department of a discipline at an institution of the demo consortium."""
    found = Department.objects.filter(institution__code=institution_code, discipline=discipline).order_by("id").first()
    assert found is not None, f"{institution_code} has no {discipline} department"
    return found


def user_with_role(
    role: Role,
    *,
    institution_code: str | None = None,
    consortium_code: str | None = None,
    region_code: str | None = None,
    username: str = "",
    display_name: str = "",
) -> User:
    """A new account holding one role (granted by the system, as the seed does)."""
    account = registry_services.user_create(
        actor=None,
        username=username or f"{role.value[:12]}-{_suffix()}",
        password=DEMO_PASSWORD,
        display_name=display_name,
    )
    registry_services.membership_grant(
        actor=None,
        user=account,
        role=role,
        institution=institution(institution_code) if institution_code else None,
        consortium=consortium(consortium_code) if consortium_code else None,
        region=Region.objects.get(code=region_code) if region_code else None,
    )
    return account


def office_of(consortium_code: str) -> User:
    """A new consortium-office account of ``consortium_code`` (the demo ``office`` runs zju2-quzhou)."""
    return user_with_role(Role.CONSORTIUM_OFFICE, consortium_code=consortium_code, display_name="医联体办公室")


def hospital_admin(institution_code: str = DEFAULT_HOST) -> User:
    """A new hospital administrator of ``institution_code`` (the demo ``hospadmin`` is one at qzph)."""
    return user_with_role(Role.HOSPITAL_ADMIN, institution_code=institution_code, display_name="医务部")


def practitioner_create(
    *,
    institution_code: str,
    name_zh: str = "",
    discipline: str = Discipline.NEUROSURGERY,
    account: User | None = None,
    title: str = ProfessionalTitle.ATTENDING_PHYSICIAN,
) -> Practitioner:
    """A practitioner registered through the registry service (licence number made unique)."""
    dept = Department.objects.filter(institution__code=institution_code, discipline=discipline).first()
    return registry_services.practitioner_create(
        actor=None,
        name_zh=name_zh or f"医师{_suffix()[:4]}",
        title=title,
        institution=institution(institution_code),
        department=dept,
        licence_number=f"T{uuid.uuid4().hex[:20]}",
        user=account,
    )


def expert_create(
    *,
    name_zh: str = "",
    institution_code: str = DEFAULT_SENDING,
    discipline: str = Discipline.NEUROSURGERY,
) -> Practitioner:
    """A stationed expert: a practitioner of the sending institution with their own account
    (role ``stationed_expert`` there). The account is ``practitioner.user``."""
    name = name_zh or f"专家{_suffix()[:4]}"
    account = user_with_role(
        Role.STATIONED_EXPERT, institution_code=institution_code, username=f"expert-{_suffix()}", display_name=name
    )
    return practitioner_create(
        institution_code=institution_code,
        name_zh=name,
        discipline=discipline,
        account=account,
        title=ProfessionalTitle.CHIEF_PHYSICIAN,
    )


def account_of(practitioner: Practitioner) -> User:
    """The expert's own account (``practitioner.user``, which ``expert_create`` always sets)."""
    assert practitioner.user is not None
    return practitioner.user


def programme_create(
    *,
    starts_on: dt.date,
    ends_on: dt.date | None = None,
    actor: User | None = None,
    code: str = "",
    consortium_code: str = DEFAULT_CONSORTIUM,
    sending_code: str = DEFAULT_SENDING,
    host_code: str = DEFAULT_HOST,
    title_zh: str = "专家派驻（测试）",
    **fields: Any,
) -> Programme:
    """A programme created through ``services.programme_create`` by ``actor`` (default: the demo
    ``office``, which plans zju2-quzhou); a fresh code unless given."""
    return services.programme_create(
        actor=actor or user("office"),
        code=code or f"t-{host_code}-{_suffix()}",
        consortium=consortium(consortium_code),
        sending_institution=institution(sending_code),
        host_institution=institution(host_code),
        title_zh=title_zh,
        starts_on=starts_on,
        ends_on=ends_on,
        **fields,
    )


def assignment_create(
    programme: Programme,
    practitioner: Practitioner,
    *,
    actor: User | None = None,
    discipline: str = Discipline.NEUROSURGERY,
    host_department: Department | None = None,
    role: str = HostRole.CLINICAL_MEMBER,
    starts_on: dt.date | None = None,
    days_per_week: int | None = 3,
    commitment: str = Commitment.DAYS_PER_WEEK,
    **fields: Any,
) -> Assignment:
    """An assignment created through ``services.assignment_create`` by ``actor`` (default: the demo
    ``office``), in the host's department of ``discipline``, from the programme's start."""
    return services.assignment_create(
        actor=actor or user("office"),
        programme=programme,
        practitioner=practitioner,
        host_department=host_department or department(programme.host_institution.code, discipline),
        role=role,
        starts_on=starts_on or programme.starts_on,
        commitment=commitment,
        days_per_week=None if commitment == Commitment.FULL_TIME else days_per_week,
        **fields,
    )
