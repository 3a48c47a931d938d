"""Keyed pseudonyms of patient identifiers.

``pseudonymise`` computes HMAC-SHA256 (RFC 2104) over a whole Arrow array in DuckDB:
``sha256((K xor opad) || unhex(sha256((K xor ipad) || value)))``, the same hex digest as
``hmac.new(key, value.encode(), hashlib.sha256).hexdigest()``. The key is
``settings.PSEUDONYM_KEY`` when set, else derived from ``SECRET_KEY`` with a fixed label; it is
never written with the data, so the facts cannot be linked back to a person without it.
Identifiers are trimmed first, so ``" 123 "`` and ``"123"`` are one patient.
"""

# The SQL here is assembled from the dataset definitions in columns.py (constants); user data only
# ever reaches DuckDB as registered Arrow tables or bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import hmac

import duckdb
import pyarrow as pa
from django.conf import settings

_LABEL = b"yilian.activity.pseudonym.v1"
_BLOCK = 64  # SHA-256 block size


def pseudonym_key() -> bytes:
    configured: str = getattr(settings, "PSEUDONYM_KEY", "") or ""
    if configured:
        return configured.encode()
    return hmac.new(str(settings.SECRET_KEY).encode(), _LABEL, hashlib.sha256).digest()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def pseudonymise_sql(expression: str) -> str:
    """A DuckDB SQL expression computing the pseudonym of a VARCHAR expression, with the pads as
    the named parameters ``$ipad`` and ``$opad`` (see ``pad_parameters``)."""
    return f"sha256($opad || unhex(sha256($ipad || encode({expression}))))"


def pad_parameters() -> dict[str, bytes]:
    ipad, opad = _pads(pseudonym_key())
    return {"ipad": ipad, "opad": opad}


def pseudonymise(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The pseudonym (64 hex characters) of each value; null stays null."""
    con = duckdb.connect()
    try:
        source = pa.table({"v": values.cast(pa.string())})
        con.register("source", source)
        result = con.sql(
            f"SELECT CASE WHEN v IS NULL THEN NULL ELSE {pseudonymise_sql('trim(v)')} END AS k FROM source",
            params=pad_parameters(),
        ).to_arrow_table()
    finally:
        con.close()
    assert result is not None
    return result.column("k").combine_chunks()
