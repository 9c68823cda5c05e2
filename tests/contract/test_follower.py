"""Store contract for followers (what the agent uses): snapshot, then changes, and a fresh
snapshot by itself when the history it needed was compacted away."""

from __future__ import annotations

import time

import pytest

from routeplane.store import Event, Store
from routeplane.store.watcher import Follower, Snapshot

pytestmark = pytest.mark.contract


def events_until(follower: Follower, count: int) -> list[Event]:
    seen: list[Event] = []
    deadline = time.monotonic() + 10
    while len(seen) < count and time.monotonic() < deadline:
        news = follower.poll(0.2)
        assert isinstance(news, list)
        seen += news
    return seen


def test_snapshot_then_changes(store: Store, root: str) -> None:
    store.put(root + "a", 1)
    follower = Follower(store, root)
    first = follower.poll(0.1)
    assert isinstance(first, Snapshot)
    assert [kv.value for kv in first.items.values()] == [1]
    store.put(root + "b", 2)
    store.delete(root + "a")
    seen = events_until(follower, 2)
    assert [(e.type.value, e.key) for e in seen] == [("PUT", root + "b"), ("DELETE", root + "a")]
    follower.close()


def test_compacted_history_yields_a_fresh_snapshot(store: Store, root: str) -> None:
    store.put(root + "a", 1)
    follower = Follower(store, root)
    assert isinstance(follower.poll(0.1), Snapshot)
    follower.close()  # the consumer was away...
    store.put(root + "a", 2)
    point = store.put(root + "b", 3)
    store.compact(point)  # ...and the history it missed is gone
    news = follower.poll(0.5)
    assert isinstance(news, Snapshot)
    assert {k[len(root) :]: kv.value for k, kv in news.items.items()} == {"a": 2, "b": 3}
    follower.close()
