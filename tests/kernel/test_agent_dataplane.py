"""The agent against real kernels: hosts and VMs as network namespaces, packets for real.

Two compute hosts (``node1``, ``node2``) joined by a fabric link with static routes for
the VM range (BGP comes with the lab), two VMs on node1 and one on node2, each VM a
namespace whose ``eth0`` is the far end of its port's tap. The ports are made through the
api's services on an embedded store; one agent per host follows it and programs its host
namespace. Everything lives in ``rp-`` namespaces this test creates and deletes.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.loop import Agent
from routeplane.agent.settings import AgentSettings
from routeplane.dataplane.linux import LinuxKernel, NftTable
from routeplane.lab.netns import Cleanup, add_veth, exec_in, ip
from routeplane.services.attributes import check_create, check_update
from routeplane.services.context import ADMIN
from routeplane.services.registry import Services
from routeplane.store.sqlite import SqliteStore
from tests.kernel.vmlab import (
    CLIENT,
    ECHO_CLIENT,
    ECHO_SERVER,
    SERVER,
    RunningAgent,
    wait_for,
)

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


@dataclass
class Lab:
    cleanup: Cleanup
    store: SqliteStore
    services: Services
    hosts: dict[str, str]  # host name -> namespace
    net: str = ""
    subnet: str = ""
    agents: dict[str, RunningAgent] = field(default_factory=dict)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_agent(self, host: str, *, policy: bool = False) -> RunningAgent:
        kernel = LinuxKernel(self.hosts[host])
        table = NftTable(self.hosts[host]) if policy else None
        agent = Agent(
            self.store, kernel, AgentSettings(host=host, apply_interval=0.002), policy=table
        )
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop.is_set,), daemon=True)
        thread.start()
        running = RunningAgent(agent, stop, thread)
        self.agents[host] = running
        return running

    def boot(
        self, name: str, host: str, address: str, groups: list[str] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """A VM: its port (bound to ``host``), its namespace, its tap, its service."""
        body: dict[str, Any] = {
            "network_id": self.net, "binding:host_id": host, "name": name,
            "device_owner": "compute:nova", "fixed_ips": [{"subnet_id": self.subnet, "ip_address": address}],
        }  # fmt: skip
        if groups is not None:
            body["security_groups"] = groups
        port = self.services.ports.create(
            ADMIN, check_create(self.services.ports.attrs, body, is_admin=True)
        )
        vm = self.cleanup.namespace(name)
        add_veth(
            self.hosts[host],
            "tap" + port["id"][:11],
            vm,
            "eth0",
            peer_mac=port["mac_address"],
            up=True,
        )
        ip(vm, "addr", "add", f"{address}/16", "dev", "eth0")
        ip(vm, "route", "add", "default", "dev", "eth0")  # on-link: the host answers ARP
        server = subprocess.Popen(["ip", "netns", "exec", vm, "python3", "-c", SERVER, name])
        self.servers.append(server)
        return vm, port

    def set_fixed_ips(self, port: dict[str, Any], addresses: list[str]) -> dict[str, Any]:
        fixed = [{"subnet_id": self.subnet, "ip_address": a} for a in addresses]
        data = check_update(self.services.ports.attrs, {"fixed_ips": fixed}, is_admin=True)
        return self.services.ports.update(ADMIN, port["id"], data, None)

    def active(self, host: str, port: dict[str, Any]) -> bool:
        return self.store.get(f"/routeplane/v1/status/{host}/{port['id']}") is not None


def routes(namespace: str, address: str) -> str:
    return ip(namespace, "route", "show", address)


def reaches(vm: str, address: str, source: str | None = None) -> str:
    extra = [source] if source else []
    return exec_in(vm, "python3", "-c", CLIENT, address, *extra, check_rc=False).strip()


def pings(vm: str, address: str) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", vm, "ping", "-c", "1", "-W", "1", address],
        capture_output=True, check=False, timeout=10,
    )  # fmt: skip
    return done.returncode == 0


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Cleanup() as cleanup:
        h1, h2 = cleanup.namespace("node1"), cleanup.namespace("node2")
        add_veth(h1, "fabric0", h2, "fabric0", up=True)
        ip(h1, "addr", "add", "192.168.8.3/24", "dev", "fabric0")
        ip(h2, "addr", "add", "192.168.8.4/24", "dev", "fabric0")
        ip(h1, "route", "add", "10.28.0.0/16", "via", "192.168.8.4")  # BGP's job, later
        ip(h2, "route", "add", "10.28.0.0/16", "via", "192.168.8.3")
        store = SqliteStore(tmp_path / "store.db")
        services = Services(store)
        the_lab = Lab(cleanup, store, services, {"node1": h1, "node2": h2})
        net = services.networks.create(
            ADMIN, check_create(services.networks.attrs, {"name": "demo-net"}, is_admin=True)
        )
        body = {"network_id": net["id"], "ip_version": 4, "cidr": "10.28.0.0/16"}
        subnet = services.subnets.create(
            ADMIN, check_create(services.subnets.attrs, body, is_admin=True)
        )
        the_lab.net, the_lab.subnet = net["id"], subnet["id"]
        try:
            yield the_lab
        finally:
            for running in the_lab.agents.values():
                running.halt()
            for server in the_lab.servers:
                server.terminate()
                server.wait(timeout=5)
            store.close()


def test_vms_reach_each_other_on_one_host_and_across_hosts(lab: Lab) -> None:
    lab.start_agent("node1")
    lab.start_agent("node2")
    vm1, p1 = lab.boot("vm1", "node1", "10.28.0.13")
    _vm2, p2 = lab.boot("vm2", "node1", "10.28.0.14")
    vm3, p3 = lab.boot("vm3", "node2", "10.28.0.15")
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
    vm1, p1 = lab.boot("vm1", "node1", "10.28.0.13")
    vm3, p3 = lab.boot("vm3", "node2", "10.28.0.15")
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
    vm1, p1 = lab.boot("vm1", "node1", "10.28.0.13")
    _vm2, p2 = lab.boot("vm2", "node1", "10.28.0.14")
    vm3, p3 = lab.boot("vm3", "node1", "10.28.0.15")
    wait_for(lambda: all(lab.active("node1", p) for p in (p1, p2, p3)), what="ports programmed")
    h1 = lab.hosts["node1"]
    ip(h1, "route", "add", "10.99.0.1/32", "dev", "fabric0", "proto", "static")  # not ours
    lab.servers.append(subprocess.Popen(["ip", "netns", "exec", vm1, "python3", "-c", ECHO_SERVER]))
    time.sleep(0.2)
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
    attrs = lab.services.security_groups.attrs
    locked = lab.services.security_groups.create(
        ADMIN, check_create(attrs, {"name": "locked"}, is_admin=True)
    )
    rule = {"security_group_id": locked["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "192.168.8.1/32"}  # fmt: skip
    lab.services.security_group_rules.create(
        ADMIN, check_create(lab.services.security_group_rules.attrs, rule, is_admin=True)
    )
    lab.start_agent("node1", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", "10.28.0.13")  # the default group: members admit members
    _vm2, p2 = lab.boot("vm2", "node1", "10.28.0.14")
    _vm3, p3 = lab.boot("vm3", "node1", "10.28.0.15", groups=[locked["id"]])
    wait_for(lambda: all(lab.active("node1", p) for p in (p1, p2, p3)), what="ports programmed")
    wait_for(lambda: reaches(vm1, "10.28.0.14") == "vm2", what="default group admitting a member")
    assert reaches(vm1, "10.28.0.15") == ""  # only 192.168.8.1/32 may reach vm3 on tcp/22
    ip(vm1, "addr", "add", "10.28.0.99/16", "dev", "eth0")
    assert reaches(vm1, "10.28.0.14", source="10.28.0.99") == ""  # not vm1's address: dropped
    assert reaches(vm1, "10.28.0.14") == "vm2"


def create(lab: Lab, service_name: str, body: dict[str, Any]) -> dict[str, Any]:
    service = getattr(lab.services, service_name)
    created: dict[str, Any] = service.create(
        ADMIN, check_create(service.attrs, body, is_admin=True)
    )
    return created


def test_floating_ip_reaches_the_vm_which_sees_only_its_fixed_ip(lab: Lab) -> None:
    public = create(lab, "networks", {"name": "public", "router:external": True})
    create(lab, "subnets", {"network_id": public["id"], "ip_version": 4, "cidr": "172.24.4.0/24"})
    router = create(
        lab, "routers", {"name": "r1", "external_gateway_info": {"network_id": public["id"]}}
    )
    lab.services.routers.add_interface(ADMIN, router["id"], {"subnet_id": lab.subnet})
    ip(
        lab.hosts["node2"], "route", "add", "172.24.4.0/24", "via", "192.168.8.3"
    )  # BGP's job, later
    lab.start_agent("node1", policy=True)
    lab.start_agent("node2", policy=True)
    vm1, p1 = lab.boot("vm1", "node1", "10.28.0.13")
    vm3, p3 = lab.boot("vm3", "node2", "10.28.0.15")
    wait_for(lambda: lab.active("node1", p1) and lab.active("node2", p3), what="ports programmed")
    fip = create(lab, "floatingips", {"floating_network_id": public["id"], "port_id": p1["id"]})
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
    vm1, p1 = lab.boot("vm1", "node1", "10.28.0.13")
    vm3, p3 = lab.boot("vm3", "node2", "10.28.0.15")
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
