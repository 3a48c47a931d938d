import sys

import pyarrow as pa
import pytest

from yilian.activity import residence
from yilian.activity.residence import BASES, BASIS_LABELS, place, region_name

KAIHUA, QUZHOU, ZHEJIANG = "330824", "330800", "330000"
QIXINGGUAN, BIJIE = "520502", "520500"


def _column(values: list[str | None] | None) -> pa.Array | None:
    return None if values is None else pa.array(values, pa.string())


def _place(
    addresses: list[str | None] | None = None,
    region_codes: list[str | None] | None = None,
    postcodes: list[str | None] | None = None,
    **options: dict[str, str],
) -> list[tuple[str | None, str]]:
    given = [values for values in (addresses, region_codes, postcodes) if values is not None]
    table = place(
        region_codes=_column(region_codes),
        addresses=_column(addresses),
        postcodes=_column(postcodes),
        num_rows=len(given[0]),
        **options,
    )
    assert table.schema == pa.schema([("residence_region", pa.string()), ("residence_basis", pa.string())])
    regions, bases = table.column("residence_region").to_pylist(), table.column("residence_basis").to_pylist()
    return list(zip(regions, bases, strict=True))


def _codes(*addresses: str) -> list[str | None]:
    return [code for code, _ in _place(list(addresses))]


def test_division_table_has_the_real_codes():
    divisions = residence.divisions()
    assert divisions[KAIHUA].name == "开化县"
    assert divisions[QUZHOU].name == "衢州市"
    assert divisions[QIXINGGUAN].name == "七星关区"
    assert divisions[BIJIE].name == "毕节市"
    assert divisions[KAIHUA].city == QUZHOU
    assert divisions["110105"].city is None  # 北京: districts directly under the municipality
    assert divisions["429004"].city is None  # 仙桃: county-level, directly under 湖北
    assert "110100" not in divisions  # 市辖区, a placeholder
    assert 3000 < len(divisions) < 3600
    assert "cpca" not in sys.modules  # only the data file is read


def test_region_name():
    assert region_name(KAIHUA) == "浙江省衢州市开化县"
    assert region_name(QUZHOU) == "浙江省衢州市"
    assert region_name(ZHEJIANG) == "浙江省"
    assert region_name("110105") == "北京市朝阳区"
    assert region_name("429004") == "湖北省仙桃市"
    assert region_name("999999") == ""


def test_bases_and_labels():
    assert BASES == ("region_code", "address", "postcode", "unknown")
    assert set(BASIS_LABELS) == set(BASES)
    assert all(str(label) for label in BASIS_LABELS.values())


def test_short_forms():
    assert residence.short_forms("浙江省", residence.PROVINCE) == ["浙江"]
    assert residence.short_forms("广西壮族自治区", residence.PROVINCE) == ["广西"]
    assert residence.short_forms("新疆维吾尔自治区", residence.PROVINCE) == ["新疆"]
    assert residence.short_forms("内蒙古自治区", residence.PROVINCE) == ["内蒙古"]
    assert residence.short_forms("衢州市", residence.CITY) == ["衢州"]
    assert residence.short_forms("延边朝鲜族自治州", residence.CITY) == ["延边", "延边州"]
    assert residence.short_forms("锡林郭勒盟", residence.CITY) == ["锡林郭勒"]
    assert residence.short_forms("开化县", residence.COUNTY) == ["开化"]
    assert residence.short_forms("七星关区", residence.COUNTY) == ["七星关"]
    assert residence.short_forms("浦东新区", residence.COUNTY) == ["浦东"]
    assert residence.short_forms("景宁畲族自治县", residence.COUNTY) == ["景宁"]
    assert residence.short_forms("鄂伦春自治旗", residence.COUNTY) == ["鄂伦春"]
    assert residence.short_forms("和县", residence.COUNTY) == []  # one character would be left


