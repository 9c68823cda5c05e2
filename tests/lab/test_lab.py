"""``routeplane lab`` as a user drives it: up, boot, exec, status, env, down — for real.

A lab with two hosts comes up under a unique name and a free api port, with two VMs on
different hosts; the checks are the walkthrough's: the access node has learnt each VM's
address over BGP (``10.28.0.x via 192.168.8.3 … proto bird``) and reaches the VM's port 22,
which answers with the VM's name; VMs on different hosts reach each other; the
``openstack`` CLI, pointed at the lab by ``lab env``, shows the ports ACTIVE. Then ``lab
down`` must leave nothing behind, also after every process of the lab was killed -9.
Everything lives in namespaces ``rp-<unique lab>-…`` and in ``/run/routeplane/<lab>``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from routeplane.lab import netns, processes, state
from routeplane.lab.teardown import down
from routeplane.lab.topology import STATE_ROOT
from routeplane.testing.api import free_port

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

OPENSTACK = str(Path(sys.executable).with_name("openstack"))
CONNECT = [sys.executable, "-m", "routeplane.lab.vm_service", "connect"]


def lab_cli(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "routeplane.cli.main", "lab", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"routeplane lab {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Lab:
    name: str
    port: int

    def __call__(
        self, command: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return lab_cli(command, "--name", self.name, *args, check=check)

    def exec(self, node: str, *command: str) -> subprocess.CompletedProcess[str]:
        return self("exec", node, "--", *command, check=False)

    def answer(self, node: str, address: str) -> str:
        """What port 22 at ``address`` answers, asked from ``node``."""
        return self.exec(node, *CONNECT, address).stdout.strip()

    def state(self) -> state.LabState:
        found = state.load(STATE_ROOT / self.name / "state.json")
        assert found is not None
        return found

    def address(self, vm: str, version: int) -> str:
        for cidr in self.state().vms[vm].addresses:
            if (":" in cidr) == (version == 6):
                return cidr.split("/")[0]
        raise AssertionError(f"{vm} has no IPv{version} address")

    def namespaces(self) -> list[str]:
        return [ns for ns in netns.names() if ns.startswith(f"rp-{self.name}-")]


def unique_lab() -> Lab:
    return Lab("t" + secrets.token_hex(4), free_port())


@pytest.fixture
def fresh_lab() -> Iterator[Lab]:
    """A lab name nothing uses yet; removed afterwards whatever the test did."""
    lab = unique_lab()
    try:
        yield lab
    finally:
        down(lab.name)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """Two hosts, testvm1 on node1 and testvm2 on node2."""
    lab = unique_lab()
    try:
        up = lab("up", "--hosts", "2", "--port", str(lab.port))
        assert f"lab {lab.name} is up" in up.stdout
        lab("boot", "testvm1", "--network", "demo-net", "--host", "node1")
        lab("boot", "testvm2", "--network", "demo-net", "--host", "node2")
        yield lab
    finally:
        down(lab.name)


def bird_pids(lab_state: state.LabState) -> list[int]:
    pids = []
    for directory in lab_state.bird_dirs.values():
        pidfile = Path(directory) / "bird.pid"
        if pidfile.exists():
            pids.append(int(pidfile.read_text().strip()))
    return pids


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def openstack(lab: Lab, *args: str) -> str:
    """The real ``openstack`` CLI, configured by ``eval "$(routeplane lab env)"``."""
    quoted = " ".join(f"'{a}'" for a in args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    done = subprocess.run(
        ["bash", "-c", f'{lab("env").stdout}\n"{OPENSTACK}" {quoted}'],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- one lab, two hosts, two VMs ---------------------------------------------------------


def test_access_node_learns_vm_routes_over_bgp_and_reaches_their_service(lab: Lab) -> None:
    vm1, vm2 = lab.address("testvm1", 4), lab.address("testvm2", 4)
    routes = lab.exec("access", "ip", "route").stdout
    assert f"{vm1} via 192.168.8.3 dev fabric0 proto bird" in routes
    assert f"{vm2} via 192.168.8.4 dev fabric0 proto bird" in routes
    assert lab.answer("access", vm1) == "testvm1"  # the walkthrough's ssh from 192.168.8.1
    assert lab.answer("access", vm2) == "testvm2"


def test_vms_on_different_hosts_reach_each_other(lab: Lab) -> None:
    vm1, vm2 = lab.address("testvm1", 4), lab.address("testvm2", 4)
    assert lab.exec("testvm1", "ping", "-c", "1", "-W", "2", vm2).returncode == 0
    assert lab.exec("testvm2", "ping", "-c", "1", "-W", "2", vm1).returncode == 0
    assert lab.answer("testvm1", vm2) == "testvm2"
    assert lab.answer("testvm2", vm1) == "testvm1"
    hosts_route = lab.exec("node1", "ip", "route", "show", vm2).stdout
    assert "via 192.168.8.4 dev fabric0 proto bird" in hosts_route


def test_vm_is_configured_as_the_walkthrough_shows(lab: Lab) -> None:
    shown = lab.exec("testvm1", "ip", "addr", "show", "eth0").stdout
    vm1 = lab.address("testvm1", 4)
    assert f"inet {vm1}/16 brd 10.28.255.255 scope global eth0" in shown
    assert f"link/ether {lab.state().vms['testvm1'].mac}" in shown
    assert f"inet6 {lab.address('testvm1', 6)}/128 scope global" in shown  # DHCPv6's
    assert "default via 10.28.0.1 dev eth0" in lab.exec("testvm1", "ip", "route").stdout
    routes6 = lab.exec("testvm1", "ip", "-6", "route", "show", "default").stdout
    assert routes6.startswith("default via fe80::")  # node1's link-local address on the tap
    assert "proto ra" in routes6
    # nothing configured it by hand: its DHCP clients hold leases from node1's agent
    lab_state = lab.state()
    assert processes.alive(lab_state.processes["dhcp-testvm1"])
    assert processes.alive(lab_state.processes["dhcp6-testvm1"])
    lease = (STATE_ROOT / lab.name / "dhcp-testvm1.lease").read_text().splitlines()
    assert f"address {vm1}/16" in lease
    assert "router 10.28.0.1" in lease
    assert "hostname testvm1" in lease


def test_ipv6_between_vms_and_from_the_access_node(lab: Lab) -> None:
    vm1, vm2 = lab.address("testvm1", 6), lab.address("testvm2", 6)
    routes = lab.exec("access", "ip", "-6", "route").stdout
    assert f"{vm1} via fd00:192:168:8::3 dev fabric0 proto bird" in routes
    assert lab.answer("testvm1", vm2) == "testvm2"
    assert lab.answer("access", vm1) == "testvm1"


def test_openstack_cli_pointed_by_lab_env_sees_the_ports_active(lab: Lab) -> None:
    listed = openstack(lab, "port", "list", "--device-owner", "compute:nova", "-f", "json")
    ports = {p["Name"]: p["Status"] for p in json.loads(listed)}
    assert ports == {"testvm1": "ACTIVE", "testvm2": "ACTIVE"}


def test_walkthrough_service_ip_moves_from_one_vm_to_the_other(lab: Lab) -> None:
    service = "10.28.0.23"
    fixed = "subnet=demo-v4,ip-address=" + service
    openstack(lab, "port", "set", "--fixed-ip", fixed, "testvm1")
    lab.exec("testvm1", "ip", "addr", "add", f"{service}/16", "dev", "eth0")
    wait_for(lambda: lab.answer("access", service) == "testvm1", what="service IP on testvm1")
    assert f"{service} via 192.168.8.3" in lab.exec("access", "ip", "route").stdout

    openstack(lab, "port", "unset", "--fixed-ip", fixed, "testvm1")
    openstack(lab, "port", "set", "--fixed-ip", fixed, "testvm2")
    lab.exec("testvm2", "ip", "addr", "add", f"{service}/16", "dev", "eth0")
    wait_for(lambda: lab.answer("access", service) == "testvm2", what="service IP on testvm2")
    assert f"{service} via 192.168.8.4" in lab.exec("access", "ip", "route").stdout


def test_exec_runs_in_the_node_and_passes_the_exit_code_through(lab: Lab) -> None:
    assert "inet 192.168.8.3/24" in lab.exec("node1", "ip", "addr", "show", "fabric0").stdout
    assert "inet 192.168.8.1/24" in lab.exec("access", "ip", "addr", "show", "fabric0").stdout
    assert lab.exec("testvm2", "sh", "-c", "exit 7").returncode == 7
    unknown = lab.exec("node9", "true")
    assert unknown.returncode == 1
    assert "no host 'node9'" in unknown.stderr


def test_status_shows_namespaces_processes_sessions_and_vms(lab: Lab) -> None:
    shown = lab("status").stdout
    for suffix in ("fabric", "access", "node1", "node2", "vm-testvm1", "vm-testvm2"):
        assert f"rp-{lab.name}-{suffix}" in shown
    assert "MISSING" not in shown
    assert "DEAD" not in shown
    for process in ("api", "agent-node1", "agent-node2", "vm-testvm1"):
        assert any(
            line.split()[:1] == [process] and "running" in line for line in shown.splitlines()
        )
    access = shown.split("  access:")[1].split("  node1:")[0]
    assert access.count("Established") == 2  # one session per host
    vm_line = next(line for line in shown.splitlines() if line.strip().startswith("testvm1"))
    assert f"{lab.address('testvm1', 4)}/16" in vm_line
    assert "service running" in vm_line


def test_up_refuses_a_lab_that_is_up(lab: Lab) -> None:
    again = lab("up", "--port", str(free_port()), check=False)
    assert again.returncode == 1
    assert "already up" in again.stderr


# --- down ----------------------------------------------------------------------------------


def test_down_removes_every_namespace_process_and_file(fresh_lab: Lab) -> None:
    lab = fresh_lab
    lab("up", "--hosts", "1", "--port", str(lab.port))
    lab("boot", "vm1", "--network", "demo-net")
    recorded = lab.state()
    birds = bird_pids(recorded)
    assert len(birds) == 2  # the access node's and node1's
    assert len(lab.namespaces()) == 4

    lab("down")

    assert lab.namespaces() == []
    assert not any(processes.alive(p) for p in recorded.processes.values())
    assert not any(running(pid) for pid in birds)
    assert not (STATE_ROOT / lab.name).exists()
    assert "nothing to remove" in lab("down").stdout


def test_down_after_a_crash_with_dead_processes_and_a_partial_state(fresh_lab: Lab) -> None:
    lab = fresh_lab
    lab("up", "--hosts", "1", "--port", str(lab.port))
    lab("boot", "vm1", "--network", "demo-net")
    recorded = lab.state()
    birds = bird_pids(recorded)
    for record in recorded.processes.values():
        os.kill(record.pid, signal.SIGKILL)
    wait_for(
        lambda: not any(processes.alive(p) for p in recorded.processes.values()),
        what="the lab's processes to die",
    )
    partial = STATE_ROOT / lab.name / "state.json"  # as if `up` died before recording these
    raw = json.loads(partial.read_text())
    raw["namespaces"], raw["vms"] = [], {}
    partial.write_text(json.dumps(raw))

    lab("down")

    assert lab.namespaces() == []
    assert not any(running(pid) for pid in birds)  # the BIRDs outlive their agents; not down
    assert not (STATE_ROOT / lab.name).exists()
