"""What a real etcd 3.4 answered to the backend's requests, recorded by ``record.py``.

Each ``<name>.json`` is one exchange: ``path``, ``request`` (the body we sent), ``status``
and ``answer`` (a call) or ``messages`` (the lines of a watch stream), parsed as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


def exchange(name: str) -> dict[str, Any]:
    """The recorded exchange ``name``."""
    loaded: dict[str, Any] = json.loads((_HERE / f"{name}.json").read_text())
    return loaded


def answer(name: str) -> Any:
    """The answer of the recorded call ``name``."""
    return exchange(name)["answer"]


def lines(name: str) -> list[bytes]:
    """The messages of the recorded watch stream ``name``, one line each, as sent."""
    return [json.dumps(message).encode() for message in exchange(name)["messages"]]
