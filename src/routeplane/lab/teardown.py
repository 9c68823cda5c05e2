"""``lab down``: remove everything a lab made, also after a crash.

The state file may be complete, partial (``up`` died half way) or gone, and its processes
may be running or long dead. So ``down`` unions what is recorded with what the topology's
name patterns recognise, and undoes it in dependency order:

1. processes, newest kind first: VM services, agents (before their BIRDs, or an agent
   would start its BIRD again), the api — each only while ``/proc/PID/cmdline`` still
   shows the recorded command line;
2. every BIRD whose directory is under the lab's state directory (``Bird.stop`` checks
   the pid file's process is that BIRD);
3. every namespace the lab owns (recorded ones that still match the lab's shapes, and any
   present namespace of those shapes);
4. the state directory, and the etcd members' data on tmpfs (``etcd_cluster``).

Each step goes on when another fails; the failures are raised together at the end. It
never looks processes up by name: a process inside a lab namespace that the lab did not
start is reported, not killed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from routeplane.bgp.bird import Bird
from routeplane.lab import netns, processes, state
from routeplane.lab.topology import STATE_ROOT, Topology


def _stop_rank(key: str) -> tuple[int, str]:
    """VM services and nova-computes first, then agents (before their BIRDs), then the
    api and the other OpenStack services, Erlang's port mapper and the etcd members
    (every client of theirs gone) last."""
    if key.startswith(("vm-", "os-nova-compute-")):
        return (0, key)
    if key.startswith("agent-"):
        return (1, key)
    return (3 if key == "os-epmd" or key.startswith("etcd") else 2, key)


def _bird_dirs(topology: Topology, lab_state: state.LabState | None) -> list[Path]:
    found = {Path(p) for p in (lab_state.bird_dirs.values() if lab_state else ())}
    if topology.state_dir.is_dir():
        found |= {p.parent for p in topology.state_dir.glob("*/bird/bird.pid")}
    inside = topology.state_dir.resolve()
    return sorted(p for p in found if p.resolve().is_relative_to(inside))


def _namespace_pids(namespace: str) -> list[str]:
    return netns.run(["ip", "netns", "pids", namespace], check_rc=False).split()


def _stopper(record: state.ProcessRecord) -> Callable[[], object]:
    return lambda: processes.stop(record)


def _deleter(namespace: str) -> Callable[[], None]:
    return lambda: netns.delete(namespace)


def down(
    name: str,
    *,
    state_root: Path = STATE_ROOT,
    locked: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> bool:
    """Remove lab ``name``; True when there was anything to remove."""
    topology = Topology.plan(name, 1, state_root)
    had_dir = topology.state_dir.is_dir()
    guard = state.locked(topology.state_dir) if (locked and had_dir) else nullcontext()
    failures: list[str] = []

    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # keep removing; report everything at the end
            failures.append(f"{what}: {exc}")

    with guard:
        lab_state = state.load(topology.state_file)
        found_anything = had_dir
        if lab_state is not None:
            for key in sorted(lab_state.processes, key=_stop_rank):
                record = lab_state.processes[key]
                if processes.alive(record):
                    say(f"stopping {key} (pid {record.pid})")
                attempt(f"stop {key} (pid {record.pid})", _stopper(record))
        for directory in _bird_dirs(topology, lab_state):
            bird = Bird(directory)  # no namespace needed to stop it (it may be gone)
            if bird.running():
                say(f"stopped BIRD of {directory.parent.name}")
            attempt(f"stop BIRD in {directory}", bird.stop)
        recorded = set(lab_state.namespaces if lab_state else ())
        namespaces = {ns for ns in recorded | set(netns.names()) if topology.owns(ns)}
        for namespace in sorted(namespaces, key=lambda ns: ("-vm-" not in ns, ns)):
            if not netns.exists(namespace):
                continue
            found_anything = True
            strays = _namespace_pids(namespace)
            if strays:
                say(
                    f"warning: {namespace} holds processes the lab did not start: {' '.join(strays)}"
                )
            attempt(f"delete {namespace}", _deleter(namespace))
            say(f"deleted namespace {namespace}")
        if had_dir:
            attempt(f"remove {topology.state_dir}", lambda: shutil.rmtree(topology.state_dir))
        if topology.etcd_data_root.is_dir():
            found_anything = True
            data = topology.etcd_data_root
            attempt(f"remove {data}", lambda: shutil.rmtree(data))
    if failures:
        raise netns.LabError("lab down: " + "; ".join(failures))
    return found_anything


__all__ = ["down"]
