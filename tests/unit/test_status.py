"""Unit: ``routeplane status`` against an agent's real state report, served by the real
listener on loopback (the agent's loop on the fake kernel): what it prints, its JSON and
its exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from routeplane.agent.loop import Agent
from routeplane.agent.metrics import AgentMetrics, state
from routeplane.bgp import protocols
from routeplane.cli import config
from routeplane.cli.main import main
from routeplane.cli.observe import Observer
from routeplane.dataplane.fake import FakeKernel
from routeplane.model.errors import BgpError
from routeplane.store import Store
from tests.unit.test_agent_loop import TAP_A, endpoint, make_agent, put, settle

pytestmark = pytest.mark.unit

UP = """Name       Proto      Table      State  Since         Info
host_node2 BGP        ---        up     00:35:17.322  Established
peer_192_168_8_1 BGP  ---        up     00:35:17.217  Established
"""


class Bird:
    """BIRD as the agent would ask it: running with both sessions up, or stopped."""

    def __init__(self) -> None:
        self.running = True

    def __call__(self) -> list[protocols.Protocol]:
        if not self.running:
            raise BgpError("birdc: Unable to connect to server control socket")
        return protocols.parse(UP)


@pytest.fixture
def agent_listener(store: Store) -> Iterator[tuple[Observer, Bird, Store, Agent]]:
    kernel = FakeKernel()
    kernel.add_link(TAP_A, up=True)
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    agent = make_agent(store, kernel)
    metrics = AgentMetrics(CollectorRegistry(), "node1")
    bird = Bird()
    metrics.watch(agent, bird)
    settle(agent)

    def status() -> dict[str, Any]:
        found = state(metrics, agent, bird)
        found["metadata"] = {"enabled": True, "running": True, "address": "169.254.169.254:80"}
        return found

    observer = Observer(
        ("127.0.0.1", 0), metrics.registry, lambda: state(metrics, agent, bird), status
    )
    yield observer, bird, store, agent
    observer.close()
    agent.close()


def where(observer: Observer) -> str:
    return f"127.0.0.1:{observer.address[1]}"


def test_a_healthy_host(
    agent_listener: tuple[Observer, Bird, Store, Agent], capsys: pytest.CaptureFixture[str]
) -> None:
    observer, _, _, _ = agent_listener
    assert main(["status", "--agent", where(observer)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("routeplane agent on node1: ready (in sync at store revision ")
    assert "policy applied" in out
    assert "BGP: 2 peer(s)" in out
    assert "host_node2" in out
    assert out.count("Established") == 2
    assert "endpoints: 1 desired, 1 programmed, 0 failed" in out
    assert "metadata service: running on 169.254.169.254:80" in out


def test_bird_stopped_and_a_failing_endpoint_are_named(
    agent_listener: tuple[Observer, Bird, Store, Agent], capsys: pytest.CaptureFixture[str]
) -> None:
    observer, bird, store, agent = agent_listener
    bird.running = False
    put(store, endpoint("b", "tapmissing-00", "10.28.0.14"))  # its tap is not there
    settle(agent)
    assert main(["status", "--agent", where(observer)]) == 1
    out = capsys.readouterr().out
    assert "BGP: BIRD is not running (birdc: Unable to connect to server control socket)" in out
    assert "endpoints: 2 desired, 1 programmed, 1 failed\n  failing: b\n" in out
    assert main(["status", "--agent", where(observer), "--json"]) == 1
    shown = json.loads(capsys.readouterr().out)
    assert shown["bgp"]["running"] is False
    assert shown["failing"] == ["b"]
    assert shown["endpoints"] == {"desired": 2, "failed": 1, "programmed": 1}


def test_an_agent_that_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path)
    assert main(["status"]) == 1
    assert "where does the agent listen?" in capsys.readouterr().err
    (tmp_path / "agent.toml").write_text('host = "n1"\nmetrics_listen = "127.0.0.1:1"\n')
    assert main(["status"]) == 1
    assert "the agent does not answer on 127.0.0.1:1" in capsys.readouterr().err
