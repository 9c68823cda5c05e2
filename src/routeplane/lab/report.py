"""What a lab looks like right now (``lab status``), how to reach it (``lab env`` and the
guide ``lab up`` prints), and ``lab exec``.

Status reads the kernel and the processes, not only the state file: a namespace is shown
present or missing, a process running or dead, BGP sessions as BIRD itself reports them
(``birdc show protocols``), and a VM's addresses as its ``eth0`` holds them now (so an
address added by hand, as the walkthrough does for a service IP, shows).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from routeplane.bgp.bird import Bird
from routeplane.lab import netns, nova_guest, processes, qemu, qemu_vm
from routeplane.lab.lab import ADMIN_USER, open_lab
from routeplane.lab.state import LabState, VmRecord
from routeplane.lab.topology import DEFAULT_LAB, STATE_ROOT, Topology, resolve
from routeplane.lab.vm import GUEST_INTERFACE
from routeplane.model.errors import BgpError


def env(lab_state: LabState) -> dict[str, str]:
    """``OS_*`` variables for the ``openstack`` CLI: password login against the lab's
    own identity endpoint, as the lab's admin (with ``--openstack``: through Keystone)."""
    if lab_state.openstack_env:
        return dict(lab_state.openstack_env)
    return {
        "OS_AUTH_URL": f"{lab_state.api_url}/identity/v3",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_USERNAME": ADMIN_USER,
        "OS_PASSWORD": lab_state.admin_password,
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }


def env_script(lab_state: LabState) -> str:
    """Shell text for ``eval``: clears other ways of authenticating first."""
    lines = ["unset OS_CLOUD OS_TOKEN OS_AUTH_TYPE OS_ENDPOINT"]
    lines += [f"export {key}='{value}'" for key, value in env(lab_state).items()]
    return "\n".join(lines) + "\n"


def _name_option(lab: str) -> str:
    return "" if lab == DEFAULT_LAB else f" --name {lab}"


def guide(lab_state: LabState) -> str:
    """What to do next, printed by ``lab up``."""
    opt = _name_option(lab_state.lab)
    client = f"{sys.executable} -m routeplane.lab.vm_service connect"
    boot = "" if lab_state.seeded else "  (create a network first: the lab is empty)\n"
    return (
        f"lab {lab_state.lab} is up: api {lab_state.api_url}, {lab_state.hosts} hosts\n"
        f"point the openstack CLI at it:\n"
        f'  eval "$(routeplane lab env{opt})"\n'
        f"  openstack network list\n"
        f"boot VMs and reach them from the access node (192.168.8.1):\n{boot}"
        f"  routeplane lab boot{opt} testvm1 --network demo-net --host node1\n"
        f"  routeplane lab exec{opt} access -- ip route\n"
        f"  routeplane lab exec{opt} access -- {client} 10.28.0.x\n"
        f"  routeplane lab status{opt}\n"
        f"  routeplane lab down{opt}\n"
    )


def _addresses(namespace: str) -> str:
    try:
        shown = netns.ip(namespace, "-o", "addr", "show", "dev", GUEST_INTERFACE, "scope", "global")
    except netns.LabError:
        return "(no eth0)"
    return " ".join(line.split()[3] for line in shown.splitlines() if len(line.split()) > 3)


def _vm_addresses(vm: VmRecord) -> str:
    """A namespace VM's addresses as its eth0 has them; a QEMU guest's as booted."""
    if vm.kind == qemu_vm.KIND:
        return f"qemu {' '.join(vm.addresses)}"
    return _addresses(vm.namespace)


def _bgp(topology: Topology, lab_state: LabState) -> list[str]:
    lines = []
    for node, directory in sorted(lab_state.bird_dirs.items()):
        bird = Bird(Path(directory))
        if not bird.running():
            lines.append(f"  {node}: BIRD not running")
            continue
        try:
            shown = bird.birdc("show", "protocols")
        except BgpError as exc:
            lines.append(f"  {node}: birdc failed: {exc}")
            continue
        sessions = [row for row in shown.splitlines() if " BGP " in row]
        lines.append(f"  {node}: {len(sessions)} BGP sessions")
        lines += [f"    {row.strip()}" for row in sessions]
    return lines


def status(name: str, state_root: Path = STATE_ROOT) -> str:
    topology, lab_state = open_lab(name, state_root)
    present = set(netns.names())
    lines = [
        f"lab {name}: {lab_state.hosts} hosts, api {lab_state.api_url}, state {topology.state_dir}",
        f"store: {topology.store_url}",
        "namespaces:",
    ]
    lines += [
        f"  {ns:<32} {'present' if ns in present else 'MISSING'}" for ns in lab_state.namespaces
    ]
    lines.append("processes:")
    for key, record in lab_state.processes.items():
        alive = "running" if processes.alive(record) else "DEAD"
        port = lab_state.metrics_ports.get(key)
        metrics = f" metrics 127.0.0.1:{port}" if port else ""
        lines.append(f"  {key:<20} pid {record.pid:<8} {alive:<8} log {record.log}{metrics}")
    lines.append("bgp:")
    lines += _bgp(topology, lab_state)
    lines.append("vms:")
    for vm_name, vm in sorted(lab_state.vms.items()):
        service = lab_state.processes.get(f"vm-{vm_name}")
        answering = "service running" if service and processes.alive(service) else "service DEAD"
        lines.append(
            f"  {vm_name:<16} on {vm.host:<6} {vm.tap}  {_vm_addresses(vm)}  "
            f"(port {vm.port_id}, {answering})"
        )
    if not lab_state.vms:
        lines.append("  none")
    return "\n".join(lines) + "\n"


def run_in(name: str, node: str, command: Sequence[str], state_root: Path = STATE_ROOT) -> int:
    """Run ``command`` inside ``node``'s namespace, attached to this terminal; its exit code."""
    topology, lab_state = open_lab(name, state_root)
    namespace = resolve(topology, node, frozenset(lab_state.vms) | nova_guest.guests(topology))
    if not command:
        raise netns.LabError("lab exec: no command given (routeplane lab exec NODE -- CMD…)")
    guest = qemu_vm.find(topology, lab_state, node)
    if guest is not None:  # a real machine: over its control channel
        answer = qemu_vm.run(guest, list(command))
        sys.stdout.write(answer.stdout)
        sys.stderr.write(answer.stderr)
        return answer.returncode
    done = subprocess.run(["ip", "netns", "exec", netns.check(namespace), *command], check=False)
    return done.returncode


def console(name: str, vm_name: str, state_root: Path = STATE_ROOT) -> str:
    """A QEMU guest's serial console, as logged so far."""
    topology, lab_state = open_lab(name, state_root)
    guest = qemu_vm.find(topology, lab_state, vm_name)
    if guest is None:
        raise netns.LabError(f"lab {name} has no QEMU guest {vm_name}")
    return qemu.console(guest)


__all__ = ["console", "env", "env_script", "guide", "run_in", "status"]
