"""Where a stay's patient lives: a 6-digit GB/T 2260 region code for every row of an import, and
the basis it was found on, vectorised in DuckDB over Arrow (no Python loop over rows).

The division table is the ``adcodes.csv`` data file of the ``cpca`` package (about 3,500
provinces, prefecture-level cities and county-level divisions; only the file is read, never the
package's matcher). The level of a code is: province when it ends in ``0000``, city when it ends
in ``00``, county otherwise. Placeholder entries (市辖区, 县, 省直辖县级行政区划 ...) are not places:
the districts of the municipalities (北京, 天津, 上海, 重庆) and the county-level divisions governed
directly by a province (湖北 4290xx, 海南 4690xx, 河南 4190xx, 新疆 6590xx) hang from their
province with no city.

The first of these rules that applies places a row (``residence_basis``):

``region_code``
    The residence region column holds 6 digits, or a 9- or 12-digit township or village code
    (its first 6 digits), optionally followed by ``.0`` (a number read from a spreadsheet).
``address``
    The free-text address (现住址) is read from its start, down to county level. After removing
    spaces and separators and a leading 中国, each step takes the longest division name at the
    start of what is left, among the divisions below the one found so far (any division at the
    first step), then strips it; three steps at most (province, city, county, each optional: an
    address may start at the city or the county, or skip the city). Names are the full names
    (浙江省, 衢州市, 开化县) and their short forms, the name without its suffix (省 市 自治区 壮族自治区
    回族自治区 维吾尔自治区 特别行政区 自治州 地区 盟 县 区 新区 林区 特区 自治县 旗 自治旗, and the
    nationalities before 自治州/自治县/自治旗) when at least 2 characters remain: 浙江, 广西,
    内蒙古, 衢州, 延边, 延边州, 开化, 七星关. A short form is not taken when a road, street,
    village or town word follows it (中山路, 北京东路, 新华街, 朝阳村, 长安镇), nor a generic
    district name (城区, 郊区, 矿区 ...) before a province or city was found. When names of different
    levels tie for the longest, the higher level wins (吉林 is the province, 海南 the province rather
    than 海南藏族自治州). A name shared by several divisions of the same level is not guessed: the
    row is placed at their common city or province if they have one (江苏鼓楼区: 320000, the
    province), and reading stops. The result is the deepest division found: a county's code, else
    the city's (xxxx00), else the province's (xx0000). An address that places nowhere falls through.
``postcode``
    A 6-digit postcode gives its province by the national postal zoning of its first two digits
    (31, 32: 浙江). A finer table (postcode or prefix -> region code, e.g. ``{"3243": "330824"}``)
    may be passed: the longest matching prefix wins.
``unknown``
    Nothing placed the row; its region is null.
"""

# The SQL here is assembled from constants and integer lengths; user data only ever reaches DuckDB
# as registered Arrow tables.
# ruff: noqa: S608

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from django.utils.translation import gettext_lazy as _

BASES = ("region_code", "address", "postcode", "unknown")
BASIS_LABELS = {
    "region_code": _("region code column"),
    "address": _("parsed from the address"),
    "postcode": _("from the postcode (province)"),
    "unknown": _("could not be placed (unknown origin)"),
}

PROVINCE, CITY, COUNTY = 1, 2, 3

# Entries of the division table that are not places but groupings.
PLACEHOLDERS = frozenset({"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"})
# County-level names that are ordinary words in an address ("the town's district", "the suburbs"):
# only read once the province or city is known.
GENERIC_NAMES = frozenset({"城区", "郊区", "矿区", "新区", "市中区", "城中区", "城关区", "城北区", "城东区", "城西区"})

# National postal zoning: the first two digits of a postcode -> province.
POSTAL_ZONES: dict[str, str] = {
    **dict.fromkeys(("10",), "110000"),
    **dict.fromkeys(("20",), "310000"),
    **dict.fromkeys(("30",), "120000"),
    **dict.fromkeys(("40",), "500000"),
    **dict.fromkeys(("01", "02"), "150000"),
    **dict.fromkeys(("03", "04"), "140000"),
    **dict.fromkeys(("05", "06", "07"), "130000"),
    **dict.fromkeys(("11", "12"), "210000"),
    **dict.fromkeys(("13",), "220000"),
    **dict.fromkeys(("15", "16"), "230000"),
    **dict.fromkeys(("21", "22"), "320000"),
    **dict.fromkeys(("23", "24"), "340000"),
    **dict.fromkeys(("25", "26", "27"), "370000"),
    **dict.fromkeys(("31", "32"), "330000"),
    **dict.fromkeys(("33", "34"), "360000"),
    **dict.fromkeys(("35", "36"), "350000"),
    **dict.fromkeys(("41", "42"), "430000"),
    **dict.fromkeys(("43", "44"), "420000"),
    **dict.fromkeys(("45", "46", "47"), "410000"),
    **dict.fromkeys(("51", "52"), "440000"),
    **dict.fromkeys(("53", "54"), "450000"),
    **dict.fromkeys(("55", "56"), "520000"),
    **dict.fromkeys(("57",), "460000"),
    **dict.fromkeys(("61", "62", "63", "64"), "510000"),
    **dict.fromkeys(("65", "66", "67"), "530000"),
    **dict.fromkeys(("71", "72"), "610000"),
    **dict.fromkeys(("73", "74"), "620000"),
    **dict.fromkeys(("75",), "640000"),
    **dict.fromkeys(("81",), "630000"),
    **dict.fromkeys(("83", "84"), "650000"),
    **dict.fromkeys(("85", "86"), "540000"),
}

