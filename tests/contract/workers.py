"""Processes for the multi-process store tests (importable, so ``spawn`` can start them).

Each worker opens the store by URL in its own process, as the api and agents do.
"""

from __future__ import annotations

import random
import time
from threading import Event as EventSignal  # what a multiprocessing Manager proxies
from typing import Any

from routeplane.store import (
    Delete,
    EventType,
    Get,
    KeyValue,
    Put,
    absent,
    mod_revision_is,
    open_store,
)


def claim(url: str, keys: list[str], me: str, go: EventSignal) -> list[tuple[str, bool, Any]]:
    """Race for each key with create-if-absent; report (key, won, holder seen)."""
    store = open_store(url)
    go.wait(30)
    outcome: list[tuple[str, bool, Any]] = []
    for key in keys:
        result = store.txn([absent(key)], [Put(key, me)], [Get(key)])
        holder = result.results[0] if not result.succeeded else None
        outcome.append(
            (key, result.succeeded, holder.value if isinstance(holder, KeyValue) else None)
        )
    store.close()
    return outcome


Record = tuple[int, str, str]  # (revision, event type, key), in the order the store applied


def write_mix(url: str, root: str, writer: int, count: int, go: EventSignal) -> list[Record]:
    """``count`` mixed writes: puts, deletes, two-key transactions and contended CAS."""
    store = open_store(url)
    rng = random.Random(writer)
    live: set[str] = set()
    records: list[Record] = []
    go.wait(30)
    done = 0
    while done < count:
        choice = rng.random()
        key = f"{root}w{writer}/k{rng.randrange(40)}"
        if choice < 0.45:
            rev = store.put(key, {"w": writer, "n": done})
            records.append((rev, "PUT", key))
            live.add(key)
        elif choice < 0.65 and live:
            victim = rng.choice(sorted(live))
            result = store.txn([], [Delete(victim)])
            records.append((result.revision, "DELETE", victim))
            live.discard(victim)
        elif choice < 0.85:
            other = f"{root}w{writer}/pair{rng.randrange(5)}"
            result = store.txn([], [Put(key, done), Put(other, done)])
            records += [(result.revision, "PUT", key), (result.revision, "PUT", other)]
            live.update((key, other))
        else:
            shared = f"{root}shared"
            while True:  # optimistic increment of a counter every writer contends for
                current = store.get(shared)
                rev = 0 if current is None else current.mod_revision
                count_now = 0 if current is None else int(str(current.value))
                result = store.txn([mod_revision_is(shared, rev)], [Put(shared, count_now + 1)])
                if result.succeeded:
                    records.append((result.revision, "PUT", shared))
                    break
        done += 1
    store.close()
    return records


def watch_until(
    url: str, root: str, start_revision: int, stop_key: str, ready: EventSignal
) -> list[Record]:
    """Collect every event under ``root`` until ``stop_key`` is written (at most 120 s)."""
    store = open_store(url)
    seen: list[Record] = []
    with store.watch(root, start_revision) as watch:
        ready.set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            batch = watch.next_batch(timeout=0.5)
            for event in batch:
                if event.key == stop_key:
                    store.close()
                    return seen
                seen.append((event.revision, event.type.value, event.key))
    store.close()
    return seen


__all__ = ["EventType", "claim", "watch_until", "write_mix"]
