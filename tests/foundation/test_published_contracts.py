"""The contracts published in docs/contracts are the ones the code enforces."""

from __future__ import annotations

import json
from pathlib import Path

from aietl.services.contracts import asyncapi_document, json_schemas
from aietl.shared.events import CONTRACTS, Topic

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "contracts"


def test_json_schemas_are_up_to_date() -> None:
    for name, schema in json_schemas().items():
        published = json.loads((PUBLISHED / f"{name}.schema.json").read_text())
        assert published == schema, f"docs/contracts/{name}.schema.json is stale: run `aietl contracts`"


def test_asyncapi_names_every_topic_and_dead_letter_topic() -> None:
    document = asyncapi_document()
    assert document == json.loads((PUBLISHED / "asyncapi.json").read_text()), "run `aietl contracts`"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert set(CONTRACTS) | {Topic.dlq(topic) for topic in CONTRACTS} <= addresses


def test_every_consumed_topic_documents_its_event_model() -> None:
    """Batch consumers read raw bytes; the document must still name the model producers must send."""
    document = asyncapi_document()
    received = {
        document["channels"][operation["channel"]["$ref"].split("/")[-1]]["address"]: operation
        for operation in document["operations"].values()
        if operation["action"] == "receive"
    }
    assert {Topic.SCHEMA_OBSERVED, Topic.METRICS_INGESTED, Topic.DOCUMENTS_INGESTED} <= set(received)
    for topic, operation in received.items():
        [message_ref] = operation["messages"]
        channel = document["channels"][operation["channel"]["$ref"].split("/")[-1]]
        message_name = message_ref["$ref"].split("/")[-1]
        payload = document["components"]["messages"][channel["messages"][message_name]["$ref"].split("/")[-1]]
        assert payload["payload"] == {"$ref": f"#/components/schemas/{CONTRACTS[topic].__name__}"}, topic
