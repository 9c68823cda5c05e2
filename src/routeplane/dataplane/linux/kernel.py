"""``LinuxKernel``: the ``Kernel`` port for a real Linux network namespace.

Reads dump links, routes, neighbours and proxy entries over rtnetlink and keep only
what is routeplane's (host routes with ``ROUTE_PROTO`` in the main table, on a link or
via a next hop, with their metric; permanent
neighbours on ``tap…`` interfaces; IPv6 proxy entries with ``ROUTE_PROTO`` on ``tap…``
interfaces). ``apply(plan)`` works in the plan's order:

1. interface sysctls for every tap to configure, written to ``/proc/sys`` from a thread
   inside the namespace (one hand-off for the whole plan);
2. one netlink batch: taps set up, neighbours replaced, proxy entries replaced, routes
   replaced, routes deleted, proxy entries deleted, neighbours deleted — each request
   acknowledged on its own, so a refused one is reported exactly and the others still
   happen.

Link changes are read from a second socket subscribed to the namespace's link group
(``monitor.LinkMonitor``), drained without blocking by :meth:`LinuxKernel.link_events`.

Nothing here raises for a failed change: it lands in the ``Outcome``. Reads raise
``DataplaneError`` when the namespace cannot be read at all. Connection tracking is
flushed with the ``conntrack`` tool (rare: only when an address changes owner).

What this class must not do: touch a route whose protocol is not ours (deletes name the
protocol, so the kernel itself refuses to match another owner's route), create or delete
interfaces, or act on any namespace but the one it was given.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable
from functools import partial
from operator import attrgetter
from typing import TypeVar

from routeplane.dataplane.linux import rtnl, sysctl
from routeplane.dataplane.linux.ifindex import IndexLookup
from routeplane.dataplane.linux.monitor import LinkMonitor
from routeplane.dataplane.linux.namespace import NETNS_DIR, Namespace
from routeplane.dataplane.model import (
    HOST_SYSCTLS,
    METADATA_ADDRESS6,
    ROUTE_PROTO,
    TAP_PREFIX,
    Link,
    LinkEvent,
    Neighbour,
    Outcome,
    Plan,
    Proxy,
    Route,
    describe,
    tap_sysctls,
)
from routeplane.model.errors import DataplaneError

T = TypeVar("T")
CONNTRACK_TIMEOUT = 10.0
_FAMILIES = ((socket.AF_INET, 32), (socket.AF_INET6, 128))


def _route_set(route: Route, index: int) -> rtnl.Request:
    return rtnl.route_replace(route.address, index, ROUTE_PROTO, route.metric, route.via)


def _route_del(route: Route, index: int) -> rtnl.Request:
    return rtnl.route_delete(route.address, index, ROUTE_PROTO, route.metric, route.via)


def _neigh_set(neighbour: Neighbour, index: int) -> rtnl.Request:
    return rtnl.neighbour_replace(neighbour.address, index, neighbour.mac)


def _neigh_del(neighbour: Neighbour, index: int) -> rtnl.Request:
    return rtnl.neighbour_delete(neighbour.address, index)


def _proxy_set(proxy: Proxy, index: int) -> rtnl.Request:
    return rtnl.proxy_replace(proxy.address, index, ROUTE_PROTO)


def _proxy_del(proxy: Proxy, index: int) -> rtnl.Request:
    return rtnl.proxy_delete(proxy.address, index)


def _link_up(name: str, index: int) -> rtnl.Request:
    return rtnl.link_up(index)


def _metadata_address(name: str, index: int) -> rtnl.Request:
    return rtnl.link_local_replace(METADATA_ADDRESS6, index)


def _link(info: rtnl.LinkInfo) -> Link:
    admin_up = bool(info.flags & rtnl.IFF_UP)
    return Link(
        name=info.name,
        up=admin_up and bool(info.flags & rtnl.IFF_LOWER_UP),
        mac=info.mac,
        index=info.index,
        admin_up=admin_up,
    )


def _configure(values: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    """The taps' sysctls (run inside the namespace); the failures by path."""
    return sysctl.write(kv for kvs in values.values() for kv in kvs)


_Op = TypeVar("_Op")


class _Batch:
    """The requests of one plan, each remembered with its step and operation."""

    def __init__(self, indexes: dict[str, int]) -> None:
        self.indexes = indexes
        self.sent: list[tuple[str, object]] = []
        self.requests: list[rtnl.Request] = []
        self.refused: dict[tuple[str, object], str] = {}  # failed before being sent

    def add(
        self,
        step: str,
        ops: Iterable[_Op],
        interface: Callable[[_Op], str],
        build: Callable[[_Op, int], rtnl.Request],
    ) -> None:
        """Every operation of one step; ``interface(op)`` "": the kernel finds the link
        (a route via a next hop)."""
        indexes, sent, requests = self.indexes, self.sent, self.requests
        for op in ops:
            name = interface(op)
            index = indexes.get(name) if name else 0
            if index is None:
                self.refused[(step, op)] = f"no such interface {name!r}"
                continue
            try:
                request = build(op, index)
            except ValueError as exc:
                self.refused[(step, op)] = str(exc)
                continue
            sent.append((step, op))
            requests.append(request)


