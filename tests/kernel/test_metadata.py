"""The metadata service and ``routeplane guest`` against a real kernel.

One host namespace with two VM namespaces, each VM's ``eth0`` the far end of its tap,
routed as the agent routes them (a ``/32`` device route per address, proxy ARP on the
tap), set up directly with ``ip``: the agent itself is not started, only its metadata
service (``MetadataService`` on ``NamespaceListener`` in the host namespace, the address
held on the host's ``lo``), fed by endpoint records written to an embedded store. The
VMs ask with a small HTTP client, or run ``python -m routeplane.guest``. Everything lives
in ``rp-`` namespaces this test creates and deletes; processes it starts are ended by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.metadata import ADDRESS, MetadataService
from routeplane.dataplane.linux.listener import ADDRESS_LABEL, NamespaceListener, hold_address
from routeplane.lab.netns import Cleanup, add_veth, exec_in, ip
from routeplane.model.jsontypes import JSONValue
from routeplane.store.sqlite import SqliteStore
from tests.waiting import wait_for as timed

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

ROOT = "/routeplane/v1/"
WAIT_LIMIT = 1.0
# GET a path of the metadata service, optionally from a given source address; prints
# "<status> <body>" or "failed <error>"
CLIENT = """
import http.client, sys
source = (sys.argv[2], 0) if len(sys.argv) > 2 and sys.argv[2] else None
conn = http.client.HTTPConnection("169.254.169.254", 80, timeout=3, source_address=source)
try:
    conn.request("GET", sys.argv[1])
    r = conn.getresponse()
    print(r.status, r.read().decode().strip())
except OSError as exc:
    print("failed", exc)
"""


@dataclass
class Vm:
    namespace: str
    tap: str
    address: str
    port_id: str


@dataclass
class Host:
    namespace: str
    store: SqliteStore
    service: MetadataService
    vms: dict[str, Vm]
    cleanup: Cleanup

    def record(self, vm: Vm, *extra: str, pairs: tuple[str, ...] = ()) -> int:
        """Write ``vm``'s endpoint record (its address and ``extra`` ones); its revision."""
        body: dict[str, JSONValue] = {"port_id": vm.port_id, "interface": vm.tap, "project_id": "p1",
                "fixed_ips": [vm.address, *extra], "allowed_addresses": list(pairs)}  # fmt: skip
        return self.store.put(f"{ROOT}endpoints/node1/{vm.port_id}", body)

    def get(self, vm: Vm, path: str, source: str = "") -> tuple[int, Any]:
        out = exec_in(vm.namespace, sys.executable, "-c", CLIENT, path, source).strip()
        status, _, body = out.partition(" ")
        if status == "failed":
            return 0, body
        return int(status), json.loads(body)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    with Cleanup() as cleanup:
        namespace = cleanup.namespace("mdhost")
        vms = {}
        for index, name in enumerate(("vm1", "vm2"), start=13):
            vm = Vm(cleanup.namespace(f"md{name}"), f"tap{secrets.token_hex(4)}",
                    f"10.28.0.{index}", f"port-{name}")  # fmt: skip
            add_veth(namespace, vm.tap, vm.namespace, "eth0", up=True)
            exec_in(namespace, "sysctl", "-qw", f"net.ipv4.conf.{vm.tap}.proxy_arp=1")
            ip(namespace, "route", "add", f"{vm.address}/32", "dev", vm.tap)
            ip(vm.namespace, "addr", "add", f"{vm.address}/16", "dev", "eth0")
            ip(vm.namespace, "route", "add", "default", "dev", "eth0")
            vms[name] = vm
        store = SqliteStore(tmp_path / "store.db")
        cleanup.add("close the store", store.close)
        hold_address(namespace, ADDRESS)
        listener = NamespaceListener(namespace, ADDRESS, 80)
        service = MetadataService(store, "node1", listener, wait_limit=WAIT_LIMIT)
        the = Host(namespace, store, service, vms, cleanup)
        for vm in vms.values():
            the.record(vm)
        service.start()
        cleanup.add("stop the metadata service", service.close)
        yield the


