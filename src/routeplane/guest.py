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
import socket
import struct
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
    """The metadata service or the kernel did not do what was asked; retried later."""


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


# rtnetlink, as iproute2 speaks it (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h)
_HEADER, _IFADDRMSG, _RTATTR = (
    struct.Struct("=IHHII"),
    struct.Struct("=BBBBI"),
    struct.Struct("=HH"),
)
_NEWADDR, _DELADDR, _GETADDR, _DONE, _ERROR = 20, 21, 22, 3, 2
_REQUEST, _ACK, _EXCL, _CREATE, _DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
_IFA_ADDRESS, _IFA_LOCAL, _IFA_FLAGS = 1, 2, 8
_NODAD, _NOPREFIXROUTE = 0x02, 0x200


def _attribute(kind: int, data: bytes) -> bytes:
    padding = b"\0" * (-len(data) % 4)
    return _RTATTR.pack(_RTATTR.size + len(data), kind) + data + padding


def _attributes(data: bytes) -> dict[int, bytes]:
    found, offset = {}, 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        found[kind] = data[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


class Interface:
    """The VM's interface, through rtnetlink: what ``ip addr`` does, without a process.

    A move's address must be on the new VM's interface before the VM can answer on it,
    and two ``ip`` processes (list, then add) cost more than everything else the guest
    does for a move, and much more on a busy machine; a netlink socket costs a system
    call. What it asks and sets is exactly what ``ip`` would (``ip -j addr show dev``,
    ``ip addr add … [noprefixroute nodad]``, ``ip addr del``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._sequence = 0

    def _index(self) -> int:
        try:
            return socket.if_nametoindex(self.name)
        except OSError as exc:
            raise GuestError(f"interface {self.name}: {exc}") from exc

    def _ask(self, kind: int, flags: int, body: bytes, what: str) -> list[bytes]:
        """One request; the payloads of the answers (a dump's) until done or acknowledged."""
        self._sequence += 1
        header = _HEADER.pack(_HEADER.size + len(body), kind, _REQUEST | flags, self._sequence, 0)
        found: list[bytes] = []
        try:
            with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
                sock.settimeout(5.0)
                sock.sendall(header + body)
                while True:
                    data, offset = sock.recv(1 << 16), 0
                    while offset + _HEADER.size <= len(data):
                        length, answer, _, sequence, _ = _HEADER.unpack_from(data, offset)
                        payload = data[offset + _HEADER.size : offset + length]
                        offset += max((length + 3) & ~3, _HEADER.size)
                        if sequence != self._sequence:
                            continue
                        if answer == _DONE:
                            return found
                        if answer == _ERROR:
                            error = -struct.unpack_from("=i", payload)[0]
                            if error:
                                raise GuestError(f"{what}: {os.strerror(error)}")
                            return found
                        found.append(payload)
        except OSError as exc:
            raise GuestError(f"{what}: {exc}") from exc

    def addresses(self) -> set[str]:
        index = self._index()
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        found = set()
        for payload in self._ask(_GETADDR, _DUMP, body, f"listing {self.name}'s addresses"):
            family, prefixlen, _, _, at = _IFADDRMSG.unpack_from(payload)
            attributes = _attributes(payload[_IFADDRMSG.size :])
            local = attributes.get(_IFA_LOCAL) or attributes.get(_IFA_ADDRESS)
            if at == index and local and family in {socket.AF_INET, socket.AF_INET6}:
                found.add(canonical(f"{socket.inet_ntop(family, local)}/{prefixlen}"))
        return found

    def _change(self, kind: int, flags: int, prefix: str, what: str) -> None:
        address = ipaddress.ip_interface(prefix)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        extra = _NODAD | _NOPREFIXROUTE if address.version == 6 and kind == _NEWADDR else 0
        packed = address.ip.packed
        body = _IFADDRMSG.pack(family, address.network.prefixlen, extra & 0xFF, 0, self._index())
        body += _attribute(_IFA_LOCAL, packed) + _attribute(_IFA_ADDRESS, packed)
        if extra:
            body += _attribute(_IFA_FLAGS, struct.pack("=I", extra))
        self._ask(kind, _ACK | flags, body, what)

    def add(self, prefix: str) -> None:
        self._change(_NEWADDR, _CREATE | _EXCL, prefix, f"adding {prefix} to {self.name}")

    def remove(self, prefix: str) -> None:
        self._change(_DELADDR, 0, prefix, f"removing {prefix} from {self.name}")


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
