"""What a namespace guest runs once it exists, as a cloud image's boot would start it.

A lab VM (``lab boot``) and a server Nova booted with routeplane's driver (a namespace
``rp-<lab>-vm-nova-<id[:8]>``, started with nothing running in it) run the same three
processes, each recorded in the lab's state by PID under the guest's name so that
:func:`stop` (or ``lab down``, after a crash) ends it:

1. its DHCP client (``udhcpc``, :mod:`~routeplane.lab.vm_dhcp`), waited for until the
   lease is applied: the guest's IPv4 comes from its host;
2. the name service on tcp/22 (:mod:`~routeplane.lab.vm_service`: the walkthrough's
   ``ssh … hostname``), answering the name given, and ``routeplane guest``, which keeps
   the port's further addresses (a service IP moved onto it or away) on ``eth0``.

``start`` is the caller's recorder (``lab.Recorder.start``): it starts, records and
checks a process. What this module must not do: configure the host's side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from routeplane.lab import netns, processes, vm, vm_dhcp
from routeplane.lab.state import LabState
from routeplane.lab.topology import Topology
from routeplane.lab.waiting import wait_until

SERVICE_TIMEOUT = 10.0

Start = Callable[[str, Sequence[str]], None]


def service_key(guest: str) -> str:
    """The name service's key in the lab state's ``processes``."""
    return f"vm-{guest}"


def start_dhcp(start: Start, topology: Topology, guest: str, host: str) -> None:
    """The guest's DHCP client; returns once the lease is on ``eth0``."""
    interface = vm.GUEST_INTERFACE
    start(vm_dhcp.dhcp_key(guest), vm_dhcp.client_command(topology, guest, interface))
    if not wait_until(lambda: vm_dhcp.leased(topology, guest, interface), vm_dhcp.LEASE_TIMEOUT):
        log = topology.log(vm_dhcp.dhcp_key(guest))
        raise netns.LabError(f"{guest} got no DHCP lease from {host}; see {log}")


def start_services(start: Start, topology: Topology, guest: str, answer: str) -> None:
    """The name service (answering ``answer``) and ``routeplane guest``; returns once the
    service listens."""
    namespace = topology.vm_namespace(guest)
    start(service_key(guest), topology.vm_service_command(guest, answer))
    start(vm.guest_key(guest), vm.guest_command(topology, guest))
    if not wait_until(lambda: vm.listening(namespace), SERVICE_TIMEOUT):
        raise netns.LabError(f"{guest}'s service does not listen on port 22")


def stop(lab_state: LabState, topology: Topology, guest: str) -> None:
    """End the guest's processes (by their recorded PIDs) and forget its lease files; the
    caller saves the state."""
    keys = (vm.guest_key(guest), vm_dhcp.dhcp_key(guest), vm_dhcp.dhcp6_key(guest))
    for key in (service_key(guest), *keys):
        started = lab_state.processes.pop(key, None)
        if started is not None:
            processes.stop(started)
    vm_dhcp.forget(topology, guest)


__all__ = ["SERVICE_TIMEOUT", "service_key", "start_dhcp", "start_services", "stop"]
