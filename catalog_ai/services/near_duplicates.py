"""Near duplicates: the catalog product a new photo most likely shows again, and marking the
products that do (after the suggestion is committed, never under ``record``'s row locks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import update
from sqlalchemy.orm import Session

from catalog_ai.db import ModelVersion, Product
from catalog_ai.index import SearchError
from catalog_ai.services.models import resolve_model_version
from catalog_ai.services.search_index import open_index
from catalog_ai.services.similar import nearest_products

__all__ = ["DUPLICATE_THRESHOLDS", "find_near_duplicates", "flag_near_duplicates"]

# Descriptor cosine at or above which a photo is flagged as showing a catalog product again, per
# descriptor kind (similarities are not comparable across kinds). Measured on the Grocery photos
# with the default settings (benchmarks/search.py): the lowest value at which at most 1 % of
# photos of products *absent* from a ~1,300-photo catalog are flagged. At it, 73 % of re-shoot
# proxies (a perturbed copy of a catalog photo) are flagged with the right twin, but only 3 % of
# photos of the same product taken on another day: it catches re-uploads and re-shoots of one
# scene, not "the same product" in general (frozen ImageNet features; re-measure for a model).
DUPLICATE_THRESHOLDS: dict[str, float] = {"pca_whiten": 0.82, "center_l2": 0.81, "l2": 0.88}


def find_near_duplicates(
    session: Session,
    *,
    model_version: ModelVersion | str | Path | None,
    vector: np.ndarray,
    exclude_product_id: int | None = None,
    threshold: float | None = None,
    cache_dir: Path | None = None,
    build: bool = True,
) -> tuple[int, float] | None:
    """The catalog product that ``vector`` (a new photo's raw embedding) most likely shows again:
    ``(product_id, cosine)`` when its best photo scores at least ``threshold`` (default: the
    index's descriptor kind in :data:`DUPLICATE_THRESHOLDS`), else None.
    ``exclude_product_id``: the uploaded product itself, when it is already in the catalog.
    ``build``: build this host's copy of the index when it has none (else a SearchError)."""
    if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
        raise SearchError(f"threshold={threshold} is not a cosine; give a value in [-1, 1]")
    mv = resolve_model_version(session, model_version)
    stored = open_index(session, mv, cache_dir, build=build)
    threshold = (
        DUPLICATE_THRESHOLDS[stored.transform.kind] if threshold is None else float(threshold)
    )
    query = stored.transform.apply(np.asarray(vector))
    if len(query) != 1:
        raise SearchError(f"give one photo's embedding, got {len(query)}")
    found = nearest_products(
        session, stored, query, 1, allowed=None, exclude_product=exclude_product_id
    )
    if not found or found[0][1] < threshold:
        return None
    return found[0][0], found[0][1]


def flag_near_duplicates(
    session: Session, candidates: Sequence[tuple[int, np.ndarray]], *, model_version_id: int
) -> list[int]:
    """Mark products that look like one already in the search index (the same product
    photographed twice); returns the ids marked. ``candidates`` are ``(product id, embedding)``
    from :attr:`RecordSummary.new_embeddings`.

    Run in its own transaction after ``record`` has committed: searching the index takes time
    (loading it, reading vectors), and under ``record``'s row locks it would hold up reviewers
    and other workers. Without an index on this host yet (a new model, an empty catalog, a
    worker machine that has not run ``refresh_index``) nothing is marked: building one takes
    minutes at a million photos, too long inside a classification task.
    """
    if not candidates:
        return []
    mv = session.get(ModelVersion, model_version_id)
    if mv is None:
        return []
    flagged = []
    for product_id, vector in candidates:
        try:
            twin = find_near_duplicates(
                session,
                model_version=mv,
                vector=vector,
                exclude_product_id=product_id,
                build=False,
            )
        except SearchError:
            break  # no index for this model version (yet)
        if twin is not None:
            session.execute(
                update(Product)
                .where(Product.id == product_id)
                .values(duplicate_of_id=twin[0], duplicate_score=float(twin[1]))
                .execution_options(synchronize_session=False)
            )
            flagged.append(product_id)
    return flagged
