"""Feature store vocabulary and pure rules: types, references, versions, freshness, the online value codec.

Nothing here does I/O. Stores, the worker and the routes lean on these functions so that every
backend applies the same TTL rule, the same key layout and the same "newer event time wins" rule.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, NamedTuple

import orjson

from aietl.shared.errors import Invalid, NotFound

StorageType = Literal["online", "offline", "both"]
Status = Literal["present", "expired", "missing"]
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_REF_PATTERN = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]{0,127})(?:@v(?P<version>[1-9][0-9]*))?$")


class FeatureType(StrEnum):
    INT64 = "int64"
    FLOAT64 = "float64"
    STRING = "string"
    BOOL = "bool"
    INT64_LIST = "int64_list"
    FLOAT64_LIST = "float64_list"
    STRING_LIST = "string_list"

    @classmethod
    def _missing_(cls, value: object) -> FeatureType | None:
        """The specification's spellings (`int`, `float`, ...) name the same types."""
        if not isinstance(value, str):
            return None
        key = value.strip().lower()
        return cls._value2member_map_.get(key) or _TYPE_ALIASES.get(key)  # type: ignore[return-value]


_TYPE_ALIASES: dict[str, FeatureType] = {
    "int": FeatureType.INT64,
    "integer": FeatureType.INT64,
    "long": FeatureType.INT64,
    "bigint": FeatureType.INT64,
    "float": FeatureType.FLOAT64,
    "double": FeatureType.FLOAT64,
    "number": FeatureType.FLOAT64,
    "str": FeatureType.STRING,
    "text": FeatureType.STRING,
    "boolean": FeatureType.BOOL,
}


class FeatureError(Invalid, ValueError):
    """A request the store cannot honour (wrong type, bad name, ...): a 422, never a retry."""


class UnknownFeature(NotFound, FeatureError):
    """A name the registry does not know: a 404 (locating no value of the request)."""

    def __init__(self, message: str) -> None:
        NotFound.__init__(self, message)


@dataclass(frozen=True, slots=True)
class FeatureRef:
    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@v{self.version}"


def parse_ref(text: str) -> FeatureRef:
    """`name` (latest version) or `name@vN`."""
    match = _REF_PATTERN.match(text.strip())
    if match is None:
        raise FeatureError(f"feature name {text!r} is not `name` or `name@vN` (letters, digits, _)")
    version = match.group("version")
    return FeatureRef(match.group("name"), int(version) if version else None)


def check_name(kind: str, name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise FeatureError(f"{kind} {name!r} must match {NAME_PATTERN.pattern}")
    return name


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One version of a feature as the read and write paths need it."""

    name: str
    version: int
    feature_type: FeatureType
    entity: str
    view: str
    storage_type: StorageType
    ttl_seconds: int

    @property
    def field(self) -> str:
        """The field in the entity's online hash: versions never share a field."""
        return f"{self.name}@v{self.version}"

    @property
    def ttl_us(self) -> int:
        return self.ttl_seconds * 1_000_000

    def accepts(self, storage: StorageType) -> bool:
        return self.storage_type == "both" or self.storage_type == storage


def definition_hash(semantics: dict[str, Any]) -> str:
    """Digest of what changes a feature's meaning; a different digest makes a new version."""
    return hashlib.sha256(orjson.dumps(semantics, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- values and types ---

_SCALAR_CHECKS: dict[FeatureType, tuple[type, ...]] = {
    FeatureType.INT64: (int,),
    FeatureType.FLOAT64: (int, float),
    FeatureType.STRING: (str,),
    FeatureType.BOOL: (bool,),
}
_LIST_ITEMS: dict[FeatureType, FeatureType] = {
    FeatureType.INT64_LIST: FeatureType.INT64,
    FeatureType.FLOAT64_LIST: FeatureType.FLOAT64,
    FeatureType.STRING_LIST: FeatureType.STRING,
}


def _scalar_ok(feature_type: FeatureType, value: Any) -> bool:
    if isinstance(value, bool) and feature_type is not FeatureType.BOOL:
        return False
    return isinstance(value, _SCALAR_CHECKS[feature_type])


def check_value(spec: FeatureSpec, value: Any) -> Any:
    """The value if it fits the feature's type (None is always allowed), else a FeatureError naming it."""
    if value is None:
        return None
    item_type = _LIST_ITEMS.get(spec.feature_type)
    ok = (
        isinstance(value, list) and all(_scalar_ok(item_type, item) for item in value)
        if item_type is not None
        else _scalar_ok(spec.feature_type, value)
    )
    if not ok:
        raise FeatureError(
            f"value {value!r} for feature {spec.field!r} is not of type {spec.feature_type.value}"
        )
    if spec.feature_type is FeatureType.FLOAT64 and isinstance(value, int):
        return float(value)
    return value


# --- time ---


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise FeatureError("timestamps must carry a time zone")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_fresh(event_us: int, at_us: int, ttl_us: int) -> bool:
    """The one TTL rule every store and query applies: a value is served while its age is <= TTL."""
    return at_us - event_us <= ttl_us


# --- online value codec: b'"<16-digit event µs>",<json>' ---
# The time is a fixed-width JSON string, so (1) byte order is time order (a Redis script and the
# read path compare prefixes, never parse), and (2) values of one entity joined with "," are one
# JSON array `[t0, v0, t1, v1, ...]`: a single orjson call decodes a whole vector.

PREFIX_WIDTH = 18  # the quoted time
PAYLOAD_START = PREFIX_WIDTH + 1


def time_prefix(event_us: int) -> bytes:
    return b'"%016d"' % event_us


def encode_online(event_us: int, value: Any) -> bytes:
    return encode_online_json(event_us, orjson.dumps(value))


def encode_online_json(event_us: int, value_json: bytes) -> bytes:
    return b'"%016d",' % event_us + value_json


def decode_online(raw: bytes) -> tuple[int, Any]:
    return int(raw[1 : PREFIX_WIDTH - 1]), orjson.loads(raw[PAYLOAD_START:])


def online_status(raw: bytes | None, now_us: int, ttl_us: int) -> tuple[Any, Status]:
    if raw is None:
        return None, "missing"
    if raw[:PREFIX_WIDTH] < time_prefix(now_us - ttl_us):
        return None, "expired"
    return orjson.loads(raw[PAYLOAD_START:]), "present"


# --- rows moving between stores ---


class OnlineWrite(NamedTuple):
    """One value for the online store: (view, entity) addresses the hash, `field` the version.
    (Named tuples: materialisation builds millions of these.)"""

    view: str
    entity_id: str
    field: str
    event_us: int
    payload: bytes
    expire_at_us: int


class OfflineRow(NamedTuple):
    feature: str  # `name@vN`
    entity_id: str
    event_us: int
    value_json: str


def latest_at(history: list[tuple[int, int, Any]], at_us: int, ttl_us: int) -> Any:
    """Brute-force point-in-time rule over (event_us, write_seq, value): the oracle the SQL must match."""
    best: tuple[int, int, Any] | None = None
    for row in history:
        if row[0] <= at_us and (best is None or (row[0], row[1]) > (best[0], best[1])):
            best = row
    if best is None or not is_fresh(best[0], at_us, ttl_us):
        return None
    return best[2]
