"""Serve one WSGI application on loopback: how the lab runs Keystone, Placement and Nova's api.

Their PyPI wheels ship WSGI applications but no server (Nova has no ``nova-api`` script
any more). The lab runs ``<openstack venv>/bin/python -m routeplane.lab.wsgi_serve
ADDRESS:PORT module:attribute [--serial]``, a threaded ``wsgiref`` server: enough for a
lab, and standard library only, so it runs under the OpenStack venv's interpreter with
nothing of routeplane's dependencies. The address must be a loopback one. ``--serial``
answers one request at a time, for Placement and Nova's api on sqlite: concurrent
writers within one such process (two computes reporting their traits at once; a delete
while the server is polled) fail with "database is locked", and a compute whose report
failed cannot be scheduled to until its next periodic report, a minute later.

What this module must not do: import anything outside the standard library at module
level (it runs in a venv that has no routeplane dependencies).
"""

from __future__ import annotations

import importlib
import ipaddress
import sys
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _SerialServer(WSGIServer):
    # socketserver's default backlog is 5: on a loaded machine, a burst of clients (Nova,
    # routeplane's api validating tokens) overflows it and their connects time out
    request_queue_size = 128


class _ThreadingServer(ThreadingMixIn, _SerialServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)


def load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute or "application")


def main(argv: list[str]) -> int:
    serial = argv[2:] == ["--serial"]
    if len(argv) != 2 + serial:
        print("usage: wsgi_serve ADDRESS:PORT module:attribute [--serial]", file=sys.stderr)
        return 2
    host, _, port = argv[0].rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        print(f"wsgi_serve: {host} is not a loopback address", file=sys.stderr)
        return 2
    sys.argv = sys.argv[:1]  # the services parse the command line with oslo.config
    app = load(argv[1])
    kind = _SerialServer if serial else _ThreadingServer
    server = make_server(host, int(port), app, kind, _QuietHandler)
    print(f"serving {argv[1]} on {host}:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
