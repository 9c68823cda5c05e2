"""A follower's fan-out: the other readers of the agent's process see exactly what the
owner read, from one read of the store."""

from __future__ import annotations

import threading

import pytest

from routeplane.store import Event, EventType
from routeplane.store.sqlite import SqliteStore
from routeplane.store.watcher import Branch, Fanout, Follower, Snapshot

PREFIX = "/routeplane/v1/endpoints/h1/"


def values(news: Snapshot | list[Event]) -> dict[str, object]:
    assert isinstance(news, Snapshot)
    return {k[len(PREFIX) :]: kv.value for k, kv in news.items.items()}


def owner_reads(fanout: Fanout) -> None:
    """One owner poll that returns news (the embedded store delivers within ms)."""
    for _ in range(200):
        news = fanout.poll(0.05)
        if isinstance(news, Snapshot) or news:
            return
    raise AssertionError("the owner read nothing")


def test_a_late_branch_starts_from_what_the_owner_has_seen(store: SqliteStore) -> None:
    store.put(PREFIX + "p1", {"n": 1})
    fanout = Fanout(Follower(store, PREFIX))
    owner_reads(fanout)  # snapshot
    store.put(PREFIX + "p2", {"n": 2})
    store.delete(PREFIX + "p1")
    owner_reads(fanout)
    while fanout.poll(0.05):  # the delete may come in a second batch
        pass
    news = fanout.branch().poll(0)
    assert values(news) == {"p2": {"n": 2}}
    assert isinstance(news, Snapshot)
    kv = news.items[PREFIX + "p2"]
    assert kv.mod_revision == store.get(PREFIX + "p2").mod_revision  # type: ignore[union-attr]


def test_a_branch_gets_the_owners_news_and_nothing_from_the_store(store: SqliteStore) -> None:
    fanout = Fanout(Follower(store, PREFIX))
    branch = fanout.branch()
    assert branch.poll(0) == []  # the owner has read nothing yet: neither has the branch
    store.put(PREFIX + "p1", {"n": 1})
    assert branch.poll(0.05) == []  # only the owner reads the store
    owner_reads(fanout)
    assert values(branch.poll(0)) == {"p1": {"n": 1}}
    store.put(PREFIX + "p1", {"n": 2})
    owner_reads(fanout)
    events = branch.poll(0)
    assert isinstance(events, list)
    assert [(e.type, e.value) for e in events] == [(EventType.PUT, {"n": 2})]


def test_news_piled_up_comes_as_one_snapshot_brought_forward(store: SqliteStore) -> None:
    fanout = Fanout(Follower(store, PREFIX))
    branch = fanout.branch()
    store.put(PREFIX + "p1", {"n": 1})
    owner_reads(fanout)
    store.put(PREFIX + "p2", {"n": 2})
    owner_reads(fanout)
    store.delete(PREFIX + "p1")
    owner_reads(fanout)
    assert values(branch.poll(0)) == {"p2": {"n": 2}}
    assert branch.poll(0) == []


def test_a_waiting_branch_wakes_when_the_owner_reads(store: SqliteStore) -> None:
    fanout = Fanout(Follower(store, PREFIX))
    owner_reads(fanout)
    branch = fanout.branch()
    assert isinstance(branch.poll(0), Snapshot)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(branch.poll(5)))
    reader.start()
    store.put(PREFIX + "p1", {"n": 1})
    owner_reads(fanout)
    reader.join(timeout=5)
    assert len(got) == 1
    events = got[0]
    assert isinstance(events, list)
    assert events[0].value == {"n": 1}


def test_a_closed_branch_is_no_longer_fed(store: SqliteStore) -> None:
    fanout = Fanout(Follower(store, PREFIX))
    branch: Branch = fanout.branch()
    branch.close()
    store.put(PREFIX + "p1", {"n": 1})
    owner_reads(fanout)
    assert branch.poll(0) == []


def test_after_compaction_the_owner_and_its_branches_start_again(store: SqliteStore) -> None:
    fanout = Fanout(Follower(store, PREFIX))
    branch = fanout.branch()
    store.put(PREFIX + "p1", {"n": 1})
    owner_reads(fanout)
    assert isinstance(branch.poll(0), Snapshot)
    fanout.follower.close()  # the owner's watch is gone; history it needs goes too
    for n in range(3):
        store.put(PREFIX + "p2", {"n": n})
    store.compact(store.revision())
    news = fanout.poll(0.5)
    assert isinstance(news, Snapshot)  # the owner re-reads everything...
    assert values(branch.poll(0)) == {"p1": {"n": 1}, "p2": {"n": 2}}  # ...and so do branches


def test_a_branch_of_a_narrower_prefix_sees_only_its_keys(store: SqliteStore) -> None:
    everyone = "/routeplane/v1/endpoints/"
    store.put(PREFIX + "p1", {"n": 1})
    store.put(everyone + "h2/p9", {"n": 9})
    fanout = Fanout(Follower(store, everyone))
    owner_reads(fanout)
    mine = fanout.branch(PREFIX)
    assert values(mine.poll(0)) == {"p1": {"n": 1}}
    store.put(everyone + "h2/p9", {"n": 10})
    store.put(PREFIX + "p2", {"n": 2})
    owner_reads(fanout)
    while fanout.poll(0.05):
        pass
    events = mine.poll(0)
    assert isinstance(events, list)
    assert [(e.key, e.value) for e in events] == [(PREFIX + "p2", {"n": 2})]


def test_a_branch_cannot_reach_outside_the_owners_prefix(store: SqliteStore) -> None:
    fanout = Fanout(Follower(store, PREFIX))
    with pytest.raises(ValueError, match="not within"):
        fanout.branch("/routeplane/v1/ports/")
