"""``lab up --openstack``: real Keystone, Placement and Nova around the lab's routeplane.

In the order ``up`` calls them, every process recorded in the lab's state (so ``down``
stops it by PID) and every listener on 127.0.0.1:

1. :func:`prepare`, before routeplane's api: the config files; Erlang's port mapper and
   RabbitMQ (Debian's ``rabbitmq-server`` run as a lab process, not the system service);
   meanwhile the databases (sqlite: keystone, placement, nova_api, cell0, cell1) made by
   each project's own ``*-manage``; Keystone (fernet, ``keystone-manage bootstrap``)
   served by ``wsgi_serve``; the service project and users and the catalog (compute,
   placement, a stand-in image service, and routeplane's api as ``network``); then
   Placement, the image stand-in, nova-api, nova-conductor and nova-scheduler.
2. :func:`start_computes`, once the hosts exist: one nova-compute per host (``host =
   nodeN``, ``routeplane.nova.driver.RoutePlaneDriver``, the host's namespace, guests
   named with the lab's prefix so ``down`` removes them), then a wait until each is a
   hypervisor (the scheduler discovers hosts every 2 s) and the lab's flavor.

What this module must not do: listen anywhere but loopback, or start anything it does
not record.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from routeplane.lab import openstack_conf as conf
from routeplane.lab import openstack_db
from routeplane.lab.keystone_admin import KeystoneAdmin
from routeplane.lab.netns import LabError
from routeplane.lab.openstack_conf import OpenStackLayout
from routeplane.lab.openstack_install import require
from routeplane.lab.topology import Topology
from routeplane.lab.waiting import wait_until

IMAGE_NAME = "routeplane-guest"
FLAVOR = {"name": "m1.lab", "ram": 64, "vcpus": 1, "disk": 1}
START_TIMEOUT = 60.0
NOVA_API = "os-nova-api"  # its key in the lab's processes
MANAGE_TIMEOUT = 300.0

Start = Callable[[str, Sequence[str], Mapping[str, str] | None], None]


@dataclass(frozen=True)
class OpenStack:
    """What the rest of the lab needs to know about its OpenStack."""

    layout: OpenStackLayout
    password: str  # the admin's and the service users'
    image_id: str


def layout_of(topology: Topology, api_port: int) -> OpenStackLayout:
    return OpenStackLayout(topology.state_dir / "openstack", require(), api_port)


ROUTEPLANE_ROOT = str(Path(__file__).resolve().parents[2])  # for the keeper and the driver


def _env(layout: OpenStackLayout, **extra: str) -> dict[str, str]:
    path = f"{layout.venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"
    return {"PATH": path, "PYTHONPATH": ROUTEPLANE_ROOT, **extra}


def _manage(layout: OpenStackLayout, steps: Sequence[Sequence[str]], log: Path) -> None:
    with log.open("ab") as out:
        for step in steps:
            done = subprocess.run(
                list(step), stdout=out, stderr=subprocess.STDOUT, env=_env(layout),
                timeout=MANAGE_TIMEOUT, check=False,
            )  # fmt: skip
            if done.returncode:
                raise LabError(f"{' '.join(step[:4])} failed ({done.returncode}); see {log}")


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (the lab's loopback)
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False

    return check


def _wait(url: str, what: str, log: Path) -> None:
    if not wait_until(_answers(url), START_TIMEOUT, interval=0.2):
        raise LabError(f"{what} did not answer on {url}; see {log}")


def _write(layout: OpenStackLayout, password: str) -> None:
    directory = layout.directory
    for sub in (
        "keystone",
        "placement",
        "nova",
        "nova/locks",
        "rabbitmq",
        "fernet-keys",
        "credential-keys",
    ):
        (directory / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / "keystone" / "keystone.conf").write_text(conf.keystone_conf(layout))
    (directory / "placement" / "placement.conf").write_text(conf.placement_conf(layout, password))
    (directory / "nova" / "nova.conf").write_text(conf.nova_conf(layout, password))
    shutil.copy(
        layout.venv / "etc" / "nova" / "api-paste.ini", directory / "nova" / "api-paste.ini"
    )
    (directory / "rabbitmq" / "rabbitmq.conf").write_text(conf.rabbit_conf(layout))
    (directory / "rabbitmq" / "enabled_plugins").write_text("[].\n")


def _databases(layout: OpenStackLayout, password: str, log: Callable[[str], Path]) -> None:
    """The databases: from the template (``openstack_db``), or made by each project's
    ``*-manage`` concurrently and then kept as the template; then Keystone's bootstrap."""
    d = layout.directory
    keystone = ["keystone-manage", "--config-file", str(d / "keystone" / "keystone.conf")]
    nova = ["nova-manage", "--config-file", str(d / "nova" / "nova.conf")]
    openstack_db.write_keys(d / "fernet-keys")
    openstack_db.write_keys(d / "credential-keys")
    if openstack_db.have_template(layout.venv):
        openstack_db.copy_template(layout.venv, d, layout.transport_url)
    else:
        _concurrently(
            layout,
            {
                "os-keystone-manage": [[*keystone, "db_sync"]],
                "os-placement-manage": [
                    ["placement-manage", "--config-file", str(d / "placement" / "placement.conf"),
                     "db", "sync"]
                ],
                "os-nova-manage": [
                    [*nova, "api_db", "sync"],
                    [*nova, "cell_v2", "map_cell0", "--database_connection", layout.db("nova_cell0")],
                    [*nova, "cell_v2", "create_cell", "--name", "cell1", "--verbose"],
                    [*nova, "db", "sync"],
                ],
            },
            log,
        )  # fmt: skip
        openstack_db.save_template(layout.venv, d)
    openstack_db.use_wal(d)
    bootstrap = [*keystone, "bootstrap", "--bootstrap-password", password,
                 "--bootstrap-region-id", conf.REGION,
                 "--bootstrap-public-url", layout.auth_url,
                 "--bootstrap-internal-url", layout.auth_url,
                 "--bootstrap-admin-url", layout.auth_url]  # fmt: skip
    _manage(layout, [bootstrap], log("os-keystone-manage"))


