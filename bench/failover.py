"""Failover benchmark: routeplane's health-driven failover beside keepalived (VRRP).

Run with ``make bench`` (as root). Both systems get the same detection budget: a TCP
check of the VM's service on port 22 every 0.1 s, failed after 3 misses in a row (0.3 s).
In each, the service of the VM holding 10.28.0.23 is killed -9 (``ROUNDS`` times, the
direction alternating: the recovered VM becomes the standby, failback is off), while the
prober of ``bench/convergence.py`` (a TCP connect every 4 ms, 150 ms timeout each, which
reports the name the answering VM's service prints) runs in the client's namespace.
Measured per failure:

- detection + failover: from the kill until the first connect (by its start) that the
  other VM answers;
- client-visible outage: from the last answered connect before that one until it;
- late answers: connects the failed VM answered after the other VM's first answer, up to
  the next failure (a client seeing both VMs).

routeplane: a lab of its own (two hosts, BGP to the access node), testvm1 on node1
(active) and testvm2 on node2 (standby), a ``service_ip`` with the health check above;
the prober in the access node. Between failures the killed service is started again
(``lab.service.start_service``) and both ports must be reported healthy.

keepalived: ``bench/vrrp.py`` (two VM namespaces and a client on a bridge; VRRPv3,
``advert_int 0.1``, the same check feeding a ``track_file``; see there why).

Then a frozen active VM in each: keepalived's VRRP process SIGSTOPped (does the address
end up on both VMs?), and routeplane's active VM's service SIGSTOPped (the health check
must fail, the address move, and no client may see both VMs; the ports holding the
address are sampled through the API). Note on the latter: a SIGSTOPped process's
listening socket still completes TCP handshakes into its backlog (``listen(16)``: 17
connections), so a TCP-connect health check keeps passing until that queue is full; here
the prober fills it within ~70 ms, without clients it would take 17 checks (1.7 s) more.
A check that reads the service's answer (HTTP) does not have that blind spot.

``--plot DIR``: also ``DIR/failover.png``, the CDFs of both figures, system beside system.

Bounded throughout (rounds, every wait); everything is removed afterwards, on failure
too: the lab by ``lab down``, the keepalived namespaces and processes by their cleanup.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from convergence import PROBE_SECONDS, free_port  # bench/convergence.py
from failover_phases import Monitor, Phases, RouteplaneWatch  # bench/failover_phases.py
from routeplane.lab import lab, netns, processes
from routeplane.lab.neutron import Neutron
from routeplane.lab.prober import Prober
from routeplane.lab.service import service_key, start_service
from routeplane.lab.state import VmRecord
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology
from routeplane.lab.waiting import wait_until
from routeplane.store import open_store
from vrrp import SERVICE_IP, VrrpPair  # bench/vrrp.py

ROUNDS = 20
INTERVAL, THRESHOLD = 0.1, 3
FAILOVER_TIMEOUT = 10.0  # a failure not taken over within this counts as lost
READY_TIMEOUT = 30.0  # for the lab's first answer and for health between rounds
SETTLE = 2.5  # after a move: past routeplane's 2 s drain of the old host's route
FREEZE = 4.0  # how long a frozen active VM stays frozen after the takeover
STATE_ROOT = Path("/run/routeplane/bench")


@dataclass
class Results:
    system: str
    failover: list[float] = field(default_factory=list)
    outage: list[float] = field(default_factory=list)
    lost: int = 0
    late: int = 0
    frozen: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # one line per round (--verbose)
    phases: Phases | None = None  # --phases


def take_over(prober: Prober, results: Results, failed_at: float, new: str) -> float | None:
    """Record one failure's figures; the start of the new VM's first answer (None: lost)."""
    first: float | None = None

    def answered() -> bool:
        nonlocal first
        first = prober.first(new, failed_at)
        return first is not None

    if not wait_until(answered, FAILOVER_TIMEOUT, 0.02) or first is None:
        results.lost += 1
        results.log.append(f"-> {new}: lost")
        return None
    last = prober.last_answer_before(first)
    results.failover.append(first - failed_at)
    results.outage.append(first - (last if last is not None else failed_at))
    results.log.append(
        f"-> {new}: failover {results.failover[-1] * 1000:.0f} ms,"
        f" outage {results.outage[-1] * 1000:.0f} ms"
    )
    return first


def late_answers(prober: Prober, old: str, after: float | None, until: float) -> int:
    """Connects started in (after, until) that the failed VM ``old`` answered."""
    if after is None:
        return 0
    return sum(1 for t, name in list(prober.answers) if name == old and after < t < until)


def sequence(prober: Prober, since: float, until: float) -> str:
    """The VMs that answered connects started in [since, until), in turn: ``a -> b``."""
    answers = sorted((t, n) for t, n in list(prober.answers) if since <= t < until and n != "-")
    turns: list[str] = []
    for _, name in answers:
        if not turns or turns[-1] != name:
            turns.append(name)
    return " -> ".join(turns) or "nobody"


# routeplane ------------------------------------------------------------------------
class Routeplane:
    """The lab, its API and store, and the service IP over testvm1 and testvm2."""

    def __init__(self, name: str, api: Neutron, vms: list[VmRecord]) -> None:
        self.name = name
        self.api = api
        self.vms = {vm.name: vm for vm in vms}
        self.topology = Topology.plan(name, 2, STATE_ROOT)
        self.store = open_store(self.topology.store_url)
        self.sip: dict[str, Any] = {}

    def create_service_ip(self) -> None:
        body = {
            "name": "bench", "ip_address": SERVICE_IP,
            "active_port_id": self.vms["testvm1"].port_id,
            "standby_port_ids": [self.vms["testvm2"].port_id],
            "health_check": {"type": "tcp", "port": 22, "interval": INTERVAL,
                             "failure_threshold": THRESHOLD},
        }  # fmt: skip
        self.sip = self.api.request("POST", "service_ips", {"service_ip": body})["service_ip"]

    def active(self) -> str:
        found = self.api.request("GET", f"service_ips/{self.sip['id']}")["service_ip"]
        return next(n for n, vm in self.vms.items() if vm.port_id == found["active_port_id"])

    def holding_ports(self) -> int:
        """How many ports the API shows with the service IP among their fixed IPs."""
        return sum(
            1
            for vm in self.vms.values()
            if any(
                f["ip_address"] == SERVICE_IP
                for f in self.api.request("GET", f"ports/{vm.port_id}")["port"]["fixed_ips"]
            )
        )

    def all_healthy(self) -> bool:
        now = time.time()
        healthy = set()
        for kv in self.store.range("/routeplane/v1/health/").items:
            _, _, rest = kv.key.partition("/health/")
            parts = rest.split("/")  # host, service IP, port
            value = kv.value
            if len(parts) != 3 or parts[1] != self.sip["id"] or not isinstance(value, dict):
                continue
            checked_at = value.get("checked_at")
            fresh = isinstance(checked_at, int | float) and now - checked_at < 2.0
            if value.get("healthy") is True and fresh:
                healthy.add(parts[2])
        return healthy >= {vm.port_id for vm in self.vms.values()}

    def service_pid(self, vm_name: str) -> int:
        record = lab.open_lab(self.name, STATE_ROOT)[1].processes[service_key(vm_name)]
        assert processes.alive(record), f"{vm_name}'s service is not running"
        return record.pid

    def ensure_addresses(self) -> str:
        """Both VMs hold the address on eth0, unless a guest agent in the VMs configures
        them (then the active one gets it by itself): which of the two it was."""
        active = self.vms["testvm1"].namespace
        if wait_until(lambda: f" {SERVICE_IP}/" in netns.ip(active, "-o", "addr"), 3.0, 0.1):
            return "configured by the guest"
        for vm in self.vms.values():
            netns.ip(vm.namespace, "addr", "add", f"{SERVICE_IP}/16", "dev", "eth0")
        return "added by hand on both VMs"

    def close(self) -> None:
        self.store.close()


def is_active(the: Routeplane, vm_name: str) -> bool:
    return the.active() == vm_name


def watch_routeplane(the: Routeplane) -> RouteplaneWatch:
    """The observers of ``--phases``, on a store client of their own."""
    topology = the.topology
    return RouteplaneWatch(
        open_store(topology.store_url),
        SERVICE_IP,
        topology.access.namespace,
        {"testvm1": topology.host("node1").namespace, "testvm2": topology.host("node2").namespace},
        {name: vm.namespace for name, vm in the.vms.items()},
    )


def run_routeplane(rounds: int, phases: bool = False) -> Results:
    results = Results("routeplane")
    name = f"fo{secrets.token_hex(2)}"
    prober: Prober | None = None
    the: Routeplane | None = None
    api: Neutron | None = None
    watch: RouteplaneWatch | None = None
    try:
        state = lab.up(name, 2, free_port(), state_root=STATE_ROOT, say=lambda _: None)
        api = Neutron(state.api_url, state.admin_token)
        vms = [
            lab.boot(name, "testvm1", "demo-net", host="node1", state_root=STATE_ROOT),
            lab.boot(name, "testvm2", "demo-net", host="node2", state_root=STATE_ROOT),
        ]
        the = Routeplane(name, api, vms)
        the.create_service_ip()
        guest = the.ensure_addresses()
        if phases:
            watch = watch_routeplane(the)
            results.phases = watch.phases
        prober = Prober(the.topology.access.namespace, SERVICE_IP, PROBE_SECONDS)
        if not wait_until(lambda: prober.first("testvm1", 0) is not None, READY_TIMEOUT, 0.02):
            raise netns.LabError("testvm1 never answered on the service IP")
        for _ in range(rounds):
            if not wait_until(the.all_healthy, READY_TIMEOUT, 0.05):
                raise netns.LabError("the ports were not both reported healthy")
            old = the.active()
            new = "testvm2" if old == "testvm1" else "testvm1"
            pid = the.service_pid(old)
            failed_at, killed = time.monotonic(), time.time()
            os.kill(pid, signal.SIGKILL)
            first = take_over(prober, results, failed_at, new)
            moved = wait_until(partial(is_active, the, new), FAILOVER_TIMEOUT, 0.05)
            results.log[-1] += f", API shows the move {'after' if moved else 'not within'}"
            results.log[-1] += f" {(time.monotonic() - failed_at) * 1000:.0f} ms"
            start_service(name, old, state_root=STATE_ROOT)
            time.sleep(SETTLE)
            results.late += late_answers(prober, old, first, time.monotonic())
            if watch is not None:
                answered = None if first is None else killed + (first - failed_at)
                ports = {n: vm.port_id for n, vm in the.vms.items()}
                hop = the.topology.host("node2" if new == "testvm2" else "node1").ipv4
                watch.record(killed, answered, old=old, new=new, ports=ports, new_hop=hop)
                results.log[-1] += f"; {watch.phases.line(-1)}"
        if not wait_until(the.all_healthy, READY_TIMEOUT, 0.05):
            raise netns.LabError("the ports were not both reported healthy")
        old = the.active()
        results.frozen = [
            *freeze_routeplane(the, prober, old, the.service_pid(old)),
            f"guest addresses: {guest}",
        ]
    finally:
        if prober is not None:
            prober.stop()
        if watch is not None:
            watch.close()
        if the is not None:
            the.close()
        if api is not None:
            api.close()
        down(name, state_root=STATE_ROOT)
    return results


def freeze_routeplane(the: Routeplane, prober: Prober, old: str, pid: int) -> list[str]:
    """SIGSTOP the active VM's service (it still accepts connections into its backlog):
    does the health check fail, and does a client ever see both VMs?"""
    new = "testvm2" if old == "testvm1" else "testvm1"
    frozen_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    holding: list[int] = []
    try:
        first = None
        deadline = frozen_at + FAILOVER_TIMEOUT
        while first is None and time.monotonic() < deadline:
            holding.append(the.holding_ports())
            first = prober.first(new, frozen_at)
            time.sleep(0.05)
        hold_until = time.monotonic() + FREEZE
        while time.monotonic() < hold_until:
            holding.append(the.holding_ports())
            time.sleep(0.1)
    finally:
        os.kill(pid, signal.SIGCONT)
    thawed_at = time.monotonic()
    time.sleep(3.0)
    holding.append(the.holding_ports())
    taken = f"{(first - frozen_at) * 1000:.0f} ms after SIGSTOP" if first else "never"
    end = time.monotonic()
    return [
        f"{old}'s service SIGSTOPped (active): {new} answered {taken}",
        f"ports holding the address (API, {len(holding)} samples): max {max(holding)},"
        f" min {min(holding)}",
        f"answers by {old} after {new}'s first: {late_answers(prober, old, first, thawed_at)}"
        f" while frozen, {late_answers(prober, old, thawed_at, end)} in 3 s after SIGCONT;"
        f" the prober saw {sequence(prober, frozen_at - 0.3, end)}",
    ]


# keepalived ------------------------------------------------------------------------
def is_backup(pair: VrrpPair, vm_name: str) -> bool:
    return pair.state(vm_name) == "BACKUP"


def run_keepalived(rounds: int, phases: bool = False) -> Results:
    results = Results("keepalived")
    with tempfile.TemporaryDirectory(prefix="rp-vrrp-") as directory, netns.Cleanup() as cleanup:
        pair = VrrpPair(cleanup, Path(directory))
        pair.build()
        prober = Prober(pair.client, SERVICE_IP, PROBE_SECONDS)
        monitors = {}
        if phases:
            monitors = {
                n: Monitor(m.namespace, "address", SERVICE_IP) for n, m in pair.members.items()
            }
            results.phases = Phases(
                [("detect", None), ("address", "detect"), ("answer", "address")]
            )
        try:
            master = pair.holders()[0]
            if not wait_until(lambda: prober.first(master, 0) is not None, READY_TIMEOUT, 0.02):
                raise netns.LabError(f"{master} never answered on the service IP")
            for _ in range(rounds):
                holders = pair.holders()
                if len(holders) != 1:
                    raise netns.LabError(f"the address is on {holders or 'no VM'}")
                old = holders[0]
                new = "testvm2" if old == "testvm1" else "testvm1"
                failed_at, killed = time.monotonic(), time.time()
                pair.kill_service(old)
                first = take_over(prober, results, failed_at, new)
                if results.phases is not None:
                    verdict = pair.members[old].directory / "health"
                    results.phases.add(
                        killed,
                        {
                            "detect": verdict.stat().st_mtime,
                            "address": monitors[new].first(killed),
                            "answer": None if first is None else killed + (first - failed_at),
                        },
                    )
                    results.log[-1] += f"; {results.phases.line(-1)}"
                pair.start_service(old)
                if not wait_until(partial(is_backup, pair, old), READY_TIMEOUT, 0.02):
                    raise netns.LabError(f"{old} did not come back as backup: {pair.logs()}")
                time.sleep(0.5)
                results.late += late_answers(prober, old, first, time.monotonic())
            results.frozen = freeze_keepalived(pair, prober)
        finally:
            prober.stop()
            for monitor in monitors.values():
                monitor.close()
    return results


def freeze_keepalived(pair: VrrpPair, prober: Prober) -> list[str]:
    """SIGSTOP the master's VRRP process: the backup hears no adverts and takes over,
    while the frozen master keeps the address."""
    old = pair.holders()[0]
    new = "testvm2" if old == "testvm1" else "testvm1"
    frozen_at = time.monotonic()
    pair.freeze(old)
    both_from: float | None = None
    try:
        hold_until = frozen_at + FREEZE
        while time.monotonic() < hold_until:
            if both_from is None and len(pair.holders()) == 2:
                both_from = time.monotonic()
            time.sleep(0.02)
        both_at_thaw = len(pair.holders()) == 2
    finally:
        pair.thaw(old)
    thawed_at = time.monotonic()
    wait_until(lambda: len(pair.holders()) == 1, 5.0, 0.02)
    single_after = time.monotonic() - thawed_at
    time.sleep(2.0)
    first = prober.first(new, frozen_at)
    taken = f"{(first - frozen_at) * 1000:.0f} ms after SIGSTOP" if first else "never"
    both = (
        f"yes, from {(both_from - frozen_at) * 1000:.0f} ms after SIGSTOP"
        f"{' until SIGCONT' if both_at_thaw else ''} (ip addr in both namespaces)"
        if both_from is not None
        else "no"
    )
    end = time.monotonic()
    return [
        f"master {old}'s VRRP process SIGSTOPped: {new} answered {taken}",
        f"address on both VMs at once: {both}; one holder again {single_after * 1000:.0f} ms"
        f" after SIGCONT: {', '.join(pair.holders()) or 'none'}",
        f"answers by {old} after {new}'s first: {late_answers(prober, old, first, thawed_at)}"
        f" while frozen, {late_answers(prober, old, thawed_at, end)} in 2 s after SIGCONT;"
        f" the prober saw {sequence(prober, frozen_at - 0.3, end)}",
    ]


# the table ---------------------------------------------------------------------------
def spread(values: list[float]) -> str:
    if not values:
        return f"{'-':>23}"
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"{statistics.median(ms):6.0f} {p99:6.0f} {ms[-1]:6.0f}     "


def table(rounds: int, results: list[Results], verbose: bool) -> None:
    print(
        f"\nservice-IP failover, the active VM's service killed -9 ({rounds} rounds each);"
        f" detection budget {INTERVAL} s x {THRESHOLD} (prober 250 connects/s)"
    )
    print(f"{'':12} {'detection+failover ms':>23} {'client-visible outage ms':>26}")
    print(f"{'system':12} {'p50':>6} {'p99':>6} {'max':>6}      {'p50':>8} {'p99':>6} {'max':>6}"
          f"      lost  late answers by the failed VM")  # fmt: skip
    for r in results:
        print(f"{r.system:12} {spread(r.failover)} {spread(r.outage)} {r.lost:4}  {r.late}")
    for r in results if verbose else ():
        print(f"\nrounds, {r.system}:")
        for line in r.log:
            print(f"  {line}")
    for r in results:
        if r.phases is not None:
            print(f"\nphases, {r.system}:")
            for line in r.phases.table():
                print(f"  {line}")
    for r in results:
        print(f"\nfrozen master, {r.system}:")
        for line in r.frozen:
            print(f"  {line}")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--only", choices=["routeplane", "keepalived"])
    parser.add_argument("--verbose", action="store_true", help="print every round")
    parser.add_argument(
        "--phases", action="store_true", help="also where the time goes (bench/failover_phases.py)"
    )
    parser.add_argument("--plot", type=Path, metavar="DIR", help="also write the figures as PNGs")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 200))
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = []
    if args.only != "keepalived":
        results.append(run_routeplane(rounds, args.phases))
    if args.only != "routeplane":
        results.append(run_keepalived(rounds, args.phases))
    table(rounds, results, args.verbose)
    if args.plot is not None:
        plot(args.plot, results)


def plot(directory: Path, results: list[Results]) -> None:
    """``DIR/failover.png``: the CDFs of both figures, routeplane beside keepalived."""
    from plots import cdf  # bench/plots.py: matplotlib only when asked

    def ms(values: list[float]) -> list[float]:
        return [v * 1000 for v in values]

    path = cdf(
        directory,
        "failover",
        f"service-IP failover, the active VM's service killed -9 (detection {INTERVAL} s x"
        f" {THRESHOLD})",
        {
            "detection + failover (ms)": {r.system: ms(r.failover) for r in results},
            "client-visible outage (ms)": {r.system: ms(r.outage) for r in results},
        },
    )
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
