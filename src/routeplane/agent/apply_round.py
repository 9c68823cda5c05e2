"""One apply round of the agent: the dirty endpoints' policy, routes and status, in order.

The reconcile loop (``agent/loop.py``) decides when a round runs and which endpoints it
covers; this module runs it (STYLE G3, G4):

1. the endpoints sharing a tap with a dirty one join it (a tap's state is decided by all
   of its endpoints at once), and so do those sharing an address that became contested
   or settled with the change (``agent/claims.py``: an address endpoints of two
   projects claim is routed to none);
2. the policy is brought up to date (``agent/policy_runner.py``), a big transaction
   beside the planning;
3. the desired state of those endpoints is computed (``desired``; a migration target's
   routes once its VM has arrived, ``agent/arrivals.py``) and diffed against the
   agent's mirror of what it programmed (``dataplane.diff``), as if the policy takes; if
   it is refused, planned again with only the endpoints the table already covers (fail
   closed: no policy, no route);
4. the plan goes to the kernel port in one batch, and connections of addresses that
   moved between taps are flushed;
5. for each endpoint whose routes are in place on an up tap, ``status/<host>/<port>`` is
   written (the api then shows the port ACTIVE); the others wait for their tap
   (``pending``).

The work per change is proportional to the change, not to the number of endpoints on the
host. A failed kernel operation, a refused policy or a failed status write makes its
endpoints dirty again for a later round without holding up the others. What this module
must not do: read the store (it reads the loop's cache), or decide when to run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Set

from routeplane.agent.arrivals import Arrivals
from routeplane.agent.claims import Claims
from routeplane.agent.desired import RoutedAddresses, endpoint_state, merged
from routeplane.agent.drains import Drains
from routeplane.agent.endpoint_cache import EndpointCache
from routeplane.agent.mirror import Mirror
from routeplane.agent.policy_runner import PolicyRunner
from routeplane.agent.rounds import ApplyObserver, RoundReport
from routeplane.agent.status import StatusWriter
from routeplane.dataplane.diff import diff
from routeplane.dataplane.model import HostState, Plan
from routeplane.dataplane.ports import Kernel
from routeplane.model.errors import StoreError

LOG = logging.getLogger("routeplane.agent")
SLOW_APPLY = 0.1  # seconds: a round slower than this is logged


class ApplyRound:
    """Converges endpoints of ``cache`` through ``kernel``, recording what it programmed in
    ``mirror`` and reporting it through ``status``. ``policy`` None: routing only (no
    nftables). ``next_hop(host, version)``: another host's fabric address, for drains."""

    def __init__(
        self,
        kernel: Kernel,
        cache: EndpointCache,
        mirror: Mirror,
        *,
        drains: Drains,
        status: StatusWriter,
        policy: PolicyRunner | None,
        next_hop: Callable[[str, int], str],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.kernel = kernel
        self.cache = cache
        self.mirror = mirror
        self.drains = drains
        self.status = status
        self.policy = policy
        self.next_hop = next_hop
        self.clock = clock
        self.wall_clock = wall_clock  # the move hints' ``moved_at`` is wall-clock time
        self.pending: set[str] = set()  # endpoints whose tap is missing or down
        self.claims = Claims()  # the addresses routed to none: claimed by two projects
        self.arrivals = Arrivals(kernel)  # migration targets: their routes wait for the VM
        self.observers: list[ApplyObserver] = []  # told of every round (the metrics)

    def run(self, ids: set[str], *, full: bool, sweep: bool, began: float) -> set[str]:
        """Converge these endpoints (and those sharing their taps); ``full``: every tap
        is looked at, after a read-back of the kernel; ``sweep``: stale state of ours may
        be removed (only once in sync); ``began``: when the round started, for its log.
        The endpoints to look at again in a later round."""
        retry: set[str] = set()
        cache = self.cache
        others: set[str] = set()
        routed = RoutedAddresses(cache.endpoints)  # each endpoint's, once a round
        for port_id in ids:
            cache.note_tap(port_id)
            record = cache.endpoints.get(port_id)
            others |= self.claims.note(port_id, record, None if record is None else routed[port_id])
        ids |= others
        taps = {cache.taps[i] for i in ids if i in cache.taps}
        ids |= cache.sharing(taps)
        policy = self.policy
        started = None if policy is None else policy.start(cache.interfaces(ids), cache.records_on)
        # each endpoint's desired state once a round: the plan and the report both use it
        contested = self.claims.contested
        self.arrivals.note({i: cache.endpoints.get(i) for i in ids})
        arrived = self.arrivals.arrived
        states = {
            i: endpoint_state(cache.endpoints[i], contested, arrived=i in arrived, routed=routed[i])
            for i in ids
            if i in cache.endpoints
        }
        wall = self.wall_clock()
        self.drains.note({i: cache.endpoints.get(i) for i in ids}, wall, self.next_hop, routed)
        # planned as if the policy takes (it nearly always does); if it is refused, planned
        # again with only what the table already covers: fail closed
        plan = self._plan(states, None, taps, full=full, sweep=sweep, wall=wall)
        planned = self.clock()
        if policy is not None and not policy.finish(started, ids, cache.endpoints):
            retry |= ids
            plan = self._plan(states, policy.covered, taps, full=full, sweep=sweep, wall=wall)
        policy_done = self.clock()
        refused = bool(retry)
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
                retry |= ids  # retried on a later round
                self.drains.refused(outcome.failed)  # those addresses: withdrawn instead
        programmed = self.clock()
        retry |= self._report(ids, states)
        took = self.clock() - began
        if full or took > SLOW_APPLY:  # a (re)sync, or a round an operator should know of
            LOG.info(
                "applied %d endpoint(s)%s in %.3fs: plan %.3fs, then waited %.3fs for the"
                " policy, kernel %.3fs (%d change(s)), status %.3fs",
                len(ids),
                " (full read-back)" if full else "",
                took,
                planned - began,
                policy_done - planned,
                programmed - policy_done,
                plan.size,
                began + took - programmed,
            )
        if self.observers:
            report = RoundReport(
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
                observe(report)
        return retry

    def _plan(
        self,
        states: Mapping[str, HostState],
        covered: Set[str] | None,
        taps: set[str],
        *,
        full: bool,
        sweep: bool,
        wall: float,
    ) -> Plan:
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
            sweep=sweep,
            proxies=self.mirror.proxies_on(None if full else taps),
        )

    def _report(self, ids: Iterable[str], states: Mapping[str, HostState]) -> set[str]:
        """Write the status of these endpoints; those to report again (it failed)."""
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
            return set(programmed) | gone
        return set()


__all__ = ["SLOW_APPLY", "ApplyRound"]
