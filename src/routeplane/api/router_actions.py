"""The member actions: ``PUT /v2.0/routers/{id}/add_router_interface`` and
``remove_router_interface``; ``PUT /v2.0/subnetpools/{id}/add_prefixes`` and
``remove_prefixes`` (subnetpool-prefix-ops).

They are not resources, so the generic routes do not cover them. Their body is the bare
``{"subnet_id"}`` / ``{"port_id"}`` (``{"prefixes"}``) object and so is their answer (Neutron does not wrap
either); everything else is the service's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from routeplane.api.resources import Wiring, read_body
from routeplane.services.context import Context
from routeplane.services.errors import bad_request
from routeplane.services.registry import Services

Action = Callable[[Context, str, dict[str, Any]], dict[str, Any]]


def action_endpoint(wiring: Wiring, action: Action) -> Callable[[Request, str], Any]:
    async def handle(request: Request, item_id: str) -> JSONResponse:
        ctx = wiring.context(request)
        body = await read_body(request)
        if not isinstance(body, dict):
            raise bad_request("Body contains invalid data")
        return JSONResponse(await wiring.threaded(action, ctx, item_id, body))

    return handle


def add_router_actions(app: FastAPI, services: Services, wiring: Wiring) -> None:
    routers = services.routers
    pools = services.subnetpools
    for collection, name, action in (
        ("routers", "add_router_interface", routers.add_interface),
        ("routers", "remove_router_interface", routers.remove_interface),
        ("subnetpools", "add_prefixes", pools.add_prefixes),
        ("subnetpools", "remove_prefixes", pools.remove_prefixes),
    ):
        app.add_api_route(
            f"/v2.0/{collection}/{{item_id}}/{name}",
            action_endpoint(wiring, action),
            methods=["PUT"],
            tags=[collection],
            name=name,
        )


__all__ = ["add_router_actions"]
