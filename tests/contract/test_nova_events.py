"""Contract: Nova's external events reach a (stand-in) Nova through keystoneauth, once.

On each store backend: ports of Nova instances change while Nova is away, and every
event arrives once it is back, none twice; Nova's 207 refusals are not retried; and with
two ``routeplane controller`` processes whose leader is killed while events wait, the
other one sends them, once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.controller.nova_client import KeystoneNova, NovaSettings
from routeplane.controller.nova_notifier import NotifierSettings, NovaNotifier
from routeplane.model.jsontypes import JSONObject
from routeplane.model.keys import LEADER_KEY, nova_outbox_prefix, prefix, status_key
from routeplane.services.attributes import check_create, check_update
from routeplane.services.context import ADMIN
from routeplane.services.registry import Services
from routeplane.store import Delete, Store
from tests.contract.nova_standin import StandInNova
from tests.waiting import wait_for

pytestmark = [pytest.mark.contract, pytest.mark.slow]

SRC = str(Path(__file__).resolve().parents[2] / "src")
Seen = tuple[str, str, str]


@pytest.fixture
def nova() -> Iterator[StandInNova]:
    server = StandInNova()
    yield server
    server.stop()


@pytest.fixture
def api(store_url: str, open_url: Callable[[str], Store]) -> Iterator[Services]:
    store = open_url(store_url)
    clean(store)
    yield Services(store)
    clean(store)


def clean(store: Store) -> None:
    """The session's etcd is shared: no leader or Nova records of an earlier test."""
    store.txn([], [Delete(LEADER_KEY), Delete(prefix("nova"), prefix=True)])


class Lab:
    """A network of compute ports, changed as Nova and the agent would."""

    def __init__(self, api: Services, cidr: str) -> None:
        self.api = api
        net = self.create(api.networks, {"name": "nova-events"})
        self.net = net["id"]
        self.subnet = self.create(
            api.subnets, {"network_id": self.net, "ip_version": 4, "cidr": cidr}
        )["id"]

    @staticmethod
    def create(service: Any, body: dict[str, Any]) -> dict[str, Any]:
        return dict(service.create(ADMIN, check_create(service.attrs, body, is_admin=True)))

    def boot(self, host: str) -> tuple[str, str]:
        """A port for a new instance, bound to ``host``; returns (server, port)."""
        server = str(uuid.uuid4())
        body = {
            "network_id": self.net,
            "device_owner": "compute:nova",
            "device_id": server,
            "binding:host_id": host,
        }
        return server, self.create(self.api.ports, body)["id"]

    def programmed(self, host: str, port: str, *, up: bool = True) -> None:
        """What the agent on ``host`` writes when it has (un)programmed ``port``."""
        if up:
            self.api.ports.repo.store.put(status_key(host, port), {"port_revision": 1})
        else:
            self.api.ports.repo.store.delete(status_key(host, port))

    def add_address(self, port: str) -> None:
        current = self.api.ports.get(ADMIN, port)["fixed_ips"]
        body = {"fixed_ips": [*current, {"subnet_id": self.subnet}]}
        checked = check_update(self.api.ports.attrs, body, is_admin=True)
        self.api.ports.update(ADMIN, port, checked, None)

    def delete(self, port: str) -> None:
        self.api.ports.delete(ADMIN, port, None)


def arrived_once(nova: StandInNova, expected: list[Seen], settle: float = 1.0) -> None:
    wait_for(lambda: Counter(nova.seen()) >= Counter(expected), 30, "the events at Nova", 0.02)
    time.sleep(settle)  # anything sent twice would come now
    assert Counter(nova.seen()) == Counter(expected)


