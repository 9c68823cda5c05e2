"""What every long-running routeplane process shares: the options of a daemon (its
config file, its metrics listener), and what it does first: log with its name, and turn
SIGTERM and SIGINT into a stop event its loop checks (so it ends cleanly: the agent
revokes its liveness lease, the controller hands leadership over)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading


def start(name: str, verbose: bool) -> threading.Event:
    """Configure logging as ``<time> <name> <level> <message>``; the event set on SIGTERM
    or SIGINT."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=f"%(asctime)s {name} %(levelname)s %(message)s",
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a listening address."""
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"takes HOST:PORT, not {value!r}")
    return host, int(port)


def add_options(parser: argparse.ArgumentParser, name: str, config_help: str = "") -> None:
    """``--config`` and ``--metrics-listen``, which every daemon takes."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML file whose keys are this command's options{config_help} "
        f"(default /etc/routeplane/{name}.toml when it exists)",
    )
    parser.add_argument(
        "--metrics-listen",
        type=address,
        metavar="HOST:PORT",
        help="serve Prometheus /metrics, /healthz and /readyz here (default: not at all)",
    )


__all__ = ["add_options", "address", "start"]
