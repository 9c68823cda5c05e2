"""A lab with a real OpenStack (``lab up --openstack``) as its tests drive it.

:class:`Cloud` runs the ``openstack`` CLI as the lab's Keystone admin, reads what Nova's
api logged of the external events it accepted (its own evidence that an event arrived,
once per event: ``Creating event <name>:<port> for instance <id> on <host>``), and looks
into the lab's namespaces and store. Shared by the lab's OpenStack test modules; the lab
itself is their module's fixture.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routeplane.lab import netns
from routeplane.lab.openstack import NOVA_API
from routeplane.lab.openstack_conf import OFFSETS
from routeplane.lab.waiting import wait_until
from routeplane.store import open_store
from routeplane.testing.api import port_free

OPENSTACK = str(Path(sys.executable).with_name("openstack"))
CREATING = " Creating event "


@dataclass
class Cloud:
    name: str
    env: dict[str, str]
    state_dir: Path

    def openstack(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [OPENSTACK, *args], env=self.env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, f"openstack {shlex.join(args)}: {done.stderr[-2000:]}"
        return done.stdout.strip()

    def boot(self, server: str, host: str) -> tuple[str, float]:
        """The server's id once ACTIVE, and the seconds ``server create --wait`` took."""
        started = time.monotonic()
        out = self.openstack(
            "server", "create", "--flavor", "m1.lab", "--image", "routeplane-guest",
            "--network", "demo-net", "--availability-zone", f"nova:{host}", "--wait",
            "-f", "value", "-c", "id", "-c", "status", server, check=False,
        )  # fmt: skip
        took = time.monotonic() - started
        shown = json.loads(self.openstack("server", "show", server, "-f", "json"))
        assert shown["status"] == "ACTIVE", (out, shown.get("fault"))
        return shown["id"], took

    def port_of(self, server: str) -> str:
        return self.openstack("port", "list", "--server", server, "-f", "value", "-c", "ID")

    def address(self, server: str) -> str:
        shown = json.loads(self.openstack("server", "show", server, "-f", "json"))
        return str(next(a for a in shown["addresses"]["demo-net"] if "." in a))

    @property
    def nova_api_log(self) -> Path:
        return self.state_dir / "logs" / f"{NOVA_API}.log"

    def nova_events(self, since: int = 0) -> str:
        """What Nova's api logged of the external events it accepted (from byte ``since``
        of its log on)."""
        with self.nova_api_log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return "\n".join(line for line in text.splitlines() if CREATING in line)

    def nova_event_counts(self, since: int = 0) -> Counter[str]:
        """``name:port`` → how many times Nova's api accepted it (from byte ``since`` on)."""
        lines = self.nova_events(since).splitlines()
        return Counter(line.split(CREATING, 1)[1].split()[0] for line in lines)

    def exec(self, namespace: str, *command: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", netns.check(namespace), *command],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return done.stdout

    def store_items(self, under: str = "/routeplane/v1/") -> dict[str, Any]:
        store = open_store(f"sqlite://{self.state_dir / 'store.db'}")  # the lab's
        try:
            return {kv.key: kv.value for kv in store.range(under).items}
        finally:
            store.close()

    def store_keys(self, port_id: str) -> list[str]:
        return [k for k in self.store_items() if port_id in k]


def lab_port() -> int:
    """An api port for ``lab up --openstack`` whose whole block (the api, then Keystone,
    Placement, Nova, RabbitMQ at fixed offsets) is free and below the kernel's ephemeral
    range: a port from that range may be taken as the source port of any outgoing
    connection on a busy machine between now and the service's bind (seen: Placement's
    "Address already in use")."""
    first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    span = max(OFFSETS.values()) + 1
    for _ in range(200):
        port = random.randrange(20000, first - span)
        if all(port_free(port + offset) for offset in range(span)):
            return port
    raise AssertionError("no free block of loopback ports below the ephemeral range")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    assert wait_until(check, timeout, 0.2), f"timed out after {timeout}s waiting for {what}"


def lab_env(name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    shown = subprocess.run(
        [sys.executable, "-m", "routeplane.cli.main", "lab", "env", "--name", name],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    for line in shown.splitlines():
        if line.startswith("export "):
            key, _, value = shlex.split(line)[1].partition("=")
            env[key] = value
    return env


__all__ = ["Cloud", "lab_env", "lab_port", "wait_for"]
