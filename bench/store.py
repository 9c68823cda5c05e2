"""Store benchmark: transaction throughput and watch-delivery latency, per backend.

Run with ``make bench``. For each backend (the embedded sqlite file and a real etcd on
loopback, both in a temporary directory) it measures:

- create-if-absent transactions per second from one process, one at a time (the shape
  of an IP claim);
- watch delivery latency: a watcher in another process, a writer pacing puts at a fixed
  rate; latency is from just before the write is issued until the watcher has the event
  (CLOCK_MONOTONIC is system-wide, so both processes read the same clock);
- cross-process watch latency of one change after a quiet spell: a child process writes
  single puts 20-60 ms apart, a watch in this process receives them. This is the shape
  of an agent waiting for the next api change, where a polling watcher has backed off
  to its idle interval.

Everything is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from routeplane.store import Put, Watch, absent, open_store
from routeplane.testing.etcd import EtcdServer

TXN_COUNT = 3000
WATCH_WRITES = 600
WATCH_RATE = 200.0  # writes per second while measuring latency
QUIET_CHANGES = 80
QUIET_GAP = (0.02, 0.06)  # seconds between the single changes


@contextmanager
def backend(name: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="routeplane-bench-") as tmp:
        if name == "sqlite":
            yield f"sqlite://{Path(tmp) / 'store.db'}"
        else:
            with EtcdServer(data_dir=Path(tmp) / "etcd") as server:
                yield server.url


def txn_throughput(url: str) -> float:
    store = open_store(url)
    try:
        for i in range(50):  # warm up connections and caches
            store.txn([absent(f"/bench/warm/{i}")], [Put(f"/bench/warm/{i}", i)])
        started = time.perf_counter()
        for i in range(TXN_COUNT):
            key = f"/bench/claim/10.{i // 65536}.{i // 256 % 256}.{i % 256}"
            store.txn([absent(key)], [Put(key, {"port_id": f"port-{i}"})])
        return TXN_COUNT / (time.perf_counter() - started)
    finally:
        store.close()


def _collect(watch: Watch, count: int) -> list[float]:
    """Milliseconds from each write (its value's ``t``) to its event here, for ``count``
    events or at most a minute."""
    latencies: list[float] = []
    deadline = time.monotonic() + 60
    while len(latencies) < count and time.monotonic() < deadline:
        for event in watch.next_batch(timeout=0.5):
            now = time.monotonic_ns()
            assert isinstance(event.value, dict)
            sent = event.value["t"]
            assert isinstance(sent, int)
            latencies.append((now - sent) / 1e6)
    return latencies


def _watcher(
    url: str,
    count: int,
    ready: multiprocessing.synchronize.Event,
    out: multiprocessing.Queue[list[float]],
) -> None:
    store = open_store(url)
    with store.watch("/bench/watch/") as watch:
        ready.set()
        latencies = _collect(watch, count)
    store.close()
    out.put(latencies)


def watch_latency(url: str) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    out: multiprocessing.Queue[list[float]] = ctx.Queue()
    proc = ctx.Process(target=_watcher, args=(url, WATCH_WRITES, ready, out))
    proc.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("watcher did not start")
        store = open_store(url)
        interval = 1.0 / WATCH_RATE
        next_at = time.monotonic()
        for i in range(WATCH_WRITES):
            next_at += interval
            store.put(f"/bench/watch/{i % 20}", {"t": time.monotonic_ns(), "i": i})
            time.sleep(max(0.0, next_at - time.monotonic()))
        store.close()
        latencies: list[float] = out.get(timeout=60)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    return latencies


def _quiet_writer(url: str, count: int, go: multiprocessing.synchronize.Event) -> None:
    store = open_store(url)
    rng = random.Random(7)
    if go.wait(60):
        for i in range(count):
            time.sleep(rng.uniform(*QUIET_GAP))
            store.put(f"/bench/quiet/{i % 5}", {"t": time.monotonic_ns()})
    store.close()


def quiet_change_latency(url: str) -> list[float]:
    """Milliseconds from a child's write to this process's watch, one change at a time."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    proc = ctx.Process(target=_quiet_writer, args=(url, QUIET_CHANGES, go))
    store = open_store(url)
    latencies: list[float] = []
    try:
        with store.watch("/bench/quiet/") as watch:
            proc.start()
            go.set()
            latencies = _collect(watch, QUIET_CHANGES)
    finally:
        store.close()
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    rows = []
    quiet_rows = []
    for name in ("sqlite", "etcd"):
        with backend(name) as url:
            rate = txn_throughput(url)
            lat = watch_latency(url)
            quiet = quiet_change_latency(url)
        rows.append((name, rate, len(lat), statistics.median(lat), percentile(lat, 99), max(lat)))
        quiet_rows.append(
            (name, len(quiet), statistics.median(quiet), percentile(quiet, 99), max(quiet))
        )
    print(f"store benchmark: {TXN_COUNT} sequential create-if-absent txns from one process;")
    print(f"watch delivery of {WATCH_WRITES} puts at {WATCH_RATE:.0f}/s to another process\n")
    header = ("backend", "txn/s", "events", "watch p50 ms", "p99 ms", "max ms")
    print("{:<8} {:>8} {:>7} {:>13} {:>8} {:>8}".format(*header))
    for name, rate, n, p50, p99, worst in rows:
        print(f"{name:<8} {rate:>8.0f} {n:>7} {p50:>13.2f} {p99:>8.2f} {worst:>8.2f}")
    low, high = (int(s * 1000) for s in QUIET_GAP)
    print(f"\ncross-process watch latency: {QUIET_CHANGES} single puts {low}-{high} ms apart")
    print("from a child process to a watch in this process\n")
    quiet_header = ("backend", "events", "p50 ms", "p99 ms", "max ms")
    print("{:<8} {:>7} {:>8} {:>8} {:>8}".format(*quiet_header))
    for name, n, p50, p99, worst in quiet_rows:
        print(f"{name:<8} {n:>7} {p50:>8.2f} {p99:>8.2f} {worst:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
