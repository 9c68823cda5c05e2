"""The agent's liveness record: what a host's agent says about itself, and what the api
shows as Neutron's ``agent`` resource.

Each host's agent writes ``keys.agent_key(host)`` on a lease (``agent.registration``): the
record exists exactly while the agent renews its lease, so *alive* is the record's
presence. It also writes the same record, unleased, to ``keys.agent_info_key(host)``,
so a dead agent stays listed (``alive: false``) until an operator deletes it, as in
Neutron. What an operator sets through the API (``admin_state_up``, ``description``) is a
third key, ``keys.agent_admin_key(host)``, which no agent writes, so a re-registration
never undoes it.

How routeplane's agent names itself to Neutron clients, chosen after Calico's Felix
(``Calico per-host agent (felix)``, binary ``calico-felix``, topic ``N/A``): one agent
per host does everything (routes, policy, DHCP, metadata), so it is a per-host agent, and
it listens on no message-queue topic.

The agent's id is derived from its host (a name-based UUID): the api needs no write to
give a live agent an id, and every api process answers the same one.

Pure data, no I/O.
"""

from __future__ import annotations

import uuid
from typing import TypedDict

AGENT_TYPE = "Routeplane per-host agent"
BINARY = "routeplane-agent"
TOPIC = "N/A"
# the namespace of agent ids: uuid5(AGENT_NAMESPACE, host)
AGENT_NAMESPACE = uuid.UUID("6f1d7a52-3c0b-5e8e-9a41-2b7d0c9e4f18")
# Neutron's agent timestamps: no "T", no zone (UTC)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class AgentConfigurations(TypedDict, total=False):
    """What the agent reports as Neutron's ``configurations``: how the host peers."""

    bgp_address: str
    bgp_address6: str
    as_number: int
    agent_version: str


class AgentRecord(TypedDict, total=False):
    host: str
    agent_version: str
    registered_at: str  # when this lease was taken: Neutron's started_at (TIME_FORMAT)
    created_at: str  # the host's first registration (kept across re-registrations)
    agent_type: str  # AGENT_TYPE
    binary: str  # BINARY
    topic: str  # TOPIC
    availability_zone: str | None  # None: per-host agents have no zone in Neutron
    configurations: AgentConfigurations


class AgentAdmin(TypedDict, total=False):
    """The operator's settings of one agent (``PUT /v2.0/agents/{id}``)."""

    admin_state_up: bool  # default True
    description: str | None  # default None
    created_at: str  # when the operator first set something; informational


def agent_id(host: str) -> str:
    return str(uuid.uuid5(AGENT_NAMESPACE, host))


__all__ = [
    "AGENT_NAMESPACE",
    "AGENT_TYPE",
    "BINARY",
    "TIME_FORMAT",
    "TOPIC",
    "AgentAdmin",
    "AgentConfigurations",
    "AgentRecord",
    "agent_id",
]
