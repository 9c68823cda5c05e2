"""The ``walkthrough`` scenario of ``routeplane demo`` (what ``make demo`` plays).

It brings up a lab of its own (``routeplane lab up --name demo``: two compute hosts, the
access node, BGP, the api) and plays ``shared/seed/service-ips.md`` in it with the
commands a person would type — ``routeplane lab …`` for Nova's and the operator's part,
the real ``openstack`` CLI for Neutron's — printing each command and what it answered:

1. boot testvm1 on node1; it configures itself: ``ip addr`` inside it shows the lease its
   DHCP client got from node1, and ``curl`` reads its ``meta_data.json`` from the
   metadata service at 169.254.169.254, as cloud-init would;
2. add the service IP 10.28.0.23 to its port (``openstack port set --fixed-ip``);
3. the route on the compute host (``dev tap… scope link``) and on the access node
   (``via 192.168.8.3 … proto bird``);
4. no one logs into the VM: its ``routeplane guest`` (started by ``lab boot``) learns the
   new address from the host's metadata service and adds it to ``eth0`` (shown with
   ``ip addr show eth0`` inside the VM); connect from the access node: ``testvm1`` answers;
5. boot testvm2 on node2, move the address (``port unset`` / ``port set``): testvm2's
   guest adds it, testvm1's drops it (both shown), and ``testvm2`` answers;
6. a floating IP on testvm1: it answers on the floating address, which it never sees.

``--qemu``: testvm1 and testvm2 are real machines (``lab boot --kind qemu``): each shows
the DHCP lease its host's agent gave it, the follower in each guest adds and drops the
service IP, and the check from the access node is the walkthrough's own ``ssh …
10.28.0.23 hostname`` (the lab's key; a known_hosts file of the demo's own). After the
move SSH refuses testvm2's host key with the walkthrough's "REMOTE HOST IDENTIFICATION
HAS CHANGED" warning; the demo removes the known_hosts file, as the walkthrough does, and
``testvm2`` answers.

``--store etcd``: the lab's api, controller and agents run on a 3-member etcd cluster
(``lab up --store etcd``) instead of the embedded store.

Then the lab comes down, also when a step fails. A step whose expected answer does not
come within its time makes the demo fail (exit 1), so the demo is also a check.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from routeplane.lab import lab as lab_ops
from routeplane.lab import report, teardown
from routeplane.lab.topology import STATE_ROOT

LAB = "demo"
PORT = 9697
SERVICE_IP = "10.28.0.23"
FIXED_IP = "subnet=demo-v4,ip-address=10.28.0.23"
METADATA_HOST = "169.254.169.254"
METADATA_PATH = "/openstack/latest/meta_data.json"
METADATA = f"http://{METADATA_HOST}{METADATA_PATH}"
HELD = f"inet {SERVICE_IP}/32"  # how `ip addr show` lists it once the VM's guest added it


class StepFailed(RuntimeError):
    """An expected answer did not come."""


class Walkthrough:
    def __init__(
        self, env: dict[str, str], state_root: Path, qemu: bool = False, lab: str = LAB
    ) -> None:
        self.env = env
        self.bin = Path(sys.executable).parent
        self.state_root = state_root
        self.qemu = qemu
        self.lab_name = lab
        self.client = [sys.executable, "-m", "routeplane.lab.vm_service", "connect"]
        self.ssh_key = state_root / lab / "ssh" / "id_ed25519"  # qemu_vm.ssh_key's
        self.known_hosts = state_root / lab / "ssh" / "known_hosts"

    def say(self, text: str) -> None:
        print(f"\n== {text}", flush=True)

    def run(
        self, shown: str, argv: list[str], *, expect: str = "",
        absent: str | tuple[str, ...] = "", timeout: float = 15.0,
    ) -> str:  # fmt: skip
        """Print ``$ shown``, run ``argv`` (again, until its output contains ``expect`` and
        not ``absent`` — none of them, when several — or ``timeout`` passes), print the
        last output; ``StepFailed`` if that never came."""
        print(f"$ {shown}", flush=True)
        deadline = time.monotonic() + timeout
        unwanted = (absent,) if isinstance(absent, str) else absent

        def good(out: str) -> bool:
            return (not expect or expect in out) and not any(a and a in out for a in unwanted)

        while True:
            done = subprocess.run(
                argv, env=self.env, capture_output=True, text=True, check=False, timeout=180
            )
            out = (done.stdout + done.stderr).rstrip()
            if good(out) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if out:
            print(out, flush=True)
        if not good(out):
            wanted = [repr(expect)] if expect else []
            if absent:
                wanted.append(f"no {absent!r}")
            raise StepFailed(f"expected {' and '.join(wanted)} from: {shown}")
        return out

    def openstack(self, *args: str, expect: str = "") -> str:
        return self.run(
            "openstack " + shlex.join(args), [str(self.bin / "openstack"), *args], expect=expect
        )

    def lab(
        self, *args: str, expect: str = "", absent: str | tuple[str, ...] = "",
        timeout: float = 15.0,
    ) -> str:  # fmt: skip
        argv = [str(self.bin / "routeplane"), "lab", *args[:1], "--name", self.lab_name, *args[1:]]
        return self.run(
            "routeplane lab " + shlex.join(args), argv, expect=expect, absent=absent,
            timeout=timeout,
        )  # fmt: skip

    def connect(self, node: str, address: str, expect: str) -> str:
        if self.qemu:
            return self.ssh(node, address, expect)
        print(f"# from {node}, connect to {address} port 22 (the walkthrough's `ssh … hostname`)")
        return self.lab("exec", node, "--", *self.client, address, expect=expect)

    def ssh(self, node: str, address: str, expect: str) -> str:
        """The walkthrough's ``ssh … hostname``, for real, from ``node``."""
        options = ["-i", str(self.ssh_key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
        options += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        options += ["-o", "StrictHostKeyChecking=accept-new"]
        argv = ["ssh", *options, f"root@{address}", "hostname"]
        return self.lab("exec", node, "--", *argv, expect=expect, timeout=30)

    def boot(self, vm: str, host: str) -> None:
        kind = ["--kind", "qemu"] if self.qemu else []
        self.lab("boot", vm, "--network", "demo-net", "--host", host, *kind)
        if self.qemu:
            self.say(f"{vm} is a QEMU guest: its address came by DHCP from {host}'s agent")
            self.lab("exec", vm, "--", "cat", "/run/rp-lease", expect="bound", timeout=30)

    def play(self) -> None:
        self.say("boot testvm1 on node1 (Nova's part: a port bound to node1, a tap, a VM)")
        self.boot("testvm1", "node1")
        self.openstack("port", "show", "testvm1", "-c", "fixed_ips", "-c", "status",
                       "-c", "binding_host_id", expect="ACTIVE")  # fmt: skip
        self.say("testvm1 configured itself: nothing set its address by hand, its DHCP client"
                 " (busybox udhcpc) leased it from node1 with the subnet's mask and router")  # fmt: skip
        self.lab("exec", "testvm1", "--", "ip", "addr", "show", "eth0", expect="inet 10.28.")
        self.lab("exec", "testvm1", "--", "ip", "route", expect="default via 10.28.0.1")
        self.say("and what cloud-init reads first, from node1's metadata service")
        if self.qemu:  # the busybox guest has no curl (and its static wget crashes): nc
            request = f"GET {METADATA_PATH} HTTP/1.0\\r\\nHost: {METADATA_HOST}\\r\\n\\r\\n"
            fetch = f"printf '{request}' | nc {METADATA_HOST} 80"
            self.lab("exec", "testvm1", "--", "sh", "-c", fetch, expect='"uuid"')
        else:
            self.lab("exec", "testvm1", "--", "curl", "-sS", METADATA, expect='"uuid"')

        self.say(f"add the service IP {SERVICE_IP} to testvm1's port")
        self.openstack("port", "set", "--fixed-ip", FIXED_IP, "testvm1")
        self.openstack("port", "show", "testvm1", "-c", "fixed_ips", expect=SERVICE_IP)
        self.say("node1 routes it to testvm1's tap; BGP tells the access node")
        self.lab("exec", "node1", "--", "ip", "route", "show", SERVICE_IP, expect="scope link")
        self.lab("exec", "access", "--", "ip", "route", "show", SERVICE_IP,
                 expect="via 192.168.8.3")  # fmt: skip
        self.say("the VM must hold a fixed service IP: no one logs in, its `routeplane guest`"
                 " learns it from the metadata service (169.254.169.254) and adds it")  # fmt: skip
        self.lab("exec", "testvm1", "--", "ip", "addr", "show", "eth0", expect=HELD)
        self.connect("access", SERVICE_IP, expect="testvm1")

        self.say("boot testvm2 on node2, and move the service IP to it")
        self.boot("testvm2", "node2")
        self.openstack("port", "unset", "--fixed-ip", FIXED_IP, "testvm1")
        self.openstack("port", "set", "--fixed-ip", FIXED_IP, "testvm2")
        self.say("the guests follow: testvm2's adds the address, testvm1's drops it")
        self.lab("exec", "testvm2", "--", "ip", "addr", "show", "eth0", expect=HELD)
        self.lab("exec", "testvm1", "--", "ip", "addr", "show", "eth0", absent=HELD)
        self.lab("exec", "access", "--", "ip", "route", "show", SERVICE_IP,
                 expect="via 192.168.8.4")  # fmt: skip
        if self.qemu:
            self.say("testvm2 is another machine, with its own host key: SSH refuses it")
            self.ssh("access", SERVICE_IP, expect="REMOTE HOST IDENTIFICATION HAS CHANGED")
            self.say("as the walkthrough does: remove the known_hosts file, and try again")
            self.run(f"rm {self.known_hosts}", ["rm", "-f", str(self.known_hosts)])
        self.connect("access", SERVICE_IP, expect="testvm2")

        self.say("a floating IP on testvm1: DNAT'd on node1 to 10.28.0.x; the VM never sees it")
        self.openstack("floating", "ip", "create", "public", "--port", "testvm1",
                       "-c", "floating_ip_address", "-c", "fixed_ip_address")  # fmt: skip
        floating = self.openstack("floating", "ip", "list", "--port", "testvm1", "-f", "value",
                                  "-c", "Floating IP Address").split()[0]  # fmt: skip
        self.lab("exec", "access", "--", "ip", "route", "show", floating, expect="proto bird")
        self.connect("access", floating, expect="testvm1")
        self.lab("exec", "testvm1", "--", "ip", "-4", "addr", "show", "eth0")
        print(f"(testvm1 holds its fixed address only: {floating} is not on it)", flush=True)


def walkthrough(state_root: Path = STATE_ROOT, *, qemu: bool = False, store: str = "sqlite") -> int:
    """The walkthrough in a lab of its own, on ``store`` (``sqlite`` or ``etcd``)."""
    on = " --store etcd" if store == "etcd" else ""
    print(f"== routeplane lab up --name {LAB} --hosts 2{on}", flush=True)
    teardown.down(LAB, state_root=state_root)  # a demo left over by a crash
    try:
        lab_state = lab_ops.up(LAB, 2, PORT, store=store, state_root=state_root, say=print)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(report.env(lab_state))
        print(f'(the openstack CLI is pointed at it as `eval "$(routeplane lab env --name {LAB})"`'
              " would)", flush=True)  # fmt: skip
        Walkthrough(env, state_root, qemu).play()
        print("\n== the walkthrough worked; bringing the lab down", flush=True)
        return 0
    except StepFailed as exc:
        print(f"\n!! demo failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        teardown.down(LAB, state_root=state_root, say=print)


__all__ = ["walkthrough"]
