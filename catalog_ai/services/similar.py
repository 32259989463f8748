"""Visual search: catalog products that look like a photo, or like a stored product.

Queries go through this host's copy of the model version's search index, caught up with the
database first (:func:`catalog_ai.services.search_index.open_index`); results are per product:
a product with several photos counts once, with its best photo, and only photos that still
exist in the database are returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import Category, Embedding, ModelVersion, Product, ProductImage
from catalog_ai.db.queries import in_chunks
from catalog_ai.index import SearchError, StoredIndex
from catalog_ai.services.models import resolve_model_version
from catalog_ai.services.search_index import decode_rows, embedding_rows, open_index
from catalog_ai.services.text_search import Hit, media_path, text_image_ids

__all__ = ["nearest_products", "similar_products"]


def _product_vectors(session: Session, mv: ModelVersion, product_id: int) -> np.ndarray:
    if session.get(Product, product_id) is None:
        raise SearchError(f"product {product_id} does not exist")
    rows = session.execute(
        embedding_rows()
        .join(ProductImage, Embedding.image_id == ProductImage.id)
        .where(ProductImage.product_id == product_id, Embedding.model_version_id == mv.id)
        .order_by(Embedding.id)
    ).all()
    if not rows:
        raise SearchError(
            f"product {product_id} has no embedding from model {mv.version}; "
            "embed the catalog with "
            "this model, then run: catalog-ai index update"
        )
    return decode_rows(rows)[2]


def nearest_products(
    session: Session,
    stored: StoredIndex,
    queries: np.ndarray,
    k: int,
    *,
    allowed: np.ndarray | None,
    exclude_product: int | None,
) -> list[tuple[int, float, int]]:
    """Best ``k`` ``(product_id, score, image_id)``: max over the queries and over a product's
    photos. Over-fetches photos until ``k`` distinct products are found or the index runs out."""
    available = len(stored.index) if allowed is None else len(allowed)
    fetch = min(max(4 * k, 16), max(available, 1))
    while True:
        scores, image_ids = stored.search(queries, fetch, allowed=allowed)
        best: dict[int, float] = {}
        for s, i in zip(scores.ravel(), image_ids.ravel(), strict=True):
            if i >= 0 and s > best.get(int(i), -np.inf):
                best[int(i)] = float(s)
        owner = _image_owners(session, list(best))
        per_product: dict[int, tuple[float, int]] = {}
        for image_id, score in best.items():
            pid = owner.get(image_id)  # None: deleted since the index was updated
            if pid is None or pid == exclude_product:
                continue
            if score > per_product.get(pid, (-np.inf, 0))[0]:
                per_product[pid] = (score, image_id)
        if len(per_product) >= k or fetch >= available:
            break
        fetch = min(fetch * 4, available)
    ranked = sorted(per_product.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
    return [(pid, score, image_id) for pid, (score, image_id) in ranked]


def _image_owners(session: Session, image_ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for chunk in in_chunks(image_ids):
        out.update(
            (image_id, product_id)
            for image_id, product_id in session.execute(
                select(ProductImage.id, ProductImage.product_id).where(ProductImage.id.in_(chunk))
            )
        )
    return out


def similar_products(
    session: Session,
    *,
    model_version: ModelVersion | str | Path | None,
    query_vector: np.ndarray | None = None,
    product_id: int | None = None,
    k: int = 10,
    text: str | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> list[Hit]:
    """Products that look like a photo (``query_vector``: its raw embedding from this model
    version) or like a stored product (``product_id``: its photos' stored embeddings; the product
    itself is left out). ``text`` keeps only products matching :func:`text_search`'s rule.
    ``cache_dir``: this host's index cache (default ``CATALOG_AI_INDEX_CACHE_DIR``);
    ``progress``: a progress bar when this host has to build its copy first."""
    if (query_vector is None) == (product_id is None):
        raise SearchError("give exactly one of query_vector (a photo's embedding) or product_id")
    if k < 1:
        raise SearchError(f"k={k} must be at least 1")
    mv = resolve_model_version(session, model_version)
    stored = open_index(session, mv, cache_dir, progress=progress)
    raw = (
        _product_vectors(session, mv, product_id)
        if product_id is not None
        else np.asarray(query_vector)
    )
    queries = stored.transform.apply(raw)
    allowed = text_image_ids(session, text) if text is not None else None
    if allowed is not None and not len(allowed):
        return []
    found = nearest_products(
        session, stored, queries, k, allowed=allowed, exclude_product=product_id
    )
    return _hits(session, found)


def _hits(session: Session, found: list[tuple[int, float, int]]) -> list[Hit]:
    if not found:
        return []
    pids = [pid for pid, _, _ in found]
    info = {
        pid: (title, path)
        for pid, title, path in session.execute(
            select(Product.id, Product.title, Category.path)
            .outerjoin(Category, Product.category_id == Category.id)
            .where(Product.id.in_(pids))
        )
    }
    paths = {
        image_id: path
        for image_id, path in session.execute(
            select(ProductImage.id, ProductImage.stored_path).where(
                ProductImage.id.in_([image_id for _, _, image_id in found])
            )
        )
    }
    return [
        Hit(
            product_id=pid,
            score=round(score, 6),
            title=info[pid][0],
            category_path=info[pid][1],
            image_path=media_path(paths.get(image_id)),
        )
        for pid, score, image_id in found
        if pid in info
    ]
