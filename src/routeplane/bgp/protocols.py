"""BIRD's ``show protocols`` as data: each protocol's name, kind, state and since when.

The agent's metrics and ``routeplane status`` report the host's BGP sessions from what
BIRD itself says (the session is Established or it is not), not from what the agent
configured. BIRD 2 prints a header and one row per protocol::

    Name       Proto      Table      State  Since         Info
    host_node2 BGP        ---        up     00:35:17.322  Established

``Since`` is a time of day for a change within the last day and a date before that (its
default ``timeformat protocol``); ``uptime`` turns the former into seconds. Pure text
handling: running ``birdc`` is ``bgp.bird``'s job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

ESTABLISHED = "Established"


@dataclass(frozen=True)
class Protocol:
    name: str
    proto: str  # BGP, Kernel, Device, BFD, …
    state: str  # up, down, start, …
    since: str  # as BIRD prints it
    info: str  # for BGP: Established, Active, Connect, … (and the last error, if any)

    @property
    def established(self) -> bool:
        return self.info.split()[:1] == [ESTABLISHED]


def parse(text: str) -> list[Protocol]:
    """The rows of ``birdc show protocols`` (its banner and header skipped)."""
    found: list[Protocol] = []
    header = False
    for line in text.splitlines():
        fields = line.split()
        if fields[:2] == ["Name", "Proto"]:
            header = True
            continue
        if not header or len(fields) < 5:
            continue
        name, proto, _table, state, since, *info = fields
        found.append(Protocol(name, proto, state, since, " ".join(info)))
    return found


def bgp_sessions(protocols: list[Protocol]) -> list[Protocol]:
    return [p for p in protocols if p.proto == "BGP"]


def uptime(since: str, now: dt.datetime) -> float | None:
    """Seconds since ``since`` when it is a time of day (within the last day; ``now`` is
    local time, as BIRD prints); None for a date (more than a day) or anything else."""
    try:
        clock = dt.time.fromisoformat(since)
    except ValueError:
        return None
    at = dt.datetime.combine(now.date(), clock)
    if at > now:
        at -= dt.timedelta(days=1)
    return (now - at).total_seconds()


__all__ = ["ESTABLISHED", "Protocol", "bgp_sessions", "parse", "uptime"]
