"""The member index of the security groups this host's policy names, followed from the store.

A rule with ``remote_group_id`` admits the addresses of every bound port in that group,
on any host. The api keeps those addresses in a per-group index (``model/members.py``),
so a host follows only the groups its own endpoints' rules name, each with a
:class:`~routeplane.store.watcher.Follower` of the group's prefix: a port's change
reaches the hosts that route it (its endpoint record) and the hosts whose policy names
one of its groups (this index), and no other. Followers are opened when a profile's rule
first names a group and closed when none does any longer; each rings the agent's
:class:`~routeplane.store.watcher.Bell`, so the loop wakes for a member change as it
does for one of its own endpoints.

What it gives the policy feed (``agent/policy.py``): per group, either the whole member
list (a snapshot: the first read, or after the store's history was compacted) or the
changed members. What it must not do: interpret addresses (the feed does), or read any
host's endpoint records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from routeplane.model.errors import StoreError
from routeplane.model.keys import members_prefix
from routeplane.model.members import addresses_of
from routeplane.store import Event, EventType, Store
from routeplane.store.watcher import Bell, Follower, Snapshot

# port id -> its addresses (None: no longer a member)
Members = dict[str, list[str] | None]
News = TypeVar("News")


@dataclass(frozen=True)
class GroupNews:
    """What changed in one group's member index: ``whole`` is the complete member list
    (members missing from it are gone), otherwise only the ports named changed."""

    group_id: str
    members: Members
    whole: bool


class ByGroup(Generic[News]):
    """One follower per group, opened and closed as the host's policy names the group;
    a subclass says what to follow of a group and what its reads mean."""

    def __init__(self, store: Store, bell: Bell | None = None) -> None:
        self.store = store
        self.bell = bell
        self.followers: dict[str, Follower] = {}

    def prefix_of(self, group_id: str) -> str:
        raise NotImplementedError

    def news(self, group_id: str, read: Snapshot | list[Event]) -> News | None:
        raise NotImplementedError

    def follow(self, group_id: str) -> News | None:
        """Start following a group; its state at once when the store answers (else it
        comes with the next :meth:`poll`, which raises what the store raises)."""
        if group_id in self.followers:
            return None
        follower = self.followers[group_id] = Follower(
            self.store, self.prefix_of(group_id), self.bell
        )
        try:
            return self.news(group_id, follower.poll(0))
        except StoreError:
            return None

    def drop(self, group_id: str) -> None:
        follower = self.followers.pop(group_id, None)
        if follower is not None:
            follower.close()

    def poll(self) -> list[News]:
        """Every followed group's news since the last poll, without waiting."""
        found = []
        for group_id, follower in list(self.followers.items()):
            news = self.news(group_id, follower.poll(0))
            if news is not None:
                found.append(news)
        return found

    def close(self) -> None:
        for group_id in list(self.followers):
            self.drop(group_id)


class GroupMembers(ByGroup[GroupNews]):
    """One follower per group whose member index the host's policy needs."""

    def prefix_of(self, group_id: str) -> str:
        return members_prefix(group_id)

    def news(self, group_id: str, read: Snapshot | list[Event]) -> GroupNews | None:
        return _news(group_id, read)


def _news(group_id: str, read: Snapshot | list[Event]) -> GroupNews | None:
    start = len(members_prefix(group_id))
    if isinstance(read, Snapshot):
        members: Members = {k[start:]: addresses_of(kv.value) for k, kv in read.items.items()}
        return GroupNews(group_id, {p: a for p, a in members.items() if a is not None}, True)
    if not read:
        return None
    changed: Members = {}
    for event in read:
        value = event.value if event.type is EventType.PUT else None
        changed[event.key[start:]] = addresses_of(value)
    return GroupNews(group_id, changed, False)


__all__ = ["ByGroup", "GroupMembers", "GroupNews", "Members"]
