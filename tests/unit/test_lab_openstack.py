"""The lab's OpenStack: pure parts (configuration, image stand-in, the api's Keystone table)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from routeplane.cli.main import main
from routeplane.lab import glance_stub, openstack_conf
from routeplane.lab.lab import API_CONFIG
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
            openstack_conf.api_config_with_keystone("", LAYOUT, "pw"),
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


def test_the_lab_api_takes_keystones_tokens_through_keystonemiddleware(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The api config ``lab up --openstack`` writes passes ``routeplane config check``;
    its ``[keystone_authtoken]`` names the service user and Keystone's loopback URL, and
    the lab's admin token stays accepted."""
    base = API_CONFIG.format(token="t", user="admin", password="p")
    text = openstack_conf.api_config_with_keystone(base, LAYOUT, "pw")
    config = tomllib.loads(text)
    assert config["admin_token_beside_keystone"] is True  # the lab's tools use admin_token
    assert config["users"] == tomllib.loads(base)["users"]
    table = config["keystone_authtoken"]
    assert table["auth_url"] == table["www_authenticate_uri"] == LAYOUT.auth_url
    assert (table["username"], table["project_name"]) == ("neutron", "service")
    path = tmp_path / "api.toml"
    path.write_text(text)
    assert main(["config", "check", str(path)]) == 0
    assert "ok for routeplane api" in capsys.readouterr().out


def test_the_retired_keystone_url_key_is_refused_naming_its_replacement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "api.toml"
    path.write_text('keystone_url = "http://127.0.0.1:5000/v3"\nadmin_token = "t"\n')
    assert main(["config", "check", str(path)]) == 2
    said = capsys.readouterr().err
    assert f"{path}: key 'keystone_url': no longer read:" in said
    assert "[keystone_authtoken] table" in said
