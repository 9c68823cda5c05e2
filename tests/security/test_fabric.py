"""Red team, the fabric: a VM reaches no host's fabric address through its own host.

Two hosts of ``vmlab.dual_stack_lab`` (a fabric link, static routes for the VM ranges),
each with its agent (policy on) registered with its fabric addresses in ``hosts/`` as
``routeplane agent`` registers itself. ``node2`` runs a TCP service on all its addresses
(what BGP, SSH or an agent's port is to a real host). The attacker is ``vm1`` on
``node1``: it tries that service at ``node2``'s IPv4 and IPv6 fabric addresses, which its
host routes as it routes anything, and must get nothing; its traffic to ``vm2`` on
``node2`` (the same addresses' host) still flows, and ``node1`` itself still reaches
``node2``. Everything lives in ``rp-`` namespaces the lab creates and deletes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from routeplane.lab.netns import exec_in
from tests.kernel.vmlab import CLIENT, FABRIC, SERVER, Lab, dual_stack_lab, reaches, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

VM1 = ["10.28.0.13", "fd5f:5d21:845:1c2e::13"]
VM2 = ["10.28.0.14", "fd5f:5d21:845:1c2e::14"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as the_lab:
        for host, (v4, v6) in FABRIC.items():
            the_lab.start_agent(host, policy=True, bgp_address=v4, bgp_address6=v6)
        yield the_lab


def answer_is(vm: str, address: str, name: str) -> bool:
    return reaches(vm, address) == name


def fabric_set(namespace: str, version: int) -> str:
    return exec_in(namespace, "nft", "list", "set", "inet", "routeplane", f"fabric{version}")


def test_a_vm_reaches_no_other_hosts_fabric_address_but_its_vms(lab: Lab) -> None:
    node1, node2 = lab.hosts["node1"], lab.hosts["node2"]
    lab.spawn(node2, "python3", "-c", SERVER, "node2")  # the host's own service, port 22
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    _vm2, p2 = lab.boot("vm2", "node2", VM2)
    wait_for(lambda: lab.active("node1", p1) and lab.active("node2", p2), what="ports active")
    v4, v6 = FABRIC["node2"]
    wait_for(
        lambda: v4 in fabric_set(node1, 4) and v6 in fabric_set(node1, 6),
        what="node2's fabric addresses in node1's table",
    )
    # the controls: the VMs reach each other across the hosts, the hosts each other
    for address in VM2:
        wait_for(partial(answer_is, vm1, address, "vm2"), what=f"vm1 reaching vm2 at {address}")
    for address in (v4, v6):
        assert exec_in(node1, "python3", "-c", CLIENT, address).strip() == "node2"
    # the attack: node2's service at its fabric addresses, through node1
    assert reaches(vm1, v4) == ""
    assert reaches(vm1, v6) == ""
