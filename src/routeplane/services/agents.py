"""``/v2.0/agents``: Neutron's agent resource (extension ``agent``), from the agents'
own records.

An agent is listed while the store holds its unleased record ``agent_info/<host>`` or
its leased liveness record ``agents/<host>``; it is ``alive`` exactly while the leased
one exists (see :mod:`routeplane.model.agent`). Its ``heartbeat_timestamp``: for a live
agent the time of the answer (the lease it renews every third of its TTL vouches for a
heartbeat that recent), for a dead one the last registration known, since a lease
renewal writes no timestamp anywhere.

Writes are admins' only, as Neutron's policy has it; others see no agents at all (an
empty list, ``AgentNotFound`` for one). ``PUT`` sets ``admin_state_up`` and
``description`` (``agent_admin/<host>``, a key no agent writes). ``DELETE``:
- of a dead agent, forgets the host: its records and its ``hosts/<host>`` BGP
  registration (so the other hosts stop peering with it), on condition that it is still
  dead when the delete commits; an agent that comes back registers afresh;
- of a live agent, as in Neutron, where the row is deleted and the agent writes it again
  at its next report: the operator's settings are dropped and the agent stays listed.
``POST`` is Neutron's ``BadRequest``: agents register themselves.

Whether a host has a live agent also decides a port binding (``services.core.ports``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from routeplane.model import keys
from routeplane.model.agent import AGENT_TYPE, BINARY, TIME_FORMAT, TOPIC, agent_id
from routeplane.services.attributes import Attr, AttrMap, string_or_none, to_boolean
from routeplane.services.context import Context
from routeplane.services.errors import ApiFault
from routeplane.services.listing import Matcher
from routeplane.services.repo import Change, Doc, Outcome, Repo

_READ_ONLY = Attr(post=False, put=False)
ATTRS: AttrMap = {
    "id": _READ_ONLY,
    "agent_type": _READ_ONLY,
    "binary": _READ_ONLY,
    "topic": _READ_ONLY,
    "host": _READ_ONLY,
    "admin_state_up": Attr(post=False, convert=to_boolean),
    "created_at": _READ_ONLY,
    "started_at": _READ_ONLY,
    "heartbeat_timestamp": _READ_ONLY,
    "description": Attr(post=False, validate=string_or_none(255)),
    "resources_synced": _READ_ONLY,
    "availability_zone": _READ_ONLY,
    "alive": Attr(post=False, put=False, convert=to_boolean),
    "configurations": Attr(post=False, put=False, filter=False),
}


def neutron_time(stamp: object) -> str | None:
    """A stored time in Neutron's agent format (older records wrote ISO 8601 with Z)."""
    if not isinstance(stamp, str) or not stamp:
        return None
    return stamp.replace("T", " ").removesuffix("Z")


class AgentService:
    name = "agent"
    collection = "agents"
    attrs = ATTRS
    matchers: ClassVar[Mapping[str, Matcher]] = {}

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    # reading -----------------------------------------------------------------------------
    def live_hosts(self) -> set[str]:
        return set(self.repo.keys(keys.AGENTS))

    def is_live(self, host: str) -> bool:
        return self.repo.get_key(keys.agent_key(host)) is not None

    def _hosts(self) -> set[str]:
        return self.live_hosts() | set(self.repo.keys(keys.AGENT_INFO))

    def _render(self, host: str) -> dict[str, Any] | None:
        live = self.repo.get_key(keys.agent_key(host))
        info = self.repo.get_key(keys.agent_info_key(host))
        found = live if live is not None else info
        if found is None:
            return None
        record = found.value
        admin_doc = self.repo.get_key(keys.agent_admin_key(host))
        admin = {} if admin_doc is None else admin_doc.value
        started = neutron_time(record.get("registered_at"))
        created = neutron_time(record.get("created_at")) or started
        now = time.strftime(TIME_FORMAT, time.gmtime())
        return {
            "id": agent_id(host),
            "agent_type": record.get("agent_type", AGENT_TYPE),
            "binary": record.get("binary", BINARY),
            "topic": record.get("topic", TOPIC),
            "host": host,
            "admin_state_up": bool(admin.get("admin_state_up", True)),
            "created_at": created,
            "started_at": started,
            "heartbeat_timestamp": now if live is not None else started,
            "description": admin.get("description"),
            "resources_synced": None,
            "availability_zone": record.get("availability_zone"),
            "alive": live is not None,
            "configurations": record.get("configurations", {}),
        }

    def _host_of(self, ctx: Context, resource_id: str) -> str:
        if ctx.is_admin:
            for host in self._hosts():
                if agent_id(host) == resource_id:
                    return host
        raise ApiFault("AgentNotFound", 404, f"Agent {resource_id} could not be found.")

    def list_visible(self, ctx: Context) -> list[dict[str, Any]]:
        if not ctx.is_admin:
            return []
        shown = (self._render(host) for host in sorted(self._hosts()))
        return [agent for agent in shown if agent is not None]

    def get(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        agent = self._render(self._host_of(ctx, resource_id))
        if agent is None:  # gone since it was found
            raise ApiFault("AgentNotFound", 404, f"Agent {resource_id} could not be found.")
        return agent

    # writing -----------------------------------------------------------------------------
    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        raise ApiFault(
            "BadRequest", 400, "Bad agents request: Agent creation using API is not supported.."
        )

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        host = self._host_of(ctx, resource_id)
        admin_key = keys.agent_admin_key(host)

        def use_case() -> Outcome[None]:
            doc = self.repo.get_key(admin_key)
            change = Change()
            change.depends_on(doc, admin_key)
            settings = {} if doc is None else dict(doc.value)
            settings.update(data)
            change.put(admin_key, settings)
            return Outcome(change, None)

        self.repo.run(use_case)
        return self.get(ctx, resource_id)

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        host = self._host_of(ctx, resource_id)

        def use_case() -> Outcome[None]:
            change = Change()
            live = self.repo.get_key(keys.agent_key(host))
            change.depends_on(live, keys.agent_key(host))
            self._forget(change, keys.agent_admin_key(host))
            if live is not None:  # it reports again at once
                info = self.repo.get_key(keys.agent_info_key(host))
                change.depends_on(info, keys.agent_info_key(host))
                change.put(keys.agent_info_key(host), live.value)
            else:
                self._forget(change, keys.agent_info_key(host))
                self._forget(change, keys.host_key(host))
            return Outcome(change, None)

        self.repo.run(use_case)

    def _forget(self, change: Change, k: str) -> None:
        doc: Doc | None = self.repo.get_key(k)
        if doc is not None:
            change.depends_on(doc)
            change.delete(k)

    def set_tags(self, ctx: Context, resource_id: str, tags: list[str]) -> list[str]:
        raise ApiFault("HTTPNotFound", 404, "The resource could not be found.")


__all__ = ["ATTRS", "AgentService"]
