"""What a health probe is given and what it answers: the port between the agent's health
checker and the thing that opens sockets (``dataplane.linux.probe`` for real, a stateful
fake in the unit tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Check:
    """One port of one service IP, as probed from its host."""

    service_ip_id: str
    port_id: str
    address: str  # the VM's own address that is probed
    type: str  # "tcp" | "http"
    port: int
    path: str
    interval: float
    threshold: int


class Probe(Protocol):
    def __call__(self, check: Check, timeout: float) -> bool:
        """True when the VM answered the check within ``timeout`` seconds."""
        ...


__all__ = ["Check", "Probe"]
