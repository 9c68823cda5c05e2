"""The endpoint record: what one host's agent must realise for one bound port.

The api derives it from the port (and its floating IPs and subnets) in the port's own
transaction and stores it at ``keys.endpoint_key(host, port)``; the host's agent (its
routes, policy, metadata service and health checker) and every other host's policy (a
security group's members) read it. It is the one contract between the api and the
agents, so its shape lives here, typed, and mypy checks writer and readers alike.

Why a ``TypedDict`` and not a dataclass with a codec: the record *is* a JSON document,
read by the tens of thousands at an agent's cold start; a TypedDict types that document
as it is, with no conversion per record and no copy, while a key misspelt on either side
is a type error. :func:`decode` is the codec: it checks the document's shape cheaply and
upgrades records written by an older routeplane (fields added since default to what an
older agent assumed), so a store written by yesterday's version still loads.

Every field may be absent in a record as some test or older writer built it, hence
``total=False``; :func:`decode` makes the current fields present. Readers use ``.get``
with the default the field's comment gives.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict, cast

from routeplane.model.jsontypes import JSONObject

# 1: the records of routeplane's first wave, which carried no version
# 2: ``version`` written; otherwise the same fields
# 3: what the host's DHCP server hands out: ``addressing`` (each fixed IP's subnet),
#    ``mtu``, ``hostname``, ``extra_dhcp_opts``
# 4: each addressing entry names its subnet's ``ipv6_address_mode`` and ``ipv6_ra_mode``
#    (router advertisements, DHCPv6 and ``network_data.json`` follow them)
# 5: ``migration_target``: the record of a host a port is migrating to (an inactive
#    binding, or ``binding:profile.migrating_to``), written beside its active host's
RECORD_VERSION = 5
TAP_PREFIX = "tap"


def interface_name(port_id: str) -> str:
    """The host side of a VM's tap, as Nova's libvirt driver names it: ``tap`` + the
    port id's first 11 characters. The api writes it into the record; the lab's
    "hypervisor" creates the tap under the same name."""
    return TAP_PREFIX + port_id[:11]


class NatPair(TypedDict):
    """A floating IP associated with one of the port's fixed IPs: DNAT on this host."""

    floating_ip_address: str
    fixed_ip_address: str


class MovedIn(TypedDict, total=False):
    """How an address came to this port by a move (``from_port_id`` None: placed)."""

    generation: int
    from_port_id: str | None
    from_host: str
    moved_at: float  # wall-clock seconds


class MovedOut(TypedDict, total=False):
    """Where an address of this port went: its old host forwards it there for a while."""

    generation: int
    to_port_id: str
    to_host: str
    moved_at: float  # wall-clock seconds


class HostRoute(TypedDict):
    """A subnet's host route, as Neutron spells it."""

    destination: str
    nexthop: str


class Addressing(TypedDict):
    """One fixed IP and what its subnet says about it: what DHCP (and the metadata
    service's ``network_data.json``) tells the guest."""

    ip_address: str
    subnet_id: str
    cidr: str  # the whole subnet: the guest's mask is the subnet's
    gateway_ip: str  # "" without a gateway
    dns_nameservers: list[str]
    host_routes: list[HostRoute]
    enable_dhcp: bool
    ipv6_address_mode: NotRequired[str]  # IPv6 subnets: "slaac", "dhcpv6-stateful", …; "": none
    ipv6_ra_mode: NotRequired[str]


class DhcpOption(TypedDict):
    """One of the port's ``extra_dhcp_opts``, as Neutron spells it."""

    opt_name: str
    opt_value: str
    ip_version: int


class EndpointRecord(TypedDict, total=False):
    version: int  # RECORD_VERSION of the writer; absent: 1
    port_id: str
    network_id: str
    project_id: str
    host: str  # binding:host_id
    interface: str  # interface_name(port_id)
    mac_address: str
    admin_state_up: bool  # default True; False: nothing is programmed for it
    fixed_ips: list[str]  # the port's addresses, routed to its tap, in the port's order
    gateways: list[str]  # the gateway_ip of each subnet it has an address on
    allowed_addresses: list[str]  # allowed address pairs: single addresses are routed
    floating_ips: list[NatPair]  # sorted by floating_ip_address
    port_security_enabled: bool  # default True
    security_groups: list[str]
    port_revision: int  # the port's revision_number: the agent reports it programmed
    # make-before-break after a move (services.service_ips.hints)
    preferred: list[str]  # addresses moved or placed here: the better route metric
    moved_in: dict[str, MovedIn]
    moved_out: dict[str, MovedOut]
    # what the host's DHCP server answers (version 3; older records: none of it, so the
    # server stays silent for them until rewritten: services.core.record_migration)
    addressing: list[Addressing]  # one per fixed IP, in the port's order
    mtu: int  # the network's mtu; 0: not known (no MTU option)
    hostname: str  # the port's dns_name, else its name; "" : neither
    extra_dhcp_opts: list[DhcpOption]
    # version 4: True on the record of a host the port is migrating to (not yet its
    # binding:host_id); older records: False. Its agent may prepare the port (the VM
    # is not there yet); the active host's record is the other one.
    migration_target: bool


_LIST_FIELDS = (
    "fixed_ips",
    "gateways",
    "allowed_addresses",
    "floating_ips",
    "security_groups",
    "preferred",
    "addressing",
    "extra_dhcp_opts",
)
_DEFAULTS: dict[str, bool | int | str] = {
    "admin_state_up": True,
    "port_security_enabled": True,
    "port_revision": 0,
    "mtu": 0,
    "hostname": "",
    "migration_target": False,
}


class RecordError(ValueError):
    """A stored value that is no endpoint record (the agent skips it and says so)."""


def decode(value: object) -> EndpointRecord:
    """The record in a stored value, upgraded to :data:`RECORD_VERSION`'s fields.

    A current record is returned as it is (no copy: the hot path of a cold start); an
    older one gets a copy with the fields added since. Raises :class:`RecordError` for
    a value that is not a JSON object, or names its interface with something else than
    a string.
    """
    if not isinstance(value, dict) or not isinstance(value.get("interface", ""), str):
        raise RecordError(f"not an endpoint record: {str(value)[:80]}")
    if value.get("version") == RECORD_VERSION:
        return cast(EndpointRecord, value)
    upgraded = dict(value)
    for name in _LIST_FIELDS:
        upgraded.setdefault(name, [])
    for name, default in _DEFAULTS.items():
        upgraded.setdefault(name, default)
    upgraded.setdefault("moved_in", {})
    upgraded.setdefault("moved_out", {})
    upgraded["version"] = RECORD_VERSION
    return cast(EndpointRecord, upgraded)


def decode_or_none(value: object) -> EndpointRecord | None:
    """:func:`decode`, or None for a value that is not a record (a reader skips it)."""
    try:
        return decode(value)
    except RecordError:
        return None


def encode(record: EndpointRecord) -> JSONObject:
    """The record as the JSON document the store holds (the same object: a TypedDict is
    a dict at run time; this only tells the checker so)."""
    return cast(JSONObject, record)


__all__ = [
    "RECORD_VERSION",
    "TAP_PREFIX",
    "Addressing",
    "DhcpOption",
    "EndpointRecord",
    "HostRoute",
    "MovedIn",
    "MovedOut",
    "NatPair",
    "RecordError",
    "decode",
    "decode_or_none",
    "encode",
    "interface_name",
]
