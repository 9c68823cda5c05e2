"""Telling the api what is programmed: ``status/<host>/<port>`` = the port revision.

Only changes are written (and in chunks that fit a transaction), so a steady host
writes nothing. The api shows a port ACTIVE while its status key exists.
"""

from __future__ import annotations

from routeplane.model.jsontypes import JSONValue
from routeplane.model.keys import status_prefix
from routeplane.store import Delete, Op, Put, Store
from routeplane.store.codec import MAX_TXN_OPS


def _revision(value: JSONValue) -> int:
    if isinstance(value, dict):
        revision = value.get("port_revision", 0)
        if isinstance(revision, int):
            return revision
    return 0


class StatusWriter:
    def __init__(self, store: Store, host: str) -> None:
        self.store = store
        self.prefix = status_prefix(host)
        self._reported: dict[str, int] | None = None

    def reported(self) -> set[str]:
        return set(self._load())

    def known(self) -> set[str]:
        """The ports last reported programmed, without reading the store (empty before
        the first report): for another thread (metrics, ``routeplane status``)."""
        return set(self._reported or ())

    def _load(self) -> dict[str, int]:
        if self._reported is None:
            items = self.store.range(self.prefix).items
            self._reported = {kv.key[len(self.prefix) :]: _revision(kv.value) for kv in items}
        return self._reported

    def report(self, programmed: dict[str, int], gone: set[str]) -> None:
        reported = self._load()
        ops: list[Op] = []
        for port_id, revision in programmed.items():
            if reported.get(port_id) != revision:
                ops.append(Put(self.prefix + port_id, {"port_revision": revision}))
        ops += [Delete(self.prefix + port_id) for port_id in gone if port_id in reported]
        for start in range(0, len(ops), MAX_TXN_OPS):
            self.store.txn([], ops[start : start + MAX_TXN_OPS])
        for port_id, revision in programmed.items():
            reported[port_id] = revision
        for port_id in gone:
            reported.pop(port_id, None)


__all__ = ["StatusWriter"]
