"""Quota enforcement is part of the creating transaction, on every store backend.

Two api processes (two ``Services`` on one store) create a router for a project whose
quota has room for one more. The second create is made to land exactly between the
first one's check and its commit: the first must then lose its compare, count again
and answer ``OverQuota``, so the project never holds more than its limit.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from routeplane.services.context import Context
from routeplane.services.errors import ApiFault
from routeplane.services.registry import Services
from routeplane.services.repo import Change
from routeplane.store import Store

ADMIN = Context("admin", frozenset({"admin", "member", "reader"}), "admin")


def test_a_create_between_check_and_commit_takes_the_last_unit(
    store_url: str, open_url: Callable[[str], Store]
) -> None:
    one, two = Services(open_url(store_url)), Services(open_url(store_url))
    one.routers.create(ADMIN, {"project_id": "p1", "name": "r0"})
    one.quotas.update(ADMIN, "p1", {"quota": {"router": 2}})
    interleaved: list[dict[str, object]] = []

    def competitor(change: Change) -> None:
        if not interleaved:  # once, after the first attempt's quota check
            interleaved.append(two.routers.create(ADMIN, {"project_id": "p1", "name": "r2"}))

    one.repo.before_commit.append(competitor)
    with pytest.raises(ApiFault) as refused:
        one.routers.create(ADMIN, {"project_id": "p1", "name": "r1"})
    assert (refused.value.type_name, refused.value.code, refused.value.message) == (
        "OverQuota",
        409,
        "Quota exceeded for resources: ['router'].",
    )
    names = sorted(r["name"] for r in one.routers.list_visible(ADMIN) if r["project_id"] == "p1")
    assert names == ["r0", "r2"]
