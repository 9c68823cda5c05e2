"""The ``api`` scenario of ``routeplane demo``: the walkthrough's API steps with the real
``openstack`` CLI against a ``routeplane api`` started on a temporary embedded store.

Each command is printed as a person would type it, followed by what it answered, and
after the service-IP steps the endpoint records that the hosts' agents act on.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from routeplane.model.keys import endpoints_prefix
from routeplane.store import open_store

TOKEN = "demo-admin-token"  # noqa: S105 (a throwaway token for a loopback demo server)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            conn.close()
    raise RuntimeError("routeplane api did not start")


class Cli:
    def __init__(self, endpoint: str) -> None:
        found = shutil.which("openstack") or str(Path(sys.executable).with_name("openstack"))
        self.command = found
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env.update(OS_AUTH_TYPE="admin_token", OS_ENDPOINT=endpoint, OS_TOKEN=TOKEN)

    def __call__(self, *args: str, show: bool = True) -> str:
        print(f"\n$ openstack {' '.join(args)}", flush=True)
        done = subprocess.run(
            [self.command, *args], env=self.env, capture_output=True, text=True, check=False
        )
        out = (done.stdout + done.stderr).rstrip()
        if show and out:
            print(out, flush=True)
        return done.stdout


def _records(url: str, port_ids: dict[str, str]) -> None:
    store = open_store(url)
    try:
        for name, port_id in port_ids.items():
            for kv in store.range(endpoints_prefix()).items:
                if kv.key.endswith(port_id) and isinstance(kv.value, dict):
                    print(f"   {name}: {kv.key}\n      fixed_ips {json.dumps(kv.value['fixed_ips'])}"
                          f" interface {kv.value['interface']}")  # fmt: skip
    finally:
        store.close()


def api_scenario(workdir: Path) -> int:
    url = f"sqlite://{workdir / 'api.db'}"
    port = _free_port()
    print(f"\n== routeplane api on 127.0.0.1:{port} (embedded store {url})", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "routeplane.cli.main", "--store", url, "api",
         "--listen", f"127.0.0.1:{port}", "--admin-token", TOKEN],
    )  # fmt: skip
    try:
        _wait(port)
        cli = Cli(f"http://127.0.0.1:{port}")
        cli("network", "create", "demo-net", "-c", "id", "-c", "name")
        cli(
            "subnet",
            "create",
            "--network",
            "demo-net",
            "--subnet-range",
            "10.28.0.0/16",
            "demo-v4",
            "-c",
            "cidr",
            "-c",
            "allocation_pools",
        )
        cli(
            "subnet",
            "create",
            "--network",
            "demo-net",
            "--ip-version",
            "6",
            "--subnet-range",
            "fd5f:5d21:845:1c2e::/64",
            "demo-v6",
            "-c",
            "cidr",
        )
        ids = {}
        for vm, host in (("testvm1", "node1"), ("testvm2", "node2")):
            cli(
                "port",
                "create",
                "--network",
                "demo-net",
                "--host",
                host,
                "--device-owner",
                "compute:nova",
                vm,
                "-c",
                "fixed_ips",
                "-c",
                "binding_host_id",
            )
            ids[vm] = cli("port", "show", vm, "-f", "value", "-c", "id", show=False).strip()
        print("\n== add the service IP 10.28.0.23 to testvm1's port", flush=True)
        cli("port", "set", "--fixed-ip", "subnet=demo-v4,ip-address=10.28.0.23", "testvm1")
        cli("port", "show", "testvm1", "-c", "fixed_ips", "-c", "status")
        _records(url, ids)
        print("\n== testvm2 cannot take it while testvm1 holds it", flush=True)
        cli("port", "set", "--fixed-ip", "subnet=demo-v4,ip-address=10.28.0.23", "testvm2")
        print("\n== move it: unset on testvm1, set on testvm2", flush=True)
        cli("port", "unset", "--fixed-ip", "subnet=demo-v4,ip-address=10.28.0.23", "testvm1")
        cli("port", "set", "--fixed-ip", "subnet=demo-v4,ip-address=10.28.0.23", "testvm2")
        cli(
            "port",
            "list",
            "--fixed-ip",
            "ip-address=10.28.0.23",
            "-c",
            "Name",
            "-c",
            "Fixed IP Addresses",
        )
        _records(url, ids)
        print("\n(the ports stay DOWN: no host agent runs in this demo; each host's agent would now\n"
              " route 10.28.0.23 to testvm2's tap and report the port ACTIVE)")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


__all__ = ["api_scenario"]
