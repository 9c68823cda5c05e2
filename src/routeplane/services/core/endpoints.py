"""Endpoint records (``routeplane.model.endpoint``) derived from ports: the writer's side.

Derived from the port (and its floating IPs) and written in the same transaction as the
port, so an agent never sees a port change without its dataplane consequence, nor the
other way round. The record carries everything the agent needs and nothing it must look
up: interface name, MAC, the addresses to route to the tap (fixed IPs, allowed address
pairs, floating IPs' external addresses), NAT pairs, security groups, and the gateways of
the subnets the port has addresses on (the host answers neighbour solicitations for an
IPv6 gateway on the VM's tap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from routeplane.model.endpoint import RECORD_VERSION, EndpointRecord, NatPair, interface_name
from routeplane.model.keys import endpoint_key
from routeplane.services.repo import Change, Repo
from routeplane.services.service_ips.hints import endpoint_hints


def subnet_gateways(
    repo: Repo,
    port: dict[str, Any],
    pending: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    change: Change | None = None,
) -> list[str]:
    """The ``gateway_ip`` of each subnet the port has a fixed IP on, both families, in
    the order of its fixed IPs, once each; a subnet without a gateway adds nothing.

    ``pending`` (subnet id → document) stands in for subnets the caller's transaction is
    about to write, so a subnet update can derive the records it rewrites beside itself.
    With ``change``, the transaction depends on each subnet read: a record derived from a
    gateway that changes before it commits is refused and derived again, never written
    with the old gateway.
    """
    found: list[str] = []
    for subnet_id in dict.fromkeys(str(ip["subnet_id"]) for ip in port.get("fixed_ips", [])):
        if pending is not None and subnet_id in pending:
            gateway = pending[subnet_id].get("gateway_ip")
        else:
            subnet = repo.get("subnets", subnet_id)
            gateway = None if subnet is None else subnet.value.get("gateway_ip")
            if change is not None:
                change.depends_on(subnet)
        if gateway and gateway not in found:
            found.append(str(gateway))
    return found


def endpoint_record(
    port: dict[str, Any], floating: list[dict[str, Any]], gateways: Sequence[str]
) -> EndpointRecord:
    """What the port's host must realise; ``gateways`` from :func:`subnet_gateways`."""
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
        gateways=list(gateways),
        allowed_addresses=pairs,
        floating_ips=nat,
        port_security_enabled=bool(port.get("port_security_enabled", True)),
        security_groups=list(port.get("security_groups", [])),
        port_revision=port.get("revision_number", 0),
        # make-before-break after a move (services.service_ips.hints)
        preferred=preferred,
        moved_in=moved_in,
        moved_out=moved_out,
    )


__all__ = ["endpoint_key", "endpoint_record", "interface_name", "subnet_gateways"]
