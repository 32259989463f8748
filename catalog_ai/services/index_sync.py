"""Build and catch up one host's copy of a model version's search index from the database.

Every process that searches keeps the index in its host's cache directory
(``CATALOG_AI_INDEX_CACHE_DIR``, never the shared model directory) and in memory; the
``embeddings`` rows are the truth. A catch-up, under the cache's file lock:

1. loads what this host has on disk (replaying segments another process of the host appended);
   a file that is unreadable or not as written, or a cache of another database or model row,
   is logged and rebuilt, never searched;
2. compares: with ``verify``, the count and id sum of the rows at or below the watermark against
   the index's own (rows deleted, or committed late below it); only when they differ reads the
   ids of those rows and fetches the missing ones;
3. reads the rows above the watermark, O(new rows);
4. persists the change as a segment, or as a new generation when segments have grown past a
   share of it, the index outgrew exact search or needs compaction, or the descriptor is refitted.

The descriptor transform is fitted on a pool that depends only on the rows: the oldest
``2**floor(log2 n)`` embeddings (a seeded sample of ``max_fit_samples`` of them when more).
Two hosts that build from the same rows get the same transform, hence the same scores; it is
refitted when the catalogue reaches the next power of two, until the pool exceeds
``max_fit_samples``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from catalog_ai.db import ModelVersion
from catalog_ai.db.session import safe_url
from catalog_ai.index import (
    DEFAULT_DESCRIPTOR,
    DescriptorConfig,
    DescriptorTransform,
    IndexConfig,
    IndexKeys,
    IndexManifest,
    SearchError,
    Segment,
    StoredIndex,
    append_segment,
    create_index,
    fit_descriptor_transform,
    forget_stored_index,
    index_dir,
    load_stored_index,
    remember_stored_index,
    save_stored_index,
)
from catalog_ai.index.segments import apply_segment
from catalog_ai.index.store import now_iso
from catalog_ai.progress import progress_bar
from catalog_ai.services import index_rows
from catalog_ai.settings import get_settings

__all__ = ["build_locked", "cache_path", "catch_up_locked", "no_embeddings", "source_of"]

log = logging.getLogger(__name__)

# A catch-up appends a segment until the generation's segments hold this share of its rows,
# this many rows or this many segments; then it writes a whole new generation (a million
# vectors: 0.8 GB, 7 s). The row bound keeps a restarted process's replay short: it inserts
# every segment row into the HNSW graph again (about 2 ms a row on the shared benchmark
# machine: 12,000 rows took 27 s to load at a million).
SEGMENT_SHARE = 0.25
SEGMENT_ROWS = 10_000
MAX_SEGMENTS = 32
# Ids per bucket when the totals differ: the buckets whose count/sum differ are read id by id.
BUCKET = 65_536


def cache_path(session: Session, mv: ModelVersion, cache_dir: Path | None = None) -> Path:
    """This host's index of ``mv`` for the session's database:
    ``<cache_dir>/<hash of the database URL>/<version>/`` (one cache directory can serve
    several databases, say a test one, without mixing their ids)."""
    root = Path(cache_dir or get_settings().index_cache_dir)
    database = hashlib.sha256(_database(session).encode()).hexdigest()[:12]
    return index_dir(root / database, mv.version)


def _database(session: Session) -> str:
    bind = session.get_bind()
    return safe_url(bind.engine.url)


def source_of(session: Session, mv: ModelVersion) -> dict[str, Any]:
    """What a cache copies: the database and the model version's row (a database dropped and
    created again under the same URL has other rows: its cache is rebuilt, not trusted)."""
    return {
        "database": _database(session),
        "model_version_id": mv.id,
        "model_created_at": str(mv.created_at),
    }


def no_embeddings(mv: ModelVersion) -> SearchError:
    return SearchError(
        f"model {mv.version} has no embeddings of catalog photos yet, so there is nothing to "
        "search: run catalog-ai index build after the catalog is embedded with this model "
        f"(catalog-ai index build --model {mv.version})"
    )


def _pool_size(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n > 0 else 0


def _check_width(mv: ModelVersion, expected: int, vectors: np.ndarray) -> None:
    if len(vectors) and vectors.shape[1] != expected:
        raise SearchError(
            f"model {mv.version} has embeddings of {vectors.shape[1]} values and of {expected}; "
            "recompute them with one model, then rebuild: catalog-ai index build"
        )


# --------------------------------------------------------------------------- build
def _fit(session: Session, mv: ModelVersion, n: int, descriptor: DescriptorConfig):
    pool = index_rows.fit_pool(session, mv, _pool_size(n))
    ids = pool
    if len(pool) > descriptor.max_fit_samples:
        rng = np.random.default_rng(descriptor.seed)
        ids = np.sort(rng.choice(pool, descriptor.max_fit_samples, replace=False))
    vectors: np.ndarray | None = None
    filled = 0
    for _, _, part in index_rows.rows_by_id(session, ids):  # into one array: no second copy
        if vectors is None:
            vectors = np.empty((len(ids), part.shape[1]), np.float32)
        _check_width(mv, vectors.shape[1], part)
        vectors[filled : filled + len(part)] = part
        filled += len(part)
    if vectors is None:
        raise no_embeddings(mv)
    return fit_descriptor_transform(vectors[:filled], descriptor), len(pool)


def build_locked(
    session: Session,
    mv: ModelVersion,
    path: Path,
    descriptor: DescriptorConfig = DEFAULT_DESCRIPTOR,
    config: IndexConfig | None = None,
    *,
    progress: bool = False,
) -> StoredIndex:
    """A new index of every row: fit the descriptor, stream the rows in id order, publish.
    The caller holds the cache's lock."""
    config = config or IndexConfig()
    started = time.perf_counter()
    n = index_rows.totals(session, mv)
    if not n:
        raise no_embeddings(mv)
    transform, pool = _fit(session, mv, n, descriptor)
    seconds = {"fit": time.perf_counter() - started, "read": 0.0, "add": 0.0}
    index = create_index(transform.dim, size=n, config=config)
    emb_parts, image_parts = [], []
    watermark = 0
    with progress_bar(total=n, desc=f"indexing {mv.version}", unit="photo", enable=progress) as bar:
        # Rows are streamed: a million raw embeddings (5 GB) never sit in memory at once.
        t = time.perf_counter()
        for emb_ids, image_ids, vectors in index_rows.rows_after(session, mv, 0):
            _check_width(mv, transform.input_dim, vectors)
            seconds["read"] += time.perf_counter() - t
            t = time.perf_counter()
            index.add(image_ids, transform.apply(vectors))
            seconds["add"] += time.perf_counter() - t
            emb_parts.append(emb_ids)
            image_parts.append(image_ids)
            watermark = int(emb_ids[-1])
            bar.update(len(emb_ids))
            t = time.perf_counter()
    keys = IndexKeys(np.concatenate(emb_parts), np.concatenate(image_parts))
    built = now_iso()
    manifest = IndexManifest(
        model_version=mv.version,
        kind=index.kind,
        dim=index.dim,
        input_dim=transform.input_dim,
        n_alive=0,
        n_dead=0,
        max_embedding_id=watermark,
        transform={},
        config={},
        bytes=0,
        built_at=built,
        updated_at=built,
        extra={"descriptor": asdict(descriptor), "fit_pool": pool},
        source=source_of(session, mv),
    )
    t = time.perf_counter()
    manifest = save_stored_index(path, index, transform, manifest, keys)
    seconds["save"] = time.perf_counter() - t
    manifest.extra["build_seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    stored = StoredIndex(index=index, transform=transform, manifest=manifest, path=path, keys=keys)
    remember_stored_index(stored)
    log.info(
        "built the search index of %s: %d photos at %s (seconds: %s)",
        mv.version,
        len(index),
        path,
        manifest.extra["build_seconds"],
    )
    return stored


def wipe(path: Path) -> None:
    """Remove a cache's files (not its lock, which other processes may be waiting on)."""
    forget_stored_index(path)
    for entry in Path(path).iterdir() if Path(path).is_dir() else ():
        if entry.name == ".lock":
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _usable(session: Session, mv: ModelVersion, path: Path) -> StoredIndex | None:
    """This host's index on disk (and in this process), or None when it must be built."""
    try:
        stored = load_stored_index(path)
    except SearchError as exc:
        log.warning(
            "the search index cache of %s at %s cannot be used (%s); rebuilding it from the "
            "database",
            mv.version,
            path,
            exc,
        )
        wipe(path)
        return None
    if stored is not None and stored.manifest.source != source_of(session, mv):
        log.warning(
            "the search index cache at %s was made from another database or model row (%s); "
            "rebuilding it from this one",
            path,
            stored.manifest.source,
        )
        wipe(path)
        return None
    return stored


# --------------------------------------------------------------------------- catch up
def catch_up_locked(
    session: Session,
    mv: ModelVersion,
    path: Path,
    *,
    verify: bool,
    progress: bool = False,
    max_rows: int | None = None,
) -> tuple[StoredIndex, bool]:
    """Bring this host's index in line with the rows (the caller holds the cache's lock);
    ``(index, more)``: ``more`` when ``max_rows`` new rows were read and others may follow
    (a search bounds its own wait so; the rest is for the next call)."""
    stored = _usable(session, mv, path)
    if stored is None:
        return build_locked(session, mv, path, progress=progress), False
    manifest = stored.manifest
    descriptor = DescriptorConfig(**manifest.extra.get("descriptor", asdict(DEFAULT_DESCRIPTOR)))
    watermark = manifest.max_embedding_id
    newest = index_rows.newest_id(session, mv)
    removed = np.empty(0, np.int64)
    late: list[index_rows.Rows] = []
    if verify or newest < watermark:
        removed, late = _reconcile(session, mv, stored, watermark)
    fresh: list[index_rows.Rows] = []
    more = False
    if newest > watermark:
        for part in index_rows.rows_after(session, mv, watermark):
            fresh.append(part)
            if max_rows is not None and sum(len(p[0]) for p in fresh) >= max_rows:
                more = True
                break
    parts = late + fresh
    if not parts and not len(removed):
        return stored, False
    if any(p[2].shape[1] != stored.transform.input_dim for p in parts if len(p[0])):
        log.warning("embeddings of %s changed width; rebuilding its index", mv.version)
        config = stored.index.config
        return build_locked(session, mv, path, descriptor, config, progress=progress), False
    n = len(stored.keys) - len(removed) + sum(len(p[0]) for p in parts)
    fitted = int(manifest.extra.get("fit_pool", 0))
    if _pool_size(n) > fitted and fitted < descriptor.max_fit_samples:
        log.info("the catalogue of %s reached %d photos: refitting its descriptor", mv.version, n)
        config = stored.index.config
        return build_locked(session, mv, path, descriptor, config, progress=progress), False
    segment = _segment(stored.transform, parts, removed)
    with stored.guard:  # searches of this process wait while the index changes
        before = stored.index
        apply_segment(stored.index, stored.keys, segment)
        new_watermark = max([watermark, *(int(p[0].max()) for p in fresh)])
        _grow_or_compact(stored)
    try:
        _persist(stored, segment, new_watermark, rewrite=stored.index is not before)
    except OSError as exc:  # the copy in memory is right, the disk is behind: reload next time
        forget_stored_index(path)
        log.warning("could not save the search index cache at %s (%s)", path, exc)
    return stored, more


def _reconcile(
    session: Session, mv: ModelVersion, stored: StoredIndex, watermark: int
) -> tuple[np.ndarray, list[index_rows.Rows]]:
    """Photos to remove and rows to add below the watermark; two numbers when nothing changed."""
    keys = stored.keys
    if index_rows.totals_upto(session, mv, watermark) == (len(keys), keys.id_sum):
        return np.empty(0, np.int64), []
    theirs = index_rows.bucket_totals(session, mv, watermark, BUCKET)
    mine = _bucket_totals(keys.emb_ids)
    gone_parts, missing_parts = [], []
    for bucket in sorted(set(theirs) | set(mine)):
        if theirs.get(bucket) == mine.get(bucket):
            continue
        db_ids = index_rows.ids_in_bucket(session, mv, bucket, BUCKET, watermark)
        held = keys.emb_ids[keys.emb_ids // BUCKET == bucket]
        gone_parts.append(np.setdiff1d(held, db_ids))
        missing_parts.append(np.setdiff1d(db_ids, held))
    gone = np.concatenate(gone_parts) if gone_parts else np.empty(0, np.int64)
    missing = np.concatenate(missing_parts) if missing_parts else np.empty(0, np.int64)
    log.info(
        "search index of %s: %d rows gone from the database, %d committed below the watermark",
        mv.version,
        len(gone),
        len(missing),
    )
    return keys.images_of(gone), list(index_rows.rows_by_id(session, missing))


def _bucket_totals(emb_ids: np.ndarray) -> dict[int, tuple[int, int]]:
    """:func:`index_rows.bucket_totals` of the ids this index holds (exact int64 sums)."""
    if not len(emb_ids):
        return {}
    ids = np.sort(emb_ids)
    buckets = ids // BUCKET
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    counts = np.diff(np.r_[starts, len(ids)])
    sums = np.add.reduceat(ids, starts)
    return {int(b): (int(c), int(t)) for b, c, t in zip(buckets[starts], counts, sums, strict=True)}


def _segment(
    transform: DescriptorTransform, parts: list[index_rows.Rows], removed: np.ndarray
) -> Segment:
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return Segment(
            np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, transform.dim)), removed
        )
    return Segment(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([transform.apply(p[2]) for p in parts]),
        removed,
    )


def _grow_or_compact(stored: StoredIndex) -> None:
    index = stored.index
    if index.kind == "exact" and len(index) > index.config.ann_threshold:
        bigger = create_index(index.dim, size=len(index), config=index.config)
        bigger.add(*index.items())
        stored.index = bigger
    elif index.needs_compaction:
        stored.index = create_index(index.dim, size=len(index), config=index.config)
        stored.index.add(*index.items())


def _persist(stored: StoredIndex, segment: Segment, watermark: int, *, rewrite: bool) -> None:
    manifest = stored.manifest
    in_segments = sum(int(e["added"]) + int(e["removed"]) for e in manifest.segments)
    if (
        rewrite
        or len(manifest.segments) >= MAX_SEGMENTS
        or in_segments + len(segment) > min(SEGMENT_SHARE * len(stored.index), SEGMENT_ROWS)
    ):
        manifest = IndexManifest(**asdict(manifest))
        manifest.max_embedding_id = watermark
        stored.manifest = save_stored_index(
            stored.path, stored.index, stored.transform, manifest, stored.keys
        )
    else:
        append_segment(stored, segment, watermark)
    remember_stored_index(stored)
