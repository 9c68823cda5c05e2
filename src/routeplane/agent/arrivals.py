"""When a migrating VM arrives on this host: the trigger for its routes here.

During a live migration the port has a record for its target host too
(``migration_target``, model/endpoint.py). The hypervisor creates the target's tap when
the migration starts, long before the VM runs there (pre-copy), so neither the tap's
existence nor its being up says the VM is here. What does: the VM *sending* on the tap.
A paused incoming VM sends nothing; once resumed, the hypervisor announces it at once
(QEMU's self-announce: RARP frames, then the guest's own gratuitous ARP and neighbour
advertisements). So a target awaits arrival until its tap's received-packet counter is
above zero (``Kernel.received``); from then on it is *arrived* and its routes go in
(``desired.endpoint_state``). The counter is read by one netlink request per waiting
tap, every ``arrival_interval``, only while some target waits.

Why a counter and not a neighbour entry or an nftables rule: the agent installs the
VM's neighbour entries itself (permanent: a GARP changes nothing visible), and a rule
would need a way to notify; a counter needs neither, survives an agent restart (a tap
that has received is still non-zero), and costs nothing when no migration runs.

What this module must not do: decide routes (``desired``) or when to apply (the loop).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from routeplane.agent.desired import awaits_arrival
from routeplane.dataplane.ports import Kernel
from routeplane.model.endpoint import EndpointRecord
from routeplane.model.errors import DataplaneError

LOG = logging.getLogger("routeplane.agent")


class Arrivals:
    """The migration targets of this host: awaiting their VM, or arrived."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.awaiting: dict[str, str] = {}  # port id -> its tap
        self.arrived: set[str] = set()

    def note(self, endpoints: Mapping[str, EndpointRecord | None]) -> None:
        """Take in these endpoints' current records (None: removed), then look at the
        taps of the targets among them."""
        for port_id, endpoint in endpoints.items():
            if endpoint is None or not awaits_arrival(endpoint):
                self.awaiting.pop(port_id, None)
                self.arrived.discard(port_id)  # activated, cancelled or removed
            elif port_id not in self.arrived:
                self.awaiting[port_id] = str(endpoint.get("interface", ""))
        self.check()

    def check(self) -> set[str]:
        """The awaited endpoints whose VM has sent on its tap since the last look."""
        found: set[str] = set()
        for port_id, tap in list(self.awaiting.items()):
            try:
                received = self.kernel.received(tap)
            except DataplaneError as exc:
                LOG.warning("kernel: %s; looking again later", exc)
                continue
            if received:
                LOG.info("migration: the VM of %s arrived on %s", port_id, tap)
                del self.awaiting[port_id]
                self.arrived.add(port_id)
                found.add(port_id)
        return found


__all__ = ["Arrivals"]
