"""``lab up`` and ``lab boot``: a cloud on one machine, and VMs in it.

``up`` makes, in this order, recording each step in the state file before taking the next
(so ``down`` can undo a crash at any point):

1. the state directory, the api's config (an admin user and a static admin token), the
   api process on loopback and the service-IP failover controller, both on the embedded
   store in the state directory — or, with ``store="etcd"``, on a 3-member etcd cluster
   started first (``etcd_cluster``);
2. the fabric, the access node and the compute hosts (``fabric``);
3. BIRD on the access node, then one agent process per host, each running its host's
   BIRD; ``up`` waits until every host has registered and its BGP session is up;
4. unless ``--empty``, the walkthrough's networks and security rule (``seed``).

``boot`` is Nova's part for one VM: a port bound to a host through the api, the VM's
namespace and tap (``vm``), its DHCP client and a wait for its lease (``vm_dhcp``: the
guest's IPv4 comes from its host, as a cloud image's does), its service and its ``routeplane guest`` (which keeps the
port's further addresses, such as a service IP, on the VM's ``eth0``), and a wait until
the agent reports the port ACTIVE. A failed ``up`` or ``boot`` removes what it made.

What this module must not do: talk to the kernel or the store except through the
topology's namespaces and the lab's own store; start anything it does not record.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from routeplane.lab import (
    etcd_cluster,
    fabric,
    guest_processes,
    netns,
    openstack,
    openstack_conf,
    processes,
    qemu,
    qemu_vm,
    seed,
    state,
    vm,
    vm_dhcp,
)
from routeplane.lab.neutron import ApiError, Neutron
from routeplane.lab.state import LabState, VmRecord
from routeplane.lab.teardown import down
from routeplane.lab.topology import STATE_ROOT, Node, Topology, check_vm_name
from routeplane.lab.waiting import wait_until
from routeplane.model.endpoint import interface_name
from routeplane.model.errors import BgpError
from routeplane.model.keys import host_key
from routeplane.store import open_store

ADMIN_USER = "admin"
API_START_TIMEOUT = 30.0
HOSTS_TIMEOUT = 30.0
BGP_TIMEOUT = 30.0
ACTIVE_TIMEOUT = 30.0
SERVICE_TIMEOUT = guest_processes.SERVICE_TIMEOUT

API_CONFIG = """\
# routeplane lab: the api's identity (written by `routeplane lab up`)
admin_token = "{token}"

[[projects]]
name = "admin"
id = "admin"

