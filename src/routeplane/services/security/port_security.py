"""Who may turn port security off: an admin only.

With ``port_security_enabled`` false a port's tap has no anti-spoofing and no security
groups. In a flat routed space that is not one tenant's business: the VM may then send
from any address, one another project's security group admits by ``remote_ip_prefix``
included. Neutron lets the network owner do it (``ADMIN_OR_NET_OWNER_MEMBER``); routeplane
reserves it to admins, on ports and on networks (whose ports inherit the setting), with
Neutron's policy refusal naming the attribute. Turning it on again is anyone's right.
"""

from __future__ import annotations

from typing import Any

from routeplane.services.attributes import policy_denied
from routeplane.services.context import Context


def may_set(ctx: Context, action: str, asked: Any, current: bool = True) -> None:
    """Refuse a non-admin's request that turns port security off (``asked`` false)."""
    if asked is False and current and not ctx.is_admin:
        raise policy_denied(action, "port_security_enabled")


__all__ = ["may_set"]
