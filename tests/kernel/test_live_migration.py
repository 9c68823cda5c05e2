"""Live migration between two hosts with an open TCP connection: nothing is lost.

The lab of ``vmlab`` (two hosts, static routes between them for the VM ranges, routing
agents in threads). A VM holds an echo connection from a client VM on node2, which
sends a byte every 10 ms and notes when each comes back. Then the VM migrates back and
forth between the hosts, each time as Nova and libvirt do it:

1. an inactive binding for the destination (``POST /ports/{id}/bindings``): the api
   writes the destination's record as a migration target;
2. the destination's tap is created early (libvirt does so before the pre-copy), up,
   its far end parked in a namespace of its own where nothing sends (a paused VM);
   the destination's agent prepares it, and must install no route to it yet: the
   client's traffic still reaches the VM on the source;
3. the VM moves: its ``eth0`` on the source is deleted (the source tap with it) and the
   parked end becomes its ``eth0``, configured again, and the VM announces itself with
   a gratuitous ARP (QEMU's announce on resume);
4. the binding is activated, the demoted source binding deleted (as Nova does).

Asserted: the destination had no route before the move; afterwards it holds the
address at the preferred metric until activation, then the ordinary one; the source
none; every byte sent came back. The no-answer window of each migration (the longest
time without an echo around the move) is printed, with its p50 and p99.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.dataplane.model import PREFERRED_METRIC, ROUTE_METRIC
from routeplane.lab.netns import add_veth, exec_in, ip
from routeplane.model.endpoint import interface_name
from routeplane.services.context import Context
from tests.kernel.vmlab import Lab, dual_stack_lab, routes, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

VM = ["10.28.0.33", "fd5f:5d21:845:1c2e::21"]  # migrates
CLIENT_VM = ["10.28.0.34", "fd5f:5d21:845:1c2e::22"]  # on node2, holds the connection
MIGRATIONS = 20
GAP_CLIENT = """
import json, socket, sys, threading, time
c = socket.create_connection((sys.argv[1], 7), timeout=5)
c.settimeout(None)
print("connected", flush=True)
times = []
def read():
    while data := c.recv(100):
        times.extend([time.monotonic()] * len(data))
threading.Thread(target=read, daemon=True).start()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
sent = 0
while not stop.is_set():
    c.sendall(b"x"); sent += 1; time.sleep(0.01)
deadline = time.monotonic() + 10
while len(times) < sent and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps({"sent": sent, "times": times}))
"""
ANNOUNCE = """
import socket, sys
mac, address = bytes.fromhex(sys.argv[1].replace(":", "")), socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
arp = bytes.fromhex("0001080006040001") + mac + address + bytes(6) + address
s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp)
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as the_lab:
        yield the_lab


def tap_of(port: dict[str, Any]) -> str:
    return interface_name(str(port["id"]))


NOVA = Context(project_id="service", roles=frozenset({"service"}), user_id="nova")  # as Nova


def migrate(
    lab: Lab, vm: str, port: dict[str, Any], hosts: tuple[str, str], park: str
) -> tuple[float, float]:
    """One live migration of ``vm`` between ``hosts`` (source, target): when it moved,
    and how long after its announce the target's route was seen."""
    source, target = hosts
    bindings = lab.services.port_bindings
    bindings.create(NOVA, port["id"], {"binding": {"host": target}})
    tap, there = tap_of(port), lab.hosts[target]
    add_veth(there, tap, park, "eth0", peer_mac=port["mac_address"], up=True)  # libvirt, early
    wait_for(
        lambda: VM[0] in ip(there, "neigh", "show", "dev", tap),
        what=f"{target}'s agent preparing the tap",
    )
    time.sleep(0.3)  # a moment of pre-copy: the client's traffic must still get through
    assert routes(there, VM[0]) == "", "a route to the target before the VM is there"
    moved = time.monotonic()
    ip(vm, "link", "del", "eth0")  # the source's tap goes with it
    ip(park, "link", "set", "eth0", "netns", vm)
    batch = [
        "link set eth0 up",
        *(f"addr add {a}/16 dev eth0" for a in VM if ":" not in a),
        *(f"addr add {a}/64 dev eth0 noprefixroute nodad" for a in VM if ":" in a),
        "route add default dev eth0",
        f"route add default via {lab.gateway6} dev eth0 onlink",
    ]
    ip(vm, "-batch", "-", input="\n".join(batch) + "\n")
    exec_in(vm, "python3", "-c", ANNOUNCE, port["mac_address"], VM[0])
    announced = time.monotonic()
    wait_for(
        lambda: f"metric {PREFERRED_METRIC}" in routes(there, VM[0]),
        what="the target's preferred route once the VM sent",
    )
    routed = time.monotonic() - announced
    bindings.activate(NOVA, port["id"], target)
    bindings.delete(NOVA, port["id"], source)  # Nova deletes the demoted binding
    wait_for(
        lambda: f"metric {ROUTE_METRIC}" in routes(there, VM[0]),
        what="the ordinary route once the binding is active",
    )
    wait_for(lambda: routes(lab.hosts[source], VM[0]) == "", what="the source's route gone")
    return moved, routed


def window(times: list[float], moved: float) -> float:
    """The longest time without an echo around a move."""
    near = [t for t in times if moved - 0.2 <= t <= moved + 5]
    return max((b - a for a, b in itertools.pairwise(near)), default=0.0)


def test_a_live_migrating_vm_keeps_its_tcp_connection(lab: Lab) -> None:
    lab.start_agent("node1")
    lab.start_agent("node2")
    vm, port = lab.boot("vm", "node1", VM)
    client, client_port = lab.boot("client", "node2", CLIENT_VM)
    wait_for(
        lambda: lab.active("node1", port) and lab.active("node2", client_port),
        what="both ports programmed",
    )
    lab.serve_echo(vm)
    park = lab.cleanup.namespace("park")  # where a target tap's far end waits
    exec_in(park, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1")  # fmt: skip
    talker = lab.spawn(
        client, "python3", "-c", GAP_CLIENT, VM[0],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert talker.stdout is not None
    assert talker.stdout.readline() == "connected\n", talker.stderr and talker.stderr.read()
    hosts = ("node1", "node2")
    moves, delays = [], []
    for n in range(MIGRATIONS):
        moved, routed = migrate(lab, vm, port, (hosts[n % 2], hosts[(n + 1) % 2]), park)
        moves.append(moved)
        delays.append(routed)
        time.sleep(0.3)
    out, err = talker.communicate("stop\n", timeout=30)
    assert out, f"the client failed: {err}"
    result = json.loads(out)
    times = result["times"]
    assert len(times) == result["sent"], "the connection lost bytes"
    assert result["sent"] > MIGRATIONS * 50
    windows = sorted(window(times, moved) for moved in moves)
    p50 = statistics.median(windows)
    p99 = windows[min(len(windows) - 1, round(0.99 * (len(windows) - 1)))]
    print(
        f"{MIGRATIONS} migrations, no-answer window p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {windows[-1] * 1000:.0f} ms; the target's route seen "
        f"{statistics.median(delays) * 1000:.0f} ms (median) after the VM's announce"
    )
    assert windows[-1] < 3.0
