"""What the host's nftables policy is made of, kept current from the store one change at
a time.

Security groups are global, and a rule with ``remote_group_id`` admits the addresses of
every port in that group on every host, so this follows the documents of the groups this
host's endpoints are in (``agent/group_docs.py``) and the member index
(``model/members.py``) of each group a rule of this host's profiles names
(``agent/members.py``) — not every group, nor every host's endpoint records. The agent tells it which of
its own taps changed (``local``); from those and from what it follows it keeps the table
it wants — the blocks (declarations, chain rules) and, for each set and map, how many
contributions hold each element — and notes what changed since the table was last
programmed:

- a tap's change re-renders only that tap's elements (``dataplane.nft_render.tap_policy``
  and ``tap_elements``) and, if its groups changed, takes or releases the chains of its
  group combination (shared by all taps with it: a "profile");
- a member index entry changes only that port's addresses in that group's member sets;
- a security group's change re-renders only the profiles that include it (its document is
  followed while some profile does, and read as it is first included); a remote group
  gets its member sets, and its index is followed, while some profile's rule names it
  (its members are read as it is first named, so the set is complete when it appears);
- a host record's change (``hosts/``: every host's fabric addresses, a few dozen to a few
  thousand) changes only that host's addresses in ``fabric4``/``fabric6``, which
  ``forward`` keeps VMs from reaching.

``script()`` then writes only the difference (``dataplane.nft_delta``), or the whole table
when nothing is known to be programmed (at start, after a failure): either way one atomic
``nft -f`` transaction, and the same table a full render of everything gives. The agent
routes an endpoint only once its policy is in place, so a policy that cannot be
programmed fails closed (no route, no traffic) rather than open.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from routeplane.agent.group_docs import GroupDoc, GroupDocs
from routeplane.agent.members import GroupMembers, GroupNews
from routeplane.dataplane.nft_delta import Update, changes, script
from routeplane.dataplane.nft_render import (
    FIXED,
    FLOATING,
    Key,
    TapPolicy,
    canonical,
    classify,
    fabric_elements,
    group_set_names,
    group_sets,
    profile_chains,
    table_script,
    tap_elements,
    tap_policy,
)
from routeplane.model.endpoint import EndpointRecord
from routeplane.model.keys import HOSTS, prefix
from routeplane.store import Event, EventType, Store
from routeplane.store.watcher import Bell, Follower, Snapshot

HOST_RECORDS = prefix(HOSTS)
FABRIC_FIELDS = ("bgp_address", "bgp_address6")  # a host record's fabric addresses
VERSIONS = (4, 6)
# One member's IPv4 addresses, IPv4 prefixes, IPv6 addresses, IPv6 prefixes.
_Member = tuple[frozenset[str], ...]
_NONE: _Member = (frozenset(),) * 4


class PolicyTable(Protocol):
    """The executor's port for the host's table: apply a script atomically, or raise
    ``DataplaneError`` and keep the previous table."""

    def apply(self, script: str) -> None: ...


class Elements:
    """Every set's and map's elements, each with how many contributions hold it (two ports
    may share an address), and what changed since ``take``. In the maps named in
    ``unique`` one key has one value: when two contributions disagree (a floating IP
    moving between two ports of this host, seen half-way), the least element wins, as in
    ``nft_render.render``, rather than a transaction the kernel refuses."""

    def __init__(self, unique: Collection[Key] = ()) -> None:
        self.counts: dict[Key, Counter[str]] = {}
        self.changed: dict[Key, dict[str, bool]] = {}  # element -> now present?
        self.unique = frozenset(unique)
        self.rivals: dict[Key, dict[str, set[str]]] = {}  # map key -> elements held

    def replace(self, key: Key, old: Collection[str], new: Collection[str]) -> None:
        """One contribution to set ``key`` was ``old`` and is now ``new``."""
        if old == new:
            return
        counts = self.counts.get(key)
        if counts is None:  # (not setdefault: a new Counter each call, tens of thousands)
            counts = self.counts[key] = Counter()
        for element in old:
            if element not in new:
                counts[element] -= 1
                if counts[element] <= 0:
                    del counts[element]
                    self._held(key, element, False)
        for element in new:
            if element not in old:
                counts[element] += 1
                if counts[element] == 1:
                    self._held(key, element, True)

    def _held(self, key: Key, element: str, held: bool) -> None:
        if key not in self.unique:
            self._note(key, element, held)
            return
        rivals = self.rivals.setdefault(key, {})
        name = element.partition(" : ")[0]
        same = rivals.setdefault(name, set())
        before = min(same, default=None)
        (same.add if held else same.discard)(element)
        after = min(same, default=None)
        if not same:
            del rivals[name]
        if before != after:
            if before is not None:
                self._note(key, before, False)
            if after is not None:
                self._note(key, after, True)

    def _note(self, key: Key, element: str, present: bool) -> None:
        changed = self.changed.setdefault(key, {})
        if changed.get(element, present) != present:
            del changed[element]  # back to what was programmed
        else:
            changed[element] = present

    def current(self, key: Key) -> Collection[str]:
        if key in self.unique:
            return [min(same) for same in self.rivals.get(key, {}).values()]
        return self.counts.get(key, {}).keys()

    def take(self) -> dict[Key, dict[str, bool]]:
        changed, self.changed = self.changed, {}
        return changed


@dataclass
class _Profile:
    users: int
    chains: dict[Key, str]
    needs: frozenset[tuple[str, int]]


@dataclass
class _Wanted:
    """The table the host wants, kept by contribution."""

    heads: dict[Key, str] = field(default_factory=lambda: dict(FIXED))
    elements: Elements = field(default_factory=lambda: Elements(FLOATING.values()))
    taps: dict[str, TapPolicy] = field(default_factory=dict)
    seen: dict[str, tuple[EndpointRecord, ...]] = field(default_factory=dict)  # tap -> records
    profiles: dict[tuple[str, ...], _Profile] = field(default_factory=dict)
    by_group: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)  # -> profiles
    needed: Counter[tuple[str, int]] = field(default_factory=Counter)  # remote group sets
    members: dict[str, dict[str, _Member]] = field(default_factory=dict)  # group -> port ->
    nets: dict[tuple[str, int], Counter[str]] = field(default_factory=dict)  # group prefixes


class PolicyFeed:
    def __init__(self, store: Store, bell: Bell | None = None) -> None:
        # ``bell``: rung when a group or a followed member index changes (the agent's
        # loop waits on it beside its own endpoints)
        self.docs = GroupDocs(store, bell)
        self.members = GroupMembers(store, bell)
        self.hosts_follower = Follower(store, HOST_RECORDS, bell)
        self.fabric: dict[str, dict[Key, frozenset[str]]] = {}  # host -> its elements
        self.groups: dict[str, dict[str, Any]] = {}  # the followed groups' documents
        self.want = _Wanted()
        self.port_taps: dict[str, str] = {}  # this host's port id -> its tap
        self.applied: dict[Key, str] | None = None  # blocks last programmed; None: unknown
        self.dirty = True

    # taking in changes -----------------------------------------------------------------
    def poll(self) -> None:
        """Take in whatever changed, without waiting (raises ``StoreError``)."""
        for doc in self.docs.poll():
            self._take_doc(doc)
        self._take_hosts(self.hosts_follower.poll(0))
        for news in self.members.poll():
            self._take_members(news)

    def _take_doc(self, news: GroupDoc) -> None:
        """A followed group's document is now ``news.doc``: its profiles again."""
        group_id = news.group_id
        if self.groups.get(group_id) == news.doc:
            return
        if news.doc is None:
            self.groups.pop(group_id, None)
        else:
            self.groups[group_id] = news.doc
        for profile in self.want.by_group.get(group_id, set()).copy():
            self._render_profile(profile)

    def _take_hosts(self, news: Snapshot | list[Event]) -> None:
        if isinstance(news, Snapshot):
            fresh = {k[len(HOST_RECORDS) :]: kv.value for k, kv in news.items.items()}
            for host in {*self.fabric, *fresh}:
                self._host(host, fresh.get(host))
            return
        for event in news:
            value = event.value if event.type is EventType.PUT else None
            self._host(event.key[len(HOST_RECORDS) :], value)

    def _host(self, host: str, record: Any) -> None:
        """Host ``host``'s record is now ``record`` (None: gone): its fabric addresses."""
        fields = record if isinstance(record, dict) else {}
        after = fabric_elements(str(fields[f]) for f in FABRIC_FIELDS if fields.get(f))
        before = self.fabric.pop(host, {})
        if after:
            self.fabric[host] = after
        if before == after:
            return
        for key in {*before, *after}:
            self.want.elements.replace(
                key, before.get(key, frozenset()), after.get(key, frozenset())
            )
        self.dirty = True

    def _take_members(self, news: GroupNews) -> None:
        group_id = news.group_id
        if news.whole:
            for port_id in set(self.want.members.get(group_id, {})) - set(news.members):
                self._member(group_id, port_id, None)
        for port_id, addresses in news.members.items():
            self._member(group_id, port_id, addresses)

    def _member(self, group_id: str, port_id: str, addresses: list[str] | None) -> None:
        """Port ``port_id`` (on any host) is now a member of the group with these
        addresses (None: no longer a member)."""
        members = self.want.members.setdefault(group_id, {})
        before = members.pop(port_id, _NONE)
        after = _NONE
        if addresses is not None:
            found = classify(addresses)
            (hosts4, nets4), (hosts6, nets6) = found[4], found[6]
            after = (frozenset(hosts4), frozenset(nets4), frozenset(hosts6), frozenset(nets6))
            members[port_id] = after
        if not members:
            del self.want.members[group_id]
        if before == after:
            return
        for index, version in enumerate(VERSIONS):
            host_key, _ = group_set_names(group_id, version)
            hosts, nets = 2 * index, 2 * index + 1
            self.want.elements.replace(host_key, before[hosts], after[hosts])
            if before[nets] != after[nets]:
                self._nets(group_id, version, before[nets], after[nets])
        self.dirty = True

    def _nets(
        self, group_id: str, version: int, before: frozenset[str], after: frozenset[str]
    ) -> None:
        """Prefixes of a group's members, as non-overlapping interval-set elements."""
        counts = self.want.nets.setdefault((group_id, version), Counter())
        was = canonical(counts, version)
        counts.subtract(before)
        counts.update(after)
        for net in [n for n, c in counts.items() if c <= 0]:
            del counts[net]
        _, net_key = group_set_names(group_id, version)
        self.want.elements.replace(net_key, was, canonical(counts, version))

    def local(
        self, ports: Mapping[str, str], on_tap: Callable[[str], Sequence[EndpointRecord]]
    ) -> None:
        """These ports of this host changed and are now on these taps (``""``: gone);
        ``on_tap(tap)`` gives every endpoint now on a tap. The taps they were on before
        and the taps they are on now are looked at again."""
        want = self.want
        taps = set()
        for port_id, tap in ports.items():
            taps.add(self.port_taps.pop(port_id, ""))
            if tap:
                self.port_taps[port_id] = tap
                taps.add(tap)
        taps.discard("")
        for tap in taps:
            endpoints = tuple(on_tap(tap))
            seen = want.seen.pop(tap, ())
            if endpoints:
                want.seen[tap] = endpoints
            if len(seen) == len(endpoints) and all(map(operator.is_, seen, endpoints)):
                continue  # the very same records (a resync): nothing to render again
            old = want.taps.pop(tap, None)
            new = tap_policy(endpoints) if endpoints else None
            if new is not None:
                want.taps[tap] = new
            if old == new:
                continue
            had = tap_elements(tap, old) if old is not None else {}
            has = tap_elements(tap, new) if new is not None else {}
            for key in {*had, *has}:
                want.elements.replace(key, had.get(key, frozenset()), has.get(key, frozenset()))
            if new is not None and new.guarded:
                self._use_profile(new.groups, +1)
            if old is not None and old.guarded:
                self._use_profile(old.groups, -1)
            self.dirty = True

    def _use_profile(self, groups: tuple[str, ...], delta: int) -> None:
        want = self.want
        profile = want.profiles.get(groups)
        if profile is None:
            profile = want.profiles[groups] = _Profile(0, {}, frozenset())
            for group_id in groups:
                if group_id not in want.by_group:  # its rules, before they are rendered
                    self._follow_doc(group_id)
                want.by_group.setdefault(group_id, set()).add(groups)
            self._render_profile(groups)
        profile.users += delta
        if profile.users > 0:
            return
        for key in profile.chains:
            del want.heads[key]
        self._need(profile.needs, -1)
        del want.profiles[groups]
        for group_id in groups:
            users = want.by_group[group_id]
            users.discard(groups)
            if not users:
                del want.by_group[group_id]
                self.docs.drop(group_id)
                self.groups.pop(group_id, None)

    def _follow_doc(self, group_id: str) -> None:
        """A profile includes the group: follow its document, read at once if the store
        answers (else with the next poll, which renders the profile again)."""
        news = self.docs.follow(group_id)
        if news is not None and news.doc is not None:
            self.groups[group_id] = news.doc

    def _render_profile(self, groups: tuple[str, ...]) -> None:
        profile = self.want.profiles[groups]
        chains, needs = profile_chains(groups, self.groups)
        self.want.heads.update(chains)
        self._need(needs - profile.needs, +1)
        self._need(profile.needs - needs, -1)
        profile.chains, profile.needs = chains, needs
        self.dirty = True

    def _need(self, groups: Collection[tuple[str, int]], delta: int) -> None:
        """Remote groups' member sets exist while some profile's rule names them."""
        for group_id, version in groups:
            self.want.needed[(group_id, version)] += delta
            count = self.want.needed[(group_id, version)]
            if count == 1 and delta > 0:
                self.want.heads.update(group_sets(group_id, version))
                news = self.members.follow(group_id)
                if news is not None:
                    self._take_members(news)
            elif count <= 0:
                del self.want.needed[(group_id, version)]
                for key in group_set_names(group_id, version):
                    self.want.heads.pop(key, None)
                if all((group_id, v) not in self.want.needed for v in VERSIONS):
                    self._unfollow(group_id)

    def _unfollow(self, group_id: str) -> None:
        """No rule names the group any longer: its index is no longer followed, and its
        members are forgotten (their sets are gone from the table already)."""
        self.members.drop(group_id)
        for port_id in list(self.want.members.get(group_id, {})):
            self._member(group_id, port_id, None)

    # programming -----------------------------------------------------------------------
    def script(self) -> str:
        """What brings the kernel's table to the wanted one: the difference from what was
        last programmed, or the whole table (``""``: nothing to do)."""
        want = self.want
        changed = want.elements.take()
        update = None if self.applied is None else changes(self.applied, want.heads)
        if update is None:
            return self.table()
        for key in update.created:
            if key[0] != "chain":
                update.added[key] = set(want.elements.current(key))
        for key, elements in changed.items():
            if key in want.heads and key not in update.created:
                _split(elements, key, update)
        return script(update)

    def table(self) -> str:
        """The whole wanted table, as a script replacing the kernel's."""
        heads = self.want.heads
        sets = {k: self.want.elements.current(k) for k in heads if k[0] != "chain"}
        return table_script(heads, sets)

    def committed(self) -> None:
        """The last ``script()`` is programmed."""
        self.applied = dict(self.want.heads)
        self.dirty = False

    def failed(self) -> None:
        """The last ``script()`` was refused: the kernel kept its previous table, which
        is no longer known here in detail, so the next script replaces it whole."""
        self.applied = None

    def close(self) -> None:
        self.members.close()
        self.docs.close()
        self.hosts_follower.close()


def _split(elements: Mapping[str, bool], key: Key, update: Update) -> None:
    added = {e for e, present in elements.items() if present}
    removed = {e for e, present in elements.items() if not present}
    if added:
        update.added[key] = added
    if removed:
        update.removed[key] = removed


__all__ = ["Elements", "PolicyFeed", "PolicyTable"]
