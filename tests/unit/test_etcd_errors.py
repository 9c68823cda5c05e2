"""Unit: every etcd failure becomes one of routeplane's errors (``store/etcd_errors.py``).

Scope: the refusals a real etcd gave (``tests/unit/etcd_answers``: unknown lease, compacted
and future revisions, too many operations, a duplicate key, a missing key, a TTL too
large, an unknown path, a malformed watch) map to the exception a caller catches, with
the subject (lease, revision, endpoint) named; transport failures are ``Unavailable``
naming the endpoint; a read timeout on a stream counts as idleness. No server, no sockets.
"""

from __future__ import annotations

import json

import pytest
import urllib3.exceptions

from routeplane.model.errors import (
    Compacted,
    InvalidRequest,
    LeaseNotFound,
    StoreError,
    Unavailable,
)
from routeplane.store import etcd_errors as errors
from routeplane.store import etcd_wire as wire
from tests.unit.etcd_answers import exchange

pytestmark = pytest.mark.unit

WHERE = "127.0.0.1:2379"


def refusal(name: str, **subject: int) -> StoreError:
    """The error for the recorded refusal ``name``, as the gateway client maps it."""
    recorded = exchange(name)
    body = recorded["answer"]
    text = body if isinstance(body, str) else json.dumps(body)
    return errors.from_status(recorded["status"], text, WHERE, **subject)


@pytest.mark.parametrize("name", ["lease_revoke_unknown", "txn_put_unknown_lease"])
def test_an_unknown_lease_is_lease_not_found_naming_it(name: str) -> None:
    error = refusal(name, lease=0x1234)
    assert exchange(name)["status"] == 404
    assert isinstance(error, LeaseNotFound)
    assert error.lease_id == 0x1234


def test_a_compacted_revision_is_compacted_at_least_at_that_revision() -> None:
    error = refusal("range_compacted", revision=2)
    assert isinstance(error, Compacted)
    assert (error.requested, error.compact_revision) == (2, 2)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("txn_too_many_ops", "too many operations in txn request"),
        ("txn_duplicate_key", "duplicate key given in txn request"),
        ("range_no_key", "key is not provided"),
        ("lease_grant_too_large", "too large lease TTL"),
        ("compaction_future", "mvcc: required revision is a future revision"),
    ],
)
def test_requests_etcd_refuses_are_invalid_requests_with_its_reason(name: str, text: str) -> None:
    error = refusal(name)
    assert exchange(name)["status"] == 400
    assert type(error) is InvalidRequest
    assert str(error) == f"etcd refused the request: etcdserver: {text}"


def test_an_unknown_path_is_a_plain_store_error_not_an_outage() -> None:
    error = refusal("path_unknown")
    assert type(error) is StoreError
    assert str(error) == "etcd error: Not Found"


def test_a_server_error_we_cannot_place_is_the_endpoint_being_unavailable() -> None:
    # etcd answers a malformed watch with 500 and gRPC code 2 (unknown).
    error = refusal("watch_bad_request", revision=7)
    assert type(error) is Unavailable
    assert str(error) == f"etcd at {WHERE} is unavailable: illegal base64 data at input byte 3"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"error": "etcdserver: request timed out", "code": 14}),
        (400, {"error": "etcdserver: no leader", "message": "etcdserver: no leader"}),
        (200, {"message": "anything", "code": 4}),
        (408, "slow"),
    ],
)
def test_etcds_transient_refusals_are_unavailable_naming_the_endpoint(
    status: int, body: object
) -> None:
    # Hand-written: etcd's transient errors (no leader, timeouts) are hard to provoke.
    text = body if isinstance(body, str) else json.dumps(body)
    error = errors.from_status(status, text, WHERE)
    assert type(error) is Unavailable
    assert str(error).startswith(f"etcd at {WHERE} is unavailable: ")


def test_an_error_inside_a_stream_message_maps_like_an_error_answer() -> None:
    # The gateway wraps a streaming endpoint's error once more: {"error": {...}}.
    recorded = exchange("range_compacted")["answer"]
    with pytest.raises(Compacted):
        wire.watch_message(json.dumps({"error": recorded}).encode(), 5, "/w/")
    with pytest.raises(LeaseNotFound):
        wire.keepalive_ttl({"error": exchange("lease_revoke_unknown")["answer"]}, 9)


@pytest.mark.parametrize(
    "exc",
    [
        urllib3.exceptions.NewConnectionError(None, "Connection refused"),  # type: ignore[arg-type]
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104)),
        urllib3.exceptions.ReadTimeoutError(None, "/v3/kv/range", "Read timed out."),  # type: ignore[arg-type]
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_transport_failures_are_unavailable_naming_the_endpoint(exc: Exception) -> None:
    assert isinstance(exc, errors.TRANSPORT_ERRORS)
    error = errors.from_transport(exc, WHERE, "kv/range")
    assert type(error) is Unavailable
    assert str(error).startswith(f"etcd at {WHERE} is unavailable: kv/range: ")


def test_only_a_read_timeout_counts_as_an_idle_stream() -> None:
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/v3/watch", "Read timed out.")  # type: ignore[arg-type]
    assert errors.is_idle_timeout(timeout)
    assert errors.is_idle_timeout(TimeoutError("timed out"))
    assert errors.is_idle_timeout(urllib3.exceptions.ProtocolError("broken", timeout))
    assert not errors.is_idle_timeout(urllib3.exceptions.ProtocolError("Connection reset"))
    assert not errors.is_idle_timeout(ConnectionResetError(104, "reset"))
