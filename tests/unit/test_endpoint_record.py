"""Unit: the endpoint record, the contract between the api and every agent
(``routeplane.model.endpoint``): what the api writes, that the agents' codec takes it,
and that records already in a store — written by routeplane before the record had a
version — still load and mean the same to the agent."""

from __future__ import annotations

import json
from typing import Any, get_type_hints

import pytest

from routeplane.agent.desired import endpoint_state
from routeplane.dataplane.nft_render import endpoint_addresses
from routeplane.model import keys
from routeplane.model.endpoint import (
    RECORD_VERSION,
    EndpointRecord,
    RecordError,
    decode,
    decode_or_none,
    interface_name,
)
from routeplane.services.core.endpoints import RecordInputs, endpoint_record

pytestmark = pytest.mark.unit

# A record exactly as the api of commit a8bbefd (the first wave's last) wrote it.
FIRST_WAVE = json.loads(
    """{"port_id": "9a7e0868-da7a-419e-a7ad-9d37e11091b8", "network_id": "net1",
    "project_id": "proj1", "host": "node1", "interface": "tap9a7e0868-da",
    "mac_address": "FA:16:3E:00:00:01", "admin_state_up": true,
    "fixed_ips": ["10.28.0.13", "fd5f:5d21:845:1c2e::d"],
    "gateways": ["10.28.0.1", "fd5f:5d21:845:1c2e::1"],
    "allowed_addresses": ["10.28.0.99", "10.28.1.0/24"],
    "floating_ips": [{"floating_ip_address": "192.168.8.50", "fixed_ip_address": "10.28.0.13"}],
    "port_security_enabled": true, "security_groups": ["sg1"], "port_revision": 7,
    "preferred": ["10.28.0.13"],
    "moved_in": {"10.28.0.13": {"generation": 3, "from_port_id": null, "from_host": "",
                                "moved_at": 1.5}},
    "moved_out": {}}"""
)
# An even older one, before gateways and the move hints existed.
OLDEST = {"port_id": "p1", "interface": "tapp1", "mac_address": "fa:16:3e:00:00:02",
          "fixed_ips": ["10.28.0.14"], "security_groups": []}  # fmt: skip

PORT: dict[str, Any] = {
    "id": "9a7e0868-da7a-419e-a7ad-9d37e11091b8",
    "network_id": "net1",
    "project_id": "proj1",
    "binding:host_id": "node1",
    "mac_address": "FA:16:3E:00:00:01",
    "admin_state_up": True,
    "fixed_ips": [
        {"subnet_id": "s4", "ip_address": "10.28.0.13"},
        {"subnet_id": "s6", "ip_address": "fd5f:5d21:845:1c2e::d"},
    ],
    "allowed_address_pairs": [{"ip_address": "10.28.0.99"}, {"ip_address": "10.28.1.0/24"}],
    "port_security_enabled": True,
    "security_groups": ["sg1"],
    "revision_number": 7,
    "_moves": {
        "in": {
            "10.28.0.13": {"generation": 3, "from_port_id": None, "from_host": "", "moved_at": 1.5}
        },
        "out": {},
    },
}
FLOATING = [{"floating_ip_address": "192.168.8.50", "fixed_ip_address": "10.28.0.13"}]
GATEWAYS = ["10.28.0.1", "fd5f:5d21:845:1c2e::1"]
ADDRESSING: list[Any] = [
    {
        "ip_address": "10.28.0.13",
        "subnet_id": "s4",
        "cidr": "10.28.0.0/16",
        "gateway_ip": "10.28.0.1",
        "dns_nameservers": ["10.28.0.2"],
        "host_routes": [{"destination": "10.99.0.0/16", "nexthop": "10.28.0.254"}],
        "enable_dhcp": True,
    },
    {
        "ip_address": "fd5f:5d21:845:1c2e::d",
        "subnet_id": "s6",
        "cidr": "fd5f:5d21:845:1c2e::/64",
        "gateway_ip": "fd5f:5d21:845:1c2e::1",
        "dns_nameservers": [],
        "host_routes": [],
        "enable_dhcp": True,
    },
]
INPUTS = RecordInputs(GATEWAYS, ADDRESSING, 1450)


