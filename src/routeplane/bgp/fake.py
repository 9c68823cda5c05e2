"""A stateful stand-in for BIRD, for unit tests of the agent's BGP logic.

It keeps what a real BIRD would: the configuration it runs, whether it runs, and how many
times it was started and reconfigured; ``fail_next`` makes the next apply raise, and
``crash()`` stops it as a killed BIRD would. Its one judgement of a configuration is
coarse (a text without ``router id`` is refused, as BIRD refuses it); the contract test
``tests/contract/test_bird.py`` runs the same checks against this and a real BIRD.
"""

from __future__ import annotations

from routeplane.model.errors import BgpError


class FakeBird:
    def __init__(self) -> None:
        self.config: str | None = None
        self.alive = False
        self.starts = 0
        self.reconfigures = 0
        self.fail_next = 0

    def apply(self, config: str) -> bool:
        if self.fail_next:
            self.fail_next -= 1
            raise BgpError("injected failure")
        if "router id" not in config:
            raise BgpError("BIRD refused the configuration: syntax error")
        if config == self.config and self.alive:
            return False
        self.config = config
        if self.alive:
            self.reconfigures += 1
        else:
            self.alive = True
            self.starts += 1
        return True

    def running(self) -> bool:
        return self.alive

    def stop(self) -> None:
        self.alive = False

    def crash(self) -> None:
        self.alive = False


__all__ = ["FakeBird"]
