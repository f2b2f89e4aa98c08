"""Passwords, API keys and tokens never appear in logs, responses or error messages.

A gateway process at DEBUG level (its whole output captured) is driven through every path that
handles a secret: good and bad logins, malformed credentials, user creation, connectors with API
keys (created, read, listed, patched, tested against a closed port). Then the log and every
response are grepped for each secret.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.reliability.conftest import ROOT, Stack


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
    ):
        assert secret not in log, f"a secret ({secret[:8]}...) is in the gateway's log"
        for response in responses:
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
        "from shared.logs import configure_logging\n"
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
