"""Run targets by name: the embedded sandboxed ClickHouse, the operator's and each project's connections.

- `clickhouse`: the sandboxed chDB (`clickhouse_sandbox`), offered unless
  `AIETL_TEMPLATES_EMBEDDED_CLICKHOUSE` is false (default: everywhere but production).
- `AIETL_TEMPLATES_CONNECTIONS`: the operator's connections (name -> URL), for every project.
- A project's own connections, added through the API or `aietl connections` by a maintainer; the
  URL (with its password) is stored sealed with the platform's key and never shown again.

The platform's own metadata database and its own ClickHouse are never run targets: a project
connection whose URL points at either is refused. A project connection's server must also pass the
operator's outbound allow-list (`shared/outbound.py`, `AIETL_OUTBOUND_ALLOWED_HOSTS`), when it is added
and whenever it is opened (PostgreSQL and plain-HTTP ClickHouse connect to the address checked).
URLs, passwords and the remote's replies never appear in answers or logs; a failed test answers
only what kind of failure it was.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from aietl.services.runtime import Runtime
from aietl.services.templates.clickhouse_sandbox import SandboxedClickHouse
from aietl.services.templates.domain.model import SqlDialect, connection_dialect
from aietl.services.templates.tables import ProjectConnection
from aietl.services.templates.targets import ClickHouseTarget, SqlAlchemyTarget, Target
from aietl.shared.errors import Invalid, NotFound
from aietl.shared.outbound import (
    OutboundPolicy,
    OutboundRefused,
    Unresolved,
    checked_database_url,
    pinned_url,
)
from aietl.shared.secret_box import SecretBox

log = structlog.get_logger(__name__)
SANDBOX = "clickhouse"
Kind = Literal["postgresql", "sqlite", "clickhouse"]
Origin = Literal["embedded", "operator", "project"]
DIALECTS: dict[str, SqlDialect] = {"postgresql": "postgres", "sqlite": "sqlite", "clickhouse": "clickhouse"}
KINDS: dict[SqlDialect, Kind] = {dialect: kind for kind, dialect in DIALECTS.items()}  # type: ignore[misc]
SQLITE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}  # noqa: S104 - names compared, nothing bound
TEST_TIMEOUT_SECONDS = 10.0


class UnknownConnection(NotFound, LookupError):
    """No connection of that name for the project."""


class BadConnection(Invalid, ValueError):
    """A connection that may not be added (scheme, path, the platform's own database, a clash)."""


class ConnectionFailed(RuntimeError):
    """A connection test failed; the message says only what kind of failure, never the remote's reply."""


@dataclass(frozen=True)
class ConnectionInfo:
    name: str
    kind: Kind
    origin: Origin
    summary: str

    @property
    def dialect(self) -> SqlDialect:
        return DIALECTS[self.kind]


@dataclass(frozen=True)
class _Parsed:
    kind: Kind
    url: str
    summary: str


def kind_of(url: str) -> Kind:
    """postgresql, sqlite or clickhouse (a server); chDB only as the embedded `clickhouse` connection."""
    if url.split(":", 1)[0].lower().startswith("chdb"):
        raise BadConnection("chDB is offered only as the embedded 'clickhouse' connection")
    try:
        return KINDS[connection_dialect(url)]
    except ValueError as error:
        raise BadConnection(f"{error}: use postgresql, sqlite or clickhouse") from None


def _async_url(url: str, kind: Kind) -> str:
    """SQLAlchemy async drivers for plain `postgresql://` and `sqlite://` URLs."""
    scheme, rest = url.split("://", 1)
    if kind == "postgresql" and "+" not in scheme:
        return f"postgresql+asyncpg://{rest}"
    if kind == "sqlite" and "+" not in scheme:
        return f"sqlite+aiosqlite://{rest}"
    return url


def _summary(url: str) -> str:
    """Scheme, user, host, port and database: what a maintainer may see again (no password)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url.split("://", 1)[0] + "://"
    return parsed.render_as_string(hide_password=True).replace(":***@", "@")


class Connections:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._secrets: SecretBox | None = None
        self._targets: dict[tuple[str, str], Target] = {}
        self._sandbox: SandboxedClickHouse | None = None
        self.outbound = OutboundPolicy.from_settings(runtime.settings)

    @property
    def secret_box(self) -> SecretBox:
        if self._secrets is None:
            self._secrets = SecretBox(self.settings)
        return self._secrets

    @property
    def sandbox_offered(self) -> bool:
        offered = self.settings.templates_embedded_clickhouse
        return offered if offered is not None else self.settings.environment != "production"

    def sandbox(self) -> SandboxedClickHouse:
        if self._sandbox is None:
            self._sandbox = SandboxedClickHouse(self.settings)
        return self._sandbox

    # --- what exists -----------------------------------------------------------------------------

    def _operator(self) -> dict[str, str]:
        return {name: url.get_secret_value() for name, url in self.settings.templates_connections.items()}

    def _builtin(self) -> list[ConnectionInfo]:
        embedded = [ConnectionInfo(SANDBOX, "clickhouse", "embedded", "sandboxed chDB")]
        operator = [
            ConnectionInfo(name, kind_of(url), "operator", _summary(url))
            for name, url in self._operator().items()
        ]
        return [*(embedded if self.sandbox_offered else []), *operator]

    async def list(self, project_id: str) -> list[ConnectionInfo]:
        async with self.runtime.database.sessions() as session:
            rows = await session.scalars(
                select(ProjectConnection)
                .where(ProjectConnection.project_id == project_id)
                .order_by(ProjectConnection.name)
            )
            own = [ConnectionInfo(row.name, row.kind, "project", row.summary) for row in rows]  # type: ignore[arg-type]
        return [*self._builtin(), *own]

    async def _row(self, project_id: str, name: str) -> ProjectConnection | None:
        async with self.runtime.database.sessions() as session:
            return await session.scalar(
                select(ProjectConnection).where(
                    ProjectConnection.project_id == project_id, ProjectConnection.name == name
                )
            )

    async def info(self, project_id: str, name: str) -> ConnectionInfo:
        for connection in self._builtin():
            if connection.name == name:
                return connection
        row = await self._row(project_id, name)
        if row is None:
            known = ", ".join(c.name for c in await self.list(project_id)) or "none"
            raise UnknownConnection(f"unknown connection {name!r}; known: {known}")
        return ConnectionInfo(row.name, row.kind, "project", row.summary)  # type: ignore[arg-type]

    async def default(self, project_id: str) -> str:
        """The connection of a pipeline whose request names none (the specification's instantiate
        example): the project's own connection if it has exactly one, else the embedded sandbox.
        Never the platform's database; where neither exists, `UnknownConnection` asks for a name."""
        known = await self.list(project_id)
        own = [connection.name for connection in known if connection.origin == "project"]
        if len(own) == 1:
            return own[0]
        if self.sandbox_offered:
            return SANDBOX
        names = ", ".join(connection.name for connection in known) or "none"
        raise UnknownConnection(f"name the connection to run on; known: {names}")

    async def target(self, project_id: str, name: str) -> Target:
        info = await self.info(project_id, name)
        if info.origin == "embedded":
            return self.sandbox()
        key = ("", name) if info.origin == "operator" else (project_id, name)
        if key not in self._targets:
            if info.origin == "operator":
                url = self._operator()[name]
            else:
                row = await self._row(project_id, name)
                if row is None:
                    raise UnknownConnection(f"unknown connection {name!r}")
                try:
                    url = await self._allowed(info.kind, self.secret_box.open(row.sealed_url)["url"])
                except OutboundRefused as refused:
                    raise BadConnection(str(refused)) from None
            self._targets[key] = self._open(info.kind, url)
        return self._targets[key]

    async def _allowed(self, kind: Kind, url: str) -> str:
        """A project connection's URL once its server passes the operator's outbound allow-list
        (`shared/outbound.py`: a maintainer picks the host, the platform connects from inside the
        network), pinned to the address checked unless TLS needs the name; `OutboundRefused` if not."""
        if kind == "sqlite":
            return url  # a file in the project's folder (`_sqlite_file`)
        if kind == "postgresql":
            return await asyncio.to_thread(checked_database_url, url, self.outbound, self.settings)
        secure = url.lower().startswith("clickhouses")
        destination = await self.outbound.check_url_async(url, 8443 if secure else 8123)
        return url if secure else pinned_url(url, destination)

    @staticmethod
    def _open(kind: Kind, url: str) -> Target:
        if kind == "clickhouse":
            return ClickHouseTarget.from_url(url)
        return SqlAlchemyTarget.from_url(_async_url(url, kind))

    # --- managed by maintainers ------------------------------------------------------------------

    def _parse(self, project_id: str, url: str) -> _Parsed:
        kind = kind_of(url)
        if kind == "sqlite":
            url = self._sqlite_file(project_id, url)
        else:
            try:
                parsed = make_url(url)
            except ArgumentError:
                raise BadConnection("the URL cannot be parsed") from None
            if not parsed.host:
                raise BadConnection("the URL needs a host")
            if self._is_platform_store(kind, parsed.host, parsed.port, parsed.database):
                raise BadConnection("the platform's own database is never a run target")
        return _Parsed(kind, url, _summary(url))

    def _sqlite_file(self, project_id: str, url: str) -> str:
        """Project SQLite files live in the project's folder under the data dir; the URL names a file."""
        name = url.split("://", 1)[1].lstrip("/")
        if not SQLITE_FILE.match(name) or ".." in name:
            raise BadConnection("a SQLite connection names a file (letters, digits, '_', '-', '.'), no path")
        path = project_file(self.settings.data_dir, project_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"

    def _is_platform_store(self, kind: Kind, host: str, port: int | None, database: str | None) -> bool:
        if kind == "postgresql":
            platform = make_url(self.settings.resolved_database_url)
            if not platform.get_backend_name().startswith("postgres"):
                return False
            same_host = _host(host) == _host(platform.host or "")
            return same_host and (port or 5432) == (platform.port or 5432) and database == platform.database
        if kind == "clickhouse" and self.settings.clickhouse_host:
            return _host(host) == _host(self.settings.clickhouse_host) and (port or 8123) == (
                self.settings.clickhouse_port
            )
        return False

    async def create(self, project_id: str, name: str, url: str) -> ConnectionInfo:
        if any(connection.name == name for connection in self._builtin()):
            raise BadConnection(f"{name!r} is the name of a connection the platform provides")
        parsed = self._parse(project_id, url)
        try:
            await self._allowed(parsed.kind, parsed.url)
        except Unresolved:
            pass  # an allowed name that does not resolve yet: kept, and checked again on connect
        except OutboundRefused as refused:
            raise BadConnection(str(refused)) from None
        row = ProjectConnection(
            id=str(uuid.uuid4()),
            project_id=project_id,
            name=name,
            kind=parsed.kind,
            summary=parsed.summary,
            sealed_url=self.secret_box.seal({"url": parsed.url}),
        )
        try:
            async with self.runtime.database.transaction() as session:
                session.add(row)
        except IntegrityError:
            raise BadConnection(f"connection {name!r} already exists in this project") from None
        log.info("connection added", project=project_id, connection=name, kind=parsed.kind)
        return ConnectionInfo(name, parsed.kind, "project", parsed.summary)

    async def delete(self, project_id: str, name: str) -> None:
        async with self.runtime.database.transaction() as session:
            row = await session.scalar(
                select(ProjectConnection).where(
                    ProjectConnection.project_id == project_id, ProjectConnection.name == name
                )
            )
            if row is None:
                raise UnknownConnection(f"connection {name!r} is not one of this project's own")
            await session.delete(row)
        target = self._targets.pop((project_id, name), None)
        if target is not None:
            await target.close()
        log.info("connection deleted", project=project_id, connection=name)

    async def test(self, project_id: str, name: str) -> float:
        """Seconds a trivial query took; `ConnectionFailed` naming only the kind of failure."""
        try:
            target = await self.target(project_id, name)
        except BadConnection as refused:  # its host is not (or no longer) allowed
            raise ConnectionFailed(str(refused)) from None
        started = time.perf_counter()
        try:
            await asyncio.wait_for(target.ping(), TEST_TIMEOUT_SECONDS)
        except Exception as error:  # classified, never echoed
            reason = failure_reason(error)
            log.info("connection test failed", project=project_id, connection=name, reason=reason)
            raise ConnectionFailed(reason) from None
        return time.perf_counter() - started

    async def close(self) -> None:
        for target in self._targets.values():
            await target.close()
        self._targets.clear()
        if self._sandbox is not None:
            await self._sandbox.close()


def _host(host: str) -> str:
    return "localhost" if host.lower().strip("[]") in LOCAL_HOSTS else host.lower()


def failure_reason(error: BaseException) -> str:
    """What kind of failure, from the exception types in the chain (never their messages)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    names = " ".join(type(item).__name__ for item in chain)
    if any(isinstance(item, TimeoutError | OSError) for item in chain):
        return "the server cannot be reached"
    if re.search(r"Password|Authori[sz]ation|Authentication", names):
        return "the server refused the credentials"
    if re.search(r"InvalidCatalogName|UnknownDatabase", names):
        return "the database does not exist"
    return "the server refused the connection or the query"


def project_file(data_dir: Path, project_id: str, name: str) -> Path:
    """Where a project's SQLite connection file `name` lives (tests and the CLI show it)."""
    return (data_dir / "connections" / project_id / name).resolve()
