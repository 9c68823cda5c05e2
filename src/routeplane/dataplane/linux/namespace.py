"""Run work inside one network namespace from a process that stays outside it.

The agent may act on a namespace that is not its own (the lab runs one agent per host
namespace from the root namespace). ``setns(2)`` for a network namespace changes only the
calling *thread*, so one dedicated thread enters the namespace once and then runs what
must happen there: opening netlink sockets (a socket belongs for its whole life to the
namespace it was created in, whichever thread uses it later), writing ``/proc/sys/net``
(resolved against the namespace of the thread that opens the file) and name-to-index
lookups. This costs a thread hand-off (~20 µs) instead of a ``fork``/``exec`` of
``ip netns exec`` (~2 ms) per change.

Without a namespace name everything runs inline, in the caller's own namespace.

What this module must not do: let the thread run anything before it has entered the
namespace and checked that it did, or switch any thread but its own.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from routeplane.model.errors import DataplaneError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

T = TypeVar("T")
_Job = tuple[Callable[[], Any], "Future[Any]"]


def _enter(path: str) -> None:
    """Switch the calling thread into the namespace bound at ``path``, and check it."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)
    if os.stat("/proc/thread-self/ns/net").st_ino != os.stat(path).st_ino:
        raise OSError(f"setns({path}) did not move the thread into the namespace")


class Namespace:
    """Runs callables in network namespace ``name`` (``None``: the caller's own)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if name is None:
            return
        path = os.path.join(NETNS_DIR, name)
        if not os.path.exists(path):
            raise DataplaneError(f"network namespace {name!r} does not exist ({path})")
        entered: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(path, entered), name=f"netns-{name}", daemon=True
        )
        self._thread.start()
        try:
            entered.result()
        except OSError as exc:
            self._thread.join()
            self._thread = None
            raise DataplaneError(f"cannot enter network namespace {name!r}: {exc}") from exc

    def _serve(self, path: str, entered: Future[None]) -> None:
        try:
            _enter(path)
        except OSError as exc:
            entered.set_exception(exc)
            return  # the thread may now be in no namespace we know: never run anything
        entered.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, result = job
            if not result.set_running_or_notify_cancel():
                continue
            try:
                result.set_result(fn())
            except BaseException as exc:  # handed to the caller, who re-raises it
                result.set_exception(exc)

    def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` inside the namespace; its exception, if any, is raised here."""
        return self.submit(fn).result()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """``fn()`` inside the namespace, while the caller goes on; without a namespace
        it has already run when this returns."""
        result: Future[T] = Future()
        if self.name is None:
            try:
                result.set_result(fn())
            except BaseException as exc:  # handed to the caller, who re-raises it
                result.set_exception(exc)
            return result
        if self._thread is None:
            raise DataplaneError(f"network namespace {self.name!r}: worker closed")
        self._jobs.put((fn, result))
        return result

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None


__all__ = ["NETNS_DIR", "Namespace"]
