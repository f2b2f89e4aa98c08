"""What the render child runs: validate, render, parse and scope-check, all in one call.

Config validation (user-written JSON Schema patterns), Jinja2 rendering and SQL parsing are CPU
work a request controls, so `aietl.services.templates.renderer` runs these functions in a child process
with a deadline and a memory cap; they are pure and also callable in-process (tests, benchmarks).
"""

from __future__ import annotations

from typing import Any

from aietl.services.templates.builtin import builtin_templates
from aietl.services.templates.domain.config import check_schema, validated
from aietl.services.templates.domain.generation import PipelineNames
from aietl.services.templates.domain.guard import Scope, check
from aietl.services.templates.domain.model import SqlDialect
from aietl.services.templates.domain.rendering import (
    Rendered,
    Statement,
    compile_template,
    parse_statements,
    render,
    scope_refusals,
)


def checked_template(config_schema: dict[str, Any], code: str) -> None:
    """A new template's schema is a JSON Schema and its code compiles in the sandbox."""
    check_schema(config_schema)
    compile_template(code)


def prepared(
    config_schema: dict[str, Any],
    code: str,
    dialect: SqlDialect,
    pattern: str,
    config: Any,
    names: PipelineNames,
) -> tuple[dict[str, Any], Rendered]:
    """The validated config and its code rendered in `dialect` (the connection's, for a portable
    template) with the pipeline's `names` as top-level variables; refused (`Refused`) if the code
    leaves the pipeline's scope."""
    ready = validated(config_schema, config)
    variables = names.variables(ready)
    rendered = render(code, dialect, ready, variables)
    check(scope_refusals(rendered.statements, Scope.of(dialect, ready, pattern, variables)))
    return ready, rendered


def runnable(
    code: str, dialect: SqlDialect, pattern: str, config: dict[str, Any], names: PipelineNames
) -> tuple[Statement, ...]:
    """Stored code checked again just before it runs (it may predate a stricter check)."""
    statements = parse_statements(code, dialect)
    check(scope_refusals(statements, Scope.of(dialect, config, pattern, names.variables(config))))
    return tuple(statements)


def warm_up() -> None:
    """Compile the built-in templates once when a render child starts, not on a user's first call."""
    for template in builtin_templates():
        compile_template(template.code)
