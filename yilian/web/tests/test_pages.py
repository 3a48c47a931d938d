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
    assert 'href="/consortia/zju2-quzhou/"' in page
    assert 'href="/consortia/bijie-nrmc/"' not in page
    assert "下沉专家" in page or "派驻专家" in page


def test_consortium_page_shows_members_map_and_agreements(login) -> None:
    page = login("office").get("/consortia/zju2-quzhou/").content.decode()
    assert "衢州市人民医院" in page and "开化县人民医院" in page
    assert "<svg" in page and "<circle" in page
    for department in ["麻醉科", "急诊", "放疗科", "骨科", "神经外科"]:  # the five first-round disciplines
        assert department in page, department
    assert "2018-05" in page


def test_consortium_page_hides_agreements_from_doctors(login) -> None:
    from yilian.registry.models import Agreement

    title = Agreement.objects.get(code="zju1-quzhou-2017").title_zh
    assert title in login("admin").get("/consortia/zju1-quzhou/").content.decode()
    page = login("doctor").get("/consortia/zju1-quzhou/").content.decode()
    assert "江山市人民医院" in page
    assert 'id="agreements"' in page and title not in page
    assert "合作协议仅对医院管理员" in page  # says who may see them


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
    from yilian.core.models import AuditEvent

    reads = AuditEvent.objects.filter(action="read_pii", object_id=str(expert.public_id))
    assert sorted(reads.values_list("actor_label", flat=True)) == ["expert", "office"]


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
    from yilian.registry.models import CapabilityKind, Consortium, Discipline, Institution, Region

    consortium = Consortium.objects.get(code="zju2-quzhou")
    region = Region.objects.get(code="330824")
    qzph = Institution.objects.get(code="qzph")
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
        services.practitioner_create(  # the institution page lists these
            actor=None,
            name_zh=f"卫生{n}",
            title="resident_physician",
            institution=qzph,
            department=qzph.departments.first(),
            licence_number=f"8{n:014d}",
        )


# Exact query counts per page, the same at demo size and after the data grows. Each includes
# the session read, the user, the user's memberships and the session save of the request.
PINNED = {
    ("/", "office"): 11,
    ("/consortia/", "office"): 9,
    ("/consortia/zju2-quzhou/", "office"): 14,
    ("/institutions/", "admin"): 10,
    ("/institutions/qzph/", "coordinator"): 16,
    ("/search/?q=%E5%8D%AB%E7%94%9F", "admin"): 10,
    ("/audit/", "admin"): 9,
    ("/referrals/", "coordinator"): 12,
    ("/referrals/?box=outgoing&institution=csph", "doctor"): 12,
    ("/referrals/?box=office&status=sent", "office"): 10,
    ("/api/v1/institutions", "commission"): 8,
    ("/api/v1/practitioners?limit=50", "office"): 8,
    ("/api/v1/consortia/zju2-quzhou", "office"): 9,
}


def test_query_counts_are_pinned_and_do_not_grow_with_data(login, django_assert_num_queries) -> None:
    """Lists use joins, prefetches and subqueries, never a query per row."""
    clients = {username: login(username) for _, username in PINNED}

    def check() -> None:
        for (url, username), expected in PINNED.items():
            clients[username].get(url)  # the session refresh is the same on every request after this
            with django_assert_num_queries(expected):
                assert clients[username].get(url).status_code == 200

    check()
    _grow_consortium(12)
    check()


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


def test_audit_dates_out_of_range_are_a_form_error_not_a_crash(login) -> None:
    admin = login("admin")
    for params in ({"until": "9999-12-31"}, {"since": "0001-01-01"}):
        response = admin.get("/audit/", params)
        assert response.status_code == 200
        assert "请选择 1900 年至 9998 年之间的日期" in response.content.decode()
    assert login("doctor").get("/audit/", {"until": "9999-12-31"}).status_code == 403


def test_lead_institution_is_linked_only_when_the_user_may_open_it(login) -> None:
    page = login("commission").get("/consortia/zju2-quzhou/").content.decode()  # Hangzhou is outside Quzhou
    assert "浙江大学医学院附属第二医院" in page
    assert 'href="/institutions/zju2/"' not in page
    assert 'href="/institutions/zju2/"' in login("office").get("/consortia/zju2-quzhou/").content.decode()


def test_unknown_address_shows_a_plain_404(login) -> None:
    response = login("doctor").get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Resolver404" not in body and "页面不存在" in body
    assert "qzph-x" in login("doctor").get("/institutions/qzph-x/").content.decode()  # the view's own reason


def test_malformed_practitioner_id_is_404(login) -> None:
    assert login("doctor").get("/practitioners/not-a-uuid/").status_code == 404


def test_institution_page_links_only_consortia_the_user_may_open(login) -> None:
    page = login("office").get("/institutions/khph/").content.decode()  # khph also leads kaihua-ccm
    assert "开化县医共体" in page and 'href="/consortia/kaihua-ccm/"' not in page
    assert 'href="/consortia/zju2-quzhou/"' in page
