"""One etcd watch: a daemon thread that reads the gateway's stream into a ``QueueWatch``.

Why a reader of our own: a watch must surface what a generic client hides — a compacted
start revision (``Compacted``, so the caller re-snapshots), etcd cancelling the watch, a
broken stream — and it must notice a half-open connection that will never speak again.

The policy a caller relies on:

- ``start()`` opens the stream before returning, so an unreachable store fails the
  ``watch()`` call itself rather than the first read;
- after ``watch_idle_timeout`` seconds of silence the reader reconnects, resuming after
  the last revision it delivered (progress notifications move that point on too);
- a broken stream gets one reconnection; if that one breaks too without delivering
  anything, the watch fails ``Unavailable``.

It talks to etcd only through :class:`~routeplane.store.etcd_http.Gateway` and tells its
owner it has finished through ``on_finish``; it knows nothing else of the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from routeplane.model.errors import StoreError, Unavailable
from routeplane.store import etcd_wire as wire
from routeplane.store.codec import prefix_end
from routeplane.store.etcd_http import Gateway, Stream, StreamBroken
from routeplane.store.watchqueue import QueueWatch


class WatchReader:
    """The feeder of one :class:`QueueWatch`; ``watch`` is what the caller holds."""

    def __init__(
        self,
        gateway: Gateway,
        prefix: str,
        start_revision: int,
        on_finish: Callable[[WatchReader], None],
    ) -> None:
        self._gateway = gateway
        self._on_finish = on_finish
        self._end = prefix_end(prefix)
        self._next = start_revision  # the first revision not yet delivered
        self.watch = QueueWatch(prefix, start_revision, self._stop)
        self._stream: Stream | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the stream now, so an unreachable store fails the ``watch()`` call itself."""
        try:
            self._connect()
        except BaseException:
            self._finish()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"etcd-watch:{self.watch.prefix}", daemon=True
        )
        self._thread.start()

    # the reader thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._follow()
        except StoreError as exc:
            if not self._stopping.is_set():
                self.watch.fail(exc)
        except Exception as exc:  # the thread must report, whatever went wrong
            if not self._stopping.is_set():
                self.watch.fail(StoreError(f"etcd watch on {self.watch.prefix} failed: {exc!r}"))
        finally:
            self._finish()

    def _follow(self) -> None:
        """Pump the stream; reconnect after idleness, or once after a break."""
        after_break = False
        while True:
            idle, progressed = self._pump()
            if self._stopping.is_set():
                return
            if not idle and after_break and not progressed:
                raise Unavailable(f"etcd watch on {self.watch.prefix} keeps breaking")
            after_break = not idle
            self._connect()

    def _pump(self) -> tuple[bool, bool]:
        """Deliver messages until the stream ends: (ended by idleness, delivered anything)."""
        stream = self._stream
        assert stream is not None
        progressed = False
        try:
            for line in stream:
                self._handle(line)
                progressed = True
        except StreamBroken as exc:
            return exc.idle, progressed
        return False, progressed

    def _handle(self, line: bytes) -> None:
        message = wire.watch_message(line, self._next, self.watch.prefix)
        if message.events:
            self.watch.feed(message.events)
            self._next = message.events[-1].revision + 1
        elif message.progress:  # nothing under the prefix up to this revision
            self._next = max(self._next, message.progress + 1)

    def _connect(self) -> None:
        """Replace the stream by one from ``_next``; its first message is "created" (or the
        error that ends the watch, raised from here)."""
        self._replace(None)
        body = wire.watch_request(self.watch.prefix, self._end, self._next)
        stream = self._gateway.stream("watch", body, revision=self._next)
        if not self._replace(stream):
            raise Unavailable("the watch was closed")
        self._handle(stream.first)

    def _replace(self, stream: Stream | None) -> bool:
        """Swap the current stream, closing the old one; False (and closed) once stopping."""
        with self._lock:
            old, self._stream = self._stream, stream
            stopping = self._stopping.is_set()
        if old is not None:
            old.close()
        if stopping and stream is not None:
            stream.close()
            return False
        return True

    # stopping ----------------------------------------------------------------------------
    def _stop(self) -> None:
        """``QueueWatch.close``: wake the reader by interrupting its stream. Never raises."""
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        self._on_finish(self)

    def _finish(self) -> None:
        self._on_finish(self)
        self._replace(None)


__all__ = ["WatchReader"]
