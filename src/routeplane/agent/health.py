"""Health checks of the service IPs' ports on this host, reported to the store.

The controller decides failovers (``controller.failover``); this is its eyes. The agent
follows every service IP with a ``health_check`` and its own host's endpoint records; for
each port of a service IP (active, primary, standbys) bound to this host it probes the
VM behind it — at the VM's own first fixed address, not the service IP, so standbys that
do not hold the address are checked too — every ``interval`` seconds, with a TCP connect
to ``port`` or an HTTP GET of ``path``, and writes::

    health/<host>/<service_ip_id>/<port_id> =
        {"healthy": bool, "checked_at": <epoch seconds>, "consecutive_failures": n}

``healthy`` turns false when ``consecutive_failures`` reaches ``failure_threshold``. A
record is rewritten whenever it changes and at least every ``heartbeat`` seconds, so the
controller can tell a silent checker (stale) from a healthy one; records of ports this
host no longer has, or of service IPs that are gone, are deleted — but only once this
process has read both its endpoint records and the service IPs: a restarted agent that
swept on an empty view would delete every record its predecessor wrote, and the
controller would see the host's reports vanish.

Probes run on a small pool of threads with a timeout below the interval, so one VM that
swallows packets does not delay the others, and the checker runs beside the reconcile
loop in a thread of its own: a probe never holds up routing. Probes keep a fixed cadence
(:func:`next_due`: every ``interval`` from the first, however late the checker's thread
got to start one), the thread sleeps until the next probe is due, and a probe that ends
wakes it at once, so the ``failure_threshold``-th failure is written the moment that
probe ends: a dead service is reported within ``interval x failure_threshold`` of its
death, never that plus the thread's own latency added up over the probes. The probe itself is a port
(``Probe``): the Linux one opens its sockets in the host's network namespace.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from routeplane.dataplane.health import Check, Probe
from routeplane.model.endpoint import EndpointRecord, decode_or_none
from routeplane.model.errors import StoreError
from routeplane.model.keys import SERVICE_IPS, endpoints_prefix, health_prefix, prefix
from routeplane.store import Event, EventType, Store
from routeplane.store.watcher import Feed, Follower, Snapshot

LOG = logging.getLogger("routeplane.agent")
T = TypeVar("T")


def _document(value: object) -> dict[str, Any] | None:
    """A service IP's document, or None for a value that is none."""
    return value if isinstance(value, dict) else None


def checks(
    endpoints: Mapping[str, EndpointRecord], service_ips: Mapping[str, Mapping[str, Any]]
) -> dict[tuple[str, str], Check]:
    """What this host must probe: every port of every service IP with a health check
    whose endpoint record is on this host. Pure."""
    wanted: dict[tuple[str, str], Check] = {}
    for sip_id, sip in service_ips.items():
        check = sip.get("health_check")
        if not isinstance(check, dict):
            continue
        ports = [sip.get("active_port_id"), sip.get("primary_port_id")]
        ports += list(sip.get("standby_port_ids") or [])
        for port_id in dict.fromkeys(p for p in ports if isinstance(p, str)):
            endpoint = endpoints.get(port_id)
            if endpoint is None:
                continue
            address = _own_address(endpoint, str(sip.get("ip_address", "")))
            if address is None:
                continue
            wanted[(sip_id, port_id)] = Check(
                service_ip_id=sip_id,
                port_id=port_id,
                address=address,
                type=str(check.get("type", "tcp")),
                port=int(check.get("port", 22)),
                path=str(check.get("path") or "/"),
                interval=float(check.get("interval", 1)),
                threshold=int(check.get("failure_threshold", 3)),
            )
    return wanted


def next_due(due: float, interval: float, now: float) -> float:
    """When the probe after one that was due at ``due`` (0: the first) and started at
    ``now`` is due: on the cadence (``due + interval``), unless the checker fell a whole
    interval behind (a stalled thread), when the cadence restarts from ``now`` rather
    than firing the missed probes in a burst."""
    following = due + interval
    return following if due and following > now else now + interval


def _own_address(endpoint: EndpointRecord, service_address: str) -> str | None:
    """The VM's first fixed address that is not the service IP, IPv4 first."""
    own = [a for a in endpoint.get("fixed_ips", []) if a != service_address]
    own.sort(key=lambda a: ipaddress.ip_address(a).version)
    return own[0] if own else None


@dataclass
class _State:
    check: Check
    failures: int = 0
    due: float = 0.0
    written: tuple[bool, int] | None = None
    written_at: float = 0.0
    running: Future[bool] | None = None

    @property
    def healthy(self) -> bool:
        return self.failures < self.check.threshold


