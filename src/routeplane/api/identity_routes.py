"""``/identity``: the Keystone v3 subset clients need to log in.

Version discovery (``GET /identity`` answers 300 with the version list, ``GET
/identity/v3`` the version document) and ``POST /identity/v3/auth/tokens`` with password
authentication scoped to a project: 201, the token in ``X-Subject-Token``, and a token body
whose catalog names this server as the network endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from routeplane.services.errors import ApiFault
from routeplane.services.security.identity import Identity, Token


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(t))


def _version(base: str) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


def _unauthorized() -> JSONResponse:
    body = {
        "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }
    }
    return JSONResponse(body, status_code=401)


def _token_body(token: Token, base: str, region: str) -> dict[str, Any]:
    domain = {"id": "default", "name": "Default"}
    return {
        "token": {
            "methods": ["password"],
            "expires_at": _stamp(token.expires_at),
            "issued_at": _stamp(token.issued_at),
            "audit_ids": [token.value[-22:]],
            "user": {
                "id": token.user.id,
                "name": token.user.name,
                "domain": domain,
                "password_expires_at": None,
            },
            "project": {"id": token.project.id, "name": token.project.name, "domain": domain},
            "roles": [{"id": role, "name": role} for role in token.user.roles],
            "catalog": [
                {
                    "type": "network",
                    "name": "neutron",
                    "id": "network",
                    "endpoints": [
                        {
                            "id": f"network-{i}",
                            "interface": i,
                            "region": region,
                            "region_id": region,
                            "url": base,
                        }
                        for i in ("public", "internal", "admin")
                    ],
                },
                {
                    "type": "identity",
                    "name": "keystone",
                    "id": "identity",
                    "endpoints": [
                        {
                            "id": f"identity-{i}",
                            "interface": i,
                            "region": region,
                            "region_id": region,
                            "url": f"{base}/identity",
                        }
                        for i in ("public", "internal", "admin")
                    ],
                },
            ],
        }
    }


def _password_request(body: Any) -> tuple[str, str, str | None]:
    try:
        auth = body["auth"]
        identity = auth["identity"]
        if "password" not in identity.get("methods", []):
            raise KeyError("methods")
        user = identity["password"]["user"]
        scope = auth.get("scope", {}).get("project", {})
        return str(user["name"]), str(user["password"]), scope.get("name")
    except (KeyError, TypeError, AttributeError):
        raise ApiFault(
            "ValidationError", 400, "Expecting to find password authentication in auth."
        ) from None


def add_routes(
    app: FastAPI, identity: Identity, read_json: Callable[[Request], Awaitable[Any]]
) -> None:
    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @app.get("/identity", include_in_schema=False)
    @app.get("/identity/")
    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse({"versions": {"values": [_version(base(request))]}}, status_code=300)

    @app.get("/identity/v3", include_in_schema=False)
    @app.get("/identity/v3/")
    async def version(request: Request) -> JSONResponse:
        return JSONResponse({"version": _version(base(request))})

    @app.post("/identity/v3/auth/tokens")
    async def issue(request: Request) -> JSONResponse:
        name, password, project = _password_request(await read_json(request))
        token = identity.authenticate(name, password, project)
        if token is None:
            return _unauthorized()
        response = JSONResponse(
            _token_body(token, base(request), identity.config.region), status_code=201
        )
        response.headers["X-Subject-Token"] = token.value
        return response


__all__ = ["add_routes"]
