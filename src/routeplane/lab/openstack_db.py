"""The lab's OpenStack databases: made once per installation, then copied.

Each project's ``*-manage`` loads the whole project (~5-10 s a call, more on a busy
machine), and a lab needs eight calls. The databases' schemas depend only on the
installed versions, so the first ``up`` makes them in a template directory next to the
venv (``<venv>/routeplane-db``: keystone, placement, nova_api, nova_cell0, nova_cell1,
synced, cell0 and cell1 mapped) and later labs copy the files and rewrite the two
lab-specific columns of Nova's cell mappings (database path, RabbitMQ's URL) with
``sqlite3``. Keystone's fernet and credential keys are 32 random bytes, url-safe base64,
named 0 and 1, as ``keystone-manage fernet_setup`` makes them; only ``keystone-manage
bootstrap`` (the admin's password and the identity endpoint) runs per lab.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
from pathlib import Path

DATABASES = ("keystone", "placement", "nova_api", "nova_cell0", "nova_cell1")
READY = "ready"


# seconds a writer waits for another's lock (pysqlite's default, 5 s, is shorter than a
# busy lab's placement updates take); WAL lets readers and a writer work at once
BUSY_TIMEOUT = 30


def url(path: Path) -> str:
    """The database's SQLAlchemy URL, with the lock wait."""
    return f"sqlite:///{path}?timeout={BUSY_TIMEOUT}"


def use_wal(directory: Path) -> None:
    """Journal in WAL mode (a property of the file, kept by every later connection):
    Nova's services, Placement and Keystone write concurrently from several processes."""
    for name in DATABASES:
        connection = sqlite3.connect(directory / f"{name}.db")
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()


def template_dir(venv: Path) -> Path:
    return venv / "routeplane-db"


def have_template(venv: Path) -> bool:
    return (template_dir(venv) / READY).exists()


def save_template(venv: Path, directory: Path) -> None:
    """Keep the freshly synced databases of ``directory`` (before any lab data)."""
    target = template_dir(venv)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in DATABASES:
        shutil.copy(directory / f"{name}.db", partial / f"{name}.db")
    (partial / READY).write_text("")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def copy_template(venv: Path, directory: Path, transport_url: str) -> None:
    """The databases of a new lab, with its own cell mappings."""
    for name in DATABASES:
        shutil.copy(template_dir(venv) / f"{name}.db", directory / f"{name}.db")
    connection = sqlite3.connect(directory / "nova_api.db")
    try:
        with connection:
            for cell in ("cell0", "cell1"):
                connection.execute(
                    "UPDATE cell_mappings SET database_connection = ? WHERE name = ?",
                    (url(directory / f"nova_{cell}.db"), cell),
                )
            connection.execute(
                "UPDATE cell_mappings SET transport_url = ? WHERE name = 'cell1'",
                (transport_url,),
            )
    finally:
        connection.close()


def write_keys(repository: Path) -> None:
    """Two fernet keys (primary 1, staged 0), as ``keystone-manage`` writes them."""
    repository.mkdir(parents=True, exist_ok=True, mode=0o700)
    for index in (0, 1):
        key = base64.urlsafe_b64encode(os.urandom(32))
        path = repository / str(index)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)


__all__ = ["copy_template", "have_template", "save_template", "url", "use_wal", "write_keys"]
