"""BIRD 2 configuration as a pure function of a host's BGP settings and its peers.

What the rendered configuration does, and why:

- the ``kernel`` protocols *learn* routeplane's device routes (``krt_source`` = our route
  protocol number, 77) and nothing else the kernel holds, and install what peers announce
  (those show as ``proto bird``). ``netlink rx buffer`` is large, because with the default
  buffer a burst of 10,000 route changes overflows it and BIRD falls back to its periodic
  scan: convergence in seconds instead of milliseconds;
- BGP exports only what came from the kernel (our routes, ``RTS_INHERIT``) with this host
  as next hop; IPv6 routes ride the same IPv4 session with the host's IPv6 fabric address
  as next hop (``next hop address``), so a host has one session per peer, not two;
- ``graceful restart`` on both sides (a restarting BIRD or agent does not flap the
  routes), ``bfd`` so a dead peer is noticed in a fraction of a second, and short
  ``connect delay``/``connect retry``/``error wait`` times so a broken session comes back
  in seconds, not BIRD's default minutes;
- peers are sorted and named from their host name or address, so the same inputs give
  the same bytes: the agent compares texts to decide whether ``birdc configure`` is due.

Make-before-break for a moved address (``docs/design/agent.md``, *Moved addresses*). The
new host installs the address's route at the preferred kernel metric
(:data:`PREFERRED_METRIC`); BIRD ranks what it knows of one address like this:

| route | BIRD ``preference`` | announced with ``bgp_local_pref`` |
|---|---|---|
| ours from the kernel, preferred metric (moved here) | 201 | 200 |
| learned over BGP with local preference ≥ 200 (moved there) | 200 | (not re-announced) |
| ours from the kernel, any other metric (ordinary, or draining) | 101 | 100 |
| learned over BGP, ordinary | 100 (BGP's default) | (not re-announced) |

So the new host announces its route at once and keeps it over the old host's; every
other host and the access node take the new one as soon as they hear of it (local
preference decides between BGP routes); and the old host, hearing it, stops announcing
its own and installs the new one in its kernel — at :data:`BIRD_METRIC`, below the
ordinary metric of the route it held, so its kernel forwards there at once too.
``merge paths`` stays off: an address belongs to one VM, and two equal routes to it
would split flows between two VMs rather than spread load.

``access_config`` renders the other end for an access node or top-of-rack router: a
dynamic BGP listener that accepts any host from the fabric ranges, installs what they
announce (the best route only: a moved address's new host by its local preference) and
announces nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from routeplane.model.routing import BIRD_METRIC, PREFERRED_METRIC, ROUTE_PROTO

LOCAL_PREF, PREFERRED_LOCAL_PREF = 100, 200


@dataclass(frozen=True)
class Peer:
    """One BGP neighbour of a host. ``name`` is a host name or empty (then the address
    names the protocol); ``rr_client`` when this host reflects routes to it."""

    address: str
    as_number: int
    name: str = ""
    rr_client: bool = False

    @property
    def protocol(self) -> str:
        return protocol_name(self.name or self.address, "peer_" if not self.name else "host_")


@dataclass(frozen=True)
class Timers:
    """Session timers. BIRD's defaults (hold 240 s, connect retry 120 s, error wait up to
    300 s) suit the Internet, not a data-centre fabric where a VM address must follow its
    VM in well under a second."""

    hold: int = 9
    keepalive: int = 3
    connect_delay: int = 1
    connect_retry: int = 2
    error_wait: tuple[int, int] = (1, 10)
    bfd_interval_ms: int = 100
    bfd_multiplier: int = 3
    netlink_rx_buffer: int = 8 * 1024 * 1024
    scan_time: int = 10


@dataclass(frozen=True)
class HostBgp:
    """Everything one host's BIRD configuration depends on."""

    host: str
    router_id: str  # the host's IPv4 fabric address; also the session's local address
    as_number: int
    peers: tuple[Peer, ...]
    address6: str = ""  # IPv6 fabric address: the next hop of the IPv6 routes we announce
    reflector: bool = False  # a route reflector (its clients are marked on the peers)
    bfd: bool = True
    log_path: str = ""
    route_proto: int = ROUTE_PROTO
    preferred_metric: int = PREFERRED_METRIC
    timers: Timers = field(default_factory=Timers)


