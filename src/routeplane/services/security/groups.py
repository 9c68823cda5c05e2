"""Security groups and their rules, stored as one document per group.

A group's document embeds its rules, so the agent reads a group's whole policy from one
key and a rule change is one compare-and-swap on the group. ``sg_rules/<rule id>`` maps a
rule to its group for ``GET /security-group-rules/<id>``. Each project's ``default`` group
is created on first need (a network, a port without groups, a group of that project, a
group list naming the project) through a create-if-absent claim on
``default_sg/<project>``, so concurrent requests create exactly one.

Rules look as Neutron shows them: inside a group body with ``tags``; on their own
(``/security-group-rules``) without. The template rules of a new group have a null
``description``; ``belongs_to_default_sg`` is true for the default group's rules. (Neutron
shows null there in group *lists* and true elsewhere; we show true throughout.) Neutron
also shows each embedded rule's ``standard_attr_id``, a database row number we do not have.
"""

from __future__ import annotations

from typing import Any

from routeplane.services.attributes import Attr, to_boolean
from routeplane.services.common import (
    bump,
    check_if_match,
    new_doc,
    require_write,
    standard_attrs,
    unchanged,
)
from routeplane.services.context import Context
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, http_not_found
from routeplane.services.repo import Change, Doc, Outcome, Repo, key, new_id, now
from routeplane.services.security.rules import RULE_ATTRS, check_rule, duplicate_of

ATTRS: dict[str, Attr] = {
    **standard_attrs(),
    "security_group_rules": Attr(post=False, put=False, default=list, filter=False),
    "stateful": Attr(default=True, convert=to_boolean, put=False),
    "shared": Attr(post=False, put=False, default=False),
}
DEFAULT_NAME = "default"


def _rule(group_id: str, project_id: str, **fields: Any) -> dict[str, Any]:
    stamp = now()
    rule: dict[str, Any] = {
        "id": new_id(),
        "security_group_id": group_id,
        "project_id": project_id,
        "tenant_id": project_id,
        "direction": "ingress",
        "ethertype": "IPv4",
        "protocol": None,
        "port_range_min": None,
        "port_range_max": None,
        "remote_ip_prefix": None,
        "remote_group_id": None,
        "remote_address_group_id": None,
        "normalized_cidr": None,
        "description": "",
        "belongs_to_default_sg": False,
        "tags": [],
        "created_at": stamp,
        "updated_at": stamp,
        "revision_number": 0,
    }
    rule.update(fields)
    return rule


def default_rules(group_id: str, project_id: str, *, is_default: bool) -> list[dict[str, Any]]:
    """Neutron's templates: egress anywhere; a default group also admits its own members."""
    rules = [
        _rule(
            group_id,
            project_id,
            direction="egress",
            ethertype=eth,
            belongs_to_default_sg=is_default,
            description=None,
        )
        for eth in ("IPv4", "IPv6")
    ]
    if is_default:
        rules += [
            _rule(
                group_id,
                project_id,
                ethertype=eth,
                remote_group_id=group_id,
                belongs_to_default_sg=True,
                description=None,
            )
            for eth in ("IPv4", "IPv6")
        ]
    return rules


