"""A dual-stack lab for the agent's kernel tests: compute hosts and VMs as namespaces.

Two compute hosts (``node1``, ``node2``) joined by a fabric link with static routes for
the VM ranges of both families (BGP's job in the full lab), and a network with an IPv4
and an IPv6 subnet made through the api's services on an embedded store. A VM is a
namespace whose ``eth0`` is the far end of its port's tap, configured as a cloud image
would be: each IPv4 address on-link (the host answers ARP for everything), each IPv6
address without a prefix route (``noprefixroute``) and the default route via the
subnet's gateway, so every packet goes to the host, which answers neighbour
solicitations for the gateway. Each VM runs a TCP service answering its name.

Agents run in threads (:meth:`Lab.start_agent`) or as real processes of the
``routeplane agent`` command (:meth:`Lab.start_agent_process`). Everything lives in
``rp-`` namespaces the lab creates and deletes; processes it started are ended by PID.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routeplane.agent.bgp import BgpSpeaker
from routeplane.agent.loop import Agent
from routeplane.agent.metadata import ADDRESS, MetadataService
from routeplane.agent.nova_proxy import NovaProxy
from routeplane.agent.settings import AgentSettings
from routeplane.dataplane.linux import LinuxKernel, NftTable
from routeplane.dataplane.linux.listener import NamespaceListener, hold_address
from routeplane.dataplane.model import METADATA_ADDRESS6
from routeplane.lab.netns import Cleanup, add_veth, exec_in, ip
from routeplane.services.attributes import check_create, check_update
from routeplane.services.context import ADMIN
from routeplane.services.registry import Services
from routeplane.store.sqlite import SqliteStore

CIDR4, CIDR6 = "10.28.0.0/16", "fd5f:5d21:845:1c2e::/64"
FABRIC = {"node1": ("192.168.8.3", "fd00:192:168:8::3"), "node2": ("192.168.8.4", "fd00:192:168:8::4")}  # fmt: skip
ROUTEPLANE = Path(sys.executable).with_name("routeplane")  # the venv's command

SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 22)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\\n"); c.close()
"""
CLIENT = """
import socket, sys
source = (sys.argv[2], 0) if len(sys.argv) > 2 else None
c = socket.create_connection((sys.argv[1], 22), timeout=1, source_address=source)
print(c.recv(100).decode().strip())
"""
ECHO_SERVER = """
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 7)); s.listen(1)
c, _ = s.accept()
while data := c.recv(100):
    c.sendall(data)
"""
ECHO_CLIENT = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], 7), timeout=1)
sent = echoed = 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    c.sendall(b"x"); sent += 1
    try:
        echoed += len(c.recv(1))
    except OSError:
        pass
    time.sleep(0.02)
