"""Unit: the nftables ruleset is a pure function of its input, checked against golden
files (``tests/golden/nft/<case>/input.json`` → ``expected.nft``; ``UPDATE_GOLDEN=1``
rewrites the expected files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from routeplane.dataplane.nft_render import render

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent.parent / "golden" / "nft"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.json").exists())


def _render(case: str) -> str:
    data = json.loads((GOLDEN / case / "input.json").read_text())
    return render(data["endpoints"], data["groups"], data["members"])


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
    assert "snat ip to 203.0.113.5" in text


def test_port_security_disabled_port_is_not_filtered() -> None:
    text = _render("port-security-disabled")
    assert "from-tap22222222-aa" not in text
    assert "to-tap22222222-aa" not in text
    assert "jump from-tap11111111-aa" in text


def test_remote_group_is_a_set_of_members() -> None:
    text = _render("remote-group")
    assert "ip saddr @rg4-sg-app tcp dport 5432 accept" in text
    assert "elements = { 10.28.0.51, 10.28.0.61 }" in text
    assert "ip6 daddr @rg6-sg-app udp dport 1000-2000 return" in text


def test_no_endpoints_still_renders_a_valid_empty_policy() -> None:
    text = render([], {}, {})
    assert "vmap" not in text
    assert "jump from-vm-to-host" not in text
