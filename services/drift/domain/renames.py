"""Rename detection: pair removed and added columns when the evidence says they are one column.

1. Candidates (sub-quadratic): a removed and an added column are compared only when they share a
   word of their names, sit at the same place between the columns that stayed, share sample
   values, or when the table changed so little that every pair can be looked at.
2. Features of each candidate: its names (same words, shared words, one word swapped for another,
   and whether the two words are *siblings* — words seen naming two different columns side by side
   in real tables, like `start`/`end`), its types, nullability, place among the columns that stayed,
   the shape of the whole change (how many columns went and came), and the data when observations
   carry it (sample-value overlap, distinct and null ratios).
3. A logistic model turns them into a calibrated probability; the weights, the calibration and the
   sibling words live in `rename_model.json`, fitted by `python -m aietl.services.drift.rename_fit` on the
   labelled corpora (real migration histories of many projects, and the synthetic corpus).
4. Pairing is joint per table: an assignment (Hungarian method) that maximises the summed log-odds
   of the chosen pairs, so one column pairs with at most one and a strong pair is not lost to a
   greedy earlier choice.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from aietl.services.drift.domain.names import SIBLINGS, name_similarity, substitution, tokens, words_swapped
from aietl.services.drift.domain.schema import Column
from aietl.services.drift.domain.types import classify

MODEL_FILE = Path(__file__).with_name("rename_model.json")
EXHAUSTIVE_PAIRS = 400  # a table with fewer removed x added pairs has every pair scored
NEAR_PLACES = 2  # besides shared words: added columns this close to the removed one's place
MAX_CANDIDATES_PER_COLUMN = 6  # the cheap pre-score keeps this many partners per column
SAMPLE_INDEX_LIMIT = 20  # sample values per column used to find partners by data
EXACT_ASSIGNMENT_LIMIT = 60  # columns on one side of a linked group paired exactly (Hungarian)


@dataclass(frozen=True, slots=True)
class RenameModel:
    features: tuple[str, ...]
    intercept: float
    weights: tuple[float, ...]
    calibration: tuple[float, float]  # Platt scaling fitted on held-out projects: a * z + b
    threshold: float
    siblings: frozenset[tuple[str, str]]

    def probability(self, values: Sequence[float]) -> float:
        z = self.intercept + sum(w * x for w, x in zip(self.weights, values, strict=True))
        a, b = self.calibration
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, a * z + b))))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenameModel:
        return cls(
            features=tuple(data["features"]),
            intercept=float(data["intercept"]),
            weights=tuple(float(w) for w in data["weights"]),
            calibration=(float(data["calibration"][0]), float(data["calibration"][1])),
            threshold=float(data["threshold"]),
            siblings=frozenset((a, b) for a, b in data["siblings"]),
        )


@lru_cache(maxsize=1)
def stored_model() -> RenameModel:
    return RenameModel.from_json(json.loads(MODEL_FILE.read_text()))


FEATURES = (
    "same_words",  # the same words in another style or abbreviated: customer_id / customerId / cust_id
    "name_similarity",  # shared words and spelling, 0..1
    "contained",  # one name's words all in the other: email / email_address, status / order_status
    "word_swapped",  # the names differ by one word swapped for an unrelated one: is_visible / is_published
    "sibling_swapped",  # ... and the two words are siblings or opposites: first / middle, start / end
    "cooccurring_swapped",  # ... or name two different columns side by side in real tables
    "substituted",  # some words of each name have no counterpart in the other: notes / internal_comment_id
    "both_keys",  # both end in id: product_id / variant_id
    "type_same",
    "type_widening",
    "type_narrowing",
    "type_incompatible",
    "nullable_same",
    "key_same",  # both in the primary key, or neither
    "neighbours",  # the same columns that stayed before / after it: 0, 0.5, 1 (when order_kept)
    "same_rank",  # the k-th removed and the k-th added column (when order_kept)
    "appended",  # the added column comes after every column that stayed, the removed one did not
    "appended_with_data",  # ... when values or statistics came with both (copied data moves too)
    "order_lost",  # the columns that stayed are listed in another order: places say nothing
    "at_the_end",  # both come after every column that stayed: their places agree trivially
    "only_pair",  # one column removed, one added
    "balanced",  # as many removed as added
    "competition",  # log of the number of removed x added pairs
    "samples_overlap",
    "has_samples",
    "statistics_close",  # distinct and null ratios agree
    "has_statistics",
)


@dataclass(frozen=True, slots=True)
class Candidate:
    removed: Column
    added: Column
    features: tuple[float, ...]
    probability: float

    def evidence(self, model: RenameModel | None = None) -> list[tuple[str, float]]:
        """Each feature's share of the decision (weight x value), strongest first."""
        model = model or stored_model()
        shares = [(n, w * x) for n, w, x in zip(model.features, model.weights, self.features, strict=True)]
        return sorted((s for s in shares if abs(s[1]) >= 0.05), key=lambda s: -abs(s[1]))


