"""``/v2.0/rbac-policies`` for networks: share a network with one project or all.

The resource Neutron's ``rbac-policies`` extension has, for ``object_type`` network
only (the one RBAC type routeplane has): ``access_as_shared`` or ``access_as_external``
granted to a ``target_tenant`` (a project id, or ``*`` — admins only). What a grant
means, and how ``shared`` / ``router:external`` map onto policies, is
:mod:`routeplane.services.core.network_access`; this module checks requests in
Neutron's order and with its answers, and writes each change in one transaction with
the network's document.

A policy is seen and changed by its owner (the network's owner who made it) and admins.
Removing or retargeting a shared grant is ``409 RbacPolicyInUse`` while a project it
admits still has ports on the network. Neutron's message wraps the reason in the name
of the internal callback that raised it ("Callback neutron.plugins.ml2...-280331 failed
with ..."); ours gives the reason alone.
"""

from __future__ import annotations

import re
from typing import Any

from routeplane.services.attributes import Attr, is_uuid, policy_denied, string
from routeplane.services.common import owner, require_write
from routeplane.services.context import Context
from routeplane.services.core import network_access as access
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, invalid_input
from routeplane.services.repo import Change, Doc, Outcome

ATTRS: dict[str, Attr] = {
    "id": Attr(post=False, put=False, default=None, validate=is_uuid, sort=True),
    "project_id": Attr(put=False, default=None, validate=string(255), sort=True),
    "tenant_id": Attr(put=False, default=None, validate=string(255), sort=True),
    "object_type": Attr(put=False, validate=string(255), sort=True),
    "object_id": Attr(put=False, validate=is_uuid, sort=True),
    "action": Attr(put=False, validate=string(255), sort=True),
    "target_tenant": Attr(validate=string(255), sort=True),
}
HEX = "[0-9a-fA-F]"
PROJECT_ID = re.compile(f"^{HEX}{{8}}(-?{HEX}{{4}}){{3}}-?{HEX}{{12}}$")


def _check_target(ctx: Context, target: str, action: str) -> None:
    if target != access.WILDCARD and not PROJECT_ID.match(target):
        raise invalid_input(f"'{target}' is not a valid target project ID; expected a UUID or '*'")
    if target == access.WILDCARD and not ctx.is_admin:
        raise policy_denied(action, "target_tenant")


def in_use(network_id: str) -> ApiFault:
    return ApiFault(
        "RbacPolicyInUse",
        409,
        f"RBAC policy on object {network_id} cannot be removed because other objects depend "
        f"on it.\nDetails: Unable to reconfigure sharing settings for network {network_id}. "
        "Multiple projects are using it.",
    )


class RbacPolicyService(DocService):
    """Policies on networks; a policy's document lives at ``rbac_policies/<id>``."""

    name = "rbac_policy"
    collection = kind = "rbac_policies"
    attrs = ATTRS
    not_found_type = "RbacPolicyNotFound"
    not_found_message = "RBAC policy of type unknown with ID {id} not found"

    def _network(self, ctx: Context, network_id: str) -> Doc:
        """The policy's network, which the caller must own (admins: any)."""
        net = self.repo.get("networks", network_id)
        if net is None or not access.owns(ctx, net.value):
            raise invalid_input(f"Network {network_id} could not be found")
        return net

    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_rbac_policy")
        if data["object_type"] != "network":
            raise invalid_input(f"'{data['object_type']}' is not a valid RBAC object type")
        _check_target(ctx, str(data["target_tenant"]), "create_rbac_policy")
        if data["action"] not in access.ACTIONS:
            raise ApiFault(
                "InvalidActionForType",
                400,
                f"Invalid action '{data['action']}' for object type 'network'. Valid actions: "
                f"{access.ACTIONS}",
            )
        project = owner(ctx, data)

        def use_case() -> Outcome[dict[str, Any]]:
            net = self._network(ctx, str(data["object_id"]))
            policy = access.policy_doc(
                project, net.value["id"], str(data["action"]), str(data["target_tenant"])
            )
            index = access.index_key(net.value["id"], policy["action"], policy["target_tenant"])
            if self.repo.get_key(index) is not None:
                raise ApiFault(
                    "DuplicateRbacPolicy", 409, "An RBAC policy already exists with those values."
                )
            change = Change()
            access.write_grant(change, policy)
            held = set(access.grants(self.repo, net.value["id"]))
            grant = (policy["action"], policy["target_tenant"])
            access.touch(change, net, policy["action"], held | {grant})
            return Outcome(change, policy)

        return self.render(ctx, self.repo.run(use_case))

    def _regrant(
        self, change: Change, policy: dict[str, Any], target: str | None, *, with_doc: bool
    ) -> None:
        """Move ``policy``'s grant to ``target`` (None: take it away), unless a project
        that has ports on the network would lose its access."""
        net = self.repo.get("networks", str(policy["object_id"]))
        if net is None:
            return
        action, old = str(policy["action"]), str(policy["target_tenant"])
        remaining = set(access.grants(self.repo, net.value["id"])) - {(action, old)}
        if target is not None:
            remaining.add((action, target))
        if action == access.SHARED and access.users_left_out(self.repo, net.value, remaining):
            raise in_use(net.value["id"])
        access.drop_grant(change, policy, with_doc=with_doc)
        if target is not None:
            access.write_grant(change, {**policy, "target_tenant": target}, with_doc=False)
        access.touch(change, net, action, remaining)

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        """Only the target changes: the old grant moves to the new target."""

        def apply(doc: Doc, change: Change) -> dict[str, Any]:
            target = str(data.get("target_tenant", doc.value["target_tenant"]))
            if target == doc.value["target_tenant"]:
                return doc.value
            _check_target(ctx, target, "update_rbac_policy")
            self._regrant(change, doc.value, target, with_doc=False)
            return {**doc.value, "target_tenant": target}

        updated = self.update_doc(ctx, resource_id, if_match, apply)
        return self.render(ctx, updated)

    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        """Neutron's policies have no revision or timestamps: the attributes only."""
        return {name: doc.get(name) for name in ATTRS}

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        def remove(doc: Doc, change: Change) -> None:
            self._regrant(change, doc.value, None, with_doc=True)

        self.delete_doc(ctx, resource_id, if_match, remove=remove)


__all__ = ["ATTRS", "RbacPolicyService"]
