"""Keystone's tokens (issue 14, item 1): an api configured with ``[keystone_authtoken]``
validates tokens through keystonemiddleware against a real Keystone started on loopback
(``routeplane.testing.keystone``: PyPI's keystone, sqlite, ``keystone-manage
bootstrap``), with the network endpoint in Keystone's catalog as a cloud has it. The
real ``openstack`` CLI and openstacksdk work with Keystone's tokens; two projects are
isolated; a reader is refused a write; an expired (even once cached), revoked or
foreign token is 401 and an unreachable Keystone 503, both in Neutron's body, and the api
recovers by itself when Keystone is back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openstack
import openstack.connection
import pytest

from routeplane.testing.api import ApiServer
from routeplane.testing.keystone import ADMIN_PASSWORD, KeystoneServer
from tests.api.conftest import Cli
from tests.api.helpers import assert_fault

pytestmark = [
    pytest.mark.api,
    pytest.mark.timeout(900),  # the first run on a machine installs Keystone
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
]
PASSWORD = "pw-secret"
# user -> (project, role)
USERS = {"ana": ("kp1", "member"), "bo": ("kp2", "member"), "rea": ("kp1", "reader")}
UNAUTHORIZED = ("HTTPUnauthorized", "Authentication required")
# seconds a short-lived token lives: long enough to be used once under load, short to wait out
BRIEF_TTL = 8
# the api's Keystone settings (keystonemiddleware's options; user routeplane is a service)
TABLE = """
[keystone_authtoken]
www_authenticate_uri = "{url}"
auth_url = "{url}"
auth_type = "password"
username = "routeplane"
password = "{password}"
project_name = "service"
user_domain_name = "Default"
project_domain_name = "Default"
"""


def connect(auth_url: str, user: str, project: str, password: str = PASSWORD) -> Any:
    return openstack.connect(
        auth_type="password",
        auth={
            "auth_url": auth_url,
            "username": user,
            "password": password,
            "project_name": project,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        region_name="RegionOne",
    )


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneServer]:
    with KeystoneServer(tmp_path_factory.mktemp("keystone")) as server:
        yield server


@pytest.fixture(scope="module")
def cloud(keystone: KeystoneServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The api behind Keystone: its service user, the users above, the catalog entry."""
    workdir = tmp_path_factory.mktemp("ks-api")
    table = TABLE.format(url=keystone.url, password=PASSWORD)
    api = ApiServer(f"sqlite://{workdir / 'store.db'}", workdir=workdir, extra_config=table)
    admin = connect(keystone.url, "admin", "admin", ADMIN_PASSWORD)
    ident = admin.identity
    roles = {r.name: r for r in ident.roles()}
    if "service" not in roles:
        roles["service"] = ident.create_role(name="service")

    def user_in(name: str, project_name: str, role: str) -> None:
        project = ident.find_project(project_name) or ident.create_project(
            name=project_name, domain_id="default"
        )
        user = ident.create_user(name=name, password=PASSWORD, domain_id="default")
        ident.assign_project_role_to_user(project, user, roles[role])

    user_in("routeplane", "service", "service")
    for name, (project, role) in USERS.items():
        user_in(name, project, role)
    service = ident.create_service(name="neutron", type="network")
    ident.create_endpoint(
        service_id=service.id, interface="public", url=api.url, region_id="RegionOne"
    )
    with api:
        yield api.url


def cli(keystone: KeystoneServer, user: str) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(
        OS_AUTH_URL=keystone.url,
        OS_USERNAME=user,
        OS_PASSWORD=PASSWORD,
        OS_PROJECT_NAME=USERS[user][0],
        OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
        OS_IDENTITY_API_VERSION="3",
        OS_REGION_NAME="RegionOne",
    )
    return Cli(env)


def token(keystone: KeystoneServer, user: str) -> str:
    value: str = connect(keystone.url, user, USERS[user][0]).auth_token
    return value


def test_the_cli_and_the_sdk_work_with_keystones_tokens(
    keystone: KeystoneServer, cloud: str
) -> None:
    created = cli(keystone, "ana").json("network", "create", "ks-net")
    ana = connect(keystone.url, "ana", "kp1")
    assert created["project_id"] == ana.current_project_id
    assert "ks-net" in [n.name for n in ana.network.networks()]
    # another project sees none of it
    assert "ks-net" not in [n["Name"] for n in cli(keystone, "bo").json("network", "list")]
    assert "ks-net" not in [n.name for n in connect(keystone.url, "bo", "kp2").network.networks()]


def test_a_reader_reads_and_cannot_write(keystone: KeystoneServer, cloud: str) -> None:
    with httpx.Client(base_url=f"{cloud}/v2.0", timeout=30) as http:
        headers = {"X-Auth-Token": token(keystone, "rea")}
        assert http.get("/networks", headers=headers).status_code == 200
        assert_fault(
            http.post("/networks", json={"network": {"name": "no"}}, headers=headers),
            403,
            "PolicyNotAuthorized",
            "rule:create_network is disallowed by policy",
        )


