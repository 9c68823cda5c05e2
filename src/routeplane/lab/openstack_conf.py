"""The lab's OpenStack configuration, rendered: ports, paths and the services' files.

Pure: every file the lab writes for Keystone, Placement, Nova and RabbitMQ comes from an
:class:`OpenStackLayout` (where things are) and the service password, so the settings can
be read in one place and tested without starting anything. Every address is 127.0.0.1.
Nova's databases are sqlite files (nova_api, cell0, cell1); a compute's file adds its
``host = nodeN``, the routeplane driver and the host's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from routeplane.lab import openstack_db

REGION = "RegionOne"
SERVICE_PROJECT = "service"
SERVICE_USERS = ("nova", "placement", "neutron")
VIF_PLUGGING_TIMEOUT = 60
# offsets from the routeplane api's port: one block of loopback ports per lab
OFFSETS = {
    "keystone": 10,
    "placement": 11,
    "nova": 12,
    "glance": 13,
    "rabbit": 14,
    "epmd": 15,
    "dist": 16,
}


@dataclass(frozen=True)
class OpenStackLayout:
    directory: Path  # STATE/openstack
    venv: Path
    api_port: int  # routeplane's

    def port(self, service: str) -> int:
        return self.api_port + OFFSETS[service]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    @property
    def auth_url(self) -> str:
        return f"{self.url('keystone')}/v3"

    @property
    def compute_url(self) -> str:
        return f"{self.url('nova')}/v2.1"

    @property
    def network_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def transport_url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port('rabbit')}/"

    def db(self, name: str) -> str:
        return openstack_db.url(self.directory / f"{name}.db")

    def conf(self, name: str) -> Path:
        return self.directory / name

    def bin(self, script: str) -> str:
        return str(self.venv / "bin" / script)


def _auth(layout: OpenStackLayout, user: str, password: str, section: str) -> str:
    return f"""[{section}]
auth_type = password
auth_url = {layout.auth_url}
www_authenticate_uri = {layout.auth_url}
username = {user}
password = {password}
project_name = {SERVICE_PROJECT}
user_domain_name = Default
project_domain_name = Default
region_name = {REGION}
"""


def keystone_conf(layout: OpenStackLayout) -> str:
    keys = layout.directory / "fernet-keys"
    return f"""[DEFAULT]
use_stderr = true
[database]
connection = {layout.db("keystone")}
[token]
provider = fernet
[fernet_tokens]
key_repository = {keys}
[fernet_receipts]
key_repository = {keys}
[credential]
key_repository = {layout.directory / "credential-keys"}
"""


def placement_conf(layout: OpenStackLayout, password: str) -> str:
    return f"""[DEFAULT]
use_stderr = true
[placement_database]
connection = {layout.db("placement")}
[api]
auth_strategy = keystone
{_auth(layout, "placement", password, "keystone_authtoken")}"""


def nova_conf(layout: OpenStackLayout, password: str) -> str:
    """What every Nova service reads."""
    state = layout.directory / "nova"
    return f"""[DEFAULT]
use_stderr = true
transport_url = {layout.transport_url}
state_path = {state}
instances_path = {state / "instances"}
my_ip = 127.0.0.1
vif_plugging_timeout = {VIF_PLUGGING_TIMEOUT}
vif_plugging_is_fatal = true
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = {layout.venv / "etc" / "nova" / "api-paste.ini"}
[api_database]
connection = {layout.db("nova_api")}
[database]
connection = {layout.db("nova_cell1")}
[oslo_concurrency]
lock_path = {state / "locks"}
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 2
[glance]
endpoint_override = {layout.url("glance")}
[vnc]
enabled = false
[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 0
{_auth(layout, "nova", password, "keystone_authtoken")}
{_auth(layout, "placement", password, "placement")}
{_auth(layout, "neutron", password, "neutron")}
"""


def compute_conf(host: str, namespace: str, guest_prefix: str) -> str:
    """A compute's own file, read after ``nova.conf``."""
    return f"""[DEFAULT]
host = {host}
compute_driver = routeplane.RoutePlaneDriver
[routeplane]
host_namespace = {namespace}
guest_namespace_prefix = {guest_prefix}
"""


def rabbit_env(layout: OpenStackLayout) -> dict[str, str]:
    """RabbitMQ (and Erlang's port mapper) on loopback, its files in the lab's directory."""
    home = layout.directory / "rabbitmq"
    return {
        "HOME": str(home),
        "RABBITMQ_NODENAME": f"rp{layout.api_port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(layout.port("rabbit")),
        "RABBITMQ_DIST_PORT": str(layout.port("dist")),
        "ERL_EPMD_PORT": str(layout.port("epmd")),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(home / "rabbit.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }


def rabbit_conf(layout: OpenStackLayout) -> str:
    return f"listeners.tcp.default = 127.0.0.1:{layout.port('rabbit')}\nloopback_users = none\n"


def api_config_with_keystone(config: str, layout: OpenStackLayout, password: str) -> str:
    """The routeplane api's ``config`` (TOML) with Keystone's tokens: keystonemiddleware
    validates them as the service user ``neutron``, and the lab's static admin token
    keeps working beside them (every lab tool uses it)."""
    return f"""admin_token_beside_keystone = true
{config}
[keystone_authtoken]
www_authenticate_uri = "{layout.auth_url}"
auth_url = "{layout.auth_url}"
auth_type = "password"
username = "neutron"
password = "{password}"
project_name = "{SERVICE_PROJECT}"
user_domain_name = "Default"
project_domain_name = "Default"
region_name = "{REGION}"
http_connect_timeout = 10  # a lab shares a loaded machine (the api's default: 3 s)
http_request_max_retries = 2
"""


def controller_nova_table(layout: OpenStackLayout, password: str) -> str:
    """The routeplane controller's ``[nova]`` table: Nova's external events."""
    return f"""[nova]
auth_url = "{layout.auth_url}"
username = "neutron"
password = "{password}"
project_name = "{SERVICE_PROJECT}"
region_name = "{REGION}"
"""


__all__ = [
    "REGION",
    "SERVICE_USERS",
    "OpenStackLayout",
    "api_config_with_keystone",
    "compute_conf",
    "controller_nova_table",
    "keystone_conf",
    "nova_conf",
    "placement_conf",
    "rabbit_conf",
    "rabbit_env",
]
