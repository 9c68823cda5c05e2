"""The controller's Prometheus metrics: leadership, failovers and how fast they are.

- ``routeplane_controller_leader``: 1 while this controller holds the leader key;
- ``routeplane_controller_failovers_total{reason}``: moves this controller made
  (``health``: the active port failed; ``failback``: back to a recovered primary);
- ``routeplane_controller_detection_to_move_seconds``: from the failure's evidence to the
  committed move — the failing report's ``checked_at`` (the checker writes one as soon
  as a port crosses its threshold), or, for a port whose checker went silent, the moment
  its last report became stale;
- ``routeplane_controller_ports{health}``: the ports of every service IP by health as the
  controller sees them now (healthy, failed, stale, unknown).

Moves are recorded by an observer of the controller (``Controller.observers``); the
rest is read when scraped. Nothing here writes to the store.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from routeplane.controller.failover import (
    Decision,
    Health,
    HealthReport,
    candidates,
    port_health,
    stale_after,
)
from routeplane.controller.leader import Controller

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def detected_at(
    service_ip: Mapping[str, Any], reports: Mapping[str, HealthReport], now: float
) -> float | None:
    """When the active port's failure became evident (None: it did not fail, or no
    report says so)."""
    check = service_ip.get("health_check")
    report = reports.get(str(service_ip.get("active_port_id")))
    if not check or report is None:
        return None
    health = port_health(report, check, now)
    if health is Health.FAILED:
        return report.checked_at
    if health is Health.STALE:
        return report.checked_at + stale_after(check)
    return None


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry, controller: Controller) -> None:
        self.failovers = Counter(
            "routeplane_controller_failovers_total",
            "Service-IP moves this controller made, by reason",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "routeplane_controller_detection_to_move_seconds",
            "From the evidence of a failure to the committed move",
            buckets=BUCKETS,
            registry=registry,
        )
        controller.observers.append(self.moved)
        registry.register(_StateCollector(controller))

    def moved(
        self,
        service_ip: Mapping[str, Any],
        reports: Mapping[str, HealthReport],
        decision: Decision,
        at: float,
    ) -> None:
        self.failovers.labels(decision.reason).inc()
        evident = detected_at(service_ip, reports, at)
        if evident is not None:
            self.latency.observe(max(0.0, at - evident))


class _StateCollector(Collector):
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[GaugeMetricFamily]:
        controller = self.controller
        yield GaugeMetricFamily(
            "routeplane_controller_leader",
            "1 while this controller holds the leader key",
            int(controller.is_leader),
        )
        docs = controller.service_ip_docs()
        yield GaugeMetricFamily(
            "routeplane_controller_service_ips", "Service IPs the controller follows", len(docs)
        )
        now = controller.clock()
        tally: Tally[Health] = Tally()
        for sip_id, doc in docs.items():
            check = doc.get("health_check")
            if not check:
                continue
            reports = controller.reports(sip_id)
            ports = {str(doc.get("active_port_id")), *candidates(doc)}
            tally.update(port_health(reports.get(p), check, now) for p in ports)
        by_health = GaugeMetricFamily(
            "routeplane_controller_ports", "Service-IP ports by health", labels=["health"]
        )
        for health in Health:
            by_health.add_metric([health.value], tally[health])
        yield by_health


__all__ = ["ControllerMetrics", "detected_at"]
