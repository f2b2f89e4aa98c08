"""Server processes of a benchmark: started, waited for, and stopped (with their log on failure);
and the Redis keys a run leaves behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]


def aietl(*arguments: str) -> list[str]:
    """The command line of our own CLI in this interpreter (as `aietl ...` runs it)."""
    return [sys.executable, "-m", "aietl.services.cli", *arguments]


@contextlib.contextmanager
def serving(
    argv: list[str], env: dict[str, str], url: str, *, timeout: float = 120
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv` with `env` added, wait until `url` + /health answers 200, stop it afterwards."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 - our own commands
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read()[-3_000:].decode(errors="replace")
                    raise RuntimeError(f"{' '.join(argv[:4])} did not start; its output ends:\n{tail}")
                time.sleep(0.1)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def delete_keys(url: str, pattern: str) -> None:
    """Remove what a run wrote to Redis (keys of its own project, matched by `pattern`)."""
    client = redis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=10_000):
            batch.append(key)
            if len(batch) == 10_000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    finally:
        client.close()
