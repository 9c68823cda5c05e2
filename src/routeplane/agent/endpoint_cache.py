"""The reconcile loop's copy of this host's endpoint records, indexed by tap.

The loop follows the store with snapshot-then-watch (``store.watcher.Follower``; the
follower may read every host's records, for the policy). What it takes in lands here:
:meth:`EndpointCache.take` keeps this host's records and says which port ids changed,
and only those are looked at again in the next apply round. A snapshot (the first, or
after the follower lost its watch) replaces the copy whole and marks every endpoint
that was or is now present: one deleted meanwhile gets its routes and status removed.

Several endpoints may share a tap (a record may name any interface; the benchmark puts
several on one), and a tap's kernel state (its routes, proxy neighbours, its policy) is
decided by all of them at once: the index ``on_tap`` answers "who else is on this tap",
and ``taps`` keeps the tap of a deleted endpoint, so that what it left there is found.

The records are the store's values decoded (``model.endpoint.decode``: a value that is
no record is skipped), read-only here as everywhere in the agent (STYLE G10). What this module must not do: any I/O, or change a record.
"""

from __future__ import annotations

from collections.abc import Iterable

from routeplane.model.endpoint import EndpointRecord, decode_or_none
from routeplane.store import Event, EventType
from routeplane.store.watcher import Snapshot


class EndpointCache:
    """This host's endpoint records (``prefix``: their keys' common start) by port id."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.endpoints: dict[str, EndpointRecord] = {}
        self.taps: dict[str, str] = {}  # port id -> tap, also after deletion
        self.on_tap: dict[str, set[str]] = {}  # tap -> port ids using it

    def take(self, news: Snapshot | list[Event]) -> set[str]:
        """Take in this host's records (the follower may read every host's); the port
        ids whose records changed (after a snapshot: every one before or after it)."""
        prefix, cut = self.prefix, len(self.prefix)
        if isinstance(news, Snapshot):
            fresh = {k[cut:]: kv.value for k, kv in news.items.items() if k.startswith(prefix)}
            changed = set(self.endpoints) | set(fresh)
            self.endpoints = {
                k: r for k, v in fresh.items() if (r := decode_or_none(v)) is not None
            }
            return changed
        changed = set()
        for event in news:
            if not event.key.startswith(prefix):
                continue
            port_id = event.key[cut:]
            record = decode_or_none(event.value) if event.type is EventType.PUT else None
            if record is not None:
                self.endpoints[port_id] = record
            else:
                self.endpoints.pop(port_id, None)
            changed.add(port_id)
        return changed

    def note_tap(self, port_id: str) -> None:
        """Index the endpoint's tap (a tap changes only if the port id does, but a record
        could name any interface: keep the index true either way)."""
        endpoint = self.endpoints.get(port_id)
        old = self.taps.get(port_id)
        new = None if endpoint is None else str(endpoint.get("interface", ""))
        if old is not None and old != new:
            self.on_tap.get(old, set()).discard(port_id)
        if new is not None:
            self.taps[port_id] = new
            self.on_tap.setdefault(new, set()).add(port_id)

    def sharing(self, taps: set[str]) -> set[str]:
        """Every endpoint on these taps: a tap's state is decided by all of them at once."""
        return {port_id for tap in taps for port_id in self.on_tap.get(tap, ())}

    def interfaces(self, ids: Iterable[str]) -> dict[str, str]:
        """The tap each of these endpoints is on now ("": deleted)."""
        endpoints = self.endpoints
        return {i: str(endpoints[i].get("interface", "")) if i in endpoints else "" for i in ids}

    def records_on(self, tap: str) -> list[EndpointRecord]:
        """The records of every endpoint on ``tap``, in port id order."""
        endpoints = self.endpoints
        return [endpoints[i] for i in sorted(self.on_tap.get(tap, ())) if i in endpoints]


__all__ = ["EndpointCache"]