def protocol_name(text: str, prefix: str) -> str:
    """A BIRD protocol name (letters, digits, underscores) for a host name or address."""
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", text)


def mesh_peers(
    host: str,
    hosts: dict[str, tuple[str, int]],
    *,
    extra: Sequence[Peer] = (),
    reflectors: Sequence[str] = (),
    reflector: bool = False,
) -> tuple[Peer, ...]:
    """The peers of ``host`` given the registry (host → (address, AS)).

    Full mesh by default: every other registered host. With ``reflectors``, only those
    addresses (plus ``extra``); a host that *is* a reflector peers with every registered
    host and marks those that are not reflectors as its clients."""
    own = hosts.get(host, ("", 0))[0]
    chosen: dict[str, Peer] = {}
    for name, (address, as_number) in sorted(hosts.items()):
        if name == host or not address or address == own:
            continue
        if reflectors and not reflector and address not in reflectors:
            continue
        client = reflector and address not in reflectors
        chosen[address] = Peer(address, as_number, name=name, rr_client=client)
    for peer in extra:
        if peer.address != own:
            chosen.setdefault(peer.address, peer)
    return tuple(sorted(chosen.values(), key=lambda p: (p.protocol, p.address)))


def render(config: HostBgp) -> str:
    """The host's whole ``bird.conf``."""
    t = config.timers
    lines = [
        f"# routeplane: BIRD configuration of host {config.host}.",
        "# Generated by the routeplane agent; it rewrites this file when its inputs change.",
        "",
    ]
    if config.log_path:
        lines.append(f'log "{config.log_path}" {{ info, warning, error, fatal }};')
    lines += [
        f"router id {config.router_id};",
        "",
        "protocol device { scan time 10; }",
        "",
        "# Connected fabric networks: what the peers' next hops resolve through.",
        'protocol direct { ipv4; ipv6; interface -"tap*", "*"; }',
        "",
    ]
    lines += _preference_filters(config)
    for family in ("4", "6"):
        lines += [
            f"protocol kernel kernel{family} {{",
            f"  ipv{family} {{",
            "    import filter routeplane_from_kernel;  # routeplane's device routes",
            "    export where source = RTS_BGP;  # what the peers announce",
            "  };",
            "  learn;",
            f"  metric {BIRD_METRIC};",
            "  graceful restart;",
            f"  scan time {t.scan_time};",
            f"  netlink rx buffer {t.netlink_rx_buffer};",
            "}",
            "",
        ]
    if config.bfd:
        lines += _bfd(t)
    lines += [
        "template bgp fabric {",
        f"  local {config.router_id} as {config.as_number};",
        f"  hold time {t.hold};",
        f"  keepalive time {t.keepalive};",
        f"  connect delay time {t.connect_delay};",
        f"  connect retry time {t.connect_retry};",
        f"  error wait time {t.error_wait[0]}, {t.error_wait[1]};",
        "  graceful restart on;",
    ]
    if config.bfd:
        lines.append("  bfd on;")
    # a reflector reflects the clients' routes too, keeping their next hops; the others
    # announce only the routes learned from the kernel: ours
    self_hop = "next hop self ebgp;" if config.reflector else "next hop self;"
    lines += [
        "  ipv4 {",
        "    import filter routeplane_from_peers;",
        "    export filter routeplane_to_peers;",
        f"    {self_hop}",
        "  };",
        "  ipv6 {",
        "    import filter routeplane_from_peers;",
        "    export filter routeplane_to_peers;",
    ]
    if config.address6:
        lines.append(f"    next hop address {config.address6};")
    else:
        lines.append(f"    {self_hop}")
    lines += ["  };", "}", ""]
    for peer in config.peers:
        lines.append(f"protocol bgp {peer.protocol} from fabric {{")
        lines.append(f"  neighbor {peer.address} as {peer.as_number};")
        if peer.rr_client:
            lines.append("  rr client;")
        lines.append("}")
    return "\n".join(lines).rstrip("\n") + "\n"


