"""Unit: the health checker on an embedded store with a stateful fake probe — which ports
it probes, when a port turns FAILED (after ``failure_threshold`` failures in a row), the
heartbeat, and that records of checks that are gone are deleted."""

from __future__ import annotations

import time
from typing import Any

import pytest

from routeplane.agent.health import HealthChecker, checks, next_due
from routeplane.dataplane.health import Check
from routeplane.model.endpoint import EndpointRecord, encode
from routeplane.model.jsontypes import JSONObject
from routeplane.store import Store

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
SIP = "10.28.0.23"


class FakeProbe:
    """VMs that answer or not, by address; it remembers every probe."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.probed: list[str] = []

    def __call__(self, check: Check, timeout: float) -> bool:
        self.probed.append(check.address)
        return check.address not in self.down


def endpoint(port_id: str, *addresses: str) -> EndpointRecord:
    return {"port_id": port_id, "fixed_ips": list(addresses)}


def service_ip(active: str, *standbys: str, threshold: int = 3) -> dict[str, Any]:
    return {
        "id": "sip1", "ip_address": SIP, "active_port_id": active, "primary_port_id": active,
        "standby_port_ids": list(standbys),
        "health_check": {"type": "tcp", "port": 22, "interval": 0.05,
                         "failure_threshold": threshold},
    }  # fmt: skip


def record(store: Store, port: str) -> Any:
    kv = store.get(f"{ROOT}health/node1/sip1/{port}")
    return None if kv is None else kv.value


def run_for(checker: HealthChecker, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        checker.step(wait=0.005)


def test_only_ports_on_this_host_are_checked_at_their_own_address() -> None:
    here = {"p1": endpoint("p1", SIP, "10.28.0.13", "fd5f::d"), "p3": endpoint("p3", "fd5f::e")}
    wanted = checks(here, {"sip1": service_ip("p1", "p2", "p3")})
    assert {k: c.address for k, c in wanted.items()} == {
        ("sip1", "p1"): "10.28.0.13", ("sip1", "p3"): "fd5f::e",
    }  # fmt: skip
    assert checks(here, {"sip1": {**service_ip("p1"), "health_check": None}}) == {}


def test_a_port_fails_after_threshold_failures_and_recovers(store: Store) -> None:
    store.put(f"{ROOT}endpoints/node1/p1", encode(endpoint("p1", "10.28.0.13", SIP)))
    store.put(f"{ROOT}service_ips/sip1", service_ip("p1"))
    probe = FakeProbe()
    checker = HealthChecker(store, "node1", probe, heartbeat=0.2)
    run_for(checker, 0.2)
    assert record(store, "p1")["healthy"] is True
    probe.down.add("10.28.0.13")
    probed = len(probe.probed)
    run_for(checker, 0.3)
    got = record(store, "p1")
    assert got["healthy"] is False
    assert got["consecutive_failures"] >= 3
    assert len(probe.probed) - probed >= 3  # probed every interval, not once
    probe.down.clear()
    run_for(checker, 0.15)
    assert record(store, "p1")["healthy"] is True
    assert record(store, "p1")["consecutive_failures"] == 0
    checker.close()


def test_the_heartbeat_rewrites_an_unchanged_record(store: Store) -> None:
    store.put(f"{ROOT}endpoints/node1/p1", encode(endpoint("p1", "10.28.0.13")))
    store.put(f"{ROOT}service_ips/sip1", service_ip("p1"))
    checker = HealthChecker(store, "node1", FakeProbe(), heartbeat=0.1)
    run_for(checker, 0.1)
    first = record(store, "p1")["checked_at"]
    run_for(checker, 0.3)
    assert record(store, "p1")["checked_at"] > first
    checker.close()


def test_records_of_checks_that_are_gone_are_deleted(store: Store) -> None:
    store.put(f"{ROOT}health/node1/old/p9", {"healthy": True})  # left by an earlier run
    store.put(f"{ROOT}endpoints/node1/p1", encode(endpoint("p1", "10.28.0.13")))
    store.put(f"{ROOT}service_ips/sip1", service_ip("p1"))
    checker = HealthChecker(store, "node1", FakeProbe())
    run_for(checker, 0.1)
    assert store.get(f"{ROOT}health/node1/old/p9") is None
    assert record(store, "p1") is not None
    store.delete(f"{ROOT}endpoints/node1/p1")  # the port left this host
    run_for(checker, 0.1)
    assert record(store, "p1") is None
    checker.close()


def test_probes_keep_their_cadence_and_restart_it_after_a_stall() -> None:
    assert next_due(0.0, 0.1, 5.0) == pytest.approx(5.1)  # the first probe sets it
    assert next_due(5.1, 0.1, 5.117) == pytest.approx(5.2)  # started late: still on time
    assert next_due(5.2, 0.1, 5.35) == pytest.approx(5.45)  # a whole interval late: restart


def test_the_failure_is_written_when_the_thresholdth_probe_ends(store: Store) -> None:
    """Not after the checker's own wait: a probe ending wakes it, and it sleeps only until
    the next probe is due, so a dead port is reported about (threshold - 1) intervals
    after the first failed probe even when the checker is told it may wait a second."""
    store.put(f"{ROOT}endpoints/node1/p1", encode(endpoint("p1", "10.28.0.13")))
    store.put(f"{ROOT}service_ips/sip1", service_ip("p1"))  # every 0.05 s, 3 failures
    probe = FakeProbe()
    probe.down.add("10.28.0.13")
    checker = HealthChecker(store, "node1", probe, heartbeat=5.0)
    started = time.monotonic()
    while (got := record(store, "p1")) is None or got["healthy"]:
        checker.step(wait=1.0)
        assert time.monotonic() - started < 1.0, "the checker slept through its probes"
    took = time.monotonic() - started
    assert got["consecutive_failures"] == 3
    assert 0.09 <= took < 0.3, took  # failures at 0, 0.05, 0.10 s
    checker.close()


class SilentFeed:
    """An endpoint feed whose first snapshot has not arrived yet (the agent's follower,
    just started, still reading the store): every poll answers nothing."""

    def __init__(self) -> None:
        self.polls = 0

    def poll(self, timeout: float) -> list[Any]:
        self.polls += 1
        return []

    def close(self) -> None:
        pass


def test_a_restarted_checker_keeps_the_records_until_it_has_read_its_endpoints(
    store: Store,
) -> None:
    """An agent restart must not disturb a service IP: the records the previous process
    wrote stay until the new one knows its endpoints (a sweep on an empty view deleted
    every one of them, and the controller saw the host's reports vanish)."""
    store.put(f"{ROOT}endpoints/node1/p1", encode(endpoint("p1", "10.28.0.13", SIP)))
    store.put(f"{ROOT}service_ips/sip1", service_ip("p1"))
    earlier: JSONObject = {"healthy": True, "checked_at": time.time(), "consecutive_failures": 0}
    store.put(f"{ROOT}health/node1/sip1/p1", earlier)
    feed = SilentFeed()
    checker = HealthChecker(store, "node1", FakeProbe(), heartbeat=10, endpoints=feed)
    try:
        run_for(checker, 0.1)
        assert feed.polls > 0
        assert record(store, "p1") == earlier
    finally:
        checker.close()
