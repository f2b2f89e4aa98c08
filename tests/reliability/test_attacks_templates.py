"""Attacks through pipeline templates, as a hostile but ordinary project member, each refused with a 4xx.

- escalation: a template whose SQL updates `users`, reads password hashes or other objects, on every
  connection kind (PostgreSQL `warehouse`, SQLite `lite`, the embedded sandboxed ClickHouse);
- the platform's own database is no connection, and a project connection cannot point at it;
- ClickHouse reads of files (`file()` table function and scalar function, `INTO OUTFILE`), URLs,
  settings changes, and the platform's own ClickHouse tables: refused by the SQL check and, below
  it, by the sandbox's restricted user and its engine-level check;
- stored code that predates the checks is refused when it would run;
- render bombs (time and memory) answer 422 naming the problem while `/health` keeps answering.
The happy paths (built-ins on all three connection kinds) run beside them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from aietl.services.runtime import Runtime
from aietl.services.templates.clickhouse_sandbox import SandboxRefused
from aietl.services.templates.service import service_of
from aietl.services.templates.tables import PipelineInstance
from aietl.shared.settings import Settings

BASE = "/api/v1/advanced/templates"
HEALTH_BUDGET_SECONDS = 0.1


async def custom_template(
    client: httpx.AsyncClient, maintainer: dict[str, str], dialect: str, code: str
) -> str:
    """A template of a maintainer's making (members instantiate and run it; they cannot write one)."""
    template_id = f"t_{uuid.uuid4().hex[:10]}"
    created = await client.post(
        f"{BASE}/create",
        json={
            "template_id": template_id,
            "pattern": "full_load",
            "category": "loading",
            "dialect": dialect,
            "config_schema": {"type": "object"},
            "code": code,
        },
        headers=maintainer,
    )
    assert created.status_code == 201, created.text
    return template_id


async def instantiate(
    client: httpx.AsyncClient, headers: dict[str, str], template_id: str, connection: str, config: Any = None
) -> httpx.Response:
    return await client.post(
        f"{BASE}/instantiate",
        json={
            "template_id": template_id,
            "pipeline_name": f"p-{uuid.uuid4().hex[:8]}",
            "config": config or {},
            "connection": connection,
        },
        headers=headers,
    )


async def test_who_may_write_templates_connections_and_run_them(
    client: httpx.AsyncClient, auth: dict[str, str], project_user: tuple[str, dict[str, str]]
) -> None:
    """Members instantiate and run; only maintainers write template code or add connections;
    viewers read."""
    from tests.conftest import user_in

    project, member = project_user
    viewer = await user_in(client, auth, project, "viewer")
    template = {
        "template_id": "mine",
        "pattern": "full_load",
        "category": "loading",
        "dialect": "postgres",
        "config_schema": {"type": "object"},
        "code": "SELECT 1;",
    }
    for headers in (member, viewer):
        assert (await client.post(f"{BASE}/create", json=template, headers=headers)).status_code == 403
        connection = {"name": "c", "url": "sqlite:///c.db"}
        assert (await client.post(f"{BASE}/connections", json=connection, headers=headers)).status_code == 403
    assert (await instantiate(client, viewer, "full_load_postgres", "warehouse")).status_code == 403
    assert (await client.get(f"{BASE}/connections", headers=viewer)).status_code == 200
    assert (await instantiate(client, member, "full_load_postgres", "warehouse")).status_code == 422


ESCALATIONS = {
    "warehouse": ("postgres", "UPDATE users SET is_admin = TRUE"),
    "lite": ("sqlite", "UPDATE users SET is_admin = 1"),
    "clickhouse": ("clickhouse", "ALTER TABLE predict.pipeline_metrics DELETE WHERE 1"),
}
READS = {
    "warehouse": ("postgres", "SELECT password_hash FROM public.users"),
    "lite": ("sqlite", "SELECT * FROM sqlite_master"),
    "clickhouse": ("clickhouse", "SELECT * FROM system.tables"),
}


