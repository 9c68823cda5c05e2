"""The addresses this host drains: moved to another host, still forwarded there for a
moment so that packets in flight while BGP converges are not lost.

Inputs: the endpoint records the agent looks at in a round (``note``), the wall clock.
Output: the drain routes the host must hold now (``routes``), for the whole host at
once — they are few (a port keeps its 8 newest moves) and last ``DRAIN_TIME`` — and
the ports whose drains have ended (``expired``), so the loop looks at them again then.

Why whole-host rather than per endpoint like every other route: a drain outlives the
record that asked for it changing or going away (the address belongs to another port by
then; only the drain time ends it), and an address held again by any endpoint of this
host (moved back, or between two taps here) is routed to its tap, never drained — both
are facts about the host, not about one record.

The decision for one record is the pure ``desired.drains``; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from routeplane.agent.desired import DRAIN_TIME, Drain, drains, routed_addresses
from routeplane.dataplane.model import HostState, Route
from routeplane.model.endpoint import EndpointRecord


class Drains:
    def __init__(self, host: str, drain_time: float = DRAIN_TIME) -> None:
        self.host = host
        self.drain_time = drain_time
        self._of: dict[str, list[Drain]] = {}  # port id -> its drains
        self._holders: dict[str, set[str]] = {}  # address -> local ports routing it
        self._routes: dict[str, set[str]] = {}  # port id -> addresses it routes
        self._refused: dict[tuple[str, int], float] = {}  # (address, generation) -> until
        self._noted: dict[str, EndpointRecord] = {}  # port id -> the record last noted

    def note(
        self,
        records: Mapping[str, EndpointRecord | None],
        now: float,
        next_hop: Callable[[str, int], str],
        routed: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Take in the current records of these ports (None: gone; ``routed``: their
        routed addresses, when the caller has them). A gone record's drains run their
        course: the address is another port's already."""
        for port_id, record in records.items():
            if (
                record is not None
                and self._noted.get(port_id) is record
                and not record.get("moved_out")
            ):
                continue  # the very record seen before (a resync), and it asks for no drain
            if record is None:
                self._noted.pop(port_id, None)
            else:
                self._noted[port_id] = record
            if record is None:
                held = set()
            else:
                held = set(routed_addresses(record) if routed is None else routed[port_id])
            for address in self._routes.pop(port_id, set()) - held:
                holders = self._holders.get(address, set())
                holders.discard(port_id)
                if not holders:
                    self._holders.pop(address, None)
            for address in held:
                self._holders.setdefault(address, set()).add(port_id)
            if held:
                self._routes[port_id] = held
            if record is None:
                continue
            found = drains(
                record, host=self.host, now=now, next_hop=next_hop, drain_time=self.drain_time
            )
            if found:
                self._of[port_id] = found
            else:
                self._of.pop(port_id, None)

    def routes(self, now: float) -> set[Route]:
        """The drain routes to hold at ``now``: one per address (the newest move's), none
        for an address an endpoint of this host routes."""
        newest: dict[str, Drain] = {}
        for found in self._of.values():
            for drain in found:
                if drain.until <= now or drain.address in self._holders:
                    continue
                if (drain.address, drain.generation) in self._refused:
                    continue
                if drain.generation >= newest.get(drain.address, drain).generation:
                    newest[drain.address] = drain
        return {drain.route for drain in newest.values()}

    def with_routes(self, state: HostState, now: float) -> HostState:
        """``state`` (the endpoints' desired state) plus the drain routes."""
        return HostState(
            state.interfaces, state.routes | self.routes(now), state.neighbours, state.proxies
        )

    def next_end(self) -> float | None:
        """When the earliest drain ends (None: nothing drains)."""
        ends = [drain.until for found in self._of.values() for drain in found]
        return min(ends) if ends else None

    def expired(self, now: float) -> set[str]:
        """The ports with a drain that has ended; their ended drains are forgotten."""
        self._refused = {key: until for key, until in self._refused.items() if until > now}
        ports = set()
        for port_id, found in list(self._of.items()):
            left = [drain for drain in found if drain.until > now]
            if len(left) != len(found):
                ports.add(port_id)
                if left:
                    self._of[port_id] = left
                else:
                    del self._of[port_id]
        return ports

    def refused(self, routes: Iterable[object]) -> None:
        """The kernel refused these drain routes (say, a next hop that is not on-link in a
        routed fabric): those addresses are withdrawn at once instead of drained."""
        gone = {r for r in routes if isinstance(r, Route) and r.via}
        for found in self._of.values():
            for drain in found:
                if drain.route in gone:
                    self._refused[(drain.address, drain.generation)] = drain.until


__all__ = ["Drains"]
