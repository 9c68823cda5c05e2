"""A started api rewrites the endpoint records an older routeplane left in its store.

The store is first filled by an api, then its records are put back in version 2's shape
(no addressing: the host's DHCP server would stay silent for the VM); a second api
started on the same store rewrites them from their ports while it already serves.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from routeplane.model.endpoint import RECORD_VERSION
from routeplane.store import open_store
from routeplane.testing.api import ApiServer
from tests.api.helpers import ROOT, client, post, stored

pytestmark = [pytest.mark.api]


def test_an_api_started_on_old_records_rewrites_them(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'store.db'}"
    with ApiServer(url, workdir=tmp_path) as api, client(api, api.admin_token) as http:
        net = post(http, "networks", "network", name="old")
        post(http, "subnets", "subnet", network_id=net["id"], ip_version=4, cidr="10.71.0.0/24")
        port = post(http, "ports", "port", network_id=net["id"], **{"binding:host_id": "compute1"})
    path = f"endpoints/compute1/{port['id']}"
    key = ROOT + path
    store = open_store(url)
    try:
        written = stored(store, path)
        assert written is not None
        old = {k: v for k, v in written.items() if k not in ("addressing", "mtu", "hostname")}
        store.put(key, {**old, "version": 2, "extra_dhcp_opts": []})

        with ApiServer(url, workdir=tmp_path):
            deadline = time.monotonic() + 10
            while (kv := store.get(key)) is not None and kv.value != written:
                assert time.monotonic() < deadline, f"not rewritten: {kv.value}"
                time.sleep(0.05)
        again = stored(store, path)
        assert again is not None
        assert again["version"] == RECORD_VERSION
        assert again["addressing"][0]["cidr"] == "10.71.0.0/24"
    finally:
        store.close()
