"""Unit: the built-in identity's tokens: who they name, and when they stop working."""

from __future__ import annotations

import pytest

from routeplane.services.security.identity import Identity, IdentityConfig

pytestmark = pytest.mark.unit

CONFIG = {
    "admin_token": "static-admin",
    "token_ttl": 60,
    "users": [
        {"name": "demo", "password": "secret", "project": "demo", "roles": ["member"]},
        {"name": "viewer", "password": "secret", "project": "demo", "roles": ["reader"]},
        {"name": "boss", "password": "secret", "project": "demo", "roles": ["manager"]},
        {"name": "nova", "password": "secret", "project": "service", "roles": ["service"]},
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[Identity, Clock]:
    clock = Clock()
    return Identity(IdentityConfig.from_dict(CONFIG), b"k" * 32, clock=clock), clock


def test_password_token_names_user_project_and_roles() -> None:
    identity, _ = make()
    token = identity.authenticate("demo", "secret", "demo")
    assert token is not None
    ctx = identity.context(token.value)
    assert ctx is not None
    assert ctx.project_id == token.project.id
    assert ctx.can_write
    assert not ctx.is_admin
    assert "reader" in ctx.roles  # member implies reader


def test_wrong_password_or_foreign_project_gets_no_token() -> None:
    identity, _ = make()
    assert identity.authenticate("demo", "wrong", "demo") is None
    assert identity.authenticate("nobody", "secret", None) is None
    assert identity.authenticate("demo", "secret", "admin") is None


def test_tokens_expire() -> None:
    identity, clock = make()
    token = identity.authenticate("viewer", "secret", None)
    assert token is not None
    clock.now += 59
    ctx = identity.context(token.value)
    assert ctx is not None
    assert not ctx.can_write
    clock.now += 2
    assert identity.context(token.value) is None


def test_forged_or_foreign_tokens_are_refused() -> None:
    identity, _ = make()
    token = identity.authenticate("demo", "secret", None)
    assert token is not None
    payload, _, signature = token.value.partition(".")
    assert identity.context(payload + "." + signature[::-1]) is None
    assert identity.context("garbage") is None
    assert identity.context("") is None
    other = Identity(IdentityConfig.from_dict(CONFIG), b"x" * 32)
    assert other.context(token.value) is None  # signed with another secret


def test_static_admin_token() -> None:
    identity, _ = make()
    ctx = identity.context("static-admin")
    assert ctx is not None
    assert ctx.is_admin


def test_keystones_manager_and_service_roles_are_known() -> None:
    """Keystone's default roles: a manager is a member (and a reader) of its project; a
    service user (Nova's) holds only ``service``, which port bindings ask for."""
    identity, _ = make()
    roles = {}
    for user, project in (("boss", "demo"), ("nova", "service")):
        token = identity.authenticate(user, "secret", project)
        assert token is not None
        ctx = identity.context(token.value)
        assert ctx is not None
        roles[user] = ctx.roles
    assert roles == {
        "boss": frozenset({"manager", "member", "reader"}),
        "nova": frozenset({"service"}),
    }
    bad = {"users": [{"name": "x", "password": "p", "project": "p", "roles": ["owner"]}]}
    with pytest.raises(ValueError, match="unknown roles"):
        IdentityConfig.from_dict(bad)
