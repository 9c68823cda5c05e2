"""Red team: request bodies built to crash the api or exhaust its memory.

A JSON body nested 100,000 levels deep answered 500 (Python's parser gives up with a
RecursionError); every malformed body must get Neutron's 400 "Body contains invalid
data", one larger than the stated limit (1 MiB) a 413, and the api's memory must not grow
with what an attacker sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from routeplane.api.bodies import MAX_BODY_BYTES
from routeplane.testing.api import ApiServer
from tests.api.helpers import assert_fault

pytestmark = [pytest.mark.api]

DEEP = 100_000
MALFORMED = ("HTTPBadRequest", "Body contains invalid data")


def nested_object(levels: int) -> bytes:
    return b'{"network":' + b'{"a":' * levels + b"1" + b"}" * (levels + 1)


def nested_list(levels: int) -> bytes:
    return b'{"network":{"name":' + b"[" * levels + b"]" * levels + b"}}"


@pytest.fixture(scope="module")
def raw(api: ApiServer) -> Iterator[httpx.Client]:
    headers = {"X-Auth-Token": api.admin_token, "Content-Type": "application/json"}
    with httpx.Client(base_url=api.url, headers=headers, timeout=60) as http:
        yield http


@pytest.mark.parametrize(
    "body",
    [
        nested_object(DEEP),
        nested_list(DEEP),
        nested_object(900),  # parses, but deeper than any Neutron body
        b'{"network": ',
        b"[1,2",
        b"\xff\xfe{}",
        b'{"network": {"name": "\\ud800"',
    ],
    ids=[
        "object-100000",
        "list-100000",
        "object-900",
        "truncated",
        "open-list",
        "not-utf8",
        "bad-escape",
    ],
)
def test_malformed_bodies_are_neutrons_400(raw: httpx.Client, body: bytes) -> None:
    for method, path in (("POST", "/v2.0/networks"), ("PUT", "/v2.0/networks/x")):
        assert_fault(raw.request(method, path, content=body), 400, *MALFORMED)
    token = raw.post("/identity/v3/auth/tokens", content=body)
    assert_fault(token, 400, "HTTPBadRequest", "Malformed request body")


def test_too_large_is_413_declared_or_streamed(raw: httpx.Client) -> None:
    big = b'{"network": {"name": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    too_large = ("HTTPRequestEntityTooLarge", "Request is too large.")
    assert_fault(raw.post("/v2.0/networks", content=big), 413, *too_large)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    assert_fault(raw.post("/v2.0/networks", content=chunks()), 413, *too_large)
    fits = b'{"network": {"name": "' + b"x" * 300 + b'"}}'
    assert (
        raw.post("/v2.0/networks", content=fits).status_code == 400
    )  # name over 255: Neutron's own


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_does_not_grow_under_attack(api: ApiServer, raw: httpx.Client) -> None:
    """Fifty hostile bodies (deep, and 8 MiB declared and sent): the api's resident
    memory grows by less than 32 MiB, and it still answers."""
    for _ in range(3):  # warm up: the allocator's first pages are not growth
        raw.post("/v2.0/networks", content=nested_object(DEEP))
    before = rss_kib(api.pid)
    huge = b"x" * (8 * MAX_BODY_BYTES)
    for _ in range(25):
        raw.post("/v2.0/networks", content=nested_object(DEEP))
        raw.post("/v2.0/networks", content=huge)
    grown = rss_kib(api.pid) - before
    assert grown < 32 * 1024, f"the api grew by {grown} KiB"
    assert raw.get("/v2.0/networks").status_code == 200
