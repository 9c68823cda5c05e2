"""A real Keystone on loopback, for the api's Keystone tests: PyPI's ``keystone`` in a
virtual environment of its own (not the project's: it pins its own OpenStack libraries),
installed on first use and then reused, sqlite, fernet tokens, ``keystone-manage
bootstrap``; served by the standard library's WSGI server; stopped by its PID.

The environment lives at ``$ROUTEPLANE_KEYSTONE_VENV``, by default under the user's
cache directory; a lock file makes concurrent first uses install it once. Installing
takes minutes once per machine; a server starts in seconds afterwards.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path
from typing import Self

from routeplane.testing.api import LoopbackProcess, free_port, launch

KEYSTONE = "keystone==30.0.0"
ADMIN_PASSWORD = "keystone-admin"  # noqa: S105 (a test server's well-known password)
SERVE = """\
import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from keystone.server.wsgi import initialize_public_application


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


sys.argv = sys.argv[:1]  # keystone parses the command line as its own
app = initialize_public_application()
make_server("127.0.0.1", int(os.environ["KEYSTONE_PORT"]), app, handler_class=Quiet).serve_forever()
"""
CONF = """\
[DEFAULT]
use_stderr = true
[identity]
# bcrypt's cheapest: a test Keystone hashes every password it checks
password_hash_rounds = 4
[database]
connection = sqlite:///{state}/keystone.db
[token]
provider = fernet
expiration = {ttl}
[fernet_tokens]
key_repository = {state}/fernet-keys
[fernet_receipts]
key_repository = {state}/fernet-receipts
[credential]
key_repository = {state}/credential-keys
"""


def venv_path() -> Path:
    default = Path.home() / ".cache" / "routeplane" / KEYSTONE.replace("==", "-")
    return Path(os.environ.get("ROUTEPLANE_KEYSTONE_VENV", str(default)))


def ensure_venv(path: Path | None = None) -> Path:
    """The environment with Keystone installed; installed now if it is not there yet."""
    venv = path or venv_path()
    manage = venv / "bin" / "keystone-manage"
    if manage.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / (venv.name + ".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not manage.exists():
            subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", KEYSTONE], check=True, timeout=1200
            )
    return venv


class KeystoneServer(LoopbackProcess):
    """Keystone's public API on ``127.0.0.1:<port>/v3`` with an ``admin`` user (password
    :data:`ADMIN_PASSWORD`) in the ``admin`` project. ``token_ttl``: token lifetime.
    ``state``: another server's ``work`` directory, whose database and keys this one then
    shares (a second front on the same Keystone, e.g. one that issues short-lived tokens
    the first accepts until they expire)."""

    def __init__(
        self,
        workdir: Path,
        *,
        token_ttl: int = 3600,
        port: int | None = None,
        state: Path | None = None,
    ) -> None:
        self.work = workdir
        self.work.mkdir(parents=True, exist_ok=True)
        shared = state or self.work
        self.port = port or free_port()
        self.venv = ensure_venv()
        self.conf = self.work / "keystone.conf"
        self.conf.write_text(CONF.format(state=shared, ttl=token_ttl))
        self.log = self.work / "keystone.log"
        if not (shared / "keystone.db").exists():
            self._manage("db_sync")
            for setup in ("fernet_setup", "credential_setup"):
                self._manage(setup, "--keystone-user", "root", "--keystone-group", "root")
            self._manage(
                "bootstrap",
                "--bootstrap-password",
                ADMIN_PASSWORD,
                "--bootstrap-admin-url",
                self.url,
                "--bootstrap-public-url",
                self.url,
                "--bootstrap-internal-url",
                self.url,
                "--bootstrap-region-id",
                "RegionOne",
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def _manage(self, *args: str) -> None:
        with self.log.open("ab") as log:
            subprocess.run(
                [
                    str(self.venv / "bin" / "keystone-manage"),
                    "--config-file",
                    str(self.conf),
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=300,
            )

    def start(self, timeout: float = 60.0) -> Self:
        env = {
            **os.environ,
            "OS_KEYSTONE_CONFIG_FILES": str(self.conf),
            "KEYSTONE_PORT": str(self.port),
        }
        command = [str(self.venv / "bin" / "python"), "-c", SERVE]
        self._proc = launch(command, self.log, self.port, "/v3", timeout=timeout, env=env)
        return self


__all__ = ["ADMIN_PASSWORD", "KeystoneServer", "ensure_venv"]
