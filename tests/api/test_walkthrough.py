"""The service-IP walkthrough's API steps, with the real ``openstack`` CLI.

Each step is followed by a look at what the host agents will act on: the endpoint
records in the store. Mirrors ../shared/seed/service-ips.md with ``openstack`` in place of
the retired ``nova``/``neutron`` commands.
"""

from __future__ import annotations

from typing import Any

import pytest

from routeplane.store import Store
from tests.api.conftest import Cli
from tests.api.helpers import live_agents, stored

pytestmark = pytest.mark.api


def endpoint(store: Store, host: str, port_id: str) -> dict[str, Any] | None:
    return stored(store, f"endpoints/{host}/{port_id}")


def addresses(port: dict[str, Any]) -> list[str]:
    return [ip["ip_address"] for ip in port["fixed_ips"]]


@pytest.fixture(scope="module")
def demo_net(admin_cli: Cli) -> dict[str, str]:
    net = admin_cli.json("network", "create", "demo-net")
    v4 = admin_cli.json(
        "subnet", "create", "--network", "demo-net", "--subnet-range", "10.28.0.0/16", "demo-v4"
    )
    v6 = admin_cli.json(
        "subnet", "create", "--network", "demo-net", "--ip-version", "6",
        "--subnet-range", "fd5f:5d21:845:1c2e::/64", "demo-v6",
    )  # fmt: skip
    return {"net": net["id"], "v4": v4["id"], "v6": v6["id"]}


def boot_port(cli: Cli, name: str, host: str) -> dict[str, Any]:
    port: dict[str, Any] = cli.json(
        "port", "create", "--network", "demo-net", "--host", host,
        "--device-owner", "compute:nova", "--device", f"vm-{name}", name,
    )  # fmt: skip
    return port


def test_network_and_subnets(admin_cli: Cli, demo_net: dict[str, str]) -> None:
    v4 = admin_cli.json("subnet", "show", "demo-v4")
    assert v4["cidr"] == "10.28.0.0/16"
    assert v4["gateway_ip"] == "10.28.0.1"
    assert v4["allocation_pools"] == [{"start": "10.28.0.2", "end": "10.28.255.254"}]
    net = admin_cli.json("network", "show", "demo-net")
    assert sorted(net["subnets"]) == sorted([demo_net["v4"], demo_net["v6"]])


def test_bound_port_gets_both_families_and_an_endpoint_record(
    admin_cli: Cli, store: Store, demo_net: dict[str, str]
) -> None:
    with live_agents(store, "node1"):
        port = boot_port(admin_cli, "testvm1", "node1")
    ips = addresses(port)
    assert len(ips) == 2
    assert ips[0].startswith("10.28.")
    assert ips[1].startswith("fd5f:5d21:845:1c2e:")
    assert port["binding_vif_type"] == "tap"
    assert port["status"] == "DOWN"  # no agent has programmed it yet
    record = endpoint(store, "node1", port["id"])
    assert record is not None
    assert record["interface"] == "tap" + port["id"][:11]
    assert record["mac_address"] == port["mac_address"]
    assert record["fixed_ips"] == ips


