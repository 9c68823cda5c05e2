"""The narrow interface between the agent and the kernel, so the agent can run against a
stateful fake in unit tests and against Linux (in a network namespace) for real.

Reads return only what is routeplane's (routes with our protocol number, permanent
neighbours on taps) plus the links, so nothing else can ever be swept by mistake.
A read that cannot be done at all raises ``model.errors.DataplaneError``; a change that
fails is reported in the returned ``Outcome`` and never raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from routeplane.dataplane.model import Link, Neighbour, Outcome, Plan, Route


class Kernel(Protocol):
    def links(self) -> dict[str, Link]:
        """Every interface by name (the agent looks only at taps)."""
        ...

    def routes(self) -> set[Route]:
        """Routes carrying routeplane's protocol number, IPv4 and IPv6."""
        ...

    def neighbours(self) -> set[Neighbour]:
        """Permanent neighbour entries on tap interfaces."""
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
