"""A keepalived (VRRP) pair in network namespaces of its own: bench/failover.py's baseline.

What the benchmark compares routeplane with is the classic way to keep a service address
alive: two VMs on one layer-2 segment, keepalived in each, the address on whichever is
VRRP master. Built here from namespaces the bench makes and deletes itself
(``netns.Cleanup``, names ``rp-vrrp…``)::

    rp-vrrpsw-…  bridge br0: the segment, one veth per member below
    rp-vrrpa-…   VM testvm1: eth0 10.28.0.11/16, its service on :22, keepalived
    rp-vrrpb-…   VM testvm2: eth0 10.28.0.12/16, its service on :22, keepalived
    rp-vrrpc-…   the client: eth0 10.28.0.100/16 (the prober runs here)

The keepalived configuration is chosen to give it its best failover within the same
detection budget as routeplane's health check (interval 0.1 s, threshold 3):

- VRRPv3 with ``advert_int 0.1``: a backup that hears nothing declares the master dead
  after 3 x 0.1 s plus its skew time;
- the service check: keepalived's own ``vrrp_script`` takes whole seconds only
  (``interval 0.1`` is refused and becomes 1 s), so the VM runs the same check as
  routeplane's hosts (a TCP connect to its service every 0.1 s, timeout 90 ms, failed
  after 3 misses in a row) and writes its verdict to a file keepalived follows with
  ``track_file`` (inotify: read at once, no polling). With weight 0 a failed verdict puts
  the instance in FAULT; a master entering FAULT drops the address and sends an advert
  with priority 0, on which the backup takes over after its skew time alone, not after
  the master-down interval;
- priorities 250 and 249, so that skew time ((256 - priority) / 256 x advert_int) is 2-3 ms;
- both start as BACKUP with ``nopreempt``: a recovered VM stays backup (failback off,
  as in the routeplane run), so successive failures alternate between the VMs;
- keepalived's default gratuitous ARPs from the new master move the client's ARP entry.

Safety: keepalived runs only under ``ip netns exec`` in its VM's namespace, VRRP
subsystem only (``-P``: no IPVS checkers), with its configuration, pid files, scripts and
logs in the bench's temporary directory. Processes are never looked up by name: the
keepalived parents, the checkers and the services are this process's children; the VRRP
process (the one that sends adverts, frozen by :meth:`VrrpPair.freeze`) is the PID its
pid file names, and only while ``/proc`` shows it is that parent's child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routeplane.lab import netns
from routeplane.lab.waiting import wait_until

SERVICE_IP = "10.28.0.23"
PREFIX_LENGTH = 16
CLIENT_ADDRESS = "10.28.0.100"
START_TIMEOUT = 15.0

CONFIG = """\
global_defs {{
    router_id {name}
    vrrp_version 3
}}

track_file service_down {{
    file "{health}"
    weight 0
    init_file 0 overwrite
}}

vrrp_instance service {{
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int}
    virtual_ipaddress {{
        {vip}/{prefix} dev eth0
    }}
    track_file {{
        service_down
    }}
    notify "{notify}"
}}
"""

# The VM's health checker: routeplane's check (a TCP connect to the VM's service every
# interval, with a timeout of 0.9 x interval; unhealthy after ``fall`` failures in a row)
# writing its verdict where keepalived's track_file reads it (0: healthy, 1: failed).
CHECKER = """
import os, socket, sys, time
address, interval, fall, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
failures, written, due = 0, None, time.monotonic()
while True:
    try:
        socket.create_connection((address, 22), timeout=interval * 0.9).close()
        failures = 0
    except OSError:
        failures += 1
    verdict = "1" if failures >= fall else "0"
    if verdict != written:
        with open(path + ".tmp", "w") as out:
            out.write(verdict + "\\n")
        os.replace(path + ".tmp", path)
        written = verdict
    due = max(due + interval, time.monotonic())
    time.sleep(max(0.0, due - time.monotonic()))
