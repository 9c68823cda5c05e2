"""``/v2.0/quotas``: Neutron's quota API (extensions ``quotas`` and ``quota_details``).

HTTP only: list (admins), show, ``/default`` and ``/details`` of one project, update
(``{"quota": {...}}``) and delete (back to the defaults). The rules and the enforcement
are the service's (``services.quotas``).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from routeplane.api.resources import Wiring, read_body
from routeplane.services.quotas import Quotas


def add_quota_routes(app: FastAPI, quotas: Quotas, wiring: Wiring) -> None:
    async def list_quotas(request: Request) -> JSONResponse:
        ctx = wiring.context(request)
        return JSONResponse({"quotas": await wiring.threaded(quotas.list_all, ctx)})

    async def show(request: Request, project: str) -> JSONResponse:
        ctx = wiring.context(request)
        return JSONResponse({"quota": await wiring.threaded(quotas.show, ctx, project)})

    async def default(request: Request, project: str) -> JSONResponse:
        ctx = wiring.context(request)
        return JSONResponse({"quota": await wiring.threaded(quotas.default, ctx, project)})

    async def details(request: Request, project: str) -> JSONResponse:
        ctx = wiring.context(request)
        return JSONResponse({"quota": await wiring.threaded(quotas.details, ctx, project)})

    async def update(request: Request, project: str) -> JSONResponse:
        ctx = wiring.context(request)
        body = await read_body(request)
        return JSONResponse({"quota": await wiring.threaded(quotas.update, ctx, project, body)})

    async def reset(request: Request, project: str) -> Response:
        ctx = wiring.context(request)
        await wiring.threaded(quotas.reset, ctx, project)
        return Response(status_code=204)

    base, item = "/v2.0/quotas", "/v2.0/quotas/{project}"
    for path, endpoint, method, name in (
        (base, list_quotas, "GET", "list_quotas"),
        (f"{item}/default", default, "GET", "show_default_quota"),
        (f"{item}/details", details, "GET", "show_quota_details"),
        (item, show, "GET", "show_quota"),
        (item, update, "PUT", "update_quota"),
        (item, reset, "DELETE", "delete_quota"),
    ):
        app.add_api_route(path, endpoint, methods=[method], tags=["quotas"], name=name)


__all__ = ["add_quota_routes"]
