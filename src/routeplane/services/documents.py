"""The common half of a resource service: load, show, list and tag stored documents.

Visibility is decided here for every resource: a caller sees its own project's documents
(admins see all), plus whatever :meth:`DocService.shared_with` admits (shared and external
networks). Reading a document the caller may not see reports it missing, with the
resource's own NotFound (the project-scoped query found nothing). Writing follows
Neutron's policy hook: a missing document is the resource's NotFound, one the caller
cannot see is ``HTTPNotFound`` "The resource could not be found.", and one the caller
sees but may not change (a shared network, a reader's own port) is a 403.

Changing or deleting a document has one shape in every service, kept here
(:meth:`DocService.update_doc`, :meth:`DocService.delete_doc`) so that the checks come in
one order (the document and the caller's right to change it, ``If-Match``, then the
service's own) and every write depends on the revision it read; a service states only
what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from routeplane.services.attributes import AttrMap, unique_strings, visible
from routeplane.services.common import bump, check_if_match, require_write, unchanged
from routeplane.services.context import Context
from routeplane.services.errors import ApiFault, forbidden, http_not_found, invalid_input
from routeplane.services.listing import Matcher
from routeplane.services.repo import Change, Doc, Outcome, Repo

# A service's part of an update: from the document as read, and the transaction being
# built (for what the request claims, moves or depends on), the document as changed.
Apply = Callable[[Doc, Change], dict[str, Any]]


def _next_revision(stored: dict[str, Any], changed: dict[str, Any]) -> dict[str, Any]:
    """``changed`` as the revision after ``stored``: one more than the stored one, also
    where the change counted itself already (a service IP's move, ``record_move``)."""
    return {**bump(changed), "revision_number": int(stored.get("revision_number", 0)) + 1}


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
        def apply(doc: Doc, _change: Change) -> dict[str, Any]:
            return {**doc.value, "tags": sorted(set(new_tags(list(doc.value.get("tags", [])))))}

        return list(self.update_doc(ctx, resource_id, None, apply)["tags"])

    def after_update(self, change: Change, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Hook: derived records (a port's endpoint) to rewrite in the same transaction.

        Called for every change written, tags included: a service writes here only what
        follows from the fields that changed.
        """

    # changing and deleting -------------------------------------------------------------
    def update_doc(
        self,
        ctx: Context,
        resource_id: str,
        if_match: int | None,
        apply: Apply,
        *,
        authorize: Callable[[Doc], None] | None = None,
        no_change: Callable[[dict[str, Any], dict[str, Any]], bool] = unchanged,
    ) -> dict[str, Any]:
        """``PUT`` of one document (and tag changes): the document as it is afterwards.

        In this order: the document, if the caller may change it; ``authorize``, policy on
        the request itself, where Neutron checks it before ``If-Match``; ``If-Match``;
        ``apply``, which validates the request against the document and returns it
        changed. A request that changes nothing (``no_change``) writes nothing, not even
        what ``apply`` put in the transaction, and keeps the revision. Otherwise the
        document is written as its next revision, on condition that the one read is still
        current, followed by :meth:`after_update`'s derived records.
        """
        action = f"update_{self.name}"

        def use_case() -> Outcome[dict[str, Any]]:
            doc = self.load_for_write(ctx, resource_id, action)
            if authorize is not None:
                authorize(doc)
            check_if_match(doc.value, if_match)
            change = Change()
            changed = apply(doc, change)
            if no_change(doc.value, changed):
                return Outcome(Change(), doc.value)
            updated = _next_revision(doc.value, changed)
            change.depends_on(doc)
            change.put(doc.key, updated)
            self.after_update(change, doc.value, updated)
            return Outcome(change, updated)

        return self.repo.run(use_case)

    def delete_doc(
        self,
        ctx: Context,
        resource_id: str,
        if_match: int | None,
        *,
        in_use: Callable[[Doc], None] | None = None,
        remove: Callable[[Doc, Change], None] | None = None,
    ) -> None:
        """``DELETE`` of one document and of what goes with it, in one transaction.

        In this order: the document, if the caller may change it; ``If-Match``;
        ``in_use``, which raises the service's 409 while something still needs the
        document; then ``remove`` writes what goes with it (claims, derived records,
        other documents), on condition that the document read is still current. The
        document itself is deleted last, unless ``remove`` deleted it already, at its
        place among those writes.
        """
        action = f"delete_{self.name}"

        def use_case() -> Outcome[None]:
            doc = self.load_for_write(ctx, resource_id, action)
            check_if_match(doc.value, if_match)
            if in_use is not None:
                in_use(doc)
            change = Change()
            change.depends_on(doc)
            if remove is not None:
                remove(doc, change)
            if not change.writes(doc.key):
                change.delete(doc.key)
            return Outcome(change, None)

        self.repo.run(use_case)


__all__ = ["Apply", "DocService"]
