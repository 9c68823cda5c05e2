"""The store's file watch: which writes wake the poller, and what happens without inotify.

Scope: ``routeplane.store.filewatch`` on its own, with plain file writes in a temporary
directory standing in for sqlite (what sqlite does to its files is in the contract test
``tests/contract/test_store_wake.py``). A wake-up is observed the way the poller observes
it: the descriptor becomes readable for ``select.poll``, and ``drain()`` says whether
the event concerned the database.
"""

from __future__ import annotations

import os
import resource
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from routeplane.store.filewatch import StoreFileWatch, Wakeups

pytestmark = pytest.mark.unit


def readable(watch: StoreFileWatch, timeout: float = 1.0) -> bool:
    poller = select.poll()
    poller.register(watch.fileno(), select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def append(path: Path, data: bytes = b"x") -> None:
    with path.open("ab") as f:
        f.write(data)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    path.write_bytes(b"")
    return path


@pytest.fixture
def watch(db: Path) -> Iterator[StoreFileWatch]:
    with StoreFileWatch(db) as opened:
        yield opened


@pytest.mark.parametrize("suffix", ["", "-wal", "-journal"])
def test_a_write_to_the_database_or_its_log_wakes_the_watch(
    db: Path, watch: StoreFileWatch, suffix: str
) -> None:
    assert not readable(watch, timeout=0)
    append(db.with_name(db.name + suffix))
    assert readable(watch)
    assert watch.drain() is True
    assert watch.drain() is False  # drained, and drain() does not block


def test_writes_to_neighbours_and_the_shm_file_are_not_reported(
    db: Path, watch: StoreFileWatch
) -> None:
    for name in ("other.db", "other.db-wal", "store.db-shm", "store.db.bak", "store"):
        append(db.with_name(name))
    assert readable(watch)  # the kernel queued events for the directory ...
    assert watch.drain() is False  # ... but none concerned the database


def test_a_recreated_wal_is_still_watched(db: Path, watch: StoreFileWatch) -> None:
    """Why the directory is watched: sqlite deletes the WAL and creates a new one."""
    wal = db.with_name(db.name + "-wal")
    append(wal)
    assert watch.drain() is True
    wal.unlink()
    assert watch.drain() is False  # a deletion is no write
    append(wal)  # a new inode under the old name
    assert readable(watch)
    assert watch.drain() is True


def test_a_database_moved_into_place_is_reported(db: Path, watch: StoreFileWatch) -> None:
    restored = db.with_name("restore.tmp")
    restored.write_bytes(b"backup")
    watch.drain()
    restored.rename(db)
    assert watch.drain() is True


def test_through_a_symlink_the_real_directory_is_watched(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "store.db"
    real.write_bytes(b"")
    link = tmp_path / "link.db"
    link.symlink_to(real)
    with StoreFileWatch(link) as watch:
        append(real_dir / "store.db-wal")
        assert watch.drain() is True


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_releases_the_descriptor(db: Path) -> None:
    before = open_fds()
    for _ in range(50):
        watch = StoreFileWatch(db)
        watch.close()
        watch.close()  # idempotent
    assert open_fds() == before
    assert watch.fileno() == -1
    assert watch.drain() is False


@contextmanager
def no_free_descriptors() -> Iterator[None]:
    """Every new descriptor fails with EMFILE, as when inotify's instance limit is hit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_without_inotify_the_watch_refuses_with_oserror(db: Path) -> None:
    StoreFileWatch(db).close()  # libc loaded before the limit, as in a running process
    failed: list[OSError] = []
    with no_free_descriptors():
        try:
            StoreFileWatch(db)
        except OSError as exc:
            failed.append(exc)
    assert len(failed) == 1
    assert "inotify_init1" in str(failed[0])


def test_wakeups_report_file_events_and_nudges(db: Path) -> None:
    wakeups = Wakeups(db, poll_interval=30.0, idle_interval=30.0)
    try:
        assert wakeups.inotify
        started = time.monotonic()
        wakeups.looked(active=True)  # after activity, the timer settles: it looks soon
        assert wakeups.wait(until=started + 30).timer
        assert time.monotonic() - started < 1.0
        for _ in range(10):  # nothing changed: back off to the 30 s idle interval
            wakeups.looked(active=False)
        far = time.monotonic() + 30
        append(db.with_name(db.name + "-wal"))
        wake = wakeups.wait(until=far)
        assert (wake.touched, wake.nudged, wake.timer) == (True, False, False)
        threading.Timer(0.05, wakeups.nudge).start()
        started = time.monotonic()
        wake = wakeups.wait(until=far)
        assert (wake.touched, wake.nudged, wake.timer) == (False, True, False)
        assert time.monotonic() - started < 1.0
    finally:
        wakeups.close()
    wakeups.nudge()  # after close: nothing to wake, and no error


def test_without_inotify_wakeups_poll_on_the_callers_timer(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(database: object) -> StoreFileWatch:
        raise OSError(24, "inotify_init1: Too many open files")

    monkeypatch.setattr("routeplane.store.filewatch.StoreFileWatch", unavailable)
    wakeups = Wakeups(db, poll_interval=0.01, idle_interval=0.04)
    try:
        assert not wakeups.inotify
        started = time.monotonic()
        assert wakeups.wait(until=started + 30).timer  # the first look is due at once
        wakeups.looked(active=True)
        wake = wakeups.wait(until=started + 30)
        assert wake.timer
        assert not wake.touched
        assert 0.009 <= time.monotonic() - started < 1.0
    finally:
        wakeups.close()