[[users]]
name = "{user}"
password = "{password}"
project = "admin"
roles = ["admin", "member", "reader"]
"""


def _tail(path: str | Path, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _loopback_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Recorder:
    """The lab's state, saved after every change (see the module docstring)."""

    def __init__(self, topology: Topology, lab_state: LabState) -> None:
        self.topology = topology
        self.state = lab_state

    def save(self) -> None:
        state.save(self.topology.state_file, self.state)

    def namespace(self, name: str) -> None:
        if name not in self.state.namespaces:
            self.state.namespaces.append(name)
        self.save()

    def start(
        self,
        key: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Start and record a background process; LabError (with its log) if it dies."""
        log = self.topology.log(key)
        record = processes.start(argv, log, env, cwd)
        self.state.processes[key] = record
        self.save()
        if not processes.wait_started(record):
            raise netns.LabError(f"{key} exited at once; {log}:\n{_tail(log)}")

    def metrics_port(self, key: str) -> int:
        """The loopback port for ``key``'s ``--metrics-listen``, chosen and recorded."""
        port = self.state.metrics_ports[key] = _loopback_port()
        return port


def open_lab(name: str, state_root: Path = STATE_ROOT) -> tuple[Topology, LabState]:
    """The topology and state of a lab that is up (LabError when it is not)."""
    probe = Topology.plan(name, 1, state_root)
    found = state.load(probe.state_file)
    if found is None:
        raise netns.LabError(f"lab {name} is not up (no {probe.state_file})")
    return Topology.plan(name, found.hosts, state_root, found.store), found


def _sessions_up(topology: Topology) -> int:
    """How many BGP sessions the access node has established."""
    try:
        shown = fabric.access_bird(topology).birdc("show", "protocols")
    except BgpError:
        return 0
    return sum(1 for line in shown.splitlines() if " BGP " in line and "Established" in line)


def _hosts_registered(topology: Topology) -> Callable[[], bool]:
    def check() -> bool:
        store = open_store(topology.store_url)
        try:
            return all(store.get(host_key(host.name)) is not None for host in topology.hosts)
        finally:
            store.close()

    return check


def up(
    name: str,
    hosts: int,
    port: int,
    *,
    empty: bool = False,
    openstack: bool = False,
    store: str = "sqlite",
    state_root: Path = STATE_ROOT,
    say: Callable[[str], None] = print,
) -> LabState:
    topology = Topology.plan(name, hosts, state_root, store)
    existing = [ns for ns in netns.names() if topology.owns(ns)]
    if topology.state_file.exists() or existing:
        raise netns.LabError(
            f"lab {name} is already up (or left over: {', '.join(existing) or topology.state_dir});"
            f" run `routeplane lab down --name {name}` first"
        )
    # with --openstack, its services listen at fixed offsets above the api's port
    wanted = [port, *(port + k for k in openstack_conf.OFFSETS.values())] if openstack else [port]
    taken = [p for p in wanted if not _port_free(p)]
    if taken:
        raise netns.LabError(
            f"127.0.0.1:{','.join(map(str, taken))} in use: choose another --port"
            + (f" (the lab's OpenStack takes {port + 10}-{port + 16} too)" if openstack else "")
        )
    lab_state = LabState(
        lab=name,
        hosts=hosts,
        api_port=port,
        admin_token=secrets.token_urlsafe(24),
        admin_password=secrets.token_urlsafe(12),
        store=store,
    )
    recorder = Recorder(topology, lab_state)
    with state.locked(topology.state_dir):
        try:
            _build(topology, recorder, empty, say, openstack)
        except BaseException:
            kept = _keep_logs(topology)
            down(name, state_root=state_root, locked=False)
            if kept is not None:
                say(f"the failed lab's logs: {kept}")
            raise
    return lab_state


def _keep_logs(topology: Topology) -> Path | None:
    """A failed ``up``'s logs, kept beside the state directory ``down`` removes."""
    logs = topology.state_dir / "logs"
    if not logs.is_dir():
        return None
    kept = topology.state_dir.with_name(f"{topology.lab}.failed-logs")
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(logs, kept)
    return kept


def _prepare_openstack(
    topology: Topology, recorder: Recorder, say: Callable[[str], None]
) -> openstack.OpenStack:
    """OpenStack before routeplane's api, and the controller's ``[nova]`` table."""
    stack = openstack.prepare(topology, recorder.state.api_port, recorder.start, say)
    recorder.state.openstack_env = openstack.keystone_env(stack)
    recorder.save()
    nova_table = topology.state_dir / "controller.toml"
    nova_table.write_text(openstack_conf.controller_nova_table(stack.layout, stack.password))
    nova_table.chmod(0o600)
    return stack


def _build(
    topology: Topology,
    recorder: Recorder,
    empty: bool,
    say: Callable[[str], None],
    with_openstack: bool = False,
) -> None:
    lab_state = recorder.state
    recorder.save()
    api_config = API_CONFIG.format(
        token=lab_state.admin_token, user=ADMIN_USER, password=lab_state.admin_password
    )
    controller = topology.controller_command(recorder.metrics_port("controller"))
    stack = _prepare_openstack(topology, recorder, say) if with_openstack else None
    if stack is not None:
        api_config = openstack_conf.api_config_with_keystone(
            api_config, stack.layout, stack.password
        )
        controller = [*controller, "--config", str(topology.state_dir / "controller.toml")]
    topology.api_config.write_text(api_config)
    topology.api_config.chmod(0o600)
    if topology.store == "etcd":
        say(f"etcd: {len(topology.etcd_members)} members on {topology.etcd_switch}")
        etcd_cluster.build(topology, recorder.namespace, recorder.start)
    say(f"api: {lab_state.api_url} (store {topology.store_url})")
    recorder.start("api", topology.api_command(lab_state.api_port, recorder.metrics_port("api")))
    recorder.start("controller", controller)

    say(f"fabric: {topology.fabric}, access node {topology.access.ipv4}")
    fabric.build_switch(topology, recorder.namespace)
    for node in (topology.access, *topology.hosts):
        fabric.build_node(topology, node, recorder.namespace)
    lab_state.bird_dirs["access"] = str(topology.bird_dir("access"))
    recorder.save()
    fabric.start_access_bird(topology)

    api = Neutron(lab_state.api_url, lab_state.admin_token)
    try:
        if not wait_until(_answers(api), API_START_TIMEOUT):
            log = topology.log("api")
            raise netns.LabError(f"the api did not answer; {log}:\n{_tail(log)}")
        for host in topology.hosts:
            say(f"host {host.name}: {host.namespace} {host.ipv4} {host.ipv6}, agent + BIRD")
            directory = topology.bird_dir(host.name)
            directory.mkdir(parents=True, exist_ok=True)
            lab_state.bird_dirs[host.name] = str(directory)
            key = f"agent-{host.name}"
            recorder.start(key, topology.agent_command(host, recorder.metrics_port(key)))
        if not wait_until(_hosts_registered(topology), HOSTS_TIMEOUT, interval=0.2):
            logs = [topology.log(f"agent-{host.name}") for host in topology.hosts]
            tails = "\n".join(f"{log}:\n{_tail(log, 5)}" for log in logs)
            raise netns.LabError(f"not every host's agent registered:\n{tails}")
        if not empty:
            say("seeding: demo-net (10.28.0.0/16, fd5f:5d21:845:1c2e::/64), public, demo-router")
            seed.seed(api, topology.access)
            lab_state.seeded = True
            recorder.save()
    finally:
        api.close()
    if stack is not None:
        openstack.start_computes(topology, stack, recorder.start, say)
    if not wait_until(lambda: _sessions_up(topology) >= topology.host_count, BGP_TIMEOUT, 0.2):
        say(
            f"warning: not every BGP session is up yet: routeplane lab status --name {topology.lab}"
        )


def _answers(api: Neutron) -> Callable[[], bool]:
    def check() -> bool:
        try:
            api.request("GET", "networks?limit=1")
        except ApiError:
            return False
        return True

    return check


def boot(
    name: str,
    vm_name: str,
    network: str,
    *,
    host: str = "node1",
    fixed_ips: Sequence[str] = (),
    state_root: Path = STATE_ROOT,
    kind: str = "namespace",
    accel: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> VmRecord:
    """Boot VM ``vm_name`` on ``host``: port, namespace, tap, addresses, service, ACTIVE.
    ``kind="qemu"``: a QEMU guest on the tap instead of a namespace (``accel`` overrides
    the probed accelerator)."""
    if kind not in ("namespace", qemu_vm.KIND):
        raise ValueError(f"a lab VM is of kind namespace or qemu, not {kind!r}")
    check_vm_name(vm_name)
    topology, _ = open_lab(name, state_root)
    node = topology.host(host)
    with state.locked(topology.state_dir):
        lab_state = state.load(topology.state_file)
        if lab_state is None:
            raise netns.LabError(f"lab {name} is not up")
        namespace = topology.vm_namespace(vm_name)
        if vm_name in lab_state.vms or netns.exists(namespace):
            raise netns.LabError(f"lab {name} has a VM {vm_name} already")
        recorder = Recorder(topology, lab_state)
        api = Neutron(lab_state.api_url, lab_state.admin_token)
        try:
            port = _create_port(
                recorder,
                api,
                vm_name=vm_name,
                network=network,
                node=node,
                fixed_ips=fixed_ips,
                kind=kind,
            )
            if kind == qemu_vm.KIND:
                return _boot_qemu(recorder, api, port, accel, say)
            return _boot(recorder, api, port, node)
        except BaseException:
            _unboot(recorder, api, vm_name)
            raise
        finally:
            api.close()


def _create_port(
    recorder: Recorder,
    api: Neutron,
    *,
    vm_name: str,
    network: str,
    node: Node,
    fixed_ips: Sequence[str],
    kind: str,
) -> tuple[VmRecord, dict[str, Any], list[vm.GuestAddress]]:
    """Nova's part before the hypervisor's: the port, bound to ``node``, recorded."""
    net = api.find("network", network)
    body: dict[str, object] = {
        "network_id": net["id"],
        "name": vm_name,
        "binding:host_id": node.name,
        "device_owner": "compute:nova",
        "device_id": str(uuid.uuid4()),
    }
    if fixed_ips:
        body["fixed_ips"] = [{"ip_address": address} for address in fixed_ips]
    port = api.create("port", body)
    subnets = {f["subnet_id"]: api.show("subnet", f["subnet_id"]) for f in port["fixed_ips"]}
    addresses = vm.guest_addresses(port, subnets)
    record = VmRecord(
        name=vm_name,
        host=node.name,
        namespace=node.namespace
        if kind == qemu_vm.KIND
        else recorder.topology.vm_namespace(vm_name),
        port_id=port["id"],
        tap=interface_name(port["id"]),
        mac=port["mac_address"],
        network=net["name"] or net["id"],
        addresses=[a.address for a in addresses],
        kind=kind,
    )
    recorder.state.vms[vm_name] = record  # before the namespace: a crash leaves it recorded
    recorder.save()
    return record, port, addresses


def _boot(
    recorder: Recorder,
    api: Neutron,
    created: tuple[VmRecord, dict[str, Any], list[vm.GuestAddress]],
    node: Node,
) -> VmRecord:
    topology = recorder.topology
    record, port, addresses = created
    recorder.namespace(record.namespace)
    vm.build(record.namespace, node, port, addresses)
    guest_processes.start_dhcp(recorder.start, topology, record.name, node.name)
    _ipv6_from_host(recorder, record, node, addresses)
    guest_processes.start_services(recorder.start, topology, record.name, record.name)
    api.wait_port_status(port["id"], "ACTIVE", ACTIVE_TIMEOUT)
    return record


def _ipv6_from_host(
    recorder: Recorder, record: VmRecord, node: Node, addresses: list[vm.GuestAddress]
) -> None:
    """The VM's IPv6 addresses on subnets with a mode, from its host: ``dhclient -6`` for
    ``dhcpv6-stateful`` ones (the kernel forms the others from the advertisements);
    returns once the VM holds them all."""
    wanted = [a.address.split("/")[0] for a in addresses if a.version == 6 and a.mode]
    if not wanted:
        return
    topology, interface = recorder.topology, vm.GUEST_INTERFACE
    if any(a.mode == "dhcpv6-stateful" for a in addresses):
        if not wait_until(
            lambda: vm_dhcp.link_local_ready(record.namespace, interface), vm_dhcp.LEASE_TIMEOUT
        ):
            raise netns.LabError(f"{record.name} has no usable link-local address")
        key = vm_dhcp.dhcp6_key(record.name)
        recorder.start(key, vm_dhcp.client6_command(topology, record.name, interface))
    if not wait_until(
        lambda: vm_dhcp.holds(record.namespace, interface, wanted), vm_dhcp.LEASE_TIMEOUT
    ):
        log = topology.log(vm_dhcp.dhcp6_key(record.name))
        raise netns.LabError(f"{record.name} did not get {wanted} from {node.name}; {log}")


def _boot_qemu(
    recorder: Recorder,
    api: Neutron,
    created: tuple[VmRecord, dict[str, Any], list[vm.GuestAddress]],
    accel: str | None,
    say: Callable[[str], None],
) -> VmRecord:
    """The hypervisor's part for a QEMU guest: tap and QEMU in the host's namespace (the
    guest configures its addresses itself)."""
    record, port, _ = created
    node = recorder.topology.host(record.host)
    spec = qemu_vm.spec(recorder.topology, node, vm_name=record.name, port=port)
    guest = qemu_vm.start(spec, accel, say)
    recorder.state.processes[f"vm-{record.name}"] = guest.process
    recorder.save()
    api.wait_port_status(port["id"], "ACTIVE", ACTIVE_TIMEOUT)
    return record


def _unboot(recorder: Recorder, api: Neutron, vm_name: str) -> None:
    """Undo a failed boot: the service, the namespace, the port, the records."""
    lab_state = recorder.state
    guest_processes.stop(lab_state, recorder.topology, vm_name)
    record = lab_state.vms.pop(vm_name, None)
    if record is not None and record.kind == qemu_vm.KIND:
        qemu.stop(qemu_vm.guest_dir(recorder.topology, vm_name))  # the tap too, not the host
    elif record is not None:
        netns.delete(record.namespace)
        if record.namespace in lab_state.namespaces:
            lab_state.namespaces.remove(record.namespace)
        with contextlib.suppress(ApiError):
            api.request("DELETE", f"ports/{record.port_id}")
    recorder.save()


__all__ = ["ADMIN_USER", "Recorder", "boot", "open_lab", "up"]
