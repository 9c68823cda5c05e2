"""Resource attribute maps and request-body checks, in the manner of neutron-lib.

Each resource declares its attributes once (:class:`Attr`): whether POST and PUT may set
it, its default, how a value is converted and validated, and whether only admins see it.
From that one table come the body checks (with Neutron's messages), the defaults of a
new resource, the visible fields of a response, the filters and sort keys a list accepts,
and the OpenAPI schema. Converters raise :class:`Invalid` with a reason; validators
return a reason or ``None``.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from routeplane.services.errors import ApiFault, bad_request, invalid_input


class Invalid(Exception):
    """A converter's refusal; the reason becomes Neutron's InvalidInput message."""


Converter = Callable[[Any], Any]
Validator = Callable[[Any], str | None]
_MISSING: Any = object()


@dataclass(frozen=True)
class Attr:
    """One attribute of a resource, as neutron-lib's RESOURCE_ATTRIBUTE_MAP describes it."""

    post: bool = True
    put: bool = True
    default: Any = _MISSING  # a value, or a zero-argument callable for a fresh one
    convert: Converter | None = None
    validate: Validator | None = None
    admin_only: bool = False  # hidden from non-admins, and only admins may set it
    filter: bool = True
    sort: bool = False
    schema: Mapping[str, Any] = field(default_factory=dict)  # JSON schema, for OpenAPI

    @property
    def required(self) -> bool:
        return self.post and self.default is _MISSING

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


AttrMap = Mapping[str, Attr]


