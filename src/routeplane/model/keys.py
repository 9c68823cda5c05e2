"""The store's key layout: every key any process reads or writes is built here.

The api, every host's agent and the controller meet only in the store, possibly at two
versions of routeplane at once, so the layout is a contract and has one home: nothing
else spells ``/routeplane/v1/`` or joins key parts by hand. The layout::

    /routeplane/v1/<kind>/<id>                 resource documents (networks, ports, ...)
    /routeplane/v1/ipam/<subnet>/<address>     an address claim (create-if-absent)
    /routeplane/v1/macs/<network>/<mac>        a MAC claim
    /routeplane/v1/endpoints/<host>/<port>     what a host must realise (the endpoint record)
    /routeplane/v1/status/<host>/<port>        what a host has realised (port revision)
    /routeplane/v1/sgmembers/<group>/<port>    a bound port's addresses, per security group
    /routeplane/v1/hosts/<host>                a host's BGP addresses and AS (leased)
    /routeplane/v1/agents/<host>               an agent's liveness record (leased)
    /routeplane/v1/agent_info/<host>           the same record, unleased: a dead agent stays listed
    /routeplane/v1/agent_admin/<host>          an operator's settings of that agent (the api)
    /routeplane/v1/health/<host>/<sip>/<port>  a health checker's verdict
    /routeplane/v1/controller/leader           the failover controller's leadership (leased)
    /routeplane/v1/config/token_secret         the built-in identity's signing secret
    /routeplane/v1/nova/told/<port>            what Nova was last told about a port
    /routeplane/v1/nova/outbox/<id>            Nova events derived, not yet accepted

Pure string building, no I/O.
"""

from __future__ import annotations

ROOT = "/routeplane/v1/"

# resource kinds whose documents readers other than the api follow
PORTS = "ports"
SUBNETS = "subnets"
SECURITY_GROUPS = "security_groups"
SERVICE_IPS = "service_ips"
# derived and operational kinds
ENDPOINTS = "endpoints"
STATUS = "status"
SG_MEMBERS = "sgmembers"
HOSTS = "hosts"
AGENTS = "agents"
AGENT_INFO = "agent_info"
AGENT_ADMIN = "agent_admin"
HEALTH = "health"
IPAM = "ipam"
MACS = "macs"
CONTROLLER = "controller"
CONFIG = "config"
NOVA = "nova"
FIP_BY_PORT = "fip_by_port"


def key(kind: str, *parts: str) -> str:
    """The key of one item: ``key("ports", id)`` → ``/routeplane/v1/ports/<id>``."""
    return ROOT + kind + "/" + "/".join(parts)


def prefix(kind: str, *parts: str) -> str:
    """The prefix of every item under ``parts``, ending in ``/`` (so ``host1`` never
    matches ``host10``)."""
    return ROOT + kind + "/" + "".join(p + "/" for p in parts)


def endpoint_key(host: str, port_id: str) -> str:
    return key(ENDPOINTS, host, port_id)


def endpoints_prefix(host: str | None = None) -> str:
    """One host's endpoint records, or (``None``) every host's."""
    return prefix(ENDPOINTS) if host is None else prefix(ENDPOINTS, host)


def member_key(group_id: str, port_id: str) -> str:
    """A bound port's entry in the member index of one of its security groups."""
    return key(SG_MEMBERS, group_id, port_id)


def members_prefix(group_id: str | None = None) -> str:
    """One security group's member index, or (``None``) every group's."""
    return prefix(SG_MEMBERS) if group_id is None else prefix(SG_MEMBERS, group_id)


def security_group_key(group_id: str) -> str:
    """A security group's document (its rules), as the api writes it."""
    return key(SECURITY_GROUPS, group_id)


def status_key(host: str, port_id: str) -> str:
    return key(STATUS, host, port_id)


def status_prefix(host: str) -> str:
    return prefix(STATUS, host)


def host_key(host: str) -> str:
    return key(HOSTS, host)


def agent_key(host: str) -> str:
    return key(AGENTS, host)


def agent_info_key(host: str) -> str:
    return key(AGENT_INFO, host)


def agent_admin_key(host: str) -> str:
    return key(AGENT_ADMIN, host)


def health_prefix(host: str) -> str:
    return prefix(HEALTH, host)


def nova_told_key(port_id: str) -> str:
    return key(NOVA, "told", port_id)


def nova_told_prefix() -> str:
    return prefix(NOVA, "told")


def nova_outbox_prefix() -> str:
    return prefix(NOVA, "outbox")


def split(full_key: str) -> tuple[str, ...]:
    """The parts of a key below the root: ``("endpoints", host, port)``; ``()`` for a key
    outside the layout."""
    if not full_key.startswith(ROOT):
        return ()
    return tuple(full_key[len(ROOT) :].split("/"))


LEADER_KEY = key(CONTROLLER, "leader")
# Not a store key: the path under which each host's metadata service tells a VM's
# routeplane guest daemon its addresses. The daemon runs inside the VM and imports nothing
# of routeplane, so it spells the path itself; tests/unit/test_guest.py checks the two agree.
GUEST_ADDRESSES_PATH = ROOT + "addresses"
TOKEN_SECRET_KEY = key(CONFIG, "token_secret")

__all__ = [
    "AGENTS",
    "AGENT_ADMIN",
    "AGENT_INFO",
    "CONFIG",
    "CONTROLLER",
    "ENDPOINTS",
    "FIP_BY_PORT",
    "GUEST_ADDRESSES_PATH",
    "HEALTH",
    "HOSTS",
    "IPAM",
    "LEADER_KEY",
    "MACS",
    "NOVA",
    "PORTS",
    "ROOT",
    "SECURITY_GROUPS",
    "SERVICE_IPS",
    "SG_MEMBERS",
    "STATUS",
    "SUBNETS",
    "TOKEN_SECRET_KEY",
    "agent_admin_key",
    "agent_info_key",
    "agent_key",
    "endpoint_key",
    "endpoints_prefix",
    "health_prefix",
    "host_key",
    "key",
    "member_key",
    "members_prefix",
    "nova_outbox_prefix",
    "nova_told_key",
    "nova_told_prefix",
    "prefix",
    "security_group_key",
    "split",
    "status_key",
    "status_prefix",
]
