"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """An embedded store of the test's own, closed when it ends."""
    opened = SqliteStore(tmp_path / "store.db")
    yield opened
    opened.close()