def access_config(
    address: str,
    as_number: int,
    neighbor_ranges: Sequence[str],
    *,
    address6: str = "",
    log_path: str = "",
    timers: Timers | None = None,
) -> str:
    """An access node's (or top-of-rack's) ``bird.conf``: accept iBGP from any host in
    ``neighbor_ranges``, install what they announce, announce nothing. An IPv6 range
    needs the node's own IPv6 address (``address6``): BIRD runs BFD on a dynamic session
    only from a known local address."""
    t = timers or Timers()
    lines = ["# routeplane: BIRD configuration of an access node.", ""]
    if log_path:
        lines.append(f'log "{log_path}" {{ info, warning, error, fatal }};')
    lines += [
        f"router id {address};",
        "",
        "protocol device { scan time 10; }",
        'protocol direct { ipv4; ipv6; interface "*"; }',
        "",
    ]
    for family in ("4", "6"):
        lines += [
            f"protocol kernel kernel{family} {{",
            f"  ipv{family} {{ import none; export where source = RTS_BGP; }};",
            f"  netlink rx buffer {t.netlink_rx_buffer};",
            "}",
            "",
        ]
    lines += _bfd(t)
    for index, prefix in enumerate(neighbor_ranges):
        network = ipaddress.ip_network(prefix, strict=False)
        local_address = address6 if network.version == 6 else address
        if not local_address:
            raise ValueError(f"neighbor range {network}: the access node needs an IPv6 address")
        local = f"  local {local_address} as {as_number};"
        lines += [
            f"protocol bgp hosts{index} {{",
            local,
            f"  neighbor range {network} as {as_number};",
            f'  dynamic name "host{index}_";',
            f"  hold time {t.hold};",
            f"  keepalive time {t.keepalive};",
            "  graceful restart on;",
            "  bfd on;",
            "  ipv4 { import all; export none; };",
            "  ipv6 { import all; export none; };",
            "}",
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _preference_filters(config: HostBgp) -> list[str]:
    """The filters that rank a moved address's routes (see the module docstring)."""
    reflect = ["  if source = RTS_BGP then accept;  # reflected as it came"]
    return [
        f"# Make-before-break for moved addresses: a route moved here (kernel metric "
        f"{config.preferred_metric}) is",
        f"# announced with local preference {PREFERRED_LOCAL_PREF} and wins everywhere; "
        "our other routes lose to",
        "# it but win over the ordinary routes learned over BGP.",
        "filter routeplane_from_kernel {",
        f"  if krt_source != {config.route_proto} then reject;",
        f"  if krt_metric = {config.preferred_metric} then preference = 201;"
        " else preference = 101;",
        "  accept;",
        "}",
        "",
        "filter routeplane_from_peers {",
        f"  if defined(bgp_local_pref) && bgp_local_pref >= {PREFERRED_LOCAL_PREF} then"
        " preference = 200;",
        "  accept;",
        "}",
        "",
        "filter routeplane_to_peers {",
        *(reflect if config.reflector else []),
        "  if source != RTS_INHERIT then reject;",
        f"  if krt_metric = {config.preferred_metric} then"
        f" bgp_local_pref = {PREFERRED_LOCAL_PREF}; else bgp_local_pref = {LOCAL_PREF};",
        "  accept;",
        "}",
        "",
    ]


def _bfd(t: Timers) -> list[str]:
    return [
        "protocol bfd {",
        '  interface "*" {',
        f"    min rx interval {t.bfd_interval_ms} ms;",
        f"    min tx interval {t.bfd_interval_ms} ms;",
        f"    multiplier {t.bfd_multiplier};",
        "  };",
        "}",
        "",
    ]


__all__ = [
    "BIRD_METRIC",
    "LOCAL_PREF",
    "PREFERRED_LOCAL_PREF",
    "PREFERRED_METRIC",
    "ROUTE_PROTO",
    "HostBgp",
    "Peer",
    "Timers",
    "access_config",
    "mesh_peers",
    "render",
]
