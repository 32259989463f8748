"""Similar-product search, text search and near-duplicate detection over one index per model.

The ``embeddings`` table is the truth; the index under ``<model_dir>/index/<version>/`` is a
cache of it, keyed by ``ProductImage.id``: :func:`build_index` makes it from scratch,
:func:`update_index` adds the embeddings it lacks and drops those gone from the database.
Results are per product: a product with several photos counts once, with its best photo.

Text search is portable SQL (``ILIKE`` on PostgreSQL, ``lower() LIKE`` on SQLite): every word of
the query must occur, as a substring, in the product's title or the path of its accepted
category. Substrings suit short product titles ("juice" finds "Orange-Juice") and need no extra
tables or triggers on either database; the cost is a scan of the products table (timed in
``benchmarks/search.py``). SQLite folds case for ASCII letters only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Category, Embedding, ModelVersion, Product, ProductImage
from catalog_ai.index import (
    DEFAULT_DESCRIPTOR,
    DescriptorConfig,
    IndexConfig,
    IndexManifest,
    SearchError,
    StoredIndex,
    VectorIndex,
    create_index,
    fit_descriptor_transform,
    index_dir,
    index_lock,
    load_stored_index,
    read_manifest,
    remember_stored_index,
    save_stored_index,
)
from catalog_ai.index.store import now_iso
from catalog_ai.model.bundle import BundleError, ModelBundle
from catalog_ai.photos.store import MediaStore
from catalog_ai.settings import get_settings

__all__ = [
    "DUPLICATE_THRESHOLDS",
    "Hit",
    "IndexStatus",
    "build_index",
    "find_near_duplicates",
    "index_status",
    "resolve_model_version",
    "similar_products",
    "text_search",
    "update_index",
]

# Descriptor cosine at or above which a photo is flagged as showing a catalog product again, per
# descriptor kind (similarities are not comparable across kinds). Measured on the Grocery photos
# with the default settings (benchmarks/search.py): the lowest value at which at most 1 % of
# photos of products *absent* from a ~1,300-photo catalog are flagged. At it, 73 % of re-shoot
# proxies (a perturbed copy of a catalog photo) are flagged with the right twin, but only 3 % of
# photos of the same product taken on another day: it catches re-uploads and re-shoots of one
# scene, not "the same product" in general (frozen ImageNet features; re-measure for a model).
DUPLICATE_THRESHOLDS: dict[str, float] = {"pca_whiten": 0.82, "center_l2": 0.81, "l2": 0.88}

_CHUNK = 5_000  # embeddings decoded per batch when building
_IN_CHUNK = 900  # ids per IN (...) list: below SQLite's smallest variable limit
_REFIT_GROWTH = 2.0  # refit the descriptor once the catalog is twice what it was fitted on


@dataclass(frozen=True)
class Hit:
    """One product found, with the photo that matched (visual search) or its first photo."""

    product_id: int
    score: float
    title: str
    category_path: str | None
    image_path: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IndexStatus:
    model_version: str
    path: str
    exists: bool
    n_embeddings: int  # rows in the database for this model version
    n_indexed: int = 0
    n_dead: int = 0
    n_pending: int = 0  # embeddings newer than the index (run update)
    kind: str | None = None
    dim: int | None = None
    input_dim: int | None = None
    descriptor: str | None = None
    bytes: int = 0
    built_at: str | None = None
    updated_at: str | None = None

    @property
    def up_to_date(self) -> bool:
        return self.exists and self.n_pending == 0 and self.n_indexed == self.n_embeddings

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "up_to_date": self.up_to_date}


# --------------------------------------------------------------------------- model versions
def resolve_model_version(
    session: Session, model: ModelVersion | str | Path | None
) -> ModelVersion:
    """A registered model version from a row, a version id, a bundle directory, or None (active)."""
    if isinstance(model, ModelVersion):
        return model
    if model is None:
        row = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
        if row is None:
            raise SearchError(
                "no model is active; give a model version or bundle directory (--model)"
            )
        return row
    text = str(model)
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == text))
    if row is not None:
        return row
    if Path(text).is_dir():
        bundle = ModelBundle.load(text)
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == bundle.version))
        if row is None:
            raise BundleError(
                f"model {bundle.version} ({text}) is not registered in the catalog; register it "
                f"first: catalog-ai models register {text}"
            )
        return row
    known = session.scalars(
        select(ModelVersion.version).order_by(ModelVersion.id.desc()).limit(5)
    ).all()
    raise SearchError(
        f"no registered model version or bundle directory {text!r}"
        + (
            f"; known versions: {', '.join(known)}"
            if known
            else "; register one: catalog-ai models register DIR"
        )
    )


def _path_for(mv: ModelVersion, model_dir: Path | None) -> Path:
    return index_dir(model_dir or get_settings().model_dir, mv.version)


def _no_embeddings(mv: ModelVersion) -> SearchError:
    return SearchError(
        f"model {mv.version} has no embeddings of catalog photos yet, so there is nothing to "
        "search: run catalog-ai index build after the catalog is embedded with this model "
        f"(catalog-ai index build --model {mv.version})"
    )


# --------------------------------------------------------------------------- embeddings
def _decode(rows: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embedding ids, image ids, vectors) from ``(id, image_id, dim, vector)`` rows."""
    emb_ids, image_ids, vectors = [], [], []
    for emb_id, image_id, dim, blob in rows:
        if len(blob) != dim * 4:
            raise SearchError(
                f"embedding {emb_id} is corrupt ({len(blob)} bytes for dim={dim}); recompute it"
            )
        emb_ids.append(emb_id)
        image_ids.append(image_id)
        vectors.append(np.frombuffer(blob, dtype="<f4"))
    if len({len(v) for v in vectors}) > 1:
        raise SearchError(
            "the embeddings of one model version have different widths "
            f"({sorted({len(v) for v in vectors})}); recompute them with one model"
        )
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.empty((0, 0), np.float32)
    return np.asarray(emb_ids, np.int64), np.asarray(image_ids, np.int64), matrix


