"""REST: registration and versions, writes and online reads, on-demand views, historical retrieval,
materialisation, clear 4xx answers, project isolation, and the Python clients."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from aietl.services.features.client import AsyncFeatureClient, FeatureClient
from aietl.services.features.on_demand import transform
from tests.conftest import JWT_SECRET
from tests.support import signed_token

API = "/api/v1/advanced/features"
Headers = dict[str, str]


def ts(seconds_ago: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


async def register(client: httpx.AsyncClient, headers: Headers, name: str, **extra: object) -> dict:
    body = {
        "name": name,
        "feature_type": "int64",
        "entity": "user",
        "description": "d",
        "source": "orders",
        "ttl_seconds": 3600,
    }
    response = await client.post(f"{API}/register", json=body | extra, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_write_then_read_online_with_statuses(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    _, headers = project_user
    await register(client, headers, "user_transaction_count_7d")
    await register(client, headers, "short_lived", feature_type="float64", ttl_seconds=10)
    written = await client.post(
        f"{API}/write",
        json={
            "features": [
                {
                    "feature_name": "user_transaction_count_7d",
                    "entity_id": "user_123",
                    "value": 42,
                    "timestamp": ts(),
                },
                {"feature_name": "short_lived", "entity_id": "user_123", "value": 1.5, "timestamp": ts(60)},
            ],
            "storage": "both",
        },
        headers=headers,
    )
    assert written.status_code == 200, written.text
    assert written.json() == {"written": {"online": 2, "offline": 2}}
    response = await client.post(
        f"{API}/get-online",
        json={
            "feature_names": ["user_transaction_count_7d", "short_lived"],
            "entity_ids": ["user_123", "user_999"],
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # written already past its TTL: never served; the store may have dropped it (missing) or not (expired)
    assert body["feature_vectors"][0]["statuses"]["short_lived"] in ("expired", "missing")
    body["feature_vectors"][0]["statuses"]["short_lived"] = "expired"
    assert body == {
        "feature_vectors": [
            {
                "entity_id": "user_123",
                "features": {"user_transaction_count_7d": 42, "short_lived": None},
                "statuses": {"user_transaction_count_7d": "present", "short_lived": "expired"},
            },
            {
                "entity_id": "user_999",
                "features": {"user_transaction_count_7d": None, "short_lived": None},
                "statuses": {"user_transaction_count_7d": "missing", "short_lived": "missing"},
            },
        ]
    }


async def test_changed_definition_makes_a_version_and_refs_pick_it(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    _, headers = project_user
    first = await register(client, headers, "spend")
    same = await register(client, headers, "spend", description="only the text changed")
    second = await register(client, headers, "spend", feature_type="float64")
    assert (first["version"], first["created"]) == (1, True)
    assert (same["version"], same["created"]) == (1, False)
    assert (second["version"], second["created"]) == (2, True)
    values = [
        {"feature_name": "spend@v1", "entity_id": "u", "value": 7, "timestamp": ts()},
        {"feature_name": "spend", "entity_id": "u", "value": 7.5, "timestamp": ts()},
    ]
    assert (await client.post(f"{API}/write", json={"features": values}, headers=headers)).status_code == 200
    read = await client.post(
        f"{API}/get-online",
        json={"feature_names": ["spend@v1", "spend", "spend@v2"], "entity_ids": ["u"]},
        headers=headers,
    )
    assert read.json()["feature_vectors"][0]["features"] == {"spend@v1": 7, "spend": 7.5, "spend@v2": 7.5}
    described = (await client.get(f"{API}/features/spend", headers=headers)).json()
    assert [v["version"] for v in described["versions"]] == [1, 2]
    assert described["lineage"]["source"] == "orders"


async def test_a_registration_is_read_at_once_by_the_process_that_made_it(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    """Registering clears the store's cached definitions itself (`FeatureStore.register_*`): a write
    and a read right after a new version use it, not the version cached a moment before (for 5 s)."""
    _, headers = project_user
    await register(client, headers, "basket")
    online = {"feature_names": ["basket"], "entity_ids": ["u"]}
    assert (await client.post(f"{API}/get-online", json=online, headers=headers)).status_code == 200
    await register(client, headers, "basket", feature_type="float64")
    values = [{"feature_name": "basket", "entity_id": "u", "value": 2.5, "timestamp": ts()}]
    written = await client.post(f"{API}/write", json={"features": values}, headers=headers)
    assert written.status_code == 200, written.text
    read = await client.post(f"{API}/get-online", json=online, headers=headers)
    assert read.json()["feature_vectors"][0]["features"] == {"basket": 2.5}


async def test_bad_requests_name_the_problem(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    _, headers = project_user
    await register(client, headers, "count_a")
    cases = [
        ("/get-online", {"feature_names": ["nope"], "entity_ids": ["u"]}, 404, "nope"),
        ("/get-online", {"feature_names": [], "entity_ids": ["u"]}, 422, "feature_names"),
        ("/get-online", {"feature_names": ["count_a"], "entity_ids": []}, 422, "entity_ids"),
        ("/get-online", {"feature_names": ["count_a@v9"], "entity_ids": ["u"]}, 404, "count_a@v9"),
        (
            "/write",
            {"features": [{"feature_name": "count_a", "entity_id": "u", "value": "x", "timestamp": ts()}]},
            422,
            "int64",
        ),
        (
            "/write",
            {
                "features": [
                    {
                        "feature_name": "count_a",
                        "entity_id": "u",
                        "value": 1,
                        "timestamp": "2026-01-01T00:00:00",
                    }
                ]
            },
            422,
            "timestamp",
        ),
        ("/write", {"features": []}, 422, "features"),
        ("/historical", {"feature_names": ["count_a"], "entity_rows": []}, 422, "entity_rows"),
        ("/materialize", {"feature_view": "missing_view", "incremental": True}, 404, "missing_view"),
    ]
    for path, body, code, mention in cases:
        response = await client.post(f"{API}{path}", json=body, headers=headers)
        assert response.status_code == code, (path, body, response.text)
        assert mention in response.text, (path, response.text)
    bad_type = await client.post(
        f"{API}/register", json={"name": "x", "feature_type": "tensor", "entity": "user"}, headers=headers
    )
    assert bad_type.status_code == 422 and "feature_type" in bad_type.text


async def test_projects_do_not_see_each_others_features(
    client: httpx.AsyncClient, project_user: tuple[str, Headers], auth: Headers
) -> None:
    project, headers = project_user
    await register(client, headers, "private_feature")
    other = f"o-{uuid.uuid4().hex[:8]}"
    assert (
        await client.post("/api/v1/projects", json={"id": other, "name": other}, headers=auth)
    ).status_code == 201
    read = await client.post(
        f"{API}/get-online",
        params={"project_id": other},
        json={"feature_names": ["private_feature"], "entity_ids": ["u"]},
        headers=auth,
    )
    assert read.status_code == 404
    forbidden = await client.get(f"{API}/features", params={"project_id": other}, headers=headers)
    assert forbidden.status_code == 404
    assert [f["name"] for f in (await client.get(f"{API}/features", headers=headers)).json()["features"]] == [
        "private_feature"
    ]
    del project


async def test_remembered_tokens_keep_auth_and_isolation(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    """The gateway remembers verified tokens for a few seconds (reads are fast); a token it has
    never verified (forged, foreign, expired) is still refused, and a project stays invisible."""
    _, headers = project_user
    await register(client, headers, "remembered")
    body = {"feature_names": ["remembered"], "entity_ids": ["u"]}
    for _ in range(2):  # the second read is served with the remembered token
        read = await client.post(f"{API}/get-online", json=body, headers=headers)
        assert read.status_code == 200 and read.json()["feature_vectors"][0]["statuses"] == {
            "remembered": "missing"
        }
    claims = jwt.decode(headers["Authorization"].removeprefix("Bearer "), JWT_SECRET, algorithms=["HS256"])
    forged = signed_token({**claims, "uid": 1}, "not-the-secret-" * 4)
    expired = signed_token({**claims, "exp": int(time.time()) - 1}, JWT_SECRET)
    for token, detail in ((forged, "invalid token"), (expired, "token expired")):
        refused = await client.post(
            f"{API}/get-online", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 401 and refused.json()["detail"] == detail
    hidden = await client.post(
        f"{API}/get-online", params={"project_id": "other"}, json=body, headers=headers
    )
    assert hidden.status_code == 404


@transform("test_api_risk")
def risk(inputs):
    spend, limit = inputs.get("spend_30d"), inputs.get("credit_limit")
    return {"utilisation": None if spend is None or not limit else spend / limit}


async def test_on_demand_views_expression_and_python(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    _, headers = project_user
    view = await client.post(
        f"{API}/feature-views",
        json={
            "name": "user_spend",
            "entity": "user",
            "ttl_seconds": 3600,
            "source": "warehouse.orders",
            "owner": "risk-team",
            "tags": {"tier": "gold"},
            "features": [
                {"name": "spend_30d", "feature_type": "float64"},
                {"name": "orders_30d", "feature_type": "int64"},
            ],
        },
        headers=headers,
    )
    assert view.status_code == 201, view.text
    expression = await client.post(
        f"{API}/on-demand-views",
        json={
            "name": "basket",
            "inputs": ["spend_30d", "orders_30d"],
            "request_schema": {"amount": "float64"},
            "outputs": {
                "avg_order": {"feature_type": "float64", "expression": "spend_30d / orders_30d"},
                "amount_vs_avg": {
                    "feature_type": "float64",
                    "expression": "amount / (spend_30d / orders_30d)",
                },
            },
        },
        headers=headers,
    )
    assert expression.status_code == 201, expression.text
    python = await client.post(
        f"{API}/on-demand-views",
        json={
            "name": "risk",
            "inputs": ["spend_30d"],
            "request_schema": {"credit_limit": "float64"},
            "outputs": {"utilisation": {"feature_type": "float64"}},
            "transform": "test_api_risk",
        },
        headers=headers,
    )
    assert python.status_code == 201, python.text
    evil = await client.post(
        f"{API}/on-demand-views",
        json={
            "name": "evil",
            "inputs": ["spend_30d"],
            "outputs": {"x": {"feature_type": "int64", "expression": "__import__('os')"}},
        },
        headers=headers,
    )
    assert evil.status_code == 422 and "may only call" in evil.text
    await client.post(
        f"{API}/write",
        json={
            "features": [
                {"feature_name": "spend_30d", "entity_id": "u1", "value": 300.0, "timestamp": ts()},
                {"feature_name": "orders_30d", "entity_id": "u1", "value": 3, "timestamp": ts()},
            ]
        },
        headers=headers,
    )
    read = await client.post(
        f"{API}/get-online",
        json={
            "feature_names": ["amount_vs_avg", "avg_order", "utilisation", "spend_30d"],
            "entity_ids": ["u1", "u2"],
            "request_data": {"amount": 50.0, "credit_limit": 1000.0},
        },
        headers=headers,
    )
    assert read.status_code == 200, read.text
    first, second = read.json()["feature_vectors"]
    assert first["features"] == {
        "amount_vs_avg": 0.5,
        "avg_order": 100.0,
        "utilisation": 0.3,
        "spend_30d": 300.0,
    }
    assert second["statuses"]["avg_order"] == "missing"
    lineage = (await client.get(f"{API}/features/spend_30d", headers=headers)).json()["lineage"]
    assert sorted(lineage["read_by_on_demand_views"]) == ["basket", "risk"]
    described = (await client.get(f"{API}/feature-views/user_spend", headers=headers)).json()
    assert described["owner"] == "risk-team" and described["tags"] == {"tier": "gold"}


async def test_historical_and_materialisation_through_the_async_client(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    project, headers = project_user
    token = headers["Authorization"].removeprefix("Bearer ")
    features = AsyncFeatureClient(http=client, token=token, project_id=project)
    await features.register_view(
        name="clicks",
        entity="user",
        ttl_seconds=3600,
        features=[{"name": "clicks_1h", "feature_type": "int64"}],
    )
    now = datetime.now(UTC).replace(microsecond=0)
    await features.write(
        [
            {
                "feature_name": "clicks_1h",
                "entity_id": "u1",
                "value": 1,
                "timestamp": now - timedelta(minutes=30),
            },
            {
                "feature_name": "clicks_1h",
                "entity_id": "u1",
                "value": 2,
                "timestamp": now - timedelta(minutes=10),
            },
        ],
        storage="offline",
    )
    rows = await features.historical(
        ["clicks_1h"],
        [
            {"entity_id": "u1", "timestamp": now - timedelta(minutes=20)},
            {"entity_id": "u1", "timestamp": now - timedelta(minutes=10)},
            {"entity_id": "u1", "timestamp": now - timedelta(minutes=40)},
            {"entity_id": "u1", "timestamp": now + timedelta(hours=2)},
        ],
    )
    assert [row["features"]["clicks_1h"] for row in rows] == [1, 2, None, None]
    assert (await features.get_online(["clicks_1h"], ["u1"]))[0]["statuses"]["clicks_1h"] == "missing"
    ranged = await features.materialize("clicks", now - timedelta(hours=1), now - timedelta(minutes=15))
    assert ranged["materialized"] == 1
    assert (await features.get_online(["clicks_1h"], ["u1"]))[0]["features"]["clicks_1h"] == 1
    first = await features.materialize("clicks", incremental=True)
    assert first["materialized"] == 1
    assert (await features.get_online(["clicks_1h"], ["u1"]))[0]["features"]["clicks_1h"] == 2
    # late data: an older event written now reaches the online store's history but not its current value
    await features.write(
        [
            {
                "feature_name": "clicks_1h",
                "entity_id": "u2",
                "value": 9,
                "timestamp": now - timedelta(minutes=50),
            }
        ],
        storage="offline",
    )
    again = await features.materialize("clicks", incremental=True)
    assert again["materialized"] == 1 and again["written_after_us"] == first["written_until_us"]
    vectors = await features.get_online(["clicks_1h"], ["u1", "u2"])
    assert [v["features"]["clicks_1h"] for v in vectors] == [2, 9]


def test_sync_client_speaks_the_same_api(project_user: tuple[str, Headers]) -> None:
    """The sync client against a transport that records the request (the gateway app is async-only here)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"feature_vectors": [{"entity_id": "u", "features": {}, "statuses": {}}]}
        )

    client = FeatureClient(
        http=httpx.Client(transport=httpx.MockTransport(handler), base_url="http://x"),
        token="t",
        project_id="p",
    )
    assert client.get_online(["a"], ["u"]) == [{"entity_id": "u", "features": {}, "statuses": {}}]
    assert seen[0].url.path == f"{API}/get-online" and seen[0].url.params["project_id"] == "p"
    assert seen[0].headers["authorization"] == "Bearer t"


@pytest.mark.parametrize("storage", ["online", "offline"])
async def test_storage_type_limits_where_values_go(
    client: httpx.AsyncClient, project_user: tuple[str, Headers], storage: str
) -> None:
    _, headers = project_user
    await register(client, headers, f"only_{storage}", storage_type=storage)
    other = "offline" if storage == "online" else "online"
    wrong = await client.post(
        f"{API}/write",
        json={
            "features": [
                {"feature_name": f"only_{storage}", "entity_id": "u", "value": 1, "timestamp": ts()}
            ],
            "storage": other,
        },
        headers=headers,
    )
    assert wrong.status_code == 422 and f"only_{storage}" in wrong.text
