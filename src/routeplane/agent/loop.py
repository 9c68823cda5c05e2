"""The agent's reconcile loop: endpoint records in, kernel state and status out.

Shape (STYLE G2-G5, Felix's dataplane doctrine):

- the store is followed with snapshot-then-watch (``store.watcher.Follower``); events only
  update the local cache and mark the changed endpoints dirty;
- ``apply()`` runs at once for a change that finds the loop idle; after an apply the
  loop waits as long as that apply took (at most ``apply_interval``) before the next, so
  a continuous stream of events coalesces into batches and applying takes at most about
  half the loop's time, while an isolated change is never held back; it
  computes the desired state of the dirty endpoints (``desired``), diffs it against the
  agent's mirror of what it programmed (``dataplane.diff``) and hands the plan to the
  kernel port in one batch — the work per change is proportional to the change, not to
  the number of endpoints on the host;
- the mirror is refreshed from the kernel itself after every (re)snapshot and every
  ``resync_interval``: after a restart, everything still wanted is found in place and
  left alone, and what became stale is swept — only after in-sync, and only what carries
  routeplane's marks (our route protocol, permanent neighbours on taps);
- for each endpoint whose routes are in place on an up tap, the agent writes
  ``status/<host>/<port>``; the api then shows the port ACTIVE;
- store unreachable: the kernel is left exactly as it is, and the loop retries with
  backoff; a failed kernel operation is retried later without holding up the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Set
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from routeplane.agent.bgp import BgpSpeaker
from routeplane.agent.desired import DRAIN_TIME, endpoint_state, merged
from routeplane.agent.drains import Drains
from routeplane.agent.mirror import Mirror
from routeplane.agent.policy import ENDPOINTS, PolicyFeed, PolicyTable
from routeplane.agent.registration import Registration
from routeplane.agent.rounds import ApplyObserver, ApplyRound
from routeplane.agent.status import StatusWriter
from routeplane.dataplane.diff import diff
from routeplane.dataplane.model import HostState, Plan
from routeplane.dataplane.ports import Kernel
from routeplane.model.endpoint import EndpointRecord, decode_or_none
from routeplane.model.errors import DataplaneError, StoreError
from routeplane.model.keys import endpoints_prefix
from routeplane.store import Event, EventType, Store
from routeplane.store.watcher import Branch, Fanout, Follower, Snapshot

LOG = logging.getLogger("routeplane.agent")
SLOW_APPLY = 0.1  # seconds: a round slower than this is logged
BESIDE_POLICY = 64 << 10  # bytes: a policy script this big runs beside the route planning


@dataclass(frozen=True)
class AgentSettings:
    host: str
    bgp_address: str = ""
    bgp_address6: str = ""
    as_number: int = 64512
    apply_interval: float = 0.005  # the longest gap between two applies (bursts coalesce)
    resync_interval: float = 30.0  # full read-back of the kernel, to repair drift
    pending_interval: float = 0.5  # how often endpoints waiting for their tap are retried
    drain_time: float = DRAIN_TIME  # a moved address is forwarded to its new host this long
    lease_ttl: int = 10
    error_delays: tuple[float, ...] = (0.5, 1, 2, 4, 8, 15)


@dataclass
class _Cache:
    endpoints: dict[str, EndpointRecord] = field(default_factory=dict)
    taps: dict[str, str] = field(default_factory=dict)  # port id -> tap, also after deletion
    on_tap: dict[str, set[str]] = field(default_factory=dict)  # tap -> port ids using it

    def note_tap(self, port_id: str) -> None:
        """Index the endpoint's tap (a tap changes only if the port id does, but a record
        could name any interface: keep the index true either way)."""
        endpoint = self.endpoints.get(port_id)
        old = self.taps.get(port_id)
        new = None if endpoint is None else str(endpoint.get("interface", ""))
        if old is not None and old != new:
            self.on_tap.get(old, set()).discard(port_id)
        if new is not None:
            self.taps[port_id] = new
            self.on_tap.setdefault(new, set()).add(port_id)

    def sharing(self, taps: set[str]) -> set[str]:
        """Every endpoint on these taps: a tap's state is decided by all of them at once."""
        return {port_id for tap in taps for port_id in self.on_tap.get(tap, ())}


