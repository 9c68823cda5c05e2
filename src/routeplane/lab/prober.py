"""A continuous TCP prober, for measuring who answers on an address and when.

``python -m routeplane.lab.prober ADDRESS SECONDS [--port 22] [--every 0.003]``, run inside
a lab namespace (the access node, say): it starts a connect to ``ADDRESS:PORT`` every
``--every`` seconds — each attempt on its own, with its own 150 ms timeouts, so an outage
does not slow the probing down — and prints one line per attempt::

    <start> <end> <name>

the attempt's start and end (``time.monotonic()``: one clock for the whole machine, so
they compare with the caller's) and what the service answered (a lab VM's service answers
its name; ``-`` for no answer). It stops by itself after ``SECONDS``. The benchmarks and
the kernel tests read its output to find the first answer of a new VM after a move, the
window with no answer, and any answer from a VM that should no longer have the address.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

TIMEOUT = 0.15


async def _attempt(address: str, port: int, started: float) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), TIMEOUT)
        name = (await asyncio.wait_for(reader.read(64), TIMEOUT)).decode().strip() or "-"
        writer.close()
    except (TimeoutError, OSError):
        name = "-"
    print(f"{started:.6f} {time.monotonic():.6f} {name}", flush=True)


async def probe(address: str, seconds: float, port: int = 22, every: float = 0.003) -> None:
    end = time.monotonic() + seconds
    running: set[asyncio.Task[None]] = set()
    while time.monotonic() < end:
        task = asyncio.create_task(_attempt(address, port, time.monotonic()))
        running.add(task)
        task.add_done_callback(running.discard)
        await asyncio.sleep(every)
    if running:
        await asyncio.wait(running)


class Prober:
    """This prober run in a namespace (the access node), and what it reports: the
    answers as (start, name), for the benchmarks and tests to question."""

    def __init__(
        self, namespace: str, address: str, seconds: float, port: int = 22, every: float = 0.003
    ) -> None:
        command = ["ip", "netns", "exec", namespace, sys.executable, "-m", __name__]
        options = [address, str(seconds), "--port", str(port), "--every", str(every)]
        self.process = subprocess.Popen([*command, *options], stdout=subprocess.PIPE, text=True)
        self.answers: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            started, _, name = line.split()
            with self._lock:
                self.answers.append((float(started), name))

    def first(self, name: str, after: float) -> float | None:
        with self._lock:
            hits = [t for t, n in self.answers if n == name and t >= after]
        return min(hits) if hits else None

    def count_all(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t, _ in self.answers if start <= t < end)

    def count(self, name: str, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t, n in self.answers if n == name and start <= t < end)

    def last_answer_before(self, moment: float) -> float | None:
        with self._lock:
            hits = [t for t, n in self.answers if n != "-" and t < moment]
        return max(hits) if hits else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)
        self._reader.join(timeout=5)  # it has read the last line
        if self.process.stdout is not None:
            self.process.stdout.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m routeplane.lab.prober")
    parser.add_argument("address")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--every", type=float, default=0.003)
    args = parser.parse_args(argv)
    asyncio.run(probe(args.address, args.seconds, args.port, args.every))


if __name__ == "__main__":
    main()


__all__ = ["Prober", "main", "probe"]