@pytest.mark.parametrize("connection", sorted(ESCALATIONS))
async def test_member_cannot_escalate_or_read_through_templates(
    client: httpx.AsyncClient,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
    connection: str,
) -> None:
    _project, headers = project_user
    for dialect, code in (ESCALATIONS[connection], READS[connection]):
        template_id = await custom_template(client, project_maintainer, dialect, code + ";")
        refused = await instantiate(client, headers, template_id, connection)
        assert refused.status_code == 422, refused.text
        assert "neither the configured source nor the target" in refused.text


@pytest.mark.parametrize(
    "dialect,code",
    [
        ("postgres", "SELECT pg_read_file('/etc/passwd')"),
        ("postgres", "COPY (SELECT 1) TO PROGRAM 'id'"),
        ("postgres", "GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC"),
        ("postgres", "ALTER USER postgres WITH PASSWORD 'x'"),
        ("postgres", "SELECT set_config('search_path', 'x', false)"),
        ("sqlite", "ATTACH DATABASE '/tmp/aietl.db' AS platform"),
        ("sqlite", "SELECT load_extension('/tmp/evil')"),
        ("clickhouse", "SYSTEM SHUTDOWN"),
        ("clickhouse", "SET max_memory_usage = 0"),
    ],
)
async def test_statements_a_pattern_does_not_need_are_refused(
    client: httpx.AsyncClient,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
    dialect: str,
    code: str,
) -> None:
    _project, headers = project_user
    connection = {"postgres": "warehouse", "sqlite": "lite", "clickhouse": "clickhouse"}[dialect]
    template_id = await custom_template(client, project_maintainer, dialect, code + ";")
    refused = await instantiate(client, headers, template_id, connection)
    assert refused.status_code == 422, refused.text


async def test_platform_database_is_never_a_run_target(
    client: httpx.AsyncClient,
    settings: Settings,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
) -> None:
    _project, headers = project_user
    names = {c["name"] for c in (await client.get(f"{BASE}/connections", headers=headers)).json()}
    assert "platform" not in names and {"clickhouse", "warehouse", "lite"} <= names
    refused = await instantiate(client, headers, "full_load_postgres", "platform")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "/connection"
    platform_url = settings.resolved_database_url.replace("+asyncpg", "")
    for url in (platform_url, platform_url.replace("127.0.0.1", "localhost")):
        added = await client.post(
            f"{BASE}/connections", json={"name": "mine", "url": url}, headers=project_maintainer
        )
        assert added.status_code == 422 and "platform's own database" in added.text
    escape = await client.post(
        f"{BASE}/connections",
        json={"name": "mine", "url": "sqlite:///../../aietl.db"},
        headers=project_maintainer,
    )
    assert escape.status_code == 422


@pytest.mark.parametrize(
    "code",
    [
        "SELECT * FROM file('{secret}', 'LineAsString')",
        "SELECT file('{secret}')",
        "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString', 'line String')",
        "INSERT INTO FUNCTION file('/tmp/aietl-written.csv', 'CSV') SELECT 1",
        "SELECT * FROM remote('127.0.0.1:9000', system.one)",
        "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')",
    ],
)
async def test_clickhouse_templates_cannot_read_files_or_urls(
    client: httpx.AsyncClient,
    settings: Settings,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
    code: str,
) -> None:
    _project, headers = project_user
    secret = str((settings.data_dir / "jwt-secret").resolve())
    template_id = await custom_template(
        client, project_maintainer, "clickhouse", code.format(secret=secret) + ";"
    )
    refused = await instantiate(client, headers, template_id, "clickhouse")
    assert refused.status_code == 422, refused.text
    assert "jwt" not in refused.json().get("detail", "").lower().replace(secret.lower(), "")


