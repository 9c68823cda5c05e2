"""The lab's OpenStack: pure parts (configuration, image stand-in, Keystone token mapping)."""

from __future__ import annotations

import re
from pathlib import Path

from routeplane.api.keystone_tokens import context_of
from routeplane.lab import glance_stub, openstack_conf
from routeplane.lab.openstack_conf import OpenStackLayout

LAYOUT = OpenStackLayout(Path("/run/routeplane/t/openstack"), Path("/venv"), 19696)


def test_every_configured_address_is_loopback() -> None:
    text = "\n".join(
        [
            openstack_conf.keystone_conf(LAYOUT),
            openstack_conf.placement_conf(LAYOUT, "pw"),
            openstack_conf.nova_conf(LAYOUT, "pw"),
            openstack_conf.rabbit_conf(LAYOUT),
            openstack_conf.controller_nova_table(LAYOUT, "pw"),
            *openstack_conf.rabbit_env(LAYOUT).values(),
        ]
    )
    hosts = set(re.findall(r"(?:https?|rabbit)://(?:[^@/]+@)?([^:/]+)", text))
    assert hosts == {"127.0.0.1"}
    assert "inet_dist_use_interface {127,0,0,1}" in text
    assert openstack_conf.rabbit_env(LAYOUT)["ERL_EPMD_ADDRESS"] == "127.0.0.1"


def test_a_compute_names_its_host_and_the_routeplane_driver() -> None:
    text = openstack_conf.compute_conf("node2", "rp-t-node2", "rp-t-vm-nova-")
    assert "host = node2" in text
    assert "compute_driver = routeplane.RoutePlaneDriver" in text
    assert "host_namespace = rp-t-node2" in text


def test_the_image_stand_in_serves_one_record_and_nothing_else() -> None:
    record = glance_stub.image_record("abc", "guest")
    assert glance_stub.answer("/v2/images/abc", {}, "http://x", record) == (200, record)
    assert glance_stub.answer("/v2/images", {"name": ["guest"]}, "", record)[1]["images"] == [
        record
    ]
    assert glance_stub.answer("/v2/images", {"name": ["other"]}, "", record)[1]["images"] == []
    assert glance_stub.answer("/v2/images/other", {}, "", record)[0] == 404
    schema = glance_stub.answer("/v2/schemas/image", {}, "", record)[1]
    assert {"id", "name", "status", "min_disk"} <= set(schema["properties"])


def test_a_keystone_token_becomes_its_project_and_roles() -> None:
    body = {
        "token": {
            "project": {"id": "p1"},
            "user": {"id": "u1"},
            "roles": [{"name": "member"}, {"name": "load-balancer_member"}],
        }
    }
    ctx = context_of(body)
    assert ctx is not None
    assert (ctx.project_id, ctx.user_id, ctx.roles) == ("p1", "u1", frozenset({"member", "reader"}))
    assert context_of({"token": {"user": {"id": "u1"}, "roles": []}}) is None  # unscoped
