"""Two harnesses around the ``Kernel`` port for the contract suite: the in-memory fake,
and ``LinuxKernel`` in a fresh ``rp-`` namespace whose taps are veth pairs with the
other end in a second ``rp-`` namespace standing in for the VM (so a tap has carrier
once it is up).

A harness also plays the rest of the world — the hypervisor creating taps, an operator
adding a route of their own, traffic leaving conntrack entries — and reads back what the
port does not show (sysctls, other owners' routes), each the natural way for its kernel.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Protocol

from routeplane.dataplane.fake import FakeKernel
from routeplane.dataplane.linux import LinuxKernel
from routeplane.dataplane.model import ROUTE_PROTO
from routeplane.dataplane.ports import Kernel
from routeplane.lab import netns

SEND_FRAMES = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for _ in range(int(sys.argv[2])):
    s.send(bytes([255] * 6 + [2, 0, 0, 0, 0, 9, 8, 6]) + bytes(28))
"""
FOREIGN_PROTO = 4  # "static" in /etc/iproute2/rt_protos


class Harness(Protocol):
    kernel: Kernel

    def add_tap(self, name: str, mac: str) -> None:
        """A new tap, administratively down, whose VM end is attached (carrier once up)."""

    def detach_vm(self, name: str) -> None:
        """The VM end goes away: the tap loses carrier."""

    def set_down(self, name: str) -> None: ...

    def vm_sends(self, name: str, frames: int) -> None:
        """The VM behind tap ``name`` sends ``frames`` Ethernet frames (broadcast ARP)."""

    def delete_tap(self, name: str) -> None:
        """The hypervisor removes the tap (the VM is gone or rebooting)."""

    def add_foreign_proxy(self, address: str, interface: str) -> None:
        """``ip neigh add proxy <address> dev <interface>`` (no protocol of ours)."""

    def foreign_proxies(self) -> set[tuple[str, str]]:
        """(address, interface) of every proxy entry without our protocol."""

    def add_foreign_route(self, address: str, interface: str, metric: int | None = None) -> None:
        """``ip route add <address> dev <interface> proto static [metric <metric>]``."""

    def foreign_routes(self) -> set[tuple[str, str, int]]:
        """(address, interface, metric) of every ``proto static`` route."""

    def add_fabric(self) -> None:
        """The host's fabric interface ``fabric0`` (up), with 192.168.8.3/24 and
        fd00:192:168:8::3/64: next hops on it are reachable."""

    def used_route(self, address: str) -> tuple[str, str]:
        """(interface, next hop or "") of the route the kernel uses for ``address``."""

    def sysctl(self, path: str) -> str: ...

    def add_conntrack(self, source: str, destination: str) -> None: ...

    def conntrack(self) -> set[tuple[str, str]]:
        """(original source, original destination) of every tracked connection."""

    def close(self) -> None: ...


class FakeHarness:
    def __init__(self) -> None:
        self.fake = FakeKernel()
        self.kernel: Kernel = self.fake

    def add_tap(self, name: str, mac: str) -> None:
        self.fake.add_link(name, up=False, mac=mac, carrier=True)

    def detach_vm(self, name: str) -> None:
        self.fake.set_link(name, carrier=False)

    def set_down(self, name: str) -> None:
        self.fake.set_link(name, up=False)

    def vm_sends(self, name: str, frames: int) -> None:
        self.fake.receive(name, frames)

    def delete_tap(self, name: str) -> None:
        self.fake.del_link(name)

    def add_foreign_proxy(self, address: str, interface: str) -> None:
        self.fake.add_proxy(address, interface)

    def foreign_proxies(self) -> set[tuple[str, str]]:
        return {key for key, protocol in self.fake.all_proxies.items() if protocol != ROUTE_PROTO}

    def add_foreign_route(self, address: str, interface: str, metric: int | None = None) -> None:
        self.fake.add_route(address, interface, FOREIGN_PROTO, metric)

    def foreign_routes(self) -> set[tuple[str, str, int]]:
        return {
            (r.address, r.interface, r.metric)
            for r in self.fake.all_routes.values()
            if r.protocol == FOREIGN_PROTO
        }

    def add_fabric(self) -> None:
        self.fake.add_link("fabric0", up=True)
        self.fake.add_network("192.168.8.3/24", "fabric0")
        self.fake.add_network("fd00:192:168:8::3/64", "fabric0")

    def used_route(self, address: str) -> tuple[str, str]:
        route = self.fake.route_to(address)
        return ("", "") if route is None else (route.interface, route.via)

    def sysctl(self, path: str) -> str:
        return self.fake.sysctls.get(path, "")

    def add_conntrack(self, source: str, destination: str) -> None:
        self.fake.add_conntrack(source, destination)

    def conntrack(self) -> set[tuple[str, str]]:
        return set(self.fake.conntrack)

    def close(self) -> None:
        self.fake.close()


