"""Agent benchmark: cold start for N endpoints, and the latency of one change, at each N.

Run with ``make bench`` (as root). A host namespace with N taps (veth pairs whose VM ends
sit in a second namespace), N endpoint records of two addresses each (current records
and their security-group member index entries, as the api writes them) written to an embedded store, all in security group ``default`` with Neutron's default rules (ingress
from the group's own members — a remote-group set of 2·N addresses — and egress to
anywhere), then ``routeplane agent --netns`` started as its own process, with its
nftables policy on:

- cold start: from starting the agent (a new process: its imports count) until it has
  reported every endpoint programmed (all status keys written, as seen by a watch: the
  policy is in place before any route), and the agent process's peak RSS (VmHWM);
- one change: a third address added to one endpoint's record, until the agent has
  reported that revision (store write → watch → policy: anti-spoofing and remote-group
  set elements → diff → netlink → status write), p50/p99; at the end the last address
  added must be in the kernel's remote-group set (the policy was really programmed).

Taps are capped (``MAX_TAPS``): bringing up ~10,000 interfaces in one namespace takes the
kernel itself about a minute on this machine (see bench/dataplane.py); the endpoint count
is N regardless, sharing taps (at N = 10,000 five endpoints to a tap, and a change to one
re-derives all five). The agent learns of a write by another process from the embedded
store's poller (every 2-10 ms): that wait is part of every change's latency. Bounded;
everything is removed afterwards.

``--compare-metrics`` measures what the metrics cost (issue #18: within 5%): the same
sizes with the agent's ``--metrics-listen`` off and on, alternating, ``--runs`` times
each; with it on, ``/metrics`` is scraped every half second throughout (far more often
than a Prometheus would), so the scrapes' own cost is in the figures too.

``--plot DIR``: also ``DIR/agent.png`` (cold start, and a change's p50 and p99, against
N; with ``--compare-metrics`` ``DIR/agent-metrics.png``, metrics off beside on).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from dataplane import make_taps, wait_idle  # bench/dataplane.py
from procstat import cpu_seconds  # bench/procstat.py
from routeplane.lab import netns
from routeplane.model.endpoint import decode, encode
from routeplane.model.jsontypes import JSONObject, JSONValue
from routeplane.model.members import record_entries
from routeplane.store import Op, Put
from routeplane.store.sqlite import SqliteStore

SIZES = (1000, 10000)
MAX_TAPS = 2000
CHANGES = 50
ROOT = "/routeplane/v1/"


def default_group() -> JSONObject:
    """Neutron's default security group: members reach each other, egress is open."""
    rules: list[JSONValue] = [
        {"direction": direction, "ethertype": ethertype, "protocol": None,
         "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
         "remote_group_id": "default" if direction == "ingress" else None}
        for direction in ("ingress", "egress") for ethertype in ("IPv4", "IPv6")
    ]  # fmt: skip
    rules.append(
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
         "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": None}
    )  # fmt: skip
    return {"id": "default", "security_group_rules": rules}


def in_group_set(host: str, address: str) -> bool:
    """Whether the kernel's remote-group set of ``default`` holds ``address``."""
    element = ["inet", "routeplane", "rg4-default", f"{{ {address} }}"]
    try:
        netns.exec_in(host, "nft", "get", "element", *element)
    except netns.LabError:
        return False
    return True


def record(i: int, tap: str, extra: int = 0) -> JSONObject:
    fixed: list[JSONValue] = [f"10.{20 + i // 65536}.{i // 256 % 256}.{i % 256}", f"fd00::{i:x}"]
    if extra:
        fixed.append(f"10.99.{extra // 256 % 256}.{extra % 256}")
    written: JSONObject = {
        "port_id": f"port{i:06d}", "interface": tap, "mac_address": f"fa:16:3e:00:{i >> 8 & 255:02x}:{i & 255:02x}",
        "admin_state_up": True, "fixed_ips": fixed, "allowed_addresses": [], "floating_ips": [],
        "security_groups": ["default"], "port_revision": 1 + extra,
    }  # fmt: skip
    return encode(decode(written))  # a current record (every field, ``version``), as the api writes


