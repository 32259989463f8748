"""The search index of one model version: build, update, status, open.

The ``embeddings`` table is the truth; the index under ``<model_dir>/index/<version>/`` is a
cache of it, keyed by ``ProductImage.id``: :func:`build_index` makes it from scratch,
:func:`update_index` adds the embeddings it lacks and drops those gone from the database.
What searches it: :mod:`catalog_ai.services.similar` and
:mod:`catalog_ai.services.near_duplicates`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Embedding, ModelVersion
from catalog_ai.db.models.embedding import decode_vectors
from catalog_ai.db.queries import in_chunks
from catalog_ai.index import (
    DEFAULT_DESCRIPTOR,
    DescriptorConfig,
    IndexConfig,
    IndexManifest,
    SearchError,
    StoredIndex,
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
from catalog_ai.services.models import resolve_model_version
from catalog_ai.settings import get_settings

__all__ = [
    "IndexStatus",
    "build_index",
    "decode_rows",
    "embedding_rows",
    "index_status",
    "no_embeddings",
    "open_index",
    "update_index",
]

_CHUNK = 5_000  # embeddings decoded per batch when building
_REFIT_GROWTH = 2.0  # refit the descriptor once the catalog is twice what it was fitted on


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


def _path_for(mv: ModelVersion, model_dir: Path | None) -> Path:
    return index_dir(model_dir or get_settings().model_dir, mv.version)


def no_embeddings(mv: ModelVersion) -> SearchError:
    return SearchError(
        f"model {mv.version} has no embeddings of catalog photos yet, so there is nothing to "
        "search: run catalog-ai index build after the catalog is embedded with this model "
        f"(catalog-ai index build --model {mv.version})"
    )


# --------------------------------------------------------------------------- embeddings
_COLUMNS = (Embedding.id, Embedding.image_id, Embedding.dim, Embedding.vector)


def decode_rows(rows: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embedding ids, image ids, vectors) from ``(id, image_id, dim, vector)`` rows."""
    rows = list(rows)
    emb_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    image_ids = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    vectors = decode_vectors([r[2] for r in rows], [r[3] for r in rows], emb_ids.tolist())
    return emb_ids, image_ids, vectors


def embedding_rows() -> Select[int, int, int, bytes]:
    """``SELECT`` of the columns :func:`decode_rows` reads; add the ``WHERE``."""
    return select(*_COLUMNS)


def _embeddings_by_id(
    session: Session, emb_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [
        decode_rows(session.execute(embedding_rows().where(Embedding.id.in_(chunk))))
        for chunk in in_chunks(int(i) for i in emb_ids)
    ]
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
        raise no_embeddings(mv)
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
        ids, image_ids, vectors = decode_rows(
            session.execute(
                embedding_rows().where(
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


def open_index(session: Session, mv: ModelVersion, model_dir: Path | None) -> StoredIndex:
    """The model version's loaded index; a :class:`SearchError` saying what to run without one."""
    stored = load_stored_index(_path_for(mv, model_dir))
    if stored is None:
        has = session.scalar(
            select(Embedding.id).where(Embedding.model_version_id == mv.id).limit(1)
        )
        if has is None:
            raise no_embeddings(mv)
        raise SearchError(
            f"model {mv.version} has no search index yet; build it: "
            f"catalog-ai index build --model {mv.version}"
        )
    return stored
