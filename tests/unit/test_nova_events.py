"""Unit: which Nova events a port's change calls for, how they are batched, and what
Nova's answers mean (pure functions, table-tested)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from routeplane.controller import nova_batching as batching
from routeplane.controller.nova_batching import Entry, Verdict
from routeplane.controller.nova_events import DOWN, FAILED, UP, PortView, Told, derive, port_view
from routeplane.controller.nova_notifier import NotifierSettings, NovaNotifier
from routeplane.model.jsontypes import JSONObject, JSONValue
from routeplane.model.keys import LEADER_KEY, key, nova_outbox_prefix, status_key
from routeplane.store.sqlite import SqliteStore

pytestmark = pytest.mark.unit

SERVER = "0b8f5d36-2a31-4a4b-9d1e-4c1c7e0f6a01"
OTHER = "7c3c3c53-9f7b-4b0e-8a38-1f0c8f3d2b02"
PORT = "p1"


def port(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": PORT,
        "device_owner": "compute:nova",
        "device_id": SERVER,
        "binding:host_id": "node1",
        "binding:vif_type": "tap",
        "admin_state_up": True,
        "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.5"}],
    }
    doc.update(changes)
    return doc


def told(state: str = DOWN, fixed: tuple[str, ...] = ("10.0.0.5",), **kw: Any) -> Told:
    return Told(kw.get("device_id", SERVER), state, fixed, kw.get("floating", ()))


def names(events: list[Any]) -> list[tuple[str, str, str | None]]:
    return [(e["name"], e["server_uuid"], e.get("status")) for e in events]


@pytest.mark.parametrize(
    ("doc", "status", "expected"),
    [
        (port(), {"port_revision": 3}, UP),
        (port(), None, DOWN),
        (port(admin_state_up=False), {"port_revision": 3}, DOWN),
        (port(**{"binding:host_id": ""}), {"port_revision": 3}, DOWN),
        (port(**{"binding:vif_type": "binding_failed"}), {"port_revision": 3}, FAILED),
    ],
)
def test_a_ports_state_is_what_the_api_shows(doc: Any, status: Any, expected: str) -> None:
    view = port_view(doc, status, ())
    assert view is not None
    assert view.state == expected


@pytest.mark.parametrize(
    "doc",
    [
        port(device_owner="network:dhcp"),
        port(device_owner=""),
        port(device_id="not-a-uuid"),
        port(device_id=""),
        None,
    ],
)
def test_only_ports_of_nova_instances_count(doc: Any) -> None:
    assert port_view(doc, {"port_revision": 1}, ()) is None


def test_the_agent_programming_a_new_port_plugs_it() -> None:
    events, after = derive(PORT, None, port_view(port(), {"port_revision": 1}, ()))
    assert names(events) == [("network-vif-plugged", SERVER, "completed")]
    assert events[0]["tag"] == PORT
    assert after == told(UP)


def test_a_new_port_not_yet_programmed_sends_nothing_but_is_remembered() -> None:
    events, after = derive(PORT, None, port_view(port(), None, ()))
    assert events == []
    assert after == told(DOWN)


def test_a_failed_binding_fails_the_plug() -> None:
    view = port_view(port(**{"binding:vif_type": "binding_failed"}), None, ())
    events, _ = derive(PORT, told(DOWN), view)
    assert names(events) == [("network-vif-plugged", SERVER, "failed")]


def test_losing_the_status_unplugs() -> None:
    events, after = derive(PORT, told(UP), port_view(port(), None, ()))
    assert names(events) == [("network-vif-unplugged", SERVER, "completed")]
    assert after == told(DOWN)


def test_nothing_new_sends_nothing() -> None:
    view = port_view(port(), {"port_revision": 9}, ())
    assert derive(PORT, told(UP), view) == ([], told(UP))


def test_new_fixed_ips_change_the_network_once() -> None:
    doc = port(fixed_ips=[{"ip_address": "10.0.0.5"}, {"ip_address": "10.0.0.99"}])
    events, after = derive(PORT, told(UP), port_view(doc, {"port_revision": 4}, ()))
    assert names(events) == [("network-changed", SERVER, None)]
    assert after == told(UP, ("10.0.0.5", "10.0.0.99"))
    assert derive(PORT, after, port_view(doc, {"port_revision": 5}, ()))[0] == []


def test_a_floating_ip_association_changes_the_network() -> None:
    events, after = derive(PORT, told(UP), port_view(port(), {"x": 1}, ("172.24.4.10",)))
    assert names(events) == [("network-changed", SERVER, None)]
    assert after is not None
    assert after.floating_ips == ("172.24.4.10",)


def test_the_network_changes_before_the_plug_of_the_same_change() -> None:
    doc = port(fixed_ips=[{"ip_address": "10.0.0.6"}])
    events, _ = derive(PORT, told(DOWN), port_view(doc, {"port_revision": 2}, ()))
    assert [e["name"] for e in events] == ["network-changed", "network-vif-plugged"]


def test_a_deleted_port_is_deleted_for_its_instance() -> None:
    assert derive(PORT, told(UP), None) == (
        [{"name": "network-vif-deleted", "server_uuid": SERVER, "tag": PORT}],
        None,
    )


def test_a_port_moved_to_another_instance_is_deleted_from_the_first() -> None:
    view = port_view(port(device_id=OTHER), {"port_revision": 2}, ())
    events, after = derive(PORT, told(UP), view)
    assert names(events) == [
        ("network-vif-deleted", SERVER, None),
        ("network-vif-plugged", OTHER, "completed"),
    ]
    assert after == told(UP, device_id=OTHER)


def test_told_survives_its_json() -> None:
    record = told(UP, ("10.0.0.5", "2001:db8::5"), floating=("172.24.4.3",))
    assert Told.parse(record.to_json()) == record
    assert Told.parse({"device_id": "nope"}) is None


def test_port_view_sorts_addresses() -> None:
    doc = port(fixed_ips=[{"ip_address": "10.0.0.9"}, {"ip_address": "10.0.0.1"}])
    assert port_view(doc, None, ("b", "a")) == PortView(
        SERVER, DOWN, ("10.0.0.1", "10.0.0.9"), ("a", "b")
    )


# batching and answers ----------------------------------------------------------------
def entry(name: str, count: int) -> Entry:
    return Entry(name, tuple({"name": "network-changed", "n": i} for i in range(count)))


def test_batches_keep_entries_whole_and_in_order() -> None:
    cut = batching.batches(
        [entry("a", 2), entry("b", 2), entry("c", 1), entry("d", 5)], max_events=4
    )
    assert [[e.key for e in b] for b in cut] == [["a", "b"], ["c"], ["d"]]
    assert batching.batches([]) == []


def test_a_batch_waits_for_its_window() -> None:
    assert not batching.due(None, 10.0)
    assert not batching.due(10.0, 10.05, window=0.1)
    assert batching.due(10.0, 10.25, window=0.1)


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (200, Verdict.SENT),
        (None, Verdict.RETRY),
        (503, Verdict.RETRY),
        (500, Verdict.RETRY),
        (429, Verdict.RETRY),
        (401, Verdict.RETRY),
        (400, Verdict.DROPPED),
        (404, Verdict.DROPPED),
    ],
)
def test_what_novas_status_means(code: int | None, verdict: Verdict) -> None:
    assert batching.read_answer(code, {}).verdict is verdict


def test_a_207_names_the_refused_events_and_is_not_retried() -> None:
    body: JSONValue = {
        "events": [
            {"name": "network-vif-plugged", "server_uuid": SERVER, "code": 200},
            {"name": "network-changed", "server_uuid": OTHER, "code": 404},
        ]
    }
    answer = batching.read_answer(207, body)
    assert answer.verdict is Verdict.SENT
    assert [e["server_uuid"] for e in answer.refused] == [OTHER]


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = batching.Backoff(initial=0.25, cap=1.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    backoff.reset()
    assert backoff.next_delay() == 0.25


# the notifier's bounded outbox, on the embedded store -------------------------------
class RefusingNova:
    """A Nova that is never reachable: everything stays queued."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, events: Any) -> tuple[int | None, Any]:
        self.calls += 1
        return None, "connection refused"


def test_overflow_beyond_the_bound_is_dropped_and_counted(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "store.db"))
    leader: JSONObject = {"holder": "me"}
    store.put(LEADER_KEY, leader)
    settings = NotifierSettings(max_queued=2, poll_timeout=0)
    notifier = NovaNotifier(store, RefusingNova(), lambda: leader, settings)
    try:
        for n in range(3):
            port_id = f"port{n}"
            doc = port(id=port_id, device_id=f"{n}b8f5d36-2a31-4a4b-9d1e-4c1c7e0f6a01")
            store.put(key("ports", port_id), doc)
            store.put(status_key("node1", port_id), {"port_revision": 1})
        notifier.step()
        assert notifier.stats["overflow"] == 1
        assert len(store.range(nova_outbox_prefix()).items) == 2
        notifier.step()  # a dropped event is not derived again
        assert notifier.stats["overflow"] == 1
    finally:
        notifier.close()
        store.close()
