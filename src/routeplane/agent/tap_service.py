"""What the host's services on its VMs' taps share: the host's endpoint records by tap,
as a follower feeds them, and the threads that keep each service going.

The DHCPv4 server (``agent/dhcp.py``), the DHCPv6 server (``agent/dhcp6.py``) and the
router advertisements (``agent/router_adverts.py``) each answer or speak on a tap from
the records of the ports bound to it. Each is a :class:`TapService`: a follower thread
swaps records into :class:`Leases` (a table by tap) and the service's own loops run
beside it until :meth:`TapService.close`; an error in a loop is said once per try and
retried, never fatal. What this module must not do: write to the store, or decide what
is said to a guest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from routeplane.agent.tally import Tally
from routeplane.model.endpoint import EndpointRecord, decode_or_none
from routeplane.model.errors import StoreError
from routeplane.model.keys import endpoints_prefix
from routeplane.store import Event, EventType
from routeplane.store.watcher import Feed, Snapshot

LOG = logging.getLogger("routeplane.agent")


class TapSocket(Protocol):
    """What every service's socket does: hand over what came in (a tuple of the tap's
    name and what the service's :meth:`TapService.handle` takes), and close."""

    def receive(self, timeout: float) -> tuple[Any, ...] | None: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=TapSocket)
BURST = 64.0  # requests a tap may have looked at at once
RATE = 32.0  # requests a second a tap earns after that
Loop = tuple[Callable[[], None], str, type[Exception]]  # (step, what fails, its errors)


class Leases:
    """The host's endpoint records by tap, as the follower last saw them.

    A snapshot indexes every record; a change moves only the records it names (a
    host's thousands of endpoints are not indexed again for one port's change, in each
    of the services holding a table)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, EndpointRecord] = {}
        self._by_tap: dict[str, dict[str, EndpointRecord]] = {}
        self.ready = False

    def take(self, news: Snapshot | list[Event], prefix: str) -> None:
        if isinstance(news, Snapshot):
            records = {
                k[len(prefix) :]: r
                for k, kv in news.items.items()
                if (r := decode_or_none(kv.value)) is not None
            }
            by_tap: dict[str, dict[str, EndpointRecord]] = {}
            for port_id, record in records.items():
                by_tap.setdefault(record.get("interface", ""), {})[port_id] = record
            with self._lock:
                self._records, self._by_tap = records, by_tap
                self.ready = True
            return
        with self._lock:
            for event in news:
                port_id = event.key[len(prefix) :]
                put = event.type is EventType.PUT
                self._move(port_id, decode_or_none(event.value) if put else None)

    def _move(self, port_id: str, record: EndpointRecord | None) -> None:
        """Port ``port_id``'s record is now ``record`` (None: gone), in both tables."""
        old = self._records.pop(port_id, None) if record is None else self._records.get(port_id)
        if old is not None:
            tap = old.get("interface", "")
            if record is None or record.get("interface", "") != tap:
                on_tap = self._by_tap[tap]
                del on_tap[port_id]
                if not on_tap:
                    del self._by_tap[tap]
        if record is not None:
            self._records[port_id] = record
            self._by_tap.setdefault(record.get("interface", ""), {})[port_id] = record

    def taps(self) -> int:
        return len(self._by_tap)

    def tap_names(self) -> list[str]:
        """Every tap with a record, as one consistent copy."""
        with self._lock:
            return list(self._by_tap)

    def on_tap(self, tap: str) -> list[EndpointRecord]:
        with self._lock:
            return list(self._by_tap.get(tap, {}).values())


class TapService(Generic[S]):
    """A service on the host's taps: ``sock`` (closed with it), the records of
    ``endpoints`` (a feed of the host's endpoint records) in :attr:`leases`."""

    name = "tap service"  # in its log lines and thread names
    counted = False  # a server of requests, whose tally the metrics show
    handle: Callable[..., None]  # what came in on a tap, as ``sock.receive`` hands it over

    def __init__(
        self, host: str, sock: S, endpoints: Feed, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.prefix = endpoints_prefix(host)
        self.sock = sock
        self.feed = endpoints
        self.leases = Leases()
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tap -> (tokens, at)
        self.tally = Tally()  # requests by outcome (a server's; router adverts count none)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def allowed(self, tap: str) -> bool:
        """Whether a request from ``tap`` may be looked at: a token bucket per tap of
        :data:`BURST`, refilled at :data:`RATE` a second. Call it only for taps with
        ports, before any work (a flood then costs a lookup per packet); the table is
        started afresh when it outgrows the host's taps (taps gone since)."""
        now = self.clock()
        if len(self._buckets) > 4 * self.leases.taps() + 64:
            self._buckets.clear()
        tokens, at = self._buckets.get(tap, (BURST, now))
        tokens = min(BURST, tokens + (now - at) * RATE)
        if tokens < 1.0:
            self._buckets[tap] = (tokens, now)
            return False
        self._buckets[tap] = (tokens - 1.0, now)
        return True

    def admitted(self, tap: str) -> list[EndpointRecord]:
        """The records on ``tap`` if what came in on it is to be looked at: none when
        it is no port's tap (or none of its ports is known yet), or it floods."""
        on_tap = self.leases.on_tap(tap)
        if on_tap and not self.allowed(tap):  # before any work: a lookup per packet
            LOG.debug("%s: %s floods; dropped", self.name, tap)
            return []
        return on_tap

    @property
    def answered(self) -> int:
        """Replies sent so far."""
        return self.tally["answered"]

    def _serve(self) -> None:
        got = self.sock.receive(0.2)
        if got is not None:
            self.handle(*got)

    def _loops(self) -> Sequence[Loop]:
        """The service's own loops, beside the follower's: by default the server's."""
        return [(self._serve, "receive", OSError)]

    def _repeat(self, step: Callable[[], None], what: str, errors: type[Exception]) -> None:
        """``step()`` until closed; its ``errors`` are said (once per try) and retried."""
        while not self._stop.is_set():
            try:
                step()
            except errors as exc:
                LOG.warning("%s: %s: %s; retrying", self.name, what, exc)
                self._stop.wait(0.5)

    def _follow(self) -> None:
        self.leases.take(self.feed.poll(0.2), self.prefix)

    def start(self) -> None:
        follow: Loop = (self._follow, "store (going on with what it knows)", StoreError)
        for number, (step, what, errors) in enumerate([follow, *self._loops()]):
            thread = threading.Thread(
                target=self._repeat,
                args=(step, what, errors),
                name=f"{self.name}-{number}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.feed.close()
        self.sock.close()


__all__ = ["BURST", "RATE", "Leases", "Loop", "TapService", "TapSocket"]
