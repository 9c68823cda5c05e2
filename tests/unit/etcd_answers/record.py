"""Record what a real etcd answers to the requests the etcd backend sends.

Why: the unit tests of ``store/etcd_wire.py`` and ``store/etcd_errors.py`` must decode what
etcd really says, not what we believe it says. This script starts a throwaway etcd on
loopback (``routeplane.testing.etcd``), sends each request built by ``etcd_wire`` (or, for
the refusals our own validation would stop first, built by hand), and writes one JSON file
per exchange next to itself: ``{"path", "request", "status", "answer"}`` for a call, with
``"messages"`` instead of ``"answer"`` for a watch stream. Re-run it after an etcd upgrade
and review the diff::

    PYTHONPATH=src python tests/unit/etcd_answers/record.py

Identifiers that change on every run (cluster and member ids, lease ids) are recorded as
they came; the tests never compare them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import urllib3

from routeplane.model.jsontypes import JSONValue
from routeplane.store import etcd_wire as wire
from routeplane.store.base import Compare, Delete, Get, Op, Put, Range, absent
from routeplane.store.codec import prefix_end, prepare_txn
from routeplane.testing.etcd import EtcdServer

HERE = Path(__file__).parent
_HEADERS = {"Content-Type": "application/json"}


class Recorder:
    def __init__(self, port: int) -> None:
        self.pool = urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False, timeout=5.0)

    def call(self, name: str, path: str, request: dict[str, Any]) -> Any:
        response = self.pool.urlopen(
            "POST", f"/v3/{path}", body=json.dumps(request).encode(), headers=_HEADERS
        )
        text = response.data.decode()
        try:
            answer: Any = json.loads(text)
        except ValueError:
            answer = text
        save(name, {"path": path, "request": request, "status": response.status, "answer": answer})
        return answer

    def txn(self, name: str, compares: list[Compare], success: list[Op], failure: list[Op]) -> Any:
        return self.call(name, "kv/txn", wire.txn_request(prepare_txn(compares, success, failure)))

    def watch(self, name: str, request: dict[str, Any], want: int, writes: list[Any]) -> None:
        """Open a watch, make ``writes`` after its first message, keep ``want`` messages."""
        response = self.pool.urlopen(
            "POST",
            "/v3/watch",
            body=json.dumps(request).encode(),
            headers=_HEADERS,
            preload_content=False,
            timeout=urllib3.Timeout(connect=5.0, read=3.0),
        )
        messages: list[Any] = []
        if response.status != 200:
            answer = json.loads(response.read())
            save(
                name,
                {"path": "watch", "request": request, "status": response.status, "answer": answer},
            )
            response.close()
            return
        lines = wire.split_lines(response.stream(None))
        for line in lines:
            messages.append(json.loads(line))
            if len(messages) == 1:
                for write in writes:
                    write()
            if len(messages) >= want:
                break
        response.close()
        save(name, {"path": "watch", "request": request, "status": 200, "messages": messages})


def save(name: str, exchange: dict[str, Any]) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(exchange, indent=2, sort_keys=True) + "\n")


def record(rec: Recorder) -> None:
    rec.txn("txn_put", [], [Put("/rec/a", {"n": 1})], [])
    claim: tuple[list[Compare], list[Op]] = (
        [absent("/rec/b")],
        [Put("/rec/b", "x"), Get("/rec/a"), Range("/rec/")],
    )
    rec.txn("txn_success", *claim, [Get("/rec/b")])
    rec.txn("txn_failure", *claim, [Get("/rec/b")])
    rec.call("range_prefix", "kv/range", wire.range_request("/rec/", prefix_end("/rec/")))
    rec.call("range_key", "kv/range", wire.range_request("/rec/a", None))
    rec.call("range_missing", "kv/range", wire.range_request("/rec/none", None))
    rec.call("range_count_only", "kv/range", {**wire.range_request("/", None), "count_only": True})
    rec.txn("txn_delete_prefix", [], [Delete("/rec/", prefix=True)], [])

    lease = int(rec.call("lease_grant", "lease/grant", {"TTL": 30, "ID": 0})["ID"])
    rec.txn("txn_put_leased", [], [Put("/rec/leased", 1, lease=lease)], [])
    rec.call("range_leased", "kv/range", wire.range_request("/rec/leased", None))
    rec.call("lease_keepalive", "lease/keepalive", {"ID": lease})
    rec.call("lease_revoke", "lease/revoke", {"ID": lease})
    rec.call("lease_keepalive_gone", "lease/keepalive", {"ID": lease})
    rec.call("lease_revoke_unknown", "lease/revoke", {"ID": lease})
    rec.txn("txn_put_unknown_lease", [], [Put("/rec/leased", 1, lease=lease)], [])
    rec.call("lease_grant_too_large", "lease/grant", {"TTL": 10**12, "ID": 0})

    # Refusals our own validation stops first, so the requests are built by hand.
    many = [wire.op_json(entry) for entry in prepare_txn([], [Put("/rec/many", 1)], []).on_success]
    many = [
        {"request_put": {**many[0]["request_put"], "key": wire.b64(f"/rec/many/{i}")}}
        for i in range(129)
    ]
    rec.call("txn_too_many_ops", "kv/txn", {"success": many})
    rec.call("txn_duplicate_key", "kv/txn", {"success": many[:1] * 2})
    rec.call("range_no_key", "kv/range", {"key": ""})
    rec.call("path_unknown", "nope", {})

    compacted = rec.call("compaction", "kv/compaction", {"revision": 3, "physical": True})
    head = int(compacted["header"]["revision"])
    rec.call("range_compacted", "kv/range", {**wire.range_request("/rec/a", None), "revision": 2})
    rec.call("compaction_future", "kv/compaction", {"revision": head + 100, "physical": True})

    def put(key: str, value: JSONValue) -> None:
        rec.txn("ignored", [], [Put(key, value)], [])

    def put_two_delete_one() -> None:
        rec.txn("ignored", [], [Put("/w/1", "one"), Put("/w/2", {"two": 2})], [])
        rec.txn("ignored", [], [Delete("/w/1")], [])

    def watch_of(prefix: str, start: int) -> dict[str, Any]:
        return wire.watch_request(prefix, prefix_end(prefix), start)

    rec.watch("watch_events", watch_of("/w/", head + 1), 3, [put_two_delete_one])
    rec.watch("watch_progress", watch_of("/quiet/", head + 1), 2, [lambda: put("/loud", 1)])
    rec.watch("watch_compacted", watch_of("/w/", 2), 2, [])
    rec.watch("watch_empty_range", wire.watch_request("/w/", "/w/", head + 1), 1, [])
    rec.watch("watch_bad_request", {"create_request": {"key": "not base64!"}}, 1, [])
    (HERE / "ignored.json").unlink()


def main() -> int:
    # A progress notification every second, so a quiet watch shows one within the timeout.
    with EtcdServer(extra_args=("--experimental-watch-progress-notify-interval", "1s")) as server:
        record(Recorder(server.client_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
