"""The host's DHCP server under a flood, and across a ``kill -9`` of the agent.

The dual-stack lab (``vmlab``). The flood: node1's agent runs in a thread with its DHCP
server; one VM sends 10,000 DISCOVERs for its own MAC as fast as it can while another
VM leases an address (``routeplane.testing.dhcp_client``, resending every 100 ms): the
other VM must hold its lease within 1 s. The restart: node1's agent is the real
``routeplane agent`` process; a VM holds its lease, the agent is killed with SIGKILL and
started again, and the same VM asks again: it gets the same address (the server keeps
no state to lose), and the time from the new process's start to the answer is printed.
Everything lives in ``rp-`` namespaces the lab creates and deletes; processes it starts
are ended by PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.dhcp import DhcpService
from routeplane.dataplane.linux.dhcp_socket import DhcpSocket
from routeplane.lab.netns import exec_in
from tests.kernel.vmlab import Lab, dual_stack_lab, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]
CLIENT = [sys.executable, "-m", "routeplane.testing.dhcp_client"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as lab:
        yield lab


def bare_vm(lab: Lab, name: str, address: str) -> tuple[str, dict[str, Any]]:
    """A VM whose port is bound to node1 and whose ``eth0`` has no address."""
    body = {
        "network_id": lab.net,
        "binding:host_id": "node1",
        "name": name,
        "fixed_ips": lab.fixed_ips([address]),
    }
    port = lab.create("ports", body)
    vm = lab.cleanup.namespace(name)
    lab.plug(vm, "node1", port)
    return vm, port


def lease(vm: str, port: dict[str, Any], timeout: float) -> dict[str, Any]:
    """What ``dhcp_client`` got on the VM's ``eth0``: address and seconds to the ACK."""
    command = [*CLIENT, "lease", f"eth0={port['mac_address']}", "--timeout", str(timeout)]
    out = exec_in(vm, *command, "--retry", "0.1")
    got: dict[str, Any] = json.loads(out)["eth0"]
    return got


def test_a_flood_from_one_tap_leaves_the_others_answered_within_a_second(lab: Lab) -> None:
    running = lab.start_agent("node1")
    service = DhcpService("node1", DhcpSocket(lab.hosts["node1"]), running.agent.endpoint_feed())
    service.start()
    lab.cleanup.add("stop the DHCP server", service.close)
    flooder, flooder_port = bare_vm(lab, "dhflood", "10.28.0.20")
    vm, port = bare_vm(lab, "dhcalm", "10.28.0.21")
    wait_for(lambda: lab.active("node1", port) and lab.active("node1", flooder_port))
    flood = lab.spawn(
        flooder,
        *CLIENT,
        "flood",
        "eth0",
        flooder_port["mac_address"],
        "10000",
        stdout=subprocess.PIPE,
    )
    time.sleep(0.05)  # the flood is under way
    got = lease(vm, port, timeout=3.0)
    out, _ = flood.communicate(timeout=30)
    print(f"flood of 10,000 took {json.loads(out)['seconds']:.2f}s; the other VM: {got}")
    assert got["address"] == "10.28.0.21"
    assert got["seconds"] < 1.0
    assert all(t.is_alive() for t in service._threads)
    assert service.answered < 200  # the flooder got its burst and its rate, no more


def test_a_killed_agent_loses_no_lease_and_answers_again_at_once(lab: Lab, tmp_path: Path) -> None:
    agent = lab.start_agent_process("node1", tmp_path / "agent1.log")
    vm, port = bare_vm(lab, "dhkill", "10.28.0.22")
    assert lease(vm, port, timeout=15.0)["address"] == "10.28.0.22"
    agent.kill()  # SIGKILL: nothing of it runs any more
    agent.wait(timeout=5)
    started = time.monotonic()
    lab.start_agent_process("node1", tmp_path / "agent2.log")
    got = lease(vm, port, timeout=15.0)
    since_start = time.monotonic() - started
    print(
        f"after kill -9: answered {got['seconds']:.2f}s after asking, {since_start:.2f}s after the new agent's start"
    )
    assert got["address"] == "10.28.0.22"  # the same lease: nothing was lost
    assert got["seconds"] < 1.0  # asked as the new agent started
