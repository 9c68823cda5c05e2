"""The service-IP controller: follows service IPs and health reports, and fails over.

Several controllers may run (one per api host, say); exactly one acts. Leadership is the
key ``controller/leader``, created only if absent and attached to a lease the leader
keeps alive. When the leader dies, its lease expires, the store deletes the key, and the
next controller to see it missing takes it. Every move the leader makes compares the
leader key in the same transaction as the move (fencing): a leader that was paused past
its lease and does not know it yet cannot move anything, so two controllers never act
on the same failure.

The loop is level-triggered: events only mark service IPs dirty; :meth:`Controller.step`
re-decides each dirty one with :func:`failover.decide` from the cache, and every
``resync_interval`` all of them (staleness is a matter of time, not of events). A move
re-reads the service IP in its transaction and decides again from the fresh document, so
one failure moves the address once, however often it is looked at. While the active port
is failing but not yet past its threshold, the move it would take is rehearsed
(:meth:`Repo.rehearse`: its reads, no write), so that when the threshold is crossed the
move is one transaction, whose compares check every rehearsed read. Moves go through
:meth:`ServiceIPService.move_active`, the same code as a manual move, and are recorded in
the service IP's ``moves`` with reason ``health`` or ``failback``.

What it must not do: act without holding the leader key, or write anything but moves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from routeplane.controller.failover import Decision, HealthReport, decide
from routeplane.model.errors import LeaseNotFound, StoreError
from routeplane.model.keys import LEADER_KEY
from routeplane.services.errors import ApiFault
from routeplane.services.repo import Change, Outcome, Reads, now, prefix
from routeplane.services.service_ips.service import ServiceIPService
from routeplane.store import Delete, Event, EventType, KeyValue, Put, Store, absent, value_is
from routeplane.store.watcher import Follower, Snapshot

LOG = logging.getLogger("routeplane.controller")
# told of every move the leader made: the service IP before it, its ports' reports, the
# decision and when (the metrics); runs on the loop's thread, must be quick, must not raise
MoveObserver = Callable[[Mapping[str, Any], Mapping[str, HealthReport], Decision, float], None]
SERVICE_IPS = prefix("service_ips")
HEALTH = prefix("health")


@dataclass(frozen=True)
class ControllerSettings:
    name: str
    lease_ttl: int = 3  # seconds without keep-alive before another controller takes over
    poll_timeout: float = 0.02  # longest wait for health events per step
    resync_interval: float = 0.5  # re-decide every service IP at least this often
    retry_interval: float = 1.0  # after a move the store refused
    error_delay: float = 0.5  # after the store failed


class NotLeader(Exception):
    """The leader key is no longer ours: stop acting at once."""


class Controller:
    def __init__(
        self,
        store: Store,
        service_ips: ServiceIPService,
        settings: ControllerSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.service_ips = service_ips
        self.repo = service_ips.repo
        self.settings = settings
        self.clock = clock
        self._docs: dict[str, dict[str, Any]] = {}
        self._health: dict[str, dict[str, tuple[str, HealthReport]]] = {}  # sip -> key -> report
        self._dirty: set[str] = set()
        self._retry_at: dict[str, float] = {}
        self._rehearsed: dict[str, Reads] = {}  # sip -> the reads of its coming move
        self._follow_docs = Follower(store, SERVICE_IPS)
        self._follow_health = Follower(store, HEALTH)
        self.lease: int | None = None
        self._leader_value: dict[str, Any] | None = None
        self._next_keepalive = 0.0
        self._next_resync = 0.0
        self.observers: list[MoveObserver] = []

    @property
    def is_leader(self) -> bool:
        return self._leader_value is not None

    def leader_value(self) -> dict[str, Any] | None:
        """The leader record while this controller holds it (to fence other writers on,
        such as the Nova notifier in the same process); None otherwise."""
        return self._leader_value

    def service_ip_docs(self) -> dict[str, dict[str, Any]]:
        """The service IPs as last read (a copy: another thread may ask)."""
        return dict(self._docs)

    # the loop ------------------------------------------------------------------------
    def run(self, stop: Callable[[], bool]) -> None:
        while not stop():
            try:
                self.step()
            except StoreError as exc:  # unreachable store: keep the cache, try again
                LOG.warning("store error: %s", exc)
                time.sleep(self.settings.error_delay)

    def step(self) -> None:
        """Keep or seek leadership, take in what changed, and (as leader) act on it."""
        self._lead(self.clock())
        self._follow()
        if self.is_leader:
            self._act(self.clock())

    def close(self, *, revoke: bool = True) -> None:
        """Stop; ``revoke`` hands leadership over at once (a crash leaves it to expire).

        Handing over deletes the leader key only if it is still ours. The lease itself is
        left to expire with nothing attached: a lease id may be handed out again after it
        expired (the sqlite backend does), and revoking it then would end someone else's.
        """
        self._follow_docs.close()
        self._follow_health.close()
        if revoke and self._leader_value is not None:
            try:
                self.store.txn([value_is(LEADER_KEY, self._leader_value)], [Delete(LEADER_KEY)])
            except StoreError as exc:
                LOG.info("could not hand leadership over: %s", exc)
        self.lease, self._leader_value = None, None

    # leadership ----------------------------------------------------------------------
    def _lead(self, at: float) -> None:
        if self.lease is not None:
            if at >= self._next_keepalive:
                try:
                    self.store.keepalive(self.lease)
                except LeaseNotFound:
                    self._lose("the lease expired")
                    return
                self._next_keepalive = at + self.settings.lease_ttl / 3
            return
        if self.store.get(LEADER_KEY) is not None:
            return
        lease = self.store.grant_lease(self.settings.lease_ttl)
        value: dict[str, Any] = {"holder": self.settings.name, "lease": lease, "since": now()}
        if not self.store.txn([absent(LEADER_KEY)], [Put(LEADER_KEY, value, lease)]).succeeded:
            self.store.revoke_lease(lease)  # someone else was quicker
            return
        self.lease, self._leader_value = lease, value
        self._next_keepalive = at + self.settings.lease_ttl / 3
        self._next_resync = 0.0  # look at everything now
        LOG.info("%s leads the service-IP controllers", self.settings.name)

    def _lose(self, why: str) -> None:
        """Forget leadership. The lease is not revoked: it may have expired already and
        its id been given to someone else (see :meth:`close`)."""
        LOG.warning("%s is no longer the leader: %s", self.settings.name, why)
        self.lease, self._leader_value = None, None

    # following -----------------------------------------------------------------------
    def _follow(self) -> None:
        got = self._follow_docs.poll(timeout=0)
        self._take(got, self._doc_changed, self._docs_reset)
        got = self._follow_health.poll(timeout=self.settings.poll_timeout)
        self._take(got, self._health_changed, self._health_reset)

    @staticmethod
    def _take(
        got: Snapshot | list[Event],
        changed: Callable[[str, Any], None],
        reset: Callable[[Iterable[KeyValue]], None],
    ) -> None:
        if isinstance(got, Snapshot):
            reset(got.items.values())
            return
        for event in got:
            changed(event.key, event.value if event.type is EventType.PUT else None)

    def _docs_reset(self, items: Iterable[KeyValue]) -> None:
        self._dirty |= set(self._docs)
        self._docs.clear()
        for kv in items:
            self._doc_changed(kv.key, kv.value)

    def _doc_changed(self, k: str, value: Any) -> None:
        sip_id = k[len(SERVICE_IPS) :]
        if isinstance(value, dict):
            self._docs[sip_id] = value
        else:
            self._docs.pop(sip_id, None)
        self._dirty.add(sip_id)

    def _health_reset(self, items: Iterable[KeyValue]) -> None:
        self._dirty |= set(self._health)
        self._health.clear()
        for kv in items:
            self._health_changed(kv.key, kv.value)

    def _health_changed(self, k: str, value: Any) -> None:
        parts = k[len(HEALTH) :].split("/")
        if len(parts) != 3:
            return
        _host, sip_id, port_id = parts
        reports = self._health.setdefault(sip_id, {})
        report = HealthReport.parse(value)
        if report is None:
            reports.pop(k, None)
        else:
            reports[k] = (port_id, report)
        self._dirty.add(sip_id)

    def reports(self, sip_id: str) -> dict[str, HealthReport]:
        """The newest report per port (a port that changed host may have two)."""
        newest: dict[str, HealthReport] = {}
        for port_id, report in list(self._health.get(sip_id, {}).values()):
            if port_id not in newest or report.checked_at > newest[port_id].checked_at:
                newest[port_id] = report
        return newest

    # acting --------------------------------------------------------------------------
    def _act(self, at: float) -> None:
        if at >= self._next_resync:
            self._dirty |= set(self._docs)
            self._next_resync = at + self.settings.resync_interval
        dirty, self._dirty = self._dirty, set()
        for sip_id in sorted(dirty):
            doc = self._docs.get(sip_id)
            if doc is None:
                continue
            if self._retry_at.get(sip_id, 0.0) > at:
                self._dirty.add(sip_id)
                continue
            if decide(doc, self.reports(sip_id), at).target is None:
                self._rehearse(sip_id, doc, at)
                continue
            self._move(sip_id, at)
            if not self.is_leader:
                return

    def _use_case(
        self, sip_id: str, at: float, *, failed: str | None = None
    ) -> Outcome[Decision | None]:
        """The move, as one transaction's contents; ``failed``: decide as if this port
        (the active one) had failed (a rehearsal)."""
        leader = self.repo.get_key(LEADER_KEY)
        if leader is None or leader.value != self._leader_value:
            raise NotLeader
        service_ip = self.repo.get("service_ips", sip_id)
        if service_ip is None:
            return Outcome(Change(), None)
        reports = self.reports(sip_id)
        if failed is not None:
            reports[failed] = HealthReport(False, at, 0)
        decision = decide(service_ip.value, reports, at)
        if decision.target is None:
            return Outcome(Change(), None)
        target = self.repo.get("ports", decision.target)
        if target is None:
            raise ApiFault("PortNotFound", 404, f"Port {decision.target} could not be found.")
        change = Change()
        change.depends_on(leader)  # fencing: only while the key is still ours
        moved = self.service_ips.move_active(
            change, service_ip.value, target, decision.reason, primary=False
        )
        change.depends_on(service_ip)
        change.put(service_ip.key, moved)
        return Outcome(change, decision)

    def _rehearse(self, sip_id: str, doc: Mapping[str, Any], at: float) -> None:
        """While the active port fails short of its threshold, read what its move will
        need (once); forget it when the port recovers."""
        active = str(doc.get("active_port_id"))
        report = self.reports(sip_id).get(active)
        if report is None or report.consecutive_failures == 0:
            self._rehearsed.pop(sip_id, None)
            return
        if sip_id in self._rehearsed:
            return
        try:
            rehearse = partial(self._use_case, sip_id, at, failed=active)
            self._rehearsed[sip_id] = self.repo.rehearse(rehearse)
        except (NotLeader, ApiFault) as exc:  # the real move will meet it, and say so
            LOG.debug("service IP %s: no rehearsal: %r", sip_id, exc)

    def _move(self, sip_id: str, at: float) -> None:
        use_case = partial(self._use_case, sip_id, at)
        reads = self._rehearsed.pop(sip_id, None)
        try:
            done = self.repo.run(use_case, reads)
        except NotLeader:
            self._lose("the leader key is not ours any more")
            return
        except ApiFault as exc:
            LOG.warning("service IP %s: move refused: %s", sip_id, exc.message)
            self._retry_at[sip_id] = at + self.settings.retry_interval
            self._dirty.add(sip_id)
            return
        self._retry_at.pop(sip_id, None)
        if done is not None:
            LOG.warning("service IP %s moved to port %s (%s)", sip_id, done.target, done.reason)
            for observe in self.observers:
                observe(self._docs.get(sip_id, {}), self.reports(sip_id), done, self.clock())


__all__ = ["LEADER_KEY", "Controller", "ControllerSettings", "MoveObserver", "NotLeader"]