# The 56 nationalities as they appear in autonomous division names (蒙古族 or 蒙古, 各族).
# fmt: off
_NATIONALITIES = (
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗",
    "瑶", "白", "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "拉祜", "水",
    "东乡", "纳西", "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬",
    "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京",
    "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺", "高山",
)
# fmt: on
_ETHNIC = (
    "(?:(?:"
    + "|".join(sorted(_NATIONALITIES, key=len, reverse=True))
    + ")族|"
    + "|".join(sorted((n for n in _NATIONALITIES if len(n) > 1), key=len, reverse=True))
    + "|各族)+"
)
# Suffixes whose removal gives a short form, per level, tried in order (the first that leaves at
# least 2 characters is used).
_SUFFIXES: dict[int, tuple[re.Pattern[str], ...]] = {
    PROVINCE: (re.compile("(?:壮族|回族|维吾尔)?自治区$|特别行政区$|[省市]$"),),
    CITY: (re.compile(f"{_ETHNIC}自治州$"), re.compile("自治州$|地区$|[盟市]$")),
    COUNTY: (
        re.compile(f"{_ETHNIC}自治[县旗]$"),
        re.compile("自治[县旗]$|[新林特]区$|[县区旗市]$"),
    ),
}
_AUTONOMOUS_PREFECTURE = re.compile(f"(?:{_ETHNIC})?自治州$")

# What may not follow a short form: it is then part of a road, street, village or town name
# (中山路, 北京东路, 新华大街, 朝阳村, 长安镇), unless a division name starts there (江苏镇江).
SHORT_FORM_GUARD = "^[东西南北中]?(?:路|街|大街|大道|道|巷|弄|胡同|里|村|镇|乡|社区|小区|花园|广场|大厦|公园)"
# Removed from an address before it is read: whitespace, separators, a leading country name.
_ADDRESS_NOISE = r"[\s\x{3000},，、;；:：/\\|·.。\-－_()（）]|^(?:中华人民共和国|中国)"

_REGION_CODE = r"^([0-9]{6})(?:[0-9]{3}|[0-9]{6})?(?:\.0+)?$"
_POSTCODE = r"^([0-9]{6})(?:\.0+)?$"
_PREFIX = re.compile(r"[0-9]{1,6}")
_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    level: int
    province: str
    city: str | None  # the prefecture-level city, for a city itself and its counties; None above or without


def level_of(code: str) -> int:
    if code.endswith("0000"):
        return PROVINCE
    if code.endswith("00"):
        return CITY
    return COUNTY


def _adcodes_file() -> Path:
    # Located without importing ``cpca`` (its __init__ builds its matcher, with pandas).
    spec = importlib.util.find_spec("cpca")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the cpca package (division table) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "adcodes.csv"


@functools.cache
def divisions() -> dict[str, Division]:
    """The division table by 6-digit code, placeholders left out."""
    text = _adcodes_file().read_text(encoding="utf-8")
    names = {row["adcode"][:6]: row["name"].strip() for row in csv.DictReader(io.StringIO(text))}
    table: dict[str, Division] = {}
    for code, name in names.items():
        if name in PLACEHOLDERS:
            continue
        level = level_of(code)
        city = code[:4] + "00"
        table[code] = Division(
            code=code,
            name=name,
            level=level,
            province=code[:2] + "0000",
            city=city if level > PROVINCE and names.get(city, "") not in PLACEHOLDERS | {""} else None,
        )
    return table


def short_forms(name: str, level: int) -> list[str]:
    """The short forms of a division's name: without its suffix (and nationalities), at least 2
    characters; an autonomous prefecture is also called by its short form and 州 (延边州)."""
    forms: list[str] = []
    for pattern in _SUFFIXES[level]:
        short = pattern.sub("", name)
        if short != name and len(short) >= 2:
            forms.append(short)
            break
    if level == CITY and forms and _AUTONOMOUS_PREFECTURE.search(name):
        forms.append(forms[0] + "州")
    return [form for form in forms if form != name]


