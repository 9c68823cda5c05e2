"""The agent's picture of what it has programmed: routeplane's routes and neighbours, and
the links, as last read from the kernel and updated by every applied plan.

Diffing a change against this mirror instead of dumping the kernel keeps one change's
cost independent of how many endpoints the host has; a periodic :meth:`Mirror.refresh`
repairs any drift (someone deleting our route by hand).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routeplane.dataplane.model import HostState, Link, Neighbour, Outcome, Plan, Route
from routeplane.dataplane.ports import Kernel


@dataclass
class Mirror:
    links: dict[str, Link] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)  # by address: one owner each
    neighbours: dict[tuple[str, str], Neighbour] = field(default_factory=dict)
    configured: set[str] = field(default_factory=set)

    def refresh(self, kernel: Kernel) -> None:
        """Read everything back. Interfaces are configured again after a refresh: setting
        a sysctl to the value it has is harmless, and a restarted agent cannot know."""
        self.links = kernel.links()
        self.routes = {r.address: r for r in kernel.routes()}
        self.neighbours = {(n.address, n.interface): n for n in kernel.neighbours()}
        self.configured &= set(self.links)

    def refresh_links(self, kernel: Kernel) -> None:
        self.links = kernel.links()
        self.configured &= set(self.links)

    def subset(
        self, taps: set[str] | None, desired: HostState
    ) -> tuple[set[Route], set[Neighbour]]:
        """What is programmed on ``taps`` (all when None), plus whatever currently holds
        an address the desired state wants (so that a move is seen as a replace)."""
        wanted = {r.address for r in desired.routes}
        routes = {
            r
            for r in self.routes.values()
            if taps is None or r.interface in taps or r.address in wanted
        }
        neighbours = {n for n in self.neighbours.values() if taps is None or n.interface in taps}
        return routes, neighbours

    def owner_changes(self, plan: Plan) -> set[str]:
        """Addresses leaving a tap: their connection-tracking state must go with them."""
        moved = {r.address for r in plan.routes_del}
        for route in plan.routes_set:
            before = self.routes.get(route.address)
            if before is not None and before.interface != route.interface:
                moved.add(route.address)
        return moved

    def record(self, plan: Plan, outcome: Outcome) -> None:
        failed = set(outcome.failed)  # the operations themselves: hashable values

        def done(op: object) -> bool:
            return op not in failed

        self.configured |= {name for name in plan.configure if done(name)}
        for neighbour in plan.neighbours_set:
            if done(neighbour):
                self.neighbours[(neighbour.address, neighbour.interface)] = neighbour
        for route in plan.routes_set:
            if done(route):
                self.routes[route.address] = route
        for route in plan.routes_del:
            if done(route) and self.routes.get(route.address) == route:
                del self.routes[route.address]
        for neighbour in plan.neighbours_del:
            if done(neighbour):
                self.neighbours.pop((neighbour.address, neighbour.interface), None)

    def holds(self, state: HostState) -> bool:
        """Is this endpoint fully programmed: its tap up and every route in place?"""
        for tap in state.interfaces:
            link = self.links.get(tap)
            if link is None or not link.up:
                return False
        return all(self.routes.get(r.address) == r for r in state.routes)


__all__ = ["Mirror"]
