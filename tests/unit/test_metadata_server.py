"""Unit: the metadata service's one-thread HTTP server, over loopback sockets (no root).

The real ``MetadataService`` on a real ``NamespaceListener`` in the test's own namespace
(``127.0.0.1``, an ephemeral port; connections arrive on ``lo``), fed by endpoint
records written to an embedded store. What a VM would notice: hundreds of long polls
held without a thread each and all answered as soon as their record changes, a client
that never finishes its request dropped without holding up anyone, ``close()``
answering every waiting poll at once, a connection limit answered with 503, and the
exact answers of the HTTP side (status, JSON body, headers; one request per connection).
"""

from __future__ import annotations

import http.client
import json
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from routeplane.agent.metadata import MetadataService
from routeplane.dataplane.linux.listener import NamespaceListener
from routeplane.model.jsontypes import JSONValue
from routeplane.store.sqlite import SqliteStore
from tests.waiting import wait_for

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
ADDRESSES = "/routeplane/v1/addresses"


@dataclass
class Served:
    store: SqliteStore
    service: MetadataService
    port: int

    def record(self, port_id: str, source: str, *extra: str) -> int:
        """Write the endpoint record of a port on ``lo`` holding ``source``; its revision."""
        body: dict[str, JSONValue] = {"port_id": port_id, "interface": "lo", "project_id": "p1",
                "fixed_ips": [source, *extra], "allowed_addresses": []}  # fmt: skip
        revision = self.store.put(f"{ROOT}endpoints/node1/{port_id}", body)
        wait_for(lambda: self.seen(source, revision), 5, f"{port_id} at revision {revision}")
        return revision

    def seen(self, source: str, revision: int) -> bool:
        found = self.service.mirror.find("lo", source)
        return found is not None and found.revision == revision

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), 2, (source, 0))

    def ask(self, path: str, source: str = "127.0.0.1", method: str = "GET") -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, 5, source_address=(source, 0))
        try:
            conn.request(method, path)
            response = conn.getresponse()
            response.body = json.loads(response.read())  # type: ignore[attr-defined]
            return response
        finally:
            conn.close()


Serve = Callable[..., Served]


@pytest.fixture
def serve(store: SqliteStore) -> Iterator[Serve]:
    """Starts a metadata service on loopback (keywords go to ``MetadataService``)."""
    started: list[MetadataService] = []

    def start(**settings: Any) -> Served:
        listener = NamespaceListener(None, "127.0.0.1", 0)
        service = MetadataService(store, "node1", listener, **settings)
        service.start()
        started.append(service)
        served = Served(store, service, listener.sock.getsockname()[1])
        wait_for(lambda: service.mirror.ready, 5, "the first snapshot")
        return served

    yield start
    for service in started:
        service.close()


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for a thousand sockets (both ends of 500 connections) in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the file limit ({hard}) is too low for 500 connections")
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def send_wait(sock: socket.socket, revision: int) -> None:
    sock.sendall(f"GET {ADDRESSES}?wait={revision} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def read_all(socks: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """Each socket's bytes up to its end, for those that end within ``timeout``."""
    got: dict[socket.socket, bytes] = dict.fromkeys(socks, b"")
    done: dict[socket.socket, bytes] = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ, sock)
        deadline = time.monotonic() + timeout
        while got and time.monotonic() < deadline:
            for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                ready: socket.socket = key.data
                data = ready.recv(65536)
                if data:
                    got[ready] += data
                else:
                    selector.unregister(ready)
                    done[ready] = got.pop(ready)
    return done


