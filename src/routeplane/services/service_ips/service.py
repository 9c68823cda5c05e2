"""Service IPs: an address that lives on one port of a group and moves, atomically, to another.

``/v2.0/service_ips`` (extension ``routeplane-service-ip``), project-scoped like every
resource. A service IP names its address (given, or allocated from ``subnet_id``), the
port that holds it now (``active_port_id``), the ports that may take it over
(``standby_port_ids``, in order of preference), a health check, and whether a recovered
port takes the address back (``failback``). The address is an ordinary fixed IP of the
active port, so everything a fixed IP gets (host route, anti-spoofing, BGP) it gets.

Every request is one transaction:

- create claims the address (``ipam/<subnet>/<ip>``; an address the active port already
  holds is adopted), puts it on the active port, and claims the index
  ``service_ip_addresses/<subnet>/<ip>`` so that no two service IPs share an address and
  plain port updates cannot take it away;
- changing ``active_port_id`` is an atomic move (``fixed_ip_moves``), recorded in
  ``moves`` with reason ``manual``; the port chosen becomes ``primary_port_id``, the one
  ``failback`` returns to (sending the current active port makes it the primary);
- delete takes the address off the active port and releases it.

The controller (``controller``) moves the address with :meth:`ServiceIPService.move_active`,
the same code, with reason ``health`` or ``failback``. ``status`` is derived when shown:
``ACTIVE`` while the active port holds the address and is bound and up, ``DOWN`` while it
holds it otherwise, ``ERROR`` when it does not hold it (the port was deleted; the next
move puts the address back on a port).
"""

from __future__ import annotations

from typing import Any

from routeplane.services.attributes import (
    Attr,
    ip_address,
    is_uuid,
    to_boolean,
    uuid_list,
    uuid_or_none,
)
from routeplane.services.common import bump, new_doc, require_write, standard_attrs
from routeplane.services.context import Context
from routeplane.services.core.fixed_ips import parse_held
from routeplane.services.core.ports import PortService
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, invalid_input
from routeplane.services.repo import Change, Doc, Outcome, Repo, key
from routeplane.services.service_ips.hints import public, service_ip_index
from routeplane.services.service_ips.moves import FixedIPMoves, record_move

HEALTH_KEYS = ("type", "port", "path", "interval", "failure_threshold")
INTERVAL_RANGE = (0.1, 60.0)  # seconds
THRESHOLD_RANGE = (1, 10)
DEFAULT_INTERVAL = 1.0
DEFAULT_THRESHOLD = 3


def _ip_or_none(value: Any) -> str | None:
    return None if value is None else ip_address(value)


def _unique_uuids(value: Any) -> str | None:
    reason = uuid_list(value)
    if reason:
        return reason
    dups = sorted({v for v in value if value.count(v) > 1})
    return f"Duplicate items in the list: '{', '.join(dups)}'" if dups else None


def _health_defaults(value: Any) -> Any:
    """Fill what a check may leave out; anything malformed is left to the validator."""
    if not isinstance(value, dict):
        return value
    filled = dict(value)
    filled.setdefault("interval", DEFAULT_INTERVAL)
    filled.setdefault("failure_threshold", DEFAULT_THRESHOLD)
    if filled.get("type") == "http":
        filled.setdefault("path", "/")
    return filled


