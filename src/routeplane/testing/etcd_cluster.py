"""A real etcd cluster of several members on loopback, for benchmarks and tests.

One member hides what a deployment pays for: a write to a cluster is committed only when
a majority of members has it on disk (a raft round between processes, then fsync), and a
linearizable read on a follower asks the leader first. So the api's figures on etcd are
taken on three members (issue #17), each an :class:`~routeplane.testing.etcd.EtcdServer`
with its own data directory and a pair of loopback ports chosen before any starts (every
member must know every peer's address at its first start).

What this module must not do: listen on anything but 127.0.0.1, or signal any process but
the ones it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from routeplane.testing.api import free_port
from routeplane.testing.etcd import EtcdServer


class EtcdCluster:
    """``size`` etcd members forming one cluster; :attr:`url` names all of them."""

    def __init__(
        self, size: int = 3, data_dir: str | os.PathLike[str] | None = None, *, name: str = "rp"
    ) -> None:
        self._tmp: Path | None = None
        if data_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="routeplane-etcd-cluster-"))
            base = self._tmp
        else:
            base = Path(data_dir).absolute()
        chosen: list[int] = []
        while len(chosen) < 2 * size:  # distinct, though each was free when asked
            if (port := free_port()) not in chosen:
                chosen.append(port)
        ports = list(zip(chosen[::2], chosen[1::2], strict=True))
        names = [f"{name}{index}" for index in range(size)]
        initial = ",".join(
            f"{member}=http://127.0.0.1:{peer}"
            for member, (_c, peer) in zip(names, ports, strict=True)
        )
        token = ("--initial-cluster-token", f"{name}-{ports[0][1]}")
        self.members = [
            EtcdServer(
                base / member, name=member, ports=pair, initial_cluster=initial, extra_args=token
            )
            for member, pair in zip(names, ports, strict=True)
        ]

    @property
    def url(self) -> str:
        """The store URL naming every member, for ``EtcdStore.from_url``."""
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def start(self) -> EtcdCluster:
        """Launch every member, then wait until each serves requests."""
        for member in self.members:
            member.launch()
        for member in self.members:
            member.wait_ready()
        return self

    def close(self) -> None:
        """Stop every member (by its PID) and remove the temporary directory, if any."""
        for member in self.members:
            member.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> EtcdCluster:
        with contextlib.ExitStack() as undo:  # a member that did not start: all stopped
            undo.callback(self.close)
            self.start()
            undo.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EtcdCluster"]
