"""The guest side of a server Nova booted in the lab (``lab up --openstack``).

routeplane's compute driver (``routeplane.nova``) gives each server a namespace guest
``rp-<lab>-vm-nova-<server id[:8]>`` with ``eth0`` on the port's tap, and starts it with
nothing running: Nova's part ends at a running guest. What a cloud image then does by
itself — ask its host for a lease, start its services, follow its port's addresses — is
:mod:`~routeplane.lab.guest_processes`, the same as a ``lab boot`` VM's; :func:`boot`
starts it in a server's guest, its processes recorded in the lab's state under the
guest's name (``nova-<id[:8]>``), and :func:`shutdown` ends them (before ``server
delete``; ``lab down`` ends whatever a crash left).

What this module must not do: touch the server through Nova, or the guest's namespace
(the driver made it and the driver removes it).
"""

from __future__ import annotations

from pathlib import Path

from routeplane.lab import guest_processes, netns, state
from routeplane.lab.lab import Recorder, open_lab
from routeplane.lab.topology import STATE_ROOT, Topology

GUEST_PREFIX = "nova-"


def guest_name(server_id: str) -> str:
    """The guest's name in the lab: its namespace is ``rp-<lab>-vm-<this>``."""
    return f"{GUEST_PREFIX}{server_id[:8]}"


def guests(topology: Topology) -> frozenset[str]:
    """The names of the lab's Nova guests that exist now (for ``lab exec``)."""
    vms = f"{topology.prefix}vm-"
    return frozenset(
        ns.removeprefix(vms) for ns in netns.names() if ns.startswith(f"{vms}{GUEST_PREFIX}")
    )


def boot(lab: str, server_id: str, answer: str, host: str, state_root: Path = STATE_ROOT) -> str:
    """Start the guest's DHCP client (returns once leased), its name service answering
    ``answer`` and its ``routeplane guest``; the guest's namespace."""
    topology, _ = open_lab(lab, state_root)
    guest = guest_name(server_id)
    namespace = topology.vm_namespace(guest)
    if not netns.exists(namespace):
        raise netns.LabError(f"server {server_id} has no guest {namespace} in lab {lab}")
    with state.locked(topology.state_dir):
        lab_state = state.load(topology.state_file)
        if lab_state is None:
            raise netns.LabError(f"lab {lab} is not up")
        recorder = Recorder(topology, lab_state)
        try:
            guest_processes.start_dhcp(recorder.start, topology, guest, host)
            guest_processes.start_services(recorder.start, topology, guest, answer)
        except BaseException:
            guest_processes.stop(lab_state, topology, guest)
            recorder.save()
            raise
    return namespace


def shutdown(lab: str, server_id: str, state_root: Path = STATE_ROOT) -> None:
    """End the guest's processes, if any are recorded (idempotent)."""
    topology, _ = open_lab(lab, state_root)
    with state.locked(topology.state_dir):
        lab_state = state.load(topology.state_file)
        if lab_state is None:
            return
        guest_processes.stop(lab_state, topology, guest_name(server_id))
        state.save(topology.state_file, lab_state)


__all__ = ["boot", "guest_name", "guests", "shutdown"]
