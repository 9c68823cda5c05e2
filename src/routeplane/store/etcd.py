"""The multi-host store: etcd v3, spoken to through its JSON gRPC gateway (``/v3/``).

Why the gateway and etcd3gw: it is plain HTTP with a small pure-Python client, no gRPC
stack to build or pin. The price is that we build the gateway's JSON ourselves
(:mod:`routeplane.store.etcd_wire`) and read watch streams ourselves, because etcd3gw's
watcher swallows cancellation, compaction and broken streams, which our callers must see.

Failure policy, the part a caller relies on:

- every call validates through ``codec`` first, so bad input writes nothing anywhere;
- etcd3gw and requests exceptions never escape: an unreachable or silent server is
  ``Unavailable`` (naming the endpoint), etcd's refusals become ``LeaseNotFound``,
  ``Compacted`` or ``InvalidRequest``;
- with several endpoints, a failing one is rotated away from; reads retry on the others
  within the call, writes do not (a lost answer may hide an applied write);
- a watch reconnects by itself after ``watch_idle_timeout`` seconds of silence (a
  watchdog for half-open connections), resuming after the last revision it delivered;
  a broken stream gets one reconnection attempt, then the watch fails ``Unavailable``.

This module is the only one that imports etcd3gw or requests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import requests
import urllib3.exceptions
from etcd3gw import exceptions as etcd_exc
from etcd3gw.client import Etcd3Client

from routeplane.model.errors import (
    InvalidRequest,
    LeaseNotFound,
    StoreError,
    Unavailable,
)
from routeplane.store import etcd_wire as wire
from routeplane.store.base import (
    Compare,
    KeyValue,
    Op,
    RangeResult,
    TxnResult,
    WriteShortcuts,
)
from routeplane.store.codec import check_key, prefix_end, prepare_txn
from routeplane.store.watchqueue import QueueWatch

Endpoint = tuple[str, int]
_UNREACHABLE = (
    etcd_exc.ConnectionFailedError,
    etcd_exc.ConnectionTimeoutError,
    etcd_exc.InternalServerError,
)
_STREAM_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError)
_MAX_IDLE_CLIENTS = 8


class EtcdStore(WriteShortcuts):
    """The :class:`~routeplane.store.base.Store` on an etcd v3 cluster."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        timeout: float = 5.0,
        watch_idle_timeout: float = 30.0,
        url: str | None = None,
    ) -> None:
        if not endpoints:
            raise InvalidRequest("an etcd store needs at least one endpoint")
        self.endpoints: tuple[Endpoint, ...] = tuple((h, int(p)) for h, p in endpoints)
        self.url = url or wire.format_url(self.endpoints)
        self.timeout = timeout
        self.watch_idle_timeout = watch_idle_timeout
        self._lock = threading.Lock()
        self._idle: list[list[Etcd3Client]] = [[] for _ in self.endpoints]
        self._current = 0
        self._watches: set[_WatchStream] = set()
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> EtcdStore:
        """``etcd://host:port[,host:port...][?timeout=S&watch_idle_timeout=S]``."""
        endpoints, options = wire.parse_url(url)
        return cls(
            endpoints,
            timeout=options.get("timeout", 5.0),
            watch_idle_timeout=options.get("watch_idle_timeout", 30.0),
            url=url,
        )

    # reads ---------------------------------------------------------------------------
    def get(self, key: str) -> KeyValue | None:
        check_key(key)
        items = wire.decode_kvs(self._read("kv/range", wire.range_request(key, None)))
        return items[0] if items else None

    def range(self, prefix: str) -> RangeResult:
        check_key(prefix, what="prefix")
        body = wire.range_request(prefix, prefix_end(prefix))
        return wire.decode_range(self._read("kv/range", body))

    def revision(self) -> int:
        body = {**wire.range_request("/", None), "count_only": True}
        return wire.header_revision(self._read("kv/range", body))

    # writes --------------------------------------------------------------------------
    def txn(
        self,
        compares: Sequence[Compare],
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
    ) -> TxnResult:
        prepared = prepare_txn(compares, on_success, on_failure)
        reply = self._write("kv/txn", wire.txn_request(prepared), lease=wire.first_lease(prepared))
        return wire.decode_txn(reply, prepared)

    def compact(self, revision: int) -> None:
        wire.positive(revision, "a compaction revision")
        body = {"revision": revision, "physical": True}
        self._write("kv/compaction", body, revision=revision)

    # leases --------------------------------------------------------------------------
    def grant_lease(self, ttl: int) -> int:
        wire.positive(ttl, "a lease TTL")
        lease_id = wire.number(self._write("lease/grant", {"TTL": ttl, "ID": 0}), "ID")
        if lease_id <= 0:
            raise StoreError("etcd granted a lease without an id")
        return lease_id

    def keepalive(self, lease_id: int) -> int:
        if wire.lease_id(lease_id) <= 0:
            raise LeaseNotFound(lease_id)
        reply = self._write("lease/keepalive", {"ID": lease_id}, lease=lease_id)
        return wire.keepalive_ttl(reply, lease_id)

    def revoke_lease(self, lease_id: int) -> None:
        if wire.lease_id(lease_id) <= 0:
            return
        with contextlib.suppress(LeaseNotFound):
            self._write("lease/revoke", {"ID": lease_id}, lease=lease_id)

    # watches -------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int | None = None) -> QueueWatch:
        check_key(prefix, what="prefix")
        if start_revision is None:
            start_revision = self.revision() + 1
        wire.positive(start_revision, "a watch start revision")
        stream = _WatchStream(self, prefix, start_revision)
        with self._lock:
            if self._closed:
                raise StoreError(f"etcd store {self.url} is closed")
            self._watches.add(stream)
        stream.start()
        return stream.watch

    def _forget(self, stream: _WatchStream) -> None:
        with self._lock:
            self._watches.discard(stream)

    # lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop every watch and drop the HTTP connections. Never raises."""
        with self._lock:
            self._closed = True
            watches = list(self._watches)
            idle = [client for clients in self._idle for client in clients]
            self._idle = [[] for _ in self.endpoints]
        for stream in watches:
            stream.watch.close()
        for client in idle:
            with contextlib.suppress(Exception):
                client.session.close()

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # requests ------------------------------------------------------------------------
    def _read(self, path: str, body: dict[str, Any]) -> wire.Reply:
        """A read: tried once on every endpoint, starting with the current one."""
        error: Unavailable | None = None
        for _ in self.endpoints:
            index = self._pick()
            try:
                return self._post(index, path, body)
            except Unavailable as exc:
                self._rotate(index)
                error = exc
        assert error is not None
        raise error

    def _write(
        self, path: str, body: dict[str, Any], *, lease: int | None = None, revision: int = 0
    ) -> wire.Reply:
        """A write: one attempt, since a lost answer may hide an applied change."""
        index = self._pick()
        try:
            return self._post(index, path, body, lease=lease, revision=revision)
        except Unavailable:
            self._rotate(index)
            raise

    def _post(
        self,
        index: int,
        path: str,
        body: dict[str, Any],
        *,
        lease: int | None = None,
        revision: int = 0,
    ) -> wire.Reply:
        where = wire.host_port(self.endpoints[index])
        client = self._checkout(index)
        try:
            reply = client.post(client.get_url(path), json=body)
        except etcd_exc.Etcd3Exception as exc:
            raise self._translate(exc, where, lease, revision) from exc
        except (requests.RequestException, OSError) as exc:
            raise Unavailable(f"etcd at {where} is unavailable: {exc}") from exc
        finally:
            self._checkin(index, client)
        if not isinstance(reply, dict):
            raise StoreError(f"etcd at {where} answered {path} with {reply!r}")
        return reply

    @staticmethod
    def _translate(
        exc: etcd_exc.Etcd3Exception, where: str, lease: int | None, revision: int
    ) -> StoreError:
        detail = exc.detail_text or str(exc) or type(exc).__name__
        error = wire.error_from_body(detail, lease=lease, revision=revision)
        if isinstance(error, Unavailable) or (
            type(error) is StoreError and isinstance(exc, _UNREACHABLE)
        ):
            return Unavailable(f"etcd at {where} is unavailable: {detail.strip()}")
        return error

    def _pick(self) -> int:
        with self._lock:
            return self._current

    def _rotate(self, failed: int) -> None:
        with self._lock:
            if self._current == failed:
                self._current = (failed + 1) % len(self.endpoints)

    def _checkout(self, index: int) -> Etcd3Client:
        """A client (own HTTP session) for one call; sessions are not shared by threads."""
        with self._lock:
            if self._closed:
                raise StoreError(f"etcd store {self.url} is closed")
            if self._idle[index]:
                return self._idle[index].pop()
        host, port = self.endpoints[index]
        return Etcd3Client(host=host, port=port, timeout=self.timeout, api_path="/v3/")

    def _checkin(self, index: int, client: Etcd3Client) -> None:
        with self._lock:
            if not self._closed and len(self._idle[index]) < _MAX_IDLE_CLIENTS:
                self._idle[index].append(client)
                return
        client.session.close()


