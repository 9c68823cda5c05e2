"""openstacksdk as a project member would use it, through the built-in identity.

The walkthrough's service-IP move done with the SDK, plus what a member must and must
not see: its own ports, no ``binding:*`` details, and nothing of another project.
"""

from __future__ import annotations

from collections.abc import Callable

import keystoneauth1.exceptions
import openstack.connection
import openstack.exceptions
import pytest

pytestmark = pytest.mark.api

Connect = Callable[..., openstack.connection.Connection]


def test_member_moves_a_service_ip_with_the_sdk(connect: Connect) -> None:
    demo = connect("demo")
    net = demo.network.create_network(name="sdk-net")
    subnet = demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.40.0.0/24")
    one = demo.network.create_port(network_id=net.id, name="one")
    two = demo.network.create_port(network_id=net.id, name="two")
    service = {"subnet_id": subnet.id, "ip_address": "10.40.0.200"}
    # the SDK updates its objects in place, so keep the original lists apart
    own_one, own_two = list(one.fixed_ips), list(two.fixed_ips)

    demo.network.update_port(one.id, fixed_ips=[*own_one, service])
    with pytest.raises(openstack.exceptions.ConflictException) as taken:
        demo.network.update_port(two.id, fixed_ips=[*own_two, service])
    assert "IP address 10.40.0.200 already allocated" in str(taken.value)

    demo.network.update_port(one.id, fixed_ips=own_one)
    moved = demo.network.update_port(two.id, fixed_ips=[*own_two, service])
    assert "10.40.0.200" in [ip["ip_address"] for ip in moved.fixed_ips]
    holders = list(demo.network.ports(fixed_ips="ip_address=10.40.0.200"))
    assert [p.id for p in holders] == [two.id]


def test_member_sees_no_binding_details_and_no_other_project(connect: Connect) -> None:
    admin, demo, alt = connect(), connect("demo"), connect("alt")
    net = demo.network.create_network(name="private")
    demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.41.0.0/24")
    port = demo.network.create_port(network_id=net.id)
    admin.network.update_port(port, binding_host_id="node1")
    assert admin.network.get_port(port.id).binding_host_id == "node1"
    assert demo.network.get_port(port.id).binding_host_id is None  # hidden, not empty
    with pytest.raises(openstack.exceptions.NotFoundException):
        alt.network.get_port(port.id)
    assert port.id not in [p.id for p in alt.network.ports()]


def test_reader_can_look_but_not_touch(connect: Connect) -> None:
    viewer = connect("viewer", "demo")
    assert isinstance(list(viewer.network.networks()), list)
    with pytest.raises(openstack.exceptions.ForbiddenException):
        viewer.network.create_network(name="nope")


def test_bad_password_is_refused(connect: Connect) -> None:
    bad = connect("demo", password="wrong")
    with pytest.raises(keystoneauth1.exceptions.Unauthorized):
        list(bad.network.networks())
