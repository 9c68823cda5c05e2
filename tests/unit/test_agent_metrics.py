"""Unit: the agent's metrics, readiness and state report (``agent.metrics``) on the
stateful fake kernel and an embedded store — what Prometheus, ``/readyz`` and
``routeplane status`` would show after the loop ran."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry

from routeplane.agent.metrics import AgentMetrics, state
from routeplane.agent.tally import OUTCOMES, Tally
from routeplane.bgp import protocols
from routeplane.dataplane.fake import FakeKernel
from routeplane.model.errors import BgpError
from routeplane.store import Store
from tests.unit.test_agent_loop import TAP_A, endpoint, make_agent, put, settle

pytestmark = pytest.mark.unit

SHOWN = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     00:35:16.306
kernel4    Kernel     master4    up     00:35:16.306
host_node2 BGP        ---        up     00:35:17.322  Established
peer_192_168_8_1 BGP        ---        start  2026-12-06    Active        Socket: Connection refused
"""


def test_show_protocols_is_read_as_bird_prints_it() -> None:
    found = protocols.bgp_sessions(protocols.parse(SHOWN))
    assert [(p.name, p.state, p.established) for p in found] == [
        ("host_node2", "up", True),
        ("peer_192_168_8_1", "start", False),
    ]
    assert found[1].info == "Active Socket: Connection refused"
    now = dt.datetime(2026, 12, 8, 0, 40, 17, 322000)
    assert protocols.uptime("00:35:17.322", now) == 300.0
    assert protocols.uptime("23:59:00", now) == pytest.approx(41 * 60 + 17.322)  # yesterday
    assert protocols.uptime("2026-12-06", now) is None


def test_the_state_of_a_host_after_its_loop_ran(store: Store) -> None:
    kernel = FakeKernel()
    kernel.add_link(TAP_A, up=True)
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    put(store, endpoint("b", "tapmissing-00", "10.28.0.14"))  # its tap is not there
    written = store.revision()
    agent = make_agent(store, kernel)
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry, "node1")
    metrics.watch(agent, lambda: protocols.parse(SHOWN))

    before = state(metrics, agent, None, names=False)
    assert before["ready"] is False
    assert registry.get_sample_value("routeplane_agent_ready") == 0
    settle(agent)

    now = state(metrics, agent, lambda: protocols.parse(SHOWN))
    assert now["ready"] is True
    assert now["endpoints"] == {"desired": 2, "programmed": 1, "failed": 1}
    assert now["failing"] == ["b"]
    assert now["store_revision"] >= written  # read up to the last record at least
    assert [(p["name"], p["established"]) for p in now["bgp"]["peers"]] == [
        ("host_node2", True),
        ("peer_192_168_8_1", False),
    ]

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("routeplane_agent_ready") == 1
    assert sample("routeplane_agent_endpoints", state="desired") == 2
    assert sample("routeplane_agent_endpoints", state="programmed") == 1
    assert sample("routeplane_agent_endpoints", state="failed") == 1
    assert sample("routeplane_agent_bgp_session_established", peer="host_node2") == 1
    assert sample("routeplane_agent_bgp_session_established", peer="peer_192_168_8_1") == 0
    assert sample("routeplane_agent_bird_up") == 1
    rounds = sample("routeplane_agent_apply_seconds_count") or 0
    assert rounds >= 1
    for phase in ("plan", "policy", "kernel", "status"):
        assert sample("routeplane_agent_apply_phase_seconds_count", phase=phase) == rounds
    assert (sample("routeplane_agent_full_resyncs_total") or 0) >= 1


def test_kernel_failures_are_counted_and_bird_down_is_shown(store: Store) -> None:
    kernel = FakeKernel()
    kernel.add_link(TAP_A, up=True)
    agent = make_agent(store, kernel)
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry, "node1")

    def bird_down() -> list[protocols.Protocol]:
        raise BgpError("birdc: Unable to connect to server control socket")

    metrics.watch(agent, bird_down)
    settle(agent)
    kernel.broken.add("10.28.0.13")
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    settle(agent)
    assert (registry.get_sample_value("routeplane_agent_kernel_operation_failures_total") or 0) >= 1
    assert registry.get_sample_value("routeplane_agent_bird_up") == 0
    shown = state(metrics, agent, bird_down)
    assert shown["bgp"] == {
        "enabled": True,
        "running": False,
        "error": "birdc: Unable to connect to server control socket",
        "peers": [],
    }
    assert shown["endpoints"]["programmed"] == 0


def test_requests_are_shown_by_service_and_outcome(store: Store) -> None:
    agent = make_agent(store, FakeKernel())
    registry = CollectorRegistry()
    dhcp, metadata = Tally(), Tally()
    running: list[tuple[str, Tally]] = []  # the services start once the agent is in sync
    AgentMetrics(registry, "node1").watch(agent, None, lambda: list(running))

    def shown(service: str, outcome: str) -> float | None:
        labels = {"service": service, "outcome": outcome}
        return registry.get_sample_value("routeplane_agent_requests_total", labels)

    assert shown("dhcp", "answered") is None
    running += [("dhcp", dhcp), ("metadata", metadata)]
    dhcp.add("answered")
    dhcp.add("answered")
    dhcp.add("refused")
    for code in (200, 404, 400, 503):
        metadata.http(code)
    assert [shown("dhcp", outcome) for outcome in OUTCOMES] == [2, 1, 0]
    assert [shown("metadata", outcome) for outcome in OUTCOMES] == [1, 2, 1]
    with pytest.raises(KeyError):
        dhcp.add("dropped")  # the outcomes are fixed: a scrape never sees the dict grow
