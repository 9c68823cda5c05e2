"""Unit: the agent's policy feed keeps the nftables table one change at a time, and what
it keeps is always exactly what a full render of everything gives.

Random sequences of store changes (this host's and another host's endpoints with their
member index entries, as the api writes them, security groups, and host records with
their fabric addresses) go through an
embedded store into ``PolicyFeed``; after each round the feed's
table must equal ``render`` of the same inputs, and the script it hands the executor must
equal ``delta`` between the previous and the new full renders (which the kernel test
checks against a full replacement). Also: the work of one change does not depend on how
many endpoints there are.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from routeplane.agent.policy import Elements, PolicyFeed
from routeplane.dataplane.nft_delta import blocks, delta
from routeplane.dataplane.nft_render import classify, endpoint_addresses, render
from routeplane.model.endpoint import EndpointRecord, NatPair, encode
from routeplane.model.jsontypes import JSONValue
from routeplane.model.members import record_entries
from routeplane.store import Delete, Op, Put, Store
from routeplane.store.sqlite import SqliteStore
from routeplane.testing import records

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
LOCAL = [f"p{i}" for i in range(6)]
REMOTE = [f"r{i}" for i in range(4)]
TAPS = ["tapaaaaaaaa-00", "tapaaaaaaaa-01", "tapaaaaaaaa-02", "tapaaaaaaaa-03"]
GROUPS = ["g0", "g1", "g2"]
ADDRESSES = [
    "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.0/29", "10.0.1.0/24", "10.0.1.0/25",
    "fd00::1", "fd00::2", "fd00::/120", "not-an-address",
]  # fmt: skip
FLOATING = ["203.0.113.1", "203.0.113.2", "2001:db8:ff::1"]
HOSTS = ["node1", "node2", "node3"]
FABRIC4, FABRIC6 = ["192.0.2.1", "192.0.2.2", ""], ["2001:db8:f::1", "2001:db8:f::2", ""]


def _rule(direction: str, ethertype: str = "IPv4", **fields: Any) -> dict[str, Any]:
    base = {"protocol": None, "port_range_min": None, "port_range_max": None,
            "remote_ip_prefix": None, "remote_group_id": None}  # fmt: skip
    return {**base, "direction": direction, "ethertype": ethertype, **fields}


RULES = [
    _rule("egress"),
    _rule("egress", "IPv6"),
    _rule("ingress", protocol="tcp", port_range_min=22, port_range_max=22, remote_group_id="g0"),
    _rule("ingress", "IPv6", protocol="icmp", remote_group_id="g1"),
    _rule("ingress", protocol="udp", port_range_min=53, remote_ip_prefix="10.9.0.0/16"),
    _rule("egress", protocol="tcp", port_range_min=5432, remote_group_id="g2"),
]


class World:
    """The store's contents as plain dicts (the oracle's input) and the agent's part."""

    def __init__(self, store: Store, rng: random.Random) -> None:
        self.store, self.rng = store, rng
        self.endpoints: dict[str, EndpointRecord] = {}  # "host/port" -> record
        self.groups: dict[str, dict[str, Any]] = {}
        self.hosts: dict[str, dict[str, Any]] = {}
        self.changed: set[str] = set()  # local ports changed since the last round
        # the last revision written under each: "hosts", a group's index (its id), a
        # group's document ("doc:" + its id)
        self.written: dict[str, int] = {"hosts": 0}

    def write(self, what: str, key: str, value: Mapping[str, Any] | None) -> None:
        folder = {"endpoints": "endpoints", "hosts": "hosts"}.get(what, "security_groups")
        prefix = f"{ROOT}{folder}/"
        ops: list[Op] = [Delete(prefix + key) if value is None else Put(prefix + key, dict(value))]
        touched = set()
        if what == "endpoints":  # its member index entries, in the same transaction
            port = key.split("/")[1]
            old = self.store.get(prefix + key)
            before = record_entries(port, cast(EndpointRecord, old.value)) if old else {}
            after = record_entries(port, cast(EndpointRecord, value)) if value else {}
            ops += [Delete(k) for k in before.keys() - after.keys()]
            ops += [Put(k, v) for k, v in after.items() if before.get(k) != v]
            touched = {k.split("/")[-2] for k in {*before, *after}}
        revision = self.store.txn((), ops).revision
        names = {"hosts" if what == "hosts" else f"doc:{key}"} if what != "endpoints" else touched
        for name in names:
            self.written[name] = revision

    def endpoint(self, port: str) -> EndpointRecord:
        rng = self.rng
        fixed = rng.sample(ADDRESSES, rng.randint(0, 3))
        fips = [
            NatPair(floating_ip_address=f, fixed_ip_address=rng.choice(fixed))
            for f in rng.sample(FLOATING, rng.randint(0, 1))
            if fixed
        ]
        return {
            "port_id": port, "interface": rng.choice(TAPS), "fixed_ips": fixed,
            "allowed_addresses": rng.sample(ADDRESSES, rng.randint(0, 2)),
            "floating_ips": fips, "port_security_enabled": rng.random() > 0.2,
            "security_groups": rng.sample(GROUPS, rng.randint(0, 2)),
        }  # fmt: skip

    def change(self) -> None:
        rng = self.rng
        what = rng.random()
        if what < 0.6:
            port = rng.choice(LOCAL + REMOTE)
            host = "node1" if port in LOCAL else "node2"
            key = f"{host}/{port}"
            if port in LOCAL:
                self.changed.add(port)
            if key in self.endpoints and rng.random() < 0.25:
                del self.endpoints[key]
                self.write("endpoints", key, None)
            else:
                self.endpoints[key] = self.endpoint(port)
                self.write("endpoints", key, self.endpoints[key])
        elif what < 0.7:
            host = rng.choice(HOSTS)
            if host in self.hosts and rng.random() < 0.3:
                del self.hosts[host]
                self.write("hosts", host, None)
            else:
                v4, v6 = rng.choice(FABRIC4), rng.choice(FABRIC6)
                self.hosts[host] = {"bgp_address": v4, "bgp_address6": v6, "as_number": 64512}
                self.write("hosts", host, self.hosts[host])
        else:
            group = rng.choice(GROUPS)
            if group in self.groups and rng.random() < 0.2:
                del self.groups[group]
                self.write("groups", group, None)
            else:
                doc = {"id": group, "security_group_rules": rng.sample(RULES, rng.randint(0, 3))}
                self.groups[group] = doc
                self.write("groups", group, doc)

    def caught_up(self, feed: PolicyFeed) -> bool:
        """Has the feed read the groups and the index of every group it follows?"""
        followers = {
            "hosts": feed.hosts_follower,
            **feed.members.followers,
            **{f"doc:{g}": f for g, f in feed.docs.followers.items()},
        }
        return all(f.revision >= self.written.get(name, 0) for name, f in followers.items())

    def local(self) -> dict[str, EndpointRecord]:
        return {k.split("/")[1]: v for k, v in self.endpoints.items() if k.startswith("node1/")}

    def full(self) -> str:
        members: dict[str, list[str]] = {}
        for record in self.endpoints.values():
            for group in record["security_groups"]:
                members.setdefault(group, []).extend(endpoint_addresses(record))
        fabric = [a for h in self.hosts.values() for a in (h["bgp_address"], h["bgp_address6"])]
        return render(list(self.local().values()), self.groups, members, [a for a in fabric if a])

    def round(self, feed: PolicyFeed) -> str:
        """What the agent does with its policy in one round: the script it would apply."""
        self.take(feed)
        text = feed.script() if feed.dirty else ""
        feed.committed()
        return text

    def take(self, feed: PolicyFeed) -> None:
        """The feed takes in every change made so far (the agent's poll and ``local``)."""
        caught_up = time.monotonic() + 5  # the store's watch delivers from its own thread
        feed.poll()
        while not self.caught_up(feed) and time.monotonic() < caught_up:
            time.sleep(0.001)
            feed.poll()
        local = self.local()
        ports = {p: local[p]["interface"] if p in local else "" for p in self.changed}
        feed.local(ports, lambda tap: [e for e in local.values() if e["interface"] == tap])
        self.changed.clear()


