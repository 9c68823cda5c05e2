"""Subnets: the address ranges of a network, IPv4 or IPv6, with their allocation pools.

Checks follow Neutron (db_base_plugin_v2._validate_subnet, ipam_backend_mixin): a CIDR
with host bits is taken as its network (``10.50.0.1/24`` → ``10.50.0.0/24``); it must be
of the declared IP version, and with DHCP enabled at most a /30 (IPv4) or /126 (IPv6).
The default gateway is the first host address for IPv4 and the subnet-router anycast
address (the network address) for IPv6; ``null`` means none. A gateway outside the CIDR
is accepted; inside, it must not be the IPv4 network or broadcast address nor lie in an
explicit pool. Pools default to every host address but the gateway, must lie within the
host range, and must not overlap. Subnets of one network must not overlap (clients rely
on the substring ``overlaps with another subnet`` to try the next CIDR), nor any subnet
of another network: one address space (:mod:`routeplane.services.core.address_space`). A subnet is
deleted only when no port holds an address on it. A gateway change rewrites, in the same
transaction, the endpoint records of the bound ports on the subnet (endpoint_refresh).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from routeplane.ipam.pools import IPAddress, IPNetwork, Pool, default_pools, first_host, last_host
from routeplane.services.attributes import (
    Attr,
    ip_address,
    is_uuid,
    one_of,
    to_boolean,
    to_int,
    to_int_or_none,
    uuid_or_none,
)
from routeplane.services.common import bump, new_doc, require_write, standard_attrs
from routeplane.services.context import Context
from routeplane.services.core import address_space
from routeplane.services.core.endpoint_refresh import (
    PORTS_PER_TXN,
    SUBNET_FIELDS,
    add_rewrites,
    changed,
    converge,
    holders,
    rewrites,
)
from routeplane.services.core.networks import NetworkService, mtu_conflict
from routeplane.services.core.subnet_pools import SubnetPoolService
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, bad_resource_request, forbidden, invalid_input
from routeplane.services.repo import Change, Doc, Outcome, Repo, key

IPV6_MODES = (None, "slaac", "dhcpv6-stateful", "dhcpv6-stateless")
REQUEST_ONLY = ("prefixlen", "use_default_subnetpool")
AUTO: Any = object()  # gateway_ip not given: the default gateway of the CIDR


def _gateway(value: Any) -> str | None:
    return None if value is None else ip_address(value)


def _pools_format(value: Any) -> str | None:
    """neutron-lib's validate_ip_pools: a list of {start, end} dicts of addresses."""
    if not isinstance(value, list):
        return f"Invalid data format for IP pool: '{value}'"
    for pool in value:
        if not isinstance(pool, dict):
            return f"Invalid input. '{pool}' must be a dictionary with keys: ['start', 'end']"
        if set(pool) != {"start", "end"}:
            return (
                "Validation of dictionary's keys failed. Expected keys: {'start', 'end'} "
                f"Provided keys: {set(pool)}"
            )
        for end in ("start", "end"):
            reason = ip_address(pool[end])
            if reason:
                return reason
    return None


ATTRS: dict[str, Attr] = {
    **standard_attrs(),
    "network_id": Attr(put=False, validate=is_uuid, sort=True),
    "ip_version": Attr(put=False, convert=to_int, validate=one_of(4, 6), sort=True),
    "cidr": Attr(put=False, default=None, sort=True),
    "gateway_ip": Attr(default=AUTO, validate=_gateway, sort=True),
    "allocation_pools": Attr(default=None, validate=_pools_format, filter=False),
    "dns_nameservers": Attr(default=list, filter=False),
    "host_routes": Attr(default=list, filter=False),
    "enable_dhcp": Attr(default=True, convert=to_boolean, sort=True),
    "ipv6_ra_mode": Attr(put=False, default=None, validate=one_of(*IPV6_MODES), sort=True),
    "ipv6_address_mode": Attr(put=False, default=None, validate=one_of(*IPV6_MODES), sort=True),
    "subnetpool_id": Attr(put=False, default=None, validate=uuid_or_none),
    # asked for on create, never stored or shown (subnet_allocation, default-subnetpools)
    "prefixlen": Attr(put=False, default=None, convert=to_int_or_none),
    "use_default_subnetpool": Attr(put=False, default=False, convert=to_boolean),
    "service_types": Attr(default=list),
    "router:external": Attr(post=False, put=False, default=False),
    # ours, from subnet-dns-publish-fixed-ip (not loaded in the reference deployment)
    "dns_publish_fixed_ip": Attr(default=False, convert=to_boolean),
    # neutron-lib: never shown, only a filter, on the network's sharing (before_list)
    "shared": Attr(post=False, put=False, convert=to_boolean),
}


