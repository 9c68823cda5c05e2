"""``PUT /v2.0/ports/{port_id}/move_fixed_ip``: the atomic move (``routeplane-fixed-ip-move``).

A member action on the port that receives the address, in the manner of the router's
``add_router_interface``: the body is ``{"fixed_ip": {"ip_address", "from_port_id"}}``
and the answer is the receiving port, wrapped as every port is (``{"port": {...}}``).
Everything else is the service's (``services.fixed_ip_moves``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from routeplane.api.resources import Wiring, read_body
from routeplane.services.attributes import unwrap
from routeplane.services.registry import Services

_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["fixed_ip"],
                    "properties": {
                        "fixed_ip": {
                            "type": "object",
                            "required": ["ip_address", "from_port_id"],
                            "properties": {
                                "ip_address": {"type": "string"},
                                "from_port_id": {"type": "string", "format": "uuid"},
                            },
                        }
                    },
                }
            }
        },
    }
}


def add_move_route(app: FastAPI, services: Services, wiring: Wiring) -> None:
    moves = services.fixed_ip_moves

    async def move_fixed_ip(request: Request, item_id: str) -> JSONResponse:
        ctx = wiring.context(request)
        data = unwrap(await read_body(request), "fixed_ip")
        port = await wiring.threaded(moves.move, ctx, item_id, data)
        return JSONResponse({"port": port})

    app.add_api_route(
        "/v2.0/ports/{item_id}/move_fixed_ip",
        move_fixed_ip,
        methods=["PUT"],
        tags=["ports"],
        name="move_fixed_ip",
        openapi_extra=_SCHEMA,
    )


__all__ = ["add_move_route"]
