"""Attacks by an ordinary project member on what the platform does for them: requests it makes to
addresses they choose (SSRF), local paths they choose, and work they can make it do.

- Outbound: a gateway without an allow-list (the default) refuses connectors, embedding endpoints
  and observed databases that point at the cloud metadata address, loopback, private networks or a
  path outside the data directory, with a 4xx naming the host, and without sending them a byte. A
  store that answers garbage is described by the kind of failure only, never by what it said.
- Bounds: expression, filter and ingestion bombs are refused fast with a 4xx naming the limit, and
  while the largest allowed read computes, the gateway's `/health` keeps answering within 100 ms.
"""

from __future__ import annotations

import asyncio
import gc
import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from aietl.services.gateway.app import create_app
from aietl.services.runtime import Runtime
from aietl.shared.embedded_broker import free_port
from aietl.shared.outbound import (
    OutboundPolicy,
    OutboundRefused,
    PathRefused,
    checked_database_url,
    checked_transport,
    inside,
)
from aietl.shared.settings import Settings
from tests.vector_sink.test_domain import nested_filter

CANARY = f"CANARY-{uuid.uuid4().hex}"
HEALTH_BUDGET_SECONDS = 0.1


class Canary:
    """A loopback HTTP server that answers every request with a secret and counts the requests."""

    def __init__(self) -> None:
        self.requests = 0  # connections accepted, whatever they said
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def setup(self) -> None:
                owner.requests += 1
                super().setup()

            def _answer(self) -> None:
                body = f'{{"secret": "{CANARY}", "error": "{CANARY}"}}'.encode()
                self.send_response(500)
                self.send_header("content-type", "application/json")
                self.send_header("x-canary", CANARY)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    server = Canary()
    yield server
    server.close()


