"""QEMU guests in a real lab: DHCP at boot, SSH from the access node, a service IP the
guests follow, and the host's security holding for a real guest kernel (issue #15).

One lab (two hosts, agents, BIRD, the access node) for every check, to keep the TCG
guests' cost down: ``routeplane lab boot --kind qemu`` boots testvm1 on node1 and testvm2
on node2. Nothing configures them but their own boot: the address comes by DHCP from the
host's agent (their kernel command line carries none), further addresses from their
follower asking the host's metadata service. What is checked is what a user sees: the
lease on the guest's console, ``ssh … hostname`` from the access node, the service IP's
atomic move under the prober (the old guest never answers after the new one), a floating
IP reaching a guest that never holds it, a spoofed source dropped, and the walkthrough's
tcp/22 rule admitting the access node only.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from routeplane.lab import guest_follower, guest_init, image, netns, qemu, qemu_vm
from routeplane.lab import lab as lab_ops
from routeplane.lab.neutron import Neutron
from routeplane.lab.prober import Prober
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology
from tests.lab.test_lab import Lab, unique_lab
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

SERVICE_IP = "10.28.0.23"
CONNECT = [sys.executable, "-m", "routeplane.lab.vm_service", "connect"]
MOVES = 4
# on the access node: the source of every ICMP echo request that arrives, until one of
# 99 bytes of data (the guest's "done") or 20 s
LISTEN = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(20)
print("listening", flush=True)
try:
    while True:
        packet, (source, _) = s.recvfrom(256)
        if packet[20] == 8:
            print(source, flush=True)
            if len(packet) == 20 + 8 + 99:
                break
except TimeoutError:
    pass
"""