async def test_the_sandbox_itself_refuses_files_urls_settings_and_platform_tables(
    runtime: Runtime, settings: Settings
) -> None:
    """Below the SQL check: the sandbox's restricted user and its engine-level check."""
    secret = settings.data_dir / "jwt-secret"
    secret.write_text("canary-signing-key")
    platform = runtime.clickhouse()
    await platform.command("CREATE DATABASE IF NOT EXISTS platform_only")
    await platform.command(
        "CREATE TABLE IF NOT EXISTS platform_only.metrics (a Int64) ENGINE = MergeTree ORDER BY a"
    )
    sandbox = service_of(runtime).connections.sandbox()
    platform_db = settings.resolved_database_url.rpartition("///")[2] or "/tmp/aietl.db"
    denied_by_the_user = [  # no FILE/URL/REMOTE/SQLITE/... source grant, no SYSTEM, no access management
        f"SELECT * FROM sqlite('{platform_db}', 'users')",
        "CREATE TABLE default.f (line String) ENGINE = Log",
        "CREATE USER intruder",
        "SELECT * FROM platform_only.metrics",  # another data area: not even there
    ]
    for sql in denied_by_the_user:
        run = sandbox.query if sql.startswith("SELECT") else sandbox.command
        with pytest.raises(Exception, match=r"ACCESS_DENIED|UNKNOWN_DATABASE|doesn't exist"):
            await run(sql)
    refused_by_the_engine_check = [
        f"SELECT * FROM file('{secret}', 'LineAsString')",
        f"SELECT file('{secret}')",
        "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString', 'line String')",
        "SELECT * FROM remote('127.0.0.1:9000', system.one)",
        "SELECT 1 INTO OUTFILE '/tmp/aietl-outfile.csv'",
        "SET max_memory_usage = 0",
        "SYSTEM FLUSH LOGS",
    ]
    for sql in refused_by_the_engine_check:
        run = sandbox.query if sql.startswith("SELECT") else sandbox.command
        with pytest.raises(SandboxRefused):
            await run(sql)
    with pytest.raises(Exception, match=r"should not be changed|SETTING_CONSTRAINT|cannot be checked"):
        await sandbox.query("SELECT 1 SETTINGS max_execution_time = 100000")
    databases = {row[0] for row in await sandbox.query("SHOW DATABASES")}
    assert "platform_only" not in databases and "predict" not in databases


async def test_stored_code_outside_its_scope_is_refused_at_run_time(
    client: httpx.AsyncClient, runtime: Runtime, project_user: tuple[str, dict[str, str]]
) -> None:
    """An instance whose stored code predates the check (or was tampered with) does not run."""
    _project, headers = project_user
    warehouse: Any = await service_of(runtime).connections.target("", "warehouse")
    schema = f"a_{uuid.uuid4().hex[:8]}"
    async with warehouse.engine.begin() as connection:
        await connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        await connection.exec_driver_sql(f"CREATE TABLE {schema}.src (id BIGINT)")
        await connection.exec_driver_sql(f"CREATE TABLE {schema}.bystander (id BIGINT)")
        await connection.exec_driver_sql(f"INSERT INTO {schema}.bystander VALUES (1)")
    created = await instantiate(
        client,
        headers,
        "full_load_postgres",
        "warehouse",
        {
            "source": {"schema": schema, "name": "src"},
            "target": {"schema": schema, "name": "dst"},
            "columns": [{"name": "id"}],
            "keys": ["id"],
        },
    )
    assert created.status_code == 201, created.text
    instance_id = created.json()["instance_id"]
    async with runtime.database.transaction() as session:
        await session.execute(
            update(PipelineInstance)
            .where(PipelineInstance.instance_id == instance_id)
            .values(code=f'DELETE FROM "{schema}"."bystander";')
        )
    refused = await client.post(f"{BASE}/instances/{instance_id}/run", headers=headers)
    assert refused.status_code == 422 and "bystander" in refused.text
    async with warehouse.engine.connect() as connection:
        kept = (await connection.exec_driver_sql(f"SELECT count(*) FROM {schema}.bystander")).scalar()
    assert kept == 1


RENDER_ERRORS = {
    "{{ '{0}'.format_map({}) }}": "IndexError",
    "{{ 9.0 ** 999 }}": "OverflowError",
    "{{ ['x'] * 10 | join(1) }}": "TypeError",
    "{{ range(10**8) | list | length }}": "Range too big",
    "{% set ns = namespace(s='xx') %}{% for _ in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}": (
        "longer than"
    ),
    "{% set ns = namespace(s='xx') %}{% for _ in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}": (
        "longer than"
    ),
    "{{ 'x'.center(3 * 10**9) | length }}": "memory",
}


