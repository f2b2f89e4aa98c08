"""Login throttling that every gateway replica shares and that an attacker cannot turn against
the user they attack.

Failures are rows of `login_failures` (username, client, time) in the SQL database all replicas
use. Within `AIETL_LOGIN_WINDOW_SECONDS` a login is refused (429) when
- this client has failed `AIETL_LOGIN_MAX_FAILURES` times for this username (guessing), or
- this client has failed 4x that over all usernames (password spraying), or
- the username has failed 4x that from all clients together (a distributed attack) and this client
  is one of them: a client without failures for the user, the real user's, still gets in.
A success clears only this client's failures for this username: nobody else's login resets a
guessing client's count. Each attempt is written before its password is checked, so concurrent
guesses see each other. The client is the peer address, or, from a trusted proxy
(`AIETL_TRUSTED_PROXIES`), the address `X-Forwarded-For` gives.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from sqlalchemy import and_, case, delete, func, or_, select

from aietl.services.gateway.tables import LoginFailure
from aietl.shared.db import Database
from aietl.shared.settings import Settings

CLIENT_ALLOWANCE = 4
"""A client may fail this many times the per-user limit over all usernames (people share
addresses); a username, from all clients together, before only clients without failures pass."""

Network = IPv4Network | IPv6Network


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then, right to left in
    `X-Forwarded-For` (each proxy appends the address it saw), the first address that is not a
    trusted proxy. A client's own `X-Forwarded-For` is thus never believed."""
    if peer is None:
        return "unknown"
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    address = peer
    while hops and _is_trusted(address, trusted):
        hop = hops.pop()
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # not an address: nothing left of it can be vouched for
    return address


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


@dataclass(frozen=True)
class Failures:
    """Failures in the window: of this client for this username, of this client, of this username;
    and the oldest of each (epoch seconds), from which the wait is computed."""

    pair: int
    client: int
    user: int
    pair_oldest: float | None
    client_oldest: float | None
    user_oldest: float | None


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int
    window_seconds: float

    def retry_after(self, failures: Failures, now: float) -> float:
        """Seconds until this client may try this username; 0 when it may now."""
        allowance = self.max_failures * CLIENT_ALLOWANCE
        blocking = []
        if failures.pair >= self.max_failures:
            blocking.append(failures.pair_oldest)
        if failures.client >= allowance:
            blocking.append(failures.client_oldest)
        if failures.user >= allowance and failures.pair > 0:
            blocking.append(failures.user_oldest)
        waits = [oldest + self.window_seconds - now for oldest in blocking if oldest is not None]
        return max([0.0, *waits])


@dataclass(frozen=True)
class Attempt:
    """A login attempt on record (as a failure until it succeeds)."""

    id: int
    username: str
    client: str


class Refused(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class LoginThrottle:
    def __init__(
        self, database: Database, policy: ThrottlePolicy, trusted_proxies: Sequence[Network]
    ) -> None:
        self.database = database
        self.policy = policy
        self.trusted_proxies = list(trusted_proxies)

    @classmethod
    def from_settings(cls, settings: Settings, database: Database) -> LoginThrottle:
        policy = ThrottlePolicy(settings.login_max_failures, settings.login_window_seconds)
        return cls(database, policy, settings.trusted_proxies)

    async def begin(self, username: str, client: str) -> Attempt:
        """Record the attempt, then count what came before it; `Refused` (and no record) when it
        must wait. Old rows are deleted on the way: the table holds one window's failures."""
        now = time.time()
        window_start = now - self.policy.window_seconds
        async with self.database.transaction() as session:
            await session.execute(delete(LoginFailure).where(LoginFailure.failed_at < window_start))
            attempt = LoginFailure(username=username, client=client, failed_at=now)
            session.add(attempt)
            await session.flush()
            attempt_id = attempt.id
        failures = await self._failures(username, client, window_start, attempt_id)
        wait = self.policy.retry_after(failures, now)
        if wait > 0:
            await self._delete(LoginFailure.id == attempt_id)
            raise Refused(wait)
        return Attempt(attempt_id, username, client)

    async def succeeded(self, attempt: Attempt) -> None:
        """Clear this client's failures for this username (and the attempt's own record)."""
        await self._delete(LoginFailure.username == attempt.username, LoginFailure.client == attempt.client)

    async def _failures(self, username: str, client: str, since: float, attempt_id: int) -> Failures:
        pair = and_(LoginFailure.username == username, LoginFailure.client == client)
        by_client, by_user = LoginFailure.client == client, LoginFailure.username == username
        counted = [
            aggregate
            for condition in (pair, by_client, by_user)
            for aggregate in (
                func.coalesce(func.sum(case((condition, 1), else_=0)), 0),
                func.min(case((condition, LoginFailure.failed_at))),
            )
        ]
        async with self.database.sessions() as session:
            row = (
                await session.execute(
                    select(*counted).where(
                        LoginFailure.failed_at >= since,
                        LoginFailure.id != attempt_id,
                        or_(by_client, by_user),
                    )
                )
            ).one()
        pair_count, pair_oldest, client_count, client_oldest, user_count, user_oldest = row
        return Failures(
            int(pair_count), int(client_count), int(user_count), pair_oldest, client_oldest, user_oldest
        )

    async def _delete(self, *conditions: object) -> None:
        async with self.database.transaction() as session:
            await session.execute(delete(LoginFailure).where(*conditions))  # type: ignore[arg-type]
