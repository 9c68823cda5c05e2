"""The ``routeplane`` entry point as an operator types it: config files checked and read
by the real processes, global options after the subcommand."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from routeplane.testing.api import free_port
from tests.cli.conftest import RunCommand, start
from tests.waiting import wait_for

pytestmark = pytest.mark.cli


def _answers(port: int, path: str = "/") -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def test_the_readme_api_line_runs_as_written(tmp_path: Path) -> None:
    """``routeplane api [--listen …] [--store URL]``: the store after the subcommand."""
    port = free_port()
    store = f"sqlite://{tmp_path / 'store.db'}"
    proc = start(
        ["api", "--listen", f"127.0.0.1:{port}", "--store", store, "--noauth"],
        tmp_path / "api.log",
    )
    try:
        wait_for(lambda: proc.poll() is not None or _answers(port), 20, "the api to answer")
        assert proc.poll() is None, (tmp_path / "api.log").read_text()
        assert (tmp_path / "store.db").exists()  # the store given after the subcommand
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_api_reads_its_config_file(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "api.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\nstore = "sqlite://{tmp_path / "file.db"}"\n'
        'admin_token = "s3cret"\n'
    )
    proc = start(["api", "--config", str(config)], tmp_path / "api.log")
    try:
        wait_for(lambda: proc.poll() is not None or _answers(port), 20, "the api to answer")
        assert proc.poll() is None, (tmp_path / "api.log").read_text()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            for token, status in (("s3cret", 200), ("wrong", 401)):  # the file's admin token
                conn.request("GET", "/v2.0/networks", headers={"X-Auth-Token": token})
                answer = conn.getresponse()
                answer.read()
                assert answer.status == status, token
        finally:
            conn.close()
        assert (tmp_path / "file.db").exists()
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_bad_key_stops_a_daemon_before_it_starts(
    tmp_path: Path, routeplane_command: RunCommand
) -> None:
    config = tmp_path / "controller.toml"
    config.write_text("lease_tll = 3\n")
    done = routeplane_command("controller", "--config", str(config))
    assert done.returncode == 2
    assert f"routeplane controller: config {config}: key 'lease_tll': unknown key" in done.stderr
    assert "did you mean 'lease_ttl'?" in done.stderr
    checked = routeplane_command("config", "check", str(config))
    assert checked.returncode == 2
    assert "key 'lease_tll'" in checked.stderr
    config.write_text("lease_ttl = 0\n")
    checked = routeplane_command("config", "check", str(config))
    assert checked.returncode == 2
    assert "key 'lease_ttl': lease_ttl takes a whole number of seconds >= 1" in checked.stderr


def test_every_command_has_help(routeplane_command: RunCommand) -> None:
    done = routeplane_command("--help")
    assert done.returncode == 0
    for command in ("api", "agent", "controller", "config", "store", "lab", "guest", "demo"):
        assert command in done.stdout
        assert routeplane_command(command, "--help").returncode == 0, command


def test_a_daemon_stops_on_sigterm_after_reading_its_file(tmp_path: Path) -> None:
    config = tmp_path / "controller.toml"
    config.write_text(f'name = "ctl"\nstore = "sqlite://{tmp_path / "s.db"}"\n')
    proc = start(["controller", "--config", str(config), "-v"], tmp_path / "c.log")
    try:
        wait_for((tmp_path / "s.db").exists, 20, "the controller's store")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
