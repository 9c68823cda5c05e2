"""Continuous probers for the kernel tests, run inside a lab namespace.

``Prober``: ``routeplane.lab.prober`` (a TCP connect to ``address:22`` every 3 ms, each
with its own timeouts; each attempt reports its start, its end and who answered).
``Echo``: one long-lived connection to ``address:7`` sending a byte every 20 ms; it
reports the time of every echo, and ``closed`` when the connection breaks.
``Datagrams``: a UDP listener that reports when each datagram arrived and from where;
``SENDER`` sends one from a given source address every 5 ms (one way: what arrives
shows what the network let out, whatever happens to answers).

Times are ``time.monotonic()`` of the probing process: one clock for the whole machine,
so they compare with the test's own. Both processes are ended by PID.
"""

from __future__ import annotations

import subprocess
import sys
import threading

ECHO = """
import socket, sys, time
end = time.monotonic() + float(sys.argv[2])
while True:  # the server may still be starting
    try:
        c = socket.create_connection((sys.argv[1], 7), timeout=1)
        break
    except OSError:
        if time.monotonic() > end:
            raise
        time.sleep(0.05)
c.settimeout(0.05)
while time.monotonic() < end:
    try:
        c.sendall(b"x")
        if not c.recv(1):
            break
        print(f"echo {time.monotonic():.6f}", flush=True)
    except socket.timeout:
        pass
    except OSError:
        break
    time.sleep(0.02)
print(f"closed {time.monotonic():.6f}", flush=True)
"""


LISTENER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    _, (source, _port) = s.recvfrom(64)
    print(f"{time.monotonic():.6f} {source}", flush=True)
"""
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
end = time.monotonic() + float(sys.argv[4])
while time.monotonic() < end:
    try:
        s.sendto(b"x", (sys.argv[2], int(sys.argv[3])))
    except OSError:
        pass
    time.sleep(0.005)
"""


class _Reader:
    def __init__(self, namespace: str, script: str, *args: str) -> None:
        """Run ``script`` (Python source, or ``-m module``) in ``namespace`` with ``args``."""
        code = script.split() if script.startswith("-m ") else ["-c", script]
        command = ["ip", "netns", "exec", namespace, sys.executable, *code, *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.lines: list[list[str]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.split())

    def snapshot(self) -> list[list[str]]:
        with self._lock:
            return list(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=5)
        self._thread.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Prober(_Reader):
    def __init__(self, namespace: str, address: str, seconds: float = 60.0) -> None:
        super().__init__(namespace, "-m routeplane.lab.prober", address, str(seconds))

    def answers(self) -> list[tuple[float, float, str]]:
        """(start, end, who answered) of every finished attempt, by start time."""
        return sorted((float(s), float(e), name) for s, e, name in self.snapshot())

    def first(self, name: str, after: float = 0.0) -> float | None:
        starts = [s for s, _, n in self.answers() if n == name and s >= after]
        return min(starts) if starts else None


class Echo(_Reader):
    def __init__(self, namespace: str, address: str, seconds: float = 30.0) -> None:
        super().__init__(namespace, ECHO, address, str(seconds))

    def echoes(self) -> list[float]:
        return [float(t) for kind, t in self.snapshot() if kind == "echo"]

    def closed(self) -> float | None:
        found = [float(t) for kind, t in self.snapshot() if kind == "closed"]
        return found[0] if found else None


class Datagrams(_Reader):
    def __init__(self, namespace: str, port: int) -> None:
        super().__init__(namespace, LISTENER, str(port))

    def arrivals(self, source: str) -> list[float]:
        return [float(t) for t, found in self.snapshot() if found == source]


__all__ = ["ECHO", "LISTENER", "SENDER", "Datagrams", "Echo", "Prober"]
