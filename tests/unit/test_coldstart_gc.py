"""Unit: the agent process's collector during a cold start (``cli.coldstart_gc``): off
until the dataplane is programmed, then what was built frozen and the collector on again;
on by the time limit even if the agent never gets there."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from routeplane.cli.coldstart_gc import ColdStartGc

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_the_collector_is_off_until_resumed_then_what_was_built_is_frozen_and_it_is_on() -> None:
    collector = ColdStartGc(limit=60)
    collector.pause()
    assert not gc.isenabled()
    built = [{"port": i} for i in range(1000)]  # what a cold start builds
    frozen = gc.get_freeze_count()
    collector.resume()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(built)
    collector.resume()  # once only: a second call changes nothing
    assert gc.isenabled()


def test_the_collector_comes_back_on_by_the_limit_when_the_agent_never_syncs() -> None:
    collector = ColdStartGc(limit=0.05)
    collector.pause()
    assert not gc.isenabled()
    deadline = time.monotonic() + 5
    while not gc.isenabled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gc.isenabled()


def test_a_collector_turned_off_by_someone_else_is_left_off() -> None:
    gc.disable()
    collector = ColdStartGc(limit=0.05)
    collector.pause()
    collector.resume()
    assert not gc.isenabled()
