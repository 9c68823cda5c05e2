"""A namespace VM's DHCP client: busybox ``udhcpc`` on ``eth0``, as a cloud image runs one.

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
        "ip", "netns", "exec", topology.vm_namespace(vm),
        "busybox", "udhcpc", "-i", interface, "-f", "-s", str(script(topology, vm)),
        "-T", "1", "-t", "5", "-A", "2", "-x", f"hostname:{vm}",
    ]  # fmt: skip


def leased(topology: Topology, vm: str, interface: str) -> bool:
    """Whether the VM holds an IPv4 address from its lease."""
    if not lease_file(topology, vm).exists():
        return False
    shown = netns.ip(topology.vm_namespace(vm), "-4", "-o", "addr", "show", "dev", interface)
    return " inet " in f" {shown}"


def forget(topology: Topology, vm: str) -> None:
    """Remove the VM's lease file and script (the VM is gone)."""
    lease = lease_file(topology, vm)
    for path in (lease, Path(f"{lease}.tmp"), topology.state_dir / f"{dhcp_key(vm)}.script"):
        if path.exists():
            os.unlink(path)


__all__ = [
    "LEASE_TIMEOUT",
    "SCRIPT",
    "client_command",
    "dhcp_key",
    "forget",
    "lease_file",
    "leased",
    "script",
]
