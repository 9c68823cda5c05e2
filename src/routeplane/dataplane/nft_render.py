"""The nftables ruleset of one host, rendered piece by piece: pure functions.

``render(endpoints, groups, members)`` turns the host's endpoint records, the security
groups and the addresses of each group's members into the complete ``nft -f`` script for
the table ``inet routeplane`` — routeplane's only table, its ownership mark. The script
declares the table, deletes it and defines it again, so ``nft -f`` applies it as one
atomic transaction that replaces the previous version entirely and never touches any
other table. The same pieces (``tap_policy``/``tap_elements``, ``profile_chains``,
``classify``, ``table_script``) let the agent keep the table current one change at a
time (``agent/policy.py``) and render the very same text when it must start over.

Shape. Why so few named objects: libnftables reads every chain and set of the table (and
every element of the plain interval sets) before each command, so a table with per-tap
chains or sets costs tens of milliseconds per change at a few thousand taps; here the
number of chains and sets does not grow with the taps, only the number of elements does.

- ``forward`` (policy accept: only traffic to or from our taps is judged): first, on a
  tap in ``guarded`` (port security on), a source address not in ``sources4``/
  ``sources6`` (``tap . address``: fixed IPs and allowed-address pairs) nor in
  ``sourcenets4``/``sourcenets6`` (``tap . prefix``: allowed-address-pair prefixes) is
  dropped — before conntrack's established/related accept, so a VM whose address moved
  away is fenced at once, on its old connections too; then a guarded tap's router
  advertisements, ICMPv6 redirects and DHCP server replies (UDP from port 67 or 547) are
  dropped (a VM is neither router nor DHCP server to the VMs it reaches; a port with
  security off, an admin's appliance, may be); then invalid dropped, then ``from-vm``
  jumps to the egress chain of
  the tap's security groups (its rules ``return``, so the destination still judges
  VM-to-VM traffic; anything else is dropped) and ``to-vm`` to their ingress chain (rules
  ``accept``, then drop);
- ``egress-<profile>``/``ingress-<profile>``: one pair per combination of groups in use
  (``profile_name``), shared by every tap with that combination;
- ``remote_group_id`` matches ``rg4-<group>``/``rg6-<group>`` (member addresses) or
  ``rgn4-<group>``/``rgn6-<group>`` (member prefixes). Addresses and prefixes are kept
  apart because libnftables reads every element of a plain interval set before any
  command: the many addresses go in hash sets it never reads, the few prefixes in
  interval sets (the ``tap . …`` concatenations use the kernel's pipapo sets, which it
  does not read either, but whose updates copy the whole set: hash again for addresses);
- ``input``: from any tap in ``vm-taps`` router advertisements, redirects and DHCP
  server replies are dropped first (the host takes no route or lease from a VM), then
  from a guarded tap a spoofed source as in ``forward`` (except 0.0.0.0, ``::`` and
  link-local sources: DHCP, DHCPv6 and neighbour discovery before an address); then only
  DHCP, DHCPv6 and DNS requests, ICMPv6 neighbour discovery and the metadata service
  (tcp 169.254.169.254:80, [fe80::a9fe:a9fe]:80) reach the host (Felix's
  ``DefaultEndpointToHostAction`` drop);
- floating IPs: ``dnat`` floating → fixed in prerouting and output (maps ``floating4``/
  ``floating6``), ``snat`` to the floating address only for hairpin (``hairpin4``/
  ``hairpin6``: the VM reaching its own floating IP);
- the fabric: ``fabric4``/``fabric6`` hold every host's fabric addresses (``hosts/``
  records: ``bgp_address``, ``bgp_address6``); ``forward`` drops what any tap in
  ``vm-taps`` sends to them — first, before the established accept — so a VM reaches no
  host's BGP, SSH or agent through its own host (its own host it reaches only by
  ``input``'s few services).

Everything is sorted, so the same input always renders the same text. What this module
must not do: any I/O, or name anything outside ``table inet routeplane``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from routeplane.dataplane.addresses import parse_single
from routeplane.dataplane.model import METADATA_ADDRESS6
from routeplane.model.endpoint import EndpointRecord

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
# What a VM never sends, to its host or through it: it is no router (advertisements,
# redirects) and no DHCP server or relay (replies come from port 67 / 547).
ROUTER_ONLY = "icmpv6 type { nd-router-advert, nd-redirect } drop"
SERVER_REPLIES = "udp sport { 67, 547 } drop"
# Anti-spoofing: a guarded tap sends only from its port's addresses and prefixes.
SPOOFED4 = "iifname . ip saddr != @sources4 iifname . ip saddr != @sourcenets4 drop"
SPOOFED6 = "iifname . ip6 saddr != @sources6 iifname . ip6 saddr != @sourcenets6 drop"

Key = tuple[str, str]  # (kind, name): ("set" | "map" | "chain", name)

SOURCES: dict[int, Key] = {4: ("set", "sources4"), 6: ("set", "sources6")}
SOURCE_NETS: dict[int, Key] = {4: ("set", "sourcenets4"), 6: ("set", "sourcenets6")}
GUARDED: Key = ("set", "guarded")
VM_TAPS: Key = ("set", "vm-taps")
FROM_VM: Key = ("map", "from-vm")
TO_VM: Key = ("map", "to-vm")
FLOATING: dict[int, Key] = {4: ("map", "floating4"), 6: ("map", "floating6")}
HAIRPIN: dict[int, Key] = {4: ("map", "hairpin4"), 6: ("map", "hairpin6")}
FABRIC: dict[int, Key] = {4: ("set", "fabric4"), 6: ("set", "fabric6")}

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,200}")


def _head(kind: str, interval: bool = False) -> str:
    return f"\t\ttype {kind}\n" + ("\t\tflags interval\n" if interval else "")


def _chain(*rules: str) -> str:
    return "".join(f"\t\t{rule}\n" for rule in rules)


def _nat(hook: str, priority: str, *rules: str) -> str:
    return _chain(f"type nat hook {hook} priority {priority}; policy accept;", *rules)


_DNAT = ("dnat ip to ip daddr map @floating4", "dnat ip6 to ip6 daddr map @floating6")
# Blocks every table has, whatever the endpoints: sets and maps (their type and flags;
# elements come from the taps) and the chains that hook into the kernel.
FIXED: dict[Key, str] = {
    SOURCES[4]: _head("ifname . ipv4_addr"),
    SOURCES[6]: _head("ifname . ipv6_addr"),
    SOURCE_NETS[4]: _head("ifname . ipv4_addr", interval=True),
    SOURCE_NETS[6]: _head("ifname . ipv6_addr", interval=True),
    GUARDED: _head("ifname"),
    VM_TAPS: _head("ifname"),
    FABRIC[4]: _head("ipv4_addr"),
    FABRIC[6]: _head("ipv6_addr"),
    FLOATING[4]: _head("ipv4_addr : ipv4_addr"),
    FLOATING[6]: _head("ipv6_addr : ipv6_addr"),
    HAIRPIN[4]: _head("ipv4_addr . ipv4_addr . ipv4_addr : ipv4_addr"),
    HAIRPIN[6]: _head("ipv6_addr . ipv6_addr . ipv6_addr : ipv6_addr"),
    FROM_VM: _head("ifname : verdict"),
    TO_VM: _head("ifname : verdict"),
    ("chain", "from-vm-to-host"): _chain(
        ROUTER_ONLY,
        SERVER_REPLIES,
        # to the host too (a forged source would have the host answer someone else),
        # but for what a VM sends before it has an address: DHCP from 0.0.0.0, neighbour
        # discovery and DHCPv6 from its link-local address or ::
        f"iifname @guarded ip saddr != 0.0.0.0 {SPOOFED4}",
        f"iifname @guarded ip6 saddr != {{ ::, fe80::/10 }} {SPOOFED6}",
        "ct state established,related accept",
        "ct state invalid drop",
        "udp dport { 53, 67, 547 } accept",
        "tcp dport 53 accept",
        f"icmpv6 type {{ {ND_TYPES} }} accept",
        f"ip daddr {METADATA_ADDRESS} tcp dport 80 accept",
        f"ip6 daddr {METADATA_ADDRESS6} tcp dport 80 accept",
        "drop",
    ),
    ("chain", "forward"): _chain(
        "type filter hook forward priority filter; policy accept;",
        # no host of the fabric is reached through this one, not even on a connection
        # the VM had before the address became a host's
        "iifname @vm-taps ip daddr @fabric4 drop",
        "iifname @vm-taps ip6 daddr @fabric6 drop",
        # anti-spoofing before the established accept: a VM whose address moved away is
        # fenced at its next packet, also on connections it already had
        f"iifname @guarded {SPOOFED4}",
        f"iifname @guarded {SPOOFED6}",
        f"iifname @guarded {ROUTER_ONLY}",
        f"iifname @guarded {SERVER_REPLIES}",
        "ct state established,related accept",
        "iifname @guarded ct state invalid drop",
        "oifname @guarded ct state invalid drop",
        "iifname vmap @from-vm",
        "oifname vmap @to-vm",
    ),
    ("chain", "input"): _chain(
        "type filter hook input priority filter; policy accept;",
        "iifname @vm-taps jump from-vm-to-host",
    ),
    ("chain", "nat-prerouting"): _nat("prerouting", "dstnat", *_DNAT),
    ("chain", "nat-output"): _nat("output", "-100", *_DNAT),
    ("chain", "nat-postrouting"): _nat(
        "postrouting",
        "srcnat",
        "snat ip to ip saddr . ip daddr . ct original ip daddr map @hairpin4",
        "snat ip6 to ip6 saddr . ip6 daddr . ct original ip6 daddr map @hairpin6",
    ),
}


def _network(text: object) -> _Network | None:
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def _text(network: _Network) -> str:
    whole = network.prefixlen == network.max_prefixlen
    return str(network.network_address) if whole else str(network)


def classify(addresses: Iterable[object]) -> dict[int, tuple[set[str], set[str]]]:
    """Each IP version's single addresses and prefixes, as canonical text (single
    addresses through the shared cache: there are tens of thousands of them)."""
    found: dict[int, tuple[set[str], set[str]]] = {4: (set(), set()), 6: (set(), set())}
    for address in addresses:
        text = str(address)
        single = parse_single(text)
        if single is not None:
            found[single[0]][0].add(single[1])
            continue
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        whole = network.prefixlen == network.max_prefixlen
        found[network.version][0 if whole else 1].add(_text(network))
    return found


def canonical(addresses: Iterable[object], version: int) -> list[str]:
    """The addresses and prefixes of one IP version as interval-set elements: de-duplicated,
    without any that a wider one already covers (the kernel refuses overlapping intervals),
    sorted."""
    networks = {n for a in addresses if (n := _network(a)) is not None and n.version == version}
    kept: list[_Network] = []
    for network in sorted(networks, key=lambda n: (int(n.network_address), n.prefixlen)):
        if not kept or int(network.broadcast_address) > int(kept[-1].broadcast_address):
            kept.append(network)
    return [_text(n) for n in kept]


def endpoint_addresses(endpoint: EndpointRecord) -> list[str]:
    """The addresses a port may send from and is reached on: fixed IPs and pairs."""
    return [
        str(a) for a in (*endpoint.get("fixed_ips", []), *endpoint.get("allowed_addresses", []))
    ]


def safe_name(text: str) -> str:
    """``text`` if it can be part of an nft name as it is, else a digest of it."""
    if _SAFE.fullmatch(text):
        return text
    return "h" + hashlib.sha256(text.encode()).hexdigest()[:24]


@lru_cache(maxsize=4096)
def group_set_names(group_id: str, version: int) -> tuple[Key, Key]:
    """The member-address set and the member-prefix set of one group and IP version
    (asked for each member of each group: cached)."""
    name = safe_name(group_id)
    return ("set", f"rg{version}-{name}"), ("set", f"rgn{version}-{name}")


def group_sets(group_id: str, version: int) -> dict[Key, str]:
    kind = "ipv4_addr" if version == 4 else "ipv6_addr"
    hosts, nets = group_set_names(group_id, version)
    return {hosts: _head(kind), nets: _head(kind, interval=True)}


def profile_name(groups: Sequence[str]) -> str:
    """The name shared by the chains of one combination of security groups."""
    if groups and all(_SAFE.fullmatch(g) for g in groups) and len(".".join(groups)) <= 200:
        return ".".join(groups)
    return safe_name(json.dumps(list(groups)))


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


def _rule(rule: Mapping[str, Any], direction: str) -> tuple[list[str], tuple[str, int] | None]:
    """One security-group rule as nft matches (without verdict; two for a remote group:
    its addresses and its prefixes; none for a rule that can never match) and the remote
    group whose sets it needs, if any."""
    version = 6 if str(rule.get("ethertype", "IPv4")).lower() == "ipv6" else 4
    family = "ip" if version == 4 else "ip6"
    remote = "saddr" if direction == "ingress" else "daddr"
    parts = [f"meta nfproto ipv{version}"]
    prefix = rule.get("remote_ip_prefix")
    group = rule.get("remote_group_id")
    need = None
    if prefix:
        network = _network(prefix)
        if network is None or network.version != version:
            return [], None
        if network.prefixlen:
            parts.append(f"{family} {remote} {network}")
    elif group:
        need = (str(group), version)
        parts.append(f"{family} {remote} @{{set}}")
    try:
        number = _protocol_number(rule.get("protocol"), version)
    except ValueError:
        return [], None  # the api accepts no such rule; one from elsewhere admits nothing
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
    match = " ".join(parts)
    if need is None:
        return [match], None
    sets = group_set_names(*need)
    return [match.replace("{set}", key[1]) for key in sets], need


def _group_rules(
    groups: Sequence[str], docs: Mapping[str, Mapping[str, Any]], direction: str
) -> tuple[list[str], set[tuple[str, int]]]:
    matches: set[str] = set()
    needed: set[tuple[str, int]] = set()
    for group_id in groups:
        for rule in docs.get(group_id, {}).get("security_group_rules", []):
            if rule.get("direction") != direction:
                continue
            rendered, need = _rule(rule, direction)
            matches.update(rendered)
            if need is not None:
                needed.add(need)
    return sorted(matches), needed


def profile_chains(
    groups: Sequence[str], docs: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[Key, str], frozenset[tuple[str, int]]]:
    """The egress and ingress chains of one combination of groups (sorted ids), and the
    remote groups (id, IP version) whose sets their rules match."""
    name = profile_name(groups)
    egress, need_out = _group_rules(groups, docs, "egress")
    ingress, need_in = _group_rules(groups, docs, "ingress")
    chains = {
        ("chain", f"egress-{name}"): _chain(*(f"{m} return" for m in egress), "drop"),
        ("chain", f"ingress-{name}"): _chain(*(f"{m} accept" for m in ingress), "drop"),
    }
    return chains, frozenset(need_out | need_in)


@dataclass(frozen=True)
class TapPolicy:
    """What the endpoints on one tap ask of the table (all of them at once: a tap could
    carry several ports; it is guarded if any of them has port security)."""

    guarded: bool
    groups: tuple[str, ...]  # sorted, unique: the tap's profile
    hosts: tuple[tuple[str, ...], tuple[str, ...]]  # IPv4, IPv6 addresses it may send from
    nets: tuple[tuple[str, ...], tuple[str, ...]]  # IPv4, IPv6 prefixes (canonical)
    floating: tuple[tuple[int, str, str], ...]  # (version, floating, fixed), sorted


def tap_policy(endpoints: Iterable[EndpointRecord]) -> TapPolicy:
    endpoints = list(endpoints)
    own = classify(a for e in endpoints for a in endpoint_addresses(e))
    pairs = set()
    for endpoint in endpoints:
        for nat in endpoint.get("floating_ips", []):
            floating = _network(nat.get("floating_ip_address"))
            fixed = _network(nat.get("fixed_ip_address"))
            if floating and fixed and floating.version == fixed.version:
                pairs.add(
                    (floating.version, str(floating.network_address), str(fixed.network_address))
                )
    return TapPolicy(
        guarded=any(e.get("port_security_enabled", True) for e in endpoints),
        groups=tuple(sorted({str(g) for e in endpoints for g in e.get("security_groups", [])})),
        hosts=(tuple(sorted(own[4][0])), tuple(sorted(own[6][0]))),
        nets=(tuple(canonical(own[4][1], 4)), tuple(canonical(own[6][1], 6))),
        floating=tuple(sorted(pairs)),
    )


def tap_elements(tap: str, policy: TapPolicy) -> dict[Key, frozenset[str]]:
    """The elements one tap puts into the table's shared sets and maps."""
    name = f'"{tap}"'
    found: dict[Key, frozenset[str]] = {VM_TAPS: frozenset((name,))}
    if policy.guarded:
        profile = profile_name(policy.groups)
        found[GUARDED] = frozenset((name,))
        found[FROM_VM] = frozenset((f"{name} : jump egress-{profile}",))
        found[TO_VM] = frozenset((f"{name} : jump ingress-{profile}",))
        for index, version in enumerate((4, 6)):
            for key, elements in ((SOURCES, policy.hosts), (SOURCE_NETS, policy.nets)):
                if elements[index]:
                    found[key[version]] = frozenset(f"{name} . {a}" for a in elements[index])
    for version, floating, fixed in policy.floating:
        hairpin = f"{fixed} . {fixed} . {floating} : {floating}"
        found[FLOATING[version]] = found.get(FLOATING[version], frozenset()) | {
            f"{floating} : {fixed}"
        }
        found[HAIRPIN[version]] = found.get(HAIRPIN[version], frozenset()) | {hairpin}
    return found


