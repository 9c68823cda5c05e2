"""What every Neutron resource shares: standard attributes, ownership, revisions.

- ``project_id``/``tenant_id``: default to the caller's project; a non-admin may not name
  another; both are always returned;
- ``revision_number`` starts at 0 (1 for the resources Neutron touches twice while
  creating them: networks, ports, security groups) and grows by one on every change that
  changes something — a PUT that sets every attribute to its current value is no change;
  ``If-Match: revision_number=N`` makes a change conditional (412 otherwise);
- ``created_at``/``updated_at`` in Neutron's format; ``tags`` and ``description``.

``tags`` may be given when creating a resource. Neutron 29 silently drops them for ports
(the ML2 driver that handles them is optional) although it advertises ``tag-creation``;
we keep what the client asked for rather than discard it.
"""

from __future__ import annotations

from typing import Any

from routeplane.services.attributes import Attr, is_uuid, string, unique_strings
from routeplane.services.context import Context
from routeplane.services.errors import (
    ApiFault,
    bad_request,
    forbidden,
    http_not_found,
    precondition_failed,
)
from routeplane.services.repo import Doc, new_id, now


def standard_attrs(*, sort_name: bool = True) -> dict[str, Attr]:
    return {
        "id": Attr(post=False, put=False, default=None, validate=is_uuid, sort=True),
        "name": Attr(default="", validate=string(255), sort=sort_name),
        "description": Attr(default="", validate=string(255)),
        "project_id": Attr(put=False, default=None, validate=string(255), sort=True),
        "tenant_id": Attr(put=False, default=None, validate=string(255), sort=True),
        "tags": Attr(put=False, default=list, validate=unique_strings(255)),
        "created_at": Attr(post=False, put=False, default=None, filter=True, sort=True),
        "updated_at": Attr(post=False, put=False, default=None, filter=True, sort=True),
        "revision_number": Attr(post=False, put=False, default=0, sort=True),
    }


def owner(ctx: Context, data: dict[str, Any]) -> str:
    """The project a new resource belongs to, by Neutron's rules."""
    project = data.pop("project_id", None)
    tenant = data.pop("tenant_id", None)
    if project is not None and tenant is not None and project != tenant:
        raise bad_request("'project_id' and 'tenant_id' do not match")
    chosen = project if project is not None else tenant
    if chosen is None:
        return ctx.project_id
    if chosen != ctx.project_id and not ctx.is_admin:
        raise bad_request(
            "Specifying 'project_id' other than the authenticated project in request "
            "is not allowed for the current user."
        )
    return str(chosen)


def new_doc(ctx: Context, data: dict[str, Any], *, revision: int = 0) -> dict[str, Any]:
    """Standard fields of a new resource; ``data`` is what the body asked for."""
    project = owner(ctx, data)
    stamp = now()
    doc = dict(data)
    doc.update(
        id=new_id(),
        project_id=project,
        tenant_id=project,
        created_at=stamp,
        updated_at=stamp,
        revision_number=revision,
    )
    doc.setdefault("tags", [])
    return doc


def bump(doc: dict[str, Any]) -> dict[str, Any]:
    changed = dict(doc)
    changed["revision_number"] = int(doc.get("revision_number", 0)) + 1
    changed["updated_at"] = now()
    return changed


_BOOKKEEPING = ("revision_number", "updated_at")


def unchanged(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether an update would change nothing a client can see (so: no new revision)."""
    keys = (set(old) | set(new)) - set(_BOOKKEEPING)
    return all(old.get(k) == new.get(k) for k in keys)


def check_if_match(doc: dict[str, Any], expected: int | None) -> None:
    if expected is not None and expected != doc.get("revision_number"):
        raise precondition_failed(expected, int(doc.get("revision_number", 0)))


def require_write(ctx: Context, action: str) -> None:
    if not ctx.can_write:
        raise forbidden(action)


def visible_doc(ctx: Context, doc: Doc | None, *, shared: bool = False) -> Doc:
    """The document if the caller may see it; otherwise it does not exist for them."""
    if doc is None:
        raise http_not_found()
    if ctx.sees(str(doc.value.get("project_id"))) or shared:
        return doc
    raise http_not_found()


def not_found(type_name: str, message: str) -> ApiFault:
    return ApiFault(type_name, 404, message)


__all__ = [
    "bump",
    "check_if_match",
    "new_doc",
    "not_found",
    "owner",
    "require_write",
    "standard_attrs",
    "unchanged",
    "visible_doc",
]
