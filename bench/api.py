"""API benchmark: the service-IP move latency and port throughput, per store backend.

Run with ``make bench``. One ``routeplane api`` process per backend (embedded sqlite, and
a real etcd on loopback), driven over HTTP with keep-alive from this process:

- fixed-IP update latency: ``PUT /v2.0/ports/{id}`` that adds a service IP, then one
  that removes it again (the walkthrough's move), one request at a time;
- port create, update and delete throughput with 4 client threads;
- on etcd, the store round trips one fixed-IP PUT and one port create cost (the api's
  ``routeplane_api_store_round_trips_total``, read before and after).

``--etcd-members 3`` runs etcd as a 3-member cluster on loopback (what a deployment pays:
a write is committed on a majority of members); ``--apis 2`` starts two api processes on
the same store (every backend, so the rows compare like with like) and spreads the client
threads over them; the latency runs go to the first.

``--compare-metrics`` measures what the metrics cost (issue #18: within 5%): the same runs
with the api's ``--metrics-listen`` off and on, alternating, ``--runs`` times each; with it
on, ``/metrics`` is scraped every half second throughout (far more often than a Prometheus
would), so the scrapes' own cost is in the figures too.

Bounded in count; everything it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from procstat import cpu_seconds  # bench/procstat.py
from routeplane.testing.api import ApiServer
from routeplane.testing.etcd import EtcdServer
from routeplane.testing.etcd_cluster import EtcdCluster

MOVES = 300
PORTS = 1200
THREADS = 4


@dataclass(frozen=True)
class Setup:
    """Where the benchmark runs: etcd's members (1: a single server) and api processes."""

    etcd_members: int = 1
    apis: int = 1


@contextmanager
def apis_on(
    backend: str, setup: Setup, metrics: bool = True, scrape: bool = False
) -> Iterator[list[ApiServer]]:
    """``setup.apis`` apis on one ``backend`` store; ``scrape``: the first's ``/metrics``
    fetched every half second meanwhile."""
    with tempfile.TemporaryDirectory(prefix="routeplane-bench-api-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        if backend == "sqlite":
            url = f"sqlite://{work / 'store.db'}"
        elif setup.etcd_members > 1:
            url = stack.enter_context(EtcdCluster(setup.etcd_members, work / "etcd")).url
        else:
            url = stack.enter_context(EtcdServer(data_dir=work / "etcd")).url
        servers = [
            stack.enter_context(ApiServer(url, workdir=work, metrics=metrics))
            for _ in range(setup.apis)
        ]
        stack.enter_context(scraped(servers[0] if scrape else None))
        yield servers


@contextmanager
def scraped(server: ApiServer | None) -> Iterator[None]:
    """``server``'s ``/metrics`` fetched every half second while the block runs."""
    if server is None:
        yield
        return
    done = threading.Event()

    def scrape() -> None:
        with httpx.Client(timeout=5) as http:
            while not done.wait(0.5):
                http.get(server.metrics_url).raise_for_status()

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def client(server: ApiServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"X-Auth-Token": server.admin_token}, timeout=30
    )


def ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json() if response.content else {}


def round_trips(servers: list[ApiServer]) -> float:
    """The apis' store round trips so far, summed (NaN on the embedded store, which has
    none, and when the apis serve no metrics)."""
    total = 0.0
    for server in servers:
        if server.metrics_port is None:
            return math.nan
        lines = httpx.get(server.metrics_url, timeout=10).text.splitlines()
        found = [
            line for line in lines if line.startswith("routeplane_api_store_round_trips_total ")
        ]
        total += float(found[0].split()[1]) if found else math.nan
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def setup(http: httpx.Client) -> tuple[str, str]:
    network = ok(http.post("/v2.0/networks", json={"network": {"name": "bench"}}))["network"]
    net = network["id"]
    # Room for every port, yet a limit, so each create is checked against the quota.
    quota = {"quota": {"port": PORTS * 2}}
    ok(http.put(f"/v2.0/quotas/{network['project_id']}", json=quota))
    body = {"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.60.0.0/16"}}
    subnet = ok(http.post("/v2.0/subnets", json=body))["subnet"]["id"]
    return net, subnet


def move_latency(http: httpx.Client, net: str, subnet: str) -> list[float]:
    port = ok(
        http.post("/v2.0/ports", json={"port": {"network_id": net, "binding:host_id": "node1"}})
    )["port"]
    base = port["fixed_ips"]
    with_service = [*base, {"subnet_id": subnet, "ip_address": "10.60.200.23"}]
    latencies = []
    for i in range(MOVES):
        wanted = with_service if i % 2 == 0 else base
        started = time.perf_counter()
        ok(http.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": wanted}}))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def throughput(
    servers: list[ApiServer], work: Callable[[httpx.Client, int], Any], count: int
) -> float:
    """Requests per second of ``work`` by :data:`THREADS` threads, spread over ``servers``."""
    clients = [client(servers[i % len(servers)]) for i in range(THREADS)]
    per_thread = count // THREADS

    def run(index: int) -> None:
        for i in range(per_thread):
            work(clients[index], index * per_thread + i)

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(run, range(THREADS)))
    elapsed = time.perf_counter() - started
    for c in clients:
        c.close()
    return per_thread * THREADS / elapsed


