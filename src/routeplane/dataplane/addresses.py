"""Address text as the dataplane keeps it: one canonical form, parsed once.

Endpoint records carry addresses as text (``10.0.0.5``, ``fd00::5``, ``10.0.0.5/32``),
and the agent looks at every address of every endpoint at a cold start and again for
every endpoint it touches afterwards. Parsing with ``ipaddress`` each time was most of a
cold start's CPU, so both the routes (``agent.desired``) and the policy
(``nft_render.classify``) go through these cached functions. The same few strings come
back on every pass over an endpoint; the cache is bounded.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

_CACHE = 1 << 17  # ~130k strings: two addresses each for tens of thousands of endpoints


def _plain(text: str) -> tuple[int, str] | None:
    """One address without a prefix length, as ``ipaddress`` reads and writes it, but
    through ``inet_pton``/``inet_ntop`` (several times faster): both accept the same
    text, and ``inet_ntop`` writes the same canonical form (RFC 5952), except for IPv6
    with an IPv4 tail, which ``ipaddress`` writes in hex; that, and anything
    ``inet_pton`` refuses (a scope id, say), is left to ``ipaddress``."""
    try:
        if ":" in text:
            canonical = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
            if "." not in canonical:
                return 6, canonical
        else:
            return 4, socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):
        pass
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.version, str(address)


@lru_cache(maxsize=_CACHE)
def parse_single(text: str) -> tuple[int, str] | None:
    """``text`` as (IP version, canonical address) when it names one address
    (``10.0.0.1``, ``10.0.0.1/32``, ``fd00::1/128``); None for a wider prefix or not an
    address."""
    if "/" not in text:
        return _plain(text)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if network.num_addresses != 1:
        return None
    return network.version, str(network.network_address)


def single_address(text: str) -> str | None:
    """``text`` as one canonical address, or None (a wider prefix, or not an address)."""
    parsed = parse_single(text)
    return None if parsed is None else parsed[1]


def plain_address(text: object) -> str | None:
    """One address written without a prefix length, canonical; None otherwise."""
    value = str(text)
    return None if "/" in value else single_address(value)


def version_of(address: str) -> int:
    """The IP version of an address already known to be canonical."""
    return 6 if ":" in address else 4


__all__ = ["parse_single", "plain_address", "single_address", "version_of"]
