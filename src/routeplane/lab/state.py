"""The lab's state file: what it made, so ``status`` can show it and ``down`` undo it.

``STATE/state.json`` records the namespaces, the processes (PID and the command line
``/proc/PID/cmdline`` must still show, so a recycled PID is never killed), the api port and
credentials, and the VMs. It is rewritten atomically (temporary file + rename) after every
step of ``up`` and ``boot``, so a crash at any point leaves a file that names everything
made so far. Writers hold ``STATE/lock`` (``flock``) so two ``lab boot`` runs do not lose
each other's VM.

Reading is forgiving: ``load`` answers ``None`` for a missing or unreadable file, and
``down`` then falls back to the topology's name patterns.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ProcessRecord:
    pid: int
    cmdline: list[str]  # what /proc/PID/cmdline shows while it is ours
    log: str


@dataclass
class VmRecord:
    name: str
    host: str
    namespace: str
    port_id: str
    tap: str
    mac: str
    network: str
    addresses: list[str]  # with prefix length, as configured on eth0
    kind: str = "namespace"  # or "qemu": a real guest on the tap (routeplane.lab.qemu_vm)


@dataclass
class LabState:
    lab: str
    hosts: int
    api_port: int
    admin_token: str
    admin_password: str
    namespaces: list[str] = field(default_factory=list)
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    vms: dict[str, VmRecord] = field(default_factory=dict)
    bird_dirs: dict[str, str] = field(default_factory=dict)  # node -> BIRD's directory
    # process key ("api", "controller", "agent-node1", …) -> its --metrics-listen port
    metrics_ports: dict[str, int] = field(default_factory=dict)
    seeded: bool = False
    store: str = "sqlite"  # or "etcd": a 3-member cluster of the lab's own (etcd_cluster)
    openstack_env: dict[str, str] = field(default_factory=dict)  # OS_* for Keystone (--openstack)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(raw: dict[str, Any]) -> LabState:
        data = dict(raw)
        data["processes"] = {k: ProcessRecord(**v) for k, v in raw.get("processes", {}).items()}
        data["vms"] = {k: VmRecord(**v) for k, v in raw.get("vms", {}).items()}
        return LabState(**data)


def save(path: Path, state: LabState) -> None:
    """Replace the state file atomically (readable by root only: it holds credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(state.to_json(), out, indent=2, sort_keys=True)
        out.write("\n")
    temporary.replace(path)


def load(path: Path) -> LabState | None:
    """The recorded state, or None when there is none or it cannot be read."""
    try:
        return LabState.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the lab's lock: one writer of the state at a time."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


__all__ = ["LabState", "ProcessRecord", "VmRecord", "load", "locked", "save"]
