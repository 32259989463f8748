"""Classifying products of several photos: every photo prepared and run, one decision each.

Each photo is read, decoded and run through the network on its own terms: a photo that cannot
be decoded or makes the network fail is left out with its reason, and its product is decided on
its remaining photos (:meth:`Predictor.decide_product` fuses their calibrated distributions).
Only a product none of whose photos works fails, with every photo's reason. Photos of all the
products go through the network together, in the predictor's batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catalog_ai.errors import ImageError
from catalog_ai.inference.analysis import Analysis

if TYPE_CHECKING:
    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.model.decision import Decision

__all__ = ["PhotoResult", "ProductPrediction", "predict_products"]

log = logging.getLogger(__name__)

Source = str | Path | bytes


@dataclass
class PhotoResult:
    """One photo of a product: its embedding when the network ran on it, else why not."""

    name: str
    embedding: np.ndarray | None = None
    error: str | None = None


@dataclass
class ProductPrediction:
    """A product's decision fused from the photos that worked, or why there is none."""

    photos: list[PhotoResult]
    decision: Decision | None = None
    error: str | None = None
    analysis: Analysis | None = field(default=None, repr=False)  # of the photos used, in order

    @property
    def photos_used(self) -> int:
        return sum(p.embedding is not None for p in self.photos)


def predict_products(
    predictor: Predictor,
    products: Sequence[Sequence[Source]],
    *,
    names: Sequence[Sequence[str]] | None = None,
) -> list[ProductPrediction]:
    """One :class:`ProductPrediction` per product of ``products`` (each a list of photos, in
    the order they are shown); never raises for a photo or a product."""
    if names is None:
        names = [
            [
                s if isinstance(s, str) else str(s) if isinstance(s, Path) else f"upload-{i}-{j}"
                for j, s in enumerate(photos)
            ]
            for i, photos in enumerate(products)
        ]
    out = [ProductPrediction([PhotoResult(n) for n in product_names]) for product_names in names]
    flat = [(i, j) for i, photos in enumerate(products) for j in range(len(photos))]
    done: dict[tuple[int, int], tuple[Analysis, int]] = {}
    size = predictor.batch_size
    for start in range(0, len(flat), size):
        ready: list[tuple[tuple[int, int], np.ndarray]] = []
        for i, j in flat[start : start + size]:
            try:
                ready.append(((i, j), predictor.prepare(products[i][j], name=names[i][j])))
            except ImageError as exc:
                out[i].photos[j].error = exc.reason
        for (key, _), result in zip(
            ready, predictor.analyse_each([sq for _, sq in ready]), strict=True
        ):
            if isinstance(result, str):
                out[key[0]].photos[key[1]].error = result
            else:
                done[key] = result
    for i, product in enumerate(out):
        used = [j for j in range(len(product.photos)) if (i, j) in done]
        if not used:
            product.error = _no_photo_worked(product.photos)
            continue
        analysis = Analysis.stack([done[i, j] for j in used])
        try:
            product.decision = predictor.decide_product(analysis, range(len(used)))
        except Exception as exc:
            log.exception("deciding on product %d of the chunk failed", i)
            product.error = f"the model could not decide on this product ({exc})"
            continue
        product.analysis = analysis
        for k, j in enumerate(used):
            product.photos[j].embedding = analysis.embeddings[k]
    return out


def _no_photo_worked(photos: Sequence[PhotoResult]) -> str:
    if len(photos) == 1:
        return photos[0].error or "the photo could not be used"
    reasons = "; ".join(f"photo {k + 1}: {p.error}" for k, p in enumerate(photos))
    return f"none of the {len(photos)} photos could be used ({reasons})"
