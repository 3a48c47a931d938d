"""Pages show what the persona may see, in their language, with constant query counts."""

from __future__ import annotations

import pytest
from django.test import Client

from yilian.registry.models import Practitioner

pytestmark = pytest.mark.django_db


def test_healthz_reports_the_database(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


def test_home_lists_the_users_consortia(login) -> None:
    page = login("expert").get("/").content.decode()
    assert '<a href="/institutions/zju2/">浙江大学医学院附属第二医院</a>' in page
    assert "下沉专家" in page or "派驻专家" in page


def test_consortium_page_shows_members_map_and_agreements(login) -> None:
    page = login("office").get("/consortia/zju2-quzhou/").content.decode()
    assert "衢州市人民医院" in page and "开化县人民医院" in page
    assert "<svg" in page and "<circle" in page
    for department in ["麻醉科", "急诊", "放疗科", "骨科", "神经外科"]:  # the five first-round disciplines
        assert department in page, department
    assert "2018-05" in page


def test_consortium_page_hides_agreements_from_doctors(login) -> None:
    page = login("doctor").get("/consortia/zju1-quzhou/").content.decode()
    assert "江山市人民医院" in page
    assert 'id="agreements"' in page and "2018-05" not in page


def test_consortium_outside_scope_is_forbidden_with_a_message(login) -> None:
    response = login("doctor").get("/consortia/bijie-nrmc/")
    assert response.status_code == 403
    assert "bijie-nrmc" in response.content.decode()


def test_unknown_institution_is_404(login) -> None:
    assert login("doctor").get("/institutions/nope/").status_code == 404


def test_institution_page_shows_capabilities_departments_and_consortia(login) -> None:
    page = login("coordinator").get("/institutions/qzph/").content.decode()
    assert "静脉溶栓" in page and "24/7" in page
    assert "神经外科" in page
    assert "zju2-quzhou" in page


def test_institution_list_filters_by_region(login) -> None:
    client = login("commission")
    page = client.get("/institutions/", {"region": "330824"}).content.decode()
    assert "开化县人民医院" in page and "常山县人民医院" not in page


def test_institution_list_htmx_returns_only_the_rows(login) -> None:
    response = login("commission").get("/institutions/", {"q": "开化"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body and "开化县人民医院" in body


def test_search_page_and_partial(login) -> None:
    client = login("doctor")
    page = client.get("/search/", {"q": "常山"}).content.decode()
    assert "常山县人民医院" in page and "<html" in page
    partial = client.get("/search/", {"q": "王建国"}, HTTP_HX_REQUEST="true").content.decode()
    assert "王建国" in partial and "<html" not in partial


def test_practitioner_page_masks_licence_for_outsiders(login) -> None:
    expert = Practitioner.objects.get(user__username="expert")
    own = login("expert").get(f"/practitioners/{expert.public_id}/").content.decode()
    assert expert.licence_number in own
    other = login("office").get(f"/practitioners/{expert.public_id}/").content.decode()
    assert expert.licence_number in other  # the office over zju2-quzhou
    outsider = login("coordinator").get(f"/practitioners/{expert.public_id}/").content.decode()
    assert expert.licence_number not in outsider


def test_malformed_practitioner_id_is_a_4xx(login) -> None:
    assert login("doctor").get("/practitioners/not-a-uuid/").status_code in (403, 404)


def test_audit_page_for_admins_only(login) -> None:
    admin = login("admin")
    page = admin.get("/audit/", {"action": "login"}).content.decode()
    assert "audit-table" in page and "admin" in page
    assert login("doctor").get("/audit/").status_code == 403


def test_audit_page_filters_by_user_and_rejects_inverted_dates(login) -> None:
    admin = login("admin")
    login("doctor")
    page = admin.get("/audit/", {"user": "doctor", "action": "login"}).content.decode()
    assert "doctor" in page
    bad = admin.get("/audit/", {"since": "2026-02-01", "until": "2026-01-01"}).content.decode()
    assert "开始日期晚于结束日期" in bad


def _grow_consortium(count: int) -> None:
    """Add institutions with departments, capabilities and practitioners to zju2-quzhou."""
    import datetime as dt
    from decimal import Decimal

    from yilian.registry import services
    from yilian.registry.models import CapabilityKind, Consortium, Discipline, Region

    consortium = Consortium.objects.get(code="zju2-quzhou")
    region = Region.objects.get(code="330824")
    for n in range(count):
        institution = services.institution_create(
            actor=None,
            code=f"grow-{n}",
            name_zh=f"开化县第{n}卫生院",
            grade="primary",
            type="primary_care",
            region=region,
            latitude=Decimal(f"29.{n:02d}"),
            longitude=Decimal("118.4"),
        )
        services.consortium_member_add(
            actor=None, consortium=consortium, institution=institution, joined_on=dt.date(2024, 1, 1)
        )
        department = services.department_create(
            actor=None, institution=institution, discipline=Discipline.GENERAL_PRACTICE
        )
        services.capability_create(
            actor=None, institution=institution, kind=CapabilityKind.CT, valid_from=dt.date(2024, 1, 1)
        )
        services.practitioner_create(
            actor=None,
            name_zh=f"医生{n}",
            title="attending_physician",
            institution=institution,
            department=department,
            licence_number=f"9{n:014d}",
        )


PAGES = [
    ("/", "office"),
    ("/consortia/", "office"),
    ("/consortia/zju2-quzhou/", "office"),
    ("/institutions/", "admin"),
    ("/institutions/qzph/", "coordinator"),
    ("/search/?q=%E5%8D%AB%E7%94%9F", "admin"),
    ("/audit/", "admin"),
    ("/api/v1/institutions", "commission"),
]


def test_query_counts_are_pinned_and_do_not_grow_with_data(login) -> None:
    """Lists use joins, prefetches and subqueries, never a query per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    clients = {username: login(username) for _, username in PAGES}

    def counts() -> list[int]:
        result = []
        for url, username in PAGES:
            clients[username].get(url)  # the session refresh is the same on every request after this
            with CaptureQueriesContext(connection) as queries:
                assert clients[username].get(url).status_code == 200
            result.append(len(queries))
        return result

    before = counts()
    _grow_consortium(12)
    after = counts()
    assert before == after
    assert max(after) <= 14, dict(zip([u for u, _ in PAGES], after, strict=True))


def test_map_labels_of_neighbouring_hospitals_do_not_overlap(login) -> None:
    import re

    page = login("office").get("/consortia/zju2-quzhou/").content.decode()
    labels = [
        (float(x), float(y) + float(dy))
        for x, y, dy in re.findall(r'<text x="([\d.]+)" y="([\d.]+)" dx="10" dy="([\d.]+)"', page)
    ]
    assert len(labels) == 5
    for i, (x1, y1) in enumerate(labels):
        for x2, y2 in labels[i + 1 :]:
            assert abs(x1 - x2) >= 90 or abs(y1 - y2) >= 14


def test_capability_hours_are_words_not_digits(login) -> None:
    page = login("coordinator").get("/institutions/qzph/").content.decode()
    assert "周一至周五 08:00–17:30" in page
    assert "12345" not in page
