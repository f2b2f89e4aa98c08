"""`aietl demo` entry point: the steps against a given URL, or against `aietl up` started for it."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from aietl.services.demo.client import DemoFailed, Report
from aietl.services.demo.scenarios import run_scenario
from aietl.shared.embedded_broker import free_port

READY_TIMEOUT_SECONDS = 240.0
STOP_TIMEOUT_SECONDS = 30.0
# Variables that would point a self-started platform at outside services or change its defaults.
_EXTERNAL_SETTINGS = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "CLICKHOUSE_HOST",
        "CLICKHOUSE_PORT",
        "CLICKHOUSE_USER",
        "CLICKHOUSE_PASSWORD",
        "CLICKHOUSE_DSN",
        "MILVUS_HOST",
        "MILVUS_PORT",
        "WEAVIATE_URL",
        "PINECONE_API_KEY",
        "FEATURE_STORE_TTL_SECONDS",
        "PREDICTION_HORIZON_DAYS",
        "MIN_HISTORICAL_DAYS",
    }
)


def embedded_env(password: str) -> dict[str, str]:
    """This environment minus anything that would point `aietl up` elsewhere, plus the admin password."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AIETL_") and key not in _EXTERNAL_SETTINGS
    }
    env["AIETL_ADMIN_PASSWORD"] = password
    return env


def _log_tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(base_url=base_url, timeout=5.0) as http:
        while True:
            if process.poll() is not None:
                raise DemoFailed(f"aietl up exited with code {process.returncode}:\n{_log_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get("/ready").json().get("status") == "ready":
                    return
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"aietl up not ready within {READY_TIMEOUT_SECONDS:.0f} s:\n{_log_tail(log)}"
                )
            time.sleep(0.3)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user would; the whole process group only if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def embedded_platform(report: Report) -> Iterator[tuple[str, str, str]]:
    """`aietl up` in a temporary folder on free ports; yields (url, username, password); always stopped."""
    password = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="aietl-demo-") as folder:
        port, broker_port = free_port(), free_port()
        log = Path(folder) / "aietl-up.log"
        command = [sys.executable, "-m", "aietl.services.cli", "up", "--data-dir", str(Path(folder) / "data")]
        command += ["--port", str(port), "--broker-port", str(broker_port)]
        started = time.perf_counter()
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                command,
                cwd=folder,
                env=embedded_env(password),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the demo reaches it through _stop
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            report(f"Starting aietl up in {folder} on {base_url} ...")
            _wait_ready(base_url, process, log)
            report(f"Platform ready in {time.perf_counter() - started:.0f} s.")
            yield base_url, "admin", password
        finally:
            _stop(process)
            report(f"Platform stopped (exit code {process.returncode}).")


def run(url: str | None, username: str, password: str | None, report: Report) -> None:
    """Drive the platform at `url`, or one started for the occasion when `url` is None."""
    if url is not None:
        summary = run_scenario(url.rstrip("/"), username, password or "", report)
    else:
        with embedded_platform(report) as (base_url, admin, generated):
            summary = run_scenario(base_url, admin, generated, report)
    report(summary)
