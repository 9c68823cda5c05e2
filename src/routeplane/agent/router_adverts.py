"""The host's router advertisements: every VM's tap hears the host as its IPv6 router.

Follows the host's endpoint records (a branch of the loop's follower, into the same
table by tap as the DHCPv4 server, :class:`~routeplane.agent.tap_service.Leases`) and, for
each tap whose port has an IPv6 subnet with a mode, sends the advertisement
:func:`~routeplane.dataplane.ra_packet.advert_for` describes: at once when a tap appears
(within :data:`TICK`), every :data:`INTERVAL` seconds after that, and in answer to a
router solicitation from the tap (at most one answer per tap every :data:`MIN_GAP`
seconds: a soliciting flood costs a lookup per packet). A changed subnet or MTU is in
the next advertisement; stateless, so a restarted agent advertises as soon as its
snapshot is in. What it must not do: advertise on an interface that is no port's tap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from routeplane.agent.tap_service import Loop, TapService
from routeplane.dataplane.ra_packet import advert_for, encode, is_solicit
from routeplane.store.watcher import Feed

LOG = logging.getLogger("routeplane.agent.router_adverts")
INTERVAL = 30.0  # seconds between unsolicited advertisements on a tap
TICK = 0.25  # how often the taps are looked over (a new tap waits at most this)
MIN_GAP = 0.2  # seconds between two answers to one tap's solicitations


class AdvertSocket(Protocol):
    """``dataplane.linux.ra_socket.RaSocket``, or a test's stand-in."""

    def receive(self, timeout: float) -> tuple[str, bytes] | None: ...

    def send(self, interface: str, message: bytes) -> None: ...

    def close(self) -> None: ...


class RouterAdverts(TapService[AdvertSocket]):
    """Advertises the host as the IPv6 router on each of its VMs' taps."""

    name = "ra"
    sent = 0  # advertisements sent (per instance once it has sent one)

    def __init__(
        self,
        host: str,
        sock: AdvertSocket,
        endpoints: Feed,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(host, sock, endpoints, clock)
        self._sent: dict[str, float] = {}  # tap -> when it was last advertised to

    def advertise(self, tap: str) -> bool:
        """Send ``tap`` its advertisement now; False when it has none (or the tap has
        no usable link-local address yet: the next tick tries again)."""
        records = self.leases.on_tap(tap)
        if not records:
            return False
        record = records[0]
        advert = advert_for(record.get("addressing", []), record.get("mtu", 0))
        if advert is None:
            return False
        try:
            self.sock.send(tap, encode(advert))
        except OSError as exc:
            LOG.debug("ra: cannot advertise on %s: %s", tap, exc)
            return False
        self._sent[tap] = self.clock()
        self.sent += 1
        return True

    def tick(self) -> None:
        """Advertise on every tap that is due (new ones at once), forget gone taps."""
        now = self.clock()
        taps = self.leases.tap_names()
        present = set(taps)
        for gone in [t for t in self._sent if t not in present]:
            del self._sent[gone]
        for tap in taps:
            if now - self._sent.get(tap, -INTERVAL) >= INTERVAL:
                self.advertise(tap)

    def handle(self, tap: str, message: bytes) -> None:
        """A router solicitation from ``tap``: answer it, unless just answered."""
        if not is_solicit(message) or (tap not in self._sent and not self.leases.on_tap(tap)):
            return
        if self.clock() - self._sent.get(tap, -INTERVAL) < MIN_GAP:
            return
        self.advertise(tap)

    def _periodic(self) -> None:
        if self.leases.ready:
            self.tick()
        self._stop.wait(TICK)

    def _loops(self) -> Sequence[Loop]:
        return [*super()._loops(), (self._periodic, "advertise", OSError)]


__all__ = ["INTERVAL", "MIN_GAP", "AdvertSocket", "RouterAdverts"]