def test_service_ip_added_then_moved_with_unset_and_set(
    admin_cli: Cli, store: Store, demo_net: dict[str, str]
) -> None:
    p1 = admin_cli.json("port", "show", "testvm1")
    p2 = boot_port(admin_cli, "testvm2", "node2")
    v4 = demo_net["v4"]

    admin_cli.run("port", "set", "--fixed-ip", f"subnet={v4},ip-address=10.28.0.23", "testvm1")
    shown = admin_cli.json("port", "show", "testvm1")
    assert addresses(shown) == [*addresses(p1), "10.28.0.23"]
    record = endpoint(store, "node1", p1["id"])
    assert record is not None
    assert "10.28.0.23" in record["fixed_ips"]

    # while testvm1 holds it, testvm2 cannot take it
    stderr = admin_cli.fails(
        "port", "set", "--fixed-ip", f"subnet={v4},ip-address=10.28.0.23", "testvm2"
    )
    assert f"IP address 10.28.0.23 already allocated in subnet {v4}" in stderr

    admin_cli.run("port", "unset", "--fixed-ip", f"subnet={v4},ip-address=10.28.0.23", "testvm1")
    admin_cli.run("port", "set", "--fixed-ip", f"subnet={v4},ip-address=10.28.0.23", "testvm2")
    assert addresses(admin_cli.json("port", "show", "testvm1")) == addresses(p1)
    assert addresses(admin_cli.json("port", "show", "testvm2")) == [*addresses(p2), "10.28.0.23"]
    old, new = endpoint(store, "node1", p1["id"]), endpoint(store, "node2", p2["id"])
    assert old is not None
    assert new is not None
    assert "10.28.0.23" not in old["fixed_ips"]
    assert "10.28.0.23" in new["fixed_ips"]
    holders = admin_cli.json("port", "list", "--fixed-ip", "ip-address=10.28.0.23")
    assert [p["ID"] for p in holders] == [p2["id"]]


def test_specific_address_outside_the_pool_is_allowed(
    admin_cli: Cli, demo_net: dict[str, str]
) -> None:
    admin_cli.run(
        "subnet",
        "set",
        "--no-allocation-pool",
        "--allocation-pool",
        "start=10.28.0.2,end=10.28.0.99",
        "demo-v4",
    )
    port = admin_cli.json(
        "port", "create", "--network", "demo-net", "--fixed-ip", "ip-address=10.28.200.7", "svc"
    )
    assert addresses(port) == ["10.28.200.7"]


def test_moving_the_port_to_another_host_moves_its_endpoint(admin_cli: Cli, store: Store) -> None:
    port = boot_port(admin_cli, "testvm3", "node1")
    assert endpoint(store, "node1", port["id"]) is not None
    admin_cli.run("port", "set", "--host", "node2", "testvm3")
    assert endpoint(store, "node1", port["id"]) is None
    assert endpoint(store, "node2", port["id"]) is not None
    admin_cli.run("port", "delete", "testvm3")
    assert endpoint(store, "node2", port["id"]) is None


def test_port_becomes_active_when_its_agent_reports_it(admin_cli: Cli, store: Store) -> None:
    port = boot_port(admin_cli, "testvm4", "node1")
    assert admin_cli.json("port", "show", "testvm4")["status"] == "DOWN"
    store.put(
        f"/routeplane/v1/status/node1/{port['id']}", {"port_revision": port["revision_number"]}
    )
    assert admin_cli.json("port", "show", "testvm4")["status"] == "ACTIVE"


def test_security_group_rules_of_the_walkthrough(admin_cli: Cli, store: Store) -> None:
    group = admin_cli.json("security", "group", "create", "web")
    rule = admin_cli.json(
        "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
        "--remote-ip", "192.168.8.1/32", "web",
    )  # fmt: skip
    assert rule["remote_ip_prefix"] == "192.168.8.1/32"
    peer = admin_cli.json(
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "80",
        "--remote-group",
        "web",
        "web",
    )
    assert peer["remote_group_id"] == group["id"]
    stderr = admin_cli.fails(
        "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
        "--remote-ip", "192.168.8.1/32", "web",
    )  # fmt: skip
    assert f"Security group rule already exists. Rule id is {rule['id']}." in stderr
    port = admin_cli.json(
        "port",
        "create",
        "--network",
        "demo-net",
        "--host",
        "node1",
        "--security-group",
        "web",
        "guarded",
    )
    record = endpoint(store, "node1", port["id"])
    assert record is not None
    assert record["security_groups"] == [group["id"]]
    saved = stored(store, f"security_groups/{group['id']}")
    assert saved is not None
    prefixes = {r["remote_ip_prefix"] for r in saved["security_group_rules"]}
    assert "192.168.8.1/32" in prefixes
