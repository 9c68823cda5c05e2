"""Key rules, canonical JSON and request limits, shared by every backend.

Both backends validate through this module *before* touching storage, so bad input is
refused with the same error everywhere and nothing is written. Values are stored as
canonical JSON (sorted keys, no spaces) so that a value compare is a byte compare.
What this module must not do: I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from routeplane.model.errors import InvalidKey, InvalidRequest, InvalidValue
from routeplane.model.jsontypes import JSONValue
from routeplane.store.base import Compare, Delete, Get, Op, Put, Range

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 512 * 1024
# etcd refuses requests above 1.5 MiB and transactions of more than 128 operations by
# default; staying below both keeps the backends interchangeable.
MAX_TXN_BYTES = 1024 * 1024
MAX_TXN_OPS = 128

_KEY_RE = re.compile(r"/[\x21-\x7e]*")
_REV_TARGETS = ("mod_revision", "create_revision", "version")


def check_key(key: object, *, what: str = "key") -> str:
    """Return ``key`` if it is a valid key (or prefix), else raise ``InvalidKey``.

    Keys are printable ASCII without spaces, start with ``/`` and are at most
    ``MAX_KEY_BYTES`` long: byte order equals string order, and a prefix's range end
    is computable in both backends.
    """
    if not isinstance(key, str):
        raise InvalidKey(f"{what} must be a string, not {type(key).__name__}")
    if len(key) > MAX_KEY_BYTES:
        raise InvalidKey(f"{what} is longer than {MAX_KEY_BYTES} bytes")
    if not _KEY_RE.fullmatch(key):
        raise InvalidKey(
            f"{what} {key!r} is malformed: it must start with '/' and hold only "
            "printable ASCII characters without spaces"
        )
    return key


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def encode_value(value: object) -> str:
    """Canonical JSON text for ``value``; ``InvalidValue`` if it is not JSON or too large."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"value is not a JSON document: {exc}") from exc
    size = len(text.encode())
    if size > MAX_VALUE_BYTES:
        raise InvalidValue(f"value is {size} bytes; the limit is {MAX_VALUE_BYTES}")
    return text


def decode_value(text: str | bytes) -> JSONValue:
    """Parse a stored value. Stored values were canonical JSON when written."""
    value: JSONValue = json.loads(text)
    return value


@dataclass(frozen=True, slots=True)
class EncodedOp:
    """An operation with its key checked and its value encoded once."""

    op: Op
    encoded: str | None  # the canonical JSON of a Put's value
    end: str | None  # range end for prefix operations


@dataclass(frozen=True, slots=True)
class EncodedCompare:
    compare: Compare
    encoded: str | None  # canonical JSON of a value operand
    number: int  # integer operand of a revision compare


@dataclass(frozen=True, slots=True)
class PreparedTxn:
    compares: tuple[EncodedCompare, ...]
    on_success: tuple[EncodedOp, ...]
    on_failure: tuple[EncodedOp, ...]


def _prepare_op(op: object) -> EncodedOp:
    if isinstance(op, Put):
        check_key(op.key)
        if op.lease is not None and (not isinstance(op.lease, int) or op.lease <= 0):
            raise InvalidRequest(f"lease must be a positive lease id, not {op.lease!r}")
        return EncodedOp(op, encode_value(op.value), None)
    if isinstance(op, Delete):
        check_key(op.key, what="prefix" if op.prefix else "key")
        return EncodedOp(op, None, prefix_end(op.key) if op.prefix else None)
    if isinstance(op, Get):
        check_key(op.key)
        return EncodedOp(op, None, None)
    if isinstance(op, Range):
        check_key(op.prefix, what="prefix")
        return EncodedOp(op, None, prefix_end(op.prefix))
    raise InvalidRequest(f"not a store operation: {op!r}")


def _prepare_compare(cmp: object) -> EncodedCompare:
    if not isinstance(cmp, Compare):
        raise InvalidRequest(f"not a compare: {cmp!r}")
    check_key(cmp.key)
    if cmp.op not in ("==", "!=", "<", ">"):
        raise InvalidRequest(f"unknown compare operator {cmp.op!r}")
    if cmp.target == "value":
        if cmp.op not in ("==", "!="):
            raise InvalidRequest("values compare only with == or !=")
        return EncodedCompare(cmp, encode_value(cmp.operand), 0)
    if cmp.target in _REV_TARGETS:
        if not isinstance(cmp.operand, int) or isinstance(cmp.operand, bool):
            raise InvalidRequest(f"{cmp.target} compares with an integer, not {cmp.operand!r}")
        return EncodedCompare(cmp, None, cmp.operand)
    raise InvalidRequest(f"unknown compare target {cmp.target!r}")


def _op_key(op: Op) -> str:
    return op.prefix if isinstance(op, Range) else op.key


def _check_overlapping_writes(branch: tuple[EncodedOp, ...]) -> None:
    """etcd refuses a branch that writes one key twice; refuse it here for every backend."""
    seen: set[str] = set()
    ranges: list[tuple[str, str]] = []
    for entry in branch:
        op = entry.op
        if isinstance(op, Delete) and op.prefix and entry.end is not None:
            ranges.append((op.key, entry.end))
        elif isinstance(op, Put | Delete):
            if op.key in seen:
                raise InvalidRequest(f"transaction writes key {op.key!r} more than once")
            seen.add(op.key)
    for i, (start, end) in enumerate(ranges):
        overlaps_range = any(start < e and s < end for s, e in ranges[i + 1 :])
        if overlaps_range or any(start <= key < end for key in seen):
            raise InvalidRequest(f"transaction writes keys under prefix {start!r} more than once")


def prepare_txn(
    compares: Sequence[Compare], on_success: Sequence[Op], on_failure: Sequence[Op]
) -> PreparedTxn:
    """Validate a whole transaction up front, so a bad one writes nothing anywhere."""
    for name, seq in (
        ("compares", compares),
        ("on_success", on_success),
        ("on_failure", on_failure),
    ):
        if len(seq) > MAX_TXN_OPS:
            raise InvalidRequest(f"{name} has {len(seq)} entries; the limit is {MAX_TXN_OPS}")
    prepared = PreparedTxn(
        tuple(_prepare_compare(c) for c in compares),
        tuple(_prepare_op(o) for o in on_success),
        tuple(_prepare_op(o) for o in on_failure),
    )
    _check_overlapping_writes(prepared.on_success)
    _check_overlapping_writes(prepared.on_failure)
    ops = prepared.on_success + prepared.on_failure
    size = sum(len(_op_key(e.op)) + len((e.encoded or "").encode()) for e in ops)
    size += sum(len(c.compare.key) + len((c.encoded or "").encode()) for c in prepared.compares)
    if size > MAX_TXN_BYTES:
        raise InvalidRequest(f"transaction is {size} bytes; the limit is {MAX_TXN_BYTES}")
    return prepared


def compare_number(actual: int, op: str, operand: int) -> bool:
    """Evaluate one integer compare the way etcd does."""
    if op == "==":
        return actual == operand
    if op == "!=":
        return actual != operand
    if op == "<":
        return actual < operand
    return actual > operand


__all__ = [
    "MAX_KEY_BYTES",
    "MAX_TXN_BYTES",
    "MAX_TXN_OPS",
    "MAX_VALUE_BYTES",
    "EncodedCompare",
    "EncodedOp",
    "PreparedTxn",
    "check_key",
    "compare_number",
    "decode_value",
    "encode_value",
    "prefix_end",
    "prepare_txn",
]
