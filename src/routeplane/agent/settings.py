"""The agent's settings: one typed, frozen value, built by the composition root.

Its own module because two parts of the agent read it and neither owns it: the reconcile
loop (``agent/loop.py``: its pacing and backoff) and the host's registration
(``agent/registration.py``: the host record and the lease). Here, neither imports the
other for it. What this module must not do: read the environment or any file (the CLI
builds the settings and passes them in, STYLE G8).
"""

from __future__ import annotations

from dataclasses import dataclass

from routeplane.agent.desired import DRAIN_TIME


@dataclass(frozen=True)
class AgentSettings:
    host: str
    bgp_address: str = ""
    bgp_address6: str = ""
    as_number: int = 64512
    apply_interval: float = 0.005  # the longest gap between two applies (bursts coalesce)
    resync_interval: float = 30.0  # full read-back of the kernel, to repair drift
    pending_interval: float = 0.5  # how often endpoints waiting for their tap are retried
    arrival_interval: float = 0.01  # how often a migration's target tap is looked at
    drain_time: float = DRAIN_TIME  # a moved address is forwarded to its new host this long
    lease_ttl: int = 10
    error_delays: tuple[float, ...] = (0.5, 1, 2, 4, 8, 15)


__all__ = ["AgentSettings"]
