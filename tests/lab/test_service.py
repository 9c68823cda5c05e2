"""Restarting a lab VM's service after it was killed (``lab.service.start_service``).

A one-host lab with one VM: once its service is killed -9 the VM no longer answers on
port 22 from the access node; ``start_service`` brings it back as ``boot`` started it
(recorded in the state, so ``lab down`` ends it), and is a no-op while it runs.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from routeplane.lab import lab, netns, processes, state
from routeplane.lab.service import service_key, start_service
from routeplane.lab.state import VmRecord
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology
from routeplane.testing.api import free_port

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

CONNECT = [sys.executable, "-m", "routeplane.lab.vm_service", "connect", "--timeout", "1"]


@pytest.fixture(scope="module")
def one_vm() -> Iterator[tuple[str, VmRecord]]:
    name = "s" + secrets.token_hex(4)
    try:
        lab.up(name, 1, free_port(), say=lambda _: None)
        yield name, lab.boot(name, "testvm1", "demo-net", host="node1")
    finally:
        down(name)


def answer(name: str, address: str) -> str:
    access = Topology.plan(name, 1).access.namespace
    done = subprocess.run(
        ["ip", "netns", "exec", access, *CONNECT, address],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return done.stdout.strip()


def recorded(name: str) -> state.LabState:
    found = state.load(Topology.plan(name, 1).state_file)
    assert found is not None
    return found


def test_a_killed_service_is_started_again_and_recorded(one_vm: tuple[str, VmRecord]) -> None:
    name, vm = one_vm
    address = vm.addresses[0].split("/")[0]
    assert answer(name, address) == "testvm1"
    before = recorded(name).processes[service_key("testvm1")]
    os.kill(before.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes.alive(before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert answer(name, address) == ""

    started = start_service(name, "testvm1")
    assert started.pid != before.pid
    assert answer(name, address) == "testvm1"
    assert recorded(name).processes[service_key("testvm1")].pid == started.pid
    assert start_service(name, "testvm1").pid == started.pid  # running: left alone

    with pytest.raises(netns.LabError, match="no VM"):
        start_service(name, "testvm9")
