"""The api's Prometheus metrics: requests, their latency, and the store's races.

- ``routeplane_api_requests_total{method,route,code}`` and
  ``routeplane_api_request_duration_seconds{method,route}``: by the route's template
  (``/v2.0/ports/{port_id}``, not the URL: one series per route, not per port; a path
  no route matches is ``unmatched``), measured by a plain ASGI middleware (Starlette's
  ``BaseHTTPMiddleware`` would stream every response);
- ``routeplane_api_store_txn_conflicts_total``: transactions the store refused because
  something they compared had changed (an address or MAC claimed by a concurrent
  request, a document changed under the request); each such request is run again;
- ``routeplane_api_store_txn_gave_up_total``: requests that lost every attempt (409);
- ``routeplane_api_store_round_trips_total``: HTTP requests sent to etcd (on etcd only):
  divided by the requests answered, what one request costs in store round trips.

Nothing here changes a request or its answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routeplane.services.repo import Repo

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry, repo: Repo) -> None:
        self.requests = Counter(
            "routeplane_api_requests_total",
            "HTTP requests answered, by route and code",
            ["method", "route", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "routeplane_api_request_duration_seconds",
            "Time to answer a request, by route",
            ["method", "route"],
            buckets=BUCKETS,
            registry=registry,
        )
        registry.register(_RepoCollector(repo))


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by its route's template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        code = 500  # unless an answer starts: an exception the outer handler turns into 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(code)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - began)


class _RepoCollector(Collector):
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "routeplane_api_store_txn_conflicts",
            "Store transactions refused by a concurrent change (the request is run again)",
            self.repo.conflicts,
        )
        yield CounterMetricFamily(
            "routeplane_api_store_txn_gave_up",
            "Requests that lost every attempt to a concurrent change (answered 409)",
            self.repo.gave_up,
        )
        round_trips = getattr(self.repo.store, "round_trips", None)
        if isinstance(round_trips, int):
            yield CounterMetricFamily(
                "routeplane_api_store_round_trips",
                "HTTP requests sent to the store (etcd only)",
                round_trips,
            )


__all__ = ["ApiMetrics", "RequestMetrics"]
