"""The documents (rules) of the security groups this host's endpoints are in, followed
one group at a time.

A host's policy renders a chain per combination of groups its endpoints are in (a
"profile"), from those groups' rules; no other group's document is read. Following
every group (``security_groups/``) made each host read the whole cloud's groups at a
cold start (1,000 groups: a megabyte per host, and their decoded copies were most of a
simulated host's memory in ``bench/scale.py``) and woke every host for any group's
change. Here a group's document is followed from the moment a profile first includes
the group (read synchronously, so the chain is rendered from its rules) until none does:
a rule change reaches the hosts with an endpoint in the group, and no other.

A group's key is ``keys.security_group_key(id)``; the follower's prefix is that key, and
keys under it that are not exactly it (an id that extends another) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routeplane.agent.members import ByGroup
from routeplane.model.keys import security_group_key
from routeplane.store import Event, EventType
from routeplane.store.watcher import Snapshot


@dataclass(frozen=True)
class GroupDoc:
    """A group's document now (None: the group is gone, or was never written)."""

    group_id: str
    doc: dict[str, Any] | None


class GroupDocs(ByGroup[GroupDoc]):
    """One follower per group a profile of this host includes."""

    def prefix_of(self, group_id: str) -> str:
        return security_group_key(group_id)

    def news(self, group_id: str, read: Snapshot | list[Event]) -> GroupDoc | None:
        key = security_group_key(group_id)
        if isinstance(read, Snapshot):
            found = read.items.get(key)
            value = found.value if found is not None else None
            return GroupDoc(group_id, value if isinstance(value, dict) else None)
        mine = [e for e in read if e.key == key]
        if not mine:
            return None
        last = mine[-1]
        value = last.value if last.type is EventType.PUT else None
        return GroupDoc(group_id, value if isinstance(value, dict) else None)


__all__ = ["GroupDoc", "GroupDocs"]
