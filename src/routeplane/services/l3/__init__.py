"""Routers and floating IPs: Neutron's L3 resources. In a routed network every host is
the router, so a router here is the bookkeeping that makes floating IPs valid (an
external gateway, interfaces on the subnets its floating IPs reach)."""
