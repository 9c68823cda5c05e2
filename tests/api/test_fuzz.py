"""Schema-driven fuzzing: no request, however malformed, gets a 5xx.

schemathesis reads the api's own OpenAPI document and sends generated requests (valid,
borderline and invalid bodies, paths and query strings) to every operation; the only
check is Neutron's promise that bad input is a 4xx with a fault body, never a 500.
Bounded in examples and time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.testing.api import ApiServer

pytestmark = [pytest.mark.api, pytest.mark.slow, pytest.mark.timeout(300)]

SCHEMATHESIS = str(Path(sys.executable).with_name("st"))


@pytest.fixture
def fresh_api(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(f"sqlite://{tmp_path / 'store.db'}", workdir=tmp_path) as server:
        yield server


def test_no_generated_request_gets_a_server_error(fresh_api: ApiServer, tmp_path: Path) -> None:
    command = [
        SCHEMATHESIS, "run", f"{fresh_api.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--header", f"X-Auth-Token: {fresh_api.admin_token}",
        "--max-examples", "20", "--seed", "20261123",
        "--phases", "examples,coverage,fuzzing", "--workers", "2",
        "--request-timeout", "10", "--report-dir", str(tmp_path / "report"),
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=400, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    server_log = fresh_api.log.read_text()
    assert "Traceback" not in server_log, server_log[-4000:]
