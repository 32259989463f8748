"""Metrics of a model on labelled photos (JSON-safe); the plots are in :mod:`.report`.

Callers pass plain numpy arrays: per photo, the calibrated probability of every taxonomy node (in
row order, tree-consistent: a parent's probability is the sum of its leaves') and the row of its
true category, which may be an inner node (a photo known only as ``Fruit > Apple``).

Photos are processed in chunks (:mod:`._scan`), so nothing of size ``N x n_nodes`` is built
beside the input.
The back-off decisions are computed here with the same walk as
:class:`~catalog_ai.model.decision.Decider` (vectorised) unless the caller passes its own.
Operating thresholds (``Thresholds.auto_accept_by_precision``) must come from *other* held-out
photos; the ``oracle_*`` numbers re-choose them on the evaluated photos and are optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog_ai.errors import EvaluationError
from catalog_ai.evaluation._scan import (
    Scan,
    Tree,
    check_inputs,
    check_paths,
    decision_rows_of,
    finite_or_none,
    mean_or_none,
    ratio_or_none,
    scan_photos,
)
from catalog_ai.model.calibration import (
    PRECISION_TARGETS,
    expected_calibration_error,
    reliability_bins,
    threshold_for_precision,
)
from catalog_ai.model.decision import Decision, Thresholds
from catalog_ai.taxonomy import Taxonomy

__all__ = [
    "ECE_BINS",
    "PRECISION_TARGETS",
    "EvaluationResult",
    "coverage_precision_curve",
    "evaluate_arrays",
]

ECE_BINS = 15
_N_CONFUSED = 10


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """The metrics plus the per-photo arrays the report plots (all of length ``n_images``)."""

    metrics: dict
    true_rows: np.ndarray  # row of the true category (leaf or inner node)
    pred_leaf_rows: np.ndarray  # row of the most probable leaf
    leaf_confidence: np.ndarray  # its probability
    leaf_labelled: np.ndarray  # bool: the true category is a leaf
    decision_rows: np.ndarray  # row of the back-off decision, -1 when abstaining
    image_paths: list[str] | None = None
    acceptable: np.ndarray | None = None  # bool: may auto-accept (not "possibly a new category")

    @property
    def n_images(self) -> int:
        return int(self.true_rows.shape[0])

    @property
    def leaf_correct(self) -> np.ndarray:
        """The top-1 leaf is the true category (always False for inner-node labels)."""
        return np.asarray(self.pred_leaf_rows == self.true_rows)


def evaluate_arrays(
    node_probs: np.ndarray,
    true_rows: np.ndarray | Sequence[int],
    taxonomy: Taxonomy,
    *,
    thresholds: Thresholds,
    model_version: str = "",
    image_paths: Sequence[str | Path] | None = None,
    top_k: int = 5,
    decisions: Sequence[Decision] | None = None,
    acceptable: np.ndarray | None = None,
) -> EvaluationResult:
    """Every metric of one evaluation (keys of ``metrics`` are stable; the CLI prints them).

    Leaf metrics (``leaf_accuracy``, ``top5_accuracy``, ``top{k}_accuracy``, ``ece``,
    ``coverage_at_precision``, ``confused_pairs``...) use the photos labelled at a leaf; photos
    labelled at an inner node count in ``n_inner_labels`` and in the depth, hierarchical and
    decision metrics. ``depth_accuracy[d-1]``: argmax over the nodes at depth ``d`` equals the
    true ancestor at depth ``d``, over photos whose true path is at least ``d`` deep.

    Hierarchical precision/recall/F1 are the set-based measures of Kiritchenko et al. (2005)
    micro-averaged over photos: ``P`` is the decision (the thresholded back-off, see
    :class:`~catalog_ai.model.decision.Decider`) with its ancestors, ``T`` the true category
    with its ancestors; an abstention predicts the empty set, so it costs recall but not
    precision. ``hP = sum|P&T| / sum|P|``, ``hR = sum|P&T| / sum|T|``, ``hF = 2 hP hR / (hP + hR)``.
    A decision below an inner-node label counts its extra levels as wrong (they cannot be checked).

    ``decisions`` (one per photo, e.g. from ``Decider.decide``) replaces the built-in walk, and
    its "possibly a new category" flags count: such a photo never auto-accepts in the product,
    so ``coverage_at_precision`` (and the oracle figures) count it as not covered, however
    confident its leaf. ``acceptable`` (bool per photo) marks the photos that may auto-accept
    directly, for callers without decisions. Ratios with nothing to count are ``None``.
    """
    probs, truth = check_inputs(node_probs, true_rows, taxonomy, thresholds, top_k)
    n = truth.shape[0]
    paths = check_paths(image_paths, n)
    tree = Tree(taxonomy)
    scan = scan_photos(probs, truth, tree, thresholds.decision, walk=decisions is None)
    if decisions is not None:
        scan.decision_rows = decision_rows_of(decisions, taxonomy, n)

    leaf_labelled = tree.leaf_column[truth] >= 0
    leaf_correct = scan.pred_leaf == truth
    conf_l, correct_l = scan.leaf_conf[leaf_labelled], leaf_correct[leaf_labelled]
    acceptable = (
        np.ones(n, dtype=bool) if acceptable is None else np.asarray(acceptable, dtype=bool).copy()
    )
    if acceptable.shape != (n,):
        raise EvaluationError(
            f"acceptable has shape {acceptable.shape}; give one flag per photo ({n})"
        )
    if decisions is not None:
        acceptable &= ~np.array([d.open_set for d in decisions], dtype=bool)
    rank_l = scan.true_rank[leaf_labelled]
    n_leaf = int(leaf_labelled.sum())

    metrics: dict = {
        "model_version": model_version,
        "taxonomy_fingerprint": taxonomy.fingerprint(),
        "n_images": n,
        "n_leaf_labels": n_leaf,
        "n_inner_labels": n - n_leaf,
        "leaf_accuracy": mean_or_none(correct_l),
    }
    metrics.update(_depth_metrics(scan, truth, tree))
    metrics["top5_accuracy"] = mean_or_none(rank_l < 5)
    metrics["top_k"] = top_k
    metrics[f"top{top_k}_accuracy"] = mean_or_none(rank_l < top_k)
    metrics.update(_hierarchical_metrics(scan.decision_rows, truth, tree))
    metrics["ece"] = finite_or_none(expected_calibration_error(conf_l, correct_l, ECE_BINS))
    metrics["ece_bins"] = ECE_BINS
    metrics["ece_by_depth"] = _ece_by_depth(scan, truth, tree)
    metrics.update(
        _operating_points(
            conf_l, correct_l, thresholds.auto_accept_by_precision, acceptable[leaf_labelled]
        )
    )
    metrics["decision"] = _decision_summary(probs, scan.decision_rows, truth, tree, thresholds)
    metrics["accuracy_by_top_level"] = _by_top_level(truth[leaf_labelled], correct_l, tree)
    metrics["confused_pairs"] = _confused_pairs(
        truth[leaf_labelled], scan.pred_leaf[leaf_labelled], tree
    )
    metrics["reliability"] = reliability_bins(conf_l, correct_l, ECE_BINS)
    return EvaluationResult(
        metrics=metrics,
        true_rows=truth,
        pred_leaf_rows=scan.pred_leaf,
        leaf_confidence=scan.leaf_conf,
        leaf_labelled=leaf_labelled,
        decision_rows=scan.decision_rows,
        image_paths=paths,
        acceptable=acceptable,
    )


def coverage_precision_curve(
    confidence: np.ndarray,
    correct: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, coverage, precision)`` of accepting ``confidence >= t``, one point per
    distinct confidence from the highest down (ties are accepted together, as in
    :func:`~catalog_ai.model.calibration.threshold_for_precision`)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidence.size == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    hits = np.cumsum(correct[order])
    counts = np.arange(1, confidence.size + 1)
    last_of_run = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    return (
        conf_sorted[last_of_run],
        counts[last_of_run] / confidence.size,
        hits[last_of_run] / counts[last_of_run],
    )


def _depth_metrics(scan: Scan, truth: np.ndarray, tree: Tree) -> dict:
    true_depth = tree.depths[truth]
    true_anc = tree.ancestors[truth]
    accuracy, counts = [], []
    for d in range(tree.max_depth):
        sel = true_depth > d
        counts.append(int(sel.sum()))
        accuracy.append(mean_or_none(scan.depth_pred[sel, d] == true_anc[sel, d]))
    return {
        "depth_accuracy": accuracy,
        "depth_counts": counts,
        "coarse_accuracy": accuracy[1] if tree.max_depth >= 2 else None,
    }


def _ece_by_depth(scan: Scan, truth: np.ndarray, tree: Tree) -> list[float | None]:
    true_depth = tree.depths[truth]
    true_anc = tree.ancestors[truth]
    out = []
    for d in range(tree.max_depth):
        sel = true_depth > d
        correct = scan.depth_pred[sel, d] == true_anc[sel, d]
        out.append(
            finite_or_none(expected_calibration_error(scan.depth_conf[sel, d], correct, ECE_BINS))
        )
    return out


def _hierarchical_metrics(decision_rows: np.ndarray, truth: np.ndarray, tree: Tree) -> dict:
    predicted = tree.ancestors[decision_rows]  # -1 picks the empty abstention row
    true_anc = tree.ancestors[truth]
    overlap = int(((predicted == true_anc) & (predicted >= 0)).sum())
    n_predicted = int((predicted >= 0).sum())
    n_true = int(tree.depths[truth].sum())
    precision, recall = ratio_or_none(overlap, n_predicted), ratio_or_none(overlap, n_true)
    f1 = (
        None
        if precision is None or recall is None or precision + recall == 0
        else 2 * precision * recall / (precision + recall)
    )
    return {
        "hierarchical_precision": precision,
        "hierarchical_recall": recall,
        "hierarchical_f1": f1,
    }


def _decision_ok(decision_rows: np.ndarray, truth: np.ndarray, tree: Tree) -> np.ndarray:
    """The decision is the true category or one of its ancestors (False for an abstention)."""
    depth = np.where(decision_rows >= 0, tree.depths[decision_rows], 0)
    true_anc = tree.ancestors[truth]
    at_depth = true_anc[np.arange(truth.size), np.maximum(depth - 1, 0)]
    return np.asarray((decision_rows >= 0) & (at_depth == decision_rows))


def _decision_summary(
    probs: np.ndarray,
    decision_rows: np.ndarray,
    truth: np.ndarray,
    tree: Tree,
    thresholds: Thresholds,
) -> dict:
    n = truth.size
    decided = decision_rows >= 0
    at_leaf = decided & (tree.leaf_column[decision_rows] >= 0)
    ok = _decision_ok(decision_rows, truth, tree)
    confidence = probs[np.arange(n), np.maximum(decision_rows, 0)]
    auto = at_leaf & (confidence >= thresholds.auto_accept)
    return {
        "threshold": float(thresholds.decision),
        "leaf": ratio_or_none(int(at_leaf.sum()), n),
        "inner": ratio_or_none(int((decided & ~at_leaf).sum()), n),
        "abstained": ratio_or_none(int((~decided).sum()), n),
        "precision": mean_or_none(ok[decided]),
        "mean_depth": mean_or_none(tree.depths[decision_rows[decided]]),
        "auto_accept_threshold": float(thresholds.auto_accept),
        "auto_accepted": ratio_or_none(int(auto.sum()), n),
        "auto_accept_precision": mean_or_none(ok[auto]),
    }


def _operating_points(
    confidence: np.ndarray,
    correct: np.ndarray,
    by_precision: Mapping[str, float],
    acceptable: np.ndarray,
) -> dict:
    """``acceptable``: photos the product may auto-accept at all (not flagged "possibly a new
    category"); the others are never covered, and the oracle threshold is chosen without them."""
    keys = sorted({*PRECISION_TARGETS, *by_precision}, key=float)
    coverage: dict[str, float | None] = {}
    precision: dict[str, float | None] = {}
    used: dict[str, float | None] = {}
    oracle: dict[str, float | None] = {}
    oracle_t: dict[str, float] = {}
    n = confidence.size
    for key in keys:
        t = by_precision.get(key)
        used[key] = None if t is None else float(t)
        if t is None:
            coverage[key] = precision[key] = None
        else:
            accepted = acceptable & (confidence >= t)
            coverage[key] = ratio_or_none(int(accepted.sum()), n)
            precision[key] = mean_or_none(correct[accepted])
        best = threshold_for_precision(confidence[acceptable], correct[acceptable], float(key))
        oracle_t[key] = best
        oracle[key] = ratio_or_none(int((acceptable & (confidence >= best)).sum()), n)
    return {
        "coverage_at_precision": coverage,
        "precision_at_threshold": precision,
        "thresholds_used": used,
        # Optimistic: the threshold is re-chosen on the very photos it is scored on.
        "oracle_coverage_at_precision": oracle,
        "oracle_thresholds": oracle_t,
    }


def _by_top_level(true_leaf_rows: np.ndarray, correct: np.ndarray, tree: Tree) -> dict:
    roots = tree.ancestors[true_leaf_rows, 0]
    out = {}
    for root in tree.rows_at_depth[0]:
        sel = roots == root
        out[tree.names[root]] = {"accuracy": mean_or_none(correct[sel]), "count": int(sel.sum())}
    return out


def _confused_pairs(
    true_leaf_rows: np.ndarray, pred_leaf_rows: np.ndarray, tree: Tree
) -> list[dict]:
    wrong = true_leaf_rows != pred_leaf_rows
    if not wrong.any():
        return []
    n_leaves = tree.leaf_rows.size
    codes = (
        tree.leaf_column[true_leaf_rows[wrong]] * n_leaves + tree.leaf_column[pred_leaf_rows[wrong]]
    )
    pairs, counts = np.unique(codes, return_counts=True)
    order = np.lexsort((pairs, -counts))[:_N_CONFUSED]  # most frequent, then by leaf order
    return [
        {
            "true": tree.texts[tree.leaf_rows[pairs[i] // n_leaves]],
            "predicted": tree.texts[tree.leaf_rows[pairs[i] % n_leaves]],
            "count": int(counts[i]),
        }
        for i in order
    ]
