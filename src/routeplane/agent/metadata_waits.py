"""The metadata service's requests that are answered later, and the contract that says so.

A guest keeps a long poll open at all times, so a host with 10,000 VMs has 10,000
requests waiting at once. Each waits here as a :class:`Park` (what to check, what to
answer, for how long), indexed by the tap it came in on; the records' follower (another
thread) tells the server which taps' records changed (``Server.wake``), and only the
requests parked on those taps are checked again (:meth:`Parked.recheck`): the ones whose
answer changed are answered, the others wait on. The one slow question, a store read
for ``meta_data.json``, is a :class:`Defer`: blocking work the server runs off its loop.

What the layer above (``agent/metadata.py``'s ``Responder``) implements is
:class:`Handler`: given a ``GET`` of a target, the connection's source address and the
interface it came in on, an ``Answer`` now, a :class:`Park` (answer later) or a
:class:`Defer` (answer with the result of blocking work). An answer that fails becomes a
500 (:func:`answered`): one VM's bad request never takes the server down.

Runs on the server's loop thread. What this module must not do: block (a ``ready()`` is
a look at the records in memory), or keep a request after it is answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from routeplane.agent.metadata_http import Answer

LOG = logging.getLogger("routeplane.agent")


def answered(work: Callable[[], Answer], source: object) -> Answer:
    """``work()``'s answer, or a 500 if it failed: one VM's bad request never takes the
    server down."""
    try:
        return work()
    except Exception:
        LOG.exception("metadata: answering %s failed", source)
        return 500, {"error": "internal error"}


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


class Waiter(Protocol):
    """A parked request as the index sees it (a connection of the server)."""

    source: str
    park: Park | None

    def release(self) -> None:
        """Answer now, with what is known (and leave the index)."""
        ...


class Parked:
    """The parked requests by the tap they wait on."""

    def __init__(self) -> None:
        self.by_tap: dict[str, set[Waiter]] = {}  # tap -> requests waiting on it

    def add(self, waiter: Waiter, park: Park) -> None:
        self.by_tap.setdefault(park.tap, set()).add(waiter)

    def remove(self, waiter: Waiter) -> None:
        """``waiter`` waits no more (answered, or gone)."""
        if waiter.park is None:
            return
        waiting = self.by_tap.get(waiter.park.tap)
        if waiting is not None:
            waiting.discard(waiter)
            if not waiting:
                del self.by_tap[waiter.park.tap]
        waiter.park = None

    def recheck(self, taps: Collection[str] | None) -> None:
        """The records of ``taps`` (None: of any) changed: answer those now ready."""
        if taps is None:
            groups = list(self.by_tap.values())
        else:
            groups = [self.by_tap[t] for t in taps if t in self.by_tap]
        due = []
        for waiter in [w for group in groups for w in group]:
            try:
                if waiter.park is not None and waiter.park.ready():
                    due.append(waiter)
            except Exception:
                LOG.exception("metadata: re-checking %s failed", waiter.source)
                due.append(waiter)
        for waiter in due:
            waiter.release()

    def release_all(self) -> None:
        """Answer every parked request now, with what is known (the server closes)."""
        for waiter in [w for group in list(self.by_tap.values()) for w in group]:
            waiter.release()


__all__ = ["Defer", "Handler", "Park", "Parked", "Waiter", "answered"]
