"""Nova's part of a boot, for ``vif_type`` ``tap``, without Nova: plug, wait, start.

What Nova's libvirt driver does for a routed port, step by step, so the compute driver
(``routeplane.nova.driver``) is a thin adapter and this can be tested without Nova:

1. the events to wait for: one ``network-vif-plugged`` per VIF that Neutron has not yet
   reported ``active`` (a VIF already up will not send one);
2. within the wait (registered *before* plugging, so an event that comes at once is
   not lost): plug each VIF — create ``tap<port[:11]>`` with the host-side MAC
   ``vif_details.mac_address`` — and create the guest *paused*;
3. when every event has come (the time waited is logged, :data:`WAITED`), start the guest. A ``failed`` event, or no event within
   ``vif_plugging_timeout``: with ``vif_plugging_is_fatal`` the guest is destroyed, its
   taps removed, and the boot fails (:class:`VifPlugFailed`); without it the guest is
   started anyway. A timeout of 0 waits for nothing (libvirt's rule too).

Unplugging on delete removes the taps. What this module must not do: import Nova.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from routeplane.model.endpoint import interface_name

LOG = logging.getLogger("routeplane.nova")
PLUGGED = "network-vif-plugged"


class VifPlugFailed(Exception):
    """The boot fails: Neutron reported a failure, or no event came in time (fatal)."""


class EventTimeout(Exception):
    """Raised by a :data:`Waiter` when not every event came within the timeout."""


@dataclass(frozen=True)
class Tap:
    """One VIF as the hypervisor plugs it."""

    port_id: str
    name: str  # tap<port[:11]>, the name the agent looks for
    guest_mac: str  # the port's MAC, the guest's side
    host_mac: str | None  # vif_details.mac_address, the tap's own

    @classmethod
    def of(cls, vif: Mapping[str, Any]) -> Tap:
        details = vif.get("details") or {}
        host_mac = details.get("mac_address") if isinstance(details, Mapping) else None
        port_id = str(vif["id"])
        name = str(vif.get("devname") or interface_name(port_id))
        return cls(port_id, name, str(vif["address"]), host_mac)


def expected_events(vifs: Sequence[Mapping[str, Any]], timeout: float) -> list[tuple[str, str]]:
    """``(name, tag)`` of the events to wait for before starting the guest."""
    if not timeout:
        return []
    return [(PLUGGED, str(vif["id"])) for vif in vifs if vif.get("active", True) is False]


class Hypervisor(Protocol):
    """Where guests live: a lab namespace VM here, libvirt in Nova."""

    def plug(self, instance: str, tap: Tap) -> None: ...

    def unplug(self, instance: str, tap: Tap) -> None: ...

    def create_paused(self, instance: str, taps: Sequence[Tap]) -> None: ...

    def start(self, instance: str) -> None: ...

    def destroy(self, instance: str) -> None: ...


# (events, timeout, on_failed_event) -> a context: the events are awaited on its exit
Waiter = Callable[
    [list[tuple[str, str]], float, Callable[[str], None]], AbstractContextManager[None]
]


@dataclass(frozen=True)
class PlugSettings:
    vif_plugging_timeout: float = 300.0
    vif_plugging_is_fatal: bool = True


# logged once the events are in: what bench/nova_boot.py reads as the time Nova waited
WAITED = "instance %s: plugged and created paused in %.3f s, then waited %.3f s for %s"


class Spawner:
    def __init__(
        self,
        hypervisor: Hypervisor,
        wait: Waiter,
        settings: PlugSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hypervisor, self.wait, self.settings = hypervisor, wait, settings
        self.clock = clock

    def spawn(self, instance: str, vifs: Sequence[Mapping[str, Any]]) -> None:
        taps = [Tap.of(vif) for vif in vifs]
        timeout = self.settings.vif_plugging_timeout
        events = expected_events(vifs, timeout)
        try:
            started = self.clock()
            with self.wait(events, timeout, self._failed):
                for tap in taps:
                    self.hypervisor.plug(instance, tap)
                self.hypervisor.create_paused(instance, taps)
                plugged = self.clock()  # the wait for the events starts here
            if events:
                waited = self.clock() - plugged
                LOG.info(WAITED, instance, plugged - started, waited, PLUGGED)
        except EventTimeout as exc:
            LOG.warning("instance %s: no %s within %ss", instance, events, timeout)
            if self.settings.vif_plugging_is_fatal:
                self.destroy(instance, vifs)
                raise VifPlugFailed(f"instance {instance}: no {events} in time") from exc
        except BaseException:
            self.destroy(instance, vifs)
            raise
        self.hypervisor.start(instance)

    def _failed(self, event_name: str) -> None:
        LOG.error("Neutron reported failure on event %s", event_name)
        if self.settings.vif_plugging_is_fatal:
            raise VifPlugFailed(f"Neutron reported failure on {event_name}")

    def destroy(self, instance: str, vifs: Sequence[Mapping[str, Any]]) -> None:
        """Stop the guest and take its taps away (idempotent)."""
        self.hypervisor.destroy(instance)
        for tap in self.taps(vifs):
            self.hypervisor.unplug(instance, tap)

    @staticmethod
    def taps(vifs: Sequence[Mapping[str, Any]]) -> Iterator[Tap]:
        return (Tap.of(vif) for vif in vifs)


__all__ = [
    "PLUGGED",
    "WAITED",
    "EventTimeout",
    "Hypervisor",
    "PlugSettings",
    "Spawner",
    "Tap",
    "VifPlugFailed",
    "Waiter",
    "expected_events",
]
