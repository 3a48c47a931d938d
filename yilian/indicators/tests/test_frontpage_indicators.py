"""Indicators of a small front-page file in the 2019 interface format, computed by hand.

Kaihua County People's Hospital (khph, region 330824) sends March 2025:

| stay | operations (code, reported level)            | residence (basis)                 | origin         |
|------|----------------------------------------------|-----------------------------------|----------------|
| K1   | 01.2401 craniotomy, 4 (main)                 | 浙江省衢州市开化县… (address)      | same_county    |
| K2   | 88.9101 MRI, 1 — a diagnostic procedure      | 衢州市柯城区… (address)             | same_city      |
| K3   | 36.0601 stent, 3; 88.5501 angiography, 2     | 贵州省毕节市七星关区 (address)     | other_province |
| K4   | none                                         | postcode 314000 (Zhejiang)        | same_province  |
| K5   | none                                         | nothing usable                    | unknown        |
| K6   | 51.2300 laparoscopic cholecystectomy, 3      | 开化县城关镇 (address)             | same_county    |

Without catalogues, categories come from the code chapters (00–86 surgery): stays with surgery
K1, K3, K6 of 6 = 50 %; level 4 as reported: K1 = 1 of 3; level 3: K3, K6 = 2 of 3; operations 5;
level-3/4 operations 3 (01.2401, 36.0601, 51.2300).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from yilian.activity import services
from yilian.activity.columns import BatchKind
from yilian.activity.models import BatchStatus
from yilian.activity.tests.frontpage_files import Op, Stay, build, write
from yilian.indicators.engine import OrgUnit, breakdown, evaluate
from yilian.registry.models import Institution, User

pytestmark = pytest.mark.django_db

KHPH = OrgUnit("institution", "khph", "开化县人民医院")
MARCH = (dt.date(2025, 3, 1), dt.date(2025, 4, 1))


def stays(org_code: str) -> list[Stay]:
    def stay(n: int, address: str, postcode: str, ops: list[Op]) -> Stay:
        return Stay(
            institution=org_code,
            record_no=f"K{n}",
            admitted="2025-03-02 09:00:00",
            discharged=f"2025-03-{10 + n:02d} 10:00:00",
            length_of_stay=str(8 + n),
            address=address,
            postcode=postcode,
            ops=ops,
        )

    return [
        stay(1, "浙江省衢州市开化县华埠镇", "", [Op("01.2401", "开颅术", "2025-03-03", "4")]),
        stay(2, "衢州市柯城区府山街道", "", [Op("88.9101", "头颅磁共振", "2025-03-03", "1")]),
        stay(
            3,
            "贵州省毕节市七星关区",
            "",
            [Op("36.0601", "冠脉支架置入", "2025-03-04", "3"), Op("88.5501", "冠脉造影", "2025-03-04", "2")],
        ),
        stay(4, "", "314000", []),
        stay(5, "不详", "-", []),
        stay(6, "开化县城关镇", "", [Op("51.2300", "腹腔镜胆囊切除术", "2025-03-05", "3")]),
    ]


@pytest.fixture
def landed(empty_store: None, tmp_path: Path) -> None:
    Institution.objects.filter(code="khph").update(org_code="47000099X")
    path = write(tmp_path / "开化县人民医院-2025-03.csv", build("hqms2019", stays("47000099-X")), encoding="gb18030")
    result = services.batch_import(
        user=User.objects.get(username="admin"), kind=BatchKind.FRONTPAGES, path=path, filename=path.name
    )
    assert result.batch.status == BatchStatus.LANDED, result.errors
    assert result.batch.report["residence"] == {"region_code": 0, "address": 4, "postcode": 1, "unknown": 1}


def value(code: str) -> tuple[float | None, float | None, float | None]:
    user = User.objects.get(username="admin")
    (found,) = evaluate(user, codes=[code], orgs=[KHPH], grain="month", start=MARCH[0], end=MARCH[1])
    return found.numerator, found.denominator, found.value


def test_shares_of_a_2019_front_page_file(landed: None) -> None:
    assert value("discharges")[2] == 6
    assert value("surgery_share") == (3, 6, 50.0)
    numerator, denominator, share = value("level4_share")
    assert (numerator, denominator) == (1, 3)
    assert share == pytest.approx(100 / 3)
    numerator, denominator, share = value("level3_share")
    assert (numerator, denominator) == (2, 3)
    assert value("operations")[2] == 5
    assert value("level34_operations")[2] == 3
    assert value("minimally_invasive_share")[:2] == (0, 3)


def test_origin_of_the_stays_follows_the_residence_bases(landed: None) -> None:
    rows = breakdown(
        User.objects.get(username="admin"),
        code="discharges",
        org=KHPH,
        grain="month",
        start=MARCH[0],
        end=MARCH[1],
        by="origin",
    )
    assert {r.key: r.value for r in rows} == {
        "same_county": 2,
        "same_city": 1,
        "other_province": 1,
        "same_province": 1,
        "unknown": 1,
    }
