"""Every error leaves the API as Neutron's JSON fault body, from this one module.

``{"NeutronError": {"type", "message", "detail": ""}}`` with Neutron's code. Routing
errors (an unknown URL, a wrong method) use webob's names, as Neutron does; anything
unexpected becomes Neutron's 500 text instead of a stack trace.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from routeplane.model.errors import InvalidKey, InvalidValue, StoreError, Unavailable
from routeplane.services.errors import ApiFault

LOG = logging.getLogger("routeplane.api")
_WEBOB = {
    400: (
        "HTTPBadRequest",
        "The server could not comply with the request since it is either malformed or otherwise incorrect.",
    ),
    401: ("HTTPUnauthorized", "Authentication required"),
    404: ("HTTPNotFound", "The resource could not be found."),
    405: (
        "HTTPMethodNotAllowed",
        "The server could not comply with the request since it is either malformed or otherwise incorrect.",
    ),
    413: ("HTTPRequestEntityTooLarge", "Request is too large."),
}


def fault_response(type_name: str, code: int, message: str) -> JSONResponse:
    body = {"NeutronError": {"type": type_name, "message": message, "detail": ""}}
    return JSONResponse(body, status_code=code)


async def on_api_fault(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiFault)
    return fault_response(exc.type_name, exc.code, exc.message)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    type_name, message = _WEBOB.get(exc.status_code, ("HTTPError", str(exc.detail)))
    return fault_response(type_name, exc.status_code, message)


async def on_store_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, Unavailable):
        LOG.warning("store unavailable: %s", exc)
        return fault_response("ServiceUnavailable", 503, "The service is unavailable at this time.")
    if isinstance(exc, InvalidKey | InvalidValue):
        return fault_response("HTTPBadRequest", 400, str(exc))
    assert isinstance(exc, StoreError)
    return await on_unexpected(request, exc)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    LOG.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return fault_response(
        "HTTPInternalServerError",
        500,
        "Request Failed: internal server error while processing your request.",
    )


__all__ = ["fault_response", "on_api_fault", "on_http_error", "on_store_error", "on_unexpected"]
