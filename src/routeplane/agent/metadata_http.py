"""The metadata service's HTTP wire format: a request head read, a response written.

Just what the guest, cloud-init and ``curl`` send: one ``GET`` per connection with no
body, in origin form (``GET /path?query HTTP/1.1``). Anything else is refused rather than
guessed at: a malformed head gets 400, another method 405 (with ``Allow: GET``), an HTTP
version other than 1.x 505, a body (``Content-Length`` other than 0, any
``Transfer-Encoding``) 400. Answers are HTTP/1.0 with a body and ``Connection:
close``, as ``http.server`` gave them before: a connection carries one request. A body
is a JSON document, text (OpenStack's and EC2's listings and leaves), or what
nova-metadata answered (proxy mode).

Pure functions: no sockets (``agent/metadata_server.py`` reads and writes). What this
module must not do: accept a head it only half understands.
"""

from __future__ import annotations

import http
import json
import re
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

MAX_HEAD = 8192  # request line and headers; a guest's are ~100 bytes


@dataclass(frozen=True)
class Raw:
    """A body passed on as it came (nova-metadata's answers in proxy mode)."""

    content_type: str
    data: bytes


Body = dict[str, Any] | str | Raw  # a JSON document, text (listings, EC2 leaves), or raw
Answer = tuple[int, Body]
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")


def head_end(data: bytes | bytearray) -> int:
    """The length of the request head (up to and with its empty line) in ``data``, or -1
    while it is incomplete. Lines end in CRLF or, leniently, LF."""
    ends = [i + n for i, n in ((data.find(b"\r\n\r\n"), 4), (data.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else -1


def parse_request(head: bytes) -> str | Answer:
    """The target of a ``GET`` request head, or the error to answer. Pure."""
    lines = [line.removesuffix("\r") for line in head.decode("latin-1").split("\n")]
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return 400, {"error": "bad request line"}
    method, target, version = parts
    if not (match := _VERSION.fullmatch(version)):
        return 400, {"error": f"bad HTTP version {version!r}"}
    if match.group(1) != "1":
        return 505, {"error": f"HTTP version {version} is not supported"}
    if not _TOKEN.fullmatch(method):
        return 400, {"error": "bad method"}
    if method != "GET":
        return 405, {"error": f"method {method} is not allowed"}
    if not target.startswith("/") or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return 400, {"error": "bad request target"}
    for line in lines[1:]:
        if not line:
            continue  # the empty line(s) ending the head
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            return 400, {"error": "bad header line"}
        name = name.lower()
        if name == "transfer-encoding" or (name == "content-length" and value.strip() != "0"):
            return 400, {"error": "a request has no body here"}
    return target


def render(answer: Answer) -> bytes:
    """The whole HTTP response for ``answer``."""
    status, body = answer
    if isinstance(body, Raw):
        payload, content_type = body.data, body.content_type
    elif isinstance(body, str):
        payload, content_type = body.encode(), "text/plain; charset=utf-8"
    else:
        payload, content_type = json.dumps(body).encode() + b"\n", "application/json"
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    head = [
        f"HTTP/1.0 {status} {reason}",
        "Server: routeplane-metadata",
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(payload)}",
        "Connection: close",
    ]
    if status == 405:
        head.append("Allow: GET")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


__all__ = ["MAX_HEAD", "Answer", "Body", "Raw", "head_end", "parse_request", "render"]