def _is_idle_timeout(exc: BaseException) -> bool:
    """requests reports a read timeout inside a stream as ``ConnectionError(ReadTimeoutError)``."""
    if isinstance(exc, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
        return True
    return any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args)


def _socket_of(response: requests.Response) -> socket.socket | None:
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


class _WatchStream:
    """One watch: a daemon thread reading the gateway's stream into a :class:`QueueWatch`."""

    def __init__(self, store: EtcdStore, prefix: str, start_revision: int) -> None:
        self._store = store
        self._end = prefix_end(prefix)
        self._next = start_revision  # the first revision not yet delivered
        self.watch = QueueWatch(prefix, start_revision, self._stop)
        self._session = requests.Session()
        self._response: requests.Response | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the stream now, so an unreachable store fails the ``watch()`` call itself."""
        try:
            lines = self._connect_any()
        except BaseException:
            self._finish()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(lines,), name=f"etcd-watch:{self.watch.prefix}", daemon=True
        )
        self._thread.start()

    # the reader thread -----------------------------------------------------------------
    def _run(self, lines: Iterator[bytes]) -> None:
        try:
            self._follow(lines)
        except StoreError as exc:
            if not self._stopping.is_set():
                self.watch.fail(exc)
        except Exception as exc:  # the thread must report, whatever went wrong
            if not self._stopping.is_set():
                self.watch.fail(StoreError(f"etcd watch on {self.watch.prefix} failed: {exc!r}"))
        finally:
            self._finish()

    def _follow(self, lines: Iterator[bytes]) -> None:
        """Pump the stream; reconnect after idleness, or once after a break."""
        after_break = False
        while True:
            idle, progressed = self._pump(lines)
            if self._stopping.is_set():
                return
            if not idle and after_break and not progressed:
                raise Unavailable(f"etcd watch on {self.watch.prefix} keeps breaking")
            after_break = not idle
            lines = self._connect_any()

    def _pump(self, lines: Iterator[bytes]) -> tuple[bool, bool]:
        """Deliver messages until the stream ends: (ended by idleness, delivered anything)."""
        progressed = False
        try:
            for line in lines:
                self._handle(line)
                progressed = True
        except StoreError:
            raise
        except _STREAM_ERRORS as exc:
            return _is_idle_timeout(exc), progressed
        return False, progressed

    def _handle(self, line: bytes) -> None:
        message = wire.watch_message(line, self._next, self.watch.prefix)
        if message.events:
            self.watch.feed(message.events)
            self._next = message.events[-1].revision + 1
        elif message.progress:  # nothing under the prefix up to this revision
            self._next = max(self._next, message.progress + 1)

    # connecting --------------------------------------------------------------------------
    def _connect_any(self) -> Iterator[bytes]:
        """Open the stream from ``_next``: one attempt per endpoint, the current one first."""
        error: Unavailable | None = None
        for _ in self._store.endpoints:
            index = self._store._pick()
            try:
                return self._connect(self._store.endpoints[index])
            except Unavailable as exc:
                self._store._rotate(index)
                error = exc
        assert error is not None
        raise error

    def _connect(self, endpoint: Endpoint) -> Iterator[bytes]:
        where = wire.host_port(endpoint)
        body = wire.watch_request(self.watch.prefix, self._end, self._next)
        self._drop_response()
        try:
            response = self._session.post(
                f"http://{where}/v3/watch", json=body, stream=True, timeout=self._store.timeout
            )
            with self._lock:
                self._response = response
            if self._stopping.is_set():
                raise Unavailable("the watch was closed")
            if response.status_code != 200:
                raise self._refusal(response, where)
            lines = wire.split_lines(response.iter_content(chunk_size=None))
            self._handle(next(lines))  # "created", or the error that cancels the watch
        except StoreError:
            raise
        except (*_STREAM_ERRORS, StopIteration) as exc:
            raise Unavailable(f"etcd at {where} is unavailable: watch stream: {exc!r}") from exc
        sock = _socket_of(response)
        if sock is not None:  # from now on silence means idleness, not a slow answer
            sock.settimeout(self._store.watch_idle_timeout)
        return lines

    def _refusal(self, response: requests.Response, where: str) -> StoreError:
        error = wire.error_from_body(response.text, revision=self._next)
        transient = response.status_code >= 500 or response.status_code == 408
        if isinstance(error, Unavailable) or (type(error) is StoreError and transient):
            return Unavailable(f"etcd at {where} is unavailable: watch stream: {error}")
        return error

    # stopping ----------------------------------------------------------------------------
    def _stop(self) -> None:
        """``QueueWatch.close``: wake the reader by shutting its socket down. Never raises."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            sock = _socket_of(response)
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        self._store._forget(self)

    def _drop_response(self) -> None:
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()

    def _finish(self) -> None:
        self._store._forget(self)
        self._drop_response()
        with contextlib.suppress(Exception):
            self._session.close()


__all__ = ["EtcdStore"]
