"""Publish the topic contracts for producers in any language: AsyncAPI (FastStream) and JSON Schema.

`aietl contracts --out docs/contracts` writes them; a test keeps the committed files in step with
the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aietl.services.runtime import WORKERS, Runtime, create_worker_router
from aietl.shared.events import CONTRACTS, DeadLetter, Topic
from aietl.shared.settings import Settings

OUTPUT_TOPICS = (Topic.DRIFT_DETECTED, Topic.PIPELINES_GENERATED, Topic.MAINTENANCE_ALERTS)


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3 document of every worker's subscriptions and every topic the platform publishes."""
    from faststream.specification import AsyncAPI

    runtime = Runtime(Settings(kafka_bootstrap_servers="kafka:9092"))
    broker = runtime.broker
    for name in WORKERS:
        broker.include_router(create_worker_router(name, runtime))
    for subscriber in [s for s in broker.subscribers if not s.specification.include_in_schema]:
        _document_batch_subscriber(broker, subscriber)
    for topic in OUTPUT_TOPICS:
        model = CONTRACTS[topic]
        broker.publisher(topic, schema=model, title=f"{topic}:publish", description=model.__doc__)
    for topic in CONTRACTS:
        broker.publisher(
            Topic.dlq(topic),
            schema=DeadLetter,
            title=f"{Topic.dlq(topic)}:publish",
            description=f"Events of `{topic}` that could not be processed: reason and original bytes.",
        )
    spec = AsyncAPI(
        broker,
        title="AI-ETL event contracts",
        version="1",
        description="Every topic's key and JSON value. Keys are UTF-8 strings; values are JSON objects.",
    )
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    return document


def _document_batch_subscriber(broker: Any, subscriber: Any) -> None:
    """Batch consumers take raw bytes (each record is validated on its own), so FastStream cannot
    see their event model: declare it with a handler of the model's type, which never runs."""
    for topic in subscriber.specification.topics:
        model = CONTRACTS[topic]

        async def receives(event: Any) -> None:
            """Documentation only."""

        receives.__annotations__["event"] = model
        broker.subscriber(
            topic,
            group_id=subscriber.group_id,
            title=subscriber.specification.config.title_,
            description=model.__doc__,
        )(receives)


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per topic (and the dead-letter schema), as pydantic validates them."""
    schemas = {topic: model.model_json_schema() for topic, model in CONTRACTS.items()}
    schemas["dead_letter"] = DeadLetter.model_json_schema()
    return schemas


def write_contracts(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "asyncapi.json"]
    written[0].write_text(json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n")
    for name, schema in json_schemas().items():
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
