"""``routeplane demo --openstack``: the walkthrough with a real Nova booting the VMs.

The same walkthrough as ``demo_lab`` (``shared/seed/service-ips.md``), in a lab of its own
with Keystone, Placement, Nova and RabbitMQ (``routeplane lab up --openstack``; the
OpenStack venv is built once and cached under ``/var/cache/routeplane``), played with the
``openstack`` CLI where the walkthrough used ``nova`` and ``neutron``:

1. ``openstack server create --network demo-net --wait`` boots testvm1 on node1 and
   testvm2 on node2 (``--availability-zone nova:HOST``, so the move crosses hosts); each
   goes ACTIVE because routeplane sent Nova ``network-vif-plugged`` (shown from
   nova-api's log). The guest then does what a cloud image does by itself (DHCP from its
   host, its service on tcp/22 answering its name, ``routeplane guest`` following its
   port's addresses: ``lab.nova_guest``); ``openstack server list`` is the walkthrough's
   ``nova list``;
2. ``openstack port set --fixed-ip`` adds the service IP 10.28.0.23 to testvm1's port:
   the access node routes it via node1 and ``testvm1`` answers;
3. the move, both ways: (a) the walkthrough's two calls (``port unset``, then ``port
   set`` on testvm2's port: between them the address is on no port), and Nova is told
   (``server show`` lists it on testvm2); (b) the atomic move, one call that neither the
   ``openstack`` CLI nor openstacksdk can express (routeplane's
   ``PUT /v2.0/ports/{target}/move_fixed_ip``), sent with ``curl`` and a Keystone token
   from ``openstack token issue``: back to testvm1, then to testvm2, each answering;
4. ``openstack server delete --wait`` both: no route to the service IP on the access
   node, no endpoint record in the store, no compute port.

Each step checks its answer (``Walkthrough.run``). Afterwards the lab comes down — also
when a step fails or on Ctrl-C. :func:`play_in` plays steps 1 to 4 in a lab that is already
up (the lab test's), deleting what it made even when a step fails.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from routeplane.cli.demo_lab import FIXED_IP, HELD, SERVICE_IP, StepFailed, Walkthrough
from routeplane.lab import lab as lab_ops
from routeplane.lab import nova_guest, openstack_install, report, teardown
from routeplane.lab.netns import LabError
from routeplane.lab.topology import STATE_ROOT
from routeplane.model.keys import endpoints_prefix

LAB = "novademo"
PORT = 9740  # its OpenStack takes the 16 ports above
SERVERS = (("testvm1", "node1"), ("testvm2", "node2"))
ACCESS_ROUTE = {"node1": "via 192.168.8.3", "node2": "via 192.168.8.4"}
BOOT_TIMEOUT = 180.0  # seconds for `server create --wait` (the lab's vif_plugging_timeout is 60)


class NovaWalkthrough(Walkthrough):
    def __init__(self, lab: str, env: dict[str, str], state_root: Path, api_url: str) -> None:
        super().__init__(env, state_root, lab=lab)
        self.api_url = api_url
        self.servers: dict[str, str] = {}  # name -> id, while it may exist
        self.ports: dict[str, str] = {}  # name -> its port's id

    def openstack_value(self, *args: str, expect: str = "") -> str:
        return self.openstack(*args, "-f", "value", expect=expect).strip()

    def boot(self, vm: str, host: str) -> None:
        self.say(f"Nova boots {vm} on {host}; its port goes ACTIVE when {host}'s agent has"
                 " programmed the tap, and routeplane tells Nova (network-vif-plugged)")  # fmt: skip
        self.servers[vm] = ""  # from here on the cleanup looks for it
        args = ["server", "create", "--flavor", "m1.lab", "--image", "routeplane-guest",
                "--network", "demo-net", "--availability-zone", f"nova:{host}", "--wait",
                "-c", "id", "-c", "status", "-c", "OS-EXT-SRV-ATTR:host", "-f", "json", vm]  # fmt: skip
        shown = self.run("openstack " + shlex.join(args), [str(self.bin / "openstack"), *args],
                         expect='"ACTIVE"', timeout=0)  # fmt: skip
        server_id = str(json.loads(shown)["id"])
        self.servers[vm] = server_id
        self.ports[vm] = self.openstack_value("port", "list", "--server", vm, "-c", "ID")
        log = self.state_root / self.lab_name / "logs" / "os-nova-api.log"
        event = f"Creating event network-vif-plugged:{self.ports[vm]} for instance {server_id}"
        self.run(f"grep -o 'Creating event network-vif-plugged:…' {log}",
                 ["grep", "-o", event, str(log)], expect=event)  # fmt: skip
        guest = nova_guest.guest_name(server_id)
        self.say(f"{vm}'s guest ({guest}) boots as a cloud image would: a DHCP lease from"
                 f" {host}, a service on tcp/22 answering '{vm}', and `routeplane guest`")  # fmt: skip
        nova_guest.boot(self.lab_name, server_id, vm, host, self.state_root)
        self.lab("exec", guest, "--", "ip", "-4", "addr", "show", "eth0", expect="inet 10.28.")

    def held_by(self, vm: str, host: str) -> None:
        """The access node routes the service IP to ``host``, ``vm``'s guest holds it, and
        a connect from the access node is answered by ``vm``."""
        self.lab("exec", "access", "--", "ip", "route", "show", SERVICE_IP,
                 expect=ACCESS_ROUTE[host])  # fmt: skip
        guest = nova_guest.guest_name(self.servers[vm])
        self.lab("exec", guest, "--", "ip", "addr", "show", "eth0", expect=HELD)
        self.connect("access", SERVICE_IP, expect=vm)

    def move_atomically(self, source: str, target: str, token: str) -> None:
        body = {"fixed_ip": {"ip_address": SERVICE_IP, "from_port_id": self.ports[source]}}
        url = f"{self.api_url}/v2.0/ports/{self.ports[target]}/move_fixed_ip"
        curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}\\n", "-X", "PUT", url,
                "-H", "Content-Type: application/json", "-d", json.dumps(body)]  # fmt: skip
        shown = shlex.join(curl) + ' -H "X-Auth-Token: $TOKEN"'
        self.run(shown, [*curl, "-H", f"X-Auth-Token: {token}"], expect="200", timeout=0)

    def play(self) -> None:
        for vm, host in SERVERS:
            self.boot(vm, host)
        self.say("the walkthrough's `nova list`")
        self.openstack("server", "list", "-c", "Name", "-c", "Status", "-c", "Networks",
                       expect="ACTIVE")  # fmt: skip

        self.say("the walkthrough's security rule, in the group Nova gave the servers' ports"
                 " (their project's default): tcp/22 from the access node")  # fmt: skip
        group = self.openstack_value("port", "show", self.ports["testvm1"], "-c",
                                     "security_group_ids").strip("[]'\" ")  # fmt: skip
        self.openstack("security", "group", "rule", "create", "--ingress", "--protocol", "tcp",
                       "--dst-port", "22", "--remote-ip", "192.168.8.1/32", group,
                       "-c", "direction", "-c", "port_range_min", "-c", "remote_ip_prefix")  # fmt: skip

        self.say(f"add the service IP {SERVICE_IP} to testvm1's port ({self.ports['testvm1']})")
        self.openstack("port", "set", "--fixed-ip", FIXED_IP, self.ports["testvm1"])
        self.held_by("testvm1", "node1")

        self.say("(a) move it to testvm2 with the walkthrough's two calls: off testvm1's port,"
                 " then onto testvm2's (between them it is on no port)")  # fmt: skip
        self.openstack("port", "unset", "--fixed-ip", FIXED_IP, self.ports["testvm1"])
        self.openstack("port", "set", "--fixed-ip", FIXED_IP, self.ports["testvm2"])
        self.held_by("testvm2", "node2")
        self.say("Nova was told (network-changed): its view of testvm2 has the address")
        self.run("openstack server show testvm2 -c addresses",
                 [str(self.bin / "openstack"), "server", "show", "testvm2", "-c", "addresses"],
                 expect=SERVICE_IP, timeout=30)  # fmt: skip

        self.say("(b) the atomic move: one call, one transaction, never on no port nor on two."
                 " The openstack CLI has no command for routeplane's move_fixed_ip extension,"
                 " so curl sends it with a Keystone token")  # fmt: skip
        print("$ TOKEN=$(openstack token issue -f value -c id)", flush=True)
        token = self.openstack_token()
        self.say("back to testvm1, atomically")
        self.move_atomically("testvm2", "testvm1", token)
        self.held_by("testvm1", "node1")
        self.say("and to testvm2, atomically")
        self.move_atomically("testvm1", "testvm2", token)
        self.held_by("testvm2", "node2")

        self.say("delete both servers: nothing of them is left in the network")
        self.shutdown_guests()
        self.openstack("server", "delete", "--wait", *self.servers)
        self.servers.clear()
        self.lab("exec", "access", "--", "ip", "route", "show", SERVICE_IP, absent=SERVICE_IP)
        for host in ("node1", "node2"):
            self.lab("exec", host, "--", "ip", "route", "show", "proto", "77", absent="tap")
        self.say("no endpoint record of either port in the store, no port of either server")
        store = f"sqlite://{self.state_root / self.lab_name / 'store.db'}"
        ports = tuple(self.ports.values())
        self.run(f"routeplane store ls {endpoints_prefix()} --store {store}",
                 [str(self.bin / "routeplane"), "store", "ls", endpoints_prefix(), "--store",
                  store], absent=ports)  # fmt: skip
        self.run("openstack port list --device-owner compute:nova -c ID",
                 [str(self.bin / "openstack"), "port", "list", "--device-owner", "compute:nova",
                  "-c", "ID"], absent=ports)  # fmt: skip

    def openstack_token(self) -> str:
        done = subprocess.run(
            [str(self.bin / "openstack"), "token", "issue", "-f", "value", "-c", "id"],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode or not done.stdout.strip():
            raise StepFailed(f"openstack token issue: {done.stderr.strip()[-500:]}")
        return done.stdout.strip()

    def shutdown_guests(self) -> None:
        for server_id in self.servers.values():
            if server_id:
                nova_guest.shutdown(self.lab_name, server_id, self.state_root)

    def clean(self) -> None:
        """What a failed or interrupted play left: the guests' processes, the servers."""
        self.shutdown_guests()
        if self.servers:
            names = list(self.servers)
            print(f"$ openstack server delete --wait {' '.join(names)}", flush=True)
            subprocess.run(
                [str(self.bin / "openstack"), "server", "delete", "--wait", *names],
                env=self.env, capture_output=True, timeout=300, check=False,
            )  # fmt: skip
            self.servers.clear()


