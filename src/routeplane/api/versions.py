"""Version discovery and the extension list: what clients read before anything else.

The extension list names what routeplane implements, each with the alias, name,
description and ``updated`` text Neutron gives it (as a Neutron 29 server lists them, or,
for the few that server did not load, as neutron-lib defines them). Clients test for
aliases before using a feature, and some compare the texts.
"""

from __future__ import annotations

from typing import Any

# alias, name, description, updated
EXTENSIONS: list[tuple[str, str, str, str]] = [
    (
        "quotas",
        "Quota management support",
        "Expose functions for quotas management per project",
        "2012-07-29T10:00:00-00:00",
    ),
    (
        "quota_details",
        "Quota details management support",
        "Expose functions for quotas usage statistics per project",
        "2017-02-10T10:00:00-00:00",
    ),
    (
        "agent",
        "agent",
        "The agent management extension.",
        "2013-02-03T10:00:00-00:00",
    ),
    (
        "binding-extended",
        "Port Bindings Extended",
        "Expose port bindings of a virtual port to external application",
        "2017-07-17T10:00:00-00:00",
    ),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
        "2013-07-23T10:00:00-00:00",
    ),
    (
        "empty-string-filtering",
        "Empty String Filtering Extension",
        "Allow filtering by attributes with empty string value",
        "2018-05-01T10:00:00-00:00",
    ),
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
        "2013-01-14T10:00:00-00:00",
    ),
    (
        "extra_dhcp_opt",
        "Neutron Extra DHCP options",
        "Extra options configuration for DHCP. For example PXE boot options to DHCP clients "
        "can be specified (e.g. tftp-server, server-ip-address, bootfile-name)",
        "2013-03-17T12:00:00-00:00",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filter parameters.",
        "2018-07-04T10:00:00-00:00",
    ),
    (
        "fip-port-details",
        "Floating IP Port Details Extension",
        "Add port_details attribute to Floating IP resource",
        "2018-04-09T10:00:00-00:00",
    ),
    (
        "ip-substring-filtering",
        "IP address substring filtering",
        "Provides IP address substring filtering when listing ports",
        "2017-11-28T09:00:00-00:00",
    ),
    (
        "router",
        "Neutron L3 Router",
        "Router abstraction for basic L3 forwarding between L2 Neutron networks and access "
        "to external networks via a NAT gateway.",
        "2012-07-20T10:00:00-00:00",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
        "2015-03-25T10:00:00-00:00",
    ),
    (
        "net-mtu-writable",
        "Network MTU (writable)",
        "Provides a writable MTU attribute for a network resource.",
        "2017-07-12T00:00:00-00:00",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
        "2016-06-12T00:00:00-00:00",
    ),
    (
        "port-mac-address-regenerate",
        "Neutron Port MAC address regenerate",
        "Network port MAC address regenerate",
        "2018-05-03T10:00:00-00:00",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
        "2014-02-03T10:00:00-00:00",
    ),
    ("port-security", "Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
        "2016-09-09T09:09:09-09:09",
    ),
    (
        "revision-if-match",
        "If-Match constraints based on revision_number",
        "Extension indicating that If-Match based on revision_number is supported.",
        "2016-12-11T00:00:00-00:00",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
        "2016-04-11T10:00:00-00:00",
    ),
    (
        "security-groups-normalized-cidr",
        "Normalized CIDR field for security group rules",
        "Add new field with normalized remote_ip_prefix cidr in SG rule",
        "2020-07-28T10:00:00-00:00",
    ),
    (
        "port-security-groups-filtering",
        "Port filtering on security groups",
        "Provides security groups filtering when listing ports",
        "2018-01-09T09:00:00-00:00",
    ),
    (
        "security-groups-rules-belongs-to-default-sg",
        "Security group rule belongs to the project's default security group",
        "Flag to determine if the security group rule belongs to the project's default "
        "security group",
        "2023-05-23T10:00:00-00:00",
    ),
    (
        "security-groups-shared-filtering",
        "Security group filtering on the shared field",
        "Support filtering security groups on the shared field",
        "2021-10-05T09:00:00-00:00",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
        "2012-10-05T10:00:00-00:00",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
        "2016-06-12T00:00:00-00:00",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
        "2016-02-10T10:00:00-00:00",
    ),
    (
        "stateful-security-group",
        "Stateful security group",
        "Indicates if the security group is stateful or not",
        "2019-11-26T09:00:00-00:00",
    ),
    (
        "subnet-external-network",
        "Subnet belongs to an external network",
        "Informs if the subnet belongs to an external network",
        "2024-02-05T18:00:00-00:00",
    ),
    (
        "tag-creation",
        "Tag creation extension",
        "Allow to create multiple tags for a resource",
        "2024-23-07T10:00:00-00:00",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: port, subnet, subnetpool, "
        "network, security_group, router, floatingip, policy, trunk, network_segment_range",
        "Enables to set tag on resources with standard attribute.",
        "2017-01-01T00:00:00-00:00",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron "
        "standard attributes.",
        "2016-09-12T10:00:00-00:00",
    ),
    # Not loaded by the reference server (texts from neutron-lib's definitions), but ours:
    # sort keys are validated, and ports carry ip_allocation and DNS fields.
    (
        "sort-key-validation",
        "Sort keys validation",
        "Provides validation on sort keys.",
        "2018-07-04T10:00:00-00:00",
    ),
    ("ip_allocation", "IP Allocation", "IP allocation extension.", "2016-06-10T23:00:00-00:00"),
    (
        "l2_adjacency",
        "L2 Adjacency",
        "Display L2 Adjacency for Neutron Networks.",
        "2016-04-12T16:00:00-00:00",
    ),
    (
        "dns-integration",
        "DNS Integration",
        "Provides integration with DNS.",
        "2015-08-15T18:00:00-00:00",
    ),
    (
        "dns-domain-ports",
        "dns_domain for ports",
        "Allows the DNS domain to be specified for a network port.",
        "2017-04-24T10:00:00-00:00",
    ),
    (
        "subnet-dns-publish-fixed-ip",
        "Subnet DNS publish fixed IP",
        "Support choosing to publish DNS records for IPs from a subnet",
        "2019-05-24T10:00:00-00:00",
    ),
    (
        "subnet_allocation",
        "Subnet Allocation",
        "Enables allocation of subnets from a subnet pool",
        "2015-03-30T10:00:00-00:00",
    ),
    (
        "default-subnetpools",
        "Default Subnetpools",
        "Provides ability to mark and use a subnetpool as the default.",
        "2016-02-18T18:00:00-00:00",
    ),
    (
        "subnetpool-prefix-ops",
        "Subnet Pool Prefix Operations",
        "Provides support for adjusting the prefix list of subnet pools",
        "2019-02-08T10:00:00-00:00",
    ),
    (
        "rbac-policies",
        "RBAC Policies",
        "Allows creation and modification of policies that control project access to resources.",
        "2015-06-17T12:15:12-00:00",
    ),
    # routeplane's own (docs/design/service-ips.md)
    (
        "routeplane-fixed-ip-move",
        "Atomic fixed IP move",
        "Moves one fixed IP from one port to another in a single transaction "
        "(PUT /v2.0/ports/{port_id}/move_fixed_ip).",
        "2026-11-24T00:00:00-00:00",
    ),
    (
        "routeplane-service-ip",
        "Service IPs",
        "Addresses that move between the ports of a group, by hand or on failed health "
        "checks (/v2.0/service_ips).",
        "2026-11-24T00:00:00-00:00",
    ),
]
# The core resources GET /v2.0/ lists (Neutron lists no extension resources there).
CORE_RESOURCES = ("network", "subnet", "subnetpool", "port")


def extension_doc(alias: str, name: str, description: str, updated: str) -> dict[str, Any]:
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": updated,
        "links": [],
    }


def extensions() -> list[dict[str, Any]]:
    return [extension_doc(*e) for e in EXTENSIONS]


def versions(base: str) -> dict[str, Any]:
    return {
        "versions": [
            {"id": "v2.0", "status": "CURRENT", "links": [{"href": f"{base}/v2.0/", "rel": "self"}]}
        ]
    }


def resources(base: str, collections: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "resources": [
            {
                "name": member,
                "collection": collection,
                "links": [{"href": f"{base}/v2.0/{collection}", "rel": "self"}],
            }
            for member, collection in collections
            if member in CORE_RESOURCES
        ]
    }


def extension_missing(alias: str) -> dict[str, Any]:
    """webob's own 404 body, which Neutron returns for an unknown extension alias."""
    return {
        "message": "The resource could not be found.<br /><br />\n"
        f"Extension with alias {alias} does not exist\n\n",
        "code": "404 Not Found",
        "title": "Not Found",
    }


__all__ = ["extension_missing", "extensions", "resources", "versions"]
