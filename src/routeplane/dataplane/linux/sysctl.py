"""Interface and host sysctls, written straight to ``/proc/sys``.

One ``open``/``read``/``write`` per value (~10 µs; turning IPv6 forwarding on for an
interface costs ~70 µs) instead of a ``sysctl`` process per change, and a precise error
per path instead of parsing a tool's messages. A value already right is not written
again. Network sysctls are resolved
against the network namespace of the thread that opens the file, so the caller runs
these functions through ``namespace.Namespace.run``.

What this module must not do: write anything outside ``/proc/sys/net``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

PROC_SYS = "/proc/sys"


def _path(key: str) -> str:
    if not key.startswith("net/") or ".." in key.split("/"):
        raise ValueError(f"not a network sysctl: {key!r}")
    return f"{PROC_SYS}/{key}"


def write(values: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Set each ``(path under /proc/sys, value)``; returns the failures, path → reason.
    IPv6 paths are skipped on a kernel without IPv6 (booted with ``ipv6.disable=1``)."""
    ipv6 = os.path.isdir(f"{PROC_SYS}/net/ipv6")
    failed: dict[str, str] = {}
    for key, value in values:
        if not ipv6 and key.startswith("net/ipv6/"):
            continue
        try:
            fd = os.open(_path(key), os.O_RDWR | os.O_CLOEXEC)
            try:
                # Read first: some handlers take the RTNL lock on every write, even of
                # the value already there (IPv6 forwarding), and a restarted agent
                # rewrites every tap's sysctls.
                if os.read(fd, 64).strip() != value.encode():
                    os.lseek(fd, 0, os.SEEK_SET)
                    os.write(fd, value.encode())
            finally:
                os.close(fd)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            failed[key] = reason
    return failed


def read(key: str) -> str:
    with open(_path(key), encoding="ascii") as file:
        return file.read().strip()


__all__ = ["PROC_SYS", "read", "write"]
