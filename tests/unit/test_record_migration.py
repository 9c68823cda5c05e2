"""Unit: endpoint records written by an older routeplane are rewritten from their ports
(``routeplane.services.core.record_migration``, run by the api at start and by
``routeplane store migrate``), on a real embedded store with ports made by the services.

Records are put back in the shapes older versions wrote: the first wave's (no version,
no addressing), version 2 (a version, no addressing: no DHCP answer) and version 3
(addressing without IPv6 modes: IPv6 looks static). After a migration each is exactly
what the api writes for its port today; a second run finds nothing; records of ports
that are gone are left; more ports than one transaction holds all get rewritten."""

from __future__ import annotations

from typing import Any

import pytest

from routeplane.cli.main import main
from routeplane.model.endpoint import RECORD_VERSION, decode
from routeplane.model.keys import endpoint_key
from routeplane.services.attributes import check_create
from routeplane.services.context import ADMIN
from routeplane.services.core.endpoint_refresh import PORTS_PER_TXN
from routeplane.services.core.record_migration import migrate, older_ports
from routeplane.services.registry import Services
from routeplane.services.repo import Repo
from routeplane.services.resource import ResourceService
from routeplane.store.sqlite import SqliteStore
from tests.unit.test_endpoint_record import FIRST_WAVE

pytestmark = pytest.mark.unit


def create(service: ResourceService, body: dict[str, Any]) -> dict[str, Any]:
    return service.create(ADMIN, check_create(service.attrs, body, is_admin=True))


def cloud(store: SqliteStore, ports: int) -> list[str]:
    """A dual-stack network (IPv6 SLAAC) and ``ports`` ports bound to node1."""
    services = Services(store)
    net = create(services.networks, {"name": "net"})
    v4 = {"network_id": net["id"], "ip_version": 4, "cidr": "10.28.0.0/16"}
    create(services.subnets, {**v4, "dns_nameservers": ["10.28.0.2"]})
    v6 = {"network_id": net["id"], "ip_version": 6, "cidr": "fd5f:5d21:845:1c2e::/64"}
    create(services.subnets, {**v6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"})
    bound = {"network_id": net["id"], "binding:host_id": "node1"}
    return [create(services.ports, {**bound, "name": f"vm{i}"})["id"] for i in range(ports)]


def record(store: SqliteStore, port_id: str) -> dict[str, Any]:
    kv = store.get(endpoint_key("node1", port_id))
    assert kv is not None
    assert isinstance(kv.value, dict)
    return kv.value


def older_shape(current: dict[str, Any], version: int) -> dict[str, Any]:
    """``current`` as routeplane of ``version`` wrote it."""
    if version == 3:
        addressing = [
            {k: v for k, v in a.items() if not k.startswith("ipv6_")} for a in current["addressing"]
        ]
        return {**current, "version": 3, "addressing": addressing}
    old = {k: v for k, v in current.items() if k in FIRST_WAVE}  # the first wave's fields
    return old if version == 1 else {**old, "version": 2}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_record_is_rewritten_to_what_the_api_writes_today(
    store: SqliteStore, version: int
) -> None:
    (port_id,) = cloud(store, 1)
    current = record(store, port_id)
    store.put(endpoint_key("node1", port_id), older_shape(current, version))
    assert decode(record(store, port_id)) != current  # what the agent would make of it

    done = migrate(Repo(store))

    assert (done.older, done.rewritten) == (1, 1)
    assert record(store, port_id) == current
    assert record(store, port_id)["version"] == RECORD_VERSION
    assert record(store, port_id)["addressing"][1]["ipv6_address_mode"] == "slaac"
    assert migrate(Repo(store)) == type(done)(older=0, rewritten=0)  # idempotent


def test_current_records_and_records_of_gone_ports_are_left(store: SqliteStore) -> None:
    port_ids = cloud(store, 2)
    orphan = {**FIRST_WAVE, "port_id": "gone"}
    store.put(endpoint_key("node1", "gone"), orphan)
    before = store.revision()

    done = migrate(Repo(store))

    assert (done.older, done.rewritten) == (1, 0)
    assert store.revision() == before  # nothing written
    assert record(store, "gone") == orphan
    assert all(record(store, p)["version"] == RECORD_VERSION for p in port_ids)


def test_more_ports_than_one_transaction_holds_are_all_rewritten(store: SqliteStore) -> None:
    port_ids = cloud(store, PORTS_PER_TXN + 3)
    current = {p: record(store, p) for p in port_ids}
    for p in port_ids:
        store.put(endpoint_key("node1", p), older_shape(current[p], 2))
    assert len(older_ports(Repo(store))) == len(port_ids)

    done = migrate(Repo(store))

    assert (done.older, done.rewritten) == (len(port_ids), len(port_ids))
    assert {p: record(store, p) for p in port_ids} == current


def test_store_migrate_reports_what_it_rewrote(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    (port_id,) = cloud(store, 1)
    current = record(store, port_id)
    store.put(endpoint_key("node1", port_id), older_shape(current, 2))
    url = f"sqlite://{store.path}"

    assert main(["--store", url, "store", "migrate"]) == 0
    assert main(["--store", url, "store", "migrate"]) == 0

    out = [line for line in capsys.readouterr().out.splitlines() if "endpoint record" in line]
    assert out == [
        f"1 endpoint record(s) older than version {RECORD_VERSION}: 1 rewritten",
        f"0 endpoint record(s) older than version {RECORD_VERSION}: 0 rewritten",
    ]
    assert record(store, port_id) == current
