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

``--plot DIR``: also ``DIR/convergence.png`` (``convergence-qemu.png``): each series'
no-answer window per move, in order, and their CDFs side by side.

``--qemu``: the same with QEMU guests (``lab boot --kind qemu``; docs/design/guests.md).
tcp/22 is a real SSH server there, so the prober asks the guests' name service (tcp/2222,
admitted from the access node by a rule of its own), every 50 ms: at 100 connects/s a
TCG guest, busy forking ``hostname``, misses 27% of them with no move at all; at 20/s
none (no gap over 60 ms). Two series of atomic moves (20 each): the guests following
the port themselves (their ``rp-follow`` adds and drops the address: the guest's
emulated latency is in the figures), then both guests holding the address already (the
network alone, as for namespace VMs); the difference is the guest's part. Then ``lab
boot --kind qemu`` is timed until tcp/22 answers from the access node, over ``--boots``
boots (10; one guest at a time, each given 120 s).

``--store etcd``: the lab runs on a 3-member etcd cluster (``lab up --store etcd``);
``--store both``: the embedded store's lab, then the etcd one, figures labelled by store.

Bounded (50 moves per series, each given at most 5 s); the lab is removed afterwards.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from routeplane.lab import guest_init, lab, netns, qemu, qemu_vm
from routeplane.lab.neutron import Neutron
from routeplane.lab.prober import Prober
from routeplane.lab.state import VmRecord
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology

MOVES = 50
QEMU_MOVES = 20  # a TCG guest's moves cost more; the figures settle by then
QEMU_EVERY = 0.05  # 20 connects/s: what a TCG guest's name service answers all of
CONNECT = [sys.executable, "-m", "routeplane.lab.vm_service", "connect"]
SERVICE_IP = "10.28.0.23"
PROBE_SECONDS = 600  # the prober's own bound; it is stopped long before
STATE_ROOT = Path("/run/routeplane/bench")


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


def series(prober: Prober, vms: list[VmRecord], move: Move, label: str, moves: int) -> list[float]:
    """``moves`` moves back and forth; prints the figures, returns the no-answer windows."""
    converge, window, whole, lost, flaps = [], [], [], 0, 0
    started = time.monotonic()
    for index in range(moves):
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
    print(f"{label} ({moves} moves, prober {rate:.0f} connects/s)")
    print(figures("API return -> new VM answers", converge))
    print(figures("first call sent -> new VM answers", whole))
    print(figures("no-answer window", window))
    print(f"connects the old VM answered after the new one had: {flaps}")
    if lost:
        print(f"moves where the new VM never answered within 5 s: {lost}")
    return window


def hold_by_hand(vms: list[VmRecord], topology: Topology, qemu: bool) -> None:
    """Both VMs hold the service address on ``eth0`` (what the network does is measured,
    not the guests)."""
    _, lab_state = lab.open_lab(topology.lab, STATE_ROOT)
    for vm in vms:  # /16: never the follower's /32, which it may remove
        guest = qemu_vm.find(topology, lab_state, vm.name) if qemu else None
        if guest is not None:
            qemu_vm.run(guest, ["ip", "addr", "add", f"{SERVICE_IP}/16", "dev", "eth0"])
        else:
            netns.ip(vm.namespace, "addr", "add", f"{SERVICE_IP}/16", "dev", "eth0")


