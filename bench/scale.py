"""Scale benchmark: N simulated hosts following the store as their agents would.

``python bench/scale.py`` runs the grid N = 10, 100, 1,000 hosts by E = 10,000 and
100,000 endpoints on etcd; ``--quick`` only N = 10, 100 at E = 10,000 (what ``make
bench`` runs); ``--hosts``/``--endpoints`` any sizes, ``--store sqlite`` the embedded
store instead (or beside: ``--store etcd sqlite``). One ``routeplane api`` process on
the store; in this process N hosts (``bench/scale_sim.py``), each reading the store
through the agent's own followers and policy feed over a client of its own (on etcd its
own ``EtcdStore``: its own connections and watch streams), on a thread of its own; no
kernel. Setup:

- S = E / 100 security groups made through the api (8 clients at once), each admitting
  its own members (a ``remote_group_id`` rule, as Neutron's default group); a group's 100
  members sit on 4 hosts (a tenant's VMs are spread over a few hosts, not all of them),
  or on N / S when that is more, so that every host has endpoints (N = 1,000, E = 10,000:
  10 hosts of 10 members each);
- E endpoints spread over the hosts, written straight to the store in transactions of
  120 operations, 4 at once: each endpoint's record and its member index entry, with the
  codec and in the key layout the api uses (``model.endpoint.encode``,
  ``model.members.record_entries``). 100,000 ports through the api would be most of the
  run (on etcd a port create is tens of ms), and what is measured is their reading;
- the hosts start, at most 16 syncing at once (a cloud's agents do not all start in the
  same millisecond), each with its snapshot reads and watches.

Then, through the api, one at a time: port creates (bound to a host, in a group), moves
(``binding:host_id`` changed) and membership changes (``security_groups`` changed). For
each, the time from sending the request until every *interested* host has received it
(the host the port is on or left, and every host following one of the groups it entered
or left), p50/p99/max over all (change, host) pairs; and the count of deliveries to any
other host ("stray"), which must be 0 (the bench exits 1 otherwise). The store's load, on
etcd from its own ``/metrics``: gRPC requests, watch streams and watchers open, bytes it
sent; and what the hosts counted (snapshot reads, watches opened, events). Memory: this
process's RSS growth per simulated host once all are in sync, and etcd's RSS. Every wait
is bounded (a change: 10 s; a host's sync: 600 s).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from api import client, ok, percentile  # bench/api.py
from routeplane.model.endpoint import RECORD_VERSION, EndpointRecord, encode
from routeplane.model.keys import endpoint_key
from routeplane.model.members import record_entries
from routeplane.store import Op, Put, Store
from routeplane.store.url import open_store
from routeplane.testing.api import ApiServer
from routeplane.testing.etcd import EtcdServer
from scale_report import HEADER, Result, Sent, line, plot, row
from scale_sim import Arrivals, Counts, Load, Probe, SimHost, rss_mb  # bench/scale_sim.py

HOSTS, ENDPOINTS, QUICK_HOSTS = (10, 100, 1000), (10_000, 100_000), (10, 100)
MEMBERS = 100  # per security group
SPREAD = 4  # hosts a group's members sit on
CHANGES = 20  # of each kind
DEADLINE = 10.0  # seconds for a change to reach every interested host
SETTLE = 0.05  # seconds after that in which a stray delivery would show
SYNCING = 16  # hosts reading their snapshots at once
CONFLICT, ERROR = 409, 500
TARGET_MS = 100.0  # p99 at 1,000 hosts / 100,000 endpoints (issue 17)
# etcd sends an idle watch a progress notification this often; the watch reader reconnects
# after 30 s of silence (EtcdStore's watch_idle_timeout), and etcd's default is 10 min
PROGRESS = "5s"


# the store --------------------------------------------------------------------------------
@contextmanager
def backend(kind: str, tmp: Path) -> Iterator[tuple[str, EtcdServer | None]]:
    if kind == "sqlite":
        yield f"sqlite://{tmp / 'store.db'}", None
        return
    extra = (
        "--experimental-watch-progress-notify-interval",
        PROGRESS,
        "--quota-backend-bytes",
        str(4 << 30),
    )
    with EtcdServer(data_dir=tmp / "etcd", extra_args=extra) as etcd:
        yield etcd.url, etcd


_METRICS = {
    "requests": re.compile(r'^grpc_server_started_total\{.*grpc_type="unary".*\} (\S+)$'),
    "streams": re.compile(r"^etcd_debugging_mvcc_watch_stream_total (\S+)$"),
    "watchers": re.compile(r"^etcd_debugging_mvcc_watcher_total (\S+)$"),
    "sent": re.compile(r"^etcd_network_client_grpc_sent_bytes_total (\S+)$"),
}


def etcd_metrics(etcd: EtcdServer | None) -> dict[str, float]:
    """etcd's own count of what it served (empty on the embedded store)."""
    if etcd is None:
        return {}
    found = dict.fromkeys(_METRICS, 0.0)
    for text in httpx.get(f"{etcd.client_url}/metrics", timeout=10).text.splitlines():
        for name, pattern in _METRICS.items():
            if match := pattern.match(text):
                found[name] += float(match.group(1))
    return found


