"""Red team, host side: what a VM sends at its tap, with real packets.

One host namespace routing three VM namespaces (IPv4 and IPv6, a ``/32`` and ``/128``
per VM on its tap, as the agent routes them), the host's own fabric address on its
loopback, and the rendered policy in its table; the VMs' security groups admit
everything, so only the host-side rules can stop what is tried. The attacker is ``vm1``:
it plays DHCP server (offers from port 67, DHCPv6 replies from 547) to its host and to
a neighbour, sends router advertisements and ICMPv6 redirects, sends from a neighbour's
addresses, and claims a neighbour's addresses by ARP and NDP. Each test asserts the
attacker got nothing, next to a control that what is legitimate still arrives.
Everything lives in ``rp-`` namespaces this module creates and deletes.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from routeplane.dataplane.linux.nft import NftTable
from routeplane.dataplane.nft_render import render
from routeplane.lab.netns import Cleanup, add_veth, exec_in, ip
from routeplane.model.endpoint import EndpointRecord
from routeplane.testing import records

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

TAP_MAC = "ee:ee:ee:ee:ee:ee"
HOST4, HOST6 = "10.99.0.1", "fd99::1"  # the host's fabric address (on its loopback)
OPEN = "sg-open"
GROUPS = {
    OPEN: {
        "security_group_rules": [
            {"direction": d, "ethertype": e, "protocol": None, "port_range_min": None,
             "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None}
            for d in ("ingress", "egress") for e in ("IPv4", "IPv6")
        ]
    }
}  # fmt: skip

# Prints "ready", then "<port> <source>" for each UDP datagram to any of the ports, and
# "icmp6 <type> <source>" for each ICMPv6 message of the given types.
LISTEN = """
import select, socket, sys
ports = [int(p) for p in sys.argv[1].split(",") if p]
types = {int(t) for t in sys.argv[2].split(",") if t}
socks = {}
for port in ports:
    for family, any_ in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((any_, port)); socks[s] = str(port)
if types:
    raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    socks[raw] = "icmp6"
print("ready", flush=True)
while True:
    for s in select.select(list(socks), [], [])[0]:
        data, peer = s.recvfrom(2048)
        if socks[s] == "icmp6":
            if data[0] in types:
                print(f"icmp6 {data[0]} {peer[0].split('%')[0]}", flush=True)
        else:
            print(f"{socks[s]} {peer[0]}", flush=True)
"""
UDP = """
import socket, sys, time
source, sport, target, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind((source, sport))
for _ in range(3):
    s.sendto(b"offer", (target, dport)); time.sleep(0.02)
"""
# ICMPv6 with a given type and body (hex) to a target, hop limit 255 as ND requires.
ICMP6 = """
import socket, sys
target, kind, body = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
scope = socket.if_nametoindex("eth0") if target.startswith(("ff02", "fe80")) else 0
for _ in range(3):
    s.sendto(bytes([kind, 0, 0, 0]) + body, (target, 0, 0, scope))
"""
# A gratuitous ARP reply "<address> is-at <my MAC>", broadcast on eth0.
ARP = """
import socket, sys
mac = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
address = socket.inet_aton(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
arp = bytes.fromhex("0001080006040002") + mac + address + b"\\xff" * 6 + address
for _ in range(3):
    s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp)
"""
SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 22)); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\\n"); c.close()
"""
CLIENT = """
import socket, sys
try:
    print(socket.create_connection((sys.argv[1], 22), timeout=0.7).recv(100).decode().strip())
except OSError as exc:
    print("failed", exc)
"""


@dataclass
class Vm:
    name: str
    namespace: str
    tap: str
    v4: str
    v6: str


