"""A fitted random forest as plain arrays: fast single-row answers, path contributions, safe storage.

Every tree of scikit-learn's forest is flattened into shared node arrays (split feature,
threshold, children, side of missing values, share of failures at the node). That gives three
things the fitted estimator does not:

- prediction for one pipeline walks all trees at once, level by level (numpy), in well under a
  millisecond, without the estimator's per-call scheduling cost;
- path contributions (Saabas): along each tree's decision path, the change of the node's failure
  share is credited to the feature the parent split on; averaged over the trees, the contributions
  plus the root share add up exactly to the forest's score, per pipeline;
- storage as arrays only (`numpy.savez`, read back with `allow_pickle=False`): loading a stored
  model can never execute code, whoever managed to write the bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # answering needs numpy only; sklearn (1.7 s to import) is for training
    from sklearn.ensemble import RandomForestClassifier

LEAF = -1


@dataclass(frozen=True)
class FlatForest:
    feature: np.ndarray  # int32, split feature of each node (LEAF at leaves)
    threshold: np.ndarray  # float64, go left when value <= threshold
    left: np.ndarray  # int32, global index of the left child (LEAF at leaves)
    right: np.ndarray  # int32
    missing_left: np.ndarray  # bool, where a missing value goes
    value: np.ndarray  # float64, share of failures at the node (class-weighted, as the tree learnt it)
    roots: np.ndarray  # int32, global index of each tree's root
    depth: int

    @classmethod
    def from_random_forest(cls, forest: RandomForestClassifier) -> FlatForest:
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("feature", "threshold", "left", "right", "missing", "value")
        }
        roots, offset, depth = [], 0, 0
        positive = list(forest.classes_).index(1)
        for estimator in forest.estimators_:
            tree = estimator.tree_
            leaf = tree.children_left == -1
            parts["feature"].append(np.where(leaf, LEAF, tree.feature).astype(np.int32))
            parts["threshold"].append(tree.threshold.astype(np.float64))
            parts["left"].append(np.where(leaf, LEAF, tree.children_left + offset).astype(np.int32))
            parts["right"].append(np.where(leaf, LEAF, tree.children_right + offset).astype(np.int32))
            parts["missing"].append(np.asarray(tree.missing_go_to_left, dtype=bool))
            shares = tree.value[:, 0, :]
            parts["value"].append(shares[:, positive] / shares.sum(axis=1))
            roots.append(offset)
            offset += tree.node_count
            depth = max(depth, int(tree.max_depth))
        return cls(
            feature=np.concatenate(parts["feature"]),
            threshold=np.concatenate(parts["threshold"]),
            left=np.concatenate(parts["left"]),
            right=np.concatenate(parts["right"]),
            missing_left=np.concatenate(parts["missing"]),
            value=np.concatenate(parts["value"]),
            roots=np.asarray(roots, dtype=np.int32),
            depth=depth,
        )

    @property
    def trees(self) -> int:
        return len(self.roots)

    @property
    def base_score(self) -> float:
        """The forest's score before any split: the mean failure share at the roots."""
        return float(self.value[self.roots].mean())

    def _walk(self, matrix: np.ndarray, contributions: np.ndarray | None = None) -> np.ndarray:
        """Leaf of every (tree, row); with `contributions` (rows x features) also credits each split."""
        # scikit-learn compares float32 inputs with its thresholds; so must we, to land in the same leaf.
        values = np.asarray(matrix, dtype=np.float32).astype(np.float64)
        rows = np.arange(len(values))[None, :]
        node = np.broadcast_to(self.roots[:, None], (self.trees, len(values))).copy()
        for _ in range(self.depth):
            inner = self.feature[node] != LEAF
            if not inner.any():
                break
            split = np.where(inner, self.feature[node], 0)
            x = values[rows, split]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            child = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
            if contributions is not None:
                delta = np.where(inner, self.value[child] - self.value[node], 0.0)
                np.add.at(contributions, (np.broadcast_to(rows, node.shape), split), delta)
            node = child
        return node

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        """The forest's failure score per row (mean of the trees' leaf shares)."""
        return self.value[self._walk(matrix)].mean(axis=0)

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, contributions rows x features): base_score + contributions.sum(1) == scores."""
        credit = np.zeros(np.shape(matrix), dtype=np.float64)
        leaves = self._walk(matrix, credit)
        return self.value[leaves].mean(axis=0), credit / self.trees

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}feature": self.feature,
            f"{prefix}threshold": self.threshold,
            f"{prefix}left": self.left,
            f"{prefix}right": self.right,
            f"{prefix}missing_left": self.missing_left,
            f"{prefix}value": self.value,
            f"{prefix}roots": self.roots,
            f"{prefix}depth": np.asarray([self.depth]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> FlatForest:
        forest = cls(
            feature=arrays[f"{prefix}feature"].astype(np.int32),
            threshold=arrays[f"{prefix}threshold"].astype(np.float64),
            left=arrays[f"{prefix}left"].astype(np.int32),
            right=arrays[f"{prefix}right"].astype(np.int32),
            missing_left=arrays[f"{prefix}missing_left"].astype(bool),
            value=arrays[f"{prefix}value"].astype(np.float64),
            roots=arrays[f"{prefix}roots"].astype(np.int32),
            depth=int(arrays[f"{prefix}depth"][0]),
        )
        forest.check()
        return forest

    def check(self) -> None:
        """Refuse arrays that do not form trees (a damaged or forged blob must not walk out of bounds)."""
        nodes = len(self.feature)
        same_length = all(
            len(a) == nodes for a in (self.threshold, self.left, self.right, self.missing_left, self.value)
        )
        inner = self.feature != LEAF
        children_ok = all(
            np.all((c[inner] > np.flatnonzero(inner)) & (c[inner] < nodes)) for c in (self.left, self.right)
        )
        if not (
            same_length
            and children_ok
            and len(self.roots)
            and np.all((self.roots >= 0) & (self.roots < nodes))
        ):
            raise ValueError("stored forest is not a valid set of trees")


def dump(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def load(blob: bytes) -> dict[str, np.ndarray]:
    """Arrays back from `dump`; object arrays (the only way to smuggle pickles in) are refused."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
