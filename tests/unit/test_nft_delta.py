"""Unit: the update between two rendered tables touches only what changed (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routeplane.dataplane.nft_delta import blocks, delta
from routeplane.dataplane.nft_render import render

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent.parent / "golden" / "nft"


def walkthrough() -> tuple[
    list[dict[str, object]], dict[str, dict[str, object]], dict[str, list[str]]
]:
    data = json.loads((GOLDEN / "walkthrough" / "input.json").read_text())
    return data["endpoints"], data["groups"], data["members"]


def test_no_change_is_an_empty_update() -> None:
    script = render(*walkthrough())
    assert delta(blocks(script), blocks(script)) == ""


def test_a_new_address_only_refills_its_anti_spoofing_set() -> None:
    endpoints, groups, members = walkthrough()
    before = render(endpoints, groups, members)
    first = dict(endpoints[0])
    first["fixed_ips"] = [*first["fixed_ips"], "10.28.0.23"]  # type: ignore[misc]
    after = render([first, *endpoints[1:]], groups, members)
    update = delta(blocks(before), blocks(after))
    assert update is not None
    tap = first["interface"]
    assert f"flush set inet routeplane src4-{tap}" in update
    assert "10.28.0.23" in update
    assert "delete table" not in update
    assert "chain" not in update  # no rule changed
