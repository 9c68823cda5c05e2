"""Configuration files of the daemons: ``/etc/routeplane/<command>.toml``.

``routeplane api``, ``agent`` and ``controller`` read a TOML file whose keys are their
command-line options (``--bgp-peer`` is ``bgp_peer``, ``--no-bfd`` is ``no_bfd = true``,
the global ``--store`` is ``store``); an option given on the command line wins over the
file, the file over ``$ROUTEPLANE_STORE`` and the built-in defaults. The path is
``/etc/routeplane/<command>.toml`` (read only when it exists) or ``--config FILE`` (which
must exist). A key the command does not know, or a value its option would refuse, is an
error naming the key (exit 2, like a bad flag): a typo must not silently leave a daemon
on its default.

The schema is the command's own ``argparse`` parser, so every flag has a key by
construction; this module derives it (``options_of``), checks a file against it
(``validate``) and lays the file's values under the command line (``settle``). It does
not start anything and knows no command but through its parser.
"""

from __future__ import annotations

import argparse
import difflib
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_DIR = Path("/etc/routeplane")
CONFIGURED = ("api", "agent", "controller")  # the commands that read a config file
NOT_KEYS = frozenset({"help", "config", "version"})  # options that are no key of a file


class ConfigError(Exception):
    """A config file that cannot be used; ``key`` names the offending key (None: the file
    itself is unreadable or not TOML)."""

    def __init__(self, path: str, key: str | None, reason: str) -> None:
        self.path, self.key, self.reason = path, key, reason
        where = f"{path}: key {key!r}" if key is not None else path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Option:
    """One key of a config file, as its command-line option defines it."""

    key: str
    flag: str  # the long option, for messages
    kind: str  # "switch" (true/false), "list" (repeatable option) or "value"
    convert: Callable[[str], Any] | None  # the option's ``type`` (None: a string)
    choices: tuple[Any, ...] | None = None
    required: bool = False


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (empty when it has none)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def options_of(parser: argparse.ArgumentParser) -> dict[str, Option]:
    """Every option of a command as a config key (``dest``), but help and ``--config``."""
    options: dict[str, Option] = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in NOT_KEYS:
            continue
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            kind = "switch"
        elif isinstance(action, argparse._AppendAction):
            kind = "list"
        else:
            kind = "value"
        flag = max(action.option_strings, key=len)
        choices = tuple(action.choices) if action.choices is not None else None
        convert = action.type if callable(action.type) else None
        options[action.dest] = Option(action.dest, flag, kind, convert, choices, action.required)
    return options


def load(path: str) -> dict[str, Any]:
    """The TOML document at ``path``; ``ConfigError`` when unreadable or not TOML."""
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text: {exc.reason}") from exc


def _scalar(path: str, option: Option, value: object) -> Any:
    """One value as the option's converter takes it from a command line."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(path, option.key, f"must be {_expected(option)}, not {_toml(value)}")
    convert = option.convert
    if isinstance(value, int | float) and convert not in (int, float):
        if convert is None:
            raise ConfigError(path, option.key, f"must be a string, not {_toml(value)}")
        value = str(value)  # a converter of text (a TTL, an address): as typed on a command line
    try:
        result = value if convert is None else convert(value)  # type: ignore[arg-type]
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        numeric = convert in (int, float) or not str(exc)
        reason = f"must be {_expected(option)}, not {value!r}" if numeric else str(exc)
        raise ConfigError(path, option.key, reason.replace(option.flag, option.key)) from exc
    if option.choices is not None and result not in option.choices:
        allowed = ", ".join(repr(c) for c in option.choices)
        raise ConfigError(path, option.key, f"{value!r} is not one of {allowed}")
    return result


def _expected(option: Option) -> str:
    return "a number" if option.convert in (int, float) else "a string"


def _toml(value: object) -> str:
    kind = {bool: "a boolean", list: "an array", dict: "a table"}.get(type(value))
    return kind or repr(value)


def convert(path: str, option: Option, value: object) -> Any:
    """A file's value for one option, converted as the command line would; or
    ``ConfigError`` naming the key."""
    if option.kind == "switch":
        if not isinstance(value, bool):
            raise ConfigError(path, option.key, f"must be true or false, not {_toml(value)}")
        return value
    if option.kind == "list":
        items = value if isinstance(value, list) else [value]
        return [_scalar(path, option, item) for item in items]
    return _scalar(path, option, value)


def validate(
    path: str,
    raw: Mapping[str, object],
    options: Mapping[str, Option],
    extra: Mapping[str, type | tuple[type, ...]] | None = None,
    retired: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The file's values by key, converted; ``extra`` are keys of the command's own beyond
    its options (the api's users and projects) with the TOML types they take, ``retired``
    keys an older version read, each with what replaced it. An unknown or retired key or
    a bad value raises ``ConfigError`` naming it."""
    extra, retired = extra or {}, retired or {}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in retired:
            raise ConfigError(path, key, retired[key])
        if key in options:
            values[key] = convert(path, options[key], value)
        elif key in extra:
            if isinstance(value, bool) or not isinstance(value, extra[key]):
                raise ConfigError(path, key, f"has the wrong type ({_toml(value)})")
            values[key] = value
        else:
            known = [*options, *extra]
            close = difflib.get_close_matches(key.replace("-", "_"), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(path, key, f"unknown key{hint}; known keys: {', '.join(known)}")
    return values


def default_path(command: str) -> Path:
    return CONFIG_DIR / f"{command}.toml"


def prepare(command: argparse.ArgumentParser) -> None:
    """Make a command read a config file: its schema is kept as the parser's default
    ``config_options``, and options it requires may now come from the file instead
    (``settle`` checks them once the file is read). Keys of the command's own beyond
    its options are its default ``config_extra`` (key -> the TOML types it takes)."""
    command.set_defaults(config_options=options_of(command))
    for action in command._actions:
        action.required = action.required and not action.option_strings


def settle(
    parser: argparse.ArgumentParser,
    command: argparse.ArgumentParser,
    argv: Sequence[str],
    args: argparse.Namespace,
) -> argparse.Namespace:
    """The command line ``argv`` parsed again with the config file's values as the
    command's defaults: what the command line gives wins (a repeatable option given on
    it replaces the file's list rather than adding to it). The file's whole content is
    left in ``args.config_values``; options required on the command line may come from
    the file instead, and are checked here."""
    options: dict[str, Option] = args.config_options
    extra: dict[str, type | tuple[type, ...]] = getattr(args, "config_extra", {})
    retired: dict[str, str] = getattr(args, "config_retired", {})
    path = args.config or str(default_path(args.command))
    if args.config is None and not Path(path).exists():
        values: dict[str, Any] = {}
    else:
        values = validate(path, load(path), options, extra, retired)
    command.set_defaults(**{k: v for k, v in values.items() if k in options and k != "store"})
    merged = parser.parse_args(argv)
    for key, option in options.items():
        given = getattr(args, key, None)
        if option.kind == "list" and given:
            setattr(merged, key, given)
    if "store" not in merged:
        merged.store = values.get("store") or os.environ.get("ROUTEPLANE_STORE")
    missing = [o.flag for o in options.values() if o.required and getattr(merged, o.key) is None]
    if missing:
        command.error(
            f"the following arguments are required: {', '.join(missing)} (or keys in {path})"
        )
    merged.config_values = values
    return merged


__all__ = [
    "CONFIGURED",
    "CONFIG_DIR",
    "ConfigError",
    "Option",
    "convert",
    "default_path",
    "load",
    "options_of",
    "prepare",
    "settle",
    "subcommands",
    "validate",
]
