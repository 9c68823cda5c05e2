"""A QEMU guest on a host's namespace, plugged as Nova's libvirt driver plugs one.

The hypervisor's part, as libvirt does it for a Neutron port of ``type='ethernet'``: it
creates the tap ``tap<port[:11]>`` itself, with a MAC of its own — the port's MAC with
the first byte ``fe`` (:func:`tap_mac`; the guest's NIC has the port's MAC) — brings it
up, and hands it to QEMU. Here the tap is made inside the host's ``rp-`` namespace and
QEMU runs there too (``ip netns exec``), opening the existing tap by name
(``-netdev tap,ifname=…,script=no,downscript=no``). The tap has carrier only while QEMU
holds it. As for namespace VMs, the tap's addresses and routes are the agent's business.

What else QEMU gets: ``-nodefaults`` (no NIC but ours: never user-mode networking), the
serial console into ``console.log`` in the guest's directory, a virtio-serial port
``rp.ctl`` served on ``control.sock`` there (:mod:`routeplane.lab.guest_control`), and a
virtio RNG. The process is recorded in ``guest.json`` (PID and command line): :func:`stop`
ends it by PID and removes the tap — also after a crash of whoever started it.

The accelerator: KVM only where a guest really boots under it (on nested machines
without the CPU features it hangs after the boot ROM), found by :func:`probe` with a
short timeout and remembered next to the image; else TCG.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from routeplane.lab import guest_init, netns, processes
from routeplane.lab.image import Image
from routeplane.lab.state import ProcessRecord
from routeplane.model.endpoint import interface_name

QEMU = "qemu-system-x86_64"
ACCELERATORS = ("kvm", "tcg")
PROBE_TIMEOUT = 6.0
MEMORY_MB = 256


@dataclass(frozen=True)
class GuestSpec:
    """What a guest is booted with. ``address``/``gateway`` are its fallback while no DHCP
    lease comes (``10.28.0.13/16``, ``10.28.0.1``)."""

    name: str
    namespace: str  # the host's namespace, where the tap and QEMU live
    port_id: str
    mac: str
    directory: Path  # the guest's state: console.log, control.sock, guest.json, qemu.log
    address: str | None = None
    gateway: str | None = None
    ssh_key: str | None = None  # an OpenSSH public key authorised for root
    accel: str = "tcg"
    memory_mb: int = MEMORY_MB

    @property
    def tap(self) -> str:
        return interface_name(self.port_id)

    @property
    def console(self) -> Path:
        return self.directory / "console.log"

    @property
    def control(self) -> Path:
        return self.directory / "control.sock"

    @property
    def record_file(self) -> Path:
        return self.directory / "guest.json"


def tap_mac(mac: str) -> str:
    """The tap's own MAC, as libvirt picks it: the guest's with the first byte ``fe``."""
    return "fe" + mac[2:]


def command(spec: GuestSpec, image: Image | None, boot: list[str] | None = None) -> list[str]:
    """QEMU's command line for ``spec``, run inside the host's namespace: the busybox
    ``image`` booted with the guest's ``rp.`` settings, or what ``boot`` says (another
    image's kernel, initramfs and disk)."""
    if spec.accel not in ACCELERATORS:
        raise ValueError(f"accelerator {spec.accel!r}: one of {', '.join(ACCELERATORS)}")
    if boot is None:
        if image is None:
            raise ValueError("a guest boots the busybox image or what boot says")
        append = guest_init.kernel_cmdline(spec.name, spec.address, spec.gateway, spec.ssh_key)
        boot = ["-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", append]
    return [
        *("ip", "netns", "exec", netns.check(spec.namespace), QEMU, "-name", spec.name),
        *("-nodefaults", "-no-user-config", "-nographic", "-monitor", "none", "-no-reboot"),
        *("-accel", spec.accel, "-m", str(spec.memory_mb), *boot),
        *("-chardev", f"file,id=console,path={spec.console}", "-serial", "chardev:console"),
        *("-netdev", f"tap,id=net0,ifname={spec.tap},script=no,downscript=no"),
        *("-device", f"virtio-net-pci,netdev=net0,mac={spec.mac},romfile="),
        *("-device", "virtio-serial"),
        *("-chardev", f"socket,id=control,path={spec.control},server=on,wait=off"),
        *("-device", f"virtserialport,chardev=control,name={guest_init.CONTROL_PORT}"),
        *("-device", "virtio-rng-pci"),
    ]


