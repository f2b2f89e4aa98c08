"""Passwords (argon2), the signing key ring and tokens (JWT, HS256). Nothing here logs a secret.

A token says who the caller is (user id and the user's token version), never what they may do:
rights are read from the database (`aietl.services.gateway.accounts`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Generic, TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import Field, SecretStr

from aietl.services.gateway.roles import Role
from aietl.shared.settings import Settings

_hasher = PasswordHasher()  # argon2id, RFC 9106's low-memory profile (argon2-cffi's default)
# Test environments hash with argon2's cheapest parameters: the format and checks are the same, a
# user fixture does not cost a quarter of a second per hash and per login.
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
ALGORITHM = "HS256"
MIN_SECRET_CHARS = 32
KEY_RING_FILE = "jwt-keys"


def use_password_hashing_of(settings: Settings) -> None:
    """Choose the hashing parameters for this process's new hashes (verification reads them from
    each hash, so hashes made either way keep verifying)."""
    global _hasher
    _hasher = _CHEAP_HASHER if settings.environment == "test" else PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so timing does not reveal usernames.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))

Password = Annotated[SecretStr, Field(min_length=8, max_length=1024)]
"""A password a user chooses."""


async def hashed_password(password: SecretStr) -> str:
    """argon2 takes tens of milliseconds of CPU by design: off the event loop."""
    return await asyncio.to_thread(hash_password, password.get_secret_value())


async def password_matches(stored_hash: str, password: SecretStr) -> bool:
    return await asyncio.to_thread(verify_password, stored_hash, password.get_secret_value())


@dataclass(frozen=True)
class Principal:
    """The caller: their projects and role in each (`roles`); administrators act as owner everywhere."""

    user_id: int
    username: str
    is_admin: bool
    roles: Mapping[str, Role]

    @property
    def projects(self) -> frozenset[str]:
        """The projects the caller is a member of (an administrator may act in others too)."""
        return frozenset(self.roles)

    def role_in(self, project_id: str) -> Role | None:
        """The caller's role in the project; None when they are not in it."""
        return Role.owner if self.is_admin else self.roles.get(project_id)

    def can_access(self, project_id: str) -> bool:
        return self.role_in(project_id) is not None