# setup ------------------------------------------------------------------------------------
def make_groups(server: ApiServer, count: int, workers: int = 8) -> list[str]:
    """``count`` groups, each admitting its own members, through the api."""

    def post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for _ in range(20):  # a conflict with another client's create: as a client would
            response = http.post(path, json=body)
            if response.status_code != CONFLICT:
                break
        return ok(response)

    def some(indexes: range) -> list[str]:
        made = []
        with client(server) as http:
            for i in indexes:
                body = {"security_group": {"name": f"sg{i}"}}
                group = post(http, "/v2.0/security-groups", body)["security_group"]["id"]
                rule = {
                    "security_group_id": group,
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "remote_group_id": group,
                }
                post(http, "/v2.0/security-group-rules", {"security_group_rule": rule})
                made.append(group)
        return made

    chunks = [range(w, count, workers) for w in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        made = list(pool.map(some, chunks))
    return [made[i % workers][i // workers] for i in range(count)]


def spread(hosts: int, groups: int) -> int:
    """Hosts a group's members sit on: SPREAD, or more when there are too few groups
    for every host to have endpoints (1,000 hosts, 100 groups: 10 hosts each)."""
    return max(SPREAD, -(-hosts // max(groups, 1)))


def host_of(group: int, member: int, hosts: int, groups: int) -> int:
    each = spread(hosts, groups)
    return (group * each + member % each) % hosts


def bulk(store: Store, groups: list[str], endpoints: int, hosts: int, workers: int) -> None:
    """E endpoint records and their index entries, written as the api writes them."""

    def ops_of(i: int) -> list[Op]:
        g, port = i // MEMBERS, f"bulk{i:07d}"
        record = EndpointRecord(
            version=RECORD_VERSION,
            port_id=port,
            interface=f"tap{port}"[:14],
            fixed_ips=[f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}"],
            security_groups=[groups[g]],
            port_revision=1,
        )
        host = f"h{host_of(g, i, hosts, len(groups))}"
        entries = record_entries(port, record).items()
        return [Put(endpoint_key(host, port), encode(record)), *(Put(k, v) for k, v in entries)]

    def chunk(start: int) -> None:
        ops = [op for i in range(start, min(start + 60, endpoints)) for op in ops_of(i)]
        store.txn((), ops)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(chunk, range(0, endpoints, 60)))


# one cell of the grid ---------------------------------------------------------------------
def run(kind: str, hosts: int, endpoints: int, changes: int) -> Result:
    rng = random.Random(hosts * 7 + endpoints)
    result = Result(kind, hosts, endpoints)
    with (
        tempfile.TemporaryDirectory(prefix="routeplane-bench-scale-") as tmp,
        backend(kind, Path(tmp)) as (url, etcd),
        ApiServer(url, workdir=Path(tmp)) as server,
        client(server) as http,
    ):
        began = time.perf_counter()
        net = ok(http.post("/v2.0/networks", json={"network": {"name": "scale"}}))["network"]
        body = {"network_id": net["id"], "ip_version": 4, "cidr": "10.60.0.0/16"}
        ok(http.post("/v2.0/subnets", json={"subnet": body}))
        unlimited = {"security_group": -1, "security_group_rule": -1, "port": -1}
        ok(http.put(f"/v2.0/quotas/{net['project_id']}", json={"quota": unlimited}))
        groups = make_groups(server, endpoints // MEMBERS)
        shared = open_store(url)
        bulk(shared, groups, endpoints, hosts, 4 if etcd is not None else 1)
        result.setup_s = time.perf_counter() - began
        load, arrivals = Load(), Arrivals()
        before, start_metrics = rss_mb(), etcd_metrics(etcd)
        began = time.perf_counter()

        def probe(name: str) -> Probe:
            own = etcd is not None  # on etcd each host is a client of its own
            return Probe(open_store(url) if own else shared, name, load, arrivals, owned=own)

        sims = [SimHost(probe(f"h{i}"), f"h{i}") for i in range(hosts)]
        stop, gate = threading.Event(), threading.Semaphore(SYNCING)
        threads = [threading.Thread(target=s.run, args=(stop, gate), daemon=True) for s in sims]
        try:
            for t in threads:
                t.start()
            for s in sims:
                s.synced.wait(600)
            failed = [s for s in sims if s.error is not None or not s.synced.is_set()]
            if failed:
                raise RuntimeError(f"{len(failed)} hosts failed to sync: {failed[0].error!r}")
            result.sync_s = time.perf_counter() - began
            result.kb_per_host = (rss_mb() - before) * 1024 / hosts
            result.sync_load = load.snapshot()
            result.etcd_sync = _minus(etcd_metrics(etcd), start_metrics)
            # a thousand agents' objects in one heap: the collector's full passes over
            # them would be pauses no real agent has (its heap is one host's)
            gc.collect()
            gc.freeze()
            _changes(http, net["id"], groups, sims, arrivals, rng, changes, result)
            result.change_load = _minus_counts(load.snapshot(), result.sync_load)
            result.etcd_changes = _minus(etcd_metrics(etcd), start_metrics, result.etcd_sync)
            result.store_mb = rss_mb(etcd.pid) if etcd is not None and etcd.pid else 0.0
            result.retries = sum(s.store_errors for s in sims)
        finally:
            stop.set()
            for s in sims:
                s.bell.ring()
            for t in threads:
                t.join(5)
            for s in sims:
                s.close()
            shared.close()
            gc.unfreeze()
    return result


def _minus(after: dict[str, float], *before: dict[str, float]) -> dict[str, float]:
    """Counters' growth (the gauges, streams and watchers, are kept as they are)."""
    gauges = ("streams", "watchers")
    return {
        k: v if k in gauges else v - sum(b.get(k, 0.0) for b in before) for k, v in after.items()
    }


def _minus_counts(after: Counts, before: Counts) -> Counts:
    a, b, c, d, e = (x - y for x, y in zip(after, before, strict=True))
    return a, b, c, d, e


def _send(http: httpx.Client, method: str, path: str, body: dict[str, Any]) -> Sent:
    """One request: its answer (None: the api failed it, 5xx), when sent and answered."""
    sent = time.perf_counter()
    response = http.request(method, path, json=body)
    answered = time.perf_counter()
    return (None if response.status_code >= ERROR else ok(response)), sent, answered


def _changes(  # noqa: PLR0917
    http: httpx.Client,
    net: str,
    groups: list[str],
    sims: list[SimHost],
    arrivals: Arrivals,
    rng: random.Random,
    count: int,
    result: Result,
) -> None:
    """``count`` creates, then as many moves and membership changes of those ports; a
    change the api fails (the store timed out under load) is counted, not measured."""
    hosts = len(sims)
    began = time.perf_counter()
    ports: list[tuple[str, int, str] | None] = []  # id, host, group (None: state unknown)

    def followers(*of: str) -> set[int]:
        return {i for i, s in enumerate(sims) if any(s.follows(g) for g in of)}

    for kind in ("create", "move", "membership"):
        for c in range(count if kind == "create" else len(ports)):
            if kind == "create":
                host, group = rng.randrange(hosts), rng.choice(groups)
                body = {
                    "network_id": net,
                    "binding:host_id": f"h{host}",
                    "security_groups": [group],
                }
                interested = {host} | followers(group)
                answer, sent, answered = _send(http, "POST", "/v2.0/ports", {"port": body})
                port = answer["port"]["id"] if answer else ""
                ports.append((port, host, group) if answer else None)
            elif (known := ports[c]) is None:
                continue
            elif kind == "move":
                port, host, group = known
                to = (host + 1 + rng.randrange(hosts - 1)) % hosts if hosts > 1 else host
                interested = {host, to}
                arrivals.forget(port)  # only this change's arrivals count
                update: dict[str, Any] = {"port": {"binding:host_id": f"h{to}"}}
                answer, sent, answered = _send(http, "PUT", f"/v2.0/ports/{port}", update)
                ports[c] = (port, to, group) if answer else None
            else:
                port, host, group = known
                other = rng.choice([g for g in groups if g != group])
                interested = {host} | followers(group, other)
                arrivals.forget(port)
                update = {"port": {"security_groups": [other]}}
                answer, sent, answered = _send(http, "PUT", f"/v2.0/ports/{port}", update)
                ports[c] = (port, host, other) if answer else None
            if answer is None:
                result.api_errors += 1
                continue
            _arrived(port, {f"h{i}" for i in interested}, arrivals, (sent, answered), result)
            result.api_ms.append((answered - sent) * 1000)
    result.changes_s = time.perf_counter() - began


def _arrived(
    port: str, names: set[str], arrivals: Arrivals, times: tuple[float, float], result: Result
) -> None:
    """Wait until every interested host has the change, then note who had it when."""
    sent, answered = times
    deadline = time.monotonic() + DEADLINE
    while not names <= arrivals.of(port).keys() and time.monotonic() < deadline:
        time.sleep(0.0005)
    time.sleep(SETTLE)  # anything for an uninterested host would have come by now
    seen = arrivals.of(port)
    result.latencies += [(seen[h] - sent) * 1000 if h in seen else DEADLINE * 1000 for h in names]
    result.after_api += [(seen[h] - answered) * 1000 for h in names if h in seen]
    result.interested.append(len(names))
    result.strays += len(seen.keys() - names)
    result.missed += len(names - seen.keys())
    if not names <= seen.keys():
        print(port, "missed by", sorted(names - seen.keys()), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", nargs="+", default=["etcd"], choices=["etcd", "sqlite"])
    parser.add_argument("--hosts", type=lambda s: [int(n) for n in s.split(",")])
    parser.add_argument("--endpoints", type=lambda s: [int(n) for n in s.split(",")])
    parser.add_argument("--quick", action="store_true", help="N = 10, 100 at E = 10,000")
    parser.add_argument("--changes", type=int, default=CHANGES, help="of each kind")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="also write the figures as PNGs")
    args = parser.parse_args(argv)
    hosts = args.hosts or (QUICK_HOSTS if args.quick else HOSTS)
    endpoints = args.endpoints or ((ENDPOINTS[0],) if args.quick else ENDPOINTS)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # etcd inherits it too
    threading.stack_size(512 * 1024)  # thousands of watch threads: less address space each
    print(
        f"\nscale benchmark: N hosts (agent followers, no kernel), E endpoints, E/{MEMBERS}"
        f" security groups of {MEMBERS} members on {SPREAD} hosts each; {args.changes} port"
        " creates, moves and membership changes through the api, one at a time;"
        f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(line(HEADER), flush=True)
    results = []
    for store in args.store:
        for e in endpoints:
            for n in hosts:
                r = run(store, n, e, args.changes)
                results.append(r)
                print(line(row(r)), flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    strays, missed = sum(r.strays for r in results), sum(r.missed for r in results)
    total = sum(len(r.interested) for r in results)
    print(
        f"uninterested hosts: {strays} deliveries for {total} changes (must be 0);"
        f" interested hosts missed: {missed}"
    )
    for r in results:
        if (r.hosts, r.endpoints) == (1000, 100_000):
            p99 = percentile(r.latencies, 99)
            verdict = "met" if p99 <= TARGET_MS else "MISSED"
            print(
                f"target on {r.store}: p99 {p99:.1f} ms at 1,000 hosts / 100,000 endpoints,"
                f" <= {TARGET_MS:.0f} ms: {verdict}"
            )
    if args.plot is not None:
        plot(args.plot, results)
    return 1 if strays or missed else 0


if __name__ == "__main__":
    sys.exit(main())
