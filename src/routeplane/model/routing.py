"""The kernel routes routeplane owns, as the agent installs them and BIRD reads them.

Two processes must agree on these numbers: the agent (``dataplane``) installs a VM's
routes with them, and BIRD's configuration (``bgp.render``) imports exactly the routes
carrying :data:`ROUTE_PROTO` and ranks them by metric. They live here once.

The kernel keys a route by (destination, metric), and the lowest metric wins. BIRD
installs what it learns over BGP at :data:`BIRD_METRIC`, so

- :data:`PREFERRED_METRIC` (below BIRD's): the route of an address that was just moved
  here wins at once over the BGP route towards the host it came from;
- :data:`ROUTE_METRIC` (above BIRD's, the ordinary one): whenever BIRD installs a route
  for one of our addresses, it is because BGP saw a *preferred* route elsewhere, and the
  kernel then follows BIRD at once.
"""

from __future__ import annotations

# Our route protocol number (see /etc/iproute2/rt_protos: unassigned). Routes with it are
# ours to add, replace and sweep; routes with any other number are never touched.
ROUTE_PROTO = 77
ROUTE_METRIC = 1024  # ordinary: loses to BIRD's routes (IPv6's default metric, for IPv4 too)
PREFERRED_METRIC = 16  # an address moved here: wins over BIRD's routes
BIRD_METRIC = 32  # what BIRD's kernel protocol installs with (bgp.render says so explicitly)

__all__ = ["BIRD_METRIC", "PREFERRED_METRIC", "ROUTE_METRIC", "ROUTE_PROTO"]