class LinuxHarness:
    """Owns its two namespaces through ``cleanup``; the caller closes that."""

    def __init__(self, cleanup: netns.Cleanup) -> None:
        self.host = cleanup.namespace("test")
        self.vm = cleanup.namespace("testvm")
        self.linux = LinuxKernel(self.host)
        cleanup.add("close the kernel", self.linux.close)
        self.kernel: Kernel = self.linux
        self._peers: dict[str, str] = {}

    def add_tap(self, name: str, mac: str) -> None:
        peer = f"eth{len(self._peers)}"
        self._peers[name] = peer
        netns.add_veth(self.host, name, self.vm, peer, mac=mac, up=False, peer_up=True)

    def detach_vm(self, name: str) -> None:
        netns.ip(self.vm, "link", "set", self._peers[name], "down")

    def set_down(self, name: str) -> None:
        netns.ip(self.host, "link", "set", name, "down")

    def vm_sends(self, name: str, frames: int) -> None:
        netns.exec_in(self.vm, "python3", "-c", SEND_FRAMES, self._peers[name], str(frames))

    def delete_tap(self, name: str) -> None:
        netns.ip(self.host, "link", "del", name)

    def add_foreign_proxy(self, address: str, interface: str) -> None:
        netns.ip(self.host, "neigh", "add", "proxy", address, "dev", interface)

    def foreign_proxies(self) -> set[tuple[str, str]]:
        found = set()
        for family in ("-4", "-6"):
            listed = netns.ip(self.host, "-j", family, "neigh", "show", "proxy")
            for entry in json.loads(listed or "[]"):
                if entry.get("protocol") not in (ROUTE_PROTO, str(ROUTE_PROTO)):
                    found.add((str(ipaddress.ip_address(entry["dst"])), entry["dev"]))
        return found

    def add_foreign_route(self, address: str, interface: str, metric: int | None = None) -> None:
        extra = [] if metric is None else ["metric", str(metric)]
        netns.ip(self.host, "route", "add", address, "dev", interface, "proto", "static", *extra)

    def foreign_routes(self) -> set[tuple[str, str, int]]:
        found = set()
        for family in ("-4", "-6"):
            listed = netns.ip(self.host, "-j", family, "route", "show", "proto", "static")
            for route in json.loads(listed or "[]"):
                address = str(ipaddress.ip_address(route["dst"]))
                found.add((address, route["dev"], int(route.get("metric", 0))))
        return found

    def add_fabric(self) -> None:
        netns.add_veth(self.host, "fabric0", self.vm, "fabric", up=True)
        netns.ip(self.host, "addr", "add", "192.168.8.3/24", "dev", "fabric0")
        netns.ip(self.host, "addr", "add", "fd00:192:168:8::3/64", "dev", "fabric0", "nodad")

    def used_route(self, address: str) -> tuple[str, str]:
        family = "-6" if ":" in address else "-4"
        found = json.loads(netns.ip(self.host, "-j", family, "route", "get", address) or "[]")
        if not found:
            return ("", "")
        return (found[0].get("dev", ""), found[0].get("gateway", ""))

    def sysctl(self, path: str) -> str:
        return netns.exec_in(self.host, "cat", f"/proc/sys/{path}").strip()

    def add_conntrack(self, source: str, destination: str) -> None:
        netns.exec_in(
            self.host, "conntrack", "-I", "-s", source, "-d", destination,
            "-p", "tcp", "--sport", "40000", "--dport", "22", "--state", "ESTABLISHED",
            "-t", "300",
        )  # fmt: skip

    def conntrack(self) -> set[tuple[str, str]]:
        found = set()
        for family in ("ipv4", "ipv6"):
            listed = netns.exec_in(self.host, "conntrack", "-L", "-f", family)
            for line in listed.splitlines():
                match = re.search(r"src=(\S+) dst=(\S+)", line)
                if match:
                    found.add((match[1], match[2]))
        return found

    def close(self) -> None:
        """Nothing: the cleanup registry closes the kernel and deletes the namespaces."""