class LinuxKernel:
    """The kernel of network namespace ``netns`` (``None``: this process's own).

    Its socket and worker thread keep the namespace alive until :meth:`close`. Routes
    with our protocol that a ``Route`` cannot express (not a host route, no single
    output interface) are left out of :meth:`routes`, so they are never swept either.
    """

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._ns = Namespace(netns)
        self._lock = threading.Lock()
        self._index_names: dict[int, str] = {}  # see _names
        where = netns or "this namespace"
        with contextlib.ExitStack() as opened:  # on failure, what was opened is closed
            opened.callback(self._ns.close)
            what = "netlink socket"
            try:
                self._rtnl = self._ns.run(rtnl.Rtnl.open)
                opened.callback(self._rtnl.close)
                what = "link monitor"
                self._monitor = self._ns.run(LinkMonitor.open)
                opened.callback(self._monitor.close)
                what = "socket"
                self._lookup = self._ns.run(IndexLookup.open)
            except OSError as exc:
                raise DataplaneError(f"{what} in {where}: {exc}") from exc
            opened.pop_all()  # all open: close() closes them

    def __enter__(self) -> LinuxKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._lookup.close()
        self._monitor.close()
        self._rtnl.close()
        self._ns.close()

    # --- reads ------------------------------------------------------------------------
    def _read(self, what: str, fn: Callable[[], T]) -> T:
        try:
            with self._lock:
                return fn()
        except OSError as exc:
            raise DataplaneError(
                f"reading {what} in {self.netns or 'this namespace'}: {exc}"
            ) from exc

    def links(self) -> dict[str, Link]:
        infos = self._read("links", self._rtnl.links)
        self._index_names = {info.index: info.name for info in infos}
        return {info.name: _link(info) for info in infos}

    def received(self, interface: str) -> int | None:
        return self._read(f"{interface}'s counters", partial(self._rtnl.received, interface))

    def link_events(self) -> list[LinkEvent] | None:
        try:
            changes, lost = self._monitor.drain()
        except OSError as exc:
            raise DataplaneError(
                f"reading link events in {self.netns or 'this namespace'}: {exc}"
            ) from exc
        if lost:
            self._index_names = {}  # read again when next needed
            return None
        for change in changes:
            if change.deleted:
                self._index_names.pop(change.info.index, None)
            else:
                self._index_names[change.info.index] = change.info.name
        return [
            LinkEvent(c.info.name, None if c.deleted else _link(c.info))
            for c in changes
            if c.info.name
        ]

    def _names(self, indexes: Iterable[int] = ()) -> dict[int, str]:
        """Interface names by index, as of the last link dump and the link events since,
        so that a full read-back dumps the links once, not once per kind of object. An
        index not known (``indexes`` are the ones the caller met) means a link came after
        the last look: then the links are dumped again."""
        if not self._index_names or not set(indexes) <= self._index_names.keys():
            infos = self._read("links", self._rtnl.links)
            self._index_names = {info.index: info.name for info in infos}
        return self._index_names

    def routes(self) -> set[Route]:
        wanted = []
        for family, length in _FAMILIES:
            dump = partial(self._rtnl.routes, family, rtnl.RT_TABLE_MAIN, ROUTE_PROTO)
            for route in self._read("routes", dump):
                # only what our Route can say: one host route on one interface or via one
                # next hop
                single = route.type == rtnl.RTN_UNICAST and route.prefix_length == length
                if single and route.destination:
                    wanted.append(route)
        names = self._names(r.oif for r in wanted if not r.gateway)
        found: set[Route] = set()
        for route in wanted:
            if route.gateway:
                found.add(Route(route.destination, "", route.metric, route.gateway))
            elif route.oif in names:
                found.add(Route(route.destination, names[route.oif], route.metric))
        return found

    def neighbours(self) -> set[Neighbour]:
        entries = [
            entry
            for family, _ in _FAMILIES
            for entry in self._read("neighbours", partial(self._rtnl.neighbours, family))
            if entry.state & rtnl.NUD_PERMANENT and entry.mac
        ]
        names = self._names(entry.index for entry in entries)
        found: set[Neighbour] = set()
        for entry in entries:
            name = names.get(entry.index, "")
            if name.startswith(TAP_PREFIX):
                found.add(Neighbour(entry.address, name, entry.mac))
        return found

    def proxies(self) -> set[Proxy]:
        dump = partial(self._rtnl.neighbours, socket.AF_INET6, proxy=True)
        entries = [e for e in self._read("proxy entries", dump) if e.protocol == ROUTE_PROTO]
        names = self._names(entry.index for entry in entries)
        return {
            Proxy(entry.address, names[entry.index])
            for entry in entries
            if names.get(entry.index, "").startswith(TAP_PREFIX)
        }

    # --- changes ----------------------------------------------------------------------
    def apply(self, plan: Plan) -> Outcome:
        outcome = Outcome()
        if plan.empty:
            return outcome
        steps = plan.steps()
        objects: tuple[Route | Neighbour | Proxy, ...] = (
            *plan.neighbours_set, *plan.proxies_set, *plan.routes_set, *plan.routes_del,
            *plan.proxies_del, *plan.neighbours_del,
        )  # fmt: skip
        names = set(plan.configure) | {op.interface for op in objects if op.interface}
        try:
            indexes = self._lookup.indexes(names)
            values = {name: tap_sysctls(name) for name in plan.configure if name in indexes}
        except OSError as exc:
            for step, ops in steps:
                for op in ops:
                    self._fail(outcome, step, op, str(exc))
            return outcome

        batch = _Batch(indexes)
        on = attrgetter("interface")
        batch.add("configure", plan.configure, str, _link_up)
        batch.add("configure", plan.configure, str, _metadata_address)
        batch.add("neighbours_set", plan.neighbours_set, on, _neigh_set)
        batch.add("proxies_set", plan.proxies_set, on, _proxy_set)
        batch.add("routes_set", plan.routes_set, on, _route_set)
        batch.add("routes_del", plan.routes_del, on, _route_del)
        batch.add("proxies_del", plan.proxies_del, on, _proxy_del)
        batch.add("neighbours_del", plan.neighbours_del, on, _neigh_del)
        results: list[rtnl.NetlinkError | str | None]
        # The sysctls are written in the namespace's thread while the kernel takes the
        # netlink batch (a cold start has thousands of taps to configure). Started only
        # now, not before building the batch: while this thread builds it, it hardly lets
        # go of the interpreter lock, and a thread that must take the lock back after
        # every system call would get through a handful of sysctls.
        try:
            configuring = self._ns.submit(partial(_configure, values)) if values else None
        except DataplaneError as exc:
            configuring = None
            for name in values:
                batch.refused[("configure", name)] = str(exc)
        try:
            with self._lock:
                results = list(self._rtnl.execute(batch.requests))
        except OSError as exc:
            results = [f"netlink: {exc}"] * len(batch.requests)
        sysctl_failed: dict[str, str] = {}
        if configuring is not None:
            try:
                sysctl_failed = configuring.result()
            except DataplaneError as exc:
                sysctl_failed = {path: str(exc) for kvs in values.values() for path, _ in kvs}

        # what failed, and why; the outcome lists it in the plan's order
        reasons: dict[tuple[str, object], list[str]] = {}
        for name, kvs in values.items():
            why = [f"{path}: {sysctl_failed[path]}" for path, _ in kvs if path in sysctl_failed]
            if why:
                reasons[("configure", name)] = why
        for key, why_not in batch.refused.items():
            reasons.setdefault(key, []).append(why_not)
        for key, result in zip(batch.sent, results, strict=True):
            if result is not None:
                reasons.setdefault(key, []).append(str(result))
        if reasons:
            for step, ops in steps:
                for op in ops:
                    if (step, op) in reasons:
                        self._fail(outcome, step, op, "; ".join(reasons[(step, op)]))
        return outcome

    @staticmethod
    def _fail(outcome: Outcome, step: str, op: object, reason: str) -> None:
        outcome.failed.append(op)
        outcome.errors.append(f"{step} {describe(op)}: {reason}")

    def prepare_host(self) -> Outcome:
        outcome = Outcome()
        try:
            failed = self._ns.run(partial(sysctl.write, HOST_SYSCTLS))
        except DataplaneError as exc:
            failed = {path: str(exc) for path, _ in HOST_SYSCTLS}
        for path, why in failed.items():
            self._fail(outcome, "prepare_host", path, why)
        return outcome

    def flush_conntrack(self, addresses: Iterable[str]) -> Outcome:
        outcome = Outcome()
        enter = ["nsenter", f"--net={NETNS_DIR}/{self.netns}"] if self.netns else []
        for address in addresses:
            try:
                family = f"ipv{ipaddress.ip_address(address).version}"
            except ValueError as exc:
                self._fail(outcome, "flush_conntrack", address, str(exc))
                continue
            reasons = []
            for direction in ("--orig-src", "--orig-dst"):
                command = [*enter, "conntrack", "-D", "-f", family, direction, address]
                try:
                    done = subprocess.run(
                        command,
                        capture_output=True,
                        text=True,
                        timeout=CONNTRACK_TIMEOUT,
                        check=False,
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    reasons.append(f"{direction}: {exc}")
                    continue
                # conntrack exits 1 when nothing matched: that is not a failure here
                if done.returncode != 0 and "0 flow entries" not in done.stderr:
                    reasons.append(f"{direction}: {done.stderr.strip() or done.returncode}")
            if reasons:
                self._fail(outcome, "flush_conntrack", address, "; ".join(reasons))
        return outcome


__all__ = ["LinuxKernel"]
