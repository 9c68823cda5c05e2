"""A lab VM: what Nova and the guest would do with a bound port, done with a namespace.

The hypervisor's part: a veth pair whose host end is the port's tap (``tap<id[:11]>``,
left for the agent to configure) in the host's namespace and whose other end is the VM's
``eth0`` with the port's MAC. The guest's part: IPv4 comes from the host's DHCP server
(``udhcpc``, :mod:`~routeplane.lab.vm_dhcp`, started by ``lab boot``), giving what the
walkthrough's VM shows:

    inet 10.28.0.13/16 brd 10.28.255.255 scope global eth0
    default via 10.28.0.1 dev eth0

IPv6 on a subnet with an ``ipv6_address_mode`` comes from the host too: its router
advertisements give the default route (via the host's link-local address on the tap)
and, on ``slaac``/``dhcpv6-stateless`` subnets, the address the guest's kernel forms;
on ``dhcpv6-stateful`` subnets ISC ``dhclient -6`` asks the host's DHCPv6 server
(:mod:`~routeplane.lab.vm_dhcp`). Only an IPv6 address on a subnet *without* a mode is
configured here, as before: a /64 with ``noprefixroute`` (nothing is on-link: every
packet goes to the host) and a default route via the subnet's gateway
(``guest_commands``, which can write both families). After that the VM runs
``routeplane guest`` (``guest_command``), which adds and removes the port's further
addresses — a service IP moved onto it or away — as a cloud image would.

What this module must not do: configure the host side (that is the agent's job, and what
the lab demonstrates).
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from typing import Any

from routeplane.lab import netns
from routeplane.lab.topology import Node, Topology
from routeplane.model.endpoint import interface_name

GUEST_INTERFACE = "eth0"


@dataclass(frozen=True)
class GuestAddress:
    address: str  # with the subnet's prefix length: 10.28.0.13/16
    version: int
    gateway: str | None
    mode: str = ""  # IPv6: the subnet's ipv6_address_mode ("": none, configured by hand)


def guest_addresses(port: dict[str, Any], subnets: dict[str, dict[str, Any]]) -> list[GuestAddress]:
    """The port's fixed IPs as the guest configures them, with their subnets' gateways."""
    found = []
    for fixed in port.get("fixed_ips", []):
        subnet = subnets[fixed["subnet_id"]]
        network = ipaddress.ip_network(subnet["cidr"])
        found.append(
            GuestAddress(
                f"{fixed['ip_address']}/{network.prefixlen}",
                network.version,
                subnet.get("gateway_ip") or None,
                subnet.get("ipv6_address_mode") or "",
            )
        )
    return found


def guest_commands(addresses: list[GuestAddress]) -> list[str]:
    """``ip -batch`` lines that configure ``eth0``: addresses, then one default route per
    family (via the first gateway of that family)."""
    lines = []
    for guest in addresses:
        if guest.version == 4:
            lines.append(f"addr add {guest.address} brd + dev {GUEST_INTERFACE}")
        else:
            lines.append(f"addr add {guest.address} dev {GUEST_INTERFACE} noprefixroute nodad")
    for version in (4, 6):
        gateways = [g.gateway for g in addresses if g.version == version and g.gateway]
        if gateways:
            # (``ip -batch`` takes no -4/-6: the destination names the family.) onlink:
            # with noprefixroute the v6 gateway is in no on-link prefix of the guest
            default, extra = ("0.0.0.0/0", "") if version == 4 else ("::/0", " onlink")
            lines.append(f"route add {default} via {gateways[0]} dev {GUEST_INTERFACE}{extra}")
    return lines


def build(namespace: str, host: Node, port: dict[str, Any], addresses: list[GuestAddress]) -> str:
    """The VM's namespace wired to ``host`` through the port's tap, with its IPv6
    addresses on subnets without a mode (IPv4 and the rest are the host's to give: DHCP,
    router advertisements, DHCPv6); the tap's name."""
    tap = interface_name(port["id"])
    netns.create(namespace)
    netns.add_veth(
        host.namespace,
        tap,
        namespace,
        GUEST_INTERFACE,
        peer_mac=port["mac_address"],
        up=True,
    )
    commands = guest_commands([a for a in addresses if a.version == 6 and not a.mode])
    if commands:
        netns.ip(namespace, "-batch", "-", input="\n".join(commands) + "\n")
    return tap


def guest_key(vm: str) -> str:
    """The guest daemon's key in the lab state's ``processes``."""
    return f"guest-{vm}"


def guest_command(topology: Topology, vm: str) -> list[str]:
    """``routeplane guest`` inside the VM, remembering what it added in the lab's state
    directory (one file per VM: they share the machine's /run)."""
    state = topology.state_dir / f"{guest_key(vm)}.json"
    return [
        "ip", "netns", "exec", topology.vm_namespace(vm),
        sys.executable, "-m", "routeplane.guest", "--interface", GUEST_INTERFACE,
        "--state", str(state),
    ]  # fmt: skip


def listening(namespace: str, port: int = 22) -> bool:
    """Whether something listens on TCP ``port`` inside the VM (its service is ready)."""
    shown = netns.exec_in(namespace, "ss", "-Hltn", f"sport = :{port}", check_rc=False)
    return bool(shown.strip())


__all__ = [
    "GUEST_INTERFACE",
    "GuestAddress",
    "build",
    "guest_addresses",
    "guest_command",
    "guest_commands",
    "guest_key",
    "listening",
]
