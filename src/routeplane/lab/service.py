"""(Re)starting a lab's processes: the way back after a test or benchmark failed one.

Failover tests and ``bench/failover.py`` kill a VM's service (``vm-<name>`` in the lab's
state) to make its health check fail; to fail the same VM again later they need it
running again, started exactly as ``lab boot`` starts it (the topology's command line, its
log, recorded in the state file so ``lab down`` ends it). Doing that by hand would leave
a process the lab does not know about. The same holds for nova-api, which the Nova-outage
test stops and starts again, and for the extra api and controller processes a test adds
beside the lab's own (:func:`start_process`).

What this module must not do: signal a service that still runs (a frozen one included:
starting a second one beside it would not bind port 22), or start anything unrecorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from routeplane.lab import netns, openstack, processes, state, vm
from routeplane.lab.lab import SERVICE_TIMEOUT, Recorder, open_lab
from routeplane.lab.state import ProcessRecord
from routeplane.lab.topology import STATE_ROOT
from routeplane.lab.waiting import wait_until


def service_key(vm_name: str) -> str:
    """The service's key in the lab state's ``processes``."""
    return f"vm-{vm_name}"


def start_service(name: str, vm_name: str, *, state_root: Path = STATE_ROOT) -> ProcessRecord:
    """Start VM ``vm_name``'s service unless it runs, and wait until it listens on port 22.

    Its record (the one already running, or the new one). A service that died is reaped
    and replaced; LabError for a VM the lab does not have or a service that never listens.
    """
    topology, lab_state = open_lab(name, state_root)
    record = lab_state.vms.get(vm_name)
    if record is None:
        raise netns.LabError(f"lab {name} has no VM {vm_name}")
    command = topology.vm_service_command(vm_name)
    started = start_process(name, service_key(vm_name), command, state_root=state_root)
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while not vm.listening(record.namespace):
        if time.monotonic() > deadline:
            raise netns.LabError(f"{vm_name}'s service does not listen on port 22")
        time.sleep(0.02)
    return started


def start_process(
    name: str,
    key: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    state_root: Path = STATE_ROOT,
) -> ProcessRecord:
    """Start ``argv`` as the lab's process ``key`` unless one by that key runs (its
    record is then answered); recorded, so ``lab down`` ends it."""
    topology, _ = open_lab(name, state_root)
    with state.locked(topology.state_dir):
        lab_state = state.load(topology.state_file)
        if lab_state is None:
            raise netns.LabError(f"lab {name} is not up")
        running = lab_state.processes.get(key)
        if running is not None and processes.alive(running):
            return running
        if running is not None:
            processes.stop(running)  # gone already: this only collects its exit status
        Recorder(topology, lab_state).start(key, argv, env)
        return lab_state.processes[key]


def stop_process(name: str, key: str, *, state_root: Path = STATE_ROOT) -> bool:
    """Stop the lab's process ``key`` by its recorded PID (SIGTERM, then SIGKILL); True
    when it had to be signalled."""
    _, lab_state = open_lab(name, state_root)
    record = lab_state.processes.get(key)
    return record is not None and processes.stop(record)


def start_nova_api(name: str, *, state_root: Path = STATE_ROOT) -> ProcessRecord:
    """Start the lab's nova-api again (as ``lab up --openstack`` does) unless it runs, and
    wait until it answers; LabError when it does not within a minute."""
    topology, lab_state = open_lab(name, state_root)
    layout = openstack.layout_of(topology, lab_state.api_port)
    argv, env = openstack.nova_api(layout)
    record = start_process(name, openstack.NOVA_API, argv, env, state_root=state_root)
    if not wait_until(openstack.nova_api_answers(layout), openstack.START_TIMEOUT, 0.1):
        raise netns.LabError(f"nova-api did not answer; see {topology.log(openstack.NOVA_API)}")
    return record


__all__ = ["service_key", "start_nova_api", "start_process", "start_service", "stop_process"]
