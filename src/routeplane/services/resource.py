"""The shape every resource service has, so the api can serve them all the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from routeplane.services.attributes import AttrMap
from routeplane.services.context import Context
from routeplane.services.listing import Matcher


class ResourceService(Protocol):
    @property
    def name(self) -> str: ...  # "port"

    @property
    def collection(self) -> str: ...  # "ports"

    @property
    def attrs(self) -> AttrMap: ...

    @property
    def matchers(self) -> Mapping[str, Matcher]: ...  # filters beyond equality (fixed_ips=)

    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, ctx: Context, resource_id: str) -> dict[str, Any]: ...

    def list_visible(self, ctx: Context) -> list[dict[str, Any]]: ...

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]: ...

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None: ...

    def set_tags(self, ctx: Context, resource_id: str, tags: list[str]) -> list[str]: ...


__all__ = ["ResourceService"]
