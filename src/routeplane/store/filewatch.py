"""When the embedded store's poller should look again: a nudge, a file write, or a timer.

Role: the embedded store's poller (``store/sqlite_watch.py``) must notice a commit made by
another process or another connection. ``PRAGMA data_version`` tells *whether* the file
changed, but only when asked; asking every few milliseconds costs wake-ups when idle and
still leaves a change waiting for the next tick. Linux inotify turns the wait into an
event: the kernel marks a descriptor readable as soon as anyone writes one of the store's
files. :class:`Wakeups` waits (``select.poll``) on that descriptor, on an ``eventfd`` that
threads of this process write to (a new watch, a local commit, ``close``), and on a timer.

Inputs: the path of a sqlite database and the timer intervals. Output: ``wait()`` returns
why the poller woke; the poller then checks ``data_version`` and reports back
(``looked()``) so the timer can back off while nothing happens.

Why the directory and not the files: sqlite deletes the WAL when the last connection
closes and creates it again on the next open, and rollback journals come and go with each
transaction; a watch on such a file dies with it (inotify watches an inode, not a name),
and a file that does not exist yet cannot be watched at all. The directory lives as long
as the database, so one watch on it sees every incarnation of every file, and the names
in the events tell ours from the neighbours'.

What it must not do: decide anything about the database. An event means "look again",
never "there is a commit": sqlite writes WAL frames *before* it publishes the commit in
the shared-memory index, so a reader woken by the write may look too early. That is why,
after a file event, the timer fires a few times within the next 64 ms: a commit
published just after the look is still seen within a fraction of a millisecond. The ``-shm`` file is not
watched: it is written through ``mmap``, which inotify does not report.

No new dependency: only ``inotify_init1`` and ``inotify_add_watch`` come from libc
through ctypes; reading and closing descriptors are ordinary ``os`` calls. Where inotify
is missing (not Linux, a libc without it, ``fs.inotify.max_user_instances`` reached, 128
per user by default) :class:`StoreFileWatch` raises ``OSError`` and :class:`Wakeups`
quietly polls on the timer at the caller's intervals instead.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# From <sys/inotify.h>; stable Linux ABI.
IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

WATCH_MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
_READ_SIZE = 64 * 1024  # many events per read; always more than one maximal event
# Events that say "we may have lost track": the queue overflowed, or the watch is gone.
_LOST = IN_Q_OVERFLOW | IN_IGNORED
# With inotify the timer is only a safety net. After activity it looks again after 0.25,
# 0.5, 1, ... 32 ms (a commit may be published just after a look that came too early; a
# writer preempted at that moment publishes milliseconds later), then waits the idle
# interval, at least 0.1 s.
SETTLE_INTERVAL = 0.00025
SETTLE_LIMIT = 0.032
WATCHED_IDLE_INTERVAL = 0.1


@functools.cache
def _libc() -> Any:
    """libc's inotify entry points, typed; ``OSError`` where there are none."""
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, "inotify is Linux only")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError) as exc:
        raise OSError(errno.ENOSYS, f"libc has no inotify: {exc}") from exc
    init1.argtypes, init1.restype = [ctypes.c_int], ctypes.c_int
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    add_watch.restype = ctypes.c_int
    return libc


