"""What ``bench/scale.py`` measured, per cell of the grid, and how it is shown: the
table's columns (one line per cell) and, with ``--plot DIR``, a p99 and sync figure
against N per store (``bench/plots.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api import percentile  # bench/api.py
from scale_sim import Counts

Sent = tuple[dict[str, Any] | None, float, float]


@dataclass
class Result:
    store: str
    hosts: int
    endpoints: int
    setup_s: float = 0.0
    sync_s: float = 0.0
    kb_per_host: float = 0.0
    store_mb: float = 0.0  # etcd's RSS after the changes (0: sqlite, in this process)
    sync_load: Counts = (0, 0, 0, 0, 0)
    change_load: Counts = (0, 0, 0, 0, 0)
    etcd_sync: dict[str, float] = field(default_factory=dict)
    etcd_changes: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    api_ms: list[float] = field(default_factory=list)  # the request alone, per change
    after_api: list[float] = field(default_factory=list)  # from its answer to each host
    api_errors: int = 0
    interested: list[int] = field(default_factory=list)
    changes_s: float = 0.0
    strays: int = 0
    retries: int = 0  # hosts' reads the store failed (timed out), retried as an agent does
    missed: int = 0


# output -----------------------------------------------------------------------------------
HEADER = (
    "store",
    "N",
    "E",
    "setup s",
    "sync s",
    "KB/host",
    "etcd MB",
    "streams",
    "sync MB",
    "req/s",
    "KB/chg",
    "p50 ms",
    "p99 ms",
    "max ms",
    "api p99",
    "after",
    "hosts/chg",
    "ev/chg",
    "stray",
    "retry",
    "5xx",
)
WIDTHS = (6, 5, 8, 7, 7, 8, 7, 7, 8, 6, 7, 7, 7, 7, 7, 6, 9, 6, 5, 5, 4)


def row(r: Result) -> list[str]:
    changes = len(r.interested)
    etcd_sync, etcd_changes = r.etcd_sync, r.etcd_changes
    sync_mb = etcd_sync.get("sent", r.sync_load[4]) / 1e6
    per_change = etcd_changes.get("sent", r.change_load[4]) / changes / 1e3
    requests = etcd_changes.get("requests", 0.0) / r.changes_s if r.changes_s else 0.0
    return [
        r.store,
        f"{r.hosts:,}",
        f"{r.endpoints:,}",
        f"{r.setup_s:.1f}",
        f"{r.sync_s:.2f}",
        f"{r.kb_per_host:.0f}",
        f"{r.store_mb:.0f}" if r.store_mb else "-",
        f"{etcd_sync['streams']:,.0f}" if etcd_sync else f"{r.sync_load[2]:,}",
        f"{sync_mb:.1f}",
        f"{requests:.0f}" if etcd_changes else "-",
        f"{per_change:.1f}",
        f"{percentile(r.latencies, 50):.1f}",
        f"{percentile(r.latencies, 99):.1f}",
        f"{max(r.latencies):.1f}",
        f"{percentile(r.api_ms, 99):.1f}",
        f"{percentile(r.after_api, 99):.1f}",
        f"{sum(r.interested) / changes:.1f}",
        f"{r.change_load[3] / changes:.1f}",
        f"{r.strays}",
        f"{r.retries}",
        f"{r.api_errors}",
    ]


def line(cells: list[str] | tuple[str, ...]) -> str:
    return " ".join(f"{c:>{w}}" for c, w in zip(cells, WIDTHS, strict=True))


def plot(directory: Path, results: list[Result]) -> None:
    from plots import against_n  # bench/plots.py: matplotlib only when asked

    for store in dict.fromkeys(r.store for r in results):
        mine = [r for r in results if r.store == store]
        sizes = sorted({r.hosts for r in mine})
        panels: dict[str, dict[str, list[float]]] = {
            "p99 of a change, ms": {},
            "sync of all hosts, s": {},
        }
        for e in sorted({r.endpoints for r in mine}):
            cells = {r.hosts: r for r in mine if r.endpoints == e}
            if set(cells) != set(sizes):
                continue
            p99 = panels["p99 of a change, ms"]
            p99[f"E={e:,}, request to host"] = [percentile(cells[n].latencies, 99) for n in sizes]
            p99[f"E={e:,}, api answer to host"] = [
                percentile(cells[n].after_api, 99) for n in sizes
            ]
            panels["sync of all hosts, s"][f"E={e:,}"] = [cells[n].sync_s for n in sizes]
        title = f"bench/scale.py on {store}: N simulated hosts"
        path = against_n(directory, f"scale-{store}", title, sizes, panels, xlabel="hosts (N)")
        print(f"plot: {path}")
