"""The host's DHCPv4 server: answers each VM's DHCP client on its own tap, from the store.

It follows the host's endpoint records (a branch of the reconcile loop's follower, as
the metadata service does) into a table by tap, and answers every request from one
packet socket in the host's namespace (``dataplane/linux/dhcp_socket.py``) with the lease
decision (``agent/dhcp_lease.py``). Two threads: the follower's, which swaps records in
the table, and the server's, which reads a request, looks its tap up and answers. A
change in the store (a new port, a new fixed IP, a subnet's DNS servers, the network's
MTU) is in the table within the follower's latency and in the next answer — no server
to restart, no lease file to rewrite — and leases are derived, never stored, so a
restarted agent answers renewals as before as soon as its first snapshot is in.

Bad input: a request that does not parse, comes from a MAC no port on that tap has, or
from a tap that is no port's, is dropped without a word at INFO (DEBUG says why). A tap
that floods has at most :data:`BURST` requests looked at once and :data:`RATE` a second
after that (counted before parsing, so the rest of a flood costs a dictionary lookup
each, and the other taps' requests behind it in the queue wait microseconds, not the
~0.2 ms a decision takes); the buckets exist only for taps that have ports, so memory is bounded by the
host's ports, and the kernel bounds the socket's queue. What it must not do: answer on
any interface but the one a request came in on, or write anything to the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from routeplane.agent.dhcp_lease import answer
from routeplane.dataplane.dhcp_packet import parse_request
from routeplane.model.endpoint import EndpointRecord, decode_or_none
from routeplane.model.errors import StoreError
from routeplane.model.keys import endpoints_prefix
from routeplane.store import Event, EventType
from routeplane.store.watcher import Feed, Snapshot

LOG = logging.getLogger("routeplane.agent.dhcp")
BURST = 64.0  # requests a tap may have looked at at once
RATE = 32.0  # requests a second a tap earns after that


class PacketSocket(Protocol):
    """``dataplane.linux.dhcp_socket.DhcpSocket``, or a test's stand-in."""

    def receive(self, timeout: float) -> tuple[str, bytes] | None: ...

    def send(self, interface: str, mac: str, packet: bytes) -> None: ...

    def close(self) -> None: ...


class Leases:
    """The host's endpoint records by tap, as the follower last saw them."""

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
            with self._lock:
                self._records = records
                self._index()
                self.ready = True
            return
        with self._lock:
            for event in news:
                port_id = event.key[len(prefix) :]
                put = event.type is EventType.PUT
                record = decode_or_none(event.value) if put else None
                if record is None:
                    self._records.pop(port_id, None)
                else:
                    self._records[port_id] = record
            if news:
                self._index()

    def _index(self) -> None:
        by_tap: dict[str, dict[str, EndpointRecord]] = {}
        for port_id, record in self._records.items():
            by_tap.setdefault(record.get("interface", ""), {})[port_id] = record
        self._by_tap = by_tap

    def taps(self) -> int:
        return len(self._by_tap)

    def on_tap(self, tap: str) -> list[EndpointRecord]:
        with self._lock:
            return list(self._by_tap.get(tap, {}).values())


class DhcpService:
    """Answers this host's VMs' DHCP requests from a feed of the host's endpoint records."""

    def __init__(
        self,
        host: str,
        sock: PacketSocket,
        endpoints: Feed,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = endpoints_prefix(host)
        self.sock = sock
        self.feed = endpoints
        self.leases = Leases()
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tap -> (tokens, at)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.answered = 0

    def _repeat(self, step: Callable[[], None], what: str, errors: type[Exception]) -> None:
        """``step()`` until closed; its ``errors`` are said (once per try) and retried."""
        while not self._stop.is_set():
            try:
                step()
            except errors as exc:
                LOG.warning("dhcp: %s: %s; retrying", what, exc)
                self._stop.wait(0.5)

    def _follow(self) -> None:
        self.leases.take(self.feed.poll(0.2), self.prefix)

    def _allowed(self, tap: str) -> bool:
        """Token bucket per tap (only taps with ports reach this: bounded)."""
        now = self.clock()
        tokens, at = self._buckets.get(tap, (BURST, now))
        tokens = min(BURST, tokens + (now - at) * RATE)
        if tokens < 1.0:
            self._buckets[tap] = (tokens, now)
            return False
        self._buckets[tap] = (tokens - 1.0, now)
        return True

    def handle(self, tap: str, packet: bytes) -> None:
        """Answer one request that came in on ``tap`` (or drop it)."""
        on_tap = self.leases.on_tap(tap)
        if not on_tap:
            return  # not a VM's tap (or none of its ports is known yet)
        if not self._allowed(tap):  # before any work: a flood costs a lookup per packet
            LOG.debug("dhcp: %s floods; request dropped", tap)
            return
        request = parse_request(packet)
        if request is None:
            LOG.debug("dhcp: malformed request on %s dropped", tap)
            return
        try:
            reply = answer(request, on_tap)
        except ValueError as exc:  # a record the lease cannot be made from
            LOG.debug("dhcp: no answer on %s for %s: %s", tap, request.mac, exc)
            return
        if reply is None:
            LOG.debug("dhcp: nothing for %s on %s", request.mac, tap)
            return
        try:
            self.sock.send(tap, reply.mac, reply.packet)
            self.answered += 1
        except OSError as exc:
            LOG.debug("dhcp: cannot answer on %s: %s", tap, exc)
        if len(self._buckets) > 4 * self.leases.taps() + 64:
            self._buckets.clear()  # taps gone since: start their buckets afresh

    def _serve(self) -> None:
        got = self.sock.receive(0.2)
        if got is not None:
            self.handle(*got)

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        loops = (
            (self._follow, "store (answering from what it knows)", StoreError, "dhcp-follow"),
            (self._serve, "receive", OSError, "dhcp-serve"),
        )
        for step, what, errors, name in loops:
            thread = threading.Thread(
                target=self._repeat, args=(step, what, errors), name=name, daemon=True
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


__all__ = ["BURST", "RATE", "DhcpService", "Leases", "PacketSocket"]
