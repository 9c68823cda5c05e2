"""``lab boot --kind qemu``: a lab VM that is a real machine (issue #15).

Where a namespace VM gets a veth pair and a configured ``eth0``, a QEMU guest gets what a
Nova compute host gives it: the tap made by the "hypervisor" in the host's namespace and
QEMU on it (:mod:`routeplane.lab.qemu`). The guest configures itself at boot, as a cloud
image does: its address, mask, router and MTU by DHCP from its host's agent (nothing on
its kernel command line), and its port's further addresses — a service IP — by its
follower (:mod:`routeplane.lab.guest_follower`) from the host's metadata service. QEMU is
recorded as the VM's process (``vm-<name>``), so ``lab down`` stops it by PID, and its
tap goes with the host's namespace; the guest's files are in ``<state>/guests/<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from routeplane.lab import guest_control, guest_init, image, netns, qemu
from routeplane.lab.netns import LabError
from routeplane.lab.state import LabState, VmRecord
from routeplane.lab.topology import Node, Topology
from routeplane.lab.waiting import wait_until

KIND = "qemu"
READY_TIMEOUT = 60.0


def guest_dir(topology: Topology, vm_name: str) -> Path:
    return topology.state_dir / "guests" / vm_name


def ssh_key(topology: Topology) -> Path:
    """The lab's SSH key (private half), made at its first QEMU guest: every guest
    authorises its public half for root, so ``ssh -i <key> root@<guest>`` logs in from
    any node of the lab (they share this machine's files)."""
    key = topology.state_dir / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        netns.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", topology.lab, "-f", str(key)]
        )
    return key


def spec(
    topology: Topology,
    node: Node,
    *,
    vm_name: str,
    port: dict[str, Any],
    accel: str = "tcg",
) -> qemu.GuestSpec:
    """The guest of ``port`` on ``node``: it takes its addresses by DHCP and from its
    follower, so none goes on its kernel command line (as Nova puts none there)."""
    return qemu.GuestSpec(
        name=vm_name,
        namespace=node.namespace,
        port_id=port["id"],
        mac=port["mac_address"],
        directory=guest_dir(topology, vm_name),
        ssh_key=ssh_key(topology).with_suffix(".pub").read_text(),
        accel=accel,
    )


def start(
    guest: qemu.GuestSpec, accel_override: str | None, say: Callable[[str], None]
) -> qemu.Guest:
    """Build (or take) the image, choose the accelerator, start QEMU, wait for ``/init``
    to say the guest is ready."""
    built = image.build(say=say)
    accel = qemu.choose_accel(built, accel_override)
    started = qemu.start(qemu.GuestSpec(**{**guest.__dict__, "accel": accel}), built)
    if not wait_until(lambda: guest_init.READY in qemu.console(started.spec), READY_TIMEOUT):
        raise LabError(f"{guest.name} did not boot within {READY_TIMEOUT:.0f}s: {guest.console}")
    return started


def find(topology: Topology, lab_state: LabState, vm_name: str) -> qemu.GuestSpec | None:
    """The QEMU guest ``vm_name`` of the lab, when it is one."""
    record: VmRecord | None = lab_state.vms.get(vm_name)
    if record is None or record.kind != KIND:
        return None
    found = qemu.load(guest_dir(topology, vm_name))
    if found is None:
        raise LabError(f"{vm_name}: no QEMU guest recorded in {guest_dir(topology, vm_name)}")
    return found.spec


def run(guest: qemu.GuestSpec, command: list[str]) -> guest_control.Completed:
    """``lab exec`` for a QEMU guest: over its control channel, not its network."""
    return guest_control.execute(guest.control, command)


__all__ = ["KIND", "find", "guest_dir", "run", "spec", "ssh_key", "start"]