class SecurityGroupService(DocService):
    name = "security_group"
    collection = "security_groups"
    kind = "security_groups"
    attrs = ATTRS
    not_found_type = "SecurityGroupNotFound"
    not_found_message = "Security group {id} does not exist"

    def _new_group(
        self, ctx: Context, data: dict[str, Any], change: Change, *, is_default: bool
    ) -> dict[str, Any]:
        # Neutron bumps a new group when it adds the template rules: it starts at 1.
        doc = new_doc(ctx, data, revision=1)
        doc.setdefault("stateful", True)
        doc["shared"] = False
        doc["security_group_rules"] = default_rules(
            doc["id"], doc["project_id"], is_default=is_default
        )
        change.claim(key(self.kind, doc["id"]), doc)
        for rule in doc["security_group_rules"]:
            change.put(key("sg_rules", rule["id"]), {"security_group_id": doc["id"]})
        return doc

    def default_group(self, project_id: str, change: Change) -> str:
        """The project's default group id, created in ``change`` when it does not exist."""
        claim_key = key("default_sg", project_id)
        existing = self.repo.get_key(claim_key)
        if existing is not None:
            change.depends_on(existing)
            return str(existing.value["id"])
        owner = Context(project_id=project_id, roles=frozenset({"member"}))
        data = {"name": DEFAULT_NAME, "description": "Default security group"}
        doc = self._new_group(owner, data, change, is_default=True)
        change.claim(claim_key, {"id": doc["id"]})
        return str(doc["id"])

    def ensure_default(self, project_id: str) -> None:
        if self.repo.get_key(key("default_sg", project_id)) is not None:
            return

        def use_case() -> Outcome[None]:
            change = Change()
            self.default_group(project_id, change)
            return Outcome(change, None)

        self.repo.run(use_case)

    def list_visible(self, ctx: Context) -> list[dict[str, Any]]:
        if ctx.can_write:
            self.ensure_default(ctx.project_id)
        return super().list_visible(ctx)

    def before_list(self, ctx: Context, filters: dict[str, list[Any]]) -> None:
        """``?project_id=X`` creates X's default group first, as Neutron does (admins)."""
        for project in filters.get("project_id", []) + filters.get("tenant_id", []):
            if ctx.is_admin and ctx.can_write:
                self.ensure_default(str(project))

    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_security_group")
        if data.get("name") == DEFAULT_NAME:
            raise ApiFault(
                "SecurityGroupDefaultAlreadyExists", 409, "Default security group already exists."
            )

        def use_case() -> Outcome[dict[str, Any]]:
            change = Change()
            doc = self._new_group(ctx, dict(data), change, is_default=False)
            self.default_group(doc["project_id"], change)
            return Outcome(change, doc)

        return self.render(ctx, self.repo.run(use_case))

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        def apply(doc: Doc, _change: Change) -> dict[str, Any]:
            is_default = self.is_default(doc.value)
            if is_default and data.get("name", DEFAULT_NAME) != DEFAULT_NAME:
                raise ApiFault(
                    "SecurityGroupCannotUpdateDefault",
                    409,
                    "Updating default security group not allowed.",
                )
            if not is_default and data.get("name") == DEFAULT_NAME:
                raise ApiFault(
                    "SecurityGroupDefaultAlreadyExists",
                    409,
                    "Default security group already exists.",
                )
            return {**doc.value, **data}

        return self.render(ctx, self.update_doc(ctx, resource_id, if_match, apply))

    def is_default(self, doc: dict[str, Any]) -> bool:
        claim = self.repo.get_key(key("default_sg", str(doc.get("project_id"))))
        return claim is not None and claim.value.get("id") == doc.get("id")

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        def in_use(doc: Doc) -> None:
            if doc.value.get("name") == DEFAULT_NAME and not ctx.is_admin:
                raise ApiFault(
                    "SecurityGroupCannotRemoveDefault",
                    409,
                    "Insufficient rights for removing default security group.",
                )
            if any(
                resource_id in p.value.get("security_groups", []) for p in self.repo.list("ports")
            ):
                raise ApiFault("SecurityGroupInUse", 409, f"Security Group {resource_id} in use.")

        self.delete_doc(ctx, resource_id, if_match, in_use=in_use, remove=self._remove)

    def _remove(self, doc: Doc, change: Change) -> None:
        """The group, then its rules' index entries and, for a default group, its claim."""
        change.delete(doc.key)
        for rule in doc.value.get("security_group_rules", []):
            change.delete(key("sg_rules", rule["id"]))
        if self.is_default(doc.value):
            change.delete(key("default_sg", str(doc.value["project_id"])))


