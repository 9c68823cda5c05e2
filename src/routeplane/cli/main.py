"""The ``routeplane`` command: one entry point, one subcommand per job.

Subcommands arrive with the components they run (``api``, ``agent``, ``lab`` come with
later layers). Each subcommand module exposes ``add_parser(subparsers)`` and sets a
``run`` function on its parser; this module only wires them together.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from routeplane import __version__
from routeplane.cli import agent, api, controller, demo, guest, lab, store
from routeplane.model.errors import RouteplaneError
from routeplane.store import DEFAULT_STORE_URL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routeplane",
        description="A routed (pure layer-3) network for VM clouds.",
    )
    parser.add_argument("--version", action="version", version=f"routeplane {__version__}")
    parser.add_argument(
        "--store",
        default=os.environ.get("ROUTEPLANE_STORE", DEFAULT_STORE_URL),
        help="store URL: sqlite:///path/to/store.db or etcd://host:port[,host:port] "
        "(default: $ROUTEPLANE_STORE or %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    agent.add_parser(commands)
    api.add_parser(commands)
    controller.add_parser(commands)
    store.add_parser(commands)
    demo.add_parser(commands)
    lab.add_parser(commands)
    guest.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.store_given = any(
        a == "--store" or a.startswith("--store=") for a in (argv or sys.argv[1:])
    )
    try:
        code: int = args.run(args)
    except RouteplaneError as exc:
        print(f"routeplane: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
