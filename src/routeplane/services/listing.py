"""List queries the Neutron way: filters, ``fields=``, sorting and marker pagination.

Pure functions over resource dicts. Semantics (api-ref conventions, neutron/api/api_common):

- a repeated filter key is OR, different keys AND; a filter value goes through the
  attribute's converter first (``admin_state_up=yes`` is true, ``ip_version=x`` is
  InvalidInput); an attribute that is not a filter is "invalid attribute for filtering";
- ``fields`` narrows each item (unknown names give empty items);
- ``sort_key`` and ``sort_dir`` come in pairs; ties fall back to ``id`` ascending;
- ``limit`` (0: no limit) with ``marker`` (an id, which must exist) pages forwards, with
  ``page_reverse=True`` backwards. Links follow ``get_pagination_links``: ``next`` unless
  a forward page came back short, ``previous`` unless a backward page came back short,
  each the request's own query with ``marker`` (and ``page_reverse``) replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from routeplane.services.attributes import AttrMap, Invalid, to_boolean
from routeplane.services.errors import ApiFault, bad_request, invalid_input

Matcher = Callable[[Mapping[str, Any], list[str]], bool]
_TAG_FILTERS = frozenset({"tags", "tags-any", "not-tags", "not-tags-any"})


@dataclass
class ListQuery:
    filters: dict[str, list[Any]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    limit: int | None = None
    marker: str | None = None
    page_reverse: bool = False
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (key, ascending)
    params: list[tuple[str, str]] = field(default_factory=list)  # as sent, for links


def parse_query(
    params: Sequence[tuple[str, str]], attrs: AttrMap, special: Mapping[str, Matcher] | None = None
) -> ListQuery:
    special = special or {}
    query = ListQuery(params=list(params))
    sort_keys: list[str] = []
    sort_dirs: list[str] = []
    raw_filters: dict[str, list[str]] = {}
    page_reverse = "False"
    for name, value in params:
        if name == "fields":
            query.fields.extend(v for v in value.split(",") if v)
        elif name == "limit":
            query.limit = _limit(value)
        elif name == "marker":
            query.marker = value
        elif name == "page_reverse":
            page_reverse = value
        elif name == "sort_key":
            sort_keys.append(value)
        elif name == "sort_dir":
            sort_dirs.append(value)
        else:
            raw_filters.setdefault(name, []).append(value)
    unknown = [
        k for k in raw_filters if k not in _TAG_FILTERS and (k not in attrs or not attrs[k].filter)
    ]
    if unknown:
        raise bad_request(f"{unknown} is invalid attribute for filtering")
    if len(sort_keys) != len(sort_dirs):
        raise bad_request("The number of sort_keys and sort_dirs must be same")
    bad_keys = [k for k in sort_keys if k not in attrs or not attrs[k].sort]
    if bad_keys:
        raise bad_request(f"{bad_keys} is invalid attribute for sort_keys")
    bad_dirs = [d for d in sort_dirs if d not in ("asc", "desc")]
    if bad_dirs:
        raise bad_request(
            f"{bad_dirs} is invalid value for sort_dirs, valid value is 'asc' and 'desc'"
        )
    query.sort = [(k, d == "asc") for k, d in zip(sort_keys, sort_dirs, strict=True)]
    try:
        query.page_reverse = to_boolean(page_reverse)
    except Invalid as exc:
        raise invalid_input(str(exc)) from None
    for name, values in raw_filters.items():
        convert = None if name in _TAG_FILTERS or name in special else attrs[name].convert
        query.filters[name] = values if convert is None else [_convert(convert, v) for v in values]
    return query


def _convert(convert: Callable[[Any], Any], value: str) -> Any:
    try:
        return convert(value)
    except Invalid as exc:
        raise invalid_input(str(exc)) from None


def _limit(value: str) -> int | None:
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise ApiFault(
            "BadRequest",
            400,
            f"Bad limit request: Limit must be an integer 0 or greater and not '{value}'.",
        )
    return limit or None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return "" if value is None else str(value)


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, str):
        return _as_text(value) == wanted
    return bool(value == wanted) and type(value) is type(wanted)


def _plain_match(value: Any, wanted: list[Any]) -> bool:
    if isinstance(value, list):
        return any(_same(v, w) for v in value for w in wanted)
    return any(_same(value, w) for w in wanted)


def _tags_match(tags: list[str], name: str, wanted: list[str]) -> bool:
    asked = {t for w in wanted for t in w.split(",") if t}
    have = set(tags)
    if name == "tags":
        return asked <= have
    if name == "tags-any":
        return bool(asked & have)
    if name == "not-tags":
        return not asked <= have
    return not asked & have


def matches(item: Mapping[str, Any], query: ListQuery, special: Mapping[str, Matcher]) -> bool:
    for name, wanted in query.filters.items():
        if name in _TAG_FILTERS:
            if not _tags_match(list(item.get("tags", [])), name, wanted):
                return False
        elif name in special:
            if not special[name](item, wanted):
                return False
        elif not _plain_match(item.get(name), wanted):
            return False
    return True


def _sort_key(item: Mapping[str, Any], key: str) -> tuple[int, Any]:
    value = item.get(key)
    return (0, "") if value is None else (1, value if isinstance(value, int | str) else str(value))


def order(items: list[dict[str, Any]], sort: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    ordered = sorted(items, key=lambda i: i["id"])
    for key, ascending in reversed(sort):
        ordered.sort(key=lambda i, k=key: _sort_key(i, k), reverse=not ascending)  # type: ignore[misc]
    return ordered


@dataclass
class Page:
    items: list[dict[str, Any]]
    links: list[dict[str, str]]


def paginate(
    items: list[dict[str, Any]],
    query: ListQuery,
    base_url: str,
    marker_item: dict[str, Any] | None = None,
) -> Page:
    """One page of ``items`` (already filtered) and its links.

    ``marker_item`` is the document the marker names; it need not pass the filters, its
    place in the sort order is what counts.
    """
    if query.limit is None:
        return Page(order(items, query.sort), [])
    pool = list(items)
    if marker_item is not None and all(i["id"] != marker_item["id"] for i in pool):
        pool.append(marker_item)
    ordered = order(pool, query.sort)
    if query.page_reverse:
        ordered.reverse()
    if marker_item is not None:
        at = next(n for n, i in enumerate(ordered) if i["id"] == marker_item["id"])
        ordered = ordered[at + 1 :]
    page = ordered[: query.limit]
    if query.page_reverse:
        page.reverse()
    links: list[dict[str, str]] = []
    short = len(page) < query.limit
    if not (short and not query.page_reverse):
        links.append({"rel": "next", "href": _link(base_url, query, page, forward=True)})
    if not (short and query.page_reverse):
        links.append({"rel": "previous", "href": _link(base_url, query, page, forward=False)})
    return Page(page, links)


def _link(base_url: str, query: ListQuery, page: list[dict[str, Any]], *, forward: bool) -> str:
    params = [(k, v) for k, v in query.params if k not in ("marker", "page_reverse")]
    if page:
        params.append(("marker", page[-1]["id"] if forward else page[0]["id"]))
    if not forward:
        params.append(("page_reverse", "True"))
    return f"{base_url}?{urlencode(params)}"


def narrow(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    if not fields:
        return item
    return {k: v for k, v in item.items() if k in fields}


__all__ = ["ListQuery", "Matcher", "Page", "matches", "narrow", "order", "paginate", "parse_query"]
