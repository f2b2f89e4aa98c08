"""The embedded ClickHouse run target: chDB in a child process, its own data area, a restricted user.

chDB allows one data directory per process, and the platform's own chDB (run metrics, offline
features) lives in the main process; pipelines must not see it. So pipeline SQL runs in a child
process (`aietl.shared.child_process`) whose chDB opens `<data_dir>/pipelines-clickhouse/`, configured
with a users file where the only user:
- may read, write, create and drop tables, views and databases, and nothing else: no FILE, URL,
  REMOTE, S3, MYSQL, POSTGRES, ... sources (so no table function or table engine reaching files or
  the network), no SYSTEM, no users, roles, dictionaries or functions;
- runs in a profile whose limits (execution time, memory, threads, readonly) are constraints it
  cannot change.
clickhouse-local (which chDB is) does not confine the `file()` *function* or `INTO OUTFILE` to a
directory, so before each statement the child asks its own engine for the statement's syntax tree
(`EXPLAIN AST`) and refuses those, and SET statements, whatever the SQL looks like to sqlglot
(SETTINGS clauses are limited by sqlglot's check; the profile's limits are constraints anyway).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aietl.services.templates.domain.guard import FORBIDDEN_FUNCTIONS, FORBIDDEN_PREFIXES
from aietl.services.templates.domain.model import SqlDialect
from aietl.services.templates.domain.rendering import Statement
from aietl.services.templates.targets import RunStats, is_stats
from aietl.shared.child_process import ChildTimeout, ChildWorker
from aietl.shared.settings import Settings

AREA = "pipelines-clickhouse"
GRANTS = (
    "SELECT, INSERT, ALTER TABLE, ALTER VIEW, CREATE DATABASE, CREATE TABLE, CREATE VIEW, "
    "DROP DATABASE, DROP TABLE, DROP VIEW, TRUNCATE, OPTIMIZE, SHOW TABLES, SHOW COLUMNS, SHOW DATABASES"
)
FIXED_SETTINGS = (
    "max_execution_time",
    "max_memory_usage",
    "max_threads",
    "readonly",
    "allow_ddl",
    "allow_introspection_functions",
)
_FUNCTION = re.compile(r"^( *)Function (\S+)")
_SET = re.compile(r"^ *Set\b")
_NODE = re.compile(r"^( *)(\S+)")

_client: Any = None


class SandboxRefused(ValueError):
    """The sandbox's own engine sees the statement do something a pipeline may not."""


def users_xml(max_execution_seconds: int, max_memory_bytes: int) -> str:
    constraints = "".join(f"<{name}><readonly/></{name}>" for name in FIXED_SETTINGS)
    return f"""<clickhouse>
  <users>
    <default>
      <password></password>
      <profile>pipelines</profile>
      <quota>default</quota>
      <grants><query>GRANT {GRANTS} ON *.*</query></grants>
    </default>
  </users>
  <profiles>
    <default/>
    <pipelines>
      <max_execution_time>{max_execution_seconds}</max_execution_time>
      <max_memory_usage>{max_memory_bytes}</max_memory_usage>
      <max_threads>2</max_threads>
      <allow_ddl>1</allow_ddl>
      <constraints>{constraints}</constraints>
    </pipelines>
  </profiles>
  <quotas><default/></quotas>
</clickhouse>
"""


def prepare_area(area: Path, max_execution_seconds: int, max_memory_bytes: int) -> Path:
    """Write the sandbox's configuration under `area` (rewritten each start); returns the config file."""
    area.mkdir(parents=True, exist_ok=True)
    (area / "users.xml").write_text(users_xml(max_execution_seconds, max_memory_bytes))
    config = area / "config.xml"
    config.write_text(f"<clickhouse><users_config>{area / 'users.xml'}</users_config></clickhouse>\n")
    return config


def open_sandbox(area: str) -> None:
    """Child setup: open chDB on the sandbox's data directory as the restricted user."""
    global _client
    from clickhouse_connect.driver._chdbclient import ChdbClient

    path = Path(area)
    _client = ChdbClient(path=str(path / "data"), chdb_options={"config-file": str(path / "config.xml")})


