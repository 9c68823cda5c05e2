"""``openstack server create`` in a lab driven by a real Nova (``lab up --openstack``).

Keystone, Placement and Nova from their PyPI wheels (the venv is built once, ~4 min on a
fresh machine, then cached) run beside routeplane; nova-compute's driver is routeplane's
own. What a user of such a cloud notices is checked: the server goes ACTIVE because Nova
received ``network-vif-plugged`` from routeplane (its api logs every external event it
accepts), the guest gets its address by DHCP from the host's agent and is routed, a
service IP moved from one server to another — in two calls and atomically, as ``routeplane
demo --openstack`` plays it in this lab — moves its route on the access node, is answered
by the new server and tells Nova (``network-changed`` for both), and ``server delete``
leaves no route, no endpoint record and no guest behind.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from routeplane.cli.demo_nova import play_in
from routeplane.lab import netns, openstack_install
from routeplane.lab.teardown import down
from routeplane.lab.topology import STATE_ROOT
from routeplane.lab.waiting import wait_until
from routeplane.model.endpoint import interface_name
from routeplane.store import open_store
from routeplane.testing.api import free_port_block

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.timeout(600),  # the first test's fixture may build the venv (~4 min, once)
]

OPENSTACK = str(Path(sys.executable).with_name("openstack"))
SERVICE_IP = "10.28.0.23"
# udhcpc's script: a lease configures eth0, as a cloud image's client would
BOUND = '#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface"\nexit 0\n'
BOOT_BUDGET = 60.0  # seconds; the lab's vif_plugging_timeout, after which a boot fails


@dataclass
class Cloud:
    name: str
    env: dict[str, str]

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

    def nova_events(self) -> str:
        """What Nova's api logged of the external events it accepted."""
        log = STATE_ROOT / self.name / "logs" / "os-nova-api.log"
        return "\n".join(line for line in log.read_text().splitlines() if "Creating event" in line)

    def exec(self, namespace: str, *command: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", netns.check(namespace), *command],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return done.stdout

    def store_keys(self, port_id: str) -> list[str]:
        store = open_store(f"sqlite://{STATE_ROOT / self.name / 'store.db'}")  # the lab's
        try:
            return [kv.key for kv in store.range("/routeplane/v1/").items if port_id in kv.key]
        finally:
            store.close()


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


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    """A two-host lab with Keystone, Placement and Nova; the venv built if missing."""
    openstack_install.install(say=lambda _line: None)
    name = "o" + os.urandom(4).hex()
    try:
        up = subprocess.run(
            [sys.executable, "-m", "routeplane.cli.main", "lab", "up", "--name", name,
             "--hosts", "2", "--openstack", "--port", str(free_port_block(17))],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        yield Cloud(name, lab_env(name))
    finally:
        down(name)


def test_server_boots_on_nova_plugged_event_gets_dhcp_and_deletes_clean(
    cloud: Cloud, tmp_path: Path
) -> None:
    server_id, took = cloud.boot("s1", "node1")
    assert took < BOOT_BUDGET  # not the plugging timeout's failure, nor a reschedule
    print(f"server create --wait: ACTIVE after {took:.1f} s")
    port_id = cloud.port_of("s1")
    assert f"network-vif-plugged:{port_id} for instance {server_id}" in cloud.nova_events()
    assert cloud.openstack("port", "show", port_id, "-f", "value", "-c", "status") == "ACTIVE"

    guest = f"rp-{cloud.name}-vm-nova-{server_id[:8]}"
    hook = tmp_path / "bound"
    hook.write_text(BOUND)
    hook.chmod(0o755)
    cloud.exec(guest, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
               "-s", str(hook))  # fmt: skip
    v4 = cloud.address("s1")
    assert f"inet {v4}/16 " in cloud.exec(guest, "ip", "-4", "addr", "show", "eth0")
    tap = interface_name(port_id)
    host = f"rp-{cloud.name}-node1"
    assert f"{v4} dev {tap}" in cloud.exec(host, "ip", "route")

    cloud.openstack("server", "delete", "--wait", "s1")
    wait_for(lambda: v4 not in cloud.exec(host, "ip", "route"), "the host's route to go")
    wait_for(lambda: not cloud.store_keys(port_id), "the port's records to go")
    assert guest not in netns.names()


def test_the_demo_moves_the_service_ip_between_nova_servers_both_ways(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    """``routeplane demo --openstack``'s walkthrough, played in this lab (its own lab's
    ``up`` is the fixture's): two servers, the service IP added, moved in two calls and
    atomically, answered from the access node each time; Nova told of every move."""
    started = time.monotonic()
    code = play_in(cloud.name, cloud.env)
    out = capsys.readouterr().out
    print(f"the demo's walkthrough: {time.monotonic() - started:.1f} s")
    assert code == 0, out[-4000:]
    answers = [line for line in out.splitlines() if line in ("testvm1", "testvm2")]
    assert answers == ["testvm1", "testvm2", "testvm1", "testvm2"]  # added; (a); (b) and back
    assert f"{SERVICE_IP} via 192.168.8.3 dev fabric0 proto bird" in out
    assert f"{SERVICE_IP} via 192.168.8.4 dev fabric0 proto bird" in out
    assert out.count("\n200\n") == 2  # both atomic moves accepted
    servers = re.findall(r'"id": "([0-9a-f-]{36})"', out)
    assert len(servers) == 2
    for server in servers:
        assert re.search(
            f"network-changed:[0-9a-f-]{{36}} for instance {server}", cloud.nova_events()
        )
    ports = re.findall(r"network-vif-plugged:([0-9a-f-]{36})", out)
    assert len(ports) == 2
    assert not cloud.openstack("server", "list", "-f", "value", "-c", "ID")
    assert not [key for port in ports for key in cloud.store_keys(port)]
    assert not [ns for ns in netns.names() if ns.startswith(f"rp-{cloud.name}-vm-nova-")]
    assert SERVICE_IP not in cloud.exec(f"rp-{cloud.name}-access", "ip", "route")
