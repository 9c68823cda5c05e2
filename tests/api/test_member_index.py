"""The security-group member index the api keeps beside endpoint records (issue 17, item 2).

Agents learn another host's ports in a group they name from ``sgmembers/<group>/<port>``
(``model/members.py``), not from every host's endpoint records. So the index must follow
every port change that alters membership — binding, addresses, groups, unbinding,
deletion — in the same transaction as the record, and be left alone by a change it does
not describe (a name, a move between hosts), which would otherwise wake every host whose
policy names the group. ``routeplane store migrate`` builds it for ports an older api
wrote, and running it twice changes nothing.
"""

from __future__ import annotations

import httpx
import pytest

from routeplane.cli.main import main
from routeplane.store import Delete, Store
from routeplane.testing.api import ApiServer
from tests.api.helpers import post

pytestmark = pytest.mark.api
ROOT = "/routeplane/v1/"


@pytest.fixture(scope="module")
def net(admin_v2: httpx.Client) -> str:
    net = post(admin_v2, "networks", "network", name="index-net")
    post(admin_v2, "subnets", "subnet", network_id=net["id"], ip_version=4, cidr="10.91.0.0/24")
    return str(net["id"])


def _groups(admin_v2: httpx.Client, *names: str) -> list[str]:
    return [str(post(admin_v2, "security-groups", "security_group", name=n)["id"]) for n in names]


def _index(store: Store, port_id: str) -> dict[str, object]:
    """The port's entries: group -> stored value."""
    found = store.range(f"{ROOT}sgmembers/").items
    return {kv.key.split("/")[-2]: kv.value for kv in found if kv.key.endswith("/" + port_id)}


def _revisions(store: Store, port_id: str) -> dict[str, int]:
    found = store.range(f"{ROOT}sgmembers/").items
    return {kv.key: kv.mod_revision for kv in found if kv.key.endswith("/" + port_id)}


def test_the_index_follows_a_ports_membership(
    admin_v2: httpx.Client, net: str, store: Store
) -> None:
    web, db = _groups(admin_v2, "index-web", "index-db")
    port = post(
        admin_v2, "ports", "port", network_id=net, security_groups=[web],
        fixed_ips=[{"ip_address": "10.91.0.10"}], **{"binding:host_id": "h1"},
    )  # fmt: skip
    port_id = str(port["id"])
    assert _index(store, port_id) == {web: {"addresses": ["10.91.0.10"]}}

    def update(**fields: object) -> None:
        response = admin_v2.put(f"/ports/{port_id}", json={"port": fields})
        assert response.status_code == 200, response.text

    update(
        fixed_ips=[{"ip_address": "10.91.0.11"}],
        allowed_address_pairs=[{"ip_address": "10.91.0.128/28"}],
        security_groups=[web, db],
    )
    entry = {"addresses": ["10.91.0.11", "10.91.0.128/28"]}
    assert _index(store, port_id) == {web: entry, db: entry}
    before = _revisions(store, port_id)
    update(name="renamed")
    update(**{"binding:host_id": "h2"})  # a move: the members' addresses are the same
    assert _revisions(store, port_id) == before
    assert store.get(f"{ROOT}endpoints/h2/{port_id}") is not None
    update(security_groups=[db])
    assert _index(store, port_id) == {db: entry}
    update(**{"binding:host_id": None})  # unbound: no record, no member
    assert _index(store, port_id) == {}
    update(**{"binding:host_id": "h1"})
    assert _index(store, port_id) == {db: entry}
    assert admin_v2.delete(f"/ports/{port_id}").status_code == 204
    assert _index(store, port_id) == {}


def test_migrate_builds_the_index_an_older_api_did_not_write(
    admin_v2: httpx.Client, net: str, store: Store, api: ApiServer,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    (group,) = _groups(admin_v2, "index-old")
    ports = [
        post(admin_v2, "ports", "port", network_id=net, security_groups=[group],
             **{"binding:host_id": f"h{i}"})
        for i in range(3)
    ]  # fmt: skip
    built = store.range(f"{ROOT}sgmembers/").items
    # as an api older than the index leaves the store, plus one entry of no port
    store.txn((), [Delete(f"{ROOT}sgmembers/", prefix=True)])
    store.put(f"{ROOT}sgmembers/{group}/gone", {"addresses": ["10.91.0.250"]})
    assert main(["--store", api.store_url, "store", "migrate"]) == 0
    rebuilt = store.range(f"{ROOT}sgmembers/").items
    assert {(kv.key, str(kv.value)) for kv in rebuilt} == {(kv.key, str(kv.value)) for kv in built}
    assert all(_index(store, str(p["id"])) for p in ports)
    revision = store.revision()
    assert main(["--store", api.store_url, "store", "migrate"]) == 0
    assert store.revision() == revision  # nothing left to do
    out = capsys.readouterr().out
    assert f"{len(built)} entr(y/ies) written, 1 stale deleted" in out
    assert "0 entr(y/ies) written, 0 stale deleted" in out
