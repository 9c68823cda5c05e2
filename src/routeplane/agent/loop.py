"""The agent's reconcile loop: endpoint records in, kernel state and status out.

Shape (STYLE G2-G5, Felix's dataplane doctrine):

- the store is followed with snapshot-then-watch (``store.watcher.Follower``); events only
  update the local cache (``agent/endpoint_cache.py``) and mark the changed endpoints
  dirty;
- ``apply()`` runs at once for a change that finds the loop idle; after an apply the
  loop waits as long as that apply took (at most ``apply_interval``) before the next, so
  a continuous stream of events coalesces into batches and applying takes at most about
  half the loop's time, while an isolated change is never held back; a round
  (``agent/apply_round.py``) programs the dirty endpoints' policy, routes and status,
  with work proportional to the change, not to the number of endpoints on the host;
- the mirror is refreshed from the kernel itself after every (re)snapshot and every
  ``resync_interval``: after a restart, everything still wanted is found in place and
  left alone, and what became stale is swept — only after in-sync, and only what carries
  routeplane's marks (our route protocol, permanent neighbours on taps);
- a migration's target waiting for its VM has its tap's counter read every
  ``arrival_interval`` (``agent/arrivals.py``); it is applied at once when the VM sends;
- endpoints whose tap is missing or down are retried every ``pending_interval``, and at
  once when the kernel reports their tap (link events); a drain that ends (a moved
  address no longer forwarded to its new host) makes its endpoints dirty;
- store unreachable: the kernel is left exactly as it is, and the loop retries with
  backoff; a failed kernel operation is retried later without holding up the others.

This module is the scheduling: what to take in, when to apply and what. What it must
not do: talk to the kernel or the store itself beyond the follower, the registration
and the host's preparation (the round and its parts do).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from routeplane.agent.apply_round import ApplyRound
from routeplane.agent.bgp import BgpSpeaker
from routeplane.agent.drains import Drains
from routeplane.agent.endpoint_cache import EndpointCache
from routeplane.agent.mirror import Mirror
from routeplane.agent.policy import PolicyFeed, PolicyTable
from routeplane.agent.policy_runner import PolicyRunner
from routeplane.agent.registration import Registration
from routeplane.agent.rounds import ApplyObserver
from routeplane.agent.settings import AgentSettings
from routeplane.agent.status import StatusWriter
from routeplane.dataplane.ports import Kernel
from routeplane.model.errors import DataplaneError, StoreError
from routeplane.model.keys import endpoints_prefix
from routeplane.store import Event, Store
from routeplane.store.watcher import Bell, Branch, Fanout, Follower, Snapshot

LOG = logging.getLogger("routeplane.agent")


class Agent:
    """One host's reconcile loop: ``run()`` it on a thread of its own, ``close()`` it after."""

    def __init__(
        self,
        store: Store,
        kernel: Kernel,
        settings: AgentSettings,
        clock: Callable[[], float] = time.monotonic,
        policy: PolicyTable | None = None,
        *,
        bgp: BgpSpeaker | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.bgp = bgp  # None: no BGP speaker on this host (routing-only tests)
        self.store = store
        self.kernel = kernel
        self.prefix = endpoints_prefix(settings.host)
        # The loop waits for any of what it follows: this host's endpoint records, and
        # with policy the security groups and the member index of the groups its
        # endpoints' rules name (never another host's records: docs/design/scale.md).
        self.bell = Bell()
        # One read of this host's endpoint records for the whole process: the loop's
        # follower, whose branches feed, in the agent's process, the health checker and
        # the metadata service.
        self.follower = Fanout(Follower(store, self.prefix, self.bell))
        # None: routing only (no nftables), as in routing-only tests
        self.policy = None if policy is None else PolicyRunner(policy, PolicyFeed(store, self.bell))
        self.settings = settings
        self.clock = clock
        self.wall_clock = wall_clock  # the move hints' ``moved_at`` is wall-clock time
        self.drains = Drains(settings.host, settings.drain_time)
        self.cache = EndpointCache(self.prefix)
        self.mirror = Mirror()
        self.status = StatusWriter(store, settings.host)
        self.round = ApplyRound(
            kernel,
            self.cache,
            self.mirror,
            drains=self.drains,
            status=self.status,
            policy=self.policy,
            next_hop=self._next_hop,
            clock=clock,
            wall_clock=wall_clock,
        )
        self.registration = Registration(store, settings)
        self.dirty: set[str] = set()
        self.in_sync = False
        self.full_due = True
        self._next_apply = 0.0
        self._next_resync = 0.0
        self._next_pending = 0.0
        self._next_arrival = 0.0
        self._errors = 0
        self.observers: list[ApplyObserver] = self.round.observers  # told of every round

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
            if self.round.arrivals.awaiting:  # a migration's VM may arrive any moment
                wait = min(wait, self.settings.arrival_interval)
            if self.follower.follower.revision:  # else: the first snapshot, at once
                self.bell.wait(wait)
            self._take(self.follower.poll(0))
            if self.policy is not None:
                self.policy.poll()
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
        if self.round.arrivals.awaiting and now >= self._next_arrival:
            self._next_arrival = now + self.settings.arrival_interval
            self.dirty |= self.round.arrivals.check()
        pending = self.round.pending
        if pending and now >= self._next_pending:
            self._next_pending = now + self.settings.pending_interval
            self.dirty |= pending
        if now >= self._next_resync and self.in_sync:
            self.full_due = True
        policy_due = self.policy is not None and self.policy.dirty
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
        self.dirty |= self.cache.take(news)
        if isinstance(news, Snapshot):
            self.in_sync = True
            self.full_due = True

    # applying ------------------------------------------------------------------------
    def apply(self) -> None:
        """One round for the dirty endpoints; all of them, after a read-back of the
        kernel, when a full round is due (after a (re)snapshot, every resync)."""
        full = self.full_due
        began = self.clock()
        if full:
            self.mirror.refresh(self.kernel)
            self._next_resync = self.clock() + self.settings.resync_interval
            self.full_due = False
            self.dirty |= set(self.cache.endpoints) | self.status.reported()
        elif self.round.pending:
            self.mirror.refresh_links(self.kernel)
        ids, self.dirty = self.dirty, set()
        self.dirty |= self.round.run(ids, full=full, sweep=self.in_sync, began=began)

    def _next_hop(self, host: str, version: int) -> str:
        """Another host's fabric address of an IP version, from the hosts registry ("":
        unknown, or no BGP here — a moved address is then withdrawn at once)."""
        return "" if self.bgp is None else self.bgp.next_hop(host, version)

    def close(self) -> None:
        self.follower.close()
        if self.bgp is not None:
            self.bgp.close()
        if self.policy is not None:
            self.policy.close()
        self.registration.close()


__all__ = ["Agent"]
