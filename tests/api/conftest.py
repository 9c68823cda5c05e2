"""A started ``routeplane api`` and the real clients that drive it.

The server runs as its own process on the embedded store (a fresh file per module), and
the tests talk to it only the way users do: the ``openstack`` CLI and openstacksdk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openstack
import openstack.connection
import pytest

from routeplane.store import Store, open_store
from routeplane.testing.api import ApiServer
from tests.api.helpers import client

OPENSTACK = str(Path(sys.executable).with_name("openstack"))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    workdir = tmp_path_factory.mktemp("api")
    with ApiServer(f"sqlite://{workdir / 'store.db'}", workdir=workdir) as server:
        yield server


@pytest.fixture(scope="module")
def store(api: ApiServer) -> Iterator[Store]:
    """The api's store, opened beside it, to check what the api wrote."""
    opened = open_store(api.store_url)
    yield opened
    opened.close()


def _env(api: ApiServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(extra)
    return env


class Cli:
    """Runs the real ``openstack`` command against the api, as one user."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [OPENSTACK, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} failed:\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-f", "json").stdout)

    def fails(self, *args: str) -> str:
        result = self.run(*args, check=False)
        assert result.returncode != 0, f"openstack {' '.join(args)} unexpectedly succeeded"
        return result.stderr


@pytest.fixture(scope="module")
def http(api: ApiServer) -> Iterator[httpx.Client]:
    """Raw HTTP on ``/v2.0`` as the admin (the static admin token)."""
    with client(api, api.admin_token) as admin:
        yield admin


@pytest.fixture(scope="module")
def admin_cli(api: ApiServer) -> Cli:
    return Cli(_env(api, OS_AUTH_TYPE="admin_token", OS_ENDPOINT=api.url, OS_TOKEN=api.admin_token))


def user_cli_env(api: ApiServer, user: str, project: str) -> dict[str, str]:
    return _env(
        api,
        OS_AUTH_URL=f"{api.url}/identity/v3", OS_USERNAME=user, OS_PASSWORD="secret",
        OS_PROJECT_NAME=project, OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
        OS_IDENTITY_API_VERSION="3",
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo_cli(api: ApiServer) -> Cli:
    return Cli(user_cli_env(api, "demo", "demo"))


@pytest.fixture(scope="module")
def connect(api: ApiServer) -> Callable[..., openstack.connection.Connection]:
    """openstacksdk connections: admin by token, or a user by password through /identity."""

    def _connect(
        user: str | None = None, project: str | None = None, password: str = "secret"
    ) -> openstack.connection.Connection:
        if user is None:
            return openstack.connect(
                auth_type="admin_token", auth={"endpoint": api.url, "token": api.admin_token}
            )
        return openstack.connect(
            auth_type="password",
            auth={"auth_url": f"{api.url}/identity/v3", "username": user, "password": password,
                  "project_name": project or user, "user_domain_name": "Default",
                  "project_domain_name": "Default"},
        )  # fmt: skip

    return _connect


@pytest.fixture(scope="module")
def as_user(
    api: ApiServer, connect: Callable[..., openstack.connection.Connection]
) -> Iterator[Callable[[str, str], httpx.Client]]:
    """Raw HTTP clients as ``(user, project)``, with a token from ``/identity``; closed at
    the end of the module."""
    opened: list[httpx.Client] = []

    def _as(user: str, project: str) -> httpx.Client:
        opened.append(client(api, str(connect(user, project).auth_token)))
        return opened[-1]

    yield _as
    for one in opened:
        one.close()


@pytest.fixture(scope="module")
def admin_v2(api: ApiServer) -> Iterator[httpx.Client]:
    """Raw HTTP on ``/v2.0`` as the static admin token."""
    with httpx.Client(
        base_url=f"{api.url}/v2.0", headers={"X-Auth-Token": api.admin_token}, timeout=30
    ) as admin:
        yield admin


@pytest.fixture(scope="module")
def demo_v2(
    api: ApiServer, connect: Callable[..., openstack.connection.Connection]
) -> Iterator[httpx.Client]:
    """Raw HTTP on ``/v2.0`` as the demo member (a password token from /identity)."""
    token = str(connect("demo").auth_token)
    with httpx.Client(
        base_url=f"{api.url}/v2.0", headers={"X-Auth-Token": token}, timeout=30
    ) as demo:
        yield demo
