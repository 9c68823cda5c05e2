"""``routeplane status``: what this host's agent has programmed, as ``calicoctl node
status`` and Felix's endpoint report show it together.

It asks the agent itself (its ``/status`` on the metrics listener: the agent knows what it
programmed and why an endpoint failed, and asks BIRD for the BGP sessions), at
``--agent HOST:PORT`` or else the ``metrics_listen`` of ``/etc/routeplane/agent.toml``.
Printed for people (``render``), or as the agent's JSON with ``--json``. Exit 0 when the
agent is ready (in sync, policy applied) and every BGP session is Established; 1 when
not, or when the agent does not answer (with the reason).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
from typing import Any

from routeplane.cli import config, daemon

AGENT_HELP = "the agent's --metrics-listen (default: metrics_listen in its config file)"


def _address(args: argparse.Namespace) -> tuple[str, int] | None:
    if args.agent is not None:
        found: tuple[str, int] = args.agent
        return found
    path = config.default_path("agent")
    if not path.exists():
        return None
    listen = config.load(str(path)).get("metrics_listen")
    if not isinstance(listen, str):
        return None
    return daemon.address(listen)


def _fetch(host: str, port: int, timeout: float) -> dict[str, Any]:
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 (a wildcard listener)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/status")
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise ValueError(f"/status answered {answer.status}")
    found: dict[str, Any] = json.loads(body)
    return found


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def healthy(state: dict[str, Any]) -> bool:
    """Ready, and every BGP session Established (when BGP is on)."""
    bgp = state.get("bgp", {})
    sessions_ok = not bgp.get("enabled") or (
        bgp.get("running", False) and all(p["established"] for p in bgp.get("peers", []))
    )
    return bool(state.get("ready")) and sessions_ok


def render(state: dict[str, Any]) -> str:
    """The agent's state for people."""
    sync = "in sync" if state["synced"] else "not in sync"
    policy = "policy applied" if state["policy_applied"] else "policy NOT applied"
    store = "" if state["store_reachable"] else ", store UNREACHABLE"
    lines = [
        f"routeplane agent on {state['host']}: {'ready' if state['ready'] else 'NOT ready'}"
        f" ({sync} at store revision {state['store_revision']}, {policy}{store})",
    ]
    bgp = state.get("bgp", {})
    if not bgp.get("enabled"):
        lines.append("BGP: not run by this agent (no --bird-dir)")
    elif not bgp.get("running"):
        lines.append(f"BGP: BIRD is not running ({bgp.get('error', 'no answer')})")
    else:
        lines.append(f"BGP: {len(bgp['peers'])} peer(s)")
        lines.append(f"  {'peer':<24} {'state':<6} {'since':<13} {'uptime':<8} info")
        for peer in bgp["peers"]:
            lines.append(
                f"  {peer['name']:<24} {peer['state']:<6} {peer['since']:<13}"
                f" {_duration(peer['uptime']):<8} {peer['info']}"
            )
    counts = state["endpoints"]
    lines.append(
        f"endpoints: {counts['desired']} desired, {counts['programmed']} programmed,"
        f" {counts['failed']} failed"
    )
    lines += [f"  failing: {port_id}" for port_id in state.get("failing", [])]
    metadata = state.get("metadata")
    if metadata is not None:
        shown = "running" if metadata["running"] else "NOT running"
        shown = shown if metadata["enabled"] else "disabled"
        lines.append(f"metadata service: {shown} on {metadata['address']}")
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace) -> int:
    address = _address(args)
    if address is None:
        print(
            "routeplane status: where does the agent listen? give --agent HOST:PORT, or set "
            f"metrics_listen in {config.default_path('agent')}",
            file=sys.stderr,
        )
        return 1
    try:
        state = _fetch(*address, timeout=args.timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        print(
            f"routeplane status: the agent does not answer on {address[0]}:{address[1]}: {exc}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(state, indent=2, sort_keys=True))
    else:
        print(render(state), end="")
    return 0 if healthy(state) else 1


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "status", help="this host's agent: sync, BGP sessions, endpoints, metadata service"
    )
    parser.add_argument("--agent", type=daemon.address, metavar="HOST:PORT", help=AGENT_HELP)
    parser.add_argument("--json", action="store_true", help="the agent's report as JSON")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    parser.set_defaults(run=_run)
