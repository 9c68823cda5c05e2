"""The narrow interface between the agent and the kernel, so the agent can run against a
stateful fake in unit tests and against Linux (in a network namespace) for real.

Reads return only what is routeplane's (routes and IPv6 proxy entries with our protocol
number, permanent neighbours on taps) plus the links, so nothing else can ever be swept by
mistake. Link changes also arrive as events, so a tap that appears, comes up or is
recreated is seen at once instead of at the next periodic read.
A read that cannot be done at all raises ``model.errors.DataplaneError``; a change that
fails is reported in the returned ``Outcome`` and never raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from routeplane.dataplane.model import Link, LinkEvent, Neighbour, Outcome, Plan, Proxy, Route


class Kernel(Protocol):
    def links(self) -> dict[str, Link]:
        """Every interface by name (the agent looks only at taps)."""
        ...

    def routes(self) -> set[Route]:
        """Host routes carrying routeplane's protocol number, IPv4 and IPv6, with their
        metric (the kernel keys a route by address and metric: an address may briefly
        have two); a route via a next hop (a draining address) has no interface."""
        ...

    def neighbours(self) -> set[Neighbour]:
        """Permanent neighbour entries on tap interfaces."""
        ...

    def proxies(self) -> set[Proxy]:
        """IPv6 proxy neighbour entries carrying routeplane's protocol number, on taps."""
        ...

    def link_events(self) -> list[LinkEvent] | None:
        """The link changes since the last call, oldest first, without waiting. ``None``
        when the kernel dropped some (its queue overflowed): every link must then be
        read again with :meth:`links`."""
        ...

    def received(self, interface: str) -> int | None:
        """How many packets ``interface`` has received (on a tap: what its VM sent);
        None when there is no such interface. Asked only of a migration's target taps."""
        ...

    def apply(self, plan: Plan) -> Outcome:
        """Apply a plan in its order; failures are reported, never raised, so one bad
        operation does not block the others."""
        ...

    def prepare_host(self) -> Outcome:
        """Host-wide settings, once at start: IPv4 and IPv6 forwarding on. The failed
        operations are the sysctl paths that could not be set."""
        ...

    def flush_conntrack(self, addresses: Iterable[str]) -> Outcome:
        """Forget connection-tracking entries to or from these addresses (an address that
        changed owner must not keep steering packets by old NAT or state). The failed
        operations are the addresses; nothing to flush is not a failure."""
        ...

    def close(self) -> None: ...


__all__ = ["Kernel"]
