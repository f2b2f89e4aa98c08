"""Wide tables with many renames, for the bound test and the benchmark."""

from __future__ import annotations

from aietl.shared.events.schema import ObservedColumn

TYPES = ["bigint", "integer", "varchar(255)", "text", "numeric(12,2)", "timestamptz", "boolean", "date"]
WORDS = ["customer", "order", "amount", "price", "status", "created", "updated", "name", "email"]
WORDS += ["phone", "address", "city", "country", "region", "code", "total", "tax", "discount"]


def wide_renamed_tables(width: int, renames: int) -> tuple[list[ObservedColumn], list[ObservedColumn]]:
    """`width` columns named from a small vocabulary (so names share words, as real ones do);
    the observation renames `renames` of them (a word added), spread through the table."""
    base = [
        ObservedColumn(
            name=f"{WORDS[i % len(WORDS)]}_{WORDS[(i * 7) % len(WORDS)]}_{i}", type=TYPES[i % len(TYPES)]
        )
        for i in range(width)
    ]
    observed = list(base)
    step = width // renames
    for k in range(renames):
        i = k * step + 3
        observed[i] = observed[i].model_copy(update={"name": f"{observed[i].name}_renamed"})
    return base, observed
