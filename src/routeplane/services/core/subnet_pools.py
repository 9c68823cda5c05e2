"""Subnet pools: tenants get subnets that overlap no one's without knowing anyone's.

In one flat routed space (:mod:`routeplane.services.core.address_space`) a tenant asking
for ``10.0.0.0/24`` is refused if any project holds an overlapping subnet, and cannot see
which. A subnet pool (Neutron's ``subnet_allocation``) hands out the lowest free CIDR of
the requested length instead: ``POST /v2.0/subnets`` with ``subnetpool_id`` and
``prefixlen`` (or the pool's ``default_prefixlen``), or ``use_default_subnetpool`` for
the shared default pool of the IP version (``default-subnetpools``; the api creates it
from its config, :meth:`SubnetPoolService.ensure_default`).

The choice is made under the address space's generation key, like every subnet create,
so two racing allocations cannot take one CIDR and a pool's prefixes are shared with
subnets created by CIDR. At most one default pool per IP version: the pool claims
``default-subnetpools/<version>``. A pool is deleted only when no subnet came from it
(that check too depends on the generation key, so a racing allocation is seen).

Fields, defaults and errors are Neutron 29's (checked against the neutron-peer):
``min_prefixlen`` 8 (IPv4) or 64 (IPv6), ``max_prefixlen`` the address length,
``default_prefixlen`` the minimum; prefixes are stored collapsed; the prefix lengths are
shown as strings, as Neutron shows them. ``shared`` and ``is_default`` are admin-only.
No address scopes exist, so ``address_scope_id`` can only be null.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from routeplane.ipam.pools import IPNetwork
from routeplane.ipam.subnet_alloc import collapse, free_blocks, free_subnet, inside
from routeplane.services.attributes import (
    Attr,
    policy_denied,
    to_boolean,
    to_int_or_none,
    uuid_or_none,
)
from routeplane.services.common import new_doc, require_write, standard_attrs
from routeplane.services.context import ADMIN, Context
from routeplane.services.core import address_space
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, bad_resource_request, invalid_input
from routeplane.services.repo import Change, Doc, Outcome, key

PREFIXLENS = ("min_prefixlen", "max_prefixlen", "default_prefixlen")
ADMIN_ONLY = ("shared", "is_default")


def _cidr_list(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"'{value}' is not a list"
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            return f"'{item}' is not a valid IP subnet"
    return None


def _non_negative(value: Any) -> str | None:
    if value is not None and int(value) < 0:
        return f"'{value}' should be non-negative"
    return None


ATTRS: dict[str, Attr] = {
    **standard_attrs(),
    "prefixes": Attr(validate=_cidr_list),
    "ip_version": Attr(post=False, put=False, default=None, sort=True),
    "default_prefixlen": Attr(default=None, convert=to_int_or_none, validate=_non_negative),
    "min_prefixlen": Attr(default=None, convert=to_int_or_none, validate=_non_negative),
    "max_prefixlen": Attr(default=None, convert=to_int_or_none, validate=_non_negative),
    "shared": Attr(put=False, default=False, convert=to_boolean, sort=True),
    "is_default": Attr(default=False, convert=to_boolean, sort=True),
    "address_scope_id": Attr(default=None, validate=uuid_or_none),
    "default_quota": Attr(default=None, convert=to_int_or_none, validate=_non_negative),
}


def parse_prefixes(raw: list[str]) -> list[IPNetwork]:
    if not raw:
        raise ApiFault("EmptySubnetPoolPrefixList", 400, "Empty subnet pool prefix list.")
    networks = [ipaddress.ip_network(str(p), strict=False) for p in raw]
    if len({n.version for n in networks}) > 1:
        raise ApiFault(
            "PrefixVersionMismatch", 400, "Cannot mix IPv4 and IPv6 prefixes in a subnet pool."
        )
    return collapse(networks)


def _bounds_error(**pair: int) -> ApiFault:
    shown = ", ".join(f"{k}={v}" for k, v in pair.items())
    return ApiFault("IllegalSubnetPoolPrefixBounds", 400, f"Illegal prefix bounds: {shown}.")


def settle_bounds(doc: dict[str, Any], version: int) -> None:
    """Neutron's defaults for the prefix lengths not given, then its bound checks."""
    bits = 32 if version == 4 else 128
    if doc.get("min_prefixlen") is None:
        doc["min_prefixlen"] = 8 if version == 4 else 64
    if doc.get("max_prefixlen") is None:
        doc["max_prefixlen"] = bits
    if doc.get("default_prefixlen") is None:
        doc["default_prefixlen"] = doc["min_prefixlen"]
    low, high, default = (int(doc[n]) for n in PREFIXLENS)
    if high > bits:
        raise _bounds_error(max_prefixlen=high, ip_version_max=bits)
    if low > high:
        raise _bounds_error(min_prefixlen=low, max_prefixlen=high)
    if default < low:
        raise _bounds_error(default_prefixlen=default, min_prefixlen=low)
    if default > high:
        raise _bounds_error(default_prefixlen=default, max_prefixlen=high)