@functools.cache
def _names() -> pa.Table:
    """Every name a division is known by: name, its first two characters (the join key), len, code,
    level, province, city, whether it is a short form and whether it is a generic name."""
    columns: dict[str, list[object]] = {
        key: [] for key in ("name", "start", "len", "code", "level", "province", "city", "short", "generic")
    }
    for division in divisions().values():
        forms = [(division.name, False), *((form, True) for form in short_forms(division.name, division.level))]
        for form, short in forms:
            for key, value in (
                ("name", form),
                ("start", form[:2]),
                ("len", len(form)),
                ("code", division.code),
                ("level", division.level),
                ("province", division.province),
                ("city", division.city),
                ("short", short),
                ("generic", division.level == COUNTY and division.name in GENERIC_NAMES),
            ):
                columns[key].append(value)
    schema = pa.schema(
        [
            ("name", pa.string()),
            ("start", pa.string()),
            ("len", pa.int32()),
            ("code", pa.string()),
            ("level", pa.int8()),
            ("province", pa.string()),
            ("city", pa.string()),
            ("short", pa.bool_()),
            ("generic", pa.bool_()),
        ]
    )
    return pa.Table.from_pydict(columns, schema=schema)


def region_name(code: str) -> str:
    """The full name path of a region code (``"330824"`` -> ``"浙江省衢州市开化县"``; a municipality's
    district ``"110105"`` -> ``"北京市朝阳区"``); an empty string for a code not in the table."""
    table = divisions()
    division = table.get(code)
    if division is None:
        return ""
    parts = [table[division.province].name] if division.level > PROVINCE and division.province in table else []
    if division.level == COUNTY and division.city in table:
        parts.append(table[division.city].name)
    return "".join([*parts, division.name])


def _postcode_table(postcode_regions: dict[str, str] | None) -> pa.Table:
    zones = dict(POSTAL_ZONES)
    for prefix, code in (postcode_regions or {}).items():
        if not _PREFIX.fullmatch(prefix) or not _CODE.fullmatch(code):
            raise ValueError(f"postcode_regions: {prefix!r} -> {code!r} is not a postcode prefix -> 6-digit code")
        zones[prefix] = code
    return pa.table(
        {
            "prefix": pa.array(list(zones), pa.string()),
            "len": pa.array([len(prefix) for prefix in zones], pa.int32()),
            "code": pa.array(list(zones.values()), pa.string()),
        }
    )


def _column(values: pa.Array | pa.ChunkedArray | None, num_rows: int, label: str) -> pa.ChunkedArray:
    if values is None:
        return pa.chunked_array([pa.nulls(num_rows, pa.string())])
    if len(values) != num_rows:
        raise ValueError(f"{label}: {len(values)} values for {num_rows} rows")
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return chunked if chunked.type == pa.string() else chunked.cast(pa.string())


