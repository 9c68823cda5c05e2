"""What a benchmarked process has used, from ``/proc``: its CPU time, which a loaded machine
disturbs far less than wall-clock time (a cost measured in CPU seconds stays comparable when
other work shares the cores)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid`` and of the children it has waited for (``nft``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[k]) for k in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")
