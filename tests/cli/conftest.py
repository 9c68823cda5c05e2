"""The installed ``routeplane`` command, run as an operator runs it: the console script
beside this interpreter (never skipped: a missing script fails), importing this tree's
sources."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import routeplane
from routeplane.testing.api import free_port

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
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            env=command_env(),
            timeout=timeout,
            check=False,
        )

    return run


def start(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """``routeplane ARGS`` in the background, its output to ``log``."""
    assert SCRIPT.is_file(), f"the routeplane console script is not installed at {SCRIPT}"
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(SCRIPT), *args], stdout=out, stderr=subprocess.STDOUT, env=command_env()
        )


@dataclass(frozen=True)
class Daemons:
    """An api and a controller on one embedded store, configured by their files."""

    store: Path
    api: int  # the api's port
    api_metrics: int
    controller_metrics: int


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    db = tmp_path / "store.db"
    found = Daemons(db, free_port(), free_port(), free_port())
    (tmp_path / "api.toml").write_text(
        f'listen = "127.0.0.1:{found.api}"\nmetrics_listen = "127.0.0.1:{found.api_metrics}"\n'
        f'store = "sqlite://{db}"\nadmin_token = "t"\n'
    )
    (tmp_path / "controller.toml").write_text(
        f'metrics_listen = "127.0.0.1:{found.controller_metrics}"\n'
        f'store = "sqlite://{db}"\nname = "c1"\n'
    )
    procs = [
        start([name, "--config", str(tmp_path / f"{name}.toml")], tmp_path / f"{name}.log")
        for name in ("api", "controller")
    ]
    try:
        yield found
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
