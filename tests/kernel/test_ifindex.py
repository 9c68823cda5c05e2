"""Interface indexes of another namespace, looked up from any thread: what the agent
uses to address its netlink requests without a hand-off per change."""

from __future__ import annotations

import socket
import threading

import pytest

from routeplane.dataplane.linux.ifindex import IndexLookup
from routeplane.dataplane.linux.namespace import Namespace
from routeplane.lab import netns


def kernel_index(ns: str, name: str) -> int:
    return int(netns.ip(ns, "-o", "link", "show", "dev", name).split(":", 1)[0])


def test_the_namespaces_own_indexes_from_any_thread() -> None:
    with netns.Cleanup() as cleanup:
        ns = cleanup.namespace("ifx")
        name = "rpifx0"
        netns.ip(ns, "link", "add", name, "type", "veth", "peer", "name", "rpifx1")
        worker = Namespace(ns)
        cleanup.add("namespace worker", worker.close)
        lookup = worker.run(IndexLookup.open)
        cleanup.add("lookup socket", lookup.close)
        with pytest.raises(OSError, match="no interface"):
            socket.if_nametoindex(name)  # this thread's namespace has no such interface
        assert lookup.index(name) == kernel_index(ns, name)
        seen: list[int | None] = []
        other = threading.Thread(target=lambda: seen.append(lookup.index(name)))
        other.start()
        other.join()
        assert seen == [kernel_index(ns, name)]
        # recreated: a new index at once, nothing cached
        netns.ip(ns, "link", "del", name)
        assert lookup.index(name) is None
        netns.ip(ns, "link", "add", name, "type", "veth", "peer", "name", "rpifx1")
        assert lookup.indexes([name, "rpifxmissing", "x" * 20]) == {name: kernel_index(ns, name)}
