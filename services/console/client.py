"""The console's way to the REST API: the same app, called in-process (no network hop) with the
signed-in user's bearer token, so authentication, project scoping, roles and validation are the API's."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Request

INTERNAL_BASE_URL = "http://console.internal"
TIMEOUT_SECONDS = 120.0


class ApiError(Exception):
    """The API answered 4xx or 5xx; `message` says why in words a person can read."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"{status_code}: {describe(detail)}")
        self.status_code = status_code
        self.detail = detail

    @property
    def message(self) -> str:
        return describe(self.detail)


def describe(answer: Any) -> str:
    """An error answer as one line: the `detail` of the API's one error body
    (`aietl.shared.errors.ErrorBody`), or the text of an answer that is not JSON."""
    if isinstance(answer, dict) and isinstance(answer.get("detail"), str):
        return answer["detail"]
    return str(answer)


class Api:
    """One per console request; `await api.get(path, **params)` returns the decoded JSON body."""

    def __init__(self, request: Request, token: str) -> None:
        client = request.client
        address = (client.host, client.port) if client is not None else ("127.0.0.1", 0)
        # The caller's own address, so that the API's per-client login throttle sees the real client.
        transport = httpx.ASGITransport(app=request.app, client=address)
        self._http = httpx.AsyncClient(
            transport=transport,
            base_url=INTERNAL_BASE_URL,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=TIMEOUT_SECONDS,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = await self._http.request(method, path, params=query, json=json)
        if response.status_code >= 400:
            try:
                detail = response.json()
            except ValueError:
                detail = response.text[:500]
            raise ApiError(response.status_code, detail)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return await self.call("POST", path, params=params, json=body if body is not None else {})

    async def put(self, path: str, body: Any, **params: Any) -> Any:
        return await self.call("PUT", path, params=params, json=body)
