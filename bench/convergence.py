"""Convergence benchmark: a service IP moved between VMs on two hosts, 50 times each way
of moving it.

Run with ``make bench`` (as root). It brings up a lab of its own (two hosts, the access
node, BGP), boots ``testvm1`` on node1 and ``testvm2`` on node2, and has both VMs hold the
service address 10.28.0.23 on ``eth0`` (the guest's part is not what is measured: the
network decides which of them the address reaches). A prober in the access node starts a
TCP connect to 10.28.0.23:22 every 3 ms (asyncio's sleeps run long: ~250 attempts/s,
printed), each with its own 150 ms timeout, so an outage does not slow the probing down,
and reports which VM answered.

Two series of moves:

- the walkthrough's pair of calls: ``fixed_ips`` without the address on the old port,
  then with it on the new one;
- the atomic move, one call: ``PUT /v2.0/ports/{new}/move_fixed_ip`` with
  ``{"fixed_ip": {"ip_address": …, "from_port_id": <old>}}`` (make before break: the new
  host's route is preferred, the old host forwards to it while it drains).

Measured per move:

- convergence: from the return of the (last) call until the first connect (by its start
  time) that the new VM answers, and from the moment the (first) call was sent;
- no-answer window: from the last answered connect before that until it;
- flaps: connects the old VM answered after the new VM's first answer (two VMs answering).

Bounded (50 moves per series, each given at most 5 s); the lab is removed afterwards.
"""

from __future__ import annotations

import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from routeplane.lab import lab, netns
from routeplane.lab.neutron import Neutron
from routeplane.lab.state import VmRecord
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology

MOVES = 50
SERVICE_IP = "10.28.0.23"
PROBE_SECONDS = 600  # the prober's own bound; it is stopped long before
STATE_ROOT = Path("/run/routeplane/bench")


class Prober:
    """The prober process in the access node and the answers it reports: (start, name)."""

    def __init__(self, namespace: str) -> None:
        command = ["ip", "netns", "exec", namespace, sys.executable, "-m", "routeplane.lab.prober"]
        self.process = subprocess.Popen(
            [*command, SERVICE_IP, str(PROBE_SECONDS)], stdout=subprocess.PIPE, text=True
        )
        self.answers: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            started, _, name = line.split()
            with self._lock:
                self.answers.append((float(started), name))

    def first(self, name: str, after: float) -> float | None:
        with self._lock:
            hits = [t for t, n in self.answers if n == name and t >= after]
        return min(hits) if hits else None

    def count_all(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t, _ in self.answers if start <= t < end)

    def count(self, name: str, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t, n in self.answers if n == name and start <= t < end)

    def last_answer_before(self, moment: float) -> float | None:
        with self._lock:
            hits = [t for t, n in self.answers if n != "-" and t < moment]
        return max(hits) if hits else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def figures(label: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return (
        f"{label:<38} p50 {statistics.median(ms):7.1f} ms   p99 {p99:7.1f} ms   "
        f"max {ms[-1]:7.1f} ms   (n={len(ms)})"
    )


def set_fixed_ips(api: Neutron, port_id: str, addresses: list[str]) -> None:
    body = {"port": {"fixed_ips": [{"ip_address": a} for a in addresses]}}
    api.request("PUT", f"ports/{port_id}", body)


def move_fixed_ip(api: Neutron, source: str, target: str) -> None:
    body = {"fixed_ip": {"ip_address": SERVICE_IP, "from_port_id": source}}
    api.request("PUT", f"ports/{target}/move_fixed_ip", body)


Move = Callable[[VmRecord, VmRecord], None]  # (old VM, new VM): moves the service IP


def series(prober: Prober, vms: list[VmRecord], move: Move, label: str) -> None:
    """MOVES moves back and forth; prints the figures."""
    converge, window, whole, lost, flaps = [], [], [], 0, 0
    started = time.monotonic()
    for index in range(MOVES):
        old, new = (vms[0], vms[1]) if index % 2 == 0 else (vms[1], vms[0])
        sent = time.monotonic()
        move(old, new)
        returned = time.monotonic()
        deadline = returned + 5
        while (first := prober.first(new.name, returned)) is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if first is None:
            lost += 1
            continue
        converge.append(first - returned)
        whole.append(first - sent)
        last = prober.last_answer_before(first)
        window.append(first - last if last is not None else first - returned)
        time.sleep(0.3)
        flaps += prober.count(old.name, first, time.monotonic() - 0.2)  # answers all in
    rate = prober.count_all(started, time.monotonic() - 0.2) / (time.monotonic() - 0.2 - started)
    print(f"{label} ({MOVES} moves, prober {rate:.0f} connects/s)")
    print(figures("API return -> new VM answers", converge))
    print(figures("first call sent -> new VM answers", whole))
    print(figures("no-answer window", window))
    print(f"connects the old VM answered after the new one had: {flaps}")
    if lost:
        print(f"moves where the new VM never answered within 5 s: {lost}")


def main() -> None:
    name = f"bench{secrets.token_hex(2)}"
    state = lab.up(name, 2, free_port(), state_root=STATE_ROOT, say=lambda _: None)
    topology = Topology.plan(name, 2, STATE_ROOT)
    api = Neutron(state.api_url, state.admin_token)
    prober: Prober | None = None
    try:
        vms = [
            lab.boot(name, "testvm1", "demo-net", host="node1", state_root=STATE_ROOT),
            lab.boot(name, "testvm2", "demo-net", host="node2", state_root=STATE_ROOT),
        ]
        own = {vm.name: [a.split("/")[0] for a in vm.addresses] for vm in vms}
        for vm in vms:
            netns.ip(vm.namespace, "addr", "add", f"{SERVICE_IP}/16", "dev", "eth0")
        set_fixed_ips(api, vms[0].port_id, [*own["testvm1"], SERVICE_IP])
        prober = Prober(topology.access.namespace)
        deadline = time.monotonic() + 30
        while prober.first("testvm1", 0) is None and time.monotonic() < deadline:
            time.sleep(0.05)

        def walkthrough(old: VmRecord, new: VmRecord) -> None:
            set_fixed_ips(api, old.port_id, own[old.name])
            set_fixed_ips(api, new.port_id, [*own[new.name], SERVICE_IP])

        def atomic(old: VmRecord, new: VmRecord) -> None:
            move_fixed_ip(api, old.port_id, new.port_id)

        series(prober, vms, walkthrough, "service IP moves over BGP, two calls (walkthrough)")
        series(prober, vms, atomic, "service IP moves over BGP, atomic move_fixed_ip")
    finally:
        if prober is not None:
            prober.stop()
        api.close()
        down(name, state_root=STATE_ROOT)


if __name__ == "__main__":
    main()
