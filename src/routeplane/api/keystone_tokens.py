"""Keystone's tokens accepted by the api: each one validated by Keystone, then cached.

With ``keystone_url`` in the api's config, a token the built-in identity does not know
is shown to Keystone (``GET /v3/auth/tokens``, the token validating itself as
``X-Auth-Token`` and ``X-Subject-Token``, which Keystone allows any valid token) and the
caller is its project and roles. Valid answers are kept until the token expires or for
``CACHE_SECONDS``, whichever is sooner; refusals for ``CACHE_SECONDS`` too, so a bad token
cannot make every request a Keystone round trip. This is what the lab's Nova needs (its
calls carry the user's Keystone token); keystonemiddleware's ``auth_token``, which also
checks revocation and service tokens, is the fuller answer.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

from routeplane.services.context import Context

CACHE_SECONDS = 60.0
CACHE_SIZE = 4096
TIMEOUT = 5.0
ROLES = {"admin", "member", "reader"}


def context_of(body: dict[str, Any]) -> Context | None:
    """The caller a validated token body names (None when it is not project-scoped)."""
    token = body.get("token") or {}
    project = token.get("project")
    if not project:
        return None
    roles = {r.get("name", "").lower() for r in token.get("roles", [])} & ROLES
    if "admin" in roles:
        roles |= {"member", "reader"}
    elif "member" in roles:
        roles.add("reader")
    return Context(str(project["id"]), frozenset(roles), str(token.get("user", {}).get("id", "")))


def expiry_of(body: dict[str, Any]) -> float | None:
    stamp = (body.get("token") or {}).get("expires_at")
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


class KeystoneTokens:
    def __init__(self, auth_url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.auth_url = auth_url.rstrip("/")
        self._clock = clock
        self._cache: dict[str, tuple[float, Context | None]] = {}
        self._lock = threading.Lock()

    def context(self, token: str) -> Context | None:
        now = self._clock()
        with self._lock:
            held = self._cache.get(token)
        if held is not None and held[0] > now:
            return held[1]
        body = self._validate(token)
        found = None if body is None else context_of(body)
        until = now + CACHE_SECONDS
        expires = None if body is None else expiry_of(body)
        if expires is not None:
            until = min(until, expires)
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[token] = (until, found)
        return found

    def _validate(self, token: str) -> dict[str, Any] | None:
        request = urllib.request.Request(f"{self.auth_url}/auth/tokens")  # noqa: S310 (configured Keystone URL)
        request.add_header("X-Auth-Token", token)
        request.add_header("X-Subject-Token", token)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except (urllib.error.URLError, OSError, ValueError):
            return None


__all__ = ["KeystoneTokens", "context_of"]
