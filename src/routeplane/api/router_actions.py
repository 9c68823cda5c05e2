"""The router member actions: ``PUT /v2.0/routers/{id}/add_router_interface`` and
``remove_router_interface``.

They are not resources, so the generic routes do not cover them. Their body is the bare
``{"subnet_id"}`` / ``{"port_id"}`` object and so is their answer (Neutron does not wrap
either); everything else is the router service's.
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


def _endpoint(wiring: Wiring, action: Action) -> Callable[[Request, str], Any]:
    async def handle(request: Request, item_id: str) -> JSONResponse:
        ctx = wiring.context(request)
        body = await read_body(request)
        if not isinstance(body, dict):
            raise bad_request("Body contains invalid data")
        return JSONResponse(await wiring.threaded(action, ctx, item_id, body))

    return handle


def add_router_actions(app: FastAPI, services: Services, wiring: Wiring) -> None:
    routers = services.routers
    for name, action in (
        ("add_router_interface", routers.add_interface),
        ("remove_router_interface", routers.remove_interface),
    ):
        app.add_api_route(
            f"/v2.0/routers/{{item_id}}/{name}",
            _endpoint(wiring, action),
            methods=["PUT"],
            tags=["routers"],
            name=name,
        )


__all__ = ["add_router_actions"]