def status_and_body(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_500_long_polls_hold_no_thread_and_answer_together(serve: Serve, many_files: None) -> None:
    served = serve(wait_limit=30.0)
    sources = [f"127.0.0.{n}" for n in range(11, 16)]  # five ports, a hundred polls each
    revisions = {s: served.record(f"port-{s}", s) for s in sources}
    threads = threading.active_count()
    polls = {s: [served.connect(s) for _ in range(100)] for s in sources}
    try:
        for source, socks in polls.items():
            for sock in socks:
                send_wait(sock, revisions[source])
        wait_for(lambda: sum(len(p) for p in served.service.server.parked.values()) == 500,
                 5, "500 parked polls")  # fmt: skip
        held = threading.active_count()
        # relative to before: other tests of the same process may have left threads
        assert held <= threads + 2, f"{threads} threads before, {held} with 500 long polls"

        changed = time.monotonic()
        served.record("port-127.0.0.11", "127.0.0.11", "10.28.0.23")
        answered = read_all(polls["127.0.0.11"], 2.0)
        assert len(answered) == 100, f"{len(answered)} of 100 polls answered"
        assert time.monotonic() - changed < 2.0
        for raw in answered.values():
            status, body = status_and_body(raw)
            assert status == 200
            assert {"ip_address": "10.28.0.23"} in body["addresses"]
        others = [s for source in sources[1:] for s in polls[source]]
        assert read_all(others, 0.2) == {}  # their records did not change: still waiting

        changed = time.monotonic()
        for source in sources[1:]:
            served.record(f"port-{source}", source, "10.28.0.24")
        answered = read_all(others, 2.0)
        assert len(answered) == 400
        assert time.monotonic() - changed < 2.0
        assert all(status_and_body(raw)[0] == 200 for raw in answered.values())
    finally:
        for socks in polls.values():
            for sock in socks:
                sock.close()


def test_a_client_that_never_finishes_its_request_is_dropped(serve: Serve) -> None:
    served = serve(request_timeout=0.5)
    served.record("p1", "127.0.0.1")
    slow = served.connect()
    slow.sendall(b"GET /routeplane/v1/addr")  # and no more
    try:
        started = time.monotonic()
        for _ in range(3):  # the others are served meanwhile, at once
            asked = time.monotonic()
            assert served.ask(ADDRESSES).status == 200
            assert time.monotonic() - asked < 0.3
        slow.settimeout(5)
        assert slow.recv(1024) == b""  # dropped, without an answer
        assert 0.4 < time.monotonic() - started < 3.0
    finally:
        slow.close()


def test_an_oversized_request_head_gets_431(serve: Serve) -> None:
    served = serve()
    served.record("p1", "127.0.0.1")
    sock = served.connect()
    try:
        sock.sendall(b"GET /routeplane/v1/addresses HTTP/1.1\r\nX-Pad: " + b"a" * 9000)
        done = read_all([sock], 3.0)
    finally:
        sock.close()
    assert status_and_body(done[sock])[0] == 431


def test_close_answers_the_waiting_polls_at_once(serve: Serve) -> None:
    served = serve(wait_limit=30.0)
    revision = served.record("p1", "127.0.0.1")
    socks = [served.connect() for _ in range(20)]
    try:
        for sock in socks:
            send_wait(sock, revision)
        wait_for(lambda: len(served.service.server.parked.get("lo", ())) == 20, 5, "20 polls")
        started = time.monotonic()
        served.service.close()
        assert time.monotonic() - started < 1.0
        answered = read_all(socks, 1.0)
        assert len(answered) == 20
        assert {status_and_body(r)[1]["revision"] for r in answered.values()} == {revision}
        with pytest.raises(ConnectionRefusedError):  # nothing listens any more
            served.connect().close()
    finally:
        for sock in socks:
            sock.close()


def test_connections_beyond_the_limit_get_503(serve: Serve) -> None:
    served = serve(wait_limit=30.0, max_connections=2)
    revision = served.record("p1", "127.0.0.1")
    held = [served.connect(), served.connect()]
    try:
        for sock in held:
            send_wait(sock, revision)
        wait_for(lambda: len(served.service.server.parked.get("lo", ())) == 2, 5, "2 polls")
        assert served.ask(ADDRESSES).status == 503
        # a VM that resets its connection gives its place back at once
        held[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        held[0].close()
        wait_for(lambda: len(served.service.server.connections) == 1, 5, "the reset seen")
        assert served.ask(ADDRESSES).status == 200
    finally:
        for sock in held:
            sock.close()


def test_answers_and_refusals_on_the_wire(serve: Serve) -> None:
    served = serve()
    revision = served.record("p1", "127.0.0.1", "10.28.0.23")
    served.store.put(f"{ROOT}ports/p1", {"name": "testvm1", "device_id": "d-1"})
    answer = served.ask(ADDRESSES)
    assert (answer.status, answer.version) == (200, 10)  # HTTP/1.0: one request, closed
    assert answer.getheader("Content-Type") == "application/json"
    assert answer.body == {"port_id": "p1", "revision": revision, "addresses": [
        {"ip_address": "127.0.0.1"}, {"ip_address": "10.28.0.23"}]}  # fmt: skip
    meta = served.ask("/openstack/latest/meta_data.json")
    assert (meta.status, meta.body["uuid"], meta.body["hostname"]) == (200, "d-1", "testvm1")
    assert served.ask(ADDRESSES, source="127.0.0.99").status == 404  # no port has it
    assert served.ask("/latest/user-data").status == 404
    assert served.ask(f"{ADDRESSES}?wait=x").status == 400
    refused = served.ask(ADDRESSES, method="POST")
    assert (refused.status, refused.getheader("Allow")) == (405, "GET")
    for raw in (b"garbage\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"GET nowhere HTTP/1.1\r\n\r\n",
                b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"):  # fmt: skip
        sock = served.connect()
        try:
            sock.sendall(raw)
            status = status_and_body(read_all([sock], 3.0)[sock])[0]
        finally:
            sock.close()
        assert status == (505 if b"HTTP/2.0" in raw else 400), raw