def _rank(key: Key, head: str) -> tuple[int, str]:
    """Definition order: a name is declared before anything refers to it — data sets,
    regular chains (their rules use the sets), verdict maps (they jump to the chains),
    then the base chains."""
    if key[0] == "chain":
        return (3 if "hook" in head else 1), key[1]
    return (2 if ": verdict" in head else 0), key[1]


def block(key: Key, head: str, elements: Collection[str] = ()) -> str:
    """One named block as ``nft -f`` text; a set's or map's elements sorted."""
    body = head + (f"\t\telements = {{ {', '.join(sorted(elements))} }}\n" if elements else "")
    return f"\t{key[0]} {key[1]} {{\n{body}\t}}\n"


def table_script(heads: Mapping[Key, str], elements: Mapping[Key, Collection[str]]) -> str:
    """The script replacing the whole table with these blocks (a chain's head is its
    body; a set's or map's is its type and flags, its elements are in ``elements``)."""
    order = sorted(heads, key=lambda k: _rank(k, heads[k]))
    body = "".join(block(k, heads[k], elements.get(k, ())) for k in order)
    return (
        f"table {FAMILY} {TABLE}\n"
        f"delete table {FAMILY} {TABLE}\n"
        f"table {FAMILY} {TABLE} {{\n{body}}}\n"
    )


