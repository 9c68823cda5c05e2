"""Endpoint records (``routeplane.model.endpoint``) derived from ports: the writer's side.

Derived from the port (and its floating IPs) and written in the same transaction as the
port, so an agent never sees a port change without its dataplane consequence, nor the
other way round. The record carries everything the agent needs and nothing it must look
up: interface name, MAC, the addresses to route to the tap (fixed IPs, allowed address
pairs, floating IPs' external addresses), NAT pairs, security groups, and the gateways of
the subnets the port has addresses on (the host answers neighbour solicitations for an
IPv6 gateway on the VM's tap), and what the host's DHCP server hands out: each fixed IP's
subnet (its CIDR, gateway, DNS servers, host routes, whether DHCP is on, its IPv6 modes),
the network's MTU, the hostname and the port's ``extra_dhcp_opts``.

Beside the record, in the same transaction, the port's entries in the security-group
member index (``model/members.py``): what other hosts' policy needs of the port, so they
follow the index of the groups they name instead of every host's records
(:func:`write_members`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from routeplane.model.endpoint import (
    RECORD_VERSION,
    Addressing,
    DhcpOption,
    EndpointRecord,
    HostRoute,
    NatPair,
    interface_name,
)
from routeplane.model.keys import endpoint_key
from routeplane.model.members import entries
from routeplane.services.repo import Change, Repo
from routeplane.services.service_ips.hints import endpoint_hints

# a port's inactive bindings, by host (services.core.port_bindings); private: never shown
BINDINGS_FIELD = "_bindings"


@dataclass(frozen=True)
class RecordInputs:
    """What a record needs besides the port and its floating IPs: read from the port's
    subnets and network (:func:`record_inputs`)."""

    gateways: list[str] = field(default_factory=list)
    addressing: list[Addressing] = field(default_factory=list)
    mtu: int = 0


def _host_routes(value: object) -> list[HostRoute]:
    routes = value if isinstance(value, list) else []
    return [
        HostRoute(destination=str(r["destination"]), nexthop=str(r["nexthop"]))
        for r in routes
        if isinstance(r, dict) and "destination" in r and "nexthop" in r
    ]


def _addressing(ip: Mapping[str, Any], subnet: Mapping[str, Any]) -> Addressing:
    addressing = Addressing(
        ip_address=str(ip["ip_address"]),
        subnet_id=str(ip["subnet_id"]),
        cidr=str(subnet.get("cidr") or ""),
        gateway_ip=str(subnet.get("gateway_ip") or ""),
        dns_nameservers=[str(d) for d in subnet.get("dns_nameservers") or []],
        host_routes=_host_routes(subnet.get("host_routes")),
        enable_dhcp=bool(subnet.get("enable_dhcp", True)),
    )
    if subnet.get("ip_version") == 6:
        addressing["ipv6_address_mode"] = str(subnet.get("ipv6_address_mode") or "")
        addressing["ipv6_ra_mode"] = str(subnet.get("ipv6_ra_mode") or "")
    return addressing


def record_inputs(
    repo: Repo,
    port: dict[str, Any],
    pending: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    change: Change | None = None,
) -> RecordInputs:
    """The subnets' and network's part of the port's record: the ``gateway_ip`` of each
    subnet the port has a fixed IP on (both families, in the order of its fixed IPs, once
    each; a subnet without a gateway adds nothing), each fixed IP's subnet facts, and the
    network's ``mtu``.

    ``pending`` (subnet or network id → document) stands in for subnets or the network
    the caller's transaction is about to write, so a subnet or network update can derive
    the records it rewrites beside itself. With ``change``, the transaction depends on
    each document read: a record derived from a subnet or network that changes before it
    commits is refused and derived again, never written with the old values.
    """

    def read(kind: str, doc_id: str) -> Mapping[str, Any] | None:
        if pending is not None and doc_id in pending:
            return pending[doc_id]
        doc = repo.get(kind, doc_id)
        if change is not None:
            change.depends_on(doc)
        return None if doc is None else doc.value

    inputs = RecordInputs()
    subnets: dict[str, Mapping[str, Any] | None] = {}
    for ip in port.get("fixed_ips", []):
        subnet_id = str(ip["subnet_id"])
        if subnet_id not in subnets:
            subnets[subnet_id] = read("subnets", subnet_id)
            gateway = (subnets[subnet_id] or {}).get("gateway_ip")
            if gateway and gateway not in inputs.gateways:
                inputs.gateways.append(str(gateway))
        subnet = subnets[subnet_id]
        if subnet is not None:
            inputs.addressing.append(_addressing(ip, subnet))
    network = read("networks", str(port.get("network_id", "")))
    mtu = (network or {}).get("mtu")
    return replace(inputs, mtu=mtu if isinstance(mtu, int) else 0)


def endpoint_record(
    port: dict[str, Any], floating: list[dict[str, Any]], inputs: RecordInputs
) -> EndpointRecord:
    """What the port's host must realise; ``inputs`` from :func:`record_inputs`."""
    fixed = [ip["ip_address"] for ip in port.get("fixed_ips", [])]
    pairs = [p["ip_address"] for p in port.get("allowed_address_pairs", [])]
    nat = sorted(
        (
            NatPair(
                floating_ip_address=f["floating_ip_address"],
                fixed_ip_address=f["fixed_ip_address"],
            )
            for f in floating
            if f.get("fixed_ip_address")
        ),
        key=lambda n: n["floating_ip_address"],
    )
    preferred, moved_in, moved_out = endpoint_hints(port)
    return EndpointRecord(
        version=RECORD_VERSION,
        port_id=port["id"],
        network_id=port["network_id"],
        project_id=port["project_id"],
        host=port.get("binding:host_id", ""),
        interface=interface_name(port["id"]),
        mac_address=port["mac_address"],
        admin_state_up=bool(port.get("admin_state_up", True)),
        fixed_ips=fixed,
        gateways=list(inputs.gateways),
        allowed_addresses=pairs,
        floating_ips=nat,
        port_security_enabled=bool(port.get("port_security_enabled", True)),
        security_groups=list(port.get("security_groups", [])),
        port_revision=port.get("revision_number", 0),
        # make-before-break after a move (services.service_ips.hints)
        preferred=preferred,
        moved_in=moved_in,
        moved_out=moved_out,
        addressing=list(inputs.addressing),
        mtu=inputs.mtu,
        hostname=str(port.get("dns_name") or port.get("name") or ""),
        extra_dhcp_opts=_dhcp_options(port.get("extra_dhcp_opts")),
        migration_target=False,
    )


