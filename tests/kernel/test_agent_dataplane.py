"""The agent against real kernels: hosts and VMs as network namespaces, packets for real.

The two compute hosts of ``vmlab.dual_stack_lab`` (``node1``, ``node2``, a fabric link
with static routes for the VM ranges: BGP comes with the lab); these tests use its IPv4
side: two VMs on node1 and one on node2, each VM a namespace whose ``eth0`` is the far
end of its port's tap. The ports are made through the api's services on an embedded
store; one agent per host follows it and programs its host namespace. Everything lives in
``rp-`` namespaces the lab creates and deletes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.lab.netns import exec_in, ip
from routeplane.services.context import ADMIN
from tests.kernel.vmlab import (
    ECHO_CLIENT,
    Lab,
    dual_stack_lab,
    pings,
    reaches,
    routes,
    wait_for,
)

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as the_lab:
        yield the_lab


def test_vms_reach_each_other_on_one_host_and_across_hosts(lab: Lab) -> None:
    lab.start_agent("node1")
    lab.start_agent("node2")
    vm1, p1 = lab.boot("vm1", "node1", ["10.28.0.13"])
    _vm2, p2 = lab.boot("vm2", "node1", ["10.28.0.14"])
    vm3, p3 = lab.boot("vm3", "node2", ["10.28.0.15"])
    bound = (("node1", p1), ("node1", p2), ("node2", p3))
    wait_for(lambda: all(lab.active(h, p) for h, p in bound), what="all ports programmed")
    route = routes(lab.hosts["node1"], "10.28.0.13")
    assert f"dev tap{p1['id'][:11]}" in route
    assert "proto 77 scope link" in route
    assert pings(vm1, "10.28.0.14")
    assert pings(vm1, "10.28.0.15")
    wait_for(lambda: reaches(vm1, "10.28.0.15") == "vm3", what="TCP to vm3")
    assert reaches(vm3, "10.28.0.14") == "vm2"


def test_extra_fixed_ip_is_routed_and_removal_unroutes_it(lab: Lab) -> None:
    lab.start_agent("node1")
    lab.start_agent("node2")
    vm1, p1 = lab.boot("vm1", "node1", ["10.28.0.13"])
    vm3, p3 = lab.boot("vm3", "node2", ["10.28.0.15"])
    wait_for(lambda: lab.active("node1", p1) and lab.active("node2", p3), what="ports programmed")
    h1 = lab.hosts["node1"]

    lab.set_fixed_ips(p1, ["10.28.0.13", "10.28.0.23"])
    wait_for(lambda: "proto 77" in routes(h1, "10.28.0.23"), what="route to the service IP")
    ip(vm1, "addr", "add", "10.28.0.23/16", "dev", "eth0")  # the walkthrough's step in the VM
    wait_for(lambda: reaches(vm3, "10.28.0.23") == "vm1", what="service IP answering")

    lab.set_fixed_ips(p1, ["10.28.0.13"])
    wait_for(lambda: routes(h1, "10.28.0.23") == "", what="route withdrawn")
    assert reaches(vm3, "10.28.0.23") != "vm1"


def test_restart_keeps_routes_and_sweeps_only_the_stale(lab: Lab) -> None:
    first = lab.start_agent("node1", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", ["10.28.0.13"])
    _vm2, p2 = lab.boot("vm2", "node1", ["10.28.0.14"])
    vm3, p3 = lab.boot("vm3", "node1", ["10.28.0.15"])
    wait_for(lambda: all(lab.active("node1", p) for p in (p1, p2, p3)), what="ports programmed")
    h1 = lab.hosts["node1"]
    ip(h1, "route", "add", "10.99.0.1/32", "dev", "fabric0", "proto", "static")  # not ours
    lab.serve_echo(vm1)
    talker = subprocess.Popen(
        ["ip", "netns", "exec", vm3, "python3", "-c", ECHO_CLIENT, "10.28.0.13", "3"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    pinger = subprocess.Popen(
        ["ip", "netns", "exec", vm3, "ping", "-i", "0.02", "-c", "100", "-W", "1", "10.28.0.13"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    monitor = subprocess.Popen(
        ["ip", "-n", h1, "monitor", "route"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)
        first.halt()  # as after kill -9: the kernel keeps everything the agent made
        lab.services.ports.delete(ADMIN, p2["id"], None)  # stale while the agent is down
        lab.start_agent("node1", policy=True)
        wait_for(lambda: routes(h1, "10.28.0.14") == "", what="stale route swept")
        summary, _ = pinger.communicate(timeout=20)
        echoed, _ = talker.communicate(timeout=20)
    finally:
        monitor.terminate()
        events, _ = monitor.communicate(timeout=5)
        pinger.kill()
        talker.kill()
    assert " 0% packet loss" in summary, summary
    sent = echoed.split("/")[-1].strip()
    assert echoed.strip() == f"echoed {sent}/{sent}", echoed  # the open connection lost nothing
    assert int(sent) > 50
    assert "10.28.0.13" not in events  # still wanted: never deleted nor re-added
    assert "Deleted 10.28.0.14" in events
    assert "10.99.0.1" in routes(h1, "10.99.0.1")  # someone else's route is left alone
    assert lab.active("node1", p1)
    assert not lab.active("node1", p2)


def test_security_groups_and_anti_spoofing_through_the_agent(lab: Lab) -> None:
    locked = lab.create("security_groups", {"name": "locked"})
    rule = {"security_group_id": locked["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "192.168.8.1/32"}  # fmt: skip
    lab.create("security_group_rules", rule)
    lab.start_agent("node1", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", ["10.28.0.13"])  # the default group: members admit members
    _vm2, p2 = lab.boot("vm2", "node1", ["10.28.0.14"])
    _vm3, p3 = lab.boot("vm3", "node1", ["10.28.0.15"], groups=[locked["id"]])
    wait_for(lambda: all(lab.active("node1", p) for p in (p1, p2, p3)), what="ports programmed")
    wait_for(lambda: reaches(vm1, "10.28.0.14") == "vm2", what="default group admitting a member")
    assert reaches(vm1, "10.28.0.15") == ""  # only 192.168.8.1/32 may reach vm3 on tcp/22
    ip(vm1, "addr", "add", "10.28.0.99/16", "dev", "eth0")
    assert reaches(vm1, "10.28.0.14", source="10.28.0.99") == ""  # not vm1's address: dropped
    assert reaches(vm1, "10.28.0.14") == "vm2"


def test_floating_ip_reaches_the_vm_which_sees_only_its_fixed_ip(lab: Lab) -> None:
    public = lab.create("networks", {"name": "public", "router:external": True})
    lab.create("subnets", {"network_id": public["id"], "ip_version": 4, "cidr": "172.24.4.0/24"})
    router = lab.create(
        "routers", {"name": "r1", "external_gateway_info": {"network_id": public["id"]}}
    )
    lab.services.routers.add_interface(ADMIN, router["id"], {"subnet_id": lab.subnets[4]})
    ip(
        lab.hosts["node2"], "route", "add", "172.24.4.0/24", "via", "192.168.8.3"
    )  # BGP's job, later
    lab.start_agent("node1", policy=True)
    lab.start_agent("node2", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", ["10.28.0.13"])
    vm3, p3 = lab.boot("vm3", "node2", ["10.28.0.15"])
    wait_for(lambda: lab.active("node1", p1) and lab.active("node2", p3), what="ports programmed")
    fip = lab.create("floatingips", {"floating_network_id": public["id"], "port_id": p1["id"]})
    address = fip["floating_ip_address"]
    wait_for(
        lambda: "proto 77" in routes(lab.hosts["node1"], address), what="floating address routed"
    )
    wait_for(lambda: reaches(vm3, address) == "vm1", what="floating IP answering")
    assert address not in ip(vm1, "addr", "show")  # DNAT'd on the host: the VM never holds it
    lab.services.floatingips.update(ADMIN, fip["id"], {"port_id": None}, None)
    wait_for(lambda: routes(lab.hosts["node1"], address) == "", what="floating address withdrawn")
    assert reaches(vm3, address) != "vm1"


def conntrack_entries(namespace: str, address: str) -> str:
    return exec_in(namespace, "conntrack", "-L", "-d", address, check_rc=False)


def test_moving_an_address_away_flushes_its_connection_tracking(lab: Lab) -> None:
    lab.start_agent("node1", policy=True)  # the policy's ct rules make the host track flows
    lab.start_agent("node2", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", ["10.28.0.13"])
    vm3, p3 = lab.boot("vm3", "node2", ["10.28.0.15"])
    wait_for(lambda: lab.active("node1", p1) and lab.active("node2", p3), what="ports programmed")
    h1 = lab.hosts["node1"]
    lab.set_fixed_ips(p1, ["10.28.0.13", "10.28.0.23"])
    ip(vm1, "addr", "add", "10.28.0.23/16", "dev", "eth0")
    wait_for(lambda: reaches(vm3, "10.28.0.23") == "vm1", what="service IP answering")
    assert "10.28.0.23" in conntrack_entries(h1, "10.28.0.23")  # the flow is tracked on node1

    lab.set_fixed_ips(p1, ["10.28.0.13"])
    wait_for(lambda: routes(h1, "10.28.0.23") == "", what="route withdrawn")
    wait_for(
        lambda: "10.28.0.23" not in conntrack_entries(h1, "10.28.0.23"), what="conntrack flushed"
    )