def with_index(i: int, value: JSONObject) -> list[Op]:
    """An endpoint record and its member index entries, as the api writes them: in one
    transaction."""
    port = f"port{i:06d}"
    entries = record_entries(port, decode(value))
    return [Put(f"{ROOT}endpoints/node1/{port}", value), *(Put(k, v) for k, v in entries.items())]


def programmed(store: SqliteStore) -> int:
    return len(store.range(f"{ROOT}status/node1/").items)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape_until(port: int, stop: threading.Event, every: float = 0.5) -> list[int]:
    """Scrape the agent's /metrics every ``every`` seconds until ``stop``: the sizes."""
    sizes: list[int] = []
    while not stop.wait(every):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                sizes.append(len(answer.read()))
        except OSError:
            continue
    return sizes


def one_size(
    n: int, metrics_port: int | None = None
) -> tuple[int, int, float, float, float, float, float, float]:
    """N, taps, cold start s, peak RSS MB, change p50 and p99 ms, and the agent's CPU
    seconds for the cold start and CPU milliseconds per change."""
    tap_count = min(n, MAX_TAPS)
    with (
        netns.Cleanup() as cleanup,
        tempfile.TemporaryDirectory(prefix="routeplane-bench-agent-") as tmp,
    ):
        host, taps = make_taps(cleanup, tap_count, up=True)
        url = f"sqlite://{Path(tmp) / 'store.db'}"
        store = SqliteStore(Path(tmp) / "store.db")
        store.put(f"{ROOT}security_groups/default", default_group())
        for start in range(0, n, 50):
            ops = [
                op
                for i in range(start, min(n, start + 50))
                for op in with_index(i, record(i, taps[i % tap_count]))
            ]
            store.txn([], ops)
        wait_idle()  # nothing else running: not even the last run's teardown
        # the bench learns of each status key from a watch (inotify-woken, under a
        # millisecond), not by reading all N of them over and over while the agent works
        reported = store.watch(f"{ROOT}status/node1/")
        started = time.perf_counter()
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "routeplane.cli.main",
                "--store",
                url,
                "agent",
                "--host",
                "node1",
                "--netns",
                host,
                *(["--metrics-listen", f"127.0.0.1:{metrics_port}"] if metrics_port else []),
            ]
        )
        stop_scraping = threading.Event()
        scrapes: list[int] = []
        if metrics_port:
            scraper = threading.Thread(
                target=lambda: scrapes.extend(scrape_until(metrics_port, stop_scraping))
            )
            scraper.start()
        try:
            deadline = time.monotonic() + 300
            seen: set[str] = set()
            while len(seen) < n and time.monotonic() < deadline:
                seen.update(e.key for e in reported.next_batch(timeout=0.5) if e.value is not None)
            cold = time.perf_counter() - started
            cpu_cold = cpu_seconds(agent.pid)
            reported.close()
            assert programmed(store) == n, "the agent did not program every endpoint"
            latencies = []
            for change in range(1, CHANGES + 1):
                i = (change * 7919) % n
                key = f"{ROOT}status/node1/port{i:06d}"
                began = time.perf_counter()
                store.txn([], with_index(i, record(i, taps[i % tap_count], extra=change)))
                while (kv := store.get(key)) is None or kv.value != {"port_revision": 1 + change}:
                    time.sleep(0.0002)
                latencies.append((time.perf_counter() - began) * 1000)
            rss = peak_rss_mb(agent.pid)
            cpu_change = (cpu_seconds(agent.pid) - cpu_cold) / CHANGES * 1000
            last = record(0, "", extra=CHANGES)["fixed_ips"]
            assert isinstance(last, list)
            assert in_group_set(host, str(last[-1])), "the policy was not programmed"
        finally:
            stop_scraping.set()
            if metrics_port:
                scraper.join()
                assert scrapes, "the agent's /metrics never answered"
            agent.terminate()
            agent.wait(timeout=30)
            store.close()
    ordered = sorted(latencies)
    return (
        n,
        tap_count,
        cold,
        rss,
        statistics.median(latencies),
        ordered[int(0.99 * (len(ordered) - 1))],
        cpu_cold,
        cpu_change,
    )