def _health_check(value: Any) -> str | None:
    """``{type: tcp|http, port, path (http), interval, failure_threshold}`` or null."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"'{value}' is not a dictionary"
    unknown = sorted(set(value) - set(HEALTH_KEYS))
    if unknown:
        return f"Unrecognized health_check key(s) '{', '.join(unknown)}'"
    kind, port = value.get("type"), value.get("port")
    if kind not in ("tcp", "http"):
        return f"health_check type '{kind}' is not one of 'tcp', 'http'"
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        return f"health_check port '{port}' is not a port number (1-65535)"
    path = value.get("path")
    if kind == "tcp" and path is not None:
        return "health_check path is only valid for http checks"
    if kind == "http" and (
        not isinstance(path, str) or not path.startswith("/") or len(path) > 255
    ):
        return f"health_check path '{path}' is not an absolute URL path of at most 255 characters"
    interval, threshold = value.get("interval"), value.get("failure_threshold")
    low, high = INTERVAL_RANGE
    if (
        not isinstance(interval, int | float)
        or isinstance(interval, bool)
        or not low <= interval <= high
    ):
        return f"health_check interval '{interval}' is not a number of seconds from {low} to {high}"
    low_t, high_t = THRESHOLD_RANGE
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        return f"health_check failure_threshold '{threshold}' is not an integer"
    if not low_t <= threshold <= high_t:
        return f"health_check failure_threshold {threshold} is not from {low_t} to {high_t}"
    return None


ATTRS: dict[str, Attr] = {
    **standard_attrs(),
    "ip_address": Attr(put=False, default=None, validate=_ip_or_none, sort=True),
    "subnet_id": Attr(put=False, default=None, validate=uuid_or_none, sort=True),
    "network_id": Attr(post=False, put=False, default=None, sort=True),
    "active_port_id": Attr(validate=is_uuid, sort=True),
    "primary_port_id": Attr(post=False, put=False, default=None, sort=True),
    "standby_port_ids": Attr(default=list, validate=_unique_uuids, filter=False),
    "health_check": Attr(
        default=None, convert=_health_defaults, validate=_health_check, filter=False
    ),
    "failback": Attr(default=False, convert=to_boolean, sort=True),
    "status": Attr(post=False, put=False, default="DOWN", sort=True),
    "moves": Attr(post=False, put=False, default=list, filter=False),
}


def holds(port: dict[str, Any], address: str) -> bool:
    return any(ip.ip_address == address for ip in parse_held(port.get("fixed_ips")))


class ServiceIPService(DocService):
    name = "service_ip"
    collection = "service_ips"
    kind = "service_ips"
    attrs = ATTRS
    not_found_type = "ServiceIpNotFound"
    not_found_message = "Service IP {id} could not be found."

    def __init__(self, repo: Repo, ports: PortService, moves: FixedIPMoves) -> None:
        super().__init__(repo)
        self.ports = ports
        self.moves = moves

    # showing -------------------------------------------------------------------------
    def status(self, doc: dict[str, Any]) -> str:
        port = self.repo.get("ports", str(doc.get("active_port_id")))
        if port is None or not holds(port.value, str(doc.get("ip_address"))):
            return "ERROR"
        bound = port.value.get("binding:host_id") and port.value.get("admin_state_up", True)
        return "ACTIVE" if bound else "DOWN"

    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        shown = public(doc)
        shown["status"] = self.status(doc)
        return super().render(ctx, shown)

    # ports ---------------------------------------------------------------------------
    def _port(self, ctx: Context, port_id: str, network_id: str | None) -> Doc:
        """A port the caller may see (else PortNotFound), on ``network_id`` when given."""
        doc = self.repo.get("ports", port_id) if "/" not in port_id else None
        if doc is None or not ctx.sees(str(doc.value.get("project_id"))):
            raise self.ports.not_found(port_id)
        if network_id is not None and doc.value["network_id"] != network_id:
            raise invalid_input(f"Port {port_id} is not on network {network_id} of the service IP")
        return doc

    def _standbys(self, ctx: Context, change: Change, port_ids: list[str], network_id: str) -> None:
        for port_id in port_ids:
            change.depends_on(self._port(ctx, str(port_id), network_id))

    # create --------------------------------------------------------------------------
    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_service_ip")
        base = new_doc(ctx, dict(data))

        def use_case() -> Outcome[dict[str, Any]]:
            doc = dict(base)
            change = Change()
            active = self._port(ctx, str(doc["active_port_id"]), None)
            network_id = str(active.value["network_id"])
            self._standbys(ctx, change, list(doc.get("standby_port_ids") or []), network_id)
            subnet_id, address = self._address(ctx, change, doc, active)
            index_key = service_ip_index(subnet_id, address)
            owner = self.repo.get_key(index_key)
            if owner is not None:
                raise ApiFault(
                    "IpAddressAlreadyAllocated",
                    409,
                    f"IP address {address} already allocated in subnet {subnet_id}",
                )
            change.claim(index_key, {"id": doc["id"]})
            if holds(active.value, address):
                change.depends_on(active)  # adopted: the port keeps it as it is
            else:
                self.moves.place(change, active, subnet_id, address)
            doc.update(
                ip_address=address,
                subnet_id=subnet_id,
                network_id=network_id,
                primary_port_id=active.value["id"],
                moves=[],
            )
            doc.pop("status", None)  # derived when shown
            change.claim(key(self.kind, doc["id"]), doc)
            return Outcome(change, doc)

        return self.render(ctx, self.repo.run(use_case))

    def _address(
        self, ctx: Context, change: Change, doc: dict[str, Any], active: Doc
    ) -> tuple[str, str]:
        """The address asked for, or one allocated: ``(subnet_id, ip_address)``."""
        network_id = str(active.value["network_id"])
        subnet_id = doc.get("subnet_id")
        if subnet_id is not None:
            # a subnet of the active port's network is as visible as the port itself
            subnet = self.repo.get("subnets", str(subnet_id))
            foreign = subnet is not None and subnet.value["network_id"] != network_id
            if subnet is None or (foreign and not ctx.sees(str(subnet.value["project_id"]))):
                raise ApiFault("SubnetNotFound", 404, f"Subnet {subnet_id} could not be found.")
            if subnet.value["network_id"] != network_id:
                raise invalid_input(
                    f"Subnet {subnet_id} is not on network {network_id} of port "
                    f"{active.value['id']}"
                )
        net = self.repo.get("networks", network_id)
        if net is None:
            raise ApiFault("NetworkNotFound", 404, f"Network {network_id} could not be found.")
        entry = {k: doc[k] for k in ("subnet_id", "ip_address") if doc.get(k) is not None}
        mac = str(active.value.get("mac_address", ""))
        project = str(active.value["project_id"])
        resolver = self.ports._resolver(net, active.value["id"], change, mac, project)
        [fixed] = resolver.requested([entry])
        return fixed.subnet_id, fixed.ip_address

    # moving --------------------------------------------------------------------------
    def move_active(
        self, change: Change, service_ip: dict[str, Any], target: Doc, reason: str, *, primary: bool
    ) -> dict[str, Any]:
        """Move the address to ``target`` within ``change``; the service IP as it is after.

        The one code path of every move of a service IP (API update, controller). When
        the active port no longer holds the address (it was deleted), the address is
        placed on ``target`` if it is free.
        """
        network_id = str(service_ip["network_id"])
        if target.value["network_id"] != network_id:
            raise invalid_input(
                f"Port {target.value['id']} is not on network {network_id} of the service IP"
            )
        address = str(service_ip["ip_address"])
        source = self.repo.get("ports", str(service_ip["active_port_id"]))
        if source is not None and holds(source.value, address):
            self.moves.move_in(change, source, target, address)
        else:
            self.moves.place(change, target, str(service_ip["subnet_id"]), address)
        return record_move(
            service_ip, service_ip["active_port_id"], target.value["id"], reason, primary=primary
        )

    # update --------------------------------------------------------------------------
    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        def apply(doc: Doc, change: Change) -> dict[str, Any]:
            network_id = str(doc.value["network_id"])
            updated = {**doc.value, **{k: v for k, v in data.items() if k != "active_port_id"}}
            if "standby_port_ids" in data:
                self._standbys(ctx, change, list(data["standby_port_ids"]), network_id)
            wanted = data.get("active_port_id")
            if wanted is not None and wanted != doc.value["active_port_id"]:
                target = self._port(ctx, str(wanted), network_id)
                return self.move_active(change, updated, target, "manual", primary=True)
            if wanted is not None:  # the current active port, chosen: now the primary
                updated["primary_port_id"] = wanted
            return updated

        return self.render(ctx, self.update_doc(ctx, resource_id, if_match, apply))

    # delete --------------------------------------------------------------------------
    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        self.delete_doc(ctx, resource_id, if_match, remove=self._remove)

    def _remove(self, doc: Doc, change: Change) -> None:
        """The address leaves the active port (if it still holds it) and is released."""
        address, subnet_id = str(doc.value["ip_address"]), str(doc.value["subnet_id"])
        active = self.repo.get("ports", str(doc.value["active_port_id"]))
        if active is not None and holds(active.value, address):
            self._release(change, active, subnet_id, address)
        change.delete(service_ip_index(subnet_id, address))

    def _release(self, change: Change, port: Doc, subnet_id: str, address: str) -> None:
        """Take the address off the port and free it, as a port update would."""
        held = parse_held(port.value.get("fixed_ips"))
        remaining = [ip for ip in held if ip.ip_address != address]
        self.ports._guard_floating(port.value["id"], held, remaining)
        released = bump(port.value)
        released["fixed_ips"] = [ip.as_json() for ip in remaining]
        change.depends_on(port)
        change.put(port.key, released)
        change.delete(key("ipam", subnet_id, address))
        self.ports._write_endpoint(change, port.value, released)


__all__ = ["ATTRS", "ServiceIPService", "holds"]
