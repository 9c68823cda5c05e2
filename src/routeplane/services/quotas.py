"""Quotas: how many of each resource a project may hold, enforced where it is created.

Neutron's quota API (``quotas``, ``quota_details``): per project limits over Neutron's
defaults, ``-1`` for unlimited; admins set and reset them, a project reads its own.
Stored as ``quotas/<project>`` = the limits that differ from the defaults.

Enforcement happens in the transaction that creates the resource, so two racing creates
cannot both take the last unit. Every create that counts against a limit writes the key
``quota_usage/<project>/<resource>`` (its value is the use after the create, for show) on
condition that the key is unchanged since the create counted the project's resources; the
loser of a race fails that compare, runs again, counts the winner's resource and gets
``OverQuota``. The count itself is always taken from the documents, so it cannot drift;
deletes need not write the key (a stale count only errs on the strict side). The same
compare-and-write works on every store backend (sqlite and etcd transactions alike).

What is charged: every resource document created with a compare-absent claim (see
:meth:`Change.claim`) of a counted kind, with its ``project_id``, plus what a use case
charges itself (security group rules, which live inside their group's document).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from routeplane.services.attributes import Invalid, to_int
from routeplane.services.context import Context
from routeplane.services.errors import ApiFault, bad_request, forbidden, invalid_input
from routeplane.services.repo import ROOT, Change, Outcome, Repo, key

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

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        repo.before_commit.append(self.enforce)

    # limits ------------------------------------------------------------------------------
    def limits(self, project: str) -> dict[str, int]:
        doc = self.repo.get_key(key("quotas", project))
        stored = {} if doc is None else doc.value
        return {name: int(stored.get(name, default)) for name, default in DEFAULTS.items()}

    def used(self, project: str, resource: str) -> int:
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

    # enforcement -------------------------------------------------------------------------
    @staticmethod
    def _created(change: Change) -> list[tuple[str, str]]:
        """(project, resource) of each counted document the change creates."""
        claimed = {c.key for c in change.compares if c.target == "create_revision"}
        charged: list[tuple[str, str]] = list(change.charges)
        for op_key, value in change.puts():
            if op_key not in claimed or not isinstance(value, dict):
                continue
            kind, _, rest = op_key[len(ROOT) :].partition("/")
            if kind in KINDS and rest and "/" not in rest and value.get("project_id"):
                charged.append((str(value["project_id"]), KINDS[kind]))
        return charged

    def enforce(self, change: Change) -> None:
        """Refuse a change that takes a project over a limit; otherwise make it depend on
        the counts it was checked against (the ``quota_usage`` keys)."""
        wanted = Counter(self._created(change))
        over: list[str] = []
        for (project, resource), count in sorted(wanted.items()):
            quota_key = key("quotas", project)
            change.depends_on(self.repo.get_key(quota_key), quota_key)
            limit = self.limits(project)[resource]
            if limit < 0:
                continue
            usage_key = key("quota_usage", project, resource)
            change.depends_on(self.repo.get_key(usage_key), usage_key)
            used = self.used(project, resource) + count
            if used > limit:
                over.append(resource)
            change.put(usage_key, {"used": used})
        if over:
            raise over_quota(over)

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
        return {
            name: {"limit": limit, "used": self.used(project, name), "reserved": 0}
            for name, limit in self.limits(project).items()
        }

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


__all__ = ["DEFAULTS", "Quotas", "over_quota"]
