"""When a service IP moves, and where to: the controller's decision, as a pure function.

Inputs: the service IP document and the health reports of its ports, written by the
checker on each port's host under ``health/<host>/<service_ip_id>/<port_id>``::

    {"healthy": true, "checked_at": 1767225600.25, "consecutive_failures": 0}

(``checked_at`` in seconds since the epoch; the checker rewrites the record on every
change and at least once a second). A port's health, for one service IP:

- ``HEALTHY``: a current report, ``healthy`` and fewer failures than the threshold;
- ``FAILED``: a current report that says otherwise;
- ``STALE``: a report older than :func:`stale_after` — its checker stopped (host or agent
  gone);
- ``UNKNOWN``: no report at all (just created, or never checked).

The decision table, in order:

====================================================  =====================================
situation                                             decision
====================================================  =====================================
no health check configured                            stay (moves are manual only)
``failback``, the primary is not active and HEALTHY   move to the primary (``failback``)
the active port is HEALTHY                            stay
the active port is UNKNOWN                            stay: no evidence of failure
the active port is FAILED or STALE                    move to the first HEALTHY candidate
                                                      (``health``); none → stay
====================================================  =====================================

Candidates are the primary port, then ``standby_port_ids`` in order, without the active
port and without repeats. A port that is FAILED, STALE or UNKNOWN is never a target, so
the address never moves to a port nobody vouches for. Without ``failback`` a recovered
port does not take the address back: the active one keeps it while it is healthy.
What this module must not do: read the store, look at the clock, or write anything.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STALE_FLOOR = 3.0  # seconds: a report is current for at least this long (heartbeat: 1 s)
STALE_FACTOR = 3.0  # ... and for this many detection budgets (interval x threshold)


class Health(enum.Enum):
    HEALTHY = "healthy"
    FAILED = "failed"
    STALE = "stale"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    checked_at: float
    consecutive_failures: int

    @classmethod
    def parse(cls, value: Any) -> HealthReport | None:
        """A report from its stored JSON; None when it is not one (a checker's bug)."""
        if not isinstance(value, dict):
            return None
        healthy, at = value.get("healthy"), value.get("checked_at")
        failures = value.get("consecutive_failures", 0)
        if not isinstance(healthy, bool) or isinstance(at, bool) or isinstance(failures, bool):
            return None
        if not isinstance(at, int | float) or not isinstance(failures, int):
            return None
        return cls(healthy, float(at), failures)


@dataclass(frozen=True)
class Decision:
    """``target`` None: stay. ``reason``: why (for a move, the reason recorded with it)."""

    target: str | None
    reason: str


def stale_after(check: Mapping[str, Any]) -> float:
    """How old a report may be before its checker counts as gone."""
    budget = float(check.get("interval", 1.0)) * int(check.get("failure_threshold", 3))
    return max(STALE_FLOOR, STALE_FACTOR * budget)


def port_health(report: HealthReport | None, check: Mapping[str, Any], now: float) -> Health:
    if report is None:
        return Health.UNKNOWN
    if now - report.checked_at > stale_after(check):
        return Health.STALE
    threshold = int(check.get("failure_threshold", 3))
    if report.healthy and report.consecutive_failures < threshold:
        return Health.HEALTHY
    return Health.FAILED


def candidates(service_ip: Mapping[str, Any]) -> list[str]:
    """Where the address may go, best first: the primary, then the standbys in order."""
    active = service_ip.get("active_port_id")
    found: list[str] = []
    for port_id in [service_ip.get("primary_port_id"), *service_ip.get("standby_port_ids", [])]:
        if port_id and port_id != active and port_id not in found:
            found.append(str(port_id))
    return found


def decide(
    service_ip: Mapping[str, Any], reports: Mapping[str, HealthReport], now: float
) -> Decision:
    """Move the service IP, or not; ``reports`` by port id (for this service IP only)."""
    check = service_ip.get("health_check")
    if not check:
        return Decision(None, "no health check")
    active = str(service_ip.get("active_port_id"))

    def health(port_id: str) -> Health:
        return port_health(reports.get(port_id), check, now)

    pool = candidates(service_ip)
    primary = service_ip.get("primary_port_id")
    failback = service_ip.get("failback") and primary and primary != active
    if failback and health(str(primary)) is Health.HEALTHY:
        return Decision(str(primary), "failback")
    state = health(active)
    if state is Health.HEALTHY:
        return Decision(None, "active healthy")
    if state is Health.UNKNOWN:
        return Decision(None, "active not reported")
    for port_id in pool:
        if health(port_id) is Health.HEALTHY:
            return Decision(port_id, "health")
    return Decision(None, f"active {state.value}, no healthy standby")


__all__ = [
    "Decision",
    "Health",
    "HealthReport",
    "candidates",
    "decide",
    "port_health",
    "stale_after",
]