def test_the_address_is_held_on_lo_with_our_label(host: Host) -> None:
    shown = ip(host.namespace, "-4", "addr", "show", "dev", "lo")
    assert f"inet {ADDRESS}/32 scope global {ADDRESS_LABEL}" in shown
    hold_address(host.namespace, ADDRESS)  # again: idempotent
    assert ip(host.namespace, "-4", "addr", "show", "dev", "lo").count(ADDRESS) == 1


def test_each_vm_learns_its_own_port_and_addresses(host: Host) -> None:
    vm1, vm2 = host.vms["vm1"], host.vms["vm2"]
    revision = host.record(vm1, "10.28.0.23")
    status, body = host.get(vm1, "/routeplane/v1/addresses")
    assert status == 200
    assert body == {"port_id": vm1.port_id, "revision": revision,
                    "addresses": [{"ip_address": vm1.address}, {"ip_address": "10.28.0.23"}]}  # fmt: skip
    status, body = host.get(vm2, "/routeplane/v1/addresses")
    assert (status, body["port_id"]) == (200, vm2.port_id)
    assert host.get(vm1, "/nothing/here")[0] == 404


def test_meta_data_names_the_instance_from_the_port(host: Host) -> None:
    vm1 = host.vms["vm1"]
    host.store.put(f"{ROOT}ports/{vm1.port_id}", {"name": "testvm1", "device_id": "uuid-1"})
    status, body = host.get(vm1, "/openstack/latest/meta_data.json")
    assert status == 200
    assert {k: body[k] for k in ("uuid", "name", "hostname", "project_id")} == {
        "uuid": "uuid-1",
        "name": "testvm1",
        "hostname": "testvm1",
        "project_id": "p1",
    }


def test_a_long_poll_answers_as_soon_as_the_record_changes(host: Host) -> None:
    vm1 = host.vms["vm1"]
    _, first = host.get(vm1, "/routeplane/v1/addresses")
    path = f"/routeplane/v1/addresses?wait={first['revision']}"
    waiting = subprocess.Popen(
        ["ip", "netns", "exec", vm1.namespace, sys.executable, "-c", CLIENT, path],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)  # well inside the wait: the client is parked in the service
        assert waiting.poll() is None
        changed = time.monotonic()
        host.record(vm1, "10.28.0.23")
        out, _ = waiting.communicate(timeout=5)
        latency = time.monotonic() - changed
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert out.startswith("200 ")
    assert {"ip_address": "10.28.0.23"} in json.loads(out[4:])["addresses"]
    assert latency < 0.5, f"the long poll answered {latency:.3f}s after the change"


def test_a_long_poll_without_change_answers_the_same_after_the_limit(host: Host) -> None:
    vm1 = host.vms["vm1"]
    _, first = host.get(vm1, "/routeplane/v1/addresses")
    started = time.monotonic()
    status, again = host.get(vm1, f"/routeplane/v1/addresses?wait={first['revision']}")
    assert (status, again) == (200, first)
    assert WAIT_LIMIT - 0.1 < time.monotonic() - started < WAIT_LIMIT + 2


def test_an_address_of_another_tap_gets_no_answer(host: Host) -> None:
    """vm1 sends from vm2's address: even when the host (wrongly) routes that address back
    to vm1's tap, so the handshake completes, the tap does not match vm2's record."""
    vm1, vm2 = host.vms["vm1"], host.vms["vm2"]
    refused = host.service.server.tally["refused"]
    ip(vm1.namespace, "addr", "add", f"{vm2.address}/32", "dev", "eth0")
    status, _ = host.get(vm1, "/routeplane/v1/addresses", source=vm2.address)
    assert status == 0  # the answer goes to vm2's tap: no handshake, no request
    ip(host.namespace, "route", "replace", f"{vm2.address}/32", "dev", vm1.tap)
    status, body = host.get(vm1, "/routeplane/v1/addresses", source=vm2.address)
    assert status == 404, body
    # an address no record has, routed to vm1's tap: unknown as well
    ip(vm1.namespace, "addr", "add", "10.28.0.99/32", "dev", "eth0")
    ip(host.namespace, "route", "add", "10.28.0.99/32", "dev", vm1.tap)
    assert host.get(vm1, "/routeplane/v1/addresses", source="10.28.0.99")[0] == 404
    assert host.service.server.tally["refused"] == refused + 2  # what the metrics show


