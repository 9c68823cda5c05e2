"""The ASGI application: Neutron v2.0 routes over the services, plus identity.

HTTP only: bodies are parsed here and handed to the services as dicts, answers are
wrapped (``{"port": {...}}``, ``{"ports": [...], "ports_links": [...]}``), and every
error becomes a Neutron fault in ``faults``. The store is synchronous, so service calls
run in the thread pool and slow store round trips (etcd) overlap between requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from routeplane.api import (
    binding_routes,
    bodies,
    faults,
    fixed_ip_move_routes,
    identity_routes,
    quota_routes,
    router_actions,
    versions,
)
from routeplane.api.metrics import ApiMetrics, RequestMetrics
from routeplane.api.resources import ResourceRoutes, Wiring
from routeplane.model.errors import StoreError
from routeplane.services.context import Context
from routeplane.services.errors import ApiFault, http_not_found
from routeplane.services.registry import Services
from routeplane.services.security.identity import Identity

if TYPE_CHECKING:  # keystonemiddleware is imported only by an api configured for it
    from routeplane.api.keystone import KeystoneAuth

Handler = Callable[[Request], Awaitable[Response]]
# where api.keystone's middleware leaves its verdict (its SCOPE_KEY)
KEYSTONE_VERDICT = "routeplane.keystone"
T = TypeVar("T")


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def read_json(request: Request) -> Any:
    """The identity routes' JSON body (the Neutron routes use ``resources.read_body``)."""
    raw = await bodies.read_bytes(request)
    return bodies.parse(raw, ApiFault("HTTPBadRequest", 400, "Malformed request body"))


class StripJsonSuffix:
    """Neutron accepts an optional ``.json`` on every ``/v2.0`` URL.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` would wrap every response
    in a stream and cost a noticeable share of each request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/v2.0/") and path.endswith(".json"):
            scope = dict(scope, path=path[: -len(".json")])
        await self.app(scope, receive, send)


async def inline(func: Callable[..., T], *args: Any) -> T:
    """Run a service call on the event loop itself: for a store that answers in
    microseconds (embedded sqlite), a thread hand-off costs more than the call."""
    return func(*args)


def _nobody(_token: str | None) -> Context | None:
    return None


def create_app(
    services: Services,
    identity: Identity,
    *,
    noauth: bool = False,
    threaded: bool = True,
    metrics: ApiMetrics | None = None,
    keystone: KeystoneAuth | None = None,
    admin_token_beside_keystone: bool = False,
) -> FastAPI:
    """The application. ``threaded``: run service calls in the thread pool, so that slow
    store round trips (etcd) of concurrent requests overlap. ``metrics``: count and time
    the requests (inside the ``.json`` stripping, so ``/v2.0/ports.json`` is the route
    ``/v2.0/ports``). ``keystone``: tokens are Keystone's, validated by keystonemiddleware
    (``api.keystone``), not the built-in identity's; ``admin_token_beside_keystone``:
    its static admin token too (the lab's OpenStack mode: Nova calls with Keystone's
    tokens while the lab's tools use the admin token)."""
    app = FastAPI(
        title="routeplane",
        version="2.0",
        description="Neutron v2.0 compatible networking API of routeplane",
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_exception_handler(ApiFault, faults.on_api_fault)
    app.add_exception_handler(StarletteHTTPException, faults.on_http_error)
    app.add_exception_handler(StoreError, faults.on_store_error)
    app.add_exception_handler(Exception, faults.on_unexpected)

    if metrics is not None:
        app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(StripJsonSuffix)
    if keystone is not None and not noauth:
        from routeplane.api.keystone import KeystoneMiddleware  # noqa: PLC0415

        app.add_middleware(
            KeystoneMiddleware,
            auth=keystone,
            scope_key=KEYSTONE_VERDICT,
            local=identity.admin_token_context if admin_token_beside_keystone else _nobody,
        )

    def context(request: Request) -> Context:
        token = request.headers.get("x-auth-token")
        if keystone is not None and not noauth:
            verdict = request.scope.get(KEYSTONE_VERDICT)
            if isinstance(verdict, ApiFault):
                raise verdict
            if not isinstance(verdict, Context):
                raise ApiFault("HTTPUnauthorized", 401, "Authentication required")
            return verdict
        if noauth:
            return identity.context(identity.config.admin_token) or Context(
                "admin", frozenset({"admin", "member", "reader"}), "admin"
            )
        ctx = identity.context(token)
        if ctx is None:
            raise ApiFault("HTTPUnauthorized", 401, "Authentication required")
        return ctx

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> JSONResponse:
        return JSONResponse(versions.versions(base_url(request)))

    @app.get("/v2.0", include_in_schema=False)
    async def v2_no_slash(request: Request) -> JSONResponse:
        """Neutron serves the resource list only at ``/v2.0/``; without the slash it is 404."""
        raise http_not_found()

    @app.get("/v2.0/")
    async def v2(request: Request) -> JSONResponse:
        context(request)
        pairs = [(s.name, s.collection) for s in services.by_path.values()]
        return JSONResponse(versions.resources(base_url(request), pairs))

    @app.get("/v2.0/extensions")
    async def extension_list(request: Request) -> JSONResponse:
        context(request)
        return JSONResponse({"extensions": versions.extensions()})

    @app.get("/v2.0/extensions/{alias}")
    async def extension_show(request: Request, alias: str) -> JSONResponse:
        context(request)
        for ext in versions.extensions():
            if ext["alias"] == alias:
                return JSONResponse({"extension": ext})
        return JSONResponse(versions.extension_missing(alias), status_code=404)

    wiring = Wiring(context, run_in_threadpool if threaded else inline)
    for path, service in services.by_path.items():
        ResourceRoutes(path, service, wiring).register(app)
    # not in by_path: Neutron's resource list (GET /v2.0/) names no agents
    ResourceRoutes("agents", services.agents, wiring).register(app)
    router_actions.add_router_actions(app, services, wiring)
    fixed_ip_move_routes.add_move_route(app, services, wiring)
    quota_routes.add_quota_routes(app, services.quotas, wiring)
    binding_routes.add_binding_routes(app, services.port_bindings, wiring)
    identity_routes.add_routes(app, identity, read_json)
    return app


__all__ = ["create_app"]
