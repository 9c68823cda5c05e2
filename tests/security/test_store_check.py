"""Red team, after the fact: data an attacker could write before the rules held.

A store written by an earlier routeplane may hold B's subnet overlapping A's, one address
claimed in both, and B's port routing A's VM address through an address pair.
``routeplane store check`` names each of these and exits 1; a sound store gives 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from routeplane.cli.main import main
from routeplane.model.jsontypes import JSONValue
from routeplane.store import open_store

pytestmark = [pytest.mark.unit]

ROOT = "/routeplane/v1/"


def endpoint(port: str, project: str, fixed: list[str], pairs: list[str]) -> JSONValue:
    return {
        "port_id": port,
        "project_id": project,
        "fixed_ips": list[JSONValue](fixed),
        "allowed_addresses": list[JSONValue](pairs),
        "floating_ips": [],
    }


def test_what_an_earlier_version_let_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite://{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        store.put(ROOT + "subnets/sa", {"id": "sa", "cidr": "10.91.0.0/24", "network_id": "na"})
        store.put(ROOT + "subnets/sb", {"id": "sb", "cidr": "10.91.0.0/16", "network_id": "nb"})
        store.put(ROOT + "subnets/sc", {"id": "sc", "cidr": "10.92.0.0/24", "network_id": "nb"})
        store.put(ROOT + "ipam/sa/10.91.0.5", {"port_id": "pa"})
        store.put(ROOT + "ipam/sb/10.91.0.5", {"port_id": "pb"})
        store.put(ROOT + "endpoints/h1/pa", endpoint("pa", "A", ["10.91.0.5"], []))
        store.put(
            ROOT + "endpoints/h2/pb", endpoint("pb", "B", ["10.92.0.7"], ["10.91.0.5", "0.0.0.0/0"])
        )
        store.put(
            ROOT + "endpoints/h2/pv", endpoint("pv", "B", ["10.92.0.8"], ["10.92.0.7"])
        )  # a VIP
    finally:
        store.close()
    assert main(["--store", url, "store", "check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "overlapping subnets: 10.91.0.0/16 (sb) and 10.91.0.0/24 (sa)",
        "address 10.91.0.5 claimed twice: in subnets sa, sb",
        "address 10.91.0.5 routed to ports of two projects: pa (project A), pb (project B)",
        "3 problem(s) found",
    ]


def test_a_sound_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite://{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        store.put(ROOT + "subnets/sa", {"id": "sa", "cidr": "10.91.0.0/24", "network_id": "na"})
        store.put(ROOT + "subnets/sb", {"id": "sb", "cidr": "10.91.1.0/24", "network_id": "nb"})
    finally:
        store.close()
    assert main(["--store", url, "store", "check"]) == 0
    assert capsys.readouterr().out.splitlines() == ["no problems found"]
