"""Networks, subnets and ports: the core Neutron resources, their fixed IPs, and the
endpoint records a bound port's host realises (derived in the port's own transaction)."""