def allocation_error(reason: str) -> ApiFault:
    """Neutron's SubnetAllocationError, type and message. Neutron answers it with a 500
    (a plain NeutronException); a full pool is no server fault, so ours is a 409, as for a
    subnet with no address left (IpAddressGenerationFailure)."""
    return ApiFault("SubnetAllocationError", 409, f"Failed to allocate subnet: {reason}.")


def default_key(version: int) -> str:
    return key("default-subnetpools", str(version))


class SubnetPoolService(DocService):
    name = "subnetpool"
    collection = "subnetpools"
    kind = "subnetpools"
    attrs = ATTRS
    not_found_type = "SubnetPoolNotFound"
    not_found_message = "Subnet pool {id} could not be found."

    def shared_with(self, ctx: Context, doc: dict[str, Any]) -> bool:
        return bool(doc.get("shared"))

    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        shown = super().render(ctx, doc)
        for name in PREFIXLENS:
            shown[name] = str(shown[name])
        return shown

    @staticmethod
    def _admin_settings(ctx: Context, data: dict[str, Any], action: str) -> None:
        for name in ADMIN_ONLY:
            if not ctx.is_admin and data.get(name):
                raise policy_denied(action, name)
        if data.get("address_scope_id") is not None:
            scope = data["address_scope_id"]
            raise ApiFault(
                "AddressScopeNotFound", 404, f"Address scope {scope} could not be found."
            )

    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_subnetpool")
        self._admin_settings(ctx, data, "create_subnetpool")
        prefixes = parse_prefixes(data["prefixes"])
        doc = new_doc(ctx, data)
        doc["prefixes"] = [str(p) for p in prefixes]
        doc["ip_version"] = prefixes[0].version
        settle_bounds(doc, prefixes[0].version)

        def use_case() -> Outcome[dict[str, Any]]:
            change = Change()
            if doc["is_default"]:
                self._claim_default(change, doc)
            change.claim(key(self.kind, doc["id"]), doc)
            return Outcome(change, doc)

        return self.render(ctx, self.repo.run(use_case))

    def _claim_default(self, change: Change, doc: dict[str, Any]) -> None:
        default = default_key(int(doc["ip_version"]))
        if self.repo.get_key(default) is not None:
            raise invalid_input(
                "A default subnetpool for this IP family has already been set. "
                "Only one default may exist per IP family"
            )
        change.claim(default, {"subnetpool_id": doc["id"]})

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        def apply(doc: Doc, change: Change) -> dict[str, Any]:
            merged = {**doc.value, **data}
            if "prefixes" in data:
                merged["prefixes"] = self._grown(doc.value, parse_prefixes(data["prefixes"]))
            settle_bounds(merged, int(doc.value["ip_version"]))
            if merged["is_default"] and not doc.value.get("is_default"):
                self._claim_default(change, merged)
            elif doc.value.get("is_default") and not merged["is_default"]:
                change.delete(default_key(int(doc.value["ip_version"])))
            return merged

        updated = self.update_doc(
            ctx,
            resource_id,
            if_match,
            apply,
            authorize=lambda _doc: self._admin_settings(ctx, data, "update_subnetpool"),
        )
        return self.render(ctx, updated)

    @staticmethod
    def _grown(old: dict[str, Any], new: list[IPNetwork]) -> list[str]:
        """A pool's prefixes may only grow (Neutron's IllegalSubnetPoolPrefixUpdate)."""
        for prefix in old["prefixes"]:
            if not inside(new, ipaddress.ip_network(prefix)):
                raise ApiFault(
                    "IllegalSubnetPoolPrefixUpdate",
                    400,
                    "Illegal update to prefixes: Existing prefixes must be a subset of the "
                    "new prefixes.",
                )
        return [str(p) for p in new]

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        def remove(doc: Doc, change: Change) -> None:
            # the generation key: a subnet allocated from the pool meanwhile is seen
            address_space.claim_generation(self.repo, change)
            if any(s.value.get("subnetpool_id") == resource_id for s in self.repo.list("subnets")):
                raise ApiFault(
                    "SubnetPoolDeleteError",
                    400,
                    "Unable to delete subnet pool: Subnet pool has existing allocations.",
                )
            if doc.value.get("is_default"):
                change.delete(default_key(int(doc.value["ip_version"])))

        self.delete_doc(ctx, resource_id, if_match, remove=remove)

    # subnetpool-prefix-ops ------------------------------------------------------------
    def add_prefixes(self, ctx: Context, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT .../add_prefixes``: the pool grows by the given prefixes."""
        added = self._body_prefixes(body)

        def apply(doc: Doc, _change: Change) -> dict[str, Any]:
            merged = parse_prefixes([*doc.value["prefixes"], *map(str, added)])
            return {**doc.value, "prefixes": [str(p) for p in merged]}

        return {"prefixes": self.update_doc(ctx, pool_id, None, apply)["prefixes"]}

    def remove_prefixes(self, ctx: Context, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT .../remove_prefixes``: refused while a subnet of the pool lies in them."""
        removed = self._body_prefixes(body)

        def apply(doc: Doc, change: Change) -> dict[str, Any]:
            address_space.claim_generation(self.repo, change)
            for subnet in self.repo.list("subnets"):
                cidr = ipaddress.ip_network(str(subnet.value.get("cidr")))
                if subnet.value.get("subnetpool_id") == pool_id and any(
                    cidr.overlaps(r) for r in removed if r.version == cidr.version
                ):
                    raise ApiFault(
                        "IllegalSubnetPoolPrefixUpdate",
                        400,
                        "Illegal update to prefixes: One or more the prefixes to be removed "
                        "is in use by a subnet..",
                    )
            prefixes = [ipaddress.ip_network(p) for p in doc.value["prefixes"]]
            left = free_blocks(prefixes, removed)
            return {**doc.value, "prefixes": [str(p) for p in collapse(left)]}

        return {"prefixes": self.update_doc(ctx, pool_id, None, apply)["prefixes"]}

    @staticmethod
    def _body_prefixes(body: dict[str, Any]) -> list[IPNetwork]:
        raw = body.get("prefixes")
        reason = _cidr_list(raw) if raw is not None else "'prefixes' not specified"
        if reason:
            raise invalid_input(reason)
        return [ipaddress.ip_network(str(p), strict=False) for p in raw or []]

    # the default pools ------------------------------------------------------------------
    def ensure_default(self, prefixes: list[str], prefixlen: int | None = None) -> None:
        """The api's configured default pool of the prefixes' IP version, shared, created
        once (by whichever api process starts first) unless a default pool exists."""
        parsed = parse_prefixes(prefixes)
        if self.repo.get_key(default_key(parsed[0].version)) is not None:
            return
        defaults = {n: a.default_value() for n, a in ATTRS.items() if a.post and a.has_default}
        data = {
            **defaults,
            "name": f"default-ipv{parsed[0].version}",
            "prefixes": prefixes,
            "shared": True,
            "is_default": True,
            "default_prefixlen": prefixlen,
        }
        try:
            self.create(ADMIN, data)
        except ApiFault as exc:
            if exc.type_name != "InvalidInput":  # another process made it first
                raise

    # allocating subnets ---------------------------------------------------------------
    def default_pool(self, version: int) -> str:
        claim = self.repo.get_key(default_key(version))
        if claim is None:
            raise bad_resource_request("subnets", f"No default subnetpool found for IPv{version}")
        return str(claim.value["subnetpool_id"])

    def allocate(
        self,
        ctx: Context,
        change: Change,
        request: dict[str, Any],
        network_id: str,
    ) -> IPNetwork:
        """The CIDR of a new subnet from its pool: the one asked for if free and inside
        the pool, else the lowest free one of ``prefixlen``. ``change`` then commits only
        if no subnet was created meanwhile and the pool is unchanged."""
        pool = self.load(ctx, str(request["subnetpool_id"]))
        change.depends_on(pool)
        version, wanted = int(request["ip_version"]), int(pool.value["ip_version"])
        if version != wanted:
            raise bad_resource_request(
                "subnets", f"Cannot allocate IPv{version} subnet from IPv{wanted} subnet pool"
            )
        prefixes = [ipaddress.ip_network(p) for p in pool.value["prefixes"]]
        used = address_space.claim_generation(self.repo, change)
        cidr = request.get("cidr")
        if cidr is not None:
            chosen = ipaddress.ip_network(str(cidr), strict=False)
            self._check_length(pool.value, chosen.prefixlen)
            if not inside(prefixes, chosen):
                raise allocation_error(
                    "Cannot allocate requested subnet from the available set of prefixes"
                )
            address_space.check_free(used, chosen, network_id)
            return chosen
        prefixlen = request.get("prefixlen")
        length = int(pool.value["default_prefixlen"] if prefixlen is None else prefixlen)
        self._check_length(pool.value, length)
        found = free_subnet(prefixes, used, length)
        if found is None:
            raise allocation_error(f"Insufficient prefix space to allocate subnet size /{length}")
        return found

    @staticmethod
    def _check_length(pool: dict[str, Any], length: int) -> None:
        low, high = int(pool["min_prefixlen"]), int(pool["max_prefixlen"])
        if length < low:
            raise ApiFault(
                "MinPrefixSubnetAllocationError",
                400,
                f"Unable to allocate subnet with prefix length {length}, minimum allowed "
                f"prefix is {low}.",
            )
        if length > high:
            raise ApiFault(
                "MaxPrefixSubnetAllocationError",
                400,
                f"Unable to allocate subnet with prefix length {length}, maximum allowed "
                f"prefix is {high}.",
            )


__all__ = ["ATTRS", "SubnetPoolService", "default_key"]