def _read_addresses(con: duckdb.DuckDBPyConnection) -> None:
    """Table ``placed(i, code)``: the rows of ``todo(i, address)`` that their address places."""
    # Each step: one equi-join of the address's first two characters against the names' first two
    # (every name has at least two; a handful of names share a start), keeping the names the
    # address starts with, then per row the longest (the highest level on a tie) below what was
    # found so far. (One join per name length, on left(address, L), does the same in 1.5 times the
    # time: 14 hash-join probes of every row instead of one.)
    con.execute(
        f"CREATE TEMP TABLE state AS SELECT i, regexp_replace(address, '{_ADDRESS_NOISE}', '', 'g') AS rest, "
        "NULL::VARCHAR AS found, 0::TINYINT AS lvl, FALSE AS done FROM todo"
    )
    for _step in range(3):
        joins = (
            "SELECT s.i, n.len, n.level, n.code, n.province, n.city, n.short, substr(s.rest, n.len + 1) AS after "
            "FROM state s JOIN names n ON left(s.rest, 2) = n.start "
            "WHERE NOT s.done AND starts_with(s.rest, n.name) AND n.level > s.lvl "
            "AND (s.lvl = 0 OR (s.lvl = 1 AND n.province = s.found) OR (s.lvl = 2 AND n.city = s.found)) "
            "AND NOT (n.generic AND s.lvl = 0)"
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE pick AS
            WITH candidates AS ({joins}),
            kept AS (
                SELECT c.* FROM candidates c
                LEFT JOIN (SELECT DISTINCT start FROM names) ns ON left(c.after, 2) = ns.start
                WHERE NOT (c.short AND ns.start IS NULL AND regexp_matches(c.after, '{SHORT_FORM_GUARD}'))
            ),
            best AS (
                SELECT * FROM kept
                QUALIFY rank() OVER (PARTITION BY i ORDER BY len DESC, level) = 1
            )
            SELECT i, any_value(len) AS len,
                CASE
                    WHEN count(DISTINCT code) = 1 THEN min(code)
                    WHEN count(DISTINCT city) = 1 AND count(city) = count(*) THEN min(city)
                    WHEN count(DISTINCT province) = 1 THEN min(province)
                END AS code,
                count(DISTINCT code) > 1 AS ambiguous
            FROM best GROUP BY i
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE state AS
            WITH resolved AS (
                SELECT i, len, ambiguous, code,
                    CASE WHEN code LIKE '%0000' THEN 1 WHEN code LIKE '%00' THEN 2 ELSE 3 END AS level
                FROM pick
            )
            SELECT s.i,
                CASE WHEN r.i IS NULL THEN s.rest ELSE substr(s.rest, r.len + 1) END AS rest,
                CASE WHEN r.code IS NOT NULL AND r.level > s.lvl THEN r.code ELSE s.found END AS found,
                CASE WHEN r.code IS NOT NULL AND r.level > s.lvl THEN r.level ELSE s.lvl END::TINYINT AS lvl,
                s.done OR r.i IS NULL OR r.ambiguous OR r.level = 3 AS done
            FROM state s LEFT JOIN resolved r USING (i)
            """
        )
    con.execute("CREATE TEMP TABLE placed AS SELECT i, found AS code FROM state WHERE found IS NOT NULL")


def place(
    *,
    region_codes: pa.Array | pa.ChunkedArray | None,
    addresses: pa.Array | pa.ChunkedArray | None,
    postcodes: pa.Array | pa.ChunkedArray | None,
    num_rows: int,
    postcode_regions: dict[str, str] | None = None,
) -> pa.Table:
    """Place each row (see the module docstring): a table of ``num_rows`` rows, in the input order,
    with ``residence_region`` (6-digit code or null) and ``residence_basis`` (one of ``BASES``).
    ``postcode_regions`` maps postcodes or postcode prefixes to region codes, finer than the
    provincial zoning."""
    source = pa.table(
        {
            "i": pa.array(np.arange(num_rows, dtype=np.int64)),
            "region": _column(region_codes, num_rows, "region_codes"),
            "address": _column(addresses, num_rows, "addresses"),
            "postcode": _column(postcodes, num_rows, "postcodes"),
        }
    )
    zones = _postcode_table(postcode_regions)
    con = duckdb.connect()
    try:
        con.register("source", source)
        con.register("names", _names())
        con.register("zones", zones)
        # A region code counts only in a province that exists (000000 and 999999 are placeholders).
        provinces = ", ".join(sorted({repr(code[:2]) for code in divisions()}))
        con.execute(
            "CREATE TEMP TABLE inputs AS SELECT i, "
            f"CASE WHEN left(regexp_extract(region, '{_REGION_CODE}', 1), 2) IN ({provinces}) "
            f"THEN regexp_extract(region, '{_REGION_CODE}', 1) END AS region, "
            "NULLIF(address, '') AS address, "
            f"NULLIF(regexp_extract(postcode, '{_POSTCODE}', 1), '') AS postcode FROM source"
        )
        con.execute(
            "CREATE TEMP TABLE todo AS SELECT i, address FROM inputs WHERE region IS NULL AND address IS NOT NULL"
        )
        _read_addresses(con)
        zone_joins = " UNION ALL ".join(
            f"SELECT r.i, z.len, z.code FROM inputs r JOIN (SELECT * FROM zones WHERE len = {length}) z "
            f"ON left(r.postcode, {length}) = z.prefix WHERE r.region IS NULL"
            for length in sorted(set(zones.column("len").to_pylist()))
        )
        result = con.sql(
            f"""
            WITH zoned AS (SELECT i, arg_max(code, len) AS code FROM ({zone_joins}) GROUP BY i)
            SELECT coalesce(r.region, p.code, z.code) AS residence_region,
                CASE WHEN r.region IS NOT NULL THEN 'region_code' WHEN p.code IS NOT NULL THEN 'address'
                    WHEN z.code IS NOT NULL THEN 'postcode' ELSE 'unknown' END AS residence_basis
            FROM inputs r LEFT JOIN placed p USING (i) LEFT JOIN zoned z USING (i)
            ORDER BY r.i
            """
        ).arrow()
    finally:
        con.close()
    table = result.read_all() if isinstance(result, pa.RecordBatchReader) else result
    return pa.table(
        {
            "residence_region": table.column("residence_region").cast(pa.string()),
            "residence_basis": table.column("residence_basis").cast(pa.string()),
        }
    )
