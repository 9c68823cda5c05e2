"""Which Nova external events a port's change calls for: a pure function of two states.

Nova learns about its instances' ports from Neutron's external events
(``POST /v2.1/os-server-external-events``, sent by ``neutron/notifiers/nova.py``). This
module decides which to send, as a comparison of what Nova was last told about a port
(its :class:`Told` record, kept in the store by the notifier) with what the store says
now (its :class:`PortView`, built from the port document, the agent's status key and
the floating-IP index). Only ports Nova owns count: ``device_owner`` starting with
``compute:`` and a UUID ``device_id``.

The decision table (``told`` → ``now``):

===========================================  =============================================
change                                       events
===========================================  =============================================
nothing told, now a compute port             as below, from state ``down`` (its addresses
                                             are Nova's own: no ``network-changed``)
compute port gone, or its device_id changed  ``network-vif-deleted`` for the old instance
down/failed → up (the agent programmed it)   ``network-vif-plugged``, ``completed``
anything → failed (binding failed)           ``network-vif-plugged``, ``failed``
up → down (status gone, unbound, admin down) ``network-vif-unplugged``, ``completed``
fixed IPs or floating IPs differ             ``network-changed`` (a service IP's move or
                                             failover changes the fixed IPs of both ports)
===========================================  =============================================

Each event carries ``tag`` = the port id, as Neutron's do, so Nova refreshes only that
port. A ``network-changed`` is sent before a ``network-vif-plugged`` of the same change,
so Nova's cache holds the new addresses when the guest is started.
What this module must not do: read the store, look at the clock, or send anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from routeplane.model.jsontypes import JSONObject

COMPUTE_OWNER = "compute:"
UP, DOWN, FAILED = "up", "down", "failed"
PLUGGED, UNPLUGGED = "network-vif-plugged", "network-vif-unplugged"
CHANGED, DELETED = "network-changed", "network-vif-deleted"


def is_instance_id(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PortView:
    """What matters to Nova about one port, as the store says now."""

    device_id: str
    state: str  # UP, DOWN or FAILED
    fixed_ips: tuple[str, ...]
    floating_ips: tuple[str, ...]


@dataclass(frozen=True)
class Told:
    """What Nova was last told about one port (stored as JSON by the notifier)."""

    device_id: str
    state: str
    fixed_ips: tuple[str, ...]
    floating_ips: tuple[str, ...]

    def to_json(self) -> JSONObject:
        return {
            "device_id": self.device_id,
            "state": self.state,
            "fixed_ips": list(self.fixed_ips),
            "floating_ips": list(self.floating_ips),
        }

    @classmethod
    def parse(cls, value: object) -> Told | None:
        if not isinstance(value, dict) or not is_instance_id(value.get("device_id")):
            return None
        state = value.get("state")
        return cls(
            str(value["device_id"]),
            state if state in (UP, DOWN, FAILED) else DOWN,
            _strings(value.get("fixed_ips")),
            _strings(value.get("floating_ips")),
        )


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(sorted(str(item) for item in value))


def port_view(
    port: Mapping[str, Any] | None, status: object, floating_ips: tuple[str, ...]
) -> PortView | None:
    """The view of a port document, or None when Nova does not own it (or it is gone).

    ``status`` is the value of ``status/<binding host>/<port>`` (None when absent): the
    agent on the bound host has programmed the port. The port is UP as the api shows it
    ACTIVE (bound, admin up, programmed), FAILED when its binding failed.
    """
    if port is None:
        return None
    owner, device_id = port.get("device_owner"), port.get("device_id")
    if not isinstance(owner, str) or not owner.startswith(COMPUTE_OWNER):
        return None
    if not is_instance_id(device_id):
        return None
    if port.get("binding:vif_type") == "binding_failed":
        state = FAILED
    elif port.get("binding:host_id") and port.get("admin_state_up", True) and status is not None:
        state = UP
    else:
        state = DOWN
    fixed = port.get("fixed_ips")
    addresses = [ip.get("ip_address") for ip in fixed if isinstance(ip, dict)] if fixed else []
    return PortView(
        str(device_id),
        state,
        tuple(sorted(str(a) for a in addresses if a)),
        tuple(sorted(floating_ips)),
    )


def event(name: str, server: str, port_id: str, status: str = "completed") -> JSONObject:
    """One event in Nova's wire form (``status`` only where Nova reads it)."""
    body: JSONObject = {"name": name, "server_uuid": server, "tag": port_id}
    if name in (PLUGGED, UNPLUGGED):
        body["status"] = status
    return body


def derive(
    port_id: str, told: Told | None, now: PortView | None
) -> tuple[list[JSONObject], Told | None]:
    """The events to send for ``port_id`` and what Nova will then have been told."""
    events: list[JSONObject] = []
    if told is not None and (now is None or now.device_id != told.device_id):
        events.append(event(DELETED, told.device_id, port_id))
        told = None
    if now is None:
        return events, None
    before = told if told is not None else Told(now.device_id, DOWN, (), ())
    # a port seen for the first time has its addresses in Nova's cache already (Nova
    # read them when it created or attached the port): nothing to refresh
    addresses = (now.fixed_ips, now.floating_ips)
    if told is not None and addresses != (told.fixed_ips, told.floating_ips):
        events.append(event(CHANGED, now.device_id, port_id))
    if now.state != before.state:
        if now.state == UP:
            events.append(event(PLUGGED, now.device_id, port_id))
        elif now.state == FAILED:
            events.append(event(PLUGGED, now.device_id, port_id, "failed"))
        elif before.state == UP:
            events.append(event(UNPLUGGED, now.device_id, port_id))
    after = replace(before, state=now.state, fixed_ips=now.fixed_ips, floating_ips=now.floating_ips)
    return events, after


__all__ = [
    "CHANGED",
    "DELETED",
    "DOWN",
    "FAILED",
    "PLUGGED",
    "UNPLUGGED",
    "UP",
    "PortView",
    "Told",
    "derive",
    "event",
    "is_instance_id",
    "port_view",
]
