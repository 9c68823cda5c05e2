"""The QEMU guest's image, built here from Debian packages and cached by its inputs.

Nothing may come from outside the package registries, so the image is made locally:

- the kernel and its modules from ``linux-image-cloud-amd64``'s versioned package,
  fetched with ``apt-get download`` into the cache and unpacked with ``dpkg-deb -x`` (never
  installed: its maintainer scripts would touch the host's /boot);
- ``/bin/busybox`` from ``busybox-static`` (the shell, ``ip``, ``udhcpc``, ``nc``…) and
  ``dropbear`` from ``dropbear-bin`` with the shared libraries ``ldd`` names, both as the
  host has them installed (Makefile's DEB_PACKAGES);
- ``/init`` and the DHCP client's script from :mod:`routeplane.lab.guest_init`.

The result is ``<cache>/images/<key>/{vmlinuz,initrd.gz,release,inputs.json}``. The key
hashes the inputs — the package versions, :data:`BUILD_VERSION` and the scripts' text —
so an image is rebuilt exactly when one of them changes; a build is made in a temporary
directory and renamed into place, so a half-built image is never used.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from routeplane.lab import guest_init, kmod
from routeplane.lab.netns import LabError, run

BUILD_VERSION = 1
CACHE_ROOT = Path("/var/cache/routeplane")
KERNEL_PACKAGE = "linux-image-cloud-amd64"
RUNTIME_PACKAGES = ("busybox-static", "dropbear-bin", "libc6")
BUSYBOX = Path("/bin/busybox")
DROPBEAR = Path("/usr/sbin/dropbear")
MODULES = (
    "virtio_pci",
    "virtio_net",
    "virtio_console",
    "vmw_vsock_virtio_transport",
    "virtio_rng",
)
ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\n",
    "etc/shells": "/bin/sh\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
}
DIRECTORIES = (
    "bin",
    "sbin",
    "usr/bin",
    "usr/sbin",
    "proc",
    "sys",
    "dev",
    "tmp",
    "run",
    "root",
    "var/log",
)


@dataclass(frozen=True)
class Image:
    directory: Path
    kernel: Path
    initrd: Path
    release: str  # the guest kernel's ``uname -r``


def _say_nothing(_: str) -> None:
    pass


def kernel_package() -> tuple[str, str]:
    """The versioned kernel package the metapackage points to now, and its version."""
    depends = run(["apt-cache", "depends", KERNEL_PACKAGE], check_rc=False)
    names = [
        line.split(":", 1)[1].strip()
        for line in depends.splitlines()
        if line.strip().startswith("Depends:") and "linux-image-" in line
    ]
    if not names:
        raise LabError(f"apt knows no {KERNEL_PACKAGE}: run apt-get update")
    shown = run(["apt-cache", "show", "--no-all-versions", names[0]])
    versions = [
        line.split(":", 1)[1].strip() for line in shown.splitlines() if line.startswith("Version:")
    ]
    return names[0], versions[0]


def installed_version(package: str) -> str:
    """The installed version of a Debian package (an error naming it when absent)."""
    shown = run(["dpkg-query", "-W", "-f=${Version}", package], check_rc=False)
    if not shown:
        raise LabError(
            f"the guest image needs the Debian package {package}: apt-get install {package}"
        )
    return shown


def inputs() -> dict[str, str]:
    """Everything the image is made of, by version: what its key hashes."""
    name, version = kernel_package()
    found = {"kernel": f"{name}={version}", "build": str(BUILD_VERSION)}
    for package in RUNTIME_PACKAGES:
        found[package] = installed_version(package)
    scripts = "".join(text for _, text in sorted(guest_init.scripts().items()))
    found["scripts"] = hashlib.sha256(scripts.encode()).hexdigest()[:16]
    return found


def image_key(found: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]


def cached(cache_root: Path = CACHE_ROOT) -> Image | None:
    """The image for today's inputs when it has been built already."""
    return _image(cache_root / "images" / image_key(inputs()))


def _image(directory: Path) -> Image | None:
    release = directory / "release"
    if not release.exists():
        return None
    return Image(directory, directory / "vmlinuz", directory / "initrd.gz", release.read_text())


