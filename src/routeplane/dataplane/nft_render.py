"""The nftables ruleset of one host, rendered as an ``nft -f`` script: a pure function.

``render(endpoints, groups, members)`` turns the host's endpoint records, the security
groups they use and the addresses of each group's members into the complete text of the
table ``inet routeplane`` — routeplane's only table, its ownership mark. The script
declares the table, deletes it and defines it again, so ``nft -f`` applies it as one
atomic transaction that replaces the previous version entirely (stale chains and sets go
with it) and never touches any other table.

Shape (all names sorted, so the same input always renders the same text):

- ``forward`` (policy accept: only traffic to or from our taps is judged): conntrack
  established/related accepted, invalid dropped on our taps; from a tap → ``from-<tap>``,
  to a tap → ``to-<tap>``;
- ``from-<tap>``: anti-spoofing (the source must be in the port's address sets
  ``src4-<tap>``/``src6-<tap>``: fixed IPs and allowed-address pairs), then the egress
  rules of its groups (``return``, so the destination's ``to-<tap>`` still judges
  VM-to-VM traffic), then drop;
- ``to-<tap>``: the ingress rules of its groups (``accept``), then drop;
- a port with ``port_security_enabled`` false gets neither chain (nothing filtered);
- ``input``: from a tap only DHCP, DHCPv6, DNS, ICMPv6 neighbour discovery and the metadata
  address (tcp 169.254.169.254:80) reach the host;
- ``remote_group_id`` matches the set ``rg4-<group>``/``rg6-<group>`` of member addresses;
- floating IPs: ``dnat`` floating → fixed in prerouting and output (one map per family),
  ``snat`` to the floating address only for hairpin (the VM reaching its own floating IP).

What this module must not do: any I/O, or name anything outside ``table inet routeplane``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TABLE = "routeplane"
FAMILY = "inet"
METADATA_ADDRESS = "169.254.169.254"

PROTOCOLS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
    "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46,
    "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}  # fmt: skip
ANY_PROTOCOL = (None, "", "any", "ip")
PORT_PROTOCOLS = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp", 136: "udplite"}
ND_TYPES = "nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert"

_Address = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(text: str) -> _Address | None:
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def _elements(addresses: Iterable[str], version: int) -> list[str]:
    """Canonical, de-duplicated, sorted set elements of one IP version."""
    networks = {n for a in addresses if (n := _network(a)) is not None and n.version == version}
    ordered = sorted(networks, key=lambda n: (int(n.network_address), n.prefixlen))
    return [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in ordered]


def _set(name: str, version: int, elements: list[str]) -> list[str]:
    kind = "ipv4_addr" if version == 4 else "ipv6_addr"
    lines = [f"\tset {name} {{", f"\t\ttype {kind}", "\t\tflags interval", "\t\tauto-merge"]
    if elements:
        lines.append(f"\t\telements = {{ {', '.join(elements)} }}")
    return [*lines, "\t}"]


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _verdicts(taps: Iterable[str], side: str) -> str:
    return ", ".join(f'"{t}" : jump {side}-{t}' for t in taps)


def _protocol_number(protocol: Any, version: int) -> int | None:
    """The IP protocol number of a rule (``None``: any protocol)."""
    if protocol in ANY_PROTOCOL:
        return None
    text = str(protocol).lower()
    number = int(text) if text.isdigit() else PROTOCOLS.get(text)
    if number is None:
        raise ValueError(f"unknown protocol {protocol!r}")
    if version == 6 and number == 1:
        number = 58  # Neutron stores IPv6 "icmp" as ipv6-icmp
    return number


def group_set_name(group_id: str, version: int) -> str:
    return f"rg{version}-{group_id}"


def _rule(rule: Mapping[str, Any], direction: str) -> tuple[str, int] | None:
    """One security-group rule as an nft match (without verdict) and the remote group it
    needs a set for (as its IP version, 0 for none); ``None`` if it never matches."""
    version = 6 if str(rule.get("ethertype", "IPv4")).lower() == "ipv6" else 4
    family = "ip" if version == 4 else "ip6"
    remote = "saddr" if direction == "ingress" else "daddr"
    parts = [f"meta nfproto ipv{version}"]
    prefix = rule.get("remote_ip_prefix")
    group = rule.get("remote_group_id")
    if prefix:
        network = _network(prefix)
        if network is None or network.version != version:
            return None
        if network.prefixlen:
            parts.append(f"{family} {remote} {network}")
    elif group:
        parts.append(f"{family} {remote} @{group_set_name(str(group), version)}")
    number = _protocol_number(rule.get("protocol"), version)
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    if number is None:
        pass
    elif number in PORT_PROTOCOLS and low is not None:
        name = PORT_PROTOCOLS[number]
        top = high if high is not None else low
        ports = str(low) if int(top) == int(low) else f"{low}-{top}"
        parts.append(f"{name} dport {ports}")
    elif number in (1, 58) and low is not None:
        icmp = "icmp" if number == 1 else "icmpv6"
        parts.append(f"meta l4proto {icmp} {icmp} type {int(low)}")
        if high is not None:
            parts.append(f"{icmp} code {int(high)}")
    else:
        named = {1: "icmp", 58: "ipv6-icmp", **PORT_PROTOCOLS}.get(number, str(number))
        parts.append(f"meta l4proto {named}")
    return " ".join(parts), (version if group and not prefix else 0)


def _group_rules(
    endpoint: Mapping[str, Any], groups: Mapping[str, Mapping[str, Any]], direction: str
) -> tuple[list[str], set[tuple[str, int]]]:
    matches: set[str] = set()
    needed: set[tuple[str, int]] = set()
    for group_id in endpoint.get("security_groups", []):
        for rule in groups.get(group_id, {}).get("security_group_rules", []):
            if rule.get("direction") != direction:
                continue
            rendered = _rule(rule, direction)
            if rendered is None:
                continue
            match, version = rendered
            matches.add(match)
            if version:
                needed.add((str(rule["remote_group_id"]), version))
    return sorted(matches), needed


def _nat_pairs(endpoints: Sequence[Mapping[str, Any]], version: int) -> list[tuple[str, str]]:
    pairs = set()
    for endpoint in endpoints:
        for nat in endpoint.get("floating_ips", []):
            floating = _network(nat["floating_ip_address"])
            fixed = _network(nat["fixed_ip_address"])
            if floating and fixed and floating.version == fixed.version == version:
                pairs.add((str(floating.network_address), str(fixed.network_address)))
    return sorted(pairs)


def render(
    endpoints: Sequence[Mapping[str, Any]],
    groups: Mapping[str, Mapping[str, Any]],
    members: Mapping[str, Sequence[str]],
) -> str:
    """The complete ``nft -f`` script for the host's table ``inet routeplane``.

    ``endpoints``: the host's endpoint records; ``groups``: security-group documents by
    id; ``members``: security-group id → the addresses of the ports in it.
    """
    by_tap = {str(e["interface"]): e for e in endpoints}
    taps = sorted(by_tap)
    guarded = [t for t in taps if by_tap[t].get("port_security_enabled", True)]
    sets: list[str] = []
    chains: list[str] = []
    needed: set[tuple[str, int]] = set()

    for tap in guarded:
        endpoint = by_tap[tap]
        own = [*endpoint.get("fixed_ips", []), *endpoint.get("allowed_addresses", [])]
        sets += _set(f"src4-{tap}", 4, _elements(own, 4))
        sets += _set(f"src6-{tap}", 6, _elements(own, 6))
        egress, need_out = _group_rules(endpoint, groups, "egress")
        ingress, need_in = _group_rules(endpoint, groups, "ingress")
        needed |= need_out | need_in
        chains += [
            f"\tchain from-{tap} {{",
            f"\t\tip saddr != @src4-{tap} drop",
            f"\t\tip6 saddr != @src6-{tap} drop",
            *(f"\t\t{m} return" for m in egress),
            "\t\tdrop",
            "\t}",
            f"\tchain to-{tap} {{",
            *(f"\t\t{m} accept" for m in ingress),
            "\t\tdrop",
            "\t}",
        ]
    for group_id, version in sorted(needed):
        addresses = members.get(group_id, [])
        sets += _set(group_set_name(group_id, version), version, _elements(addresses, version))

    forward = [
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\tct state established,related accept",
    ]
    if guarded:
        names = _quoted(guarded)
        forward += [
            f"\t\tiifname {{ {names} }} ct state invalid drop",
            f"\t\toifname {{ {names} }} ct state invalid drop",
            f"\t\tiifname vmap {{ {_verdicts(guarded, 'from')} }}",
            f"\t\toifname vmap {{ {_verdicts(guarded, 'to')} }}",
        ]
    forward.append("\t}")

    host = [
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
    ]
    if taps:
        host.append(f"\t\tiifname {{ {_quoted(taps)} }} jump from-vm-to-host")
    host += [
        "\t}",
        "\tchain from-vm-to-host {",
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        "\t\tudp dport { 53, 67, 547 } accept",
        "\t\ttcp dport 53 accept",
        f"\t\ticmpv6 type {{ {ND_TYPES} }} accept",
        f"\t\tip daddr {METADATA_ADDRESS} tcp dport 80 accept",
        "\t\tdrop",
        "\t}",
    ]

    nat: list[str] = []
    dnat: list[str] = []
    snat: list[str] = []
    for version, family in ((4, "ip"), (6, "ip6")):
        pairs = _nat_pairs(endpoints, version)
        if not pairs:
            continue
        elements = ", ".join(f"{f} : {x}" for f, x in pairs)
        nat += [
            f"\tmap floating{version} {{",
            f"\t\ttype ipv{version}_addr : ipv{version}_addr",
            f"\t\telements = {{ {elements} }}",
            "\t}",
        ]
        dnat.append(f"\t\tdnat {family} to {family} daddr map @floating{version}")
        snat += [
            f"\t\t{family} saddr {x} {family} daddr {x} ct original {family} daddr {f} "
            f"snat {family} to {f}"
            for f, x in pairs
        ]
    if dnat:
        for hook, priority in (("prerouting", "dstnat"), ("output", "-100")):
            nat += [
                f"\tchain nat-{hook} {{",
                f"\t\ttype nat hook {hook} priority {priority}; policy accept;",
                *dnat,
                "\t}",
            ]
        nat += [
            "\tchain nat-postrouting {",
            "\t\ttype nat hook postrouting priority srcnat; policy accept;",
            *snat,
            "\t}",
        ]

    body = [*sets, *nat, *forward, *host, *chains]
    header = [
        f"table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
    ]
    return "\n".join([*header, *body, "}"]) + "\n"


__all__ = ["FAMILY", "METADATA_ADDRESS", "TABLE", "group_set_name", "render"]
