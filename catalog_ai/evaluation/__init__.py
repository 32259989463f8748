"""Evaluation of a model on labelled photos: metrics (JSON-safe) and a PNG report.

Callers pass plain numpy arrays: per photo, the calibrated probability of every taxonomy node (in
row order, tree-consistent: a parent's probability is the sum of its leaves') and the row of its
true category, which may be an inner node (a photo known only as ``Fruit > Apple``).

Photos are processed in chunks, so nothing of size ``N x n_nodes`` is built beside the input.
The back-off decisions are computed here with the same walk as
:class:`~catalog_ai.model.decision.Decider` (vectorised) unless the caller passes its own.
Operating thresholds (``Thresholds.auto_accept_by_precision``) must come from *other* held-out
photos; the ``oracle_*`` numbers re-choose them on the evaluated photos and are optimistic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog_ai.errors import CatalogAIError, EvaluationError
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
    "REPORT_FILES",
    "EvaluationResult",
    "coverage_precision_curve",
    "evaluate_arrays",
    "write_report",
]

# PRECISION_TARGETS (imported from model.calibration, which calibrates to them): reported even
# when the thresholds do not name them (as null).
ECE_BINS = 15
#: What :func:`write_report` writes, in the order it returns them.
REPORT_FILES = (
    "metrics.json",
    "reliability.png",
    "coverage_precision.png",
    "accuracy_by_branch.png",
    "confused_pairs.png",
)

_CHUNK_ELEMENTS = 1 << 21  # ~16 MB of float64 per temporary, whatever the taxonomy size
# Float32/float16 softmax sums drift far less than this; logits or raw scores are far beyond it.
_PROB_TOLERANCE = 1e-2
_N_CONFUSED = 10
_THUMB = 96
_PLACEHOLDER = np.full((_THUMB, _THUMB, 3), 200, dtype=np.uint8)
_DPI = 110


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
        return self.pred_leaf_rows == self.true_rows


# --------------------------------------------------------------------------------------------
# Metrics


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
    probs, truth = _check_inputs(node_probs, true_rows, taxonomy, thresholds, top_k)
    n = truth.shape[0]
    paths = _check_paths(image_paths, n)
    tree = _Tree(taxonomy)
    scan = _scan(probs, truth, tree, thresholds.decision, walk=decisions is None)
    if decisions is not None:
        scan.decision_rows = _decision_rows(decisions, taxonomy, n)

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
        "leaf_accuracy": _mean(correct_l),
    }
    metrics.update(_depth_metrics(scan, truth, tree))
    metrics["top5_accuracy"] = _mean(rank_l < 5)
    metrics["top_k"] = top_k
    metrics[f"top{top_k}_accuracy"] = _mean(rank_l < top_k)
    metrics.update(_hierarchical_metrics(scan.decision_rows, truth, tree))
    metrics["ece"] = _num(expected_calibration_error(conf_l, correct_l, ECE_BINS))
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


class _Tree:
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
class _Scan:
    pred_leaf: np.ndarray
    leaf_conf: np.ndarray
    true_rank: np.ndarray  # 0-based rank of the true leaf among leaves, -1 for inner labels
    depth_pred: np.ndarray  # (N, max_depth) argmax row among the nodes at each depth
    depth_conf: np.ndarray
    decision_rows: np.ndarray


def _scan(
    probs: np.ndarray, truth: np.ndarray, tree: _Tree, threshold: float, *, walk: bool
) -> _Scan:
    """One pass over photo chunks: validation, top-1 leaf, true-leaf rank, per-depth argmax and
    the back-off walk."""
    n = probs.shape[0]
    depth_count = tree.max_depth
    out = _Scan(
        pred_leaf=np.empty(n, dtype=np.int64),
        leaf_conf=np.empty(n),
        true_rank=np.full(n, -1, dtype=np.int64),
        depth_pred=np.empty((n, depth_count), dtype=np.int64),
        depth_conf=np.empty((n, depth_count)),
        decision_rows=np.full(n, -1, dtype=np.int64),
    )
    columns = np.arange(tree.leaf_rows.size)
    step = max(1, _CHUNK_ELEMENTS // tree.n_nodes)
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


def _check_chunk(x: np.ndarray, leaves: np.ndarray, tree: _Tree, start: int) -> None:
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


def _depth_metrics(scan: _Scan, truth: np.ndarray, tree: _Tree) -> dict:
    true_depth = tree.depths[truth]
    true_anc = tree.ancestors[truth]
    accuracy, counts = [], []
    for d in range(tree.max_depth):
        sel = true_depth > d
        counts.append(int(sel.sum()))
        accuracy.append(_mean(scan.depth_pred[sel, d] == true_anc[sel, d]))
    return {
        "depth_accuracy": accuracy,
        "depth_counts": counts,
        "coarse_accuracy": accuracy[1] if tree.max_depth >= 2 else None,
    }


def _ece_by_depth(scan: _Scan, truth: np.ndarray, tree: _Tree) -> list[float | None]:
    true_depth = tree.depths[truth]
    true_anc = tree.ancestors[truth]
    out = []
    for d in range(tree.max_depth):
        sel = true_depth > d
        correct = scan.depth_pred[sel, d] == true_anc[sel, d]
        out.append(_num(expected_calibration_error(scan.depth_conf[sel, d], correct, ECE_BINS)))
    return out


def _hierarchical_metrics(decision_rows: np.ndarray, truth: np.ndarray, tree: _Tree) -> dict:
    predicted = tree.ancestors[decision_rows]  # -1 picks the empty abstention row
    true_anc = tree.ancestors[truth]
    overlap = int(((predicted == true_anc) & (predicted >= 0)).sum())
    n_predicted = int((predicted >= 0).sum())
    n_true = int(tree.depths[truth].sum())
    precision, recall = _ratio(overlap, n_predicted), _ratio(overlap, n_true)
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


def _decision_ok(decision_rows: np.ndarray, truth: np.ndarray, tree: _Tree) -> np.ndarray:
    """The decision is the true category or one of its ancestors (False for an abstention)."""
    depth = np.where(decision_rows >= 0, tree.depths[decision_rows], 0)
    true_anc = tree.ancestors[truth]
    at_depth = true_anc[np.arange(truth.size), np.maximum(depth - 1, 0)]
    return (decision_rows >= 0) & (at_depth == decision_rows)


def _decision_summary(
    probs: np.ndarray,
    decision_rows: np.ndarray,
    truth: np.ndarray,
    tree: _Tree,
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
        "leaf": _ratio(int(at_leaf.sum()), n),
        "inner": _ratio(int((decided & ~at_leaf).sum()), n),
        "abstained": _ratio(int((~decided).sum()), n),
        "precision": _mean(ok[decided]),
        "mean_depth": _mean(tree.depths[decision_rows[decided]]),
        "auto_accept_threshold": float(thresholds.auto_accept),
        "auto_accepted": _ratio(int(auto.sum()), n),
        "auto_accept_precision": _mean(ok[auto]),
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
    coverage, precision, used, oracle, oracle_t = {}, {}, {}, {}, {}
    n = confidence.size
    for key in keys:
        t = by_precision.get(key)
        used[key] = None if t is None else float(t)
        if t is None:
            coverage[key] = precision[key] = None
        else:
            accepted = acceptable & (confidence >= t)
            coverage[key] = _ratio(int(accepted.sum()), n)
            precision[key] = _mean(correct[accepted])
        best = threshold_for_precision(confidence[acceptable], correct[acceptable], float(key))
        oracle_t[key] = best
        oracle[key] = _ratio(int((acceptable & (confidence >= best)).sum()), n)
    return {
        "coverage_at_precision": coverage,
        "precision_at_threshold": precision,
        "thresholds_used": used,
        # Optimistic: the threshold is re-chosen on the very photos it is scored on.
        "oracle_coverage_at_precision": oracle,
        "oracle_thresholds": oracle_t,
    }


def _by_top_level(true_leaf_rows: np.ndarray, correct: np.ndarray, tree: _Tree) -> dict:
    roots = tree.ancestors[true_leaf_rows, 0]
    out = {}
    for root in tree.rows_at_depth[0]:
        sel = roots == root
        out[tree.names[root]] = {"accuracy": _mean(correct[sel]), "count": int(sel.sum())}
    return out


def _confused_pairs(
    true_leaf_rows: np.ndarray, pred_leaf_rows: np.ndarray, tree: _Tree
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


# --------------------------------------------------------------------------------------------
# Input checks


def _check_inputs(
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


def _check_paths(image_paths: Sequence[str | Path] | None, n: int) -> list[str] | None:
    if image_paths is None:
        return None
    paths = [str(p) for p in image_paths]
    if len(paths) != n:
        raise EvaluationError(
            f"got {len(paths)} image paths for {n} photos; give one path per "
            "row of node_probs, in the same order"
        )
    return paths


def _decision_rows(decisions: Sequence[Decision], taxonomy: Taxonomy, n: int) -> np.ndarray:
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


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _mean(values: np.ndarray) -> float | None:
    return None if values.size == 0 else float(np.mean(values))


# --------------------------------------------------------------------------------------------
# Report


def write_report(
    result: EvaluationResult,
    out_dir: str | Path,
    *,
    taxonomy: Taxonomy,
    image_paths: Sequence[str | Path] | None = None,
) -> list[Path]:
    """Write ``metrics.json`` and four PNGs (see :data:`REPORT_FILES`) into ``out_dir``.

    ``image_paths`` (default: the result's) adds up to three thumbnails of each confused pair;
    a photo that cannot be loaded becomes a grey placeholder.
    """
    if result.metrics.get("taxonomy_fingerprint") != taxonomy.fingerprint():
        raise EvaluationError(
            "the taxonomy given to write_report is not the one the result was "
            "computed with; pass the same taxonomy"
        )
    paths = (
        result.image_paths if image_paths is None else _check_paths(image_paths, result.n_images)
    )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT_FILES[0]).write_text(
            json.dumps(result.metrics, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise EvaluationError(
            f"cannot write the report to {out}: {exc.strerror}; pass a writable folder"
        ) from None
    written = [out / REPORT_FILES[0]]
    for name, draw in zip(
        REPORT_FILES[1:], (_plot_reliability, _plot_coverage, _plot_branches, _plot_confused)
    ):
        fig = draw(result, taxonomy, paths)
        target = out / name
        try:
            fig.savefig(target, dpi=_DPI)
        except OSError as exc:
            raise EvaluationError(f"cannot write {target}: {exc.strerror}") from None
        finally:
            fig.clear()  # Figure objects are not tracked by pyplot; clearing frees the artists now
        written.append(target)
    return written


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: no global figure registry, no interactive backend
    return fig


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="dimgray")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _short(text: str, width: int = 44) -> str:
    """Keep the end of a long path (the specific part): ``… > Apple > Granny-Smith``."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _plot_reliability(result: EvaluationResult, taxonomy: Taxonomy, paths: list[str] | None):
    m = result.metrics
    fig = _figure(6.4, 6.4)
    ax, ax_count = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.set_title(
        f"Reliability of the top-1 leaf confidence\nECE {_fmt(m['ece'])} "
        f"({m['ece_bins']} bins, {m['n_leaf_labels']} leaf-labelled photos)"
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    bins = m["reliability"]
    if bins:
        low = np.array([b["low"] for b in bins])
        width = np.array([b["high"] for b in bins]) - low
        acc = np.array([b["accuracy"] for b in bins])
        conf = np.array([b["confidence"] for b in bins])
        ax.bar(
            low,
            acc,
            width=width,
            align="edge",
            color="tab:blue",
            edgecolor="white",
            label="accuracy",
        )
        ax.bar(
            low,
            conf - acc,
            bottom=acc,
            width=width,
            align="edge",
            color="none",
            edgecolor="tab:red",
            hatch="//",
            linewidth=0.8,
            label="gap to confidence",
        )
        ax_count.bar(
            low,
            [b["count"] for b in bins],
            width=width,
            align="edge",
            color="gray",
            edgecolor="white",
        )
    else:
        _empty(ax, "no leaf-labelled photos")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    ax.legend(loc="upper left", fontsize="small")
    ax_count.set(xlabel="confidence of the top-1 leaf", ylabel="photos")
    return fig


def _plot_coverage(result: EvaluationResult, taxonomy: Taxonomy, paths: list[str] | None):
    m = result.metrics
    sel = result.leaf_labelled
    # A photo that may never auto-accept joins only at the last point (accept everything).
    conf = (
        result.leaf_confidence
        if result.acceptable is None
        else np.where(result.acceptable, result.leaf_confidence, 0.0)
    )
    _, coverage, precision = coverage_precision_curve(conf[sel], result.leaf_correct[sel])
    fig = _figure(6.8, 6.2)
    ax = fig.subplots()
    ax.set_title("Coverage vs. precision of the top-1 leaf as the threshold sweeps")
    if coverage.size:
        ax.step(coverage, precision, where="post", color="tab:blue", label="all thresholds")
    else:
        _empty(ax, "no leaf-labelled photos")
    colors = iter(["tab:green", "tab:orange", "tab:red", "tab:purple", "tab:brown", "tab:pink"])
    for key, t in m["thresholds_used"].items():
        color = next(colors, "black")
        ax.axhline(float(key), color=color, linestyle=":", linewidth=1)
        cov, prec = m["coverage_at_precision"][key], m["precision_at_threshold"][key]
        if t is None:
            continue
        if prec is None:  # nothing accepted: no point to place, say so in the legend
            ax.plot([], [], "o", color=color, label=f"target {key}: t={t:.3f} accepts nothing")
            continue
        ax.plot(
            [cov],
            [prec],
            "o",
            color=color,
            markersize=8,
            label=f"target {key}: t={t:.3f}, coverage {cov:.1%}, precision {prec:.1%}",
        )
    oracle = [
        (m["oracle_coverage_at_precision"][k], float(k))
        for k in m["thresholds_used"]
        if m["oracle_coverage_at_precision"][k]
    ]
    if oracle:
        ax.plot(
            *zip(*oracle),
            "x",
            color="black",
            label="oracle (threshold chosen on these photos: optimistic)",
        )
    low = min([0.5, *precision.tolist()]) if precision.size else 0.5
    ax.set(
        xlim=(0, 1.01),
        ylim=(max(0.0, low - 0.05), 1.01),
        xlabel="coverage (share of leaf-labelled photos accepted)",
        ylabel="precision",
    )
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize="small")  # keeps the curve uncovered
    return fig


def _plot_branches(result: EvaluationResult, taxonomy: Taxonomy, paths: list[str] | None):
    m = result.metrics
    branches = [
        (name, v["accuracy"], v["count"])
        for name, v in m["accuracy_by_top_level"].items()
        if v["count"]
    ]
    branches.sort(key=lambda b: -b[2])
    shown = branches[:30]
    fig = _figure(11.0, max(3.5, 0.32 * len(shown) + 1.6))
    ax, ax_depth = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    title = "Leaf accuracy per top-level branch"
    if len(branches) > len(shown):
        title += f" ({len(shown)} largest of {len(branches)})"
    ax.set_title(title)
    if shown:
        y = np.arange(len(shown))
        acc = [b[1] for b in shown]
        ax.barh(y, acc, color="tab:blue")
        ax.set_yticks(y, [_short(b[0], 30) for b in shown])
        ax.invert_yaxis()
        for yi, (_, a, count) in zip(y, shown):
            ax.text(min(a, 1.0) + 0.01, yi, f"{a:.1%} (n={count})", va="center", fontsize="small")
    else:
        _empty(ax, "no leaf-labelled photos")
    ax.set(xlim=(0, 1.25), xlabel="leaf accuracy")
    ax.set_xticks(np.linspace(0, 1, 6))  # the room right of 1.0 is for the labels

    depth_acc, depth_n = m["depth_accuracy"], m["depth_counts"]
    x = np.arange(1, len(depth_acc) + 1)
    ax_depth.bar(x, [a or 0.0 for a in depth_acc], color="tab:green")
    for xi, a, count in zip(x, depth_acc, depth_n):
        ax_depth.text(
            xi, (a or 0.0) + 0.02, f"{_fmt(a, '.1%')}\nn={count}", ha="center", fontsize="small"
        )
    ax_depth.set_xticks(x)
    ax_depth.set_yticks(np.linspace(0, 1, 6))
    ax_depth.set(
        ylim=(0, 1.2), xlabel="depth (1 = top level)", ylabel="accuracy", title="Accuracy per depth"
    )
    return fig


def _plot_confused(result: EvaluationResult, taxonomy: Taxonomy, paths: list[str] | None):
    pairs = result.metrics["confused_pairs"][:8]
    if not pairs:
        fig = _figure(6.0, 2.0)
        ax = fig.subplots()
        ax.set_axis_off()
        _empty(ax, "no confusions among the leaf-labelled photos")
        return fig
    if paths is None:
        fig = _figure(9.0, 0.45 * len(pairs) + 1.5)
        ax = fig.subplots()
        y = np.arange(len(pairs))
        ax.barh(y, [p["count"] for p in pairs], color="tab:red")
        ax.set_yticks(y, [f"{_short(p['true'], 34)} → {_short(p['predicted'], 34)}" for p in pairs])
        ax.invert_yaxis()
        ax.set(xlabel="photos", title="Most confused pairs (true → predicted top-1 leaf)")
        return fig

    fig = _figure(7.4, 1.3 * len(pairs) + 0.6)
    fig.suptitle("Most confused pairs: photos of the true class predicted as the other")
    axes = fig.subplots(len(pairs), 4, squeeze=False, gridspec_kw={"width_ratios": [2.6, 1, 1, 1]})
    for row, pair in zip(axes, pairs):
        true_row = taxonomy.row(taxonomy.by_path(pair["true"]).id)
        pred_row = taxonomy.row(taxonomy.by_path(pair["predicted"]).id)
        examples = np.flatnonzero(
            (result.true_rows == true_row) & (result.pred_leaf_rows == pred_row)
        )[:3]
        row[0].set_axis_off()
        row[0].text(
            0.0,
            0.5,
            f"true: {_short(pair['true'])}\npredicted: "
            f"{_short(pair['predicted'])}\n{pair['count']} photo"
            f"{'' if pair['count'] == 1 else 's'}",
            va="center",
            fontsize="small",
            transform=row[0].transAxes,
        )
        for ax, index in zip(row[1:], [*examples, *[None] * 3]):
            ax.set_axis_off()
            if index is not None:
                thumb = _thumbnail(paths[index])
                ax.imshow(thumb if thumb is not None else _PLACEHOLDER)
                if thumb is None:
                    ax.text(
                        0.5,
                        0.5,
                        "cannot load",
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        transform=ax.transAxes,
                    )
    return fig


def _thumbnail(path: str) -> np.ndarray | None:
    """The photo shrunk to fit the thumbnail box; None when it cannot be loaded (a report about
    thousands of photos must not fail on one that moved or broke)."""
    from catalog_ai.photos.decode import load_image

    try:
        image = load_image(path, target_size=_THUMB)
        image.thumbnail((_THUMB, _THUMB))
        return np.asarray(image)
    except (CatalogAIError, OSError, ValueError):
        return None
