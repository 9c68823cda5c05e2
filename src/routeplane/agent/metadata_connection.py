"""One VM's connection to the metadata service: its request read, answered, closed.

A connection is a non-blocking socket driven by the server's event loop: it reads until
the request head is in (``agent/metadata_http.py`` finds its end and parses it), hands
the head to its owner (``Server.dispatch``), and writes the answer it is given — at
once, or after waiting parked (``agent/metadata_waits.py``). HTTP as the guest,
cloud-init and ``curl`` speak it, and no more: one ``GET`` per connection, answered and
closed; a head over ``MAX_HEAD`` bytes gets 431. Everything is bounded: a client must
send its whole request within ``request_timeout`` (and take its answer within as long),
or it is dropped. A client that closes its side while it waits still gets its answer
(HTTP allows a half-close); one that resets gives its place back at once.

All of it runs on the loop's thread. What this module must not do: block (a socket
that cannot take the whole answer is written again when it can), or keep anything of a
connection after it is closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from routeplane.agent.metadata_http import MAX_HEAD, Answer, head_end, render
from routeplane.agent.metadata_waits import Park, answered
from routeplane.agent.tally import Tally

LOG = logging.getLogger("routeplane.agent")
READING, WAITING, WRITING, CLOSED = "reading", "waiting", "writing", "closed"


class Owner(Protocol):
    """What a connection asks of the server that accepted it."""

    loop: asyncio.AbstractEventLoop
    request_timeout: float
    connections: set[Connection]
    tally: Tally  # requests by outcome, counted as each is answered

    def dispatch(self, conn: Connection, head: bytes) -> None:
        """``conn``'s request head is in: answer it, park it or hand it to the pool."""
        ...

    def unpark(self, conn: Connection) -> None:
        """``conn`` waits no more."""
        ...


class Connection:
    """One VM's connection: its request read, then answered (maybe after a wait), then
    closed. All of it runs on the loop's thread."""

    __slots__ = (
        "buffer",
        "discarded",
        "fd",
        "interface",
        "out",
        "park",
        "request",
        "server",
        "sock",
        "source",
        "state",
        "timer",
    )

    def __init__(
        self, server: Owner, sock: socket.socket, source: str, interface: str | None
    ) -> None:
        self.server, self.sock, self.fd = server, sock, sock.fileno()
        self.source, self.interface = source, interface
        self.buffer = bytearray()
        self.state = READING
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
            if self.state is READING:
                self.close()
            return
        if self.state is not READING:  # after the request: ignored, up to a point
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
        self.state, self.park = WAITING, park
        self.set_timer(park.limit, self.release)

    def release(self) -> None:
        """Answer the parked request now."""
        park = self.park
        if park is None or self.state is not WAITING:
            return
        self.server.unpark(self)
        self.respond(answered(park.answer, self.source))

    def respond(self, answer: Answer) -> None:
        if self.state in (WRITING, CLOSED):
            return
        self.state = WRITING
        self.server.tally.http(answer[0])
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
        if self.state is CLOSED:
            return
        if self.state is WAITING:
            self.server.unpark(self)
        self.state = CLOSED
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


__all__ = ["CLOSED", "READING", "WAITING", "WRITING", "Connection", "Owner"]
