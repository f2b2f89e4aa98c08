"""Every suggested mapping of the corpus's PostgreSQL cases runs on a sample row in real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from aietl.services.drift.domain import columns_of, detect
from aietl.services.drift.evaluate import SYNTHETIC, load_cases
from aietl.services.runtime import Runtime
from aietl.shared.events.schema import ObservedColumn

SAMPLE_VALUES = {  # a literal per family that survives widening and narrowing casts of the corpus
    "integer": "42",
    "float": "12.5",
    "decimal": "12.5",
    "string": "'abc'",
    "boolean": "true",
    "date": "'2026-11-25'",
    "timestamp": "'2026-11-25 12:00:00'",
    "timestamptz": "'2026-11-25 12:00:00+00'",
    "uuid": "'6a1b7e1e-0000-4000-8000-000000000001'",
    "json": "'{\"a\": 1}'",
    "array": "'{1,2}'",
}


async def test_postgres_mappings_execute_on_a_sample(runtime: Runtime) -> None:
    cases = [
        c for c in load_cases(SYNTHETIC) if c["before"]["dialect"] == c["after"]["dialect"] == "postgres"
    ]
    executed = 0
    async with runtime.database.engine.connect() as connection:
        for case in cases:
            before = columns_of(
                [ObservedColumn.model_validate(c) for c in case["before"]["columns"]], "postgres"
            )
            after = columns_of(
                [ObservedColumn.model_validate(c) for c in case["after"]["columns"]], "postgres"
            )
            drifts = detect(before, after, "postgres")
            if not drifts:
                continue
            transaction = await connection.begin()
            definition = ", ".join(f'"{c.name}" {c.type}' for c in after)
            await connection.execute(text(f"CREATE TEMP TABLE sample ({definition}) ON COMMIT DROP"))
            values = ", ".join(SAMPLE_VALUES[c.sql_type.family] for c in after)
            await connection.execute(text(f"INSERT INTO sample VALUES ({values})"))
            await connection.execute(text(f"INSERT INTO sample VALUES ({', '.join('NULL' for _ in after)})"))
            for drift in drifts:
                assert drift.suggested_mapping is not None
                expression = drift.suggested_mapping.transformation_logic
                source = "sample" if drift.change_class != "incompatible" else "sample WHERE false"
                rows = (await connection.execute(text(f"SELECT {expression} FROM {source}"))).all()
                assert len(rows) == (2 if drift.change_class != "incompatible" else 0), (
                    case["id"],
                    expression,
                )
                executed += 1
            await transaction.rollback()
    assert executed >= 100