def _concurrently(
    layout: OpenStackLayout, chains: dict[str, list[list[str]]], log: Callable[[str], Path]
) -> None:
    errors: list[BaseException] = []

    def run(key: str, steps: list[list[str]]) -> None:
        try:
            _manage(layout, steps, log(key))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in chains.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    return check


def _catalog(layout: OpenStackLayout, password: str) -> None:
    admin = KeystoneAdmin(layout.auth_url, password, conf.REGION)
    project = admin.project(conf.SERVICE_PROJECT)
    role = admin.find_id("roles", "admin")
    for user in conf.SERVICE_USERS:
        admin.service_user(user, password, project, role)
    admin.endpoint("compute", "nova", layout.compute_url)
    admin.endpoint("placement", "placement", layout.url("placement"))
    admin.endpoint("image", "glance", layout.url("glance"))
    admin.endpoint("network", "neutron", layout.network_url)


def kept(*argv: str) -> list[str]:
    """``argv`` under the lab's keeper (``keeper``: a command line that stays put)."""
    return [sys.executable, "-m", "routeplane.lab.keeper", *argv]


def _wsgi(layout: OpenStackLayout, service: str, target: str, *options: str) -> list[str]:
    return kept(layout.bin("python"), "-m", "routeplane.lab.wsgi_serve",
                f"127.0.0.1:{layout.port(service)}", target, *options)  # fmt: skip


def _service(layout: OpenStackLayout, script: str, *args: str) -> list[str]:
    return kept(layout.bin("python"), layout.bin(script), *args)