@pytest.fixture(scope="module")
async def strict(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway on the session's database as an operator deploys it: no outbound allow-list."""
    settings = runtime.settings.model_copy(update={"outbound_allowed_hosts": []})
    own = Runtime(settings, client_id="aietl-attacks")
    transport = httpx.ASGITransport(app=create_app(own, owns_runtime=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as http:
        yield http
    await own.close()


def _no_echo(response: httpx.Response) -> None:
    assert CANARY not in response.text and CANARY not in str(response.headers)


# --- outbound requests ---------------------------------------------------------------------------


def hostile_connectors(port: int) -> list[tuple[str, dict]]:
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    return [
        ("milvus", {"uri": metadata}),
        ("milvus", {"uri": f"http://127.0.0.1:{port}"}),
        ("milvus", {"uri": f"http://localhost:{port}"}),
        ("milvus", {"uri": f"http://[::1]:{port}"}),
        ("milvus", {"uri": f"http://[::ffff:127.0.0.1]:{port}"}),
        ("milvus", {"uri": "http://2130706433:6379"}),  # 127.0.0.1 written as one number
        ("milvus", {"uri": "http://10.0.0.1:19530"}),
        ("milvus", {"host": "127.0.0.1", "port": 6379}),  # the platform's Redis
        ("milvus", {"host": "169.254.169.254", "port": 80}),
        ("weaviate", {"url": f"http://127.0.0.1:{port}"}),
        ("weaviate", {"url": "http://metadata.google.internal/computeMetadata/v1/"}),
        ("pinecone", {"index_host": f"http://127.0.0.1:{port}", "api_key": "k"}),
        ("pinecone", {"index_name": "i", "control_host": "http://169.254.169.254", "api_key": "k"}),
        (
            "milvus",
            {
                "embedding_provider": "openai",
                "embedding_base_url": f"http://127.0.0.1:{port}/v1",
                "embedding_dimension": 8,
            },
        ),
    ]


async def test_connectors_cannot_point_at_internal_addresses(
    strict: httpx.AsyncClient, auth: dict[str, str], canary: Canary
) -> None:
    for store_type, config in hostile_connectors(canary.port):
        body = {"name": f"ssrf-{uuid.uuid4().hex[:8]}", "type": store_type, "config": config}
        started = time.perf_counter()
        response = await strict.post("/api/v1/connectors", json=body, headers=auth)
        assert response.status_code == 422, (config, response.status_code, response.text)
        assert "not allowed" in response.json()["detail"], response.text
        assert time.perf_counter() - started < 5, config
        _no_echo(response)
    assert canary.requests == 0, "a refused destination was contacted"


@pytest.mark.parametrize(
    "uri", ["/etc/passwd", "../../../../etc/passwd", "milvus/../../outside.db", "~/vectors.db"]
)
async def test_milvus_lite_files_stay_in_the_data_directory(
    strict: httpx.AsyncClient, auth: dict[str, str], uri: str
) -> None:
    body = {"name": f"path-{uuid.uuid4().hex[:8]}", "type": "milvus", "config": {"uri": uri}}
    response = await strict.post("/api/v1/connectors", json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert "data directory" in response.json()["detail"]


def test_a_symbolic_link_out_of_the_data_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "escape").symlink_to("/etc")
    assert inside(data, "milvus/vectors.db") == (data / "milvus" / "vectors.db").resolve()
    with pytest.raises(PathRefused):
        inside(data, "escape/passwd")


async def test_connections_already_stored_are_checked_again_and_never_echoed(
    client: httpx.AsyncClient, strict: httpx.AsyncClient, auth: dict[str, str], canary: Canary
) -> None:
    """A connector saved while its host was allowed (the session gateway allows loopback) is refused
    by a gateway that does not allow it, before any request; where it is allowed and the server
    answers, the answer stays out of the error."""
    body = {
        "name": f"echo-{uuid.uuid4().hex[:8]}",
        "type": "weaviate",
        "config": {"url": f"http://127.0.0.1:{canary.port}", "grpc_port": free_port()},
    }
    created = await client.post("/api/v1/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.text
    url = f"/api/v1/connectors/{created.json()['id']}/test"

    refused = await strict.post(url, headers=auth)
    assert refused.status_code == 200 and refused.json()["ok"] is False
    assert "not allowed" in refused.json()["error"]
    assert canary.requests == 0

    answered = await client.post(url, headers=auth)
    assert answered.status_code == 200 and answered.json()["ok"] is False, answered.text
    assert canary.requests > 0, f"the allowed store was not contacted: {answered.text}"
    _no_echo(answered)
    await client.delete(f"/api/v1/connectors/{created.json()['id']}", headers=auth)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@169.254.169.254:5432/postgres",
        "postgresql://postgres@127.0.0.1:5432/postgres",  # the platform's own server
        "postgresql://postgres@localhost/postgres",
        "postgresql://postgres@allowed.example/db?host=127.0.0.1",
        "postgresql:///postgres?host=/var/run/postgresql",
        "sqlite:////etc/passwd",
        "sqlite:///../../../../etc/passwd",
        "sqlite:///file:/etc/passwd?uri=true",
    ],
)
async def test_schema_observation_cannot_reach_internal_databases(
    strict: httpx.AsyncClient, auth: dict[str, str], url: str
) -> None:
    body = {"connector_id": "ssrf", "tables": ["users"], "url": url, "samples": 100}
    response = await strict.post("/api/v1/advanced/schema-drift/observe", json=body, headers=auth)
    assert response.status_code == 422, response.text
    [problem] = response.json()["errors"]
    assert problem["pointer"] == "/body/url" and problem["message"], problem


def test_the_platform_database_cannot_be_observed(tmp_path: Path) -> None:
    """Its users table holds password hashes: reading its samples would publish them."""
    settings = Settings(data_dir=tmp_path)  # aietl up's default: SQLite in the data directory
    for url in (settings.resolved_database_url.replace("+aiosqlite", ""), "sqlite:///aietl.db"):
        with pytest.raises(PathRefused, match="own database"):
            checked_database_url(url, OutboundPolicy([]), settings)
    source = checked_database_url("sqlite:///sources/shop.db", OutboundPolicy([]), settings)
    assert source == f"sqlite:///{tmp_path.resolve() / 'sources' / 'shop.db'}"


def test_names_are_checked_after_resolution() -> None:
    """An allowed name that resolves to loopback (or a rebinding one) is refused; an operator's exact
    name or network is trusted; ports are part of an entry."""
    anything_public = OutboundPolicy(["*"])
    with pytest.raises(OutboundRefused, match="loopback, private or link-local"):
        anything_public.check("localhost", 80)
    for address in ("127.0.0.1", "169.254.169.254", "10.1.2.3", "::1", "fd00::1", "100.64.0.1"):
        with pytest.raises(OutboundRefused):
            anything_public.check(address, 80)
    assert OutboundPolicy(["localhost:8080"]).check("localhost", 8080).addresses[0] in ("127.0.0.1", "::1")
    with pytest.raises(OutboundRefused):
        OutboundPolicy(["localhost:8080"]).check("localhost", 6379)
    assert OutboundPolicy(["10.0.0.0/8"]).check("10.2.3.4", 443).addresses == ("10.2.3.4",)


def test_http_clients_connect_only_to_the_checked_address(canary: Canary) -> None:
    """The embedding client resolves and checks every connection itself (no second lookup that a
    rebinding DNS could answer differently)."""
    allowed = httpx.Client(transport=checked_transport(OutboundPolicy([f"127.0.0.1:{canary.port}"])))
    before = canary.requests
    assert allowed.get(f"http://127.0.0.1:{canary.port}/").status_code == 500
    assert canary.requests == before + 1
    refused = httpx.Client(transport=checked_transport(OutboundPolicy([f"127.0.0.1:{canary.port + 1}"])))
    with pytest.raises(httpx.ConnectError, match="not allowed"):
        refused.get(f"http://localhost:{canary.port}/")
    assert canary.requests == before + 1


# --- bounded work --------------------------------------------------------------------------------


async def _register(
    client: httpx.AsyncClient, headers: dict[str, str], project: str, expression: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/advanced/features/on-demand-views",
        params={"project_id": project},
        json={
            "name": f"od_{uuid.uuid4().hex[:8]}",
            "request_schema": {"a": "float64", "s": "string", "n": "int64"},
            "outputs": {f"out_{uuid.uuid4().hex[:6]}": {"feature_type": "float64", "expression": expression}},
        },
        headers=headers,
    )


@pytest.mark.parametrize(
    "expression",
    [
        "9 ** 9 ** 9",
        "2 ** 64 ** 64",
        "a + 10 ** 100000",
        "a + round(1.5, -10 ** 9)",
        "len('x' * 10 ** 12)",
        "len('%999999999s' % 'x')",
        "len('x' * 9999 + 'x' * 9999)",
        " + ".join(["a"] * 300),
        "-" * 500 + "a",
        "(" * 300 + "a" + ")" * 300,
    ],
)
async def test_expression_bombs_are_refused_at_registration(
    client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]], expression: str
) -> None:
    project, headers = project_user
    started = time.perf_counter()
    response = await _register(client, headers, project, expression)
    elapsed = time.perf_counter() - started
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert elapsed < 1.0, f"{expression[:40]!r} took {elapsed:.2f}s to refuse"


