"""The metadata service's HTTP side: every VM of the host served by one thread.

A guest keeps a long poll open at all times, so a host with 10,000 VMs has 10,000
requests waiting at once. A thread each would cost 10,000 threads (their stacks, and a
scheduler walking them); here one thread runs an ``asyncio`` event loop, used as a
reactor over plain non-blocking sockets, and a waiting request is only a socket, a
small record and a timer. The records' follower (another thread) calls :meth:`wake`
with the taps whose records changed; the loop then re-checks the requests parked on
those taps and answers the ones whose answer changed. The one slow question, a store
read for ``meta_data.json``, runs on a pool of two threads; the interface of a new
connection is asked on the loop (a hand-off to the listener's namespace thread, ~20 µs).

What it asks the layer above (``agent/metadata.py``'s ``Responder``, through
:class:`Handler`) is what to answer a ``GET`` of a target, given the connection's
source address and the interface it came in on (``Listener.interface_of``, read once
at accept): an :data:`Answer` now, a :class:`Park` (answer later), or a :class:`Defer`
(answer with the result of blocking work).

HTTP as the guest, cloud-init and ``curl`` speak it, and no more
(``agent/metadata_http.py``): one ``GET`` per connection, answered and closed; a head
over ``MAX_HEAD`` bytes gets 431. Everything is bounded: a client must send its whole
request within ``request_timeout`` (and take its answer within as long), or it is
dropped; beyond ``max_connections`` open connections (never more than the process's
file limit allows, less a reserve for the rest of the agent) a new one is answered 503
at once. A client that closes its side while it waits still gets its answer (HTTP
allows a half-close); one that resets gives its place back at once.

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
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from routeplane.agent.metadata_http import MAX_HEAD, Answer, head_end, parse_request, render

LOG = logging.getLogger("routeplane.agent")
MAX_CONNECTIONS = 65536
REQUEST_TIMEOUT = 10.0
FILE_RESERVE = 256  # file descriptors left to the rest of the agent
ACCEPT_BATCH = 64  # connections accepted per turn, so answers are not starved
ACCEPT_PAUSE = 0.5  # out of file descriptors: try accepting again after this
WORKERS = 2


def _answered(work: Callable[[], Answer], source: object) -> Answer:
    """``work()``'s answer, or a 500 if it failed: one VM's bad request never takes the
    server down."""
    try:
        return work()
    except Exception:
        LOG.exception("metadata: answering %s failed", source)
        return 500, {"error": "internal error"}


class Listener(Protocol):
    """The listening socket (made where the VMs can reach it) and how to tell which
    interface an accepted connection came in on."""

    sock: socket.socket

    def interface_of(self, conn: socket.socket) -> str | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Park:
    """Answer later: with ``answer()`` once ``ready()`` (asked whenever the records of
    ``tap`` change), after ``limit`` seconds, or when the server closes."""

    tap: str
    ready: Callable[[], bool]
    answer: Callable[[], Answer]
    limit: float


@dataclass(frozen=True)
class Defer:
    """Answer with ``work()``, which may block (a store read): run off the loop."""

    work: Callable[[], Answer]


class Handler(Protocol):
    def prepare(self, target: str, source: str, interface: str | None) -> Answer | Park | Defer:
        """What to answer ``GET target`` from ``source`` arriving on ``interface``."""
        ...


def connection_limit(wanted: int) -> int:
    """``wanted``, or less so that open connections never take the file descriptors the
    rest of the agent needs (store, netlink, BIRD's socket)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FILE_RESERVE))


_READING, _WAITING, _WRITING, _CLOSED = "reading", "waiting", "writing", "closed"


class _Connection:
    """One VM's connection: its request read, then answered (maybe after a wait), then
    closed. All of it runs on the loop's thread."""

    __slots__ = ("buffer", "discarded", "fd", "interface", "out", "park", "request",
                 "server", "sock", "source", "state", "timer")  # fmt: skip

    def __init__(
        self, server: Server, sock: socket.socket, source: str, interface: str | None
    ) -> None:
        self.server, self.sock, self.fd = server, sock, sock.fileno()
        self.source, self.interface = source, interface
        self.buffer = bytearray()
        self.state = _READING
        self.timer: asyncio.TimerHandle | None = None
        self.park: Park | None = None
        self.out = b""
        self.request = ""
        self.discarded = 0

    def readable(self) -> None:
        try:
            data = self.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()  # reset: nobody to answer
            return
        if not data:  # the client is done sending (or gone): an answer may still be due
            self.server.loop.remove_reader(self.fd)
            if self.state is _READING:
                self.close()
            return
        if self.state is not _READING:  # after the request: ignored, up to a point
            self.discarded += len(data)
            if self.discarded > MAX_HEAD:
                self.close()
            return
        self.buffer += data
        end = head_end(self.buffer)
        if end >= 0:
            self.server.dispatch(self, bytes(self.buffer[:end]))
        elif len(self.buffer) > MAX_HEAD:
            self.respond((431, {"error": f"the request head exceeds {MAX_HEAD} bytes"}))

    def wait(self, park: Park) -> None:
        self.state, self.park = _WAITING, park
        self.set_timer(park.limit, self.release)

    def release(self) -> None:
        """Answer the parked request now."""
        park = self.park
        if park is None or self.state is not _WAITING:
            return
        self.server.unpark(self)
        self.respond(_answered(park.answer, self.source))

    def respond(self, answer: Answer) -> None:
        if self.state in (_WRITING, _CLOSED):
            return
        self.state = _WRITING
        self.out = render(answer)
        LOG.debug("metadata: %s on %s %r %d", self.source, self.interface, self.request, answer[0])
        self.set_timer(self.server.request_timeout, self.close)
        self.flush()

    def flush(self) -> None:
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:  # the VM went away while it waited: nothing to tell it
            LOG.debug("metadata: %s left before the answer: %s", self.source, exc)
            self.close()
            return
        self.out = self.out[sent:]
        if self.out:
            self.server.loop.add_writer(self.fd, self.flush)
        else:
            self.close()

    def expire(self) -> None:
        LOG.debug("metadata: %s sent no whole request in time; dropped", self.source)
        self.close()

    def close(self) -> None:
        if self.state is _CLOSED:
            return
        if self.state is _WAITING:
            self.server.unpark(self)
        self.state = _CLOSED
        self.set_timer(None, None)
        self.server.loop.remove_reader(self.fd)
        self.server.loop.remove_writer(self.fd)
        self.server.connections.discard(self)
        self.sock.close()

    def set_timer(self, delay: float | None, then: Callable[[], None] | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = None
        if delay is not None and then is not None:
            self.timer = self.server.loop.call_later(delay, then)


class Server:
    """Serves ``listener``'s connections with ``handler``'s answers from one thread."""

    def __init__(
        self, listener: Listener, handler: Handler, *, max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:  # fmt: skip
        self.listener = listener
        self.handler = handler
        self.max_connections = connection_limit(max_connections)
        self.request_timeout = request_timeout
        self.loop: asyncio.AbstractEventLoop  # made by start(), run by its thread
        self.connections: set[_Connection] = set()
        self.parked: dict[str, set[_Connection]] = {}  # tap -> requests waiting on it
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="metadata-store")
        self._thread: threading.Thread | None = None
        self._full = False  # refusing connections (logged once per episode)
        self._listening = -1  # the listener's file descriptor, once started
        self._closing = False

    # from other threads -----------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._listening = self.listener.sock.fileno()
        self.listener.sock.setblocking(False)
        self.loop.add_reader(self._listening, self._accept)
        self._thread = threading.Thread(target=self._run, name="metadata", daemon=True)
        self._thread.start()

    def wake(self, taps: Collection[str] | None) -> None:
        """The records of ``taps`` (None: of any) changed: re-check who waits on them."""
        self._soon(self._recheck, taps)

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

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = self.listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    LOG.warning("metadata: cannot accept: %s; pausing %.1fs", exc, ACCEPT_PAUSE)
                    self.loop.remove_reader(self._listening)
                    self.loop.call_later(ACCEPT_PAUSE, self._resume)
                    return
                continue  # the client gave up before we took it (ECONNABORTED and such)
            sock.setblocking(False)
            if len(self.connections) >= self.max_connections:
                self._refuse(sock, peer[0])
                continue
            self._full = False
            try:
                interface = self.listener.interface_of(sock)
            except Exception:  # asked of a closing listener: the VM is not known
                LOG.exception("metadata: no interface for %s", peer[0])
                interface = None
            conn = _Connection(self, sock, peer[0], interface)
            self.connections.add(conn)
            self.loop.add_reader(conn.fd, conn.readable)
            conn.set_timer(self.request_timeout, conn.expire)

    def _resume(self) -> None:
        if not self._closing:
            self.loop.add_reader(self._listening, self._accept)

    def _refuse(self, sock: socket.socket, source: str) -> None:
        if not self._full:
            LOG.warning("metadata: %d connections open; refusing more (503)", self.max_connections)
            self._full = True
        LOG.debug("metadata: refused %s: too many connections", source)
        with contextlib.suppress(OSError):
            sock.recv(MAX_HEAD)  # what has arrived, so that closing sends no reset
        with contextlib.suppress(OSError):
            sock.send(render((503, {"error": "too many connections to the metadata service"})))
        sock.close()

    def dispatch(self, conn: _Connection, head: bytes) -> None:
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
            self.parked.setdefault(step.tap, set()).add(conn)
            conn.wait(step)
        elif isinstance(step, Defer):
            conn.state = _WAITING  # for the pool; no timer: the store's client has its own
            done = self._pool.submit(step.work)
            done.add_done_callback(lambda f: self._soon(self._deferred, conn, f))
        else:
            conn.respond(step)

    def _deferred(self, conn: _Connection, done: Future[Answer]) -> None:
        if conn.state is _CLOSED or done.cancelled():
            return
        conn.respond(_answered(done.result, conn.source))

    def unpark(self, conn: _Connection) -> None:
        if conn.park is None:
            return
        waiting = self.parked.get(conn.park.tap)
        if waiting is not None:
            waiting.discard(conn)
            if not waiting:
                del self.parked[conn.park.tap]
        conn.park = None

    def _recheck(self, taps: Collection[str] | None) -> None:
        groups = list(self.parked.values()) if taps is None else [
            self.parked[t] for t in taps if t in self.parked
        ]  # fmt: skip
        due = []
        for conn in [c for group in groups for c in group]:
            try:
                if conn.park is not None and conn.park.ready():
                    due.append(conn)
            except Exception:
                LOG.exception("metadata: re-checking %s failed", conn.source)
                due.append(conn)
        for conn in due:
            conn.release()

    def _shutdown(self) -> None:
        self._closing = True
        self.loop.remove_reader(self._listening)
        for conn in [c for group in list(self.parked.values()) for c in group]:
            conn.release()  # with what is known now
        for conn in list(self.connections):
            conn.close()
        self.loop.stop()


__all__ = [
    "MAX_CONNECTIONS",
    "REQUEST_TIMEOUT",
    "Defer",
    "Handler",
    "Listener",
    "Park",
    "Server",
    "connection_limit",
]
