"""``routeplane agent``: run the host agent for one compute host.

The composition root of the agent: the store from ``--store``, the Linux kernel adapter
(acting on ``--netns`` when given — the lab runs one agent per host namespace from the
root namespace), the host's BIRD when ``--bird-dir`` is given, the health checker of the
service IPs' ports on this host, the metadata service, the DHCPv4 and DHCPv6 servers and
the router advertisements for its VMs (each in threads of its own), and the reconcile loop, until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routeplane.agent.bgp import BgpSettings, BgpSpeaker
from routeplane.agent.health import HealthChecker
from routeplane.agent.loop import Agent
from routeplane.agent.policy import PolicyTable
from routeplane.agent.settings import AgentSettings
from routeplane.bgp.bird import Bird
from routeplane.cli import daemon
from routeplane.cli.coldstart_gc import ColdStartGc
from routeplane.dataplane.model import METADATA_ADDRESS6
from routeplane.dataplane.nft_render import METADATA_ADDRESS
from routeplane.model.errors import DataplaneError
from routeplane.store import Store, open_store

if TYPE_CHECKING:
    from routeplane.agent.metadata import MetadataService
    from routeplane.agent.metrics import AgentMetrics
    from routeplane.agent.nova_proxy import NovaProxy
    from routeplane.agent.tally import Tally
    from routeplane.agent.tap_service import TapService
    from routeplane.cli.observe import Observer


def _speaker(args: argparse.Namespace, store: Store) -> BgpSpeaker | None:
    if not args.bird_dir:
        return None
    if not args.bgp_address:
        raise SystemExit("routeplane agent: --bird-dir needs --bgp-address")
    directory = Path(args.bird_dir).resolve()
    settings = BgpSettings(
        address=args.bgp_address,
        address6=args.bgp_address6 or "",
        as_number=args.as_number,
        peers=tuple(args.bgp_peer),
        reflectors=tuple(args.route_reflector),
        reflector=args.reflector,
        bfd=not args.no_bfd,
        log_path=str(directory / "bird.log"),
    )
    return BgpSpeaker(store, Bird(directory, args.netns), args.host, settings, time.monotonic)


def _metadata(
    args: argparse.Namespace, store: Store, agent: Agent, proxy: NovaProxy | None
) -> MetadataService | None:
    """The metadata service on 169.254.169.254 in the host's namespace (the agent holds
    that address on the host's ``lo``) and on ``fe80::a9fe:a9fe`` (every tap holds it),
    or None: disabled, or it cannot listen — then the VMs go without it and routing goes
    on. Without the IPv6 listener (the host's IPv6 port taken) it serves IPv4 alone."""
    # imported only now: the service's event loop (asyncio) is not needed before the
    # dataplane is programmed, and not at all with --no-metadata
    from routeplane.agent.metadata import MetadataService  # noqa: PLC0415
    from routeplane.dataplane.linux.listener import NamespaceListener, hold_address  # noqa: PLC0415

    if args.no_metadata:
        return None
    try:
        hold_address(args.netns, METADATA_ADDRESS)
        listener = NamespaceListener(args.netns, METADATA_ADDRESS, args.metadata_port)
    except DataplaneError as exc:
        logging.getLogger("routeplane.agent").error("metadata service not started: %s", exc)
        return None
    listeners = [listener]
    try:
        listeners.append(NamespaceListener(args.netns, METADATA_ADDRESS6, args.metadata_port))
    except DataplaneError as exc:
        logging.getLogger("routeplane.agent").error("metadata not served over IPv6: %s", exc)
    if proxy is not None:  # connecting from the host's namespace
        proxy = proxy.using(listener.new_socket)
    service = MetadataService(
        store, args.host, listeners, endpoints=agent.endpoint_feed(), proxy=proxy
    )
    service.start()
    return service


def _nova_proxy(args: argparse.Namespace) -> NovaProxy | None:
    """Proxy mode (``--nova-metadata``): forward to Nova, signing with the secret read
    from ``--metadata-secret-file``; checked before the agent starts."""
    from routeplane.agent.nova_proxy import NovaProxy  # noqa: PLC0415

    if not args.nova_metadata:
        return None
    if not args.metadata_secret_file:
        raise SystemExit("routeplane agent: --nova-metadata needs --metadata-secret-file")
    try:
        secret = Path(args.metadata_secret_file).read_bytes().strip()
        return NovaProxy(args.nova_metadata, secret)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"routeplane agent: metadata proxy: {exc}") from exc


