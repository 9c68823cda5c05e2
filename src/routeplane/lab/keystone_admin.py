"""Keystone's v3 admin calls the lab needs after ``keystone-manage bootstrap``.

The service project, the service users (``nova``, ``placement``, ``neutron``) with the
admin role in it, and the catalog's services and endpoints (compute, placement, image and
network, the last being routeplane's api). Plain JSON over ``urllib`` on loopback: a
dozen calls do not justify a client library, and ``keystoneauth1`` stays confined to the
controller's Nova client.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from routeplane.lab.netns import LabError

TIMEOUT = 10.0


class KeystoneAdmin:
    def __init__(self, auth_url: str, password: str, region: str) -> None:
        self.auth_url, self.region = auth_url.rstrip("/"), region
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "admin", "domain": {"id": "default"}, "password": password}
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        }
        answer, headers = self._call("POST", "auth/tokens", body, token=None)
        self.token = headers["X-Subject-Token"]
        self.admin_project = answer["token"]["project"]["id"]

    def _call(
        self, method: str, path: str, body: Any = None, *, token: str | None
    ) -> tuple[dict[str, Any], Any]:
        data = None if body is None else json.dumps(body).encode()
        url = path if path.startswith("http") else f"{self.auth_url}/{path}"
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback URL of the lab's own Keystone)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("X-Auth-Token", token)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                raw = response.read()
                return (json.loads(raw) if raw else {}), response.headers
        except urllib.error.HTTPError as exc:
            raise LabError(f"Keystone {method} {path}: {exc.code} {exc.read()[:300]!r}") from exc
        except OSError as exc:
            raise LabError(f"Keystone {method} {path}: {exc}") from exc

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A call to Keystone (``path`` under v3) or, with a whole URL, to another service
        of the catalog with the admin's token."""
        return self._call(method, path, body, token=self.token)[0]

    def find_id(self, collection: str, name: str) -> str:
        found = self.call("GET", f"{collection}?name={name}")[collection]
        if not found:
            raise LabError(f"Keystone has no {collection} {name}")
        return str(found[0]["id"])

    def project(self, name: str) -> str:
        body = {"project": {"name": name, "domain_id": "default"}}
        return str(self.call("POST", "projects", body)["project"]["id"])

    def service_user(self, name: str, password: str, project: str, role: str) -> str:
        body = {"user": {"name": name, "password": password, "domain_id": "default"}}
        user = str(self.call("POST", "users", body)["user"]["id"])
        self.call("PUT", f"projects/{project}/users/{user}/roles/{role}")
        return user

    def endpoint(self, kind: str, name: str, url: str) -> None:
        service = self.call("POST", "services", {"service": {"type": kind, "name": name}})
        for interface in ("public", "internal", "admin"):
            body = {
                "endpoint": {
                    "service_id": service["service"]["id"],
                    "interface": interface,
                    "url": url,
                    "region_id": self.region,
                }
            }
            self.call("POST", "endpoints", body)


__all__ = ["KeystoneAdmin"]
