"""One distribution per product from the calibrated class distributions of its photos.

A product in a shop has several photos (front, back, a detail); the model sees each photo on its
own and gives a calibrated distribution over its classes (the head's leaves and any
prototype-only categories). A product's decision is made on ONE distribution fused from them,
so the tree walk, the back-off and the thresholds work unchanged.

The rules (:data:`RULES`):

``mean``
    The average of the photos' distributions: the default, chosen by measurement
    (benchmarks/multiphoto.py; docs/BENCHMARKS.md, "Issue 15: multi-photo products"). On
    synthetic 2- and 3-photo products it was the only rule whose mean confidence stayed at or
    below its leaf accuracy (the product rules and the most confident photo were 5 to 19
    points over it), so thresholds set for single photos do not accept more wrong products;
    it reached the highest precision at the model's 98 % threshold, and its leaf accuracy was
    within the spread of the best rule's. A mixture is never more confident than its most
    confident photo: it cannot make up certainty that no single photo has. The cost: on top
    of a model whose single photos are calibrated, the mean is under-confident on products
    (it measured so on the train hold-out), so some products wait for review that the
    geometric mean would have accepted safely.
``product``
    Product of experts: ``p ∝ exp(Σ log p_i / T)``. ``T = 1`` treats the photos as independent
    evidence, ``T = n`` is the geometric mean (fully redundant photos). Photos of one product
    are strongly correlated, so ``T = 1`` overstates certainty; ``temperature_exponent`` ``β``
    sets ``T = n ** β`` (``β`` fitted on held-out training photos by the benchmark).
``most_confident``
    The distribution of the single photo whose top class is most probable.

Averaging the photos' embeddings and running the head once is a fourth rule the benchmark
measures (through :meth:`Predictor.analyse_embeddings`: it needs the network). With a linear head
and no prototype-only category it is the geometric mean exactly (the mean of the logits is the
logits of the mean embedding), and it measured the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catalog_ai.errors import CatalogAIError

__all__ = ["DEFAULT_RULE", "RULES", "PhotoFusion", "PhotoFusionError", "fuse_photos"]

RULES = ("mean", "product", "most_confident")
DEFAULT_RULE = "mean"
# log(0) is -inf: one photo that rules a class out exactly would veto it for the product.
_FLOOR = 1e-12


class PhotoFusionError(CatalogAIError):
    """The photos' distributions cannot be fused (no photo, mismatched shapes, unknown rule)."""


@dataclass(frozen=True)
class PhotoFusion:
    """How a product's photo distributions become one (see the module docstring)."""

    rule: str = DEFAULT_RULE
    # product rule only: T = n ** temperature_exponent (0: independent photos, 1: geometric mean)
    temperature_exponent: float = 1.0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise PhotoFusionError(
                f"unknown photo fusion rule {self.rule!r}; use one of {', '.join(RULES)}"
            )

    def fuse(self, class_probs: np.ndarray) -> np.ndarray:
        return fuse_photos(class_probs, self.rule, temperature_exponent=self.temperature_exponent)

    def chosen_photo(self, class_probs: np.ndarray) -> int | None:
        """The row the ``most_confident`` rule keeps; None for the rules that use every photo."""
        if self.rule != "most_confident":
            return None
        return int(np.argmax(_check(class_probs).max(axis=1)))


def fuse_photos(
    class_probs: np.ndarray, rule: str = DEFAULT_RULE, *, temperature_exponent: float = 1.0
) -> np.ndarray:
    """``(n_photos, n_classes)`` calibrated distributions → one ``(n_classes,)`` distribution.

    One photo gives its own distribution back under every rule, so a single-photo product is
    decided exactly as before."""
    probs = _check(class_probs)
    fused: np.ndarray
    if len(probs) == 1:
        fused = probs[0].copy()
    elif rule == "mean":
        fused = probs.mean(axis=0)
    elif rule == "product":
        temperature = float(len(probs)) ** temperature_exponent
        log_p = np.log(np.clip(probs, _FLOOR, 1.0)).sum(axis=0) / temperature
        fused = np.exp(log_p - log_p.max())
    elif rule == "most_confident":
        fused = probs[int(np.argmax(probs.max(axis=1)))].copy()
    else:
        raise PhotoFusionError(f"unknown photo fusion rule {rule!r}; use one of {', '.join(RULES)}")
    return np.asarray(fused / fused.sum(), dtype=np.float64)


def _check(class_probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(class_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] == 0:
        raise PhotoFusionError(
            f"photo distributions have shape {probs.shape}; give (photos, classes) with at least "
            "one photo"
        )
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise PhotoFusionError(
            "photo distributions hold negative or non-finite values; give calibrated probabilities"
        )
    return probs