def _tap_services(args: argparse.Namespace, agent: Agent) -> list[TapService[Any]]:
    """The services on the VMs' taps, each on one socket in the host's namespace: the
    DHCPv4 server, the router advertisements and the DHCPv6 server, unless disabled. One whose socket cannot
    be opened is left out (its VMs go without it) and routing goes on."""
    from routeplane.agent.dhcp import DhcpService  # noqa: PLC0415
    from routeplane.agent.dhcp6 import Dhcp6Service  # noqa: PLC0415
    from routeplane.agent.router_adverts import RouterAdverts  # noqa: PLC0415
    from routeplane.dataplane.linux.dhcp6_socket import Dhcp6Socket  # noqa: PLC0415
    from routeplane.dataplane.linux.dhcp_socket import DhcpSocket  # noqa: PLC0415
    from routeplane.dataplane.linux.ra_socket import RaSocket  # noqa: PLC0415

    wanted: list[tuple[bool, Callable[[], Any], Callable[..., TapService[Any]]]] = [
        (args.no_dhcp, lambda: DhcpSocket(args.netns), DhcpService),
        (args.no_ra, lambda: RaSocket(args.netns), RouterAdverts),
        (args.no_dhcp6, lambda: Dhcp6Socket(args.netns), Dhcp6Service),
    ]
    started: list[TapService[Any]] = []
    for disabled, open_socket, kind in wanted:
        if disabled:
            continue
        try:
            sock = open_socket()
        except DataplaneError as exc:
            logging.getLogger("routeplane.agent").error("%s not started: %s", kind.__name__, exc)
            continue
        service = kind(args.host, sock, agent.endpoint_feed())
        service.start()
        started.append(service)
    return started


def _metrics(args: argparse.Namespace) -> AgentMetrics | None:
    """The agent's metrics, when something will read them (``--metrics-listen``);
    without a listener the loop is not even observed."""
    if args.metrics_listen is None:
        return None
    from routeplane.agent.metrics import AgentMetrics  # noqa: PLC0415
    from routeplane.cli import observe  # noqa: PLC0415

    return AgentMetrics(observe.registry(), args.host)


def _observe(
    args: argparse.Namespace,
    metrics: AgentMetrics | None,
    agent: Agent,
    bgp: BgpSpeaker | None,
    *,
    metadata: list[MetadataService],
    on_taps: list[TapService[Any]],
) -> Observer | None:
    """The metrics listener (``--metrics-listen``): the agent's metrics, ``/readyz`` and
    ``/status`` (what ``routeplane status`` prints)."""
    if metrics is None:
        return None
    from routeplane.agent.metrics import state  # noqa: PLC0415
    from routeplane.cli.observe import serve  # noqa: PLC0415

    sessions = bgp.bird.protocols if bgp is not None and isinstance(bgp.bird, Bird) else None

    def servers() -> list[tuple[str, Tally]]:
        """The request servers started so far (they start once the agent is in sync)."""
        running = [(service.name, service.tally) for service in on_taps if service.counted]
        return running + [("metadata", service.server.tally) for service in metadata]

    metrics.watch(agent, sessions, servers)

    def status() -> dict[str, Any]:
        found = state(metrics, agent, sessions)
        found["metadata"] = {
            "enabled": not args.no_metadata,
            "running": bool(metadata),
            "address": f"{METADATA_ADDRESS}:{args.metadata_port}",
        }
        return found

    return serve(
        args.metrics_listen,
        metrics.registry,
        lambda: state(metrics, agent, sessions, names=False),
        status,
    )


