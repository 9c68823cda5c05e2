"""A real etcd server for tests and benchmarks, on loopback ports chosen at runtime.

The etcd backend is only worth what its tests against the real thing are worth: lease
timing, compaction and the gateway's JSON are etcd's behaviour, not a fake's. So tests start
this single-member server (Debian's ``etcd-server`` package), and fail loudly, never skip,
when the binary is missing. It can be stopped and restarted on the same data directory and
ports (a crash and recovery), or frozen with SIGSTOP (a server that accepts connections but
never answers).

What this module must not do: listen on anything but 127.0.0.1, or signal any process but
the one it started.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

_CANDIDATES = ("/usr/bin/etcd", "/usr/local/bin/etcd")
_PORT_ATTEMPTS = 3


def find_etcd_binary() -> str:
    """The etcd executable, or a ``RuntimeError`` saying how to install it."""
    found = shutil.which("etcd")
    if found:
        return found
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "etcd is not installed: install Debian's etcd-server package "
        "(apt-get install etcd-server); the etcd tests need a real etcd binary"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EtcdServer:
    """One etcd process on loopback. ``start()`` waits until it serves requests.

    Without ``data_dir`` the data and log live in a temporary directory that
    :meth:`close` (or leaving the ``with`` block) removes. With ``data_dir`` the data is
    kept, so a second server on the same directory sees it; the log is written next to it.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        name: str = "routeplane-test",
        binary: str | None = None,
        start_timeout: float = 15.0,
        extra_args: tuple[str, ...] = (),
        ports: tuple[int, int] = (0, 0),
        initial_cluster: str | None = None,
    ) -> None:
        """``ports`` (client, peer) and ``initial_cluster`` (etcd's ``name=peer-url,...``)
        make this a member of a cluster (:mod:`routeplane.testing.etcd_cluster`); by
        default it is a cluster of its own, on ports chosen when it starts."""
        self.binary = binary or find_etcd_binary()
        self.name = name
        self.start_timeout = start_timeout
        self.extra_args = extra_args
        self.initial_cluster = initial_cluster
        self._tmp: Path | None = None
        if data_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="routeplane-etcd-"))
            self.data_dir = self._tmp / "data"
            self.log_path = self._tmp / "etcd.log"
        else:
            self.data_dir = Path(data_dir).absolute()
            self.log_path = self.data_dir.parent / f"{self.data_dir.name}.etcd.log"
        self.client_port, self.peer_port = ports
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._paused = False

    # addresses ---------------------------------------------------------------------
    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def url(self) -> str:
        """The store URL for :func:`routeplane.store.etcd.EtcdStore.from_url`."""
        if not self.client_port:
            raise RuntimeError("the etcd server has not been started yet")
        return f"etcd://127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # lifecycle ---------------------------------------------------------------------
    def start(self) -> EtcdServer:
        """Start etcd (keeping the ports of an earlier start) and wait until it is healthy."""
        if self.running:
            return self
        fresh_ports = not self.client_port
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            if fresh_ports:
                self.client_port, self.peer_port = _free_port(), _free_port()
            self._spawn()
            try:
                self._wait_healthy()
            except RuntimeError:
                retry = fresh_ports and attempt < _PORT_ATTEMPTS and self._port_was_taken()
                self._terminate()
                if not retry:
                    raise
            else:
                atexit.register(self.stop)
                return self
        raise AssertionError("unreachable")

    def launch(self) -> None:
        """Start etcd without waiting for it: a cluster's members serve only once a
        quorum of them runs, so a cluster launches them all, then :meth:`wait_ready`."""
        if not self.running:
            self._spawn()
            atexit.register(self.stop)

    def wait_ready(self) -> None:
        """Wait until a launched etcd serves requests; stopped again if it does not."""
        with contextlib.ExitStack() as undo:
            undo.callback(self.stop)
            self._wait_healthy()
            undo.pop_all()

    def stop(self) -> None:
        """Stop etcd (SIGTERM, then SIGKILL after 10 s). The data directory is kept."""
        atexit.unregister(self.stop)
        self._terminate()

    def close(self) -> None:
        """Stop etcd and remove the temporary directory, if this server made one."""
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def pause(self) -> None:
        """Freeze etcd (SIGSTOP): connections are accepted but nothing is answered."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no etcd log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EtcdServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # internals ---------------------------------------------------------------------
    def _command(self) -> list[str]:
        return [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", "new",
            "--auto-compaction-retention", "0",
            "--logger", "zap",
            "--log-outputs", "stderr",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"--- starting etcd at {time.ctime()}\n".encode())
        self._log.flush()
        # etcd refuses ETCD_* variables that shadow its flags; start it from a clean slate.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        try:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise RuntimeError(f"cannot run etcd ({self.binary}): {exc}") from exc
        self._paused = False

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                self._fail(f"etcd exited with status {self._proc.returncode} while starting")
            if self._healthy():
                return
            time.sleep(0.05)
        self._fail(f"etcd did not become healthy within {self.start_timeout} s")

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=1.0)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            body = json.loads(resp.read() or b"{}")
        except (OSError, ValueError, http.client.HTTPException):
            return False
        finally:
            conn.close()
        return resp.status == 200 and isinstance(body, dict) and body.get("health") == "true"

    def _fail(self, message: str) -> None:
        raise RuntimeError(f"{message}; log {self.log_path}:\n{self.log_tail()}")

    def _port_was_taken(self) -> bool:
        return "address already in use" in self.log_tail(200)

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running or self._proc is None:
            raise RuntimeError("the etcd server is not running")
        # Popen.send_signal signals only the child it started, and not after it was reaped.
        self._proc.send_signal(sig)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            if self._paused:
                proc.send_signal(signal.SIGCONT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._paused = False
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None


__all__ = ["EtcdServer", "find_etcd_binary"]