def test_region_code_basis():
    rows = _place(
        addresses=["北京市朝阳区", "北京市朝阳区", "北京市朝阳区", "北京市朝阳区"],
        region_codes=[KAIHUA, "330824.0", "330824101", "330824101001"],
        postcodes=["100020", "100020", "100020", "100020"],
    )
    assert rows == [(KAIHUA, "region_code")] * 4


def test_invalid_region_code_falls_back_to_the_address():
    rows = _place(addresses=["开化县华埠镇", "开化县华埠镇", "开化县华埠镇"], region_codes=["33082", "3308240", "开化"])
    assert rows == [(KAIHUA, "address")] * 3


def test_full_names():
    assert _codes("浙江省衢州市开化县华埠镇新华路12号", "贵州省毕节市七星关区洪山街道", "浙江省衢州市", "浙江省") == [
        KAIHUA,
        QIXINGGUAN,
        QUZHOU,
        ZHEJIANG,
    ]
    assert _place(["浙江省衢州市开化县华埠镇"]) == [(KAIHUA, "address")]


def test_short_forms_in_addresses():
    assert _codes("浙江衢州开化县华埠镇", "浙江衢州开化华埠镇", "贵州毕节七星关", "衢州开化", "浙江开化县") == [
        KAIHUA
    ] * 2 + [
        QIXINGGUAN,
        KAIHUA,
        KAIHUA,
    ]
    assert _codes("广西南宁市青秀区", "内蒙古呼和浩特市", "新疆乌鲁木齐", "宁夏银川", "西藏拉萨市", "广西") == [
        "450103",
        "150100",
        "650100",
        "640100",
        "540100",
        "450000",
    ]
    assert _codes("延边州延吉市", "海南州共和县") == ["222401", "632521"]


def test_address_starting_at_city_or_county():
    assert _codes("衢州市开化县城关镇", "毕节市七星关区", "衢州市柯城区", "毕节市", "衢州人民路") == [
        KAIHUA,
        QIXINGGUAN,
        "330802",
        BIJIE,
        QUZHOU,
    ]
    assert _codes("开化县华埠镇", "七星关区洪山街道", "七星关") == [KAIHUA, QIXINGGUAN, QIXINGGUAN]


def test_municipalities_and_counties_directly_under_a_province():
    assert _codes(
        "北京市朝阳区建国路88号", "北京朝阳区", "上海浦东新区张江", "上海市浦东新区", "天津市和平区", "重庆市万州区"
    ) == [
        "110105",
        "110105",
        "310115",
        "310115",
        "120101",
        "500101",
    ]
    assert _codes("湖北省仙桃市", "仙桃市", "海南省琼海市", "北京市") == ["429004", "429004", "469002", "110000"]


def test_ambiguous_names_are_not_guessed():
    # 朝阳区 is in 北京 and 长春, 鼓楼区 in 南京 and 徐州 (江苏), 福州 and 开封.
    assert _codes("朝阳区建国路88号", "鼓楼区中山路1号", "江苏鼓楼区", "长春市朝阳区", "北京朝阳") == [
        None,
        None,
        "320000",
        "220104",
        "110105",
    ]
    assert _place(["朝阳区建国路88号"], postcodes=["100020"]) == [("110000", "postcode")]


def test_higher_level_wins_a_tie_and_longer_names_win():
    # 吉林 is the province and a city; 海南 the province and 海南藏族自治州 (青海).
    assert _codes("吉林长春", "吉林市船营区", "吉林", "海南海口", "海南") == [
        "220100",
        "220204",
        "220000",
        "460100",
        "460000",
    ]


def test_roads_and_towns_named_after_places_are_not_places():
    assert _codes("中山路12号", "北京东路1号", "新华大街5号", "城关镇", "城区人民路") == [None] * 5
    # ... unless a division name starts right after: 镇江, 路桥.
    assert _codes("江苏镇江", "浙江台州路桥", "山西阳泉城区") == ["321100", "331004", "140302"]


def test_separators_and_country_are_ignored():
    assert (
        _codes("中国浙江省 衢州市 开化县", "浙江省-衢州市-开化县", "中华人民共和国浙江省衢州市开化县") == [KAIHUA] * 3
    )