def fabric_elements(addresses: Iterable[object]) -> dict[Key, frozenset[str]]:
    """The elements of ``fabric4``/``fabric6`` for these host fabric addresses (what is
    not a single address is left out: a host record names addresses, not prefixes)."""
    found = classify(addresses)
    return {FABRIC[v]: frozenset(found[v][0]) for v in (4, 6) if found[v][0]}


def render(
    endpoints: Sequence[EndpointRecord],
    groups: Mapping[str, Mapping[str, Any]],
    members: Mapping[str, Sequence[str]],
    fabric: Iterable[str] = (),
) -> str:
    """The complete ``nft -f`` script for the host's table ``inet routeplane``.

    ``endpoints``: the host's endpoint records; ``groups``: security-group documents by
    id; ``members``: security-group id → the addresses of the ports in it; ``fabric``:
    every host's fabric addresses.
    """
    by_tap: dict[str, list[EndpointRecord]] = {}
    for endpoint in endpoints:
        if endpoint.get("interface"):
            by_tap.setdefault(str(endpoint["interface"]), []).append(endpoint)
    heads = dict(FIXED)
    elements: dict[Key, set[str]] = {k: set(v) for k, v in fabric_elements(fabric).items()}
    profiles = set()
    for tap, on_tap in by_tap.items():
        policy = tap_policy(on_tap)
        for key, found in tap_elements(tap, policy).items():
            elements.setdefault(key, set()).update(found)
        if policy.guarded:
            profiles.add(policy.groups)
    for key in FLOATING.values():  # one fixed IP per floating IP, even if two ports claim it
        winners: dict[str, str] = {}
        for element in sorted(elements.get(key, ())):
            winners.setdefault(element.partition(" : ")[0], element)
        elements[key] = set(winners.values())
    needed: set[tuple[str, int]] = set()
    for profile in profiles:
        chains, needs = profile_chains(profile, groups)
        heads.update(chains)
        needed |= needs
    for group_id, version in needed:
        heads.update(group_sets(group_id, version))
        hosts, nets = classify(members.get(group_id, []))[version]
        host_key, net_key = group_set_names(group_id, version)
        elements[host_key] = hosts
        elements[net_key] = set(canonical(nets, version))
    return table_script(heads, elements)


__all__ = [
    "FABRIC",
    "FAMILY",
    "FIXED",
    "FLOATING",
    "METADATA_ADDRESS",
    "METADATA_ADDRESS6",
    "TABLE",
    "Key",
    "TapPolicy",
    "block",
    "canonical",
    "classify",
    "endpoint_addresses",
    "fabric_elements",
    "group_set_names",
    "group_sets",
    "profile_chains",
    "profile_name",
    "render",
    "safe_name",
    "table_script",
    "tap_elements",
    "tap_policy",
]