def refusal(tree: str) -> str | None:
    """Why the engine's syntax tree of a statement may not run here, or None."""
    union_depths: list[int] = []
    for line in tree.splitlines():
        node = _NODE.match(line)
        if node is None:
            continue
        depth, kind = len(node.group(1)), node.group(2)
        union_depths = [d for d in union_depths if d < depth]
        if kind == "SelectWithUnionQuery":
            union_depths.append(depth)
        elif kind == "Literal" and union_depths and depth == union_depths[-1] + 1:
            return "writes its result to a file (INTO OUTFILE)"
        if _SET.match(line) and depth == 0:
            return "changes settings (SET)"
        function = _FUNCTION.match(line)
        if function is not None:
            name = function.group(2).lower()
            if name in FORBIDDEN_FUNCTIONS["clickhouse"] or name.startswith(FORBIDDEN_PREFIXES["clickhouse"]):
                return f"calls {function.group(2)}()"
    return None


def _checked(client: Any, sql: str) -> None:
    try:
        tree = client.raw_query(f"EXPLAIN AST {sql}", fmt="TabSeparatedRaw").decode()
    except Exception:  # what the engine cannot explain, it does not run here
        raise SandboxRefused(f"statement {sql[:80]!r} cannot be checked by the engine") from None
    problem = refusal(tree)
    if problem is not None:
        raise SandboxRefused(f"statement {sql[:80]!r} {problem}")


def execute(statements: tuple[Statement, ...]) -> RunStats:
    """Run a pipeline's statements in order (in the child); the stats row reports what it did."""
    stats = RunStats()
    for statement in statements:
        _checked(_client, statement.sql)
        if not statement.returns_rows:
            _client.command(statement.sql)
            continue
        result = _client.query(statement.sql)
        if result.result_rows and is_stats(result.column_names):
            stats = RunStats.from_row(dict(zip(result.column_names, result.result_rows[0], strict=True)))
    return stats


def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of one checked statement (connection probes, tests seeding sources)."""
    _checked(_client, sql)
    result = _client.query(sql)
    return list(result.column_names), [tuple(row) for row in result.result_rows]


def command(sql: str) -> None:
    _checked(_client, sql)
    _client.command(sql)


class SandboxedClickHouse:
    """The parent's handle on the sandbox child: a run target, started on first use."""

    dialect: SqlDialect = "clickhouse"

    def __init__(self, settings: Settings) -> None:
        self.area = (settings.data_dir / AREA).resolve()
        self.timeout = settings.templates_run_timeout_seconds
        self.memory_bytes = settings.templates_sandbox_memory_mb * 1_048_576
        self._child: ChildWorker | None = None

    def _worker(self) -> ChildWorker:
        if self._child is None:
            prepare_area(self.area, int(self.timeout), self.memory_bytes)
            self._child = ChildWorker(
                setup="aietl.services.templates.clickhouse_sandbox:open_sandbox",
                setup_argument=str(self.area),
                name="pipelines ClickHouse",
            )
        return self._child

    async def _call(self, function: Any, *args: Any) -> Any:
        try:
            return await self._worker().call(function, *args, timeout=self.timeout)
        except ChildTimeout:
            raise TimeoutError(f"the run took longer than {self.timeout:g} s and was stopped") from None

    async def execute(self, statements: Sequence[Statement], batch: str | None = None) -> RunStats:
        if batch is not None or any(statement.uses_batch for statement in statements):
            raise ValueError("ClickHouse pipelines consume topics with the Kafka engine, not batches")
        return await self._call(execute, tuple(statements))

    async def columns(self, table_sql: str) -> list[str]:
        _names, rows = await self._call(query, f"DESCRIBE TABLE {table_sql}")
        return [str(row[0]) for row in rows]

    async def ping(self) -> None:
        await self._call(query, "SELECT 1")

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        _names, rows = await self._call(query, sql)
        return rows

    async def command(self, sql: str) -> None:
        await self._call(command, sql)

    async def close(self) -> None:
        if self._child is not None:
            await self._child.close()
            self._child = None
