"""The ``routeplane`` command: one entry point, one subcommand per job.

Each subcommand module exposes ``add_parser(subparsers)`` and sets a ``run`` function on
its parser; this module wires them together, accepts the global options (``--store``)
before or after the subcommand, and lays the daemons' config files under their command
lines (``cli.config``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from routeplane import __version__
from routeplane.cli import agent, api, config_check, controller, demo, guest, lab, status, store
from routeplane.cli.config import CONFIGURED, ConfigError, prepare, settle, subcommands
from routeplane.model.errors import RouteplaneError
from routeplane.store import DEFAULT_STORE_URL

STORE_HELP = (
    "store URL: sqlite:///path/to/store.db or etcd://host:port[,host:port] "
    f"(default: the config file's store, $ROUTEPLANE_STORE or {DEFAULT_STORE_URL})"
)


def _add_globals(parser: argparse.ArgumentParser) -> None:
    """The global options, on this parser and every subcommand below it. Their default
    is "absent" everywhere, so a subcommand's parser never overwrites what was given
    before the subcommand; ``main`` fills them in last."""
    parser.add_argument("--store", default=argparse.SUPPRESS, metavar="URL", help=STORE_HELP)
    for command in subcommands(parser).values():
        _add_globals(command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routeplane",
        description="A routed (pure layer-3) network for VM clouds.",
    )
    parser.add_argument("--version", action="version", version=f"routeplane {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    agent.add_parser(commands)
    api.add_parser(commands)
    controller.add_parser(commands)
    status.add_parser(commands)
    config_check.add_parser(commands)
    store.add_parser(commands)
    demo.add_parser(commands)
    lab.add_parser(commands)
    guest.add_parser(commands)
    _add_globals(parser)
    for name in CONFIGURED:
        prepare(subcommands(parser)[name])
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, with a daemon's config file under it and the store's URL
    settled (command line, config file, ``$ROUTEPLANE_STORE``, default)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in CONFIGURED:
        args = settle(parser, subcommands(parser)[args.command], argv, args)
    if getattr(args, "store", None) is None:
        args.store = os.environ.get("ROUTEPLANE_STORE", DEFAULT_STORE_URL)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
        code: int = args.run(args)
    except ConfigError as exc:  # a bad key or value: a usage error, as a bad flag is
        command = " ".join(["routeplane", *(a for a in argv if a in CONFIGURED)][:2])
        print(f"{command}: config {exc}", file=sys.stderr)
        return 2
    except RouteplaneError as exc:
        print(f"routeplane: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
