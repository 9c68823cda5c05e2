"""A lab VM's service: TCP port 22 answering with the VM's name, over IPv4 and IPv6.

The walkthrough proves which VM holds a service IP with ``ssh … hostname``; a lab VM is a
namespace with no sshd, so this stands in for it: connect to port 22 and read one line,
the VM's name. ``connect`` is the matching client, so a check from another namespace
needs nothing but this module (``routeplane lab exec access -- python3 -m
routeplane.lab.vm_service connect 10.28.0.13``).

Run by ``routeplane lab boot`` inside the VM's namespace; it stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from collections.abc import Sequence

PORT = 22


def listener(port: int = PORT) -> socket.socket:
    """One dual-stack socket: IPv6 ``::`` that also takes IPv4 (as ``::ffff:a.b.c.d``)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.listen(16)
    return sock


def serve(name: str, port: int = PORT) -> None:
    """Answer every connection with ``name`` and a newline, one at a time, until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    reply = name.encode() + b"\n"
    with listener(port) as sock:
        while True:
            conn, _ = sock.accept()
            with conn:
                conn.settimeout(2)
                try:
                    conn.sendall(reply)
                except OSError:
                    continue


def connect(address: str, port: int = PORT, timeout: float = 2.0) -> str:
    """The line a VM's service answers at ``address`` (empty when nothing answers)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            return conn.recv(256).decode(errors="replace").strip()
    except OSError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routeplane.lab.vm_service")
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="answer on port 22 with NAME")
    serving.add_argument("name")
    serving.add_argument("--port", type=int, default=PORT)
    connecting = commands.add_parser("connect", help="print what ADDRESS answers on port 22")
    connecting.add_argument("address")
    connecting.add_argument("--port", type=int, default=PORT)
    connecting.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.name, args.port)
        return 0
    answer = connect(args.address, args.port, args.timeout)
    if answer:
        print(answer)
        return 0
    print(f"no answer from {args.address} port {args.port}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["PORT", "connect", "listener", "main", "serve"]