def _failed(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


class StoreFileWatch:
    """An inotify descriptor that becomes readable when the database's files are written.

    One per poller thread; close it when the poller stops. Not thread-safe: one thread
    waits on it and drains it.
    """

    def __init__(self, database: str | os.PathLike[str]) -> None:
        # sqlite resolves symbolic links to place its -wal and -journal beside the real
        # file, so that is the directory and the name to watch.
        real = os.path.realpath(database)
        directory, name = os.path.split(real)
        self.directory = directory
        self.names = frozenset({name, f"{name}-wal", f"{name}-journal"})
        self._encoded = frozenset(n.encode() for n in self.names)
        libc = _libc()
        fd: int = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise _failed("inotify_init1")
        self._fd = fd
        if libc.inotify_add_watch(fd, os.fsencode(directory), WATCH_MASK | IN_ONLYDIR) < 0:
            error = _failed(f"inotify_add_watch {directory}")
            os.close(fd)
            self._fd = -1
            raise error

    def fileno(self) -> int:
        """The descriptor to wait on for readability; -1 once closed."""
        return self._fd

    def drain(self) -> bool:
        """Read every pending event without blocking; did any concern the database?

        True too when the kernel dropped events (queue overflow) or removed the watch:
        the caller cannot know what it missed, so it must look.
        """
        touched = False
        while self._fd >= 0:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            touched = self._concerns_us(data) or touched
        return touched

    def _concerns_us(self, data: bytes) -> bool:
        offset = 0
        touched = False
        while offset + _EVENT.size <= len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            start = offset + _EVENT.size
            offset = start + length
            ours = bool(mask & WATCH_MASK) and data[start:offset].rstrip(b"\0") in self._encoded
            touched = touched or ours or bool(mask & _LOST)
        return touched

    def close(self) -> None:
        """Release the descriptor (and with it the kernel's watch); idempotent."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> StoreFileWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Wake:
    """Why :meth:`Wakeups.wait` returned; all false means only the caller's deadline."""

    nudged: bool = False  # a thread of this process asked (watch added, commit, close)
    touched: bool = False  # one of the database's files was written
    timer: bool = False  # the poll timer ran out

    @property
    def look(self) -> bool:
        """Whether the poller should look at the database now."""
        return self.nudged or self.touched or self.timer


class Wakeups:
    """What one poller thread waits on; every descriptor is released by :meth:`close`.

    ``poll_interval`` and ``idle_interval`` are the timer's first and longest intervals
    when there is no inotify: it doubles from one to the other while nothing changes.
    With inotify, the timer doubles from :data:`SETTLE_INTERVAL` to :data:`SETTLE_LIMIT`
    after activity, then waits ``max(idle_interval, WATCHED_IDLE_INTERVAL)``: only file
    events and nudges wake the poller quickly, and nothing polls while idle.
    ``nudge`` may be called from any thread; the rest belongs to the poller thread.
    """

    def __init__(
        self,
        database: str | os.PathLike[str],
        *,
        poll_interval: float,
        idle_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # nudge vs close: never write to a reused fd number
        self._eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            self.files: StoreFileWatch | None = StoreFileWatch(database)
        except OSError:
            self.files = None  # the timer alone will do, as it did before inotify
        if self.files is None:
            self._first, self._limit = poll_interval, idle_interval
            self._idle = idle_interval
        else:
            self._first, self._limit = SETTLE_INTERVAL, SETTLE_LIMIT
            self._idle = max(idle_interval, WATCHED_IDLE_INTERVAL)
        self._interval = self._first
        self._next_look = clock()  # look once at the start
        self._poll = select.poll()
        self._poll.register(self._eventfd, select.POLLIN)
        if self.files is not None:
            self._poll.register(self.files.fileno(), select.POLLIN)

    @property
    def inotify(self) -> bool:
        """Whether file events wake the poller (else only nudges and the timer do)."""
        return self.files is not None

    def nudge(self) -> None:
        """Wake the poller from another thread of this process; harmless once closed."""
        with self._lock:
            if self._eventfd >= 0:
                os.eventfd_write(self._eventfd, 1)

    def wait(self, until: float) -> Wake:
        """Block until a nudge, a file event, the poll timer or ``until`` (clock time)."""
        timeout = max(0.0, min(self._next_look, until) - self._clock())
        if 0.0 < timeout < 0.001:  # poll() rounds up to whole milliseconds
            time.sleep(timeout)
            timeout = 0.0
        ready = {fd for fd, _mask in self._poll.poll(timeout * 1000)}
        nudged = self._eventfd in ready and self._drain_eventfd()
        touched = self.files is not None and self.files.fileno() in ready and self.files.drain()
        return Wake(nudged, touched, self._clock() >= self._next_look)

    def _drain_eventfd(self) -> bool:
        try:
            os.eventfd_read(self._eventfd)
        except BlockingIOError:
            return False
        return True

    def looked(self, active: bool) -> None:
        """Set the timer after a look: soon after activity, backing off while idle."""
        interval = self._first if active else self._interval * 2
        self._interval = self._idle if interval > self._limit else interval
        self._next_look = self._clock() + self._interval

    def close(self) -> None:
        """Release the eventfd and the inotify descriptor; idempotent."""
        with self._lock:
            fd, self._eventfd = self._eventfd, -1
        if fd >= 0:
            os.close(fd)
        if self.files is not None:
            self.files.close()


__all__ = [
    "SETTLE_INTERVAL",
    "SETTLE_LIMIT",
    "WATCHED_IDLE_INTERVAL",
    "WATCH_MASK",
    "StoreFileWatch",
    "Wake",
    "Wakeups",
]
