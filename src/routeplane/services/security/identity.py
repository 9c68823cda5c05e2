"""A built-in Keystone v3 subset: users, projects and roles from the config file, tokens.

Tokens are self-contained and signed (HMAC-SHA256): ``<payload>.<signature>`` where the
payload names the user, project, roles and expiry. Every api process that shares the
secret accepts every other's tokens with no shared session state; the secret comes from
the config file or, by default, from the store (created once, shared by all processes on
that store). A static admin token is accepted for ``--os-auth-type admin_token``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from routeplane.model.keys import TOKEN_SECRET_KEY
from routeplane.services.context import Context
from routeplane.store import Get, Put, Store, absent

SECRET_KEY = TOKEN_SECRET_KEY
# Keystone's default roles: ``manager`` (a project's manager, a member and more) and
# ``service`` (another service's user: Nova's, for port bindings) as well
ROLES = ("admin", "manager", "member", "reader", "service")


@dataclass(frozen=True)
class User:
    name: str
    password: str
    project: str
    roles: tuple[str, ...]
    domain: str = "Default"

    @property
    def id(self) -> str:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"routeplane-user:{self.name}").hex


@dataclass(frozen=True)
class Project:
    name: str
    id: str
    domain: str = "Default"


@dataclass
class IdentityConfig:
    users: list[User] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)
    admin_token: str | None = None
    admin_project: str = "admin"
    token_ttl: int = 3600
    token_secret: str | None = None
    region: str = "RegionOne"

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> IdentityConfig:
        projects = [
            Project(
                p["name"],
                str(
                    p.get("id")
                    or uuid.uuid5(uuid.NAMESPACE_URL, "routeplane-project:" + p["name"]).hex
                ),
            )
            for p in raw.get("projects", [])
        ]
        names = {p.name for p in projects}
        users = []
        for u in raw.get("users", []):
            if u["project"] not in names:
                projects.append(
                    Project(
                        u["project"],
                        uuid.uuid5(uuid.NAMESPACE_URL, "routeplane-project:" + u["project"]).hex,
                    )
                )
                names.add(u["project"])
            roles = tuple(u.get("roles", ["member", "reader"]))
            unknown = set(roles) - set(ROLES)
            if unknown:
                raise ValueError(
                    f"user {u['name']}: unknown roles {sorted(unknown)}; use {list(ROLES)}"
                )
            users.append(User(u["name"], u["password"], u["project"], roles))
        return IdentityConfig(
            users=users,
            projects=projects,
            admin_token=raw.get("admin_token"),
            admin_project=raw.get("admin_project", "admin"),
            token_ttl=int(raw.get("token_ttl", 3600)),
            token_secret=raw.get("token_secret"),
            region=raw.get("region", "RegionOne"),
        )


@dataclass(frozen=True)
class Token:
    value: str
    user: User
    project: Project
    issued_at: float
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def shared_secret(store: Store) -> bytes:
    """The signing secret all api processes on this store share (created once)."""
    candidate = secrets.token_hex(32)
    result = store.txn([absent(SECRET_KEY)], [Put(SECRET_KEY, candidate)], [Get(SECRET_KEY)])
    if result.succeeded:
        return candidate.encode()
    held = result.results[0]
    assert held is not None
    assert not isinstance(held, int | tuple)
    return str(held.value).encode()


class Identity:
    def __init__(
        self, config: IdentityConfig, secret: bytes, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self._clock = clock
        self._secret = config.token_secret.encode() if config.token_secret else secret
        self._projects = {p.name: p for p in config.projects}

    def project(self, name: str) -> Project | None:
        return self._projects.get(name)

    def authenticate(self, user_name: str, password: str, project_name: str | None) -> Token | None:
        for user in self.config.users:
            if user.name == user_name and hmac.compare_digest(user.password, password):
                project = self._projects.get(project_name or user.project)
                if project is None or project.name != user.project:
                    return None
                return self._issue(user, project)
        return None

    def _issue(self, user: User, project: Project) -> Token:
        now = self._clock()
        expires = now + self.config.token_ttl
        payload = _b64(
            json.dumps(
                {"u": user.name, "p": project.id, "r": list(user.roles), "e": expires}
            ).encode()
        )
        signature = _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())
        return Token(f"{payload}.{signature}", user, project, now, expires)

    def admin_token_context(self, token: str | None) -> Context | None:
        """The admin's context when ``token`` is the configured static admin token (also
        honoured when Keystone's tokens replace the built-in ones), else None."""
        if not token or not self.config.admin_token:
            return None
        if not hmac.compare_digest(token, self.config.admin_token):
            return None
        return Context(self.config.admin_project, frozenset({"admin", "member", "reader"}), "admin")

    def context(self, token: str | None) -> Context | None:
        """The caller a token names, or None when it is missing, forged or expired."""
        if not token:
            return None
        static = self.admin_token_context(token)
        if static is not None:
            return static
        payload, _, signature = token.partition(".")
        expected = _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())
        if not signature or not hmac.compare_digest(signature, expected):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        if float(claims["e"]) < self._clock():
            return None
        roles = set(claims["r"])
        if "admin" in roles:
            roles |= {"manager", "member", "reader"}
        elif "manager" in roles:
            roles |= {"member", "reader"}
        elif "member" in roles:
            roles.add("reader")
        return Context(str(claims["p"]), frozenset(roles), str(claims["u"]))


__all__ = ["Identity", "IdentityConfig", "Project", "Token", "User", "shared_secret"]
