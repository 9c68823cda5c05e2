"""The metadata service over IPv6, at ``fe80::a9fe:a9fe``, against real kernels.

The dual-stack lab (``vmlab``) with the agent on ``node1`` (policy on: the VMs reach the
host only at the metadata addresses) and its metadata service on both addresses. The
agent gives every tap ``fe80::a9fe:a9fe``; a VM asks from its own link-local address,
as cloud-init does on an IPv6-only network, and is known by its tap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.lab.netns import exec_in, ip
from tests.kernel.vmlab import Lab, dual_stack_lab, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

URL = "http://[fe80::a9fe:a9fe%eth0]/openstack/latest/meta_data.json"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as lab:
        lab.start_agent("node1", policy=True)
        lab.start_metadata("node1")
        yield lab


def vm(lab: Lab, name: str, device_id: str) -> tuple[str, dict[str, Any]]:
    body = {
        "network_id": lab.net,
        "binding:host_id": "node1",
        "name": name,
        "device_id": device_id,
        "device_owner": "compute:nova",
    }
    port = lab.create("ports", body)
    namespace = lab.cleanup.namespace(name)
    lab.plug(namespace, "node1", port)
    wait_for(lambda: lab.active("node1", port), what=f"{name}'s port programmed")
    wait_for(
        lambda: (
            "tentative" not in (shown := ip(namespace, "-6", "addr", "show", "dev", "eth0"))
            and "fe80::" in shown
        ),
        5,
        f"{name}'s link-local address",
    )
    return namespace, port


def test_each_vm_reads_its_own_meta_data_at_the_link_local_address(lab: Lab) -> None:
    vm1, _p1 = vm(lab, "md6vm1", "uuid-md6-1")
    vm2, _p2 = vm(lab, "md6vm2", "uuid-md6-2")
    for namespace, uuid in ((vm1, "uuid-md6-1"), (vm2, "uuid-md6-2")):
        out = exec_in(namespace, "curl", "-sS", "-g", "--max-time", "3", URL)
        assert f'"uuid": "{uuid}"' in out, out
    # the host's own link-local address on the tap is no way in
    tap = ip(lab.hosts["node1"], "-6", "-o", "addr", "show", "dev", "tap" + _p1["id"][:11])
    own = next(
        line.split("inet6 ")[1].split("/")[0]
        for line in tap.splitlines()
        if "fe80::a9fe:a9fe" not in line
    )
    done = exec_in(
        vm1, "curl", "-sS", "-g", "--max-time", "2", f"http://[{own}%eth0]/", check_rc=False
    )
    assert "uuid" not in done
