"""(Re)starting a lab VM's service: the way back after a test or benchmark failed a VM.

Failover tests and ``bench/failover.py`` kill a VM's service (``vm-<name>`` in the lab's
state) to make its health check fail; to fail the same VM again later they need it
running again, started exactly as ``lab boot`` starts it (the topology's command line, its
log, recorded in the state file so ``lab down`` ends it). Doing that by hand would leave
a process the lab does not know about.

What this module must not do: signal a service that still runs (a frozen one included:
starting a second one beside it would not bind port 22), or start anything unrecorded.
"""

from __future__ import annotations

import time
from pathlib import Path

from routeplane.lab import netns, processes, state, vm
from routeplane.lab.lab import SERVICE_TIMEOUT, Recorder, open_lab
from routeplane.lab.state import ProcessRecord
from routeplane.lab.topology import STATE_ROOT


def service_key(vm_name: str) -> str:
    """The service's key in the lab state's ``processes``."""
    return f"vm-{vm_name}"


def start_service(name: str, vm_name: str, *, state_root: Path = STATE_ROOT) -> ProcessRecord:
    """Start VM ``vm_name``'s service unless it runs, and wait until it listens on port 22.

    Its record (the one already running, or the new one). A service that died is reaped
    and replaced; LabError for a VM the lab does not have or a service that never listens.
    """
    topology, _ = open_lab(name, state_root)
    key = service_key(vm_name)
    with state.locked(topology.state_dir):
        lab_state = state.load(topology.state_file)
        if lab_state is None:
            raise netns.LabError(f"lab {name} is not up")
        record = lab_state.vms.get(vm_name)
        if record is None:
            raise netns.LabError(f"lab {name} has no VM {vm_name}")
        running = lab_state.processes.get(key)
        if running is not None and processes.alive(running):
            return running
        if running is not None:
            processes.stop(running)  # gone already: this only collects its exit status
        Recorder(topology, lab_state).start(key, topology.vm_service_command(vm_name))
        started = lab_state.processes[key]
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while not vm.listening(record.namespace):
        if time.monotonic() > deadline:
            raise netns.LabError(f"{vm_name}'s service does not listen on port 22")
        time.sleep(0.02)
    return started


__all__ = ["service_key", "start_service"]
