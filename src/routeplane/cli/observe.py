"""The listener a daemon serves to its operators on ``--metrics-listen HOST:PORT``.

- ``/metrics``: the process's Prometheus registry in the text exposition format;
- ``/healthz``: 200 while the process serves at all (liveness: restart it otherwise);
- ``/readyz``: 200 when the daemon does its job (the agent in sync with the store and its
  policy applied; the api's store reachable; the controller's store reachable), else 503;
  the body is the checks as JSON, so an operator sees which one failed;
- ``/status``: what the daemon knows about itself as JSON, when it has such a report
  (the agent's endpoints and BGP sessions, which ``routeplane status`` prints).

A small threaded HTTP server of the standard library in a daemon thread: a scrape reads
counters the daemon keeps anyway and never waits for its loop. Nothing here knows a
particular daemon: each composition root passes its registry and its checks.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from routeplane.model.errors import StoreError
from routeplane.store import Store

LOG = logging.getLogger("routeplane.observe")
Checks = Callable[[], Mapping[str, Any]]  # {"ready": bool, ...what was checked}


class Observer:
    """The listener of one daemon; ``close()`` stops it."""

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        ready: Checks,
        status: Checks | None = None,
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: (200, "text/plain; charset=utf-8", b"ok\n"),
            "/readyz": lambda: _json(ready(), check=True),
        }
        if status is not None:
            routes["/status"] = lambda: _json(status(), check=False)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    code, kind, body = 404, "text/plain; charset=utf-8", b"not found\n"
                else:
                    try:
                        code, kind, body = route()
                    except Exception as exc:  # a broken check must not end the listener
                        LOG.exception("%s failed", self.path)
                        code, kind, body = 500, "text/plain; charset=utf-8", f"{exc}\n".encode()
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Scrapes every few seconds are not news: no access log."""

        self.server = ThreadingHTTPServer(address, Handler)
        self.server.daemon_threads = True
        self.address = self.server.server_address
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="observe", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json(checks: Mapping[str, Any], *, check: bool) -> tuple[int, str, bytes]:
    code = 200 if not check or checks.get("ready") else 503
    return code, "application/json", (json.dumps(checks, sort_keys=True) + "\n").encode()


def store_ready(store: Store) -> dict[str, Any]:
    """``/readyz`` of a daemon that can work when its store answers (api, controller)."""
    try:
        return {"ready": True, "store_reachable": True, "store_revision": store.revision()}
    except StoreError as exc:
        return {"ready": False, "store_reachable": False, "error": str(exc)}


def registry() -> CollectorRegistry:
    """A daemon's registry: its own metrics are added by its composition root; the
    process's (CPU, memory, open files) and the interpreter's are there from the start."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: half a scrape
    found = CollectorRegistry()
    ProcessCollector(registry=found)
    PlatformCollector(registry=found)
    return found


def serve(
    address: tuple[str, int] | None,
    registry: CollectorRegistry,
    ready: Checks,
    status: Checks | None = None,
) -> Observer | None:
    """The listener on ``address``, or None without one (``--metrics-listen`` not given)."""
    if address is None:
        return None
    return Observer(address, registry, ready, status)


__all__ = ["Checks", "Observer", "registry", "serve", "store_ready"]