@dataclass(frozen=True, slots=True)
class TableChange:
    """The table-level shape of a change that every candidate's features read."""

    removed: Sequence[Column]
    added: Sequence[Column]
    anchor_before: dict[str, int]  # removed column -> number of stayed columns before it
    anchor_after: dict[str, int]  # added column -> number of stayed columns before it
    rank: dict[str, int]  # removed / added column -> its place among the removed / added
    stayed: int
    order_kept: bool  # the columns that stayed are listed in the same order on both sides

    @classmethod
    def of(cls, baseline: Sequence[Column], observed: Sequence[Column]) -> TableChange:
        before_names = {c.name for c in baseline}
        after_names = {c.name for c in observed}
        removed = [c for c in baseline if c.name not in after_names]
        added = [c for c in observed if c.name not in before_names]
        return cls(
            removed=removed,
            added=added,
            anchor_before=_anchors(baseline, after_names),
            anchor_after=_anchors(observed, before_names),
            rank={c.name: i for i, c in enumerate(removed)} | {c.name: i for i, c in enumerate(added)},
            stayed=len(before_names & after_names),
            order_kept=[c.name for c in baseline if c.name in after_names]
            == [c.name for c in observed if c.name in before_names],
        )


def _anchors(columns: Sequence[Column], other_names: set[str]) -> dict[str, int]:
    """For each column missing from the other side: how many shared columns precede it."""
    anchors, shared = {}, 0
    for column in columns:
        if column.name in other_names:
            shared += 1
        else:
            anchors[column.name] = shared
    return anchors


INFORMATIVE_VALUES = 8  # overlapping samples of fewer distinct values (booleans) say less


def sample_overlap(left: Sequence[object], right: Sequence[object]) -> float:
    """Jaccard overlap of the sample values (as text, so 1 and '1' agree), scaled down when there
    are few distinct values: two boolean columns always overlap."""
    a, b = {str(v) for v in left if v is not None}, {str(v) for v in right if v is not None}
    if not a or not b:
        return 0.0
    union = a | b
    return len(a & b) / len(union) * min(1.0, len(union) / INFORMATIVE_VALUES)


def _statistics(column: Column) -> tuple[float, float] | None:
    if column.distinct_ratio is None or column.null_ratio is None:
        return None
    return column.distinct_ratio, column.null_ratio


