"""The newcomer's path: `aietl up` on SQLite and tansu serves the console, and every worker's heartbeat
reaches the overview through the embedded database."""

from __future__ import annotations

import re
import signal
import time

import httpx

from tests.console.conftest import login_nonce
from tests.foundation.test_cli_up import PASSWORD, platform  # noqa: F401 - the `aietl up` fixture

ROLES = ("gateway", "drift", "features", "templates", "predict", "vector_sink")


def test_the_console_of_aietl_up_shows_every_process_ready(platform) -> None:  # noqa: F811
    process, base, _, _ = platform
    with httpx.Client(base_url=base, timeout=20) as http:
        form = http.get("/console/login")
        nonce = login_nonce(form.text)
        signed = http.post(
            "/console/login", data={"username": "admin", "password": PASSWORD, "login_nonce": nonce}
        )
        assert signed.status_code == 303, signed.text
        deadline = time.monotonic() + 90
        while True:
            page = http.get("/console/")
            assert page.status_code == 200
            states = dict(
                re.findall(
                    r'data-role="([a-z_]+)">\s*<span class="tile-name">[a-z_]+</span>\s*'
                    r'<span class="badge \w+">(\w+)</span>',
                    page.text,
                )
            )
            if all(states.get(role) == "ready" for role in ROLES):
                break
            assert time.monotonic() < deadline, f"not every process became ready: {states}"
            time.sleep(0.5)
        for path in (
            "/console/drift",
            "/console/features",
            "/console/pipelines",
            "/console/predict",
            "/console/vectors",
        ):
            assert http.get(path).status_code == 200, path
    process.send_signal(signal.SIGINT)  # as Ctrl-C: the platform stops its broker too
    assert process.wait(timeout=60) == 0
