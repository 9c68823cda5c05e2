"""The security-group member index: per group, its bound ports' addresses.

A rule with ``remote_group_id`` admits the addresses of every bound port in that group,
on every host. Before this index each agent followed every host's endpoint records to
learn them, so one port's change woke every host and a cold start read the whole cloud.
The api now writes, in the same transaction as a bound port's endpoint record, one entry
per security group of the port at ``keys.member_key(group, port)``::

    {"addresses": ["10.0.0.5", "10.0.1.0/28", ...]}   # fixed IPs, then allowed pairs

and an agent follows only the groups its own endpoints' rules name
(``agent/members.py``). Only what the policy uses is in an entry (no host, no floating
IP), so a port that moves between hosts, or gains a floating IP, leaves the index alone
and wakes no host whose policy merely names its group.

This module is the entry's shape and its derivation from the port's fields; pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict, cast

from routeplane.model.endpoint import EndpointRecord
from routeplane.model.jsontypes import JSONObject
from routeplane.model.keys import member_key


class MemberEntry(TypedDict):
    addresses: list[str]  # what the port sends from and is reached on


def entries(
    port_id: str, groups: Iterable[object], addresses: Iterable[object]
) -> dict[str, JSONObject]:
    """The index entries of a bound port: key -> value, one per security group."""
    entry = MemberEntry(addresses=[str(a) for a in addresses])
    return {member_key(str(g), port_id): cast(JSONObject, entry) for g in dict.fromkeys(groups)}


def record_entries(port_id: str, record: EndpointRecord) -> dict[str, JSONObject]:
    """The index entries the endpoint record of ``port_id`` implies (the upgrade path
    derives the index of ports written before it existed this way)."""
    addresses = [*record.get("fixed_ips", []), *record.get("allowed_addresses", [])]
    return entries(port_id, record.get("security_groups", []), addresses)


def addresses_of(value: object) -> list[str] | None:
    """The addresses in a stored entry; None for a value that is no entry."""
    if not isinstance(value, dict):
        return None
    found = value.get("addresses")
    return [str(a) for a in found] if isinstance(found, list) else None


__all__ = ["MemberEntry", "addresses_of", "entries", "record_entries"]