def parse_cidr(cidr: Any, version: int) -> IPNetwork:
    try:
        if not isinstance(cidr, str):
            raise ValueError
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise invalid_input(f"{cidr} is not in a CIDR format") from None
    _match_version(network.version, version, "cidr", cidr)
    return network


def _match_version(actual: int, version: int, name: str, given: Any) -> None:
    if actual != version:
        raise invalid_input(f"{name} '{given}' does not match the ip_version '{version}'")


def _check_dhcp_prefix(network: IPNetwork) -> None:
    if network.prefixlen > (30 if network.version == 4 else 126):
        raise invalid_input(
            "Subnet has a prefix length that is incompatible with DHCP service enabled"
        )


def _check_gateway(network: IPNetwork, gateway: IPAddress, given: Any) -> None:
    _match_version(gateway.version, network.version, "gateway_ip", given)
    if (
        gateway in network
        and network.version == 4
        and network.num_addresses > 2
        and gateway in (network.network_address, network.broadcast_address)
    ):
        raise invalid_input("Gateway is not valid on subnet")


def _range(pool: Pool) -> str:
    return f"{pool[0]}-{pool[1]}"


def parse_pools(raw: list[dict[str, str]], network: IPNetwork) -> list[Pool]:
    """Neutron's validate_allocation_pools on already well-formed entries."""
    pools: list[Pool] = []
    for item in raw:
        start, end = ipaddress.ip_address(item["start"]), ipaddress.ip_address(item["end"])
        if (
            start.version != network.version
            or end.version != network.version
            or int(start) > int(end)
        ):
            raise ApiFault(
                "InvalidAllocationPool", 400, f"The allocation pool {item} is not valid."
            )
        if int(start) < int(first_host(network)) or int(end) > int(last_host(network)):
            raise ApiFault(
                "OutOfBoundsAllocationPool",
                400,
                f"The allocation pool {start}-{end} spans beyond the subnet cidr {network}.",
            )
        pools.append((start, end))
    for i, left in enumerate(pools):
        for right in pools[i + 1 :]:
            if int(left[0]) <= int(right[1]) and int(right[0]) <= int(left[1]):
                raise ApiFault(
                    "OverlappingAllocationPools",
                    409,
                    f"Found overlapping allocation pools: {_range(left)} {_range(right)} "
                    f"for subnet {network}.",
                )
    return pools


def _check_gateway_out_of_pools(gateway: IPAddress | None, pools: list[Pool]) -> None:
    for pool in pools:
        if gateway is not None and int(pool[0]) <= int(gateway) <= int(pool[1]):
            raise ApiFault(
                "GatewayConflictWithAllocationPools",
                409,
                f"Gateway ip {gateway} conflicts with allocation pool {_range(pool)}.",
            )


def _check_ipv6_modes(data: dict[str, Any], version: int) -> None:
    ra_mode, address_mode = data.get("ipv6_ra_mode"), data.get("ipv6_address_mode")
    if version == 4:
        for name, value in (("ipv6_ra_mode", ra_mode), ("ipv6_address_mode", address_mode)):
            if value is not None:
                raise invalid_input(f"{name} is not valid when ip_version is 4")
    elif ra_mode is not None and address_mode is not None and ra_mode != address_mode:
        raise invalid_input(
            f"ipv6_ra_mode set to '{ra_mode}' with ipv6_address_mode set to "
            f"'{address_mode}' is not valid. If both attributes are set, they must be the "
            "same value"
        )