def member_entries(port: Mapping[str, Any] | None) -> dict[str, Any]:
    """A port's entries in the member index (key -> value): one per security group while
    it is bound to a host, none otherwise (exactly the ports that have endpoint records)."""
    if port is None or not port.get("binding:host_id"):
        return {}
    addresses = [
        *(ip["ip_address"] for ip in port.get("fixed_ips", [])),
        *(p["ip_address"] for p in port.get("allowed_address_pairs", [])),
    ]
    return entries(str(port["id"]), port.get("security_groups", []), addresses)


def write_members(
    change: Change, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> None:
    """The port went from ``old`` to ``new`` (None: absent): its member index entries
    follow, and only those that differ are written, so a change the index does not see
    (a name, a move between hosts) wakes no other host."""
    before, after = member_entries(old), member_entries(new)
    for k in before.keys() - after.keys():
        change.delete(k)
    for k, value in after.items():
        if before.get(k) != value:
            change.put(k, value)


def endpoint_hosts(port: dict[str, Any] | None) -> dict[str, bool]:
    """The hosts that hold the port's endpoint record, each with whether it is a
    migration target: the bound host, and the hosts the port is migrating to (an
    inactive binding Nova created, or ``binding:profile.migrating_to``)."""
    if port is None:
        return {}
    hosts: dict[str, bool] = {}
    for host, binding in (port.get(BINDINGS_FIELD) or {}).items():
        if binding.get("target"):
            hosts[host] = True
    profile = port.get("binding:profile")
    migrating_to = profile.get("migrating_to") if isinstance(profile, dict) else None
    if isinstance(migrating_to, str) and migrating_to:
        hosts[migrating_to] = True
    active = port.get("binding:host_id") or ""
    if active:
        hosts[active] = False
    return hosts


def _dhcp_options(value: object) -> list[DhcpOption]:
    options = value if isinstance(value, list) else []
    return [
        DhcpOption(
            opt_name=str(o["opt_name"]),
            opt_value=str(o.get("opt_value") or ""),
            ip_version=int(o.get("ip_version") or 4),
        )
        for o in options
        if isinstance(o, dict) and o.get("opt_name")
    ]


__all__ = [
    "BINDINGS_FIELD",
    "RecordInputs",
    "endpoint_hosts",
    "endpoint_key",
    "endpoint_record",
    "interface_name",
    "member_entries",
    "record_inputs",
    "write_members",
]