def build(cache_root: Path = CACHE_ROOT, say: Callable[[str], None] = _say_nothing) -> Image:
    """The image for today's inputs: the cached one, or built now (tens of seconds)."""
    found = inputs()
    directory = cache_root / "images" / image_key(found)
    ready = _image(directory)
    if ready is not None:
        return ready
    say(f"building the guest image {directory.name} ({found['kernel']})")

    def make(work: Path, out: Path) -> None:
        deb = _download(cache_root / "debs", found["kernel"])
        run(["dpkg-deb", "-x", str(deb), str(work / "kernel")], timeout=300)
        release = _stage(work / "kernel", work / "root")
        _pack(work / "root", out / "initrd.gz")
        shutil.copyfile(work / "kernel" / "boot" / f"vmlinuz-{release}", out / "vmlinuz")
        (out / "release").write_text(release)

    build_once(directory, found, make)
    image = _image(directory)
    if image is None:
        raise LabError(f"guest image {directory}: not built")
    say(f"guest image ready: {directory}")
    return image


def build_once(directory: Path, found: dict[str, str], make: Callable[[Path, Path], None]) -> None:
    """Build an image into ``directory``: ``make(work, out)`` fills ``out`` inside a
    scratch directory next to it, ``inputs.json`` records ``found``, and ``out`` is
    renamed into place, so a half-built image is never used; of two builders racing,
    the second rename fails and both end with one good image."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".build-") as scratch:
        work = Path(scratch)
        out = work / "image"
        out.mkdir()
        make(work, out)
        (out / "inputs.json").write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        with contextlib.suppress(OSError):  # built concurrently: theirs is as good
            out.rename(directory)


def _download(debs: Path, package: str) -> Path:
    """``apt-get download NAME=VERSION`` into ``debs/NAME=VERSION/``, once."""
    target = debs / package
    present = sorted(target.glob("*.deb"))
    if present:
        return present[0]
    target.mkdir(parents=True, exist_ok=True)
    argv = ["apt-get", "download", "-q", package]
    done = subprocess.run(argv, cwd=target, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise LabError(f"apt-get download {package}: {done.stderr.decode(errors='replace')}")
    present = sorted(target.glob("*.deb"))
    if not present:
        raise LabError(f"apt-get download {package}: no package file")
    return present[0]


def _stage(kernel: Path, root: Path) -> str:
    """The initramfs tree under ``root``; the kernel's release."""
    releases = sorted(p.name for p in (kernel / "lib" / "modules").iterdir())
    release = releases[-1]
    for directory in (*DIRECTORIES, "var/log", "lib/modules", "etc"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    modules_dir = kernel / "lib" / "modules" / release
    paths = kmod.index(modules_dir)
    order = kmod.load_order(MODULES, kmod.dependencies(paths), kmod.builtin(modules_dir))
    for name in order:
        (root / "lib" / "modules" / f"{name}.ko").write_bytes(kmod.read_module(paths[name]))
    (root / "etc" / "modules.load").write_text("\n".join(order) + "\n")
    for path, text in ETC_FILES.items():
        (root / path).write_text(text)
    for path, text in guest_init.scripts().items():
        _write_script(root / path, text)
    _copy_binary(BUSYBOX, root, "busybox-static")
    _copy_binary(DROPBEAR, root, "dropbear-bin")
    for library in _libraries(DROPBEAR):
        _copy_binary(library, root, "libc6")
    if os.geteuid() == 0:  # the console /init starts on (the kernel's own list has it too)
        os.mknod(root / "dev" / "console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
    return release


def _write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _copy_binary(source: Path, root: Path, package: str) -> None:
    if not source.exists():
        raise LabError(f"{source} is missing: apt-get install {package}")
    target = root / source.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.resolve(), target)
    target.chmod(0o755)


def _libraries(binary: Path) -> list[Path]:
    """The shared libraries ``binary`` loads (and the loader), as ``ldd`` resolves them."""
    found = []
    for line in run(["ldd", str(binary)]).splitlines():
        words = line.split()
        if "=>" in words and len(words) > 2 and words[2].startswith("/"):
            found.append(Path(words[2]))
        elif words and words[0].startswith("/"):
            found.append(Path(words[0]))
    return found


def _pack(root: Path, target: Path) -> None:
    """``root`` as a gzip'd newc cpio archive, every file owned by root, in sorted order."""
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = "\n".join([".", *names]) + "\n"
    archive = subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
        input=listing.encode(),
        cwd=root,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if archive.returncode != 0:
        raise LabError(f"cpio: {archive.stderr.decode(errors='replace').strip()}")
    target.write_bytes(gzip.compress(archive.stdout, compresslevel=6, mtime=0))


__all__ = [
    "BUILD_VERSION",
    "CACHE_ROOT",
    "Image",
    "build",
    "build_once",
    "cached",
    "image_key",
    "inputs",
    "kernel_package",
]
