"""Python clients for the feature store REST API (sync and async, httpx).

    client = FeatureClient("http://127.0.0.1:8000", token=token, project_id="shop")
    client.get_online(["user_transaction_count_7d"], ["user_123"])

Errors raise `httpx.HTTPStatusError` carrying the API's message. Services running in the same
process as the store can skip HTTP and call `FeatureStore.get_online` (see `component.feature_store`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

PREFIX = "/api/v1/advanced/features"


def _rows(values: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**value, "timestamp": value["timestamp"].isoformat()}
        if isinstance(value.get("timestamp"), datetime)
        else dict(value)
        for value in values
    ]


class _Requests:
    """The API's requests as (method, path, json): shared by both clients so they cannot drift."""

    @staticmethod
    def register(**definition: Any) -> tuple[str, str, Any]:
        return "POST", "/register", definition

    @staticmethod
    def register_view(**definition: Any) -> tuple[str, str, Any]:
        return "POST", "/feature-views", definition

    @staticmethod
    def register_on_demand(**definition: Any) -> tuple[str, str, Any]:
        return "POST", "/on-demand-views", definition

    @staticmethod
    def write(values: Sequence[Mapping[str, Any]], storage: str) -> tuple[str, str, Any]:
        return "POST", "/write", {"features": _rows(values), "storage": storage}

    @staticmethod
    def get_online(
        feature_names: Sequence[str], entity_ids: Sequence[str], request_data: Mapping[str, Any] | None
    ) -> tuple[str, str, Any]:
        body: dict[str, Any] = {"feature_names": list(feature_names), "entity_ids": list(entity_ids)}
        if request_data:
            body["request_data"] = dict(request_data)
        return "POST", "/get-online", body

    @staticmethod
    def historical(
        feature_names: Sequence[str], entity_rows: Sequence[Mapping[str, Any]]
    ) -> tuple[str, str, Any]:
        return (
            "POST",
            "/historical",
            {"feature_names": list(feature_names), "entity_rows": _rows(entity_rows)},
        )

    @staticmethod
    def materialize(
        feature_view: str, start: datetime | None, end: datetime | None, incremental: bool
    ) -> tuple[str, str, Any]:
        body: dict[str, Any] = {"feature_view": feature_view, "incremental": incremental}
        if start is not None and end is not None:
            body |= {"start": start.isoformat(), "end": end.isoformat()}
        return "POST", "/materialize", body

    @staticmethod
    def describe(name: str) -> tuple[str, str, Any]:
        return "GET", f"/features/{name}", None


def _options(token: str | None, project_id: str | None) -> dict[str, Any]:
    return {
        "headers": {"Authorization": f"Bearer {token}"} if token else {},
        "params": {"project_id": project_id} if project_id else {},
    }


class FeatureClient:
    """Synchronous client; `http` may be given (e.g. with a transport) instead of `base_url`."""

    def __init__(
        self,
        base_url: str = "",
        *,
        token: str | None = None,
        project_id: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.http = http or httpx.Client(base_url=base_url, timeout=30.0)
        self._options = _options(token, project_id)

    def _call(self, request: tuple[str, str, Any]) -> Any:
        method, path, body = request
        response = self.http.request(method, PREFIX + path, json=body, **self._options)
        response.raise_for_status()
        return response.json()

    def register(self, **definition: Any) -> Any:
        return self._call(_Requests.register(**definition))

    def register_view(self, **definition: Any) -> Any:
        return self._call(_Requests.register_view(**definition))

    def register_on_demand(self, **definition: Any) -> Any:
        return self._call(_Requests.register_on_demand(**definition))

    def write(self, values: Sequence[Mapping[str, Any]], storage: str = "both") -> Any:
        return self._call(_Requests.write(values, storage))

    def get_online(
        self,
        feature_names: Sequence[str],
        entity_ids: Sequence[str],
        request_data: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return self._call(_Requests.get_online(feature_names, entity_ids, request_data))["feature_vectors"]

    def historical(
        self, feature_names: Sequence[str], entity_rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        return self._call(_Requests.historical(feature_names, entity_rows))["rows"]

    def materialize(
        self,
        feature_view: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        incremental: bool = False,
    ) -> Any:
        return self._call(_Requests.materialize(feature_view, start, end, incremental))

    def describe(self, name: str) -> Any:
        return self._call(_Requests.describe(name))

    def close(self) -> None:
        self.http.close()


class AsyncFeatureClient:
    """The same API for async code."""

    def __init__(
        self,
        base_url: str = "",
        *,
        token: str | None = None,
        project_id: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self._options = _options(token, project_id)

    async def _call(self, request: tuple[str, str, Any]) -> Any:
        method, path, body = request
        response = await self.http.request(method, PREFIX + path, json=body, **self._options)
        response.raise_for_status()
        return response.json()

    async def register(self, **definition: Any) -> Any:
        return await self._call(_Requests.register(**definition))

    async def register_view(self, **definition: Any) -> Any:
        return await self._call(_Requests.register_view(**definition))

    async def register_on_demand(self, **definition: Any) -> Any:
        return await self._call(_Requests.register_on_demand(**definition))

    async def write(self, values: Sequence[Mapping[str, Any]], storage: str = "both") -> Any:
        return await self._call(_Requests.write(values, storage))

    async def get_online(
        self,
        feature_names: Sequence[str],
        entity_ids: Sequence[str],
        request_data: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return (await self._call(_Requests.get_online(feature_names, entity_ids, request_data)))[
            "feature_vectors"
        ]

    async def historical(
        self, feature_names: Sequence[str], entity_rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        return (await self._call(_Requests.historical(feature_names, entity_rows)))["rows"]

    async def materialize(
        self,
        feature_view: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        incremental: bool = False,
    ) -> Any:
        return await self._call(_Requests.materialize(feature_view, start, end, incremental))

    async def describe(self, name: str) -> Any:
        return await self._call(_Requests.describe(name))

    async def aclose(self) -> None:
        await self.http.aclose()
