"""The agent's Prometheus metrics, its readiness and its state report.

Two kinds of figure, kept off the loop's hot path:

- what happens (apply rounds by phase, kernel operations that failed, policy
  transactions): recorded as it happens, by an observer of the loop's rounds
  (``agent.rounds``) and a timing wrapper around the policy table — a few
  microseconds a round;
- what is (endpoints desired, programmed and failing, the store's revision, BGP
  sessions from BIRD, the DHCP and metadata requests the host's services have counted
  in their ``agent.tally``): read only when scraped, by a collector, from the loop's own
  state (copies of its sets, taken atomically), ``birdc show protocols`` and the tallies.

``state()`` is the same reading as a document: ``/readyz`` answers from it and
``/status`` serves it whole for ``routeplane status``. Nothing here writes to the store
or the kernel.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from routeplane.agent.loop import Agent
from routeplane.agent.policy import PolicyTable
from routeplane.agent.rounds import PHASES, RoundReport
from routeplane.agent.tally import Tally
from routeplane.bgp.protocols import Protocol, bgp_sessions, uptime
from routeplane.model.errors import BgpError

# seconds: an apply round of one change takes a few milliseconds, a cold start seconds
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
Sessions = Callable[[], list[Protocol]]  # BIRD's BGP protocols (BgpError: no answer)
Servers = Callable[[], list[tuple[str, Tally]]]  # the host's request servers now running


class TimedPolicy:
    """A policy table whose every transaction is timed (and counted when refused)."""

    def __init__(self, table: PolicyTable, seconds: Histogram, refused: Counter) -> None:
        self.table, self.seconds, self.refused = table, seconds, refused

    def apply(self, script: str) -> None:
        began = time.perf_counter()
        try:
            self.table.apply(script)
        except Exception:
            self.refused.inc()
            raise
        finally:
            self.seconds.observe(time.perf_counter() - began)


class AgentMetrics:
    """The metrics of one agent process, in ``registry``."""

    def __init__(self, registry: CollectorRegistry, host: str) -> None:
        self.registry = registry
        self.host = host

        def counter(name: str, text: str) -> Counter:
            return Counter(f"routeplane_agent_{name}_total", text, registry=registry)

        def histogram(name: str, text: str, labels: tuple[str, ...] = ()) -> Histogram:
            return Histogram(
                f"routeplane_agent_{name}_seconds", text, labels, buckets=BUCKETS, registry=registry
            )

        phases = histogram(
            "apply_phase",
            "Time an apply round spent in each phase (plan, policy wait, kernel, status)",
            ("phase",),
        )
        self._phases = {phase: phases.labels(phase) for phase in PHASES}
        self.rounds = histogram("apply", "Time of a whole apply round")
        self.full_rounds = counter(
            "full_resyncs", "Apply rounds that read the kernel back in full (start, resync, gaps)"
        )
        self.kernel_failures = counter(
            "kernel_operation_failures",
            "Kernel operations (routes, neighbours, links) that failed; retried later",
        )
        self.policy_seconds = histogram("policy_apply", "Time of one nftables policy transaction")
        self.policy_refused = counter(
            "policy_failures", "Policy transactions nftables refused (endpoints fail closed)"
        )
        self.synced_once = False

    def timed(self, table: PolicyTable) -> TimedPolicy:
        return TimedPolicy(table, self.policy_seconds, self.policy_refused)

    def watch(self, agent: Agent, sessions: Sessions | None, servers: Servers = list) -> None:
        """Observe ``agent``'s rounds, and read its state (and ``servers``' tallies,
        by service name) when scraped."""
        agent.observers.append(lambda done: self.observe(agent, done))
        self.registry.register(_StateCollector(self, agent, sessions))
        self.registry.register(_RequestCollector(servers))

    def observe(self, agent: Agent, done: RoundReport) -> None:
        for phase, seconds in done.phases():
            self._phases[phase].observe(seconds)
        self.rounds.observe(done.seconds)
        if done.full:
            self.full_rounds.inc()
        if done.failed:
            self.kernel_failures.inc(done.failed)
        if not self.synced_once and agent.synced:
            self.synced_once = True


def state(
    metrics: AgentMetrics, agent: Agent, sessions: Sessions | None, *, names: bool = True
) -> dict[str, Any]:
    """The agent as ``/readyz`` and ``routeplane status`` show it. Ready: it has read its
    endpoints and applied them once, the store answers, and the policy is in place."""
    desired = set(agent.cache.endpoints)
    programmed = agent.status.known() & desired
    failing = set(agent.round.pending) & desired
    feed = None if agent.policy is None else agent.policy.feed
    policy_applied = feed is None or feed.applied is not None
    store_ok = agent.store_errors == 0
    ready = metrics.synced_once and agent.in_sync and store_ok and policy_applied
    found: dict[str, Any] = {
        "ready": ready,
        "host": metrics.host,
        "synced": metrics.synced_once and agent.in_sync,
        "store_reachable": store_ok,
        "store_revision": agent.follower.follower.revision,
        "policy_applied": policy_applied,
        "endpoints": {
            "desired": len(desired),
            "programmed": len(programmed),
            "failed": len(failing),
        },
    }
    if names:
        found["failing"] = sorted(failing)
        found["bgp"] = _sessions(sessions)
    return found


def _sessions(sessions: Sessions | None) -> dict[str, Any]:
    if sessions is None:
        return {"enabled": False, "peers": []}
    try:
        peers = bgp_sessions(sessions())
    except BgpError as exc:
        return {"enabled": True, "running": False, "error": str(exc), "peers": []}
    now = dt.datetime.now()
    return {
        "enabled": True,
        "running": True,
        "peers": [
            {
                "name": p.name,
                "state": p.state,
                "info": p.info,
                "established": p.established,
                "since": p.since,
                "uptime": uptime(p.since, now),
            }
            for p in peers
        ],
    }


class _StateCollector(Collector):
    """Gauges read at scrape time from the agent's own state and from BIRD."""

    def __init__(self, metrics: AgentMetrics, agent: Agent, sessions: Sessions | None) -> None:
        self.metrics, self.agent, self.sessions = metrics, agent, sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = state(self.metrics, self.agent, self.sessions, names=False)
        endpoints = GaugeMetricFamily(
            "routeplane_agent_endpoints", "This host's endpoints by state", labels=["state"]
        )
        for name, count in now["endpoints"].items():
            endpoints.add_metric([name], count)
        yield endpoints
        yield GaugeMetricFamily("routeplane_agent_ready", "1 when /readyz is ready", now["ready"])
        yield GaugeMetricFamily(
            "routeplane_agent_store_revision",
            "The store revision the agent has read up to",
            now["store_revision"],
        )
        if self.sessions is None:
            return
        bgp = _sessions(self.sessions)
        yield GaugeMetricFamily(
            "routeplane_agent_bird_up", "1 when BIRD answers birdc", int(bgp["running"])
        )
        established = GaugeMetricFamily(
            "routeplane_agent_bgp_session_established",
            "1 when BIRD reports the BGP session with this peer Established",
            labels=["peer"],
        )
        for peer in bgp["peers"]:
            established.add_metric([peer["name"]], int(peer["established"]))
        yield established


class _RequestCollector(Collector):
    """The host services' requests by outcome, read from their tallies when scraped."""

    def __init__(self, servers: Servers) -> None:
        self.servers = servers

    def collect(self) -> Iterator[CounterMetricFamily]:
        requests = CounterMetricFamily(
            "routeplane_agent_requests",
            "Requests of the VMs' DHCP, DHCPv6 and metadata services, by outcome",
            labels=["service", "outcome"],
        )
        for service, tally in self.servers():
            for outcome, count in tally.counts().items():
                requests.add_metric([service, outcome], count)
        yield requests


__all__ = ["AgentMetrics", "Servers", "TimedPolicy", "state"]
