"""``routeplane controller``: run the service-IP failover controller.

The composition root of the controller: the store from ``--store``, the services over it,
and the controller loop until SIGTERM or SIGINT. Run as many as you like (one per api
host, say): they elect one leader through the store and the others wait to take over.
A clean stop hands leadership over at once; a crash leaves it to expire with the lease.

With a ``[nova]`` table in ``--config`` (keystoneauth settings, ``nova_client``), the
same process also runs the Nova notifier in a thread of its own; the leader sends.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from routeplane.cli import daemon
from routeplane.cli.store import open_creating
from routeplane.model.errors import InvalidRequest
from routeplane.store import Store

if TYPE_CHECKING:
    from routeplane.controller.nova_notifier import NovaNotifier


def _run(args: argparse.Namespace) -> int:
    # imported here: every ``routeplane`` command builds this module's parser
    from routeplane.cli import observe  # noqa: PLC0415
    from routeplane.controller.leader import Controller, ControllerSettings  # noqa: PLC0415
    from routeplane.controller.metrics import ControllerMetrics  # noqa: PLC0415
    from routeplane.services.registry import Services  # noqa: PLC0415

    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    stop = daemon.start(f"controller[{name}]", args.verbose)
    store = open_creating(args.store)
    settings = ControllerSettings(name=name, lease_ttl=args.lease_ttl)
    controller = Controller(store, Services(store).service_ips, settings)
    nova = args.config_values.get("nova")
    notifier = None if nova is None else _notifier(store, nova, controller.leader_value)
    thread = None
    if notifier is not None:
        thread = threading.Thread(target=notifier.run, args=(stop.is_set,), name="nova")
        thread.start()
    listener = None
    if args.metrics_listen is not None:
        registry = observe.registry()
        ControllerMetrics(registry, controller)
        listener = observe.serve(args.metrics_listen, registry, lambda: observe.store_ready(store))
    try:
        controller.run(stop.is_set)
    finally:
        stop.set()
        if thread is not None and notifier is not None:
            thread.join(timeout=30)
            notifier.close()
        if listener is not None:
            listener.close()
        controller.close()
        store.close()
    return 0


def _notifier(
    store: Store, table: object, leader: Callable[[], dict[str, Any] | None]
) -> NovaNotifier:
    from routeplane.controller.nova_client import KeystoneNova, NovaSettings  # noqa: PLC0415
    from routeplane.controller.nova_notifier import NovaNotifier  # noqa: PLC0415

    if not isinstance(table, dict):
        raise InvalidRequest("[nova] must be a table")
    return NovaNotifier(store, KeystoneNova(NovaSettings.from_table(table)), leader)


def _ttl(value: str) -> int:
    ttl = int(value)
    if ttl < 1:
        raise argparse.ArgumentTypeError("--lease-ttl takes a whole number of seconds >= 1")
    return ttl


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "controller", help="move service IPs away from ports that fail their health checks"
    )
    parser.add_argument("--name", help="this controller's name in the leader record")
    parser.add_argument(
        "--lease-ttl",
        type=_ttl,
        default=3,
        help="seconds after which another controller takes over from a dead leader",
    )
    daemon.add_options(parser, "controller", "; its [nova] table turns on Nova's external events")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(run=_run, config_extra={"nova": dict})
