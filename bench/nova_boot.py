"""Nova boot benchmark: servers booted through a real Nova to ACTIVE, beside the time Nova
waited for routeplane's ``network-vif-plugged``.

Run with ``make bench`` (as root; the OpenStack venv is built once if missing, ~4 min). It
brings up a lab of its own with ``--openstack`` (two hosts: Keystone, Placement, Nova,
RabbitMQ, a nova-compute with routeplane's driver per host) and boots ``--servers``
servers (10) on ``demo-net`` through Nova's API (``POST /servers``, the hosts taken in
turn with ``availability_zone nova:nodeN``), twice:

- sequentially: one server at a time, each deleted before the next series;
- concurrently: all of them created at once.

Measured per server:

- boot to ACTIVE: from sending ``POST /servers`` until ``GET`` shows it ``ACTIVE``
  (polled every 0.1 s; not the ``openstack`` CLI, whose start-up and 2 s polling would
  dominate);
- the wait for the event: the compute driver logs, per instance, how long it waited
  between plugging the tap (the guest created paused) and ``network-vif-plugged``
  arriving (``routeplane.nova.spawning.WAITED``, read from nova-compute's logs), beside
  Nova's own "Took N seconds to build instance".

``--plot DIR``: also ``DIR/nova_boot.png``, the CDFs of both. Bounded: each server is
given 120 s; the lab is removed afterwards, also on failure.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import time
from pathlib import Path

from routeplane.lab import lab, openstack, openstack_conf, openstack_install
from routeplane.lab.keystone_admin import KeystoneAdmin
from routeplane.lab.netns import LabError
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology
from routeplane.testing.api import free_port_block

SERVERS = 10
BOOT_TIMEOUT = 120.0
POLL = 0.1
WAITED = re.compile(r"instance ([0-9a-f-]{36}): plugged and created paused in ([0-9.]+) s, "
                    r"then waited ([0-9.]+) s for network-vif-plugged")  # fmt: skip
BUILT = re.compile(r"\[instance: ([0-9a-f-]{36})\] Took ([0-9.]+) seconds to build instance")


class Nova:
    def __init__(self, admin: KeystoneAdmin, compute: str, network: str) -> None:
        self.admin, self.compute = admin, compute
        self.image = admin.call("GET", f"{compute}/images")["images"][0]["id"]
        found = admin.call("GET", f"{network}/v2.0/networks?name=demo-net")["networks"]
        self.network = found[0]["id"]

    def create(self, name: str, host: str) -> str:
        body = {"server": {"name": name, "flavorRef": "1000", "imageRef": self.image,
                           "networks": [{"uuid": self.network}],
                           "availability_zone": f"nova:{host}"}}  # fmt: skip
        return str(self.admin.call("POST", f"{self.compute}/servers", body)["server"]["id"])

    def statuses(self) -> dict[str, str]:
        found = self.admin.call("GET", f"{self.compute}/servers/detail")["servers"]
        return {s["id"]: s["status"] for s in found}

    def delete_all(self) -> None:
        for server in self.statuses():
            self.admin.call("DELETE", f"{self.compute}/servers/{server}")
        deadline = time.monotonic() + BOOT_TIMEOUT
        while self.statuses() and time.monotonic() < deadline:
            time.sleep(0.5)


def _await_active(nova: Nova, sent: dict[str, float]) -> dict[str, float]:
    """Seconds from each server's create until it showed ACTIVE."""
    took: dict[str, float] = {}
    deadline = time.monotonic() + BOOT_TIMEOUT
    while len(took) < len(sent):
        now = time.monotonic()
        for server, status in nova.statuses().items():
            if server in sent and server not in took:
                if status == "ERROR":
                    raise LabError(f"server {server} went to ERROR")
                if status == "ACTIVE":
                    took[server] = now - sent[server]
        if time.monotonic() > deadline:
            raise LabError(f"{len(sent) - len(took)} servers not ACTIVE in {BOOT_TIMEOUT:.0f} s")
        time.sleep(POLL)
    return took


def sequential(nova: Nova, count: int, hosts: list[str]) -> dict[str, float]:
    took: dict[str, float] = {}
    for k in range(count):
        started = time.monotonic()
        server = nova.create(f"seq{k}", hosts[k % len(hosts)])
        took.update(_await_active(nova, {server: started}))
    return took


def concurrent(nova: Nova, count: int, hosts: list[str]) -> dict[str, float]:
    sent: dict[str, float] = {}
    for k in range(count):
        started = time.monotonic()
        sent[nova.create(f"par{k}", hosts[k % len(hosts)])] = started
    return _await_active(nova, sent)


def from_logs(topology: Topology, pattern: re.Pattern[str], group: int) -> dict[str, float]:
    found: dict[str, float] = {}
    for host in topology.hosts:
        text = topology.log(f"os-nova-compute-{host.name}").read_text(errors="replace")
        for match in pattern.finditer(text):
            found[match.group(1)] = float(match.group(group))
    return found


def _row(label: str, values: list[float]) -> str:
    if not values:
        return f"| {label} | - | - | - | - |"
    cut = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values
    p99 = cut[98] if len(values) > 1 else values[0]
    return (f"| {label} | {len(values)} | {statistics.median(values):.2f} s | {p99:.2f} s"
            f" | {max(values):.2f} s |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=SERVERS)
    parser.add_argument("--only", choices=["sequential", "concurrent"])
    parser.add_argument("--plot", type=Path, metavar="DIR", help="also write the figure as a PNG")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/nova_boot.py: needs root (network namespaces)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the lab comes down then too
    openstack_install.install(say=print)
    name = "nb" + os.urandom(3).hex()
    port = free_port_block(17)
    try:
        state = lab.up(name, 2, port, openstack=True, say=lambda _line: None)
        topology = Topology.plan(name, 2)
        layout = openstack.layout_of(topology, port)
        admin = KeystoneAdmin(layout.auth_url, state.openstack_env["OS_PASSWORD"],
                              openstack_conf.REGION)  # fmt: skip
        nova = Nova(admin, layout.compute_url, layout.network_url)
        hosts = [h.name for h in topology.hosts]
        series: dict[str, dict[str, float]] = {}
        for mode, run in (("sequential", sequential), ("concurrent", concurrent)):
            if args.only in (None, mode):
                series[mode] = run(nova, args.servers, hosts)
                nova.delete_all()
        waited = from_logs(topology, WAITED, 3)
        built = from_logs(topology, BUILT, 2)
    finally:
        down(name)
    print(f"{args.servers} servers per series through Nova's API, 2 compute hosts, load"
          f" {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| series | n | p50 | p99 | max |\n|---|---|---|---|---|")
    for mode, took in series.items():
        print(_row(f"{mode}: boot to ACTIVE", list(took.values())))
        print(_row(f"{mode}: Nova's build (its log)", [built[s] for s in took if s in built]))
        print(
            _row(f"{mode}: wait for network-vif-plugged", [waited[s] for s in took if s in waited])
        )
    if args.plot:
        from plots import cdf  # bench/plots.py: matplotlib only when asked

        panels = {
            "boot to ACTIVE (s)": {m: list(t.values()) for m, t in series.items()},
            "wait for network-vif-plugged (s)": {
                m: [waited[s] for s in t if s in waited] for m, t in series.items()
            },
        }
        print(cdf(args.plot, "nova_boot", "servers booted through Nova", panels))


if __name__ == "__main__":
    main()
