"""Unit: the pure parts of QEMU guests — the modules' load order, the image's key, the
kernel command line, the control channel's wire format and QEMU's command line."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from routeplane.lab import guest_control, guest_init, image, kmod, qemu

pytestmark = pytest.mark.unit

DEPENDS = {
    "virtio_net": ["net_failover", "virtio", "virtio_ring"],
    "net_failover": ["failover"],
    "failover": [],
    "virtio": [],
    "virtio_ring": [],
    "virtio_pci": ["virtio_pci_modern_dev", "virtio", "virtio_ring"],
    "virtio_pci_modern_dev": [],
}


def test_modules_load_after_what_they_need_and_once() -> None:
    order = kmod.load_order(["virtio-pci.ko", "virtio_net"], DEPENDS.get, set())
    assert order == [
        "virtio_pci_modern_dev",
        "virtio",
        "virtio_ring",
        "virtio_pci",
        "failover",
        "net_failover",
        "virtio_net",
    ]


def test_built_in_modules_are_not_loaded_and_unknown_ones_are_an_error() -> None:
    assert kmod.load_order(["net_failover"], DEPENDS.get, {"failover"}) == ["net_failover"]
    with pytest.raises(ValueError, match="no kernel module 'vsock'"):
        kmod.load_order(["vsock"], DEPENDS.get, set())


def test_the_image_key_changes_with_any_input() -> None:
    inputs = {"kernel": "linux-image-6.1.0-57-cloud-amd64=6.1.192-3", "build": "1"}
    assert image.image_key(inputs) == image.image_key(dict(reversed(inputs.items())))
    assert image.image_key(inputs) != image.image_key({**inputs, "build": "2"})


def test_kernel_command_line_carries_the_fallback_address_and_key() -> None:
    line = guest_init.kernel_cmdline(
        "testvm1", "10.28.0.13/16", "10.28.0.1", "ssh-ed25519 AAAAC3Nz me@host"
    )
    assert line.split() == [
        "console=ttyS0",
        "panic=-1",
        "quiet",
        "rp.name=testvm1",
        "rp.ip=10.28.0.13/16",
        "rp.gw=10.28.0.1",
        "rp.ssh_key=ssh-ed25519:AAAAC3Nz",
    ]
    assert "rp.probe=1" in guest_init.kernel_cmdline("probe", probe=True)


def test_control_channel_round_trip() -> None:
    request = guest_control.encode(["echo", "a b"])
    assert base64.b64decode(request) == b"echo 'a b'"
    out, err = base64.b64encode(b"a b\n").decode(), base64.b64encode(b"").decode()
    partial = f"rp-out\n{out}\nrp-err\n{err}\n".encode()
    assert guest_control.decode(partial) is None
    done = guest_control.decode(partial + b"rp-rc 0\n")
    assert done == guest_control.Completed(0, "a b\n", "")


def test_qemu_runs_in_the_hosts_namespace_on_the_ports_tap() -> None:
    spec = qemu.GuestSpec(
        name="testvm1",
        namespace="rp-lab-node1",
        port_id="0123456789abcdef",
        mac="fa:16:3e:00:00:13",
        directory=Path("/run/routeplane/lab/guests/testvm1"),
    )
    built = image.Image(Path("/i"), Path("/i/vmlinuz"), Path("/i/initrd.gz"), "6.1.0")
    argv = qemu.command(spec, built)
    assert argv[:5] == ["ip", "netns", "exec", "rp-lab-node1", "qemu-system-x86_64"]
    assert "tap,id=net0,ifname=tap0123456789a,script=no,downscript=no" in argv
    assert "virtio-net-pci,netdev=net0,mac=fa:16:3e:00:00:13,romfile=" in argv
    assert "-nodefaults" in argv  # no NIC but ours: never user-mode networking
    assert qemu.tap_mac(spec.mac) == "fe:16:3e:00:00:13"
    with pytest.raises(ValueError, match="accelerator"):
        qemu.command(qemu.GuestSpec(**{**spec.__dict__, "accel": "hvf"}), built)
