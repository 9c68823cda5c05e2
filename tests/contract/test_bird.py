"""Contract: the ``BirdPort`` behaves the same in the fake and in a real BIRD.

The real one runs in a fresh ``rp-`` namespace with its files in the test's temporary
directory. The same checks run against both: a first apply starts it, an identical apply
changes nothing, a new text reconfigures the running BIRD (same process), a refused text
changes nothing, and a BIRD that died is started again by the next apply. Every golden
configuration of ``tests/golden/bird`` is also parsed by the real BIRD.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from routeplane.bgp.bird import Bird
from routeplane.bgp.fake import FakeBird
from routeplane.bgp.render import HostBgp, Peer, render
from routeplane.lab import netns
from routeplane.model.errors import BgpError

pytestmark = pytest.mark.contract

GOLDEN = Path(__file__).parent.parent / "golden" / "bird"


def config(*peers: str) -> str:
    return render(
        HostBgp(
            host="node1", router_id="192.168.8.3", as_number=64512,
            peers=tuple(Peer(p, 64512) for p in peers),
        )
    )  # fmt: skip


@dataclass
class Case:
    bird: Bird | FakeBird

    def pid(self) -> int | None:
        return self.bird.pid() if isinstance(self.bird, Bird) else (1 if self.bird.alive else None)

    def crash(self) -> None:
        if isinstance(self.bird, FakeBird):
            self.bird.crash()
            return
        pid = self.bird.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self.bird.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.01)

    def text(self) -> str | None:
        if isinstance(self.bird, FakeBird):
            return self.bird.config
        return self.bird.conf.read_text() if self.bird.conf.exists() else None


@pytest.fixture(params=["fake", "bird"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    if request.param == "fake":
        yield Case(FakeBird())
        return
    if os.geteuid() != 0:
        pytest.skip("a real BIRD runs in a network namespace: needs root")
    with netns.Cleanup() as cleanup:
        namespace = cleanup.namespace("bird")
        bird = Bird(tmp_path / "bird", namespace)
        cleanup.add("stop bird", bird.stop)
        yield Case(bird)


def test_first_apply_starts_and_an_identical_one_changes_nothing(case: Case) -> None:
    assert not case.bird.running()
    assert case.bird.apply(config("192.168.8.4")) is True
    assert case.bird.running()
    assert case.bird.apply(config("192.168.8.4")) is False
    assert case.text() == config("192.168.8.4")


def test_a_new_text_reconfigures_the_same_process(case: Case) -> None:
    case.bird.apply(config("192.168.8.4"))
    before = case.pid()
    assert case.bird.apply(config("192.168.8.4", "192.168.8.5")) is True
    assert case.pid() == before
    assert case.text() == config("192.168.8.4", "192.168.8.5")
    if isinstance(case.bird, Bird):
        assert "peer_192_168_8_5" in case.bird.birdc("show", "protocols")


def test_a_refused_text_changes_nothing(case: Case) -> None:
    case.bird.apply(config("192.168.8.4"))
    with pytest.raises(BgpError):
        case.bird.apply("protocol nonsense {\n")
    assert case.bird.running()
    assert case.text() == config("192.168.8.4")


def test_a_dead_bird_is_started_again(case: Case) -> None:
    case.bird.apply(config("192.168.8.4"))
    case.crash()
    assert not case.bird.running()
    assert case.bird.apply(config("192.168.8.4")) is True
    assert case.bird.running()


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.iterdir()))
def test_bird_parses_every_golden_configuration(name: str, tmp_path: Path) -> None:
    bird = Bird(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    bird._check((GOLDEN / name / "bird.conf").read_text())  # raises BgpError if refused
