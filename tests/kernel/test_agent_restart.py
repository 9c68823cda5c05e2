"""``kill -9`` the agent and start it again, under traffic: nothing still wanted moves.

The agent runs as a real ``routeplane agent`` process (policy on, as the command always
runs it) acting on a host namespace. While a VM is pinged at 50 packets per second and
holds an open TCP connection, the process is killed with SIGKILL, an endpoint is deleted
from the store, and a new process is started. ``ip monitor route neigh`` on the host
records every change meanwhile: the still-wanted VM's routes, neighbour entries and
proxy entry are never deleted nor added again, not one ping is lost, the connection keeps
echoing, and the endpoint deleted while no agent ran is swept once the new one is in sync.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.lab.netns import ip
from routeplane.services.context import ADMIN
from tests.kernel.vmlab import ECHO_CLIENT, Lab, dual_stack_lab, routes, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

VM1 = ["10.28.0.13", "fd5f:5d21:845:1c2e::d"]  # under traffic, still wanted
VM2 = ["10.28.0.14", "fd5f:5d21:845:1c2e::e"]  # deleted while no agent runs
VM3 = ["10.28.0.15", "fd5f:5d21:845:1c2e::f"]  # the client
TRAFFIC = 8.0  # seconds of ping and TCP: longer than a process restart and its resync
PINGS = int(TRAFFIC / 0.02)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as the_lab:
        yield the_lab


def test_kill_9_and_restart_under_traffic_moves_nothing_and_sweeps_the_stale(
    lab: Lab, tmp_path: Path
) -> None:
    log = tmp_path / "agent.log"
    first = lab.start_agent_process("node1", log)
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    _vm2, p2 = lab.boot("vm2", "node1", VM2)
    vm3, p3 = lab.boot("vm3", "node1", VM3)
    wait_for(
        lambda: all(lab.active("node1", p) for p in (p1, p2, p3)),
        timeout=20,
        what=f"ports programmed by the agent process (log: {log.read_text()})",
    )
    h1 = lab.hosts["node1"]
    assert all("proto 77" in routes(h1, a) for a in VM2)
    lab.serve_echo(vm1)
    monitor = subprocess.Popen(
        ["ip", "-n", h1, "-ts", "monitor", "route", "neigh"], stdout=subprocess.PIPE, text=True
    )
    talker = lab.spawn(
        vm3, "python3", "-c", ECHO_CLIENT, VM1[0], str(TRAFFIC), stdout=subprocess.PIPE, text=True
    )
    pinger = lab.spawn(
        vm3, "ping", "-i", "0.02", "-c", str(PINGS), "-W", "1", VM1[0],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # traffic flowing under the first agent
        os.kill(first.pid, signal.SIGKILL)  # only the process this test started
        assert first.wait(timeout=10) == -signal.SIGKILL
        lab.services.ports.delete(ADMIN, p2["id"], None)  # goes stale while no agent runs
        killed = time.monotonic()
        lab.start_agent_process("node1", log)
        wait_for(
            lambda: all(routes(h1, a) == "" for a in VM2),
            timeout=TRAFFIC - 2,
            what=f"the stale endpoint swept (log: {log.read_text()})",
        )
        swept = time.monotonic() - killed
        summary, _ = pinger.communicate(timeout=TRAFFIC + 10)
        echoed, _ = talker.communicate(timeout=TRAFFIC + 10)
    finally:
        monitor.send_signal(signal.SIGTERM)
        events, _ = monitor.communicate(timeout=5)
    print(f"stale endpoint swept {swept:.2f} s after the kill (process start included)")

    assert f"{PINGS} packets transmitted, {PINGS} received, 0% packet loss" in summary, summary
    sent = echoed.split("/")[-1].strip()
    assert echoed.strip() == f"echoed {sent}/{sent}", echoed  # the connection lost nothing
    assert int(sent) > TRAFFIC * 25
    tap1 = "tap" + p1["id"][:11]
    touched = [
        line
        for line in events.splitlines()
        if any(a in line for a in VM1) or (lab.gateway6 in line and tap1 in line)
    ]
    assert touched == [], "\n".join(touched)  # still wanted: never deleted nor re-added
    assert f"{lab.gateway6} router proxy proto 77" in ip(
        h1, "-6", "neigh", "show", "proxy", "dev", tap1
    )
    for address in VM2:
        assert any(
            line.split("Deleted ", 1)[-1].startswith(address)
            for line in events.splitlines()
            if "Deleted" in line
        ), events
    assert lab.active("node1", p1)
    assert not lab.active("node1", p2)
