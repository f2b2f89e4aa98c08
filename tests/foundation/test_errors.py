"""One error family, one body: every refusal of the gateway (a service's NotFound, Conflict, Invalid,
Unavailable, FastAPI's own validation, the gateway's 401) answers `{detail, errors, context}`, and
the OpenAPI document says so."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from aietl.shared.errors import ErrorBody, Invalid, NotFound, Problem, pointer
from tests.predict.test_api import runs_payload

API = "/api/v1/advanced"
ONE_SHAPE = {"detail", "errors", "context"}


def refusal(response: httpx.Response, status: int) -> dict[str, Any]:
    """The body of a refusal with `status`, checked to be the one error body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ONE_SHAPE, body
    assert isinstance(body["detail"], str) and body["detail"], body
    ErrorBody.model_validate(body)
    return body


def test_errors_carry_their_status_and_locate_problems_by_json_pointer() -> None:
    assert (NotFound("x").status, Invalid("x").status) == (404, 422)
    assert Invalid("bad type", at="/body/columns/3/type").body().errors == [
        Problem("/body/columns/3/type", "bad type")
    ]
    fields = Invalid.of_fields([{"loc": ("columns", 3, "a/b~c"), "msg": "Field required"}], "body")
    assert fields.body().errors == [Problem("/body/columns/3/a~1b~0c", "Field required")]
    assert str(fields) == "body.columns.3.a/b~c: Field required"
    assert pointer() == ""


async def test_not_found_from_two_services(client: httpx.AsyncClient, project_user) -> None:
    _, headers = project_user
    feature = await client.get(f"{API}/features/features/nope_{uuid.uuid4().hex[:6]}", headers=headers)
    assert refusal(feature, 404)["detail"].startswith("unknown feature")
    instance = await client.get(f"{API}/templates/instances/{uuid.uuid4()}", headers=headers)
    assert "not found" in refusal(instance, 404)["detail"]
    connector = await client.get(f"/api/v1/connectors/{uuid.uuid4()}", headers=headers)
    assert refusal(connector, 404)["errors"] == []


async def test_conflict_from_two_services(client: httpx.AsyncClient, project_user) -> None:
    project, headers = project_user
    entry = {
        "source_system": "crm",
        "source_object": "public.orders",
        "target_system": "warehouse",
        "target_object": f"public.orders_{uuid.uuid4().hex[:6]}",
        "template_id": "incremental_postgres",
        "load_type": "incremental",
    }
    assert (
        await client.post(f"{API}/templates/control-table", json=entry, headers=headers)
    ).status_code == 201
    duplicate = await client.post(f"{API}/templates/control-table", json=entry, headers=headers)
    assert refusal(duplicate, 409)["detail"].startswith("an entry already writes warehouse.")

    runs = runs_payload(project, pipelines=1, days=1, seed=5)
    stored = await client.post(
        f"{API}/predict/runs", params={"project_id": project}, json={"runs": runs}, headers=headers
    )
    assert stored.status_code == 202, stored.text
    young = await client.get(f"{API}/predict/failure/{runs[0]['pipeline_id']}", headers=headers)
    body = refusal(young, 409)
    assert "more days are needed" in body["detail"] and body["context"]["need"] == 3, body


async def test_invalid_from_two_services_points_at_the_value(client: httpx.AsyncClient, project_user) -> None:
    _, headers = project_user
    materialize = await client.post(
        f"{API}/features/materialize",
        json={"feature_view": "clicks", "end": "2026-01-01T00:00:00Z"},
        headers=headers,
    )
    body = refusal(materialize, 422)
    assert body["detail"] == "start and end are required"
    assert body["errors"] == [{"pointer": "/body/start", "message": "start and end are required"}]
    search = await client.post(
        f"{API}/vectors/search",
        json={"connector_id": "c", "collection": "docs", "query": "q", "vector": [0.1]},
        headers=headers,
    )
    assert refusal(search, 422)["errors"] == [
        {"pointer": "/body", "message": "give exactly one of query, vector"}
    ]


async def test_fastapi_validation_has_the_same_shape(client: httpx.AsyncClient, project_user) -> None:
    _, headers = project_user
    invalid = await client.post(
        f"{API}/features/get-online", json={"feature_names": [], "entity_ids": ["u1"]}, headers=headers
    )
    body = refusal(invalid, 422)
    assert [problem["pointer"] for problem in body["errors"]] == ["/body/feature_names"]
    assert body["detail"].startswith("body.feature_names: ")
    query = await client.get(
        f"{API}/features/features", params={"project_id": "bad project\x01"}, headers=headers
    )
    assert refusal(query, 422)["errors"][0]["pointer"] == "/query/project_id"
    unknown = await client.get(f"{API}/features/features", params={"zz": "1"}, headers=headers)
    assert refusal(unknown, 422)["errors"] == [{"pointer": "/query/zz", "message": "unknown"}]


async def test_unavailable_backend_and_the_gateway_own_refusals(
    client: httpx.AsyncClient, project_user
) -> None:
    _, headers = project_user
    table = f"t_{uuid.uuid4().hex[:8]}"
    columns = [{"name": "id", "type": "bigint"}, {"name": "note", "type": "text"}]
    body: dict[str, Any] = {"connector_id": "pg", "table_name": table, "current_schema": {"columns": columns}}
    await client.post(f"{API}/schema-drift/detect", json=body, headers=headers)
    body["current_schema"]["columns"] = columns[:1]
    detection = (await client.post(f"{API}/schema-drift/detect", json=body, headers=headers)).json()
    analyse = await client.post(
        f"{API}/schema-drift/detections/{detection['detection_id']}/analyse", headers=headers
    )
    assert "not configured" in refusal(analyse, 503)["detail"]
    unauthenticated = await client.get(f"{API}/features/features")
    assert refusal(unauthenticated, 401)["errors"] == []


async def test_openapi_documents_the_one_error_body(client: httpx.AsyncClient) -> None:
    document = client._transport.app.openapi()  # type: ignore[attr-defined]
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["Problem"]["properties"]) == {"pointer", "message"}
    assert set(schemas["HTTPError"]["properties"]) == set(schemas["HTTPError"]["required"]) == ONE_SHAPE
    assert schemas["HTTPError"]["properties"]["detail"]["type"] == "string"
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}}
    refusals = [
        response
        for url, path in document["paths"].items()
        if url.startswith("/api/v1/")
        for operation in path.values()
        for code, response in operation["responses"].items()
        if int(code) >= 400
    ]
    assert len(refusals) > 100 and all(response["content"] == error_body for response in refusals)
