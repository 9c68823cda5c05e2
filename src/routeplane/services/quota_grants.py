"""Quota grants: units of a project's quota handed to one api process in advance.

Why: a create is charged on the project's usage key (``quotas.py``), so every create in
a project compares that one key. Within one api process creates take turns on it
(``Repo.hold``); across processes they refuse each other's transactions, and a second
api process adds conflicts, not throughput (issue #17). So a process that lost a race
on a usage key takes a *grant*: ``quota_grants/<project>/<resource>/<holder>`` =
``{"used": u, "granted": k, "limit_revision": L}``, and charges its creates there, a key
no other process writes. The usage key keeps ``in_use`` (what is counted outside any
grant) and ``granted`` (the sum of all grants' ``k``).

Strict, with no lock across processes (``docs/design/store.md``, "Quota usage across api
processes"): the true count is ``in_use + Σu``; each grant keeps ``u ≤ k`` (its own
compare), and a grant is made or grown only in a transaction that compares the usage
key and keeps ``in_use + granted ≤ limit``; a create outside grants is checked against
``in_use + granted`` too. So the count never exceeds the limit. A grant is good for the
limit it was made under (``limit_revision``: the ``quotas/<project>`` revision, 0 for
the defaults); under a new limit it is made again. When the limit has no room left for
a grant, the others' grants are folded into ``in_use`` (their unused units come back;
their holders find their grant gone and ask again): that also returns what a stopped
process held. Deletes by a process with a grant count there (``u`` may go below 0).
"""

from __future__ import annotations

import uuid
from typing import Any

from routeplane.services.repo import Change, Doc, Repo, key

GRANTS = "quota_grants"
CHUNK = 32  # units taken beyond the request when a grant is made: refills per 32 creates


def grant_value(doc: Doc | None) -> tuple[int, int, int]:
    """A grant's ``used``, ``granted`` and ``limit_revision`` (-1: no grant)."""
    if doc is None:
        return 0, 0, -1
    value = doc.value
    return (
        int(value.get("used", 0)),
        int(value.get("granted", 0)),
        int(value.get("limit_revision", -1)),
    )


def usage_value(doc: Doc | None) -> tuple[int | None, int]:
    """A usage key's ``in_use`` (None: missing or another scheme's) and ``granted``."""
    kept = None if doc is None else doc.value.get("in_use")
    granted = 0 if doc is None else int(doc.value.get("granted", 0))
    return (kept if isinstance(kept, int) else None), granted


def usage_doc(in_use: int, granted: int) -> dict[str, Any]:
    return {"in_use": in_use, "granted": granted} if granted else {"in_use": in_use}


class Grants:
    """This api process's grants, and which usage keys it has seen contended."""

    def __init__(self, repo: Repo, holder: str | None = None) -> None:
        self.repo = repo
        self.holder = holder or uuid.uuid4().hex[:12]
        self.contended: set[str] = set()
        repo.on_refused.append(self._lost)

    def _lost(self, keys: set[str]) -> None:
        self.contended |= {k for k in keys if k.startswith(key("quota_usage", ""))}

    def own_key(self, project: str, resource: str) -> str:
        return key(GRANTS, project, resource, self.holder)

    def own(self, change: Change, project: str, resource: str) -> Doc | None:
        """This process's grant (the change depends on it), after its turn on it."""
        grant_key = self.own_key(project, resource)
        self.repo.hold(grant_key)
        grant = self.repo.get_key(grant_key)
        change.depends_on(grant, grant_key)
        return grant

    def charge(
        self, change: Change, project: str, resource: str, delta: int, *, limit: int, stamp: int
    ) -> bool | None:
        """Charge ``delta`` to this process's grant, growing it from the usage key when it
        is short or was made under another limit (``stamp``); False: over the limit;
        None: the usage key must be recounted first (missing, or another scheme's)."""
        grant = self.own(change, project, resource)
        used, size, made_under = grant_value(grant)
        grant_key = self.own_key(project, resource)
        if grant is not None and made_under == stamp and (limit < 0 or used + delta <= size):
            change.put(grant_key, {"used": used + delta, "granted": size, "limit_revision": stamp})
            return True
        usage_key = key("quota_usage", project, resource)
        base = self.repo.get_key(usage_key)
        change.depends_on(base, usage_key)
        kept, granted = usage_value(base)
        if kept is None:
            return None
        in_use, others, need = kept, granted - size, used + delta

        def room() -> int:
            return limit - in_use - others if limit >= 0 else need + CHUNK

        if need > room():  # fold the others' grants: their unused units come back
            for other in self.repo.list(GRANTS, project, resource):
                if other.key != grant_key:
                    other_used, other_size, _ = grant_value(other)
                    change.depends_on(other)
                    change.delete(other.key)
                    in_use, others = in_use + other_used, others - other_size
            if need > room():
                return False
        new_size = min(need + CHUNK, room())
        change.put(grant_key, {"used": need, "granted": new_size, "limit_revision": stamp})
        change.put(usage_key, usage_doc(in_use, others + new_size))
        return True

    def fold_all(self, change: Change, project: str, resource: str) -> int:
        """Delete every grant (their holders ask again); returns the units they used, now
        to be counted on the usage key. For a create outside grants that finds the limit
        full of grants, and for a usage recounted from the documents."""
        used = 0
        for grant in self.repo.list(GRANTS, project, resource):
            change.depends_on(grant)
            change.delete(grant.key)
            used += grant_value(grant)[0]
        return used

    def counted(self, project: str, resource: str) -> tuple[int, int]:
        """What the grants hold: units used and units granted but unused."""
        grants = [grant_value(g) for g in self.repo.list(GRANTS, project, resource)]
        return sum(u for u, _, _ in grants), sum(max(k - u, 0) for u, k, _ in grants)


__all__ = ["CHUNK", "GRANTS", "Grants", "grant_value", "usage_doc", "usage_value"]
