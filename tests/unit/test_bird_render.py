"""Unit: a host's BIRD configuration is a pure function of its settings and the hosts
registry, checked against golden files (``tests/golden/bird/<case>/input.json`` →
``bird.conf``; ``UPDATE_GOLDEN=1`` rewrites them), including how a moved address's
routes are ranked (kernel metric → BIRD preference and local preference) and that no two
routes to one address are ever merged into a multipath route.
``tests/contract/test_bird.py`` has a real BIRD parse every one of them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.bgp import parse_peer
from routeplane.bgp import render as bird_render
from routeplane.bgp.render import HostBgp, Peer, access_config, mesh_peers, render
from routeplane.dataplane import model

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent.parent / "golden" / "bird"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.json").exists())


def render_case(data: dict[str, Any]) -> str:
    if data.get("access"):
        return access_config(
            data["address"], data["as_number"], data["ranges"], address6=data.get("address6", "")
        )
    hosts = {name: (a, n) for name, (a, n) in data["hosts"].items()}
    peers = mesh_peers(
        data["host"], hosts,
        extra=[parse_peer(p, data["as_number"]) for p in data.get("extra", [])],
        reflectors=data.get("reflectors", []), reflector=data.get("reflector", False),
    )  # fmt: skip
    return render(
        HostBgp(
            host=data["host"], router_id=data["address"], as_number=data["as_number"],
            peers=peers, address6=data["address6"], reflector=data.get("reflector", False),
            bfd=data.get("bfd", True), log_path=data.get("log", ""),
        )
    )  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    expected = GOLDEN / case / "bird.conf"
    text = render_case(json.loads((GOLDEN / case / "input.json").read_text()))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text)
    assert text == expected.read_text()


def test_full_mesh_peers_every_other_host_and_the_extra_peers() -> None:
    hosts = {"node1": ("192.168.8.3", 64512), "node2": ("192.168.8.4", 64512)}
    peers = mesh_peers("node1", hosts, extra=[Peer("192.168.8.1", 64512)])
    assert [(p.address, p.name) for p in peers] == [("192.168.8.4", "node2"), ("192.168.8.1", "")]


def test_a_host_registered_without_an_address_or_with_ours_is_not_a_peer() -> None:
    hosts = {"node1": ("192.168.8.3", 64512), "x": ("", 64512), "dup": ("192.168.8.3", 64512)}
    assert mesh_peers("node1", hosts) == ()


def test_reflector_clients_peer_only_with_reflectors_and_reflectors_mark_clients() -> None:
    hosts = {
        "node1": ("192.168.8.3", 64512), "node2": ("192.168.8.4", 64512),
        "rr1": ("192.168.8.10", 64512), "rr2": ("192.168.8.11", 64512),
    }  # fmt: skip
    reflectors = ["192.168.8.10", "192.168.8.11"]
    client = mesh_peers("node1", hosts, reflectors=reflectors)
    assert {p.address for p in client} == set(reflectors)
    assert not any(p.rr_client for p in client)
    rr = mesh_peers("rr1", hosts, reflectors=reflectors, reflector=True)
    assert {p.address: p.rr_client for p in rr} == {
        "192.168.8.3": True, "192.168.8.4": True, "192.168.8.11": False,
    }  # fmt: skip


def test_the_same_registry_in_another_order_renders_the_same_text() -> None:
    data = json.loads((GOLDEN / "mesh" / "input.json").read_text())
    flipped = {**data, "hosts": dict(reversed(list(data["hosts"].items())))}
    assert render_case(flipped) == render_case(data)


def test_peer_syntax() -> None:
    assert parse_peer("192.168.8.1", 64512) == Peer("192.168.8.1", 64512)
    assert parse_peer("192.168.8.1:65001", 64512) == Peer("192.168.8.1", 65001)
    assert parse_peer("fd00::1", 64512) == Peer("fd00::1", 64512)
    assert parse_peer("[fd00::1]:65001", 64512) == Peer("fd00::1", 65001)


def test_the_metrics_agree_with_the_dataplanes() -> None:
    """bgp and dataplane may not import each other: their shared numbers are checked here."""
    assert bird_render.ROUTE_PROTO == model.ROUTE_PROTO
    assert bird_render.PREFERRED_METRIC == model.PREFERRED_METRIC
    assert bird_render.BIRD_METRIC == model.BIRD_METRIC
    assert model.PREFERRED_METRIC < model.BIRD_METRIC < model.ROUTE_METRIC


@pytest.mark.parametrize("case", CASES)
def test_no_multipath_between_two_announcements_of_one_address(case: str) -> None:
    """An address is one VM's: two equal routes to it would split flows between VMs."""
    text = render_case(json.loads((GOLDEN / case / "input.json").read_text()))
    assert "merge paths" not in text


def test_moved_here_beats_moved_there_beats_ours_beats_theirs() -> None:
    data = json.loads((GOLDEN / "mesh" / "input.json").read_text())
    text = render_case(data)
    kernel_in = text.split("filter routeplane_from_kernel {")[1].split("}")[0]
    peers_in = text.split("filter routeplane_from_peers {")[1].split("}")[0]
    peers_out = text.split("filter routeplane_to_peers {")[1].split("}")[0]
    assert "if krt_metric = 16 then preference = 201; else preference = 101;" in kernel_in
    assert "krt_source != 77 then reject" in kernel_in
    assert "bgp_local_pref >= 200 then preference = 200" in peers_in
    assert "if krt_metric = 16 then bgp_local_pref = 200; else bgp_local_pref = 100;" in peers_out
    assert "metric 32;" in text.split("protocol kernel kernel4 {")[1]