def cpu_seconds_of(servers: list[ApiServer]) -> float:
    """The api processes' CPU time, together."""
    return sum(cpu_seconds(server.pid) for server in servers)


def measure(
    backend: str, where: Setup, metrics: bool = True, scrape: bool = False
) -> dict[str, float]:
    with apis_on(backend, where, metrics, scrape) as servers, client(servers[0]) as http:
        net, _subnet = setup(http)
        before, cpu_before = round_trips(servers), cpu_seconds_of(servers)
        latencies = move_latency(http, net, _subnet)
        put_trips = (round_trips(servers) - before) / MOVES
        put_cpu = (cpu_seconds_of(servers) - cpu_before) / MOVES * 1000
        created: dict[int, str] = {}

        def create(c: httpx.Client, i: int) -> None:
            body = {"port": {"network_id": net, "name": f"p{i}", "binding:host_id": f"node{i % 8}"}}
            created[i] = ok(c.post("/v2.0/ports", json=body))["port"]["id"]

        def update(c: httpx.Client, i: int) -> None:
            ok(c.put(f"/v2.0/ports/{created[i]}", json={"port": {"name": f"renamed{i}"}}))

        def delete(c: httpx.Client, i: int) -> None:
            response = c.delete(f"/v2.0/ports/{created[i]}")
            if response.status_code != 204:
                raise RuntimeError(response.text)

        before, cpu_before = round_trips(servers), cpu_seconds_of(servers)
        creates = throughput(servers, create, PORTS)
        create_trips = (round_trips(servers) - before) / PORTS
        create_cpu = (cpu_seconds_of(servers) - cpu_before) / PORTS * 1000
        return {
            "p50": statistics.median(latencies),
            "p99": percentile(latencies, 99),
            "put trips": put_trips,
            "put cpu": put_cpu,
            "create cpu": create_cpu,
            "create": creates,
            "create trips": create_trips,
            "update": throughput(servers, update, PORTS),
            "delete": throughput(servers, delete, PORTS),
        }


COLUMNS = ("p50", "p99", "create", "update", "delete", "put cpu", "create cpu")


def compare_metrics(backends: list[str], runs: int, where: Setup) -> int:
    """Every figure with the metrics listener off and on, alternating; medians of ``runs``."""
    results: dict[tuple[str, bool], list[dict[str, float]]] = {}
    for _ in range(runs):
        for backend in backends:
            for on in (False, True):
                results.setdefault((backend, on), []).append(measure(backend, where, on, scrape=on))
    print(f"api benchmark, metrics off vs on ({runs} runs each, medians; on: scraped every 0.5 s)")
    print("(CPU: the api process's own user+system time per request: what a busy machine")
    print(" disturbs least)")
    header = ("backend", "metrics", "PUT p50 ms", "p99 ms", "create/s", "update/s", "delete/s")
    print(
        "{:<8} {:>7} {:>11} {:>8} {:>9} {:>9} {:>9} {:>12} {:>15}".format(
            *header, "PUT CPU ms", "create CPU ms"
        )
    )
    for backend in backends:
        medians = {
            on: {k: statistics.median(r[k] for r in results[backend, on]) for k in COLUMNS}
            for on in (False, True)
        }
        for on in (False, True):
            m = medians[on]
            print(
                f"{backend:<8} {'on' if on else 'off':>7} {m['p50']:>11.2f} {m['p99']:>8.2f} "
                f"{m['create']:>9.0f} {m['update']:>9.0f} {m['delete']:>9.0f}"
                f" {m['put cpu']:>12.2f} {m['create cpu']:>15.2f}"
            )
        # the cost, higher is worse: latencies on/off - 1, rates off/on - 1
        cost = [
            medians[True][k] / medians[False][k] - 1
            if k in ("p50", "p99", "put cpu", "create cpu")
            else medians[False][k] / medians[True][k] - 1
            for k in COLUMNS
        ]
        widths = (11, 8, 9, 9, 9, 12, 15)
        cells = " ".join(f"{c:>+{w}.1%}" for c, w in zip(cost, widths, strict=True))
        print(f"{backend:<8} {'cost':>7} {cells}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--compare-metrics", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "etcd"])
    parser.add_argument("--etcd-members", type=int, default=1, help="3: a loopback cluster")
    parser.add_argument("--apis", type=int, default=1, help="api processes on one store")
    args = parser.parse_args(argv)
    where = Setup(args.etcd_members, args.apis)
    if args.compare_metrics:
        return compare_metrics(args.backends, args.runs, where)
    rows = [(backend, measure(backend, where)) for backend in args.backends]
    print(f"api benchmark: {MOVES} sequential PUT fixed_ips (add/remove a service IP);")
    print(
        f"{PORTS} ports created, renamed and deleted by {THREADS} client threads over "
        f"{where.apis} api process(es); etcd: {where.etcd_members} member(s)\n"
    )
    header = ("backend", "PUT p50 ms", "p99 ms", "trips", "create/s", "trips")
    print(
        "{:<8} {:>11} {:>8} {:>6} {:>9} {:>6} {:>9} {:>9}".format(*header, "update/s", "delete/s")
    )
    for backend, r in rows:
        print(
            f"{backend:<8} {r['p50']:>11.2f} {r['p99']:>8.2f} {r['put trips']:>6.1f} "
            f"{r['create']:>9.0f} {r['create trips']:>6.1f} {r['update']:>9.0f} {r['delete']:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
