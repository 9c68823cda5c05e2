"""Telling Nova about its ports: events derived from the store, sent by the leader only.

The notifier runs in each controller process, in a thread of its own (a slow or absent
Nova never delays a failover, and the api never waits for it: the api writes ports and
nothing else). Every controller follows ``ports/``, ``status/`` and ``fip_by_port/``;
only the one holding the leader key (``leader.Controller``) acts, in two steps:

1. **Derive.** For each port that changed, :func:`nova_events.derive` compares what Nova
   was last told (``nova/told/<port>``) with the store's view now. The events go into
   an outbox entry ``nova/outbox/<id>`` written in the *same transaction* as the new
   ``told`` record, fenced on the leader key. So an event is derived exactly once
   however often the port is looked at or the leader changes: a new leader compares
   with what the old one committed, not with what it remembers.
2. **Send.** Outbox entries go to Nova oldest first, batched (``nova_batching``), and
   are deleted (fenced again) once Nova has answered 200 or 207. While Nova is down the
   entries stay and the leader retries with a backoff; a new leader finds them and
   sends them. The only way an event reaches Nova twice is a leader that dies (or loses
   its lease) between Nova's answer and the delete: one request's worth, and Nova treats
   a repeated event as a harmless "unexpected event".

The outbox is bounded (``max_queued`` events): beyond it new events are dropped, logged
and counted in ``stats["overflow"]`` (the ``told`` record still advances, so a dropped
event is not derived again; Nova's periodic heal recovers it).
What it must not do: write anything but ``nova/`` keys, or act without the leader key.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from routeplane.controller.nova_batching import (
    MAX_EVENTS,
    WINDOW,
    Backoff,
    Entry,
    Verdict,
    batches,
    due,
    read_answer,
)
from routeplane.controller.nova_client import NovaClient
from routeplane.controller.nova_events import PortView, Told, derive, port_view
from routeplane.model.errors import StoreError
from routeplane.model.jsontypes import JSONObject, JSONValue
from routeplane.model.keys import (
    FIP_BY_PORT,
    LEADER_KEY,
    PORTS,
    STATUS,
    nova_outbox_prefix,
    nova_told_key,
    nova_told_prefix,
    prefix,
)
from routeplane.store import Delete, EventType, Op, Put, Store, mod_revision_is, value_is
from routeplane.store.watcher import Follower, Snapshot

LOG = logging.getLogger("routeplane.nova")
OUTBOX = nova_outbox_prefix()


@dataclass(frozen=True)
class NotifierSettings:
    window: float = WINDOW
    max_events: int = MAX_EVENTS
    max_queued: int = 10_000  # events waiting in the outbox; more are dropped
    poll_timeout: float = 0.02
    error_delay: float = 0.5


class NovaNotifier:
    def __init__(
        self,
        store: Store,
        nova: NovaClient,
        leader: Callable[[], JSONObject | None],
        settings: NotifierSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.nova, self.leader = store, nova, leader
        self.settings = settings or NotifierSettings()
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self._follow = {
            kind: Follower(store, prefix(kind)) for kind in (PORTS, STATUS, FIP_BY_PORT)
        }
        self._follow_outbox = Follower(store, OUTBOX)
        self._ports: dict[str, dict[str, Any]] = {}
        self._status: dict[str, JSONValue] = {}  # "<host>/<port>" -> status value
        self._fips: dict[str, dict[str, str]] = {}  # port -> fip id -> address
        self._outbox: dict[str, tuple[int, tuple[JSONObject, ...]]] = {}
        self._first_seen: dict[str, float] = {}
        self._sent: set[str] = set()  # entries deleted, their delete not yet seen
        self._told: dict[str, tuple[Told, int]] | None = None  # loaded on leading
        self._dirty: set[str] = set()
        self._backoff = Backoff()
        self._next_attempt = 0.0

    # the loop ------------------------------------------------------------------------
    def run(self, stop: Callable[[], bool]) -> None:
        while not stop():
            try:
                self.step()
            except StoreError as exc:
                LOG.warning("nova notifier: store error: %s", exc)
                time.sleep(self.settings.error_delay)

    def step(self) -> None:
        self._take_news()
        leader = self.leader()
        if leader is None:
            self._told = None  # a later leadership starts from the stored records
            return
        if self._told is None:
            self._load_told()
        self._derive(leader)
        self._send(leader)

    def close(self) -> None:
        for follower in (*self._follow.values(), self._follow_outbox):
            follower.close()

    # following -----------------------------------------------------------------------
    def _take_news(self) -> None:
        for kind, follower in self._follow.items():
            got = follower.poll(timeout=0)
            base = prefix(kind)
            if isinstance(got, Snapshot):
                self._reset(kind)
                for kv in got.items.values():
                    self._changed(kind, kv.key[len(base) :], kv.value)
                continue
            for ev in got:
                value = ev.value if ev.type is EventType.PUT else None
                self._changed(kind, ev.key[len(base) :], value)
        self._take_outbox(self._follow_outbox.poll(timeout=self.settings.poll_timeout))

    def _reset(self, kind: str) -> None:
        if kind == STATUS:
            self._dirty |= {k.rsplit("/", 1)[-1] for k in self._status}
            self._status.clear()
        elif kind == PORTS:
            self._dirty |= set(self._ports)
            self._ports.clear()
        else:
            self._dirty |= set(self._fips)
            self._fips.clear()

    def _changed(self, kind: str, rest: str, value: JSONValue) -> None:
        if kind == PORTS:
            if isinstance(value, dict):
                self._ports[rest] = value
            else:
                self._ports.pop(rest, None)
            self._dirty.add(rest)
        elif kind == STATUS:
            if value is None:
                self._status.pop(rest, None)
            else:
                self._status[rest] = value
            self._dirty.add(rest.rsplit("/", 1)[-1])
        else:
            port_id, _, fip_id = rest.partition("/")
            fips = self._fips.setdefault(port_id, {})
            address = value.get("floating_ip_address") if isinstance(value, dict) else None
            if isinstance(address, str):
                fips[fip_id] = address
            else:
                fips.pop(fip_id, None)
            self._dirty.add(port_id)

    def _take_outbox(self, got: Snapshot | list[Any]) -> None:
        if isinstance(got, Snapshot):
            self._outbox.clear()
            self._sent &= set(got.items)
            for kv in got.items.values():
                self._entry(kv.key, kv.value, kv.create_revision)
            return
        for ev in got:
            if ev.type is EventType.PUT:
                self._entry(ev.key, ev.value, ev.create_revision or ev.revision)
            else:
                self._outbox.pop(ev.key, None)
                self._first_seen.pop(ev.key, None)
                self._sent.discard(ev.key)

    def _entry(self, k: str, value: JSONValue, created: int) -> None:
        events = value.get("events") if isinstance(value, dict) else None
        good = tuple(e for e in events if isinstance(e, dict)) if isinstance(events, list) else ()
        self._outbox[k] = (created, good)
        self._first_seen.setdefault(k, self.clock())

    # deriving ------------------------------------------------------------------------
    def _load_told(self) -> None:
        told: dict[str, tuple[Told, int]] = {}
        base = nova_told_prefix()
        for kv in self.store.range(base).items:
            record = Told.parse(kv.value)
            if record is not None:
                told[kv.key[len(base) :]] = (record, kv.mod_revision)
        self._told = told
        self._dirty |= set(self._ports) | set(told)
        self._backoff.reset()
        self._next_attempt = 0.0

    def _view(self, port_id: str) -> PortView | None:
        port = self._ports.get(port_id)
        host = port.get("binding:host_id") if port else None
        status = self._status.get(f"{host}/{port_id}") if host else None
        floating = tuple(self._fips.get(port_id, {}).values())
        return port_view(port, status, floating)

    def _derive(self, leader: JSONObject) -> None:
        assert self._told is not None
        dirty, self._dirty = self._dirty, set()
        queued = sum(len(events) for _, events in self._outbox.values())
        for port_id in sorted(dirty):
            told, revision = self._told.get(port_id, (None, 0))
            events, after = derive(port_id, told, self._view(port_id))
            if after == told and not events:
                continue
            k = nova_told_key(port_id)
            ops: list[Op] = [Put(k, after.to_json()) if after else Delete(k)]
            if events and queued + len(events) > self.settings.max_queued:
                self.stats["overflow"] += len(events)
                LOG.error("nova outbox full: dropped %s for port %s", events, port_id)
            elif events:
                value: JSONObject = {"port_id": port_id, "events": list(events)}
                ops.append(Put(OUTBOX + uuid.uuid4().hex, value))
                queued += len(events)
            fence = [value_is(LEADER_KEY, leader), mod_revision_is(k, revision)]
            result = self.store.txn(fence, ops)
            if not result.succeeded:  # no longer leader, or another leader wrote it
                self._told = None
                return
            if after is None:
                self._told.pop(port_id, None)
            else:
                self._told[port_id] = (after, result.revision)
            self.stats["derived"] += len(events)

    # sending -------------------------------------------------------------------------
    def pending(self) -> list[Entry]:
        """The outbox entries not yet sent, oldest first."""
        keys = sorted((c, k) for k, (c, _) in self._outbox.items() if k not in self._sent)
        return [Entry(k, self._outbox[k][1]) for _, k in keys]

    def _send(self, leader: JSONObject) -> None:
        at = self.clock()
        entries = self.pending()
        if not entries or at < self._next_attempt:
            return
        if not due(min(self._first_seen.get(e.key, at) for e in entries), at, self.settings.window):
            return
        batch = batches(entries, self.settings.max_events)[0]
        events = [event for entry in batch for event in entry.events]
        code, body = self.nova.send(events)
        answer = read_answer(code, body)
        if answer.verdict is Verdict.RETRY:
            delay = self._backoff.next_delay()
            self._next_attempt = self.clock() + delay
            self.stats["retries"] += 1
            LOG.warning(
                "nova: %s; %d events wait, next try in %.2fs", answer.detail, len(events), delay
            )
            return
        self._backoff.reset()
        for refused in answer.refused:
            LOG.warning("nova refused event %s", refused)
        self.stats["refused"] += len(answer.refused)
        if answer.verdict is Verdict.DROPPED:
            self.stats["dropped"] += len(events)
            LOG.error("nova refused %d events: %s", len(events), answer.detail)
        else:
            self.stats["sent"] += len(events) - len(answer.refused)
        keys = [entry.key for entry in batch]
        self._sent.update(keys)
        result = self.store.txn([value_is(LEADER_KEY, leader)], [Delete(k) for k in keys])
        if not result.succeeded:
            LOG.warning("nova: sent %d events but lost the lead before clearing them", len(events))


__all__ = ["NotifierSettings", "NovaNotifier"]
