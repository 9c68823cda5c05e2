"""Every ``routeplane …`` command line in the README runs as written, at least as far as
its arguments: a concrete line parses as the real command line would parse it, a
synopsis line (``[--opt X]``, ``{a,b}``, ``...``) names only options its subcommand has,
and ``routeplane <subcommand> --help`` answers for each subcommand the README uses."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from routeplane.cli.config import subcommands
from routeplane.cli.main import build_parser
from tests.cli.conftest import RunCommand

pytestmark = pytest.mark.cli

README = Path(__file__).resolve().parents[2] / "README.md"
SYNOPSIS = re.compile(r"[\[{]|\.\.\.")


def command_lines() -> list[str]:
    """The README's code lines that start with ``routeplane``, continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in README.read_text().splitlines():
        if not raw.startswith("    "):
            pending = ""
            continue
        text = raw.strip()
        if pending:
            text, pending = pending + " " + text, ""
        elif not text.startswith("routeplane "):
            continue
        if text.endswith("\\"):
            pending = text[:-1].rstrip()
            continue
        lines.append(text)
    return lines


def words(line: str) -> list[str]:
    return shlex.split(line.replace("$(hostname)", "node1"), comments=True)[1:]


def command_of(argv: list[str]) -> tuple[list[str], argparse.ArgumentParser]:
    """The subcommand path at the start of ``argv`` and its parser."""
    parser, path = build_parser(), []
    for word in argv:
        below = subcommands(parser)
        if word not in below:
            break
        parser = below[word]
        path.append(word)
    return path, parser


LINES = command_lines()


def test_the_readme_has_command_lines() -> None:
    assert len(LINES) >= 20
    assert any(line.startswith("routeplane api --listen") and "--store" in line for line in LINES)


@pytest.mark.parametrize("line", LINES)
def test_each_line_parses(line: str) -> None:
    argv = words(line)
    path, parser = command_of(argv)
    assert path, f"no subcommand in {line!r}"
    if SYNOPSIS.search(line):
        parsers = [parser]
        rest = argv[len(path) :]
        if rest and rest[0].startswith("{"):  # {up,boot,…}: the options of any of them
            below = subcommands(parser)
            parsers += [below[n] for n in rest[0].strip("{}").split(",") if n in below]
        options = {o for p in parsers for action in p._actions for o in action.option_strings}
        named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-v)\b", line))
        assert named <= options, f"{line!r}: {sorted(named - options)} not options of {path}"
        return
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"{line!r} does not parse") from exc


def test_each_subcommand_the_readme_uses_has_help(routeplane_command: RunCommand) -> None:
    used = {tuple(command_of(words(line))[0]) for line in LINES}
    for path in sorted(used):
        done = routeplane_command(*path, "--help")
        assert done.returncode == 0, (path, done.stderr)
