"""Health-driven failover of a service IP in the lab, end to end.

testvm1 on node1 holds the service IP 10.28.0.23 as a ``service_ip`` (active: its port,
standby: testvm2's port on node2, TCP health check on port 22). No one configures the
address inside the VMs: each runs ``routeplane guest``, which adds it to ``eth0`` when the
port has it and drops it when the port loses it. When testvm1's service dies, the checker
on node1 reports it, the lab's controller moves the address to testvm2's port in one
transaction, node2 routes it, BGP tells the access node, connects from the access node
reach testvm2, testvm2 holds the address and testvm1 has dropped it.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from routeplane.controller.failover import stale_after
from routeplane.lab import lab as lab_ops
from routeplane.lab import netns
from routeplane.lab.neutron import Neutron
from routeplane.lab.service import start_service
from routeplane.lab.state import LabState, VmRecord
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology
from routeplane.store import open_store
from routeplane.testing.api import free_port
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

SERVICE_IP = "10.28.0.23"
INTERVAL, THRESHOLD = 0.2, 3
CHECK: dict[str, Any] = {
    "type": "tcp", "port": 22, "interval": INTERVAL, "failure_threshold": THRESHOLD
}  # fmt: skip
CONNECT = [sys.executable, "-m", "routeplane.lab.vm_service", "connect"]


class Failover:
    def __init__(self, name: str, state: LabState) -> None:
        self.name = name
        self.topology = Topology.plan(name, state.hosts)
        self.api = Neutron(state.api_url, state.admin_token)

    def answer(self, address: str = SERVICE_IP) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.topology.access.namespace, *CONNECT, address],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return done.stdout.strip()

    def healthy(self, sip_id: str) -> int:
        """How many of the service IP's ports the hosts report healthy."""
        store = open_store(self.topology.store_url)
        try:
            records = store.range("/routeplane/v1/health/").items
        finally:
            store.close()
        return sum(
            1 for kv in records
            if f"/{sip_id}/" in kv.key and isinstance(kv.value, dict) and kv.value["healthy"]
        )  # fmt: skip

    @staticmethod
    def holds(vm: VmRecord, address: str = SERVICE_IP) -> bool:
        """Whether ``address`` is on the VM's ``eth0`` (put there by its guest)."""
        return f"inet {address}/" in netns.ip(vm.namespace, "addr", "show", "dev", "eth0")

    def place(self, name: str, address: str, active: VmRecord, standby: VmRecord) -> dict[str, Any]:
        """A service IP on ``active``'s port with ``standby``'s as its standby, once the
        active VM answers on it and both ports are reported healthy."""
        body = {
            "name": name, "ip_address": address, "active_port_id": active.port_id,
            "standby_port_ids": [standby.port_id], "health_check": CHECK,
        }  # fmt: skip
        sip: dict[str, Any] = self.api.request("POST", "service_ips", {"service_ip": body})[
            "service_ip"
        ]
        wait_for(lambda: self.holds(active, address), 20, f"{active.name}'s guest adding it")
        wait_for(lambda: self.answer(address) == active.name, 20, f"{active.name} on {address}")
        wait_for(lambda: self.healthy(sip["id"]) == 2, 10, "both ports reported healthy")
        return sip

    def service_ip(self, sip_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.request("GET", f"service_ips/{sip_id}")["service_ip"]
        return found


@pytest.fixture(scope="module")
def failover() -> Iterator[tuple[Failover, VmRecord, VmRecord]]:
    name = "f" + secrets.token_hex(4)
    try:
        state = lab_ops.up(name, 2, free_port(), say=lambda _: None)
        vm1 = lab_ops.boot(name, "testvm1", "demo-net", host="node1")
        vm2 = lab_ops.boot(name, "testvm2", "demo-net", host="node2")
        the = Failover(name, state)
        yield the, vm1, vm2
        the.api.close()
    finally:
        down(name)


def test_the_standby_takes_over_when_the_active_service_dies(
    failover: tuple[Failover, VmRecord, VmRecord],
) -> None:
    lab, vm1, vm2 = failover
    sip = lab.place("ssh", SERVICE_IP, vm1, vm2)
    assert not lab.holds(vm2)

    state = lab_ops.open_lab(lab.name)[1]
    os.kill(state.processes["vm-testvm1"].pid, signal.SIGKILL)  # the VM's service dies
    moved = wait_for(
        lambda: lab.service_ip(sip["id"])["active_port_id"] == vm2.port_id, 20, "the move"
    )
    answered = wait_for(lambda: lab.answer() == "testvm2", 20, "testvm2 on the service IP")
    assert lab.holds(vm2)  # no manual step: testvm2's guest added it
    wait_for(lambda: not lab.holds(vm1), 5, "testvm1's guest dropping the service IP")
    assert moved < INTERVAL * THRESHOLD + 1.0, f"moved after {moved:.2f}s"
    assert answered < 2.0, f"testvm2 answered {answered:.2f}s after the move"

    after = lab.service_ip(sip["id"])
    assert after["active_port_id"] == vm2.port_id
    assert after["moves"][-1]["reason"] == "health"
    assert after["moves"][-1]["from_port_id"] == vm1.port_id
    route = netns.ip(lab.topology.access.namespace, "route", "show", SERVICE_IP)
    assert route.startswith(f"{SERVICE_IP} via 192.168.8.4")
    node1 = netns.ip(lab.topology.host("node1").namespace, "route", "show", SERVICE_IP)
    assert "dev tap" not in node1  # the old host no longer routes it to testvm1


def test_no_move_to_a_standby_nobody_vouches_for_and_convergence_when_it_returns(
    failover: tuple[Failover, VmRecord, VmRecord],
) -> None:
    """The standby's agent is down (frozen): its reports go stale, so when the active
    fails the address stays where it is — on exactly one port — instead of moving to a
    port whose health nobody knows. When the agent returns, the move happens."""
    lab, vm1, vm2 = failover
    address = "10.28.0.24"
    start_service(lab.name, "testvm1")  # the first test killed it
    sip = lab.place("web", address, vm1, vm2)

    state = lab_ops.open_lab(lab.name)[1]
    agent = state.processes["agent-node2"].pid
    os.kill(agent, signal.SIGSTOP)  # node2's agent is down: no more reports from node2
    try:
        time.sleep(stale_after(CHECK) + 0.5)
        os.kill(state.processes["vm-testvm1"].pid, signal.SIGKILL)
        time.sleep(INTERVAL * THRESHOLD + 1.5)
        assert lab.service_ip(sip["id"])["active_port_id"] == vm1.port_id
        holders = lab.api.request("GET", f"ports?fixed_ips=ip_address%3D{address}")["ports"]
        assert [p["id"] for p in holders] == [vm1.port_id]
    finally:
        os.kill(agent, signal.SIGCONT)
    wait_for(lambda: lab.service_ip(sip["id"])["active_port_id"] == vm2.port_id, 15, "the move")
    wait_for(lambda: lab.answer(address) == "testvm2", 10, "testvm2 on the service IP")
    holders = lab.api.request("GET", f"ports?fixed_ips=ip_address%3D{address}")["ports"]
    assert [p["id"] for p in holders] == [vm2.port_id]


def test_a_failover_during_a_store_outage_completes_once_the_store_returns(
    failover: tuple[Failover, VmRecord, VmRecord],
) -> None:
    """The embedded store is locked by someone else for longer than anyone waits for it
    (every write fails as unavailable) just as the active VM fails: nothing is lost or
    doubled, and the move happens — once — when the store is back."""
    lab, vm1, vm2 = failover
    address = "10.28.0.25"
    start_service(lab.name, "testvm1")
    sip = lab.place("db", address, vm2, vm1)

    state = lab_ops.open_lab(lab.name)[1]
    lock = sqlite3.connect(lab.topology.state_dir / "store.db", timeout=10)
    lock.execute("BEGIN EXCLUSIVE")  # every other writer now times out (5 s)
    try:
        os.kill(state.processes["vm-testvm2"].pid, signal.SIGKILL)
        time.sleep(6.5)
    finally:
        lock.rollback()
        lock.close()
    wait_for(lambda: lab.service_ip(sip["id"])["active_port_id"] == vm1.port_id, 20, "the move")
    wait_for(lambda: lab.answer(address) == "testvm1", 10, "testvm1 on the service IP")
    holders = lab.api.request("GET", f"ports?fixed_ips=ip_address%3D{address}")["ports"]
    assert [p["id"] for p in holders] == [vm1.port_id]
    moves = lab.service_ip(sip["id"])["moves"]
    assert [m["reason"] for m in moves] == ["health"]  # exactly one move
