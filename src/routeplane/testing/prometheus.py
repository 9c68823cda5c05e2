"""A real Prometheus for tests: it scrapes the daemons a test started, and the test asks
it what it saw through its HTTP API, as an operator's dashboards and alerts would.

Debian's ``prometheus`` package; missing, it fails loudly rather than skip. It listens on
127.0.0.1 only, scrapes every ``interval`` seconds, keeps its data in a directory of its
own that ``close`` removes, and is the only process this module signals.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from routeplane.testing.api import free_port


def _config(jobs: Mapping[str, Sequence[str]], interval: float) -> str:
    """prometheus.yml for these jobs (name -> HOST:PORT targets); YAML is a JSON superset."""
    every = f"{int(interval * 1000)}ms"
    document = {
        "global": {"scrape_interval": every, "scrape_timeout": every},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in jobs.items()
        ],
    }
    return json.dumps(document, indent=2)


class PrometheusServer:
    def __init__(self, jobs: Mapping[str, Sequence[str]], interval: float = 0.5) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "prometheus is not installed: install Debian's prometheus package "
                "(make system-deps); the metrics lab test needs a real Prometheus"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="routeplane-prometheus-")
        workdir = Path(self._tmp.name)
        (workdir / "prometheus.yml").write_text(_config(jobs, interval))
        self.port = free_port()
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.port}{path}{query}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read()) if path.startswith("/api/") else answer.read()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                self._get("/-/ready")
                return
            except OSError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError(f"prometheus not ready in {timeout}s: {self.log.read_text()[-2000:]}")

    def targets_up(self) -> dict[str, bool]:
        """Each scraped target (``job/HOST:PORT``) and whether its last scrape worked."""
        found = self._get("/api/v1/targets")["data"]["activeTargets"]
        return {
            f"{t['labels']['job']}/{t['labels']['instance']}": t["health"] == "up" for t in found
        }

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant PromQL query: each series' labels and value."""
        data = self._get("/api/v1/query", query=expr)["data"]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, expr: str) -> float | None:
        """The one value of a query with at most one series (None: no series)."""
        found = self.query(expr)
        assert len(found) <= 1, f"{expr}: {found}"
        return found[0][1] if found else None

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._tmp.cleanup()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["PrometheusServer"]
