"""How many requests a host service (DHCPv4, DHCPv6, metadata) answered, refused or
failed to answer: what the agent's metrics show as ``routeplane_agent_requests_total``.

A counter per outcome, incremented by the service's one serving thread and read, as a
copy, by a scrape from another: the outcomes are fixed when the tally is made, so the
dictionary never changes size under a reader. Nothing is logged per request.

- ``answered``: a reply went out;
- ``refused``: the request was looked at and not answered, as designed (no port of this
  host on that tap or with that address, a flooding tap, a malformed request, nothing
  to offer; a metadata 4xx);
- ``failed``: the service meant to answer and could not (a send error, a record no
  lease can be made from; a metadata 5xx, too many connections included).
"""

from __future__ import annotations

OUTCOMES = ("answered", "refused", "failed")


class Tally:
    """Requests by outcome (see the module docstring)."""

    def __init__(self) -> None:
        self._counts = dict.fromkeys(OUTCOMES, 0)

    def add(self, outcome: str) -> None:
        self._counts[outcome] += 1  # a KeyError here is a bug: the outcomes are fixed

    def http(self, code: int) -> None:
        """A metadata answer with status ``code``."""
        self.add("failed" if code >= 500 else "refused" if code >= 400 else "answered")

    def __getitem__(self, outcome: str) -> int:
        return self._counts[outcome]

    def counts(self) -> dict[str, int]:
        return dict(self._counts)


__all__ = ["OUTCOMES", "Tally"]