_COLUMNS = (Embedding.id, Embedding.image_id, Embedding.dim, Embedding.vector)


def _embeddings_by_id(
    session: Session, emb_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = []
    for start in range(0, len(emb_ids), _IN_CHUNK):
        chunk = [int(i) for i in emb_ids[start : start + _IN_CHUNK]]
        parts.append(_decode(session.execute(select(*_COLUMNS).where(Embedding.id.in_(chunk)))))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 0), np.float32)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _key_rows(session: Session, mv: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
    rows = session.execute(
        select(Embedding.id, Embedding.image_id)
        .where(Embedding.model_version_id == mv.id)
        .order_by(Embedding.id)
    ).all()
    return (
        np.fromiter((r[0] for r in rows), np.int64, len(rows)),
        np.fromiter((r[1] for r in rows), np.int64, len(rows)),
    )


# --------------------------------------------------------------------------- build / update
def build_index(
    session: Session,
    model_version: ModelVersion | str | Path | None,
    *,
    descriptor: DescriptorConfig | None = None,
    config: IndexConfig | None = None,
    model_dir: Path | None = None,
) -> IndexStatus:
    """(Re)build the model version's index from all its embeddings: fit the descriptor transform
    on them, choose exact or HNSW by size, save a new generation."""
    mv = resolve_model_version(session, model_version)
    path = _path_for(mv, model_dir)
    with index_lock(path):
        _build_locked(session, mv, path, descriptor or DEFAULT_DESCRIPTOR, config or IndexConfig())
    return index_status(session, mv, model_dir=model_dir)


def _build_locked(
    session: Session,
    mv: ModelVersion,
    path: Path,
    descriptor: DescriptorConfig,
    config: IndexConfig,
) -> StoredIndex:
    emb_ids, _ = _key_rows(session, mv)
    if not len(emb_ids):
        raise _no_embeddings(mv)
    # Fit on (a seeded sample of) the embeddings, then stream all of them through: a million
    # raw embeddings would not fit in memory at once.
    rng = np.random.default_rng(descriptor.seed)
    fit_ids = (
        emb_ids
        if len(emb_ids) <= descriptor.max_fit_samples
        else np.sort(rng.choice(emb_ids, descriptor.max_fit_samples, replace=False))
    )
    _, _, fit_vectors = _embeddings_by_id(session, fit_ids)
    transform = fit_descriptor_transform(fit_vectors, descriptor)
    del fit_vectors
    index = create_index(transform.dim, size=len(emb_ids), config=config)
    max_id = 0
    for start in range(0, len(emb_ids), _CHUNK):
        chunk = emb_ids[start : start + _CHUNK]  # sorted: one range scan per chunk
        ids, image_ids, vectors = _decode(
            session.execute(
                select(*_COLUMNS).where(
                    Embedding.model_version_id == mv.id,
                    Embedding.id.between(int(chunk[0]), int(chunk[-1])),
                )
            )
        )
        _check_width(mv, transform.input_dim, vectors)
        index.add(image_ids, transform.apply(vectors))
        max_id = max(max_id, int(ids.max()))
    built = now_iso()
    manifest = IndexManifest(
        model_version=mv.version,
        kind=index.kind,
        dim=index.dim,
        input_dim=transform.input_dim,
        n_alive=0,
        n_dead=0,
        max_embedding_id=max_id,
        transform={},
        config={},
        bytes=0,
        built_at=built,
        updated_at=built,
        extra={"descriptor": asdict(descriptor)},
    )
    manifest = save_stored_index(path, index, transform, manifest)
    stored = StoredIndex(index=index, transform=transform, manifest=manifest, path=path)
    remember_stored_index(stored)
    return stored


def _check_width(mv: ModelVersion, expected: int, vectors: np.ndarray) -> None:
    if len(vectors) and vectors.shape[1] != expected:
        raise SearchError(
            f"model {mv.version} has embeddings of {vectors.shape[1]} values and of {expected}; "
            "recompute them with one model, then rebuild: catalog-ai index build"
        )


def update_index(
    session: Session,
    model_version: ModelVersion | str | Path | None,
    *,
    model_dir: Path | None = None,
) -> IndexStatus:
    """Bring the index in line with the database: add new embeddings, drop deleted ones.

    Builds from scratch when there is no index yet, when the descriptor was fitted on less than
    half of today's catalog, and when the width of the embeddings changed. An exact index that
    outgrew ``ann_threshold`` becomes HNSW; tombstones beyond ``compact_ratio`` are compacted.
    """
    mv = resolve_model_version(session, model_version)
    path = _path_for(mv, model_dir)
    with index_lock(path):
        stored = load_stored_index(path, cached=False)
        if stored is None:
            _build_locked(session, mv, path, DEFAULT_DESCRIPTOR, IndexConfig())
        else:
            _update_locked(session, mv, stored)
    return index_status(session, mv, model_dir=model_dir)


def _update_locked(session: Session, mv: ModelVersion, stored: StoredIndex) -> None:
    index, transform, manifest = stored.index, stored.transform, stored.manifest
    descriptor = DescriptorConfig(**manifest.extra.get("descriptor", asdict(DEFAULT_DESCRIPTOR)))
    emb_ids, image_ids = _key_rows(session, mv)
    n = len(emb_ids)
    n_fit = int(transform.info.get("n_fit", 0))
    grew = n_fit > 0 and n_fit * _REFIT_GROWTH < min(n, descriptor.max_fit_samples)
    upgrade_kind = transform.kind != descriptor.kind and n >= descriptor.min_samples and n > n_fit
    if n and (grew or upgrade_kind):
        _build_locked(session, mv, stored.path, descriptor, index.config)
        return
    indexed = index.ids()
    gone = np.setdiff1d(indexed, image_ids, assume_unique=True)
    fresh = (emb_ids > manifest.max_embedding_id) | ~np.isin(image_ids, indexed)
    changed = bool(len(gone) or fresh.any())
    index.remove(gone)
    if fresh.any():
        ids, img, vectors = _embeddings_by_id(session, emb_ids[fresh])
        if len(vectors) and vectors.shape[1] != transform.input_dim:  # a new width: start over
            _build_locked(session, mv, stored.path, descriptor, index.config)
            return
        index.add(img, transform.apply(vectors))
        manifest.max_embedding_id = max(manifest.max_embedding_id, int(ids.max()))
    if index.kind == "exact" and len(index) > index.config.ann_threshold:
        bigger = create_index(index.dim, size=len(index), config=index.config)
        bigger.add(*index.items())
        index, changed = bigger, True
    if index.needs_compaction:
        index.compact()
        changed = True
    if changed:
        manifest = save_stored_index(stored.path, index, transform, manifest)
        remember_stored_index(
            StoredIndex(index=index, transform=transform, manifest=manifest, path=stored.path)
        )


def index_status(
    session: Session,
    model_version: ModelVersion | str | Path | None,
    *,
    model_dir: Path | None = None,
) -> IndexStatus:
    """Counts from the manifest and the database; never loads the index itself."""
    mv = resolve_model_version(session, model_version)
    path = _path_for(mv, model_dir)
    n_embeddings = (
        session.scalar(
            select(func.count()).select_from(Embedding).where(Embedding.model_version_id == mv.id)
        )
        or 0
    )
    manifest = read_manifest(path)
    if manifest is None:
        return IndexStatus(
            model_version=mv.version,
            path=str(path),
            exists=False,
            n_embeddings=n_embeddings,
            n_pending=n_embeddings,
        )
    pending = (
        session.scalar(
            select(func.count())
            .select_from(Embedding)
            .where(Embedding.model_version_id == mv.id, Embedding.id > manifest.max_embedding_id)
        )
        or 0
    )
    return IndexStatus(
        model_version=mv.version,
        path=str(path),
        exists=True,
        n_embeddings=n_embeddings,
        n_indexed=manifest.n_alive,
        n_dead=manifest.n_dead,
        n_pending=pending,
        kind=manifest.kind,
        dim=manifest.dim,
        input_dim=manifest.input_dim,
        descriptor=manifest.transform.get("kind"),
        bytes=manifest.bytes,
        built_at=manifest.built_at,
        updated_at=manifest.updated_at,
    )


def _open(session: Session, mv: ModelVersion, model_dir: Path | None) -> StoredIndex:
    stored = load_stored_index(_path_for(mv, model_dir))
    if stored is None:
        has = session.scalar(
            select(Embedding.id).where(Embedding.model_version_id == mv.id).limit(1)
        )
        if has is None:
            raise _no_embeddings(mv)
        raise SearchError(
            f"model {mv.version} has no search index yet; build it: "
            f"catalog-ai index build --model {mv.version}"
        )
    return stored


# --------------------------------------------------------------------------- text
def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _text_condition(words: list[str]) -> sa.ColumnElement[bool]:
    # Categories are matched in their own (small) table and products by category id: both
    # halves of the OR then stay on the products table, where an index can serve them (a
    # pg_trgm GIN index on title makes the ILIKE indexable on PostgreSQL).
    return sa.and_(
        *(
            sa.or_(
                Product.title.ilike(_like(w), escape="\\"),
                Product.category_id.in_(
                    select(Category.id).where(Category.path.ilike(_like(w), escape="\\"))
                ),
            )
            for w in words
        )
    )


def text_search(session: Session, text: str, *, limit: int = 20) -> list[Hit]:
    """Products whose title or category path contains every word of ``text`` (any case).

    Score: the share of the words found in the title itself (the rest matched the category);
    ties newest first.
    """
    words = _words(text)
    if not words:
        raise SearchError(f"the search text {text!r} holds no words; give at least one word")
    if limit < 1:
        raise SearchError(f"limit={limit} must be at least 1")
    in_title = sum(
        (sa.case((Product.title.ilike(_like(w), escape="\\"), 1), else_=0) for w in words),
        sa.literal(0),
    )
    rows = session.execute(
        select(Product.id, Product.title, Category.path, in_title.label("in_title"))
        .outerjoin(Category, Product.category_id == Category.id)
        .where(_text_condition(words))
        .order_by(sa.desc("in_title"), Product.id.desc())
        .limit(limit)
    ).all()
    first_images = _first_images(session, [r[0] for r in rows])
    return [
        Hit(
            product_id=pid,
            score=float(n) / len(words),
            title=title,
            category_path=path,
            image_path=first_images.get(pid),
        )
        for pid, title, path, n in rows
    ]


def _text_image_ids(session: Session, text: str) -> np.ndarray:
    words = _words(text)
    if not words:
        raise SearchError(f"the search text {text!r} holds no words; give at least one word")
    ids = session.scalars(
        select(ProductImage.id)
        .join(Product, ProductImage.product_id == Product.id)
        .outerjoin(Category, Product.category_id == Category.id)
        .where(_text_condition(words))
    ).all()
    return np.asarray(ids, dtype=np.int64)


def _media_path(stored_path: str | None) -> str | None:
    if stored_path is None:
        return None
    return str(MediaStore(get_settings().media_dir).root / stored_path)


def _first_images(session: Session, product_ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(product_ids), _IN_CHUNK):
        chunk = product_ids[start : start + _IN_CHUNK]
        for pid, path in session.execute(
            select(ProductImage.product_id, ProductImage.stored_path)
            .where(ProductImage.product_id.in_(chunk))
            .order_by(ProductImage.id.desc())
        ):
            out[pid] = _media_path(path)  # type: ignore[assignment]  # descending: first photo wins
    return out


# --------------------------------------------------------------------------- visual
def _product_vectors(session: Session, mv: ModelVersion, product_id: int) -> np.ndarray:
    if session.get(Product, product_id) is None:
        raise SearchError(f"product {product_id} does not exist")
    rows = session.execute(
        select(*_COLUMNS)
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
    return _decode(rows)[2]


def _nearest_products(
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
    index: VectorIndex = stored.index
    available = len(index) if allowed is None else len(allowed)
    fetch = min(max(4 * k, 16), max(available, 1))
    while True:
        scores, image_ids = index.search(queries, fetch, allowed=allowed)
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
    for start in range(0, len(image_ids), _IN_CHUNK):
        chunk = image_ids[start : start + _IN_CHUNK]
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
    model_dir: Path | None = None,
) -> list[Hit]:
    """Products that look like a photo (``query_vector``: its raw embedding from this model
    version) or like a stored product (``product_id``: its photos' stored embeddings; the product
    itself is left out). ``text`` keeps only products matching :func:`text_search`'s rule."""
    if (query_vector is None) == (product_id is None):
        raise SearchError("give exactly one of query_vector (a photo's embedding) or product_id")
    if k < 1:
        raise SearchError(f"k={k} must be at least 1")
    mv = resolve_model_version(session, model_version)
    stored = _open(session, mv, model_dir)
    raw = (
        _product_vectors(session, mv, product_id)
        if product_id is not None
        else np.asarray(query_vector)
    )
    queries = stored.transform.apply(raw)
    allowed = _text_image_ids(session, text) if text is not None else None
    if allowed is not None and not len(allowed):
        return []
    found = _nearest_products(
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
            image_path=_media_path(paths.get(image_id)),
        )
        for pid, score, image_id in found
        if pid in info
    ]


# --------------------------------------------------------------------------- near duplicates
def find_near_duplicates(
    session: Session,
    *,
    model_version: ModelVersion | str | Path | None,
    vector: np.ndarray,
    exclude_product_id: int | None = None,
    threshold: float | None = None,
    model_dir: Path | None = None,
) -> tuple[int, float] | None:
    """The catalog product that ``vector`` (a new photo's raw embedding) most likely shows again:
    ``(product_id, cosine)`` when its best photo scores at least ``threshold`` (default: the
    index's descriptor kind in :data:`DUPLICATE_THRESHOLDS`), else None.
    ``exclude_product_id``: the uploaded product itself, when it is already in the catalog."""
    if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
        raise SearchError(f"threshold={threshold} is not a cosine; give a value in [-1, 1]")
    mv = resolve_model_version(session, model_version)
    stored = _open(session, mv, model_dir)
    threshold = (
        DUPLICATE_THRESHOLDS[stored.transform.kind] if threshold is None else float(threshold)
    )
    query = stored.transform.apply(np.asarray(vector))
    if len(query) != 1:
        raise SearchError(f"give one photo's embedding, got {len(query)}")
    found = _nearest_products(
        session, stored, query, 1, allowed=None, exclude_product=exclude_product_id
    )
    if not found or found[0][1] < threshold:
        return None
    return found[0][0], found[0][1]
