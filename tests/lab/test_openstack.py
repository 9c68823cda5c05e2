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

Then Nova's outage and the controller's failover, with two api processes and two
controllers: ports change through both apis while nova-api is stopped for 30 s and while
the controllers' leader is killed, and once Nova is back every event has arrived, none
twice (Nova's api logs each event it accepts); a leader killed while Nova is up hands
over without repeating anything.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from routeplane.cli.demo_nova import play_in
from routeplane.lab import lab as lab_ops
from routeplane.lab import netns, openstack_install
from routeplane.lab.neutron import Neutron
from routeplane.lab.openstack import NOVA_API
from routeplane.lab.service import start_nova_api, start_process, stop_process
from routeplane.lab.teardown import down
from routeplane.lab.topology import STATE_ROOT
from routeplane.model.endpoint import interface_name
from routeplane.model.keys import LEADER_KEY, nova_outbox_prefix
from routeplane.testing.api import free_port
from tests.lab.openstack_cloud import Cloud, lab_env, lab_port, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.timeout(600),  # the first test's fixture may build the venv (~4 min, once)
]

SERVICE_IP = "10.28.0.23"
# udhcpc's script: a lease configures eth0, as a cloud image's client would
BOUND = '#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface"\nexit 0\n'
BOOT_BUDGET = 60.0  # seconds; the lab's vif_plugging_timeout, after which a boot fails


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    """A two-host lab with Keystone, Placement and Nova; the venv built if missing."""
    openstack_install.install(say=lambda _line: None)
    name = "o" + os.urandom(4).hex()
    try:
        up = subprocess.run(
            [sys.executable, "-m", "routeplane.cli.main", "lab", "up", "--name", name,
             "--hosts", "2", "--openstack", "--port", str(lab_port())],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        yield Cloud(name, lab_env(name), STATE_ROOT / name)
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


OUTAGE = 30.0  # seconds nova-api is stopped
SETTLE = 3.0  # seconds after the last expected event in which a repeat would have come
BACK_BUDGET = 5.0  # seconds from nova-api answering again to every waiting event arriving


@pytest.fixture(scope="module")
def pair(cloud: Cloud) -> tuple[str, str]:
    """Two servers, one per host, booted side by side: their ports."""
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda args: cloud.boot(*args), [("fa", "node1"), ("fb", "node2")]))
    return cloud.port_of("fa"), cloud.port_of("fb")


def change_ip(api: Neutron, port_id: str, address: str, *, add: bool) -> None:
    """Add ``address`` to the port's fixed IPs (in its IPv4 subnet), or remove it."""
    port = api.request("GET", f"ports/{port_id}")["port"]
    fixed = [ip for ip in port["fixed_ips"] if ip["ip_address"] != address]
    if add:
        subnet = next(ip["subnet_id"] for ip in fixed if "." in ip["ip_address"])
        fixed.append({"subnet_id": subnet, "ip_address": address})
    api.request("PUT", f"ports/{port_id}", {"port": {"fixed_ips": fixed}})


def leader(cloud: Cloud) -> str | None:
    """The lab process key of the controller holding the leader key."""
    value = cloud.store_items(LEADER_KEY).get(LEADER_KEY)
    holder = value.get("holder") if isinstance(value, dict) else None
    return None if holder is None else str(holder).removeprefix(f"{cloud.name}-")


def queued(cloud: Cloud) -> int:
    """Entries in the notifier's outbox (one per port change that Nova must hear of)."""
    return len(cloud.store_items(nova_outbox_prefix()))


def second_api(cloud: Cloud) -> Neutron:
    """A second api process on the lab's store and config, answering."""
    topology, state = lab_ops.open_lab(cloud.name)
    port = free_port()
    start_process(cloud.name, "api-2", topology.api_command(port, free_port()))
    api = Neutron(f"http://127.0.0.1:{port}", state.admin_token)

    def answers() -> bool:
        try:
            api.request("GET", "networks?limit=1")
        except Exception:
            return False
        return True

    wait_for(answers, "the second api")
    return api


def test_events_made_while_nova_is_stopped_arrive_once_across_a_killed_leader(
    cloud: Cloud, pair: tuple[str, str]
) -> None:
    port_a, port_b = pair
    topology, state = lab_ops.open_lab(cloud.name)
    api1, api2 = Neutron(state.api_url, state.admin_token), second_api(cloud)
    standby = topology.controller_command(free_port(), "controller-2")
    config = ["--config", str(cloud.state_dir / "controller.toml")]
    start_process(cloud.name, "controller-2", [*standby, *config])
    since = cloud.nova_api_log.stat().st_size

    assert stop_process(cloud.name, NOVA_API)
    stopped = time.monotonic()
    change_ip(api1, port_a, "10.28.0.51", add=True)
    change_ip(api2, port_b, "10.28.0.52", add=True)
    wait_for(lambda: queued(cloud) == 2, "both events in the outbox")
    first = leader(cloud)
    assert first == "controller"
    os.kill(state.processes[first].pid, signal.SIGKILL)
    change_ip(api2, port_a, "10.28.0.51", add=False)  # derived by whoever leads next
    wait_for(lambda: leader(cloud) == "controller-2", "the standby to lead", 15)
    change_ip(api1, port_b, "10.28.0.53", add=True)
    wait_for(lambda: queued(cloud) == 4, "all four events in the outbox")
    assert not cloud.nova_event_counts(since)
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))

    start_nova_api(cloud.name)
    back = time.monotonic()
    expected = Counter({f"network-changed:{port_a}": 2, f"network-changed:{port_b}": 2})
    wait_for(lambda: cloud.nova_event_counts(since) == expected, "every event", 30)
    delay = time.monotonic() - back
    time.sleep(SETTLE)
    assert cloud.nova_event_counts(since) == expected  # none twice, nothing else re-sent
    assert queued(cloud) == 0
    print(f"events arrived {delay:.1f} s after nova-api answered again")
    assert delay < BACK_BUDGET

    def refreshed() -> bool:  # what a user sees: Nova refreshed the server's addresses
        shown = cloud.openstack("server", "show", "fb", "-f", "value", "-c", "addresses")
        return "10.28.0.52" in shown and "10.28.0.53" in shown

    wait_for(refreshed, "fb's addresses in Nova")


def test_a_leader_killed_while_nova_is_up_hands_over_without_a_repeat(
    cloud: Cloud, pair: tuple[str, str]
) -> None:
    port_a, _ = pair
    _, state = lab_ops.open_lab(cloud.name)
    start_process(cloud.name, "controller", state.processes["controller"].cmdline)
    _, state = lab_ops.open_lab(cloud.name)  # with the new controller's record
    current = leader(cloud)
    assert current is not None
    since = cloud.nova_api_log.stat().st_size
    os.kill(state.processes[current].pid, signal.SIGKILL)
    change_ip(Neutron(state.api_url, state.admin_token), port_a, "10.28.0.54", add=True)
    expected = Counter({f"network-changed:{port_a}": 1})
    wait_for(lambda: cloud.nova_event_counts(since) == expected, "the event", 20)
    time.sleep(SETTLE)
    assert cloud.nova_event_counts(since) == expected
