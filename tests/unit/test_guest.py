"""Unit: ``routeplane guest`` without a VM — which addresses it adds and removes given what
the port wants, what the interface has and what it added itself; that it never removes
an address it did not add; its state file; and its loop against a stateful fake
interface and a scripted metadata service (answers, errors, backoff)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from routeplane.guest import (
    BACKOFF_MAX,
    Guest,
    GuestError,
    Plan,
    StateFile,
    canonical,
    owned_after,
    plan,
    wanted_addresses,
)

pytestmark = pytest.mark.unit

BASE = "10.28.0.13/16"  # what the VM booted with


@pytest.mark.parametrize(
    ("wanted", "present", "owned", "expected"),
    [
        # the boot address is wanted and there: nothing to do
        (["10.28.0.13"], [BASE], [], Plan((), ())),
        # a service IP moved onto the port: added as a single address
        (["10.28.0.13", "10.28.0.23"], [BASE], [], Plan(("10.28.0.23/32",), ())),
        # IPv6 as /128, in canonical spelling
        (["FD5F:0:0::23"], [], [], Plan(("fd5f::23/128",), ())),
        # moved away: removed, because the guest added it
        (["10.28.0.13"], [BASE, "10.28.0.23/32"], ["10.28.0.23/32"], Plan((), ("10.28.0.23/32",))),
        # not wanted but never added by the guest (a person's, or the image's): left alone
        (["10.28.0.13"], [BASE, "10.28.0.50/32"], [], Plan((), ())),
        # the boot address itself is never removed, even when the port drops it
        ([], [BASE], [], Plan((), ())),
        # wanted and there under another prefix length: not added a second time
        (["10.28.0.23"], [BASE, "10.28.0.23/16"], [], Plan((), ())),
        # the guest's own address that someone removed is added again
        (["10.28.0.23"], [BASE], ["10.28.0.23/32"], Plan(("10.28.0.23/32",), ())),
        # owned but already gone and no longer wanted: nothing to remove
        ([], [BASE], ["10.28.0.23/32"], Plan((), ())),
    ],
)
def test_plan(wanted: list[str], present: list[str], owned: list[str], expected: Plan) -> None:
    assert plan(wanted, present, owned) == expected


def test_owned_after_keeps_what_is_there_adds_the_new_forgets_the_removed() -> None:
    owned = {"10.28.0.23/32", "10.28.0.24/32", "10.28.0.25/32"}
    present = {BASE, "10.28.0.23/32", "10.28.0.24/32"}  # someone removed .25
    after = owned_after(owned, present, added=["10.28.0.26/32"], removed=["10.28.0.24/32"])
    assert after == {"10.28.0.23/32", "10.28.0.26/32"}


def test_canonical_spelling_matches_ip() -> None:
    assert canonical("FD5F:0::0:23/128") == "fd5f::23/128"
    assert canonical("10.28.0.23/32") == "10.28.0.23/32"


def test_wanted_addresses_refuses_a_malformed_answer() -> None:
    good = {"port_id": "p", "revision": 7, "addresses": [{"ip_address": "10.28.0.13"}]}
    assert wanted_addresses(good) == (7, ["10.28.0.13"])
    bad: list[Any] = [{}, {"revision": "7", "addresses": []}, {"revision": 7, "addresses": [{}]},
                      {"revision": 7, "addresses": [{"ip_address": "nope"}]}, []]  # fmt: skip
    for reply in bad:
        with pytest.raises(GuestError):
            wanted_addresses(reply)


# --- the state file ------------------------------------------------------------------------


def test_state_file_round_trip_and_other_interfaces(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "guest.json"
    StateFile(path, "eth0").save({"10.28.0.23/32"})
    assert StateFile(path, "eth0").load() == {"10.28.0.23/32"}
    assert StateFile(path, "eth1").load() == set()  # another interface's record
    path.write_text("{not json")
    assert StateFile(path, "eth0").load() == set()
    assert StateFile(tmp_path / "missing.json", "eth0").load() == set()
    assert StateFile(None, "eth0").load() == set()


# --- the loop, against fakes ---------------------------------------------------------------


class FakeInterface:
    """An interface's addresses, with failure injection for ``add``."""

    def __init__(self, *present: str) -> None:
        self.name = "eth0"
        self.present = set(present)
        self.fail_add: set[str] = set()

    def addresses(self) -> set[str]:
        return set(self.present)

    def add(self, prefix: str) -> None:
        if prefix in self.fail_add:
            raise GuestError(f"cannot add {prefix}")
        self.present.add(prefix)

    def remove(self, prefix: str) -> None:
        self.present.discard(prefix)


