"""Store contract: reads, writes, revisions, transactions and bad input, on every backend.

These checks pin etcd v3's semantics; the sqlite backend must pass them unchanged.
"""

from __future__ import annotations

import pytest

from routeplane.model.errors import InvalidKey, InvalidRequest, InvalidValue, LeaseNotFound
from routeplane.model.jsontypes import JSONValue
from routeplane.store import (
    Compare,
    Delete,
    Get,
    KeyValue,
    Put,
    Range,
    Store,
    absent,
    exists,
    mod_revision_is,
    value_is,
)
from routeplane.store.codec import MAX_TXN_OPS, MAX_VALUE_BYTES

pytestmark = pytest.mark.contract


def test_missing_key_reads_as_none(store: Store, root: str) -> None:
    assert store.get(root + "nothing") is None
    assert store.range(root).items == ()


def test_put_then_get_carries_revisions(store: Store, root: str) -> None:
    first = store.put(root + "a", {"name": "demo-net", "mtu": 1500})
    got = store.get(root + "a")
    assert got == KeyValue(root + "a", {"name": "demo-net", "mtu": 1500}, first, first, 1)

    second = store.put(root + "a", {"name": "renamed"})
    assert second == first + 1
    again = store.get(root + "a")
    assert again is not None
    assert (again.create_revision, again.mod_revision, again.version) == (first, second, 2)


def test_json_values_round_trip(store: Store, root: str) -> None:
    values: list[JSONValue] = [None, True, 0, -7, 2.5, "ünïcode ✓", [], {}, [1, {"a": [None, "x"]}]]
    for i, value in enumerate(values):
        store.put(f"{root}{i}", value)
    assert [kv.value for kv in store.range(root).items] == values


def test_range_is_sorted_and_limited_to_the_prefix(store: Store, root: str) -> None:
    for key in ("b/2", "a", "b/1", "b", "c"):
        store.put(root + key, key)
    store.put(root[:-1] + "x", "sibling outside the prefix")
    result = store.range(root + "b")
    assert [kv.key for kv in result.items] == [root + "b", root + "b/1", root + "b/2"]
    assert result.revision == store.revision()


def test_only_changing_transactions_advance_the_revision(store: Store, root: str) -> None:
    start = store.put(root + "k", 1)
    assert store.revision() == start
    assert store.delete(root + "missing") is False
    assert store.txn([], [Get(root + "k"), Range(root)]).revision == start
    assert store.txn([absent(root + "k")], [Put(root + "k", 2)]).revision == start
    assert store.revision() == start
    assert store.delete(root + "k") is True
    assert store.revision() == start + 1


def test_create_if_absent_claims_once(store: Store, root: str) -> None:
    key = root + "ipam/10.28.0.23"
    won = store.txn([absent(key)], [Put(key, {"port": "p1"})], [Get(key)])
    lost = store.txn([absent(key)], [Put(key, {"port": "p2"})], [Get(key)])
    assert won.succeeded
    assert won.results == (None,)
    assert not lost.succeeded
    holder = lost.results[0]
    assert isinstance(holder, KeyValue)
    assert holder.value == {"port": "p1"}
    assert lost.revision == won.revision


def test_compare_on_mod_revision_is_optimistic_locking(store: Store, root: str) -> None:
    key = root + "port"
    rev = store.put(key, {"rev": 1})
    newer = store.txn([mod_revision_is(key, rev)], [Put(key, {"rev": 2})])
    stale = store.txn([mod_revision_is(key, rev)], [Put(key, {"rev": 3})])
    assert newer.succeeded
    assert not stale.succeeded
    assert store.txn([mod_revision_is(root + "none", 0)], [Put(root + "none", 1)]).succeeded
    got = store.get(key)
    assert got is not None
    assert got.value == {"rev": 2}


def test_value_compares(store: Store, root: str) -> None:
    key = root + "v"
    store.put(key, {"b": 2, "a": 1})
    assert store.txn([value_is(key, {"a": 1, "b": 2})]).succeeded  # key order is irrelevant
    assert not store.txn([value_is(key, {"a": 1})]).succeeded
    assert store.txn([Compare(key, "value", "!=", {"a": 1})]).succeeded
    # etcd: comparing the value of a missing key is false, whatever the operator
    assert not store.txn([value_is(root + "missing", None)]).succeeded
    assert not store.txn([Compare(root + "missing", "value", "!=", 1)]).succeeded


def test_version_and_existence_compares(store: Store, root: str) -> None:
    key = root + "k"
    store.put(key, 1)
    store.put(key, 2)
    assert store.txn([Compare(key, "version", "==", 2)]).succeeded
    assert store.txn([Compare(key, "version", ">", 1), exists(key)]).succeeded
    assert not store.txn([Compare(key, "version", "<", 2)]).succeeded
    assert not store.txn([exists(root + "missing")]).succeeded
    # all compares must hold
    assert not store.txn([exists(key), exists(root + "missing")]).succeeded


