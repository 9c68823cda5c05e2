"""Unit: the agent's BGP speaker on the stateful fake BIRD, an embedded store and a fake
clock — registry changes reach BIRD's configuration, a dead BIRD is started again, and a
refused configuration is retried with backoff while the running one stays."""

from __future__ import annotations

import pytest

from routeplane.agent.bgp import BgpSettings, BgpSpeaker
from routeplane.agent.loop import Agent
from routeplane.agent.settings import AgentSettings
from routeplane.bgp.fake import FakeBird
from routeplane.dataplane.fake import FakeKernel
from routeplane.store import Store

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def speaker(store: Store, bird: FakeBird, clock: Clock) -> BgpSpeaker:
    settings = BgpSettings(address="192.168.8.3", peers=("192.168.8.1",), check_interval=1.0)
    return BgpSpeaker(store, bird, "node1", settings, clock)


def round_(s: BgpSpeaker) -> None:
    s.poll(0.05)
    s.apply()


def register(store: Store, host: str, address: str) -> None:
    store.put(f"{ROOT}hosts/{host}", {"host": host, "bgp_address": address, "as_number": 64512})


def test_bird_starts_with_the_registered_hosts_and_the_extra_peers(store: Store) -> None:
    register(store, "node2", "192.168.8.4")
    bird, clock = FakeBird(), Clock()
    s = speaker(store, bird, clock)
    round_(s)
    assert bird.starts == 1
    assert bird.config is not None
    assert "neighbor 192.168.8.4 as 64512" in bird.config
    assert "neighbor 192.168.8.1 as 64512" in bird.config


def test_a_host_joining_or_leaving_reconfigures_and_nothing_else_does(store: Store) -> None:
    bird, clock = FakeBird(), Clock()
    s = speaker(store, bird, clock)
    round_(s)
    register(store, "node3", "192.168.8.5")
    round_(s)
    assert bird.reconfigures == 1
    assert "192.168.8.5" in (bird.config or "")
    for _ in range(5):
        clock.now += 2
        round_(s)
    assert bird.reconfigures == 1  # same text: no birdc configure
    store.delete(f"{ROOT}hosts/node3")
    round_(s)
    assert bird.reconfigures == 2
    assert "192.168.8.5" not in (bird.config or "")


def test_a_dead_bird_is_started_at_the_next_check(store: Store) -> None:
    bird, clock = FakeBird(), Clock()
    s = speaker(store, bird, clock)
    round_(s)
    bird.crash()
    round_(s)
    assert not bird.running()  # not yet: checks are throttled
    clock.now += 1.0
    round_(s)
    assert bird.running()
    assert bird.starts == 2


def test_a_refused_configuration_is_retried_with_backoff(store: Store) -> None:
    bird, clock = FakeBird(), Clock()
    bird.fail_next = 2
    s = speaker(store, bird, clock)
    round_(s)  # fails: retry in 0.5 s
    round_(s)
    assert not bird.running()
    clock.now += 0.5
    round_(s)  # fails again: retry in 1 s
    clock.now += 0.6
    round_(s)
    assert not bird.running()
    clock.now += 0.5
    round_(s)
    assert bird.running()


def test_the_agent_registers_durably_and_drives_its_speaker(store: Store) -> None:
    bird = FakeBird()
    kernel = FakeKernel()
    settings = AgentSettings(host="node1", bgp_address="192.168.8.3", apply_interval=0.0)
    s = speaker(store, bird, Clock())
    agent = Agent(store, kernel, settings, bgp=s)
    agent.step(timeout=0.01)
    agent.step(timeout=0.01)
    assert bird.running()
    host = store.get(f"{ROOT}hosts/node1")
    assert host is not None
    assert host.lease is None  # durable: peers keep it while we restart
    agent.close()
    assert store.get(f"{ROOT}agents/node1") is None  # a clean stop leaves liveness at once
    assert store.get(f"{ROOT}hosts/node1") is not None
