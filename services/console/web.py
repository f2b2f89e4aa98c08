"""Mounts the console on the gateway: sign-in and sign-out, the pages, static files, the headers."""

from __future__ import annotations

import hmac
from functools import cache
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pygments.formatters import HtmlFormatter

from aietl.services.console.client import Api, ApiError
from aietl.services.console.pages import drift, features, overview, pipelines, predict, vectors
from aietl.services.console.rendering import HERE, render_plain
from aietl.services.console.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleDep,
    CsrfRefused,
    LoginRequired,
    SecurityHeaders,
    clear_cookie,
    form_fields,
    new_login_nonce,
    set_cookie,
)

LOGIN_NONCE_SECONDS = 3_600


router = APIRouter(prefix="/console", include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a console path of this site (no scheme, no host, no `//`): never an open redirect."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> Response:
    nonce = new_login_nonce()
    response = render_plain("login.html", nonce=nonce, next=_safe_next(next), error=None, username="")
    set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_NONCE_SECONDS)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await form_fields(request)

    def field(name: str) -> str:
        return form.get(name, [""])[-1]

    target = _safe_next(field("next"))
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), field("login_nonce").encode()):
        return _login_again(
            request, target, field("username"), "The sign-in form expired; please try again.", 403
        )
    api = Api(request, "")
    try:
        answer = await api.post(
            "/api/v1/auth/login", {"username": field("username"), "password": field("password")}
        )
    except ApiError as error:
        message = "Wrong username or password." if error.status_code in (401, 422) else error.message
        return _login_again(request, target, field("username"), message, error.status_code)
    finally:
        await api.close()
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    set_cookie(response, request, SESSION_COOKIE, answer["access_token"], int(answer["expires_in"]))
    clear_cookie(response, request, LOGIN_COOKIE)
    return response


def _login_again(request: Request, target: str, username: str, error: str, status_code: int) -> Response:
    nonce = new_login_nonce()
    response = render_plain(
        "login.html", nonce=nonce, next=target, error=error, username=username, status_code=status_code
    )
    set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_NONCE_SECONDS)
    return response


@router.post("/logout")
async def logout(request: Request, _console: ConsoleDep) -> Response:
    response = RedirectResponse("/console/login", status_code=status.HTTP_303_SEE_OTHER)
    clear_cookie(response, request, SESSION_COOKIE)
    return response


@cache
def _highlight_css() -> str:
    return str(HtmlFormatter(style="default").get_style_defs(".highlight"))


@router.get("/assets/highlight.css")
async def highlight_css() -> Response:
    """The syntax highlighter's classes (a stylesheet: the CSP allows no inline styles)."""
    return Response(_highlight_css(), media_type="text/css", headers={"Cache-Control": "max-age=3600"})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def sign_in_first(request: Request, _error: LoginRequired) -> Response:
        target = "/console/login?next=" + quote(_safe_next(request.url.path), safe="/")
        if request.headers.get("hx-request"):
            return Response(status_code=200, headers={"HX-Redirect": target})
        response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
        clear_cookie(response, request, SESSION_COOKIE)
        return response

    @app.exception_handler(CsrfRefused)
    async def refused(_request: Request, _error: CsrfRefused) -> Response:
        return render_plain(
            "error.html",
            status_code=status.HTTP_403_FORBIDDEN,
            heading="Refused",
            message="This form is not from your current console session (the CSRF token is missing or "
            "wrong). Reload the page and try again.",
        )

    @app.exception_handler(ApiError)
    async def api_refused(_request: Request, error: ApiError) -> Response:
        return render_plain(
            "error.html",
            status_code=error.status_code,
            heading="Not available" if error.status_code == 404 else "The API refused",
            message=error.message,
        )


def mount_console(app: FastAPI) -> None:
    app.include_router(router)
    for page in (overview, drift, features, pipelines, predict, vectors):
        app.include_router(page.router, prefix="/console", include_in_schema=False)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_middleware(SecurityHeaders)
    _add_error_handlers(app)
