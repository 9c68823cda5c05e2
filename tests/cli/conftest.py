"""The installed ``routeplane`` command, run as an operator runs it: the console script
beside this interpreter (never skipped: a missing script fails), importing this tree's
sources."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

import routeplane

SCRIPT = Path(sys.executable).parent / "routeplane"
RunCommand = Callable[..., subprocess.CompletedProcess[str]]


def command_env() -> dict[str, str]:
    """The environment for a ``routeplane`` process: this tree's sources first (the
    script of an editable install may point at another checkout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(routeplane.__file__).resolve().parents[1])
    env.pop("ROUTEPLANE_STORE", None)
    return env


@pytest.fixture
def routeplane_command() -> RunCommand:
    assert SCRIPT.is_file(), f"the routeplane console script is not installed at {SCRIPT}"

    def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, env=command_env(),
            timeout=timeout, check=False,
        )  # fmt: skip

    return run


def start(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """``routeplane ARGS`` in the background, its output to ``log``."""
    assert SCRIPT.is_file(), f"the routeplane console script is not installed at {SCRIPT}"
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(SCRIPT), *args], stdout=out, stderr=subprocess.STDOUT, env=command_env()
        )