"""

NOTIFY = """\
#!/bin/sh
# keepalived calls: notify INSTANCE <name> <state> <priority>
echo "$3" > {path}.tmp && mv {path}.tmp {path}
"""


@dataclass(frozen=True)
class VrrpSettings:
    """The detection budget, in keepalived's terms (defaults: routeplane's 0.1 s x 3)."""

    advert_int: float = 0.1
    check_interval: float = 0.1
    fall: int = 3


@dataclass
class Member:
    """One VM of the pair: its namespace, address, and the processes the bench runs in it."""

    name: str
    namespace: str
    address: str
    priority: int
    directory: Path
    service: subprocess.Popen[bytes] | None = None
    keepalived: subprocess.Popen[bytes] | None = None
    stop_registered: bool = False

    @property
    def state_file(self) -> Path:
        return self.directory / "state"

    @property
    def vrrp_pid_file(self) -> Path:
        return self.directory / "vrrp.pid"


def stop_child(process: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """End a child of ours: SIGTERM, then SIGKILL; reaped either way."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


class VrrpPair:
    """Two keepalived VMs and a client on one bridge; everything undone by ``cleanup``."""

    def __init__(
        self, cleanup: netns.Cleanup, directory: Path, settings: VrrpSettings = VrrpSettings()
    ) -> None:
        self.cleanup = cleanup
        self.directory = directory
        self.settings = settings
        self.members: dict[str, Member] = {}
        self.client = ""

    # building ----------------------------------------------------------------------
    def build(self) -> None:
        """The segment, the VMs with their services, the client; then keepalived."""
        switch = self.cleanup.namespace("vrrpsw")
        netns.ip(switch, "link", "add", "br0", "type", "bridge")
        netns.ip(switch, "link", "set", "br0", "up")
        plan = [("testvm1", "vrrpa", "10.28.0.11", 250), ("testvm2", "vrrpb", "10.28.0.12", 249)]
        for index, (name, kind, address, priority) in enumerate(plan):
            namespace = self.cleanup.namespace(kind)
            self._attach(switch, f"m{index}", namespace, address)
            directory = self.directory / name
            directory.mkdir(parents=True)
            self.members[name] = Member(name, namespace, address, priority, directory)
        self.client = self.cleanup.namespace("vrrpc")
        self._attach(switch, "client", self.client, CLIENT_ADDRESS)
        for member in self.members.values():
            self.start_service(member.name)
        for member in self.members.values():
            self._start_keepalived(member)
        if not wait_until(lambda: len(self.holders()) == 1, START_TIMEOUT, 0.02):
            raise netns.LabError(f"no VRRP master after {START_TIMEOUT}s: {self.logs()}")

    def _attach(self, switch: str, port: str, namespace: str, address: str) -> None:
        netns.add_veth(switch, port, namespace, "eth0", up=True)
        netns.ip(switch, "link", "set", port, "master", "br0")
        netns.ip(namespace, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", "eth0")

    def _start_keepalived(self, member: Member) -> None:
        """keepalived for the member, then the health checker whose verdict it follows."""
        notify, health = member.directory / "notify.sh", member.directory / "health"
        notify.write_text(NOTIFY.format(path=member.state_file))
        notify.chmod(0o700)
        config = member.directory / "keepalived.conf"
        config.write_text(
            CONFIG.format(
                name=member.name, health=health, notify=notify, priority=member.priority,
                advert_int=self.settings.advert_int, vip=SERVICE_IP, prefix=PREFIX_LENGTH,
            )
        )  # fmt: skip
        member.keepalived = self._spawn(
            member,
            "keepalived",
            [
                "keepalived", "--dont-fork", "--vrrp", "--log-console", "--log-detail",
                "--no-syslog", "--use-file", str(config),
                "--pid", str(member.directory / "keepalived.pid"),
                "--vrrp_pid", str(member.vrrp_pid_file),
            ],
        )  # fmt: skip
        self.cleanup.add(f"stop keepalived of {member.name}", lambda: self._stop_keepalived(member))
        settings = self.settings
        checker = self._spawn(
            member,
            "checker",
            [
                sys.executable, "-c", CHECKER, member.address, str(settings.check_interval),
                str(settings.fall), str(health),
            ],
        )  # fmt: skip
        self.cleanup.add(f"stop the checker of {member.name}", lambda: stop_child(checker))

    def _spawn(self, member: Member, what: str, command: list[str]) -> subprocess.Popen[bytes]:
        """``command`` inside the member's namespace, its output in ``<what>.log``."""
        with (member.directory / f"{what}.log").open("ab") as log:
            return subprocess.Popen(
                ["ip", "netns", "exec", netns.check(member.namespace), *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _stop_keepalived(self, member: Member) -> None:
        with contextlib.suppress(netns.LabError):
            self.thaw(member.name)  # a frozen VRRP process would hold its parent's exit up
        stop_child(member.keepalived)

    # the service -------------------------------------------------------------------
    def start_service(self, name: str) -> None:
        """(Re)start the VM's service (routeplane.lab.vm_service) and wait until it listens."""
        member = self.members[name]
        stop_child(member.service)
        member.service = self._spawn(
            member, "service", [sys.executable, "-m", "routeplane.lab.vm_service", "serve", name]
        )
        if not member.stop_registered:  # one undo stops whichever service it holds then
            self.cleanup.add(f"stop the service of {name}", lambda: stop_child(member.service))
            member.stop_registered = True
        if not wait_until(lambda: self._listening(member), START_TIMEOUT, 0.02):
            raise netns.LabError(f"the service of {name} does not listen on port 22")

    def _listening(self, member: Member) -> bool:
        shown = netns.exec_in(member.namespace, "ss", "-Hltn", "sport = :22", check_rc=False)
        return bool(shown.strip())

    def kill_service(self, name: str) -> None:
        """SIGKILL the VM's service: the failure the benchmark injects."""
        service = self.members[name].service
        assert service is not None, f"{name} has no service"
        assert service.poll() is None, f"{name}'s service is not running"
        service.kill()
        service.wait(5)

    # VRRP --------------------------------------------------------------------------
    def holders(self) -> list[str]:
        """The VMs whose eth0 has the service IP now (``ip addr`` in each namespace)."""
        return [
            m.name
            for m in self.members.values()
            if f" {SERVICE_IP}/" in netns.ip(m.namespace, "-o", "-4", "addr", "show", "dev", "eth0")
        ]

    def state(self, name: str) -> str:
        """The VRRP state keepalived last reported through its notify script."""
        try:
            return self.members[name].state_file.read_text().strip()
        except OSError:
            return ""

    def vrrp_pid(self, name: str) -> int:
        """The PID of the member's VRRP process, checked to be its keepalived's child."""
        member = self.members[name]
        assert member.keepalived is not None
        try:
            pid = int(member.vrrp_pid_file.read_text().strip())
        except (OSError, ValueError) as exc:
            raise netns.LabError(f"no VRRP pid file for {name}: {exc}") from exc
        if _parent_of(pid) != member.keepalived.pid:
            raise netns.LabError(f"pid {pid} is not {name}'s keepalived VRRP process")
        return pid

    def freeze(self, name: str) -> None:
        """SIGSTOP the member's VRRP process: a master that is alive but silent."""
        os.kill(self.vrrp_pid(name), signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        os.kill(self.vrrp_pid(name), signal.SIGCONT)

    def logs(self, lines: int = 8) -> str:
        found = []
        for member in self.members.values():
            log = member.directory / "keepalived.log"
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                found.append(f"{log}:\n" + "\n".join(tail))
        return "\n".join(found)


__all__ = ["SERVICE_IP", "Member", "VrrpPair", "VrrpSettings", "stop_child"]
