"""Passwords, password hashes, API keys and tokens never appear in logs, responses or error
messages; nor do the values bound to a failing SQL statement.

A gateway process at DEBUG level (its whole output captured) is driven through every path that
handles a secret: good and bad logins, malformed credentials, user creation, connectors with API
keys (created, read, listed, patched, tested against a closed port). Then the log and every
response are grepped for each secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from aietl.services.gateway.tables import User
from aietl.shared.bus import describe_error
from aietl.shared.db import Database
from aietl.shared.settings import Settings
from tests.conftest import ADMIN_PASSWORD
from tests.reliability.conftest import ROOT, Stack
from tests.support import fresh_postgres_database


async def test_secrets_stay_out_of_logs_and_responses(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:10]
    wrong_password, user_password = f"WrongPw-{tag}", f"UserPw-{tag}"
    short_password, typed_password = f"s{tag[:6]}", f"TypedPw-{tag}"
    api_key, new_api_key, token_secret = f"ApiKey-{tag}", f"NewApiKey-{tag}", f"MilvusTok-{tag}"
    gateway = stack.spawn(
        "gateway-secrets",
        "gateway",
        port_env="AIETL_GATEWAY_PORT",
        AIETL_LOG_LEVEL="DEBUG",
        AIETL_LOG_FORMAT="console",
        AIETL_OUTBOUND_ALLOWED_HOSTS="127.0.0.1:1,127.0.0.1:50051",  # closed ports the connectors try
    )
    await asyncio.to_thread(gateway.wait_listening)
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:

        async def call(method: str, url: str, **kwargs) -> httpx.Response:
            response = await http.request(method, url, **kwargs)
            responses.append(response)
            return response

        login = "/api/v1/auth/login"
        assert (
            await call("POST", login, json={"username": "admin", "password": wrong_password})
        ).status_code == 401
        assert (
            await call("POST", login, json={"username": "admin", "password": [typed_password]})
        ).status_code == 422
        admin = await call("POST", login, json={"username": "admin", "password": ADMIN_PASSWORD})
        token = admin.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        username = f"sec-{tag}"
        too_short = {"username": username, "password": short_password, "projects": ["default"]}
        assert (await call("POST", "/api/v1/users", json=too_short, headers=auth)).status_code == 422
        created = {"username": username, "password": user_password, "projects": ["default"]}
        assert (await call("POST", "/api/v1/users", json=created, headers=auth)).status_code == 201
        assert (await call("POST", "/api/v1/users", json=created, headers=auth)).status_code == 409
        assert (
            await call("POST", login, json={"username": username, "password": user_password})
        ).status_code == 200
        bad_token = {"Authorization": f"Bearer {token}x"}
        assert (await call("GET", "/api/v1/auth/me", headers=bad_token)).status_code == 401

        connector = await call(
            "POST",
            "/api/v1/connectors",
            json={
                "name": f"w-{tag}",
                "type": "weaviate",
                "config": {"url": "http://127.0.0.1:1", "api_key": api_key},
            },
            headers=auth,
        )
        assert connector.status_code == 201, connector.text
        url = f"/api/v1/connectors/{connector.json()['id']}"
        await call("GET", url, headers=auth)
        await call("GET", "/api/v1/connectors", headers=auth)
        await call(
            "PATCH", url, json={"config": {"url": "http://127.0.0.1:1", "api_key": new_api_key}}, headers=auth
        )
        await call("POST", f"{url}/test", headers=auth)
        milvus = await call(
            "POST",
            "/api/v1/connectors",
            json={
                "name": f"m-{tag}",
                "type": "milvus",
                "config": {"uri": "http://127.0.0.1:1", "token": token_secret},
            },
            headers=auth,
        )
        await call("POST", f"/api/v1/connectors/{milvus.json()['id']}/test", headers=auth)
        bad_config = {"name": f"x-{tag}", "type": "pinecone", "config": {"api_key": api_key, "region": 5}}
        assert (await call("POST", "/api/v1/connectors", json=bad_config, headers=auth)).status_code == 422
    gateway.stop()
    log = gateway.log_path.read_text(errors="replace")

    assert "DEBUG" in log.upper() or log, "the gateway wrote nothing at DEBUG level"
    for secret in (
        wrong_password,
        user_password,
        short_password,
        typed_password,
        ADMIN_PASSWORD,
        api_key,
        new_api_key,
        token_secret,
        token,
        "$argon2",  # any password hash
    ):
        assert secret not in log, f"a secret ({secret[:8]}...) is in the gateway's log"
        for response in responses:
            if secret == "$argon2":
                continue
            if response.request.url.path == login and secret == response.json().get("access_token"):
                continue  # the token is the login's answer
            assert secret not in response.text, (
                response.request.method,
                response.request.url,
                response.text[:300],
            )
            assert secret not in str(response.headers), (response.request.url, "headers")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_logged_exceptions_do_not_show_secret_locals(fmt: str) -> None:
    script = (
        "import sys, structlog\n"
        "from aietl.shared.logs import configure_logging\n"
        "configure_logging('INFO', sys.argv[1])\n"
        "def login(password):\n"
        "    raise RuntimeError('boom')\n"
        "try:\n"
        "    login('Sekret-' + 'in-a-local')\n"
        "except RuntimeError:\n"
        "    structlog.get_logger().exception('unhandled error')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, fmt], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "unhandled error" in done.stdout + done.stderr
    assert "Sekret-in-a-local" not in done.stdout + done.stderr


DEBUG_LOGIN = """
import asyncio, sys, httpx
from aietl.shared.logs import configure_logging
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
configure_logging("DEBUG", "console")