def features(
    change: TableChange, old: Column, new: Column, siblings: frozenset[tuple[str, str]]
) -> tuple[float, ...]:
    old_words, new_words = tokens(old.name), tokens(new.name)
    same = old_words == new_words
    swapped = words_swapped(old.name, new.name)
    change_class = classify(old.sql_type, new.sql_type)
    before_anchor, after_anchor = change.anchor_before[old.name], change.anchor_after[new.name]
    has_samples = bool(old.samples) and bool(new.samples)
    old_stats, new_stats = _statistics(old), _statistics(new)
    has_statistics = old_stats is not None and new_stats is not None
    pairs = len(change.removed) * len(change.added)
    kept = float(change.order_kept)
    appended = kept * float(after_anchor == change.stayed and before_anchor != change.stayed)
    with_data = float(has_samples or has_statistics)
    at_end = float(before_anchor == change.stayed and after_anchor == change.stayed)
    placed = kept  # places are evidence when the columns are listed in order
    return (
        float(same),
        name_similarity(old.name, new.name),
        float(
            not same
            and bool(old_words)
            and bool(new_words)
            and (set(old_words) <= set(new_words) or set(new_words) <= set(old_words))
        ),
        float(swapped is not None),
        float(swapped is not None and tuple(sorted(swapped)) in SIBLINGS),
        float(swapped is not None and tuple(sorted(swapped)) in siblings),
        substitution(old.name, new.name),
        float(old_words[-1:] == ("id",) and new_words[-1:] == ("id",)),
        float(change_class == "same"),
        float(change_class == "widening"),
        float(change_class == "narrowing"),
        float(change_class == "incompatible"),
        float(old.nullable == new.nullable),
        float(old.primary_key == new.primary_key),
        placed
        * (
            float(before_anchor == after_anchor)
            + float(_next_anchor(change, old, True) == _next_anchor(change, new, False))
        )
        / 2,
        placed * float(change.rank[old.name] == change.rank[new.name]),
        appended * (1.0 - with_data),
        appended * with_data,
        1.0 - kept,
        kept * at_end,
        float(pairs == 1),
        float(len(change.removed) == len(change.added)),
        math.log(pairs),
        sample_overlap(old.samples, new.samples) if has_samples else 0.0,
        float(has_samples),
        _statistics_closeness(old_stats, new_stats) if has_statistics else 0.0,
        float(has_statistics),
    )


def _next_anchor(change: TableChange, column: Column, removed: bool) -> int:
    """The number of stayed columns before the next stayed column: anchor + 1, or none at the end."""
    anchor = (change.anchor_before if removed else change.anchor_after)[column.name]
    return anchor + 1 if anchor < change.stayed else -1


def _statistics_closeness(old: tuple[float, float] | None, new: tuple[float, float] | None) -> float:
    assert old is not None and new is not None
    return max(0.0, 1.0 - abs(old[0] - new[0]) - abs(old[1] - new[1]))


# --- candidate generation ------------------------------------------------------------------------


def candidate_pairs(change: TableChange) -> list[tuple[Column, Column]]:
    """The pairs worth scoring: all of them for a small change, otherwise those that share a word,
    a place, or sample values (each column keeps its best few by a cheap pre-score)."""
    removed, added = change.removed, change.added
    if len(removed) * len(added) <= EXHAUSTIVE_PAIRS:
        return [(old, new) for old in removed for new in added]
    by_word: dict[str, list[Column]] = defaultdict(list)
    by_anchor: dict[int, list[Column]] = defaultdict(list)
    by_value: dict[str, list[Column]] = defaultdict(list)
    for new in added:
        for word in set(tokens(new.name)):
            by_word[word].append(new)
        by_anchor[change.anchor_after[new.name]].append(new)
        for value in new.samples[:SAMPLE_INDEX_LIMIT]:
            if value is not None:
                by_value[str(value)].append(new)
    common = {w for w, found in by_word.items() if len(found) > MAX_CANDIDATES_PER_COLUMN * 4}
    pairs: list[tuple[Column, Column]] = []
    for old in removed:
        found: dict[str, Column] = {}
        for word in set(tokens(old.name)) - common:
            found.update((c.name, c) for c in by_word.get(word, ()))
        anchor = change.anchor_before[old.name]
        for near in range(anchor - NEAR_PLACES, anchor + NEAR_PLACES + 1):
            found.update((c.name, c) for c in by_anchor.get(near, ()))
        for value in old.samples[:SAMPLE_INDEX_LIMIT]:
            if value is not None:
                found.update((c.name, c) for c in by_value.get(str(value), ())[:MAX_CANDIDATES_PER_COLUMN])
        best = sorted(found.values(), key=lambda new: -_pre_score(change, old, new))
        pairs.extend((old, new) for new in best[:MAX_CANDIDATES_PER_COLUMN])
    return pairs


def _pre_score(change: TableChange, old: Column, new: Column) -> float:
    shared = len(set(tokens(old.name)) & set(tokens(new.name)))
    place = change.anchor_before[old.name] == change.anchor_after[new.name]
    return shared + place + (old.sql_type.family == new.sql_type.family)