def pools_json(pools: list[Pool]) -> list[dict[str, str]]:
    return [{"start": str(start), "end": str(end)} for start, end in pools]


def subnet_pools(doc: dict[str, Any]) -> list[Pool]:
    return [
        (ipaddress.ip_address(p["start"]), ipaddress.ip_address(p["end"]))
        for p in doc["allocation_pools"]
    ]


def _default_gateway(network: IPNetwork) -> IPAddress | None:
    if network.version == 6:
        return network.network_address
    return network.network_address + 1 if network.num_addresses > 2 else None


def _shape(data: dict[str, Any], network: IPNetwork, *, from_pool: bool) -> None:
    """The CIDR-dependent fields of a new subnet: cidr, gateway and pools, checked.

    A subnet allocated from a pool gets the first host as its default gateway in IPv6
    too (Neutron's subnet allocator), not the subnet-router anycast address.
    """
    data["cidr"] = str(network)
    if data.get("enable_dhcp", True):
        _check_dhcp_prefix(network)
    given_gateway = data.get("gateway_ip", AUTO)
    gateway_ip: IPAddress | None
    if given_gateway is AUTO:
        gateway_ip = first_host(network) if from_pool else _default_gateway(network)
    elif given_gateway is None:
        gateway_ip = None
    else:
        gateway_ip = ipaddress.ip_address(given_gateway)
        _check_gateway(network, gateway_ip, given_gateway)
    data["gateway_ip"] = None if gateway_ip is None else str(gateway_ip)
    raw_pools = data.get("allocation_pools")
    if raw_pools is None:
        pools = default_pools(network, gateway_ip)
    else:
        pools = parse_pools(raw_pools, network)
        _check_gateway_out_of_pools(gateway_ip, pools)
    data["allocation_pools"] = pools_json(pools)


