"""All resource services over one store, by their URL collection name."""

from __future__ import annotations

from collections.abc import Callable

from routeplane.services.agents import AgentService
from routeplane.services.core.networks import NetworkService
from routeplane.services.core.port_bindings import PortBindings
from routeplane.services.core.ports import PortService
from routeplane.services.core.rbac import RbacPolicyService
from routeplane.services.core.subnet_pools import SubnetPoolService
from routeplane.services.core.subnets import SubnetService
from routeplane.services.l3.floating_ips import FloatingIPService
from routeplane.services.l3.routers import RouterService
from routeplane.services.quotas import Quotas
from routeplane.services.repo import Repo, new_mac
from routeplane.services.resource import ResourceService
from routeplane.services.security.groups import SecurityGroupRuleService, SecurityGroupService
from routeplane.services.service_ips.moves import FixedIPMoves
from routeplane.services.service_ips.service import ServiceIPService
from routeplane.store import Store


class Services:
    def __init__(self, store: Store, *, mac_source: Callable[[], str] = new_mac) -> None:
        """``mac_source`` draws the MACs of new ports (Neutron's fa:16:3e:xx:xx:xx)."""
        self.store = store
        self.repo = Repo(store)
        self.quotas = Quotas(self.repo)
        self.agents = AgentService(self.repo)
        self.networks = NetworkService(self.repo)
        self.subnetpools = SubnetPoolService(self.repo)
        self.subnets = SubnetService(self.repo, self.networks, self.subnetpools)
        self.rbac_policies = RbacPolicyService(self.repo)
        self.security_groups = SecurityGroupService(self.repo)
        self.security_group_rules = SecurityGroupRuleService(self.repo, self.security_groups)
        self.ports = PortService(
            self.repo, self.networks, self.security_groups, self.agents, mac_source
        )
        self.port_bindings = PortBindings(self.ports, self.agents)
        self.routers = RouterService(self.repo, self.networks, self.subnets, self.ports)
        self.floatingips = FloatingIPService(
            self.repo, self.networks, self.ports, self.routers.topology
        )
        self.fixed_ip_moves = FixedIPMoves(self.repo, self.ports)
        self.service_ips = ServiceIPService(self.repo, self.ports, self.fixed_ip_moves)
        # URL path segment -> service; the order is the order of GET /v2.0/
        self.by_path: dict[str, ResourceService] = {
            "networks": self.networks,
            "subnets": self.subnets,
            "subnetpools": self.subnetpools,
            "ports": self.ports,
            "security-groups": self.security_groups,
            "security-group-rules": self.security_group_rules,
            "routers": self.routers,
            "floatingips": self.floatingips,
            "service_ips": self.service_ips,
            "rbac-policies": self.rbac_policies,
        }


__all__ = ["Services"]
