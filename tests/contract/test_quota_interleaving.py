"""Quota enforcement is part of the creating transaction, on every store backend.

Two api processes (two ``Services`` on one store) create a router for a project whose
quota has room for one more. The second create is made to land exactly between the
first one's check and its commit: the first must then lose its compare, count again
and answer ``OverQuota``, so the project never holds more than its limit. A delete
landing there frees the unit instead. The usage kept in ``quota_usage`` follows creates
and deletes exactly, and is recounted from the documents when it is missing or was
written by the older scheme. Each test has projects of its own (the etcd is shared).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest

from routeplane.services.context import Context
from routeplane.services.errors import ApiFault
from routeplane.services.registry import Services
from routeplane.services.repo import Change, key
from routeplane.store import Delete, Store

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


def project() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def test_a_delete_between_check_and_commit_is_counted(
    store_url: str, open_url: Callable[[str], Store]
) -> None:
    one, two = Services(open_url(store_url)), Services(open_url(store_url))
    p = project()
    r0 = one.routers.create(ADMIN, {"project_id": p, "name": "r0"})
    one.quotas.update(ADMIN, p, {"quota": {"router": 2}})
    deleted: list[str] = []

    def competitor(change: Change) -> None:
        if not deleted:  # once, after the first attempt counted r0
            two.routers.delete(ADMIN, r0["id"], None)
            deleted.append(r0["id"])

    one.repo.before_commit.append(competitor)
    one.routers.create(ADMIN, {"project_id": p, "name": "r1"})
    assert two.quotas.details(ADMIN, p)["router"]["used"] == 1
    two.routers.create(ADMIN, {"project_id": p, "name": "r2"})
    with pytest.raises(ApiFault):
        two.routers.create(ADMIN, {"project_id": p, "name": "r3"})


def test_usage_follows_creates_and_deletes_and_is_repaired(
    store_url: str, open_url: Callable[[str], Store]
) -> None:
    store = open_url(store_url)
    api = Services(store)
    p = project()
    ids = [api.routers.create(ADMIN, {"project_id": p, "name": f"r{i}"})["id"] for i in range(3)]
    api.routers.delete(ADMIN, ids[0], None)
    usage = key("quota_usage", p, "router")
    assert store.get(usage).value == {"in_use": 2}  # type: ignore[union-attr]
    store.txn([], [Delete(usage)])  # lost: recounted from the documents on next use
    assert api.quotas.details(ADMIN, p)["router"]["used"] == 2
    api.routers.create(ADMIN, {"project_id": p, "name": "r3"})
    assert store.get(usage).value == {"in_use": 3}  # type: ignore[union-attr]
    store.put(usage, {"used": 99})  # the older scheme's count, stale after deletes
    api.quotas.update(ADMIN, p, {"quota": {"router": 4}})
    api.routers.create(ADMIN, {"project_id": p, "name": "r4"})
    assert store.get(usage).value == {"in_use": 4}  # type: ignore[union-attr]


def test_a_groups_rules_are_counted_with_it_and_leave_with_it(
    store_url: str, open_url: Callable[[str], Store]
) -> None:
    api = Services(open_url(store_url))
    p = project()
    group = api.security_groups.create(ADMIN, {"project_id": p, "name": "web"})
    defaults = len(group["security_group_rules"])
    rule = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp"}
    api.security_group_rules.create(ADMIN, rule)
    used = api.quotas.details(ADMIN, p)["security_group_rule"]["used"]
    # the project's default group came with the first group, with rules of its own
    groups = [g for g in api.security_groups.list_visible(ADMIN) if g["project_id"] == p]
    assert used == sum(len(g["security_group_rules"]) for g in groups) > defaults + 1
    rules = used
    api.quotas.update(ADMIN, p, {"quota": {"security_group_rule": rules}})
    with pytest.raises(ApiFault) as refused:
        api.security_group_rules.create(ADMIN, {**rule, "protocol": "udp"})
    assert refused.value.message == "Quota exceeded for resources: ['security_group_rule']."
    api.security_groups.delete(ADMIN, group["id"], None)
    after = api.quotas.details(ADMIN, p)["security_group_rule"]["used"]
    assert after == rules - defaults - 1


def test_two_processes_racing_creates_and_deletes_keep_the_limit_and_an_exact_count(
    store_url: str, open_url: Callable[[str], Store]
) -> None:
    """Two api processes (two Services on their own store connections), two threads each:
    after their first lost race they charge grants of their own (``quota_grants``), and
    still exactly the limit is created, the usage shown is the documents' count after
    deletes by both, and a lowered limit holds."""
    apis = [Services(open_url(store_url)) for _ in range(2)]
    p = project()
    apis[0].quotas.update(ADMIN, p, {"quota": {"router": 7}})

    def race(work: Callable[[Services, int], None], rounds: int) -> list[str]:
        refused: list[str] = []

        def thread(api: Services, base: int) -> None:
            for i in range(rounds):
                try:
                    work(api, base + i)
                except ApiFault as exc:
                    refused.append(exc.type_name)

        threads = [threading.Thread(target=thread, args=(apis[n % 2], n * 100)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return refused

    def routers() -> list[str]:
        return [r["id"] for r in apis[1].routers.list_visible(ADMIN) if r["project_id"] == p]

    def create(api: Services, i: int) -> None:
        api.routers.create(ADMIN, {"project_id": p, "name": f"r{i}"})

    refused = race(create, 4)  # 16 asked for, 7 fit
    assert (len(routers()), refused.count("OverQuota"), len(refused)) == (7, 9, 9)
    assert apis[0].quotas.details(ADMIN, p)["router"]["used"] == 7
    ids = routers()
    race(lambda api, i: api.routers.delete(ADMIN, ids[i % 100 + 2 * (i // 100)], None), 1)
    assert apis[1].quotas.details(ADMIN, p)["router"]["used"] == len(routers()) == 3
    apis[1].quotas.update(ADMIN, p, {"quota": {"router": 4}})
    refused = race(create, 2)
    assert (len(routers()), len(refused)) == (4, 7)
    assert apis[0].quotas.details(ADMIN, p)["router"]["used"] == 4