@dataclass
class Host:
    """The host namespace, its table, its VMs and every process started in the lab."""

    namespace: str
    table: NftTable
    cleanup: Cleanup
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    vms: dict[str, Vm] = field(default_factory=dict)

    def spawn(self, namespace: str, script: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "python3", "-c", script, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return process

    def boot(self, name: str, v4: str, v6: str) -> Vm:
        vm, tap = self.cleanup.namespace(name), f"tap{name}"
        add_veth(self.namespace, tap, vm, "eth0", mac=TAP_MAC, up=True)
        exec_in(self.namespace, "sysctl", "-qw", f"net.ipv4.conf.{tap}.proxy_arp=1")
        ip(self.namespace, "route", "add", f"{v4}/32", "dev", tap, "scope", "link")
        ip(self.namespace, "-6", "route", "add", f"{v6}/128", "dev", tap)
        ip(vm, "addr", "add", f"{v4}/32", "dev", "eth0")
        ip(vm, "-6", "addr", "add", f"{v6}/128", "dev", "eth0", "nodad")
        ip(vm, "neigh", "add", "169.254.1.1", "lladdr", TAP_MAC, "dev", "eth0", "nud", "permanent")
        ip(
            vm,
            "-6",
            "neigh",
            "add",
            "fe80::1",
            "lladdr",
            TAP_MAC,
            "dev",
            "eth0",
            "nud",
            "permanent",
        )
        ip(vm, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0", "onlink")
        ip(vm, "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
        mac = json.loads(ip(vm, "-j", "link", "show", "eth0"))[0]["address"]
        ip(self.namespace, "-6", "neigh", "add", v6, "lladdr", mac, "dev", tap, "nud", "permanent")
        self.spawn(vm, SERVER, name)
        self.vms[name] = Vm(name, vm, tap, v4, v6)
        return self.vms[name]

    def endpoint(self, vm: Vm, **extra: Any) -> EndpointRecord:
        record: EndpointRecord = {"interface": vm.tap, "fixed_ips": [vm.v4, vm.v6],
                  "allowed_addresses": [], "floating_ips": [], "port_security_enabled": True,
                  "security_groups": [OPEN]}  # fmt: skip
        return records.record(record, **extra)

    def protect(self) -> None:
        self.table.apply(render([self.endpoint(vm) for vm in self.vms.values()], GROUPS, {}))


@pytest.fixture
def host() -> Iterator[Host]:
    with Cleanup() as cleanup:
        namespace = cleanup.namespace("redhost")
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            exec_in(namespace, "sysctl", "-qw", key)
        ip(namespace, "addr", "add", f"{HOST4}/32", "dev", "lo")
        ip(namespace, "-6", "addr", "add", f"{HOST6}/128", "dev", "lo")
        table = NftTable(namespace)
        cleanup.add("close the nft table", table.close)
        the_host = Host(namespace, table, cleanup)
        try:
            the_host.boot("vm1", "10.28.0.13", "fd28::13")
            the_host.boot("vm2", "10.28.0.14", "fd28::14")
            the_host.boot("vm3", "10.28.0.15", "fd28::15")
            the_host.protect()
            yield the_host
        finally:
            for process in the_host.processes:
                stop(process)


def stop(process: subprocess.Popen[str]) -> str:
    """End a process we started (by its PID) and return what it printed."""
    if process.returncode is None:
        process.terminate()
    out, _ = process.communicate(timeout=5)
    return out or ""


def heard(process: subprocess.Popen[str], settle: float = 0.5) -> list[str]:
    """What a listener printed so far (it is stopped to read it)."""
    time.sleep(settle)
    return stop(process).split("\n")[:-1]


def udp(vm: Vm, source: str, sport: int, target: str, dport: int) -> None:
    exec_in(vm.namespace, "python3", "-c", UDP, source, str(sport), target, str(dport))


def connect(vm: Vm, address: str) -> str:
    return exec_in(vm.namespace, "python3", "-c", CLIENT, address).strip()


def test_a_vm_playing_dhcp_server_reaches_neither_its_host_nor_a_neighbour(host: Host) -> None:
    """vm1 sends DHCP offers (from port 67) and DHCPv6 replies (from 547) to its host's
    server ports and to vm2's client ports; a DHCP request (from 68) still reaches the
    host."""
    vm1, vm2 = host.vms["vm1"], host.vms["vm2"]
    at_host = host.spawn(host.namespace, LISTEN, "67,547", "")
    at_vm2 = host.spawn(vm2.namespace, LISTEN, "68,546", "")
    udp(vm1, vm1.v4, 67, HOST4, 67)  # server to server (relay) port
    udp(vm1, vm1.v6, 547, HOST6, 547)
    udp(vm1, vm1.v4, 67, vm2.v4, 68)  # an offer to the neighbour
    udp(vm1, vm1.v6, 547, vm2.v6, 546)
    udp(vm1, vm1.v4, 68, HOST4, 67)  # control: a client's request
    assert heard(at_host) == [f"67 {vm1.v4}"] * 3
    assert heard(at_vm2) == []


def test_router_advertisements_and_redirects_from_a_vm_are_dropped(host: Host) -> None:
    """vm1 advertises itself as a router (to all nodes of its link, and to vm2 through
    the host) and sends redirects; neither the host nor vm2 receives any. A neighbour
    solicitation, which the host needs, still arrives."""
    vm1, vm2 = host.vms["vm1"], host.vms["vm2"]
    at_host = host.spawn(host.namespace, LISTEN, "", "134,135,137")
    at_vm2 = host.spawn(vm2.namespace, LISTEN, "", "134,137")
    advert = "40000708" + "00" * 8  # hop limit 64, router lifetime 1800 s
    redirect = "00" * 4 + "fe80" + "00" * 12 + "20010db8" + "00" * 12
    for target in ("ff02::1", "fe80::1", vm2.v6):
        exec_in(vm1.namespace, "python3", "-c", ICMP6, target, "134", advert)
        exec_in(vm1.namespace, "python3", "-c", ICMP6, target, "137", redirect)
    solicit = "00" * 4 + "fe800000000000000000000000000001"
    exec_in(vm1.namespace, "python3", "-c", ICMP6, "ff02::1", "135", solicit)
    from_host = heard(at_host)
    assert from_host
    assert {line.split()[1] for line in from_host} == {"135"}
    assert heard(at_vm2) == []
    assert "fd28" not in ip(host.namespace, "-6", "route", "show", "proto", "ra")


def test_spoofed_sources_v4_and_v6_get_nothing_through(host: Host) -> None:
    """vm1 sends as vm2 (and as an address of no port) to vm3 and to the host; only
    what it sends from its own addresses arrives."""
    vm1, vm2, vm3 = host.vms["vm1"], host.vms["vm2"], host.vms["vm3"]
    for spoofed in (vm2.v4, vm2.v6, "10.28.0.99", "fd28::99"):
        if ":" in spoofed:
            ip(vm1.namespace, "-6", "addr", "add", f"{spoofed}/128", "dev", "eth0", "nodad")
        else:
            ip(vm1.namespace, "addr", "add", f"{spoofed}/32", "dev", "eth0")
    at_vm3 = host.spawn(vm3.namespace, LISTEN, "9999", "")
    at_host = host.spawn(host.namespace, LISTEN, "53", "")
    for source in (vm1.v4, vm1.v6, vm2.v4, vm2.v6, "10.28.0.99", "fd28::99"):
        v6 = ":" in source
        udp(vm1, source, 0, vm3.v6 if v6 else vm3.v4, 9999)
        udp(vm1, source, 0, HOST6 if v6 else HOST4, 53)
    assert sorted(set(heard(at_vm3))) == sorted({f"9999 {vm1.v4}", f"9999 {vm1.v6}"})
    assert sorted(set(heard(at_host))) == sorted({f"53 {vm1.v4}", f"53 {vm1.v6}"})


def test_claiming_a_neighbours_address_by_arp_and_ndp_takes_no_traffic(host: Host) -> None:
    """vm1 announces vm2's addresses as its own (gratuitous ARP, unsolicited override
    neighbour advertisements); vm3 still reaches vm2 on both, and the host's route to
    vm2 still leaves by vm2's tap."""
    vm1, vm2, vm3 = host.vms["vm1"], host.vms["vm2"], host.vms["vm3"]
    mac = json.loads(ip(vm1.namespace, "-j", "link", "show", "eth0"))[0]["address"]
    exec_in(vm1.namespace, "python3", "-c", ARP, vm2.v4)
    advert = "20000000" + ipaddress.ip_address(vm2.v6).packed.hex() + "0201" + mac.replace(":", "")
    for to in ("ff02::1", "fe80::1"):
        exec_in(vm1.namespace, "python3", "-c", ICMP6, to, "136", advert)
    time.sleep(0.2)
    assert connect(vm3, vm2.v4) == "vm2"
    assert connect(vm3, vm2.v6) == "vm2"
    for address in (vm2.v4, vm2.v6):
        assert f"dev {vm2.tap}" in ip(host.namespace, "route", "get", address)
