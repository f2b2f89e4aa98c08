"""The contracts published in docs/contracts are the ones the code enforces."""

from __future__ import annotations

import json
from pathlib import Path

from services.contracts import asyncapi_document, json_schemas
from shared.events import CONTRACTS, Topic

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
