"""Network namespaces, veth pairs and commands run inside namespaces, with a cleanup
registry — the building blocks of the lab and of every test that needs a real kernel.

Safety is the point of this module, so it is strict about names: every namespace it
creates, enters or deletes is named ``rp-…`` (checked on every call, not only at
creation), and interfaces are only ever created *inside* such a namespace (``ip -n``), so
nothing can land in the root namespace. A :class:`Cleanup` registry undoes what was made,
newest first, and keeps going when one step fails, so a failed test leaves nothing behind.

It shells out to ``ip`` (iproute2): these are rare, one-off operations where a readable
command line beats speed.

What this module must not do: touch a namespace it was not given by name, or anything in
the root namespace.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Sequence
from types import TracebackType

PREFIX = "rp-"
NETNS_DIR = "/run/netns"
TIMEOUT = 30.0


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and what it printed."""


def check(name: str) -> str:
    """``name`` itself, if it is a namespace name the lab may touch."""
    if not name.startswith(PREFIX) or "/" in name or len(name) > 64:
        raise ValueError(f"lab namespaces are named {PREFIX}…: refusing {name!r}")
    return name


def unique_name(kind: str) -> str:
    """A fresh namespace name: ``rp-<kind>-<8 hex digits>``."""
    return check(f"{PREFIX}{kind}-{secrets.token_hex(4)}")


def run(
    command: Sequence[str],
    *,
    input: str | None = None,
    check_rc: bool = True,
    timeout: float = TIMEOUT,
) -> str:
    """Run a command (never through a shell); its standard output."""
    done = subprocess.run(
        list(command), input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check_rc and done.returncode != 0:
        raise LabError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def names() -> list[str]:
    """Every namespace whose name starts with ``rp-``."""
    listed = run(["ip", "netns", "list"])
    return [line.split()[0] for line in listed.splitlines() if line.startswith(PREFIX)]


def exists(name: str) -> bool:
    return check(name) in names()


def create(name: str) -> str:
    """Create namespace ``name`` with its loopback up; fails if it exists already."""
    run(["ip", "netns", "add", check(name)])
    ip(name, "link", "set", "lo", "up")
    return name


def delete(name: str) -> None:
    """Delete namespace ``name`` (and so every interface in it); absent is fine."""
    if exists(name):
        run(["ip", "netns", "delete", check(name)])


def ip(name: str, *args: str, input: str | None = None, timeout: float = TIMEOUT) -> str:
    """``ip -n <name> …``: iproute2 acting inside the namespace (``-batch -`` with
    ``input`` for many commands at once)."""
    return run(["ip", "-n", check(name), *args], input=input, timeout=timeout)


def exec_in(name: str, *command: str, input: str | None = None, check_rc: bool = True) -> str:
    """``ip netns exec <name> …``: any command, inside the namespace."""
    return run(["ip", "netns", "exec", check(name), *command], input=input, check_rc=check_rc)


def add_veth(
    name: str,
    interface: str,
    peer_namespace: str,
    peer: str,
    *,
    mac: str | None = None,
    peer_mac: str | None = None,
    up: bool = False,
    peer_up: bool = True,
) -> None:
    """A veth pair: ``interface`` in namespace ``name``, its ``peer`` moved into
    ``peer_namespace`` (say a VM's ``eth0``). The peer comes up by default, so the
    interface has carrier as soon as it is set up itself."""
    command = ["link", "add", interface]
    if mac:
        command += ["address", mac]
    command += ["type", "veth", "peer", "name", peer, "netns", check(peer_namespace)]
    if peer_mac:
        command += ["address", peer_mac]
    ip(name, *command)
    if up:
        ip(name, "link", "set", interface, "up")
    if peer_up:
        ip(peer_namespace, "link", "set", peer, "up")


class Cleanup:
    """Undo actions, run newest first by :meth:`close`; a failing one does not stop the
    rest (the errors are raised together at the end)."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], None]]] = []

    def add(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def namespace(self, kind: str) -> str:
        """A new namespace ``rp-<kind>-…``, deleted at cleanup."""
        name = unique_name(kind)
        self.add(f"delete namespace {name}", lambda: delete(name))
        create(name)
        return name

    def close(self) -> None:
        failures = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep cleaning up; report everything at the end
                failures.append(f"{what}: {exc}")
        if failures:
            raise LabError("cleanup failed: " + "; ".join(failures))

    def __enter__(self) -> Cleanup:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "NETNS_DIR",
    "PREFIX",
    "Cleanup",
    "LabError",
    "add_veth",
    "check",
    "create",
    "delete",
    "exec_in",
    "exists",
    "ip",
    "names",
    "run",
    "unique_name",
]
