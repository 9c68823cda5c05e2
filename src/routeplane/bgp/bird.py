"""BIRD itself: write its configuration, make it take it, start it when it is not running.

The only module that runs ``bird`` and ``birdc``. Everything lives in one directory of
routeplane's own (``bird.conf``, the control socket ``bird.ctl``, ``bird.pid``), which is
the ownership mark: the agent starts, reconfigures and stops only the BIRD whose pid file
is there *and* whose command line names that directory's ``bird.conf``.

A configuration is checked with ``bird -p`` before it replaces the file, and the file is
replaced atomically (write, fsync, rename), so a refused configuration leaves BIRD and
the file exactly as they were. BIRD runs inside the host's network namespace (``nsenter``)
when the agent acts on one (the lab); ``birdc`` talks to it through the socket, which
lives in the file system and so works from any namespace.

What this module must not do: signal a process it cannot prove is its own BIRD, or touch
files outside its directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Protocol

from routeplane.bgp import protocols as shown
from routeplane.model.errors import BgpError

NETNS_DIR = "/run/netns"
TIMEOUT = 10.0


class BirdPort(Protocol):
    """What the agent needs of BIRD (a stateful fake in ``bgp.fake`` has the same)."""

    def apply(self, config: str) -> bool:
        """Make BIRD run ``config``: start it, or reconfigure it when the text changed.
        True when something changed; ``BgpError`` (and nothing changed) when refused."""
        ...

    def running(self) -> bool: ...


class Bird:
    """The BIRD of one host: its files under ``directory``, its process in ``netns``."""

    def __init__(self, directory: Path, netns: str | None = None) -> None:
        if netns is not None and ("/" in netns or not (Path(NETNS_DIR) / netns).exists()):
            raise BgpError(f"network namespace {netns!r} does not exist")
        self.directory = directory
        self.netns = netns
        self.conf = directory / "bird.conf"
        self.ctl = directory / "bird.ctl"
        self.pidfile = directory / "bird.pid"

    # the port --------------------------------------------------------------------------
    def apply(self, config: str) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        current = self.conf.read_text() if self.conf.exists() else None
        alive = self.running()
        if current == config and alive:
            return False
        if current != config:
            self._check(config)
            self._write(config)
        if alive:
            self._configure()
        else:
            self._start()
        return True

    def running(self) -> bool:
        return self.pid() is not None

    # beyond the port: the lab and the tests use these ----------------------------------
    def pid(self) -> int | None:
        """The pid of *our* BIRD, or None: the pid file must name a live process whose
        command line is ``bird … -c <our bird.conf>``."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._ours(pid) else None

    def _ours(self, pid: int) -> bool:
        """Whether ``pid`` runs our BIRD (a zombie has no command line: it is over)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return cmdline[0].endswith(b"bird") and str(self.conf).encode() in cmdline

    def birdc(self, *args: str) -> str:
        """``birdc -s <our socket> args…``: its output (``BgpError`` if it fails)."""
        done = self._run(["birdc", "-s", str(self.ctl), *args])
        if done.returncode != 0:
            raise BgpError(f"birdc {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def protocols(self) -> list[shown.Protocol]:
        """``show protocols``: every protocol of our BIRD (``BgpError`` when it does not
        answer: not running, or its socket gone)."""
        return shown.parse(self.birdc("show", "protocols"))

    def stop(self, timeout: float = 5.0) -> None:
        """End our BIRD (SIGTERM, then SIGKILL): the kernel routes it installed go with it
        on a clean stop. Absent is fine."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        # Wait for the process itself, not its pid file: BIRD removes the pid file before
        # its control socket, and whoever removes the directory next must not race it.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._ours(pid):
            time.sleep(0.02)
        if self._ours(pid):
            os.kill(pid, signal.SIGKILL)
            while self._ours(pid) and time.monotonic() < deadline + timeout:
                time.sleep(0.02)

    # the steps -------------------------------------------------------------------------
    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BgpError(f"{command[0]}: {exc}") from exc

    def _check(self, config: str) -> None:
        """``bird -p``: parse only. Refused texts never reach ``bird.conf``."""
        candidate = self.directory / "bird.conf.check"
        candidate.write_text(config)
        try:
            done = self._run(["bird", "-p", "-c", str(candidate)])
        finally:
            candidate.unlink(missing_ok=True)
        if done.returncode != 0:
            raise BgpError(f"BIRD refused the configuration: {done.stderr.strip()}")

    def _write(self, config: str) -> None:
        temporary = self.directory / "bird.conf.new"
        with open(temporary, "w") as file:
            file.write(config)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.conf)

    def _configure(self) -> None:
        reply = self.birdc("configure")
        if "Reconfigur" not in reply:  # "Reconfigured", "Reconfiguration in progress"
            raise BgpError(f"birdc configure: {reply.strip()}")

    def _start(self) -> None:
        command = ["bird", "-c", str(self.conf), "-s", str(self.ctl), "-P", str(self.pidfile)]
        if self.netns is not None:
            command = ["nsenter", f"--net={Path(NETNS_DIR) / self.netns}", "--", *command]
        self.pidfile.unlink(missing_ok=True)
        done = self._run(command)  # BIRD parses, then daemonizes: the exit tells
        if done.returncode != 0:
            raise BgpError(f"bird did not start: {done.stderr.strip()}")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.pid() is not None and self.ctl.exists():
                return
            time.sleep(0.01)
        raise BgpError(f"bird started but wrote no pid file in {self.directory}")


__all__ = ["Bird", "BirdPort"]
