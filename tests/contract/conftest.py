"""Each contract runs against every implementation through one parametrised fixture.

The store: each test gets a fresh key root so tests sharing the session's etcd never see
each other's keys; assertions on revisions are relative to what the test itself wrote.
The kernel: each Linux case gets namespaces of its own, deleted when it ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from routeplane.lab import netns
from routeplane.store import Store, open_store
from routeplane.testing.etcd import EtcdServer
from tests.contract.kernels import FakeHarness, Harness, LinuxHarness

BACKENDS = ["sqlite", "etcd"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'store.db'}"
    server: EtcdServer = request.getfixturevalue("etcd_server")
    return server.url


@pytest.fixture
def open_url() -> Iterator[Callable[[str], Store]]:
    """Open stores by URL and close them all when the test ends."""
    opened: list[Store] = []

    def _open(url: str) -> Store:
        store = open_store(url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(store_url: str, open_url: Callable[[str], Store]) -> Store:
    return open_url(store_url)


@pytest.fixture
def root() -> str:
    """A key prefix of this test's own."""
    return f"/t/{uuid.uuid4().hex[:12]}/"


# --- the kernel port: the in-memory fake and Linux in a fresh namespace -----------------
KERNELS = ["fake", "linux"]


@pytest.fixture
def lab_cleanup() -> Iterator[netns.Cleanup]:
    """A cleanup registry for namespaces and whatever lives in them; emptied when the
    test ends, whether it passed or not."""
    cleanup = netns.Cleanup()
    try:
        yield cleanup
    finally:
        cleanup.close()


@pytest.fixture(params=KERNELS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "fake":
        yield FakeHarness()
        return
    if os.geteuid() != 0:
        pytest.skip("the Linux kernel cases need root (network namespaces)")
    cleanup: netns.Cleanup = request.getfixturevalue("lab_cleanup")
    yield LinuxHarness(cleanup)
