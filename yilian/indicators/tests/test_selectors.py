"""Who sees which org units and indicators, and how far a breakdown goes into a consortium."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from yilian.indicators.engine import OrgUnit, breakdown, evaluate, flows
from yilian.indicators.selectors import access_indicator, access_org_unit, indicator_list, org_units_visible_to
from yilian.indicators.tests.factories import D
from yilian.registry.models import User

pytestmark = pytest.mark.django_db

ZJU2_QUZHOU = OrgUnit("consortium", "zju2-quzhou", "")
MARCH = {"grain": "month", "start": D(2025, 3, 1), "end": D(2025, 4, 1)}


def keys(username: str) -> set[str]:
    return {o.key for o in org_units_visible_to(User.objects.get(username=username))}


def test_hospital_admin_sees_own_institution_and_its_consortia_only() -> None:
    seen = keys("hospadmin")  # Quzhou People's Hospital
    assert "institution:qzph" in seen
    assert {"consortium:zju2-quzhou", "consortium:quzhou-neuro", "consortium:zjus-quzhou"} <= seen
    assert "institution:khph" not in seen
    assert not any(k.startswith("region:") for k in seen)


def test_commission_viewer_sees_its_region_and_what_is_inside() -> None:
    seen = keys("commission")  # Quzhou city, 330800
    assert {"region:330800", "region:330824", "institution:khph", "institution:qzph"} <= seen
    assert {"consortium:kaihua-ccm", "consortium:quzhou-neuro"} <= seen  # led from inside the city
    assert "consortium:zju2-quzhou" not in seen  # led from Hangzhou
    assert not {"region:330000", "institution:zju2", "institution:bjfph"} & seen


def test_consortium_office_sees_its_consortium_and_members() -> None:
    seen = keys("office")
    assert {"consortium:zju2-quzhou", "institution:zju2", "institution:qzph", "institution:khph"} <= seen
    assert "consortium:kaihua-ccm" not in seen
    assert "institution:bjfph" not in seen


def test_users_without_the_permission_see_nothing() -> None:
    doctor = User.objects.get(username="doctor")
    assert org_units_visible_to(doctor) == []
    with pytest.raises(PermissionDenied):
        indicator_list(doctor)
    with pytest.raises(PermissionDenied):
        access_indicator(doctor, "visits")


def test_access_org_unit_404_for_unknown_403_for_out_of_scope() -> None:
    hospadmin = User.objects.get(username="hospadmin")
    assert access_org_unit(hospadmin, "institution:qzph").code == "qzph"
    with pytest.raises(PermissionDenied):
        access_org_unit(hospadmin, "institution:khph")
    with pytest.raises(PermissionDenied):
        access_org_unit(hospadmin, "region:330800")
    with pytest.raises(Http404):
        access_org_unit(hospadmin, "institution:nowhere")
    with pytest.raises(Http404):
        access_org_unit(hospadmin, "planet:earth")
    with pytest.raises(Http404):
        access_indicator(hospadmin, "no_such_indicator")


def test_evaluate_refuses_an_org_unit_out_of_scope(dataset: None) -> None:
    hospadmin = User.objects.get(username="hospadmin")
    with pytest.raises(PermissionDenied):
        evaluate(hospadmin, codes=["visits"], orgs=[OrgUnit("institution", "khph", "")], **MARCH)  # type: ignore[arg-type]


def test_consortium_total_is_visible_but_its_breakdown_shows_own_institution_only(dataset: None) -> None:
    hospadmin = User.objects.get(username="hospadmin")
    admin = User.objects.get(username="admin")
    # The total counts every member: khph 5, qzph 2 (V8, V9), zju2 1 (V10).
    total = evaluate(hospadmin, codes=["visits"], orgs=[ZJU2_QUZHOU], **MARCH)  # type: ignore[arg-type]
    assert total[0].value == 8
    detail = breakdown(hospadmin, code="visits", org=ZJU2_QUZHOU, by="institution", **MARCH)  # type: ignore[arg-type]
    assert {r.key: r.value for r in detail} == {"qzph": 2}
    everything = breakdown(admin, code="visits", org=ZJU2_QUZHOU, by="institution", **MARCH)  # type: ignore[arg-type]
    assert {r.key: r.value for r in everything} == {"khph": 5, "qzph": 2, "zju2": 1}


def test_department_figures_of_a_unit_with_institutions_not_seen_in_detail_are_not_shown(dataset: None) -> None:
    """A consortium's department total could be one other member's own figure (a department only it
    has): a hospital user gets no value, with a note saying why, and no breakdown by department."""
    hospadmin = User.objects.get(username="hospadmin")
    admin = User.objects.get(username="admin")
    march = {**MARCH, "department": "神经内科"}
    (hidden,) = evaluate(hospadmin, codes=["visits"], orgs=[ZJU2_QUZHOU], **march)  # type: ignore[arg-type]
    assert (hidden.value, hidden.numerator) == (None, None)
    assert hidden.coverage.note.startswith(("Not available by department", "不按科室提供"))
    (everyone,) = evaluate(admin, codes=["visits"], orgs=[ZJU2_QUZHOU], **march)  # type: ignore[arg-type]
    assert everyone.value == 8  # every visit of the dataset is 神经内科's
    (own,) = evaluate(hospadmin, codes=["visits"], orgs=[OrgUnit("institution", "qzph", "")], **march)  # type: ignore[arg-type]
    assert own.value == 2  # its own institution: by department as before
    with pytest.raises(PermissionDenied):
        breakdown(hospadmin, code="visits", org=ZJU2_QUZHOU, by="department", **MARCH)  # type: ignore[arg-type]
    # Residents are treated anywhere: a residence indicator's department figure of the hospital's own
    # county counts other hospitals' departments, so it is not given either.
    qzph = OrgUnit("institution", "qzph", "")
    (residents,) = evaluate(hospadmin, codes=["in_county_visit_rate"], orgs=[qzph], **march)  # type: ignore[arg-type]
    assert (residents.value, residents.denominator) == (None, None)
    (without,) = evaluate(hospadmin, codes=["in_county_visit_rate"], orgs=[qzph], **MARCH)  # type: ignore[arg-type]
    assert without.denominator is not None  # without the department filter, as before
    assert {r.key for r in breakdown(admin, code="visits", org=ZJU2_QUZHOU, by="department", **MARCH)} == {"神经内科"}  # type: ignore[arg-type]


def test_flows_pool_institutions_not_seen_in_detail(dataset: None) -> None:
    hospadmin = User.objects.get(username="hospadmin")
    got = flows(hospadmin, org=ZJU2_QUZHOU, start=D(2025, 3, 1), end=D(2025, 4, 1), level="city")
    by_institution: dict[str, int] = {}
    for f in got:
        by_institution[f.institution_code] = by_institution.get(f.institution_code, 0) + f.count
    assert by_institution == {"qzph": 2, "": 6}  # khph's 5 and zju2's 1 pooled


def test_region_viewer_evaluates_its_region(dataset: None) -> None:
    commission = User.objects.get(username="commission")
    values = evaluate(commission, codes=["visits"], orgs=[OrgUnit("region", "330800", "")], **MARCH)  # type: ignore[arg-type]
    assert values[0].value == 9  # khph 5, kh-huabu 2, qzph 2
    with pytest.raises(PermissionDenied):
        evaluate(commission, codes=["visits"], orgs=[OrgUnit("region", "330000", "")], **MARCH)  # type: ignore[arg-type]
