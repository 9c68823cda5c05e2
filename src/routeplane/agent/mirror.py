"""The agent's picture of what it has programmed: routeplane's routes, neighbours and
proxy entries, and the links, as last read from the kernel and updated by every applied
plan and every link event.

Diffing a change against this mirror instead of dumping the kernel keeps one change's
cost independent of how many endpoints the host has: routes, neighbours and proxy
entries are indexed by tap, so looking at one endpoint touches only its own entries.

The kernel itself removes state behind the agent's back when a tap goes away: deleted
(or deleted and created again under the same name, by a rebooted VM) it loses
everything, sysctls included; taken administratively down it loses its routes,
neighbours and proxy entries; losing carrier loses nothing. Whenever the links show such
a change (:meth:`Mirror.take_link_events`, :meth:`Mirror.refresh_links`) the mirror
forgets what it held on that tap, so the next plan puts it back (a replace of something
still there is harmless). A periodic :meth:`Mirror.refresh` repairs any other drift
(someone deleting our route by hand).

Routes are held as the kernel holds them, by (address, metric): an address changing its
metric briefly has two. Routes via a next hop (draining addresses, see ``agent.drains``)
belong to no tap; they are few and short-lived, so every diff sees all of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from routeplane.dataplane.model import (
    HostState,
    Link,
    LinkEvent,
    Neighbour,
    Outcome,
    Plan,
    Proxy,
    Route,
)
from routeplane.dataplane.ports import Kernel


class Mirror:
    def __init__(self) -> None:
        self.links: dict[str, Link] = {}
        self.routes: dict[tuple[str, int], Route] = {}  # by (address, metric), as the kernel
        self.neighbours: dict[tuple[str, str], Neighbour] = {}  # by (address, tap)
        self.proxies: set[Proxy] = set()
        self.configured: set[str] = set()
        self._routes_on: dict[str, set[tuple[str, int]]] = {}  # tap ("" : via) -> route keys
        self._keys_of: dict[str, set[int]] = {}  # address -> metrics it has routes with
        self._neighbours_on: dict[str, set[tuple[str, str]]] = {}
        self._proxies_on: dict[str, set[Proxy]] = {}

    # reading the kernel ----------------------------------------------------------------
    def refresh(self, kernel: Kernel) -> None:
        """Read everything back. A restarted agent configures every tap again (setting a
        sysctl to the value it has is harmless, and it cannot know); a running one keeps
        what it configured on taps that are still the same interfaces."""
        self.refresh_links(kernel)
        self.routes, self._routes_on, self._keys_of = {}, {}, {}
        self.neighbours, self._neighbours_on = {}, {}
        self.proxies, self._proxies_on = set(), {}
        self._add_routes(kernel.routes())
        self._add_neighbours(kernel.neighbours())
        self._add_proxies(kernel.proxies())

    def refresh_links(self, kernel: Kernel) -> set[str]:
        """Read the links again; the names whose view changed."""
        fresh = kernel.links()
        changed = {n for n in self.links.keys() | fresh.keys() if self.links.get(n) != fresh.get(n)}
        for name in changed:
            self._update_link(name, fresh.get(name))
        return changed

    def take_link_events(self, events: Iterable[LinkEvent]) -> set[str]:
        """Apply the kernel's link news in order; the names whose view changed (an event
        that says nothing new, like an MTU change, changes nothing here)."""
        changed = set()
        for event in events:
            if self.links.get(event.name) != event.link:
                self._update_link(event.name, event.link)
                changed.add(event.name)
        return changed

    def _update_link(self, name: str, link: Link | None) -> None:
        before = self.links.get(name)
        if link is None:
            self.links.pop(name, None)
        else:
            self.links[name] = link
        recreated = link is None or before is None or before.index != link.index
        if recreated:
            self.configured.discard(name)  # a new tap: its sysctls are the defaults
        if recreated or (link is not None and not link.admin_up):
            self._forget(name)

    def _forget(self, tap: str) -> None:
        """The kernel flushed this tap's routes, neighbours and proxy entries."""
        for route_key in self._routes_on.get(tap, set()).copy():
            self._drop_route(self.routes[route_key])
        for key in self._neighbours_on.pop(tap, set()):
            self.neighbours.pop(key, None)
        self.proxies -= self._proxies_on.pop(tap, set())

    # questions -------------------------------------------------------------------------
    def subset(
        self, taps: set[str] | None, desired: HostState
    ) -> tuple[set[Route], set[Neighbour]]:
        """What is programmed on ``taps`` (everything when None), plus whatever holds an
        address the desired state wants (so that a move is seen as a replace), plus every
        route via a next hop (drains are decided for the whole host at once)."""
        if taps is None:
            return set(self.routes.values()), set(self.neighbours.values())
        keys = {k for tap in (*taps, "") for k in self._routes_on.get(tap, ())}
        keys |= {(r.address, m) for r in desired.routes for m in self._keys_of.get(r.address, ())}
        routes = {self.routes[k] for k in keys}
        neighbours = {self.neighbours[k] for tap in taps for k in self._neighbours_on.get(tap, ())}
        return routes, neighbours

    def proxies_on(self, taps: set[str] | None) -> set[Proxy]:
        """The proxy entries programmed on ``taps`` (everything when None)."""
        if taps is None:
            return set(self.proxies)
        return {p for tap in taps for p in self._proxies_on.get(tap, ())}

    def owner_changes(self, plan: Plan) -> set[str]:
        """Addresses leaving a tap (to another tap, to a next hop, or unrouted): their
        connection-tracking state must go with them. A route changing only its metric
        stays with its tap: its connections are kept."""
        deleted = set(plan.routes_del)
        added: dict[str, list[Route]] = {}
        for route in plan.routes_set:
            added.setdefault(route.address, []).append(route)
        moved = set()
        for address in added.keys() | {r.address for r in deleted}:
            if address not in self._keys_of:
                continue  # routed nowhere before (all of them, at a cold start)
            before = [self.routes[(address, m)] for m in self._keys_of[address]]
            replaced = {r.key for r in added.get(address, ())}
            after = [r for r in before if r not in deleted and r.key not in replaced]
            after += added.get(address, [])
            taps = {r.interface for r in before if not r.via}
            if taps - {r.interface for r in after if not r.via}:
                moved.add(address)
        return moved

    def holds(self, state: HostState) -> bool:
        """Is this endpoint fully programmed: its tap up and every route and proxy entry
        in place?"""
        for tap in state.interfaces:
            link = self.links.get(tap)
            if link is None or not link.up:
                return False
        if not state.proxies <= self.proxies:
            return False
        return all(self.routes.get(r.key) == r for r in state.routes)

    # recording what was done -----------------------------------------------------------
    def record(self, plan: Plan, outcome: Outcome) -> None:
        failed = set(outcome.failed)  # the operations themselves: hashable values
        self.configured |= {name for name in plan.configure if name not in failed}
        self._add_neighbours(n for n in plan.neighbours_set if n not in failed)
        self._add_proxies(p for p in plan.proxies_set if p not in failed)
        self._add_routes(r for r in plan.routes_set if r not in failed)
        for route in plan.routes_del:
            if route not in failed and self.routes.get(route.key) == route:
                self._drop_route(route)
        for proxy in plan.proxies_del:
            if proxy not in failed:
                self.proxies.discard(proxy)
                self._proxies_on.get(proxy.interface, set()).discard(proxy)
        for neighbour in plan.neighbours_del:
            if neighbour not in failed:
                key = (neighbour.address, neighbour.interface)
                self.neighbours.pop(key, None)
                self._neighbours_on.get(neighbour.interface, set()).discard(key)

    def _add_routes(self, routes: Iterable[Route]) -> None:
        for route in routes:
            previous = self.routes.get(route.key)
            if previous is not None:
                self._drop_route(previous)
            self.routes[route.key] = route
            self._routes_on.setdefault(route.interface, set()).add(route.key)
            self._keys_of.setdefault(route.address, set()).add(route.metric)

    def _drop_route(self, route: Route) -> None:
        del self.routes[route.key]
        self._routes_on.get(route.interface, set()).discard(route.key)
        metrics = self._keys_of.get(route.address, set())
        metrics.discard(route.metric)
        if not metrics:
            self._keys_of.pop(route.address, None)

    def _add_neighbours(self, neighbours: Iterable[Neighbour]) -> None:
        for neighbour in neighbours:
            key = (neighbour.address, neighbour.interface)
            self.neighbours[key] = neighbour
            self._neighbours_on.setdefault(neighbour.interface, set()).add(key)

    def _add_proxies(self, proxies: Iterable[Proxy]) -> None:
        for proxy in proxies:
            self.proxies.add(proxy)
            self._proxies_on.setdefault(proxy.interface, set()).add(proxy)


__all__ = ["Mirror"]
