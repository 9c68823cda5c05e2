"""Quotas: how many of each resource a project may hold, enforced where it is created.

Neutron's quota API (``quotas``, ``quota_details``): per project limits over Neutron's
defaults, ``-1`` for unlimited; admins set and reset them, a project reads its own.
Stored as ``quotas/<project>`` = the limits that differ from the defaults.

Usage is kept, not counted: ``quota_usage/<project>/<resource>`` = ``{"in_use": n}`` is
written in the same store transaction as every create and delete of a counted resource,
on condition that it is unchanged since it was read (its ``mod_revision``). A create is
then O(1) in the number of documents, and enforcement is exact: of two racing creates
for the last unit the loser fails that compare, runs again, reads the winner's count and
gets ``OverQuota``; a racing delete makes the other side run again too. The same
compare-and-write works on every store backend (sqlite and etcd transactions alike).

One key every create in a project compares would serialise several api processes on
it; an api process that lost a race on it charges that project's creates to a grant of
its own instead (:mod:`routeplane.services.quota_grants`): the usage key then also keeps
``granted``, the units handed out, and what is in use is ``in_use`` plus the grants' use.

Repair: a missing usage key (a project's first resource, a store written before usage
was kept, or an operator deleting the key after editing documents by hand) is recounted
from the documents once and then created with a compare-absent, so two recounts cannot
both land. A key written by the older "count on every create" scheme (``{"used": n}``,
stale after deletes) is recounted the same way.

What is counted: every document of a counted kind (:data:`KINDS`) with its
``project_id``, and the rules embedded in each security group document. A change's
effect on usage is derived from its operations (:func:`usage_deltas`): a create is a
compare-absent claim (:meth:`Change.claim`), a delete reads the document it removes, a
security group write compares its rule count before and after. Only what the request
asks to create is checked against the limit (a document claimed, a rule added to an
existing group); the default rules of a new group are counted but not refused, as in
Neutron, where only the API resource being created is checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from routeplane.services.attributes import Invalid, to_int
from routeplane.services.context import Context
from routeplane.services.errors import ApiFault, bad_request, forbidden, invalid_input
from routeplane.services.quota_grants import Grants, grant_value, usage_doc, usage_value
from routeplane.services.repo import ROOT, Change, Doc, Outcome, Repo, key
from routeplane.store import Delete, Put

# Neutron's defaults, in the order Neutron answers with.
DEFAULTS: dict[str, int] = {
    "network": 100,
    "subnet": 100,
    "subnetpool": -1,
    "port": 500,
    "router_route": 30,
    "router": 10,
    "floatingip": 50,
    "rbac_policy": 10,
    "security_group": 10,
    "security_group_rule": 100,
}
# The store kind of each resource a create is charged for.
KINDS = {
    "networks": "network",
    "subnets": "subnet",
    "ports": "port",
    "routers": "router",
    "floatingips": "floatingip",
    "security_groups": "security_group",
}


def over_quota(resources: list[str]) -> ApiFault:
    return ApiFault("OverQuota", 409, f"Quota exceeded for resources: {sorted(resources)}.")


class Quotas:
    """The quota API's use cases and the charge taken before every commit."""

    def __init__(self, repo: Repo, grants: Grants | None = None) -> None:
        self.repo = repo
        self.grants = Grants(repo) if grants is None else grants
        repo.before_commit.append(self.enforce)

    # limits ------------------------------------------------------------------------------
    def limits(self, project: str) -> dict[str, int]:
        doc = self.repo.get_key(key("quotas", project))
        stored = {} if doc is None else doc.value
        return {name: int(stored.get(name, default)) for name, default in DEFAULTS.items()}

    def recount(self, project: str, resource: str) -> int:
        """The use counted from the documents: O(all documents of the kind), the repair."""
        if resource == "security_group_rule":
            return sum(
                len(d.value.get("security_group_rules", []))
                for d in self.repo.list("security_groups")
                if d.value.get("project_id") == project
            )
        kinds = [k for k, r in KINDS.items() if r == resource]
        return sum(
            1 for k in kinds for d in self.repo.list(k) if d.value.get("project_id") == project
        )

    def _usage(self, project: str, resource: str) -> tuple[Doc | None, int | None]:
        """The usage key as stored, and its count if it is one this scheme kept."""
        doc = self.repo.get_key(key("quota_usage", project, resource))
        kept = None if doc is None else doc.value.get("in_use")
        return doc, kept if isinstance(kept, int) else None

    def used(self, project: str, resource: str) -> tuple[int, int]:
        """In use (on the usage key and in grants), and granted but not used yet."""
        _doc, kept = self._usage(project, resource)
        if kept is None:
            return self.recount(project, resource), 0
        in_grants, reserved = self.grants.counted(project, resource)
        return kept + in_grants, reserved

    # enforcement -------------------------------------------------------------------------
    def _old(self, change: Change, op_key: str, claimed: set[str]) -> dict[str, Any] | None:
        """What a written key held before the change, compared so the delta stays true."""
        if op_key in claimed:
            return None
        doc = self.repo.get_key(op_key)
        change.depends_on(doc, op_key)
        return None if doc is None else doc.value

    def enforce(self, change: Change) -> None:
        """Write the usage of every project and resource the change affects, each compared
        on its revision; refuse a change that takes a project over a limit."""
        deltas, checked = usage_deltas(change, lambda k, claimed: self._old(change, k, claimed))
        over: list[str] = []
        for (project, resource), delta in sorted(deltas.items()):
            if delta != 0 and not self._charge(change, project, resource, delta, checked):
                over.append(resource)
        if over:
            raise over_quota(over)

    def _limit(self, change: Change, project: str, resource: str) -> tuple[int, int]:
        """The limit, and the revision of the project's limits (0: the defaults), which
        the change depends on."""
        quota_key = key("quotas", project)
        doc = self.repo.get_key(quota_key)
        change.depends_on(doc, quota_key)
        return self.limits(project)[resource], 0 if doc is None else doc.mod_revision

    def _charge(
        self, change: Change, project: str, resource: str, delta: int, checked: set[tuple[str, str]]
    ) -> bool:
        """Count ``delta``: on this process's grant when it has one or the usage key is
        contended (``quota_grants``), else on the usage key. False: over the limit."""
        usage_key = key("quota_usage", project, resource)
        asked = delta > 0 and (project, resource) in checked
        if asked and usage_key in self.grants.contended:
            limit, stamp = self._limit(change, project, resource)
            charged = self.grants.charge(change, project, resource, delta, limit=limit, stamp=stamp)
            if charged is not None:  # (None: the count is repaired on the usage key first)
                return charged
        if delta < 0 and self.repo.get_key(self.grants.own_key(project, resource)) is not None:
            grant = self.grants.own(change, project, resource)
            if grant is not None:  # a delete counts on the grant: no usage key written
                change.put(grant.key, {**grant.value, "used": grant_value(grant)[0] + delta})
                return True
        self.repo.hold(usage_key)  # this process's creates in a project take turns
        doc, kept = self._usage(project, resource)
        change.depends_on(doc, usage_key)
        granted = usage_value(doc)[1]
        if kept is None:  # recounted from the documents: grants are counted there too
            self.grants.fold_all(change, project, resource)
            kept, granted = self.recount(project, resource), 0
        used = kept + delta
        if asked:
            limit, _stamp = self._limit(change, project, resource)
            if 0 <= limit < used + granted and granted:  # the grants' unused units come back
                used, granted = used + self.grants.fold_all(change, project, resource), 0
            if 0 <= limit < used + granted:
                return False
        change.put(usage_key, usage_doc(used if granted else max(used, 0), granted))
        return True

    # the API -----------------------------------------------------------------------------
    @staticmethod
    def _readable(ctx: Context, project: str) -> None:
        if not ctx.sees(project):
            raise forbidden("get_quota")

    def show(self, ctx: Context, project: str) -> dict[str, int]:
        self._readable(ctx, project)
        return self.limits(project)

    def default(self, ctx: Context, project: str) -> dict[str, int]:
        self._readable(ctx, project)
        return dict(DEFAULTS)

    def details(self, ctx: Context, project: str) -> dict[str, dict[str, int]]:
        self._readable(ctx, project)
        shown = {}
        for name, limit in self.limits(project).items():
            used, reserved = self.used(project, name)
            shown[name] = {"limit": limit, "used": used, "reserved": reserved}
        return shown

    def list_all(self, ctx: Context) -> list[dict[str, Any]]:
        if not ctx.is_admin:
            raise forbidden("get_quota")
        return [
            {**self.limits(project), "project_id": project, "tenant_id": project}
            for project in sorted(self.repo.keys("quotas"))
        ]

    @staticmethod
    def _checked(body: Any) -> dict[str, int]:
        """Neutron's quota body: known resources only, integers of at least -1."""
        if not isinstance(body, dict) or not isinstance(body.get("quota"), dict):
            raise bad_request("Unable to find 'quota' in request body")
        asked: dict[str, Any] = body["quota"]
        unknown = sorted(set(asked) - set(DEFAULTS))
        if unknown:
            raise bad_request(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
        limits: dict[str, int] = {}
        for name, value in asked.items():
            try:
                number = to_int(value)
            except Invalid as exc:
                raise invalid_input(str(exc)) from None
            if number < -1:
                raise bad_request(
                    f"Invalid input for {name}. Reason: '{number}' is too small - must be at "
                    "least '-1'."
                )
            limits[name] = number
        return limits

    def _write(
        self, ctx: Context, project: str, change_limits: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        if not ctx.is_admin:
            raise forbidden("update_quota")
        quota_key = key("quotas", project)

        def use_case() -> Outcome[None]:
            doc = self.repo.get_key(quota_key)
            change = Change()
            change.depends_on(doc, quota_key)
            limits = change_limits({} if doc is None else dict(doc.value))
            if limits:
                change.put(quota_key, limits)
            elif doc is not None:
                change.delete(quota_key)
            return Outcome(change, None)

        self.repo.run(use_case)

    def update(self, ctx: Context, project: str, body: Any) -> dict[str, int]:
        if not ctx.is_admin:
            raise forbidden("update_quota")
        asked = self._checked(body)
        self._write(ctx, project, lambda stored: {**stored, **asked})
        return self.limits(project)

    def reset(self, ctx: Context, project: str) -> None:
        self._write(ctx, project, lambda _stored: {})


def _counts(kind: str, value: Any) -> Counter[tuple[str, str]]:
    """What one stored document counts for: itself, and a group's embedded rules."""
    counts: Counter[tuple[str, str]] = Counter()
    if not isinstance(value, dict) or not value.get("project_id"):
        return counts
    project = str(value["project_id"])
    counts[(project, KINDS[kind])] += 1
    if kind == "security_groups":
        counts[(project, "security_group_rule")] += len(value.get("security_group_rules", []))
    return counts


def usage_deltas(
    change: Change, old: Callable[[str, set[str]], dict[str, Any] | None]
) -> tuple[Counter[tuple[str, str]], set[tuple[str, str]]]:
    """How a change moves each (project, resource) usage, and which increases are asked
    for (checked against the limit). ``old(key, claimed)`` reads what a written key held.

    Pure over ``old``: a counted document's update other than a security group's cannot
    change a count (the project of a document never changes), so it costs no read.
    """
    claimed = {c.key for c in change.compares if c.target == "create_revision"}
    deltas: Counter[tuple[str, str]] = Counter()
    checked: set[tuple[str, str]] = set()
    for op in change.ops:
        if not isinstance(op, Put | Delete):
            continue
        kind, _, rest = op.key[len(ROOT) :].partition("/")
        if kind not in KINDS or not rest or "/" in rest:
            continue
        new = op.value if isinstance(op, Put) else None
        if new is not None and op.key not in claimed and kind != "security_groups":
            continue
        before = old(op.key, claimed)
        after_counts, before_counts = _counts(kind, new), _counts(kind, before)
        deltas.update(after_counts)
        deltas.subtract(before_counts)
        if before is None:
            checked.update(k for k in after_counts if k[1] == KINDS[kind])
        else:
            checked.update(k for k, n in after_counts.items() if n > before_counts[k])
    return deltas, checked


__all__ = ["DEFAULTS", "Quotas", "over_quota", "usage_deltas"]