def prepare(
    topology: Topology, api_port: int, start: Start, say: Callable[[str], None]
) -> OpenStack:
    """Step 1 of the module docstring; the caller records and stops what ``start`` runs."""
    layout = layout_of(topology, api_port)
    stack = OpenStack(layout, secrets.token_urlsafe(12), str(uuid.uuid4()))
    _write(layout, stack.password)
    d = layout.directory
    say(f"openstack: RabbitMQ on 127.0.0.1:{layout.port('rabbit')}, databases (sqlite) in {d}")
    rabbit = {**conf.rabbit_env(layout), "PYTHONPATH": ROUTEPLANE_ROOT}
    start(
        "os-epmd",
        ["/usr/bin/epmd", "-address", "127.0.0.1", "-port", str(layout.port("epmd"))],
        rabbit,
    )
    start("os-rabbitmq", kept("/bin/sh", "/usr/lib/rabbitmq/bin/rabbitmq-server"), rabbit)
    _databases(layout, stack.password, topology.log)
    say(f"openstack: Keystone {layout.auth_url}")
    keystone_env = _env(layout, OS_KEYSTONE_CONFIG_DIR=str(d / "keystone"))
    start("os-keystone", _wsgi(layout, "keystone", "keystone.wsgi.api:application"), keystone_env)
    _wait(layout.auth_url, "Keystone", topology.log("os-keystone"))
    _catalog(layout, stack.password)
    say(f"openstack: Placement, image stand-in ({IMAGE_NAME}), nova-api {layout.compute_url}")
    placement_env = _env(layout, OS_PLACEMENT_CONFIG_DIR=str(d / "placement"))
    start(
        "os-placement",
        _wsgi(layout, "placement", "placement.wsgi.api:application", "--serial"),
        placement_env,
    )
    glance = [sys.executable, "-m", "routeplane.lab.glance_stub",
              f"127.0.0.1:{layout.port('glance')}", stack.image_id, IMAGE_NAME]  # fmt: skip
    start("os-glance", glance, {**os.environ, "PYTHONPATH": ROUTEPLANE_ROOT})
    if not wait_until(_listening(layout.port("rabbit")), START_TIMEOUT, 0.2):
        raise LabError(f"RabbitMQ did not listen; see {topology.log('os-rabbitmq')}")
    nova_env = _env(layout, OS_NOVA_CONFIG_DIR=str(d / "nova"))
    start(NOVA_API, *nova_api(layout))
    nova = ["--config-file", str(d / "nova" / "nova.conf")]
    start("os-nova-conductor", _service(layout, "nova-conductor", *nova), nova_env)
    start("os-nova-scheduler", _service(layout, "nova-scheduler", *nova), nova_env)
    _wait(layout.url("placement"), "Placement", topology.log("os-placement"))
    _wait(layout.compute_url, "nova-api", topology.log(NOVA_API))
    return stack


def nova_api(layout: OpenStackLayout) -> tuple[list[str], dict[str, str]]:
    """nova-api's command line and environment: :func:`prepare` starts it, and a test
    that stopped it starts it again the same way (``lab.service.start_nova_api``)."""
    env = _env(layout, OS_NOVA_CONFIG_DIR=str(layout.directory / "nova"))
    return _wsgi(layout, "nova", "nova.wsgi.osapi_compute:application", "--serial"), env


def nova_api_answers(layout: OpenStackLayout) -> Callable[[], bool]:
    """Whether nova-api answers HTTP on its port."""
    return _answers(layout.compute_url)


def _hypervisors(admin: KeystoneAdmin, url: str, hosts: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            found = admin.call("GET", f"{url}/os-hypervisors")["hypervisors"]
        except LabError:
            return False
        return sum(1 for h in found if h.get("state") == "up") >= hosts

    return check


def start_computes(
    topology: Topology, stack: OpenStack, start: Start, say: Callable[[str], None]
) -> None:
    """Step 2 of the module docstring."""
    layout = stack.layout
    d = layout.directory / "nova"
    nova_env = _env(layout, OS_NOVA_CONFIG_DIR=str(d))
    for host in topology.hosts:
        own = d / f"compute-{host.name}.conf"
        own.write_text(conf.compute_conf(host.name, host.namespace, f"{topology.prefix}vm-nova-"))
        argv = _service(
            layout, "nova-compute", "--config-file", str(d / "nova.conf"), "--config-file", str(own)
        )
        say(f"openstack: nova-compute on {host.name} ({host.namespace})")
        start(f"os-nova-compute-{host.name}", argv, nova_env)
    admin = KeystoneAdmin(layout.auth_url, stack.password, conf.REGION)
    if not wait_until(
        _hypervisors(admin, layout.compute_url, topology.host_count), START_TIMEOUT * 2, 1.0
    ):
        logs = ", ".join(str(topology.log(f"os-nova-compute-{h.name}")) for h in topology.hosts)
        raise LabError(f"not every nova-compute became a hypervisor; see {logs}")
    body = {"flavor": {**FLAVOR, "id": "1000", "os-flavor-access:is_public": True}}
    admin.call("POST", f"{layout.compute_url}/flavors", body)


def keystone_env(stack: OpenStack) -> dict[str, str]:
    """The ``openstack`` CLI's variables for the lab's admin, through Keystone."""
    return {
        "OS_AUTH_URL": stack.layout.auth_url,
        "OS_USERNAME": "admin",
        "OS_PASSWORD": stack.password,
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": conf.REGION,
        "OS_IDENTITY_API_VERSION": "3",
        "OS_INTERFACE": "public",
    }


__all__ = [
    "FLAVOR",
    "IMAGE_NAME",
    "NOVA_API",
    "OpenStack",
    "keystone_env",
    "layout_of",
    "nova_api",
    "nova_api_answers",
    "prepare",
    "start_computes",
]
