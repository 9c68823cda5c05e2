"""The host's router advertisements against real guest kernels.

The dual-stack lab (``vmlab``) with the agent on ``node1`` (policy on) and its router
advertisements (``RouterAdverts`` on ``RaSocket``) fed from the agent's follower, as the
``routeplane agent`` command runs them. Each VM is a namespace whose ``eth0`` is the far
end of its port's tap and has nothing configured: its own kernel (``accept_ra`` 1,
``autoconf`` 1, as a cloud image's) must form its address and default route from what
the host advertises. Everything lives in ``rp-`` namespaces the lab creates and deletes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.router_adverts import RouterAdverts
from routeplane.dataplane.linux.ra_socket import RaSocket
from routeplane.dataplane.model import METADATA_ADDRESS6
from routeplane.lab.netns import exec_in, ip
from tests.kernel.vmlab import Lab, dual_stack_lab, pings, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

PREFIX = "fd5f:5d21:845:aa00::/64"
DNS6 = "fd5f:5d21:845:aa00::53"
STATIC_VM = ["10.28.0.13", "fd5f:5d21:845:1c2e::d"]  # on the lab's network, configured by hand


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as lab:
        running = lab.start_agent("node1", policy=True)
        adverts = RouterAdverts(
            "node1", RaSocket(lab.hosts["node1"]), running.agent.endpoint_feed()
        )
        adverts.start()
        lab.cleanup.add("stop the router advertisements", adverts.close)
        yield lab


def network(lab: Lab, mode: str) -> dict[str, Any]:
    """A network of MTU 1450 with one IPv6 subnet in ``mode`` (both RA and address)."""
    net = lab.create("networks", {"name": f"net-{mode}", "mtu": 1450})
    body = {
        "network_id": net["id"],
        "ip_version": 6,
        "cidr": PREFIX,
        "dns_nameservers": [DNS6],
        "ipv6_ra_mode": mode,
        "ipv6_address_mode": mode,
    }
    subnet: dict[str, Any] = lab.create("subnets", body)
    return subnet


def bare_vm(lab: Lab, name: str, subnet: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A VM bound to node1 with an address from ``subnet`` chosen by the api and an
    ``eth0`` with nothing configured."""
    body = {
        "network_id": subnet["network_id"],
        "binding:host_id": "node1",
        "name": name,
        "fixed_ips": [{"subnet_id": subnet["id"]}],
    }
    port = lab.create("ports", body)
    vm = lab.cleanup.namespace(name)
    lab.plug(vm, "node1", port)
    return vm, port


def tap_link_local(lab: Lab, port: dict[str, Any]) -> str:
    """The host's own link-local address on the port's tap (not the metadata address)."""
    tap = "tap" + port["id"][:11]
    shown = ip(lab.hosts["node1"], "-6", "-o", "addr", "show", "dev", tap, "scope", "link")
    found = [line.split("inet6 ")[1].split("/")[0] for line in shown.splitlines()]
    assert METADATA_ADDRESS6 in found  # every tap holds it (nodad: at once)
    (own,) = [address for address in found if address != METADATA_ADDRESS6]
    return own


def default_route(vm: str) -> str:
    return ip(vm, "-6", "route", "show", "default").strip()


def test_a_slaac_guest_forms_exactly_the_apis_address_and_routes_via_the_host(lab: Lab) -> None:
    subnet = network(lab, "slaac")
    vm, port = bare_vm(lab, "raslaac", subnet)
    address = port["fixed_ips"][0]["ip_address"]
    assert address.startswith("fd5f:5d21:845:aa00:f816:3eff:fe")  # EUI-64 of fa:16:3e:…
    wait_for(lambda: address in ip(vm, "-6", "addr", "show", "dev", "eth0"), 5, "SLAAC")
    wait_for(lambda: default_route(vm) != "", 5, "the default route")
    globals_ = ip(vm, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
    assert globals_.count("inet6 ") == 1
    assert f"inet6 {address}/64" in globals_
    router = tap_link_local(lab, port)
    assert router.startswith("fe80::")
    assert default_route(vm).startswith(f"default via {router} dev eth0 proto ra")
    assert "fd5f:5d21:845:aa00::/64" not in ip(vm, "-6", "route")  # nothing on-link
    mtu = exec_in(vm, "cat", "/proc/sys/net/ipv6/conf/eth0/mtu")
    assert mtu.strip() == "1450"  # the network's, from the MTU option

    # and the guest reaches a VM on the same host through its router, the host
    _static, p2 = lab.boot("rastatic", "node1", STATIC_VM)
    wait_for(lambda: lab.active("node1", port) and lab.active("node1", p2), what="programmed")
    wait_for(lambda: pings(vm, STATIC_VM[1]), 10, "a ping from the SLAAC address")


def test_a_stateful_subnet_advertises_managed_and_no_autonomous_prefix(lab: Lab) -> None:
    subnet = network(lab, "dhcpv6-stateful")
    vm, port = bare_vm(lab, "rastateful", subnet)
    wait_for(lambda: default_route(vm) != "", 5, "the default route")
    assert default_route(vm).startswith(f"default via {tap_link_local(lab, port)} dev eth0")
    assert "scope global" not in ip(vm, "-6", "addr", "show", "dev", "eth0")  # DHCPv6's job


def test_a_port_without_an_ipv6_mode_hears_no_advertisement(lab: Lab) -> None:
    vm, _port = lab.boot("rastatic", "node1", STATIC_VM)  # the lab's subnet has no mode
    ip(vm, "-6", "route", "del", "default")
    exec_in(vm, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/eth0/accept_ra")
    ip(vm, "link", "set", "eth0", "down")
    ip(vm, "link", "set", "eth0", "up")  # solicits again
    wait_for(lambda: "fe80::" in ip(vm, "-6", "addr", "show", "dev", "eth0"), 5, "link-local")
    wait_for(lambda: "tentative" not in ip(vm, "-6", "addr", "show", "dev", "eth0"), 5, "DAD")
    exec_in(vm, "sleep", "2")
    assert default_route(vm) == ""
