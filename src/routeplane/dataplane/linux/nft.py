"""routeplane's nftables table in one network namespace, through the ``nft`` command.

The only module that runs ``nft``. A ruleset (rendered by ``dataplane.nft_render``) is
applied with ``nft -f -`` as one atomic transaction: the kernel either takes all of it or
none, and on failure keeps the previous version. The command runs inside the namespace
through ``nsenter --net=/run/netns/<name>`` (``nft`` has no ``-n`` option of its own);
without a namespace it runs in the caller's own.

What this module must not do: touch any table but ``inet routeplane``.
"""

from __future__ import annotations

import os
import subprocess

from routeplane.dataplane.linux.namespace import NETNS_DIR
from routeplane.dataplane.nft_render import FAMILY, TABLE
from routeplane.model.errors import DataplaneError

TIMEOUT = 30.0


class NftTable:
    """Table ``inet routeplane`` in network namespace ``netns`` (``None``: our own)."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        if netns is not None and (
            "/" in netns or not os.path.exists(os.path.join(NETNS_DIR, netns))
        ):
            raise DataplaneError(f"network namespace {netns!r} does not exist")

    def _nft(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        command = ["nft", *args]
        if self.netns is not None:
            command = ["nsenter", f"--net={os.path.join(NETNS_DIR, self.netns)}", "--", *command]
        try:
            return subprocess.run(
                command, input=input, capture_output=True, text=True, timeout=TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataplaneError(f"nft in {self.netns or 'own namespace'}: {exc}") from exc

    def apply(self, script: str) -> None:
        """Apply ``script`` (``nft -f`` syntax) atomically; the previous ruleset stays on
        failure, and the error carries nft's message."""
        done = self._nft("-f", "-", input=script)
        if done.returncode != 0:
            raise DataplaneError(
                f"nft -f in {self.netns or 'own namespace'} failed "
                f"(exit {done.returncode}): {done.stderr.strip()}"
            )

    def exists(self) -> bool:
        return self._nft("list", "table", FAMILY, TABLE).returncode == 0

    def list(self) -> str:
        """The table as the kernel holds it (``nft list table``)."""
        done = self._nft("list", "table", FAMILY, TABLE)
        if done.returncode != 0:
            raise DataplaneError(f"nft list table {FAMILY} {TABLE}: {done.stderr.strip()}")
        return done.stdout

    def delete(self) -> None:
        """Remove table ``inet routeplane`` (absent is fine); nothing else."""
        self.apply(f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n")


__all__ = ["NftTable"]
