"""The agent process's cyclic garbage collector: off while a cold start builds the host's
tables, then everything built frozen out of its reach.

Why: a cold start at 10,000 endpoints builds a few hundred thousand long-lived objects in
one round (records, routes, neighbours, policy elements, the mirror of the kernel).
CPython runs a full collection whenever the objects that survived since the last one
exceed a quarter of the long-lived ones, so a growing heap is traversed whole again and
again: about a third of a cold start's CPU (in-process at 10,000 endpoints, 2.6 s with
the collector against 1.8 s without), and one more full collection of the finished heap
(0.3-1 s on a busy 2-core machine) lands on whichever change comes next (issue #17). None
of it finds anything: the records and kernel objects hold no cycles (a full collection
after a cold start finds no garbage).

So the agent's process turns the collector off before its loop starts and, once the
dataplane is programmed (or after ``limit`` seconds, whichever comes first: a store that
never answers must not leave it off for good), moves every object alive into the
permanent generation (``gc.freeze``: never traversed again; reference counting still
frees each one as it is dropped) and turns the collector on for what comes after. What
it must not do: collect (that full pass is the pause it avoids), or touch the collector
of any process but the agent's.
"""

from __future__ import annotations

import gc
import threading

LIMIT = 120.0  # seconds: the collector is back on by then, synced or not


class ColdStartGc:
    """Off from :meth:`pause` until :meth:`resume` (at most ``limit`` seconds)."""

    def __init__(self, limit: float = LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._paused = False

    def pause(self) -> None:
        with self._lock:
            if self._paused or not gc.isenabled():
                return
            gc.disable()
            self._paused = True
            self._timer = threading.Timer(self.limit, self.resume)
            self._timer.daemon = True
            self._timer.start()

    def resume(self) -> None:
        """Freeze what the cold start built and turn the collector back on (once)."""
        with self._lock:
            if not self._paused:
                return
            self._paused = False
            timer, self._timer = self._timer, None
            gc.freeze()
            gc.enable()
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()


__all__ = ["LIMIT", "ColdStartGc"]