def test_an_allowed_address_pair_identifies_its_port(host: Host) -> None:
    vm1 = host.vms["vm1"]
    host.record(vm1, pairs=("10.28.5.0/24",))
    ip(vm1.namespace, "addr", "add", "10.28.5.7/32", "dev", "eth0")
    ip(host.namespace, "route", "add", "10.28.5.0/24", "dev", vm1.tap)
    status, body = host.get(vm1, "/routeplane/v1/addresses", source="10.28.5.7")
    assert (status, body["port_id"]) == (200, vm1.port_id)


# --- routeplane guest on a real interface ------------------------------------------------


def eth0(vm: Vm) -> str:
    return ip(vm.namespace, "addr", "show", "dev", "eth0")


def start_guest(host: Host, vm: Vm, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """``python -m routeplane.guest`` in ``vm``, its log in ``log``; killed at cleanup."""
    with log.open("wb") as out:
        guest = subprocess.Popen(
            ["ip", "netns", "exec", vm.namespace, sys.executable, "-m", "routeplane.guest",
             "--interface", "eth0", "--state", str(state)],
            stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip

    def stop() -> None:
        guest.kill()
        guest.wait()

    host.cleanup.add("stop the guest", stop)
    return guest


def test_the_guest_adds_and_removes_the_ports_addresses(host: Host, tmp_path: Path) -> None:
    vm1 = host.vms["vm1"]
    state = tmp_path / "guest.json"
    ip(vm1.namespace, "addr", "add", "10.28.0.50/32", "dev", "eth0")  # a person's own
    guest = start_guest(host, vm1, state, tmp_path / "guest.log")
    time.sleep(0.5)  # it has asked once and is waiting on the long poll
    assert guest.poll() is None

    changed = time.monotonic()
    host.record(vm1, "10.28.0.23", "fd5f::23", "10.28.0.50")
    timed(lambda: "inet 10.28.0.23/32" in eth0(vm1), 1.0, "10.28.0.23 on eth0")
    print(f"address present {time.monotonic() - changed:.3f}s after the record changed")
    timed(lambda: "inet6 fd5f::23/128" in eth0(vm1), 1.0, "fd5f::23 on eth0")
    assert "inet6 fd5f::23/128 scope global nodad noprefixroute" in eth0(vm1)
    assert json.loads(state.read_text()) == {
        "interface": "eth0",
        "added": ["10.28.0.23/32", "fd5f::23/128"],
    }  # 10.28.0.50 was there already: not the guest's

    host.record(vm1)  # all three taken off the port
    timed(lambda: "10.28.0.23" not in eth0(vm1), 1.0, "10.28.0.23 gone from eth0")
    timed(lambda: "fd5f::23" not in eth0(vm1), 1.0, "fd5f::23 gone from eth0")
    shown = eth0(vm1)
    assert "inet 10.28.0.50/32" in shown  # never added by the guest: left alone
    assert f"inet {vm1.address}/16" in shown
    assert json.loads(state.read_text())["added"] == []

    guest.terminate()
    assert guest.wait(timeout=5) == 0
    log = (tmp_path / "guest.log").read_text()
    assert "added 10.28.0.23/32 to eth0" in log
    assert "removed 10.28.0.23/32 from eth0" in log


def test_the_guest_rides_out_an_unreachable_service(host: Host, tmp_path: Path) -> None:
    vm1 = host.vms["vm1"]
    host.service.close()  # nothing listens: connections are refused
    guest = start_guest(host, vm1, tmp_path / "guest.json", tmp_path / "guest.log")
    host.record(vm1, "10.28.0.23")
    time.sleep(1.0)
    assert guest.poll() is None  # still there, retrying
    assert "10.28.0.23" not in eth0(vm1)

    listener = NamespaceListener(host.namespace, ADDRESS, 80)
    service = MetadataService(host.store, "node1", listener, wait_limit=WAIT_LIMIT)
    service.start()
    host.cleanup.add("stop the second metadata service", service.close)
    timed(lambda: "inet 10.28.0.23/32" in eth0(vm1), 5.0, "10.28.0.23 once the service is back")
    guest.terminate()
    guest.wait(timeout=5)
    assert "retrying" in (tmp_path / "guest.log").read_text()
