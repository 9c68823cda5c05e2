"""Unit: the nftables ruleset is a pure function of its input, checked against golden
files (``tests/golden/nft/<case>/input.json`` → ``expected.nft``; ``UPDATE_GOLDEN=1``
rewrites the expected files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from routeplane.dataplane.nft_delta import blocks, split
from routeplane.dataplane.nft_render import FIXED, canonical, classify, profile_name, render
from routeplane.model.endpoint import EndpointRecord

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent.parent / "golden" / "nft"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.json").exists())


def _render(case: str) -> str:
    data = json.loads((GOLDEN / case / "input.json").read_text())
    return render(data["endpoints"], data["groups"], data["members"], data.get("fabric", ()))


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    expected = GOLDEN / case / "expected.nft"
    text = _render(case)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text)
    assert text == expected.read_text()


def test_cases_cover_the_brief() -> None:
    assert {"walkthrough", "port-security-disabled", "ipv6", "remote-group"} <= set(CASES)


def test_same_input_in_another_order_renders_the_same_text() -> None:
    data = json.loads((GOLDEN / "remote-group" / "input.json").read_text())
    flipped_groups = {
        k: {**g, "security_group_rules": list(reversed(g["security_group_rules"]))}
        for k, g in reversed(list(data["groups"].items()))
    }
    flipped_members = {k: list(reversed(v)) for k, v in data["members"].items()}
    again = render(list(reversed(data["endpoints"])), flipped_groups, flipped_members)
    assert again == render(data["endpoints"], data["groups"], data["members"])


def test_script_replaces_only_our_table() -> None:
    text = _render("walkthrough")
    lines = text.splitlines()
    assert lines[:3] == [
        "table inet routeplane",
        "delete table inet routeplane",
        "table inet routeplane {",
    ]
    assert sum(line.startswith("table ") for line in lines) == 2


def test_walkthrough_rule_and_floating_ip() -> None:
    text = _render("walkthrough")
    assert "ip saddr 192.168.8.1/32 tcp dport 22 accept" in text
    assert "203.0.113.5 : 10.28.0.13" in text
    assert "10.28.0.13 . 10.28.0.13 . 203.0.113.5 : 203.0.113.5" in text  # hairpin snat


def _elements(text: str, kind: str, name: str) -> set[str]:
    return split(blocks(text)[(kind, name)])[1]


def test_port_security_disabled_port_is_not_filtered() -> None:
    text = _render("port-security-disabled")
    guarded = '"tap11111111-aa"'
    assert _elements(text, "set", "guarded") == {guarded}
    assert _elements(text, "set", "vm-taps") == {guarded, '"tap22222222-aa"'}  # metadata only
    assert _elements(text, "map", "from-vm") == {f"{guarded} : jump egress-sg-web"}
    assert _elements(text, "set", "sources4") == {f"{guarded} . 10.28.0.21"}


def test_remote_group_is_a_set_of_members() -> None:
    text = _render("remote-group")
    assert "ip saddr @rg4-sg-app tcp dport 5432 accept" in text
    assert "ip saddr @rgn4-sg-app tcp dport 5432 accept" in text  # the members' prefixes
    assert _elements(text, "set", "rg4-sg-app") == {"10.28.0.51", "10.28.0.61"}
    assert _elements(text, "set", "rgn4-sg-db") == {"10.28.5.0/24"}
    assert "ip6 daddr @rg6-sg-app udp dport 1000-2000 return" in text


def test_no_endpoints_still_renders_a_valid_empty_policy() -> None:
    text = render([], {}, {})
    assert set(blocks(text)) == set(FIXED)  # no profile chains, no member sets
    assert "elements" not in text


def test_taps_with_the_same_groups_share_one_pair_of_chains() -> None:
    data = json.loads((GOLDEN / "walkthrough" / "input.json").read_text())
    text = render(data["endpoints"], data["groups"], data["members"])
    chains = [
        k for k in blocks(text) if k[0] == "chain" and k[1].startswith(("egress-", "ingress-"))
    ]
    group = data["groups"]["0d5a3e4b-1111-4a2b-8c3d-000000000001"]["id"]
    assert sorted(chains) == [("chain", f"egress-{group}"), ("chain", f"ingress-{group}")]
    assert len(_elements(text, "map", "to-vm")) == 2


def test_endpoints_sharing_a_tap_are_judged_together() -> None:
    one: EndpointRecord = {
        "interface": "tapshared",
        "fixed_ips": ["10.0.0.1"],
        "security_groups": ["a"],
    }
    two: EndpointRecord = {"interface": "tapshared", "fixed_ips": ["10.0.0.2"], "security_groups": ["b"],
           "port_security_enabled": False}  # fmt: skip
    text = render([one, two], {}, {})
    assert _elements(text, "set", "sources4") == {
        '"tapshared" . 10.0.0.1',
        '"tapshared" . 10.0.0.2',
    }
    assert _elements(text, "map", "from-vm") == {'"tapshared" : jump egress-a.b'}


def test_prefixes_cover_the_addresses_inside_them() -> None:
    addresses = ["10.0.0.5", "10.0.0.0/24", "10.0.0.0/25", "10.0.1.7", "fd00::1", "bogus"]
    assert canonical(addresses, 4) == ["10.0.0.0/24", "10.0.1.7"]
    assert canonical(addresses, 6) == ["fd00::1"]
    assert classify(addresses)[4] == ({"10.0.0.5", "10.0.1.7"}, {"10.0.0.0/24", "10.0.0.0/25"})


def test_names_that_nft_cannot_take_are_digested() -> None:
    assert profile_name(("sg-a", "sg-b")) == "sg-a.sg-b"
    odd = profile_name(("a b",))
    assert odd.startswith("h")
    assert " " not in odd
    assert profile_name(()) != profile_name(("",))


def test_a_rule_with_an_unknown_protocol_admits_nothing() -> None:
    rule = {"direction": "ingress", "ethertype": "IPv4", "protocol": "carrier-pigeon"}
    text = render(
        [{"interface": "tapa", "security_groups": ["g"]}],
        {"g": {"security_group_rules": [rule]}},
        {},
    )
    assert blocks(text)[("chain", "ingress-g")] == "\t\tdrop\n"