def _raise_file_limit() -> None:
    """Every VM long-polling the metadata service holds a connection: take the hard
    limit on open files rather than a service manager's soft default (1,024 under
    systemd would leave a few hundred VMs waiting for a slot)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run(args: argparse.Namespace) -> int:
    from routeplane.dataplane.linux import LinuxKernel, NftTable  # noqa: PLC0415
    from routeplane.dataplane.linux.probe import NamespaceProbe  # noqa: PLC0415

    proxy = None if args.no_metadata else _nova_proxy(args)
    stop = daemon.start(f"agent[{args.host}]", args.verbose)
    collector = ColdStartGc()  # off until the dataplane is programmed (cli/coldstart_gc.py)
    collector.pause()
    _raise_file_limit()
    settings = AgentSettings(
        host=args.host,
        bgp_address=args.bgp_address or "",
        bgp_address6=args.bgp_address6 or "",
        as_number=args.as_number,
    )
    store = open_store(args.store)
    kernel = LinuxKernel(args.netns)
    bgp = _speaker(args, store)
    metrics = _metrics(args)
    policy: PolicyTable = NftTable(args.netns)
    if metrics is not None:
        policy = metrics.timed(policy)
    agent = Agent(store, kernel, settings, policy=policy, bgp=bgp)
    probe = NamespaceProbe(args.netns)
    health = HealthChecker(store, args.host, probe, endpoints=agent.endpoint_feed())
    metadata: list[MetadataService] = []
    on_taps: list[TapService[Any]] = []
    listener = _observe(args, metrics, agent, bgp, metadata=metadata, on_taps=on_taps)

    def start_services() -> None:
        """Once the dataplane is programmed: the health checker and the metadata service
        run beside the loop (a slow probe or a VM's long poll never holds up routing), but
        start only now, so that their reading of every endpoint does not compete with
        the loop's during a cold start."""
        collector.resume()
        health.start()
        service = _metadata(args, store, agent, proxy)
        if service is not None:
            metadata.append(service)
        on_taps.extend(_tap_services(args, agent))

    try:
        agent.run(stop.is_set, synced=start_services)
    finally:
        if listener is not None:
            listener.close()
        for service in metadata:
            service.close()
        for server in on_taps:
            server.close()
        health.close()
        probe.close()
        agent.close()
        kernel.close()
        store.close()
    return 0


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "agent", help="program this host's routes and policy for its endpoints"
    )
    parser.add_argument("--host", required=True, help="this compute host's name (binding:host_id)")
    parser.add_argument("--netns", help="act on this network namespace instead of the current one")
    parser.add_argument("--bgp-address", help="the IPv4 address BGP peers reach this host on")
    parser.add_argument("--bgp-address6", help="this host's IPv6 fabric address (IPv6 next hop)")
    parser.add_argument("--as-number", type=int, default=64512)
    bgp = parser.add_argument_group("BGP (BIRD 2)")
    bgp.add_argument(
        "--bird-dir", help="run and configure this host's BIRD from this directory (enables BGP)"
    )
    bgp.add_argument(
        "--bgp-peer", action="append", default=[], metavar="ADDR[:AS]",
        help="an extra BGP peer such as a top-of-rack or access router (repeatable)",
    )  # fmt: skip
    bgp.add_argument(
        "--route-reflector", action="append", default=[], metavar="ADDR",
        help="peer with these route reflectors instead of every host (repeatable)",
    )  # fmt: skip
    bgp.add_argument(
        "--reflector", action="store_true", help="this host reflects routes to all other hosts"
    )
    bgp.add_argument("--no-bfd", action="store_true", help="no BFD on the BGP sessions")
    metadata = parser.add_argument_group("metadata service (for routeplane guest)")
    metadata.add_argument(
        "--no-metadata", action="store_true", help=f"do not serve VMs on {METADATA_ADDRESS}"
    )
    metadata.add_argument("--metadata-port", type=int, default=80, help="default %(default)s")
    metadata.add_argument(
        "--nova-metadata",
        metavar="URL",
        help="proxy mode: forward OpenStack and EC2 requests to nova-metadata at this http:// URL",
    )
    metadata.add_argument(
        "--metadata-secret-file",
        metavar="FILE",
        help="the secret shared with nova-metadata (metadata_proxy_shared_secret)",
    )
    parser.add_argument(
        "--no-dhcp", action="store_true", help="do not answer the VMs' DHCPv4 requests"
    )
    parser.add_argument(
        "--no-ra", action="store_true", help="send no IPv6 router advertisements to the VMs"
    )
    parser.add_argument(
        "--no-dhcp6", action="store_true", help="do not answer the VMs' DHCPv6 messages"
    )
    daemon.add_options(parser, "agent")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(run=_run)
