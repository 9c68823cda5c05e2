"""The atomic fixed-IP move (``routeplane-fixed-ip-move``) against a started api, over HTTP.

``PUT /v2.0/ports/{target}/move_fixed_ip`` moves one address in one store transaction:
the tests check that the claim, both ports and both endpoint records changed at the same
store revision, what the records tell the hosts (make-before-break hints), Neutron-format
refusals to the letter, and that concurrent moves never leave the address on two ports
or none at any revision of the store.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openstack.connection
import pytest

from routeplane.store import Event, EventType, Store
from tests.api.helpers import ROOT, assert_fault, post, stored

pytestmark = [
    pytest.mark.api,
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
]

Connect = Callable[..., openstack.connection.Connection]
ADDRESS = "10.40.0.23"


def addresses(port: dict[str, Any]) -> list[str]:
    return [ip["ip_address"] for ip in port["fixed_ips"]]


def move(http: httpx.Client, target: str, source: str, address: str) -> httpx.Response:
    body = {"fixed_ip": {"ip_address": address, "from_port_id": source}}
    return http.put(f"/ports/{target}/move_fixed_ip", json=body)


@pytest.fixture(scope="module")
def world(http: httpx.Client) -> dict[str, Any]:
    """Two VM ports on two hosts holding ``ADDRESS`` on the first; a port elsewhere."""
    net = post(http, "networks", "network", name="move-net")
    subnet = post(
        http, "subnets", "subnet", network_id=net["id"], ip_version=4, cidr="10.40.0.0/24"
    )
    vm1 = post(
        http, "ports", "port", network_id=net["id"], name="vm1", **{"binding:host_id": "compute1"}
    )
    vm2 = post(
        http, "ports", "port", network_id=net["id"], name="vm2", **{"binding:host_id": "compute2"}
    )
    fixed = [*vm1["fixed_ips"], {"subnet_id": subnet["id"], "ip_address": ADDRESS}]
    vm1 = http.put(f"/ports/{vm1['id']}", json={"port": {"fixed_ips": fixed}}).json()["port"]
    other = post(http, "networks", "network", name="move-other")
    post(http, "subnets", "subnet", network_id=other["id"], ip_version=4, cidr="10.41.0.0/24")
    elsewhere = post(http, "ports", "port", network_id=other["id"], name="elsewhere")
    return {"net": net, "subnet": subnet, "vm1": vm1, "vm2": vm2, "elsewhere": elsewhere}


def test_the_extension_is_listed(http: httpx.Client) -> None:
    shown = http.get("/extensions/routeplane-fixed-ip-move")
    assert shown.status_code == 200
    extension = shown.json()["extension"]
    assert extension["alias"] == "routeplane-fixed-ip-move"
    assert extension["name"] == "Atomic fixed IP move"
    assert "move_fixed_ip" in extension["description"]
    listed = http.get("/extensions").json()["extensions"]
    assert extension in listed


def test_a_move_changes_claim_ports_and_endpoints_in_one_transaction(
    http: httpx.Client, store: Store, world: dict[str, Any]
) -> None:
    vm1, vm2, subnet = world["vm1"], world["vm2"], world["subnet"]["id"]
    response = move(http, vm2["id"], vm1["id"], ADDRESS)
    assert response.status_code == 200, response.text
    moved = response.json()["port"]
    assert moved["id"] == vm2["id"]
    assert addresses(moved) == [*addresses(vm2), ADDRESS]
    assert moved["fixed_ips"][-1] == {"subnet_id": subnet, "ip_address": ADDRESS}
    assert moved["revision_number"] == vm2["revision_number"] + 1
    assert not any(k.startswith("_") for k in moved)  # bookkeeping stays private
    left = http.get(f"/ports/{vm1['id']}").json()["port"]
    assert ADDRESS not in addresses(left)
    assert left["revision_number"] == vm1["revision_number"] + 1

    claim_key = f"{ROOT}ipam/{subnet}/{ADDRESS}"
    keys = [
        claim_key,
        f"{ROOT}ports/{vm1['id']}",
        f"{ROOT}ports/{vm2['id']}",
        f"{ROOT}endpoints/compute1/{vm1['id']}",
        f"{ROOT}endpoints/compute2/{vm2['id']}",
    ]
    kvs = [store.get(k) for k in keys]
    assert all(kv is not None for kv in kvs)
    assert len({kv.mod_revision for kv in kvs if kv is not None}) == 1  # one transaction
    assert stored(store, f"ipam/{subnet}/{ADDRESS}") == {"port_id": vm2["id"]}

    new = stored(store, f"endpoints/compute2/{vm2['id']}")
    old = stored(store, f"endpoints/compute1/{vm1['id']}")
    assert new is not None
    assert old is not None
    assert ADDRESS in new["fixed_ips"]
    assert ADDRESS not in old["fixed_ips"]
    assert new["preferred"] == [ADDRESS]
    hint_in, hint_out = new["moved_in"][ADDRESS], old["moved_out"][ADDRESS]
    assert (hint_in["from_port_id"], hint_in["from_host"]) == (vm1["id"], "compute1")
    assert (hint_out["to_port_id"], hint_out["to_host"]) == (vm2["id"], "compute2")
    assert hint_in["generation"] == hint_out["generation"]
    assert old["preferred"] == []

    # and back: the hints swap sides and the generation grows
    back = move(http, vm1["id"], vm2["id"], ADDRESS)
    assert back.status_code == 200, back.text
    again_old = stored(store, f"endpoints/compute2/{vm2['id']}")
    again_new = stored(store, f"endpoints/compute1/{vm1['id']}")
    assert again_old is not None
    assert again_new is not None
    assert again_new["preferred"] == [ADDRESS]
    assert again_old["preferred"] == []
    assert again_new["moved_in"][ADDRESS]["generation"] > hint_in["generation"]
    assert again_old["moved_out"][ADDRESS]["to_port_id"] == vm1["id"]
    assert ADDRESS not in again_new["moved_out"]
    assert stored(store, f"ipam/{subnet}/{ADDRESS}") == {"port_id": vm1["id"]}


def test_refusals_in_neutrons_format(http: httpx.Client, world: dict[str, Any]) -> None:
    vm1, vm2, elsewhere = world["vm1"]["id"], world["vm2"]["id"], world["elsewhere"]["id"]
    ghost = str(uuid.uuid4())
    holder = next(
        p for p in (vm1, vm2) if ADDRESS in addresses(http.get(f"/ports/{p}").json()["port"])
    )
    other = vm2 if holder == vm1 else vm1

    assert_fault(
        move(http, ghost, holder, ADDRESS), 404, "PortNotFound", f"Port {ghost} could not be found."
    )
    assert_fault(
        move(http, other, ghost, ADDRESS), 404, "PortNotFound", f"Port {ghost} could not be found."
    )
    assert_fault(
        move(http, holder, other, ADDRESS),
        400,
        "BadRequest",
        f"Bad port request: Port {other} does not have fixed ip {ADDRESS}.",
    )
    assert_fault(
        move(http, holder, holder, ADDRESS),
        400,
        "InvalidInput",
        f"Invalid input for operation: Cannot move IP address {ADDRESS} from port {holder} "
        "to itself.",
    )
    net, other_net = world["net"]["id"], world["elsewhere"]["network_id"]
    assert_fault(
        move(http, elsewhere, holder, ADDRESS),
        400,
        "InvalidInput",
        f"Invalid input for operation: Port {holder} is on network {net}, but port "
        f"{elsewhere} is on network {other_net}.",
    )
    url = f"/ports/{other}/move_fixed_ip"
    assert_fault(
        http.put(url, json={"port": {}}),
        400,
        "HTTPBadRequest",
        "Unable to find 'fixed_ip' in request body",
    )
    assert_fault(
        http.put(url, json={"fixed_ip": {"ip_address": ADDRESS}}),
        400,
        "HTTPBadRequest",
        "Failed to parse request. Required attribute 'from_port_id' not specified",
    )
    assert_fault(
        http.put(url, json={"fixed_ip": {"ip_address": "10.40.0.300", "from_port_id": holder}}),
        400,
        "HTTPBadRequest",
        "Invalid input for ip_address. Reason: '10.40.0.300' is not a valid IP address.",
    )
    assert_fault(
        http.put(url, json={"fixed_ip": {"ip_address": ADDRESS, "from_port_id": holder, "x": 1}}),
        400,
        "HTTPBadRequest",
        "Unrecognized attribute(s) 'x'",
    )
    # nothing moved
    shown = http.get(f"/ports/{holder}").json()["port"]
    assert ADDRESS in addresses(shown)


def test_an_address_with_a_floating_ip_stays_and_router_ports_keep_theirs(
    http: httpx.Client, world: dict[str, Any]
) -> None:
    net, subnet = world["net"], world["subnet"]
    public = post(http, "networks", "network", name="move-public", **{"router:external": True})
    post(http, "subnets", "subnet", network_id=public["id"], ip_version=4, cidr="172.30.0.0/24")
    router = post(
        http, "routers", "router", name="move-r", external_gateway_info={"network_id": public["id"]}
    )
    added = http.put(
        f"/routers/{router['id']}/add_router_interface", json={"subnet_id": subnet["id"]}
    )
    assert added.status_code == 200, added.text
    a = post(http, "ports", "port", network_id=net["id"], name="fip-a")
    b = post(http, "ports", "port", network_id=net["id"], name="fip-b")
    fixed = a["fixed_ips"][0]["ip_address"]
    fip = post(http, "floatingips", "floatingip", floating_network_id=public["id"], port_id=a["id"])
    assert fip["fixed_ip_address"] == fixed
    assert_fault(
        move(http, b["id"], a["id"], fixed),
        400,
        "BadRequest",
        f"Bad port request: Cannot update the fixed_ips of the port {a['id']}, because its "
        "original fixed_ip has been associated to a floating ip.",
    )
    interface = added.json()["port_id"]
    assert_fault(
        move(http, b["id"], interface, "10.40.0.1"),
        400,
        "BadRequest",
        f"Bad port request: Cannot move IP address 10.40.0.1: port {interface} is owned by "
        "network:router_interface.",
    )
    http.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}})
    assert move(http, b["id"], a["id"], fixed).status_code == 200


def test_other_projects_and_readers(
    http: httpx.Client, as_user: Callable[[str, str], httpx.Client]
) -> None:
    demo, alt, viewer = as_user("demo", "demo"), as_user("alt", "alt"), as_user("viewer", "demo")
    net = post(demo, "networks", "network", name="demo-move")
    post(demo, "subnets", "subnet", network_id=net["id"], ip_version=4, cidr="10.42.0.0/24")
    d1 = post(demo, "ports", "port", network_id=net["id"], name="d1")
    d2 = post(demo, "ports", "port", network_id=net["id"], name="d2")
    address = d1["fixed_ips"][0]["ip_address"]
    alt_net = post(alt, "networks", "network", name="alt-move")
    post(alt, "subnets", "subnet", network_id=alt_net["id"], ip_version=4, cidr="10.43.0.0/24")
    a1 = post(alt, "ports", "port", network_id=alt_net["id"], name="a1")

    assert_fault(
        move(alt, d2["id"], d1["id"], address),
        404,
        "HTTPNotFound",
        "The resource could not be found.",
    )
    assert_fault(
        move(alt, a1["id"], d1["id"], address),
        404,
        "PortNotFound",
        f"Port {d1['id']} could not be found.",
    )
    assert_fault(
        move(viewer, d2["id"], d1["id"], address),
        403,
        "PolicyNotAuthorized",
        "rule:update_port is disallowed by policy",
    )
    assert address in addresses(demo.get(f"/ports/{d1['id']}").json()["port"])
    done = move(demo, d2["id"], d1["id"], address)
    assert done.status_code == 200, done.text
    assert address in addresses(done.json()["port"])


def _holders(ports: dict[str, dict[str, Any]], address: str) -> list[str]:
    return [
        port_id
        for port_id, doc in ports.items()
        if any(ip["ip_address"] == address for ip in doc.get("fixed_ips", []))
    ]


def test_concurrent_moves_leave_the_address_on_exactly_one_port_at_every_revision(
    http: httpx.Client, store: Store, world: dict[str, Any]
) -> None:
    """Ten clients keep pulling one address onto their own port at the same time. Every
    answer is a move or Neutron's refusal, and replaying the store's history shows the
    address on exactly one port after every single transaction."""
    net, subnet = world["net"]["id"], world["subnet"]["id"]
    address = "10.40.0.77"
    ports = [
        post(
            http,
            "ports",
            "port",
            network_id=net,
            name=f"race{i}",
            fixed_ips=[{"subnet_id": subnet, "ip_address": address}] if i == 0 else [],
            **{"binding:host_id": f"race-host{i}"},
        )
        for i in range(10)
    ]
    port_prefix = f"{ROOT}ports/"
    snapshot = store.range(port_prefix)
    history = store.watch(ROOT, snapshot.revision + 1)
    barrier = threading.Barrier(len(ports))

    def pull(index: int) -> list[httpx.Response]:
        mine = ports[index]["id"]
        answers: list[httpx.Response] = []
        with httpx.Client(base_url=str(http.base_url), headers=http.headers, timeout=30) as own:
            barrier.wait(timeout=30)
            for _ in range(3):
                found = own.get(
                    "/ports", params={"fixed_ips": f"ip_address={address}", "fields": "id"}
                ).json()["ports"]
                if [p["id"] for p in found] == [mine]:
                    continue
                assert len(found) == 1, found
                answers.append(move(own, mine, found[0]["id"], address))
        return answers

    with ThreadPoolExecutor(len(ports)) as pool:
        answers = list(itertools.chain.from_iterable(pool.map(pull, range(len(ports)))))

    moved = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert moved, "no move succeeded"
    for answer in refused:  # the holder changed between the look-up and the move
        assert answer.status_code == 400, answer.text
        error = answer.json()["NeutronError"]
        assert error["type"] == "BadRequest"
        assert error["message"].endswith(f"does not have fixed ip {address}.")

    final = store.revision()
    events: list[Event] = []
    while not events or events[-1].revision < final:
        batch = history.next_batch(timeout=5)
        assert batch, "the store's history ended early"
        events.extend(batch)
    history.close()
    docs = {kv.key[len(port_prefix) :]: kv.value for kv in snapshot.items}
    race_ids = {p["id"] for p in ports}
    state = {k: v for k, v in docs.items() if k in race_ids and isinstance(v, dict)}
    assert _holders(state, address) == [ports[0]["id"]]
    revisions_checked = 0
    for revision, group in itertools.groupby(events, key=lambda e: e.revision):
        for event in group:
            port_id = event.key[len(port_prefix) :]
            if event.key.startswith(port_prefix) and port_id in race_ids:
                assert event.type is EventType.PUT
                assert isinstance(event.value, dict)
                state[port_id] = event.value
        assert len(_holders(state, address)) == 1, f"revision {revision}"
        revisions_checked += 1
    assert revisions_checked >= len(moved)

    [holder] = _holders(state, address)
    assert stored(store, f"ipam/{subnet}/{address}") == {"port_id": holder}
    with_address = [
        p["id"]
        for i, p in enumerate(ports)
        if address in (stored(store, f"endpoints/race-host{i}/{p['id']}") or {})["fixed_ips"]
    ]
    assert with_address == [holder]
