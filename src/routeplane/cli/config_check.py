"""``routeplane config``: check a daemon's config file before a restart depends on it,
and list the keys a daemon's file takes.

``check FILE`` reads the file as the daemon would (``cli.config``: every key must be one
of the command's options or its own extra keys, every value one its option accepts) and
exits 2 naming the first bad key (``main`` reports the ``ConfigError``); which daemon the file is for comes from ``--for`` or
the file's name (``api.toml``, ``agent.toml``, ``controller.toml``). ``keys COMMAND``
prints every key with its option's help, as a TOML file of comments to start from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from routeplane.cli.config import CONFIGURED, load, subcommands, validate


def _command(name: str) -> argparse.ArgumentParser:
    # the whole command line's parser: imported here, as it imports this module
    from routeplane.cli.main import build_parser  # noqa: PLC0415

    return subcommands(build_parser())[name]


def _check(args: argparse.Namespace) -> int:
    name = args.component or Path(args.file).stem
    if name not in CONFIGURED:
        print(
            f"routeplane config check: which command is {args.file} for? "
            f"name it {{{','.join(CONFIGURED)}}}.toml or give --for",
            file=sys.stderr,
        )
        return 2
    command = _command(name)
    values = validate(
        args.file,
        load(args.file),
        command.get_default("config_options"),
        command.get_default("config_extra"),
        command.get_default("config_retired"),
    )
    if name == "api":
        from routeplane.cli.api import identity_config  # noqa: PLC0415

        identity_config(
            argparse.Namespace(config=args.file, config_values=values, admin_token=None)
        )
    print(f"{args.file}: ok for routeplane {name} ({len(values)} key(s))")
    return 0


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):  # an address: HOST:PORT
        return f'"{value[0]}:{value[1]}"'
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"'


def _keys(args: argparse.Namespace) -> int:
    command = _command(args.component)
    helps = {a.dest: a for a in command._actions}
    print(f"# /etc/routeplane/{args.component}.toml: every key, commented out")
    for key, option in command.get_default("config_options").items():
        action = helps[key]
        text = (action.help or "").replace("%(default)s", str(action.default))
        print(f"\n# {option.flag}: {text}" if text else f"\n# {option.flag}")
        default = action.default
        shown = "" if default in (None, argparse.SUPPRESS) else _toml(default)
        print(f"# {key} = {shown}" if shown else f"# {key} =")
    for key in command.get_default("config_extra") or {}:
        print(f"\n# {key}: see the README's section on the API's identity")
    return 0


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "config", help="check a daemon's config file; list the keys it takes"
    )
    actions = parser.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a config file (exit 2 naming a bad key)")
    check.add_argument("file", metavar="FILE")
    check.add_argument(
        "--for", dest="component", choices=CONFIGURED, help="the command (default: the name)"
    )
    check.set_defaults(run=_check)
    keys = actions.add_parser("keys", help="every key of a command's file, as TOML comments")
    keys.add_argument("component", choices=CONFIGURED, metavar="COMMAND")
    keys.set_defaults(run=_keys)
