"""Policies: which strategy answers a drift of each severity, and what a detection's outcome is.

In the spirit of dlt's schema contracts (evolve / freeze) and Confluent's compatibility modes:
`auto_adapt` accepts the change into a new baseline version, `suggest` keeps it pending with a
suggested mapping, `alert` keeps it pending and raises it to people, `fail` blocks the source
until someone accepts or unblocks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from aietl.shared.events.schema import Drift, Severity, Strategy

Status = Literal["adapted", "pending", "alerted", "blocked"]
STRATEGY_ORDER: tuple[Strategy, ...] = ("auto_adapt", "suggest", "alert", "fail")
STATUS_OF: dict[Strategy, Status] = {
    "auto_adapt": "adapted",
    "suggest": "pending",
    "alert": "alerted",
    "fail": "blocked",
}
DEFAULT_POLICY: dict[Severity, Strategy] = {
    "low": "auto_adapt",
    "medium": "suggest",
    "high": "alert",
    "critical": "fail",
}
WILDCARD = "*"


def complete(partial: Mapping[Severity, Strategy]) -> dict[Severity, Strategy]:
    """A policy names a strategy for every severity; missing ones come from the default."""
    return {**DEFAULT_POLICY, **partial}


def decide(drifts: Iterable[Drift], policy: Mapping[Severity, Strategy]) -> Strategy:
    """The strictest strategy any drift calls for: one critical drift blocks the whole change."""
    chosen = [policy[drift.severity] for drift in drifts]
    return max(chosen, key=STRATEGY_ORDER.index) if chosen else "auto_adapt"


def policy_scopes(connector_id: str, table_name: str) -> list[tuple[str, str]]:
    """Where a table's policy may be set, most specific first; the project default is (*, *)."""
    return [(connector_id, table_name), (connector_id, WILDCARD), (WILDCARD, WILDCARD)]
