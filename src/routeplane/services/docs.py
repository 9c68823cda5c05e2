"""The common half of a resource service: load, show, list and tag stored documents.

Visibility is decided here for every resource: a caller sees its own project's documents
(admins see all), plus whatever :meth:`DocService.shared_with` admits (shared and external
networks). Reading a document the caller may not see reports it missing, with the
resource's own NotFound (the project-scoped query found nothing). Writing follows
Neutron's policy hook: a missing document is the resource's NotFound, one the caller
cannot see is ``HTTPNotFound`` "The resource could not be found.", and one the caller
sees but may not change (a shared network, a reader's own port) is a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from routeplane.services.attributes import AttrMap, unique_strings, visible
from routeplane.services.common import bump, require_write, unchanged
from routeplane.services.context import Context
from routeplane.services.errors import ApiFault, forbidden, http_not_found, invalid_input
from routeplane.services.listing import Matcher
from routeplane.services.repo import Change, Doc, Outcome, Repo


class DocService:
    name = ""
    collection = ""
    kind = ""  # the store key kind, e.g. "ports"
    attrs: ClassVar[AttrMap] = {}
    matchers: ClassVar[Mapping[str, Matcher]] = {}
    not_found_type = ""
    not_found_message = ""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    # visibility ----------------------------------------------------------------------
    def shared_with(self, ctx: Context, doc: dict[str, Any]) -> bool:
        return False

    def visible_to(self, ctx: Context, doc: dict[str, Any]) -> bool:
        return ctx.sees(str(doc.get("project_id"))) or self.shared_with(ctx, doc)

    def not_found(self, resource_id: str) -> ApiFault:
        return ApiFault(self.not_found_type, 404, self.not_found_message.format(id=resource_id))

    def load(self, ctx: Context, resource_id: str) -> Doc:
        doc = self.repo.get(self.kind, resource_id) if "/" not in resource_id else None
        if doc is None or not self.visible_to(ctx, doc.value):
            raise self.not_found(resource_id)
        return doc

    def load_for_write(self, ctx: Context, resource_id: str, action: str) -> Doc:
        """A document the caller may change: visible, and theirs unless admin."""
        doc = self.repo.get(self.kind, resource_id) if "/" not in resource_id else None
        if doc is None:
            raise self.not_found(resource_id)
        if not self.visible_to(ctx, doc.value):
            raise http_not_found()
        if not ctx.sees(str(doc.value.get("project_id"))):
            raise forbidden(action)
        require_write(ctx, action)
        return doc

    # reading -------------------------------------------------------------------------
    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        """The response body: every attribute (defaults for ones stored before it existed)."""
        full = dict(doc)
        for name, attr in self.attrs.items():
            if name not in full and attr.has_default:
                full[name] = attr.default_value()
        return visible(self.attrs, full, is_admin=ctx.is_admin)

    def get(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return self.render(ctx, self.load(ctx, resource_id).value)

    def list_visible(self, ctx: Context) -> list[dict[str, Any]]:
        return [
            self.render(ctx, d.value)
            for d in self.repo.list(self.kind)
            if self.visible_to(ctx, d.value)
        ]

    # tags ----------------------------------------------------------------------------
    @staticmethod
    def check_tags(tags: Any) -> list[str]:
        """Neutron's tag validation: unique strings of at most 255 characters."""
        reason = unique_strings(255)(tags)
        if reason:
            raise invalid_input(reason)
        return list(tags)

    def set_tags(self, ctx: Context, resource_id: str, tags: list[str]) -> list[str]:
        checked = self.check_tags(tags)
        return self._retag(ctx, resource_id, lambda _old: checked)

    def add_tags(self, ctx: Context, resource_id: str, tags: list[str]) -> list[str]:
        """POST .../tags (tag-creation): the given tags join those already there."""
        added = self.check_tags(tags)
        return self._retag(ctx, resource_id, lambda old: [*old, *added])

    def _retag(
        self, ctx: Context, resource_id: str, new_tags: Callable[[list[str]], list[str]]
    ) -> list[str]:
        def use_case() -> Outcome[list[str]]:
            doc = self.load_for_write(ctx, resource_id, f"update_{self.name}")
            tags = sorted(set(new_tags(list(doc.value.get("tags", [])))))
            updated = bump({**doc.value, "tags": tags})
            change = Change()
            if not unchanged(doc.value, updated):
                change.depends_on(doc)
                change.put(doc.key, updated)
                self.after_update(change, doc.value, updated)
            return Outcome(change, tags)

        return self.repo.run(use_case)

    def after_update(self, change: Change, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Hook: derived records (a port's endpoint) to rewrite in the same transaction."""


__all__ = ["DocService"]
