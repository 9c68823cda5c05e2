"""The Debian cloud-init guest: a real cloud image's boot against the host's metadata.

A lab with one host; a port ``cloudvm1`` bound to node1 and the cloud-init image
(:mod:`routeplane.lab.cloud_image`, built once and cached) booted on its tap as Nova
boots an instance: SMBIOS product "OpenStack Nova", no configuration on the kernel
command line. cloud-init must find the OpenStack datasource, take its address by DHCP
from the host's agent, read ``meta_data.json`` from 169.254.169.254 and apply it: the
console then shows the hostname (the port's name) and the instance id (the port's
``device_id``) that only ``meta_data.json`` carries, and the address DHCP gave.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from routeplane.lab import cloud_image, qemu, qemu_vm
from routeplane.lab import lab as lab_ops
from routeplane.lab.neutron import Neutron
from routeplane.lab.teardown import down
from routeplane.lab.topology import Topology
from routeplane.testing.api import free_port
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

BOOT_TIMEOUT = 300  # systemd and cloud-init's Python, emulated (TCG)


def finished(spec: qemu.GuestSpec) -> Callable[[], bool]:
    return lambda: cloud_image.READY in qemu.console(spec)


@pytest.fixture(scope="module")
def one_host() -> Iterator[tuple[Topology, Neutron]]:
    name = "c" + secrets.token_hex(4)
    try:
        state = lab_ops.up(name, 1, free_port(), say=lambda _: None)
        api = Neutron(state.api_url, state.admin_token)
        yield Topology.plan(name, 1), api
        api.close()
    finally:
        down(name)


@pytest.mark.timeout(BOOT_TIMEOUT + 120)
def test_cloud_init_applies_the_metadata_at_boot(one_host: tuple[Topology, Neutron]) -> None:
    topology, api = one_host
    image = cloud_image.build(say=print)
    node = topology.host("node1")
    net = api.find("network", "demo-net")
    device_id = str(uuid.uuid4())
    port = api.create(
        "port",
        {"network_id": net["id"], "name": "cloudvm1", "binding:host_id": "node1",
         "device_owner": "compute:nova", "device_id": device_id},
    )  # fmt: skip
    address = next(f["ip_address"] for f in port["fixed_ips"] if ":" not in f["ip_address"])
    spec = qemu_vm.spec(topology, node, vm_name="cloudvm1", port=port)
    spec = qemu.GuestSpec(**{**spec.__dict__, "memory_mb": 512})
    started = time.monotonic()
    guest = qemu.start(spec, None, cloud_image.qemu_arguments(image, device_id))
    try:
        api.wait_port_status(port["id"], "ACTIVE", 30)
        wait_for(finished(spec), BOOT_TIMEOUT, "cloud-init to finish", interval=0.5)
        print(
            f"\ncloud-init guest: QEMU start to cloud-init done {time.monotonic() - started:.0f}s"
        )
        line = next(x for x in qemu.console(spec).splitlines() if cloud_image.READY in x)
        words = line[line.index(cloud_image.READY) :].split()
        assert words[1:4] == ["cloudvm1", device_id, "openstack"], line
        assert f"{address}/16" in words[4:], line
    finally:
        assert qemu.stop(guest.spec.directory)
        api.request("DELETE", f"ports/{port['id']}")
