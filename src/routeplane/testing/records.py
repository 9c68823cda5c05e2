"""Endpoint records for tests, built from loose fields but checked like the real thing.

Tests build records field by field (``**extra``, spreads of a base record); this gives
them back as :class:`~routeplane.model.endpoint.EndpointRecord` after checking at run
time that every field name is one the record has, so a misspelt field in a test fails
the test instead of silently testing a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast, get_type_hints

from routeplane.model.endpoint import EndpointRecord

FIELDS = frozenset(get_type_hints(EndpointRecord))


def record(base: Mapping[str, Any] | None = None, /, **fields: Any) -> EndpointRecord:
    """``base`` updated with ``fields``, as an endpoint record (unknown names: KeyError)."""
    merged = {**(base or {}), **fields}
    unknown = set(merged) - FIELDS
    if unknown:
        raise KeyError(f"not endpoint record fields: {sorted(unknown)}")
    return cast(EndpointRecord, merged)


__all__ = ["FIELDS", "record"]
