"""What the etcd fault tests run beside a fault: API load, a ping between two VMs, and a
look at which member leads.

``Load``: two threads, each creating ports on demo-net (bound to node1 or node2, so the
agents have work) and renaming each port it created, through the api, until stopped.
Every 2xx answer is recorded; failures (503 while the cluster has no quorum, a timeout)
are counted, not recorded, since a write whose answer was lost may or may not have
happened — only acknowledged writes are promised to survive.

``Ping``: ``ping`` from one VM's namespace to another's address, five a second, run for
the whole fault; its summary says how many were answered.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from routeplane.lab.etcd_cluster import member_url
from routeplane.lab.neutron import ApiError, Neutron
from routeplane.lab.topology import Node, Topology

THREADS = 2
PACE = 0.02  # seconds between one worker's requests: a steady load, not a flood


@dataclass
class Acknowledged:
    """The writes the api acknowledged: port id -> (its address, its last acked name)."""

    ports: dict[str, tuple[str, str]] = field(default_factory=dict)
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Load:
    """Concurrent port creates and updates through the api, until :meth:`stop`."""

    def __init__(self, api_url: str, token: str, network_id: str, tag: str) -> None:
        self.acked = Acknowledged()
        self._args = (api_url, token, network_id, tag)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(THREADS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Acknowledged:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.acked

    def _run(self, worker: int) -> None:
        url, token, network_id, tag = self._args
        api = Neutron(url, token)
        count = 0
        try:
            while not self._stop.wait(PACE) and count < 2000:
                count += 1
                name = f"{tag}-{worker}-{count}"
                body = {
                    "network_id": network_id,
                    "name": name,
                    "binding:host_id": f"node{worker % 2 + 1}",
                    "device_owner": "compute:nova",
                }
                try:
                    port = api.create("port", body)
                except ApiError:
                    self._failed()
                    continue
                self._ack(port["id"], port["fixed_ips"][0]["ip_address"], name)
                try:
                    api.request("PUT", f"ports/{port['id']}", {"port": {"name": f"{name}-u"}})
                except ApiError:
                    self._failed()
                    continue
                self._ack(port["id"], port["fixed_ips"][0]["ip_address"], f"{name}-u")
        finally:
            api.close()

    def _ack(self, port_id: str, address: str, name: str) -> None:
        with self.acked.lock:
            self.acked.ports[port_id] = (address, name)

    def _failed(self) -> None:
        with self.acked.lock:
            self.acked.failures += 1


class Ping:
    """``ping -i 0.2`` from ``namespace`` to ``address`` until :meth:`stop`."""

    def __init__(self, namespace: str, address: str) -> None:
        self._proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                "ping",
                "-n",
                "-i",
                "0.2",
                "-W",
                "1",
                "-w",
                "300",
                address,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> tuple[int, int]:
        """(sent, answered)."""
        self._proc.send_signal(signal.SIGINT)
        out, _ = self._proc.communicate(timeout=10)
        found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert found, out
        return int(found[1]), int(found[2])


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=2)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2)
        self.sock.connect(self.path)


def _status(topology: Topology, member: Node) -> dict[str, Any]:
    conn = _UnixHTTP(member_url(topology, member).removeprefix("etcd://unix:"))
    try:
        conn.request("POST", "/v3/maintenance/status", body=b"{}")
        answer: dict[str, Any] = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return answer


def leader(topology: Topology) -> Node | None:
    """The member that leads now (by its own account), or None."""
    for member in topology.etcd_members:
        try:
            status = _status(topology, member)
        except (OSError, ValueError, http.client.HTTPException):
            continue
        if status.get("leader") and status["leader"] == status["header"]["member_id"]:
            return member
    return None


__all__ = ["Acknowledged", "Load", "Ping", "leader"]
