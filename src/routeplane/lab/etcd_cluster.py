"""The lab's etcd cluster (``lab up --store etcd``): three members, each in a namespace of
its own, that the api, the controller and every host's agent reach over unix sockets.

Why this layout. The lab's daemons run in the root namespace (an agent acts on its host's
namespace through ``--netns``, from there), so a member on root loopback would be
reachable — but then a member could not be partitioned from its peers without nft rules
in the root namespace, which the lab never touches. So each member runs in
``rp-<lab>-etcd<K>`` (``ip netns exec``), and the members meet on a segment of their own:
a bridge in ``rp-<lab>-etcd``, member K at ``192.168.9.K`` with its peer URL on port 2380.
Its *client* URL is a unix socket under the lab's state directory
(``STATE/etcd/etcd<K>/client.sock:2379``; etcd wants ``host:port``, so the socket is named
so, in the member's working directory). A socket file is reached through the file
system, from any namespace: the api, the controller and the agents use the store URL
``etcd://unix:…,unix:…,unix:…`` from where they are, and nothing in the root namespace
gets an address, a route or a rule. No host namespace joins the segment: none needs to.

The members keep their data on tmpfs (``/dev/shm/routeplane/…``, removed by ``down``):
on a disk shared with other work etcd's fsync per write took seconds ("slow fdatasync",
4.8 s, while testing), and a lab is one machine, whose crash ends the lab anyway. A
killed member's data survives its process, as on a disk.

Faults, for the fault tests: a member killed (SIGKILL by its recorded PID) and started
again on its data directory; a member partitioned by a table of ours
(``inet routeplane_partition``) in its own namespace, dropping every packet to or from
port 2380 (established peer streams included), until ``heal`` deletes the table. Its
client socket keeps accepting: a client that asks it waits for etcd's own timeout, as
behind a real partition.

What this module must not do: make anything outside the topology's ``etcd`` namespaces
and state directory, or signal a process it did not start.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from routeplane.lab import netns, processes, state
from routeplane.lab.topology import (
    BRIDGE,
    ETCD_CLIENT_SOCKET,
    ETCD_PEER_PORT,
    ETCD_SEGMENT,
    Node,
    Topology,
)
from routeplane.lab.waiting import wait_until
from routeplane.model.errors import StoreError
from routeplane.store import open_store

READY_TIMEOUT = 30.0
PARTITION_TABLE = "routeplane_partition"
MEMBER_INTERFACE = "eth0"


# ``Recorder.start``: start and record a background process (key, argv, env, cwd)
Starter = Callable[[str, list[str], dict[str, str] | None, Path | None], None]


def key(member: Node) -> str:
    """The member's process key in the lab's state (``etcd1``, …)."""
    return member.name


def peer_url(member: Node) -> str:
    return f"http://{ETCD_SEGMENT.network_address + member.index}:{ETCD_PEER_PORT}"


def _binary() -> str:
    found = shutil.which("etcd") or ("/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else "")
    if not found:
        raise netns.LabError("lab up --store etcd needs etcd: apt-get install etcd-server")
    return found


def command(topology: Topology, member: Node) -> list[str]:
    """The member's command line, run in its namespace and its directory."""
    cluster = ",".join(f"{m.name}={peer_url(m)}" for m in topology.etcd_members)
    client = f"unix://{ETCD_CLIENT_SOCKET}"
    return [
        "ip",
        "netns",
        "exec",
        member.namespace,
        _binary(),
        "--name",
        member.name,
        "--data-dir",
        str(topology.etcd_dir(member) / "data"),
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer_url(member),
        "--initial-advertise-peer-urls",
        peer_url(member),
        "--initial-cluster",
        cluster,
        "--initial-cluster-state",
        "new",  # ignored once the data directory exists
        "--initial-cluster-token",
        f"routeplane-{topology.lab}",
        "--auto-compaction-retention",
        "0",
        "--logger",
        "zap",
        "--log-outputs",
        "stderr",
        "--log-level",
        "warn",
        # a quiet watch hears from etcd every 5 s, well inside the client's 30-s silence
        # limit (etcd's default is 10 minutes: every idle watch would reconnect each 30 s)
        "--experimental-watch-progress-notify-interval",
        "5s",
    ]


