"""``routeplane agent``: run the host agent for one compute host.

The composition root of the agent: the store from ``--store``, the Linux kernel adapter
(acting on ``--netns`` when given — the lab runs one agent per host namespace from the
root namespace), and the reconcile loop, until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from routeplane.agent.loop import Agent, AgentSettings
from routeplane.store import open_store


def _run(args: argparse.Namespace) -> int:
    from routeplane.dataplane.linux import LinuxKernel, NftTable  # noqa: PLC0415

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=f"%(asctime)s agent[{args.host}] %(levelname)s %(message)s",
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    settings = AgentSettings(
        host=args.host, bgp_address=args.bgp_address or "", as_number=args.as_number
    )
    store = open_store(args.store)
    kernel = LinuxKernel(args.netns)
    agent = Agent(store, kernel, settings, policy=NftTable(args.netns))
    try:
        agent.run(stop.is_set)
    finally:
        agent.close()
        kernel.close()
        store.close()
    return 0


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "agent", help="program this host's routes and policy for its endpoints"
    )
    parser.add_argument("--host", required=True, help="this compute host's name (binding:host_id)")
    parser.add_argument("--netns", help="act on this network namespace instead of the current one")
    parser.add_argument("--bgp-address", help="the address BGP peers reach this host on")
    parser.add_argument("--as-number", type=int, default=64512)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(run=_run)