async def main():
    from aietl.services.gateway.admin import ensure_bootstrap_admin
    from aietl.services.gateway.app import create_app
    from aietl.services.runtime import Runtime
    settings = Settings(environment="test", data_dir=sys.argv[1], database_url=sys.argv[2],
                        admin_password=sys.argv[3], jwt_secret="k" * 40)
    await upgrade_async(settings.resolved_database_url)
    runtime = Runtime(settings)
    await ensure_bootstrap_admin(runtime)
    app = create_app(runtime, owns_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        login = {"username": "admin", "password": sys.argv[3]}
        token = (await http.post("/api/v1/auth/login", json=login)).json()["access_token"]
        user = {"username": "bob", "password": sys.argv[4], "projects": ["default"]}
        created = await http.post("/api/v1/users", json=user, headers={"Authorization": "Bearer " + token})
        guess = {"username": "bob", "password": "wrong-" + sys.argv[4]}
        wrong = await http.post("/api/v1/auth/login", json=guess)
        print("answers", created.status_code, wrong.status_code, file=sys.stderr)
    await runtime.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_debug_logs_of_logins_and_new_users_show_no_password_or_hash(
    backend: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    """The whole process at DEBUG (SQLAlchemy, aiosqlite, asyncpg, the gateway) while the
    administrator is bootstrapped, logs in, creates a user and a login fails: no password and no
    password hash in its output. aiosqlite printed each statement with its values at DEBUG."""
    tag = uuid.uuid4().hex[:10]
    admin_password, user_password = f"AdminPw-{tag}", f"BobPw-{tag}"
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'aietl.db'}"
        else:
            url = stack.enter_context(fresh_postgres_database(postgres_admin_url, "aietl_logs"))
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", DEBUG_LOGIN, str(tmp_path / "data"), url, admin_password, user_password],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        database = Database(Settings(database_url=url).resolved_database_url)
        async with database.sessions() as session:
            hashes = list(await session.scalars(select(User.password_hash)))
        await database.dispose()
    output = done.stdout + done.stderr
    assert "answers 201 401" in output, output[-3_000:]
    assert "Using selector" in output, "nothing was logged at DEBUG (asyncio says this at DEBUG only)"
    assert len(hashes) == 2
    for secret in (admin_password, user_password, "$argon2", *hashes):
        assert secret not in output, f"{secret[:10]}... is in the DEBUG log"


async def test_database_errors_name_no_bound_value(settings: Settings, tmp_path: Path) -> None:
    """The reason a handler's database error gives (dead-letter topic, retry log) keeps the
    statement and the database's message but none of the values bound to it, on both backends."""
    for url in (settings.resolved_database_url, f"sqlite+aiosqlite:///{tmp_path / 'errors.db'}"):
        database = Database(url)
        table = f"errors_{uuid.uuid4().hex[:8]}"
        async with database.engine.begin() as connection:
            await connection.execute(text(f"CREATE TABLE {table} (id INTEGER UNIQUE, secret TEXT)"))
            await connection.execute(text(f"INSERT INTO {table} VALUES (1, 'first')"))
        reasons = []
        for values in ({"id": 1, "secret": "Hidden-Duplicate"}, {"id": 10**12, "secret": "Hidden-Range"}):
            try:
                async with database.engine.begin() as connection:
                    await connection.execute(text(f"INSERT INTO {table} VALUES (:id, :secret)"), values)
            except StatementError as error:
                reasons.append(describe_error(error))
        await database.dispose()
        assert reasons and table in reasons[0], reasons  # the statement is there to diagnose
        assert "IntegrityError" in reasons[0], reasons
        for reason in reasons:
            assert "Hidden-" not in reason and "1000000000000" not in reason, reason
