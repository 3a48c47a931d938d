"""Loading and withdrawing catalogues: each kind, encodings and headers, versions, whole-or-nothing
with messages that name row, column and value, who may do what, and the audit trail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.translation import gettext

from yilian.catalogues import selectors, services
from yilian.catalogues.models import Catalogue, CatalogueCode, CatalogueKind
from yilian.catalogues.services import CatalogueRejected, normalise_code
from yilian.catalogues.tests.factories import JAN_2022, D, admin, load, write_csv
from yilian.core.errors import Conflict
from yilian.core.models import AuditAction, AuditEvent
from yilian.registry.models import Institution, User

pytestmark = pytest.mark.django_db


def user(username: str) -> User:
    return User.objects.get(username=username)


def import_file(
    path: Path,
    *,
    kind: str = "level4",
    who: str = "admin",
    version: str = "2022版",
    valid_from: dt.date = JAN_2022,
    institution: str | None = None,
) -> Catalogue:
    return services.catalogue_import(
        user=user(who),
        kind=kind,
        path=path,
        filename=path.name,
        name="国家四级手术目录",
        version=version,
        valid_from=valid_from,
        institution=Institution.objects.get(code=institution) if institution else None,
    )


# --- reading ---------------------------------------------------------------------------------------------


def test_codes_are_normalised_like_the_operation_facts() -> None:
    assert normalise_code(" 36.0601 ") == "36.0601"
    assert normalise_code("00.66x001") == "00.66X001"
    assert normalise_code("81.0501.0") == "81.0501"
    assert normalise_code("\u300038.0") == "38"


def test_a_classification_loads_every_code_with_its_category(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        [
            ["手术操作编码", "手术操作名称", "手术操作类别"],
            ["36.0601", "冠状动脉旁路移植术", "手术"],
            ["00.6601", "经皮冠状动脉腔内成形术", "介入治疗"],
            ["45.2301", "结肠镜检查", "诊断性操作"],
            ["99.0401", "输血", "治疗性操作"],
            ["00.4001", "单根血管操作", "interventional"],
            ["", "", ""],
        ],
        encoding="gb18030",
    )
    catalogue = import_file(path, kind="classification")
    assert catalogue.codes_count == 5
    assert dict(CatalogueCode.objects.filter(catalogue=catalogue).values_list("code", "category")) == {
        "36.0601": "surgery",
        "00.6601": "interventional",
        "45.2301": "diagnostic",
        "99.0401": "therapeutic",
        "00.4001": "interventional",
    }
    assert CatalogueCode.objects.get(catalogue=catalogue, code="36.0601").name == "冠状动脉旁路移植术"


def test_a_level4_list_from_excel_with_english_headers(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Code", "Name", "Level"])
    sheet.append(["36.0601", "CABG", 4])
    sheet.append([" 01.2401 ", "Craniotomy", 4])
    path = tmp_path / "level4.xlsx"
    workbook.save(path)
    catalogue = import_file(path)
    assert sorted(catalogue.codes.values_list("code", flat=True)) == ["01.2401", "36.0601"]
    assert set(catalogue.codes.values_list("category", flat=True)) == {None}
    assert catalogue.file_sha256 and catalogue.filename == "level4.xlsx"


def test_a_minimally_invasive_catalogue_and_an_institutions_list(tmp_path: Path) -> None:
    national = load(tmp_path, "minimally_invasive", ["51.2301", "00.6601"])
    own = load(tmp_path, "institution_mi", ["51.2301"], version="2024", institution="khph")
    assert (national.kind, national.institution, national.codes_count) == ("minimally_invasive", None, 2)
    assert (own.kind, own.institution.code if own.institution else None) == ("institution_mi", "khph")


# --- whole or nothing ---------------------------------------------------------------------------------------


BAD_ROWS = [
    ["编码", "名称", "类别"],
    ["36.0601", "冠状动脉旁路移植术", "手术"],
    ["", "无编码", "手术"],
    ["ABC", "坏编码", "手术"],
    ["36.0601", "重复", "手术"],
    ["45.2301", "结肠镜检查", "外科"],
    ["99.0401", "输血", ""],
]


def test_any_bad_row_rejects_the_whole_file_naming_row_column_and_value(tmp_path: Path) -> None:
    path = write_csv(tmp_path, BAD_ROWS)
    with translation.override("en"), pytest.raises(CatalogueRejected) as caught:
        import_file(path, kind="classification")
    assert not Catalogue.objects.exists()
    assert not CatalogueCode.objects.exists()
    problems = [(p.row, p.column, p.value) for p in caught.value.problems]
    assert problems == [
        (3, "编码", ""),
        (4, "编码", "ABC"),
        (5, "编码", "36.0601"),
        (6, "类别", "外科"),
        (7, "类别", ""),
    ]
    assert caught.value.total == 5
    with translation.override("en"):
        texts = [p.text for p in caught.value.problems]
    assert texts[0] == "Row 3, column “编码”: The code is missing."
    assert texts[1] == "Row 4, column “编码”: “ABC” is not an operation code (ICD-9-CM-3) such as 36.0601."
    assert texts[2] == "Row 5, column “编码”: “36.0601” is listed twice (first in row 2)."
    assert texts[3].startswith("Row 6, column “类别”: “外科” is not a category; use one of: ")
    assert all(
        value in texts[3] for value in ("手术", "介入治疗", "诊断性操作", "治疗性操作", "surgery", "therapeutic")
    )
    assert texts[4].startswith("Row 7, column “类别”: The category is missing; use one of: 手术")
    assert caught.value.message_dict["file"][0] == "The file was rejected: nothing was loaded (5 problem(s))."


def test_the_messages_follow_the_language(tmp_path: Path) -> None:
    path = write_csv(tmp_path, BAD_ROWS)
    with translation.override("zh-hans"), pytest.raises(CatalogueRejected) as caught:
        import_file(path, kind="classification")
    with translation.override("zh-hans"):
        expected = gettext("Row %(row)s, column “%(column)s”: %(message)s") % {
            "row": 4,
            "column": "编码",
            "message": gettext("“%(value)s” is not an operation code (ICD-9-CM-3) such as 36.0601.") % {"value": "ABC"},
        }
        assert caught.value.problems[1].text == expected


def test_a_classification_needs_a_category_column_and_any_list_a_code_column(tmp_path: Path) -> None:
    with translation.override("en"):
        with pytest.raises(CatalogueRejected) as caught:
            import_file(write_csv(tmp_path, [["编码", "名称"], ["36.0601", "x"]]), kind="classification")
        assert caught.value.problems[0].message.startswith("An operation classification needs a column of categories")
        with pytest.raises(CatalogueRejected) as caught:
            import_file(write_csv(tmp_path, [["序号", "名称"], ["1", "x"]], name="no-code.csv"))
        assert caught.value.problems[0].message.startswith("The file has no column of codes")
        assert "序号, 名称" in caught.value.problems[0].message
        with pytest.raises(CatalogueRejected) as caught:
            import_file(write_csv(tmp_path, [["编码"]], name="empty.csv"))
        assert caught.value.problems[0].message == "The file lists no codes."
        path = tmp_path / "list.json"
        path.write_text("{}")
        with pytest.raises(ValidationError) as refused:
            import_file(path)
        assert refused.value.message_dict["file"] == ["Upload a .csv or .xlsx file; list.json is not one."]


def test_the_fields_are_checked_before_the_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [["编码"], ["36.0601"]])
    with translation.override("en"):
        with pytest.raises(ValidationError) as caught:
            services.catalogue_import(
                user=admin(), kind="level4", path=path, filename="a.csv", name=" ", version="",
                valid_from=D(1800, 1, 1), institution=Institution.objects.get(code="khph"),
            )  # fmt: skip
        assert set(caught.value.message_dict) == {"name", "version", "valid_from", "institution"}
        assert caught.value.message_dict["institution"] == ["A national catalogue belongs to no institution."]
        with pytest.raises(ValidationError) as caught:
            import_file(path, kind="institution_mi")
        assert caught.value.message_dict["institution"] == ["Choose the institution whose list this is."]
        with pytest.raises(ValidationError) as caught:
            import_file(path, kind="level5")
        assert "kind" in caught.value.message_dict


# --- versions -------------------------------------------------------------------------------------------------


def test_versions_take_over_from_their_valid_from(tmp_path: Path) -> None:
    first = load(tmp_path, "level4", ["36.0601"], version="2022版", valid_from=D(2022, 1, 1))
    second = load(tmp_path, "level4", ["36.0601", "01.2401"], version="2025版", valid_from=D(2025, 7, 1))
    state = selectors.catalogue_state()
    chain = state.chain(CatalogueKind.LEVEL4)
    assert [(v.id, v.valid_from, v.valid_to) for v in chain] == [
        (first.pk, D(2022, 1, 1), D(2025, 7, 1)),
        (second.pk, D(2025, 7, 1), selectors.FAR_FUTURE),
    ]
    assert selectors.valid_until(state) == {first.pk: D(2025, 7, 1)}


def test_a_version_name_or_start_day_is_loaded_once_until_withdrawn(tmp_path: Path) -> None:
    first = load(tmp_path, "level4", ["36.0601"])
    with translation.override("en"):
        with pytest.raises(ValidationError) as caught:
            load(tmp_path, "level4", ["36.0601"], valid_from=D(2023, 1, 1))
        assert caught.value.message_dict["version"] == [
            "Version 2022版 is already loaded: withdraw it first to load a corrected file."
        ]
        with pytest.raises(ValidationError) as caught:
            load(tmp_path, "level4", ["36.0601"], version="2023版")
        assert caught.value.message_dict["valid_from"] == [
            "Version 2022版 already starts on 2022-01-01: choose another day, or withdraw it first."
        ]
    # Another kind, or another institution's list, may use the same name and day.
    load(tmp_path, "minimally_invasive", ["51.2301"])
    load(tmp_path, "institution_mi", ["51.2301"], version="2022版", institution="khph")
    load(tmp_path, "institution_mi", ["51.2301"], version="2022版", institution="qzph")
    services.catalogue_withdraw(user=admin(), catalogue=first, reason="wrong file")
    corrected = load(tmp_path, "level4", ["36.0601", "01.2401"])
    assert corrected.codes_count == 2


def test_the_database_refuses_an_institution_on_a_national_catalogue_and_a_second_active_version() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Catalogue.objects.create(
            kind="level4", name="x", version="1", valid_from=D(2022, 1, 1), institution=Institution.objects.first()
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Catalogue.objects.create(kind="institution_mi", name="x", version="1", valid_from=D(2022, 1, 1))
    Catalogue.objects.create(kind="level4", name="x", version="1", valid_from=D(2022, 1, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        Catalogue.objects.create(kind="level4", name="x", version="1", valid_from=D(2023, 1, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        Catalogue.objects.create(kind="level4", name="x", version="2", valid_from=D(2022, 1, 1))


def test_a_withdrawn_catalogue_applies_nowhere_and_cannot_be_withdrawn_twice(tmp_path: Path) -> None:
    first = load(tmp_path, "level4", ["36.0601"], version="2022版", valid_from=D(2022, 1, 1))
    second = load(tmp_path, "level4", ["01.2401"], version="2025版", valid_from=D(2025, 1, 1))
    withdrawn = services.catalogue_withdraw(user=admin(), catalogue=second, reason="  wrong file ")
    assert (withdrawn.is_active, withdrawn.withdrawal_reason, withdrawn.withdrawn_by) == (False, "wrong file", admin())
    assert [v.id for v in selectors.catalogue_state().chain(CatalogueKind.LEVEL4)] == [first.pk]
    with translation.override("en"):
        with pytest.raises(Conflict, match="already withdrawn"):
            services.catalogue_withdraw(user=admin(), catalogue=second, reason="again")
        with pytest.raises(ValidationError) as caught:
            services.catalogue_withdraw(user=admin(), catalogue=first, reason=" ")
        assert caught.value.message_dict["reason"] == ["Say why the catalogue is withdrawn."]


# --- permissions and scope ------------------------------------------------------------------------------------


def test_the_consortium_office_loads_national_catalogues_a_hospital_administrator_may_not(tmp_path: Path) -> None:
    load(tmp_path, "classification", [("36.0601", "手术")], user=user("office"))
    with pytest.raises(PermissionDenied):
        load(tmp_path, "level4", ["36.0601"], user=user("hospadmin"))
    for who in ("quality", "doctor", "commission"):
        with pytest.raises(PermissionDenied):
            load(tmp_path, "minimally_invasive", ["51.2301"], user=user(who))
    assert Catalogue.objects.count() == 1


def test_an_institutions_list_is_kept_by_its_administrators_and_its_consortium_office(tmp_path: Path) -> None:
    # Sun Lihua administers Quzhou People's Hospital; the office runs zju2-quzhou (zju2, qzph, khph, ...).
    load(tmp_path, "institution_mi", ["51.2301"], version="a", institution="qzph", user=user("hospadmin"))
    load(tmp_path, "institution_mi", ["51.2301"], version="b", institution="khph", user=user("office"))
    with pytest.raises(PermissionDenied):
        load(tmp_path, "institution_mi", ["51.2301"], version="c", institution="khph", user=user("hospadmin"))
    with pytest.raises(PermissionDenied):
        load(tmp_path, "institution_mi", ["51.2301"], version="d", institution="bjfph", user=user("office"))
    with pytest.raises(PermissionDenied):
        load(tmp_path, "institution_mi", ["51.2301"], version="e", institution="qzph", user=user("quality"))
    bijie = load(tmp_path, "institution_mi", ["51.2301"], version="f", institution="bjfph", user=user("bjadmin"))
    with pytest.raises(PermissionDenied):
        services.catalogue_withdraw(user=user("hospadmin"), catalogue=bijie, reason="not mine")


def test_who_sees_which_catalogues(tmp_path: Path) -> None:
    national = load(tmp_path, "level4", ["36.0601"])
    quzhou = load(tmp_path, "institution_mi", ["51.2301"], version="a", institution="qzph")
    bijie = load(tmp_path, "institution_mi", ["51.2301"], version="b", institution="bjfph")
    assert set(selectors.catalogue_list_visible_to(admin())) == {national, quzhou, bijie}
    assert set(selectors.catalogue_list_visible_to(user("hospadmin"))) == {national, quzhou}
    assert set(selectors.catalogue_list_visible_to(user("bjadmin"))) == {national, bijie}
    assert set(selectors.catalogue_list_visible_to(user("commission"))) == {national, quzhou}  # Quzhou city
    assert list(selectors.catalogue_list_visible_to(user("doctor"))) == []
    with pytest.raises(PermissionDenied):
        selectors.access_catalogue(user("hospadmin"), str(bijie.public_id))
    with pytest.raises(PermissionDenied):
        selectors.access_catalogue(user("doctor"), str(national.public_id))


# --- audit -------------------------------------------------------------------------------------------------------


def test_every_load_and_withdrawal_writes_one_audit_row(tmp_path: Path) -> None:
    before = AuditEvent.objects.count()
    catalogue = load(tmp_path, "level4", ["36.0601", "01.2401"], user=user("office"))
    loaded = AuditEvent.objects.order_by("-id").first()
    assert loaded is not None
    assert (loaded.action, loaded.object_type, loaded.object_id) == (
        AuditAction.CREATE,
        "catalogues.catalogue",
        str(catalogue.public_id),
    )
    assert loaded.actor == user("office")
    assert loaded.changes["codes"] == 2 and loaded.changes["version"] == "2022版"
    services.catalogue_withdraw(user=user("office"), catalogue=catalogue, reason="wrong file")
    withdrawn = AuditEvent.objects.order_by("-id").first()
    assert withdrawn is not None
    assert (withdrawn.action, withdrawn.changes["reason"]) == (AuditAction.DELETE, "wrong file")
    assert AuditEvent.objects.count() == before + 2
    # A rejected file writes nothing.
    with pytest.raises(CatalogueRejected):
        load(tmp_path, "level4", ["bad"], version="x", valid_from=D(2030, 1, 1))
    assert AuditEvent.objects.count() == before + 2
