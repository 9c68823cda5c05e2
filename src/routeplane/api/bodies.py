"""Request bodies read as an attacker would send them: bounded in size and in depth.

A body is read only up to ``MAX_BODY_BYTES`` (1 MiB, a bulk create of thousands of ports
fits): a larger ``Content-Length`` is refused before anything is read, and a chunked body
is cut off as soon as it passes the limit, so the api's memory never holds more than the
limit per request. The answer is ``413`` as oslo.middleware's ``sizelimit`` gives it
(``HTTPRequestEntityTooLarge`` "Request is too large."). Neutron 29 itself has no limit.

JSON that does not parse is Neutron's ``400 HTTPBadRequest`` "Body contains invalid
data" (the neutron-peer's answer for truncated or non-JSON bodies), and so is JSON nested
deeper than any Neutron body is (``MAX_DEPTH``): a body nested 100,000 levels deep makes
Python's parser give up with ``RecursionError``, which Neutron answers with a 500, and one
a little shallower would reach the validators' recursion; both are the client's error.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from routeplane.services.errors import ApiFault

MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32  # Neutron's deepest bodies (bulk ports with pairs) are five levels deep


def too_large() -> ApiFault:
    return ApiFault("HTTPRequestEntityTooLarge", 413, "Request is too large.")


def malformed() -> ApiFault:
    return ApiFault("HTTPBadRequest", 400, "Body contains invalid data")


async def read_bytes(request: Request) -> bytes:
    """The body, at most ``MAX_BODY_BYTES`` of it; 413 beyond."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in item)
    return deepest


def parse(raw: bytes, fault: ApiFault | None = None) -> Any:
    """JSON within ``MAX_DEPTH``, or ``fault`` (Neutron's malformed-body 400)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise fault or malformed() from None
    if depth(value) > MAX_DEPTH:
        raise fault or malformed()
    return value


__all__ = ["MAX_BODY_BYTES", "MAX_DEPTH", "depth", "malformed", "parse", "read_bytes", "too_large"]