@pytest.mark.parametrize("code", sorted(RENDER_ERRORS))
async def test_render_errors_are_4xx_naming_the_problem(
    client: httpx.AsyncClient,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
    code: str,
) -> None:
    _project, headers = project_user
    template_id = await custom_template(client, project_maintainer, "postgres", f"SELECT 1; -- {code}\n")
    started = time.perf_counter()
    refused = await instantiate(client, headers, template_id, "warehouse")
    assert refused.status_code == 422, refused.text
    assert RENDER_ERRORS[code] in refused.text
    assert time.perf_counter() - started < 30


async def test_health_answers_while_a_render_bomb_is_stopped(
    client: httpx.AsyncClient,
    runtime: Runtime,
    project_user: tuple[str, dict[str, str]],
    project_maintainer: dict[str, str],
) -> None:
    _project, headers = project_user
    renderer = service_of(runtime).renderer
    spin = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    template_id = await custom_template(client, project_maintainer, "postgres", f"SELECT 1; -- {spin}\n")
    assert (await client.get("/health")).status_code == 200
    original, renderer.timeout = renderer.timeout, 2.0
    try:
        bomb = asyncio.create_task(instantiate(client, headers, template_id, "warehouse"))
        await asyncio.sleep(0.2)
        latencies = []
        while not bomb.done():
            started = time.perf_counter()
            assert (await client.get("/health")).status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)
        refused = await bomb
    finally:
        renderer.timeout = original
    assert refused.status_code == 422 and "longer than 2 s" in refused.text
    assert len(latencies) >= 5 and max(latencies) < HEALTH_BUDGET_SECONDS, latencies
    await renderer.check_template({"type": "object"}, "SELECT 1;")  # a new child took the killed one's place


async def _source(runtime: Runtime, connection: str, schema: str) -> dict[str, str]:
    """A `src` table with two rows on the connection; its config reference."""
    rows = "(1, 'a'), (2, 'b')"
    if connection == "clickhouse":
        sandbox = service_of(runtime).connections.sandbox()
        await sandbox.command(f"CREATE DATABASE {schema}")
        await sandbox.command(f"CREATE TABLE {schema}.src (id Int64, name String) ENGINE = Memory")
        await sandbox.command(f"INSERT INTO {schema}.src VALUES {rows}")
        return {"schema": schema, "name": "src"}
    target: Any = await service_of(runtime).connections.target("", connection)
    qualified = f"{schema}.src" if connection == "warehouse" else f"src_{schema}"
    async with target.engine.begin() as sql:
        if connection == "warehouse":
            await sql.exec_driver_sql(f"CREATE SCHEMA {schema}")
        await sql.exec_driver_sql(f"CREATE TABLE {qualified} (id BIGINT, name TEXT)")
        await sql.exec_driver_sql(f"INSERT INTO {qualified} VALUES {rows}")
    return {"schema": schema, "name": "src"} if connection == "warehouse" else {"name": qualified}


@pytest.mark.parametrize(
    "connection,dialect", [("warehouse", "postgres"), ("lite", "sqlite"), ("clickhouse", "clickhouse")]
)
async def test_builtin_templates_still_run_on_every_connection_kind(
    client: httpx.AsyncClient,
    runtime: Runtime,
    project_user: tuple[str, dict[str, str]],
    connection: str,
    dialect: str,
) -> None:
    _project, headers = project_user
    schema = f"h_{uuid.uuid4().hex[:8]}"
    source = await _source(runtime, connection, schema)
    target = {**source, "name": source["name"] + "_copy"}
    created = await instantiate(
        client,
        headers,
        f"full_load_{dialect}",
        connection,
        {"source": source, "target": target, "columns": [{"name": "id"}, {"name": "name"}], "keys": ["id"]},
    )
    assert created.status_code == 201, created.text
    run = await client.post(f"{BASE}/instances/{created.json()['instance_id']}/run", headers=headers)
    assert run.status_code == 200 and run.json()["status"] == "success", run.text
    assert run.json()["rows_written"] == 2