def _online_body(names: list[str], entities: int, data: dict) -> bytes:
    """Encoded before the request: the in-process test client's own work is not what is measured."""
    body = {"feature_names": names, "entity_ids": [f"e{i}" for i in range(entities)], "request_data": data}
    return json.dumps(body).encode()


async def _online(
    client: httpx.AsyncClient, headers: dict[str, str], project: str, body: bytes
) -> httpx.Response:
    return await client.post(
        "/api/v1/advanced/features/get-online",
        params={"project_id": project},
        content=body,
        headers={**headers, "content-type": "application/json"},
    )


@pytest.mark.parametrize(
    ("expression", "data", "named"),
    [
        ("n ** n", {"n": 10**9}, "integer larger than"),
        ("len(s * n)", {"s": "ab", "n": 10**9}, "text longer than"),
        ("round(a, n)", {"a": 1.5, "n": -(10**9)}, "round to more than"),
    ],
)
async def test_bombs_in_request_data_are_refused_at_read(
    client: httpx.AsyncClient,
    project_user: tuple[str, dict[str, str]],
    expression: str,
    data: dict,
    named: str,
) -> None:
    project, headers = project_user
    registered = await _register(client, headers, project, expression)
    assert registered.status_code == 201, registered.text
    output = next(iter(registered.json()["outputs"]))
    started = time.perf_counter()
    response = await _online(client, headers, project, _online_body([output], 3, data))
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"]
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "data",
    [
        {"deep": [[[[1]]]]},
        {"big": list(range(10_000))},
        {"long": "x" * 20_000},
        {f"k{i}": i for i in range(300)},
    ],
    ids=["nested", "long_list", "long_text", "many_keys"],
)
async def test_request_data_is_flat_and_bounded(
    client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]], data: dict
) -> None:
    project, headers = project_user
    response = await _online(client, headers, project, _online_body(["anything"], 1, data))
    assert response.status_code == 422, response.text


