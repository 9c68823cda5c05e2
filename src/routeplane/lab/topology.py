"""The lab's plan: every name, address and command line, decided before anything is made.

A pure function of (lab name, number of hosts, state directory). The builders
(``fabric``, ``vm``, ``lab``) only execute this plan; ``down`` uses the same plan to
recognise what is the lab's own after a crash, when the state file may be missing or
partial. That is why names are strict here:

- a lab name is letters and digits only (no ``-``), so the prefix ``rp-<lab>-`` can never
  also be the start of another lab's namespaces (``rp-lab-…`` vs ``rp-lab2-…``);
- a namespace belongs to the lab only if it matches one of the shapes the lab makes
  (``fabric``, ``access``, ``node<N>``, ``vm-<name>``), so namespaces that others named
  ``rp-<lab>-<hex>`` (the kernel tests' ``unique_name``) are never mistaken for ours.

With ``store="etcd"`` the lab also has a 3-member etcd cluster (``etcd_cluster`` says
why it is laid out so): members ``rp-<lab>-etcd<K>`` on a segment of their own, the
switch ``rp-<lab>-etcd``, each member's client socket under ``STATE/etcd/etcd<K>/``.

Addresses follow the walkthrough: the fabric is 192.168.8.0/24 (and fd00:192:168:8::/64),
the access node is ``.1``, compute host ``nodeK`` is ``.K+2`` (node1 = 192.168.8.3).

What this module must not do: any I/O.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from routeplane.lab.netns import PREFIX

FABRIC_V4 = ipaddress.IPv4Network("192.168.8.0/24")
FABRIC_V6 = ipaddress.IPv6Network("fd00:192:168:8::/64")
ACCESS_INDEX = 1  # the access node is 192.168.8.1, as in the walkthrough
FIRST_HOST_INDEX = 3  # node1 is 192.168.8.3, as in the walkthrough
MAX_HOSTS = 64
AS_NUMBER = 64512
BRIDGE = "br0"  # the fabric's switch, inside the fabric namespace
UPLINK = "fabric0"  # each node's interface on the fabric
STATE_ROOT = Path("/run/routeplane")
DEFAULT_LAB = "lab"
DEFAULT_API_PORT = 9696
STORES = ("sqlite", "etcd")
ETCD_MEMBERS = 3
ETCD_SEGMENT = ipaddress.IPv4Network("192.168.9.0/24")  # the members' peer segment
ETCD_PEER_PORT = 2380
ETCD_CLIENT_SOCKET = "client.sock:2379"  # etcd names a unix listener host:port, in its cwd
ETCD_DATA_ROOT = Path("/dev/shm/routeplane")  # noqa: S108 (root-only tmpfs; etcd_cluster)

_LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_VM_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_HOST_NAME = re.compile(r"^node([1-9][0-9]*)$")
_ETCD_NAME = re.compile(r"^etcd[0-9]*$")
RESERVED_VM_NAMES = frozenset({"access", "fabric"})


def check_lab_name(name: str) -> str:
    if not _LAB_NAME.match(name):
        raise ValueError(
            f"lab names are 1-12 lower-case letters and digits, starting with a letter: {name!r}"
        )
    return name


def lab_store(option: str) -> str:
    """A lab's store from ``--store``: ``etcd`` asks for a cluster of the lab's own;
    anything else (a URL, the default) is the embedded one in its state directory."""
    return "etcd" if option == "etcd" else "sqlite"


def check_vm_name(name: str) -> str:
    """A VM name the lab can use as a namespace suffix and tell apart from the nodes."""
    if not _VM_NAME.match(name) or name in RESERVED_VM_NAMES or _HOST_NAME.match(name):
        raise ValueError(
            f"VM names are 1-32 lower-case letters, digits and '-', and not 'access', "
            f"'fabric' or 'node<N>': {name!r}"
        )
    return name


@dataclass(frozen=True)
class Node:
    """A machine on the fabric: the access node or a compute host."""

    name: str  # "access", "node1", …
    namespace: str
    index: int  # the last part of its fabric addresses

    @property
    def ipv4(self) -> str:
        return str(FABRIC_V4.network_address + self.index)

    @property
    def ipv6(self) -> str:
        # "host N at ::N": the decimal digits read as the last group (node1 is ::3)
        return str(ipaddress.IPv6Address(f"{FABRIC_V6.network_address}{self.index}"))

    @property
    def ipv4_interface(self) -> str:
        return f"{self.ipv4}/{FABRIC_V4.prefixlen}"

    @property
    def ipv6_interface(self) -> str:
        return f"{self.ipv6}/{FABRIC_V6.prefixlen}"


@dataclass(frozen=True)
class Topology:
    """One lab's names, addresses and command lines."""

    lab: str
    host_count: int
    state_dir: Path
    store: str = "sqlite"

    @staticmethod
    def plan(
        lab: str, host_count: int, state_root: Path = STATE_ROOT, store: str = "sqlite"
    ) -> Topology:
        check_lab_name(lab)
        if not 1 <= host_count <= MAX_HOSTS:
            raise ValueError(f"a lab has 1 to {MAX_HOSTS} hosts, not {host_count}")
        if store not in STORES:
            raise ValueError(f"a lab's store is {' or '.join(STORES)}, not {store!r}")
        return Topology(lab, host_count, state_root / lab, store)

    # --- names ----------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.lab}-"

    @property
    def fabric(self) -> str:
        return f"{self.prefix}fabric"

    @property
    def access(self) -> Node:
        return Node("access", f"{self.prefix}access", ACCESS_INDEX)

    @property
    def hosts(self) -> tuple[Node, ...]:
        return tuple(
            Node(f"node{k}", f"{self.prefix}node{k}", FIRST_HOST_INDEX + k - 1)
            for k in range(1, self.host_count + 1)
        )

    def host(self, name: str) -> Node:
        for node in self.hosts:
            if node.name == name:
                return node
        raise ValueError(
            f"lab {self.lab} has no host {name!r} (it has node1…node{self.host_count})"
        )

    @property
    def etcd_switch(self) -> str:
        return f"{self.prefix}etcd"

    @property
    def etcd_members(self) -> tuple[Node, ...]:
        """The etcd members (``store="etcd"``): member K at ``ETCD_SEGMENT`` ``.K``."""
        if self.store != "etcd":
            return ()
        return tuple(
            Node(f"etcd{k}", f"{self.prefix}etcd{k}", k) for k in range(1, ETCD_MEMBERS + 1)
        )

    def etcd_dir(self, member: Node) -> Path:
        return self.state_dir / "etcd" / member.name

    @property
    def etcd_data_root(self) -> Path:
        """Where the members keep their data: on tmpfs, named after the whole state
        directory (two state roots may hold labs of one name)."""
        return ETCD_DATA_ROOT / "-".join(self.state_dir.parts[1:])

    def vm_namespace(self, vm: str) -> str:
        return f"{self.prefix}vm-{check_vm_name(vm)}"

    def owns(self, namespace: str) -> bool:
        """Whether ``namespace`` has a shape this lab makes (see the module docstring)."""
        if not namespace.startswith(self.prefix):
            return False
        rest = namespace[len(self.prefix) :]
        if rest in ("fabric", "access") or _HOST_NAME.match(rest) or _ETCD_NAME.match(rest):
            return True
        return rest.startswith("vm-") and bool(_VM_NAME.match(rest[3:]))

    # --- files ----------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def store_url(self) -> str:
        if self.store == "etcd":
            sockets = (self.etcd_dir(m) / ETCD_CLIENT_SOCKET for m in self.etcd_members)
            return "etcd://" + ",".join(f"unix:{path}" for path in sockets)
        return f"sqlite://{self.state_dir / 'store.db'}"

    @property
    def api_config(self) -> Path:
        return self.state_dir / "api.toml"

    def log(self, process: str) -> Path:
        return self.state_dir / "logs" / f"{process}.log"

    def bird_dir(self, node: str) -> Path:
        return self.state_dir / node / "bird"

    # --- command lines --------------------------------------------------------------
    def routeplane(self, *args: str) -> list[str]:
        """``routeplane …`` as this interpreter runs it (a venv's script need not be on
        root's PATH, and ``python -m`` keeps /proc/PID/cmdline predictable)."""
        return [sys.executable, "-m", "routeplane.cli.main", "--store", self.store_url, *args]

    def api_command(self, port: int, metrics_port: int) -> list[str]:
        return self.routeplane(
            "api",
            "--listen",
            f"127.0.0.1:{port}",
            "--config",
            str(self.api_config),
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        )

    def controller_command(self, metrics_port: int, key: str = "controller") -> list[str]:
        """The service-IP failover controller, named after its process ``key`` (one is
        enough in a lab; a short lease so a killed one is replaced quickly when a test
        starts another)."""
        return self.routeplane(
            "controller",
            "--name",
            f"{self.lab}-{key}",
            "--lease-ttl",
            "2",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        )

    def agent_command(self, node: Node, metrics_port: int) -> list[str]:
        """A host's agent. It runs in the root namespace (acting on its host's), so its
        metrics listener is a loopback port of its own: ``routeplane status --agent``."""
        return self.routeplane(
            "agent",
            "--host", node.name,
            "--netns", node.namespace,
            "--bgp-address", node.ipv4,
            "--bgp-address6", node.ipv6,
            "--bgp-peer", self.access.ipv4,
            "--bird-dir", str(self.bird_dir(node.name)),
            "--as-number", str(AS_NUMBER),
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
        )  # fmt: skip

    def vm_service_command(self, vm: str, answer: str | None = None) -> list[str]:
        """The VM's service, run inside its namespace, answering ``answer`` (its name)."""
        return [
            "ip", "netns", "exec", self.vm_namespace(vm),
            sys.executable, "-m", "routeplane.lab.vm_service", "serve", answer or vm,
        ]  # fmt: skip


def resolve(topology: Topology, node: str, vms: set[str] | frozenset[str]) -> str:
    """The namespace of ``node``: ``access``, ``fabric``, a host name or a VM name."""
    if node == "access":
        return topology.access.namespace
    if node == "fabric":
        return topology.fabric
    if _HOST_NAME.match(node):
        return topology.host(node).namespace
    if node in vms:
        return topology.vm_namespace(node)
    raise ValueError(
        f"lab {topology.lab} has no node {node!r}: use access, node1…node{topology.host_count}"
        f" or a VM ({', '.join(sorted(vms)) or 'none booted'})"
    )


__all__ = [
    "ACCESS_INDEX",
    "AS_NUMBER",
    "BRIDGE",
    "DEFAULT_API_PORT",
    "DEFAULT_LAB",
    "ETCD_CLIENT_SOCKET",
    "ETCD_DATA_ROOT",
    "ETCD_MEMBERS",
    "ETCD_PEER_PORT",
    "ETCD_SEGMENT",
    "FABRIC_V4",
    "FABRIC_V6",
    "STATE_ROOT",
    "STORES",
    "UPLINK",
    "Node",
    "Topology",
    "check_lab_name",
    "check_vm_name",
    "lab_store",
    "resolve",
]
