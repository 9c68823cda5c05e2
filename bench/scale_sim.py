"""The simulated hosts of ``bench/scale.py``: an agent's reading of the store, counted.

A simulated host is what a real agent of that host reads, through the agent's own code,
without a kernel: a ``store.watcher.Follower`` of its own ``endpoints/<host>/`` and an
``agent.policy.PolicyFeed`` (the documents of its endpoints' groups, the member index of
the groups their rules name, the host records), all ringing one ``Bell`` its loop waits
on. Each host reads through a :class:`Probe` of its own store client (on etcd: its own
``EtcdStore``, so its own connections and watch streams, as a real agent), which counts
what the store served it and notes, per port, when each host first received an event
about it (:class:`Arrivals`): that is what the bench's latency and "stray" figures are
made of.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routeplane.agent.policy import PolicyFeed
from routeplane.model.endpoint import EndpointRecord, decode_or_none
from routeplane.model.errors import StoreError
from routeplane.model.jsontypes import JSONValue
from routeplane.model.keys import endpoints_prefix
from routeplane.store import Event, KeyValue, RangeResult, Store, Watch
from routeplane.store.watcher import Bell, Follower, Snapshot

Counts = tuple[int, int, int, int, int]
NICE = 5
RETRY = 0.5  # seconds before a step the store failed is tried again
IDLE = 5.0  # seconds a host's loop waits for its bell (it has no timers of its own)


@dataclass
class Load:
    """What the store served the simulated hosts, as they saw it."""

    ranges: int = 0
    range_items: int = 0
    watches: int = 0  # watch streams opened (first opens and resumptions)
    events: int = 0
    bytes: int = 0  # the values' JSON, snapshots and events
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> Counts:
        return self.ranges, self.range_items, self.watches, self.events, self.bytes


class Arrivals:
    """When each host first received something about each port, from ``forget`` on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, dict[str, float]] = {}  # port -> host -> first arrival

    def note(self, host: str, events: Sequence[Event], now: float) -> None:
        with self.lock:
            for event in events:
                self.seen.setdefault(event.key.rsplit("/", 1)[-1], {}).setdefault(host, now)

    def forget(self, port: str) -> None:
        with self.lock:
            self.seen.pop(port, None)

    def of(self, port: str) -> dict[str, float]:
        with self.lock:
            return dict(self.seen.get(port, {}))


def _size(value: JSONValue) -> int:
    return len(json.dumps(value, separators=(",", ":")))


class ProbeWatch:
    """A host's watch, counting what it delivers and when."""

    def __init__(self, watch: Watch, probe: Probe) -> None:
        self.watch, self.probe = watch, probe

    def next_batch(self, timeout: float | None = None) -> list[Event]:
        events = self.watch.next_batch(timeout)
        if events:
            self.probe.load.add(events=len(events), bytes=sum(_size(e.value) for e in events))
            self.probe.arrivals.note(self.probe.host, events, time.perf_counter())
        return events

    def notify(self, ring: Any) -> None:
        self.watch.notify(ring)

    def close(self) -> None:
        self.watch.close()

    def __iter__(self) -> Iterator[Event]:
        return iter(self.watch)

    def __enter__(self) -> ProbeWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Probe:
    """The store as one simulated host sees it (what a follower calls of it), counted.
    ``owned``: the host's own client, closed with it (etcd); else a shared one."""

    def __init__(
        self, store: Store, host: str, load: Load, arrivals: Arrivals, *, owned: bool
    ) -> None:
        self.store, self.host, self.load, self.arrivals = store, host, load, arrivals
        self.owned = owned
        self.url = store.url

    def get(self, key: str) -> KeyValue | None:
        return self.store.get(key)

    def revision(self) -> int:
        return self.store.revision()

    def range(self, prefix: str) -> RangeResult:
        result = self.store.range(prefix)
        sizes = sum(_size(kv.value) for kv in result.items)
        self.load.add(ranges=1, range_items=len(result.items), bytes=sizes)
        return result

    def watch(self, prefix: str, start_revision: int | None = None) -> ProbeWatch:
        self.load.add(watches=1)
        return ProbeWatch(self.store.watch(prefix, start_revision), self)

    def close(self) -> None:
        if self.owned:
            self.store.close()


class SimHost:
    """One host's agent without a kernel: the loop's reading, and its policy feed."""

    def __init__(self, store: Probe, name: str) -> None:
        self.name = name
        self.probe = store
        self.bell = Bell()
        view: Any = store  # a Store as far as the followers are concerned
        self.own = Follower(view, endpoints_prefix(name), self.bell)
        self.feed = PolicyFeed(view, self.bell)
        self.records: dict[str, EndpointRecord] = {}  # port -> record
        self.synced = threading.Event()
        self.error: BaseException | None = None
        self.store_errors = 0

    def step(self, timeout: float) -> None:
        if self.own.revision:
            self.bell.wait(timeout)
        news = self.own.poll(0)
        start = len(self.own.prefix)
        changed: dict[str, str] = {}
        if isinstance(news, Snapshot):
            fresh = {
                k[start:]: r for k, kv in news.items.items() if (r := decode_or_none(kv.value))
            }
            changed = dict.fromkeys(set(self.records) - set(fresh), "")
            self.records = fresh
            changed.update({p: r.get("interface", "") for p, r in fresh.items()})
        for event in news if isinstance(news, list) else []:
            port = event.key[start:]
            record = decode_or_none(event.value) if event.value is not None else None
            if record is None:
                self.records.pop(port, None)
                changed[port] = ""
            else:
                self.records[port] = record
                changed[port] = record.get("interface", "")
        self.feed.poll()
        if changed:
            self.feed.local(changed, self.on_tap)
            self.feed.want.elements.take()  # as if programmed (no kernel here)
        self.synced.set()

    def on_tap(self, tap: str) -> list[EndpointRecord]:
        return [r for r in self.records.values() if r.get("interface") == tap]

    def run(self, stop: threading.Event, gate: threading.Semaphore) -> None:
        """Sync (at most as many hosts at once as ``gate`` lets), then follow until
        ``stop``; a failure is kept for the bench to report."""
        try:
            # This thread, and the watch threads it starts, yield the CPU to the store and
            # the api: on a real cloud an agent has a machine of its own, here a thousand
            # share two cores with etcd (at equal priority they starved it: etcd answered
            # watches after the clients' 5 s timeout). Linux's nice is per thread.
            os.nice(NICE)
            with gate:
                while not self.synced.is_set() and not stop.is_set():
                    self._step(0)
            while not stop.is_set():
                self._step(IDLE)
        except BaseException as exc:
            self.error = exc
            self.synced.set()

    def _step(self, timeout: float) -> None:
        """A step; a store error is retried after a while, as the agent's loop does."""
        try:
            self.step(timeout)
        except StoreError:
            self.store_errors += 1
            time.sleep(RETRY)

    def follows(self, group: str) -> bool:
        return group in self.feed.members.followers

    def close(self) -> None:
        self.own.close()
        self.feed.close()
        self.probe.close()


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


__all__ = ["Arrivals", "Counts", "Load", "Probe", "SimHost", "rss_mb"]
