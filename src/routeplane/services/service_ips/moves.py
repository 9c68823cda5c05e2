"""The atomic move of one fixed IP from one port to another (extension ``routeplane-fixed-ip-move``).

Neutron moves an address with two port updates, and between them the address is on no
port (or, done the other way round, the second update fails because it is still taken).
Here one store transaction does all of it: the claim ``ipam/<subnet>/<ip>`` changes owner,
both port documents and both endpoint records are rewritten, and — when the address is a
service IP's — the service IP's ``active_port_id`` and move history follow. The
transaction compares every document it read, so a concurrent move, port update or
floating-IP association makes it read again (``Repo.run``); the address is at every
revision on exactly one port.

The endpoint records also carry make-before-break hints (``move_hints``): the port that
gained the address prefers it, the port that lost it drains it.

Refusals are Neutron-shaped: the port in the URL is the resource (``PortNotFound``, or
``HTTPNotFound`` when it is another project's; ``PolicyNotAuthorized`` for readers); the
source port is a reference in the body (``PortNotFound`` when missing or invisible);
an address with a floating IP on the source is refused with the text Neutron's port
update uses.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from routeplane.services.attributes import Attr, check_create, ip_address, is_uuid
from routeplane.services.common import bump
from routeplane.services.context import Context
from routeplane.services.core.fixed_ips import FixedIP, parse_held
from routeplane.services.core.ports import ROUTER_OWNED, PortService
from routeplane.services.errors import ApiFault, bad_resource_request, invalid_input
from routeplane.services.repo import Change, Doc, Outcome, Repo, key, now
from routeplane.services.service_ips.hints import (
    record_moved_in,
    record_moved_out,
    service_ip_index,
)

MOVE_ATTRS: dict[str, Attr] = {
    "ip_address": Attr(validate=ip_address),
    "from_port_id": Attr(validate=is_uuid),
}
MAX_HISTORY = 20  # moves a service IP keeps, newest last


def record_move(
    service_ip: dict[str, Any],
    from_port_id: str | None,
    to_port_id: str,
    reason: str,
    *,
    primary: bool,
) -> dict[str, Any]:
    """The service IP after a move: new active port, one more history entry (bounded).

    ``primary``: a person chose this port (create, update, the move extension), so it is
    the one ``failback`` returns to; the controller's own moves keep the primary.
    """
    moved = bump(service_ip)
    moved["active_port_id"] = to_port_id
    if primary:
        moved["primary_port_id"] = to_port_id
    entry = {"at": now(), "from_port_id": from_port_id, "to_port_id": to_port_id, "reason": reason}
    moved["moves"] = [*service_ip.get("moves", []), entry][-MAX_HISTORY:]
    return moved


@dataclass(frozen=True)
class Moved:
    """What a move wrote: the address, and both ports as they now are."""

    subnet_id: str
    address: str
    source: dict[str, Any] | None  # None: the address was placed, not moved
    target: dict[str, Any]


def _guard_owner(port: dict[str, Any], address: str) -> None:
    """Routers' and floating IPs' own ports keep their addresses (Neutron refuses too)."""
    owner = str(port.get("device_owner", ""))
    if owner in ROUTER_OWNED:
        raise bad_resource_request(
            "port", f"Cannot move IP address {address}: port {port['id']} is owned by {owner}"
        )


class FixedIPMoves:
    def __init__(self, repo: Repo, ports: PortService) -> None:
        self.repo = repo
        self.ports = ports

    # the HTTP use case ------------------------------------------------------------------
    def move(self, ctx: Context, target_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v2.0/ports/{target}/move_fixed_ip {"fixed_ip": {ip_address, from_port_id}}``."""
        asked = check_create(MOVE_ATTRS, dict(body), is_admin=ctx.is_admin, resource="port")
        address = str(ipaddress.ip_address(asked["ip_address"]))
        source_id = str(asked["from_port_id"])

        def use_case() -> Outcome[dict[str, Any]]:
            target = self.ports.load_for_write(ctx, target_id, "update_port")
            source = self._source(ctx, source_id)
            change = Change()
            moved = self.move_in(change, source, target, address)
            self._follow_service_ip(change, moved)
            return Outcome(change, moved.target)

        return self.ports.render(ctx, self.repo.run(use_case))

    def _source(self, ctx: Context, port_id: str) -> Doc:
        doc = self.repo.get("ports", port_id) if "/" not in port_id else None
        if doc is None or not self.ports.visible_to(ctx, doc.value):
            raise self.ports.not_found(port_id)
        return doc

    def _follow_service_ip(self, change: Change, moved: Moved) -> None:
        """A service IP's address moved by hand: the service IP says where it is now."""
        index_key = service_ip_index(moved.subnet_id, moved.address)
        index = self.repo.get_key(index_key)
        change.depends_on(index, index_key)
        if index is None:
            return
        service_ip = self.repo.get("service_ips", str(index.value.get("id")))
        if service_ip is None:
            return
        change.depends_on(service_ip)
        source_id = None if moved.source is None else str(moved.source["id"])
        change.put(
            service_ip.key,
            record_move(service_ip.value, source_id, moved.target["id"], "manual", primary=True),
        )

    # the transaction's contents, shared with service IPs and the controller ---------------
    def move_in(self, change: Change, source: Doc, target: Doc, address: str) -> Moved:
        """Move ``address`` from ``source`` to ``target`` within ``change``."""
        held = parse_held(source.value.get("fixed_ips"))
        found = [ip for ip in held if ip.ip_address == address]
        if source.value["id"] == target.value["id"]:
            raise invalid_input(
                f"Cannot move IP address {address} from port {source.value['id']} to itself"
            )
        if not found:
            raise bad_resource_request(
                "port", f"Port {source.value['id']} does not have fixed ip {address}"
            )
        if source.value["network_id"] != target.value["network_id"]:
            raise invalid_input(
                f"Port {source.value['id']} is on network {source.value['network_id']}, but "
                f"port {target.value['id']} is on network {target.value['network_id']}"
            )
        _guard_owner(source.value, address)
        _guard_owner(target.value, address)
        subnet_id = found[0].subnet_id
        remaining = [ip for ip in held if ip.ip_address != address]
        self.ports._guard_floating(source.value["id"], held, remaining)
        generation = self._claim(change, subnet_id, address, target.value["id"], source.value)
        at = time.time()

        new_source = bump(source.value)
        new_source["fixed_ips"] = [ip.as_json() for ip in remaining]
        record_moved_out(new_source, address, generation, target.value, at)
        new_target = self._add(target.value, subnet_id, address)
        record_moved_in(new_target, address, generation, source.value, at)

        for old, new in ((source, new_source), (target, new_target)):
            change.depends_on(old)
            change.put(old.key, new)
            self.ports._write_endpoint(change, old.value, new)
        return Moved(subnet_id, address, new_source, new_target)

    def place(self, change: Change, target: Doc, subnet_id: str, address: str) -> Moved:
        """Put a free ``address`` on ``target``: recovery when its port was deleted."""
        _guard_owner(target.value, address)
        generation = self._claim(change, subnet_id, address, target.value["id"], None)
        new_target = self._add(target.value, subnet_id, address)
        record_moved_in(new_target, address, generation, None, time.time())
        change.depends_on(target)
        change.put(target.key, new_target)
        self.ports._write_endpoint(change, target.value, new_target)
        return Moved(subnet_id, address, None, new_target)

    @staticmethod
    def _add(port: dict[str, Any], subnet_id: str, address: str) -> dict[str, Any]:
        added = bump(port)
        added["fixed_ips"] = [*port.get("fixed_ips", []), FixedIP(subnet_id, address).as_json()]
        return added

    def _claim(
        self,
        change: Change,
        subnet_id: str,
        address: str,
        to_port_id: str,
        holder: dict[str, Any] | None,
    ) -> int:
        """Hand the claim to ``to_port_id``; returns the move's generation.

        ``holder`` None: the address must be free. Otherwise the claim must be the
        holder's (anything else is a store that lost its consistency: refuse, change
        nothing).
        """
        claim_key = key("ipam", subnet_id, address)
        claim = self.repo.get_key(claim_key)
        expected = None if holder is None else holder["id"]
        current = None if claim is None else claim.value.get("port_id")
        if current != expected:
            raise ApiFault(
                "IpAddressAlreadyAllocated",
                409,
                f"IP address {address} already allocated in subnet {subnet_id}",
            )
        change.depends_on(claim, claim_key)
        change.put(claim_key, {"port_id": to_port_id})
        base = claim.mod_revision if claim is not None else self.repo.store.revision()
        return base + 1


__all__ = [
    "MAX_HISTORY",
    "MOVE_ATTRS",
    "FixedIPMoves",
    "Moved",
    "record_move",
]
