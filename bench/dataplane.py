"""Dataplane benchmark: how fast ``LinuxKernel`` programs and reads back a host.

Run with ``make bench`` (needs root; without it, says so and exits 0). For N = 1,000 and
10,000 it builds a fresh ``rp-bench-…`` host namespace with an address of its own (as
every real host has one) and up to ``--max-taps`` taps — veth pairs whose VM ends sit,
up, in a second ``rp-`` namespace, so every tap has carrier once it is up; creating them
is shown but not counted — and measures, through ``LinuxKernel.apply``:

- configuring the taps (6 sysctls each, link up), and configuring them again as a
  restarted agent does (taps already up);
- N permanent neighbours, then N /32 routes (spread over the taps), each as one plan;
- reading back links, routes and neighbours (what a full resync costs);
- one endpoint change (a route and a neighbour added, then removed): median and p99;
- sweeping the N routes and N neighbours;
- for reference, N more routes through ``ip -batch`` in the same namespace.

Why the taps are capped at 2,000 by default: bringing a veth up costs the kernel time
proportional to the interfaces already up (each adds IPv6 link-local and multicast
prefix routes to the same fib6 nodes), ~50 s for 10,000 at once; ``--max-taps 10000``
measures it anyway. And why the host needs an address: a route insert without a
preferred source makes the kernel pick one (``inet_select_addr``), scanning every
interface of a namespace that has no address at all — O(interfaces) per route.
Everything is deleted at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable

from routeplane.dataplane.linux import LinuxKernel
from routeplane.dataplane.model import Neighbour, Outcome, Plan, Route
from routeplane.lab import netns

SIZES = (1000, 10000)
MAX_TAPS = 2000
CHANGES = 200
HOST_ADDRESS = "192.0.2.1/32"  # TEST-NET-1, only ever inside the bench namespace


def address(i: int, base: int = 10) -> str:
    return f"{base}.{i // 62500 % 256}.{i // 250 % 250}.{i % 250 + 1}"


def timed(what: str, fn: Callable[[], Outcome], count: int) -> float:
    started = time.perf_counter()
    outcome = fn()
    elapsed = time.perf_counter() - started
    if not outcome.ok:
        raise RuntimeError(f"{what}: {len(outcome.failed)} failed: {outcome.errors[:3]}")
    print(f"  {what:<44} {elapsed * 1000:>9.1f} ms {count / elapsed:>11,.0f}/s")
    return elapsed


def read(what: str, fn: Callable[[], object], count: int) -> None:
    started = time.perf_counter()
    found = fn()
    elapsed = time.perf_counter() - started
    assert isinstance(found, (set, dict))
    assert len(found) >= count, (what, len(found))
    print(f"  {what:<44} {elapsed * 1000:>9.1f} ms {count / elapsed:>11,.0f}/s")


def make_taps(cleanup: netns.Cleanup, count: int, *, up: bool = False) -> tuple[str, list[str]]:
    """``count`` taps in a new host namespace, their VM ends up in a second one; with
    ``up``, the host ends are up too, as a hypervisor leaves a VM's tap before any agent
    sees it (nova brings the tap up when it plugs the VIF)."""
    host = cleanup.namespace("bench")
    vm = cleanup.namespace("benchvm")
    netns.ip(host, "address", "add", HOST_ADDRESS, "dev", "lo")
    taps = [f"tap{i:011d}" for i in range(count)]
    started = time.perf_counter()
    lines = "".join(f"link add {t} type veth peer name v{t[3:]} netns {vm}\n" for t in taps)
    netns.ip(host, "-force", "-batch", "-", input=lines, timeout=600)
    ups = "".join(f"link set v{t[3:]} up\n" for t in taps)
    netns.ip(vm, "-force", "-batch", "-", input=ups, timeout=600)
    if up:
        host_ups = "".join(f"link set {t} up\n" for t in taps)
        netns.ip(host, "-force", "-batch", "-", input=host_ups, timeout=600)
        settle(host, vm)
    print(f"  (setup: {count} veth pairs in {time.perf_counter() - started:.1f} s, not counted)")
    return host, taps


def settle(*namespaces: str, limit: float = 60.0) -> None:
    """Wait until the kernel is done with the interfaces just brought up: thousands of
    IPv6 link-local addresses in duplicate address detection keep its workers busy for
    seconds, which would be measured as the agent's time. (A real host's taps come up
    one VM at a time.)"""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not any(netns.ip(ns, "-6", "address", "show", "tentative").strip() for ns in namespaces):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # and the multicast reports that follow


def cpu_idle_share(interval: float = 0.5) -> float:
    """How idle the machine's CPUs were over ``interval`` (from /proc/stat)."""

    def sample() -> list[int]:
        with open("/proc/stat", encoding="ascii") as stat:
            return [int(v) for v in stat.readline().split()[1:9]]

    before = sample()
    time.sleep(interval)
    delta = [b - a for a, b in zip(before, sample(), strict=True)]
    return delta[3] / max(1, sum(delta))