def test_events_wait_for_nova_and_arrive_once(
    api: Services, nova: StandInNova, store_url: str, open_url: Callable[[str], Store]
) -> None:
    lab = Lab(api, "10.71.0.0/24")
    store = open_url(store_url)
    leader: JSONObject = {"holder": "test", "lease": 0, "since": "now"}
    store.put(LEADER_KEY, leader)
    client = KeystoneNova(NovaSettings.from_table(nova.nova_table()))
    notifier = NovaNotifier(store, client, lambda: leader, NotifierSettings(window=0.05))
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop.is_set,))
    thread.start()
    try:
        server_a, port_a = lab.boot("nv-h1")
        lab.programmed("nv-h1", port_a)
        expected = [("network-vif-plugged", server_a, port_a)]
        arrived_once(nova, expected, settle=0.2)

        nova.stop()  # Nova away while ports change
        server_b, port_b = lab.boot("nv-h2")
        lab.programmed("nv-h2", port_b)
        lab.add_address(port_a)
        lab.programmed("nv-h1", port_a, up=False)
        wait_for(lambda: notifier.stats["retries"] >= 2, 10, "retries", 0.02)
        time.sleep(2.0)
        nova.start()
        expected += [
            ("network-vif-plugged", server_b, port_b),
            ("network-changed", server_a, port_a),
            ("network-vif-unplugged", server_a, port_a),
        ]
        arrived_once(nova, expected)

        # an instance Nova no longer knows: the 207 refusal is logged, not retried
        nova.unknown_servers.add(server_b)
        lab.delete(port_b)
        wait_for(lambda: notifier.stats["refused"] == 1, 10, "a refusal", 0.02)
        requests = nova.requests
        time.sleep(1.0)
        assert nova.requests == requests
        assert not store.range(nova_outbox_prefix()).items
        assert Counter(nova.seen()) == Counter(expected)
    finally:
        stop.set()
        thread.join(timeout=10)
        notifier.close()


def _controller(store_url: str, name: str, config: Path) -> subprocess.Popen[bytes]:
    """``routeplane controller`` in a process of its own, its log beside ``config``."""
    cmd = [sys.executable, "-m", "routeplane.cli.main", "--store", store_url, "controller"]
    cmd += ["--name", name, "--lease-ttl", "1", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": SRC}
    with (config.parent / f"{name}.log").open("wb") as log:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _toml(table: dict[str, Any]) -> str:
    lines = ["[nova]"]
    for k, v in table.items():
        lines.append(f"{k} = {v!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


def test_a_killed_leaders_waiting_events_are_sent_once_by_the_next(
    api: Services, nova: StandInNova, store_url: str, tmp_path: Path
) -> None:
    lab = Lab(api, "10.72.0.0/24")
    config = tmp_path / "controller.toml"
    config.write_text(_toml(nova.nova_table()))
    procs = {name: _controller(store_url, name, config) for name in ("nc-1", "nc-2")}
    store = api.ports.repo.store
    try:
        wait_for(lambda: store.get(LEADER_KEY) is not None, 20, "a leader", 0.05)
        server, port = lab.boot("nk-h1")
        lab.programmed("nk-h1", port)
        expected = [("network-vif-plugged", server, port)]
        arrived_once(nova, expected, settle=0.3)

        nova.unavailable = True  # Nova answers 503: the events wait in the outbox
        more = [lab.boot("nk-h2") for _ in range(3)]
        for _, p in more:
            lab.programmed("nk-h2", p)
        lab.add_address(port)
        wait_for(lambda: len(store.range(nova_outbox_prefix()).items) == 4, 20, "4 waiting", 0.05)
        holder = store.get(LEADER_KEY)
        assert holder is not None
        assert isinstance(holder.value, dict)
        victim = procs[str(holder.value["holder"])]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        nova.unavailable = False
        expected += [("network-vif-plugged", s, p) for s, p in more]
        expected.append(("network-changed", server, port))
        arrived_once(nova, expected)
        new_leader = store.get(LEADER_KEY)
        assert new_leader is not None
        assert new_leader.value != holder.value

        lab.delete(port)  # and the new leader goes on deriving
        expected.append(("network-vif-deleted", server, port))
        arrived_once(nova, expected)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:  # a clean stop waits up to 30 s for the notifier's thread, then more
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()  # only the process this test started
                    proc.wait(timeout=10)
    logs = [(tmp_path / f"{name}.log").read_text() for name in procs]
    assert all(p.returncode in (0, -signal.SIGKILL) for p in procs.values()), logs