class HealthChecker:
    def __init__(
        self,
        store: Store,
        host: str,
        probe: Probe,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        heartbeat: float = 1.0,
        workers: int = 8,
        endpoints: Feed | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.probe = probe
        self.clock = clock
        self.wall = wall
        self.heartbeat = heartbeat
        self.endpoints_prefix = endpoints_prefix(host)
        self.sips_prefix = prefix(SERVICE_IPS)
        self.records_prefix = health_prefix(host)
        # the host's endpoint records: in the agent's process a branch of the loop's follower
        self.endpoints = (
            endpoints if endpoints is not None else Follower(store, self.endpoints_prefix)
        )
        self.sips = Follower(store, self.sips_prefix)
        self.endpoint_docs: dict[str, EndpointRecord] = {}
        self.sip_docs: dict[str, dict[str, Any]] = {}
        self.states: dict[tuple[str, str], _State] = {}
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health")
        self._dirty = True
        self._swept = False
        # the feeds whose first snapshot has arrived: until both have, this process does
        # not know what to check, and the records a previous one wrote are left alone
        self._read: set[str] = set()
        self._polled = False
        self._wake = threading.Event()  # set when a probe ends
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # the thread ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except StoreError as exc:
                LOG.warning("health: store: %s; retrying", exc)
                self._stop.wait(0.5)

    def step(self, wait: float = 0.02) -> None:
        """Take in changes, start due probes, record finished ones. Waits first, at most
        ``wait`` (changes to the records are taken in that often), until a probe is due or
        one ends."""
        now = self.clock()
        pause = min([wait, *(s.due - now for s in self.states.values() if s.running is None)])
        if len(self._read) < 2 and self._polled:  # the snapshots are on their way
            pause = min(pause, 0.01)
        elif not self._swept:  # not before the first look at what to check
            pause = 0
        if pause > 0:
            self._wake.wait(pause)
        self._polled = True
        self._wake.clear()  # before looking at the probes: one ending from now wakes the next
        self._take(
            self.endpoints.poll(0), self.endpoint_docs, self.endpoints_prefix, decode_or_none
        )
        self._take(self.sips.poll(0), self.sip_docs, self.sips_prefix, _document)
        if self._dirty and len(self._read) == 2:
            self._reconcile()
        now = self.clock()
        for key, state in list(self.states.items()):
            if state.running is not None and state.running.done():
                ok = _result(state.running)
                state.running = None
                state.failures = 0 if ok else state.failures + 1
                self._write(key, state, now, force=now - state.written_at >= self.heartbeat)
            if state.running is None and now >= state.due:
                state.due = next_due(state.due, state.check.interval, now)
                timeout = min(state.check.interval * 0.9, 1.0)
                state.running = self.pool.submit(self.probe, state.check, timeout)
                state.running.add_done_callback(self._ended)
            elif state.running is None and now - state.written_at >= self.heartbeat:
                self._write(key, state, now, force=True)  # idle between long intervals

    def _ended(self, _: Future[bool]) -> None:
        self._wake.set()

    def _take(
        self,
        news: Snapshot | list[Event],
        into: dict[str, T],
        prefix: str,
        decode: Callable[[object], T | None],
    ) -> None:
        if isinstance(news, Snapshot):
            self._read.add(prefix)
            into.clear()
            for k, kv in news.items.items():
                if (doc := decode(kv.value)) is not None:
                    into[k[len(prefix) :]] = doc
            self._dirty = True
            return
        for event in news:
            name = event.key[len(prefix) :]
            doc = decode(event.value) if event.type is EventType.PUT else None
            if doc is not None:
                into[name] = doc
            else:
                into.pop(name, None)
            self._dirty = True

    def _reconcile(self) -> None:
        wanted = checks(self.endpoint_docs, self.sip_docs)
        for key in set(self.states) - set(wanted):
            del self.states[key]
            self.store.delete(self._key(key))
        for key, check in wanted.items():
            state = self.states.get(key)
            if state is None:
                self.states[key] = _State(check)
            elif state.check != check:
                state.check = check
        if not self._swept:  # records left by an earlier run for checks that are gone
            for kv in self.store.range(self.records_prefix).items:
                parts = kv.key[len(self.records_prefix) :].split("/")
                if len(parts) == 2 and (parts[0], parts[1]) not in wanted:
                    self.store.delete(kv.key)
            self._swept = True
        self._dirty = False

    def _key(self, key: tuple[str, str]) -> str:
        return f"{self.records_prefix}{key[0]}/{key[1]}"

    def _write(self, key: tuple[str, str], state: _State, now: float, force: bool = False) -> None:
        summary = (state.healthy, state.failures)
        if summary == state.written and not force:
            return
        if summary != state.written and state.written is not None:
            LOG.info(
                "health: %s on port %s: %s (%d failures)",
                key[0],
                key[1],
                "healthy" if state.healthy else "FAILED",
                state.failures,
            )
        self.store.put(
            self._key(key),
            {
                "healthy": state.healthy,
                "checked_at": self.wall(),
                "consecutive_failures": state.failures,
            },
        )
        state.written, state.written_at = summary, now

    def close(self) -> None:
        """Stop probing; the records stay and go stale, which the controller notices."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.endpoints.close()
        self.sips.close()


def _result(future: Future[bool]) -> bool:
    try:
        return bool(future.result())
    except Exception as exc:  # a probe that raised is a failed probe
        LOG.debug("health probe raised: %s", exc)
        return False


__all__ = ["HealthChecker", "checks", "next_due"]