def _environment() -> dict[str, str]:
    """Ours without ``ETCD_*`` (etcd refuses variables that shadow its flags)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}


def start_member(topology: Topology, member: Node, start: Starter) -> None:
    """Start (or start again, on its data directory) a member that is not running."""
    directory = topology.etcd_dir(member)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket_file = directory / ETCD_CLIENT_SOCKET
    if socket_file.is_socket():  # a killed member's: etcd will not bind over it
        socket_file.unlink()
    start(key(member), command(topology, member), _environment(), directory)


def build(topology: Topology, made: Callable[[str], None], start: Starter) -> None:
    """The segment, the members' namespaces and the members; returns once the cluster
    answers a linearizable read (it has a leader and a quorum)."""
    switch = topology.etcd_switch
    netns.create(switch)
    made(switch)
    netns.ip(switch, "link", "add", BRIDGE, "type", "bridge")
    netns.ip(switch, "link", "set", BRIDGE, "up")
    for member in topology.etcd_members:
        netns.create(member.namespace)
        made(member.namespace)
        netns.add_veth(switch, member.name, member.namespace, MEMBER_INTERFACE, peer_up=False)
        netns.ip(switch, "link", "set", member.name, "master", BRIDGE, "up")
        address = f"{ETCD_SEGMENT.network_address + member.index}/{ETCD_SEGMENT.prefixlen}"
        netns.ip(member.namespace, "addr", "add", address, "dev", MEMBER_INTERFACE)
        netns.ip(member.namespace, "link", "set", MEMBER_INTERFACE, "up")
    for member in topology.etcd_members:
        start_member(topology, member, start)
    if not wait_until(lambda: answers(topology), READY_TIMEOUT, interval=0.2):
        raise netns.LabError(f"the etcd cluster did not answer within {READY_TIMEOUT:.0f} s")


def answers(topology: Topology, url: str | None = None) -> bool:
    """Whether the cluster (or the one member ``url`` names) serves a quorum read."""
    store = open_store((url or topology.store_url) + "?timeout=1")
    try:
        store.revision()
    except StoreError:
        return False
    finally:
        store.close()
    return True


def member_url(topology: Topology, member: Node) -> str:
    """A store URL naming this member alone."""
    return f"etcd://unix:{topology.etcd_dir(member) / ETCD_CLIENT_SOCKET}"


def kill(lab_state: state.LabState, member: Node) -> bool:
    """SIGKILL the member (a crash); False when it was not running."""
    record = lab_state.processes.get(key(member))
    return record is not None and processes.kill(record)


def partition(member: Node) -> None:
    """Cut the member off its peers: drop port 2380 both ways, in its namespace."""
    rules = "\n".join(
        f"add rule inet {PARTITION_TABLE} {chain} tcp {port} {ETCD_PEER_PORT} drop"
        for chain in ("input", "output")
        for port in ("dport", "sport")
    )
    netns.exec_in(
        member.namespace,
        "nft",
        "-f",
        "-",
        input=f"add table inet {PARTITION_TABLE}\n"
        f"add chain inet {PARTITION_TABLE} input {{ type filter hook input priority 0; }}\n"
        f"add chain inet {PARTITION_TABLE} output {{ type filter hook output priority 0; }}\n"
        f"{rules}\n",
    )


def heal(member: Node) -> None:
    """Undo :func:`partition` (absent is fine)."""
    netns.exec_in(
        member.namespace, "nft", "delete", "table", "inet", PARTITION_TABLE, check_rc=False
    )


__all__ = [
    "Starter",
    "answers",
    "build",
    "command",
    "heal",
    "key",
    "kill",
    "member_url",
    "partition",
    "peer_url",
    "start_member",
]
