"""Config validation: JSON Schema errors, all of them, each located by a JSON Pointer."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.validators import validator_for

from aietl.services.templates.domain.model import ConfigProblem, InvalidConfig, TemplateError

COLUMN_REFERENCES = ("watermark_column", "sequence_column")


def pointer(path: Any) -> str:
    """RFC 6901 pointer of a path of keys and indexes ('' is the whole document)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(schema, format_checker=FormatChecker())


def check_schema(schema: dict[str, Any]) -> None:
    """A template's config schema must itself be a valid JSON Schema."""
    if not isinstance(schema, dict):
        raise TemplateError("config_schema must be a JSON object")
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as error:
        raise TemplateError(f"config_schema is not a valid JSON Schema: {error.message}") from error


def _problem(error: ValidationError) -> ConfigProblem:
    path = list(error.absolute_path)
    if (
        error.validator == "required"
        and isinstance(error.instance, dict)
        and isinstance(error.validator_value, list)
    ):
        missing = [name for name in error.validator_value if name not in error.instance]
        named = [name for name in missing if repr(name) in error.message]
        if named:
            path.append(named[0])
    return ConfigProblem(pointer(path), error.message)


def schema_problems(schema: dict[str, Any], config: Any) -> list[ConfigProblem]:
    validator = _validator(json.dumps(schema, sort_keys=True))
    problems = [_problem(error) for error in validator.iter_errors(config)]
    return sorted(problems, key=lambda problem: (problem.pointer, problem.message))


def mapping_problems(config: dict[str, Any]) -> list[ConfigProblem]:
    """Keys and watermark/sequence columns of the built-in shape must name a mapped column."""
    columns = config.get("columns")
    if not isinstance(columns, list):
        return []
    names = {column.get("name") for column in columns if isinstance(column, dict)}
    problems: list[ConfigProblem] = []
    for index, key in enumerate(config.get("keys") or []):
        if key not in names:
            problems.append(ConfigProblem(f"/keys/{index}", f"{key!r} is not a column in /columns"))
    for field in COLUMN_REFERENCES:
        value = config.get(field)
        if value is not None and value not in names:
            problems.append(ConfigProblem(f"/{field}", f"{value!r} is not a column in /columns"))
    return problems


def validated(schema: dict[str, Any], config: Any) -> dict[str, Any]:
    """The config ready to render (column `source` defaults to its `name`), or every problem."""
    problems = schema_problems(schema, config)
    if not problems:
        problems = mapping_problems(config)
    if problems:
        raise InvalidConfig(problems)
    return normalized(config)


def normalized(config: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(config)
    for column in result.get("columns") or []:
        if isinstance(column, dict) and "name" in column:
            column.setdefault("source", column["name"])
    return result