def wait_idle(limit: float = 120.0) -> None:
    """Wait (bounded) until the kernel has finished tearing down an earlier run's
    namespaces: deleting thousands of veths keeps a kernel worker busy for tens of
    seconds, which would otherwise be measured as the next run's time."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and cpu_idle_share() < 0.9:
        pass


def one_size(n: int, max_taps: int) -> None:
    tap_count = min(n, max_taps)
    capped = " (capped: see --max-taps)" if tap_count < n else ""
    print(f"\nN = {n:,}: {tap_count:,} taps{capped}, {n:,} neighbours, {n:,} IPv4 /32 routes")
    with netns.Cleanup() as cleanup:
        host, taps = make_taps(cleanup, tap_count)
        kernel = LinuxKernel(host)
        cleanup.add("close kernel", kernel.close)
        assert kernel.prepare_host().ok
        routes = tuple(Route(address(i), taps[i % tap_count]) for i in range(n))
        neighbours = tuple(
            Neighbour(r.address, r.interface, f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}")
            for i, r in enumerate(routes)
        )  # fmt: skip
        configure = Plan(configure=tuple(taps))
        total = timed(
            "configure taps (sysctls + link up)", lambda: kernel.apply(configure), tap_count
        )
        total += timed("neighbours set", lambda: kernel.apply(Plan(neighbours_set=neighbours)), n)
        total += timed("routes set", lambda: kernel.apply(Plan(routes_set=routes)), n)
        print(f"  {'cold programming, total':<44} {total * 1000:>9.1f} ms")
        timed(
            "configure again (a restart: taps up already)",
            lambda: kernel.apply(configure),
            tap_count,
        )
        read("read back links", kernel.links, tap_count)
        read("read back routes", kernel.routes, n)
        read("read back neighbours", kernel.neighbours, n)

        latencies = []
        for i in range(CHANGES):
            route = Route(address(i, base=11), taps[i % tap_count])
            neighbour = Neighbour(route.address, route.interface, "fa:16:3e:ff:ff:ff")
            started = time.perf_counter()
            outcome = kernel.apply(Plan(neighbours_set=(neighbour,), routes_set=(route,)))
            latencies.append(time.perf_counter() - started)
            assert outcome.ok, outcome.errors
            assert kernel.apply(Plan(routes_del=(route,), neighbours_del=(neighbour,))).ok
        latencies.sort()
        p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99)]
        print(
            f"  {'one change (route + neighbour), p50 / p99':<44} {p50 * 1000:>9.2f} ms / {p99 * 1000:.2f} ms"
        )

        timed("sweep: routes del", lambda: kernel.apply(Plan(routes_del=routes)), n)
        timed("sweep: neighbours del", lambda: kernel.apply(Plan(neighbours_del=neighbours)), n)

        lines = "".join(
            f"route replace {address(i, 12)}/32 dev {taps[i % tap_count]} scope link proto 77\n"
            for i in range(n)
        )
        started = time.perf_counter()
        netns.ip(host, "-force", "-batch", "-", input=lines, timeout=600)
        elapsed = time.perf_counter() - started
        print(
            f"  {'reference: N more routes via ip -batch':<44} {elapsed * 1000:>9.1f} ms {n / elapsed:>11,.0f}/s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--max-taps", type=int, default=MAX_TAPS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("dataplane benchmark: needs root (network namespaces); skipped")
        return 0
    print("dataplane benchmark: LinuxKernel.apply in a fresh rp- namespace per size")
    for n in args.sizes:
        one_size(n, args.max_taps)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
