"""``FakeKernel``: a stateful, in-memory kernel for the agent's unit tests.

It keeps links, routes (ours and other owners'), neighbours, IPv6 proxy entries, sysctls,
a conntrack table and a queue of link events, and answers the ``Kernel`` port with Linux's behaviour as far as the contract
goes — the same contract suite (``tests/contract/test_kernel.py``) runs against it and
against a real namespace:

- a route is keyed by its address and metric (one host route per pair in the main
  table): ``replace`` overwrites whatever holds the pair, even another owner's route,
  and a route with another metric for the same address is a second route beside it
  (:meth:`FakeKernel.route_to` answers which one the kernel would use: the lowest
  metric); a route added without a metric gets Linux's default (0 for IPv4, 1024 for
  IPv6);
- adding a device route needs its link to exist and be administratively up (no carrier
  is fine); a route ``via`` a next hop needs the next hop inside a network of an
  interface that is up (:meth:`FakeKernel.add_network`: the host's own fabric address)
  and goes with that interface; deleting a route needs it to exist *with our protocol,
  that metric and that link or next hop*;
- a neighbour replace overwrites the MAC; it needs the link to exist (up or not);
  deleting a missing neighbour fails; proxy entries behave the same (a replace takes
  over another owner's entry for the address on that link);
- a link going administratively down loses its routes (those via a next hop on it too),
  neighbours and proxy entries, a deleted link everything, sysctls included; losing
  carrier loses nothing;
- ``links()`` calls a link up only when it is administratively up *and* has carrier;
- every change of a link (created, administratively up or down — the agent bringing a
  tap up included —, carrier, deleted) queues a link event; beyond
  :attr:`event_capacity` unread events the queue overflows, as a netlink socket does.

Failures can be injected: :meth:`fail_next` makes the next operations of one step fail,
:attr:`broken` makes every operation on the listed addresses or interfaces fail. Every
successful change is appended to :attr:`actions`, so tests can assert what was done
(say, that a restart re-added nothing).

What it must not do: raise for a failed operation (it reports, like the real one), or
share state between instances.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from routeplane.dataplane.model import (
    HOST_SYSCTLS,
    ROUTE_PROTO,
    TAP_PREFIX,
    Link,
    LinkEvent,
    Neighbour,
    Outcome,
    Plan,
    Proxy,
    Route,
    describe,
    tap_sysctls,
)

STEPS = tuple(step for step, _ in Plan().steps())
EVENT_CAPACITY = 4096


@dataclass
class FakeLink:
    name: str
    admin_up: bool
    carrier: bool
    mac: str
    index: int
    received: int = 0  # packets in (on a tap: what its VM sent)


@dataclass(frozen=True)
class FakeRoute:
    """Any route the fake holds: ours (``protocol == ROUTE_PROTO``) or someone else's.
    ``interface`` is the link it leaves by (for a route ``via`` a next hop: the link of
    the network the next hop is in)."""

    address: str
    interface: str
    protocol: int
    metric: int = 0
    via: str = ""

    def view(self) -> Route:
        return Route(self.address, "" if self.via else self.interface, self.metric, self.via)


class FakeKernel:
    def __init__(self, event_capacity: int = EVENT_CAPACITY) -> None:
        self._links: dict[str, FakeLink] = {}
        self._next_index = 2  # 1 is the loopback's, as on Linux
        self.all_routes: dict[tuple[str, int], FakeRoute] = {}  # by (address, metric)
        self.networks: set[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = set()
        self._neighbours: dict[tuple[str, str], tuple[str, bool]] = {}  # -> (mac, permanent)
        self._proxies: dict[tuple[str, str], int] = {}  # (address, interface) -> protocol
        self._events: list[LinkEvent] = []
        self._events_lost = False
        self.event_capacity = event_capacity
        self.sysctls: dict[str, str] = {}  # path under /proc/sys -> value
        self.conntrack: set[tuple[str, str]] = set()  # (source, destination)
        self.conntrack_flushes: list[str] = []
        self.actions: list[tuple[str, object]] = []
        self.broken: set[str] = set()  # addresses and interface names whose ops fail
        self._fail_next: Counter[str] = Counter()
        self.closed = False

    # --- the world outside the agent (hypervisor, operator, tests) ---------------------
    def add_link(self, name: str, up: bool = True, mac: str = "", *, carrier: bool = True) -> None:
        """A new interface (a tap the hypervisor created)."""
        if name in self._links:
            raise ValueError(f"link {name} exists")
        self._links[name] = FakeLink(name, up, carrier, mac.lower(), self._next_index)
        self._next_index += 1
        self._emit(name)

    def set_link(self, name: str, *, up: bool | None = None, carrier: bool | None = None) -> None:
        link = self._links[name]
        before = (link.admin_up, link.carrier)
        if carrier is not None:
            link.carrier = carrier  # routes stay (Linux marks them linkdown)
        if up is not None:
            link.admin_up = up
            if not up:
                self._flush_link(name, sysctls=False)
        if (link.admin_up, link.carrier) != before:
            self._emit(name)

    def receive(self, name: str, packets: int = 1) -> None:
        """The VM behind a tap sends ``packets`` (no event: Linux sends none either)."""
        self._links[name].received += packets

    def del_link(self, name: str) -> None:
        del self._links[name]
        self._flush_link(name, sysctls=True)
        self._emit(name)

    def _flush_link(self, name: str, *, sysctls: bool) -> None:
        self.all_routes = {k: r for k, r in self.all_routes.items() if r.interface != name}
        self._neighbours = {k: v for k, v in self._neighbours.items() if k[1] != name}
        self._proxies = {k: v for k, v in self._proxies.items() if k[1] != name}
        if sysctls:
            owned = {path for path, _ in tap_sysctls(name)}
            self.sysctls = {k: v for k, v in self.sysctls.items() if k not in owned}

    def add_route(
        self, address: str, interface: str, protocol: int, metric: int | None = None,
        *, via: str = "",
    ) -> None:  # fmt: skip
        """A route put there by someone else (``ip route add … proto static``, or BIRD's
        ``… via <peer> proto bird metric 32``)."""
        canonical = _canonical(address)
        if metric is None:
            metric = 0 if ipaddress.ip_address(canonical).version == 4 else 1024
        route = FakeRoute(canonical, interface, protocol, metric, _canonical(via) if via else "")
        self.all_routes[(canonical, metric)] = route

    def add_network(self, prefix: str, interface: str) -> None:
        """An address of the host's own on ``interface`` (``ip addr add 192.168.8.3/24 dev
        fabric0``): next hops inside its network are reachable while the link is up."""
        self.networks.add((interface, ipaddress.ip_network(prefix, strict=False)))

    def route_to(self, address: str) -> FakeRoute | None:
        """The route the kernel would use for ``address`` among its host routes (the
        lowest metric), whoever made it."""
        found = [r for r in self.all_routes.values() if r.address == _canonical(address)]
        return min(found, key=lambda r: r.metric) if found else None

    def add_neighbour(self, address: str, interface: str, mac: str, *, permanent: bool) -> None:
        self._neighbours[(_canonical(address), interface)] = (mac.lower(), permanent)

    def add_proxy(self, address: str, interface: str, protocol: int = 0) -> None:
        """A proxy entry put there by someone else (``ip neigh add proxy …``)."""
        self._proxies[(_canonical(address), interface)] = protocol

    @property
    def all_proxies(self) -> dict[tuple[str, str], int]:
        """Every proxy entry, whoever made it: (address, interface) -> protocol."""
        return dict(self._proxies)

    def _emit(self, name: str) -> None:
        if len(self._events) >= self.event_capacity:
            self._events_lost = True
            return
        link = self._links.get(name)
        self._events.append(LinkEvent(name, None if link is None else self._view(link)))

    def add_conntrack(self, source: str, destination: str) -> None:
        self.conntrack.add((_canonical(source), _canonical(destination)))

    # --- failure injection ------------------------------------------------------------
    def fail_next(self, step: str, count: int = 1) -> None:
        """The next ``count`` operations of ``step`` (one of :data:`STEPS`,
        ``"prepare_host"`` or ``"flush_conntrack"``) fail."""
        if step not in (*STEPS, "prepare_host", "flush_conntrack"):
            raise ValueError(f"unknown step {step!r}")
        self._fail_next[step] += count

    def _injected(self, step: str, *keys: str) -> str | None:
        if self._fail_next[step] > 0:
            self._fail_next[step] -= 1
            return "injected failure"
        if any(key in self.broken for key in keys):
            return "injected failure (broken)"
        return None

    # --- what the agent sees ----------------------------------------------------------
    @property
    def configured(self) -> set[str]:
        """Links whose every tap sysctl has been set."""
        return {
            name
            for name in self._links
            if all(self.sysctls.get(path) == value for path, value in tap_sysctls(name))
        }

    @property
    def forwarding(self) -> bool:
        return all(self.sysctls.get(path) == value for path, value in HOST_SYSCTLS)

    @staticmethod
    def _view(link: FakeLink) -> Link:
        return Link(link.name, link.admin_up and link.carrier, link.mac, link.index, link.admin_up)

    def links(self) -> dict[str, Link]:
        return {link.name: self._view(link) for link in self._links.values()}

    def routes(self) -> set[Route]:
        return {r.view() for r in self.all_routes.values() if r.protocol == ROUTE_PROTO}

    def neighbours(self) -> set[Neighbour]:
        return {
            Neighbour(address, interface, mac)
            for (address, interface), (mac, permanent) in self._neighbours.items()
            if permanent and interface.startswith(TAP_PREFIX)
        }

    def proxies(self) -> set[Proxy]:
        return {
            Proxy(address, interface)
            for (address, interface), protocol in self._proxies.items()
            if protocol == ROUTE_PROTO
            and interface.startswith(TAP_PREFIX)
            and ipaddress.ip_address(address).version == 6
        }

    def received(self, interface: str) -> int | None:
        link = self._links.get(interface)
        return None if link is None else link.received

    def link_events(self) -> list[LinkEvent] | None:
        events, self._events = self._events, []
        if self._events_lost:
            self._events_lost = False
            return None
        return events

    # --- changes ----------------------------------------------------------------------
    def apply(self, plan: Plan) -> Outcome:
        outcome = Outcome()
        handlers: dict[str, Callable[[Any], str | None]] = {
            "configure": self._configure,
            "neighbours_set": self._neighbour_set,
            "proxies_set": self._proxy_set,
            "routes_set": self._route_set,
            "routes_del": self._route_del,
            "proxies_del": self._proxy_del,
            "neighbours_del": self._neighbour_del,
        }
        for step, ops in plan.steps():
            do = handlers[step]
            for op in ops:
                try:
                    error = do(op)
                except ValueError as exc:  # a malformed address or MAC
                    error = str(exc)
                self._do(outcome, step, op, error)
        return outcome

    def _do(self, outcome: Outcome, step: str, op: object, error: str | None) -> None:
        if error is None:
            self.actions.append((step, op))
        else:
            outcome.failed.append(op)
            outcome.errors.append(f"{step} {describe(op)}: {error}")

    def _configure(self, name: str) -> str | None:
        if failure := self._injected("configure", name):
            return failure
        link = self._links.get(name)
        if link is None:
            return "no such interface"
        self.sysctls.update(tap_sysctls(name))
        if not link.admin_up:
            link.admin_up = True
            self._emit(name)
        return None

    def _neighbour_set(self, n: Neighbour) -> str | None:
        if failure := self._injected("neighbours_set", n.address, n.interface):
            return failure
        if n.interface not in self._links:
            return "no such interface"
        if len(bytes.fromhex(n.mac.replace(":", ""))) != 6:
            raise ValueError(f"not a MAC address: {n.mac!r}")
        self._neighbours[(_canonical(n.address), n.interface)] = (n.mac.lower(), True)
        return None

    def _proxy_set(self, p: Proxy) -> str | None:
        if failure := self._injected("proxies_set", p.address, p.interface):
            return failure
        if p.interface not in self._links:
            return "no such interface"
        self._proxies[(_canonical(p.address), p.interface)] = ROUTE_PROTO
        return None

    def _proxy_del(self, p: Proxy) -> str | None:
        if failure := self._injected("proxies_del", p.address, p.interface):
            return failure
        if p.interface not in self._links:
            return "no such interface"
        if self._proxies.pop((_canonical(p.address), p.interface), None) is None:
            return "No such file or directory (ENOENT)"
        return None

    def _route_set(self, r: Route) -> str | None:
        if failure := self._injected("routes_set", r.address, r.interface or r.via):
            return failure
        address = _canonical(r.address)
        if r.via:
            interface = self._next_hop_link(r.via)
            if interface is None:
                return "Network is unreachable (ENETUNREACH): Nexthop has invalid gateway"
            route = FakeRoute(address, interface, ROUTE_PROTO, r.metric, _canonical(r.via))
        else:
            link = self._links.get(r.interface)
            if link is None:
                return "no such interface"
            if not link.admin_up:
                return "Network is down (ENETDOWN): Nexthop device is not up"
            route = FakeRoute(address, r.interface, ROUTE_PROTO, r.metric)
        self.all_routes[(address, r.metric)] = route
        return None

    def _next_hop_link(self, via: str) -> str | None:
        """The up link whose network holds ``via`` (the kernel's on-link check)."""
        hop = ipaddress.ip_address(via)
        for name, network in sorted(self.networks, key=str):
            link = self._links.get(name)
            if link is not None and link.admin_up and hop in network:
                return name
        return None

    def _route_del(self, r: Route) -> str | None:
        if failure := self._injected("routes_del", r.address, r.interface or r.via):
            return failure
        if not r.via and r.interface not in self._links:
            return "no such interface"
        key = (_canonical(r.address), r.metric)
        held = self.all_routes.get(key)
        if held is None or held.protocol != ROUTE_PROTO or held.view() != r:
            return "No such process (ESRCH)"
        del self.all_routes[key]
        return None

    def _neighbour_del(self, n: Neighbour) -> str | None:
        if failure := self._injected("neighbours_del", n.address, n.interface):
            return failure
        if n.interface not in self._links:
            return "no such interface"
        if self._neighbours.pop((_canonical(n.address), n.interface), None) is None:
            return "No such file or directory (ENOENT)"
        return None

    def prepare_host(self) -> Outcome:
        outcome = Outcome()
        for path, value in HOST_SYSCTLS:
            failure = self._injected("prepare_host", path)
            if failure is None:
                self.sysctls[path] = value
            self._do(outcome, "prepare_host", path, failure)
        return outcome

    def flush_conntrack(self, addresses: Iterable[str]) -> Outcome:
        outcome = Outcome()
        for address in addresses:
            try:
                canonical = _canonical(address)
            except ValueError as exc:
                self._do(outcome, "flush_conntrack", address, str(exc))
                continue
            failure = self._injected("flush_conntrack", canonical)
            if failure is None:
                self.conntrack = {e for e in self.conntrack if canonical not in e}
                self.conntrack_flushes.append(canonical)
            self._do(outcome, "flush_conntrack", address, failure)
        return outcome

    def close(self) -> None:
        self.closed = True


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))


__all__ = ["STEPS", "FakeKernel", "FakeLink", "FakeRoute"]
