"""The rendered nftables policy against a real kernel, with real packets.

One host namespace and three VM namespaces (``eth0`` the far end of the VM's tap), routed
as the agent would route them (a ``/32`` device route per address on the host, the VM's
default route via a link-local gateway whose neighbour entry is the tap's MAC), set up
directly with ``ip`` here — the agent is not started. ``render`` + ``NftTable.apply`` put
the policy in the host namespace; a tiny TCP service in each VM answers with its name,
its local address and the peer's address. Everything lives in ``rp-`` namespaces this test
creates and deletes.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from routeplane.dataplane.linux import libnft
from routeplane.dataplane.linux.namespace import Namespace
from routeplane.dataplane.linux.nft import NftTable
from routeplane.dataplane.nft_delta import blocks, delta
from routeplane.dataplane.nft_render import TABLE, render
from routeplane.lab.netns import Cleanup, add_veth, exec_in, ip
from routeplane.model.endpoint import EndpointRecord, NatPair
from routeplane.model.errors import DataplaneError
from routeplane.testing import records

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

GOLDEN = Path(__file__).parent.parent / "golden" / "nft"
TAP_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY = "169.254.1.1"
FLOATING = "203.0.113.5"

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2]) if len(sys.argv) > 2 else 22)); s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(f"{sys.argv[1]} {c.getsockname()[0]} {peer[0]}\\n".encode()); c.close()
"""
CLIENT = """
import socket, sys
source = (sys.argv[2], 0) if len(sys.argv) > 2 and sys.argv[2] else None
port = int(sys.argv[3]) if len(sys.argv) > 3 else 22
try:
    c = socket.create_connection((sys.argv[1], port), timeout=0.7, source_address=source)
    print(c.recv(100).decode().strip())
except OSError as exc:
    print("failed", exc)
"""

GROUP_SSH = "sg-walkthrough"  # the walkthrough's rule: ingress tcp/22 from 192.168.8.1/32
GROUP_OPEN = "sg-egress-all"
GROUP_FROM_CLIENTS = "sg-from-clients"
GROUP_CLIENTS = "sg-clients"