async def _max_latency(client: httpx.AsyncClient, while_running: asyncio.Task) -> list[float]:
    """How long a `/health` probe waited, probe after probe, until `while_running` is done (warm
    the route up before): its answer time plus how late the loop woke the prober for the next one,
    so a loop blocked between two probes counts too."""
    latencies = []
    interval = 0.01
    while not while_running.done():
        started = time.perf_counter()
        assert (await client.get("/health")).status_code == 200
        answered = time.perf_counter()
        await asyncio.sleep(interval)
        latencies.append(answered - started + max(0.0, time.perf_counter() - answered - interval))
    return latencies


def _p95(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


async def _idle_p95(client: httpx.AsyncClient) -> float:
    """`/health` latency with nothing else running in this process: what the machine gives now."""
    idle = asyncio.create_task(asyncio.sleep(0.5))
    return _p95(await _max_latency(client, idle))


def _assert_responsive(what: str, latencies: list[float], seconds: float, idle: float) -> None:
    """95 % of the probes within 100 ms (or twice what an idle gateway gets from a machine loaded
    by other processes, if more), and none waiting for a third of the whole operation: work on
    the event loop shows as one probe waiting for all of it (a 2.5 s wait before the fix)."""
    budget = max(HEALTH_BUDGET_SECONDS, 2 * idle)
    print(
        f"\n{what}: {seconds:.2f} s, {len(latencies)} /health probes, p95 {_p95(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms (idle p95 {idle * 1000:.0f} ms)"
    )
    assert _p95(latencies) <= budget and max(latencies) < seconds / 3, sorted(latencies)[-10:]


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """As `aietl` processes do after start-up (`gc.freeze`): the collector's full passes over the
    test session's millions of objects would otherwise be measured as blocking."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("frozen_heap")
async def test_the_largest_on_demand_read_does_not_block_the_gateway(
    client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]]
) -> None:
    """10,000 entities x an expression of 125 nodes (near the 128 allowed): computed off the event
    loop, within a time budget (a 422 when it is spent); meanwhile `/health` answers within 100 ms."""
    project, headers = project_user
    expression = " + ".join(["max(a, 1) * 2"] * 18)
    registered = await _register(client, headers, project, expression)
    assert registered.status_code == 201, registered.text
    output = next(iter(registered.json()["outputs"]))
    body = _online_body([output], 10_000, {"a": 1.5})
    assert (await client.get("/health")).status_code == 200  # a first call pays for warming up
    idle = await _idle_p95(client)
    started = time.perf_counter()
    read = asyncio.create_task(_online(client, headers, project, body))
    await asyncio.sleep(0)  # the read starts first
    latencies = await _max_latency(client, read)
    response = read.result()
    seconds = time.perf_counter() - started
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert "took more than" in response.json()["detail"]
    else:
        assert response.json()["feature_vectors"][0]["features"][output] == 54.0
    _assert_responsive("on-demand read of 10,000 entities", latencies, seconds, idle)


@pytest.mark.parametrize(
    "spec",
    [
        nested_filter(200),
        {"year": {"$in": list(range(50_000))}},
        {"$or": [{"year": i} for i in range(5_000)]},
        {"name": "x" * 100_000},
    ],
    ids=["deep", "huge_in", "many_conditions", "long_value"],
)
async def test_vector_filter_bombs_are_refused_fast(
    client: httpx.AsyncClient, auth: dict[str, str], spec: dict
) -> None:
    body = {"connector_id": "any", "collection": "docs", "query": "x", "filter": spec}
    created = await client.post(
        "/api/v1/connectors",
        json={"name": f"f-{uuid.uuid4().hex[:8]}", "type": "milvus", "config": {}},
        headers=auth,
    )
    body["connector_id"] = created.json()["id"]
    started = time.perf_counter()
    response = await client.post("/api/v1/advanced/vectors/search", json=body, headers=auth)
    assert response.status_code == 422 and response.json()["detail"].startswith("filter:"), response.text
    assert time.perf_counter() - started < 1.0


@pytest.mark.usefixtures("frozen_heap")
async def test_documents_that_would_cost_too_much_are_rejected_and_ingestion_runs_off_the_loop(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A 2 MB text cut in 16-character chunks would be 125,000 chunks (5 s of chunking on the event
    loop before): rejected by name; the largest document that passes is chunked in a thread."""
    created = await client.post(
        "/api/v1/connectors",
        json={
            "name": f"bulk-{uuid.uuid4().hex[:8]}",
            "type": "milvus",
            "config": {"chunk_size": 16, "chunk_overlap": 0},
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    connector = created.json()["id"]
    collection = f"bulk_{uuid.uuid4().hex[:6]}"
    first = {"connector_id": connector, "collection": collection, "documents": [{"doc_id": "a", "text": "a"}]}
    assert (await client.post("/api/v1/advanced/vectors/ingest", json=first, headers=auth)).status_code == 200
    documents = [
        {"doc_id": "huge", "text": "word " * 400_000},
        {"doc_id": "fields", "text": "ok", "metadata": {f"m{i}": i for i in range(100)}},
        {"doc_id": "long_field", "text": "ok", "metadata": {"note": "x" * 10_000}},
    ]
    body = {"connector_id": connector, "collection": collection, "documents": documents}
    started = time.perf_counter()
    response = await client.post("/api/v1/advanced/vectors/ingest", json=body, headers=auth)
    assert response.status_code == 200, response.text
    reasons = {item["doc_id"]: item["reason"] for item in response.json()["rejected"]}
    assert "more than 4096 chunks" in reasons["huge"]
    assert "more than 64 fields" in reasons["fields"]
    assert "longer than 8192 characters" in reasons["long_field"]
    assert time.perf_counter() - started < 2

    largest = {"doc_id": "largest", "text": " ".join(f"w{i % 97}" for i in range(5_000))}  # ~4,000 chunks
    body = {"connector_id": connector, "collection": collection, "documents": [largest]}
    assert (await client.get("/health")).status_code == 200
    idle = await _idle_p95(client)
    started = time.perf_counter()
    ingest = asyncio.create_task(client.post("/api/v1/advanced/vectors/ingest", json=body, headers=auth))
    await asyncio.sleep(0)
    latencies = await _max_latency(client, ingest)
    assert ingest.result().status_code == 200, ingest.result().text
    assert ingest.result().json()["rejected"] == []
    _assert_responsive("largest document ingest", latencies, time.perf_counter() - started, idle)
    await client.delete(f"/api/v1/connectors/{connector}", headers=auth)


def test_dns_lookup_of_an_unknown_name_is_a_refusal_not_an_error() -> None:
    with pytest.raises(OutboundRefused, match="cannot be resolved"):
        OutboundPolicy(["*.invalid"]).check(f"{uuid.uuid4().hex}.invalid", 443)
    assert socket.gethostbyname("localhost")  # the sandbox can resolve at all
