"""What every long-running routeplane process does first: log with its name, and turn
SIGTERM and SIGINT into a stop event its loop checks (so it ends cleanly: the agent
revokes its liveness lease, the controller hands leadership over)."""

from __future__ import annotations

import logging
import signal
import threading


def start(name: str, verbose: bool) -> threading.Event:
    """Configure logging as ``<time> <name> <level> <message>``; the event set on SIGTERM
    or SIGINT."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=f"%(asctime)s {name} %(levelname)s %(message)s",
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


__all__ = ["start"]
