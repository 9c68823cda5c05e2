"""A namespace VM's DHCP clients: busybox ``udhcpc`` on ``eth0``, as a cloud image runs
one, and ISC ``dhclient -6`` when the port has an address on a ``dhcpv6-stateful`` subnet.

``lab boot`` configures no IPv4 address by hand: the VM asks its host (the agent's DHCP
server on the port's tap) and applies the lease — address with the subnet's mask, the
default route (or the classless static routes), MTU — with the script below. It stays
running, renewing its lease, until the VM is removed (recorded as ``dhcp-<vm>``).

A namespace VM shares the machine's file system and host name (``ip netns exec`` only
gives it its own network stack), so the script differs from a guest image's
(:data:`~routeplane.lab.guest_init.UDHCPC_SCRIPT`) in what it must not do: it never
writes ``/etc/resolv.conf`` nor sets the host name. It writes the lease's DNS servers,
host name to the VM's lease file in the lab's state directory instead (the script is
written per VM with that file's path in it), where ``lab boot`` waits for it.

IPv6 (``dhcp6-<vm>``): ``dhclient -6`` with a DUID-LL, its lease and PID files in the
state directory, and a script that only puts the bound address on the interface (a
/128: nothing on-link; the default route is the router advertisement's) and records
it. It starts once the VM's link-local address is usable (it cannot bind before).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from routeplane.lab import netns
from routeplane.lab.guest_init import LEASE_ROUTES
from routeplane.lab.topology import Topology

LEASE_TIMEOUT = 10.0

SCRIPT = (
    r"""#!/bin/sh
# routeplane lab: apply a udhcpc lease inside a namespace VM (no /etc, no hostname)
case "$1" in
deconfig)
    ip link set "$interface" up
    ip -4 addr flush dev "$interface"
    ;;
bound|renew)
    [ "$1" = bound ] && ip -4 addr flush dev "$interface"
    ip addr replace "$ip/${mask:-32}" brd + dev "$interface"
"""
    + LEASE_ROUTES
    + r"""    {
        echo "address $ip/${mask:-32}"
        echo "router $router"
        echo "dns $dns"
        echo "mtu $mtu"
        echo "hostname $hostname"
        echo "lease $lease"
    } >"@LEASE@.tmp" && mv "@LEASE@.tmp" "@LEASE@"
    ;;
esac
exit 0
"""
)


SCRIPT6 = r"""#!/bin/sh
# routeplane lab: apply a dhclient -6 binding inside a namespace VM (no /etc)
case "$reason" in
BOUND6|RENEW6|REBIND6|REBOOT6)
    ip -6 addr replace "$new_ip6_address/128" dev "$interface" nodad \
        valid_lft "${new_max_life:-forever}" preferred_lft "${new_preferred_life:-forever}"
    echo "address6 $new_ip6_address" >"@LEASE@.tmp" && mv "@LEASE@.tmp" "@LEASE@"
    ;;
esac
exit 0
"""


def dhcp_key(vm: str) -> str:
    """The client's key in the lab state's ``processes``."""
    return f"dhcp-{vm}"


def lease_file(topology: Topology, vm: str) -> Path:
    """What the VM's last lease said (written by the script at each bind and renewal)."""
    return topology.state_dir / f"{dhcp_key(vm)}.lease"


def script(topology: Topology, vm: str) -> Path:
    """The VM's lease script, written into the lab's state directory, executable."""
    path = topology.state_dir / f"{dhcp_key(vm)}.script"
    path.write_text(SCRIPT.replace("@LEASE@", str(lease_file(topology, vm))))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def client_command(topology: Topology, vm: str, interface: str) -> list[str]:
    """``udhcpc`` in the VM's namespace, in the foreground (the lab records its PID),
    asking every second at first, then every 2 s while no server answers."""
    return [
        "ip",
        "netns",
        "exec",
        topology.vm_namespace(vm),
        "busybox",
        "udhcpc",
        "-i",
        interface,
        "-f",
        "-s",
        str(script(topology, vm)),
        "-T",
        "1",
        "-t",
        "5",
        "-A",
        "2",
        "-x",
        f"hostname:{vm}",
    ]


def leased(topology: Topology, vm: str, interface: str) -> bool:
    """Whether the VM holds an IPv4 address from its lease."""
    if not lease_file(topology, vm).exists():
        return False
    shown = netns.ip(topology.vm_namespace(vm), "-4", "-o", "addr", "show", "dev", interface)
    return " inet " in f" {shown}"


def dhcp6_key(vm: str) -> str:
    """The IPv6 client's key in the lab state's ``processes``."""
    return f"dhcp6-{vm}"


def dhclient6(script: Path, base: Path, interface: str, *flags: str) -> list[str]:
    """ISC ``dhclient -6`` in the foreground with a DUID-LL, ``script`` as its hook and
    its lease and PID files beside ``base``."""
    files = ["-lf", f"{base}.leases", "-pf", f"{base}.pid"]
    return ["dhclient", "-6", "-d", "-D", "LL", *flags, "-sf", str(script), *files, interface]


def client6_command(topology: Topology, vm: str, interface: str) -> list[str]:
    """``dhclient -6`` in the VM's namespace, with the lab's script."""
    base = topology.state_dir / dhcp6_key(vm)
    path = Path(f"{base}.script")
    path.write_text(SCRIPT6.replace("@LEASE@", f"{base}.lease"))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    namespace = ["ip", "netns", "exec", topology.vm_namespace(vm)]
    return [*namespace, *dhclient6(path, base, interface)]


def link_local_ready(namespace: str, interface: str) -> bool:
    """Whether the VM's interface has a link-local address past duplicate detection."""
    shown = netns.ip(namespace, "-6", "-o", "addr", "show", "dev", interface, "scope", "link")
    return "inet6 fe80" in shown and "tentative" not in shown


def holds(namespace: str, interface: str, addresses: list[str]) -> bool:
    """Whether the VM's interface holds every one of ``addresses`` (usable)."""
    shown = netns.ip(namespace, "-6", "-o", "addr", "show", "dev", interface, "scope", "global")
    usable = [line for line in shown.splitlines() if "tentative" not in line]
    return all(any(f" {a}/" in line for line in usable) for a in addresses)


def forget(topology: Topology, vm: str) -> None:
    """Remove the VM's lease files and scripts (the VM is gone)."""
    for key in (dhcp_key(vm), dhcp6_key(vm)):
        base = topology.state_dir / key
        for suffix in (".lease", ".lease.tmp", ".script", ".leases", ".pid"):
            path = Path(f"{base}{suffix}")
            if path.exists():
                os.unlink(path)


__all__ = [
    "LEASE_TIMEOUT",
    "SCRIPT",
    "SCRIPT6",
    "client6_command",
    "client_command",
    "dhclient6",
    "dhcp6_key",
    "dhcp_key",
    "forget",
    "holds",
    "lease_file",
    "leased",
    "link_local_ready",
    "script",
]
