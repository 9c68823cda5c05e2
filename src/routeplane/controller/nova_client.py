"""Talking to Nova: the ``[nova]`` settings and one POST of external events.

Neutron reaches Nova through keystoneauth with a ``[nova]`` section (``auth_url``,
``username``, ``password``, ``project_name``, the two domains, ``region_name``,
``endpoint_type``); the same keys, in a ``[nova]`` table of the controller's TOML config,
do the same here. keystoneauth finds the ``compute`` endpoint in the catalog, takes a
token and renews it (once, on a 401) by itself. The client answers with Nova's status
code and body, or None for no answer, and never raises for Nova's failures: what to do
about them is ``nova_batching``'s decision.

What this module must not do: retry, sleep or decide anything (keystoneauth's own
retries are off: the notifier's backoff is the only one, so a request never outlives
``timeout``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from routeplane.model.errors import InvalidRequest
from routeplane.model.jsontypes import JSONObject, JSONValue

LOG = logging.getLogger("routeplane.nova")
EVENTS_PATH = "/os-server-external-events"


@dataclass(frozen=True)
class NovaSettings:
    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region_name: str | None = None
    endpoint_type: str = "public"  # Neutron's option name: the catalog interface
    # seconds for one request. A refused connection (Nova stopped) fails at once whatever
    # this is; a request that times out may still be acted on by Nova, and its retry then
    # delivers every event in it twice (seen in the lab: a nova-api starting up under load
    # answered the first request after 7 s, past a 5 s timeout). So it is long: only a
    # hung Nova reaches it, and the notifier's own thread is all that waits.
    timeout: float = 30.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> NovaSettings:
        """The ``[nova]`` table; a missing or mistyped key is an error naming it."""
        required = ("auth_url", "username", "password", "project_name")
        missing = [k for k in required if not isinstance(table.get(k), str)]
        if missing:
            raise InvalidRequest(f"[nova] needs {', '.join(missing)} (strings)")
        known = {*required, "user_domain_name", "project_domain_name", "region_name"}
        known |= {"endpoint_type", "timeout"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise InvalidRequest(f"[nova] does not know {', '.join(unknown)}")
        timeout = table.get("timeout", cls.timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidRequest("[nova] timeout takes a positive number of seconds")
        return cls(
            auth_url=table["auth_url"],
            username=table["username"],
            password=table["password"],
            project_name=table["project_name"],
            user_domain_name=str(table.get("user_domain_name", "Default")),
            project_domain_name=str(table.get("project_domain_name", "Default")),
            region_name=table.get("region_name"),
            endpoint_type=str(table.get("endpoint_type", "public")),
            timeout=float(timeout),
        )


class NovaClient(Protocol):
    def send(self, events: Sequence[JSONObject]) -> tuple[int | None, JSONValue]:
        """POST the events; Nova's status and body, or (None, reason) without an answer."""
        ...


class KeystoneNova:
    """:class:`NovaClient` over keystoneauth1."""

    def __init__(self, settings: NovaSettings) -> None:
        # imported here: only a controller configured for Nova pays for keystoneauth
        from keystoneauth1 import adapter, session  # noqa: PLC0415
        from keystoneauth1.identity import v3  # noqa: PLC0415

        auth = v3.Password(
            auth_url=settings.auth_url,
            username=settings.username,
            password=settings.password,
            project_name=settings.project_name,
            user_domain_name=settings.user_domain_name,
            project_domain_name=settings.project_domain_name,
        )
        self._adapter = adapter.Adapter(
            session.Session(auth=auth, timeout=settings.timeout),
            service_type="compute",
            interface=settings.endpoint_type,
            region_name=settings.region_name,
            connect_retries=0,
            status_code_retries=0,
            raise_exc=False,
        )

    def send(self, events: Sequence[JSONObject]) -> tuple[int | None, JSONValue]:
        from keystoneauth1 import exceptions  # noqa: PLC0415

        try:
            response = self._adapter.post(EVENTS_PATH, json={"events": list(events)})
        except exceptions.ClientException as exc:  # no answer, no token, no endpoint
            return None, str(exc)
        try:
            body: JSONValue = response.json()
        except ValueError:
            body = response.text
        return response.status_code, body


__all__ = ["EVENTS_PATH", "KeystoneNova", "NovaClient", "NovaSettings"]
