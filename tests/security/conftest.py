"""The red-team suite plays a tenant against a started api, with the api tier's fixtures.

The fixtures are the api tier's own (one ``routeplane api`` process per module, real
clients), imported rather than copied; ``tenants`` adds the attackers: the users of two
member projects (``demo`` and ``alt``) and the admin, each as a plain HTTP client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openstack.connection
import pytest

from routeplane.testing.api import ApiServer
from tests.api.conftest import api, connect, store
from tests.api.helpers import client
from tests.security.tenants import Tenants

__all__ = ["api", "connect", "store"]


@pytest.fixture(scope="module")
def tenants(
    api: ApiServer, connect: Callable[..., openstack.connection.Connection]
) -> Iterator[Tenants]:
    login = connect  # openstacksdk, to obtain each user's token from /identity
    with (
        client(api, api.admin_token) as admin,
        client(api, str(login("demo").auth_token)) as a,
        client(api, str(login("alt").auth_token)) as b,
    ):
        yield Tenants(admin=admin, a=a, b=b)