print(f"echoed {echoed}/{sent}")
"""


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def version(address: str) -> int:
    return ipaddress.ip_address(address).version


def routes(namespace: str, address: str) -> str:
    """``ip route show <address>`` in its family ("" when there is none)."""
    return ip(namespace, f"-{version(address)}", "route", "show", address).strip()


def reaches(vm: str, address: str, source: str | None = None) -> str:
    """What the TCP service at ``address`` answers ("" when nothing does)."""
    extra = [source] if source else []
    return exec_in(vm, "python3", "-c", CLIENT, address, *extra, check_rc=False).strip()


def pings(vm: str, address: str) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", vm, "ping", "-c", "1", "-W", "1", address],
        capture_output=True, check=False, timeout=10,
    )  # fmt: skip
    return done.returncode == 0


@dataclass
class RunningAgent:
    agent: Agent
    stop: threading.Event
    thread: threading.Thread

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.agent.kernel.close()


@dataclass
class Lab:
    cleanup: Cleanup
    store: SqliteStore
    store_path: Path
    services: Services
    hosts: dict[str, str]  # host name -> namespace
    net: str = ""
    subnets: dict[int, str] = field(default_factory=dict)  # IP version -> subnet id
    gateway6: str = ""  # the IPv6 subnet's gateway_ip, as the api chose it
    agents: dict[str, RunningAgent] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    speakers: dict[str, BgpSpeaker] = field(default_factory=dict)  # none: routing only

    def start_agent(self, host: str, *, policy: bool = False, **tuning: Any) -> RunningAgent:
        kernel = LinuxKernel(self.hosts[host])
        table = NftTable(self.hosts[host]) if policy else None
        settings = AgentSettings(host=host, apply_interval=0.002, **tuning)
        bgp = self.speakers.get(host)
        agent = Agent(self.store, kernel, settings, policy=table, bgp=bgp)
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop.is_set,), daemon=True)
        thread.start()
        running = RunningAgent(agent, stop, thread)
        self.agents[host] = running
        return running

    def start_metadata(self, host: str, proxy: NovaProxy | None = None) -> MetadataService:
        """The host's metadata service on 169.254.169.254 and fe80::a9fe:a9fe, fed from its agent's follower
        (start the agent first) as ``routeplane agent`` feeds it; stopped with the lab."""
        namespace = self.hosts[host]
        hold_address(namespace, ADDRESS)
        listener = NamespaceListener(namespace, ADDRESS, 80)
        listeners = [listener, NamespaceListener(namespace, METADATA_ADDRESS6, 80)]
        feed = self.agents[host].agent.endpoint_feed()
        proxy = None if proxy is None else proxy.using(listener.new_socket)
        service = MetadataService(self.store, host, listeners, endpoints=feed, proxy=proxy)
        service.start()
        self.cleanup.add(f"stop {host}'s metadata service", service.close)
        return service

    def start_agent_process(self, host: str, log: Path) -> subprocess.Popen[bytes]:
        """``routeplane agent`` as a process of its own, acting on the host's namespace
        with policy on (as the command always has); its output goes to ``log``."""
        command = [
            str(ROUTEPLANE), "--store", f"sqlite://{self.store_path}",
            "agent", "--host", host, "--netns", self.hosts[host],
        ]  # fmt: skip
        with log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def spawn(self, namespace: str, *command: str, **popen: Any) -> subprocess.Popen[Any]:
        """A process inside a namespace, ended (by its PID) when the lab closes."""
        process = subprocess.Popen(["ip", "netns", "exec", namespace, *command], **popen)
        self.processes.append(process)
        return process

    def serve_echo(self, namespace: str) -> subprocess.Popen[Any]:
        """:data:`ECHO_SERVER` in ``namespace``, returned once it listens (a busy machine
        may take a while to start it; a fixed sleep was not always enough)."""
        server = self.spawn(namespace, "python3", "-c", ECHO_SERVER)
        wait_for(lambda: ":7 " in exec_in(namespace, "ss", "-ltn"), what="the echo server")
        return server

    def fixed_ips(self, addresses: list[str]) -> list[dict[str, str]]:
        return [{"subnet_id": self.subnets[version(a)], "ip_address": a} for a in addresses]

    def boot(
        self,
        name: str,
        host: str,
        addresses: list[str],
        groups: list[str] | None = None,
        **fields: Any,
    ) -> tuple[str, dict[str, Any]]:
        """A VM: its port (bound to ``host``, with any further ``fields``, such as a
        ``project_id``), its namespace, its tap, its service."""
        body: dict[str, Any] = {
            "network_id": self.net, "binding:host_id": host, "name": name,
            "device_owner": "compute:nova", "fixed_ips": self.fixed_ips(addresses), **fields,
        }  # fmt: skip
        if groups is not None:
            body["security_groups"] = groups
        port = self.services.ports.create(
            ADMIN, check_create(self.services.ports.attrs, body, is_admin=True)
        )
        vm = self.cleanup.namespace(name)
        self.plug(vm, host, port)
        for address in addresses:
            self.add_address(vm, address)
        ip(vm, "-4", "route", "add", "default", "dev", "eth0")  # on-link: proxy ARP answers
        ip(vm, "-6", "route", "add", "default", "via", self.gateway6, "dev", "eth0", "onlink")
        self.spawn(vm, "python3", "-c", SERVER, name)
        return vm, port

    def plug(self, vm: str, host: str, port: dict[str, Any]) -> None:
        """The hypervisor's part: the tap on the host, the VM's ``eth0`` at its far end."""
        tap = "tap" + port["id"][:11]
        add_veth(self.hosts[host], tap, vm, "eth0", peer_mac=port["mac_address"], up=True)

    @staticmethod
    def add_address(vm: str, address: str) -> None:
        if version(address) == 4:
            ip(vm, "addr", "add", f"{address}/16", "dev", "eth0")
        else:
            ip(vm, "-6", "addr", "add", f"{address}/64", "dev", "eth0", "noprefixroute", "nodad")

    def set_fixed_ips(self, port: dict[str, Any], addresses: list[str]) -> dict[str, Any]:
        data = check_update(
            self.services.ports.attrs, {"fixed_ips": self.fixed_ips(addresses)}, is_admin=True
        )
        return self.services.ports.update(ADMIN, port["id"], data, None)

    def create(self, service_name: str, body: dict[str, Any]) -> dict[str, Any]:
        service = getattr(self.services, service_name)
        created: dict[str, Any] = service.create(
            ADMIN, check_create(service.attrs, body, is_admin=True)
        )
        return created

    def active(self, host: str, port: dict[str, Any]) -> bool:
        return self.store.get(f"/routeplane/v1/status/{host}/{port['id']}") is not None


@contextmanager
def network_on(cleanup: Cleanup, tmp_path: Path, hosts: dict[str, str]) -> Iterator[Lab]:
    """The api's side on the given host namespaces: an embedded store, a network with an
    IPv4 and an IPv6 subnet; at the end the agents are stopped, the processes ended and
    the store closed (the namespaces are ``cleanup``'s)."""
    store_path = tmp_path / "store.db"
    store = SqliteStore(store_path)
    services = Services(store)
    lab = Lab(cleanup, store, store_path, services, hosts)
    net = lab.create("networks", {"name": "demo-net"})
    lab.net = net["id"]
    for ip_version, cidr in ((4, CIDR4), (6, CIDR6)):
        body = {"network_id": net["id"], "ip_version": ip_version, "cidr": cidr}
        subnet = lab.create("subnets", body)
        lab.subnets[ip_version] = subnet["id"]
    lab.gateway6 = str(subnet["gateway_ip"])
    try:
        yield lab
    finally:
        for running in lab.agents.values():
            running.halt()
            running.agent.close()
        for process in lab.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        store.close()


@contextmanager
def dual_stack_lab(tmp_path: Path) -> Iterator[Lab]:
    """Two hosts on one fabric link, static routes between them for the VM ranges."""
    with Cleanup() as cleanup:
        h1, h2 = cleanup.namespace("node1"), cleanup.namespace("node2")
        add_veth(h1, "fabric0", h2, "fabric0", up=True)
        for host, peer in ((h1, "node2"), (h2, "node1")):
            me = FABRIC["node1" if host == h1 else "node2"]
            ip(host, "addr", "add", f"{me[0]}/24", "dev", "fabric0")
            ip(host, "-6", "addr", "add", f"{me[1]}/64", "dev", "fabric0", "nodad")
            ip(host, "route", "add", CIDR4, "via", FABRIC[peer][0])  # BGP's job in the lab
            ip(host, "-6", "route", "add", CIDR6, "via", FABRIC[peer][1])
        # a host sends neighbour solicitations from its link-local address, once
        # duplicate address detection has cleared it
        wait_for(
            lambda: all(
                "tentative" not in ip(host, "-6", "addr", "show", "dev", "fabric0")
                for host in (h1, h2)
            ),
            what="the fabric's link-local addresses",
        )
        with network_on(cleanup, tmp_path, {"node1": h1, "node2": h2}) as lab:
            yield lab