def play_in(lab: str, env: dict[str, str], state_root: Path = STATE_ROOT) -> int:
    """Steps 1 to 4 in lab ``lab`` (up, with ``--openstack``); ``env`` points the
    ``openstack`` CLI at it. 0 when every step gave its answer."""
    _, lab_state = lab_ops.open_lab(lab, state_root)
    demo = NovaWalkthrough(lab, env, state_root, lab_state.api_url)
    try:
        demo.play()
        return 0
    except (StepFailed, LabError) as exc:
        print(f"\n!! demo failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        demo.clean()


def openstack_walkthrough(state_root: Path = STATE_ROOT) -> int:
    """``routeplane demo --openstack``: its own lab, up, played, down."""
    teardown.down(LAB, state_root=state_root)  # a demo left over by a crash
    try:
        openstack_install.install(say=print)  # cached: only a fresh machine builds it
        print(f"== routeplane lab up --name {LAB} --hosts 2 --openstack --port {PORT}", flush=True)
        lab_state = lab_ops.up(LAB, 2, PORT, openstack=True, state_root=state_root, say=print)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(report.env(lab_state))
        print(f'(the openstack CLI talks to Keystone and Nova as `eval "$(routeplane lab env'
              f' --name {LAB})"` would)', flush=True)  # fmt: skip
        code = play_in(LAB, env, state_root)
        if code == 0:
            print("\n== the walkthrough worked with Nova; bringing the lab down", flush=True)
        return code
    finally:
        teardown.down(LAB, state_root=state_root, say=print)


__all__ = ["LAB", "NovaWalkthrough", "openstack_walkthrough", "play_in"]
