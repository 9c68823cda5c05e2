"""The lab as an operator watches it: a real Prometheus scrapes its api, controller and
both hosts' agents, and ``routeplane status`` asks node1's agent what it has programmed.

Two VMs on node1 and one on node2: Prometheus, asked through its HTTP API, shows each
host's agent with as many endpoints programmed as VMs were booted there, and with the
DHCP leases and metadata answers its VMs' guests asked for (a request for a path that
does not exist counted refused), the ports the boots created counted by the api, and the
controller as leader. ``routeplane status
--agent`` on node1 names both BGP peers (the access node over IPv4 and IPv6) Established
and every endpoint programmed; with node1's BIRD ended (the one the lab's agent started,
by the PID in its pid file) it says so and exits non-zero, until the agent has started
BIRD again and the sessions are back.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from routeplane.lab import lab as lab_ops
from routeplane.lab.state import LabState
from routeplane.lab.teardown import down
from routeplane.testing.api import free_port
from routeplane.testing.prometheus import PrometheusServer
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

# GET a URL and print the status it answered with (0: none)
FETCH = """
import urllib.error, urllib.request
try:
    print(urllib.request.urlopen({url!r}, timeout=5).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print(0)
"""
BOOTED = {"node1": ("vm1", "vm2"), "node2": ("vm3",)}


@dataclass
class Watched:
    name: str
    state: LabState

    def metrics(self, key: str) -> str:
        return f"127.0.0.1:{self.state.metrics_ports[key]}"

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "routeplane.cli.main", "status"]
        return subprocess.run(
            [*command, "--agent", self.metrics("agent-node1"), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def metadata_get(self, vm: str, path: str) -> int:
        """The status the metadata service answers ``path`` with, asked from ``vm``."""
        fetch = FETCH.format(url=f"http://169.254.169.254{path}")
        done = subprocess.run(
            ["ip", "netns", "exec", self.state.vms[vm].namespace, sys.executable, "-c", fetch],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return int(done.stdout.strip() or 0)

    def status_json(self) -> tuple[int, dict[str, Any]]:
        done = self.status("--json")
        found: dict[str, Any] = json.loads(done.stdout)
        return done.returncode, found


@pytest.fixture(scope="module")
def watched() -> Iterator[Watched]:
    name = "m" + secrets.token_hex(4)
    try:
        lab_ops.up(name, 2, free_port(), say=lambda _: None)
        for host, vms in BOOTED.items():
            for vm in vms:
                lab_ops.boot(name, vm, "demo-net", host=host)
        yield Watched(name, lab_ops.open_lab(name)[1])
    finally:
        down(name)


def test_prometheus_sees_the_lab(watched: Watched) -> None:
    agents = {host: watched.metrics(f"agent-{host}") for host in BOOTED}
    jobs = {
        "routeplane-api": [watched.metrics("api")],
        "routeplane-controller": [watched.metrics("controller")],
        "routeplane-agent": list(agents.values()),
    }
    with PrometheusServer(jobs, interval=0.5) as prometheus:
        wait_for(
            lambda: len(prometheus.targets_up()) == 4 and all(prometheus.targets_up().values()),
            30,
            "every target up",
            interval=0.2,
        )
        for host, vms in BOOTED.items():
            programmed = (
                f'routeplane_agent_endpoints{{instance="{agents[host]}",state="programmed"}}'
            )
            booted = len(vms)
            wait_for(
                lambda expr=programmed, n=booted: prometheus.value(expr) == n,  # type: ignore[misc]
                15,
                f"{host}'s endpoints programmed in Prometheus",
                interval=0.2,
            )
            failed = f'routeplane_agent_endpoints{{instance="{agents[host]}",state="failed"}}'
            assert prometheus.value(failed) == 0
            sessions = f'sum(routeplane_agent_bgp_session_established{{instance="{agents[host]}"}})'
            assert prometheus.value(sessions) == 2
        node1 = f'instance="{agents["node1"]}"'
        answered = f'routeplane_agent_requests_total{{{node1},outcome="answered",service="%s"}}'
        # udhcpc's DISCOVER and REQUEST, each answered, for each VM booted there
        assert (prometheus.value(answered % "dhcp") or 0) >= 2 * len(BOOTED["node1"])
        wait_for(
            lambda: (prometheus.value(answered % "metadata") or 0) >= len(BOOTED["node1"]),
            15,
            "each guest's first metadata request answered",
            interval=0.2,
        )
        refused = f'routeplane_agent_requests_total{{{node1},outcome="refused",service="metadata"}}'
        before = prometheus.value(refused) or 0
        assert watched.metadata_get("vm1", "/no/such/path") == 404
        wait_for(lambda: prometheus.value(refused) == before + 1, 15, "the 404 counted", 0.2)
        created = 'sum(routeplane_api_requests_total{route="/v2.0/ports",method="POST",code="201"})'
        assert (prometheus.value(created) or 0) >= sum(len(vms) for vms in BOOTED.values())
        assert prometheus.value("routeplane_controller_leader") == 1


def test_status_names_the_sessions_and_endpoints_and_bird_gone(watched: Watched) -> None:
    shown = watched.status()
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "routeplane agent on node1: ready" in shown.stdout
    peers = [line for line in shown.stdout.splitlines() if "Established" in line]
    assert len(peers) == 2, shown.stdout
    assert "endpoints: 2 desired, 2 programmed, 0 failed" in shown.stdout

    pidfile = Path(watched.state.bird_dirs["node1"]) / "bird.pid"
    pid = int(pidfile.read_text().strip())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].endswith(b"bird"), cmdline
    assert str(pidfile).encode() in cmdline, cmdline
    os.kill(pid, signal.SIGTERM)

    # the agent starts BIRD again within a second or so, and the sessions take a few
    # more to come back: status must see the gap, and say what it is
    seen: list[subprocess.CompletedProcess[str]] = []

    def unhealthy() -> bool:
        seen.append(watched.status())
        return seen[-1].returncode != 0

    wait_for(unhealthy, 10, "status to notice BIRD gone", interval=0.05)
    text = seen[-1].stdout
    assert "BIRD is not running" in text or text.count("Established") < 2, text
    assert "node1: ready" in text  # the agent itself stays ready: only BGP is down

    wait_for(lambda: watched.status_json()[0] == 0, 60, "BIRD and both sessions back", 0.5)
    _, found = watched.status_json()
    assert [p["established"] for p in found["bgp"]["peers"]] == [True, True]
    assert found["endpoints"] == {"desired": 2, "programmed": 2, "failed": 0}
