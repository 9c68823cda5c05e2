"""Store contract: watches, compaction and leases, on every backend.

The agent relies on these: snapshot with ``range``, then watch from its revision + 1 and
never miss or repeat a change; re-snapshot when told the history was compacted; see a
dead host's leased keys disappear as delete events.
"""

from __future__ import annotations

import time

import pytest

from routeplane.model.errors import Compacted, LeaseNotFound
from routeplane.store import Delete, Event, EventType, Put, Store, Watch

pytestmark = pytest.mark.contract


def collect(watch: Watch, count: int, timeout: float = 10.0) -> list[Event]:
    """Read until ``count`` events arrived; fewer means the test fails on its assert."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events.extend(watch.next_batch(timeout=0.2))
    return events


def summary(events: list[Event]) -> list[tuple[str, str, object]]:
    return [(e.type.value, e.key, e.value) for e in events]


def test_watch_sees_puts_and_deletes_in_revision_order(store: Store, root: str) -> None:
    with store.watch(root) as watch:
        r1 = store.put(root + "a", 1)
        r2 = store.put(root + "b", 2)
        store.txn([], [Put(root + "c", 3), Delete(root + "a")])
        events = collect(watch, 4)
    assert summary(events) == [
        ("PUT", root + "a", 1),
        ("PUT", root + "b", 2),
        ("PUT", root + "c", 3),
        ("DELETE", root + "a", None),
    ]
    assert [e.revision for e in events] == [r1, r2, r2 + 1, r2 + 1]
    assert events[0].create_revision == r1
    assert events[0].version == 1


def test_watch_ignores_keys_outside_its_prefix(store: Store, root: str) -> None:
    with store.watch(root + "mine/") as watch:
        store.put(root + "other", 0)
        store.put(root + "mine", 0)  # the prefix is "mine/", not "mine"
        store.put(root + "mine/x", 1)
        events = collect(watch, 1)
        assert watch.next_batch(timeout=0.1) == []
    assert summary(events) == [("PUT", root + "mine/x", 1)]


def test_snapshot_then_watch_from_its_revision_misses_nothing(store: Store, root: str) -> None:
    for i in range(5):
        store.put(f"{root}{i}", i)
    snapshot = store.range(root)
    store.put(root + "after", "x")
    store.delete(root + "0")
    with store.watch(root, snapshot.revision + 1) as watch:
        events = collect(watch, 2)
    assert summary(events) == [("PUT", root + "after", "x"), ("DELETE", root + "0", None)]


def test_watch_replays_history_from_an_old_revision(store: Store, root: str) -> None:
    first = store.put(root + "k", "v1")
    store.put(root + "k", "v2")
    store.put(root + "k", "v3")
    with store.watch(root, first + 1) as watch:
        events = collect(watch, 2)
    assert [e.value for e in events] == ["v2", "v3"]


def test_several_watches_see_the_same_stream(store: Store, root: str) -> None:
    with store.watch(root) as one, store.watch(root) as two:
        for i in range(50):
            store.put(f"{root}{i % 7}", i)
        assert summary(collect(one, 50)) == summary(collect(two, 50))


def test_closed_watch_stops(store: Store, root: str) -> None:
    watch = store.watch(root)
    watch.close()
    store.put(root + "a", 1)
    assert watch.next_batch(timeout=0.1) == []


def test_compacted_start_revision_tells_the_caller_to_resnapshot(store: Store, root: str) -> None:
    old = store.put(root + "k", 1)
    store.put(root + "k", 2)
    point = store.put(root + "k", 3)
    store.compact(point)
    with pytest.raises(Compacted) as info, store.watch(root, old) as watch:
        collect(watch, 1)
    assert info.value.compact_revision == point
    # re-snapshot and watch from its revision + 1 works
    snapshot = store.range(root)
    assert [kv.value for kv in snapshot.items] == [3]
    with store.watch(root, snapshot.revision + 1) as watch:
        store.put(root + "k", 4)
        assert [e.value for e in collect(watch, 1)] == [4]


def test_watch_from_the_compaction_point_still_works(store: Store, root: str) -> None:
    store.put(root + "k", 1)
    point = store.put(root + "k", 2)
    store.compact(point)
    with store.watch(root, point) as watch:
        assert [e.value for e in collect(watch, 1)] == [2]


def test_compacting_twice_to_the_same_point_is_refused(store: Store, root: str) -> None:
    point = store.put(root + "k", 1)
    store.compact(point)
    with pytest.raises(Compacted):
        store.compact(point)


def test_revoked_lease_deletes_its_keys(store: Store, root: str) -> None:
    lease = store.grant_lease(30)
    store.put(root + "hosts/node1", {"bgp": "192.168.8.3"}, lease=lease)
    store.put(root + "static", 1)
    with store.watch(root) as watch:
        store.revoke_lease(lease)
        events = collect(watch, 1)
    assert summary(events) == [("DELETE", root + "hosts/node1", None)]
    assert [kv.key for kv in store.range(root).items] == [root + "static"]
    store.revoke_lease(lease)  # revoking again is harmless
    with pytest.raises(LeaseNotFound):
        store.keepalive(lease)


def test_expired_lease_deletes_its_keys_and_watchers_see_it(store: Store, root: str) -> None:
    lease = store.grant_lease(2)
    key = root + "hosts/node1"
    store.put(key, {"bgp": "192.168.8.3"}, lease=lease)
    got = store.get(key)
    assert got is not None
    assert got.lease == lease
    with store.watch(root) as watch:
        started = time.monotonic()
        events = collect(watch, 1, timeout=15)
        elapsed = time.monotonic() - started
    assert summary(events) == [("DELETE", key, None)]
    assert elapsed >= 1.0  # not before its TTL
    assert store.get(key) is None
    with pytest.raises(LeaseNotFound):
        store.keepalive(lease)


def test_a_revoked_leases_id_is_not_handed_out_again(store: Store, root: str) -> None:
    """A late revoke by an old holder must never end someone else's newer lease."""
    old = store.grant_lease(30)
    store.revoke_lease(old)
    new = store.grant_lease(30)
    assert new != old
    store.put(root + "alive", 1, lease=new)
    store.revoke_lease(old)
    assert store.get(root + "alive") is not None
    assert store.keepalive(new) >= 1
    store.revoke_lease(new)


def test_keepalive_keeps_the_lease(store: Store, root: str) -> None:
    lease = store.grant_lease(2)
    store.put(root + "alive", 1, lease=lease)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert store.keepalive(lease) >= 1
        time.sleep(0.5)
    assert store.get(root + "alive") is not None
    store.revoke_lease(lease)


def test_put_with_unknown_lease_is_refused(store: Store, root: str) -> None:
    before = store.revision()
    with pytest.raises(LeaseNotFound):
        store.put(root + "k", 1, lease=0x7FFF_0002)
    assert store.revision() == before


def test_watch_event_types(store: Store, root: str) -> None:
    with store.watch(root) as watch:
        store.put(root + "a", 1)
        store.delete(root + "a")
        events = collect(watch, 2)
    assert [e.type for e in events] == [EventType.PUT, EventType.DELETE]
