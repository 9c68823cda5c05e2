"""The host's DHCPv6 server against ISC ``dhclient -6`` in VM namespaces.

The dual-stack lab (``vmlab``) with the agent on ``node1`` (policy on), its router
advertisements and its DHCPv6 server (``Dhcp6Service`` on ``Dhcp6Socket``) fed from the
agent's follower, as ``routeplane agent`` runs them. Each VM's ``eth0`` has nothing but
its link-local address: ``dhclient -6`` must get its address (stateful) or its DNS
servers (stateless) from the host, and its kernel the default route from the host's
advertisements. The client's hook writes what it was given to a file and adds the
address. Everything lives in ``rp-`` namespaces the lab creates and deletes; processes
it starts are ended by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.agent.dhcp6 import Dhcp6Service
from routeplane.agent.router_adverts import RouterAdverts
from routeplane.dataplane.linux.dhcp6_socket import Dhcp6Socket
from routeplane.dataplane.linux.ra_socket import RaSocket
from routeplane.lab.netns import ip
from routeplane.lab.vm_dhcp import dhclient6
from tests.kernel.test_dhcp import lease
from tests.kernel.test_router_adverts import bare_vm, default_route, network, tap_link_local
from tests.kernel.vmlab import Lab, dual_stack_lab, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

HOOK = """#!/bin/sh
env | grep -E '^(reason|new_[a-z0-9_]*)=' > "{out}.$$"
mv "{out}.$$" "{out}"
case "$reason" in
  BOUND6|RENEW6|REBIND6)
    ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" dev eth0 nodad
    ;;
esac
exit 0
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    if shutil.which("dhclient") is None:
        pytest.fail("dhclient is not installed (make system-deps installs it)")
    with dual_stack_lab(tmp_path) as lab:
        running = lab.start_agent("node1", policy=True)
        host = lab.hosts["node1"]
        adverts = RouterAdverts("node1", RaSocket(host), running.agent.endpoint_feed())
        server = Dhcp6Service("node1", Dhcp6Socket(host), running.agent.endpoint_feed())
        for service in (adverts, server):
            service.start()
            lab.cleanup.add(f"stop {service.name}", service.close)
        lab.dhcp6 = server  # type: ignore[attr-defined]
        yield lab


def run_dhclient6(lab: Lab, vm: str, tmp_path: Path, *flags: str) -> Path:
    """``dhclient -6`` in ``vm`` (DUID-LL, no lease file of a former run), started once
    the VM's link-local address is usable; the file its hook writes."""
    wait_for(
        lambda: (
            "fe80::" in (shown := ip(vm, "-6", "addr", "show", "dev", "eth0"))
            and "tentative" not in shown
        ),
        5,
        "the VM's link-local address",
    )
    out = tmp_path / "dhcp6.lease"
    hook = tmp_path / "dhcp6.hook"
    hook.write_text(HOOK.format(out=out))
    hook.chmod(0o755)
    command = dhclient6(hook, tmp_path / "dhclient6", "eth0", *flags)
    lab.spawn(vm, *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def test_dhclient_gets_exactly_the_apis_address_and_routes_via_the_host(
    lab: Lab, tmp_path: Path
) -> None:
    subnet = network(lab, "dhcpv6-stateful")
    vm, port = bare_vm(lab, "d6stateful", subnet)
    address = port["fixed_ips"][0]["ip_address"]
    out = run_dhclient6(lab, vm, tmp_path)
    wait_for(lambda: out.exists() and lease(out).get("reason") == "BOUND6", 10, "a binding")
    held = lease(out)
    assert held["new_ip6_address"] == address
    assert held["new_dhcp6_name_servers"] == "fd5f:5d21:845:aa00::53"
    wait_for(lambda: address in ip(vm, "-6", "addr", "show", "dev", "eth0"), 5, "the address")
    globals_ = ip(vm, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
    assert globals_.count("inet6 ") == 1  # nothing from SLAAC: the prefix is not autonomous
    wait_for(lambda: default_route(vm) != "", 5, "the default route")
    assert default_route(vm).startswith(f"default via {tap_link_local(lab, port)} dev eth0")


def test_a_stateless_client_gets_its_dns_servers_and_forms_its_address(
    lab: Lab, tmp_path: Path
) -> None:
    subnet = network(lab, "dhcpv6-stateless")
    vm, port = bare_vm(lab, "d6stateless", subnet)
    out = run_dhclient6(lab, vm, tmp_path, "-S")  # Information-Request
    wait_for(lambda: out.exists() and "new_dhcp6_name_servers" in lease(out), 10, "options")
    assert lease(out)["new_dhcp6_name_servers"] == "fd5f:5d21:845:aa00::53"
    address = port["fixed_ips"][0]["ip_address"]  # the EUI-64 address the guest forms
    wait_for(lambda: address in ip(vm, "-6", "addr", "show", "dev", "eth0"), 5, "SLAAC")


def test_a_copied_mac_on_another_tap_gets_nothing(lab: Lab, tmp_path: Path) -> None:
    subnet = network(lab, "dhcpv6-stateful")
    _owner, port1 = bare_vm(lab, "d6owner", subnet)
    thief, _port2 = bare_vm(lab, "d6thief", subnet)
    ip(thief, "link", "set", "eth0", "down")
    ip(thief, "link", "set", "eth0", "address", port1["mac_address"])
    ip(thief, "link", "set", "eth0", "up")
    service: Dhcp6Service = lab.dhcp6  # type: ignore[attr-defined]
    out = run_dhclient6(lab, thief, tmp_path)
    subprocess.run(["sleep", "3"], check=True)  # Solicits go out at once, then ~1 s apart
    assert "new_ip6_address" not in (lease(out) if out.exists() else {})
    assert service.answered == 0
    assert "scope global" not in ip(thief, "-6", "addr", "show", "dev", "eth0")
