"""Red team, proxy ARP and NDP: the host never answers a VM for the VM's own address.

The host answers ARP for every address routed elsewhere (``proxy_arp``) and neighbour
solicitations for the subnet's gateway (a proxy entry), so a VM sends everything to
it. Were it also to answer for the VM's own address, the VM's duplicate address
detection would fail and its own packets would be sent to the host. The attacker's
view is ``vm1``'s, on ``node1`` of ``vmlab.dual_stack_lab`` with its agent (policy on):
it asks by ARP (from its address, from a neighbour's and as a probe from ``0.0.0.0``) and by neighbour
solicitation (from its link-local address and as duplicate address detection from
``::``) who holds its own addresses, and hears no answer; the controls, ARP for
``vm2``'s address and a solicitation for the gateway, are answered with the MAC of
``vm1``'s own tap, never another tap's. Frames are built and read on ``eth0`` with a
packet socket, so the VM's own kernel plays no part. Everything lives in ``rp-``
namespaces the lab creates and deletes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.lab.netns import exec_in, ip
from tests.kernel.vmlab import Lab, dual_stack_lab, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

VM1 = ["10.28.0.13", "fd5f:5d21:845:1c2e::13"]
VM2 = ["10.28.0.14", "fd5f:5d21:845:1c2e::14"]

# ``kind target source``: sends an ARP request (kind "arp") or a neighbour solicitation
# ("ns") for ``target`` from ``source`` on eth0, three times, and prints the sender MAC
# of each answer for ``target`` that arrives within a second (incoming frames only).
ASK = """
import socket, struct, sys, time
kind, target, source = sys.argv[1:4]
mac = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind(("eth0", 0))
if kind == "arp":
    t = socket.inet_aton(target)
    body = bytes.fromhex("0001080006040001") + mac + socket.inet_aton(source) + bytes(6) + t
    frame = b"\\xff" * 6 + mac + b"\\x08\\x06" + body
else:
    t, src = socket.inet_pton(socket.AF_INET6, target), socket.inet_pton(socket.AF_INET6, source)
    group = bytes.fromhex("ff0200000000000000000001ff") + t[13:]
    option = b"" if src == bytes(16) else b"\\x01\\x01" + mac  # none in a DAD probe
    icmp = bytes([135, 0, 0, 0, 0, 0, 0, 0]) + t + option
    pseudo = src + group + struct.pack("!I", len(icmp)) + b"\\x00\\x00\\x00\\x3a" + icmp
    total = sum(struct.unpack(f"!{len(pseudo) // 2}H", pseudo))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    icmp = icmp[:2] + struct.pack("!H", ~total & 0xFFFF) + icmp[4:]
    header = struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + src + group
    frame = b"\\x33\\x33" + group[12:] + mac + b"\\x86\\xdd" + header + icmp
for _ in range(3):
    s.send(frame)
s.settimeout(0.1)
end = time.monotonic() + 1.0
while time.monotonic() < end:
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        continue
    if peer[2] == socket.PACKET_OUTGOING:
        continue
    kind_, payload = data[12:14], data[14:]
    if kind_ == b"\\x08\\x06" and payload[7] == 2 and payload[14:18] == t:
        print(payload[8:14].hex(":"), flush=True)
    if kind_ == b"\\x86\\xdd" and payload[6] == 58 and payload[40] == 136 and payload[48:64] == t:
        print(data[6:12].hex(":"), flush=True)
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as the_lab:
        the_lab.start_agent("node1", policy=True)
        yield the_lab


def answers(vm: str, kind: str, target: str, source: str) -> set[str]:
    """The MACs that answered ``vm`` asking who holds ``target``."""
    return set(exec_in(vm, "python3", "-c", ASK, kind, target, source).split())


def link_local(vm: str) -> str:
    addresses = json.loads(ip(vm, "-6", "-j", "addr", "show", "dev", "eth0"))[0]["addr_info"]
    found = [a for a in addresses if a.get("scope") == "link" and "tentative" not in a]
    return str(found[0]["local"]) if found else ""


def mac_of(namespace: str, interface: str) -> str:
    return str(json.loads(ip(namespace, "-j", "link", "show", interface))[0]["address"])


def test_the_host_never_answers_a_vm_for_its_own_address(lab: Lab) -> None:
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    _vm2, p2 = lab.boot("vm2", "node1", VM2)
    wait_for(lambda: lab.active("node1", p1) and lab.active("node1", p2), what="ports active")
    wait_for(lambda: link_local(vm1) != "", what="vm1's link-local address")
    own_tap = mac_of(lab.hosts["node1"], "tap" + p1["id"][:11])
    v4, v6 = VM1
    # the controls: the host answers for what is routed elsewhere, as vm1's own tap
    wait_for(lambda: answers(vm1, "arp", VM2[0], v4) == {own_tap}, what="ARP for vm2")
    assert answers(vm1, "ns", lab.gateway6, link_local(vm1)) == {own_tap}
    # the attack: who holds vm1's own addresses? nobody but vm1
    assert answers(vm1, "arp", v4, v4) == set()
    assert answers(vm1, "arp", v4, "0.0.0.0") == set()  # an ARP probe (RFC 5227)
    assert answers(vm1, "arp", v4, VM2[0]) == set()  # asking as another address
    assert answers(vm1, "ns", v6, link_local(vm1)) == set()
    assert answers(vm1, "ns", v6, "::") == set()  # duplicate address detection
