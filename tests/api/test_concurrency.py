"""IPAM under concurrency: an address is on exactly one port, whatever the race.

Twenty clients put the same address on twenty different ports at the same moment:
exactly one succeeds and the rest get Neutron's 409. Run against one api process on the
embedded store, and against two api processes sharing one etcd (requests alternate
between them), which is the multi-host deployment.

Quotas the same way: twenty clients create a router where the project's quota has room
for one more; exactly one gets it, the others Neutron's ``OverQuota``. (Routers: a
network or port create also writes the project's default security group, which would
serialise the race by itself.)
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from routeplane.testing.api import ApiServer
from routeplane.testing.etcd import EtcdServer

pytestmark = [pytest.mark.api, pytest.mark.slow]

CLIENTS = 20
ROUNDS = 3


def _client(server: ApiServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"X-Auth-Token": server.admin_token}, timeout=30
    )


def _setup(server: ApiServer) -> tuple[str, list[dict[str, Any]]]:
    with _client(server) as http:
        net = http.post(
            "/v2.0/networks", json={"network": {"name": f"race-{uuid.uuid4().hex[:6]}"}}
        ).json()
        subnet = http.post(
            "/v2.0/subnets",
            json={
                "subnet": {
                    "network_id": net["network"]["id"],
                    "ip_version": 4,
                    "cidr": "10.50.0.0/16",
                }
            },
        ).json()["subnet"]
        ports = [
            http.post(
                "/v2.0/ports", json={"port": {"network_id": net["network"]["id"], "name": f"p{i}"}}
            ).json()["port"]
            for i in range(CLIENTS)
        ]
    return subnet["id"], ports


def _race(
    servers: list[ApiServer], subnet_id: str, ports: list[dict[str, Any]], address: str
) -> list[httpx.Response]:
    barrier = threading.Barrier(len(ports))

    def claim(index: int) -> httpx.Response:
        port = ports[index]
        wanted = [*port["fixed_ips"], {"subnet_id": subnet_id, "ip_address": address}]
        with _client(servers[index % len(servers)]) as http:
            barrier.wait(timeout=30)
            return http.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": wanted}})

    with ThreadPoolExecutor(len(ports)) as pool:
        return list(pool.map(claim, range(len(ports))))


def _check(
    servers: list[ApiServer], subnet_id: str, address: str, responses: list[httpx.Response]
) -> None:
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (CLIENTS - 1), codes
    for response in responses:
        if response.status_code == 409:
            error = response.json()["NeutronError"]
            assert error["type"] == "IpAddressAlreadyAllocated"
            assert (
                error["message"] == f"IP address {address} already allocated in subnet {subnet_id}"
            )
    for server in servers:  # every api process agrees: one holder
        with _client(server) as http:
            holders = http.get("/v2.0/ports", params={"fixed_ips": f"ip_address={address}"}).json()[
                "ports"
            ]
        assert len(holders) == 1


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[list[ApiServer]]:
    with ApiServer(f"sqlite://{tmp_path / 'store.db'}", workdir=tmp_path) as server:
        yield [server]


@pytest.fixture
def etcd_apis(tmp_path: Path, etcd_server: EtcdServer) -> Iterator[list[ApiServer]]:
    with (
        ApiServer(etcd_server.url, workdir=tmp_path) as one,
        ApiServer(etcd_server.url, workdir=tmp_path) as two,
    ):
        yield [one, two]


@pytest.mark.parametrize("deployment", ["sqlite_api", "etcd_apis"])
def test_twenty_clients_race_for_one_address(
    deployment: str, request: pytest.FixtureRequest
) -> None:
    servers: list[ApiServer] = request.getfixturevalue(deployment)
    subnet_id, ports = _setup(servers[0])
    for round_ in range(ROUNDS):
        address = f"10.50.9.{10 + round_}"
        _check(servers, subnet_id, address, _race(servers, subnet_id, ports, address))


@pytest.mark.parametrize("deployment", ["sqlite_api", "etcd_apis"])
def test_twenty_clients_race_for_the_last_unit_of_quota(
    deployment: str, request: pytest.FixtureRequest
) -> None:
    servers: list[ApiServer] = request.getfixturevalue(deployment)
    project = f"racer-{uuid.uuid4().hex[:6]}"
    with _client(servers[0]) as http:
        first = http.post("/v2.0/routers", json={"router": {"project_id": project}})
        assert first.status_code == 201, first.text
        limit = http.put(f"/v2.0/quotas/{project}", json={"quota": {"router": 2}})
        assert limit.status_code == 200, limit.text
    barrier = threading.Barrier(CLIENTS)

    def create(index: int) -> httpx.Response:
        with _client(servers[index % len(servers)]) as http:
            barrier.wait(timeout=30)
            return http.post("/v2.0/routers", json={"router": {"project_id": project}})

    with ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(create, range(CLIENTS)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * (CLIENTS - 1)
    for response in responses:
        if response.status_code == 409:
            assert response.json()["NeutronError"] == {
                "type": "OverQuota",
                "message": "Quota exceeded for resources: ['router'].",
                "detail": "",
            }
    for server in servers:
        with _client(server) as http:
            owned = http.get("/v2.0/routers", params={"project_id": project}).json()
            assert len(owned["routers"]) == 2
