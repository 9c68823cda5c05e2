"""routeplane's nftables table in one network namespace.

A script (rendered by ``dataplane.nft_render``, or an update from ``dataplane.nft_delta``)
is applied as one atomic transaction: the kernel takes all of it or none, and on failure
keeps the previous version. It goes through libnftables in this process (``libnft``:
about 0.1 ms for a set element) or, where that library is missing, through the ``nft``
command (``nft -f -``, about 4 ms a call), run inside the namespace with ``nsenter
--net=/run/netns/<name>`` since ``nft`` has no namespace option of its own. Without a
namespace both act on the caller's own.

A whole table (a script of ``libnft.BIG`` bytes or more: at start, after a failure) goes
through the command even where the library is loaded: parsing it takes about 30 times
its size in memory (some 35 MB for 10,000 endpoints), which in-process would become the
agent's peak; the few milliseconds of a process do not matter there.

What this module must not do: touch any table but ``inet routeplane``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Protocol

from routeplane.dataplane.linux import libnft
from routeplane.dataplane.linux.namespace import NETNS_DIR
from routeplane.dataplane.nft_render import FAMILY, TABLE
from routeplane.model.errors import DataplaneError

TIMEOUT = 30.0


class _Runner(Protocol):
    where: str

    def run(self, commands: str) -> tuple[bool, str, str]: ...

    def close(self) -> None: ...


class _Command:
    """The ``nft`` command, one process per call."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self.where = netns or "own namespace"

    def run(self, commands: str) -> tuple[bool, str, str]:
        # The script goes in a file, not down a pipe: feeding a megabyte through a pipe
        # takes this thread dozens of turns at the interpreter lock, each waited for
        # while the agent plans its routes; with a file it only waits for the process.
        with tempfile.NamedTemporaryFile("w", prefix="routeplane-", suffix=".nft") as script:
            script.write(commands)
            script.flush()
            command = ["nft", "-f", script.name]
            if self.netns is not None:
                where = os.path.join(NETNS_DIR, self.netns)
                command = ["nsenter", f"--net={where}", "--", *command]
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise DataplaneError(f"nft in {self.where}: {exc}") from exc
        return done.returncode == 0, done.stdout, done.stderr

    def close(self) -> None:
        pass


class NftTable:
    """Table ``inet routeplane`` in network namespace ``netns`` (``None``: our own);
    ``library=False`` uses the ``nft`` command even where libnftables is installed."""

    def __init__(self, netns: str | None, *, library: bool = True) -> None:
        self.netns = netns
        if netns is not None and (
            "/" in netns or not os.path.exists(os.path.join(NETNS_DIR, netns))
        ):
            raise DataplaneError(f"network namespace {netns!r} does not exist")
        use_library = library and libnft.available()
        self._runner: _Runner = libnft.LibNft(netns) if use_library else _Command(netns)
        self._big: _Runner = _Command(netns) if shutil.which("nft") else self._runner
        self.engine = "libnftables" if use_library else "nft command"

    def apply(self, script: str) -> None:
        """Apply ``script`` (``nft -f`` syntax) atomically; the previous ruleset stays on
        failure, and the error carries nft's message."""
        runner = self._big if len(script) >= libnft.BIG else self._runner
        ok, _, error = runner.run(script)
        if not ok:
            engine = "nft command" if isinstance(runner, _Command) else self.engine
            raise DataplaneError(f"nft -f in {runner.where} failed ({engine}): {error.strip()}")

    def exists(self) -> bool:
        ok, listed, _ = self._runner.run("list tables")
        return ok and f"table {FAMILY} {TABLE}" in listed.splitlines()

    def list(self) -> str:
        """The table as the kernel holds it (``nft list table``)."""
        ok, listed, error = self._runner.run(f"list table {FAMILY} {TABLE}")
        if not ok:
            raise DataplaneError(f"nft list table {FAMILY} {TABLE}: {error.strip()}")
        return listed

    def delete(self) -> None:
        """Remove table ``inet routeplane`` (absent is fine); nothing else."""
        self.apply(f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n")

    def close(self) -> None:
        self._runner.close()
        self._big.close()


__all__ = ["NftTable"]
