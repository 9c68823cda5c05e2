"""cloud-init's own OpenStack datasource code against a host's metadata service.

The dual-stack lab (``vmlab``): node1's agent runs in a thread and its metadata service
(``Lab.start_metadata``) is fed from the agent's own follower. Inside the VM's
namespace the system Python runs Debian ``cloud-init``'s modules: its metadata reader
(``read_metadata_service``, which also walks the EC2 tree) against
``http://169.254.169.254``, then its conversion of ``network_data.json`` into a network
config (``convert_net_json``), which finds the interface by the MAC it sees in the VM.
Everything lives in ``rp-`` namespaces the lab creates and deletes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.lab.netns import exec_in
from routeplane.services.attributes import check_update
from routeplane.services.context import ADMIN
from tests.kernel.vmlab import Lab, dual_stack_lab, wait_for

CLOUD_INIT = Path("/usr/lib/python3/dist-packages/cloudinit/sources/helpers/openstack.py")
pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not CLOUD_INIT.exists(), reason="cloud-init is not installed"),
]

# run by the system python3, which has Debian's cloud-init
READER = """
import json
from cloudinit.sources.DataSourceOpenStack import read_metadata_service
from cloudinit.sources.helpers import openstack
found = read_metadata_service("http://169.254.169.254", timeout=3, retries=0)
print(json.dumps({
    "metadata": found["metadata"],
    "networkdata": found["networkdata"],
    "ec2": found["ec2-metadata"],
    "config": openstack.convert_net_json(found["networkdata"]),
}, default=str))
"""
DNS4, DNS6 = "10.28.0.53", "fd5f:5d21:845:1c2e::53"


def update(lab: Lab, kind: str, resource_id: str, body: dict[str, Any]) -> None:
    service = getattr(lab.services, kind)
    service.update(ADMIN, resource_id, check_update(service.attrs, body, is_admin=True), None)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as lab:
        update(lab, "networks", lab.net, {"mtu": 1450})
        routes4 = [{"destination": "192.168.50.0/24", "nexthop": "10.28.0.9"}]
        body4 = {"dns_nameservers": [DNS4], "host_routes": routes4, "enable_dhcp": False}
        update(lab, "subnets", lab.subnets[4], body4)
        update(lab, "subnets", lab.subnets[6], {"dns_nameservers": [DNS6]})
        lab.start_agent("node1")
        lab.start_metadata("node1")
        yield lab


def test_cloud_init_reads_its_instance_and_network_config(lab: Lab) -> None:
    vm, port = lab.boot("testvm1", "node1", ["10.28.0.13", "fd5f:5d21:845:1c2e::13"])
    wait_for(lambda: lab.active("node1", port), what="testvm1's port programmed")
    update(lab, "ports", port["id"], {"device_id": "inst-1"})  # what Nova's boot sets
    done = exec_in(vm, "/usr/bin/python3", "-c", READER)
    found = json.loads(done.strip().splitlines()[-1])
    meta = found["metadata"]
    assert (meta["uuid"], meta["instance-id"], meta["hostname"]) == ("inst-1", "inst-1", "testvm1")
    assert meta["project_id"] == port["project_id"]
    assert found["ec2"]["local-ipv4"] == "10.28.0.13"
    assert found["ec2"]["instance-id"] == "inst-1"
    config = found["config"]
    [physical] = [c for c in config["config"] if c["type"] == "physical"]
    assert (physical["name"], physical["mac_address"], physical["mtu"]) == (
        "eth0",
        port["mac_address"],
        1450,
    )
    by_address = {s["address"]: s for s in physical["subnets"]}
    assert set(by_address) == {"10.28.0.13", "fd5f:5d21:845:1c2e::13"}
    v4, v6 = by_address["10.28.0.13"], by_address["fd5f:5d21:845:1c2e::13"]
    assert (v4["type"], v4["netmask"]) == ("static", "255.255.0.0")
    assert {(r["network"], r["netmask"], r["gateway"]) for r in v4["routes"]} == {
        ("0.0.0.0", "0.0.0.0", "10.28.0.1"),
        ("192.168.50.0", "255.255.255.0", "10.28.0.9"),
    }
    assert v6["type"] == "static6"
    assert {(r["network"], r["gateway"]) for r in v6["routes"]} == {("::", lab.gateway6)}
    nameservers = [c for c in config["config"] if c["type"] == "nameserver"]
    assert [n["address"] for n in nameservers] == [DNS4, DNS6]
