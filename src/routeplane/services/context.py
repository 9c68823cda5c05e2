"""Who is asking: the project and roles a request acts with.

Derived from a token by the api layer; the services decide visibility and permission
from it alone (another project's resource is invisible, a reader cannot write).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Context:
    project_id: str
    roles: frozenset[str]
    user_id: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def can_write(self) -> bool:
        return self.is_admin or "member" in self.roles

    def sees(self, project_id: str) -> bool:
        return self.is_admin or project_id == self.project_id


ADMIN = Context(project_id="admin", roles=frozenset({"admin", "member", "reader"}), user_id="admin")

__all__ = ["ADMIN", "Context"]