def test_postcode_province():
    rows = _place(addresses=["人民路1号", None, None, None], postcodes=["324300", "100020", "830000", "324300.0"])
    assert rows == [(ZHEJIANG, "postcode"), ("110000", "postcode"), ("650000", "postcode"), (ZHEJIANG, "postcode")]


def test_postcode_finer_table_longest_prefix_wins():
    finer = {"3240": QUZHOU, "3243": KAIHUA, "324302": "330881"}
    rows = _place(postcodes=["324300", "324001", "324302", "310000", "100020"], postcode_regions=finer)
    assert rows == [
        (KAIHUA, "postcode"),
        (QUZHOU, "postcode"),
        ("330881", "postcode"),
        (ZHEJIANG, "postcode"),
        ("110000", "postcode"),
    ]


def test_invalid_postcode_table_is_refused():
    with pytest.raises(ValueError, match="postcode_regions"):
        _place(postcodes=["324300"], postcode_regions={"32a": KAIHUA})
    with pytest.raises(ValueError, match="postcode_regions"):
        _place(postcodes=["324300"], postcode_regions={"3243": "33082"})


def test_unknown():
    rows = _place(
        addresses=["人民路1号", "abc", None, ""],
        region_codes=["", None, "x", "12345"],
        postcodes=["999999", "32430", None, ""],
    )
    assert rows == [(None, "unknown")] * 4


def test_missing_columns_and_nulls():
    table = place(region_codes=None, addresses=None, postcodes=None, num_rows=3)
    assert table.num_rows == 3
    assert table.column("residence_region").to_pylist() == [None] * 3
    assert table.column("residence_basis").to_pylist() == ["unknown"] * 3
    assert place(region_codes=None, addresses=None, postcodes=None, num_rows=0).num_rows == 0
    assert _place(addresses=[None, None], region_codes=[None, None], postcodes=[None, None]) == [(None, "unknown")] * 2


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="addresses"):
        place(region_codes=None, addresses=pa.array(["开化县"]), postcodes=None, num_rows=2)


def test_order_is_preserved():
    rows = _place(
        addresses=[None, "北京市朝阳区", None, "开化县", "朝阳区"],
        region_codes=[None, None, QIXINGGUAN, None, None],
        postcodes=["324300", None, None, "100020", None],
    )
    assert rows == [
        (ZHEJIANG, "postcode"),
        ("110105", "address"),
        (QIXINGGUAN, "region_code"),
        (KAIHUA, "address"),
        (None, "unknown"),
    ]


def test_mixed_rows_chunked():
    patterns = [
        (KAIHUA, "浙江省衢州市开化县", None, KAIHUA, "region_code"),
        ("330824.0", None, None, KAIHUA, "region_code"),
        (None, "浙江省衢州市开化县华埠镇", "100020", KAIHUA, "address"),
        ("bad", "衢州开化", None, KAIHUA, "address"),
        (None, "贵州省毕节市七星关区", None, QIXINGGUAN, "address"),
        (None, "毕节市", None, BIJIE, "address"),
        (None, "北京市朝阳区", None, "110105", "address"),
        (None, "朝阳区", "130000", "220000", "postcode"),
        (None, "人民路", "324300", ZHEJIANG, "postcode"),
        (None, None, "999999", None, "unknown"),
        (None, "", "", None, "unknown"),
    ]
    rows = [patterns[k % len(patterns)] for k in range(41)]
    chunked = [
        pa.chunked_array([[row[part] for row in rows[:20]], [row[part] for row in rows[20:]]]) for part in range(3)
    ]
    table = place(region_codes=chunked[0], addresses=chunked[1], postcodes=chunked[2], num_rows=41)
    assert table.num_rows == 41
    assert table.column("residence_region").to_pylist() == [row[3] for row in rows]
    assert table.column("residence_basis").to_pylist() == [row[4] for row in rows]
