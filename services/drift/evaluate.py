"""How well drift detection does on labelled corpora: `aietl drift-eval`.

A corpus is JSON lines, one case each: `before` and `after` (`dialect`, `columns`), the drifts a
careful engineer would name (`expected`: `drift_type`, `column_name`, `previous_name` for renames)
and the `project` it comes from. Drifts are matched as (type, column) and renames also by their
previous name. A case is *exact* when the detector names exactly the expected drifts.

Figures: per-type precision, recall and F1 and their macro average over the five drift types of
the issue (new, removed, renamed, type and nullability changes; key changes are shown apart),
rename precision and recall, the exact rate (over all cases and over the cases without a rename),
for the detector as stored, for leave-one-project-out (the rename model fitted without the project
it is scored on) and for the plain name diff that infers no renames.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aietl.services.drift.domain import columns_of, detect
from aietl.services.drift.domain.renames import RenameModel
from aietl.shared.events.schema import Drift, ObservedColumn

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
HISTORY = DATA / "drift_history.jsonl.gz"
SYNTHETIC = DATA / "drift_corpus.jsonl"
SCORED_TYPES = ("new_column", "removed_column", "renamed_column", "type_change", "nullability_change")
SYNTHETIC_PROJECT = "synthetic"

Case = dict[str, Any]
Detector = Callable[[Case], list[Drift]]


def load_cases(path: Path) -> list[Case]:
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()
    cases = [json.loads(line) for line in text.splitlines() if line.strip()]
    for case in cases:
        case.setdefault("project", SYNTHETIC_PROJECT)
    return cases


def case_columns(case: Case, side: str):
    return columns_of(
        [ObservedColumn.model_validate(c) for c in case[side]["columns"]], case[side]["dialect"]
    )


def detector(model: RenameModel | None = None, *, infer_renames: bool = True) -> Detector:
    def run(case: Case) -> list[Drift]:
        before, after = case_columns(case, "before"), case_columns(case, "after")
        return detect(before, after, case["after"]["dialect"], model=model, infer_renames=infer_renames)

    return run


@dataclass
class Scores:
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    rename_tp: int = 0
    rename_fp: int = 0
    rename_fn: int = 0
    cases: int = 0
    exact: int = 0
    plain_cases: int = 0  # cases without a rename
    plain_exact: int = 0
    mistakes: list[str] = field(default_factory=list)

    def add(self, case: Case, found: Iterable[Drift]) -> None:
        found = list(found)
        got = {(d.drift_type, d.column_name) for d in found}
        want = {(e["drift_type"], e["column_name"]) for e in case["expected"]}
        for kind, _ in got & want:
            self.tp[kind] += 1
        for kind, _ in got - want:
            self.fp[kind] += 1
        for kind, _ in want - got:
            self.fn[kind] += 1
        got_renames = {(d.previous_name, d.column_name) for d in found if d.drift_type == "renamed_column"}
        want_renames = {
            (e["previous_name"], e["column_name"])
            for e in case["expected"]
            if e["drift_type"] == "renamed_column"
        }
        self.rename_tp += len(got_renames & want_renames)
        self.rename_fp += len(got_renames - want_renames)
        self.rename_fn += len(want_renames - got_renames)
        exact = got == want and got_renames == want_renames
        self.cases += 1
        self.exact += exact
        if not want_renames:
            self.plain_cases += 1
            self.plain_exact += exact
        if not exact:
            self.mistakes.append(f"{case['id']}: extra {sorted(got - want)} missing {sorted(want - got)}")

    def precision(self, kind: str) -> float:
        return self.tp[kind] / max(1, self.tp[kind] + self.fp[kind])

    def recall(self, kind: str) -> float:
        return self.tp[kind] / max(1, self.tp[kind] + self.fn[kind])

    def f1(self, kind: str) -> float:
        tp, fp, fn = self.tp[kind], self.fp[kind], self.fn[kind]
        return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)

    @property
    def macro_f1(self) -> float:
        return sum(self.f1(kind) for kind in SCORED_TYPES) / len(SCORED_TYPES)

    @property
    def rename_precision(self) -> float:
        return self.rename_tp / max(1, self.rename_tp + self.rename_fp)

    @property
    def rename_recall(self) -> float:
        return self.rename_tp / max(1, self.rename_tp + self.rename_fn)

    @property
    def exact_rate(self) -> float:
        return self.exact / max(1, self.cases)

    @property
    def plain_exact_rate(self) -> float:
        return self.plain_exact / max(1, self.plain_cases)

    def summary(self) -> str:
        return (
            f"macro-F1 {self.macro_f1:.3f}, renames P {self.rename_precision:.3f} "
            f"R {self.rename_recall:.3f}, exact {self.exact_rate:.3f} "
            f"(without renames {self.plain_exact_rate:.3f}), {self.cases} cases"
        )


def score(cases: Sequence[Case], run: Detector) -> Scores:
    scores = Scores()
    for case in cases:
        scores.add(case, run(case))
    return scores


def by_project(cases: Iterable[Case]) -> dict[str, list[Case]]:
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        groups[case["project"]].append(case)
    return dict(groups)


def leave_one_project_out(
    cases: Sequence[Case],
    fit: Callable[[Sequence[Case]], RenameModel],
    training_extra: Sequence[Case] = (),
) -> tuple[Scores, dict[str, Scores]]:
    """Score each project with a model fitted on every other project (and `training_extra`)."""
    pooled, each = Scores(), {}
    for project, held_out in sorted(by_project(cases).items()):
        training = [c for c in cases if c["project"] != project] + list(training_extra)
        run = detector(fit(training))
        each[project] = score(held_out, run)
        for case in held_out:
            pooled.add(case, run(case))
    return pooled, each


def table(rows: dict[str, Scores]) -> str:
    """Per-type P/R/F1 of several runs side by side."""
    names = list(rows)
    width = max(18, *(len(n) + 2 for n in names))
    lines = ["".ljust(20) + "".join(n.rjust(width) for n in names)]
    for kind in (*SCORED_TYPES, "primary_key_change"):
        cells = "".join(
            f"{s.precision(kind):.3f}/{s.recall(kind):.3f}/{s.f1(kind):.3f}".rjust(width)
            for s in rows.values()
        )
        lines.append(f"{kind:20}{cells}")
    for label, value in (
        ("macro-F1 (5 types)", lambda s: f"{s.macro_f1:.3f}"),
        ("rename precision", lambda s: f"{s.rename_precision:.3f}"),
        ("rename recall", lambda s: f"{s.rename_recall:.3f}"),
        ("exact cases", lambda s: f"{s.exact_rate:.3f} ({s.exact}/{s.cases})"),
        ("exact, no rename", lambda s: f"{s.plain_exact_rate:.3f}"),
    ):
        lines.append(f"{label:20}" + "".join(value(s).rjust(width) for s in rows.values()))
    return "\n".join(lines)


def report(history: Path = HISTORY, synthetic: Path = SYNTHETIC, *, lopo: bool = True) -> str:
    """The text `aietl drift-eval` prints."""
    from aietl.services.drift import rename_fit  # needs scikit-learn: only to re-fit for leave-one-out

    real = load_cases(history)
    made = load_cases(synthetic)
    stored, plain = detector(), detector(infer_renames=False)
    out = [
        f"corpora: {history.name} ({len(real)} cases, {len(by_project(real))} projects), "
        f"{synthetic.name} ({len(made)} cases)",
        "cells: precision/recall/F1",
        "",
    ]
    columns = {"stored model": score(real, stored), "name diff": score(real, plain)}
    if lopo:
        pooled, each = leave_one_project_out(real, rename_fit.fit, training_extra=made)
        columns = {"leave-one-out": pooled, **columns}
    out += ["real migration histories", table(columns), ""]
    out += [
        "synthetic corpus",
        table({"stored model": score(made, stored), "name diff": score(made, plain)}),
    ]
    if lopo:
        out += ["", "leave-one-project-out, per project:"]
        out += [f"  {project:40} {scores.summary()}" for project, scores in each.items()]
    return "\n".join(out)
