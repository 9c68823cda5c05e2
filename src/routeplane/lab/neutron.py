"""The lab's client of its own api: plain Neutron v2.0 REST with the lab's admin token.

The lab goes through the api (not the services underneath) so that what ``lab up`` and
``lab boot`` create is exactly what a user of the ``openstack`` CLI would create, checks
included. Errors come back as :class:`ApiError` carrying Neutron's fault message.
"""

from __future__ import annotations

import time
from typing import Any

import requests

TIMEOUT = 30.0


class ApiError(RuntimeError):
    """The api refused a request, or could not be reached."""


class Neutron:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._session = requests.Session()
        self._session.headers.update({"X-Auth-Token": token, "Accept": "application/json"})

    def close(self) -> None:
        self._session.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._session.request(
                method, f"{self.url}/v2.0/{path}", json=body, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise ApiError(f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                fault = response.json().get("NeutronError", {}).get("message", response.text)
            except ValueError:
                fault = response.text
            raise ApiError(f"{method} {path}: {response.status_code} {fault}")
        return response.json() if response.content else None

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v2.0/<kind>s; ``kind`` is the singular (``network``, ``security_group``)."""
        collection = kind.replace("_", "-") + "s"
        created: dict[str, Any] = self.request("POST", collection, {kind: body})[kind]
        return created

    def show(self, kind: str, resource_id: str) -> dict[str, Any]:
        collection = kind.replace("_", "-") + "s"
        shown: dict[str, Any] = self.request("GET", f"{collection}/{resource_id}")[kind]
        return shown

    def find(self, kind: str, name_or_id: str, **filters: str) -> dict[str, Any]:
        """The one resource of ``kind`` with this id or name (as the CLI resolves it)."""
        collection = kind.replace("_", "-") + "s"
        key = kind + "s"
        for field in ("id", "name"):
            query = "&".join(f"{k}={v}" for k, v in {field: name_or_id, **filters}.items())
            found: list[dict[str, Any]] = self.request("GET", f"{collection}?{query}")[key]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ApiError(f"more than one {kind} is named {name_or_id!r}: use its id")
        raise ApiError(f"no {kind} {name_or_id!r}")

    def wait_port_status(self, port_id: str, status: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        port = self.show("port", port_id)
        while port["status"] != status and time.monotonic() < deadline:
            time.sleep(0.1)
            port = self.show("port", port_id)
        if port["status"] != status:
            raise ApiError(
                f"port {port_id} is still {port['status']} after {timeout:.0f}s "
                "(is the agent on its host running? see the lab's logs)"
            )
        return port


__all__ = ["ApiError", "Neutron"]
