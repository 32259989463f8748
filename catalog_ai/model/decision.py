"""The Decision: what a prediction returns everywhere (CLI JSON, database row, dashboard, worker).

A decision walks down the tree from the top, taking the most probable child at each level while
its calibrated probability reaches the threshold, and stops where it does not: the photo gets the
deepest category the model is confident about (``Fruit > Apple``) instead of a wrong leaf. With a
threshold of at least 0.5 this is the same as "the deepest node whose probability reaches the
threshold", and that node is unique.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np

from catalog_ai.taxonomy import Taxonomy

__all__ = ["Candidate", "Decider", "Decision", "Thresholds"]


@dataclass(frozen=True)
class Candidate:
    path: str
    probability: float


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds of a model bundle (calibrated probabilities).

    ``decision``: the walk down the tree stops below this. ``auto_accept``: a decision whose
    confidence reaches it is accepted without review; above 1 means never.
    ``auto_accept_by_precision``: the threshold that reached each precision target on the
    calibration photos; ``auto_accept_target`` says which one ``auto_accept`` uses once enabled.
    Auto-accept is only switched on when the calibration photos are independent of the training
    photos (a separate folder, or reviewed uploads): photos held out from the same photo sessions
    overstate the model's certainty on new uploads.
    """

    decision: float = 0.5
    auto_accept: float = 1.01  # never, until calibrated on independent photos
    auto_accept_by_precision: dict[str, float] = field(default_factory=dict)
    auto_accept_target: str = "0.98"
    calibrated_on: str = ""

    @property
    def auto_accept_enabled(self) -> bool:
        return self.auto_accept <= 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds:
        return cls(
            decision=float(data.get("decision", 0.5)),
            auto_accept=float(data.get("auto_accept", 1.01)),
            auto_accept_by_precision={
                k: float(v) for k, v in data.get("auto_accept_by_precision", {}).items()
            },
            auto_accept_target=str(data.get("auto_accept_target", "0.98")),
            calibrated_on=str(data.get("calibrated_on", "")),
        )


@dataclass(frozen=True)
class Decision:
    path: str  # the chosen category, "" when the model abstains even at the top level
    depth: int  # 0 when abstaining
    # Calibrated probability of the chosen category (of the best top level when abstaining).
    confidence: float
    leaf_path: str  # the most probable leaf, even when the decision backed off above it
    leaf_confidence: float
    levels: list[list[Candidate]]  # per depth (depth 1 first): top-k categories with probabilities
    source: str  # head | prototype | abstain
    model_version: str
    auto_accept: bool = False
    open_set: bool = False  # "possibly a new category": far from everything the model knows

    @property
    def backed_off(self) -> bool:
        return self.path != self.leaf_path

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "depth": self.depth,
            "confidence": round(self.confidence, 6),
            "leaf_path": self.leaf_path,
            "leaf_confidence": round(self.leaf_confidence, 6),
            "levels": [
                [{"path": c.path, "probability": round(c.probability, 6)} for c in level]
                for level in self.levels
            ],
            "source": self.source,
            "model_version": self.model_version,
            "auto_accept": self.auto_accept,
            "open_set": self.open_set,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Decision:
        return cls(
            path=data["path"],
            depth=int(data["depth"]),
            confidence=float(data["confidence"]),
            leaf_path=data["leaf_path"],
            leaf_confidence=float(data["leaf_confidence"]),
            levels=[
                [Candidate(c["path"], float(c["probability"])) for c in level]
                for level in data["levels"]
            ],
            source=data["source"],
            model_version=data["model_version"],
            auto_accept=bool(data.get("auto_accept", False)),
            open_set=bool(data.get("open_set", False)),
        )


class Decider:
    """Makes decisions over one taxonomy; holds the tree as plain arrays so each call is cheap."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        thresholds: Thresholds,
        *,
        model_version: str,
        top_k: int = 5,
        class_rows: Sequence[int] | None = None,
    ):
        self.taxonomy = taxonomy
        self.thresholds = thresholds
        self.model_version = model_version
        self.top_k = top_k
        self.texts = [n.text for n in taxonomy]
        self.depths = np.array([n.depth for n in taxonomy], dtype=np.int64)
        self.children: list[list[int]] = [[] for _ in self.texts]
        self.roots: list[int] = []
        for row, parent in enumerate(taxonomy.parent_rows):
            (self.children[parent] if parent >= 0 else self.roots).append(row)
        max_depth = int(self.depths.max(initial=0))
        self.rows_at_depth = [np.flatnonzero(self.depths == d) for d in range(1, max_depth + 1)]
        # The categories the model outputs (the tree's leaves unless few-shot categories made an
        # inner node a category of its own): "leaf_path" below means the most probable of these.
        if class_rows is None:
            class_rows = [taxonomy.row(i) for i in taxonomy.leaf_ids]
        self.leaf_rows = np.asarray(class_rows, dtype=np.int64)
        self._class_set = set(self.leaf_rows.tolist())

    def top_k_per_depth(self, probs: np.ndarray) -> list[list[Candidate]]:
        levels = []
        for rows in self.rows_at_depth:
            k = min(self.top_k, len(rows))
            top = rows[np.argpartition(-probs[rows], k - 1)[:k]] if k < len(rows) else rows
            top = top[np.argsort(-probs[top], kind="stable")]
            levels.append([Candidate(self.texts[r], float(probs[r])) for r in top])
        return levels

    def decide(
        self,
        node_probs: np.ndarray | Sequence[float],
        *,
        source: str = "head",
        open_set: bool = False,
    ) -> Decision:
        """One photo's decision from its node probabilities (in taxonomy row order)."""
        probs = np.asarray(node_probs, dtype=np.float64)
        row, chosen_p = -1, 0.0
        options = self.roots
        while options:
            if open_set:
                # Far from every known category: never claim a category the model outputs (a
                # likely wrong one); stop at the deepest confident grouping above them instead.
                options = [r for r in options if self.children[r] and r not in self._class_set]
                if not options:
                    break
            best = max(options, key=lambda r: probs[r])
            if probs[best] < self.thresholds.decision:
                break
            row, chosen_p = best, float(probs[best])
            options = self.children[best]
        leaf_row = int(self.leaf_rows[np.argmax(probs[self.leaf_rows])])
        common = partial(
            Decision,
            leaf_path=self.texts[leaf_row],
            leaf_confidence=float(probs[leaf_row]),
            levels=self.top_k_per_depth(probs),
            model_version=self.model_version,
            open_set=open_set,
        )
        if row < 0:
            best_root = max(self.roots, key=lambda r: probs[r])
            return common(path="", depth=0, confidence=float(probs[best_root]), source="abstain")
        is_class = row in self._class_set
        return common(
            path=self.texts[row],
            depth=int(self.depths[row]),
            confidence=chosen_p,
            source=source,
            # Auto-accept thresholds are calibrated for the trained head; prototype-only
            # categories (a few examples) and far-away photos always go to a reviewer.
            auto_accept=bool(
                is_class
                and source == "head"
                and not open_set
                and chosen_p >= self.thresholds.auto_accept
            ),
        )
