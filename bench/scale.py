"""Scale benchmark: N simulated hosts following the store as their agents would.

Run with ``make bench`` (or ``python bench/scale.py [N,N,...] [E,E,...]``). One
``routeplane api`` process on an embedded store; in this process N "hosts", each reading
the store through exactly the agent's code (``store.watcher.Follower`` of its own
``endpoints/<host>/``, and ``agent.policy.PolicyFeed``: the security groups and the
member index of the groups its endpoints' rules name, all ringing one ``Bell``), each on
a thread of its own; no kernel. Setup:

- S = E / 100 security groups made through the api, each admitting its own members
  (a ``remote_group_id`` rule, as Neutron's default group); a group's 100 members sit on
  4 hosts (a tenant's VMs are spread over a few hosts, not over all of them);
- E endpoints spread evenly over the hosts, written straight to the store (records and
  their member index entries, exactly as the api writes them): making 100,000 ports
  through the api would take most of the run, and what is measured is their reading,
  not their making.

Then, through the api, one at a time: port creates (bound to a host, in a group), moves
(``binding:host_id`` changed) and membership changes (``security_groups`` changed). For
each, the time from sending the request until every *interested* host has received it
(the host the port is on or left, and every host following one of the groups it
entered or left), p50/p99/max over all (change, host) pairs; and it checks that no other
host received anything about that port. Store load: snapshot reads, watch streams open,
events and bytes delivered to hosts, during sync and during the changes. Memory: the
process's RSS growth per simulated host after all are in sync.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx

from api import client, ok, percentile  # bench/api.py
from routeplane.agent.policy import PolicyFeed
from routeplane.model.endpoint import RECORD_VERSION, EndpointRecord, decode_or_none, encode
from routeplane.model.jsontypes import JSONValue
from routeplane.model.keys import endpoint_key, endpoints_prefix
from routeplane.model.members import record_entries
from routeplane.store import Event, KeyValue, Op, Put, RangeResult, Store, Watch
from routeplane.store.sqlite import SqliteStore
from routeplane.store.watcher import Bell, Follower, Snapshot
from routeplane.testing.api import ApiServer

GRID = ((10, 10_000), (100, 10_000), (1000, 10_000), (10, 100_000), (100, 100_000), (1000, 100_000))
MEMBERS = 100  # per security group
SPREAD = 4  # hosts a group's members sit on
CHANGES = 20  # of each kind
DEADLINE = 10.0  # seconds for a change to reach every interested host


@dataclass
class Load:
    """What the store served the simulated hosts."""

    ranges: int = 0
    range_items: int = 0
    watches: int = 0
    events: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> tuple[int, int, int, int, int]:
        return self.ranges, self.range_items, self.watches, self.events, self.bytes


class Arrivals:
    """When each host first received something about each port, from now on."""

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
    """The store as one simulated host sees it: the shared store, counted (what a
    follower calls of it: ``range`` and ``watch``)."""

    def __init__(self, store: Store, host: str, load: Load, arrivals: Arrivals) -> None:
        self.store, self.host, self.load, self.arrivals = store, host, load, arrivals
        self.url = store.url

    def get(self, key: str) -> KeyValue | None:
        return self.store.get(key)

    def range(self, prefix: str) -> RangeResult:
        result = self.store.range(prefix)
        sizes = sum(_size(kv.value) for kv in result.items)
        self.load.add(ranges=1, range_items=len(result.items), bytes=sizes)
        return result

    def watch(self, prefix: str, start_revision: int | None = None) -> ProbeWatch:
        self.load.add(watches=1)
        return ProbeWatch(self.store.watch(prefix, start_revision), self)

    def close(self) -> None:
        pass


class SimHost:
    """One host's agent without a kernel: the loop's reading, and its policy feed."""

    def __init__(self, store: Store, name: str) -> None:
        self.name = name
        self.bell = Bell()
        self.own = Follower(store, endpoints_prefix(name), self.bell)
        self.feed = PolicyFeed(store, self.bell)
        self.records: dict[str, EndpointRecord] = {}  # port -> record
        self.synced = threading.Event()

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

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(1.0)

    def follows(self, group: str) -> bool:
        return group in self.feed.members.followers


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_groups(http: httpx.Client, count: int) -> list[str]:
    groups = []
    for i in range(count):
        body = {"security_group": {"name": f"sg{i}"}}
        group = ok(http.post("/v2.0/security-groups", json=body))["security_group"]["id"]
        rule = {"security_group_id": group, "direction": "ingress", "ethertype": "IPv4",
                "remote_group_id": group}  # fmt: skip
        ok(http.post("/v2.0/security-group-rules", json={"security_group_rule": rule}))
        groups.append(group)
    return groups


def host_of(group: int, member: int, hosts: int) -> int:
    return (group * SPREAD + member % SPREAD) % hosts


def bulk(store: Store, groups: list[str], endpoints: int, hosts: int) -> None:
    """E endpoint records and their index entries, written as the api writes them."""
    ops: list[Op] = []
    for i in range(endpoints):
        g = i // MEMBERS
        port = f"bulk{i:07d}"
        record = EndpointRecord(
            version=RECORD_VERSION, port_id=port, interface=f"tap{port}"[:14],
            fixed_ips=[f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}"],
            security_groups=[groups[g]], port_revision=1,
        )  # fmt: skip
        host = f"h{host_of(g, i, hosts)}"
        ops.append(Put(endpoint_key(host, port), encode(record)))
        ops.extend(Put(k, v) for k, v in record_entries(port, record).items())
        if len(ops) >= 120:
            store.txn((), ops)
            ops = []
    if ops:
        store.txn((), ops)


@dataclass
class Result:
    hosts: int
    endpoints: int
    sync_s: float
    mem_kb: float
    sync_load: tuple[int, int, int, int, int]
    latencies: list[float]
    interested: list[int]
    change_load: tuple[int, int, int, int, int]
    changes_s: float
    strays: int


def run(hosts: int, endpoints: int) -> Result:
    rng = random.Random(hosts * 7 + endpoints)
    with tempfile.TemporaryDirectory(prefix="routeplane-bench-scale-") as tmp:
        path = Path(tmp) / "store.db"
        with ApiServer(f"sqlite://{path}", workdir=Path(tmp)) as server, client(server) as http:
            net = ok(http.post("/v2.0/networks", json={"network": {"name": "scale"}}))["network"]
            body = {"network_id": net["id"], "ip_version": 4, "cidr": "10.60.0.0/16"}
            ok(http.post("/v2.0/subnets", json={"subnet": body}))
            unlimited = {"security_group": -1, "security_group_rule": -1, "port": -1}
            ok(http.put(f"/v2.0/quotas/{net['project_id']}", json={"quota": unlimited}))
            groups = make_groups(http, endpoints // MEMBERS)
            store = SqliteStore(path)
            bulk(store, groups, endpoints, hosts)
            load, arrivals = Load(), Arrivals()
            before = rss_mb()
            began = time.perf_counter()
            sims = [
                SimHost(cast(Store, Probe(store, f"h{i}", load, arrivals)), f"h{i}")
                for i in range(hosts)
            ]
            stop = threading.Event()
            threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in sims]
            for t in threads:
                t.start()
            for s in sims:
                s.synced.wait(600)
            sync_s = time.perf_counter() - began
            mem_kb = (rss_mb() - before) * 1024 / hosts
            sync_load = load.snapshot()
            try:
                return _changes(http, net["id"], groups, sims, arrivals, load, rng,
                                Result(hosts, endpoints, sync_s, mem_kb, sync_load, [], [],
                                       (0, 0, 0, 0, 0), 0.0, 0))  # fmt: skip
            finally:
                stop.set()
                for s in sims:
                    s.bell.ring()
                for t in threads:
                    t.join(5)
                for s in sims:
                    s.own.close()
                    s.feed.close()
                store.close()


def _changes(  # noqa: PLR0917
    http: httpx.Client, net: str, groups: list[str], sims: list[SimHost],
    arrivals: Arrivals, load: Load, rng: random.Random, result: Result,
) -> Result:  # fmt: skip
    hosts = len(sims)
    start_load = load.snapshot()
    began = time.perf_counter()
    ports: list[tuple[str, int, str]] = []  # id, host, group
    for kind in ("create", "move", "membership"):
        for c in range(CHANGES):
            if kind == "create":
                host, group = rng.randrange(hosts), rng.choice(groups)
                body = {
                    "network_id": net,
                    "binding:host_id": f"h{host}",
                    "security_groups": [group],
                }
                interested = {host} | {i for i, s in enumerate(sims) if s.follows(group)}
                sent = time.perf_counter()
                port = ok(http.post("/v2.0/ports", json={"port": body}))["port"]["id"]
                ports.append((port, host, group))
            elif kind == "move":
                port, host, group = ports[c]
                to = (host + 1 + rng.randrange(hosts - 1)) % hosts if hosts > 1 else host
                interested = {host, to}
                arrivals.forget(port)  # only this change's arrivals count
                sent = time.perf_counter()
                ok(http.put(f"/v2.0/ports/{port}", json={"port": {"binding:host_id": f"h{to}"}}))
                ports[c] = (port, to, group)
            else:
                port, host, group = ports[c]
                other = rng.choice([g for g in groups if g != group])
                interested = {host} | {
                    i for i, s in enumerate(sims) if s.follows(group) or s.follows(other)
                }
                arrivals.forget(port)
                sent = time.perf_counter()
                ok(http.put(f"/v2.0/ports/{port}", json={"port": {"security_groups": [other]}}))
                ports[c] = (port, host, other)
            names = {f"h{i}" for i in interested}
            deadline = time.monotonic() + DEADLINE
            while not names <= arrivals.of(port).keys() and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(0.02)  # anything for an uninterested host would have come by now
            seen = arrivals.of(port)
            result.latencies += [(seen[h] - sent) * 1000 if h in seen else DEADLINE * 1000
                                 for h in names]  # fmt: skip
            result.interested.append(len(names))
            result.strays += len(seen.keys() - names)
            if not names <= seen.keys():
                print(kind, "missed by", sorted(names - seen.keys()), file=sys.stderr)
    result.changes_s = time.perf_counter() - began
    result.change_load = tuple(  # type: ignore[assignment]
        a - b for a, b in zip(load.snapshot(), start_load, strict=True)
    )
    return result


def main(argv: list[str]) -> int:
    grid = list(GRID)
    if len(argv) == 2:
        grid = [(int(n), int(e)) for n in argv[0].split(",") for e in argv[1].split(",")]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"\nscale benchmark: N hosts (agent followers, no kernel) on one store; E endpoints,"
        f" E/{MEMBERS} security groups of {MEMBERS} members on {SPREAD} hosts each; {CHANGES}"
        " port creates, moves and membership changes through the api, one at a time"
    )
    print(
        "{:>5} {:>8} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>6}".format(
            "N", "E", "sync s", "KB/host", "watches", "sync MB", "p50 ms", "p99 ms", "max ms",
            "hosts/chg", "ev/chg", "stray"
        )
    )  # fmt: skip
    for hosts, endpoints in grid:
        r = run(hosts, endpoints)
        changes = len(r.interested)
        print(
            f"{hosts:>5,} {endpoints:>8,} {r.sync_s:>7.2f} {r.mem_kb:>8.1f} {r.sync_load[2]:>9,}"
            f" {r.sync_load[4] / 1e6:>9.1f} {percentile(r.latencies, 50):>9.2f}"
            f" {percentile(r.latencies, 99):>7.2f} {max(r.latencies):>9.2f}"
            f" {sum(r.interested) / changes:>9.1f} {r.change_load[3] / changes:>9.1f}"
            f" {r.strays:>6}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
