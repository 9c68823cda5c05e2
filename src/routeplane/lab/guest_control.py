"""The host's end of a QEMU guest's control channel: run a command inside the guest.

QEMU serves the guest's virtio-serial port ``rp.ctl`` on a Unix socket in the guest's
state directory; the guest's ``/init`` reads commands from it (the protocol is in
:mod:`routeplane.lab.guest_init`). It is not the network under test, so ``lab exec`` and
the tests can look inside a guest whose network is broken, and what they do there sends
nothing over the tap.

One command at a time: QEMU's socket takes one client, the guest runs one command after
the other.
"""

from __future__ import annotations

import base64
import shlex
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from routeplane.lab.netns import LabError


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


def encode(command: Sequence[str] | str) -> bytes:
    """One request line: the command's shell text (an argv is quoted), base64."""
    text = command if isinstance(command, str) else shlex.join(command)
    return base64.b64encode(text.encode()) + b"\n"


def decode(reply: bytes) -> Completed | None:
    """The guest's answer once it is whole (``rp-rc N`` has arrived), else None."""
    lines = reply.decode(errors="replace").splitlines()
    if not any(line.startswith("rp-rc ") for line in lines):
        return None
    sections: dict[str, list[str]] = {"rp-out": [], "rp-err": []}
    current: list[str] | None = None
    code = -1
    for line in lines:
        if line in sections:
            current = sections[line]
        elif line.startswith("rp-rc "):
            code = int(line.split()[1])
            break
        elif current is not None:
            current.append(line)
    out, err = (base64.b64decode("".join(sections[key])) for key in ("rp-out", "rp-err"))
    return Completed(code, out.decode(errors="replace"), err.decode(errors="replace"))


def execute(control: Path, command: Sequence[str] | str, timeout: float = 30.0) -> Completed:
    """Run ``command`` in the guest behind ``control`` (QEMU's socket) and wait for it."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(control))
            conn.sendall(encode(command))
            reply = b""
            while time.monotonic() < deadline:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
                done = decode(reply)
                if done is not None:
                    return done
    except OSError as exc:
        raise LabError(f"guest control channel {control}: {exc}") from exc
    raise LabError(f"guest control channel {control}: no answer within {timeout:.0f}s")


__all__ = ["Completed", "decode", "encode", "execute"]
