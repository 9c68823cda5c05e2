"""The multi-host store: etcd v3, spoken to through its JSON gRPC gateway (``/v3/``).

Why the gateway: it is plain HTTP, no gRPC stack to build or pin. The price is that we
build the gateway's JSON ourselves (:mod:`~routeplane.store.etcd_wire`); the HTTP client
(:mod:`~routeplane.store.etcd_http`, one urllib3 pool per endpoint for calls and watch
streams alike) and the watch reader (:mod:`~routeplane.store.etcd_watch`) are ours too,
and ``docs/design/store.md`` says why.

Failure policy, the part a caller relies on:

- every call validates through ``codec`` first, so bad input writes nothing anywhere;
- no HTTP library's exception escapes: an unreachable or silent server is
  ``Unavailable`` (naming the endpoint), etcd's refusals become ``LeaseNotFound``,
  ``Compacted`` or ``InvalidRequest`` (:mod:`~routeplane.store.etcd_errors`);
- with several endpoints, a failing one is rotated away from; reads retry on the others
  within the call, writes do not (a lost answer may hide an applied write);
- a watch reconnects by itself after ``watch_idle_timeout`` seconds of silence (a
  watchdog for half-open connections), resuming after the last revision it delivered;
  a broken stream gets one reconnection attempt, then the watch fails ``Unavailable``.

This module composes those parts; it imports no HTTP library.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

from routeplane.model.errors import (
    InvalidRequest,
    LeaseNotFound,
    StoreError,
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
from routeplane.store.etcd_http import Endpoint, Gateway
from routeplane.store.etcd_watch import WatchReader
from routeplane.store.watchqueue import QueueWatch


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
        self._gateway = Gateway(
            self.endpoints, timeout=timeout, idle_timeout=watch_idle_timeout, name=self.url
        )
        self._lock = threading.Lock()
        self._watches: set[WatchReader] = set()
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

    @property
    def round_trips(self) -> int:
        """HTTP requests sent to etcd so far, by every thread of this store object."""
        return self._gateway.round_trips

    # reads ---------------------------------------------------------------------------
    def get(self, key: str) -> KeyValue | None:
        check_key(key)
        items = wire.decode_kvs(self._gateway.read("kv/range", wire.range_request(key, None)))
        return items[0] if items else None

    def range(self, prefix: str) -> RangeResult:
        check_key(prefix, what="prefix")
        body = wire.range_request(prefix, prefix_end(prefix))
        return wire.decode_range(self._gateway.read("kv/range", body))

    def revision(self) -> int:
        body = {**wire.range_request("/", None), "count_only": True}
        return wire.header_revision(self._gateway.read("kv/range", body))

    # writes --------------------------------------------------------------------------
    def txn(
        self,
        compares: Sequence[Compare],
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
    ) -> TxnResult:
        prepared = prepare_txn(compares, on_success, on_failure)
        reply = self._gateway.write(
            "kv/txn", wire.txn_request(prepared), lease=wire.first_lease(prepared)
        )
        return wire.decode_txn(reply, prepared)

    def compact(self, revision: int) -> None:
        wire.positive(revision, "a compaction revision")
        body = {"revision": revision, "physical": True}
        self._gateway.write("kv/compaction", body, revision=revision)

    # leases --------------------------------------------------------------------------
    def grant_lease(self, ttl: int) -> int:
        wire.positive(ttl, "a lease TTL")
        lease_id = wire.number(self._gateway.write("lease/grant", {"TTL": ttl, "ID": 0}), "ID")
        if lease_id <= 0:
            raise StoreError("etcd granted a lease without an id")
        return lease_id

    def keepalive(self, lease_id: int) -> int:
        if wire.lease_id(lease_id) <= 0:
            raise LeaseNotFound(lease_id)
        reply = self._gateway.write("lease/keepalive", {"ID": lease_id}, lease=lease_id)
        return wire.keepalive_ttl(reply, lease_id)

    def revoke_lease(self, lease_id: int) -> None:
        if wire.lease_id(lease_id) <= 0:
            return
        with contextlib.suppress(LeaseNotFound):
            self._gateway.write("lease/revoke", {"ID": lease_id}, lease=lease_id)

    # watches -------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int | None = None) -> QueueWatch:
        check_key(prefix, what="prefix")
        if start_revision is None:
            start_revision = self.revision() + 1
        wire.positive(start_revision, "a watch start revision")
        reader = WatchReader(self._gateway, prefix, start_revision, self._forget)
        with self._lock:
            if self._closed:
                raise StoreError(f"etcd store {self.url} is closed")
            self._watches.add(reader)
        reader.start()
        return reader.watch

    def _forget(self, reader: WatchReader) -> None:
        with self._lock:
            self._watches.discard(reader)

    # lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop every watch and drop the HTTP connections. Never raises."""
        with self._lock:
            self._closed = True
            watches = list(self._watches)
        for reader in watches:
            with contextlib.suppress(Exception):
                reader.watch.close()
        self._gateway.close()

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EtcdStore"]
