"""Programming the host's nftables policy during an apply round, beside the route planning.

The reconcile loop routes an endpoint only once its policy is in place, so each round
first brings the policy up to date (``agent/policy.py``'s ``PolicyFeed``: one nftables
transaction of only the difference), then plans the routes. A small transaction runs at
once, on the loop's thread; a big one (a whole table, at start or after a failure:
hundreds of milliseconds in ``nft``) runs in a thread of its own (``BESIDE_POLICY``)
while the loop plans the routes, which it plans as if the policy takes (it nearly always
does). :meth:`PolicyRunner.finish` then waits for it and says whether it took: if not,
the previous table stays, endpoints it does not cover get no routes (fail closed), and
the next round replaces the whole table.

The loop's interface is :meth:`PolicyRunner.start` and :meth:`PolicyRunner.finish`,
once each a round, and :attr:`PolicyRunner.covered`: the local endpoints whose policy
is programmed. What this module must not do: decide what the policy is (that is the
feed's and ``dataplane.nft_render``'s), or route anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from routeplane.agent.policy import PolicyFeed, PolicyTable
from routeplane.model.endpoint import EndpointRecord
from routeplane.model.errors import DataplaneError

LOG = logging.getLogger("routeplane.agent")
BESIDE_POLICY = 64 << 10  # bytes: a policy script this big runs beside the route planning

# What ``finish`` waits for: the running transaction, an error text, or None (done, or
# nothing to do).
Started = Future[None] | str | None


class PolicyRunner:
    """Programs ``table`` from ``feed``, at most one transaction at a time."""

    def __init__(self, table: PolicyTable, feed: PolicyFeed) -> None:
        self.table = table
        self.feed = feed
        self.covered: set[str] = set()  # local endpoints whose policy is programmed
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="policy")

    @property
    def dirty(self) -> bool:
        """Does the table differ from what the feed wants?"""
        return self.feed.dirty

    def poll(self) -> None:
        """Take in the feed's changes (security groups, every host's endpoint records)."""
        self.feed.poll()

    def start(
        self,
        taps: Mapping[str, str],
        on_tap: Callable[[str], Sequence[EndpointRecord]],
    ) -> Started:
        """Bring the policy up to date for these endpoints' taps (``taps``: port id ->
        tap, "" for a deleted endpoint; ``on_tap``: the records on a tap) and whatever
        else changed (remote members, groups): one nftables transaction of only the
        difference, started beside the caller if it is big."""
        self.feed.local(taps, on_tap)
        if not self.feed.dirty:
            return None
        try:
            script = self.feed.script()
            if len(script) >= BESIDE_POLICY:
                return self._worker.submit(self.table.apply, script)
            if script:
                self.table.apply(script)
        except DataplaneError as exc:
            return str(exc)
        return None

    def finish(self, started: Started, ids: Iterable[str], present: Container[str]) -> bool:
        """Wait for the policy transaction; on success the table covers exactly the
        endpoints ``present`` (in the cache) among ``ids``. On failure the previous table
        stays and the next round replaces the whole table. Whether it took."""
        error = started if isinstance(started, str) else None
        if isinstance(started, Future):
            try:
                started.result()
            except DataplaneError as exc:
                error = str(exc)
        if error is not None:
            LOG.warning("policy: %s; endpoints without policy stay unrouted", error)
            self.feed.failed()
            return False
        if self.feed.dirty:
            self.feed.committed()
        for i in ids:  # the table now covers exactly the endpoints in the cache
            if i in present:
                self.covered.add(i)
            else:
                self.covered.discard(i)
        return True

    def close(self) -> None:
        self.feed.close()
        self._worker.shutdown(wait=True)


__all__ = ["BESIDE_POLICY", "PolicyRunner", "Started"]