class KeyRing:
    """The signing keys, each named by an id (`kid` in the token's header): the first signs, all
    verify. Rotating = putting a new key first and, once no token signed with the old one is still
    valid (`AIETL_JWT_TTL_SECONDS`), removing it (docs/reliability.md, "Signing keys").

    A key's id is derived from the key (an HMAC of a constant), so the ring is just a list of
    secrets. Read from `AIETL_JWT_SECRETS` (JSON list) or `AIETL_JWT_SECRET` (one key), or, embedded
    only, from the file `jwt-keys` in the data dir, which is read again when it changes: there a
    rotation (`aietl jwt-keys rotate`, `retire`) needs no restart."""

    def __init__(self, keys: Sequence[str], path: Path | None = None) -> None:
        self.path = path
        self._version = self._file_version()
        self._keys = self._by_id(keys)

    @staticmethod
    def key_id(secret: str) -> str:
        return hmac.new(secret.encode(), b"aietl-jwt-key-id", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def _by_id(cls, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            raise RuntimeError("the JWT key ring is empty")
        for key in keys:
            if len(key) < MIN_SECRET_CHARS:
                raise RuntimeError(f"a JWT signing key must have at least {MIN_SECRET_CHARS} characters")
        return {cls.key_id(key): key for key in keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        if settings.jwt_secrets is not None and settings.jwt_secret is not None:
            raise RuntimeError("set AIETL_JWT_SECRETS or AIETL_JWT_SECRET, not both")
        if settings.jwt_secrets is not None:
            return cls([key.get_secret_value() for key in settings.jwt_secrets])
        if settings.jwt_secret is not None:
            return cls([settings.jwt_secret.get_secret_value()])
        if settings.environment == "production":
            raise RuntimeError("AIETL_JWT_SECRETS (or AIETL_JWT_SECRET) must be set in production")
        path = settings.ensure_data_dir() / KEY_RING_FILE
        if not path.exists():
            write_key_ring(path, [new_secret()])
        return cls(read_key_ring(path), path)

    @property
    def current(self) -> tuple[str, str]:
        """(kid, key) of the signing key."""
        self.refresh()
        return next(iter(self._keys.items()))

    def secret(self, kid: str) -> str | None:
        """The key named `kid`, if the ring holds it (the file is read again first if it changed: a
        stat per token checked, and `TokenVerifier` checks a token once in 30 s)."""
        self.refresh()
        return self._keys.get(kid)

    def refresh(self) -> None:
        """Read the ring file again if it changed since."""
        version = self._file_version()
        if self.path is not None and version != self._version:
            self._keys, self._version = self._by_id(read_key_ring(self.path)), version

    def _file_version(self) -> tuple[int, int] | None:
        """The file's (inode, mtime): a new ring is a new file renamed over the old one."""
        if self.path is None:
            return None
        stat = self.path.stat()
        return stat.st_ino, stat.st_mtime_ns


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def read_key_ring(path: Path) -> list[str]:
    keys = json.loads(path.read_text())
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise RuntimeError(f"{path} must hold a JSON list of keys")
    return keys


def write_key_ring(path: Path, keys: Sequence[str]) -> None:
    """Written whole to a private temporary file, then renamed over the ring: a reader sees the old
    ring or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(list(keys), file)
    temporary.replace(path)


@dataclass(frozen=True)
class TokenClaims:
    """What a token says: who (user id) and which of their token versions; and until when."""

    user_id: int
    version: int
    expires: float


def issue_token(user_id: int, username: str, version: int, keys: KeyRing, ttl_seconds: int) -> str:
    kid, key = keys.current
    now = int(time.time())
    claims = {"sub": username, "uid": user_id, "ver": version, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})


def decode_token(token: str, keys: KeyRing) -> TokenClaims:
    """Raises `jwt.InvalidTokenError` for a tampered, expired or malformed token, or one signed by a
    key the ring does not hold (`jwt.ExpiredSignatureError` when only expired)."""
    kid = jwt.get_unverified_header(token).get("kid")
    key = keys.secret(kid) if isinstance(kid, str) else None
    if key is None:
        raise jwt.InvalidTokenError("unknown signing key")
    claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "uid", "ver"]})
    try:
        return TokenClaims(int(claims["uid"]), int(claims["ver"]), float(claims["exp"]))
    except (TypeError, ValueError) as error:
        raise jwt.InvalidTokenError("malformed claims") from error


Key = TypeVar("Key")
Value = TypeVar("Value")


class ExpiringCache(Generic[Key, Value]):
    """A bounded memory whose entries each live until their own deadline (epoch seconds); when full,
    the oldest entry makes room for a new one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[Key, tuple[float, Value]] = {}

    def get(self, key: Key, now: float) -> tuple[bool, Value | None]:
        """(found, value); an entry past its deadline is dropped and not found."""
        hit = self._entries.get(key)
        if hit is None:
            return False, None
        if now < hit[0]:
            return True, hit[1]
        del self._entries[key]
        return False, None

    def put(self, key: Key, value: Value, until: float) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (until, value)

    def discard(self, key: Key) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier:
    """`decode_token` with a short memory: a client sends the same token with every request, and
    checking it (base64, HMAC, JSON, claims) was a sizeable share of a fast route's cost.

    Only tokens that verified are remembered, keyed by their SHA-256 (the token itself is not kept);
    an entry lives `seconds` at most and never past the token's `exp`, so an expired token is checked
    again and refused. What the token's user may do is not remembered here (see `accounts`)."""

    def __init__(self, keys: KeyRing, *, size: int = 10_000, seconds: float = 30.0) -> None:
        self.keys = keys
        self.seconds = seconds
        self._verified: ExpiringCache[bytes, TokenClaims] = ExpiringCache(size)

    def verify(self, token: str) -> TokenClaims:
        """Raises `jwt.InvalidTokenError` like `decode_token`."""
        key = hashlib.sha256(token.encode()).digest()
        now = time.time()
        found, claims = self._verified.get(key, now)
        if found and claims is not None:
            return claims
        claims = decode_token(token, self.keys)
        self._verified.put(key, claims, min(now + self.seconds, claims.expires))
        return claims
