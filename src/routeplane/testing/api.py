"""A ``routeplane api`` process for tests and benchmarks, on loopback, stopped by its PID."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

CONFIG = """\
admin_token = "{admin_token}"
default_subnet_pools = [
    {{ prefixes = ["10.160.0.0/12"], default_prefixlen = 24 }},
    {{ prefixes = ["fd16::/40"], default_prefixlen = 64 }},
]

[[users]]
name = "demo"
password = "secret"
project = "demo"
roles = ["member", "reader"]

[[users]]
name = "viewer"
password = "secret"
project = "demo"
roles = ["reader"]

[[users]]
name = "alt"
password = "secret"
project = "alt"
roles = ["member", "reader"]

[[users]]
name = "nova"
password = "secret"
project = "service"
roles = ["service"]

[[users]]
name = "cloudadmin"
password = "secret"
project = "admin"
roles = ["admin"]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_block(size: int) -> int:
    """A loopback port with the ``size - 1`` ports above it free as well (a lab with
    ``--openstack`` listens at fixed offsets above its api's port)."""
    for _ in range(100):
        base = free_port()
        if base + size < 65536 and all(port_free(base + k) for k in range(1, size)):
            return base
    raise RuntimeError(f"no {size} free loopback ports in a row")


def port_free(port: int) -> bool:
    """Whether a listener could bind ``127.0.0.1:port`` now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def answers(port: int, path: str) -> bool:
    """Whether ``GET path`` on ``127.0.0.1:port`` answers 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_until_answers(
    proc: subprocess.Popen[bytes], port: int, path: str, timeout: float, log: Path
) -> None:
    """Until the server started as ``proc`` answers; RuntimeError (with its log's tail)
    if it exits or stays silent for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited: {log.read_text()[-2000:]}")
        if answers(port, path):
            return
        time.sleep(0.05)
    raise RuntimeError(f"no answer within {timeout}s: {log.read_text()[-2000:]}")


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a server this process started: SIGTERM, then SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def launch(
    command: list[str], log: Path, port: int, path: str, *, timeout: float, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start a loopback server, its output to ``log``, and wait until it answers
    ``GET path``; stopped again if it does not."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_answers(proc, port, path, timeout, log)
    except RuntimeError:
        terminate(proc)
        raise
    return proc


class LoopbackProcess:
    """A server process this test process started and stops (by its PID)."""

    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        terminate(proc)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ApiServer(LoopbackProcess):
    """``routeplane api`` on 127.0.0.1 with the users above and a static admin token."""

    def __init__(
        self,
        store_url: str,
        *,
        admin_token: str = "s3cret",  # noqa: S107 (a test server's well-known token)
        workdir: Path | None = None,
        extra_config: str = "",
        prelude: str = "",
        metrics: bool = False,
    ) -> None:
        """``extra_config``: TOML appended to the config (a ``[keystone_authtoken]``);
        ``prelude``: top-level TOML keys put before it; ``metrics``: serve ``/metrics`` on
        :attr:`metrics_url` too."""
        self.store_url = store_url
        self.extra_config = extra_config
        self.prelude = prelude
        self.admin_token = admin_token
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="routeplane-api-")
        self.workdir = workdir or Path(self._tmp.name if self._tmp else ".")
        self.port = free_port()
        self.metrics_port = free_port() if metrics else None
        self.config = self.workdir / f"api-{self.port}.toml"
        self.log = self.workdir / f"api-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        assert self.metrics_port is not None, "the api was started without metrics"
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        """The api process, for tests that watch its resources (memory under attack)."""
        assert self._proc is not None, "the api is not started"
        return self._proc.pid

    def start(self, timeout: float = 20.0) -> Self:
        config = CONFIG.format(admin_token=self.admin_token)
        self.config.write_text(self.prelude + config + self.extra_config)
        command = [
            sys.executable, "-m", "routeplane.cli.main", "--store", self.store_url,
            "api", "--listen", f"127.0.0.1:{self.port}", "--config", str(self.config),
        ]  # fmt: skip
        if self.metrics_port is not None:
            command += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        self._proc = launch(
            command, self.log, self.port, "/", timeout=timeout, env=os.environ.copy()
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


__all__ = [
    "ApiServer",
    "LoopbackProcess",
    "answers",
    "free_port",
    "free_port_block",
    "launch",
    "port_free",
    "terminate",
    "wait_until_answers",
]
