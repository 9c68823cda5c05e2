"""Unit: the failover decision table (``controller.failover``), pure.

Given a service IP and its ports' health reports at a moment, whether the address moves
and where: never to a port nobody vouches for, never away from a healthy active port,
back to the primary only with ``failback``, and away from an active port whose checker
went silent.
"""

from __future__ import annotations

from typing import Any

import pytest

from routeplane.controller.failover import (
    Decision,
    Health,
    HealthReport,
    candidates,
    decide,
    port_health,
    stale_after,
)

pytestmark = pytest.mark.unit

NOW = 1_000_000.0
CHECK = {"type": "tcp", "port": 80, "interval": 0.1, "failure_threshold": 3}
UP = HealthReport(healthy=True, checked_at=NOW - 0.05, consecutive_failures=0)
DOWN = HealthReport(healthy=False, checked_at=NOW - 0.05, consecutive_failures=3)
OLD = HealthReport(healthy=True, checked_at=NOW - 60.0, consecutive_failures=0)


def service_ip(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "active_port_id": "a",
        "primary_port_id": "a",
        "standby_port_ids": ["b", "c"],
        "health_check": CHECK,
        "failback": False,
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        # the active port is healthy: stay, whatever the standbys say
        ({"a": UP, "b": UP, "c": UP}, Decision(None, "active healthy")),
        ({"a": UP, "b": DOWN}, Decision(None, "active healthy")),
        # failed: the first healthy standby, in order
        ({"a": DOWN, "b": UP, "c": UP}, Decision("b", "health")),
        ({"a": DOWN, "b": DOWN, "c": UP}, Decision("c", "health")),
        # never to an unreported, failed or silent standby
        ({"a": DOWN, "c": UP}, Decision("c", "health")),
        ({"a": DOWN, "b": OLD, "c": UP}, Decision("c", "health")),
        ({"a": DOWN}, Decision(None, "active failed, no healthy standby")),
        ({"a": DOWN, "b": DOWN, "c": OLD}, Decision(None, "active failed, no healthy standby")),
        # no evidence of failure: stay
        ({"b": UP, "c": UP}, Decision(None, "active not reported")),
        # the active port's checker went silent: its host or agent is gone
        ({"a": OLD, "b": UP}, Decision("b", "health")),
        ({"a": OLD}, Decision(None, "active stale, no healthy standby")),
    ],
)
def test_decision_table(reports: dict[str, HealthReport], expected: Decision) -> None:
    assert decide(service_ip(), reports, NOW) == expected


def test_failures_reaching_the_threshold_count_as_failed_even_if_healthy_is_set() -> None:
    flapping = HealthReport(healthy=True, checked_at=NOW, consecutive_failures=3)
    assert port_health(flapping, CHECK, NOW) is Health.FAILED
    assert decide(service_ip(), {"a": flapping, "b": UP}, NOW) == Decision("b", "health")
    below = HealthReport(healthy=True, checked_at=NOW, consecutive_failures=2)
    assert port_health(below, CHECK, NOW) is Health.HEALTHY


def test_no_health_check_means_manual_moves_only() -> None:
    doc = service_ip(health_check=None)
    assert decide(doc, {"a": DOWN, "b": UP}, NOW) == Decision(None, "no health check")


def test_a_recovered_primary_takes_the_address_back_only_with_failback() -> None:
    after_failover = service_ip(active_port_id="b")
    reports = {"a": UP, "b": UP}
    assert decide(after_failover, reports, NOW) == Decision(None, "active healthy")
    with_failback = service_ip(active_port_id="b", failback=True)
    assert decide(with_failback, reports, NOW) == Decision("a", "failback")
    # a primary that is not healthy is not returned to
    assert decide(with_failback, {"a": DOWN, "b": UP}, NOW) == Decision(None, "active healthy")
    assert decide(with_failback, {"b": UP}, NOW) == Decision(None, "active healthy")


def test_after_a_failover_the_old_active_port_is_a_candidate_again() -> None:
    """Primary a failed over to b; when b fails too and a is healthy again, a is first."""
    doc = service_ip(active_port_id="b")
    assert candidates(doc) == ["a", "c"]
    assert decide(doc, {"a": UP, "b": DOWN, "c": UP}, NOW) == Decision("a", "health")


def test_candidates_skip_the_active_port_and_repeats() -> None:
    doc = service_ip(active_port_id="b", primary_port_id="c", standby_port_ids=["b", "c", "d"])
    assert candidates(doc) == ["c", "d"]


def test_staleness_grows_with_the_detection_budget() -> None:
    assert stale_after(CHECK) == 3.0  # the floor: a one-second heartbeat, missed twice
    slow = {**CHECK, "interval": 10.0, "failure_threshold": 5}
    assert stale_after(slow) == 150.0
    report = HealthReport(healthy=True, checked_at=NOW - 100.0, consecutive_failures=0)
    assert port_health(report, slow, NOW) is Health.HEALTHY
    assert port_health(report, CHECK, NOW) is Health.STALE


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        {"healthy": "yes", "checked_at": NOW},
        {"healthy": True},
        {"healthy": True, "checked_at": True},
        {"healthy": True, "checked_at": NOW, "consecutive_failures": "2"},
    ],
)
def test_malformed_reports_are_no_reports(value: Any) -> None:
    assert HealthReport.parse(value) is None


def test_reports_parse_from_their_stored_form() -> None:
    stored = {"healthy": False, "checked_at": 12, "consecutive_failures": 4}
    assert HealthReport.parse(stored) == HealthReport(False, 12.0, 4)
