"""Where a failover's time goes: bench/failover.py's phase breakdown (``--phases``).

One failover crosses several processes and namespaces, so no single clock inside
routeplane sees all of it. The bench watches from outside, each observer timestamping
with the wall clock (``time.time()``; the prober's monotonic times are converted with
the offset taken at the kill):

- the store (a follower of ``health/`` and ``service_ips/`` in the bench's process): the
  old port's failed health record (its ``checked_at`` is the checker's own wall clock
  when it wrote it), the new port's move hint (``moved_at``: the controller's clock as it
  built the move) and the service IP document naming the new port (when the bench
  received it);
- the kernel (``ip -ts monitor route`` in each host's namespace and in the access node):
  the first change of the service IP's route on the new host, on the old host, and the
  access node's route to the new host (BIRD installed what BGP told it);
- the prober: the new VM's first answer.

Phases of one failover, each from the kill: ``detect`` (the checker wrote "failed"),
``decided`` (the controller built the move), ``moved`` (the move's transaction was seen), ``new host`` / ``old host`` (their kernels
changed), ``access`` (the access node routes to the new host), ``answer``. For keepalived:
``detect`` (its checker's verdict file changed), ``address`` (the new master added the
address), ``answer``. The observers cost a few processes that sleep in ``recv``; the
figures with and without ``--phases`` are the same within the noise of this machine.

Bounded: the monitors are this process's children, stopped (SIGTERM, then SIGKILL) by
``close``; the store follower is closed there too.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import subprocess
import threading
import time
from datetime import datetime
from typing import Any, ClassVar

from routeplane.lab import netns
from routeplane.store import EventType, Store
from routeplane.store.watcher import Follower, Snapshot
from vrrp import stop_child  # bench/vrrp.py

HEALTH = "/routeplane/v1/health/"
SERVICE_IPS = "/routeplane/v1/service_ips/"
PORTS = "/routeplane/v1/ports/"


def _stamp(text: str) -> float | None:
    """The wall-clock time of an ``ip -ts`` line (``[2026-12-08T03:10:04.123456] …``)."""
    if not text.startswith("["):
        return None
    with contextlib.suppress(ValueError):
        return datetime.strptime(text[1 : text.index("]")], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    return None


class Monitor:
    """``ip -ts monitor OBJECT`` in a namespace: the lines naming ``address``, stamped."""

    def __init__(self, namespace: str, obj: str, address: str) -> None:
        command = ["ip", "netns", "exec", netns.check(namespace), "ip", "-ts", "monitor", obj]
        self.pattern = re.compile(rf"(?<![\d.]){re.escape(address)}(?![\d])")
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            at = _stamp(line)
            if at is not None and self.pattern.search(line[line.index("]") + 1 :]):
                with self._lock:
                    self.lines.append((at, line.strip()))

    def first(self, after: float, *, added: bool = True, having: str = "") -> float | None:
        """The first line after ``after`` (``added``: not a deletion; containing ``having``)."""
        with self._lock:
            for at, line in self.lines:
                if at < after or (added and "Deleted" in line) or having not in line:
                    continue
                return at
        return None

    def close(self) -> None:
        stop_child(self.process)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


class StoreLog:
    """The store's health records and service IP documents as the bench receives them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.health = Follower(store, HEALTH)
        self.sips = Follower(store, SERVICE_IPS)
        self.events: list[tuple[float, str, Any]] = []  # (received, key, value or None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for follower, wait in ((self.sips, 0.0), (self.health, 0.01)):
                got = follower.poll(wait)
                if isinstance(got, Snapshot):
                    continue  # the state before anything was measured
                at = time.time()
                with self._lock:
                    for event in got:
                        value = event.value if event.type is EventType.PUT else None
                        self.events.append((at, event.key, value))

    def failed_at(self, port_id: str, after: float) -> float | None:
        """The ``checked_at`` of the port's first "failed" record written after ``after``."""
        with self._lock:
            for _, k, value in self.events:
                if not k.startswith(HEALTH) or not k.endswith(f"/{port_id}"):
                    continue
                if isinstance(value, dict) and value.get("healthy") is False:
                    checked = float(value.get("checked_at", 0.0))
                    if checked >= after:
                        return checked
        return None

    def decided_at(self, port_id: str, after: float) -> float | None:
        """When the controller built the move to ``port_id`` (the move hint's ``moved_at``
        in the port's document: the controller's clock, before its transaction)."""
        kv = self.store.get(f"{PORTS}{port_id}")
        port: Any = None if kv is None else kv.value
        hints = ((port or {}).get("_moves") or {}).get("in") or {}
        at = max((float(h.get("moved_at", 0.0)) for h in hints.values()), default=0.0)
        return at if at >= after else None

    def moved_at(self, port_id: str, after: float) -> float | None:
        """When the bench received the service IP naming ``port_id`` active."""
        with self._lock:
            for at, k, value in self.events:
                if at < after or not k.startswith(SERVICE_IPS) or not isinstance(value, dict):
                    continue
                if value.get("active_port_id") == port_id:
                    return at
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.health.close()
        self.sips.close()


