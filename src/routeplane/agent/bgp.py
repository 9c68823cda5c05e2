"""The host's BGP speaker, kept in step with the hosts registry.

The agent follows ``hosts/`` (every host's BGP address and AS), renders this host's BIRD
configuration with the pure ``bgp.render`` and hands it to BIRD only when the text
changed — so the periodic check costs a string comparison and a look at BIRD's pid, and a
new host joining the fabric costs each other host one ``birdc configure``. A BIRD that is
not running (never started, crashed, killed) is started again on the next check; its
kernel protocol relearns our device routes and the peers get them back.

The registry record of a host is durable (see ``registration``): an agent that restarts,
or is down for a while, does not drop out of its peers' configurations, so the routes its
BIRD announces keep flowing. A host that really goes away is noticed by BGP itself (BFD,
hold timer) long before anything here could.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from routeplane.bgp.bird import BirdPort
from routeplane.bgp.render import HostBgp, Peer, Timers, mesh_peers, render
from routeplane.model.errors import BgpError
from routeplane.model.keys import HOSTS, prefix
from routeplane.store import EventType, Store
from routeplane.store.watcher import Follower, Snapshot

LOG = logging.getLogger("routeplane.agent")


@dataclass(frozen=True)
class BgpSettings:
    """This host's BGP: its fabric addresses, its AS, and how it finds peers."""

    address: str  # IPv4 fabric address: router id and session address
    address6: str = ""  # IPv6 fabric address: next hop of the IPv6 routes it announces
    as_number: int = 64512
    peers: tuple[str, ...] = ()  # extra peers: "ADDR" (same AS) or "ADDR:AS"
    reflectors: tuple[str, ...] = ()  # peer only with these (and the extra peers)
    reflector: bool = False  # this host reflects routes to every registered host
    bfd: bool = True
    log_path: str = ""
    check_interval: float = 1.0  # how often a missing BIRD is noticed and started
    error_delays: tuple[float, ...] = (0.5, 1, 2, 5, 10)
    timers: Timers = field(default_factory=Timers)


def parse_peer(text: str, default_as: int) -> Peer:
    """``ADDR`` or ``ADDR:AS`` (IPv6 addresses in brackets when an AS follows)."""
    address, as_number = text, default_as
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            as_number = int(rest[1:])
    elif text.count(":") == 1:
        address, number = text.split(":")
        as_number = int(number)
    return Peer(address, as_number)


class BgpSpeaker:
    def __init__(
        self,
        store: Store,
        bird: BirdPort,
        host: str,
        settings: BgpSettings,
        clock: Callable[[], float],
    ) -> None:
        self.bird = bird
        self.host = host
        self.settings = settings
        self.clock = clock
        self.prefix = prefix(HOSTS)
        self.follower = Follower(store, self.prefix)
        self.hosts: dict[str, tuple[str, int]] = {}
        self.addresses6: dict[str, str] = {}  # host -> IPv6 fabric address, when it has one
        self.extra = tuple(parse_peer(p, settings.as_number) for p in settings.peers)
        self.applied: str | None = None
        self.dirty = True
        self._next_check = 0.0
        self._errors = 0

    def poll(self, timeout: float = 0.0) -> None:
        """Take in registry changes, waiting at most ``timeout`` (raises ``StoreError``)."""
        news = self.follower.poll(timeout)
        if isinstance(news, Snapshot):
            self.hosts, self.addresses6 = {}, {}
            for kv in news.items.values():
                self._note(kv.key, kv.value)
            self.dirty = True
            return
        for event in news:
            self._note(event.key, event.value if event.type is EventType.PUT else None)
            self.dirty = True

    def _note(self, key: str, value: Any) -> None:
        name = key[len(self.prefix) :]
        if isinstance(value, dict) and value.get("bgp_address"):
            self.hosts[name] = (str(value["bgp_address"]), int(value.get("as_number", 0)))
        else:
            self.hosts.pop(name, None)
        if isinstance(value, dict) and value.get("bgp_address6"):
            self.addresses6[name] = str(value["bgp_address6"])
        else:
            self.addresses6.pop(name, None)

    def next_hop(self, host: str, version: int) -> str:
        """``host``'s fabric address of IP ``version`` ("" when it has none registered):
        where this host forwards an address that moved there while it drains."""
        if version == 6:
            return self.addresses6.get(host, "")
        return self.hosts.get(host, ("", 0))[0]

    def config(self) -> str:
        s = self.settings
        peers = mesh_peers(
            self.host, self.hosts, extra=self.extra, reflectors=s.reflectors, reflector=s.reflector
        )
        return render(
            HostBgp(
                host=self.host,
                router_id=s.address,
                as_number=s.as_number,
                peers=peers,
                address6=s.address6,
                reflector=s.reflector,
                bfd=s.bfd,
                log_path=s.log_path,
                timers=s.timers,
            )
        )

    def apply(self) -> None:
        """Hand BIRD the configuration when it changed or BIRD is not running."""
        now = self.clock()
        if now < self._next_check and not (self.dirty and self._errors == 0):
            return
        self._next_check = now + self.settings.check_interval
        config = self.config()
        if config == self.applied and not self.dirty and self.bird.running():
            return
        try:
            if self.bird.apply(config):
                peers = config.count(" from fabric")
                LOG.info("bgp: BIRD runs the configuration for %d peer(s)", peers)
        except BgpError as exc:
            delays = self.settings.error_delays
            delay = delays[min(self._errors, len(delays) - 1)]
            self._errors += 1
            self._next_check = now + delay
            LOG.warning("bgp: %s; trying again in %.1fs", exc, delay)
            return
        self._errors = 0
        self.applied = config
        self.dirty = False

    def close(self) -> None:
        """Stop following; BIRD keeps running so the routes stay while the agent is away."""
        self.follower.close()


__all__ = ["BgpSettings", "BgpSpeaker", "parse_peer"]
