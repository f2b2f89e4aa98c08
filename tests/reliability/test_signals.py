"""SIGTERM (what Kubernetes, systemd and `docker stop` send) stops a process and every child it started.

`aietl up` and `aietl broker` start tansu in a session of its own (Ctrl-C in a terminal must not
reach it before the platform has stopped using it), so nothing but the parent can stop it: a parent
that dies around its cleanup leaves tansu running and holding its port.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from aietl.services.demo.launcher import embedded_env
from aietl.shared.embedded_broker import free_port, port_open
from tests.reliability.conftest import ROOT, Stack

PASSWORD = "signal-test-password"


def start(args: list[str], folder: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aietl.services.cli", *args],
        cwd=folder,
        env={**embedded_env(PASSWORD), "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=(folder / "out.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_for(
    condition, process: subprocess.Popen[bytes], folder: Path, what: str, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        log = (folder / "out.log").read_text(errors="replace")[-3_000:]
        assert process.poll() is None, f"exited ({process.returncode}) before {what}:\n{log}"
        assert time.monotonic() < deadline, f"not {what} within {timeout}s:\n{log}"
        time.sleep(0.05)


def terminate_and_check(process: subprocess.Popen[bytes], folder: Path, ports: list[int]) -> None:
    """SIGTERM; the process exits by itself, every descendant with it, and the ports are free."""
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("did not stop within 60 s of SIGTERM") from None
    log = (folder / "out.log").read_text(errors="replace")[-3_000:]
    assert code == 0, f"exit code {code}:\n{log}"
    _gone, alive = psutil.wait_procs(children, timeout=5)
    for orphan in alive:
        orphan.kill()
    assert alive == [], f"children left running: {[p.cmdline() for p in alive]}"
    assert [port for port in ports if port_open("127.0.0.1", port)] == []


@pytest.mark.parametrize("moment", ["starting", "serving"])
def test_sigterm_stops_aietl_up_and_its_broker(tmp_path: Path, moment: str) -> None:
    """While starting (the broker up, migrations and workers under way) and once serving."""
    port, broker_port = free_port(), free_port()
    up = ["up", "--data-dir", str(tmp_path / "data"), "--port", str(port), "--broker-port", str(broker_port)]
    process = start(up, tmp_path)
    try:
        wait_for(lambda: port_open("127.0.0.1", broker_port), process, tmp_path, "the broker listens")
        assert psutil.Process(process.pid).children(), "tansu is not a child of aietl up"
        if moment == "serving":
            wait_for(lambda: port_open("127.0.0.1", port), process, tmp_path, "the gateway listens")
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        terminate_and_check(process, tmp_path, [port, broker_port])
    finally:
        if process.poll() is None:
            process.kill()


def test_sigterm_stops_aietl_broker(tmp_path: Path) -> None:
    broker_port = free_port()
    process = start(["broker", "--port", str(broker_port)], tmp_path)
    try:
        wait_for(lambda: port_open("127.0.0.1", broker_port), process, tmp_path, "the broker listens")
        terminate_and_check(process, tmp_path, [broker_port])
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("stack_database", ["sqlite"], indirect=True)
async def test_sigterm_stops_a_worker(stack: Stack) -> None:
    worker = stack.spawn("signal-worker", "worker", "vector_sink", port_env="AIETL_METRICS_PORT")
    await asyncio.to_thread(worker.wait_listening)
    children = psutil.Process(worker.process.pid).children(recursive=True)
    assert await asyncio.to_thread(worker.stop) == 0, worker.output()
    assert [child for child in children if child.is_running()] == []
    assert not port_open("127.0.0.1", worker.port)
