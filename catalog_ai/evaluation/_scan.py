"""Per-photo arrays of an evaluation: input checks, the taxonomy as arrays, and one chunked scan.

Private to :mod:`catalog_ai.evaluation`: :mod:`~catalog_ai.evaluation.metrics` turns the scan
into metrics, :mod:`~catalog_ai.evaluation.report` checks its photo paths here too.
Photos are processed in chunks, so nothing of size ``N x n_nodes`` is built beside the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog_ai.errors import EvaluationError
from catalog_ai.model.decision import Decision, Thresholds
from catalog_ai.taxonomy import Taxonomy

__all__ = [
    "CHUNK_ELEMENTS",
    "Scan",
    "Tree",
    "check_inputs",
    "check_paths",
    "decision_rows_of",
    "finite_or_none",
    "mean_or_none",
    "ratio_or_none",
    "scan_photos",
]

CHUNK_ELEMENTS = 1 << 21  # ~16 MB of float64 per temporary, whatever the taxonomy size
# Float32/float16 softmax sums drift far less than this; logits or raw scores are far beyond it.
_PROB_TOLERANCE = 1e-2


class Tree:
    """The taxonomy as arrays: depths, ancestor table, leaf columns, rows per depth."""

    def __init__(self, taxonomy: Taxonomy):
        nodes = list(taxonomy)
        self.n_nodes = len(nodes)
        self.max_depth = taxonomy.max_depth
        self.texts = [n.text for n in nodes]
        self.names = [n.name for n in nodes]
        self.depths = np.array([n.depth for n in nodes], dtype=np.int64)
        self.parent_rows = np.array(taxonomy.parent_rows, dtype=np.int64)
        # Row per depth of each node's path, -1 below it; the extra last row (index -1) is the
        # abstention, an empty path. Parents come first in row order, so one pass fills it.
        self.ancestors = np.full((self.n_nodes + 1, self.max_depth), -1, dtype=np.int64)
        for row, parent in enumerate(self.parent_rows):
            if parent >= 0:
                self.ancestors[row] = self.ancestors[parent]
            self.ancestors[row, self.depths[row] - 1] = row
        self.leaf_rows = np.array([taxonomy.row(i) for i in taxonomy.leaf_ids], dtype=np.int64)
        self.leaf_column = np.full(self.n_nodes, -1, dtype=np.int64)
        self.leaf_column[self.leaf_rows] = np.arange(self.leaf_rows.size)
        self.rows_at_depth = [
            np.flatnonzero(self.depths == d) for d in range(1, self.max_depth + 1)
        ]
        self.parents_at_depth = [self.parent_rows[rows] for rows in self.rows_at_depth]


@dataclass
class Scan:
    pred_leaf: np.ndarray
    leaf_conf: np.ndarray
    true_rank: np.ndarray  # 0-based rank of the true leaf among leaves, -1 for inner labels
    depth_pred: np.ndarray  # (N, max_depth) argmax row among the nodes at each depth
    depth_conf: np.ndarray
    decision_rows: np.ndarray


def scan_photos(
    probs: np.ndarray, truth: np.ndarray, tree: Tree, threshold: float, *, walk: bool
) -> Scan:
    """One pass over photo chunks: validation, top-1 leaf, true-leaf rank, per-depth argmax and
    the back-off walk."""
    n = probs.shape[0]
    depth_count = tree.max_depth
    out = Scan(
        pred_leaf=np.empty(n, dtype=np.int64),
        leaf_conf=np.empty(n),
        true_rank=np.full(n, -1, dtype=np.int64),
        depth_pred=np.empty((n, depth_count), dtype=np.int64),
        depth_conf=np.empty((n, depth_count)),
        decision_rows=np.full(n, -1, dtype=np.int64),
    )
    columns = np.arange(tree.leaf_rows.size)
    step = max(1, CHUNK_ELEMENTS // tree.n_nodes)
    for start in range(0, n, step):
        x = np.asarray(probs[start : start + step], dtype=np.float64)
        b, at = x.shape[0], np.arange(x.shape[0])
        sl = slice(start, start + b)
        leaves = x[:, tree.leaf_rows]
        _check_chunk(x, leaves, tree, start)

        best = leaves.argmax(axis=1)  # first of equals, as Decider does
        out.pred_leaf[sl] = tree.leaf_rows[best]
        out.leaf_conf[sl] = leaves[at, best]

        col = tree.leaf_column[truth[sl]]
        has = col >= 0
        if has.any():
            lv, c = leaves[has], col[has]
            t = lv[np.arange(c.size), c][:, None]
            # Rank in a stable descending sort: strictly higher leaves, then equal ones before it.
            rank = (lv > t).sum(axis=1) + ((lv == t) & (columns[None, :] < c[:, None])).sum(axis=1)
            out.true_rank[sl][has] = rank

        current, active = np.full(b, -1, dtype=np.int64), np.ones(b, dtype=bool)
        for d, rows in enumerate(tree.rows_at_depth):
            values = x[:, rows]
            i = values.argmax(axis=1)
            out.depth_pred[sl, d] = rows[i]
            out.depth_conf[sl, d] = values[at, i]
            if walk and active.any():
                # Decider's walk: the most probable child of the current node, kept while its
                # probability reaches the threshold; a leaf has no child here (-inf stops it).
                child = tree.parents_at_depth[d][None, :] == current[:, None]
                masked = np.where(child, values, -np.inf)
                j = masked.argmax(axis=1)
                advance = active & (masked[at, j] >= threshold)
                current = np.where(advance, rows[j], current)
                active = advance
        if walk:
            out.decision_rows[sl] = current
    return out


def _check_chunk(x: np.ndarray, leaves: np.ndarray, tree: Tree, start: int) -> None:
    finite = np.isfinite(x).all(axis=1)
    leaf_sum = leaves.sum(axis=1)
    root_sum = x[:, tree.rows_at_depth[0]].sum(axis=1)
    bad = (
        ~finite
        | (np.abs(leaf_sum - 1) > _PROB_TOLERANCE)
        | (np.abs(root_sum - 1) > _PROB_TOLERANCE)
        | (x.min(axis=1) < -_PROB_TOLERANCE)
        | (x.max(axis=1) > 1 + _PROB_TOLERANCE)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EvaluationError(
            f"node_probs row {start + i} is not a tree-consistent probability vector (finite: "
            f"{bool(finite[i])}, leaves sum to {leaf_sum[i]:.4g}, top-level categories to "
            f"{root_sum[i]:.4g}); pass calibrated probabilities of every node: the leaf softmax "
            "summed onto ancestors (hierarchy.TreeIndex.node_probs), not logits"
        )


def check_inputs(
    node_probs: np.ndarray,
    true_rows: np.ndarray | Sequence[int],
    taxonomy: Taxonomy,
    thresholds: Thresholds,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(taxonomy, Taxonomy) or len(taxonomy) == 0:
        raise EvaluationError(f"taxonomy must be a non-empty Taxonomy, got {taxonomy!r}")
    if not isinstance(thresholds, Thresholds):
        raise EvaluationError(
            f"thresholds must be a Thresholds (from the model bundle), got "
            f"{type(thresholds).__name__}"
        )
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise EvaluationError(f"top_k must be a whole number of at least 1, got {top_k!r}")
    for key in thresholds.auto_accept_by_precision:
        try:
            ok = 0 < float(key) <= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise EvaluationError(
                f"auto_accept_by_precision key {key!r} is not a precision "
                "between 0 and 1; keys look like '0.95'"
            )
    probs = np.asarray(node_probs)
    if probs.ndim != 2 or probs.shape[1] != len(taxonomy):
        raise EvaluationError(
            f"node_probs has shape {probs.shape} but the taxonomy has {len(taxonomy)} nodes; pass "
            "an (images, nodes) array in taxonomy row order, with the taxonomy the model was "
            "trained on (the bundle's snapshot)"
        )
    if probs.shape[0] == 0:
        raise EvaluationError("no photos to evaluate: node_probs has no rows")
    if not np.issubdtype(probs.dtype, np.floating):
        raise EvaluationError(
            f"node_probs must hold floating-point probabilities, got {probs.dtype}"
        )
    truth = np.asarray(true_rows)
    if truth.shape != (probs.shape[0],) or not np.issubdtype(truth.dtype, np.integer):
        raise EvaluationError(
            f"true_rows must be {probs.shape[0]} integer node rows (one per photo), got shape "
            f"{truth.shape} of {truth.dtype}; map labels with taxonomy.row(id)"
        )
    if truth.min() < 0 or truth.max() >= len(taxonomy):
        bad = int(truth[(truth < 0) | (truth >= len(taxonomy))][0])
        raise EvaluationError(
            f"true row {bad} is not a row of the taxonomy (0..{len(taxonomy) - 1})"
        )
    return probs, truth.astype(np.int64, copy=False)


def check_paths(image_paths: Sequence[str | Path] | None, n: int) -> list[str] | None:
    if image_paths is None:
        return None
    paths = [str(p) for p in image_paths]
    if len(paths) != n:
        raise EvaluationError(
            f"got {len(paths)} image paths for {n} photos; give one path per "
            "row of node_probs, in the same order"
        )
    return paths


def decision_rows_of(decisions: Sequence[Decision], taxonomy: Taxonomy, n: int) -> np.ndarray:
    if len(decisions) != n:
        raise EvaluationError(f"got {len(decisions)} decisions for {n} photos; give one per photo")
    rows = np.full(n, -1, dtype=np.int64)
    for i, decision in enumerate(decisions):
        if decision.path:
            node = taxonomy.find(decision.path)
            if node is None:
                raise EvaluationError(
                    f"decision {i} names {decision.path!r}, which is not in the "
                    "taxonomy; decide with the same taxonomy you evaluate"
                )
            rows[i] = taxonomy.row(node.id)
    return rows


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def ratio_or_none(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def mean_or_none(values: np.ndarray) -> float | None:
    return None if values.size == 0 else float(np.mean(values))
