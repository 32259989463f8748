"""Calibration: make stated confidence mean what it says, and pick thresholds from held-out photos.

Temperature scaling (Guo et al., 2017) divides the leaf logits by one learned ``T``: it keeps the
ranking (accuracy is unchanged) and fixes the over-confidence of fine-tuned networks. ``T`` is fit
on photos the network did not train on by minimising the same marginal likelihood the network was
trained with, so photos labelled at inner nodes count too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from catalog_ai.model.decision import Thresholds

if TYPE_CHECKING:
    import torch

    from catalog_ai.model.hierarchy import TreeIndex

PRECISION_TARGETS = ("0.95", "0.98", "0.99")

__all__ = [
    "PRECISION_TARGETS",
    "Calibration",
    "calibrate",
    "expected_calibration_error",
    "fit_temperature",
    "leaf_confidence",
    "reliability_bins",
    "threshold_for_precision",
]


def fit_temperature(
    leaf_logits: torch.Tensor, target_mask: torch.Tensor, *, max_iter: int = 200
) -> float:
    """The temperature minimising held-out NLL; 1.0 when there is nothing to fit on."""
    import torch

    from catalog_ai.model.hierarchy import marginal_nll

    if leaf_logits.shape[0] < 2:
        return 1.0
    logits = leaf_logits.detach().double()
    mask = target_mask.detach()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = marginal_nll(logits / log_t.exp(), mask)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.exp().item())
    # A degenerate split (all correct with huge margins) can push T to extremes; keep it sane.
    return float(min(max(t, 0.05), 20.0)) if math.isfinite(t) else 1.0


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Equal-width confidence bins: count, mean confidence and accuracy of each non-empty bin.

    The means are scikit-learn's ``calibration_curve`` (``strategy="uniform"``), which returns
    neither the bins' counts nor their edges; ECE and the report need both, so the counts come
    from calibration_curve's own assignment (``searchsorted`` on the inner edges: a confidence on
    an edge belongs to the bin below), and ``strict=True`` fails loudly should the two differ."""
    from sklearn.calibration import calibration_curve

    # Probabilities within the evaluation's float tolerance of [0, 1]; sklearn refuses any other.
    confidence = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    correct = np.asarray(correct, dtype=bool)
    if confidence.size == 0:
        return []
    accuracy, mean_confidence = calibration_curve(
        correct, confidence, n_bins=n_bins, strategy="uniform"
    )
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=n_bins)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "count": int(counts[b]),
            "confidence": float(c),
            "accuracy": float(a),
        }
        for b, c, a in zip(np.flatnonzero(counts), mean_confidence, accuracy, strict=True)
    ]


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over equal-width bins."""
    n = len(confidence)
    if n == 0:
        return float("nan")
    return float(
        sum(
            b["count"] * abs(b["confidence"] - b["accuracy"])
            for b in reliability_bins(confidence, correct, n_bins)
        )
        / n
    )


def threshold_for_precision(confidence: np.ndarray, correct: np.ndarray, precision: float) -> float:
    """The lowest confidence threshold whose accepted set (confidence >= t) has at least
    ``precision``; above 1 (accept nothing) when no threshold reaches it.

    Scans thresholds at every distinct confidence from the top, so the accepted set only grows;
    the lowest threshold that still meets the precision target gives the most coverage.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidence.size == 0:
        return 1.01
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    hits = np.cumsum(correct[order])
    counts = np.arange(1, len(order) + 1)
    # Only cut between distinct confidence values: ties are accepted or refused together.
    last_of_run = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    ok = (hits / counts >= precision) & last_of_run
    if not ok.any():
        return 1.01
    return float(conf_sorted[np.flatnonzero(ok)[-1]])


@dataclass
class Calibration:
    temperature: float
    thresholds: Thresholds
    node_probs: np.ndarray  # calibrated, of the photos it was fitted on
    n_photos: int


def leaf_confidence(
    node_probs: np.ndarray, rows: np.ndarray, tree: TreeIndex
) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 leaf confidence, and whether that leaf is the label or lies under it (a photo
    labelled at an inner node is hit by any leaf below it; a leaf label only by itself)."""
    leaf_rows = tree.leaf_rows.cpu().numpy()
    leaf_p = node_probs[:, leaf_rows]
    best = leaf_p.argmax(1)
    conf = leaf_p[np.arange(len(best)), best]
    chains = tree.taxonomy.leaf_ancestor_rows
    correct = np.array([rows[i] in chains[b] for i, b in enumerate(best)], dtype=bool)
    return conf, correct


def calibrate(
    leaf_logits: torch.Tensor,
    rows: torch.Tensor,
    tree: TreeIndex,
    *,
    decision_threshold: float = 0.5,
    auto_accept_precision: str = "0.98",
    enable_auto_accept: bool = True,
    source: str = "",
) -> Calibration:
    """Temperature and auto-accept thresholds from held-out photos' raw leaf logits and labels.

    ``enable_auto_accept=False`` records the thresholds but leaves auto-accept off (calibration
    photos that share photo sessions with the training photos; see ``Thresholds``)."""
    mask = tree.target_mask(rows)
    temperature = fit_temperature(leaf_logits, mask)
    node_probs = tree.node_probs((leaf_logits / temperature).softmax(1)).double().cpu().numpy()
    conf, correct = leaf_confidence(node_probs, rows.cpu().numpy(), tree)
    by_precision = {p: threshold_for_precision(conf, correct, float(p)) for p in PRECISION_TARGETS}
    thresholds = Thresholds(
        decision=decision_threshold,
        auto_accept=by_precision[auto_accept_precision] if enable_auto_accept else 1.01,
        auto_accept_by_precision=by_precision,
        auto_accept_target=auto_accept_precision,
        calibrated_on=source,
    )
    return Calibration(temperature, thresholds, node_probs, len(rows))
