"""Unit: key rules, canonical JSON and transaction validation (pure, no backend)."""

from __future__ import annotations

import pytest

from routeplane.model.errors import InvalidKey, InvalidRequest, InvalidValue
from routeplane.store import Compare, Delete, Get, Put, Range
from routeplane.store.codec import (
    MAX_KEY_BYTES,
    check_key,
    compare_number,
    decode_value,
    encode_value,
    prefix_end,
    prepare_txn,
)

pytestmark = pytest.mark.unit


def test_valid_keys_pass_unchanged() -> None:
    for key in ("/", "/routeplane/v1/ports/abc", "/ipam/10.28.0.23", "/x" * (MAX_KEY_BYTES // 2)):
        assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "a/b", "/a b", "/ä", "/\x7f", "/" * (MAX_KEY_BYTES + 1)])
def test_invalid_keys_are_refused_with_the_reason(key: str) -> None:
    with pytest.raises(InvalidKey, match=r"malformed|longer"):
        check_key(key)


def test_prefix_end_bounds_exactly_the_prefix() -> None:
    start, end = "/a/", prefix_end("/a/")
    assert end == "/a0"
    assert start < start + "~~~" < end
    assert not (start <= "/a0" < end)


def test_encoding_is_canonical() -> None:
    assert encode_value({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert encode_value({"a": [1, 2], "b": 1}) == encode_value({"b": 1, "a": [1, 2]})
    assert encode_value("ü") == '"ü"'
    assert decode_value(encode_value({"x": None})) == {"x": None}


def test_non_json_values_are_refused() -> None:
    for value in (object(), float("nan"), {1: object()}, {(1, 2): 3}):
        with pytest.raises(InvalidValue):
            encode_value(value)


def test_duplicate_and_overlapping_writes_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="more than once"):
        prepare_txn([], [Put("/a", 1), Delete("/a")], [])
    with pytest.raises(InvalidRequest, match="prefix"):
        prepare_txn([], [Delete("/a/", prefix=True), Delete("/a/b/", prefix=True)], [])
    # disjoint prefixes, and reads of written keys, are fine
    prepare_txn([], [Delete("/a/", prefix=True), Delete("/b/", prefix=True), Get("/a/x")], [])
    prepare_txn([], [Put("/a", 1)], [Put("/a", 2)])  # different branches


def test_compares_are_checked() -> None:
    with pytest.raises(InvalidRequest, match="integer"):
        prepare_txn([Compare("/a", "mod_revision", "==", True)], [], [])
    with pytest.raises(InvalidRequest, match="target"):
        prepare_txn([Compare("/a", "lease", "==", 1)], [], [])  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="operator"):
        prepare_txn([Compare("/a", "version", ">=", 1)], [], [])  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        prepare_txn([Compare("bad", "version", "==", 1)], [], [])
    with pytest.raises(InvalidKey):
        prepare_txn([], [Range("no-slash")], [])


def test_lease_ids_must_be_positive() -> None:
    with pytest.raises(InvalidRequest, match="lease"):
        prepare_txn([], [Put("/a", 1, lease=0)], [])


@pytest.mark.parametrize(
    ("actual", "op", "operand", "expected"),
    [(1, "==", 1, True), (1, "!=", 1, False), (1, "<", 2, True), (2, ">", 2, False)],
)
def test_compare_number(actual: int, op: str, operand: int, expected: bool) -> None:
    assert compare_number(actual, op, operand) is expected
