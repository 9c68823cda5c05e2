"""DHCP benchmark: from a port bound to its VM holding the lease, and leases per second.

Run with ``make bench`` (as root). One host namespace runs the agent (a thread of this
process, as the kernel tests run it) and its DHCP server; 1,000 ports are made unbound
on an embedded store and their taps plugged, each tap's far end (the "VM's" interface,
with the port's MAC) in one clients namespace. Then:

- bind to lease: 100 ports are bound one after another (``binding:host_id``, as Nova's
  bind) and, as soon as the call returns, a client on its interface starts DISCOVER →
  OFFER → REQUEST → ACK, resending every 10 ms (a real client's retry timers aside);
  the time from the call's return to the ACK, p50/p99;
- leases per second: the remaining 900 ports are bound, and once the agent reports them
  programmed, one client leases on all 1,000 interfaces at once; 1,000 / the time to the
  last ACK.

Bounded (every wait and lease has a time limit); everything lives in ``rp-`` namespaces
made and removed here.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from routeplane.agent.dhcp import DhcpService
from routeplane.agent.loop import Agent
from routeplane.agent.settings import AgentSettings
from routeplane.dataplane.linux import LinuxKernel
from routeplane.dataplane.linux.dhcp_socket import DhcpSocket
from routeplane.dataplane.linux.namespace import Namespace
from routeplane.lab import netns
from routeplane.model.endpoint import interface_name
from routeplane.services.attributes import check_create, check_update
from routeplane.services.context import ADMIN
from routeplane.services.registry import Services
from routeplane.store.sqlite import SqliteStore
from routeplane.testing import dhcp_client

PORTS = 1000
SAMPLES = 100
HOST = "node1"


def create(services: Services, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    service = getattr(services, kind)
    made: dict[str, Any] = service.create(ADMIN, check_create(service.attrs, body, is_admin=True))
    return made


def bind(services: Services, port: dict[str, Any]) -> None:
    body = check_update(services.ports.attrs, {"binding:host_id": HOST}, is_admin=True)
    services.ports.update(ADMIN, port["id"], body, None)


def plug(host: str, clients: str, ports: list[dict[str, Any]]) -> dict[str, str]:
    """Each port's tap in ``host``, its far end ``v<i>`` (the port's MAC) in ``clients``,
    made with two ``ip -batch`` runs; the clients' interface names → MACs."""
    add, up = [], []
    wanted = {}
    for i, port in enumerate(ports):
        tap = interface_name(port["id"])
        add.append(
            f"link add {tap} type veth peer name v{i} address {port['mac_address']} netns {clients}"
        )
        add.append(f"link set {tap} up")
        up.append(f"link set v{i} up")
        wanted[f"v{i}"] = port["mac_address"]
    for namespace, lines in ((host, add), (clients, up)):
        subprocess.run(
            ["ip", "-n", namespace, "-batch", "-"],
            input="\n".join(lines) + "\n",
            text=True,
            check=True,
            timeout=300,
        )
    return wanted


def programmed(store: SqliteStore, ports: list[dict[str, Any]]) -> bool:
    return all(store.get(f"/routeplane/v1/status/{HOST}/{p['id']}") is not None for p in ports)


def wait(check: Any, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/dhcp.py: timed out waiting for {what}")
        time.sleep(0.05)


def run(count: int, samples: int) -> None:
    with netns.Cleanup() as cleanup, tempfile.TemporaryDirectory() as tmp:
        host, clients = cleanup.namespace("dhbhost"), cleanup.namespace("dhbvms")
        store = SqliteStore(Path(tmp) / "store.db")
        cleanup.add("close the store", store.close)
        services = Services(store)
        services.quotas.update(ADMIN, ADMIN.project_id, {"quota": {"port": -1}})
        net = create(services, "networks", {"name": "bench-net"})
        body = {"network_id": net["id"], "ip_version": 4, "cidr": "10.40.0.0/16"}
        create(services, "subnets", body)
        ports = [create(services, "ports", {"network_id": net["id"]}) for _ in range(count)]
        started = time.monotonic()
        interfaces = plug(host, clients, ports)
        print(f"{count} taps plugged in {time.monotonic() - started:.1f}s")
        kernel = LinuxKernel(host)
        agent = Agent(store, kernel, AgentSettings(host=HOST, apply_interval=0.002))
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop.is_set,), daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(10)
            agent.close()
            kernel.close()

        cleanup.add("stop the agent", halt)
        server = DhcpService(HOST, DhcpSocket(host), agent.endpoint_feed())
        server.start()
        cleanup.add("stop the DHCP server", server.close)
        namespace = Namespace(clients)
        cleanup.add("close the clients' namespace thread", namespace.close)
        sock = namespace.run(dhcp_client.packet_socket)
        cleanup.add("close the client socket", sock.close)

        latencies = []
        for i, port in enumerate(ports[:samples]):
            bind(services, port)
            got = dhcp_client.lease({f"v{i}": port["mac_address"]}, 2.0, 0.01, sock)
            if not got[f"v{i}"]["address"]:
                raise SystemExit(f"bench/dhcp.py: no lease for port {i} within 2 s")
            latencies.append(float(str(got[f"v{i}"]["seconds"])))
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        print(
            f"bind to lease ({samples} ports, one at a time): p50 {cuts[49] * 1000:.1f} ms, "
            f"p99 {cuts[98] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )

        for port in ports[samples:]:
            bind(services, port)
        wait(lambda: programmed(store, ports), 300, "every port programmed")
        got = dhcp_client.lease(interfaces, 30.0, 0.25, sock)
        held = [float(str(g["seconds"])) for g in got.values() if g["address"]]
        if len(held) < count:
            raise SystemExit(f"bench/dhcp.py: {count - len(held)} of {count} ports got no lease")
        print(
            f"{count} leases at once: the last in {max(held):.2f}s, {count / max(held):.0f} leases/s "
            f"(answers sent: {server.answered})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=PORTS)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args()
    run(args.ports, min(args.samples, args.ports))


if __name__ == "__main__":
    main()
