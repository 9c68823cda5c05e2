"""``routeplane guest``: inside a VM, keep the interface holding its port's addresses.

A fixed service IP is routed to the VM that holds it, so that VM must have the address on
its interface; after a move the new VM must add it and the old one drop it. This daemon
does that with no one logging in: it asks the host's metadata service
(``http://169.254.169.254/routeplane/v1/addresses``) which addresses the VM's port has,
adds the missing ones to the interface — IPv4 as ``/32``, IPv6 as ``/128`` with
``noprefixroute nodad`` (nothing is on-link in a routed network, and duplicate address
detection would keep the address unusable for a second while there is no one to
detect) — and removes the ones it added that the port no longer has. Then it asks again
with ``?wait=<revision>``: a long poll the service answers as soon as the port's record
changes (or after 25 s with the same state, which also repairs drift), so a move reaches
the VM in milliseconds without polling. No gratuitous ARP or unsolicited NA is sent: the
host routes by address, not by the VM's announcements.

It only ever removes addresses it added itself, so the address the VM booted with (from
DHCP or the image) and anything a person adds by hand are left alone; what it added is
kept in memory and in a small state file (``--state``, default
``/run/routeplane-guest.json``), so a restart still knows. It never trusts a failure to
mean "no addresses": when the service is unreachable or answers an error it keeps the
interface as it is and tries again with backoff (0.1 s doubling to 3 s). On SIGTERM it
stops and leaves the addresses in place (a restart must not break the service).

Only the Python standard library, and nothing else of routeplane (an import-linter
contract holds this): the file can be copied into any image and run as ``python3
guest.py --interface eth0``, or run as ``python3 -m routeplane.guest``.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger("routeplane.guest")
_ADD_LOGS = ("cannot add %s: %s", "added %s to %s (port revision %d)")
_REMOVE_LOGS = ("cannot remove %s: %s", "removed %s from %s (port revision %d)")
METADATA = "169.254.169.254"
ADDRESSES_PATH = "/routeplane/v1/addresses"
DEFAULT_STATE = "/run/routeplane-guest.json"
WAIT_LIMIT = 25.0  # the service answers a long poll within this; reads allow for more
CONNECT_TIMEOUT = 2.0
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 3.0
DESCRIPTION = "Keep this VM's interface holding its port's addresses (from the metadata service)."


class GuestError(Exception):
    """The metadata service or ``ip`` did not do what was asked; retried later."""


class Stopped(BaseException):
    """SIGTERM arrived while waiting for the service (a BaseException: nothing that
    catches errors on the way may swallow it)."""


# --- what to do: pure -------------------------------------------------------------------


def host_prefix(address: str) -> str:
    """``address`` as a single-address prefix: ``10.28.0.23/32``, ``fd00::17/128``."""
    parsed = ipaddress.ip_address(address)
    return f"{parsed}/{parsed.max_prefixlen}"


def canonical(prefix: str) -> str:
    """``address/prefixlen`` in one spelling (as ``ip`` prints it)."""
    interface = ipaddress.ip_interface(prefix)
    return f"{interface.ip}/{interface.network.prefixlen}"


def _ip(prefix: str) -> str:
    return prefix.partition("/")[0]


@dataclass(frozen=True)
class Plan:
    add: tuple[str, ...]  # address/prefixlen
    remove: tuple[str, ...]


def plan(wanted: Iterable[str], present: Iterable[str], owned: Iterable[str]) -> Plan:
    """Add each wanted address the interface lacks (under any prefix length); remove
    each address this daemon added that is no longer wanted. ``wanted``: addresses;
    ``present``, ``owned``: canonical ``address/prefixlen``."""
    want = {str(ipaddress.ip_address(a)) for a in wanted}
    have = set(present)
    have_ips = {_ip(p) for p in have}
    add = sorted(host_prefix(a) for a in want - have_ips)
    remove = sorted(o for o in set(owned) if o in have and _ip(o) not in want)
    return Plan(tuple(add), tuple(remove))


def owned_after(
    owned: Iterable[str], present: Iterable[str], added: Iterable[str], removed: Iterable[str]
) -> set[str]:
    """What this daemon holds after a round: what it held and is still there, less what
    it removed, plus what it added. (An address someone else removed is forgotten.)"""
    have, gone = set(present), set(removed)
    return {o for o in owned if o in have and o not in gone} | set(added)


def wanted_addresses(document: Any) -> tuple[int, list[str]]:
    """The revision and addresses of a metadata answer; ``GuestError`` if malformed."""
    try:
        revision = document["revision"]
        addresses = [str(ipaddress.ip_address(a["ip_address"])) for a in document["addresses"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise GuestError(f"unexpected answer from the metadata service: {exc!r}") from exc
    if not isinstance(revision, int):
        raise GuestError(f"unexpected revision {revision!r} from the metadata service")
    return revision, addresses


# --- the side effects ---------------------------------------------------------------------


def _run(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GuestError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        raise GuestError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


class Interface:
    """The VM's interface, through iproute2's ``ip``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def addresses(self) -> set[str]:
        shown = json.loads(_run(["ip", "-j", "addr", "show", "dev", self.name]) or "[]")
        return {
            canonical(f"{a['local']}/{a['prefixlen']}")
            for link in shown
            for a in link.get("addr_info", [])
            if "local" in a and "prefixlen" in a
        }

    def add(self, prefix: str) -> None:
        extra = ["noprefixroute", "nodad"] if ":" in prefix else []
        _run(["ip", "addr", "add", prefix, "dev", self.name, *extra])

    def remove(self, prefix: str) -> None:
        _run(["ip", "addr", "del", prefix, "dev", self.name])


