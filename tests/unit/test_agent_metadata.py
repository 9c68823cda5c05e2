"""Unit: the metadata service's decisions without sockets — which port a request belongs
to (interface and source address, never what the request says), what it answers, the
long poll (an answer as soon as the port's record changes, or the same state after the
limit; the server is told which taps changed), and how a request head is read and an
answer written. Records are fed as the follower delivers them; ``meta_data.json`` reads
an embedded store."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from typing import Any

import pytest

from routeplane.agent.metadata import Endpoint, Mirror, Responder, find_port
from routeplane.agent.metadata_http import head_end, parse_request, render
from routeplane.model.endpoint import EndpointRecord
from routeplane.store import Event, EventType, KeyValue
from routeplane.store.sqlite import SqliteStore
from routeplane.store.watcher import Snapshot

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
PREFIX = f"{ROOT}endpoints/node1/"
ADDRESSES = "/routeplane/v1/addresses"


def endpoint(
    port: str, tap: str, *fixed: str, pairs: tuple[str, ...] = (), rev: int = 1
) -> Endpoint:
    record: EndpointRecord = {"port_id": port, "interface": tap, "fixed_ips": list(fixed),
              "allowed_addresses": list(pairs), "project_id": "p1"}  # fmt: skip
    return Endpoint(port, rev, record)


VM1 = endpoint("p1", "tapaaa", "10.28.0.13", "fd5f::13", pairs=("10.28.9.0/24",))
VM2 = endpoint("p2", "tapbbb", "10.28.0.14", pairs=("10.28.9.0/24",))
VM3 = endpoint("p3", "tapccc", "10.28.0.15", pairs=("10.28.7.7",))
ALL = [VM1, VM2, VM3]


@pytest.mark.parametrize(
    ("interface", "source", "expected"),
    [
        ("tapaaa", "10.28.0.13", VM1),  # its own fixed IP on its own tap
        ("tapaaa", "fd5f::13", VM1),
        ("tapaaa", "::ffff:10.28.0.13", VM1),  # as a dual-stack socket reports it
        ("tapbbb", "10.28.0.13", None),  # VM1's address on another tap: refused
        ("tapaaa", "10.28.0.14", None),  # another port's address on VM1's tap: refused
        ("tapaaa", "10.28.0.99", None),  # nobody's
        (None, "10.28.0.13", None),  # interface unknown: the source alone is not enough
        ("tapccc", "10.28.7.7", VM3),  # an allowed-address pair of one port only
        ("tapaaa", "10.28.9.5", VM1),  # a pair prefix shared with a port on another tap
        ("tapaaa", "not an address", None),
        ("tapccc", "fe80::f816:3eff:fe00:15", VM3),  # link-local: the tap's one port
        (None, "fe80::f816:3eff:fe00:15", None),
        ("tapeee", "fe80::1", None),  # no port's tap
    ],
)
def test_find_port(interface: str | None, source: str, expected: Endpoint | None) -> None:
    assert find_port(ALL, interface, source) == expected


def test_find_port_refuses_a_pair_two_ports_of_one_tap_share() -> None:
    a = endpoint("pa", "tapddd", "10.28.0.20", pairs=("10.28.8.8",))
    b = endpoint("pb", "tapddd", "10.28.0.21", pairs=("10.28.8.8",))
    assert find_port([a, b], "tapddd", "10.28.8.8") is None
    assert find_port([a, b], "tapddd", "10.28.0.21") == b  # fixed IPs still decide
    assert find_port([a, b], "tapddd", "fe80::1") is None  # two ports: a link-local names neither


# --- the mirror and the responder --------------------------------------------------------


def ask(responder: Responder, path: str, source: str, tap: str) -> tuple[int, dict[str, Any]]:
    """A JSON answer of ``responder`` (a text answer fails the test)."""
    status, body = responder.answer(path, source, tap)
    assert isinstance(body, dict), body
    return status, body


def kv(port: str, value: dict[str, Any], rev: int) -> KeyValue:
    return KeyValue(f"{PREFIX}{port}", value, rev, rev, 1)


def put(port: str, value: dict[str, Any], rev: int) -> Event:
    return Event(EventType.PUT, f"{PREFIX}{port}", value, rev)


def test_nothing_is_answered_before_the_first_snapshot(store: SqliteStore) -> None:
    mirror = Mirror()
    responder = Responder(mirror, store)
    assert responder.answer(ADDRESSES, "10.28.0.13", "tapaaa")[0] == 503
    mirror.take(Snapshot({}, 5), PREFIX)
    assert responder.answer(ADDRESSES, "10.28.0.13", "tapaaa")[0] == 404


def test_answers_follow_snapshot_events_and_deletes(store: SqliteStore) -> None:
    mirror = Mirror()
    responder = Responder(mirror, store)
    mirror.take(Snapshot({f"{PREFIX}p1": kv("p1", dict(VM1.record), 7)}, 7), PREFIX)
    assert responder.answer(ADDRESSES, "10.28.0.13", "tapaaa") == (
        200,
        {"port_id": "p1", "revision": 7,
         "addresses": [{"ip_address": "10.28.0.13"}, {"ip_address": "fd5f::13"}]},
    )  # fmt: skip
    moved_in = {**VM1.record, "fixed_ips": ["10.28.0.13", "10.28.0.23"]}
    mirror.take([put("p1", moved_in, 9)], PREFIX)
    status, body = ask(responder, ADDRESSES, "10.28.0.13", "tapaaa")
    assert (status, body["revision"]) == (200, 9)
    assert {"ip_address": "10.28.0.23"} in body["addresses"]
    # the record moves to another tap (a re-plug): the old tap no longer identifies it
    mirror.take([put("p1", {**moved_in, "interface": "tapeee"}, 10)], PREFIX)
    assert responder.answer(ADDRESSES, "10.28.0.13", "tapaaa")[0] == 404
    assert responder.answer(ADDRESSES, "10.28.0.13", "tapeee")[0] == 200
    mirror.take([Event(EventType.DELETE, f"{PREFIX}p1", None, 11)], PREFIX)
    assert responder.answer(ADDRESSES, "10.28.0.13", "tapeee")[0] == 404


def test_bad_requests(store: SqliteStore) -> None:
    mirror = Mirror()
    mirror.replace([VM1])
    responder = Responder(mirror, store)
    assert responder.answer("/latest/user-data", "10.28.0.13", "tapaaa")[0] == 404
    assert responder.answer(f"{ADDRESSES}?wait=x", "10.28.0.13", "tapaaa")[0] == 400


def test_meta_data_from_the_port_document(store: SqliteStore) -> None:
    mirror = Mirror()
    mirror.replace([VM1])
    responder = Responder(mirror, store)
    meta = "/openstack/latest/meta_data.json"
    status, body = ask(responder, meta, "10.28.0.13", "tapaaa")
    assert (status, body["uuid"], body["name"], body["project_id"]) == (200, "p1", "", "p1")
    store.put(f"{ROOT}ports/p1", {"name": "testvm1", "device_id": "d-1", "_moves": {}})
    status, body = ask(responder, meta, "10.28.0.13", "tapaaa")
    assert (status, body["uuid"], body["name"], body["hostname"]) == (
        200, "d-1", "testvm1", "testvm1",
    )  # fmt: skip
    assert ask(responder, meta, "10.28.0.13", "tapbbb")[0] == 404  # not from another tap


def test_a_long_poll_answers_when_its_record_changes_not_another(store: SqliteStore) -> None:
    mirror = Mirror()
    mirror.replace([VM1, VM2])
    responder = Responder(mirror, store, wait_limit=5.0)
    answers: list[tuple[int, dict[str, Any]]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(ask(responder, f"{ADDRESSES}?wait=1", "10.28.0.13", "tapaaa"))
    )
    waiting.start()
    time.sleep(0.05)
    mirror.put(endpoint("p2", "tapbbb", "10.28.0.14", rev=2))  # someone else's change
    time.sleep(0.05)
    assert answers == []
    changed = time.monotonic()
    mirror.put(endpoint("p1", "tapaaa", "10.28.0.13", "10.28.0.23", rev=3))
    waiting.join(timeout=2)
    assert time.monotonic() - changed < 0.5
    assert answers[0][0] == 200
    assert answers[0][1]["revision"] == 3


def test_a_long_poll_on_an_old_revision_answers_at_once_and_times_out_unchanged(
    store: SqliteStore,
) -> None:
    mirror = Mirror()
    mirror.replace([endpoint("p1", "tapaaa", "10.28.0.13", rev=4)])
    responder = Responder(mirror, store, wait_limit=0.2)
    started = time.monotonic()
    assert ask(responder, f"{ADDRESSES}?wait=3", "10.28.0.13", "tapaaa")[1]["revision"] == 4
    assert time.monotonic() - started < 0.1
    status, body = ask(responder, f"{ADDRESSES}?wait=4", "10.28.0.13", "tapaaa")
    assert (status, body["revision"]) == (200, 4)
    assert time.monotonic() - started >= 0.2


def test_closing_releases_the_long_polls(store: SqliteStore) -> None:
    mirror = Mirror()
    mirror.replace([VM1])
    responder = Responder(mirror, store, wait_limit=30.0)
    answers: list[int] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            responder.answer(f"{ADDRESSES}?wait=1", "10.28.0.13", "tapaaa")[0]
        )
    )
    waiting.start()
    time.sleep(0.05)
    mirror.close()
    waiting.join(timeout=1)
    assert answers == [200]


def test_the_mirror_names_the_taps_a_change_touched() -> None:
    mirror = Mirror()
    told: list[Collection[str] | None] = []
    mirror.watch(told.append)
    mirror.replace([VM1, VM2])
    mirror.put(endpoint("p1", "tapeee", "10.28.0.13", rev=2))  # re-plugged: both taps
    mirror.take([put("p2", dict(VM2.record), 3), Event(EventType.DELETE, f"{PREFIX}p3", None, 4),
                 Event(EventType.DELETE, f"{PREFIX}p1", None, 5)], PREFIX)  # fmt: skip
    mirror.take([], PREFIX)  # nothing new: nobody told
    mirror.close()
    assert told == [None, {"tapaaa", "tapeee"}, {"tapbbb", "tapeee"}, None]


# --- the wire -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GET /routeplane/v1/addresses?wait=3 HTTP/1.1\r\nHost: x\r\n\r\n",
         "/routeplane/v1/addresses?wait=3"),
        (b"GET /a HTTP/1.0\n\n", "/a"),  # bare LF, HTTP/1.0, no headers
        (b"GET /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "/a"),
        (b"POST /a HTTP/1.1\r\n\r\n", 405),
        (b"HEAD /a HTTP/1.1\r\n\r\n", 405),
        (b"GET /a HTTP/2.0\r\n\r\n", 505),
        (b"garbage\r\n\r\n", 400),
        (b"GET /a\r\n\r\n", 400),  # HTTP/0.9
        (b"GET  /a HTTP/1.1\r\n\r\n", 400),
        (b"GET http://169.254.169.254/a HTTP/1.1\r\n\r\n", 400),  # origin form only
        (b"G(T /a HTTP/1.1\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ],
)  # fmt: skip
def test_parse_request(head: bytes, expected: str | int) -> None:
    parsed = parse_request(head)
    assert (parsed if isinstance(parsed, str) else parsed[0]) == expected


def test_head_end_finds_the_empty_line() -> None:
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1
    assert head_end(b"GET / HTTP/1.1\r\n\r\nrest") == 18
    assert head_end(b"GET / HTTP/1.0\n\n") == 16


def test_render_writes_one_closed_http_1_0_answer() -> None:
    head, _, body = render((405, {"error": "no"})).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.0 405 Method Not Allowed"
    assert {"Content-Type: application/json", "Connection: close", "Allow: GET",
            f"Content-Length: {len(body)}"} <= set(lines)  # fmt: skip
    assert body == b'{"error": "no"}\n'
