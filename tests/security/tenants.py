"""The attackers and what they build: two member projects (A = ``demo``, B = ``alt``) and
the admin, each an HTTP client on ``/v2.0``, with short-hands for the resources a test
sets up before it tries something."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


def created(response: httpx.Response, member: str) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()[member]
    return body


def project_of(who: httpx.Client) -> str:
    """The caller's project id, as its own default security group shows it."""
    groups = who.get("/security-groups", params={"name": "default"}).json()["security_groups"]
    return str(groups[0]["project_id"])


@dataclass
class Tenants:
    admin: httpx.Client
    a: httpx.Client
    b: httpx.Client

    @staticmethod
    def network(who: httpx.Client, **fields: Any) -> dict[str, Any]:
        return created(who.post("/networks", json={"network": fields}), "network")

    @staticmethod
    def subnet(who: httpx.Client, network_id: str, cidr: str, **fields: Any) -> dict[str, Any]:
        version = 6 if ":" in cidr else 4
        body = {"network_id": network_id, "cidr": cidr, "ip_version": version, **fields}
        return created(who.post("/subnets", json={"subnet": body}), "subnet")

    @staticmethod
    def port(who: httpx.Client, network_id: str, **fields: Any) -> dict[str, Any]:
        body = {"network_id": network_id, **fields}
        return created(who.post("/ports", json={"port": body}), "port")


__all__ = ["Tenants", "created", "project_of"]
