"""Every etcd failure becomes a routeplane error here, and only here.

Callers of the store catch ``routeplane.model.errors``, never an HTTP library's
exceptions or etcd's texts (STYLE G7). Three kinds of failure reach the etcd backend, and
all three are translated by this module:

- the transport fails (refused, reset, timed out, a stream cut off): ``Unavailable``,
  naming the endpoint, whatever urllib3 or the socket called it;
- the gateway answers with an error status and a JSON body ``{"error", "message",
  "code"}``: classified by etcd's message, then by its gRPC code, then by the HTTP status;
- a ``200`` answer carries an error inside (a watch stream's message, a keep-alive
  answer): the same table as an error status.

The table, as etcd 3.4 words it (``tests/unit/etcd_answers`` holds the recorded answers)::

    "requested lease not found"                  (gRPC 5)   -> LeaseNotFound
    "required revision has been compacted"       (gRPC 11)  -> Compacted
    too many ops, duplicate key, future revision,
    too large TTL, no key, request too large     (3, 11)    -> InvalidRequest
    any other INVALID_ARGUMENT                   (gRPC 3)   -> InvalidRequest
    timed out, no leader, leader changed, ...    (1, 4, 14) -> Unavailable
    HTTP 5xx or 408 with nothing we know                    -> Unavailable
    anything else                                           -> StoreError

What this module must not do: I/O. It imports urllib3 only to name its exceptions.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from typing import Any

import urllib3.exceptions

from routeplane.model.errors import (
    Compacted,
    InvalidRequest,
    LeaseNotFound,
    StoreError,
    Unavailable,
)

# What a failing connection raises: urllib3's own errors (with retries off it raises them
# unwrapped), the socket's, and http.client's for a malformed or truncated answer.
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)

_LEASE_NOT_FOUND = "requested lease not found"
_COMPACTED = "required revision has been compacted"
_BAD_REQUEST = (
    "request is too large",
    "too many operations in txn request",
    "duplicate key given in txn request",
    "required revision is a future revision",
    "too large lease ttl",
    "key is not provided",
)
_TRANSIENT = (
    "request timed out",
    "leader changed",
    "no leader",
    "server stopped",
    "too many requests",
    "connection is closing",
    "transport is closing",
)
_GRPC_CANCELED, _GRPC_INVALID_ARGUMENT, _GRPC_DEADLINE, _GRPC_UNAVAILABLE = 1, 3, 4, 14
_HTTP_REQUEST_TIMEOUT = 408


def _parse(body: str | Mapping[str, Any]) -> tuple[str, int | None]:
    """The message and gRPC code of an error answer (a JSON text or an ``error`` object)."""
    parsed: object = body
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return body.strip(), None
    if isinstance(parsed, Mapping) and isinstance(parsed.get("error"), Mapping):
        parsed = parsed["error"]  # a streaming endpoint wraps it once more
    if not isinstance(parsed, Mapping):
        return str(body).strip(), None
    message = str(parsed.get("message") or parsed.get("error") or body).strip()
    code = parsed.get("code")
    return message, code if isinstance(code, int) else None


def from_answer(
    body: str | Mapping[str, Any], *, lease: int | None = None, revision: int | None = None
) -> StoreError:
    """Our exception for an etcd error answer; ``lease``/``revision`` name the subject."""
    message, code = _parse(body)
    lowered = message.lower()
    if _LEASE_NOT_FOUND in lowered:
        return LeaseNotFound(lease if lease is not None else 0)
    if _COMPACTED in lowered:
        # etcd does not say where the compaction point is; it is at least ``revision``.
        point = revision or 0
        return Compacted(point, point)
    if any(text in lowered for text in _BAD_REQUEST) or code == _GRPC_INVALID_ARGUMENT:
        return InvalidRequest(f"etcd refused the request: {message}")
    if any(text in lowered for text in _TRANSIENT) or code in (
        _GRPC_CANCELED,
        _GRPC_DEADLINE,
        _GRPC_UNAVAILABLE,
    ):
        return Unavailable(f"etcd is unavailable: {message}")
    return StoreError(f"etcd error: {message}")


def from_status(
    status: int,
    body: str,
    where: str,
    *,
    lease: int | None = None,
    revision: int | None = None,
) -> StoreError:
    """Our exception for a non-200 answer from the endpoint ``where``.

    A transient refusal (etcd's own, or a 5xx/408 status we cannot place) is
    ``Unavailable`` naming the endpoint, so the caller can tell which server failed.
    """
    error = from_answer(body, lease=lease, revision=revision)
    transient = status >= 500 or status == _HTTP_REQUEST_TIMEOUT
    if isinstance(error, Unavailable) or (type(error) is StoreError and transient):
        detail = _parse(body)[0] or f"HTTP {status}"
        return Unavailable(f"etcd at {where} is unavailable: {detail}")
    return error


def from_transport(exc: BaseException, where: str, what: str = "") -> Unavailable:
    """``Unavailable`` for a connection that failed; ``what`` says which call it carried."""
    doing = f"{what}: " if what else ""
    return Unavailable(f"etcd at {where} is unavailable: {doing}{exc}")


def is_idle_timeout(exc: BaseException) -> bool:
    """Whether a stream failed by staying silent (a read timeout), not by breaking."""
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return True
    return any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args)


__all__ = [
    "TRANSPORT_ERRORS",
    "from_answer",
    "from_status",
    "from_transport",
    "is_idle_timeout",
]
