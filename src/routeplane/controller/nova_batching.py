"""How queued Nova events are grouped, when they go, and what Nova's answer means.

Pure policy for the notifier (``nova_notifier``):

- **Window.** A batch leaves :data:`WINDOW` seconds after the oldest unsent event was
  seen (Neutron waits 2 s). ``network-vif-plugged`` is on the boot's critical path: the
  guest stays paused until it arrives, so every millisecond here is a millisecond of
  every boot. 0.1 s is long enough to gather what one change makes (a service-IP move
  touches two ports in one transaction; a burst of boots binds its ports within a few
  tens of milliseconds) and short beside Nova's own spawn time (seconds).
- **Size.** At most :data:`MAX_EVENTS` events per request; an outbox entry (one port's
  events of one change) is never split, so its events stay in order.
- **Answers.** 200: all accepted. 207: each event has its own ``code``; failures (most
  often 404, an instance Nova no longer has, or 422, one not on a host yet) are logged
  and not sent again — a retry would get the same answer. 5xx, 429, 401/403 after
  re-authentication and unreachable Nova: retry with :class:`Backoff`. Any other 4xx:
  the request itself is wrong, so retrying cannot help; log it and drop it.
What this module must not do: send, sleep, or read the store.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from routeplane.model.jsontypes import JSONObject, JSONValue

WINDOW = 0.1  # seconds from the oldest unsent event to its request
MAX_EVENTS = 100  # events per request


@dataclass(frozen=True)
class Entry:
    """One outbox entry: its key and its events, in the order they were derived."""

    key: str
    events: tuple[JSONObject, ...]


def batches(entries: Sequence[Entry], max_events: int = MAX_EVENTS) -> list[list[Entry]]:
    """``entries`` (oldest first) cut into requests of at most ``max_events`` events; an
    entry with more than that goes alone."""
    out: list[list[Entry]] = []
    current: list[Entry] = []
    count = 0
    for entry in entries:
        if current and count + len(entry.events) > max_events:
            out.append(current)
            current, count = [], 0
        current.append(entry)
        count += len(entry.events)
    if current:
        out.append(current)
    return out


def due(first_seen: float | None, now: float, window: float = WINDOW) -> bool:
    """Whether the events waiting since ``first_seen`` should leave now."""
    return first_seen is not None and now - first_seen >= window


class Verdict(enum.Enum):
    SENT = "sent"  # done with: delete the entries
    RETRY = "retry"  # keep the entries, try again after a backoff
    DROPPED = "dropped"  # Nova refused the request as a whole: delete, logged


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    refused: tuple[JSONObject, ...] = ()  # 207: the events Nova did not accept
    detail: str = ""


def read_answer(code: int | None, body: JSONValue) -> Answer:
    """Nova's answer to one request; ``code`` None: no answer (unreachable, timed out)."""
    if code is None:
        return Answer(Verdict.RETRY, detail="Nova unreachable")
    if code == 200:
        return Answer(Verdict.SENT)
    if code == 207:
        events = body.get("events") if isinstance(body, dict) else None
        listed = events if isinstance(events, list) else []
        refused = tuple(e for e in listed if isinstance(e, dict) and e.get("code", 200) != 200)
        return Answer(Verdict.SENT, refused)
    if code >= 500 or code in (401, 403, 408, 429):
        return Answer(Verdict.RETRY, detail=f"HTTP {code}")
    return Answer(Verdict.DROPPED, detail=f"HTTP {code}: {body}")


@dataclass
class Backoff:
    """Delays between attempts while Nova is unreachable: doubling, capped."""

    initial: float = 0.25
    # short: while Nova is away a failed attempt costs one refused connection (or one
    # error answer) per cap, sent by the leader alone; and the cap is the longest an
    # event waits after Nova is back (measured in the lab at 10 s: 7 s after nova-api
    # answered again; at 2 s: see docs/design/nova.md)
    cap: float = 2.0
    failures: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * 2.0**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


__all__ = [
    "MAX_EVENTS",
    "WINDOW",
    "Answer",
    "Backoff",
    "Entry",
    "Verdict",
    "batches",
    "due",
    "read_answer",
]
