"""The routes every Neutron resource has: list, create (single and bulk), show, update,
delete, and the tags sub-resource. One function registers them for one service, with an
OpenAPI body schema derived from the service's attribute map.

Routing follows Neutron's quirks where a client can see them: ``POST`` on an item URL is
a create; ``PUT``/``DELETE`` on the collection URL report the resource ``None`` missing;
``PATCH`` is 405. ``If-Match: revision_number=N`` makes PUT and DELETE conditional; other
entity tags are ignored, as Neutron ignores them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from routeplane.api import bodies
from routeplane.services.attributes import (
    NO_BODY,
    check_create,
    check_update,
    string,
    unwrap,
    unwrap_bulk,
)
from routeplane.services.context import Context
from routeplane.services.errors import (
    ApiFault,
    bad_resource_request,
    http_not_found,
    invalid_input,
)
from routeplane.services.listing import matches, narrow, paginate, parse_query
from routeplane.services.resource import ResourceService

T = TypeVar("T")
Threaded = Callable[..., Awaitable[Any]]
REVISION_TAG = "revision_number="


def _if_match(request: Request) -> int | None:
    """The revision an ``If-Match: revision_number=N`` asks for (revision-if-match)."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    for raw in header.split(","):
        etag = raw.strip().removeprefix("W/").strip('"')
        if etag.startswith(REVISION_TAG):
            value = etag[len(REVISION_TAG) :]
            if not value.isdigit():
                raise bad_resource_request(
                    "if-match",
                    "Revision number etag must be in the format of revision_number=<int>",
                )
            return int(value)
    return None


async def read_body(request: Request) -> Any:
    """A Neutron request body: JSON, or ``NO_BODY`` when empty; Neutron's 400 otherwise
    (413 when too large; :mod:`routeplane.api.bodies`)."""
    raw = await bodies.read_bytes(request)
    if not raw.strip():
        return NO_BODY
    return bodies.parse(raw)


def _body_schema(member: str, service: ResourceService, *, create: bool) -> dict[str, Any]:
    names = [n for n, a in service.attrs.items() if (a.post if create else a.put)]
    inner = {"type": "object", "properties": {n: dict(service.attrs[n].schema) for n in names}}
    schema: dict[str, Any] = {"type": "object", "required": [member], "properties": {member: inner}}
    if create:
        schema = {
            "oneOf": [
                schema,
                {
                    "type": "object",
                    "properties": {service.collection: {"type": "array", "items": inner}},
                },
            ]
        }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@dataclass(frozen=True)
class Wiring:
    """What every resource's routes need from the application."""

    context: Callable[[Request], Context]
    threaded: Threaded


