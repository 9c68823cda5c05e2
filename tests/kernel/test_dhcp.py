"""The host's DHCPv4 server against real DHCP clients in VM namespaces.

The dual-stack lab (``vmlab``): a host namespace with the agent running in a thread, its
DHCP server (``DhcpService`` on ``DhcpSocket``) fed from the agent's own follower as the
``routeplane agent`` command feeds it. Each VM is a namespace whose ``eth0`` is the far
end of its port's tap and has *no* address: a real client — busybox ``udhcpc``, ISC
``dhclient`` or ``dhcpcd`` — must get everything from the host. A client's hook script
writes what it was given to a file and configures ``eth0`` from it (``dhcpcd``
configures the interface itself). Everything lives in ``rp-`` namespaces the lab
creates and deletes; processes it starts are ended by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.dhcp import DhcpService
from routeplane.dataplane.linux.dhcp_socket import DhcpSocket
from routeplane.lab.netns import exec_in, ip
from routeplane.services.attributes import check_update
from routeplane.services.context import ADMIN
from tests.kernel.vmlab import Lab, dual_stack_lab, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

# a hook for udhcpc and dhclient: record the lease, configure eth0 from it
HOOK = """#!/bin/sh
env | grep -E '^(ip|subnet|router|dns|mtu|hostname|new_[a-z_]*|reason)=' > "{out}.$$"
mv "{out}.$$" "{out}"
case "$1$reason" in
  bound|renew|BOUND|RENEW|REBOOT)
    ip=${{ip:-$new_ip_address}}; mask=${{subnet:-$new_subnet_mask}}
    router=${{router:-$new_routers}}; mtu=${{mtu:-$new_interface_mtu}}
    ip addr flush dev eth0
    ip addr add "$ip/$mask" dev eth0
    [ -n "$mtu" ] && ip link set eth0 mtu "$mtu"
    [ -n "$router" ] && ip route replace default via ${{router%% *}} dev eth0
    ;;
