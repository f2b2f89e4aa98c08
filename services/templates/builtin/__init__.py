"""Built-in templates shipped with the package: one per pattern and dialect, seeded into SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from aietl.services.templates.domain.model import Category, Pattern, SqlDialect

VERSIONS: dict[Pattern, str] = {
    "full_load": "1.0.0",
    "incremental": "1.1.0",  # a row never replaces a newer one; the watermark never moves back
    "cdc": "1.1.0",  # delete values matched case-insensitively; a log without deletes warns
    "scd2": "1.1.0",  # versions closed by deletes flagged; fresh keys only; unique (keys, valid_from)
    "streaming": "1.0.0",
}
"""A release that changes a built-in's behaviour ships it as a new version: stored versions are
immutable, existing instances keep theirs until regenerated."""
CATEGORIES: dict[Pattern, Category] = {
    "full_load": "full_pipeline",
    "incremental": "loading",
    "cdc": "loading",
    "scd2": "transformation",
    "streaming": "extraction",
}
DIALECTS: dict[Pattern, tuple[SqlDialect, ...]] = {
    "full_load": ("postgres", "clickhouse", "sqlite"),
    "incremental": ("postgres", "clickhouse", "sqlite"),
    "cdc": ("postgres", "clickhouse", "sqlite"),
    "scd2": ("postgres", "clickhouse", "sqlite"),
    "streaming": ("clickhouse", "postgres"),
}
SOURCE_FILES: dict[tuple[Pattern, SqlDialect], str] = {("streaming", "postgres"): "streaming_consumer"}
"""Where a pattern's template differs by dialect; otherwise `<pattern>.sql.j2` / `.schema.json`."""


@dataclass(frozen=True)
class BuiltinTemplate:
    template_id: str
    version: str
    pattern: Pattern
    category: Category
    dialect: SqlDialect
    description: str
    config_schema: dict[str, Any]
    code: str


def _read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text()


@cache
def builtin_templates() -> tuple[BuiltinTemplate, ...]:
    templates = []
    for pattern, dialects in DIALECTS.items():
        for dialect in dialects:
            stem = SOURCE_FILES.get((pattern, dialect), pattern)
            schema = json.loads(_read(f"{stem}.schema.json"))
            templates.append(
                BuiltinTemplate(
                    template_id=f"{pattern}_{dialect}",
                    version=VERSIONS[pattern],
                    pattern=pattern,
                    category=CATEGORIES[pattern],
                    dialect=dialect,
                    description=f"{schema['title']} ({dialect})",
                    config_schema=schema,
                    code=_read(f"{stem}.sql.j2"),
                )
            )
    return tuple(templates)


def builtin(template_id: str) -> BuiltinTemplate:
    for template in builtin_templates():
        if template.template_id == template_id:
            return template
    raise KeyError(template_id)
