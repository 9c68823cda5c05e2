"""Keystone tokens, validated by keystonemiddleware: the library every OpenStack service
uses, so routeplane accepts exactly the tokens Neutron would.

Configured by the ``[keystone_authtoken]`` table of the api's config file, with
keystonemiddleware's own option names (``www_authenticate_uri``, ``auth_url``,
``auth_type``, ``username``, ``password``, ``project_name``, ``user_domain_name``,
``project_domain_name``, ``memcached_servers``, …). Without that table the built-in
identity (``services.security.identity``) answers instead; with it, the built-in
identity's static ``admin_token`` is accepted too only under
``admin_token_beside_keystone = true``, checked before Keystone is asked (the lab's tools
use it beside its real Keystone).

keystonemiddleware is a WSGI middleware; here it wraps a WSGI application that does
nothing, and is called once per request with a WSGI environment holding only the
request's token (so no client header can pose as a validated one). It either lets the
request through, having written the token's user, project and roles into that
environment (``X-User-Id``, ``X-Project-Id``, ``X-Roles``), or answers itself: 401 for a
missing, expired, revoked or foreign token, 503 when Keystone cannot be reached. The
first becomes no context (the api's 401), the second Neutron's 503 fault. Tokens are
cached by the middleware (in process, or in memcached when configured), so a token
costs one round trip to Keystone until it expires from the cache; the call blocks, so
:class:`KeystoneAuth` is run in a worker thread by the middleware below.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from keystonemiddleware import auth_token
from oslo_config import cfg
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from routeplane.services.context import Context
from routeplane.services.errors import ApiFault

# so that an unreachable Keystone answers within seconds, unless the config says otherwise
DEFAULTS = {"http_connect_timeout": "3", "http_request_max_retries": "1"}


def unavailable() -> ApiFault:
    return ApiFault(
        "HTTPServiceUnavailable", 503, "The Keystone service is temporarily unavailable."
    )


def _nothing(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("204 No Content", [])
    return [b""]


class KeystoneAuth:
    """Token → :class:`Context` through keystonemiddleware (blocking: call it in a thread)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        conf = cfg.ConfigOpts()  # its own, not oslo.config's process-wide CONF
        conf([], project="routeplane", default_config_files=[])
        given = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
        settings: dict[str, Any] = {**DEFAULTS, **given, "delay_auth_decision": "false"}
        settings["oslo_config_config"] = conf
        self._protocol = auth_token.AuthProtocol(_nothing, settings)

    def context(self, token: str | None) -> Context | None:
        """The token's caller, None for a token Keystone does not vouch for; raises
        Neutron's 503 when Keystone cannot be asked."""
        if not token:
            return None
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "SERVER_NAME": "routeplane",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "HTTP_X_AUTH_TOKEN": token,
        }
        status: list[str] = []

        def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
            status.append(line)

        for _chunk in self._protocol(environ, start_response):
            pass
        code = status[0].split()[0] if status else "500"
        if code == "503":
            raise unavailable()
        if code != "204" or environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
            return None
        roles = frozenset(r.strip().lower() for r in environ.get("HTTP_X_ROLES", "").split(","))
        return Context(
            str(environ.get("HTTP_X_PROJECT_ID", "")),
            roles - {""},
            str(environ.get("HTTP_X_USER_ID", "")),
        )


class KeystoneMiddleware:
    """Validates the ``X-Auth-Token`` of every ``/v2.0`` request in a worker thread and
    leaves the verdict (a context, None, or a fault) in the ASGI scope. A token ``local``
    vouches for (the static admin token, when accepted) is never shown to Keystone."""

    def __init__(
        self,
        app: ASGIApp,
        auth: KeystoneAuth,
        scope_key: str,
        local: Callable[[str | None], Context | None],
    ) -> None:
        self.app = app
        self.auth = auth
        self.scope_key = scope_key
        self.local = local

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/v2.0"):
            token = None
            for name, value in scope.get("headers", []):
                if name == b"x-auth-token":
                    token = value.decode("latin-1")
            verdict: Context | ApiFault | None = self.local(token)
            if verdict is None:
                try:
                    verdict = await run_in_threadpool(self.auth.context, token)
                except ApiFault as fault:
                    verdict = fault
            scope = dict(scope)
            scope[self.scope_key] = verdict
        await self.app(scope, receive, send)


__all__ = ["KeystoneAuth", "KeystoneMiddleware", "unavailable"]
