"""End to end: `aietl up` in a temporary folder as a user runs it, then health, login, the slice, Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from aietl.services.demo.launcher import embedded_env
from aietl.shared.embedded_broker import free_port, port_open

PASSWORD = "e2e-admin-password"


@pytest.fixture
def platform(tmp_path: Path):
    port, broker_port = free_port(), free_port()
    env = embedded_env(PASSWORD)  # as a user's shell, minus anything pointing at outside servers
    env["AIETL_KAFKA_SESSION_TIMEOUT_MS"] = "6000"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aietl.services.cli",
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--broker-port",
            str(broker_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while not port_open("127.0.0.1", port):
        if process.poll() is not None:
            pytest.fail(f"aietl up exited early:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"aietl up not serving within 90s:\n{process.stdout.read()}")
        time.sleep(0.2)
    yield process, base, broker_port, tmp_path
    if process.poll() is None:
        process.kill()
        process.wait()


def test_up_serves_the_slice_and_stops_cleanly(platform) -> None:
    process, base, broker_port, folder = platform
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/health").json() == {"status": "ok"}
        deadline = time.monotonic() + 60
        while http.get("/ready").json()["status"] != "ready":
            assert time.monotonic() < deadline, "workers did not become ready"
            time.sleep(0.1)
        token = http.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        table = f"t_{uuid.uuid4().hex[:6]}"
        event = {
            "project_id": "default",
            "connector_id": "sqlite_local",
            "table_name": table,
            "columns": [{"name": "id", "type": "INTEGER", "nullable": False, "primary_key": True}],
        }
        assert http.post("/api/v1/events/schema-observed", json=event, headers=headers).status_code == 202
        url = f"/api/v1/advanced/schema-drift/history?connector_id=sqlite_local&table_name={table}"
        deadline = time.monotonic() + 30
        while not (versions := http.get(url, headers=headers).json()["versions"]):
            assert time.monotonic() < deadline, "the drift worker did not record the observation"
            time.sleep(0.1)
        assert versions[0]["version"] == 1
        assert http.get("/openapi.json").status_code == 200

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    output = process.stdout.read()
    assert "AI-ETL ready" in output and "AI-ETL stopped." in output
    assert PASSWORD not in output
    assert not port_open("127.0.0.1", broker_port), "the embedded broker was left running"
    assert (folder / "data" / "aietl.db").exists()