class Service:
    """A scripted metadata service: each call takes the next answer (an exception is
    raised); it records the revision each request waited on."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.waited: list[int | None] = []

    def __call__(self, host: str, port: int, revision: int | None) -> Any:
        self.waited.append(revision)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def answer(revision: int, *addresses: str) -> dict[str, Any]:
    return {"port_id": "p1", "revision": revision,
            "addresses": [{"ip_address": a} for a in addresses]}  # fmt: skip


@pytest.fixture
def state(tmp_path: Path) -> StateFile:
    return StateFile(tmp_path / "guest.json", "eth0")


def make_guest(
    interface: FakeInterface, state: StateFile, service: Service
) -> tuple[Guest, list[float]]:
    sleeps: list[float] = []
    guest = Guest(interface, state, fetcher=service, sleep=sleeps.append)  # type: ignore[arg-type]
    return guest, sleeps


def test_follows_moves_in_and_out_and_long_polls_on_the_last_revision(state: StateFile) -> None:
    interface = FakeInterface(BASE)
    service = Service(
        answer(5, "10.28.0.13"),
        answer(6, "10.28.0.13", "10.28.0.23"),  # moved in
        answer(9, "10.28.0.13"),  # moved out
    )
    guest, _ = make_guest(interface, state, service)
    revision = guest.step(None)
    revision = guest.step(revision)
    assert interface.present == {BASE, "10.28.0.23/32"}
    assert state.load() == {"10.28.0.23/32"}
    guest.step(revision)
    assert service.waited == [None, 5, 6]
    assert interface.present == {BASE}
    assert state.load() == set()


def test_a_restarted_guest_still_removes_what_it_added_before(state: StateFile) -> None:
    state.save({"10.28.0.23/32"})
    interface = FakeInterface(BASE, "10.28.0.23/32", "10.28.0.50/32")
    guest, _ = make_guest(interface, state, Service(answer(3, "10.28.0.13")))
    guest.step(None)
    assert interface.present == {BASE, "10.28.0.50/32"}


def test_an_unreachable_service_changes_nothing(state: StateFile) -> None:
    state.save({"10.28.0.23/32"})
    interface = FakeInterface(BASE, "10.28.0.23/32")
    guest, _ = make_guest(interface, state, Service(GuestError("connection refused")))
    with pytest.raises(GuestError):
        guest.step(5)
    assert interface.present == {BASE, "10.28.0.23/32"}
    assert guest.owned == {"10.28.0.23/32"}


def test_run_backs_off_doubling_to_the_cap_then_starts_again(state: StateFile) -> None:
    interface = FakeInterface(BASE)
    down = GuestError("connection refused")
    service = Service(*[down] * 7, answer(4, "10.28.0.13", "10.28.0.23"), down)
    guest, sleeps = make_guest(interface, state, service)

    def fetch(host: str, port: int, revision: int | None) -> Any:
        if not service.answers:  # the script is over: stop like SIGTERM would
            guest.stopping = True
            raise GuestError("stopping")
        return service(host, port, revision)

    guest.fetcher = fetch
    assert guest.run() == 0
    assert sleeps[:7] == [0.1, 0.2, 0.4, 0.8, 1.6, BACKOFF_MAX, BACKOFF_MAX]
    assert sleeps[7] == 0.1  # after a good answer the backoff starts again
    assert interface.present == {BASE, "10.28.0.23/32"}
    assert service.waited[7:] == [None, 4]  # the good answer's revision is waited on


def test_a_failed_add_is_asked_again_at_once(state: StateFile) -> None:
    interface = FakeInterface(BASE)
    interface.fail_add.add("10.28.0.23/32")
    service = Service(answer(4, "10.28.0.23"), answer(4, "10.28.0.23"))
    guest, _ = make_guest(interface, state, service)
    with pytest.raises(GuestError):
        guest.step(None)
    assert guest.owned == set()
    interface.fail_add.clear()
    assert guest.run(once=True) == 0
    assert service.waited == [None, None]  # no long poll on a revision not yet realised
    assert interface.present == {BASE, "10.28.0.23/32"}


def test_the_guest_asks_where_the_agent_answers() -> None:
    """The guest daemon runs inside the VM and imports nothing of routeplane, so it spells
    the metadata path itself: it must be the path the host's metadata service serves."""
    from routeplane import guest
    from routeplane.agent import metadata
    from routeplane.model.keys import GUEST_ADDRESSES_PATH

    assert guest.ADDRESSES_PATH == GUEST_ADDRESSES_PATH == metadata.ADDRESSES_PATH
