"""``routeplane demo``: show a newcomer what routeplane does, step by step.

By default (``walkthrough``, what ``make demo`` plays) the service-IP walkthrough in a lab
of its own (``demo_lab``; ``--store etcd``: on a 3-member etcd cluster of its own): VMs,
BGP routes, a moving service IP and a floating IP, for real; with ``--openstack`` the VMs
are servers a real Nova boots (``demo_nova``). Without a lab: ``store`` and ``api``
(``demo_api``), or both (``all``). The ``store``
scenario runs on the embedded sqlite store in a temporary directory: a watcher in another process follows
every change, as each host's agent will, while this process writes the walkthrough's
network and port, claims the service IP 10.28.0.23 exactly once, and lets a host's
leased record expire.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from routeplane.model.jsontypes import JSONObject
from routeplane.model.keys import IPAM, ROOT, agent_key, key
from routeplane.store import Get, KeyValue, Put, Store, absent, open_store


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _relay(stream: IO[str]) -> None:
    for line in stream:
        print(f"   [watcher] {line.rstrip()}", flush=True)


def _start_watcher(url: str) -> subprocess.Popen[str]:
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "routeplane.cli.main",
            "--store",
            url,
            "store",
            "watch",
            ROOT,
            "--timeout",
            "20",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    threading.Thread(target=_relay, args=(watcher.stdout,), daemon=True).start()
    return watcher


def _claim(store: Store, ip: str, port: str) -> None:
    claim = key(IPAM, "subnet-v4", ip)
    result = store.txn([absent(claim)], [Put(claim, {"port_id": port})], [Get(claim)])
    if result.succeeded:
        print(f"   {ip} claimed for {port} at revision {result.revision}")
    else:
        holder = result.results[0]
        owner = holder.value if isinstance(holder, KeyValue) else None
        print(f"   {ip} refused for {port}: already held by {owner}")


def _store_scenario(url: str) -> int:
    store = open_store(url)
    _step(f"embedded store at {url} (revision {store.revision()})")
    watcher = _start_watcher(url)
    time.sleep(1.0)  # let the watcher start before the first write

    _step("create demo-net and testvm1's port with 10.28.0.13, claim and port in one transaction")
    port: JSONObject = {
        "id": "port-testvm1",
        "network_id": "demo-net",
        "fixed_ips": [{"subnet_id": "subnet-v4", "ip_address": "10.28.0.13"}],
    }
    store.put(key("networks", "demo-net"), {"name": "demo-net"})
    store.txn(
        [absent(key(IPAM, "subnet-v4", "10.28.0.13"))],
        [
            Put(key(IPAM, "subnet-v4", "10.28.0.13"), {"port_id": "port-testvm1"}),
            Put(key("ports", "port-testvm1"), port),
        ],
    )
    time.sleep(0.2)

    _step("claim the service IP 10.28.0.23 for testvm1, then try to claim it for testvm2")
    _claim(store, "10.28.0.23", "port-testvm1")
    _claim(store, "10.28.0.23", "port-testvm2")
    time.sleep(0.2)

    _step("node1's agent registers alive with a 2-second lease and then stops renewing it")
    lease = store.grant_lease(2)
    store.put(agent_key("node1"), {"host": "node1"}, lease=lease)
    started = time.monotonic()
    while store.get(agent_key("node1")) is not None and time.monotonic() - started < 10:
        time.sleep(0.1)
    print(f"   node1's liveness record expired after {time.monotonic() - started:.1f}s")
    time.sleep(0.3)

    _step(f"what the store holds now (revision {store.revision()})")
    for kv in store.range(ROOT).items:
        print(f"   {kv.key}  rev {kv.mod_revision}")
    watcher.terminate()
    watcher.wait(timeout=5)
    store.close()
    return 0


def _run(args: argparse.Namespace) -> int:
    # imported here: every ``routeplane`` command builds this module's parser
    from routeplane.cli.demo_api import api_scenario  # noqa: PLC0415
    from routeplane.cli.demo_lab import walkthrough  # noqa: PLC0415
    from routeplane.lab.topology import lab_store  # noqa: PLC0415

    if args.openstack:
        if args.scenario != "walkthrough" or args.qemu:
            print("routeplane demo: --openstack plays the walkthrough alone", file=sys.stderr)
            return 2
        from routeplane.cli.demo_nova import openstack_walkthrough  # noqa: PLC0415

        return openstack_walkthrough()
    if args.scenario == "walkthrough":
        return walkthrough(qemu=args.qemu, store=lab_store(args.store))
    if args.use_store:
        return _store_scenario(args.store)
    with tempfile.TemporaryDirectory(prefix="routeplane-demo-") as tmp:
        code = 0
        if args.scenario in ("all", "store"):  # the store and the api alone, no lab
            code = _store_scenario(f"sqlite://{Path(tmp) / 'store.db'}")
        if args.scenario in ("all", "api") and code == 0:
            code = api_scenario(Path(tmp))
        return code


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo", help="play a short demonstration and explain each step"
    )
    parser.add_argument(
        "scenario", nargs="?", choices=["walkthrough", "all", "store", "api"], default="walkthrough"
    )
    parser.add_argument(
        "--qemu",
        action="store_true",
        help="walkthrough: testvm1 and testvm2 are QEMU guests (DHCP, real SSH; issue #15)",
    )
    parser.add_argument(
        "--openstack",
        action="store_true",
        help="walkthrough: Nova boots the VMs (`openstack server create`; real Keystone,"
        " Placement, Nova in the lab; issue #16)",
    )
    parser.add_argument(
        "--use-store",
        dest="use_store",
        action="store_true",
        help="run against --store instead of a temporary embedded store",
    )
    parser.set_defaults(run=_run)
