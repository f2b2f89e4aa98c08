"""The caller as the database says now: a token names a user; the user's row and memberships say
whether they may still act (not deleted, not disabled, token not revoked) and with which rights.

Each gateway process remembers what it read of a user for `AIETL_AUTH_CACHE_SECONDS` (5 s): a
change made through this process (roles, memberships, password, disabling, deletion) applies at
once (`forget`), one made through another replica within that time. Requests of a user seen in the
last seconds cost two dictionary look-ups (the fast path's budget); one read of the database per
user and period otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.gateway.security import ExpiringCache, KeyRing, Principal, TokenVerifier, issue_token
from aietl.services.gateway.tables import Membership, User
from aietl.shared.db import Database
from aietl.shared.settings import Settings


class NotAuthenticated(Exception):
    """The token does not (or no longer) name a user who may act; the message says why."""


@dataclass(frozen=True)
class Account:
    """A user as authorisation needs them."""

    principal: Principal
    token_version: int
    disabled: bool


async def load_account(session: AsyncSession, user_id: int) -> Account | None:
    """The user and their memberships in one query; None when there is no such user."""
    rows = (
        await session.execute(
            select(
                User.username,
                User.is_admin,
                User.disabled,
                User.token_version,
                Membership.project_id,
                Membership.role,
            )
            .outerjoin(Membership, Membership.user_id == User.id)
            .where(User.id == user_id)
        )
    ).all()
    if not rows:
        return None
    username, is_admin, disabled, version = rows[0][:4]
    roles = {row.project_id: row.role for row in rows if row.project_id is not None}
    return Account(Principal(user_id, username, is_admin, roles), version, disabled)


class Authenticator:
    """Tokens in (`principal`) and out (`issue`)."""

    def __init__(
        self, keys: KeyRing, database: Database, *, ttl_seconds: int, cache_seconds: float, size: int = 10_000
    ) -> None:
        self.keys = keys
        self.database = database
        self.ttl_seconds = ttl_seconds
        self.cache_seconds = cache_seconds
        self.tokens = TokenVerifier(keys, size=size)
        self._accounts: ExpiringCache[int, Account | None] = ExpiringCache(size)

    @classmethod
    def from_settings(cls, settings: Settings, database: Database) -> Authenticator:
        return cls(
            KeyRing.from_settings(settings),
            database,
            ttl_seconds=settings.jwt_ttl_seconds,
            cache_seconds=settings.auth_cache_seconds,
        )

    def issue(self, account: Account) -> str:
        principal = account.principal
        return issue_token(
            principal.user_id, principal.username, account.token_version, self.keys, self.ttl_seconds
        )

    async def principal(self, token: str) -> Principal:
        """The caller the token names, with their current rights; `NotAuthenticated` otherwise."""
        try:
            claims = self.tokens.verify(token)
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("token expired") from None
        except jwt.InvalidTokenError:
            raise NotAuthenticated("invalid token") from None
        found, account = self._accounts.get(claims.user_id, time.time())  # inline: the fast path's cost
        if not found:
            account = await self.load(claims.user_id)
        if account is not None and account.disabled:
            raise NotAuthenticated("user disabled")
        if account is None or account.token_version != claims.version:
            raise NotAuthenticated("token revoked")
        return account.principal

    async def load(self, user_id: int) -> Account | None:
        """Read the user from the database, and remember them for `cache_seconds`."""
        async with self.database.sessions() as session:
            account = await load_account(session, user_id)
        self._accounts.put(user_id, account, time.time() + self.cache_seconds)
        return account

    def forget(self, user_id: int) -> None:
        """Read the user again on their next request (their rights or state just changed)."""
        self._accounts.discard(user_id)
