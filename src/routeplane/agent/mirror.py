"""The agent's picture of what it has programmed: routeplane's routes and neighbours, and
the links, as last read from the kernel and updated by every applied plan.

Diffing a change against this mirror instead of dumping the kernel keeps one change's
cost independent of how many endpoints the host has: routes and neighbours are indexed
by tap, so looking at one endpoint touches only its own entries. A periodic
:meth:`Mirror.refresh` repairs any drift (someone deleting our route by hand, a tap
recreated by a rebooted VM).
"""

from __future__ import annotations

from collections.abc import Iterable

from routeplane.dataplane.model import HostState, Link, Neighbour, Outcome, Plan, Route
from routeplane.dataplane.ports import Kernel


class Mirror:
    def __init__(self) -> None:
        self.links: dict[str, Link] = {}
        self.routes: dict[str, Route] = {}  # by address: one owner each
        self.neighbours: dict[tuple[str, str], Neighbour] = {}  # by (address, tap)
        self.configured: set[str] = set()
        self._routes_on: dict[str, set[str]] = {}  # tap -> addresses routed to it
        self._neighbours_on: dict[str, set[tuple[str, str]]] = {}

    # reading the kernel ----------------------------------------------------------------
    def refresh(self, kernel: Kernel) -> None:
        """Read everything back. Interfaces are configured again after a refresh: setting
        a sysctl to the value it has is harmless, and a restarted agent cannot know."""
        self.refresh_links(kernel)
        self.routes, self._routes_on = {}, {}
        self.neighbours, self._neighbours_on = {}, {}
        self._add_routes(kernel.routes())
        self._add_neighbours(kernel.neighbours())

    def refresh_links(self, kernel: Kernel) -> None:
        """New links; a tap deleted and created again (a rebooted VM) has a new index and
        its sysctls back at their defaults, so it must be configured again."""
        before = self.links
        self.links = kernel.links()
        self.configured = {
            name
            for name in self.configured
            if name in self.links
            and name in before
            and before[name].index == self.links[name].index
        }

    # questions -------------------------------------------------------------------------
    def subset(
        self, taps: set[str] | None, desired: HostState
    ) -> tuple[set[Route], set[Neighbour]]:
        """What is programmed on ``taps`` (everything when None), plus whatever holds an
        address the desired state wants (so that a move is seen as a replace)."""
        if taps is None:
            return set(self.routes.values()), set(self.neighbours.values())
        routes = {self.routes[a] for tap in taps for a in self._routes_on.get(tap, ())}
        routes |= {self.routes[r.address] for r in desired.routes if r.address in self.routes}
        neighbours = {self.neighbours[k] for tap in taps for k in self._neighbours_on.get(tap, ())}
        return routes, neighbours

    def owner_changes(self, plan: Plan) -> set[str]:
        """Addresses leaving a tap: their connection-tracking state must go with them."""
        moved = {r.address for r in plan.routes_del}
        for route in plan.routes_set:
            before = self.routes.get(route.address)
            if before is not None and before.interface != route.interface:
                moved.add(route.address)
        return moved

    def holds(self, state: HostState) -> bool:
        """Is this endpoint fully programmed: its tap up and every route in place?"""
        for tap in state.interfaces:
            link = self.links.get(tap)
            if link is None or not link.up:
                return False
        return all(self.routes.get(r.address) == r for r in state.routes)

    # recording what was done -----------------------------------------------------------
    def record(self, plan: Plan, outcome: Outcome) -> None:
        failed = set(outcome.failed)  # the operations themselves: hashable values
        self.configured |= {name for name in plan.configure if name not in failed}
        self._add_neighbours(n for n in plan.neighbours_set if n not in failed)
        self._add_routes(r for r in plan.routes_set if r not in failed)
        for route in plan.routes_del:
            if route not in failed and self.routes.get(route.address) == route:
                self._drop_route(route)
        for neighbour in plan.neighbours_del:
            if neighbour not in failed:
                key = (neighbour.address, neighbour.interface)
                self.neighbours.pop(key, None)
                self._neighbours_on.get(neighbour.interface, set()).discard(key)

    def _add_routes(self, routes: Iterable[Route]) -> None:
        for route in routes:
            previous = self.routes.get(route.address)
            if previous is not None:
                self._drop_route(previous)
            self.routes[route.address] = route
            self._routes_on.setdefault(route.interface, set()).add(route.address)

    def _drop_route(self, route: Route) -> None:
        del self.routes[route.address]
        self._routes_on.get(route.interface, set()).discard(route.address)

    def _add_neighbours(self, neighbours: Iterable[Neighbour]) -> None:
        for neighbour in neighbours:
            key = (neighbour.address, neighbour.interface)
            self.neighbours[key] = neighbour
            self._neighbours_on.setdefault(neighbour.interface, set()).add(key)


__all__ = ["Mirror"]
