"""``plan = diff(desired, actual)``: the decision table of the dataplane, as a pure function.

Routes are keyed as the kernel keys them, by (address, metric) (``Route.key``):

| desired | actual | action |
|---|---|---|
| route, tap up (or a ``via`` route) | the same route | nothing |
| route | another route with the same key (other tap, other next hop) | replace: one operation, never a gap |
| route | routes for the address with other metrics (ours) | add the new one, *then* delete those (make before break), with or without ``sweep`` |
| absent | present (ours) | delete — only when ``sweep`` (after in-sync) |
| route, tap down or missing | — | not added: device routes exist only while the tap is up |

The third row is how a route changes its metric (an address moved here becomes
preferred, an old agent's metric is brought up to date): the plan's order puts every add
before every delete, so the address is routed throughout. It deletes without ``sweep``
because the address is wanted — only its superseded route goes.

Neighbours follow the same rule (a MAC change is a replace), and so do proxy entries
(nothing to change in place: present or not); both are set on a tap that exists, up or
not, so they are ready when it comes up. Interfaces to configure are the desired taps
that exist and are not yet configured. Without ``sweep`` the plan never deletes anything
unwanted: after a restart nothing still wanted is removed and re-added, and stale state
is swept only once the agent has read all of its endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from routeplane.dataplane.model import HostState, Link, Neighbour, Plan, Proxy, Route


def diff(
    desired: HostState,
    links: Mapping[str, Link],
    routes: Set[Route],
    neighbours: Set[Neighbour],
    configured: Set[str],
    *,
    sweep: bool,
    proxies: Set[Proxy] = frozenset(),
) -> Plan:
    def up(name: str) -> bool:
        link = links.get(name)
        return link is not None and link.up

    # per desired route, not per link: one change on a host of thousands of taps looks at
    # its own taps only
    wanted_routes = {r for r in desired.routes if r.via or up(r.interface)}
    wanted_neigh = {n for n in desired.neighbours if n.interface in links}
    wanted_proxies = {p for p in desired.proxies if p.interface in links}
    # a neighbour whose MAC changed is replaced, not deleted
    replaced = {(n.address, n.interface) for n in wanted_neigh}
    stale_neigh = {n for n in neighbours - wanted_neigh if (n.address, n.interface) not in replaced}
    # a route whose key is wanted is replaced by the wanted one; one for a wanted address
    # under another metric is superseded (deleted after the add); the rest is stale
    keys = {r.key for r in wanted_routes}
    addresses = {r.address for r in wanted_routes}
    unwanted = {r for r in routes - wanted_routes if r.key not in keys}
    superseded = {r for r in unwanted if r.address in addresses}
    stale_routes = unwanted - superseded
    return Plan(
        configure=tuple(
            sorted(n for n in desired.interfaces if n in links and n not in configured)
        ),
        neighbours_set=tuple(sorted(wanted_neigh - neighbours)),
        proxies_set=tuple(sorted(wanted_proxies - proxies)),
        routes_set=tuple(sorted(wanted_routes - routes)),
        routes_del=tuple(sorted(superseded | (stale_routes if sweep else set()))),
        proxies_del=tuple(sorted(proxies - wanted_proxies)) if sweep else (),
        neighbours_del=tuple(sorted(stale_neigh)) if sweep else (),
    )


__all__ = ["diff"]