esac
exit 0
"""
DNS = ["10.28.0.53", "10.28.0.54"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as lab:
        update(lab, "subnets", lab.subnets[4], {"dns_nameservers": DNS})
        update(lab, "networks", lab.net, {"mtu": 1450})
        running = lab.start_agent("node1")
        service = DhcpService(
            "node1", DhcpSocket(lab.hosts["node1"]), running.agent.endpoint_feed()
        )
        service.start()
        lab.cleanup.add("stop the DHCP server", service.close)
        lab.dhcp = service  # type: ignore[attr-defined]
        yield lab


def update(lab: Lab, kind: str, resource_id: str, body: dict[str, Any]) -> None:
    service = getattr(lab.services, kind)
    service.update(ADMIN, resource_id, check_update(service.attrs, body, is_admin=True), None)


def bare_vm(lab: Lab, name: str, address: str) -> tuple[str, dict[str, Any]]:
    """A VM whose port is bound to node1 and whose ``eth0`` has no address."""
    body = {"network_id": lab.net, "binding:host_id": "node1", "name": name,
            "fixed_ips": lab.fixed_ips([address])}  # fmt: skip
    port = lab.create("ports", body)
    vm = lab.cleanup.namespace(name)
    lab.plug(vm, "node1", port)
    wait_for(lambda: lab.active("node1", port), what=f"{name}'s port programmed")
    return vm, port


def lease(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        found[name] = value.strip("'")
    return found


def run_client(lab: Lab, client: str, vm: str, tmp_path: Path) -> Path:
    out = tmp_path / f"{client}.lease"
    hook = tmp_path / f"{client}.hook"
    hook.write_text(HOOK.format(out=out))
    hook.chmod(0o755)
    commands = {
        "udhcpc": ["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
                   "-s", str(hook)],
        "dhclient": ["dhclient", "-1", "-d", "-sf", str(hook), "-lf", str(tmp_path / "lf"),
                     "-pf", str(tmp_path / "pf"), "eth0"],
        "dhcpcd": ["dhcpcd", "--oneshot", "--ipv4only", "--waitip=4", "--timeout", "10",
                   "--noarp", "--nohook", "resolv.conf", "--script", str(hook), "eth0"],
    }  # fmt: skip
    if client == "dhclient":
        lab.spawn(vm, *commands[client], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        exec_in(vm, *commands[client], check_rc=False)
    wait_for(lambda: out.exists() and "eth0" in ip(vm, "-4", "addr"), 15, f"{client}'s lease")
    return out


@pytest.mark.parametrize("client", ["udhcpc", "dhclient", "dhcpcd"])
def test_a_real_client_gets_exactly_its_ports_lease(lab: Lab, tmp_path: Path, client: str) -> None:
    if shutil.which({"udhcpc": "busybox"}.get(client, client)) is None:
        pytest.fail(f"{client} is not installed (make system-deps installs it)")
    vm, _port = bare_vm(lab, f"dh{client[:4]}", "10.28.0.13")
    held = lease(run_client(lab, client, vm, tmp_path))
    wait_for(lambda: "10.28.0.13/16" in ip(vm, "-4", "addr", "show", "dev", "eth0"), 10)
    addresses = ip(vm, "-4", "-o", "addr", "show", "dev", "eth0")
    assert addresses.count("inet ") == 1
    assert "inet 10.28.0.13/16" in addresses
    assert "default via 10.28.0.1 dev eth0" in ip(vm, "-4", "route")
    assert "mtu 1450" in ip(vm, "link", "show", "dev", "eth0")
    dns = held.get("dns") or held.get("new_domain_name_servers")
    assert dns is not None
    assert dns.split() == DNS


def test_a_new_dns_server_reaches_a_renewing_client_without_a_restart(
    lab: Lab, tmp_path: Path
) -> None:
    service: DhcpService = lab.dhcp  # type: ignore[attr-defined]
    vm, _port = bare_vm(lab, "dhrenew", "10.28.0.14")
    out = tmp_path / "renew.lease"
    hook = tmp_path / "renew.hook"
    hook.write_text(HOOK.format(out=out))
    hook.chmod(0o755)
    client = lab.spawn(vm, "busybox", "udhcpc", "-i", "eth0", "-f", "-s", str(hook),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for(lambda: out.exists() and lease(out).get("dns", "").split() == DNS, 10, "a lease")
    threads = list(service._threads)
    update(lab, "subnets", lab.subnets[4], {"dns_nameservers": ["10.28.0.99"]})
    out.unlink()
    client.send_signal(10)  # SIGUSR1: udhcpc renews, unicast to the server identifier
    wait_for(out.exists, 10, "the renewal")
    renewed = lease(out)
    assert (renewed["dns"], renewed["ip"]) == ("10.28.0.99", "10.28.0.14")
    assert service._threads == threads
    assert all(t.is_alive() for t in threads)


def test_a_copied_mac_on_another_tap_gets_nothing(lab: Lab, tmp_path: Path) -> None:
    _vm1, port1 = bare_vm(lab, "dhowner", "10.28.0.15")
    thief, _port2 = bare_vm(lab, "dhthief", "10.28.0.16")
    ip(thief, "link", "set", "eth0", "address", port1["mac_address"])
    service: DhcpService = lab.dhcp  # type: ignore[attr-defined]
    before, refused = service.answered, service.tally["refused"]
    hook = tmp_path / "thief.hook"
    hook.write_text(HOOK.format(out=tmp_path / "thief.lease"))
    hook.chmod(0o755)
    done = exec_in(thief, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "3",
                   "-T", "1", "-s", str(hook), check_rc=False)  # fmt: skip
    assert "inet " not in ip(thief, "-4", "addr", "show", "dev", "eth0"), done
    assert service.answered == before
    assert service.tally["refused"] > refused  # counted for the metrics, not logged