class Phases:
    """Per round, each phase's time from the kill (s; None: not seen). ``names``: each
    phase with the one its step is measured from (None: the kill)."""

    def __init__(self, names: list[tuple[str, str | None]]) -> None:
        self.names = names
        self.rounds: list[dict[str, float | None]] = []

    def add(self, killed: float, seen: dict[str, float | None]) -> None:
        self.rounds.append(
            {n: None if (at := seen.get(n)) is None else at - killed for n, _ in self.names}
        )

    def line(self, index: int) -> str:
        got = self.rounds[index]
        return ", ".join(
            f"{n} {'-' if (v := got[n]) is None else f'{v * 1000:.0f}'}" for n, _ in self.names
        )

    def _pairs(self, name: str, since: str | None) -> list[tuple[float, float]]:
        """Per round where both were seen: the phase's time and its step's start."""
        found = []
        for r in self.rounds:
            at, start = r[name], 0.0 if since is None else r[since]
            if at is not None and start is not None:
                found.append((at, start))
        return found

    def table(self) -> list[str]:
        """p50 / p99 / max of each phase from the kill, and the p50 of its step."""
        lines = [f"{'phase, ms from the kill':24} {'p50':>6} {'p99':>6} {'max':>6}   step p50 from"]
        for name, since in self.names:
            values = sorted(v * 1000 for r in self.rounds if (v := r[name]) is not None)
            if not values:
                lines.append(f"{name:24} {'-':>6}")
                continue
            steps = [(v - b) * 1000 for v, b in self._pairs(name, since)] or [float("nan")]
            p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
            lines.append(
                f"{name:24} {statistics.median(values):6.0f} {p99:6.0f} {values[-1]:6.0f}"
                f"   {statistics.median(steps):7.1f}  {since or 'the kill'}"
            )
        return lines


class RouteplaneWatch:
    """Every observer of one routeplane failover: the store, both hosts, the access node,
    the VMs' addresses."""

    NAMES: ClassVar[list[tuple[str, str | None]]] = [
        ("detect", None),
        ("decided", "detect"),
        ("moved", "decided"),
        ("new host route", "moved"),
        ("access route", "new host route"),
        ("guest address", "moved"),
        ("old host route", "moved"),
        ("answer", "access route"),
    ]

    def __init__(
        self, store: Store, address: str, access: str, hosts: dict[str, str], vms: dict[str, str]
    ) -> None:
        """``hosts``: host namespace by VM name; ``vms``: VM namespace by VM name."""
        self.store_log = StoreLog(store)
        self.access = Monitor(access, "route", address)
        self.hosts = {vm: Monitor(ns, "route", address) for vm, ns in hosts.items()}
        self.vms = {vm: Monitor(ns, "address", address) for vm, ns in vms.items()}
        self.phases = Phases(self.NAMES)

    def record(
        self,
        killed: float,
        answered: float | None,
        *,
        old: str,
        new: str,
        ports: dict[str, str],
        new_hop: str,
    ) -> None:
        """One failover from ``old`` to ``new`` (VM names; ``ports``: port id by VM name;
        ``new_hop``: the new host's fabric address, the access node's next hop)."""
        moved = self.store_log.moved_at(ports[new], killed)
        self.phases.add(
            killed,
            {
                "detect": self.store_log.failed_at(ports[old], killed),
                "decided": self.store_log.decided_at(ports[new], killed),
                "moved": moved,
                "new host route": self.hosts[new].first(killed, having="proto 77"),
                "access route": self.access.first(killed, having=f"via {new_hop} "),
                "guest address": self.vms[new].first(killed),
                "old host route": self.hosts[old].first(killed, added=False),
                "answer": answered,
            },
        )

    def close(self) -> None:
        self.store_log.close()
        for monitor in [self.access, *self.hosts.values(), *self.vms.values()]:
            monitor.close()


__all__ = ["Monitor", "Phases", "RouteplaneWatch", "StoreLog"]
