"""The demo's REST client: JSON calls that carry the server's `detail` on error, and polling."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

Report = Callable[[str], None]

EVENT_TIMEOUT_SECONDS = 60.0


class DemoFailed(Exception):
    """A step did not get the answer it needed; the message names the step and the server's words."""


class ApiError(Exception):
    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        try:
            detail: Any = response.json()
            detail = detail.get("detail", detail) if isinstance(detail, dict) else detail
        except ValueError:
            detail = response.text[:500]
        super().__init__(f"{method} {path} answered {response.status_code}: {detail}")


class Unexpected(Exception):
    """The platform answered, but not what the scenario expects."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Unexpected(message)


@dataclass
class Api:
    """A logged-in client: JSON in and out, errors carrying the server's `detail`."""

    http: httpx.Client
    project: str = ""
    base_url: str = ""

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> Any:
        params = kwargs.pop("params", {})
        if self.project:
            params = {"project_id": self.project, **params}
        response = self.http.request(method, path, params=params, **kwargs)
        if response.status_code not in ok:
            raise ApiError(method, path, response)
        return response.json() if response.content else None

    def url(self, path: str, **params: str) -> str:
        return f"{self.base_url}{path}?{urlencode({'project_id': self.project, **params})}"


@dataclass
class Context:
    """What the steps share: the client, a tag that keeps this run's names apart, what to print."""

    api: Api
    report: Report
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def table(self) -> str:
        return f"customers_{self.tag}"

    def say(self, line: str) -> None:
        self.report(f"   {line}")


def poll(fetch: Callable[[], Any], what: str, timeout: float = EVENT_TIMEOUT_SECONDS) -> Any:
    """Events are processed asynchronously: ask again until the answer is there or time is up."""
    deadline = time.monotonic() + timeout
    while not (value := fetch()):
        if time.monotonic() > deadline:
            raise Unexpected(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)
    return value
