"""A Nova compute driver whose guests are lab namespace VMs on routeplane taps.

Load it as Nova loads any driver, in ``nova.conf``::

    [DEFAULT]
    compute_driver = routeplane.nova.driver.RoutePlaneDriver
    [routeplane]
    host_namespace = rp-lab-node1   # the lab host's namespace, where the taps go

It is Nova's fake driver (resource reporting to Placement, the bookkeeping of
instances) with the guest's life done for real by :class:`spawning.Spawner`: the tap
``tap<port[:11]>`` in the host's namespace (with carrier, as a paused QEMU guest's tap
has), the guest paused (no address, nothing running) until
``network-vif-plugged`` has come for every VIF that was not yet active, honouring
``vif_plugging_timeout`` and ``vif_plugging_is_fatal`` as the libvirt driver does; taps
removed on delete. Only this module imports Nova, and nothing of routeplane imports it:
it runs inside nova-compute, from a Nova installation (import-linter keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from nova import exception
from nova.conf import CONF
from nova.virt import fake
from oslo_config import cfg

from routeplane.lab import netns
from routeplane.nova.spawning import (
    EventTimeout,
    PlugSettings,
    Spawner,
    Tap,
    VifPlugFailed,
)

GUEST_INTERFACE = "eth0"
OPTIONS = [
    cfg.StrOpt("host_namespace", help="the lab host's network namespace (rp-…)"),
    cfg.StrOpt(
        "guest_namespace_prefix",
        default="rp-nova-",
        help="guests are namespaces <prefix><instance[:8]> (the lab's own prefix, so its down removes them)",
    ),
]
CONF.register_opts(OPTIONS, group="routeplane")


class NamespaceHypervisor:
    """Guests as namespaces ``<prefix><instance[:8]>`` wired to the host's namespace."""

    def __init__(self, host_namespace: str, prefix: str = "rp-nova-") -> None:
        self.host = netns.check(host_namespace)
        self.prefix = prefix

    def namespace(self, instance: str) -> str:
        return netns.check(f"{self.prefix}{instance[:8]}")

    def plug(self, instance: str, tap: Tap) -> None:
        guest = self.namespace(instance)
        if not netns.exists(guest):
            netns.create(guest)
        netns.add_veth(
            self.host,
            tap.name,
            guest,
            GUEST_INTERFACE,
            mac=tap.host_mac,
            peer_mac=tap.guest_mac,
            up=True,
            peer_up=True,  # a QEMU tap has carrier while the guest is paused
        )

    def unplug(self, instance: str, tap: Tap) -> None:
        """Remove the tap if it is there: deleting the guest's namespace takes the veth
        pair with it, asynchronously, so the tap may vanish at any moment."""
        try:
            netns.ip(self.host, "link", "del", tap.name)
        except netns.LabError as exc:
            if "Cannot find device" not in str(exc):
                raise

    def create_paused(self, instance: str, taps: Sequence[Tap]) -> None:
        """The guest exists, its link up but nothing running: no address, no traffic."""

    def start(self, instance: str) -> None:
        """A namespace guest has nothing to run: its address comes by DHCP when asked."""
        netns.ip(self.namespace(instance), "link", "set", GUEST_INTERFACE, "up")

    def destroy(self, instance: str) -> None:
        guest = self.namespace(instance)
        if netns.exists(guest):
            netns.delete(guest)


class RoutePlaneDriver(fake.FakeDriver):  # type: ignore[misc]
    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi, read_only)
        self.hypervisor = NamespaceHypervisor(
            CONF.routeplane.host_namespace, CONF.routeplane.guest_namespace_prefix
        )
        settings = PlugSettings(CONF.vif_plugging_timeout, CONF.vif_plugging_is_fatal)
        self._settings = settings

    def _spawner(self, instance: Any) -> Spawner:
        return Spawner(self.hypervisor, self._waiter(instance), self._settings)

    def _waiter(
        self, instance: Any
    ) -> Callable[[list[tuple[str, str]], float, Callable[[str], None]], Any]:
        @contextmanager
        def wait(
            events: list[tuple[str, str]], timeout: float, failed: Callable[[str], None]
        ) -> Iterator[None]:
            def on_error(event_name: str, _instance: Any) -> None:
                failed(event_name)

            try:
                with self.virtapi.wait_for_instance_event(
                    instance, events, timeout=timeout, error_callback=on_error
                ):
                    yield
            except exception.InstanceEventTimeout as exc:
                raise EventTimeout(str(exc)) from exc

        return wait

    def spawn(  # noqa: PLR0917 (Nova's signature)
        self,
        context: Any,
        instance: Any,
        image_meta: Any,
        injected_files: Any,
        admin_password: Any,
        allocations: Any,
        network_info: Any = None,
        block_device_info: Any = None,
        power_on: bool = True,
        accel_info: Any = None,
    ) -> None:
        try:
            self._spawner(instance).spawn(instance.uuid, list(network_info or []))
        except VifPlugFailed as exc:
            raise exception.VirtualInterfaceCreateException() from exc
        super().spawn(
            context,
            instance,
            image_meta,
            injected_files,
            admin_password,
            allocations,
            network_info,
            block_device_info,
            power_on,
            accel_info,
        )

    def destroy(
        self, context: Any, instance: Any, network_info: Any, *args: Any, **kw: Any
    ) -> None:
        """The guest and its taps go; Nova's bookkeeping after (block devices, disks)."""
        self._spawner(instance).destroy(instance.uuid, list(network_info or []))
        super().destroy(context, instance, network_info, *args, **kw)

    def plug_vifs(self, instance: Any, network_info: Any) -> None:
        for vif in network_info or []:
            self.hypervisor.plug(instance.uuid, Tap.of(vif))

    def unplug_vifs(self, instance: Any, network_info: Any) -> None:
        for vif in network_info or []:
            self.hypervisor.unplug(instance.uuid, Tap.of(vif))

    def power_off(self, instance: Any, timeout: int = 0, retry_interval: int = 0) -> None:
        netns.ip(self.hypervisor.namespace(instance.uuid), "link", "set", GUEST_INTERFACE, "down")
        super().power_off(instance, timeout, retry_interval)

    def power_on(
        self, context: Any, instance: Any, network_info: Any, *args: Any, **kw: Any
    ) -> None:
        self.hypervisor.start(instance.uuid)
        super().power_on(context, instance, network_info, *args, **kw)


__all__ = ["NamespaceHypervisor", "RoutePlaneDriver"]
