"""A port's MAC: a generated one that collides is drawn again; one the user asked for
that is taken is Neutron's 409 MacAddressInUse. The MAC source is injected, so a
collision happens on demand (three random octets collide among 1,200 ports about once
in 25 runs: bench/api.py saw it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.services.attributes import check_create
from routeplane.services.context import ADMIN
from routeplane.services.errors import ApiFault
from routeplane.services.registry import Services
from routeplane.store.sqlite import SqliteStore

FIRST, SECOND = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"


class Draws:
    """A MAC source that answers from a script, then one fresh MAC per call."""

    def __init__(self, *macs: str) -> None:
        self.script = list(macs)
        self.drawn = 0

    def __call__(self) -> str:
        self.drawn += 1
        return self.script.pop(0) if self.script else f"fa:16:3e:ff:00:{self.drawn:02x}"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Services, Draws, str]]:
    draws = Draws(FIRST, FIRST, FIRST, SECOND)
    store = SqliteStore(tmp_path / "store.db")
    services = Services(store, mac_source=draws)
    net = create(services, "networks", {"name": "macs"})
    yield services, draws, net["id"]
    store.close()


def create(services: Services, path: str, body: dict[str, Any]) -> dict[str, Any]:
    service = services.by_path[path]
    return service.create(ADMIN, check_create(service.attrs, body, is_admin=True))


def test_a_generated_mac_that_collides_is_drawn_again(cloud: tuple[Services, Draws, str]) -> None:
    services, draws, net = cloud
    first = create(services, "ports", {"network_id": net})
    second = create(services, "ports", {"network_id": net})  # drew FIRST twice, then SECOND
    assert (first["mac_address"], second["mac_address"]) == (FIRST, SECOND)
    assert draws.drawn == 4


def test_a_mac_asked_for_that_is_taken_is_refused(cloud: tuple[Services, Draws, str]) -> None:
    services, _draws, net = cloud
    create(services, "ports", {"network_id": net})
    with pytest.raises(ApiFault) as refused:
        create(services, "ports", {"network_id": net, "mac_address": FIRST.upper()})
    assert (refused.value.type_name, refused.value.code, refused.value.message) == (
        "MacAddressInUse",
        409,
        f"Unable to complete operation for network {net}. The mac address {FIRST} is in use.",
    )
    assert len(services.ports.list_visible(ADMIN)) == 1


def test_a_fresh_mac_on_update_is_drawn_again_too(cloud: tuple[Services, Draws, str]) -> None:
    services, _draws, net = cloud
    first = create(services, "ports", {"network_id": net})  # FIRST
    other = create(services, "ports", {"network_id": net, "mac_address": "fa:16:3e:aa:aa:aa"})
    changed = services.ports.update(ADMIN, other["id"], {"mac_address": None}, None)
    assert changed["mac_address"] == SECOND  # FIRST drawn twice, taken by the first port
    assert first["mac_address"] == FIRST