def compare_metrics(sizes: list[int], runs: int, plot_dir: Path | None) -> int:
    """Cold start and one change with the metrics listener off and on, alternating."""
    from routeplane.testing.api import free_port

    results: dict[tuple[int, bool], list[tuple[float, ...]]] = {}
    for _ in range(runs):
        for n in sizes:
            for on in (False, True):
                _, _, cold, _, p50, p99, cpu_cold, cpu_change = one_size(
                    n, free_port() if on else None
                )
                results.setdefault((n, on), []).append((cold, p50, p99, cpu_cold, cpu_change))
    medians: dict[tuple[int, bool], tuple[float, ...]] = {}
    print(
        f"\nagent benchmark, metrics off vs on ({runs} runs each, medians; on: scraped every 0.5 s)"
    )
    print("(CPU: the agent's own user+system time, children included: what a busy machine")
    print(" disturbs least)")
    print(
        "{:>7} {:>8} {:>14} {:>14} {:>10} {:>12} {:>14}".format(
            "N", "metrics", "cold start s", "change p50 ms", "p99 ms", "cold CPU s", "CPU/change ms"
        )
    )
    for n in sizes:
        for on in (False, True):
            rows = results[(n, on)]
            medians[n, on] = tuple(statistics.median(r[k] for r in rows) for k in range(5))
            cold, p50, p99, cpu_cold, cpu_change = medians[n, on]
            print(
                f"{n:>7,} {'on' if on else 'off':>8} {cold:>14.2f} {p50:>14.2f} {p99:>10.2f}"
                f" {cpu_cold:>12.2f} {cpu_change:>14.2f}"
            )
        ratio = [medians[n, True][k] / medians[n, False][k] - 1 for k in range(5)]
        print(
            f"{n:>7,} {'on/off':>8} {ratio[0]:>+13.1%} {ratio[1]:>+13.1%} {ratio[2]:>+9.1%}"
            f" {ratio[3]:>+11.1%} {ratio[4]:>+13.1%}"
        )
    if plot_dir is not None:
        named = {"metrics off": False, "metrics on": True}
        plot(
            plot_dir,
            "agent-metrics",
            f"agent: metrics off vs on (medians of {runs} runs; on: scraped every 0.5 s)",
            sizes,
            cold={label: [medians[n, on][0] for n in sizes] for label, on in named.items()},
            change={
                f"{label}, {which}": [medians[n, on][k] for n in sizes]
                for label, on in named.items()
                for which, k in (("p50", 1), ("p99", 2))
            },
        )
    return 0


def plot(
    directory: Path,
    name: str,
    title: str,
    sizes: list[int],
    *,
    cold: dict[str, list[float]],
    change: dict[str, list[float]],
) -> None:
    from plots import against_n  # bench/plots.py: matplotlib only when asked

    panels = {"cold start (s)": cold, "one change (ms)": change}
    print(f"plot: {against_n(directory, name, title, sizes, panels)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--compare-metrics", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plot", type=Path, metavar="DIR", help="also write the figures as PNGs")
    args = parser.parse_args(argv)
    if args.compare_metrics:
        return compare_metrics(args.sizes, args.runs, args.plot)
    rows = [one_size(n) for n in args.sizes]
    print(
        "\nagent benchmark: cold start of N endpoints (2 addresses each, security group with"
        " a remote-group rule, nftables policy on) and one change at each N"
    )
    print(
        "{:>7} {:>6} {:>14} {:>12} {:>14} {:>10}".format(
            "N", "taps", "cold start s", "peak RSS MB", "change p50 ms", "p99 ms"
        )
    )
    for n, taps, cold, rss, p50, p99, _, _ in rows:
        print(f"{n:>7,} {taps:>6,} {cold:>14.2f} {rss:>12.1f} {p50:>14.2f} {p99:>10.2f}")
    if args.plot is not None:
        plot(
            args.plot,
            "agent",
            "agent: cold start of N endpoints and one change at each N (nftables policy on)",
            [row[0] for row in rows],
            cold={"cold start": [row[2] for row in rows]},
            change={"p50": [row[4] for row in rows], "p99": [row[5] for row in rows]},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
