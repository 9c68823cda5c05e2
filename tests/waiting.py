"""One way for tests to wait for the world: poll a check until it holds or time is up."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    check: Callable[[], bool], timeout: float = 10.0, what: str = "condition",
    interval: float = 0.005,
) -> float:  # fmt: skip
    """Seconds until ``check()`` held; ``AssertionError`` naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
