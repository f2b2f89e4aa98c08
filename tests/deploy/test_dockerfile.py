"""The Dockerfile: multi-stage, slim, non-root, extra chosen by SERVICE_EXTRA, health check that works."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aietl.shared.settings import Settings
from tests.deploy import project

DOCKERFILE = project.ROOT / "Dockerfile"
NON_APP_ENV = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "MPLCONFIGDIR",
    "NUMBA_CACHE_DIR",
    "HF_HUB_OFFLINE",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    parts: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        if not parts and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        logical.append(" ".join(part.strip() for part in parts))
        parts = []
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def env_names(arguments: str) -> set[str]:
    return set(re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", arguments))


def image_uid() -> int:
    user = [args for name, args in stages()[-1] if name == "USER"][-1]
    return int(user.split(":")[0])


def test_multi_stage_slim_image() -> None:
    build, runtime = stages()
    assert "slim" in build[0][1] and "slim" in runtime[0][1]
    assert build[0][1].endswith("AS build") and runtime[0][1].endswith("AS runtime")
    copies = [args for name, args in runtime if name == "COPY"]
    assert copies == ["--from=build /opt/aietl /opt/aietl"], "only the built virtualenv reaches the image"


def test_service_extra_selects_what_is_installed() -> None:
    build = stages()[0]
    assert ("ARG", "SERVICE_EXTRA=all") in build
    install = next(args for name, args in build if name == "RUN" and "pip install" in args and "[" in args)
    extras = re.findall(r'"\.\[([^\]]+)\]"', install)[0].split(",")
    assert "${SERVICE_EXTRA}" in extras
    upgrade = install.find("pip install --upgrade pip")
    assert -1 < upgrade < install.find('pip install ".['), "old pip ignores `[vector_sink]` (PEP 685)"
    for extra in extras:
        assert extra == "${SERVICE_EXTRA}" or extra in project.service_extras()


def test_runs_as_an_unprivileged_user_with_the_aietl_entry_point() -> None:
    runtime = stages()[-1]
    assert image_uid() >= 1000, "numeric non-root uid (Kubernetes runAsNonRoot checks it)"
    entrypoint = json.loads(next(args for name, args in runtime if name == "ENTRYPOINT"))
    assert entrypoint == ["aietl"]
    assert "aietl" in project.pyproject()["project"]["scripts"]  # type: ignore[index]


def test_environment_names_are_settings_or_runtime_variables() -> None:
    names = set().union(*(env_names(args) for name, args in instructions() if name == "ENV"))
    assert "AIETL_DATA_DIR" in names
    unknown = names - project.settings_env_names() - NON_APP_ENV
    assert not unknown


def test_healthcheck_probes_the_ports_the_processes_serve() -> None:
    healthcheck = next(args for name, args in instructions() if name == "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    code = command[2]
    compile(code, "HEALTHCHECK", "exec")
    defaults = Settings.model_fields
    assert f"'AIETL_METRICS_PORT', '{defaults['metrics_port'].default}'" in code
    assert f"'AIETL_GATEWAY_PORT', '{defaults['gateway_port'].default}'" in code
    assert "/health" in code
    exposed = {args for name, args in instructions() if name == "EXPOSE"}
    assert exposed == {f"{defaults['gateway_port'].default} {defaults['metrics_port'].default}"}


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_healthcheck(metrics_port: int, gateway_port: int) -> int:
    healthcheck = next(args for name, args in instructions() if name == "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    env = {**os.environ, "AIETL_METRICS_PORT": str(metrics_port), "AIETL_GATEWAY_PORT": str(gateway_port)}
    return subprocess.run([sys.executable, *command[1:]], env=env, timeout=30).returncode


def test_healthcheck_passes_when_either_port_answers_and_fails_otherwise() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        serving, closed = server.server_address[1], free_port()
        assert run_healthcheck(metrics_port=serving, gateway_port=closed) == 0, "a worker"
        assert run_healthcheck(metrics_port=closed, gateway_port=serving) == 0, "the gateway"
        assert run_healthcheck(metrics_port=closed, gateway_port=closed) == 1
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("source", ["pyproject.toml", "README.md", "shared", "services", "aietl"])
def test_build_context_keeps_what_the_image_copies(source: str) -> None:
    copied = {
        part
        for name, args in stages()[0]
        if name == "COPY"
        for part in args.split()[:-1]
        if not part.startswith("--")
    }
    assert source in copied
    assert (project.ROOT / source).exists()
    patterns = [
        line.strip()
        for line in (project.ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(fnmatch.fnmatch(source, pattern) for pattern in patterns), f".dockerignore drops {source}"