@pytest.mark.parametrize("seed", range(6))
def test_every_update_equals_the_difference_of_two_full_renders(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    world = World(store, rng)
    feed = PolicyFeed(store)
    try:
        first = world.round(feed)
        assert first == world.full() == feed.table()  # nothing programmed yet: the whole table
        before = first
        for _ in range(40):
            for _ in range(rng.randint(1, 3)):
                world.change()
            update = world.round(feed)
            after = world.full()
            assert feed.table() == after
            assert update == delta(blocks(before), blocks(after))
            before = after
    finally:
        feed.close()


def test_after_a_failure_the_whole_table_is_programmed_again(store: Store) -> None:
    world = World(store, random.Random(7))
    feed = PolicyFeed(store)
    try:
        world.round(feed)
        for _ in range(5):
            world.change()
        world.take(feed)
        assert not feed.script().startswith("table inet routeplane\ndelete table")
        feed.failed()  # the executor could not apply that update: the kernel kept its table
        world.change()
        world.take(feed)
        assert feed.dirty
        assert feed.script() == world.full()
    finally:
        feed.close()


def _caught_up(feed: PolicyFeed, revision: int, group: str = "web") -> None:
    """Until the feed has read group ``group``'s member index up to ``revision``."""
    deadline = time.monotonic() + 10
    feed.poll()
    while feed.members.followers[group].revision < revision and time.monotonic() < deadline:
        time.sleep(0.001)
        feed.poll()


@pytest.mark.parametrize("count", [100, 2000])
def test_one_change_is_the_same_few_elements_whatever_the_number_of_endpoints(
    tmp_path: Path, count: int
) -> None:
    store = SqliteStore(tmp_path / "store.db")
    rule = _rule("ingress", remote_group_id="web")
    store.put(f"{ROOT}security_groups/web", {"id": "web", "security_group_rules": [rule]})
    local: dict[str, EndpointRecord] = {
        f"p{i}": {
            "interface": f"tap{i:011d}",
            "fixed_ips": [f"10.{i // 256}.{i % 256}.1"],
            "security_groups": ["web"],
        }
        for i in range(count)
    }
    ops = [
        op
        for p, r in local.items()
        for op in (
            Put(f"{ROOT}endpoints/node1/{p}", encode(r)),
            *(Put(k, v) for k, v in record_entries(p, r).items()),
        )
    ]
    for i in range(0, len(ops), 100):
        store.txn((), ops[i : i + 100])
    feed = PolicyFeed(store)
    try:
        feed.poll()
        feed.local(  # the rule names "web": its index is read as the profile appears
            {p: r["interface"] for p, r in local.items()}, lambda t: [local[f"p{int(t[3:])}"]]
        )
        feed.script()
        feed.committed()
        moved = records.record(local["p7"], fixed_ips=["10.99.0.7"])
        written = store.txn(
            (),
            (
                Put(f"{ROOT}endpoints/node1/p7", encode(moved)),
                *(Put(k, v) for k, v in record_entries("p7", moved).items()),
            ),
        )
        _caught_up(feed, written.revision)
        feed.local({"p7": moved["interface"]}, lambda tap: [moved])
        tap = moved["interface"]
        assert feed.script() == (
            "delete element inet routeplane rg4-web { 10.0.7.1 }\n"
            f'delete element inet routeplane sources4 {{ "{tap}" . 10.0.7.1 }}\n'
            "add element inet routeplane rg4-web { 10.99.0.7 }\n"
            f'add element inet routeplane sources4 {{ "{tap}" . 10.99.0.7 }}\n'
        )
    finally:
        feed.close()
        store.close()


def test_a_resync_with_the_same_records_changes_nothing(store: Store) -> None:
    record: EndpointRecord = {
        "interface": "tapa",
        "fixed_ips": ["10.0.0.1"],
        "security_groups": ["g0"],
    }
    feed = PolicyFeed(store)
    try:
        feed.local({"p0": "tapa"}, lambda tap: [record])
        assert '"tapa" . 10.0.0.1' in feed.script()
        feed.committed()
        feed.local({"p0": "tapa"}, lambda tap: [record])  # the periodic resync
        assert feed.script() == ""
        feed.local({"p0": "tapa"}, lambda tap: [{**record, "fixed_ips": ["10.0.0.2"]}])
        assert feed.script() == (
            'delete element inet routeplane sources4 { "tapa" . 10.0.0.1 }\n'
            'add element inet routeplane sources4 { "tapa" . 10.0.0.2 }\n'
        )
    finally:
        feed.close()


def test_only_the_groups_of_this_hosts_endpoints_are_read_and_a_rule_change_elsewhere_is_not(
    store: Store,
) -> None:
    for group in ("web", "db"):
        doc = {"id": group, "security_group_rules": [_rule("ingress", protocol="tcp")]}
        store.put(f"{ROOT}security_groups/{group}", cast(JSONValue, doc))
    record: EndpointRecord = {
        "interface": "tapa",
        "fixed_ips": ["10.0.0.1"],
        "security_groups": ["web"],
    }
    feed = PolicyFeed(store)
    try:
        feed.poll()
        feed.local({"p0": "tapa"}, lambda tap: [record])
        assert set(feed.groups) == {"web"}
        assert "tcp" in feed.script()
        feed.committed()
        rule = _rule("ingress", protocol="udp")
        store.put(f"{ROOT}security_groups/db", {"id": "db", "security_group_rules": [rule]})
        doc = {"id": "web", "security_group_rules": [rule]}
        written = store.put(f"{ROOT}security_groups/web", cast(JSONValue, doc))
        deadline = time.monotonic() + 10
        while feed.docs.followers["web"].revision < written and time.monotonic() < deadline:
            time.sleep(0.001)
            feed.poll()
        assert set(feed.docs.followers) == {"web"}  # never "db"
        assert "udp" in feed.script()
        feed.committed()
        feed.local({"p0": ""}, lambda tap: [])  # the endpoint left: so did the group
        assert feed.groups == {}
        assert feed.docs.followers == {}
    finally:
        feed.close()


def test_an_element_two_contributions_hold_stays_until_both_let_go() -> None:
    elements = Elements()
    key = ("map", "floating4")
    elements.replace(key, frozenset(), frozenset({"203.0.113.1 : 10.0.0.1"}))
    elements.replace(key, frozenset(), frozenset({"203.0.113.1 : 10.0.0.1"}))
    assert elements.take() == {key: {"203.0.113.1 : 10.0.0.1": True}}
    elements.replace(key, frozenset({"203.0.113.1 : 10.0.0.1"}), frozenset())
    assert elements.take() == {}
    elements.replace(key, frozenset({"203.0.113.1 : 10.0.0.1"}), frozenset())
    assert elements.take() == {key: {"203.0.113.1 : 10.0.0.1": False}}
    assert list(elements.current(key)) == []


def test_a_floating_ip_two_ports_claim_maps_to_one_fixed_ip() -> None:
    elements = Elements(unique=[("map", "floating4")])
    key = ("map", "floating4")
    elements.replace(key, frozenset(), frozenset({"203.0.113.1 : 10.0.0.2"}))
    elements.replace(key, frozenset(), frozenset({"203.0.113.1 : 10.0.0.1"}))  # the lesser
    assert elements.take() == {key: {"203.0.113.1 : 10.0.0.1": True}}
    assert list(elements.current(key)) == ["203.0.113.1 : 10.0.0.1"]
    elements.replace(key, frozenset({"203.0.113.1 : 10.0.0.1"}), frozenset())
    assert elements.take() == {
        key: {"203.0.113.1 : 10.0.0.1": False, "203.0.113.1 : 10.0.0.2": True}
    }
    two: list[EndpointRecord] = [{"interface": t, "fixed_ips": [x], "floating_ips": [
        {"floating_ip_address": "203.0.113.1", "fixed_ip_address": x}]}
        for t, x in (("tapa", "10.0.0.2"), ("tapb", "10.0.0.1"))]  # fmt: skip
    assert "elements = { 203.0.113.1 : 10.0.0.1 }" in render(two, {}, {})


def test_addresses_are_canonical_once_parsed() -> None:
    found = classify(["10.0.0.1", "10.0.0.1/32", "fd00::0001", "10.0.0.9/24", "junk", 7])
    assert found[4] == ({"10.0.0.1"}, {"10.0.0.0/24"})  # junk and a bare number are no address
    assert found[6] == ({"fd00::1"}, set())