class ResourceRoutes:
    """The routes of one resource, as bound methods over its service."""

    def __init__(self, path: str, service: ResourceService, wiring: Wiring) -> None:
        self.service = service
        self.member, self.collection = service.name, service.collection
        self.base = f"/v2.0/{path}"
        self.wiring = wiring

    def _missing(self, item_id: str) -> ApiFault:
        not_found = getattr(self.service, "not_found", None)
        return not_found(item_id) if callable(not_found) else http_not_found()

    # collection ------------------------------------------------------------------------
    def _list(self, ctx: Context, params: list[tuple[str, str]], url: str) -> dict[str, Any]:
        query = parse_query(params, self.service.attrs, self.service.matchers)
        before_list = getattr(self.service, "before_list", None)
        if callable(before_list):
            before_list(ctx, query.filters)
        items = self.service.list_visible(ctx)
        marker_item = None
        if query.limit is not None and query.marker is not None:
            marker_item = next((i for i in items if i["id"] == query.marker), None)
            if marker_item is None:
                raise self._missing(query.marker)
        chosen = [i for i in items if matches(i, query, self.service.matchers)]
        page = paginate(chosen, query, url, marker_item)
        body: dict[str, Any] = {self.collection: [narrow(i, query.fields) for i in page.items]}
        if page.links:
            body[f"{self.collection}_links"] = page.links
        return body

    async def list_items(self, request: Request) -> JSONResponse:
        ctx = self.wiring.context(request)
        params = list(request.query_params.multi_items())
        url = f"{str(request.base_url).rstrip('/')}{self.base}"
        return JSONResponse(await self.wiring.threaded(self._list, ctx, params, url))

    def _check(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        return check_create(
            self.service.attrs, dict(data), is_admin=ctx.is_admin, resource=self.member
        )

    def _create_one(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        return self.service.create(ctx, self._check(ctx, data))

    def _create_bulk(self, ctx: Context, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """All or nothing, reported as the failing entry's error, as Neutron does.

        Every body is checked before anything is created (Neutron parses the whole
        request first); what was created before a later failure is deleted again.
        """
        checked = [self._check(ctx, data) for data in entries]
        created: list[dict[str, Any]] = []
        try:
            for data in checked:
                created.append(self.service.create(ctx, data))
        except Exception:
            for item in reversed(created):
                self.service.delete(ctx, item["id"], None)
            raise
        return created

    async def create(self, request: Request) -> JSONResponse:
        ctx = self.wiring.context(request)
        body = await read_body(request)
        entries = unwrap_bulk(body, self.member, self.collection)
        if entries is not None:
            created = await self.wiring.threaded(self._create_bulk, ctx, entries)
            return JSONResponse({self.collection: created}, status_code=201)
        data = unwrap(body, self.member)
        item = await self.wiring.threaded(self._create_one, ctx, data)
        return JSONResponse({self.member: item}, status_code=201)

    async def create_on_item(self, request: Request, item_id: str) -> JSONResponse:
        """Neutron answers a POST on an item URL as a create on the collection."""
        return await self.create(request)

    async def collection_missing(self, request: Request) -> Response:
        """PUT or DELETE without an id: Neutron looks for the item ``None``."""
        self.wiring.context(request)
        raise self._missing("None")

    # one item --------------------------------------------------------------------------
    async def show(self, request: Request, item_id: str) -> JSONResponse:
        ctx = self.wiring.context(request)
        fields = [f for v in request.query_params.getlist("fields") for f in v.split(",") if f]
        item = await self.wiring.threaded(self.service.get, ctx, item_id)
        return JSONResponse({self.member: narrow(item, fields)})

    def _update(
        self, ctx: Context, item_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        checked = check_update(
            self.service.attrs, data, is_admin=ctx.is_admin, resource=self.member
        )
        return self.service.update(ctx, item_id, checked, if_match)

    async def update(self, request: Request, item_id: str) -> JSONResponse:
        ctx = self.wiring.context(request)
        if_match = _if_match(request)
        data = unwrap(await read_body(request), self.member)
        item = await self.wiring.threaded(self._update, ctx, item_id, data, if_match)
        return JSONResponse({self.member: item})

    async def delete(self, request: Request, item_id: str) -> Response:
        ctx = self.wiring.context(request)
        await self.wiring.threaded(self.service.delete, ctx, item_id, _if_match(request))
        return Response(status_code=204)

    # tags ------------------------------------------------------------------------------
    # Neutron's tag controller reports bad input as InvalidInput, not as a body error. On
    # an unknown resource it fails with a 500; we answer the resource's own 404 instead.
    def _tag_missing(self, tag: str) -> ApiFault:
        return ApiFault("TagNotFound", 404, f"Tag {tag} could not be found.")

    @staticmethod
    def _tags_body(body: Any) -> Any:
        if not isinstance(body, dict) or "tags" not in body:
            raise invalid_input("Invalid tags body")
        return body["tags"]

    @staticmethod
    def _check_tag(tag: str) -> None:
        reason = string(255)(tag)
        if reason:
            raise invalid_input(reason)

    async def get_tags(self, request: Request, item_id: str) -> JSONResponse:
        ctx = self.wiring.context(request)
        item = await self.wiring.threaded(self.service.get, ctx, item_id)
        return JSONResponse({"tags": item.get("tags", [])})

    async def put_tags(self, request: Request, item_id: str) -> JSONResponse:
        ctx = self.wiring.context(request)
        tags = self._tags_body(await read_body(request))
        result = await self.wiring.threaded(self.service.set_tags, ctx, item_id, tags)
        return JSONResponse({"tags": result})

    async def post_tags(self, request: Request, item_id: str) -> JSONResponse:
        """tag-creation: add several tags at once."""
        ctx = self.wiring.context(request)
        tags = self._tags_body(await read_body(request))
        add_tags = getattr(self.service, "add_tags", None)
        if not callable(add_tags):
            raise http_not_found()
        result = await self.wiring.threaded(add_tags, ctx, item_id, tags)
        return JSONResponse({"tags": result}, status_code=201)

    async def delete_tags(self, request: Request, item_id: str) -> Response:
        ctx = self.wiring.context(request)
        await self.wiring.threaded(self.service.set_tags, ctx, item_id, [])
        return Response(status_code=204)

    def _change_tag(self, ctx: Context, item_id: str, tag: str, add: bool) -> None:
        tags = list(self.service.get(ctx, item_id).get("tags", []))
        if not add and tag not in tags:
            raise self._tag_missing(tag)
        if add and tag in tags:
            self.service.set_tags(ctx, item_id, tags)  # checks write access, changes nothing
            return
        self.service.set_tags(ctx, item_id, [*tags, tag] if add else [t for t in tags if t != tag])

    async def has_tag(self, request: Request, item_id: str, tag: str) -> Response:
        ctx = self.wiring.context(request)
        item = await self.wiring.threaded(self.service.get, ctx, item_id)
        if tag not in item.get("tags", []):
            raise self._tag_missing(tag)
        return Response(status_code=204)

    async def add_tag(self, request: Request, item_id: str, tag: str) -> Response:
        ctx = self.wiring.context(request)
        self._check_tag(tag)
        await self.wiring.threaded(self._change_tag, ctx, item_id, tag, True)
        return JSONResponse(None, status_code=201)  # Neutron's body is the JSON null

    async def remove_tag(self, request: Request, item_id: str, tag: str) -> Response:
        ctx = self.wiring.context(request)
        await self.wiring.threaded(self._change_tag, ctx, item_id, tag, False)
        return Response(status_code=204)

    # registration ----------------------------------------------------------------------
    def register(self, app: FastAPI) -> None:
        member, base = self.member, self.base
        item, tags = f"{base}/{{item_id}}", f"{base}/{{item_id}}/tags"
        group: list[str | Enum] = [self.collection]
        create_schema = _body_schema(member, self.service, create=True)
        routes: list[tuple[str, Any, str, str, dict[str, Any] | None, bool]] = [
            (base, self.list_items, "GET", f"list_{self.collection}", None, True),
            (base, self.create, "POST", f"create_{member}", create_schema, True),
            (base, self.collection_missing, "PUT", f"update_{self.collection}", None, False),
            (base, self.collection_missing, "DELETE", f"delete_{self.collection}", None, False),
            (item, self.show, "GET", f"show_{member}", None, True),
            (item, self.create_on_item, "POST", f"create_{member}_on_item", None, False),
            (
                item,
                self.update,
                "PUT",
                f"update_{member}",
                _body_schema(member, self.service, create=False),
                True,
            ),
            (item, self.delete, "DELETE", f"delete_{member}", None, True),
        ]
        if "tags" in self.service.attrs:
            routes += [
                (tags, self.get_tags, "GET", f"tags_{member}", None, True),
                (tags, self.put_tags, "PUT", f"set_tags_{member}", None, True),
                (tags, self.post_tags, "POST", f"add_tags_{member}", None, True),
                (tags, self.delete_tags, "DELETE", f"clear_tags_{member}", None, True),
                (f"{tags}/{{tag}}", self.has_tag, "GET", f"has_tag_{member}", None, True),
                (f"{tags}/{{tag}}", self.add_tag, "PUT", f"add_tag_{member}", None, True),
                (f"{tags}/{{tag}}", self.remove_tag, "DELETE", f"remove_tag_{member}", None, True),
            ]
        for path, endpoint, method, name, extra, documented in routes:
            app.add_api_route(
                path,
                endpoint,
                methods=[method],
                tags=group,
                name=name,
                openapi_extra=extra,
                include_in_schema=documented,
            )


__all__ = ["ResourceRoutes", "Wiring", "read_body"]
