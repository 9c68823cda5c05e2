"""The metadata service: what a VM may learn about its own port, served by its host.

VMs reach it at ``169.254.169.254:80``; the agent listens there inside its host's network
namespace (``dataplane.linux.listener``). It answers

- ``GET /routeplane/v1/addresses`` → ``{"port_id", "revision", "addresses":
  [{"ip_address": …}, …]}``: the port's fixed IPs, service IPs on it included, which
  ``routeplane guest`` keeps on the VM's interface. ``?wait=<revision>`` is a long poll:
  the answer comes when the port's endpoint record has another revision than that, or
  after ``wait_limit`` (25 s) with the current state, so a guest learns of a move within
  milliseconds without polling;
- OpenStack's ``/openstack/…`` (``meta_data.json``, ``network_data.json``, …) and EC2's
  ``/latest/meta-data/…`` trees, built from the record and the port document (one store
  read) by ``agent/openstack_metadata.py``: what cloud-init and CirrOS read at boot;
  in proxy mode forwarded to nova-metadata instead (``agent/nova_proxy.py``).

Who asks is decided by the connection, never by the request: the interface it came in on
(a tap) and its source address must belong to one endpoint record of this host — the
address a fixed IP of that record (or, failing that, in exactly one of the tap's
allowed-address pairs). A completed TCP handshake proves the asker receives what is
routed to that address, and the agent routes it only to that record's tap; a VM sending
from another port's address never completes one. Unknown askers get 404, and nothing
is answered before the first snapshot (503).

The records come from a feed of ``endpoints/<host>/`` read in a thread of its own (in
the agent's process, a branch of the reconcile loop's follower: the records are read
from the store once), so serving never waits for the loop and the loop never waits for
a VM. All VMs are served by one thread (``agent/metadata_server.py``): a long poll is
parked there as a socket and a timer (``agent/metadata_waits.py``), not a thread, and
the follower tells the server which taps' records changed so that only the polls on
those taps are checked again.
What this module must not do: write anything, or answer with another port's data.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from routeplane.agent import openstack_metadata
from routeplane.agent.metadata_http import Answer
from routeplane.agent.metadata_server import MAX_CONNECTIONS, REQUEST_TIMEOUT, Listener, Server
from routeplane.agent.metadata_waits import Defer, Park
from routeplane.agent.nova_proxy import NovaProxy
from routeplane.dataplane.nft_render import METADATA_ADDRESS
from routeplane.model.endpoint import EndpointRecord, decode_or_none
from routeplane.model.errors import StoreError
from routeplane.model.keys import GUEST_ADDRESSES_PATH, PORTS, endpoints_prefix, key
from routeplane.store import Event, EventType, Store
from routeplane.store.watcher import Feed, Follower, Snapshot

LOG = logging.getLogger("routeplane.agent")
ADDRESS = METADATA_ADDRESS  # the one the policy admits VMs to
PORT = 80
WAIT_LIMIT = 25.0
ADDRESSES_PATH = GUEST_ADDRESSES_PATH

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Answer = Answer


@dataclass(frozen=True)
class Endpoint:
    """One endpoint record of this host, with the store revision it was written at."""

    port_id: str
    revision: int
    record: EndpointRecord

    @property
    def interface(self) -> str:
        return str(self.record.get("interface", ""))


def _address(text: object) -> _Address | None:
    try:
        return ipaddress.ip_address(str(text))
    except ValueError:
        return None


def _covers(pair: object, source: _Address) -> bool:
    try:
        return source in ipaddress.ip_network(str(pair), strict=False)
    except (ValueError, TypeError):
        return False


def find_port(endpoints: Iterable[Endpoint], interface: str | None, source: str) -> Endpoint | None:
    """The endpoint that asks: on ``interface``, holding ``source`` as a fixed IP, or else
    covering it by an allowed-address pair of exactly one endpoint there, or else — a
    link-local source, asking ``fe80::a9fe:a9fe`` — the one endpoint on the tap (a
    link-local packet cannot have come from beyond the tap's far end, the VM). Pure."""
    asker = _address(source)
    if interface is None or asker is None:
        return None
    if isinstance(asker, ipaddress.IPv6Address) and asker.ipv4_mapped is not None:
        asker = asker.ipv4_mapped
    on_tap = [e for e in endpoints if e.interface == interface]
    for endpoint in on_tap:
        if any(_address(a) == asker for a in endpoint.record.get("fixed_ips", [])):
            return endpoint
    pairs = [
        e for e in on_tap if any(_covers(p, asker) for p in e.record.get("allowed_addresses", []))
    ]
    if not pairs and asker.is_link_local and len(on_tap) == 1:
        return on_tap[0]
    return pairs[0] if len(pairs) == 1 else None  # two ports sharing a pair: refuse both


def addresses_document(endpoint: Endpoint) -> dict[str, Any]:
    """What ``GET /routeplane/v1/addresses`` answers for ``endpoint``."""
    return {
        "port_id": endpoint.port_id,
        "revision": endpoint.revision,
        "addresses": [{"ip_address": str(a)} for a in endpoint.record.get("fixed_ips", [])],
    }


class Mirror:
    """This host's endpoint records, shared by the follower (writer) and the server
    (reader; long polls re-check when told which taps changed)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._by_tap: dict[str, dict[str, Endpoint]] = {}
        self._taps: dict[str, str] = {}  # port id -> its tap
        self._watchers: list[Callable[[Collection[str] | None], None]] = []
        self.ready = False  # the first snapshot is in
        self.closing = False

    def watch(self, changed: Callable[[Collection[str] | None], None]) -> None:
        """Call ``changed(taps)`` after each change, with the taps whose records changed
        (None: any may have). Called with the mirror's lock held: it must not block."""
        self._watchers.append(changed)

    def _notify(self, taps: Collection[str] | None) -> None:
        self._changed.notify_all()
        for changed in self._watchers:
            changed(taps)

    def replace(self, endpoints: Iterable[Endpoint]) -> None:
        with self._changed:
            self._by_tap.clear()
            self._taps.clear()
            for endpoint in endpoints:
                self._put(endpoint)
            self.ready = True
            self._notify(None)

    def take(self, news: Snapshot | list[Event], prefix: str) -> None:
        """A follower's news about the records under ``prefix``."""
        if isinstance(news, Snapshot):
            self.replace(
                Endpoint(k[len(prefix) :], kv.mod_revision, record)
                for k, kv in news.items.items()
                if (record := decode_or_none(kv.value)) is not None
            )
            return
        if not news:
            return
        touched: set[str] = set()
        with self._changed:
            for event in news:
                port_id = event.key[len(prefix) :]
                record = decode_or_none(event.value) if event.type is EventType.PUT else None
                if record is not None:
                    touched |= self._put(Endpoint(port_id, event.revision, record))
                else:
                    touched |= self._remove(port_id)
            self._notify(touched)

    def put(self, endpoint: Endpoint) -> None:
        with self._changed:
            self._notify(self._put(endpoint))

    def remove(self, port_id: str) -> None:
        with self._changed:
            self._notify(self._remove(port_id))

    def _put(self, endpoint: Endpoint) -> set[str]:
        touched = self._remove(endpoint.port_id)
        self._by_tap.setdefault(endpoint.interface, {})[endpoint.port_id] = endpoint
        self._taps[endpoint.port_id] = endpoint.interface
        return touched | {endpoint.interface}

    def _remove(self, port_id: str) -> set[str]:
        tap = self._taps.pop(port_id, None)
        if tap is None:
            return set()
        on_tap = self._by_tap[tap]
        del on_tap[port_id]
        if not on_tap:
            del self._by_tap[tap]
        return {tap}

    def _find(self, interface: str | None, source: str) -> Endpoint | None:
        if interface is None:
            return None
        return find_port(self._by_tap.get(interface, {}).values(), interface, source)

    def find(self, interface: str | None, source: str) -> Endpoint | None:
        with self._changed:
            return self._find(interface, source)

    def moved(self, interface: str | None, source: str, revision: int) -> bool:
        """Whether a long poll on ``revision`` is due: the asker's record has another
        revision or is gone, or the service is closing."""
        with self._changed:
            found = self._find(interface, source)
            return self.closing or found is None or found.revision != revision

    def wait_for(self, ready: Callable[[], bool], timeout: float) -> None:
        """Block until ``ready()`` (checked after each change) or ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(ready, timeout)

    def close(self) -> None:
        with self._changed:
            self.closing = True
            self._notify(None)


class Responder:
    """What to answer whom: reads the mirror (and, for OpenStack's and EC2's documents,
    the port document from the store); no sockets, so the unit tests drive it directly."""

    def __init__(
        self,
        mirror: Mirror,
        store: Store,
        wait_limit: float = WAIT_LIMIT,
        availability_zone: str = openstack_metadata.AVAILABILITY_ZONE,
        proxy: NovaProxy | None = None,
    ) -> None:
        self.mirror = mirror
        self.store = store
        self.wait_limit = wait_limit
        self.availability_zone = availability_zone
        self.proxy = proxy  # forward OpenStack's and EC2's requests to nova-metadata

    def answer(self, path: str, source: str, interface: str | None) -> _Answer:
        """Status and JSON body for ``GET path`` from ``source`` arriving on ``interface``,
        waiting (blocking) for a long poll's answer."""
        step = self.prepare(path, source, interface)
        if isinstance(step, Defer):
            return step.work()
        if isinstance(step, Park):
            self.mirror.wait_for(step.ready, step.limit)
            return step.answer()
        return step

    def prepare(self, path: str, source: str, interface: str | None) -> _Answer | Park | Defer:
        """The answer to ``GET path`` if it is known at once; else a long poll to park,
        or the store read to run off the server's loop. Never blocks."""
        url = urlsplit(path)
        metadata = openstack_metadata.is_metadata_path(url.path)
        if url.path != ADDRESSES_PATH and not metadata:
            return 404, {"error": f"no such resource: {url.path}"}
        if not self.mirror.ready:
            return 503, {"error": "the metadata service has not read its records yet"}
        endpoint = self.mirror.find(interface, source)
        if endpoint is None:
            LOG.debug("metadata: %s on %s is no port of this host", source, interface)
            return _unknown(source, interface)
        if metadata:
            return Defer(lambda: self._metadata(endpoint, url.path, path, source))
        wait = parse_qs(url.query).get("wait")
        if wait:
            try:
                known = int(wait[-1])
            except ValueError:
                return 400, {"error": "wait must be a revision (an integer)"}
            if known == endpoint.revision:
                return Park(
                    endpoint.interface,
                    lambda: self.mirror.moved(interface, source, known),
                    lambda: self._addresses(source, interface),
                    self.wait_limit,
                )
        return 200, addresses_document(endpoint)

    def _addresses(self, source: str, interface: str | None) -> _Answer:
        endpoint = self.mirror.find(interface, source)
        if endpoint is None:
            return _unknown(source, interface)
        return 200, addresses_document(endpoint)

    def _metadata(self, endpoint: Endpoint, path: str, target: str, source: str) -> _Answer:
        try:
            port = self.store.get(key(PORTS, endpoint.port_id))
        except StoreError as exc:
            return 503, {"error": f"store: {exc}"}
        value = port.value if port is not None and isinstance(port.value, dict) else {}
        if self.proxy is not None:
            instance = str(value.get("device_id") or "")
            if not instance:
                return 404, {"error": f"port {endpoint.port_id} belongs to no instance"}
            project = str(value.get("project_id") or endpoint.record.get("project_id", ""))
            return self.proxy.forward(target, instance, project, source)
        asker = openstack_metadata.Asker(
            endpoint.port_id, endpoint.record, value, self.availability_zone
        )
        return openstack_metadata.answer(path, asker)


def _unknown(source: str, interface: str | None) -> _Answer:
    return 404, {"error": f"no port of this host has {source} on {interface}"}


class MetadataService:
    """Serves this host's VMs from a feed of the host's endpoint records (``endpoints``;
    by default a follower of its own)."""

    def __init__(
        self,
        store: Store,
        host: str,
        listener: Listener | Sequence[Listener],
        *,
        wait_limit: float = WAIT_LIMIT,
        endpoints: Feed | None = None,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
        proxy: NovaProxy | None = None,
    ) -> None:
        self.prefix = endpoints_prefix(host)
        self.listeners = list(listener) if isinstance(listener, Sequence) else [listener]
        self.mirror = Mirror()
        self.responder = Responder(self.mirror, store, wait_limit, proxy=proxy)
        self.follower = endpoints if endpoints is not None else Follower(store, self.prefix)
        self.server = Server(
            self.listeners,
            self.responder,
            max_connections=max_connections,
            request_timeout=request_timeout,
        )
        self.mirror.watch(self.server.wake)
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self.mirror.take(self.follower.poll(0.2), self.prefix)
            except StoreError as exc:
                LOG.warning("metadata: store: %s; serving what it knows, retrying", exc)
                self._stop.wait(0.5)

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.server.start()
        self._follower = threading.Thread(target=self._follow, name="metadata-follow", daemon=True)
        self._follower.start()

    def close(self) -> None:
        """Stop answering (long polls answer at once with what is known) and following."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.mirror.close()
        self.server.close()
        if self._follower is not None:
            self._follower.join(timeout=5)
        self.follower.close()
        for listener in self.listeners:
            listener.close()


__all__ = [
    "ADDRESS",
    "PORT",
    "Endpoint",
    "Listener",
    "MetadataService",
    "Mirror",
    "Responder",
    "addresses_document",
    "find_port",
]