@dataclass
class QemuLab:
    lab: Lab
    topology: Topology
    api: Neutron
    boot_seconds: float

    def console(self, vm: str) -> str:
        return (qemu_vm.guest_dir(self.topology, vm) / "console.log").read_text(errors="replace")

    def run(self, vm: str, command: str) -> str:
        """A shell command in the guest, over its control channel (not the network)."""
        done = self.lab.exec(vm, "sh", "-c", command)
        assert done.returncode == 0, f"{vm}: {command}: {done.stderr}"
        return done.stdout

    def address(self, vm: str) -> str:
        return self.lab.address(vm, 4)

    def ssh(self, node: str, address: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        key = qemu_vm.ssh_key(self.topology)
        argv = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        done = self.lab.exec(node, *argv, f"root@{address}", "hostname")
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def port(self, vm: str) -> dict[str, Any]:
        return self.api.show("port", self.lab.state().vms[vm].port_id)

    def set_fixed_ips(self, vm: str, *extra: str) -> None:
        own = [{"ip_address": a.split("/")[0]} for a in self.lab.state().vms[vm].addresses]
        body = {"port": {"fixed_ips": own + [{"ip_address": a} for a in extra]}}
        self.api.request("PUT", f"ports/{self.port(vm)['id']}", body)


def following(qlab: QemuLab, vm: str) -> Callable[[], bool]:
    return lambda: guest_follower.FOLLOWING in qlab.console(vm)


def answered(prober: Prober, vm: str, after: float) -> Callable[[], bool]:
    return lambda: prober.first(vm, after) is not None


@pytest.fixture(scope="module")
def qlab() -> Iterator[QemuLab]:
    lab = unique_lab()
    try:
        lab("up", "--hosts", "2", "--port", str(lab.port))
        started = time.monotonic()
        lab("boot", "testvm1", "--network", "demo-net", "--host", "node1", "--kind", "qemu")
        took = time.monotonic() - started
        lab("boot", "testvm2", "--network", "demo-net", "--host", "node2", "--kind", "qemu")
        topology, state = lab_ops.open_lab(lab.name)
        api = Neutron(state.api_url, state.admin_token)
        the = QemuLab(lab, topology, api, took)
        for vm in ("testvm1", "testvm2"):
            wait_for(following(the, vm), 30, f"{vm}'s follower")
        yield the
        api.close()
    finally:
        down(lab.name)


def test_the_guest_takes_its_address_by_dhcp_and_answers_ssh_from_the_access_node(
    qlab: QemuLab,
) -> None:
    print(f"\nlab boot --kind qemu testvm1 to ACTIVE: {qlab.boot_seconds:.1f}s")
    for vm, host in (("testvm1", "192.168.8.3"), ("testvm2", "192.168.8.4")):
        address = qlab.address(vm)
        assert "rp.ip=" not in qlab.run(vm, "cat /proc/cmdline")  # no fallback: DHCP only
        lease = f"{guest_init.LEASE} bound {address}/16 router 10.28.0.1 server 10.28.0.1"
        assert lease in qlab.console(vm)
        shown = qlab.run(vm, "ip -o -4 addr show dev eth0; ip route")
        assert f"inet {address}/16" in shown
        assert "default via 10.28.0.1 dev eth0" in shown
        routes = qlab.lab.exec("access", "ip", "route").stdout
        assert f"{address} via {host} dev fabric0 proto bird" in routes
        banner = qlab.lab.exec("access", *CONNECT, address).stdout
        assert banner.startswith("SSH-2.0-dropbear")
        assert qlab.ssh("access", address).stdout.strip() == vm


def test_ipv6_router_advertisements_reach_the_guest(qlab: QemuLab) -> None:
    """The host advertises itself as the guest's IPv6 router (the demo's IPv6 subnet is
    DHCPv6-stateful: the advertisement's M flag, and the default route via the tap's
    link-local address; the busybox guest runs no DHCPv6 client)."""
    shown = qlab.run("testvm1", "ip -6 route show default")
    assert "via fe80::" in shown, shown
    assert "dev eth0" in shown, shown


def test_the_port_turns_active_only_once_its_tap_is_up(qlab: QemuLab) -> None:
    node = qlab.topology.host("node1")
    net = qlab.api.find("network", "demo-net")
    port = qlab.api.create(
        "port",
        {"network_id": net["id"], "name": "late", "binding:host_id": "node1",
         "device_owner": "compute:nova", "device_id": str(uuid.uuid4())},
    )  # fmt: skip
    spec = qemu_vm.spec(qlab.topology, node, vm_name="late", port=port)
    try:
        time.sleep(2)
        assert qlab.api.show("port", port["id"])["status"] == "DOWN"  # no tap
        qemu.plug(node.namespace, spec.tap, spec.mac)
        time.sleep(2)  # the tap exists and is up, but has no carrier: no NIC behind it
        assert "NO-CARRIER" in netns.ip(node.namespace, "link", "show", spec.tap)
        assert qlab.api.show("port", port["id"])["status"] == "DOWN"
        qemu.unplug(node.namespace, spec.tap)
        started = time.monotonic()
        qemu.start(spec, image.build())  # QEMU opens the tap: carrier
        qlab.api.wait_port_status(port["id"], "ACTIVE", 30)
        print(f"\nQEMU started -> port ACTIVE: {time.monotonic() - started:.2f}s")
    finally:
        qemu.stop(spec.directory)
        qlab.api.request("DELETE", f"ports/{port['id']}")


def test_the_service_ip_moves_between_guests_and_the_old_one_never_answers_after(
    qlab: QemuLab,
) -> None:
    api = qlab.api
    group = api.find("security_group", "default", project_id="admin")
    name_service = {
        "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": guest_init.NAME_PORT,
        "port_range_max": guest_init.NAME_PORT, "remote_ip_prefix": "192.168.8.1/32",
    }  # fmt: skip
    rule = api.create("security_group_rule", name_service)
    qlab.set_fixed_ips("testvm1", SERVICE_IP)
    prober = Prober(
        qlab.topology.access.namespace, SERVICE_IP, 120, guest_init.NAME_PORT, every=0.05
    )
    try:
        wait_for(lambda: prober.first("testvm1", 0) is not None, 30, "testvm1 on the service IP")
        assert f"{guest_follower.ADDED} {SERVICE_IP}/32" in qlab.console("testvm1")
        windows = []
        for index in range(MOVES):
            old, new = ("testvm1", "testvm2") if index % 2 == 0 else ("testvm2", "testvm1")
            body = {"fixed_ip": {"ip_address": SERVICE_IP, "from_port_id": qlab.port(old)["id"]}}
            api.request("PUT", f"ports/{qlab.port(new)['id']}/move_fixed_ip", body)
            returned = time.monotonic()
            wait_for(answered(prober, new, returned), 10, f"{new} on the service IP")
            first = prober.first(new, returned)
            assert first is not None
            last = prober.last_answer_before(first)
            windows.append(first - (last if last is not None else returned))
            time.sleep(1.0)
            assert prober.count(old, first, time.monotonic() - 0.3) == 0, f"{old} answered after"
        held = qlab.run("testvm1", "ip -o -4 addr show dev eth0")
        assert f"inet {SERVICE_IP}/32" in held  # the last move brought it back to testvm1
        assert f"inet {SERVICE_IP}/" not in qlab.run("testvm2", "ip -o -4 addr show dev eth0")
        assert f"{guest_follower.REMOVED} {SERVICE_IP}/32" in qlab.console("testvm2")
        ms = sorted(w * 1000 for w in windows)
        print(f"\nQEMU guests, atomic move: no-answer window p50 {statistics.median(ms):.0f} ms,"
              f" max {ms[-1]:.0f} ms over {MOVES} moves")  # fmt: skip
        # from testvm1 again, over real SSH
        assert qlab.ssh("access", SERVICE_IP).stdout.strip() == "testvm1"
    finally:
        prober.stop()
        qlab.set_fixed_ips("testvm1")
        api.request("DELETE", f"security-group-rules/{rule['id']}")


def test_a_floating_ip_reaches_a_guest_that_never_holds_it(qlab: QemuLab) -> None:
    public = qlab.api.find("network", "public")
    fip = qlab.api.create(
        "floatingip", {"floating_network_id": public["id"], "port_id": qlab.port("testvm1")["id"]}
    )
    floating = fip["floating_ip_address"]
    try:
        wait_for(lambda: floating in qlab.lab.exec("access", "ip", "route").stdout, 15, "its route")
        assert qlab.ssh("access", floating).stdout.strip() == "testvm1"
        assert floating not in qlab.run("testvm1", "ip -o addr")
    finally:
        qlab.api.request("DELETE", f"floatingips/{fip['id']}")


def test_a_guest_sending_from_an_address_not_its_own_is_dropped(qlab: QemuLab) -> None:
    own, spoofed = qlab.address("testvm1"), "10.28.0.199"
    listener = subprocess.Popen(
        ["ip", "netns", "exec", qlab.topology.access.namespace, sys.executable, "-c", LISTEN],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert listener.stdout is not None
    assert listener.stdout.readline().strip() == "listening"
    pings = [f"ping -c 1 -W 1 -I {source} 192.168.8.1" for source in (spoofed, own, spoofed)]
    pings.append(f"ping -c 1 -W 1 -s 99 -I {own} 192.168.8.1")  # done
    qlab.run(  # one command: the listener's idle timeout cannot run out between them
        "testvm1",
        f"ip addr add {spoofed}/32 dev eth0; {'; '.join(pings)}; ip addr del {spoofed}/32 dev eth0",
    )
    out, _ = listener.communicate(timeout=30)
    assert own in out.split()  # the guest's own address gets through...
    assert spoofed not in out.split()  # ...an address that is not its own does not


def test_the_walkthrough_rule_admits_ssh_from_the_access_node_only(qlab: QemuLab) -> None:
    address = qlab.address("testvm1")
    assert qlab.ssh("access", address).stdout.strip() == "testvm1"  # from 192.168.8.1
    # node2 (192.168.8.4) routes to testvm1 over the fabric like the access node does
    assert qlab.lab.exec("node2", *CONNECT, address, "--timeout", "2").stdout.strip() == ""
    refused = qlab.ssh("node2", address, check=False)
    assert refused.returncode == 255
    assert "testvm1" not in refused.stdout
