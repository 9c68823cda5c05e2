"""VMs that configure themselves: ``routeplane guest`` in lab VMs, end to end.

A lab with two hosts; testvm1 on node1 and testvm2 on node2, each booted by ``lab boot``,
which starts the guest daemon inside the VM. The api changes a port (an extra fixed IP,
then none; an atomic move between the two VMs) and the address must appear on, or leave,
the VM's ``eth0`` with no one logging in — within a second — and be usable from the
access node. The metadata service answers a VM about its own port only: a VM sending
from another port's address gets nothing. Everything lives in ``rp-<lab>-…`` namespaces
and ``/run/routeplane/<lab>``, removed afterwards.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from routeplane.lab import lab as lab_ops
from routeplane.lab import netns
from routeplane.lab.neutron import Neutron
from routeplane.lab.state import VmRecord
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology
from routeplane.testing.api import free_port
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

CONNECT = [sys.executable, "-m", "routeplane.lab.vm_service", "connect"]
# GET the metadata service's addresses from an optional source address; prints the
# status and body, or "failed <error>"
ASK = """
import http.client, sys
source = (sys.argv[1], 0) if len(sys.argv) > 1 else None
conn = http.client.HTTPConnection("169.254.169.254", 80, timeout=2, source_address=source)
try:
    conn.request("GET", "/routeplane/v1/addresses")
    r = conn.getresponse()
    print(r.status, r.read().decode().strip())
except OSError as exc:
    print("failed", exc)
"""


@dataclass
class GuestLab:
    name: str
    topology: Topology
    api: Neutron
    vm1: VmRecord
    vm2: VmRecord

    def holds(self, vm: VmRecord, address: str) -> bool:
        shown = netns.ip(vm.namespace, "addr", "show", "dev", "eth0")
        return f"inet {address}/" in shown

    def answer(self, address: str) -> str:
        """What port 22 at ``address`` answers, asked from the access node."""
        return netns.exec_in(
            self.topology.access.namespace, *CONNECT, address, check_rc=False
        ).strip()

    def fixed_ips(self, vm: VmRecord, *extra: str) -> dict[str, Any]:
        port = self.api.show("port", vm.port_id)
        own = [{"subnet_id": f["subnet_id"], "ip_address": f["ip_address"]}
               for f in port["fixed_ips"] if f["ip_address"] in self.base(vm)]  # fmt: skip
        subnet = own[0]["subnet_id"]
        body = {"fixed_ips": own + [{"subnet_id": subnet, "ip_address": a} for a in extra]}
        updated: dict[str, Any] = self.api.request("PUT", f"ports/{vm.port_id}", {"port": body})
        return updated

    @staticmethod
    def base(vm: VmRecord) -> set[str]:
        return {cidr.split("/")[0] for cidr in vm.addresses}


def following(vm: VmRecord, topology: Topology) -> Callable[[], bool]:
    """Whether the VM's guest has had its first answer from the metadata service."""
    log = topology.log(f"guest-{vm.name}")
    return lambda: log.exists() and "following port" in log.read_text()


@pytest.fixture(scope="module")
def lab() -> Iterator[GuestLab]:
    name = "g" + secrets.token_hex(4)
    try:
        state = lab_ops.up(name, 2, free_port(), say=lambda _: None)
        vm1 = lab_ops.boot(name, "testvm1", "demo-net", host="node1")
        vm2 = lab_ops.boot(name, "testvm2", "demo-net", host="node2")
        topology = Topology.plan(name, state.hosts)
        for vm in (vm1, vm2):
            wait_for(following(vm, topology), 20, f"{vm.name}'s guest to reach the service")
        the = GuestLab(name, topology, Neutron(state.api_url, state.admin_token), vm1, vm2)
        yield the
        the.api.close()
    finally:
        down(name)


def test_an_extra_fixed_ip_appears_on_the_vm_and_leaves_it(lab: GuestLab) -> None:
    address = "10.28.0.23"
    started = time.monotonic()
    lab.fixed_ips(lab.vm1, address)
    wait_for(lambda: lab.holds(lab.vm1, address), 5, f"{address} on testvm1")
    present = time.monotonic() - started  # from before the api call, the call included
    print(f"\n{address} on testvm1's eth0 {present:.3f}s after the api call")
    assert present < 1.0, f"{address} appeared after {present:.3f}s"
    shown = netns.ip(lab.vm1.namespace, "addr", "show", "dev", "eth0")
    assert f"inet {address}/32 scope global eth0" in shown
    wait_for(lambda: lab.answer(address) == "testvm1", 10, "testvm1 answering on it")

    started = time.monotonic()
    lab.fixed_ips(lab.vm1)
    wait_for(lambda: not lab.holds(lab.vm1, address), 5, f"{address} gone from testvm1")
    gone = time.monotonic() - started
    assert gone < 1.0, f"{address} left after {gone:.3f}s"
    assert all(lab.holds(lab.vm1, a) for a in lab.base(lab.vm1) if ":" not in a)


def test_an_atomic_move_takes_the_address_from_one_vm_to_the_other(lab: GuestLab) -> None:
    address = "10.28.0.24"
    lab.fixed_ips(lab.vm1, address)
    wait_for(lambda: lab.holds(lab.vm1, address), 5, f"{address} on testvm1")
    wait_for(lambda: lab.answer(address) == "testvm1", 10, "testvm1 answering on it")

    body = {"fixed_ip": {"ip_address": address, "from_port_id": lab.vm1.port_id}}
    started = time.monotonic()
    lab.api.request("PUT", f"ports/{lab.vm2.port_id}/move_fixed_ip", body)
    wait_for(lambda: lab.holds(lab.vm2, address), 5, f"{address} on testvm2")
    arrived = time.monotonic() - started
    wait_for(lambda: not lab.holds(lab.vm1, address), 5, f"{address} gone from testvm1")
    left = time.monotonic() - started
    print(f"\nmove: on testvm2 {arrived:.3f}s after the api call; off testvm1 by {left:.3f}s")
    assert arrived < 1.0, f"{address} reached testvm2 after {arrived:.3f}s"
    assert left < 1.0, f"{address} left testvm1 after {left:.3f}s"
    wait_for(lambda: lab.answer(address) == "testvm2", 10, "testvm2 answering on it")
    lab.fixed_ips(lab.vm2)  # leave the VMs as they were
    wait_for(lambda: not lab.holds(lab.vm2, address), 5, f"{address} gone from testvm2")


def test_a_vm_learns_only_its_own_ports_addresses(lab: GuestLab) -> None:
    vm1, vm2 = lab.vm1, lab.vm2
    own = netns.exec_in(vm1.namespace, sys.executable, "-c", ASK, check_rc=False)
    assert own.startswith("200 "), own
    assert f'"port_id": "{vm1.port_id}"' in own
    other = next(a for a in lab.base(vm2) if ":" not in a)
    netns.ip(vm1.namespace, "addr", "add", f"{other}/32", "dev", "eth0")
    try:
        spoofed = netns.exec_in(vm1.namespace, sys.executable, "-c", ASK, other, check_rc=False)
    finally:
        netns.ip(vm1.namespace, "addr", "del", f"{other}/32", "dev", "eth0")
    assert spoofed.startswith("failed"), spoofed  # no handshake: the answer is vm2's
    assert vm2.port_id not in spoofed
