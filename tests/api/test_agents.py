"""Neutron's agent resource (issue 14, item 3) against a started api, with agents
registered as the real agent registers (``agent.registration``): the fields, codes and
messages of a real Neutron 29 (``shared/tools/neutron-peer``, an agent row added to its
database), admin-only writes, the delete of a dead and of a live agent, the real
``openstack network agent list``, and a binding that fails without a live agent on its
host and succeeds once one is there.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from routeplane.model.agent import AGENT_NAMESPACE
from routeplane.store import Store
from tests.api.conftest import Cli
from tests.api.helpers import assert_fault, live_agents, stored

pytestmark = pytest.mark.api

FIELDS = [
    "id",
    "agent_type",
    "binary",
    "topic",
    "host",
    "admin_state_up",
    "created_at",
    "started_at",
    "heartbeat_timestamp",
    "description",
    "resources_synced",
    "availability_zone",
    "alive",
    "configurations",
]


def agent_id(host: str) -> str:
    return str(uuid.uuid5(AGENT_NAMESPACE, host))


def test_a_registered_agent_is_listed_with_neutrons_fields(
    admin_v2: httpx.Client, store: Store
) -> None:
    assert "agent" in {e["alias"] for e in admin_v2.get("/extensions").json()["extensions"]}
    with live_agents(store, "agent-a"):
        listed = admin_v2.get("/agents", params={"host": "agent-a"}).json()["agents"]
        assert len(listed) == 1
        agent = listed[0]
        assert list(agent) == FIELDS
        assert {k: agent[k] for k in FIELDS if "_at" not in k and "time" not in k} == {
            "id": agent_id("agent-a"),
            "agent_type": "Routeplane per-host agent",
            "binary": "routeplane-agent",
            "topic": "N/A",
            "host": "agent-a",
            "admin_state_up": True,
            "description": None,
            "resources_synced": None,
            "availability_zone": None,
            "alive": True,
            "configurations": agent["configurations"],
        }
        assert agent["configurations"]["bgp_address"] == "10.255.0.1"
        assert len(agent["created_at"]) == len("2024-01-01 00:00:00")
        shown = admin_v2.get(f"/agents/{agent['id']}", params={"fields": ["alive", "host"]})
        assert shown.json() == {"agent": {"alive": True, "host": "agent-a"}}
    dead = admin_v2.get(f"/agents/{agent_id('agent-a')}").json()["agent"]
    assert dead["alive"] is False  # a dead agent stays listed until deleted
    assert admin_v2.get("/agents", params={"alive": "False"}).json()["agents"][0]["host"]


def test_an_admin_sets_what_neutron_lets_set(admin_v2: httpx.Client, store: Store) -> None:
    with live_agents(store, "agent-b"):
        url = f"/agents/{agent_id('agent-b')}"
        updated = admin_v2.put(url, json={"agent": {"admin_state_up": False, "description": "x"}})
        assert updated.status_code == 200, updated.text
        assert {k: updated.json()["agent"][k] for k in ("admin_state_up", "description")} == {
            "admin_state_up": False,
            "description": "x",
        }
        bad = {"agent": {"admin_state_up": "maybe"}}
        assert_fault(
            admin_v2.put(url, json=bad),
            400,
            "InvalidInput",
            "Invalid input for operation: 'maybe' cannot be converted to boolean.",
        )
        assert_fault(
            admin_v2.put(url, json={"agent": {"alive": True}}),
            400,
            "HTTPBadRequest",
            "Cannot update read-only attribute alive",
        )
        assert_fault(
            admin_v2.put(url, json={"agent": {"host": "x"}}),
            400,
            "HTTPBadRequest",
            "Cannot update read-only attribute host",
        )
        assert admin_v2.get(url).json()["agent"]["admin_state_up"] is False  # unchanged


def test_agents_are_created_by_agents_and_hidden_from_members(
    admin_v2: httpx.Client, demo_v2: httpx.Client, store: Store
) -> None:
    assert_fault(
        admin_v2.post("/agents", json={"agent": {}}),
        400,
        "BadRequest",
        "Bad agents request: Agent creation using API is not supported..",
    )
    assert_fault(
        admin_v2.post("/agents", json={"agent": {"admin_state_up": False}}),
        400,
        "HTTPBadRequest",
        "Attribute 'admin_state_up' not allowed in POST",
    )
    missing = f"Agent {agent_id('agent-c')} could not be found."
    with live_agents(store, "agent-c"):
        assert demo_v2.get("/agents").json() == {"agents": []}
        url = f"/agents/{agent_id('agent-c')}"
        assert_fault(demo_v2.get(url), 404, "AgentNotFound", missing)
        put = demo_v2.put(url, json={"agent": {"description": "mine"}})
        assert_fault(put, 404, "AgentNotFound", missing)
        assert_fault(demo_v2.delete(url), 404, "AgentNotFound", missing)
    assert_fault(admin_v2.get("/agents/abc"), 404, "AgentNotFound", "Agent abc could not be found.")


def test_deleting_a_live_agent_resets_it_and_a_dead_one_forgets_the_host(
    admin_v2: httpx.Client, store: Store
) -> None:
    url = f"/agents/{agent_id('agent-d')}"
    with live_agents(store, "agent-d"):
        admin_v2.put(url, json={"agent": {"description": "rack 4"}})
        assert admin_v2.delete(url).status_code == 204
        again = admin_v2.get(url).json()["agent"]  # it reports again at once
        assert (again["alive"], again["description"]) == (True, None)
    assert stored(store, "hosts/agent-d") is not None
    assert admin_v2.delete(url).status_code == 204
    assert_fault(
        admin_v2.get(url), 404, "AgentNotFound", f"Agent {agent_id('agent-d')} could not be found."
    )
    assert stored(store, "hosts/agent-d") is None  # the host left the fabric
    assert stored(store, "agent_info/agent-d") is None


def test_a_binding_fails_without_a_live_agent_and_succeeds_with_one(
    admin_v2: httpx.Client, store: Store
) -> None:
    net = admin_v2.post("/networks", json={"network": {"name": "agents-net"}}).json()["network"]
    subnet = {"network_id": net["id"], "ip_version": 4, "cidr": "10.91.0.0/24"}
    assert admin_v2.post("/subnets", json={"subnet": subnet}).status_code == 201
    body = {"network_id": net["id"], "binding:host_id": "agent-e", "device_owner": "compute:x"}
    port = admin_v2.post("/ports", json={"port": body}).json()["port"]
    failed = {"binding:vif_type": "binding_failed", "binding:vif_details": {}, "status": "DOWN"}
    assert {k: port[k] for k in failed} == failed
    # the record waits for the agent, which programs the port as soon as it starts
    assert stored(store, f"endpoints/agent-e/{port['id']}") is not None
    with live_agents(store, "agent-e"):
        shown = admin_v2.get(f"/ports/{port['id']}").json()["port"]
        assert shown["binding:vif_type"] == "tap"
        assert shown["binding:vif_details"]["mac_address"] == "fe" + port["mac_address"][2:]
        listed = admin_v2.get("/ports", params={"id": port["id"]}).json()["ports"]
        assert listed[0]["binding:vif_type"] == "tap"
    admin_v2.delete(f"/agents/{agent_id('agent-e')}")


def test_openstack_network_agent_list(admin_cli: Cli, store: Store) -> None:
    with live_agents(store, "agent-f"):
        rows = admin_cli.json("network", "agent", "list", "--host", "agent-f")
        assert [
            (r["Agent Type"], r["Host"], r["Alive"], r["State"], r["Binary"]) for r in rows
        ] == [("Routeplane per-host agent", "agent-f", True, True, "routeplane-agent")]
        admin_cli.run("network", "agent", "set", "--disable", agent_id("agent-f"))
        shown = admin_cli.json("network", "agent", "show", agent_id("agent-f"))
        assert shown["admin_state_up"] is False
