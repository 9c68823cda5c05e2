"""Who may see and use a network: its owner, the admin, and what RBAC grants.

Neutron's network RBAC (``rbac-policies``): a policy grants ``access_as_shared`` (see
the network, attach ports) or ``access_as_external`` (see it, take floating IPs and
router gateways from it) to one project or to every project (``*``). ``shared=True`` on
a network *is* a wildcard ``access_as_shared`` policy and ``router:external=True`` a
wildcard ``access_as_external`` one: setting either creates the policy. The other way,
as Neutron maps it: the wildcard shared policy sets ``shared``, and *any* external policy
sets ``router:external`` (the network is external, for the projects granted). The flags
stay stored on the network, so the common cases (own, shared) need no extra read.

Each grant has an index key ``network-access/<network>/<action>:<target>`` holding the
policy's id: created with the policy (so two equal policies cannot both be created),
read to decide what a project may do with a network (one range read, only for networks
the caller does not own). Every grant change also rewrites the network's document, so
a port create racing a revocation (it compares the network) runs again and is refused.

Revoking is refused while a project that would lose access still has ports on the
network (Neutron's ``Multiple projects are using it``). Pure rules over documents and
the store's reads; the services raise and write.
"""

from __future__ import annotations

from typing import Any

from routeplane.services.common import bump
from routeplane.services.context import Context
from routeplane.services.repo import Change, Doc, Repo, key, new_id, prefix

SHARED = "access_as_shared"
EXTERNAL = "access_as_external"
ACTIONS = (SHARED, EXTERNAL)
FLAG = {SHARED: "shared", EXTERNAL: "router:external"}
WILDCARD = "*"
INDEX = "network-access"
Grant = tuple[str, str]  # (action, target project or "*")


def index_key(network_id: str, action: str, target: str) -> str:
    return key(INDEX, network_id, f"{action}:{target}")


def grants(repo: Repo, network_id: str) -> dict[Grant, str]:
    """Every grant on the network, with the id of the policy making it."""
    found: dict[Grant, str] = {}
    for kv in repo.store.range(prefix(INDEX, network_id)).items:
        action, _, target = kv.key.rsplit("/", 1)[1].partition(":")
        if isinstance(kv.value, dict):
            found[(action, target)] = str(kv.value.get("id"))
    return found


def owns(ctx: Context, doc: dict[str, Any]) -> bool:
    return ctx.sees(str(doc.get("project_id")))


def has(
    ctx: Context,
    repo: Repo,
    doc: dict[str, Any],
    actions: tuple[str, ...],
    *,
    external_to_all: bool = False,
) -> bool:
    """Whether one of ``actions`` is granted to the caller: by a policy for its project
    or for all; ``shared`` alone says the latter. ``router:external`` is set by any
    external grant (as in Neutron), so it says "all" only with no policy behind it (a
    network stored before policies existed). ``external_to_all``: also true if the
    network is external to every project."""
    if SHARED in actions and doc.get("shared"):
        return True
    held = grants(repo, str(doc["id"]))
    if any((a, ctx.project_id) in held or (a, WILDCARD) in held for a in actions):
        return True
    if not doc.get("router:external") or not (external_to_all or EXTERNAL in actions):
        return False
    return (EXTERNAL, WILDCARD) in held or not any(a == EXTERNAL for a, _ in held)


def flag_value(action: str, remaining: set[Grant]) -> bool:
    """A network's flag for ``action`` given its grants: ``shared`` is the wildcard
    shared grant, ``router:external`` any external grant (Neutron's mapping)."""
    if action == SHARED:
        return (SHARED, WILDCARD) in remaining
    return any(a == EXTERNAL for a, _ in remaining)


def covers(remaining: set[Grant], project: str) -> bool:
    return (SHARED, WILDCARD) in remaining or (SHARED, project) in remaining


def users_left_out(repo: Repo, network: dict[str, Any], remaining: set[Grant]) -> list[str]:
    """Projects with ports on the network that ``remaining`` shared grants would not admit."""
    owner = str(network.get("project_id"))
    projects = {
        str(p.value.get("project_id"))
        for p in repo.list("ports")
        if p.value.get("network_id") == network["id"]
    }
    return sorted(p for p in projects - {owner, ""} if not covers(remaining, p))


def policy_doc(project: str, network_id: str, action: str, target: str) -> dict[str, Any]:
    return {
        "id": new_id(),
        "project_id": project,
        "tenant_id": project,
        "object_type": "network",
        "object_id": network_id,
        "action": action,
        "target_tenant": target,
    }


def write_grant(change: Change, policy: dict[str, Any], *, with_doc: bool = True) -> None:
    """The policy's index key (create-if-absent: no duplicate), and the policy itself."""
    if with_doc:
        change.put(key("rbac_policies", policy["id"]), policy)
    index = index_key(policy["object_id"], policy["action"], policy["target_tenant"])
    change.claim(index, {"id": policy["id"]})


def drop_grant(change: Change, policy: dict[str, Any], *, with_doc: bool = True) -> None:
    if with_doc:
        change.delete(key("rbac_policies", policy["id"]))
    change.delete(index_key(policy["object_id"], policy["action"], policy["target_tenant"]))


def touch(change: Change, net: Doc, action: str, remaining: set[Grant]) -> None:
    """Rewrite the network once: its flag for ``action`` as its ``remaining`` grants say,
    and in any case a new store revision, so that what was decided on the old grants (a
    port create) runs again."""
    updated = dict(net.value)
    flag, value = FLAG[action], flag_value(action, remaining)
    if bool(updated.get(flag)) != value:
        updated = {**bump(updated), flag: value}
    change.depends_on(net)
    change.put(net.key, updated)


def wildcards_for(
    repo: Repo, change: Change, network: dict[str, Any], old: dict[str, Any] | None
) -> None:
    """A network created or updated with a flag changed: its wildcard policies follow.

    ``old`` is None on create. Unsharing is the caller's to refuse first (in use)."""
    for action, flag in FLAG.items():
        before = bool(old and old.get(flag))
        after = bool(network.get(flag))
        if after and not before:
            write_grant(change, policy_doc(network["project_id"], network["id"], action, WILDCARD))
        elif before and not after:
            policy_id = grants(repo, network["id"]).get((action, WILDCARD))
            if policy_id is not None:
                change.delete(key("rbac_policies", policy_id))
                change.delete(index_key(network["id"], action, WILDCARD))


def drop_all(repo: Repo, change: Change, network_id: str) -> None:
    """A network deleted: its policies and index keys go with it."""
    for (action, target), policy_id in grants(repo, network_id).items():
        change.delete(key("rbac_policies", policy_id))
        change.delete(index_key(network_id, action, target))


__all__ = [
    "ACTIONS",
    "EXTERNAL",
    "SHARED",
    "WILDCARD",
    "covers",
    "drop_all",
    "drop_grant",
    "flag_value",
    "grants",
    "has",
    "index_key",
    "owns",
    "policy_doc",
    "touch",
    "users_left_out",
    "wildcards_for",
    "write_grant",
]
