"""The JSON of etcd's gRPC gateway (``/v3/``): building requests, reading answers.

Kept apart from :mod:`routeplane.store.etcd` so the protocol translation is pure and can
be unit-tested without a server. The gateway speaks protobuf-as-JSON: keys and values are
base64, int64 fields arrive as strings, and fields at their zero value are left out (a
PUT event has no ``type``, a failed transaction no ``succeeded``, an empty range no
``kvs``). Our keys are ASCII and our values canonical JSON text (see ``codec``).
Errors an answer carries are translated by :mod:`routeplane.store.etcd_errors`.
What this module must not do: I/O.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routeplane.model.errors import (
    Compacted,
    InvalidRequest,
    LeaseNotFound,
    StoreError,
    Unavailable,
)
from routeplane.store import etcd_errors as errors
from routeplane.store.base import (
    Delete,
    Event,
    EventType,
    Get,
    KeyValue,
    OpResult,
    Put,
    RangeResult,
    TxnResult,
)
from routeplane.store.codec import EncodedCompare, EncodedOp, PreparedTxn, decode_value

Json = dict[str, Any]
Reply = Mapping[str, Any]

_TARGETS = {
    "value": ("VALUE", "value"),
    "mod_revision": ("MOD", "mod_revision"),
    "create_revision": ("CREATE", "create_revision"),
    "version": ("VERSION", "version"),
}
_RESULTS = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


# validation ----------------------------------------------------------------------------
def positive(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidRequest(f"{what} must be a positive integer, not {value!r}")
    return value


def lease_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"a lease id is an integer, not {value!r}")
    return value


# encoding ------------------------------------------------------------------------------
def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def unb64(data: str) -> str:
    return base64.b64decode(data).decode()


def number(reply: Reply, field: str) -> int:
    """An int64 field: a string in JSON, absent when zero."""
    return int(reply.get(field) or 0)


def range_request(key: str, end: str | None) -> Json:
    body: Json = {"key": b64(key)}
    if end is not None:
        body["range_end"] = b64(end)
    return body


def compare_json(entry: EncodedCompare) -> Json:
    target, field = _TARGETS[entry.compare.target]
    operand: object = b64(entry.encoded) if entry.encoded is not None else entry.number
    return {
        "key": b64(entry.compare.key),
        "target": target,
        "result": _RESULTS[entry.compare.op],
        field: operand,
    }


def op_json(entry: EncodedOp) -> Json:
    op = entry.op
    if isinstance(op, Put):
        assert entry.encoded is not None
        put: Json = {"key": b64(op.key), "value": b64(entry.encoded)}
        if op.lease is not None:
            put["lease"] = op.lease
        return {"request_put": put}
    if isinstance(op, Delete):
        return {"request_delete_range": range_request(op.key, entry.end)}
    if isinstance(op, Get):
        return {"request_range": range_request(op.key, None)}
    return {"request_range": range_request(op.prefix, entry.end)}


def txn_request(txn: PreparedTxn) -> Json:
    return {
        "compare": [compare_json(c) for c in txn.compares],
        "success": [op_json(o) for o in txn.on_success],
        "failure": [op_json(o) for o in txn.on_failure],
    }


def first_lease(txn: PreparedTxn) -> int | None:
    """The lease a transaction names, to report in ``LeaseNotFound``."""
    for entry in txn.on_success + txn.on_failure:
        if isinstance(entry.op, Put) and entry.op.lease is not None:
            return entry.op.lease
    return None


def watch_request(prefix: str, end: str, start_revision: int) -> Json:
    return {
        "create_request": {
            "key": b64(prefix),
            "range_end": b64(end),
            "start_revision": start_revision,
            "progress_notify": True,
        }
    }


# decoding ------------------------------------------------------------------------------
def answered_by_leader(status: Reply) -> bool:
    """Whether a ``maintenance/status`` answer comes from the cluster's raft leader."""
    header = status.get("header")
    member = header.get("member_id") if isinstance(header, dict) else None
    return member is not None and status.get("leader") == member


def header_revision(reply: Reply) -> int:
    return number(reply.get("header") or {}, "revision")


def decode_kv(kv: Reply) -> KeyValue:
    key = unb64(kv["key"])
    try:
        value = decode_value(unb64(kv.get("value") or ""))
    except ValueError as exc:
        raise StoreError(f"etcd key {key} does not hold a JSON value") from exc
    lease = number(kv, "lease")
    return KeyValue(
        key,
        value,
        number(kv, "create_revision"),
        number(kv, "mod_revision"),
        number(kv, "version"),
        lease or None,
    )


def decode_kvs(reply: Reply) -> tuple[KeyValue, ...]:
    items = (decode_kv(kv) for kv in reply.get("kvs") or ())
    return tuple(sorted(items, key=lambda kv: kv.key))


def decode_range(reply: Reply) -> RangeResult:
    return RangeResult(decode_kvs(reply), header_revision(reply))


def _op_result(entry: EncodedOp, response: Reply) -> OpResult:
    if isinstance(entry.op, Put):
        return None
    if isinstance(entry.op, Delete):
        return number(response.get("response_delete_range") or {}, "deleted")
    items = decode_kvs(response.get("response_range") or {})
    if isinstance(entry.op, Get):
        return items[0] if items else None
    return items


