"""Proxy mode against a recording stand-in for nova-metadata.

The dual-stack lab (``vmlab``): node1's agent in a thread, its metadata service
(``Lab.start_metadata``) in proxy mode, forwarding to a small HTTP server on the host
namespace's loopback (``127.0.0.1:8775``) that records each request's path and headers
and answers as Nova would: it checks the signature with the shared secret (403 when it
does not verify) and returns the instance's user data. The VM asks with ``curl``-like
requests from inside its namespace. Everything lives in ``rp-`` namespaces the lab
creates and deletes; processes it starts are ended by PID.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.nova_proxy import NovaProxy
from routeplane.lab.netns import exec_in
from routeplane.services.attributes import check_update
from routeplane.services.context import ADMIN
from tests.kernel.vmlab import Lab, dual_stack_lab, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

SECRET = b"shared-with-nova"
# the stand-in: records path and headers (one JSON line each), verifies the signature
NOVA = """
import hashlib, hmac, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
secret, log = sys.argv[1].encode(), sys.argv[2]
class Nova(BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as out:
            out.write(json.dumps({"path": self.path, "headers": dict(self.headers)}) + "\\n")
        instance = self.headers.get("X-Instance-ID", "")
        good = hmac.new(secret, instance.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, self.headers.get("X-Instance-ID-Signature", "")):
            self.send_response(403); self.end_headers(); return
        body = b"#cloud-config\\nhostname: from-nova\\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", 8775), Nova).serve_forever()
"""
# GET a path of the metadata service; prints "<status> <body>"
CLIENT = """
import http.client, sys
conn = http.client.HTTPConnection("169.254.169.254", 80, timeout=5)
conn.request("GET", sys.argv[1])
r = conn.getresponse()
print(r.status, r.read().decode().strip().replace("\\n", "|"))
"""


def get(vm: str, path: str) -> tuple[int, str]:
    status, _, body = exec_in(vm, sys.executable, "-c", CLIENT, path).strip().partition(" ")
    return int(status), body


def recorded(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def start_nova(lab: Lab, log: Path, secret: bytes) -> None:
    lab.spawn(lab.hosts["node1"], sys.executable, "-c", NOVA, secret.decode(), str(log))
    probe = "import socket; socket.create_connection(('127.0.0.1', 8775), timeout=1); print('up')"
    wait_for(
        lambda: exec_in(lab.hosts["node1"], sys.executable, "-c", probe, check_rc=False) == "up\n",
        what="the stand-in nova-metadata",
    )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as lab:
        lab.start_agent("node1")
        lab.start_metadata("node1", NovaProxy("http://127.0.0.1:8775", SECRET))
        yield lab


def boot(lab: Lab, name: str, address: str, device: str | None) -> tuple[str, dict[str, Any]]:
    vm, port = lab.boot(name, "node1", [address])
    if device is not None:
        attrs = lab.services.ports.attrs
        body = check_update(attrs, {"device_id": device}, is_admin=True)
        lab.services.ports.update(ADMIN, port["id"], body, None)
    wait_for(lambda: lab.active("node1", port), what=f"{name}'s port programmed")
    return vm, port


def test_requests_reach_nova_with_the_four_headers_and_a_valid_signature(
    lab: Lab, tmp_path: Path
) -> None:
    log = tmp_path / "nova.log"
    start_nova(lab, log, SECRET)
    vm, port = boot(lab, "pxvm1", "10.28.0.13", "inst-1")
    assert get(vm, "/openstack/latest/user_data?x=1") == (
        200,
        "#cloud-config|hostname: from-nova",
    )
    [request] = recorded(log)
    headers = request["headers"]
    assert request["path"] == "/openstack/latest/user_data?x=1"
    assert headers["X-Instance-ID"] == "inst-1"
    assert headers["X-Tenant-ID"] == port["project_id"]
    assert headers["X-Forwarded-For"] == "10.28.0.13"
    expected = hmac.new(SECRET, b"inst-1", hashlib.sha256).hexdigest()
    assert headers["X-Instance-ID-Signature"] == expected
    # routeplane's own answers are not forwarded
    assert get(vm, "/routeplane/v1/addresses")[0] == 200
    assert len(recorded(log)) == 1


def test_a_port_without_an_instance_is_not_forwarded(lab: Lab, tmp_path: Path) -> None:
    log = tmp_path / "nova.log"
    start_nova(lab, log, SECRET)
    vm, _port = boot(lab, "pxvm2", "10.28.0.14", None)
    assert get(vm, "/openstack/latest/meta_data.json")[0] == 404
    assert recorded(log) == []


def test_a_wrong_secret_is_refused_by_nova_and_an_absent_nova_is_a_502(
    lab: Lab, tmp_path: Path
) -> None:
    vm, _port = boot(lab, "pxvm3", "10.28.0.15", "inst-3")
    assert get(vm, "/latest/meta-data/instance-id")[0] == 502  # nothing listens yet
    log = tmp_path / "nova.log"
    start_nova(lab, log, b"not-the-shared-secret")
    assert get(vm, "/latest/meta-data/instance-id")[0] == 403
    assert [r["path"] for r in recorded(log)] == ["/latest/meta-data/instance-id"]
