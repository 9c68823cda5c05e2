"""The embedded store notices other writers at once, and still without inotify.

Scope: ``SqliteStore``'s poller as a watcher in another process sees it: a commit by
another store object or another process reaches a watch without waiting for a timer;
where inotify is unavailable the timer still delivers; leases expire on time whatever
the timers; closing stores gives every descriptor back.

How "without waiting for a timer" is shown: the watching store's timers are set to 30 s,
so a delivery within seconds can only come from a wake-up (the few timer looks that
follow activity are over before the test writes). The same setting without inotify
delivers nothing in that time, which shows the setting leaves the timer out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import routeplane
from routeplane.store import Event, EventType, Watch
from routeplane.store.filewatch import StoreFileWatch
from routeplane.store.sqlite import SqliteStore

pytestmark = pytest.mark.contract

SETTLED = 0.3  # seconds after which the timer looks that follow activity are over


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def stores() -> Iterator[list[SqliteStore]]:
    """Stores the test opens, closed when it ends."""
    opened: list[SqliteStore] = []
    yield opened
    for store in opened:
        store.close()


def slow_store(db: Path) -> SqliteStore:
    """A store whose timers wait 30 s: only wake-ups make it deliver quickly."""
    return SqliteStore(db, poll_interval=30.0, idle_poll_interval=30.0)


def first_events(watch: Watch, timeout: float) -> tuple[list[Event], float]:
    """The first batch and the seconds it took; an empty list when none came in time."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        batch = watch.next_batch(timeout=0.05)
        if batch:
            return list(batch), time.monotonic() - started
    return [], timeout


def no_inotify(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(database: object) -> StoreFileWatch:
        raise OSError(24, "inotify_init1: Too many open files")

    monkeypatch.setattr("routeplane.store.filewatch.StoreFileWatch", unavailable)


def test_a_write_by_another_store_object_wakes_the_watch(
    db: Path, stores: list[SqliteStore]
) -> None:
    watcher = slow_store(db)
    writer = SqliteStore(db)
    stores += [watcher, writer]
    with watcher.watch("/t/") as watch:
        time.sleep(SETTLED)
        for n in range(3):
            writer.put("/t/k", n)
            events, took = first_events(watch, timeout=2.0)
            assert [(e.type, e.value) for e in events] == [(EventType.PUT, n)]
            assert took < 1.0
        watcher.put("/t/own", "x")  # the watcher's own write: woken by this process
        events, took = first_events(watch, timeout=2.0)
        assert [e.key for e in events] == ["/t/own"]


def test_a_write_by_another_process_wakes_the_watch(db: Path, stores: list[SqliteStore]) -> None:
    watcher = slow_store(db)
    stores.append(watcher)
    src = str(Path(routeplane.__file__).parents[1])
    child = (
        "import sys, time\n"
        "from routeplane.store.sqlite import SqliteStore\n"
        "store = SqliteStore(sys.argv[1])\n"
        "store.put('/t/from-child', {'sent': time.monotonic_ns()})\n"
        "store.close()\n"
    )
    with watcher.watch("/t/") as watch:
        time.sleep(SETTLED)
        subprocess.run(
            [sys.executable, "-c", child, str(db)],
            env={**os.environ, "PYTHONPATH": src},
            check=True,
            timeout=60,
        )
        events, _ = first_events(watch, timeout=5.0)
        received = time.monotonic_ns()
    assert [e.key for e in events] == ["/t/from-child"]
    assert isinstance(events[0].value, dict)
    sent = events[0].value["sent"]
    assert isinstance(sent, int)
    assert (received - sent) / 1e9 < 1.0  # CLOCK_MONOTONIC is one clock for all processes


def test_without_inotify_the_timer_delivers(
    db: Path, stores: list[SqliteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_inotify(monkeypatch)
    polling = SqliteStore(db)  # today's intervals: 2 ms after a change, 10 ms when idle
    slow = slow_store(db)
    writer = SqliteStore(db)
    stores += [polling, slow, writer]
    with polling.watch("/t/") as fast_watch, slow.watch("/t/") as slow_watch:
        time.sleep(SETTLED)
        writer.put("/t/k", 1)
        events, took = first_events(fast_watch, timeout=2.0)
        assert [e.value for e in events] == [1]
        assert took < 1.0
        events, _ = first_events(slow_watch, timeout=0.5)
        assert events == []  # 30 s timers and no inotify: nothing wakes this one


def test_leases_expire_on_time_whatever_the_timers(db: Path, stores: list[SqliteStore]) -> None:
    store = slow_store(db)
    stores.append(store)
    lease = store.grant_lease(1)
    store.put("/t/alive", True, lease=lease)
    with store.watch("/t/") as watch:
        started = time.monotonic()
        events, _ = first_events(watch, timeout=5.0)
    assert [(e.type, e.key) for e in events] == [(EventType.DELETE, "/t/alive")]
    assert time.monotonic() - started < 3.0  # TTL 1 s, checked every 0.1 s


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_closing_stores_releases_every_descriptor_promptly(db: Path) -> None:
    SqliteStore(db).close()  # the file exists; libraries are loaded
    before = open_fds()
    slowest = 0.0
    for n in range(40):
        store = slow_store(db)
        watch = store.watch("/t/")
        if n % 2:
            store.grant_lease(5)
        store.put(f"/t/{n}", n)
        assert first_events(watch, timeout=2.0)[0]
        started = time.monotonic()
        store.close()
        slowest = max(slowest, time.monotonic() - started)
    assert open_fds() == before
    assert slowest < 1.0  # the poller wakes to stop; it does not sleep out its 30 s timer