def candidates(
    baseline: Sequence[Column], observed: Sequence[Column], model: RenameModel | None = None
) -> tuple[TableChange, list[Candidate]]:
    """The table's change and its scored candidate pairs, most likely first."""
    model = model or stored_model()
    change = TableChange.of(baseline, observed)
    scored = []
    if change.removed and change.added:
        for old, new in candidate_pairs(change):
            values = features(change, old, new, model.siblings)
            scored.append(Candidate(old, new, values, model.probability(values)))
    scored.sort(key=lambda c: (-c.probability, c.removed.position, c.added.position))
    return change, scored


# --- joint pairing -------------------------------------------------------------------------------


def pair_renames(scored: Sequence[Candidate], model: RenameModel | None = None) -> list[Candidate]:
    """The one-to-one pairing of likely candidates that maximises their summed log-odds (above the
    model's threshold)."""
    threshold = _log_odds((model or stored_model()).threshold)
    likely = [c for c in scored if _log_odds(c.probability) > threshold]
    chosen: list[Candidate] = []
    for component in _components(likely):
        chosen.extend(_assign(component, threshold))
    return sorted(chosen, key=lambda c: (c.removed.position, c.added.position))


def _components(pairs: Iterable[Candidate]) -> list[list[Candidate]]:
    """Groups of candidates linked through a shared column: each is paired on its own."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    pairs = list(pairs)
    for pair in pairs:
        parent[root("-" + pair.removed.name)] = root("+" + pair.added.name)
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for pair in pairs:
        groups[root("-" + pair.removed.name)].append(pair)
    return list(groups.values())


def _log_odds(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def _assign(pairs: list[Candidate], threshold: float) -> list[Candidate]:
    if len(pairs) == 1:
        return pairs
    rows = sorted({p.removed.name for p in pairs})
    cols = sorted({p.added.name for p in pairs})
    if max(len(rows), len(cols)) > EXACT_ASSIGNMENT_LIMIT:  # O(n^3) beyond this: greedy
        return _greedy(pairs)
    weight = {(p.removed.name, p.added.name): _log_odds(p.probability) - threshold for p in pairs}
    row_index, col_index = {r: i for i, r in enumerate(rows)}, {c: j for j, c in enumerate(cols)}
    size = max(len(rows), len(cols))
    # minimise cost = -log-odds; absent pairs (and padding) cost 0, i.e. "leave unpaired"
    cost = [[0.0] * size for _ in range(size)]
    for (r, c), w in weight.items():
        cost[row_index[r]][col_index[c]] = -w
    assignment = _hungarian(cost)
    by_key = {(p.removed.name, p.added.name): p for p in pairs}
    chosen = []
    for i, j in enumerate(assignment):
        if i < len(rows) and j < len(cols) and (rows[i], cols[j]) in by_key:
            chosen.append(by_key[(rows[i], cols[j])])
    return chosen


def _greedy(pairs: list[Candidate]) -> list[Candidate]:
    used: set[str] = set()
    chosen = []
    for pair in sorted(pairs, key=lambda p: -p.probability):
        if "-" + pair.removed.name in used or "+" + pair.added.name in used:
            continue
        used |= {"-" + pair.removed.name, "+" + pair.added.name}
        chosen.append(pair)
    return chosen


def _hungarian(cost: list[list[float]]) -> list[int]:
    """Minimum-cost perfect assignment of a square matrix (Kuhn-Munkres, O(n^3)); row -> column."""
    n = len(cost)
    infinity = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)
    match, way = [0] * (n + 1), [0] * (n + 1)
    for row in range(1, n + 1):
        match[0], column = row, 0
        least = [infinity] * (n + 1)
        used = [False] * (n + 1)
        while True:
            used[column] = True
            current, delta, next_column = match[column], infinity, 0
            for j in range(1, n + 1):
                if not used[j]:
                    reduced = cost[current - 1][j - 1] - u[current] - v[j]
                    if reduced < least[j]:
                        least[j], way[j] = reduced, column
                    if least[j] < delta:
                        delta, next_column = least[j], j
            for j in range(n + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    least[j] -= delta
            column = next_column
            if match[column] == 0:
                break
        while column:
            previous = way[column]
            match[column] = match[previous]
            column = previous
    assignment = [0] * n
    for j in range(1, n + 1):
        if match[j]:
            assignment[match[j] - 1] = j - 1
    return assignment
