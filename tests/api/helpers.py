"""Small helpers for raw-HTTP api tests: clients, creation, Neutron fault assertions and
store look-ups."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from routeplane.agent.registration import Registration
from routeplane.agent.settings import AgentSettings
from routeplane.store import Store
from routeplane.testing.api import ApiServer

ROOT = "/routeplane/v1/"


def client(api: ApiServer, token: str) -> httpx.Client:
    """Plain HTTP on ``/v2.0`` with a token, for exact status codes and bodies."""
    return httpx.Client(base_url=f"{api.url}/v2.0", headers={"X-Auth-Token": token}, timeout=30)


def assert_fault(response: httpx.Response, code: int, type_name: str, message: str) -> None:
    """Neutron's error body, exactly: type, code and message (``detail`` is always empty)."""
    assert response.status_code == code, response.text
    assert response.json() == {
        "NeutronError": {"type": type_name, "message": message, "detail": ""}
    }


def post(http: httpx.Client, collection: str, member: str, **fields: Any) -> dict[str, Any]:
    """Create ``member`` in ``collection`` (expecting 201); the created resource."""
    response = http.post(f"/{collection}", json={member: fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()[member]
    return body


def stored(store: Store, path: str) -> dict[str, Any] | None:
    """The document at ``/routeplane/v1/<path>``, as the api wrote it."""
    kv = store.get(ROOT + path)
    if kv is None:
        return None
    assert isinstance(kv.value, dict)
    return kv.value


__all__ = ["assert_fault", "client", "post", "stored"]


@contextmanager
def live_agents(store: Store, *hosts: str) -> Iterator[list[Registration]]:
    """The hosts' agents registered as the real agent registers (leased liveness records),
    without the rest of an agent; they leave (lease revoked) when the block ends."""
    registered = [
        Registration(store, AgentSettings(host=h, bgp_address=f"10.255.0.{i + 1}"))
        for i, h in enumerate(hosts)
    ]
    for registration in registered:
        registration.keep(time.monotonic())
    try:
        yield registered
    finally:
        for registration in registered:
            registration.close()
