"""Unit: the etcd gateway's JSON, built and read by ``store/etcd_wire.py``, against answers
a real etcd gave (``tests/unit/etcd_answers``, recorded by its ``record.py``).

Scope: each request the backend sends is byte-for-byte the one etcd accepted when the
answers were recorded, and each recorded answer decodes into what the store returns:
ranges, transactions of both branches, deletes, leases, and the messages of a watch
stream (created, events, progress, compaction, cancellation). No server, no sockets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from routeplane.model.errors import Compacted, LeaseNotFound, StoreError, Unavailable
from routeplane.store import Compare, Delete, Get, Op, Put, Range, absent
from routeplane.store import etcd_wire as wire
from routeplane.store.base import Event, EventType, KeyValue
from routeplane.store.codec import PreparedTxn, prefix_end, prepare_txn
from tests.unit.etcd_answers import answer, exchange, lines

pytestmark = pytest.mark.unit

CLAIM: tuple[list[Compare], list[Op], list[Op]] = (
    [absent("/rec/b")],
    [Put("/rec/b", "x"), Get("/rec/a"), Range("/rec/")],
    [Get("/rec/b")],
)
A = KeyValue("/rec/a", {"n": 1}, create_revision=2, mod_revision=2, version=1)
B = KeyValue("/rec/b", "x", create_revision=3, mod_revision=3, version=1)


def leased(name: str) -> int:
    """The lease id a recorded request named (ids differ on every recording)."""
    request = exchange(name)["request"]
    return int(request.get("ID") or request["success"][0]["request_put"]["lease"])


def watch_start(name: str) -> int:
    return int(exchange(name)["request"]["create_request"]["start_revision"])


# requests ----------------------------------------------------------------------------
REQUESTS: dict[str, Callable[[], dict[str, Any]]] = {
    "txn_put": lambda: wire.txn_request(prepare_txn([], [Put("/rec/a", {"n": 1})], [])),
    "txn_success": lambda: wire.txn_request(prepare_txn(*CLAIM)),
    "txn_failure": lambda: wire.txn_request(prepare_txn(*CLAIM)),
    "txn_delete_prefix": lambda: wire.txn_request(
        prepare_txn([], [Delete("/rec/", prefix=True)], [])
    ),
    "txn_put_leased": lambda: wire.txn_request(
        prepare_txn([], [Put("/rec/leased", 1, lease=leased("txn_put_leased"))], [])
    ),
    "range_prefix": lambda: wire.range_request("/rec/", prefix_end("/rec/")),
    "range_key": lambda: wire.range_request("/rec/a", None),
    "watch_events": lambda: wire.watch_request("/w/", "/w0", watch_start("watch_events")),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_requests_are_the_ones_etcd_accepted(name: str) -> None:
    assert REQUESTS[name]() == exchange(name)["request"]
    assert exchange(name)["status"] == 200


def test_compares_and_operations_use_the_gateways_enum_names() -> None:
    body = wire.txn_request(prepare_txn(*CLAIM))
    assert body["compare"] == [
        {"key": wire.b64("/rec/b"), "target": "CREATE", "result": "EQUAL", "create_revision": 0}
    ]
    assert [next(iter(op)) for op in body["success"]] == [
        "request_put",
        "request_range",
        "request_range",
    ]


# ranges ------------------------------------------------------------------------------
def test_a_prefix_range_decodes_to_its_items_in_key_order_and_the_store_revision() -> None:
    result = wire.decode_range(answer("range_prefix"))
    assert result.items == (A, B)
    assert result.revision == 3


def test_a_key_and_a_missing_key() -> None:
    assert wire.decode_kvs(answer("range_key")) == (A,)
    assert wire.decode_kvs(answer("range_missing")) == ()  # etcd leaves "kvs" out


def test_a_leased_key_carries_its_lease() -> None:
    (item,) = wire.decode_kvs(answer("range_leased"))
    assert item.lease == leased("txn_put_leased")
    assert item.value == 1


def test_a_count_only_range_gives_the_store_revision() -> None:
    assert wire.header_revision(answer("range_count_only")) == 3


# transactions ------------------------------------------------------------------------
def decode(name: str, txn: PreparedTxn) -> tuple[bool, int, tuple[object, ...]]:
    result = wire.decode_txn(answer(name), txn)
    return result.succeeded, result.revision, result.results


def test_a_put_succeeds_at_a_new_revision() -> None:
    txn = prepare_txn([], [Put("/rec/a", {"n": 1})], [])
    assert decode("txn_put", txn) == (True, 2, (None,))


def test_a_claim_that_holds_runs_its_success_branch_which_sees_its_own_put() -> None:
    assert decode("txn_success", prepare_txn(*CLAIM)) == (True, 3, (None, A, (A, B)))


def test_a_claim_that_fails_runs_its_failure_branch_and_changes_nothing() -> None:
    # etcd leaves "succeeded" out when it is false, and the revision stays.
    assert "succeeded" not in answer("txn_failure")
    assert decode("txn_failure", prepare_txn(*CLAIM)) == (False, 3, (B,))


def test_a_prefix_delete_counts_what_it_deleted() -> None:
    txn = prepare_txn([], [Delete("/rec/", prefix=True)], [])
    assert decode("txn_delete_prefix", txn) == (True, 4, (2,))


def test_an_answer_with_the_wrong_number_of_results_is_an_error() -> None:
    with pytest.raises(StoreError, match="1 results for 3 operations"):
        wire.decode_txn(answer("txn_failure"), prepare_txn(CLAIM[0], [], CLAIM[1]))


# leases ------------------------------------------------------------------------------
def test_a_grant_gives_the_id_and_a_keepalive_the_ttl() -> None:
    assert wire.number(answer("lease_grant"), "ID") > 0
    assert wire.number(answer("lease_grant"), "TTL") == 30
    assert wire.keepalive_ttl(answer("lease_keepalive"), leased("lease_keepalive")) == 30


def test_a_keepalive_of_a_revoked_lease_comes_back_without_a_ttl() -> None:
    lease = leased("lease_keepalive_gone")
    assert exchange("lease_keepalive_gone")["status"] == 200
    with pytest.raises(LeaseNotFound) as raised:
        wire.keepalive_ttl(answer("lease_keepalive_gone"), lease)
    assert raised.value.lease_id == lease


# watch streams -----------------------------------------------------------------------
def test_events_decode_in_order_puts_with_values_deletes_without() -> None:
    created, puts, deletes = lines("watch_events")
    start = watch_start("watch_events")
    assert wire.watch_message(created, start, "/w/") == wire.WatchMessage([])
    assert wire.watch_message(puts, start, "/w/").events == [
        Event(EventType.PUT, "/w/1", "one", 7, create_revision=7, version=1),
        Event(EventType.PUT, "/w/2", {"two": 2}, 7, create_revision=7, version=1),
    ]
    assert wire.watch_message(deletes, 8, "/w/").events == [
        Event(EventType.DELETE, "/w/1", None, 8)
    ]


def test_a_progress_notification_carries_the_revision_reached() -> None:
    created, progress = lines("watch_progress")
    start = watch_start("watch_progress")
    assert wire.watch_message(created, start, "/quiet/") == wire.WatchMessage([])
    assert wire.watch_message(progress, start, "/quiet/") == wire.WatchMessage([], progress=9)


def test_a_compacted_start_revision_ends_the_watch_with_the_compaction_point() -> None:
    created, compacted = lines("watch_compacted")
    assert wire.watch_message(created, 2, "/w/") == wire.WatchMessage([])
    with pytest.raises(Compacted) as raised:
        wire.watch_message(compacted, 2, "/w/")
    assert (raised.value.requested, raised.value.compact_revision) == (2, 3)


def test_a_watch_etcd_cancels_is_unavailable_with_etcds_reason() -> None:
    (canceled,) = lines("watch_empty_range")
    with pytest.raises(Unavailable, match="canceled the watch on /w/: mvcc: watcher range"):
        wire.watch_message(canceled, 9, "/w/")


def test_an_unreadable_stream_message_is_an_error_naming_the_watch() -> None:
    with pytest.raises(StoreError, match="watch on /w/: unreadable"):
        wire.watch_message(b"{not json", 1, "/w/")


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_stream_lines_are_whole_however_the_stream_is_chunked(size: int) -> None:
    sent = lines("watch_events")
    stream = b"".join(line + b"\n" for line in sent)
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert list(wire.split_lines(chunks)) == sent
    assert [json.loads(line) for line in wire.split_lines(chunks)] == exchange("watch_events")[
        "messages"
    ]


def test_a_store_url_names_tcp_endpoints_and_unix_sockets_and_prints_them_back() -> None:
    url = "etcd://127.0.0.1:2379,unix:/run/lab/etcd1/client.sock:2379,[::1]:2379?timeout=2"
    endpoints, options = wire.parse_url(url)
    assert endpoints == [("127.0.0.1", 2379), ("/run/lab/etcd1/client.sock:2379", 0), ("::1", 2379)]
    assert options == {"timeout": 2.0}
    assert wire.format_url(endpoints) == url.partition("?")[0]


@pytest.mark.parametrize("endpoint", ["unix:relative.sock", "unix:", "/abs.sock"])
def test_a_unix_endpoint_must_be_an_absolute_path(endpoint: str) -> None:
    with pytest.raises(StoreError, match="is not"):
        wire.parse_url(f"etcd://{endpoint}")


def test_the_leaders_status_names_itself_as_leader_and_a_followers_does_not() -> None:
    # maintenance/status as etcd 3.4.23 answered it, on the leader and on a follower
    def status(member: str) -> dict[str, Any]:
        header = {"cluster_id": "10940271663376977867", "member_id": member}
        return {"header": header, "version": "3.4.23", "leader": "13756118960458999183"}

    leader, follower = status("13756118960458999183"), status("1375611896045899918")
    assert wire.answered_by_leader(leader)
    assert not wire.answered_by_leader(follower)
    assert not wire.answered_by_leader({"header": {}})
