"""What the host's nftables policy is made of, kept current from the store.

Security groups are global, and a rule with ``remote_group_id`` admits the addresses of
every port in that group on every host, so this follows all endpoint records and all
security groups (not only this host's) and renders the host's whole table from them with
the pure ``dataplane.nft_render.render``. The executor applies it with one atomic
``nft -f``; the agent routes an endpoint only once its policy is in place, so a policy
that cannot be programmed fails closed (no route, no traffic) rather than open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from routeplane.dataplane.nft_delta import Blocks
from routeplane.dataplane.nft_render import render
from routeplane.store import Event, EventType, Store
from routeplane.store.watcher import Follower, Snapshot

ROOT = "/routeplane/v1/"


class PolicyTable(Protocol):
    """The executor's port for the host's table: apply a whole script atomically, or raise
    ``DataplaneError`` and keep the previous one."""

    def apply(self, script: str) -> None: ...


class PolicyFeed:
    def __init__(self, store: Store) -> None:
        self.endpoints = Follower(store, f"{ROOT}endpoints/")
        self.groups_follower = Follower(store, f"{ROOT}security_groups/")
        self.all_endpoints: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.dirty = True
        self.applied: Blocks | None = None  # the table as last programmed; None: unknown

    def poll(self) -> None:
        """Take in whatever changed, without waiting (raises ``StoreError``)."""
        self._take(self.groups_follower.poll(0), self.groups, f"{ROOT}security_groups/")
        self._take(self.endpoints.poll(0), self.all_endpoints, f"{ROOT}endpoints/")

    def _take(
        self, news: Snapshot | list[Event], into: dict[str, dict[str, Any]], prefix: str
    ) -> None:
        if isinstance(news, Snapshot):
            into.clear()
            into.update(
                {
                    k[len(prefix) :]: kv.value
                    for k, kv in news.items.items()
                    if isinstance(kv.value, dict)
                }
            )
            self.dirty = True
            return
        for event in news:
            key = event.key[len(prefix) :]
            if event.type is EventType.PUT and isinstance(event.value, dict):
                into[key] = event.value
            else:
                into.pop(key, None)
            self.dirty = True

    def members(self) -> dict[str, list[str]]:
        """Security-group id -> the addresses of its ports, on any host."""
        found: dict[str, list[str]] = {}
        for endpoint in self.all_endpoints.values():
            addresses = [*endpoint.get("fixed_ips", []), *endpoint.get("allowed_addresses", [])]
            for group in endpoint.get("security_groups", []):
                found.setdefault(str(group), []).extend(str(a) for a in addresses)
        return {group: sorted(set(addresses)) for group, addresses in found.items()}

    def script(self, local: Iterable[Mapping[str, Any]]) -> str:
        return render(list(local), self.groups, self.members())

    def close(self) -> None:
        self.endpoints.close()
        self.groups_follower.close()


__all__ = ["PolicyFeed", "PolicyTable"]