class Agent:
    def __init__(
        self, store: Store, kernel: Kernel, settings: AgentSettings,
        clock: Callable[[], float] = time.monotonic, policy: PolicyTable | None = None,
        *, bgp: BgpSpeaker | None = None, wall_clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.bgp = bgp  # None: no BGP speaker on this host (routing-only tests)
        self.store = store
        self.kernel = kernel
        self.policy = policy  # None: routing only (no nftables), as in routing-only tests
        self.prefix = endpoints_prefix(settings.host)
        # One read of the endpoint records for the whole process: the loop's follower,
        # whose branches feed the policy (every host's records: remote groups' members)
        # and, in the agent's process, the health checker and metadata service (this
        # host's). Without policy the loop needs only this host's.
        self.follower = Fanout(Follower(store, ENDPOINTS if policy is not None else self.prefix))
        self.policy_feed = PolicyFeed(store, self.follower.branch()) if policy is not None else None
        self.policy_ok: set[str] = set()  # local endpoints whose policy is programmed
        self._policy_worker = ThreadPoolExecutor(1, thread_name_prefix="policy")
        self.settings = settings
        self.clock = clock
        self.wall_clock = wall_clock  # the move hints' ``moved_at`` is wall-clock time
        self.drains = Drains(settings.host, settings.drain_time)
        self.cache = _Cache()
        self.mirror = Mirror()
        self.status = StatusWriter(store, settings.host)
        self.registration = Registration(store, settings)
        self.dirty: set[str] = set()
        self.pending: set[str] = set()  # endpoints whose tap is missing or down
        self.in_sync = False
        self.full_due = True
        self._next_apply = 0.0
        self._next_resync = 0.0
        self._next_pending = 0.0
        self._errors = 0
        self.observers: list[ApplyObserver] = []  # told of every apply round (metrics)

    # the loop ------------------------------------------------------------------------
    def run(self, stop: Callable[[], bool], synced: Callable[[], None] | None = None) -> None:
        """Until ``stop()``; ``synced()`` once, when every endpoint has been programmed
        for the first time (the agent's process starts its other services only then, so
        that a cold start spends its CPU on the dataplane first)."""
        self.kernel_prepare()
        while not stop():
            self.step()
            if synced is not None and self.synced:
                synced()
                synced = None

    def endpoint_feed(self) -> Branch:
        """This host's endpoint records as this loop reads them, for another thread."""
        return self.follower.branch(self.prefix)

    @property
    def synced(self) -> bool:
        """Has the agent read all of its endpoints and applied them at least once?"""
        return self.in_sync and not self.full_due

    @property
    def store_errors(self) -> int:
        """Rounds in a row the store failed (0: it answers)."""
        return self._errors

    def kernel_prepare(self) -> None:
        """Host-wide settings (forwarding) once at start; every ``Kernel`` has them."""
        outcome = self.kernel.prepare_host()
        if not outcome.ok:
            LOG.warning("kernel: preparing the host failed: %s", outcome.errors)

    def step(self, timeout: float = 0.2) -> None:
        """One round: take in changes, then apply if something is due."""
        try:
            self.registration.keep(self.clock())
            wait = timeout if not self.dirty else max(0.0, self._next_apply - self.clock())
            self._take(self.follower.poll(wait))
            if self.policy_feed is not None:
                self.policy_feed.poll()
            if self.bgp is not None:
                self.bgp.poll()
            self._errors = 0
        except StoreError as exc:
            delay = self.settings.error_delays[
                min(self._errors, len(self.settings.error_delays) - 1)
            ]
            self._errors += 1
            LOG.warning("store: %s; keeping the dataplane as it is, retrying in %.1fs", exc, delay)
            time.sleep(delay)
            return
        self._take_link_events()
        now = self.clock()
        ends = self.drains.next_end()
        if ends is not None and self.wall_clock() >= ends:  # a drain is over: withdraw
            self.dirty |= self.drains.expired(self.wall_clock())
        if self.pending and now >= self._next_pending:
            self._next_pending = now + self.settings.pending_interval
            self.dirty |= self.pending
        if now >= self._next_resync and self.in_sync:
            self.full_due = True
        policy_due = self.policy_feed is not None and self.policy_feed.dirty
        if (self.dirty or self.full_due or policy_due) and now >= self._next_apply:
            self.apply()
            finished = self.clock()
            self._next_apply = finished + min(self.settings.apply_interval, finished - now)
        if self.bgp is not None:
            self.bgp.apply()  # BIRD after routes and sweeps (ARCHITECTURE: apply order)

    def _take_link_events(self) -> None:
        """Taps that appeared, came up, went down or were recreated (a rebooted VM): their
        endpoints are looked at again at once, not at the next pending retry or resync.
        Lost events (the kernel's queue overflowed) or an unreadable socket: read
        everything again."""
        try:
            events = self.kernel.link_events()
        except DataplaneError as exc:
            LOG.warning("kernel: %s; reading everything again", exc)
            events = None
        if events is None:
            self.full_due = True
            return
        self.dirty |= self.cache.sharing(self.mirror.take_link_events(events))

    def _take(self, news: Snapshot | list[Event]) -> None:
        """Take in this host's records (the follower may read every host's)."""
        prefix, cut = self.prefix, len(self.prefix)
        if isinstance(news, Snapshot):
            fresh = {k[cut:]: kv.value for k, kv in news.items.items() if k.startswith(prefix)}
            self.dirty |= set(self.cache.endpoints) | set(fresh)
            self.cache.endpoints = {k: r for k, v in fresh.items() if (r := decode_or_none(v))}
            self.in_sync = True
            self.full_due = True
            return
        for event in news:
            if not event.key.startswith(prefix):
                continue
            port_id = event.key[cut:]
            record = decode_or_none(event.value) if event.type is EventType.PUT else None
            if record is not None:
                self.cache.endpoints[port_id] = record
            else:
                self.cache.endpoints.pop(port_id, None)
            self.dirty.add(port_id)

    # applying ------------------------------------------------------------------------
    def apply(self) -> None:
        full = self.full_due
        began = self.clock()
        if full:
            self.mirror.refresh(self.kernel)
            self._next_resync = self.clock() + self.settings.resync_interval
            self.full_due = False
            self.dirty |= set(self.cache.endpoints) | self.status.reported()
        elif self.pending:
            self.mirror.refresh_links(self.kernel)
        ids, self.dirty = self.dirty, set()
        for port_id in ids:
            self.cache.note_tap(port_id)
        taps = {self.cache.taps[i] for i in ids if i in self.cache.taps}
        ids |= self.cache.sharing(taps)
        policy = self._start_policy(ids)
        # each endpoint's desired state once a round: the plan and the report both use it
        states = {
            i: endpoint_state(self.cache.endpoints[i]) for i in ids if i in self.cache.endpoints
        }
        wall = self.wall_clock()
        self.drains.note({i: self.cache.endpoints.get(i) for i in ids}, wall, self._next_hop)
        # planned as if the policy takes (it nearly always does); if it is refused, planned
        # again with only what the table already covers: fail closed
        plan = self._plan(states, None, taps, full, wall)
        planned = self.clock()
        refused = not self._finish_policy(policy, ids)
        if refused:
            plan = self._plan(states, self.policy_ok, taps, full, wall)
        policy_done = self.clock()
        failed = 0
        if not plan.empty:
            moved = self.mirror.owner_changes(plan)
            outcome = self.kernel.apply(plan)
            self.mirror.record(plan, outcome)
            if moved:
                self.kernel.flush_conntrack(moved)
            failed = len(outcome.failed)
            if not outcome.ok:
                LOG.warning(
                    "kernel: %d operation(s) failed: %s", len(outcome.failed), outcome.errors[:3]
                )
                self.dirty |= ids  # retried on a later round
                self.drains.refused(outcome.failed)  # those addresses: withdrawn instead
        programmed = self.clock()
        self._report(ids, states)
        took = self.clock() - began
        if full or took > SLOW_APPLY:  # a (re)sync, or a round an operator should know of
            LOG.info(
                "applied %d endpoint(s)%s in %.3fs: plan %.3fs, then waited %.3fs for the"
                " policy, kernel %.3fs (%d change(s)), status %.3fs",
                len(ids), " (full read-back)" if full else "", took, planned - began,
                policy_done - planned, programmed - policy_done, plan.size,
                began + took - programmed,
            )  # fmt: skip
        if self.observers:
            done = ApplyRound(
                endpoints=len(ids),
                full=full,
                plan=planned - began,
                policy=policy_done - planned,
                kernel=programmed - policy_done,
                status=began + took - programmed,
                changes=plan.size,
                failed=failed,
                policy_refused=refused,
            )
            for observe in self.observers:
                observe(done)

    def _plan(
        self, states: Mapping[str, HostState], covered: Set[str] | None, taps: set[str],
        full: bool, wall: float,
    ) -> Plan:  # fmt: skip
        """The kernel changes for these endpoints' states: routes only for endpoints the
        policy covers (``covered``; None: all of them, as once this round's policy is
        in), on their taps (all taps in a full round)."""
        live = [
            s for i, s in states.items() if self.policy is None or covered is None or i in covered
        ]
        desired = self.drains.with_routes(merged(live), wall)
        routes, neighbours = self.mirror.subset(None if full else taps, desired)
        return diff(
            desired,
            self.mirror.links,
            routes,
            neighbours,
            self.mirror.configured,
            sweep=self.in_sync,
            proxies=self.mirror.proxies_on(None if full else taps),
        )

    def _start_policy(self, ids: set[str]) -> Future[None] | str | None:
        """Bring the policy up to date for these endpoints' taps and whatever else changed
        (remote members, groups): one nftables transaction of only the difference. A big
        one (a whole table, at start or after a failure: hundreds of milliseconds in nft)
        runs in a thread of its own while this one plans the routes; a small one runs
        here, at once. Returns what ``_finish_policy`` waits for: the running
        transaction, an error text, or None (done, or nothing to do)."""
        if self.policy is None or self.policy_feed is None:
            return None
        feed, endpoints = self.policy_feed, self.cache.endpoints
        feed.local(
            {i: str(endpoints[i].get("interface", "")) if i in endpoints else "" for i in ids},
            lambda tap: [
                endpoints[i] for i in sorted(self.cache.on_tap.get(tap, ())) if i in endpoints
            ],
        )
        if not feed.dirty:
            return None
        try:
            script = feed.script()
            if len(script) >= BESIDE_POLICY:
                return self._policy_worker.submit(self.policy.apply, script)
            if script:
                self.policy.apply(script)
        except DataplaneError as exc:
            return str(exc)
        return None

    def _finish_policy(self, started: Future[None] | str | None, ids: set[str]) -> bool:
        """Wait for the policy transaction; on success the table covers exactly the
        endpoints in the cache. On failure the previous table stays, endpoints it does
        not cover get no routes (fail closed), and the next round replaces the whole
        table. Whether it took."""
        if self.policy is None or self.policy_feed is None:
            return True
        error = started if isinstance(started, str) else None
        if isinstance(started, Future):
            try:
                started.result()
            except DataplaneError as exc:
                error = str(exc)
        if error is not None:
            LOG.warning("policy: %s; endpoints without policy stay unrouted", error)
            self.policy_feed.failed()
            self.dirty |= ids
            return False
        if self.policy_feed.dirty:
            self.policy_feed.committed()
        for i in ids:  # the table now covers exactly the endpoints in the cache
            if i in self.cache.endpoints:
                self.policy_ok.add(i)
            else:
                self.policy_ok.discard(i)
        return True

    def _next_hop(self, host: str, version: int) -> str:
        """Another host's fabric address of an IP version, from the hosts registry ("":
        unknown, or no BGP here — a moved address is then withdrawn at once)."""
        return "" if self.bgp is None else self.bgp.next_hop(host, version)

    def _report(self, ids: Iterable[str], states: Mapping[str, HostState]) -> None:
        programmed: dict[str, int] = {}
        gone: set[str] = set()
        self.pending -= set(ids)
        for port_id in ids:
            endpoint = self.cache.endpoints.get(port_id)
            state = states.get(port_id)
            if endpoint is None or state is None:
                gone.add(port_id)
                continue
            if state.routes and self.mirror.holds(state):
                programmed[port_id] = int(endpoint.get("port_revision", 0))
            else:
                gone.add(port_id)
                if endpoint.get("admin_state_up", True):
                    self.pending.add(port_id)
        try:
            self.status.report(programmed, gone)
        except StoreError as exc:
            LOG.warning("status: %s; will report again", exc)
            self.dirty |= set(programmed) | gone

    def close(self) -> None:
        self.follower.close()
        if self.bgp is not None:
            self.bgp.close()
        if self.policy_feed is not None:
            self.policy_feed.close()
        self._policy_worker.shutdown(wait=True)
        self.registration.close()


__all__ = ["Agent", "AgentSettings"]
