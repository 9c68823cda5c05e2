"""Port bindings as Nova's live migration drives them (extension ``binding-extended``).

A port has one *active* binding, the one its ``binding:*`` attributes show, and may have
*inactive* ones for other hosts: Nova creates one on the destination host before it
moves a VM (``POST /ports/{id}/bindings``), activates it when the VM runs there (``PUT
…/bindings/{host}/activate``: the bindings swap, the source's becomes inactive) and then
deletes the source's (``DELETE …/bindings/{host}``). Semantics, policy and errors are
ML2's (``neutron/plugins/ml2/plugin.py``): only compute ports; a second binding for one
host is ``PortBindingAlreadyExists``; a host without a live agent cannot be bound
(``PortBindingError``); activating the active host is ``PortBindingAlreadyActive``;
creating, activating and deleting take the ``service`` role, reading takes admin or
service.

Inactive bindings live in the port document (``_bindings``, private, never shown as a
port field), so every change is the port's own transaction. Those Nova created
(``target``) give their host an endpoint record marked ``migration_target`` (see
:meth:`PortService.endpoint_hosts`), so the destination can prepare the port before the
VM arrives; the source binding demoted by an activation has none: the source host's
record leaves with the activation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from routeplane.services.agents import AgentService
from routeplane.services.attributes import Attr, check_create, string, unwrap
from routeplane.services.common import bump
from routeplane.services.context import Context
from routeplane.services.core.endpoints import BINDINGS_FIELD
from routeplane.services.core.ports import PortService, vif_details
from routeplane.services.errors import ApiFault, bad_request, forbidden
from routeplane.services.repo import Change, Doc, Outcome

BINDING_ATTRS = {
    "host": Attr(validate=string(255)),
    "vnic_type": Attr(default="normal", validate=string(64)),
    "profile": Attr(default=dict),
    "vif_type": Attr(post=False, put=False),
    "vif_details": Attr(post=False, put=False),
    "status": Attr(post=False, put=False),
}
COMPUTE_OWNERS = ("compute:", "manila:")
T = TypeVar("T")


def policy(ctx: Context, action: str, *, read: bool = False) -> None:
    if "service" not in ctx.roles and not (read and ctx.is_admin):
        raise forbidden(action)


def not_found(port_id: str, host: str) -> ApiFault:
    return ApiFault(
        "PortBindingNotFound",
        404,
        f"Binding for port {port_id} for host {host} could not be found.",
    )


def binding_view(host: str, stored: dict[str, Any], status: str) -> dict[str, Any]:
    """Neutron's binding body, in Neutron's order."""
    return {
        "host": host,
        "vif_type": stored.get("vif_type", "unbound"),
        "vnic_type": stored.get("vnic_type", "normal"),
        "status": status,
        "profile": stored.get("profile") or {},
        "vif_details": stored.get("vif_details") or {},
    }


class PortBindings:
    def __init__(self, ports: PortService, agents: AgentService) -> None:
        self.ports = ports
        self.agents = agents
        self.repo = ports.repo

    def _port(self, port_id: str) -> Doc:
        doc = self.repo.get("ports", port_id) if "/" not in port_id else None
        if doc is None:
            raise self.ports.not_found(port_id)
        owner = str(doc.value.get("device_owner", ""))
        if not owner.startswith(COMPUTE_OWNERS):
            raise ApiFault(
                "BadRequest",
                400,
                f"Bad port request: Invalid port {port_id}. Operation only valid on compute "
                "and shared filesystem ports.",
            )
        return doc

    def _active(self, port: dict[str, Any]) -> dict[str, Any]:
        shown = self.ports.render_binding(port)
        return binding_view(
            str(port.get("binding:host_id") or ""),
            {
                "vif_type": shown["binding:vif_type"],
                "vnic_type": port.get("binding:vnic_type", "normal"),
                "profile": port.get("binding:profile"),
                "vif_details": shown["binding:vif_details"],
            },
            "ACTIVE",
        )

    # reading -----------------------------------------------------------------------------
    def list(self, ctx: Context, port_id: str) -> list[dict[str, Any]]:
        policy(ctx, "get_port_binding", read=True)
        port = self._port(port_id).value
        inactive = port.get(BINDINGS_FIELD, {})
        return [
            self._active(port),
            *(binding_view(h, b, "INACTIVE") for h, b in sorted(inactive.items())),
        ]

    def get(self, ctx: Context, port_id: str, host: str) -> dict[str, Any]:
        for binding in self.list(ctx, port_id):
            if binding["host"] == host:
                return binding
        raise not_found(port_id, host)

    # writing -----------------------------------------------------------------------------
    def _write(
        self, port_id: str, decide: Callable[[dict[str, Any]], tuple[dict[str, Any], T]]
    ) -> T:
        """One port transaction: ``decide(port)`` → (the new port document, the answer)."""

        def use_case() -> Outcome[T]:
            doc = self._port(port_id)
            updated, answer = decide(dict(doc.value))
            change = Change()
            change.depends_on(doc)
            updated = bump(updated)
            change.put(doc.key, updated)
            self.ports.after_update(change, doc.value, updated)
            return Outcome(change, answer)

        return self.repo.run(use_case)

    def create(self, ctx: Context, port_id: str, body: Any) -> dict[str, Any]:
        if body == {}:  # Neutron's "not body" test, before it looks for the resource
            raise bad_request("Resource body required")
        data = check_create(BINDING_ATTRS, unwrap(body, "binding"), is_admin=True)
        policy(ctx, "create_port_binding")  # after the body, as Neutron checks them
        host = str(data["host"])

        def decide(port: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            inactive = dict(port.get(BINDINGS_FIELD, {}))
            if host == port.get("binding:host_id") or host in inactive:
                raise ApiFault(
                    "PortBindingAlreadyExists",
                    409,
                    f"Binding for port {port_id} on host {host} already exists.",
                )
            if not self.agents.is_live(host):
                raise ApiFault(
                    "PortBindingError",
                    500,
                    f"Binding for port {port_id} on host {host} could not be created or updated.",
                )
            binding = {
                "vif_type": "tap",
                "vnic_type": data["vnic_type"],
                "profile": data["profile"] or {},
                "vif_details": vif_details(str(port["mac_address"])),
                "target": True,
            }
            inactive[host] = binding
            return {**port, BINDINGS_FIELD: inactive}, binding_view(host, binding, "INACTIVE")

        return self._write(port_id, decide)

    def activate(self, ctx: Context, port_id: str, host: str) -> dict[str, Any]:
        policy(ctx, "activate")

        def decide(port: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            source = str(port.get("binding:host_id") or "")
            if host == source:
                raise ApiFault(
                    "PortBindingAlreadyActive",
                    409,
                    f"Binding for port {port_id} on host {host} is already active.",
                )
            inactive = dict(port.get(BINDINGS_FIELD, {}))
            if host not in inactive:
                raise not_found(port_id, host)
            chosen = inactive.pop(host)
            if source:  # demoted: Nova deletes it once the VM runs on the destination
                inactive[source] = {
                    "vif_type": port.get("binding:vif_type", "unbound"),
                    "vnic_type": port.get("binding:vnic_type", "normal"),
                    "profile": port.get("binding:profile") or {},
                    "vif_details": port.get("binding:vif_details") or {},
                    "target": False,
                }
            profile = dict(chosen.get("profile") or {})
            updated = {
                **port,
                BINDINGS_FIELD: inactive,
                "binding:host_id": host,
                "binding:vnic_type": chosen.get("vnic_type", "normal"),
                "binding:profile": profile,
                "binding:vif_type": "tap",
                "binding:vif_details": vif_details(str(port["mac_address"])),
            }
            return updated, self._active(updated)

        return self._write(port_id, decide)

    def delete(self, ctx: Context, port_id: str, host: str) -> None:
        policy(ctx, "delete_port_binding")

        def decide(port: dict[str, Any]) -> tuple[dict[str, Any], None]:
            inactive = dict(port.get(BINDINGS_FIELD, {}))
            if host in inactive:
                del inactive[host]
                return {**port, BINDINGS_FIELD: inactive}, None
            if host and host == port.get("binding:host_id"):  # the active one: unbound
                unbound = {**port, "binding:host_id": ""}
                unbound.update(binding_fields(unbound))
                return unbound, None
            raise not_found(port_id, host)

        self._write(port_id, decide)


def binding_fields(port: dict[str, Any]) -> dict[str, Any]:
    bound = bool(port.get("binding:host_id"))
    return {
        "binding:vif_type": "tap" if bound else "unbound",
        "binding:vif_details": vif_details(str(port["mac_address"])) if bound else {},
    }


__all__ = ["BINDING_ATTRS", "PortBindings", "binding_view"]
