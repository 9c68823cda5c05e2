"""Choosing a backend from a store URL: the one place that knows both backends' names.

- ``sqlite:///var/lib/routeplane/store.db`` (absolute path) or ``sqlite://store.db``
  (relative to the working directory); query options ``history`` (revisions of change
  log kept for watches) and ``timeout`` (seconds to wait for the write lock);
- ``etcd://host:port[,host:port...]``; query option ``timeout`` (seconds per request).

The etcd backend is imported only when asked for, so the embedded default needs no
HTTP client at all.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from routeplane.model.errors import InvalidRequest
from routeplane.store.base import Store

DEFAULT_STORE_URL = "sqlite:///var/lib/routeplane/store.db"


def _number(query: dict[str, list[str]], name: str, default: float) -> float:
    if name not in query:
        return default
    try:
        value = float(query[name][-1])
    except ValueError:
        raise InvalidRequest(
            f"store URL option {name}={query[name][-1]!r} is not a number"
        ) from None
    if value <= 0:
        raise InvalidRequest(f"store URL option {name} must be positive")
    return value


def open_store(url: str) -> Store:
    """Open the store ``url`` names; ``InvalidRequest`` for a URL we cannot use."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "sqlite":
        from routeplane.store.sqlite import SqliteStore  # noqa: PLC0415

        path = parts.netloc + parts.path
        if not path:
            raise InvalidRequest(f"store URL {url!r} names no file")
        return SqliteStore(
            path,
            busy_timeout=_number(query, "timeout", 5.0),
            history=int(_number(query, "history", 100_000)),
            url=url,
        )
    if parts.scheme == "etcd":
        from routeplane.store.etcd import EtcdStore  # noqa: PLC0415

        return EtcdStore.from_url(url)
    raise InvalidRequest(f"store URL {url!r}: the scheme must be sqlite:// or etcd://")


__all__ = ["DEFAULT_STORE_URL", "open_store"]
