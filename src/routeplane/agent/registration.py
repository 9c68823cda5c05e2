"""The host's registration: ``hosts/<host>`` on a lease that the agent keeps alive.

Liveness is the lease: when the agent stops renewing (it died, its host is cut off), the
store deletes the record and every watcher (the BGP configuration of the other hosts,
later) sees the host go. A lost lease is simply taken again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from routeplane import __version__
from routeplane.model.errors import LeaseNotFound
from routeplane.model.jsontypes import JSONObject
from routeplane.store import Store

if TYPE_CHECKING:
    from routeplane.agent.loop import AgentSettings

LOG = logging.getLogger("routeplane.agent")
ROOT = "/routeplane/v1/"


class Registration:
    def __init__(self, store: Store, settings: AgentSettings) -> None:
        self.store = store
        self.settings = settings
        self.key = f"{ROOT}hosts/{settings.host}"
        self.lease: int | None = None
        self._next = 0.0

    def keep(self, now: float) -> None:
        """Register, or renew the lease when a third of its TTL has passed."""
        if now < self._next:
            return
        if self.lease is not None:
            try:
                self.store.keepalive(self.lease)
            except LeaseNotFound:
                LOG.warning("host lease %x expired; registering again", self.lease)
                self.lease = None
        if self.lease is None:
            self.lease = self.store.grant_lease(self.settings.lease_ttl)
            record: JSONObject = {
                "host": self.settings.host,
                "bgp_address": self.settings.bgp_address,
                "as_number": self.settings.as_number,
                "agent_version": __version__,
                "registered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            self.store.put(self.key, record, lease=self.lease)
        self._next = now + self.settings.lease_ttl / 3

    def close(self) -> None:
        """Leave the registry at once on a clean stop."""
        if self.lease is not None:
            try:
                self.store.revoke_lease(self.lease)
            except Exception as exc:
                LOG.info("could not revoke the host lease: %s", exc)
            self.lease = None


__all__ = ["Registration"]
