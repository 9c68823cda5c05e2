"""Fixtures shared by every tier: a real etcd for the whole session, started once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from routeplane.testing.etcd import EtcdServer


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """A real etcd on loopback for the session; never skipped (a missing etcd fails)."""
    with EtcdServer() as server:
        yield server
