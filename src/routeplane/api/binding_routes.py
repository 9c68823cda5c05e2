"""``/v2.0/ports/{port_id}/bindings``: the port bindings Nova's live migration uses
(extension ``binding-extended``).

HTTP only: list and show, create (``{"binding": {"host": ...}}``, 201), activate (``PUT
…/{host}/activate``) and delete (204). The rules are the service's
(``services.core.port_bindings``).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from routeplane.api.resources import Wiring, read_body
from routeplane.services.core.port_bindings import PortBindings


def add_binding_routes(app: FastAPI, bindings: PortBindings, wiring: Wiring) -> None:
    async def list_bindings(request: Request, port_id: str) -> JSONResponse:
        found = await wiring.threaded(bindings.list, wiring.context(request), port_id)
        return JSONResponse({"bindings": found})

    async def create(request: Request, port_id: str) -> JSONResponse:
        ctx, body = wiring.context(request), await read_body(request)
        created = await wiring.threaded(bindings.create, ctx, port_id, body)
        return JSONResponse({"binding": created}, status_code=201)

    async def show(request: Request, port_id: str, host: str) -> JSONResponse:
        ctx = wiring.context(request)
        return JSONResponse({"binding": await wiring.threaded(bindings.get, ctx, port_id, host)})

    async def activate(request: Request, port_id: str, host: str) -> JSONResponse:
        ctx = wiring.context(request)
        active = await wiring.threaded(bindings.activate, ctx, port_id, host)
        return JSONResponse({"binding": active})

    async def delete(request: Request, port_id: str, host: str) -> Response:
        ctx = wiring.context(request)
        await wiring.threaded(bindings.delete, ctx, port_id, host)
        return Response(status_code=204)

    base = "/v2.0/ports/{port_id}/bindings"
    item = base + "/{host}"
    for path, endpoint, method, name in (
        (base, list_bindings, "GET", "list_port_bindings"),
        (base, create, "POST", "create_port_binding"),
        (item, show, "GET", "show_port_binding"),
        (f"{item}/activate", activate, "PUT", "activate_port_binding"),
        (item, delete, "DELETE", "delete_port_binding"),
    ):
        app.add_api_route(path, endpoint, methods=[method], tags=["port bindings"], name=name)


__all__ = ["add_binding_routes"]
