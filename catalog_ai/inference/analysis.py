"""What the predictor returns per photo: an analysis of a batch, and one photo's prediction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from catalog_ai.model.decision import Decision

__all__ = ["Analysis", "Prediction"]


@dataclass
class Analysis:
    embeddings: np.ndarray  # (B, D) raw backbone embeddings
    node_probs: np.ndarray  # (B, n_nodes) calibrated, head and prototypes fused
    from_prototype: np.ndarray  # (B,) bool: the most probable category is prototype-only
    open_set: np.ndarray  # (B,) bool: far from every known category
    # (B, classes) calibrated class distribution (head leaves, then prototype-only categories):
    # what a product's photos are fused on (see Predictor.decide_product)
    class_probs: np.ndarray | None = None

    def take(self, rows: Sequence[int]) -> Analysis:
        """The rows ``rows`` of this analysis, in that order."""
        idx = np.asarray(rows, dtype=np.int64)
        return Analysis(
            self.embeddings[idx],
            self.node_probs[idx],
            self.from_prototype[idx],
            self.open_set[idx],
            None if self.class_probs is None else self.class_probs[idx],
        )

    @classmethod
    def stack(cls, parts: Sequence[tuple[Analysis, int]]) -> Analysis:
        """One analysis of the photos ``(analysis, row)`` that came from different batches."""
        rows = [a.take([j]) for a, j in parts]
        probs = [r.class_probs for r in rows]
        return cls(
            np.concatenate([r.embeddings for r in rows]),
            np.concatenate([r.node_probs for r in rows]),
            np.concatenate([r.from_prototype for r in rows]),
            np.concatenate([r.open_set for r in rows]),
            None if any(p is None for p in probs) else np.concatenate(probs),  # type: ignore[arg-type]
        )


@dataclass
class Prediction:
    """One photo's outputs: its embedding, node probabilities and decision (or the error)."""

    source: str
    decision: Decision | None = None
    embedding: np.ndarray | None = None
    node_probs: np.ndarray | None = None
    error: str | None = None
