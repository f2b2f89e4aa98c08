"""The templates vocabulary: patterns, categories, dialects, semantic versions and typed problems."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from typing import Literal

from aietl.shared.errors import Invalid, Problem

Pattern = Literal["full_load", "incremental", "cdc", "scd2", "streaming"]
Category = Literal["extraction", "transformation", "loading", "full_pipeline"]
SqlDialect = Literal["postgres", "clickhouse", "sqlite"]
GenerationReason = Literal["control_table", "drift_adaptation", "manual"]

BUILTIN_SCOPE = "_builtin"
"""Project id under which built-in templates are stored: not a valid project id, so never a clash."""

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@total_ordering
@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = _SEMVER.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version MAJOR.MINOR.PATCH")
        return cls(*(int(part) for part in match.groups()))

    def bump_minor(self) -> SemVer:
        return SemVer(self.major, self.minor + 1, 0)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


ConfigProblem = Problem  # one reason a config (or its rendering) is unusable, pointing into the config


class InvalidConfig(Invalid, ValueError):
    """Every problem found, not just the first: users fix a config in one round trip."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        message = "; ".join(f"{p.pointer or '/'}: {p.message}" for p in problems)
        super().__init__(message, problems=problems)

    def __reduce__(self) -> tuple[type[InvalidConfig], tuple[list[ConfigProblem]]]:
        """Pickled with its problems (it crosses from the render child to the service)."""
        return InvalidConfig, (self.problems,)


class TemplateError(Invalid, ValueError):
    """The template itself is unusable (syntax, sandbox violation, SQL that does not parse)."""


def connection_dialect(url: str) -> SqlDialect:
    """The SQL dialect a connection URL speaks."""
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith(("postgresql", "postgres")):
        return "postgres"
    if scheme.startswith("sqlite"):
        return "sqlite"
    if scheme.startswith(("clickhouse", "chdb")):
        return "clickhouse"
    raise ValueError(f"unsupported connection scheme {scheme!r}")