class SubnetService(DocService):
    name = "subnet"
    collection = "subnets"
    kind = "subnets"
    attrs = ATTRS
    not_found_type = "SubnetNotFound"
    not_found_message = "Subnet {id} could not be found."

    def __init__(self, repo: Repo, networks: NetworkService, pools: SubnetPoolService) -> None:
        super().__init__(repo)
        self.networks = networks
        self.pools = pools

    def shared_with(self, ctx: Context, doc: dict[str, Any]) -> bool:
        net = self.repo.get("networks", str(doc.get("network_id")))
        return net is not None and self.networks.shared_with(ctx, net.value)

    def before_list(self, ctx: Context, filters: dict[str, list[Any]]) -> None:
        """``?shared=`` filters on the network's ``shared``: it becomes a ``network_id``
        filter naming the networks that match (a subnet has no ``shared`` of its own)."""
        wanted = filters.pop("shared", None)
        if wanted is None:
            return
        networks = [
            d.value["id"]
            for d in self.repo.list("networks")
            if bool(d.value.get("shared")) in wanted
        ]
        asked = filters.get("network_id")
        filters["network_id"] = networks if asked is None else [n for n in asked if n in networks]

    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_subnet")
        request = dict(data)
        for name in REQUEST_ONLY:
            data.pop(name, None)
        if request.get("use_default_subnetpool") and data.get("subnetpool_id") is None:
            data["subnetpool_id"] = self.pools.default_pool(int(data["ip_version"]))
            request["subnetpool_id"] = data["subnetpool_id"]
        if data.get("cidr") is None and data.get("subnetpool_id") is None:
            raise bad_resource_request(
                "subnets", "a subnetpool must be specified in the absence of a cidr"
            )
        version = int(data["ip_version"])
        named = None if data.get("cidr") is None else parse_cidr(data["cidr"], version)
        if named is not None:
            request["cidr"] = str(named)
            if data.get("subnetpool_id") is None:
                _shape(data, named, from_pool=False)  # bad input refused before any read
        _check_ipv6_modes(data, version)

        def use_case() -> Outcome[dict[str, Any]]:
            net = self.networks.load(ctx, str(data["network_id"]))
            if not ctx.sees(str(net.value.get("project_id"))):
                raise forbidden("create_subnet")
            conflict = mtu_conflict(net.value, {version})
            if conflict is not None:
                raise conflict
            change = Change()
            shaped = dict(data)
            if data.get("subnetpool_id") is None:
                assert named is not None
                address_space.reserve(self.repo, change, named, str(net.value["id"]))
            else:
                chosen = self.pools.allocate(ctx, change, request, str(net.value["id"]))
                _shape(shaped, chosen, from_pool=True)
            doc = new_doc(ctx, shaped)
            doc["router:external"] = bool(net.value.get("router:external"))
            change.depends_on(net)
            updated_net = bump(net.value)
            updated_net["subnets"] = [*net.value.get("subnets", []), doc["id"]]
            change.put(net.key, updated_net)
            change.claim(key(self.kind, doc["id"]), doc)
            return Outcome(change, doc)

        return self.render(ctx, self.repo.run(use_case))

    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        shown = super().render(ctx, doc)
        for name in REQUEST_ONLY:
            shown.pop(name, None)
        return shown

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        def apply(doc: Doc, _change: Change) -> dict[str, Any]:
            network = ipaddress.ip_network(doc.value["cidr"])
            changes = dict(data)
            if changes.get("gateway_ip") is AUTO:
                del changes["gateway_ip"]
            if changes.get("gateway_ip") is not None:
                _check_gateway(
                    network, ipaddress.ip_address(changes["gateway_ip"]), changes["gateway_ip"]
                )
            if changes.get("enable_dhcp") and not doc.value.get("enable_dhcp"):
                _check_dhcp_prefix(network)
            merged = {**doc.value, **changes}
            if "allocation_pools" in changes or "gateway_ip" in changes:
                pools = (
                    parse_pools(changes["allocation_pools"], network)
                    if "allocation_pools" in changes
                    else subnet_pools(doc.value)
                )
                gateway = merged.get("gateway_ip")
                _check_gateway_out_of_pools(
                    None if gateway is None else ipaddress.ip_address(gateway), pools
                )
                merged["allocation_pools"] = pools_json(pools)
            return merged

        updated = self.update_doc(ctx, resource_id, if_match, apply)
        if any(data.get(f, AUTO) is not AUTO for f in SUBNET_FIELDS):
            converge(self.repo, resource_id)  # ports one transaction could not hold
        return self.render(ctx, updated)

    def after_update(self, change: Change, old: dict[str, Any], new: dict[str, Any]) -> None:
        """A new gateway, DNS servers, host routes or DHCP switch: the endpoint records of
        the subnet's bound ports, as many as fit."""
        if changed(SUBNET_FIELDS, old, new):
            stale = rewrites(self.repo, holders(self.repo, new["id"]), {old["id"]: new})
            add_rewrites(change, stale[:PORTS_PER_TXN])

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        self.delete_doc(ctx, resource_id, if_match, in_use=self._in_use, remove=self._unlink)

    def _in_use(self, doc: Doc) -> None:
        subnet_id = doc.value["id"]
        if any(True for _ in self.repo.keys("ipam", subnet_id)):
            raise ApiFault(
                "SubnetInUse",
                409,
                f"Unable to complete operation on subnet {subnet_id}: "
                "One or more ports have an IP allocation from this subnet.",
            )

    def _unlink(self, doc: Doc, change: Change) -> None:
        """The network no longer lists the subnet."""
        net = self.repo.get("networks", str(doc.value["network_id"]))
        if net is not None:
            change.depends_on(net)
            updated_net = bump(net.value)
            updated_net["subnets"] = [
                s for s in net.value.get("subnets", []) if s != doc.value["id"]
            ]
            change.put(net.key, updated_net)


__all__ = ["ATTRS", "SubnetService", "parse_cidr", "subnet_pools"]