class StateFile:
    """What the daemon added, kept across restarts (``None``: in memory only)."""

    def __init__(self, path: Path | None, interface: str) -> None:
        self.path = path
        self.interface = interface

    def load(self) -> set[str]:
        if self.path is None:
            return set()
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            LOG.warning("ignoring unreadable state %s: %s", self.path, exc)
            return set()
        if not isinstance(saved, dict) or saved.get("interface") != self.interface:
            return set()
        try:
            return {canonical(str(p)) for p in saved.get("added", [])}
        except ValueError:
            LOG.warning("ignoring malformed state %s", self.path)
            return set()

    def save(self, owned: Iterable[str]) -> None:
        if self.path is None:
            return
        body = json.dumps({"interface": self.interface, "added": sorted(owned)}) + "\n"
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(body)
            temporary.replace(self.path)
        except OSError as exc:
            LOG.warning("cannot save state %s: %s (kept in memory)", self.path, exc)


def fetch(host: str, port: int, revision: int | None, wait_limit: float = WAIT_LIMIT) -> Any:
    """The metadata service's answer (long-polling when ``revision`` is given)."""
    target = ADDRESSES_PATH + (f"?wait={revision}" if revision is not None else "")
    conn = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT)
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(wait_limit + 10)
        conn.request("GET", target, headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise GuestError(f"metadata service {host}:{port}: {exc or type(exc).__name__}") from exc
    finally:
        conn.close()
    if response.status != 200:
        text = body[:200].decode(errors="replace").strip()
        raise GuestError(f"metadata service answered {response.status}: {text}")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise GuestError(f"metadata service sent no JSON: {exc}") from exc


# --- the daemon -----------------------------------------------------------------------------


class Guest:
    def __init__(
        self, interface: Interface, state: StateFile, host: str = METADATA, port: int = 80,
        *, fetcher: Callable[[str, int, int | None], Any] = fetch,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        self.interface = interface
        self.state = state
        self.host, self.port = host, port
        self.fetcher = fetcher
        self.sleep = sleep
        self.owned = state.load()
        self.stopping = False
        self.waiting = False  # inside a long poll: SIGTERM may interrupt it

    def _each(
        self, prefixes: Sequence[str], change: Callable[[str], None], logs: tuple[str, str],
        revision: int,
    ) -> list[str]:  # fmt: skip
        """``change`` each prefix; the ones done (a failure skips only itself). ``logs``:
        the messages of a failure and of a success."""
        failed, succeeded = logs
        done = []
        for prefix in prefixes:
            try:
                change(prefix)
            except GuestError as exc:
                LOG.error(failed, prefix, exc)
                continue
            LOG.info(succeeded, prefix, self.interface.name, revision)
            done.append(prefix)
        return done

    def sync(self, addresses: Sequence[str], revision: int) -> bool:
        """Make the interface hold ``addresses``; False when some change failed."""
        present = self.interface.addresses()
        todo = plan(addresses, present, self.owned)
        added = self._each(todo.add, self.interface.add, _ADD_LOGS, revision)
        removed = self._each(todo.remove, self.interface.remove, _REMOVE_LOGS, revision)
        ok = len(added) == len(todo.add) and len(removed) == len(todo.remove)
        owned = owned_after(self.owned, present, added, removed)
        if owned != self.owned:
            self.owned = owned
            self.state.save(owned)
        return ok

    def step(self, revision: int | None) -> int:
        """One question and its consequences; the revision to wait on next."""
        self.waiting = True
        try:
            answer = self.fetcher(self.host, self.port, revision)
        finally:
            self.waiting = False
        latest, addresses = wanted_addresses(answer)
        if revision is None:
            LOG.info("following port %s: %s (revision %d)", answer.get("port_id"),
                     ", ".join(addresses) or "no addresses", latest)  # fmt: skip
        elif latest != revision:
            LOG.debug("port revision %d: %s", latest, ", ".join(addresses))
        if not self.sync(addresses, latest):
            raise GuestError("some changes failed")
        return latest

    def run(self, once: bool = False) -> int:
        revision: int | None = None
        delay, failing = BACKOFF_FIRST, False
        while not self.stopping:
            try:
                revision = self.step(revision)
            except GuestError as exc:
                if not failing or delay >= BACKOFF_MAX:
                    LOG.warning("%s; retrying in %.1fs", exc, delay)
                failing = True
                if once:
                    return 1
                revision = None  # ask at once next time: the last round did not finish
                self.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except Stopped:
                break
            if failing:
                LOG.info("metadata service answers again")
            delay, failing = BACKOFF_FIRST, False
            if once:
                return 0
        LOG.info("stopping; the addresses stay on %s", self.interface.name)
        return 0

    def terminate(self, *_: object) -> None:
        """SIGTERM: stop after the current change; a long poll is cut short."""
        self.stopping = True
        if self.waiting:
            raise Stopped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interface", default="eth0", help="the interface to configure")
    parser.add_argument(
        "--metadata", default=METADATA, metavar="HOST[:PORT]",
        help="the metadata service (default %(default)s, port 80)",
    )  # fmt: skip
    parser.add_argument(
        "--state", default=DEFAULT_STATE,
        help="where to remember the addresses it added ('' for memory only; default %(default)s)",
    )  # fmt: skip
    parser.add_argument("--once", action="store_true", help="configure once and exit")
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"%(asctime)s routeplane-guest[{args.interface}] %(levelname)s %(message)s",
    )
    host, _, port = str(args.metadata).partition(":")
    state = StateFile(Path(args.state) if args.state else None, args.interface)
    guest = Guest(Interface(args.interface), state, host, int(port or 80))
    signal.signal(signal.SIGTERM, guest.terminate)
    LOG.info(
        "configuring %s from http://%s:%s (pid %d)", args.interface, host, port or 80, os.getpid()
    )
    try:
        return guest.run(once=args.once)
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="routeplane-guest", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "DESCRIPTION",
    "Guest",
    "GuestError",
    "Interface",
    "Plan",
    "StateFile",
    "add_arguments",
    "canonical",
    "fetch",
    "host_prefix",
    "main",
    "owned_after",
    "plan",
    "run",
    "wanted_addresses",
]
