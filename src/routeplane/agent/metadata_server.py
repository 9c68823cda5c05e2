"""The metadata service's HTTP side: every VM of the host served by one thread.

A guest keeps a long poll open at all times, so a host with 10,000 VMs has 10,000
requests waiting at once. A thread each would cost 10,000 threads (their stacks, and a
scheduler walking them); here one thread runs an ``asyncio`` event loop, used as a
reactor over plain non-blocking sockets, and a waiting request is only a socket, a
small record and a timer (``agent/metadata_waits.py``: the parked requests by tap,
re-checked when :meth:`Server.wake` names their tap). The one slow question, a store
read for ``meta_data.json``, runs on a pool of two threads; the interface of a new
connection is asked on the loop (a hand-off to the listener's namespace thread, ~20 µs).

This module accepts connections, routes each request head to what the layer above
(``agent/metadata.py``'s ``Responder``, through ``metadata_waits.Handler``) answers —
given the connection's source address and the interface it came in on
(``Listener.interface_of``, read once at accept): an answer now, a ``Park`` (answer
later) or a ``Defer`` (answer with the result of blocking work) — and stops cleanly. One
connection's reading and writing is ``agent/metadata_connection.py``'s. Everything is
bounded: beyond ``max_connections`` open connections (never more than the process's file
limit allows, less a reserve for the rest of the agent) a new one is answered 503 at
once.

What this module must not do: block its loop (no store, no lock held for long), or
keep anything of a connection after it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from routeplane.agent.metadata_connection import CLOSED, WAITING, Connection
from routeplane.agent.metadata_http import MAX_HEAD, Answer, parse_request, render
from routeplane.agent.metadata_waits import Defer, Handler, Park, Parked, Waiter, answered
from routeplane.agent.tally import Tally

LOG = logging.getLogger("routeplane.agent")
MAX_CONNECTIONS = 65536
REQUEST_TIMEOUT = 10.0
FILE_RESERVE = 256  # file descriptors left to the rest of the agent
ACCEPT_BATCH = 64  # connections accepted per turn, so answers are not starved
ACCEPT_PAUSE = 0.5  # out of file descriptors: try accepting again after this
WORKERS = 2


class Listener(Protocol):
    """The listening socket (made where the VMs can reach it) and how to tell which
    interface an accepted connection came in on."""

    sock: socket.socket

    def interface_of(self, conn: socket.socket) -> str | None: ...

    def close(self) -> None: ...


def connection_limit(wanted: int) -> int:
    """``wanted``, or less so that open connections never take the file descriptors the
    rest of the agent needs (store, netlink, BIRD's socket)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FILE_RESERVE))


class Server:
    """Serves the connections of ``listener`` (one, or several: IPv4 and IPv6) with
    ``handler``'s answers from one thread."""

    def __init__(
        self,
        listener: Listener | Sequence[Listener],
        handler: Handler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.listeners = list(listener) if isinstance(listener, Sequence) else [listener]
        self.handler = handler
        self.max_connections = connection_limit(max_connections)
        self.request_timeout = request_timeout
        self.loop: asyncio.AbstractEventLoop  # made by start(), run by its thread
        self.connections: set[Connection] = set()
        self.waits = Parked()
        self.tally = Tally()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="metadata-store")
        self._thread: threading.Thread | None = None
        self._full = False  # refusing connections (logged once per episode)
        self._closing = False

    @property
    def parked(self) -> dict[str, set[Waiter]]:
        """The requests waiting, by the tap they wait on."""
        return self.waits.by_tap

    # from other threads -----------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        for listener in self.listeners:
            listener.sock.setblocking(False)
            self.loop.add_reader(listener.sock.fileno(), self._accept, listener)
        self._thread = threading.Thread(target=self._run, name="metadata", daemon=True)
        self._thread.start()

    def wake(self, taps: Collection[str] | None) -> None:
        """The records of ``taps`` (None: of any) changed: re-check who waits on them."""
        self._soon(self.waits.recheck, taps)

    def close(self) -> None:
        """Answer the parked requests now, close every connection, stop the thread."""
        if self._thread is not None:
            self._soon(self._shutdown)
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                LOG.warning("metadata: the server's thread did not stop within 5 s")
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        if self._thread is None:
            return  # not started: nobody waits
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
            self.loop.call_soon_threadsafe(fn, *args)

    # on the loop's thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            for conn in list(self.connections):
                conn.close()
            self.loop.close()

    def _accept(self, listener: Listener) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    LOG.warning("metadata: cannot accept: %s; pausing %.1fs", exc, ACCEPT_PAUSE)
                    self.loop.remove_reader(listener.sock.fileno())
                    self.loop.call_later(ACCEPT_PAUSE, self._resume, listener)
                    return
                continue  # the client gave up before we took it (ECONNABORTED and such)
            sock.setblocking(False)
            if len(self.connections) >= self.max_connections:
                self._refuse(sock, peer[0])
                continue
            self._full = False
            try:
                interface = listener.interface_of(sock)
            except Exception:  # asked of a closing listener: the VM is not known
                LOG.exception("metadata: no interface for %s", peer[0])
                interface = None
            conn = Connection(self, sock, peer[0], interface)
            self.connections.add(conn)
            self.loop.add_reader(conn.fd, conn.readable)
            conn.set_timer(self.request_timeout, conn.expire)

    def _resume(self, listener: Listener) -> None:
        if not self._closing:
            self.loop.add_reader(listener.sock.fileno(), self._accept, listener)

    def _refuse(self, sock: socket.socket, source: str) -> None:
        if not self._full:
            LOG.warning("metadata: %d connections open; refusing more (503)", self.max_connections)
            self._full = True
        LOG.debug("metadata: refused %s: too many connections", source)
        self.tally.add("failed")
        with contextlib.suppress(OSError):
            sock.recv(MAX_HEAD)  # what has arrived, so that closing sends no reset
        with contextlib.suppress(OSError):
            sock.send(render((503, {"error": "too many connections to the metadata service"})))
        sock.close()

    def dispatch(self, conn: Connection, head: bytes) -> None:
        """``conn``'s request head is in: answer it, park it or hand it to the pool."""
        conn.set_timer(None, None)
        conn.request = head.split(b"\n", 1)[0].strip().decode("latin-1")
        target = parse_request(head)
        if not isinstance(target, str):
            conn.respond(target)
            return
        try:
            step = self.handler.prepare(target, conn.source, conn.interface)
        except Exception:
            LOG.exception("metadata: serving %s failed", conn.source)
            step = 500, {"error": "internal error"}
        if isinstance(step, Park):
            self.waits.add(conn, step)
            conn.wait(step)
        elif isinstance(step, Defer):
            conn.state = WAITING  # for the pool; no timer: the store's client has its own
            done = self._pool.submit(step.work)
            done.add_done_callback(lambda f: self._soon(self._deferred, conn, f))
        else:
            conn.respond(step)

    def _deferred(self, conn: Connection, done: Future[Answer]) -> None:
        if conn.state is CLOSED or done.cancelled():
            return
        conn.respond(answered(done.result, conn.source))

    def unpark(self, conn: Connection) -> None:
        self.waits.remove(conn)

    def _shutdown(self) -> None:
        self._closing = True
        for listener in self.listeners:
            self.loop.remove_reader(listener.sock.fileno())
        self.waits.release_all()  # with what is known now
        for conn in list(self.connections):
            conn.close()
        self.loop.stop()


__all__ = [
    "MAX_CONNECTIONS",
    "REQUEST_TIMEOUT",
    "Listener",
    "Server",
    "connection_limit",
]