def boot_times(name: str, topology: Topology, boots: int) -> None:
    """``lab boot --kind qemu`` until tcp/22 answers from the access node, ``boots`` times
    (each guest stopped after: one TCG guest at a time)."""
    seconds = []
    for index in range(boots):
        vm_name = f"boot{index}"
        started = time.monotonic()
        vm = lab.boot(name, vm_name, "demo-net", host="node1", kind="qemu", state_root=STATE_ROOT)
        address = vm.addresses[0].split("/")[0]
        deadline = started + 120
        while time.monotonic() < deadline:
            answer = netns.exec_in(
                topology.access.namespace, *CONNECT, address, "--timeout", "1", check_rc=False
            )
            if answer.startswith("SSH-"):
                seconds.append(time.monotonic() - started)
                break
            time.sleep(0.1)
        qemu.stop(qemu_vm.guest_dir(topology, vm_name))
    print(f"lab boot --kind qemu to tcp/22 answering from the access node ({len(seconds)} boots)")
    print(figures("boot -> SSH banner", seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qemu", action="store_true", help="QEMU guests instead of namespaces")
    parser.add_argument("--moves", type=int, default=None, help="moves per series")
    parser.add_argument("--boots", type=int, default=10, help="--qemu: boots timed")
    parser.add_argument(
        "--store",
        choices=("sqlite", "etcd", "both"),
        default="sqlite",
        help="the lab's store: embedded, a 3-member etcd cluster, or both, one after the other",
    )
    parser.add_argument("--plot", type=Path, metavar="DIR", help="also write the figures as PNGs")
    args = parser.parse_args()
    stores = ("sqlite", "etcd") if args.store == "both" else (args.store,)
    windows: dict[str, list[float]] = {}
    for store in stores:
        print(f"--- store: {store}", flush=True)
        for label, values in measure(args, store).items():
            windows[label if len(stores) == 1 else f"{label}, {store}"] = values
    if args.plot is not None:
        plot(args.plot, "qemu" if args.qemu else "namespace", windows)


def measure(args: argparse.Namespace, store: str) -> dict[str, list[float]]:
    """The series in a lab of their own on ``store``; their no-answer windows by label."""
    moves = args.moves or (QEMU_MOVES if args.qemu else MOVES)
    kind = "qemu" if args.qemu else "namespace"
    name = f"bench{secrets.token_hex(2)}"
    state = lab.up(name, 2, free_port(), store=store, state_root=STATE_ROOT, say=lambda _: None)
    topology = Topology.plan(name, 2, STATE_ROOT, store)
    api = Neutron(state.api_url, state.admin_token)
    prober: Prober | None = None
    windows: dict[str, list[float]] = {}
    try:
        vms = [
            lab.boot(name, "testvm1", "demo-net", host="node1", kind=kind, state_root=STATE_ROOT),
            lab.boot(name, "testvm2", "demo-net", host="node2", kind=kind, state_root=STATE_ROOT),
        ]
        own = {vm.name: [a.split("/")[0] for a in vm.addresses] for vm in vms}
        port, every = 22, 0.003
        if args.qemu:  # the guests' name service (tcp/22 is SSH there), probed gently
            port, every = guest_init.NAME_PORT, QEMU_EVERY
            admit_name_service(api, topology)
        set_fixed_ips(api, vms[0].port_id, [*own["testvm1"], SERVICE_IP])
        prober = Prober(topology.access.namespace, SERVICE_IP, PROBE_SECONDS, port, every)
        deadline = time.monotonic() + 60
        while prober.first("testvm1", 0) is None and time.monotonic() < deadline:
            time.sleep(0.05)

        def walkthrough(old: VmRecord, new: VmRecord) -> None:
            set_fixed_ips(api, old.port_id, own[old.name])
            set_fixed_ips(api, new.port_id, [*own[new.name], SERVICE_IP])

        def atomic(old: VmRecord, new: VmRecord) -> None:
            move_fixed_ip(api, old.port_id, new.port_id)

        if args.qemu:
            windows["guests follow"] = series(
                prober, vms, atomic, "QEMU guests follow (their rp-follow), atomic move", moves
            )
            hold_by_hand(vms, topology, qemu=True)
            windows["guests hold it"] = series(
                prober, vms, atomic, "QEMU guests hold it already, atomic move", moves
            )
            prober.stop()
            prober = None
            boot_times(name, topology, args.boots)
        else:
            hold_by_hand(vms, topology, qemu=False)
            windows["two calls (walkthrough)"] = series(
                prober,
                vms,
                walkthrough,
                "service IP moves over BGP, two calls (walkthrough)",
                moves,
            )
            windows["atomic move_fixed_ip"] = series(
                prober, vms, atomic, "service IP moves over BGP, atomic move_fixed_ip", moves
            )
    finally:
        if prober is not None:
            prober.stop()
        api.close()
        down(name, state_root=STATE_ROOT)
    return windows


def plot(directory: Path, kind: str, windows: dict[str, list[float]]) -> None:
    from plots import timeline_and_cdf  # bench/plots.py: matplotlib only when asked

    path = timeline_and_cdf(
        directory,
        "convergence" if kind == "namespace" else f"convergence-{kind}",
        f"service IP moves between two hosts ({kind} VMs): no-answer window per move",
        "no-answer window (ms)",
        {label: [v * 1000 for v in values] for label, values in windows.items()},
    )
    print(f"plot: {path}")


def admit_name_service(api: Neutron, topology: Topology) -> None:
    """The default group's rule for the guests' name service from the access node."""
    group = api.find("security_group", "default", project_id="admin")
    rule = {
        "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": guest_init.NAME_PORT,
        "port_range_max": guest_init.NAME_PORT, "remote_ip_prefix": f"{topology.access.ipv4}/32",
    }  # fmt: skip
    api.create("security_group_rule", rule)


if __name__ == "__main__":
    main()
