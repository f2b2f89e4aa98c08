"""Passwords (argon2), tokens (JWT, HS256) and the login throttle. Nothing here logs a secret."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.gateway.roles import Role
from shared.settings import Settings

_hasher = PasswordHasher()
ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so timing does not reveal usernames.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


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


def jwt_secret(settings: Settings) -> str:
    """The signing secret: from `AIETL_JWT_SECRET`, or (embedded only) generated once into data_dir."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if settings.environment == "production":
        raise RuntimeError("AIETL_JWT_SECRET must be set in production")
    path: Path = settings.ensure_data_dir() / "jwt-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def issue_token(principal: Principal, secret: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": principal.username,
        "uid": principal.user_id,
        "admin": principal.is_admin,
        "roles": dict(sorted(principal.roles.items())),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, secret: str) -> tuple[Principal, float]:
    """The principal and the token's expiry (epoch seconds); raises `jwt.InvalidTokenError` for a
    tampered, expired or malformed token."""
    claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "uid"]})
    principal = Principal(
        user_id=int(claims["uid"]),
        username=str(claims["sub"]),
        is_admin=bool(claims.get("admin", False)),
        roles={str(project): Role(role) for project, role in dict(claims.get("roles", {})).items()},
    )
    return principal, float(claims["exp"])


class TokenVerifier:
    """`decode_token` with a short memory: a client sends the same token with every request, and
    checking it (base64, HMAC, JSON, claims) was a sizeable share of a fast route's cost.

    Only tokens that verified are remembered, keyed by their SHA-256 (the token itself is not kept);
    an entry lives `seconds` at most and never past the token's `exp`, so an expired token is checked
    again and refused. Bounded: the oldest entry makes room for a new one."""

    def __init__(self, secret: str, *, size: int = 10_000, seconds: float = 30.0) -> None:
        self.secret = secret
        self.size = size
        self.seconds = seconds
        self._verified: dict[bytes, tuple[float, Principal]] = {}

    def verify(self, token: str) -> Principal:
        """Raises `jwt.InvalidTokenError` like `decode_token`."""
        key = hashlib.sha256(token.encode()).digest()
        now = time.time()
        hit = self._verified.get(key)
        if hit is not None:
            if now < hit[0]:
                return hit[1]
            del self._verified[key]
        principal, expires = decode_token(token, self.secret)
        if len(self._verified) >= self.size:
            del self._verified[next(iter(self._verified))]
        self._verified[key] = (min(now + self.seconds, expires), principal)
        return principal


class LoginThrottle:
    """Refuse logins for a key after too many failures in a sliding window."""

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, key: str) -> float:
        """Seconds until a login may be tried again for `key`; 0 when it may now."""
        failures = self._failures.get(key)
        if not failures:
            return 0.0
        now = time.monotonic()
        while failures and now - failures[0] > self.window_seconds:
            failures.popleft()
        if len(failures) < self.max_failures:
            return 0.0
        return self.window_seconds - (now - failures[0])

    def record_failure(self, key: str) -> None:
        self._failures[key].append(time.monotonic())

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass(frozen=True)
class LoginThrottles:
    """Guessing one user's password is stopped per user; a client guessing many users, per client
    (with more room, since many people may share one address)."""

    per_user: LoginThrottle
    per_client: LoginThrottle

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottles:
        window = settings.login_window_seconds
        return cls(
            LoginThrottle(settings.login_max_failures, window),
            LoginThrottle(settings.login_max_failures * CLIENT_ALLOWANCE, window),
        )


CLIENT_ALLOWANCE = 4
