"""The feature benchmark's data, made alike on both sides (standard library only: Feast's side imports
this file from its own venv). Ours names entities `u<N>`, Feast's side keys them by `user_id` N."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

SEED = 7


@dataclass(frozen=True)
class Sizes:
    online_entities: int
    online_features: int
    reads_1: int
    reads_100: int
    materialize_entities: int
    history_features: int
    history_steps: int
    historical_rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def online_value(entity: int, feature: int) -> float:
    return float((entity * 31 + feature * 7) % 1000) / 10


def history_value(entity: int, feature: int, step: int) -> float:
    return float(entity % 97 + feature + step)


def history_offset_seconds(entity: int, step: int) -> int:
    """When a history value happened, after the history's base time: every 12 h, spread over an hour."""
    return step * 12 * 3600 + entity % 3600


def entity_rows(count: int, entities: int) -> list[tuple[int, float]]:
    """Point-in-time rows: (entity, hours after the history's base time); 2 h before the first
    values to 40 h after, so some rows precede any value of their entity (they get nulls)."""
    rng = random.Random(SEED + 2)
    return [(rng.randrange(entities), rng.uniform(-2, 40)) for _ in range(count)]


def read_batches(rng: random.Random, repeat: int, count: int, entities: int) -> list[list[int]]:
    """The entities of `repeat` online reads of `count` entities each, drawn before any is timed."""
    return [[rng.randrange(entities) for _ in range(count)] for _ in range(repeat)]
