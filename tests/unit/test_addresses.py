"""The dataplane's address parser agrees with ``ipaddress`` on every input: the fast
path (``inet_pton``/``inet_ntop``) must accept, refuse and write exactly what the
reference does."""

from __future__ import annotations

import ipaddress
import random

import pytest

from routeplane.dataplane.addresses import parse_single

TRICKY = [
    "10.0.0.1", "0.0.0.0", "255.255.255.255", "256.0.0.1", "01.2.3.4", "1.2.3", "1.2.3.4.5",
    "1.2.3.4 ", " 1.2.3.4", "", "a.b.c.d", "1.2.3.04", "::", "::1", "FD00::1", "fd00:0:0:0:0:0:0:1",
    "fd00::0:1", "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", "2001:0db8::0001",
    "::ffff:1.2.3.4", "::1.2.3.4", "64:ff9b::1.2.3.4", "fe80::1%eth0", "fe80::1%", ":::",
    "1::2::3", "fd00::12345", "fd00::g", "10.0.0.1/32", "10.0.0.0/24", "10.0.0.1/33",
    "fd00::1/128", "fd00::/64", "fd00::1/127", "1:2:3:4:5:6:7:8", "1:0:0:2:0:0:0:3",
    "0:0:1:0:0:1:0:0", "::ffff:0:0", "::ffff:ffff:ffff",
]  # fmt: skip


def reference(text: str) -> tuple[int, str] | None:
    if "/" not in text:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None
        return address.version, str(address)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return (network.version, str(network.network_address)) if network.num_addresses == 1 else None


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return ".".join(str(rng.choice([0, 1, 9, 10, 99, 255, 256, rng.randrange(300)]))
                        for _ in range(rng.choice([3, 4, 4, 4, 5])))  # fmt: skip
    groups = [rng.choice(["0", "00", "0000", "1", "ab", "FFFF", f"{rng.randrange(65536):x}"])
              for _ in range(8)]  # fmt: skip
    if rng.random() < 0.5:  # compress a random run
        start = rng.randrange(8)
        end = rng.randrange(start, 9)
        return ":".join(groups[:start]) + "::" + ":".join(groups[end:])
    return ":".join(groups)


@pytest.mark.parametrize("text", TRICKY)
def test_the_same_as_ipaddress_on_edge_cases(text: str) -> None:
    parse_single.cache_clear()
    assert parse_single(text) == reference(text)


def test_the_same_as_ipaddress_on_random_text() -> None:
    rng = random.Random(20261124)
    parse_single.cache_clear()
    for _ in range(20000):
        text = random_text(rng)
        assert parse_single(text) == reference(text), text