def plug(namespace: str, tap: str, mac: str) -> None:
    """The hypervisor's tap: made in the host's namespace with its own MAC, up."""
    netns.ip(namespace, "tuntap", "add", "dev", tap, "mode", "tap")
    netns.ip(namespace, "link", "set", tap, "address", tap_mac(mac), "up")


def unplug(namespace: str, tap: str) -> None:
    """Remove the tap (gone already, or its namespace gone, is fine)."""
    if netns.exists(namespace):
        netns.run(["ip", "-n", namespace, "link", "del", tap], check_rc=False)


@dataclass(frozen=True)
class Guest:
    spec: GuestSpec
    process: ProcessRecord


def start(spec: GuestSpec, image: Image | None, boot: list[str] | None = None) -> Guest:
    """Plug the tap and start QEMU on it; the guest boots in the background (``boot``:
    as for :func:`command`)."""
    spec.directory.mkdir(parents=True, exist_ok=True)
    for stale in (spec.console, spec.control):
        stale.unlink(missing_ok=True)
    plug(spec.namespace, spec.tap, spec.mac)
    try:
        record = processes.start(command(spec, image, boot), spec.directory / "qemu.log")
        raw = {"spec": {**asdict(spec), "directory": str(spec.directory)}}
        raw["process"] = asdict(record)
        spec.record_file.write_text(json.dumps(raw, indent=1) + "\n")
        if not processes.wait_started(record):
            log = _tail(spec.directory / "qemu.log")
            raise netns.LabError(f"qemu for {spec.name} did not start: {log}")
    except BaseException:
        unplug(spec.namespace, spec.tap)
        raise
    return Guest(spec, record)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def load(directory: Path) -> Guest | None:
    """The guest recorded in ``directory``, if one was started there."""
    try:
        raw = json.loads((directory / "guest.json").read_text())
    except (OSError, ValueError):
        return None
    spec = GuestSpec(**{**raw["spec"], "directory": Path(raw["spec"]["directory"])})
    return Guest(spec, ProcessRecord(**raw["process"]))


def stop(directory: Path) -> bool:
    """End the guest recorded in ``directory`` by its PID and remove its tap; whether
    there was a guest. Safe after a crash and when repeated."""
    guest = load(directory)
    if guest is None:
        return False
    processes.stop(guest.process, timeout=5.0)
    unplug(guest.spec.namespace, guest.spec.tap)
    guest.spec.control.unlink(missing_ok=True)
    guest.spec.record_file.unlink(missing_ok=True)
    return True


def console(spec: GuestSpec) -> str:
    """What the guest has written to its serial console so far (empty before QEMU
    opened the log)."""
    try:
        return spec.console.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def alive(guest: Guest) -> bool:
    return processes.alive(guest.process)


# --- the accelerator ----------------------------------------------------------------
def probe(image: Image, accel: str = "kvm", timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a guest boots to its ``/init`` under ``accel`` within ``timeout`` (it
    boots with no network at all, prints the probe's mark and powers off)."""
    if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    argv = [
        *(QEMU, "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none"),
        *("-no-reboot", "-accel", accel, "-m", str(MEMORY_MB), "-serial", "stdio"),
        *("-kernel", str(image.kernel), "-initrd", str(image.initrd)),
        *("-append", guest_init.kernel_cmdline("probe", probe=True)),
    ]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return False
    return guest_init.PROBE_OK.encode() in out


def choose_accel(image: Image, override: str | None = None) -> str:
    """``override`` when given; else what the probe found, remembered per image and QEMU
    version in the image's directory (a probe costs seconds; a boot should not)."""
    if override:
        if override not in ACCELERATORS:
            raise ValueError(f"accelerator {override!r}: one of {', '.join(ACCELERATORS)}")
        return override
    version = netns.run([QEMU, "--version"]).splitlines()[0]
    remembered = image.directory / "accel.json"
    try:
        known = json.loads(remembered.read_text())
        if known.get("qemu") == version and known.get("accel") in ACCELERATORS:
            return str(known["accel"])
    except (OSError, ValueError):
        pass
    started = time.monotonic()
    accel = "kvm" if probe(image, "kvm") else "tcg"
    elapsed = round(time.monotonic() - started, 2)
    remembered.write_text(json.dumps({"qemu": version, "accel": accel, "probe_s": elapsed}) + "\n")
    return accel


__all__ = [
    "ACCELERATORS",
    "Guest",
    "GuestSpec",
    "alive",
    "choose_accel",
    "command",
    "console",
    "load",
    "plug",
    "probe",
    "start",
    "stop",
    "tap_mac",
    "unplug",
]