def decode_txn(reply: Reply, txn: PreparedTxn) -> TxnResult:
    succeeded = bool(reply.get("succeeded", False))
    branch = txn.on_success if succeeded else txn.on_failure
    responses: Sequence[Reply] = reply.get("responses") or ()
    if len(responses) != len(branch):
        raise StoreError(f"etcd answered {len(responses)} results for {len(branch)} operations")
    results = tuple(_op_result(e, r) for e, r in zip(branch, responses, strict=True))
    return TxnResult(succeeded, header_revision(reply), results)


def decode_event(event: Reply) -> Event:
    kv: Reply = event.get("kv") or {}
    revision = number(kv, "mod_revision")
    if event.get("type") == "DELETE":
        return Event(EventType.DELETE, unb64(kv["key"]), None, revision)
    item = decode_kv(kv)
    return Event(EventType.PUT, item.key, item.value, revision, item.create_revision, item.version)


def decode_events(result: Reply) -> list[Event]:
    return [decode_event(e) for e in result.get("events") or ()]


@dataclass(frozen=True, slots=True)
class WatchMessage:
    """One message of a watch stream: events, or a progress revision, or neither."""

    events: list[Event]
    progress: int = 0  # header revision of a progress notification


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The newline-delimited messages of a gateway stream, however it is chunked."""
    pending = bytearray()
    for chunk in chunks:
        searched = len(pending)
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", max(start, searched))) >= 0:
            line = bytes(pending[start:end])
            start = end + 1
            if line.strip():
                yield line
        del pending[:start]


def watch_message(line: bytes, requested: int, prefix: str) -> WatchMessage:
    """Read one stream message of a watch that asked for revisions from ``requested``.

    A compacted start revision and a cancelled watch end the watch: they raise.
    """
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise StoreError(f"etcd watch on {prefix}: unreadable message {line[:80]!r}") from exc
    if "error" in message:
        raise errors.from_answer(message["error"], revision=requested)
    result: Reply = message.get("result") or {}
    compacted = number(result, "compact_revision")
    if compacted > 0:
        raise Compacted(requested, compacted)
    if result.get("canceled"):
        reason = result.get("cancel_reason") or "no reason given"
        raise Unavailable(f"etcd canceled the watch on {prefix}: {reason}")
    if result.get("created"):
        return WatchMessage([])
    events = decode_events(result)
    return WatchMessage(events, 0 if events else header_revision(result))


def keepalive_ttl(reply: Reply, lease_id: int) -> int:
    """The TTL a keep-alive answer grants; an expired lease comes back without one."""
    if "error" in reply:
        raise errors.from_answer(reply["error"], lease=lease_id)
    result: Reply = reply.get("result") or {}
    ttl = number(result, "TTL")
    if ttl <= 0:
        raise LeaseNotFound(lease_id)
    return ttl


# store URLs ----------------------------------------------------------------------------
UNIX = "unix:"  # an endpoint that is a unix socket's path (its port is 0)


def _endpoint(text: str, url: str) -> tuple[str, int]:
    if text.startswith(UNIX):  # a member's unix socket: its path, port 0
        path = text.removeprefix(UNIX)
        if not path.startswith("/"):
            raise InvalidRequest(f"store URL {url!r}: {text!r} is not unix:/absolute/path")
        return path, 0
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidRequest(f"store URL {url!r}: {text!r} is not host:port")
    return host, int(port)


def parse_url(url: str) -> tuple[list[tuple[str, int]], dict[str, float]]:
    """``etcd://host:port[,host:port...][?timeout=S&watch_idle_timeout=S]``; an endpoint
    may also be ``unix:/path/to/socket`` (a member's unix client URL, as the lab uses)."""
    scheme, sep, rest = url.partition("://")
    if scheme != "etcd" or not sep:
        raise InvalidRequest(f"store URL {url!r} is not an etcd:// URL")
    location, _, query = rest.partition("?")
    location = location.rstrip("/")
    if not location:
        raise InvalidRequest(f"store URL {url!r} names no endpoint")
    endpoints = [_endpoint(part, url) for part in location.split(",")]
    options: dict[str, float] = {}
    for item in filter(None, query.split("&")):
        name, _, text = item.partition("=")
        if name not in ("timeout", "watch_idle_timeout"):
            raise InvalidRequest(f"store URL {url!r}: unknown option {name!r}")
        try:
            options[name] = float(text)
        except ValueError:
            raise InvalidRequest(f"store URL {url!r}: {name}={text!r} is not a number") from None
        if not options[name] > 0:
            raise InvalidRequest(f"store URL {url!r}: {name} must be positive")
    return endpoints, options


def host_port(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    if port == 0:
        return f"{UNIX}{host}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_url(endpoints: Sequence[tuple[str, int]]) -> str:
    return "etcd://" + ",".join(host_port(e) for e in endpoints)


__all__ = [
    "UNIX",
    "WatchMessage",
    "b64",
    "compare_json",
    "decode_events",
    "decode_kv",
    "decode_range",
    "decode_txn",
    "first_lease",
    "format_url",
    "header_revision",
    "host_port",
    "keepalive_ttl",
    "lease_id",
    "number",
    "op_json",
    "parse_url",
    "positive",
    "range_request",
    "split_lines",
    "txn_request",
    "unb64",
    "watch_message",
    "watch_request",
]
