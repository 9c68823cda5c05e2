"""What one apply round of the agent's loop did, phase by phase.

The loop's apply round (``agent.apply_round``) hands a ``RoundReport`` to each of its observers after every round (the
metrics, ``agent.metrics``): the loop measures its phases anyway for its log, and an
observer reads them without the loop knowing what it does with them. An observer runs
on the loop's thread, after the round: it must be quick and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PHASES = ("plan", "policy", "kernel", "status")


@dataclass(frozen=True)
class RoundReport:
    endpoints: int  # endpoints looked at
    full: bool  # a full read-back of the kernel (start, resync, after a gap)
    plan: float  # seconds: desired state and the diff
    policy: float  # seconds waited for the policy transaction after planning
    kernel: float  # seconds: the kernel's batch
    status: float  # seconds: the status writes
    changes: int  # kernel operations planned
    failed: int  # kernel operations that failed (retried on a later round)
    policy_refused: bool  # the policy transaction was refused (fail closed)

    @property
    def seconds(self) -> float:
        return self.plan + self.policy + self.kernel + self.status

    def phases(self) -> tuple[tuple[str, float], ...]:
        return tuple(zip(PHASES, (self.plan, self.policy, self.kernel, self.status), strict=True))


ApplyObserver = Callable[[RoundReport], None]

__all__ = ["PHASES", "ApplyObserver", "RoundReport"]
