"""``routeplane demo`` (what ``make demo`` plays): the whole walkthrough in its own lab;
``routeplane demo --qemu``: the same with QEMU guests, DHCP and real SSH.

The demo checks each answer itself (a step whose expected output never comes fails it),
so this asserts it exits 0, that the answers a newcomer reads are there — the routes on
the compute host and the access node, testvm1's DHCP lease and its ``meta_data.json``,
which VM answers before and after the move, the floating IP — and that the lab is gone afterwards: no namespace, no state directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from routeplane.cli.demo_lab import LAB
from routeplane.lab import netns
from routeplane.lab.topology import STATE_ROOT

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


def test_the_demo_plays_the_walkthrough_and_leaves_nothing_behind() -> None:
    routeplane = str(Path(sys.executable).with_name("routeplane"))
    done = subprocess.run(
        [routeplane, "demo"], capture_output=True, text=True, timeout=300, check=False
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "10.28.0.23 via 192.168.8.3 dev fabric0 proto bird" in out
    assert "10.28.0.23 via 192.168.8.4 dev fabric0 proto bird" in out
    answers = [line for line in out.splitlines() if line in ("testvm1", "testvm2")]
    assert answers == ["testvm1", "testvm2", "testvm1"]  # before, after the move, by its FIP
    assert "scope link" in out
    assert "default via 10.28.0.1 dev eth0" in out  # testvm1's lease, shown by `ip route`
    assert '"name": "testvm1"' in out  # its meta_data.json, read with curl inside it
    assert not [ns for ns in netns.names() if ns.startswith(f"rp-{LAB}-")]
    assert not (STATE_ROOT / LAB).exists()


def test_the_demo_with_qemu_guests_answers_real_ssh_before_and_after_the_move() -> None:
    routeplane = str(Path(sys.executable).with_name("routeplane"))
    done = subprocess.run(
        [routeplane, "demo", "--qemu"], capture_output=True, text=True, timeout=420, check=False
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert out.count("bound 10.28.0.") == 2  # each guest's DHCP lease, from its host
    assert "root@10.28.0.23 hostname" in out
    assert "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!" in out
    answers = [line for line in out.splitlines() if line in ("testvm1", "testvm2")]
    assert answers == ["testvm1", "testvm2", "testvm1"]  # before, after the move, by its FIP
    assert not [ns for ns in netns.names() if ns.startswith(f"rp-{LAB}-")]
    assert not (STATE_ROOT / LAB).exists()
