"""Waiting for the lab's world to reach a state: poll a check until it holds or time is up.

One helper for ``lab up``/``boot`` and the benchmarks that drive a lab (the tests have
``tests/waiting.py``, which raises instead of answering False).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Whether ``check()`` held within ``timeout`` seconds (polled every ``interval``);
    it is asked once more at the end, so a slow last poll is not a false failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


__all__ = ["wait_until"]
