"""Unit: the lab's plan — names, addresses, command lines, what ``down`` may call its own,
and how a VM's guest side is configured from its port. Pure functions, no namespaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from routeplane.lab.state import LabState, ProcessRecord, VmRecord, load, save
from routeplane.lab.topology import Topology, check_vm_name, resolve
from routeplane.lab.vm import GuestAddress, guest_addresses, guest_commands
from routeplane.model.endpoint import interface_name

pytestmark = pytest.mark.unit


def test_nodes_get_the_walkthrough_addresses() -> None:
    plan = Topology.plan("lab", 3, Path("/run/routeplane"))
    assert plan.access.namespace == "rp-lab-access"
    assert (plan.access.ipv4, plan.access.ipv6) == ("192.168.8.1", "fd00:192:168:8::1")
    assert [(h.name, h.namespace, h.ipv4, h.ipv6) for h in plan.hosts] == [
        ("node1", "rp-lab-node1", "192.168.8.3", "fd00:192:168:8::3"),
        ("node2", "rp-lab-node2", "192.168.8.4", "fd00:192:168:8::4"),
        ("node3", "rp-lab-node3", "192.168.8.5", "fd00:192:168:8::5"),
    ]
    assert plan.hosts[0].ipv4_interface == "192.168.8.3/24"
    assert plan.hosts[0].ipv6_interface == "fd00:192:168:8::3/64"
    assert plan.fabric == "rp-lab-fabric"
    assert plan.vm_namespace("testvm1") == "rp-lab-vm-testvm1"
    assert plan.state_dir == Path("/run/routeplane/lab")
    assert plan.store_url == "sqlite:///run/routeplane/lab/store.db"


@pytest.mark.parametrize("name", ["", "Lab", "lab-2", "2lab", "a" * 13, "rp/x"])
def test_lab_names_that_could_collide_or_escape_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="lab names"):
        Topology.plan(name, 1)


@pytest.mark.parametrize("count", [0, 65])
def test_host_count_is_bounded(count: int) -> None:
    with pytest.raises(ValueError, match="hosts"):
        Topology.plan("lab", count)


@pytest.mark.parametrize("name", ["access", "fabric", "node1", "node12", "Vm", "-x", "a" * 33])
def test_vm_names_that_would_shadow_a_node_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="VM names"):
        check_vm_name(name)


def test_down_recognises_only_namespaces_of_its_own_shapes() -> None:
    plan = Topology.plan("lab", 1)
    for ours in (
        "rp-lab-fabric",
        "rp-lab-access",
        "rp-lab-node1",
        "rp-lab-node17",
        "rp-lab-vm-a-1",
    ):
        assert plan.owns(ours), ours
    for theirs in (
        "rp-lab2-node1",  # another lab
        "rp-lab-1a2b3c4d",  # netns.unique_name("lab") of a kernel test
        "rp-lab-node",
        "rp-lab-vm-",
        "rp-lab-bgp-a",
        "lab-node1",
        "rp-node1-0badcafe",
    ):
        assert not plan.owns(theirs), theirs


def test_an_etcd_lab_plans_three_members_reached_by_their_unix_sockets() -> None:
    plan = Topology.plan("lab", 2, Path("/state"), "etcd")
    assert [m.namespace for m in plan.etcd_members] == [
        "rp-lab-etcd1",
        "rp-lab-etcd2",
        "rp-lab-etcd3",
    ]
    assert plan.store_url == "etcd://" + ",".join(
        f"unix:/state/lab/etcd/etcd{k}/client.sock:2379" for k in (1, 2, 3)
    )
    command = plan.agent_command(plan.hosts[0], 9100)
    assert command[command.index("--store") + 1] == plan.store_url
    assert all(plan.owns(ns) for ns in ("rp-lab-etcd", "rp-lab-etcd1", "rp-lab-etcd3"))
    assert not plan.owns("rp-lab-etcdx")
    assert plan.etcd_data_root == Path("/dev/shm/routeplane/state-lab")
    assert Topology.plan("lab", 2).etcd_members == ()
    with pytest.raises(ValueError, match="store"):
        Topology.plan("lab", 2, Path("/state"), "mysql")


def test_agent_command_enables_bgp_with_the_access_node_as_peer() -> None:
    plan = Topology.plan("lab", 2, Path("/state"))
    command = plan.agent_command(plan.hosts[1], 9100)
    assert command[command.index("--store") + 1] == "sqlite:///state/lab/store.db"
    tail = command[command.index("agent") :]
    assert tail == [
        "agent", "--host", "node2", "--netns", "rp-lab-node2",
        "--bgp-address", "192.168.8.4", "--bgp-address6", "fd00:192:168:8::4",
        "--bgp-peer", "192.168.8.1", "--bird-dir", "/state/lab/node2/bird",
        "--as-number", "64512", "--metrics-listen", "127.0.0.1:9100",
    ]  # fmt: skip
    api = plan.api_command(9797, 9101)
    assert api[api.index("api") :] == [
        "api", "--listen", "127.0.0.1:9797", "--config", "/state/lab/api.toml",
        "--metrics-listen", "127.0.0.1:9101",
    ]  # fmt: skip


def test_vm_service_runs_inside_the_vm_namespace() -> None:
    command = Topology.plan("lab", 1).vm_service_command("testvm1")
    assert command[:4] == ["ip", "netns", "exec", "rp-lab-vm-testvm1"]
    assert command[-3:] == ["routeplane.lab.vm_service", "serve", "testvm1"]


def test_nodes_resolve_to_their_namespaces() -> None:
    plan = Topology.plan("lab", 2)
    vms = frozenset({"testvm1"})
    assert resolve(plan, "access", vms) == "rp-lab-access"
    assert resolve(plan, "node2", vms) == "rp-lab-node2"
    assert resolve(plan, "testvm1", vms) == "rp-lab-vm-testvm1"
    for unknown in ("node3", "testvm2"):
        with pytest.raises(ValueError, match="no"):
            resolve(plan, unknown, vms)


def test_tap_is_named_as_nova_names_it() -> None:
    assert interface_name("9a7e0868-da7a-419e-a7ad-9d37e11091b8") == "tap9a7e0868-da"


def test_guest_gets_addresses_with_the_subnet_prefix_and_one_default_route_per_family() -> None:
    port = {
        "fixed_ips": [
            {"subnet_id": "v4", "ip_address": "10.28.0.13"},
            {"subnet_id": "v4", "ip_address": "10.28.0.23"},
            {"subnet_id": "v6", "ip_address": "fd5f:5d21:845:1c2e:2::d"},
        ]
    }
    subnets = {
        "v4": {"cidr": "10.28.0.0/16", "gateway_ip": "10.28.0.1"},
        "v6": {"cidr": "fd5f:5d21:845:1c2e::/64", "gateway_ip": "fd5f:5d21:845:1c2e::1"},
    }
    addresses = guest_addresses(port, subnets)
    assert addresses[0] == GuestAddress("10.28.0.13/16", 4, "10.28.0.1")
    assert guest_commands(addresses) == [
        "addr add 10.28.0.13/16 brd + dev eth0",
        "addr add 10.28.0.23/16 brd + dev eth0",
        "addr add fd5f:5d21:845:1c2e:2::d/64 dev eth0 noprefixroute nodad",
        "route add 0.0.0.0/0 via 10.28.0.1 dev eth0",
        "route add ::/0 via fd5f:5d21:845:1c2e::1 dev eth0 onlink",
    ]


def test_a_subnet_without_gateway_gives_no_default_route() -> None:
    addresses = [GuestAddress("10.28.0.13/16", 4, None)]
    assert guest_commands(addresses) == ["addr add 10.28.0.13/16 brd + dev eth0"]


def test_state_round_trips_and_an_unreadable_file_reads_as_none(tmp_path: Path) -> None:
    lab = LabState("lab", 2, 9696, "token", "password", namespaces=["rp-lab-fabric"])
    lab.processes["api"] = ProcessRecord(42, ["python", "-m", "x"], "/log")
    lab.vms["vm1"] = VmRecord("vm1", "node1", "rp-lab-vm-vm1", "p", "tapp", "m", "n", ["a/16"])
    path = tmp_path / "state.json"
    save(path, lab)
    assert load(path) == lab
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text('{"lab": ')
    assert load(path) is None
    assert load(tmp_path / "missing.json") is None
