"""``routeplane guest``'s interface port against a real kernel: the addresses it lists, adds
and removes over rtnetlink are exactly what iproute2 shows and would have set (``ip -j
addr show``; IPv6 with ``noprefixroute nodad``), and the kernel's refusals are errors the
daemon retries, never a crash. Run inside the namespace, as the guest runs in its VM."""

from __future__ import annotations

import json
import os
import sys

import pytest

from routeplane.lab import netns

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

SCRIPT = """
from routeplane.guest import GuestError, Interface
interface = Interface("eth0")
print(sorted(interface.addresses()))
interface.add("10.28.0.23/32")
interface.add("fd5f::17/128")
print(sorted(interface.addresses()))
for refused in (lambda: interface.add("10.28.0.23/32"), lambda: interface.remove("10.28.0.99/32"),
                lambda: Interface("nothere0").addresses()):
    try:
        refused()
    except GuestError as exc:
        print("refused:", exc)
interface.remove("10.28.0.23/32")
"""


def shown(ns: str) -> dict[str, set[str]]:
    listed = json.loads(netns.ip(ns, "-j", "addr", "show", "dev", "eth0"))
    return {
        f"{a['local']}/{a['prefixlen']}": {k for k, v in a.items() if v is True} | {a["scope"]}
        for link in listed
        for a in link["addr_info"]
    }


def test_the_guest_lists_adds_and_removes_as_ip_does() -> None:
    with netns.Cleanup() as cleanup:
        ns = cleanup.namespace("gif")
        netns.ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        for name in ("eth0", "eth1"):
            netns.ip(ns, "link", "set", name, "up")
        netns.ip(ns, "addr", "add", "10.9.0.5/24", "dev", "eth0")
        before = shown(ns)
        out = netns.exec_in(ns, sys.executable, "-c", SCRIPT).splitlines()
        after = shown(ns)
    assert out[0] == str(sorted(before))  # listed as ip lists them
    assert set(eval(out[1])) == set(before) | {"10.28.0.23/32", "fd5f::17/128"}
    assert out[2:] == [
        "refused: adding 10.28.0.23/32 to eth0: File exists",
        "refused: removing 10.28.0.99/32 from eth0: Cannot assign requested address",
        "refused: interface nothere0: no interface with this name",
    ]
    assert "10.28.0.23/32" not in after  # removed again
    assert after["fd5f::17/128"] >= {"nodad", "noprefixroute", "global"}
