"""The cloud-init guest's image: a minimal Debian with cloud-init, built here, cached.

The busybox image (:mod:`routeplane.lab.image`) shows what a kernel does; this one shows
what a cloud image does at boot: systemd starts cloud-init, which finds the OpenStack
datasource (QEMU is given Nova's SMBIOS product name, as Nova gives it), takes an
address by DHCP to reach ``169.254.169.254``, reads ``meta_data.json`` — the hostname,
the instance id — and ``network_data.json`` when the host serves it, and applies them.

Built with ``mmdebstrap`` from the Debian archive the host's apt uses (``bookworm``:
:data:`PACKAGES` and what they need, no recommends), unpacked, given the files in
:data:`FILES` (cloud-init told to use the OpenStack datasource only; a one-shot unit
printing :data:`READY` with the hostname, the instance id and the addresses on the
serial console once cloud-init is done), and written into an ext4 file system image with
``mke2fs -d`` (no loop device, no mount). The kernel and the initramfs Debian made for it
are copied out: QEMU boots them directly with ``root=/dev/vda``, and ``-snapshot`` keeps
the image unchanged by a guest. Cached under ``<cache>/cloud-images/<key>``, the key a
hash of the suite, the packages' candidate versions and the files' text.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from routeplane.lab.image import CACHE_ROOT, build_once
from routeplane.lab.netns import LabError

SUITE = "bookworm"
PACKAGES = (
    "systemd-sysv", "udev", "linux-image-cloud-amd64", "initramfs-tools", "cloud-init",
    "isc-dhcp-client", "ifupdown", "iproute2", "netbase",
)  # fmt: skip
DISK_SIZE = "1536M"
BUILD_VERSION = 1
READY = "rp-cloud-ready"
NOVA_SMBIOS = "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova"

REPORT_UNIT = f"""[Unit]
Description=routeplane: say on the console what cloud-init made of this machine
After=cloud-final.service
Wants=cloud-final.service

[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/bin/sh -c 'echo "{READY} $(hostname) $(cloud-init query instance_id 2>/dev/null)\
 $(cloud-init query platform 2>/dev/null) $(ip -o -4 addr show scope global | \
awk "{{print \\$4}}" | tr "\\n" " ")"'

[Install]
WantedBy=cloud-init.target
"""

FILES = {
    "etc/cloud/cloud.cfg.d/90-routeplane.cfg": (
        "# routeplane lab: the OpenStack datasource only, quickly\n"
        "datasource_list: [OpenStack]\n"
        "datasource:\n"
        "  OpenStack:\n"
        "    metadata_urls: ['http://169.254.169.254']\n"
        "    max_wait: 60\n"
        "    timeout: 5\n"
    ),
    "etc/fstab": "/dev/vda / ext4 rw,relatime 0 1\n",
    "etc/hostname": "debian\n",
    "etc/systemd/system/rp-report.service": REPORT_UNIT,
    # enabled as `systemctl enable` would (cloud-final runs after multi-user.target)
    "etc/systemd/system/cloud-init.target.wants/rp-report.service": "",
}


@dataclass(frozen=True)
class CloudImage:
    directory: Path
    kernel: Path
    initrd: Path
    disk: Path


def _candidate(package: str) -> str:
    shown = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    ).stdout
    for line in shown.splitlines():
        if line.strip().startswith("Candidate:"):
            return line.split(":", 1)[1].strip()
    raise LabError(f"apt knows no package {package}: apt-get update?")


def inputs() -> dict[str, str]:
    found = {"suite": SUITE, "build": str(BUILD_VERSION)}
    for package in ("cloud-init", "linux-image-cloud-amd64", "systemd"):
        found[package] = _candidate(package)
    found["packages"] = ",".join(PACKAGES)
    text = json.dumps(FILES, sort_keys=True)
    found["files"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return found


def _image(directory: Path) -> CloudImage | None:
    parts = [directory / name for name in ("vmlinuz", "initrd.img", "disk.raw")]
    if not all(p.exists() for p in parts):
        return None
    return CloudImage(directory, *parts)


def _run(argv: list[str], timeout: float) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise LabError(f"{argv[0]}: {done.stderr.strip()[-2000:]}")


def build(cache_root: Path = CACHE_ROOT, say: Callable[[str], None] = lambda _: None) -> CloudImage:
    """The image for today's inputs: the cached one, or built now (minutes: a Debian
    download and install)."""
    found = inputs()
    key = hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]
    directory = cache_root / "cloud-images" / key
    ready = _image(directory)
    if ready is not None:
        return ready
    say(f"building the cloud-init guest image {key} (mmdebstrap {SUITE}: minutes)")

    def make(work: Path, out: Path) -> None:
        tar, root = work / "root.tar", work / "root"
        _run(
            ["mmdebstrap", "--variant=minbase", "--mode=root", f"--include={','.join(PACKAGES)}",
             SUITE, str(tar)],
            timeout=1800,
        )  # fmt: skip
        root.mkdir()
        _run(["tar", "-x", "--numeric-owner", "-C", str(root), "-f", str(tar)], timeout=600)
        _customise(root)
        (out / "vmlinuz").write_bytes(sorted((root / "boot").glob("vmlinuz-*"))[-1].read_bytes())
        initrd = sorted((root / "boot").glob("initrd.img-*"))[-1]
        (out / "initrd.img").write_bytes(initrd.read_bytes())
        _run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), str(out / "disk.raw"), DISK_SIZE], 600)

    build_once(directory, found, make)
    if (built := _image(directory)) is None:
        raise LabError(f"cloud-init guest image {directory}: not built")
    say(f"cloud-init guest image ready: {directory}")
    return built


def _customise(root: Path) -> None:
    for path, text in FILES.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if text:
            target.write_text(text)
        else:
            target.unlink(missing_ok=True)
            target.symlink_to("/" + path.replace("cloud-init.target.wants/", ""))
    (root / "etc" / "machine-id").write_text("")  # each boot makes its own


def qemu_arguments(image: CloudImage, device_id: str) -> list[str]:
    """What QEMU needs besides the NIC to boot this image as Nova would: the disk (never
    written: ``snapshot``), the kernel and its initramfs, Nova's SMBIOS identity."""
    return [
        *("-kernel", str(image.kernel), "-initrd", str(image.initrd)),
        *("-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"),
        *("-drive", f"file={image.disk},if=virtio,format=raw,snapshot=on"),
        *("-smbios", f"{NOVA_SMBIOS},serial={device_id}"),
    ]


__all__ = ["PACKAGES", "READY", "CloudImage", "build", "inputs", "qemu_arguments"]