def test_transaction_writes_share_one_revision(store: Store, root: str) -> None:
    before = store.revision()
    result = store.txn(
        [absent(root + "port")],
        [Put(root + "port", {"id": "p"}), Put(root + "claim", "p"), Put(root + "endpoint", {})],
    )
    assert result.revision == before + 1
    revs = {kv.mod_revision for kv in store.range(root).items}
    assert revs == {before + 1}


def test_failed_transaction_writes_nothing(store: Store, root: str) -> None:
    store.put(root + "a", "original")
    before = store.revision()
    # the second put names a lease that does not exist: the whole transaction is refused
    with pytest.raises(LeaseNotFound):
        store.txn([], [Put(root + "a", "changed"), Put(root + "b", "new", lease=0x7FFF_0001)])
    assert store.revision() == before
    got = store.get(root + "a")
    assert got is not None
    assert got.value == "original"
    assert store.get(root + "b") is None


def test_delete_prefix_removes_only_that_prefix(store: Store, root: str) -> None:
    for key in ("x/1", "x/2", "x/3", "y"):
        store.put(root + key, 0)
    result = store.txn([], [Delete(root + "x/", prefix=True)])
    assert result.results == (3,)
    assert [kv.key for kv in store.range(root).items] == [root + "y"]


def test_get_inside_a_transaction_sees_the_snapshot(store: Store, root: str) -> None:
    store.put(root + "a", 1)
    result = store.txn([exists(root + "a")], [Get(root + "a"), Range(root), Get(root + "no")])
    got, items, missing = result.results
    assert isinstance(got, KeyValue)
    assert got.value == 1
    assert isinstance(items, tuple)
    assert [kv.key for kv in items] == [root + "a"]
    assert missing is None


@pytest.mark.parametrize(
    "key",
    ["", "no-leading-slash", "/with space", "/tab\there", "/ünicode", "/nul\x00", "/" + "k" * 600],
)
def test_malformed_keys_are_refused(store: Store, root: str, key: str) -> None:
    before = store.revision()
    with pytest.raises(InvalidKey):
        store.put(key, 1)
    with pytest.raises(InvalidKey):
        store.get(key)
    with pytest.raises(InvalidKey):
        store.txn([], [Put(root + "ok", 1), Put(key, 1)])
    assert store.revision() == before
    assert store.get(root + "ok") is None


def test_non_string_key_is_refused(store: Store) -> None:
    with pytest.raises(InvalidKey):
        store.get(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, float("nan"), float("inf"), b"bytes", {"nested": object()}],
    ids=["object", "set", "nan", "inf", "bytes", "nested-object"],
)
def test_non_json_values_are_refused(store: Store, root: str, value: object) -> None:
    before = store.revision()
    with pytest.raises(InvalidValue):
        store.put(root + "k", value)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        store.txn([], [Put(root + "ok", 1), Put(root + "k", value)])  # type: ignore[arg-type]
    assert store.revision() == before
    assert store.range(root).items == ()


def test_oversize_value_is_refused(store: Store, root: str) -> None:
    before = store.revision()
    with pytest.raises(InvalidValue, match="limit"):
        store.put(root + "big", "x" * (MAX_VALUE_BYTES + 1))
    assert store.revision() == before
    store.put(root + "fits", "x" * (MAX_VALUE_BYTES - 2))  # two bytes for the JSON quotes
    got = store.get(root + "fits")
    assert got is not None
    assert len(str(got.value)) == MAX_VALUE_BYTES - 2


def test_malformed_transactions_are_refused(store: Store, root: str) -> None:
    before = store.revision()
    too_many = [Put(f"{root}{i}", i) for i in range(MAX_TXN_OPS + 1)]
    with pytest.raises(InvalidRequest):
        store.txn([], too_many)
    with pytest.raises(InvalidRequest):
        store.txn([], [Put(root + "a", 1), Put(root + "a", 2)])
    with pytest.raises(InvalidRequest):
        store.txn([], [Put(root + "x/a", 1), Delete(root + "x/", prefix=True)])
    with pytest.raises(InvalidRequest):
        store.txn([Compare(root + "a", "version", "==", "one")])
    with pytest.raises(InvalidRequest):
        store.txn([Compare(root + "a", "value", "<", 1)])
    with pytest.raises(InvalidRequest):
        store.txn([], ["not an op"])  # type: ignore[list-item]
    assert store.revision() == before
    assert store.range(root).items == ()
