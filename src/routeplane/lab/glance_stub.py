"""A stand-in for Glance on loopback: one image record, no image data.

Nova will not boot without an image it can look up (``GET /v2/images/<id>`` through
glanceclient, which also reads ``/v2/schemas/image``), and the ``openstack`` CLI finds an
image by name (``GET /v2/images?name=``) after version discovery (``GET /``). The lab's
compute driver never downloads an image (its guests are namespaces), so a record is all
Nova needs: this serves exactly that, read-only, and answers 404 for anything else.
Run as ``python -m routeplane.lab.glance_stub ADDRESS:PORT IMAGE_ID NAME``.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

STAMP = "2026-01-01T00:00:00Z"


def image_record(image_id: str, name: str) -> dict[str, Any]:
    return {
        "id": image_id,
        "name": name,
        "status": "active",
        "visibility": "public",
        "protected": False,
        "os_hidden": False,
        "disk_format": "raw",
        "container_format": "bare",
        "min_disk": 0,
        "min_ram": 0,
        "size": 1048576,
        "virtual_size": 1048576,
        "checksum": "0" * 32,
        "os_hash_algo": "sha512",
        "os_hash_value": "0" * 128,
        "owner": None,
        "tags": [],
        "created_at": STAMP,
        "updated_at": STAMP,
        "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file",
        "schema": "/v2/schemas/image",
    }


def schema() -> dict[str, Any]:
    """glanceclient tells an image's own fields from its properties by this schema (Nova
    keeps only the former as the image's attributes): every field of the record."""
    fields = image_record("x", "x")
    return {
        "name": "image",
        "properties": {k: {} for k in fields},
        "additionalProperties": True,
        "links": [],
    }


def answer(
    path: str, query: dict[str, list[str]], base: str, record: dict[str, Any]
) -> tuple[int, Any]:
    """(status, body) for a GET: the pure part of the server."""
    if path in ("", "/"):
        version = {
            "id": "v2.16",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": f"{base}/v2/"}],
        }
        return 300, {"versions": [version]}
    if path.rstrip("/") == "/v2/schemas/image":
        return 200, schema()
    if path.rstrip("/") == "/v2/images":
        wanted = query.get("name") or query.get("id")
        found = [record] if not wanted or record["name"] in wanted or record["id"] in wanted else []
        return 200, {"images": found, "first": "/v2/images", "schema": "/v2/schemas/images"}
    if path.rstrip("/") == f"/v2/images/{record['id']}":
        return 200, record
    return 404, {"message": "not found", "code": "404 Not Found", "title": "Not Found"}


def serve(listen: str, image_id: str, name: str) -> None:
    host, _, port = listen.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"glance_stub: {host} is not a loopback address")
    record = image_record(image_id, name)
    base = f"http://{listen}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            status, body = answer(parts.path, parse_qs(parts.query), base, record)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: Nova looks the image up on every boot."""

    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    serve(*sys.argv[1:4])