def _rule(direction: str, **fields: Any) -> dict[str, Any]:
    base = {"ethertype": "IPv4", "protocol": None, "port_range_min": None,
            "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None}  # fmt: skip
    return {**base, "direction": direction, **fields}


EGRESS_ALL = _rule("egress")
GROUPS: dict[str, dict[str, Any]] = {
    GROUP_SSH: {"security_group_rules": [
        EGRESS_ALL,
        _rule("ingress", protocol="tcp", port_range_min=22, port_range_max=22,
              remote_ip_prefix="192.168.8.1/32"),
    ]},
    GROUP_OPEN: {"security_group_rules": [EGRESS_ALL, _rule("ingress")]},
    GROUP_FROM_CLIENTS: {"security_group_rules": [
        EGRESS_ALL,
        _rule("ingress", protocol="tcp", port_range_min=22, port_range_max=22,
              remote_group_id=GROUP_CLIENTS),
    ]},
    GROUP_CLIENTS: {"security_group_rules": [EGRESS_ALL]},
}  # fmt: skip


@dataclass
class Vm:
    name: str
    namespace: str
    tap: str
    address: str


@dataclass
class Host:
    cleanup: Cleanup
    namespace: str
    table: NftTable
    vms: dict[str, Vm] = field(default_factory=dict)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def boot(self, name: str, address: str) -> Vm:
        vm = self.cleanup.namespace(name)
        tap = f"tap{name}"
        add_veth(self.namespace, tap, vm, "eth0", mac=TAP_MAC, up=True)
        for key in (f"net.ipv4.conf.{tap}.proxy_arp=1", f"net.ipv4.neigh.{tap}.proxy_delay=0"):
            exec_in(self.namespace, "sysctl", "-qw", key)
        ip(self.namespace, "route", "add", f"{address}/32", "dev", tap, "scope", "link")
        ip(vm, "addr", "add", f"{address}/32", "dev", "eth0")
        ip(vm, "neigh", "add", GATEWAY, "lladdr", TAP_MAC, "dev", "eth0", "nud", "permanent")
        ip(vm, "route", "add", "default", "via", GATEWAY, "dev", "eth0", "onlink")
        server = subprocess.Popen(
            ["ip", "netns", "exec", vm, "python3", "-c", SERVER, name],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.servers.append(server)
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        self.vms[name] = Vm(name, vm, tap, address)
        return self.vms[name]

    def endpoint(self, vm: Vm, groups: Sequence[str], **extra: Any) -> EndpointRecord:
        record: EndpointRecord = {"interface": vm.tap, "fixed_ips": [vm.address], "allowed_addresses": [],
                  "floating_ips": [], "port_security_enabled": True,
                  "security_groups": list(groups)}  # fmt: skip
        return records.record(record, **extra)

    def apply(
        self, endpoints: Sequence[EndpointRecord], members: Mapping[str, Sequence[str]]
    ) -> None:
        self.table.apply(render(endpoints, GROUPS, members))


def connect(vm: Vm, address: str, source: str | None = None, port: int = 22) -> str:
    args = [address, source or "", str(port)]
    return exec_in(vm.namespace, "python3", "-c", CLIENT, *args).strip()


@pytest.fixture(params=["libnftables", "nft command"])
def host(request: pytest.FixtureRequest) -> Iterator[Host]:
    """A host namespace whose table goes through libnftables in this process or, as where
    the library is missing, through the ``nft`` command."""
    with Cleanup() as cleanup:
        namespace = cleanup.namespace("nfthost")
        exec_in(namespace, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        table = NftTable(namespace, library=request.param == "libnftables")
        assert table.engine == request.param
        cleanup.add("close the nft table", table.close)
        the_host = Host(cleanup, namespace, table)
        try:
            yield the_host
        finally:
            for server in the_host.servers:
                server.terminate()
                server.wait(timeout=5)
                if server.stdout is not None:
                    server.stdout.close()


@pytest.fixture
def three(host: Host) -> Host:
    host.boot("vm1", "10.28.0.13")
    host.boot("vm2", "10.28.0.14")
    host.boot("vm3", "192.168.8.1")  # a VM in the walkthrough's allowed prefix
    return host


def test_every_golden_ruleset_is_accepted_by_the_kernel(host: Host) -> None:
    for case in sorted(GOLDEN.iterdir()):
        host.table.apply((case / "expected.nft").read_text())
        assert host.table.exists()
    host.table.delete()
    assert not host.table.exists()
    host.table.delete()  # absent is fine


def test_a_bad_script_raises_with_nfts_message_and_keeps_the_previous_one(host: Host) -> None:
    host.table.apply(render([], {}, {}))
    with pytest.raises(DataplaneError, match=r"nft -f .* failed .*Error"):
        host.table.apply("table inet routeplane {\n\tchain c { nonsense }\n}\n")
    assert "chain forward" in host.table.list()
    # a transaction that fails half-way (the element's set does not exist) takes nothing
    with pytest.raises(DataplaneError, match="No such file or directory"):
        host.table.apply(
            'add element inet routeplane vm-taps { "tapx" }\n'
            'add element inet routeplane nosuchset { "tapx" }\n'
        )
    assert "tapx" not in host.table.list()


def _tables(namespace: str) -> list[str]:
    """The tables of a namespace, as the ``nft`` command sees them from inside it."""
    return exec_in(namespace, "nft", "list", "tables").splitlines()


def test_the_library_acts_in_its_namespace_whichever_namespace_the_caller_is_in() -> None:
    """libnftables' netlink socket belongs to the namespace it was opened in: the table
    lands in the namespace the driver was given, not in the caller's, and without a name
    in the caller's own."""
    with Cleanup() as cleanup:
        target, caller = cleanup.namespace("nfttarget"), cleanup.namespace("nftcaller")
        elsewhere = Namespace(caller)  # a thread of this process sitting in ``caller``
        cleanup.add("close the caller thread", elsewhere.close)

        def program(netns: str | None) -> None:
            table = NftTable(netns)
            try:
                assert table.engine == "libnftables"
                table.apply(render([], {}, {}))
                table.apply('add element inet routeplane vm-taps { "tapprobe" }\n')
            finally:
                table.close()

        elsewhere.run(lambda: program(target))
        assert _tables(target) == ["table inet routeplane"]
        assert '"tapprobe"' in exec_in(target, "nft", "list", "set", "inet", TABLE, "vm-taps")
        assert _tables(caller) == []
        elsewhere.run(lambda: program(None))  # no namespace: the caller's own
        assert _tables(caller) == ["table inet routeplane"]


def test_walkthrough_rule_admits_the_allowed_source_and_drops_another(three: Host) -> None:
    vm1, vm2, vm3 = three.vms["vm1"], three.vms["vm2"], three.vms["vm3"]
    assert connect(vm2, vm1.address).startswith("vm1")  # no policy yet: open
    three.apply(
        [
            three.endpoint(vm1, [GROUP_SSH]),
            three.endpoint(vm2, [GROUP_OPEN]),
            three.endpoint(vm3, [GROUP_OPEN]),
        ],
        {},
    )
    assert connect(vm3, vm1.address) == "vm1 10.28.0.13 192.168.8.1"
    assert connect(vm2, vm1.address).startswith("failed")
    assert connect(vm1, vm2.address).startswith("vm2")  # egress from vm1, ingress to vm2


def test_remote_group_membership_admits_a_member_and_not_after_it_leaves(three: Host) -> None:
    vm1, vm2 = three.vms["vm1"], three.vms["vm2"]
    endpoints = [three.endpoint(vm1, [GROUP_FROM_CLIENTS]), three.endpoint(vm2, [GROUP_CLIENTS])]
    three.apply(endpoints, {GROUP_CLIENTS: [vm2.address]})
    assert connect(vm2, vm1.address).startswith("vm1")
    three.apply(endpoints, {GROUP_CLIENTS: []})
    assert connect(vm2, vm1.address).startswith("failed")
    three.apply(endpoints, {GROUP_CLIENTS: ["10.28.0.0/24"]})
    assert connect(vm2, vm1.address).startswith("vm1")


def test_anti_spoofing_drops_an_address_not_on_the_port(three: Host) -> None:
    vm1, vm2 = three.vms["vm1"], three.vms["vm2"]
    spoofed = "10.28.0.99"
    ip(vm2.namespace, "addr", "add", f"{spoofed}/32", "dev", "eth0")
    # routed back to vm2's tap, so only the policy can stop it
    ip(three.namespace, "route", "add", f"{spoofed}/32", "dev", vm2.tap, "scope", "link")
    vm2_secured = three.endpoint(vm2, [GROUP_OPEN])
    three.apply([three.endpoint(vm1, [GROUP_OPEN]), vm2_secured], {})
    assert connect(vm2, vm1.address, vm2.address).startswith("vm1")
    assert connect(vm2, vm1.address, spoofed).startswith("failed")
    # an allowed-address pair makes it legitimate; port security off skips the check
    with_pair = records.record(vm2_secured, allowed_addresses=[spoofed])
    three.apply([three.endpoint(vm1, [GROUP_OPEN]), with_pair], {})
    assert connect(vm2, vm1.address, spoofed) == f"vm1 10.28.0.13 {spoofed}"
    unsecured = records.record(vm2_secured, port_security_enabled=False)
    three.apply([three.endpoint(vm1, [GROUP_OPEN]), unsecured], {})
    assert connect(vm2, vm1.address, spoofed).startswith("vm1")


def test_floating_ip_reaches_the_vm_which_sees_only_its_fixed_ip(three: Host) -> None:
    vm1, vm3 = three.vms["vm1"], three.vms["vm3"]
    ip(three.namespace, "route", "add", f"{FLOATING}/32", "dev", vm1.tap, "scope", "link")
    nat = [{"floating_ip_address": FLOATING, "fixed_ip_address": vm1.address}]
    three.apply(
        [three.endpoint(vm1, [GROUP_OPEN], floating_ips=nat), three.endpoint(vm3, [GROUP_OPEN])],
        {},
    )
    # from another VM: the VM's server sees its fixed address and the real client
    assert connect(vm3, FLOATING) == "vm1 10.28.0.13 192.168.8.1"
    # hairpin: the VM reaches itself on its floating IP, seen as coming from it
    assert connect(vm1, FLOATING) == f"vm1 10.28.0.13 {FLOATING}"


def test_vm_to_host_only_metadata_and_the_like(three: Host) -> None:
    vm1 = three.vms["vm1"]
    ip(three.namespace, "addr", "add", "169.254.169.254/32", "dev", "lo")
    for port in ("80", "8080"):
        server = subprocess.Popen(
            ["ip", "netns", "exec", three.namespace, "python3", "-c", SERVER, "host", port],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        three.servers.append(server)
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
    assert connect(vm1, "169.254.169.254", port=8080).startswith("host")  # no policy yet
    three.apply([three.endpoint(vm1, [GROUP_OPEN])], {})
    assert connect(vm1, "169.254.169.254", port=80) == "host 169.254.169.254 10.28.0.13"
    assert connect(vm1, "169.254.169.254", port=8080).startswith("failed")


def _held(listing: str) -> dict[tuple[str, str], tuple[str, frozenset[str]]]:
    """What the kernel holds, by block: a chain's rules, or a set's declaration and its
    elements as a set (a pipapo set lists them in the order they were added)."""
    held: dict[tuple[str, str], tuple[str, frozenset[str]]] = {}
    for key, body in blocks(listing).items():
        match = re.search(r"\t\telements = \{ (.*?) \}\n", body, re.DOTALL)
        if match is None:
            held[key] = (body, frozenset())
            continue
        elements = frozenset(e.strip() for e in match.group(1).split(","))
        held[key] = (body[: match.start()] + body[match.end() :], elements)
    return held


def test_an_update_between_any_two_rulesets_equals_the_full_replacement(host: Host) -> None:
    """``nft_delta``: going from one golden ruleset to another with only the changed
    blocks leaves the kernel with exactly what a full replacement gives."""
    cases = [(case / "expected.nft").read_text() for case in sorted(GOLDEN.iterdir())]
    cases.append(render([], {}, {}))
    for old, new in itertools.permutations(cases, 2):
        host.table.apply(new)
        wanted = _held(host.table.list())  # by name: the kernel lists in creation order
        assert len(wanted) >= len(blocks(new)) > 0
        host.table.apply(old)
        update = delta(blocks(old), blocks(new))
        assert update is not None
        if update:
            host.table.apply(update)
        assert _held(host.table.list()) == wanted


def _random_endpoints(rng: random.Random) -> tuple[list[EndpointRecord], dict[str, list[str]]]:
    pool = ["10.28.0.13", "10.28.0.14", "10.28.0.0/29", "10.28.1.0/24", "10.28.1.0/25",
            "2001:db8:28::31", "2001:db8:28::/120"]  # fmt: skip
    endpoints: list[EndpointRecord] = []
    for tap in rng.sample(["tapa", "tapb", "tapc", "tapd"], rng.randint(0, 4)):
        fixed = rng.sample(pool, rng.randint(0, 3))
        nat = [
            NatPair(floating_ip_address=f, fixed_ip_address=fixed[0])
            for f in rng.sample(["203.0.113.5", "203.0.113.6"], rng.randint(0, 1))
            if fixed and ":" not in fixed[0]
        ]
        endpoints.append(
            {"interface": tap, "fixed_ips": fixed, "allowed_addresses": rng.sample(pool, 1),
             "floating_ips": nat, "port_security_enabled": rng.random() > 0.2,
             "security_groups": rng.sample(sorted(GROUPS), rng.randint(0, 2))}
        )  # fmt: skip
    members = {GROUP_CLIENTS: rng.sample(pool, rng.randint(0, 4))}
    return endpoints, members


def test_a_run_of_updates_keeps_the_kernel_equal_to_a_full_replacement(host: Host) -> None:
    """Random tables one after another: one namespace only ever gets the updates, the
    other each table whole; the kernel must hold the same in both, every time."""
    reference = NftTable(host.cleanup.namespace("nftref"))
    host.cleanup.add("close the reference table", reference.close)
    rng = random.Random(4)
    before = render([], GROUPS, {})
    host.table.apply(before)
    for _ in range(25):
        endpoints, members = _random_endpoints(rng)
        after = render(endpoints, GROUPS, members)
        update = delta(blocks(before), blocks(after))
        assert update is not None
        if update:
            host.table.apply(update)
        reference.apply(after)
        assert _held(host.table.list()) == _held(reference.list())
        before = after


def test_a_table_of_thousands_then_one_member_more(host: Host) -> None:
    """A whole table this size goes through the ``nft`` command (its parse would be the
    agent's memory peak); the one-element update after it through the engine in use."""
    endpoints: list[EndpointRecord] = [
        {"interface": f"tap{i:05d}", "fixed_ips": [f"10.{i // 256}.{i % 256}.1"],
         "security_groups": [GROUP_FROM_CLIENTS]}
        for i in range(3000)
    ]  # fmt: skip
    members = {GROUP_CLIENTS: [f"10.99.{i // 256}.{i % 256}" for i in range(3000)]}
    before = render(endpoints, GROUPS, members)
    assert len(before) >= libnft.BIG
    host.table.apply(before)
    after = render(endpoints, GROUPS, {GROUP_CLIENTS: [*members[GROUP_CLIENTS], "10.98.0.1"]})
    update = delta(blocks(before), blocks(after))
    assert update == "add element inet routeplane rg4-sg-clients { 10.98.0.1 }\n"
    host.table.apply(update)
    held = _held(host.table.list())
    assert len(held[("set", "rg4-sg-clients")][1]) == 3001
    assert len(held[("set", "sources4")][1]) == 3000


STEP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7), timeout=1, source_address=(sys.argv[2], 0))
for line in sys.stdin:  # one echo per line read: the test decides when
    try:
        c.sendall(b"x")
        print("echoed" if c.recv(1) == b"x" else "closed", flush=True)
    except OSError:
        print("no echo", flush=True)
"""
ECHO_SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7)); s.listen(1)
c, _ = s.accept()
while data := c.recv(100):
    c.sendall(data)
"""


def test_anti_spoofing_fences_an_established_connection_at_once(three: Host) -> None:
    """An address taken off a port stops at the VM's next packet, also on a connection
    conntrack already knows (no conntrack flush here: the policy alone must do it)."""
    vm1, vm2 = three.vms["vm1"], three.vms["vm2"]
    moved = "10.28.0.98"
    ip(vm2.namespace, "addr", "add", f"{moved}/32", "dev", "eth0")
    ip(three.namespace, "route", "add", f"{moved}/32", "dev", vm2.tap, "scope", "link")
    holding = three.endpoint(vm2, [GROUP_OPEN], allowed_addresses=[moved])
    three.apply([three.endpoint(vm1, [GROUP_OPEN]), holding], {})
    server = subprocess.Popen(["ip", "netns", "exec", vm1.namespace, "python3", "-c", ECHO_SERVER])
    client = None
    try:
        for _ in range(100):  # until the echo server listens
            if ":7 " in exec_in(vm1.namespace, "ss", "-ltn"):
                break
            time.sleep(0.02)
        client = subprocess.Popen(
            ["ip", "netns", "exec", vm2.namespace, "python3", "-c", STEP_CLIENT,
             vm1.address, moved],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert client.stdin is not None
        assert client.stdout is not None
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "echoed"
        three.apply([three.endpoint(vm1, [GROUP_OPEN]), three.endpoint(vm2, [GROUP_OPEN])], {})
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "no echo"
    finally:
        for process in (client, server):
            if process is not None:
                process.kill()
                process.communicate(timeout=5)  # reaps it and closes its pipes
