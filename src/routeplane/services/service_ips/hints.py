"""Make-before-break hints: what a port remembers about addresses moved in and out of it.

An atomic move rewrites two endpoint records in one transaction, but the two hosts act on
them independently. If the old host withdrew its route before the new host announced
one, the address would be unreachable for a moment; if both announced it equally, traffic
would split between two VMs. So the records say which way each address went:

- the port an address moved *into* lists it in ``preferred`` and ``moved_in``: its host
  installs the route with the better metric and announces it with the higher BGP local
  preference, so it wins wherever both routes are seen;
- the port it moved *out of* lists it in ``moved_out``: its host fences the VM at once
  (the address is no longer one of the port's, so anti-spoofing drops it as a source)
  and keeps announcing the address at the ordinary preference only until the preferred
  route is seen, or a short drain time has passed, and then withdraws it.

``generation`` grows with every move of an address (it is the revision of the address's
claim before the move plus one, so it keeps growing even when the address is released
and claimed again), letting a host tell an old hint from a new one.

The hints live in the port document under ``_moves`` (hidden from API answers), so every
writer of the endpoint record — a port update, a floating-IP association — carries them
along without knowing about moves. The key of the service-IP address index is here too,
because the port service must respect it. This module is pure: no store, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routeplane.model.endpoint import MovedIn, MovedOut
from routeplane.services.repo import key

MOVES_FIELD = "_moves"
MAX_MOVED_OUT = 8  # per port: enough for every drain in flight, bounded for the record


def _held(port: Mapping[str, Any]) -> list[str]:
    return [str(ip["ip_address"]) for ip in port.get("fixed_ips", [])]


def _maps(port: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    moves = port.get(MOVES_FIELD) or {}
    return dict(moves.get("in") or {}), dict(moves.get("out") or {})


def record_moved_out(
    port: dict[str, Any], address: str, generation: int, to_port: Mapping[str, Any], at: float
) -> None:
    """``port`` lost ``address`` to ``to_port``: remember where it went (bounded)."""
    moved_in, moved_out = _maps(port)
    moved_in.pop(address, None)
    moved_out[address] = {
        "generation": generation,
        "to_port_id": to_port["id"],
        "to_host": to_port.get("binding:host_id") or "",
        "moved_at": at,
    }
    newest = sorted(moved_out.items(), key=lambda kv: kv[1]["generation"])[-MAX_MOVED_OUT:]
    held = set(_held(port))
    port[MOVES_FIELD] = {
        "in": {ip: hint for ip, hint in moved_in.items() if ip in held},
        "out": dict(newest),
    }


def record_moved_in(
    port: dict[str, Any],
    address: str,
    generation: int,
    from_port: Mapping[str, Any] | None,
    at: float,
) -> None:
    """``port`` gained ``address`` by a move (``from_port`` None: placed where none held it)."""
    moved_in, moved_out = _maps(port)
    moved_out.pop(address, None)
    moved_in[address] = {
        "generation": generation,
        "from_port_id": None if from_port is None else from_port["id"],
        "from_host": "" if from_port is None else from_port.get("binding:host_id") or "",
        "moved_at": at,
    }
    held = set(_held(port)) | {address}
    port[MOVES_FIELD] = {
        "in": {ip: hint for ip, hint in moved_in.items() if ip in held},
        "out": moved_out,
    }


def endpoint_hints(
    port: Mapping[str, Any],
) -> tuple[list[str], dict[str, MovedIn], dict[str, MovedOut]]:
    """The hint fields of the port's endpoint record (``preferred``, ``moved_in``,
    ``moved_out``), consistent with what it holds now."""
    moved_in, moved_out = _maps(port)
    held = _held(port)
    return (
        [ip for ip in held if ip in moved_in],
        {ip: moved_in[ip] for ip in held if ip in moved_in},
        {ip: hint for ip, hint in moved_out.items() if ip not in held},
    )


def service_ip_index(subnet_id: str, address: str) -> str:
    """The key naming the service IP that owns an address (at most one does); port updates
    must not take such an address away behind the service IP's back."""
    return key("service_ip_addresses", subnet_id, address)


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document without its private bookkeeping (keys starting with ``_``)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


__all__ = [
    "MOVES_FIELD",
    "endpoint_hints",
    "public",
    "record_moved_in",
    "record_moved_out",
    "service_ip_index",
]
