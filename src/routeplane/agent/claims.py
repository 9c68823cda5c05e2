"""Which of this host's addresses are contested, kept one endpoint change at a time.

``desired.contested`` says it for a whole host at once: an address that endpoints of
more than one project claim is routed to none of them. The agent's rounds look only at
the endpoints that changed, so this keeps the same verdict incrementally — each address's
claimants (port → project) — and says, for each change, which *other* endpoints must be
looked at again because one of their addresses became contested or no longer is (the
port claiming it already routed it, or was refused it). It warns once as an address
becomes contested (naming the ports and projects, so an operator can fix the data, as
``routeplane store check`` would report it) and says when it is settled again.

What this module must not do: talk to the kernel or the store; it only keeps an index.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from routeplane.agent.desired import claimed
from routeplane.model.endpoint import EndpointRecord

LOG = logging.getLogger("routeplane.agent")


class Claims:
    """Each routed address's claimants on this host, and the contested ones."""

    def __init__(self) -> None:
        self.claimants: dict[str, dict[str, str]] = {}  # address -> port id -> project
        self.by_port: dict[str, tuple[str, ...]] = {}  # port id -> addresses it claims
        self.contested: set[str] = set()

    def note(
        self, port_id: str, record: EndpointRecord | None, routed: Sequence[str] | None = None
    ) -> set[str]:
        """Port ``port_id``'s endpoint record is now ``record`` (None: gone; ``routed``:
        its routed addresses, when the caller has them). The other ports whose routes
        change with it."""
        before = self.by_port.pop(port_id, ())
        after = tuple(claimed(record, routed)) if record is not None else ()
        project = str(record.get("project_id", "")) if record is not None else ""
        if after:
            self.by_port[port_id] = after
        for address in before:
            holders = self.claimants[address]
            del holders[port_id]
            if not holders:
                del self.claimants[address]
        for address in after:
            self.claimants.setdefault(address, {})[port_id] = project
        others: set[str] = set()
        for address in {*before, *after}:
            holders = self.claimants.get(address, {})
            now = len(set(holders.values())) > 1
            if now == (address in self.contested):
                continue
            others |= holders.keys() - {port_id}
            if now:
                self.contested.add(address)
                LOG.warning(
                    "address %s is claimed by ports of %d projects (%s): routed to none of"
                    " them until only one project's ports claim it",
                    address,
                    len(set(holders.values())),
                    ", ".join(f"{p} of {holders[p] or '?'}" for p in sorted(holders)),
                )
            else:
                self.contested.discard(address)
                LOG.info("address %s is no longer contested: routed again", address)
        return others


__all__ = ["Claims"]
