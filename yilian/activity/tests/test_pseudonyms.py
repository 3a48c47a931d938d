"""Keyed pseudonyms: HMAC-SHA256 computed over whole arrays equals the standard library's."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pyarrow as pa

from yilian.activity.pseudonyms import pseudonym_key, pseudonymise

VALUES = ["330824195003071234", "MRN-0001", "张三丰", "a", ""]


def reference(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def test_equals_hmac_sha256_of_each_value_and_null_stays_null(settings: Any) -> None:
    settings.PSEUDONYM_KEY = "a configured secret"
    got = pseudonymise(pa.array([*VALUES, None])).to_pylist()
    assert got == [reference(b"a configured secret", v) for v in VALUES] + [None]


def test_keys_longer_than_a_block_are_hashed_first_as_rfc_2104_says(settings: Any) -> None:
    settings.PSEUDONYM_KEY = "k" * 100
    assert pseudonymise(pa.array(VALUES)).to_pylist() == [reference(b"k" * 100, v) for v in VALUES]


def test_without_a_configured_key_one_is_derived_from_the_secret_key(settings: Any) -> None:
    settings.PSEUDONYM_KEY = ""
    settings.SECRET_KEY = "django-secret"
    derived = hmac.new(b"django-secret", b"yilian.activity.pseudonym.v1", hashlib.sha256).digest()
    assert pseudonym_key() == derived
    assert derived != b"django-secret"
    assert pseudonymise(pa.array(["x"])).to_pylist() == [reference(derived, "x")]


def test_different_keys_give_different_pseudonyms(settings: Any) -> None:
    settings.PSEUDONYM_KEY = "one"
    first = pseudonymise(pa.array(["330824195003071234"])).to_pylist()
    settings.PSEUDONYM_KEY = "two"
    assert pseudonymise(pa.array(["330824195003071234"])).to_pylist() != first


def test_surrounding_spaces_do_not_make_another_patient(settings: Any) -> None:
    settings.PSEUDONYM_KEY = "k"
    assert pseudonymise(pa.array([" 123 "])).to_pylist() == [reference(b"k", "123")]


def test_chunked_input(settings: Any) -> None:
    settings.PSEUDONYM_KEY = "k"
    chunked = pa.chunked_array([["a", "b"], ["c"]])
    assert pseudonymise(chunked).to_pylist() == [reference(b"k", v) for v in "abc"]
