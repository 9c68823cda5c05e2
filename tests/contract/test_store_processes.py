"""Store contract across processes: claims race correctly, watchers miss nothing.

This is the situation of a real deployment: several api processes claim IP addresses at
once, and agents in other processes follow every change. Each backend runs the same
workload with real processes (``spawn``: no state inherited from the test process).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from routeplane.store import Put, Store
from tests.contract import workers

pytestmark = [pytest.mark.contract, pytest.mark.slow]

CTX = multiprocessing.get_context("spawn")


def test_racing_claims_have_exactly_one_winner(store_url: str, store: Store, root: str) -> None:
    keys = [f"{root}ipam/10.28.0.{i}" for i in range(40)]
    racers = 6
    with CTX.Manager() as manager, ProcessPoolExecutor(racers, mp_context=CTX) as pool:
        go = manager.Event()
        futures = [
            pool.submit(workers.claim, store_url, keys, f"racer{n}", go) for n in range(racers)
        ]
        go.set()
        outcomes = [f.result(timeout=120) for f in futures]
    for index, key in enumerate(keys):
        winners = [n for n, outcome in enumerate(outcomes) if outcome[index][1]]
        assert len(winners) == 1, f"{key}: winners {winners}"
        stored = store.get(key)
        assert stored is not None
        assert stored.value == f"racer{winners[0]}"
        losers_saw = {outcome[index][2] for outcome in outcomes if not outcome[index][1]}
        assert losers_saw == {f"racer{winners[0]}"}


def test_a_watcher_in_another_process_sees_every_write_in_order(
    store_url: str, store: Store, root: str
) -> None:
    writers, per_writer = 4, 2500  # 10,000 writes
    start = store.revision() + 1
    stop_key = root + "zz-done"
    with CTX.Manager() as manager, ProcessPoolExecutor(writers + 1, mp_context=CTX) as pool:
        ready, go = manager.Event(), manager.Event()
        watcher = pool.submit(workers.watch_until, store_url, root, start, stop_key, ready)
        assert ready.wait(60)
        futures = [
            pool.submit(workers.write_mix, store_url, root, n, per_writer, go)
            for n in range(writers)
        ]
        go.set()
        written = [record for f in futures for record in f.result(timeout=300)]
        store.txn([], [Put(stop_key, True)])
        seen = watcher.result(timeout=120)

    assert len(written) >= writers * per_writer
    revisions = [rev for rev, _, _ in seen]
    assert revisions == sorted(revisions), "events arrived out of revision order"
    # every writer's events, merged by revision, are exactly what the watcher saw
    expected = sorted(written, key=lambda record: record[0])
    assert len(seen) == len(expected)
    assert seen == expected
