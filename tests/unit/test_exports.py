"""Unit: the public surface of each package is what its ``__all__`` says, and importable."""

from __future__ import annotations

import importlib

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "module",
    [
        "routeplane",
        "routeplane.store",
        "routeplane.model.errors",
        "routeplane.store.base",
        "routeplane.dataplane.model",
        "routeplane.dataplane.fake",
        "routeplane.dataplane.linux",
        "routeplane.dataplane.linux.rtnl",
        "routeplane.lab.netns",
    ],
)
def test_all_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is exported but missing"


def test_store_package_exports_the_interface() -> None:
    store = importlib.import_module("routeplane.store")
    assert {"Store", "Watch", "open_store", "absent", "Put", "Delete"} <= set(store.__all__)
