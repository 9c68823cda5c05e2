"""A stand-in for Keystone and Nova on loopback: just enough for keystoneauth and
``os-server-external-events``.

``POST /v3/auth/tokens`` issues a token whose catalog names this server's ``/v2.1`` as
the ``compute`` endpoint; ``POST /v2.1/os-server-external-events`` records the events and
answers as Nova does: 200 when every instance is known, 207 with a per-event ``code``
when some are not (404), or 503 while ``unavailable`` is set. :meth:`stop` closes the
socket (connection refused, as a stopped nova-api) and :meth:`start` reopens the same
port.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EXPIRES = "2099-01-01T00:00:00.000000Z"


class StandInNova:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.unavailable = False
        self.unknown_servers: set[str] = set()
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def nova_table(self) -> dict[str, Any]:
        return {
            "auth_url": self.auth_url,
            "username": "neutron",
            "password": "secret",
            "project_name": "service",
            "region_name": "RegionOne",
            "endpoint_type": "public",
            "timeout": 2.0,
        }

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/v3/auth/tokens":
                    self._answer(201, owner.token(), {"X-Subject-Token": uuid.uuid4().hex})
                elif self.path == "/v2.1/os-server-external-events":
                    code, answer = owner.take(body.get("events", []))
                    self._answer(code, answer)
                else:
                    self._answer(404, {"error": self.path})

            def _answer(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def token(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/v2.1"
        endpoint = {"id": "e1", "interface": "public", "region": "RegionOne"}
        return {
            "token": {
                "methods": ["password"],
                "expires_at": EXPIRES,
                "issued_at": "2026-01-01T00:00:00.000000Z",
                "user": {"id": "u1", "name": "neutron", "domain": {"id": "default"}},
                "project": {"id": "p1", "name": "service", "domain": {"id": "default"}},
                "roles": [{"id": "r1", "name": "admin"}],
                "catalog": [
                    {
                        "type": "compute",
                        "name": "nova",
                        "id": "s1",
                        "endpoints": [{**endpoint, "region_id": "RegionOne", "url": url}],
                    }
                ],
            }
        }

    def take(self, events: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
            if self.unavailable:
                return 503, {"message": "Service Unavailable"}
            answered = []
            for event in events:
                known = event.get("server_uuid") not in self.unknown_servers
                if known:
                    self.events.append(event)
                answered.append({**event, "code": 200 if known else 404})
        code = 200 if all(e["code"] == 200 for e in answered) else 207
        return code, {"events": answered}

    def seen(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return [(e["name"], e["server_uuid"], e["tag"]) for e in self.events]