# --- converters -----------------------------------------------------------------------
# oslo's strutils.bool_from_string(strict=True), which neutron-lib's convert_to_boolean uses:
# "yes", "on", "t" and "1" are true as well as "true" (any case, surrounding spaces ignored).
TRUE_STRINGS = frozenset({"1", "t", "true", "on", "y", "yes"})
FALSE_STRINGS = frozenset({"0", "f", "false", "off", "n", "no"})


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS:
        return False
    raise Invalid(f"'{value}' cannot be converted to boolean")


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid(f"'{value}' is not an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"'{value}' is not an integer") from None


def to_int_or_none(value: Any) -> int | None:
    return None if value is None else to_int(value)


# --- validators -----------------------------------------------------------------------
def string(max_len: int | None = 255) -> Validator:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"'{value}' is not a valid string"
        if max_len is not None and len(value) > max_len:
            return f"'{value}' exceeds maximum length of {max_len}"
        return None

    return check


def string_or_none(max_len: int = 255) -> Validator:
    inner = string(max_len)
    return lambda value: None if value is None else inner(value)


def is_uuid(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"'{value}' is not a valid UUID"
    try:
        uuid.UUID(value)
    except ValueError:
        return f"'{value}' is not a valid UUID"
    return None


def uuid_or_none(value: Any) -> str | None:
    return None if value is None else is_uuid(value)


def ip_address(value: Any) -> str | None:
    try:
        if not isinstance(value, str) or value != value.strip():
            raise ValueError
        ipaddress.ip_address(value)
    except ValueError:
        return f"'{value}' is not a valid IP address"
    return None


def uuid_list(value: Any) -> str | None:
    """neutron-lib ``type:uuid_list``: a list of UUIDs, none twice."""
    if not isinstance(value, list):
        return f"'{value}' is not a list"
    seen: list[Any] = []
    duplicates: list[Any] = []
    for item in value:
        (duplicates if item in seen and item not in duplicates else seen).append(item)
    if duplicates:
        return f"Duplicate items in the list: '{', '.join(map(str, duplicates))}'"
    for item in value:
        error = is_uuid(item)
        if error:
            return error
    return None


def list_of_strings(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"'{value}' is not a list"
    for item in value:
        error = string(255)(item)
        if error:
            return error
    return None


def unique_strings(max_len: int = 255) -> Validator:
    """neutron-lib's validate_list_of_unique_strings (tags use it)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"'{value}' is not a list"
        for item in value:
            reason = string(max_len)(item)
            if reason:
                return reason
        dups = sorted({v for v in value if value.count(v) > 1})
        if dups:
            return f"Duplicate items in the list: '{', '.join(dups)}'"
        return None

    return check


def one_of(*choices: Any) -> Validator:
    """neutron-lib's validate_values; note that its message names no values."""

    def check(value: Any) -> str | None:
        if value not in choices or isinstance(value, bool):
            return f"{value} is not in valid_values"
        return None

    return check


# --- body checks ----------------------------------------------------------------------
NO_BODY: Any = object()  # an empty request body, as opposed to a JSON value


def unwrap(body: Any, resource: str) -> dict[str, Any]:
    """``{"port": {...}}`` → the inner dict, or Neutron's refusal (api/v2/base.py).

    An empty body or one without the resource key is "Unable to find"; a body that is
    not a JSON object is "Body contains invalid data"; a resource that is not an object
    is "Object ... contains invalid data". Other top-level keys are ignored.
    """
    if body is NO_BODY:
        raise bad_request(f"Unable to find '{resource}' in request body")
    if not isinstance(body, dict):
        raise bad_request("Body contains invalid data")
    inner = body.get(resource)
    if inner is None:
        raise bad_request(f"Unable to find '{resource}' in request body")
    if not isinstance(inner, dict):
        raise bad_request(f"Object '{resource}' contains invalid data")
    return inner


def unwrap_bulk(body: Any, resource: str, collection: str) -> list[dict[str, Any]] | None:
    """The entries of a bulk create (``{"ports": [...]}``), or None for a single one.

    Neutron iterates whatever the collection key holds and wraps each item that is not
    already ``{"port": {...}}``, so a non-list ends as "Object 'port' contains invalid
    data" too; an empty list is "Resources required".
    """
    if not isinstance(body, dict) or collection not in body:
        return None
    entries = body[collection]
    if not entries:
        raise bad_request("Resources required")
    if not isinstance(entries, list):
        if isinstance(entries, dict | str):
            raise bad_request(f"Object '{resource}' contains invalid data")
        raise bad_request("Body contains invalid data")
    return [
        unwrap(item if isinstance(item, dict) and resource in item else {resource: item}, resource)
        for item in entries
    ]


def _explicitly_set(attr: Attr, value: Any) -> bool:
    """Neutron's policy looks at an attribute on create only when it differs from its default."""
    return attr.default is _MISSING or value != attr.default_value()


def policy_denied(action: str, name: str) -> ApiFault:
    """oslo.policy's refusal of ``rule:<action>`` combined with the attribute's own rule."""
    return ApiFault(
        "PolicyNotAuthorized",
        403,
        f"(rule:{action} and rule:{action}:{name}) is disallowed by policy",
    )


def _check_known(attrs: AttrMap, data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - set(attrs))
    if unknown:
        raise bad_request(f"Unrecognized attribute(s) '{', '.join(unknown)}'")


def convert_and_validate(attrs: AttrMap, data: dict[str, Any]) -> dict[str, Any]:
    """Run each given attribute's converter and validator; Neutron's messages on failure."""
    out = dict(data)
    for name, given in data.items():
        attr, value = attrs[name], given
        if attr.convert is not None:
            try:
                value = attr.convert(given)
            except Invalid as exc:
                raise invalid_input(str(exc)) from None
        if attr.validate is not None:
            reason = attr.validate(value)
            if reason:
                shown = "tenant_id" if name == "project_id" else name  # Neutron's alias
                raise bad_request(f"Invalid input for {shown}. Reason: {reason}.")
        out[name] = value
    return out


def check_create(
    attrs: AttrMap, data: dict[str, Any], *, is_admin: bool, resource: str = ""
) -> dict[str, Any]:
    """A POST body: known attributes only, POST-able, required present, defaults filled."""
    _check_known(attrs, data)
    for name in data:
        if not attrs[name].post:
            raise bad_request(f"Attribute '{name}' not allowed in POST")
    for name, value in data.items():
        if attrs[name].admin_only and not is_admin and _explicitly_set(attrs[name], value):
            raise policy_denied(f"create_{resource}", name)
    for name, attr in attrs.items():
        if attr.required and name not in data:
            raise bad_request(f"Failed to parse request. Required attribute '{name}' not specified")
    checked = convert_and_validate(attrs, data)
    for name, attr in attrs.items():
        if name not in checked and attr.default is not _MISSING:
            checked[name] = attr.default_value()
    return checked


def check_update(
    attrs: AttrMap, data: dict[str, Any], *, is_admin: bool, resource: str = ""
) -> dict[str, Any]:
    """A PUT body: known attributes only, each one updatable.

    Neutron names ``tenant_id`` when either project attribute is sent, since
    ``project_id`` is the alias it maps onto ``tenant_id`` before checking.
    """
    _check_known(attrs, data)
    for name in data:
        if not attrs[name].put:
            shown = "tenant_id" if name == "project_id" else name
            raise bad_request(f"Cannot update read-only attribute {shown}")
        if attrs[name].admin_only and not is_admin:
            raise policy_denied(f"update_{resource}", name)
    return convert_and_validate(attrs, data)


def visible(attrs: AttrMap, doc: Mapping[str, Any], *, is_admin: bool) -> dict[str, Any]:
    """The fields a caller may see: admin-only ones are silently left out for others."""
    if is_admin:
        return dict(doc)
    return {k: v for k, v in doc.items() if not (k in attrs and attrs[k].admin_only)}


__all__ = [
    "NO_BODY",
    "Attr",
    "AttrMap",
    "Invalid",
    "check_create",
    "check_update",
    "convert_and_validate",
    "ip_address",
    "is_uuid",
    "list_of_strings",
    "one_of",
    "policy_denied",
    "string",
    "string_or_none",
    "to_boolean",
    "to_int",
    "to_int_or_none",
    "unique_strings",
    "unwrap",
    "unwrap_bulk",
    "uuid_list",
    "uuid_or_none",
    "visible",
]
