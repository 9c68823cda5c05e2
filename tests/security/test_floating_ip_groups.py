"""Red team, floating IPs: another project's floating IP obeys that project's groups.

Project A's VM ``a1`` on ``node1`` has a floating IP and a security group admitting
tcp/22 from one address only, that of ``b-allowed`` (project B, ``node2``). The
attackers are project B's other VMs, ``b-far`` on ``node2`` and ``b-near`` on ``node1``
(the floating IP's own host): each tries ``a1``'s floating IP on tcp/22 (admitted, but
not from them) and on tcp/8080 (where ``a1`` also listens, admitted from nobody), and
gets nothing; ``b-allowed`` reaches tcp/22 through the floating IP, and not tcp/8080.
Both hosts run their agents with policy on; the resources are made through the api's
services, as the admin makes them for each project. Everything lives in ``rp-``
namespaces the lab creates and deletes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.lab.netns import exec_in, ip
from routeplane.services.context import ADMIN
from tests.kernel.vmlab import Lab, dual_stack_lab, reaches, routes, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

PROJECT_A, PROJECT_B = "a" * 32, "b" * 32
A1, B_NEAR, B_FAR, B_ALLOWED = "10.28.0.13", "10.28.0.14", "10.28.0.15", "10.28.0.16"
# A second service, on tcp/8080, answering its VM's name.
SERVER_8080 = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\\n"); c.close()
"""
CLIENT_8080 = """
import socket, sys
try:
    print(socket.create_connection((sys.argv[1], 8080), timeout=1).recv(100).decode().strip())
except OSError:
    print("")
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as the_lab:
        the_lab.start_agent("node1", policy=True)
        the_lab.start_agent("node2", policy=True)
        yield the_lab


def on_8080(vm: str, address: str) -> str:
    return exec_in(vm, "python3", "-c", CLIENT_8080, address, check_rc=False).strip()


def floating_ip_of(lab: Lab, port: dict[str, object]) -> str:
    """A floating IP of project A on ``port``, from an external network routed to node1."""
    public = lab.create("networks", {"name": "public", "router:external": True})
    body = {"network_id": public["id"], "ip_version": 4, "cidr": "172.24.4.0/24"}
    lab.create("subnets", body)
    gateway = {"network_id": public["id"]}
    router = lab.create("routers", {"name": "r1", "external_gateway_info": gateway})
    lab.services.routers.add_interface(ADMIN, router["id"], {"subnet_id": lab.subnets[4]})
    ip(lab.hosts["node2"], "route", "add", "172.24.4.0/24", "via", "192.168.8.3")  # BGP's job
    body = {"floating_network_id": public["id"], "port_id": port["id"], "project_id": PROJECT_A}
    address = str(lab.create("floatingips", body)["floating_ip_address"])
    wait_for(lambda: "proto 77" in routes(lab.hosts["node1"], address), what="floating IP routed")
    return address


def test_another_projects_floating_ip_admits_only_what_its_groups_admit(lab: Lab) -> None:
    group = lab.create("security_groups", {"name": "ssh-from-one", "project_id": PROJECT_A})
    rule = {
        "security_group_id": group["id"],
        "direction": "ingress",
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "remote_ip_prefix": f"{B_ALLOWED}/32",
        "project_id": PROJECT_A,
    }
    lab.create("security_group_rules", rule)
    a1, pa = lab.boot("a1", "node1", [A1], groups=[group["id"]], project_id=PROJECT_A)
    lab.spawn(a1, "python3", "-c", SERVER_8080, "a1")
    hosts = {
        "b-near": ("node1", B_NEAR),
        "b-far": ("node2", B_FAR),
        "b-allowed": ("node2", B_ALLOWED),
    }
    b_vms = {
        name: lab.boot(name, host, [address], project_id=PROJECT_B)
        for name, (host, address) in hosts.items()
    }
    bound = [("node1", pa)] + [(hosts[name][0], port) for name, (_vm, port) in b_vms.items()]
    wait_for(lambda: all(lab.active(host, port) for host, port in bound), what="ports active")
    wait_for(lambda: on_8080(a1, "127.0.0.1") == "a1", what="a1's service on tcp/8080")
    floating = floating_ip_of(lab, pa)
    allowed = b_vms["b-allowed"][0]
    # the control: the one admitted address reaches tcp/22 through the floating IP
    wait_for(lambda: reaches(allowed, floating) == "a1", what="the admitted source reaching a1")
    # the attack: every other source, on the admitted port and on a port admitted to none
    for name in ("b-near", "b-far"):
        vm = b_vms[name][0]
        assert reaches(vm, floating) == "", f"{name} reached a1's tcp/22"
        assert on_8080(vm, floating) == "", f"{name} reached a1's tcp/8080"
    assert on_8080(allowed, floating) == ""
