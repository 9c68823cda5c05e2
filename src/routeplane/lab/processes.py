"""Background processes of the lab: started detached, recognised and ended by PID.

Each process is started in a session of its own (so it outlives ``lab up`` and a Ctrl-C in
the terminal does not reach it) with its output in ``STATE/logs/<name>.log``. Its record
holds the PID and the command line it runs; a process is only signalled while
``/proc/PID/cmdline`` still shows that command line, so a PID the kernel has since handed
to someone else is never touched.

``ip netns exec NS CMD…`` replaces itself with ``CMD…`` (same PID), so the recorded
command line of such a process is ``CMD…``; both forms are accepted while it starts.

What this module must not do: signal anything not started by the lab, or look processes up
by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from routeplane.lab.state import ProcessRecord

STOP_TIMEOUT = 10.0

# Processes this Python process started and has not yet seen end: held so their ``Popen``
# is not collected while they run (a library user such as a benchmark or a test keeps
# running after ``lab up``), and reaped through it.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _exec_target(argv: Sequence[str]) -> list[str]:
    """What ``argv`` becomes after ``ip netns exec NS`` has exec'd it."""
    if len(argv) > 4 and list(argv[:3]) == ["ip", "netns", "exec"]:
        return list(argv[4:])
    return list(argv)


def _reap_finished() -> None:
    """Collect every child of ours that has ended (one a test or benchmark killed itself,
    say), so none lingers as a zombie or a ``Popen`` still thought to be running."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def start(
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached, its output appended to ``log`` (``env``: its whole
    environment, when given; ``cwd``: its working directory)."""
    _reap_finished()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    _children[proc.pid] = proc
    return ProcessRecord(pid=proc.pid, cmdline=_exec_target(argv), log=str(log))


def cmdline(pid: int) -> list[str] | None:
    """The command line of process ``pid``, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def alive(record: ProcessRecord) -> bool:
    """Whether the recorded process still runs (and is still the one we started)."""
    return cmdline(record.pid) == record.cmdline and not _is_zombie(record.pid)


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our child (``lab up`` still running)."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(record: ProcessRecord, timeout: float = STOP_TIMEOUT) -> bool:
    """End the recorded process: SIGTERM, then SIGKILL after ``timeout``. True when it had
    to be signalled; False when it was gone already (or the PID is someone else's now)."""
    _reap_finished()
    if not alive(record):
        return False
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not alive(record):
            _reap(record.pid)  # it may have ended between the two looks: collect it
            return True
        time.sleep(0.05)
    kill(record)
    return True


def kill(record: ProcessRecord) -> bool:
    """SIGKILL the recorded process at once (a crash, for fault tests), and collect it
    (up to 5 s); False when it was gone already (or the PID is someone else's now)."""
    if not alive(record):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGKILL)
    for _ in range(250):
        _reap(record.pid)
        if not alive(record):
            break
        time.sleep(0.02)
    return True


def wait_started(record: ProcessRecord, timeout: float = 5.0) -> bool:
    """Whether the process is running its recorded command within ``timeout`` (it may
    still be inside ``ip netns exec`` for a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive(record):
            return True
        _reap(record.pid)
        if cmdline(record.pid) is None:
            return False
        time.sleep(0.02)
    return alive(record)


__all__ = ["alive", "cmdline", "kill", "start", "stop", "wait_started"]
