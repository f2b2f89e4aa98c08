"""Who is signed in, and the console's defences: the token in an HttpOnly SameSite=Strict cookie,
a CSRF token for every state-changing request, and strict security headers on every console response.

The CSRF token is bound to the session: HMAC(signing key, SHA-256(session token)). Pages carry it in a
hidden form field and in `hx-headers` (htmx requests); a POST without the right one is refused (403),
whatever its cookies. The login form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.responses import Response

from aietl.services.console.client import Api, ApiError

SESSION_COOKIE = "aietl_console"
LOGIN_COOKIE = "aietl_console_login"
COOKIE_PATH = "/console"
STATIC_PATH = "/console/static/"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """No valid session: the console sends the browser to the login page."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


def csrf_token(secret: str, session_token: str) -> str:
    digest = hashlib.sha256(session_token.encode()).digest()
    return hmac.new(secret.encode(), b"aietl-console-csrf\0" + digest, hashlib.sha256).hexdigest()


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_is_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_is_https(request)
    )


def new_login_nonce() -> str:
    return secrets.token_urlsafe(32)


async def form_fields(request: Request) -> dict[str, list[str]]:
    """The urlencoded form of the request (the body size is bounded by the gateway), read once."""
    cached = getattr(request.state, "console_form", None)
    if cached is None:
        body = (await request.body()).decode("utf-8", errors="replace")
        cached = {}
        for key, value in parse_qsl(body, keep_blank_values=True, max_num_fields=5_000):
            cached.setdefault(key, []).append(value)
        request.state.console_form = cached
    return cached


@dataclass
class Console:
    """What every page knows: the API client of the user, who they are, the project in view."""

    request: Request
    api: Api
    username: str
    is_admin: bool
    projects: list[str]
    project: str | None
    csrf: str
    notices: list[str] = field(default_factory=list)

    def url(self, path: str, **params: Any) -> str:
        """A console URL that keeps the project in view."""
        query = {"project_id": self.project, **params}
        pairs = [(k, v) for k, v in query.items() if v is not None and v != ""]
        if not pairs:
            return path
        return path + "?" + "&".join(f"{quote(str(k))}={quote(str(v), safe='')}" for k, v in pairs)

    async def form(self) -> dict[str, list[str]]:
        return await form_fields(self.request)

    async def field(self, name: str, default: str = "") -> str:
        values = (await self.form()).get(name)
        return values[-1] if values else default


async def open_console(request: Request) -> Console:
    """The signed-in user's console (LoginRequired without a valid session token); checks the CSRF
    token of state-changing requests (CsrfRefused)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    api = Api(request, token)
    try:
        me = await api.get("/api/v1/auth/me")
        projects = list(me["projects"])
        if me["is_admin"]:
            projects = sorted({*projects, *(p["id"] for p in await api.get("/api/v1/projects"))})
    except ApiError as error:
        await api.close()
        if error.status_code == 401:
            raise LoginRequired from None
        raise
    _, secret = request.app.state.authenticator.keys.current  # the signing key: CSRF tokens follow rotation
    expected = csrf_token(secret, token)
    if request.method in STATE_CHANGING:
        sent = [request.headers.get(CSRF_HEADER, ""), *(await form_fields(request)).get(CSRF_FIELD, [])]
        if not any(hmac.compare_digest(token.encode(), expected.encode()) for token in sent):
            await api.close()
            raise CsrfRefused
    wanted = request.query_params.get("project_id")
    project = wanted if wanted in projects else (projects[0] if projects else None)
    return Console(request, api, me["username"], bool(me["is_admin"]), projects, project, expected)


async def console_session(request: Request) -> AsyncIterator[Console]:
    console = await open_console(request)
    try:
        yield console
    finally:
        await console.api.close()


ConsoleDep = Annotated[Console, Depends(console_session)]


class SecurityHeaders:
    """Pure ASGI middleware: the console's security headers on every response under /console."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(COOKIE_PATH):
            await self.app(scope, receive, send)
            return

        static = scope["path"].startswith(STATIC_PATH)  # versioned files: the browser may keep them

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *(
                        (n, v)
                        for n, v in SECURITY_HEADERS
                        if n not in present and not (static and n == b"cache-control")
                    ),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