class SecurityGroupRuleService(DocService):
    name = "security_group_rule"
    collection = "security_group_rules"
    kind = "sg_rules"
    attrs = RULE_ATTRS
    not_found_type = "SecurityGroupRuleNotFound"
    not_found_message = "Security group rule {id} does not exist"

    def __init__(self, repo: Repo, groups: SecurityGroupService) -> None:
        super().__init__(repo)
        self.groups = groups

    def _locate(self, ctx: Context, rule_id: str) -> tuple[Doc, dict[str, Any]]:
        index = self.repo.get("sg_rules", rule_id) if "/" not in rule_id else None
        if index is None:
            raise self.not_found(rule_id)
        try:
            group = self.groups.load(ctx, str(index.value["security_group_id"]))
        except ApiFault:
            raise self.not_found(rule_id) from None
        for rule in group.value.get("security_group_rules", []):
            if rule["id"] == rule_id:
                return group, rule
        raise self.not_found(rule_id)

    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        """A rule on its own: as embedded in its group, less the group-only ``tags``."""
        shown = super().render(ctx, doc)
        shown.pop("tags", None)
        return shown

    def get(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return self.render(ctx, self._locate(ctx, resource_id)[1])

    def set_tags(self, ctx: Context, resource_id: str, tags: list[str]) -> list[str]:
        raise http_not_found()  # rules carry no tags (not a standard-attr-tag resource)

    def list_visible(self, ctx: Context) -> list[dict[str, Any]]:
        return [
            self.render(ctx, rule)
            for group in self.groups.list_visible(ctx)
            for rule in group.get("security_group_rules", [])
        ]

    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_security_group_rule")

        def use_case() -> Outcome[dict[str, Any]]:
            group = self.groups.load_for_write(
                ctx, str(data.get("security_group_id")), "create_security_group_rule"
            )
            fields = check_rule(data)
            if fields.get("remote_group_id"):
                self.groups.load(ctx, str(fields["remote_group_id"]))
            rule = _rule(
                group.value["id"],
                str(group.value["project_id"]),
                belongs_to_default_sg=self.groups.is_default(group.value),
                **fields,
            )
            existing = duplicate_of(rule, group.value.get("security_group_rules", []))
            if existing is not None:
                raise ApiFault(
                    "SecurityGroupRuleExists",
                    409,
                    f"Security group rule already exists. Rule id is {existing}.",
                )
            change = Change()
            change.depends_on(group)
            updated = bump(group.value)
            updated["security_group_rules"] = [*group.value.get("security_group_rules", []), rule]
            change.put(group.key, updated)
            change.put(key("sg_rules", rule["id"]), {"security_group_id": group.value["id"]})
            return Outcome(change, rule)

        return self.render(ctx, self.repo.run(use_case))

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        """Only ``description`` is writable (standard-attr-description)."""

        def use_case() -> Outcome[dict[str, Any]]:
            group, rule = self._locate(ctx, resource_id)
            if not ctx.sees(str(group.value.get("project_id"))):
                raise http_not_found()
            require_write(ctx, "update_security_group_rule")
            check_if_match(rule, if_match)
            updated = bump({**rule, **data})
            change = Change()
            if unchanged(rule, updated):
                return Outcome(change, rule)
            change.depends_on(group)
            rules = [
                updated if r["id"] == resource_id else r
                for r in group.value.get("security_group_rules", [])
            ]
            change.put(group.key, {**group.value, "security_group_rules": rules})
            return Outcome(change, updated)

        return self.render(ctx, self.repo.run(use_case))

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        require_write(ctx, "delete_security_group_rule")

        def use_case() -> Outcome[None]:
            group, _rule_doc = self._locate(ctx, resource_id)
            change = Change()
            change.depends_on(group)
            updated = bump(group.value)
            updated["security_group_rules"] = [
                r for r in group.value.get("security_group_rules", []) if r["id"] != resource_id
            ]
            change.put(group.key, updated)
            change.delete(key("sg_rules", resource_id))
            return Outcome(change, None)

        self.repo.run(use_case)


__all__ = ["ATTRS", "SecurityGroupRuleService", "SecurityGroupService", "default_rules"]
