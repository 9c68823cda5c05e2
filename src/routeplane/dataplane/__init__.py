"""The host dataplane: what the kernel must hold for the endpoints of one host, and the
narrow interface through which the agent reads and changes it."""
