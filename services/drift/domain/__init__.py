"""Pure drift logic: no I/O, no framework. Types, detection, renames, mappings, policies."""

from aietl.services.drift.domain.detect import SEVERITY_ORDER, detect
from aietl.services.drift.domain.policy import DEFAULT_POLICY, STATUS_OF, complete, decide, policy_scopes
from aietl.services.drift.domain.schema import (
    Column,
    InvalidSchemaError,
    columns_from_stored,
    columns_of,
    schema_hash,
)
from aietl.services.drift.domain.types import SqlType, classify, normalise, parse_type

__all__ = [
    "DEFAULT_POLICY",
    "SEVERITY_ORDER",
    "STATUS_OF",
    "Column",
    "InvalidSchemaError",
    "SqlType",
    "classify",
    "columns_from_stored",
    "columns_of",
    "complete",
    "decide",
    "detect",
    "normalise",
    "parse_type",
    "policy_scopes",
    "schema_hash",
]
