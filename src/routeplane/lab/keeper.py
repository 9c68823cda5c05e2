"""Keep one command and everything it forks under a command line the lab can recognise.

The lab stops its processes by PID, and only while ``/proc/PID/cmdline`` still shows the
command it started (``processes``). OpenStack's services break that: their master
process renames itself (``setproctitle``, "nova-conductor: master process [...]") and
forks workers, and a shell script such as ``rabbitmq-server`` starts Erlang as a child.
So the lab starts them as ``python -m routeplane.lab.keeper CMD…``: this process keeps its
command line, runs ``CMD`` in a process group of its own, passes SIGTERM and SIGINT to
that whole group, waits ``GRACE`` seconds, then kills the group, and exits with the
command's status. If the command ends by itself, so does the keeper (after ending what
the command left in its group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from types import FrameType

GRACE = 8.0


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m routeplane.lab.keeper CMD [ARG…]", file=sys.stderr)
        return 2
    child = subprocess.Popen(argv, process_group=0)
    asked: list[float] = []  # when the first stop signal came

    def forward(_signum: int, _frame: FrameType | None) -> None:
        asked.append(time.monotonic())
        _signal_group(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while child.poll() is None:
        if asked and time.monotonic() - asked[0] > GRACE:
            _signal_group(child.pid, signal.SIGKILL)
        time.sleep(0.1)
    _signal_group(child.pid, signal.SIGKILL)  # whatever it left behind in its group
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
