"""What ``deploy/`` ships, checked as an operator would use it: the systemd units pass
``systemd-analyze verify`` (never skipped: without systemd-analyze the test fails) and
start ``routeplane`` with a config file that ``routeplane config check`` accepts; every
series the Grafana dashboard queries is one the daemons export."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from routeplane.agent.metrics import AgentMetrics
from routeplane.api.metrics import ApiMetrics
from routeplane.controller.leader import Controller, ControllerSettings
from routeplane.controller.metrics import ControllerMetrics
from routeplane.dataplane.fake import FakeKernel
from routeplane.services.registry import Services
from routeplane.store.sqlite import SqliteStore
from tests.cli.conftest import SCRIPT, RunCommand
from tests.unit.test_agent_loop import make_agent

pytestmark = pytest.mark.cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/usr/local/bin/routeplane"


def test_there_is_a_unit_per_daemon() -> None:
    assert [u.name for u in UNITS] == [
        "routeplane-agent.service",
        "routeplane-api.service",
        "routeplane-controller.service",
    ]


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd (make system-deps)"
    for unit in UNITS:  # the command where this checkout installed it, not /usr/local
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, str(SCRIPT)))
    done = subprocess.run(
        [analyze, "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr.strip()) == (0, "")


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.stem)
def test_each_unit_runs_a_command_with_a_valid_config(
    unit: Path, routeplane_command: RunCommand
) -> None:
    """The unit's command line parses, and the shipped example of its config file
    (``deploy/config``) is accepted for it."""
    found = re.search(r"^ExecStart=(.+)$", unit.read_text(), re.MULTILINE)
    assert found is not None
    argv = shlex.split(found.group(1))
    assert argv[0] == INSTALLED
    command, config = argv[1], argv[argv.index("--config") + 1]
    assert config == f"/etc/routeplane/{command}.toml"
    assert routeplane_command(*argv[1:], "--help").returncode == 0
    checked = routeplane_command("config", "check", str(DEPLOY / "config" / f"{command}.toml"))
    assert checked.returncode == 0, checked.stderr


def exported(tmp_path: Path) -> set[str]:
    """Every metric name the three daemons export."""
    store = SqliteStore(tmp_path / "store.db")
    names: set[str] = set()
    registries = [CollectorRegistry() for _ in range(3)]
    services = Services(store)
    ApiMetrics(registries[0], services.repo)
    agent = make_agent(store, FakeKernel())
    AgentMetrics(registries[1], "node1").watch(agent, lambda: [])
    controller = Controller(store, services.service_ips, ControllerSettings(name="c"))
    ControllerMetrics(registries[2], controller)
    try:
        for registry in registries:
            for family in registry.collect():  # also those with no sample yet (no label)
                suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
                names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    finally:
        controller.close()
        agent.close()
        store.close()
    return names


def test_the_dashboard_queries_only_what_the_daemons_export(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "routeplane.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"routeplane_[a-z0-9_]+", target["expr"])
    }
    assert len(queried) >= 15
    assert queried - exported(tmp_path) == set()
