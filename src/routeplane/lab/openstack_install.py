"""The lab's OpenStack: Keystone, Placement and Nova from PyPI, in a venv of their own.

They cannot share routeplane's venv (Nova pins its own eventlet, SQLAlchemy and oslo
libraries), so ``install`` makes ``/var/cache/routeplane/openstack-venv`` with the system
``python3 -m venv`` and installs the pinned wheels into it. It is cached: a marker file
holds the pins it was built from, and a venv whose marker matches is used as it is
(measured: ~125 s to build on a 2-core machine, ~0 s when cached). ``ROUTEPLANE_OPENSTACK_VENV``
names another venv (built the same way).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from routeplane.lab.netns import LabError

DEFAULT_VENV = Path("/var/cache/routeplane/openstack-venv")
VENV_VARIABLE = "ROUTEPLANE_OPENSTACK_VENV"
PINS = ("nova==34.0.0", "openstack-placement==16.0.0", "keystone==30.0.0")
MARKER = "routeplane-pins.txt"
SHIM = '''"""routeplane's compute driver where Nova looks for drivers (written by routeplane lab)."""

from routeplane.nova.driver import RoutePlaneDriver

__all__ = ["RoutePlaneDriver"]
'''
# a .pth line runs at every start of the venv's interpreter; only where routeplane is
# importable (the lab's processes), so pip and the rest of the venv are untouched
PTH_NAME = "routeplane-sqlite.pth"
PTH = (
    "import importlib.util as u; u.find_spec('routeplane') and "
    "u.find_spec('routeplane.lab.sqlite_immediate') and "
    "__import__('routeplane.lab.sqlite_immediate', fromlist=['install']).install()\n"
)
COMPUTE_DRIVER = "routeplane.RoutePlaneDriver"
INSTALL_TIMEOUT = 1200.0


def venv_path() -> Path:
    return Path(os.environ.get(VENV_VARIABLE) or DEFAULT_VENV)


def installed(venv: Path) -> bool:
    try:
        return (venv / MARKER).read_text().split() == list(PINS)
    except OSError:
        return False


def install(venv: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """The venv, built (or completed) when its marker does not name ``PINS``."""
    venv = venv or venv_path()
    if installed(venv):
        return venv
    python = venv / "bin" / "python"
    if not python.exists():
        say(f"openstack: creating {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.base_prefix + "/bin/python3", "-m", "venv", str(venv)])
    say(f"openstack: installing {' '.join(PINS)} into {venv} (a few minutes, once)")
    _run([str(python), "-m", "pip", "install", "--quiet", "--only-binary=:all:", *PINS])
    (venv / MARKER).write_text("\n".join(PINS) + "\n")
    install_shim(venv)
    return venv


def require(venv: Path | None = None) -> Path:
    """The installed venv (with the driver's shim), or LabError saying how to install it."""
    venv = venv or venv_path()
    if not installed(venv):
        raise LabError(
            f"OpenStack is not installed in {venv}: run `routeplane lab openstack install`"
        )
    install_shim(venv)
    return venv


def install_shim(venv: Path) -> None:
    """Nova loads ``compute_driver = X`` as ``nova.virt.X`` only, so the routeplane driver
    is reached through ``nova/virt/routeplane.py`` (``compute_driver =
    routeplane.RoutePlaneDriver``), which imports it from routeplane; and the ``.pth`` that
    loads ``sqlite_immediate`` in the lab's OpenStack processes."""
    for package in (venv / "lib").glob("python3*/site-packages/nova/virt"):
        _write(package / "routeplane.py", SHIM)
        _write(package.parents[1] / PTH_NAME, PTH)  # site-packages: see sqlite_immediate


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _run(argv: list[str]) -> None:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
    )
    if done.returncode:
        raise LabError(f"{' '.join(argv[:4])}… failed:\n{done.stderr[-2000:]}")


__all__ = ["DEFAULT_VENV", "PINS", "install", "installed", "require", "venv_path"]