def test_revoked_and_foreign_tokens_are_401(keystone: KeystoneServer, cloud: str) -> None:
    with httpx.Client(base_url=f"{cloud}/v2.0", timeout=30) as http:
        revoked = token(keystone, "ana")
        admin = token_of_admin(keystone)
        gone = httpx.delete(
            f"{keystone.url}/auth/tokens",
            headers={"X-Auth-Token": admin, "X-Subject-Token": revoked},
        )
        assert gone.status_code == 204, gone.text
        for bad in (revoked, "gAAAAABnot-a-token", "s3cret"):
            assert_fault(http.get("/networks", headers={"X-Auth-Token": bad}), 401, *UNAUTHORIZED)
        assert_fault(http.get("/networks"), 401, *UNAUTHORIZED)


def test_an_expired_token_is_401_even_from_the_cache(
    keystone: KeystoneServer, cloud: str, tmp_path: Path
) -> None:
    """keystonemiddleware caches a token it has validated (5 minutes by default): once the
    token expires, its cached copy must be refused too. Keystone is stopped while the
    expired token is shown, so the 401 (rather than a 503) is the cache's own refusal."""
    # a second front on the same Keystone whose tokens live BRIEF_TTL seconds
    with KeystoneServer(tmp_path, token_ttl=BRIEF_TTL, state=keystone.work) as brief:
        ana = connect(brief.url, "ana", "kp1")
        access = ana.session.auth.get_access(ana.session)
    lifetime = (access.expires - datetime.now(UTC)).total_seconds()
    assert 0 < lifetime <= BRIEF_TTL
    headers = {"X-Auth-Token": access.auth_token}
    with httpx.Client(base_url=f"{cloud}/v2.0", timeout=60) as http:
        assert http.get("/networks", headers=headers).status_code == 200  # now cached
        assert datetime.now(UTC) < access.expires, "the token expired before its first use"
        time.sleep((access.expires - datetime.now(UTC)).total_seconds() + 1)  # <= BRIEF_TTL + 1
        keystone.stop()
        try:
            assert_fault(http.get("/networks", headers=headers), 401, *UNAUTHORIZED)
        finally:
            keystone.start()
        assert_fault(http.get("/networks", headers=headers), 401, *UNAUTHORIZED)
    # Keystone itself no longer vouches for it
    verdict = httpx.get(
        f"{keystone.url}/auth/tokens",
        headers={"X-Auth-Token": token_of_admin(keystone), "X-Subject-Token": access.auth_token},
    )
    assert verdict.status_code == 404, verdict.text


def token_of_admin(keystone: KeystoneServer) -> str:
    value: str = connect(keystone.url, "admin", "admin", ADMIN_PASSWORD).auth_token
    return value


def test_an_unreachable_keystone_is_503_and_the_api_recovers(
    keystone: KeystoneServer, cloud: str
) -> None:
    fresh = token(keystone, "bo")  # not yet seen by the api: it must ask Keystone
    keystone.stop()
    try:
        with httpx.Client(base_url=f"{cloud}/v2.0", timeout=60) as http:
            assert_fault(
                http.get("/networks", headers={"X-Auth-Token": fresh}),
                503,
                "HTTPServiceUnavailable",
                "The Keystone service is temporarily unavailable.",
            )
    finally:
        keystone.start()
    with httpx.Client(base_url=f"{cloud}/v2.0", timeout=60) as http:
        assert http.get("/networks", headers={"X-Auth-Token": fresh}).status_code == 200


def test_the_admin_token_beside_keystone_is_accepted_without_asking_keystone(
    keystone: KeystoneServer, cloud: str, tmp_path: Path
) -> None:
    """``admin_token_beside_keystone = true`` (what the lab's OpenStack mode writes): the
    static admin token works even while Keystone is down (it is never shown to Keystone),
    and a token Keystone does not vouch for is still 401. Without it (``cloud``), the
    admin token is refused like any foreign token (above)."""
    server = ApiServer(
        f"sqlite://{tmp_path / 'store.db'}",
        workdir=tmp_path,
        extra_config=TABLE.format(url=keystone.url, password=PASSWORD),
        prelude="admin_token_beside_keystone = true\n",
    )
    with server, httpx.Client(base_url=f"{server.url}/v2.0", timeout=60) as http:
        keystone.stop()
        try:
            assert http.get("/networks", headers={"X-Auth-Token": "s3cret"}).status_code == 200
        finally:
            keystone.start()
        bad = http.get("/networks", headers={"X-Auth-Token": "gAAAAABnot-a-token"})
        assert_fault(bad, 401, *UNAUTHORIZED)
