"""The host's registration: a durable ``hosts/<host>`` record and a leased
``agents/<host>`` record that the agent keeps alive (with an unleased copy in
``agent_info/<host>``, so the api still lists the agent, dead, once the lease is gone;
the record's shape and the names the agent gives itself: ``model.agent``).

Two records, because they answer two questions. ``hosts/<host>`` (BGP address, AS) is
what the other hosts build their BGP configuration from: it must *not* vanish when an
agent restarts or is down for a minute, or every peer would drop the session to a host
whose BIRD still announces healthy routes. ``agents/<host>`` is the agent's liveness: it
rides a lease, so when the agent stops renewing (it died, its host is cut off) the store
deletes it and every watcher sees the agent go. A lost lease is simply taken again.
A host leaves the fabric for good when an operator deletes its ``hosts/`` record.
"""

from __future__ import annotations

import logging
import time
from typing import cast

from routeplane import __version__
from routeplane.agent.settings import AgentSettings
from routeplane.model.agent import AGENT_TYPE, BINARY, TIME_FORMAT, TOPIC, AgentRecord
from routeplane.model.errors import LeaseNotFound
from routeplane.model.jsontypes import JSONObject
from routeplane.model.keys import agent_info_key, agent_key, host_key
from routeplane.store import Store

LOG = logging.getLogger("routeplane.agent")


class Registration:
    def __init__(self, store: Store, settings: AgentSettings) -> None:
        self.store = store
        self.settings = settings
        self.host_key = host_key(settings.host)
        self.key = agent_key(settings.host)
        self.lease: int | None = None
        self._next = 0.0

    def host_record(self) -> JSONObject:
        return {
            "host": self.settings.host,
            "bgp_address": self.settings.bgp_address,
            "bgp_address6": self.settings.bgp_address6,
            "as_number": self.settings.as_number,
        }

    def agent_record(self) -> AgentRecord:
        return {
            "host": self.settings.host,
            "agent_version": __version__,
            "registered_at": time.strftime(TIME_FORMAT, time.gmtime()),
            "agent_type": AGENT_TYPE,
            "binary": BINARY,
            "topic": TOPIC,
            "availability_zone": None,
            "configurations": {
                "bgp_address": self.settings.bgp_address,
                "bgp_address6": self.settings.bgp_address6,
                "as_number": self.settings.as_number,
                "agent_version": __version__,
            },
        }

    def keep(self, now: float) -> None:
        """Register, or renew the lease when a third of its TTL has passed."""
        if now < self._next:
            return
        if self.lease is not None:
            try:
                self.store.keepalive(self.lease)
            except LeaseNotFound:
                LOG.warning("agent lease %x expired; registering again", self.lease)
                self.lease = None
        if self.lease is None:
            record = self.host_record()
            current = self.store.get(self.host_key)
            if current is None or current.value != record:
                self.store.put(self.host_key, record)
            self.lease = self.store.grant_lease(self.settings.lease_ttl)
            alive = self.agent_record()
            known = self.store.get(agent_info_key(self.settings.host))
            first = (
                known.value.get("created_at") if known and isinstance(known.value, dict) else None
            )
            alive["created_at"] = first if isinstance(first, str) else alive["registered_at"]
            self.store.put(agent_info_key(self.settings.host), cast(JSONObject, alive))
            self.store.put(self.key, cast(JSONObject, alive), lease=self.lease)
        self._next = now + self.settings.lease_ttl / 3

    def close(self) -> None:
        """Leave the liveness registry at once on a clean stop (the host record stays)."""
        if self.lease is not None:
            try:
                self.store.revoke_lease(self.lease)
            except Exception as exc:
                LOG.info("could not revoke the agent lease: %s", exc)
            self.lease = None


__all__ = ["Registration"]
