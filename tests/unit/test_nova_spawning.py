"""Unit: the compute driver's core plugs the taps, keeps the guest paused until Neutron's
``network-vif-plugged``, and honours ``vif_plugging_timeout``/``_is_fatal`` as Nova's
libvirt driver does (a stateful fake hypervisor and a fake event wait)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from routeplane.nova.spawning import (
    EventTimeout,
    PlugSettings,
    Spawner,
    Tap,
    VifPlugFailed,
    expected_events,
)

pytestmark = pytest.mark.unit

PORT = "3f0e1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
SERVER = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


def vif(active: bool = False, port: str = PORT) -> dict[str, Any]:
    return {
        "id": port,
        "address": "fa:16:3e:11:22:33",
        "type": "tap",
        "active": active,
        "details": {"mac_address": "fe:16:3e:11:22:33", "port_filter": True},
    }


class FakeHypervisor:
    def __init__(self) -> None:
        self.taps: dict[str, Tap] = {}
        self.guests: dict[str, str] = {}  # instance -> "paused" | "running"
        self.log: list[str] = []

    def plug(self, instance: str, tap: Tap) -> None:
        self.taps[tap.name] = tap
        self.log.append(f"plug {tap.name}")

    def unplug(self, instance: str, tap: Tap) -> None:
        self.taps.pop(tap.name, None)

    def create_paused(self, instance: str, taps: Sequence[Tap]) -> None:
        self.guests[instance] = "paused"
        self.log.append("paused")

    def start(self, instance: str) -> None:
        self.guests[instance] = "running"
        self.log.append("start")

    def destroy(self, instance: str) -> None:
        self.guests.pop(instance, None)


class Neutron:
    """The event wait: what arrives while the guest is being created ("plugged",
    "failed" or nothing → the wait times out)."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.waited: list[tuple[list[tuple[str, str]], float]] = []

    @contextmanager
    def wait(
        self, events: list[tuple[str, str]], timeout: float, failed: Callable[[str], None]
    ) -> Iterator[None]:
        self.waited.append((events, timeout))
        yield
        if not events:
            return
        if self.answer == "failed":
            failed(events[0][0])
        elif self.answer is None:
            raise EventTimeout("no event")


def spawn(
    answer: str | None, fatal: bool = True, vifs: Any = None
) -> tuple[FakeHypervisor, Neutron]:
    hypervisor, neutron = FakeHypervisor(), Neutron(answer)
    spawner = Spawner(hypervisor, neutron.wait, PlugSettings(300, fatal))
    spawner.spawn(SERVER, vifs if vifs is not None else [vif()])
    return hypervisor, neutron


def test_the_tap_is_named_and_addressed_as_the_agent_expects() -> None:
    tap = Tap.of(vif())
    assert tap.name == "tap" + PORT[:11]
    assert (tap.guest_mac, tap.host_mac) == ("fa:16:3e:11:22:33", "fe:16:3e:11:22:33")


def test_only_vifs_not_yet_active_are_waited_for() -> None:
    other = "0" * 8 + PORT[8:]
    assert expected_events([vif(), vif(True, other)], 300) == [("network-vif-plugged", PORT)]
    assert expected_events([vif()], 0) == []


def test_the_guest_starts_only_after_the_event() -> None:
    hypervisor, neutron = spawn("plugged")
    assert hypervisor.log == [f"plug tap{PORT[:11]}", "paused", "start"]
    assert neutron.waited == [([("network-vif-plugged", PORT)], 300)]
    assert hypervisor.guests == {SERVER: "running"}


def test_the_time_waited_for_the_event_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ticks = iter([10.0, 10.25, 11.75])  # start, plugged and paused, the event in
    hypervisor, neutron = FakeHypervisor(), Neutron("plugged")
    spawner = Spawner(hypervisor, neutron.wait, PlugSettings(), clock=lambda: next(ticks))
    with caplog.at_level(logging.INFO, logger="routeplane.nova"):
        spawner.spawn(SERVER, [vif()])
    assert caplog.messages == [
        f"instance {SERVER}: plugged and created paused in 0.250 s,"
        " then waited 1.500 s for network-vif-plugged"
    ]


def test_no_event_in_time_fails_the_boot_and_removes_the_tap() -> None:
    hypervisor, neutron = FakeHypervisor(), Neutron(None)
    spawner = Spawner(hypervisor, neutron.wait, PlugSettings(300, True))
    with pytest.raises(VifPlugFailed):
        spawner.spawn(SERVER, [vif()])
    assert (hypervisor.taps, hypervisor.guests) == ({}, {})


def test_no_event_in_time_is_not_fatal_when_so_configured() -> None:
    hypervisor, _ = spawn(None, fatal=False)
    assert hypervisor.guests == {SERVER: "running"}


def test_a_failed_event_fails_the_boot_and_cleans_up() -> None:
    hypervisor, neutron = FakeHypervisor(), Neutron("failed")
    spawner = Spawner(hypervisor, neutron.wait, PlugSettings(300, True))
    with pytest.raises(VifPlugFailed):
        spawner.spawn(SERVER, [vif()])
    assert hypervisor.taps == {}
    assert hypervisor.guests == {}


def test_delete_unplugs() -> None:
    hypervisor, _ = spawn("plugged")
    Spawner(hypervisor, Neutron(None).wait, PlugSettings()).destroy(SERVER, [vif()])
    assert hypervisor.taps == {}
    assert hypervisor.guests == {}
