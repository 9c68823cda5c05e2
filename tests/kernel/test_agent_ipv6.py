"""The agent over IPv6, against real kernels: VMs whose IPv6 addresses have no prefix
route reach everything through their subnet's gateway, which the host answers for on each
tap (proxy NDP); /128 routes, security groups and anti-spoofing as for IPv4.

Two hosts and their VMs as ``rp-`` namespaces (``tests/kernel/vmlab.py``), one agent per
host with policy on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.lab.netns import ip
from tests.kernel.vmlab import Lab, dual_stack_lab, pings, reaches, routes, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

VM1 = ["10.28.0.13", "fd5f:5d21:845:1c2e::d"]
VM2 = ["10.28.0.14", "fd5f:5d21:845:1c2e::e"]
VM3 = ["10.28.0.15", "fd5f:5d21:845:1c2e::f"]
SERVICE6 = "fd5f:5d21:845:1c2e::17"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as the_lab:
        assert the_lab.gateway6  # the VMs' default route goes through it
        yield the_lab


def test_vms_reach_each_other_over_ipv6_through_the_proxied_gateway(lab: Lab) -> None:
    lab.start_agent("node1", policy=True)
    lab.start_agent("node2", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    vm2, p2 = lab.boot("vm2", "node1", VM2)
    vm3, p3 = lab.boot("vm3", "node2", VM3)
    bound = (("node1", p1), ("node1", p2), ("node2", p3))
    wait_for(lambda: all(lab.active(h, p) for h, p in bound), what="all ports programmed")
    record = lab.store.get(f"/routeplane/v1/endpoints/node1/{p1['id']}")
    assert record is not None
    assert isinstance(record.value, dict)
    assert record.value["gateways"] == ["10.28.0.1", lab.gateway6]  # both subnets'
    h1, tap1 = lab.hosts["node1"], "tap" + p1["id"][:11]
    route = routes(h1, VM1[1])
    assert route.startswith(f"{VM1[1]} dev {tap1} proto 77"), route
    proxies = ip(h1, "-6", "neigh", "show", "proxy", "dev", tap1)
    assert f"{lab.gateway6} router proxy proto 77" in proxies, proxies

    assert pings(vm1, VM2[1])  # same host
    assert pings(vm1, VM3[1])  # across hosts
    wait_for(lambda: reaches(vm1, VM3[1]) == "vm3", what="TCP over IPv6 to vm3")
    assert reaches(vm3, VM2[1]) == "vm2"
    assert reaches(vm2, VM1[1]) == "vm1"
    # the VMs resolved their gateway through the host's proxy entry
    assert "lladdr" in ip(vm1, "-6", "neigh", "show", lab.gateway6)


def test_an_extra_ipv6_fixed_ip_is_routed_and_removal_unroutes_it(lab: Lab) -> None:
    lab.start_agent("node1", policy=True)
    lab.start_agent("node2", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    vm3, p3 = lab.boot("vm3", "node2", VM3)
    wait_for(lambda: lab.active("node1", p1) and lab.active("node2", p3), what="ports programmed")
    h1 = lab.hosts["node1"]

    lab.set_fixed_ips(p1, [*VM1, SERVICE6])
    wait_for(lambda: "proto 77" in routes(h1, SERVICE6), what="/128 route to the service IP")
    lab.add_address(vm1, SERVICE6)  # the walkthrough's step inside the VM
    wait_for(lambda: reaches(vm3, SERVICE6) == "vm1", what="service IP answering over IPv6")

    lab.set_fixed_ips(p1, VM1)
    wait_for(lambda: routes(h1, SERVICE6) == "", what="route withdrawn")
    assert reaches(vm3, SERVICE6) == ""
    assert reaches(vm3, VM1[1]) == "vm1"  # the port's other addresses are untouched


def test_ipv6_security_group_rule_admits_its_source_and_drops_another(lab: Lab) -> None:
    locked = lab.create("security_groups", {"name": "ssh-from-vm1-only"})
    rule = {"security_group_id": locked["id"], "direction": "ingress", "ethertype": "IPv6",
            "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
            "remote_ip_prefix": f"{VM1[1]}/128"}  # fmt: skip
    lab.create("security_group_rules", rule)
    lab.start_agent("node1", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    vm2, p2 = lab.boot("vm2", "node1", VM2)
    _vm3, p3 = lab.boot("vm3", "node1", VM3, groups=[locked["id"]])
    wait_for(lambda: all(lab.active("node1", p) for p in (p1, p2, p3)), what="ports programmed")
    wait_for(lambda: reaches(vm1, VM3[1]) == "vm3", what="the admitted source reaching vm3")
    assert reaches(vm2, VM3[1]) == ""  # not from the rule's prefix: dropped
    assert reaches(vm2, VM3[0]) == ""  # and no IPv4 rule at all
    assert reaches(vm2, VM1[1]) == "vm1"  # the default group admits its members


def test_an_ipv6_source_not_on_the_port_is_dropped(lab: Lab) -> None:
    lab.start_agent("node1", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    _vm2, p2 = lab.boot("vm2", "node1", VM2)
    wait_for(lambda: lab.active("node1", p1) and lab.active("node1", p2), what="ports programmed")
    wait_for(lambda: reaches(vm1, VM2[1]) == "vm2", what="vm1 reaching vm2 from its own address")
    spoofed = "fd5f:5d21:845:1c2e::99"
    lab.add_address(vm1, spoofed)
    assert reaches(vm1, VM2[1], source=spoofed) == ""  # not vm1's address: dropped
    assert reaches(vm1, VM2[1], source=VM1[1]) == "vm2"
