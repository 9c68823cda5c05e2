"""Unit: the update between two rendered tables touches only what changed, in an order
that never leaves a reference dangling (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from routeplane.dataplane.nft_delta import Update, blocks, changes, delta, script
from routeplane.dataplane.nft_render import render
from routeplane.model.endpoint import EndpointRecord

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent.parent / "golden" / "nft"


def walkthrough() -> tuple[list[EndpointRecord], dict[str, dict[str, Any]], dict[str, list[str]]]:
    data = json.loads((GOLDEN / "walkthrough" / "input.json").read_text())
    return data["endpoints"], data["groups"], data["members"]


def test_no_change_is_an_empty_update() -> None:
    script_ = render(*walkthrough())
    assert delta(blocks(script_), blocks(script_)) == ""


def test_a_new_address_is_one_element_in_the_anti_spoofing_set() -> None:
    endpoints, groups, members = walkthrough()
    before = render(endpoints, groups, members)
    first: EndpointRecord = {
        **endpoints[0],
        "fixed_ips": [*endpoints[0]["fixed_ips"], "10.28.0.23"],
    }
    after = render([first, *endpoints[1:]], groups, members)
    tap = first["interface"]
    assert delta(blocks(before), blocks(after)) == (
        f'add element inet routeplane sources4 {{ "{tap}" . 10.28.0.23 }}\n'
    )


def test_a_prefix_replacing_addresses_goes_to_the_prefix_set() -> None:
    endpoints, groups, members = walkthrough()
    before = render(endpoints, groups, members)
    first: EndpointRecord = {**endpoints[0], "allowed_addresses": ["10.28.0.0/24"]}
    after = render([first, *endpoints[1:]], groups, members)
    tap = first["interface"]
    assert delta(blocks(before), blocks(after)) == (
        f'add element inet routeplane sourcenets4 {{ "{tap}" . 10.28.0.0/24 }}\n'
    )


def test_a_new_group_combination_gets_its_chains_before_a_verdict_jumps_to_them() -> None:
    endpoints, groups, members = walkthrough()
    before = render(endpoints, groups, members)
    groups = {**groups, "sg-new": {"security_group_rules": []}}
    moved: EndpointRecord = {**endpoints[1], "security_groups": ["sg-new"]}
    after = render([endpoints[0], moved], groups, members)
    update = delta(blocks(before), blocks(after))
    assert update is not None
    lines = update.splitlines()
    tap = moved["interface"]
    old_verdict = next(i for i, line in enumerate(lines) if line.startswith("delete element"))
    chain = lines.index("\tchain ingress-sg-new {")
    new_verdict = next(
        i for i, line in enumerate(lines) if f'"{tap}" : jump ingress-sg-new' in line
    )
    assert old_verdict < chain < new_verdict
    assert "delete chain" not in update  # the old chains still serve the first tap


def test_chains_and_sets_no_longer_used_go_last_chains_first() -> None:
    endpoints, groups, members = walkthrough()
    before = render(endpoints, groups, members)
    after = render([], groups, members)
    update = delta(blocks(before), blocks(after))
    assert update is not None
    lines = update.splitlines()
    assert any(line.startswith("delete element inet routeplane from-vm") for line in lines)
    tail = [line for line in lines if line.startswith(("delete chain", "delete set"))]
    assert tail == lines[-len(tail) :]
    kinds = [line.split()[1] for line in tail]
    assert kinds == sorted(kinds)  # every chain, then every set
    assert "delete set inet routeplane rg4-0d5a3e4b-1111-4a2b-8c3d-000000000001" in tail


def test_a_set_that_changes_type_needs_a_full_replacement() -> None:
    old = {("set", "s"): "\t\ttype ipv4_addr\n"}
    new = {("set", "s"): "\t\ttype ipv6_addr\n"}
    assert changes(old, new) is None
    assert changes(old, old) == Update()


def test_elements_of_a_set_being_deleted_or_created_are_not_listed_twice() -> None:
    update = Update(
        created={("set", "fresh"): "\t\ttype ipv4_addr\n"},
        added={("set", "fresh"): {"10.0.0.1"}, ("set", "gone"): {"10.0.0.2"}},
        removed={("set", "fresh"): {"10.0.0.3"}, ("set", "gone"): {"10.0.0.4"}},
        deleted=[("set", "gone")],
    )
    assert script(update) == (
        "table inet routeplane {\n\tset fresh {\n\t\ttype ipv4_addr\n\t}\n}\n"
        "add element inet routeplane fresh { 10.0.0.1 }\n"
        "delete set inet routeplane gone\n"
    )
