"""The store contract runs against every backend through one parametrised fixture.

Each test gets a fresh key root so tests sharing the session's etcd never see each
other's keys; assertions on revisions are relative to what the test itself wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from routeplane.store import Store, open_store
from routeplane.testing.etcd import EtcdServer

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
