"""Roles within a project, ordered: viewer < member < maintainer < owner.

Who can do what (docs/reliability.md, "Threat model"): a viewer reads; a member also writes
(registers, ingests, runs); a maintainer also does what can reach beyond the project's own data
(e.g. templates with code of their own); an owner also manages the project's members and their
roles. Administrators act as owner in every project.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"
    member = "member"
    maintainer = "maintainer"
    owner = "owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, minimum: Role) -> bool:
        return self.rank >= minimum.rank


_RANKS = {role: rank for rank, role in enumerate(Role)}