def test_the_api_writes_every_field_of_the_contract_and_its_version() -> None:
    written = endpoint_record(PORT, FLOATING, INPUTS)
    assert set(written) == set(get_type_hints(EndpointRecord))
    assert written["version"] == RECORD_VERSION
    assert written["interface"] == interface_name(PORT["id"]) == "tap9a7e0868-da"
    assert decode(json.loads(json.dumps(written))) == written  # through the store as JSON


def test_a_first_wave_record_loads_and_means_what_it_meant() -> None:
    loaded = decode(FIRST_WAVE)
    assert loaded["version"] == RECORD_VERSION
    now_written = endpoint_record(PORT, FLOATING, INPUTS)
    assert {k: v for k, v in loaded.items() if k in FIRST_WAVE} == {
        k: v for k, v in now_written.items() if k in FIRST_WAVE
    }
    assert endpoint_state(loaded) == endpoint_state(now_written)
    assert endpoint_addresses(loaded) == endpoint_addresses(now_written)


def test_a_second_version_record_gets_no_dhcp_facts_until_rewritten() -> None:
    second = {**FIRST_WAVE, "version": 2}
    loaded = decode(second)
    assert (loaded["addressing"], loaded["mtu"], loaded["hostname"]) == ([], 0, "")
    assert loaded["extra_dhcp_opts"] == []
    assert loaded["fixed_ips"] == second["fixed_ips"]


def test_the_dhcp_facts_come_from_the_port_its_subnets_and_network() -> None:
    port = {
        **PORT,
        "name": "vm1",
        "dns_name": "",
        "extra_dhcp_opts": [{"opt_name": "ntp-server", "opt_value": "10.0.0.9", "ip_version": 4}],
    }
    written = endpoint_record(port, FLOATING, INPUTS)
    assert (written["mtu"], written["hostname"]) == (1450, "vm1")
    assert written["addressing"][0]["cidr"] == "10.28.0.0/16"
    assert written["extra_dhcp_opts"] == [
        {"opt_name": "ntp-server", "opt_value": "10.0.0.9", "ip_version": 4}
    ]
    assert endpoint_record({**port, "dns_name": "web"}, [], INPUTS)["hostname"] == "web"


def test_the_oldest_records_get_the_defaults_an_old_agent_assumed() -> None:
    loaded = decode(OLDEST)
    assert (loaded["admin_state_up"], loaded["port_security_enabled"]) == (True, True)
    assert (loaded["gateways"], loaded["moved_out"], loaded["preferred"]) == ([], {}, [])
    assert OLDEST.get("version") is None  # the stored value itself is not changed
    assert endpoint_state(loaded).routes  # and it is still routed


def test_a_current_record_is_taken_as_it_is_without_a_copy() -> None:
    current = endpoint_record(PORT, FLOATING, INPUTS)
    assert decode(current) is current


@pytest.mark.parametrize(
    "value", [None, "tap1", ["tap1"], {"interface": 7}, {"interface": None}], ids=repr
)
def test_what_is_no_record_is_refused_not_guessed(value: object) -> None:
    with pytest.raises(RecordError):
        decode(value)
    assert decode_or_none(value) is None


def test_every_key_is_built_under_one_root() -> None:
    assert keys.endpoint_key("node1", "p1") == "/routeplane/v1/endpoints/node1/p1"
    assert keys.endpoints_prefix("node1") == "/routeplane/v1/endpoints/node1/"
    assert keys.endpoints_prefix() == "/routeplane/v1/endpoints/"
    assert keys.status_key("node1", "p1").startswith(keys.status_prefix("node1"))
    assert keys.split(keys.endpoint_key("node1", "p1")) == ("endpoints", "node1", "p1")
    assert keys.split("/elsewhere/x") == ()
    assert not keys.endpoints_prefix("node10").startswith(keys.endpoints_prefix("node1"))
