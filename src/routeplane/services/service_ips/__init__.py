"""Service IPs: an address that reaches a chosen VM and moves to another (atomic
moves of a fixed IP between ports, the hints that make a move make-before-break)."""
