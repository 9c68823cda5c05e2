"""A ``routeplane api`` process for tests and benchmarks, on loopback, stopped by its PID."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
admin_token = "{admin_token}"

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


class ApiServer:
    """``routeplane api`` on 127.0.0.1 with the users above and a static admin token."""

    def __init__(
        self,
        store_url: str,
        *,
        admin_token: str = "s3cret",  # noqa: S107 (a test server's well-known token)
        workdir: Path | None = None,
    ) -> None:
        self.store_url = store_url
        self.admin_token = admin_token
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="routeplane-api-")
        self.workdir = workdir or Path(self._tmp.name if self._tmp else ".")
        self.port = free_port()
        self.config = self.workdir / f"api-{self.port}.toml"
        self.log = self.workdir / f"api-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The api process, for tests that watch its resources (memory under attack)."""
        assert self._proc is not None, "the api is not started"
        return self._proc.pid

    def start(self, timeout: float = 20.0) -> ApiServer:
        self.config.write_text(CONFIG.format(admin_token=self.admin_token))
        command = [
            sys.executable, "-m", "routeplane.cli.main", "--store", self.store_url,
            "api", "--listen", f"127.0.0.1:{self.port}", "--config", str(self.config),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"routeplane api exited: {self.log.read_text()[-2000:]}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"routeplane api did not answer within {timeout}s: {self.log.read_text()[-2000:]}"
        )

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


__all__ = ["ApiServer", "free_port"]
