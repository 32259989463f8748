"""The search index of one model version on this host: build, update, status, open.

The ``embeddings`` table is the truth; each host keeps its own copy of the index, keyed by
``ProductImage.id``, in its cache directory (``CATALOG_AI_INDEX_CACHE_DIR``): no index volume
is shared between machines. :func:`build_index` makes it from scratch, :func:`update_index`
catches it up (rows added above its watermark, rows deleted or committed late below it; see
:mod:`catalog_ai.services.index_sync`), :func:`open_index` is what a search calls: it catches
up too, reading at most :data:`SEARCH_CATCH_UP` new rows and waiting at most
:data:`SEARCH_WAIT` for another process of the host that is doing so; otherwise it searches the
copy it has and logs how far behind it is.
What searches it: :mod:`catalog_ai.services.similar` and
:mod:`catalog_ai.services.near_duplicates`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import Timeout
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Embedding, ModelVersion
from catalog_ai.index import (
    DEFAULT_DESCRIPTOR,
    DescriptorConfig,
    IndexConfig,
    IndexManifest,
    SearchError,
    StoredIndex,
    cached_stored_index,
    index_lock,
    load_stored_index,
    read_manifest,
)
from catalog_ai.services import index_rows
from catalog_ai.services.index_rows import decode_rows, embedding_rows
from catalog_ai.services.index_sync import (
    build_locked,
    cache_path,
    catch_up_locked,
    no_embeddings,
    source_of,
)
from catalog_ai.services.models import resolve_model_version

__all__ = [
    "SEARCH_CATCH_UP",
    "SEARCH_WAIT",
    "UPDATE_BATCH",
    "VERIFY_EVERY",
    "IndexStatus",
    "build_index",
    "decode_rows",
    "embedding_rows",
    "index_status",
    "no_embeddings",
    "open_index",
    "update_index",
]

log = logging.getLogger(__name__)

#: Seconds a search waits for another process of this host catching up (or building) the same
#: index before it searches the copy it has (and logs how stale) or, with none, says so.
SEARCH_WAIT = 2.0
#: Seconds between a searching process's checks for deleted (or late-committed) rows: a
#: ``count``/``sum`` over the model version's embedding ids. New rows are looked for on every
#: search (one ``max(id)``); a deleted product never shows in results meanwhile (hits are
#: joined to the photos that exist).
VERIFY_EVERY = 60.0
#: New rows one search reads and adds at most (at a million photos, adding 5,000 to the HNSW
#: graph takes seconds); a host further behind catches up over the next searches.
SEARCH_CATCH_UP = 5_000
#: New rows per batch of an update (the beat's refresh_index, ``catalog-ai index update``).
UPDATE_BATCH = 50_000


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
    segments: int = 0  # catch-ups appended since the generation was written

    @property
    def up_to_date(self) -> bool:
        return self.exists and self.n_pending == 0 and self.n_indexed == self.n_embeddings

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "up_to_date": self.up_to_date}


_locks_guard = threading.Lock()
_locks: dict[Path, threading.Lock] = {}
_verified: dict[Path, float] = {}


def _thread_lock(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def _locked(path: Path, wait: float | None):
    """(process lock, file lock) of the cache at ``path``, or ``filelock.Timeout`` after
    ``wait`` seconds (None: for ever)."""
    from contextlib import ExitStack

    stack = ExitStack()
    lock = _thread_lock(path)
    if not lock.acquire(timeout=-1 if wait is None else wait):
        raise Timeout(str(path / ".lock"))
    stack.callback(lock.release)
    try:
        stack.enter_context(index_lock(path, timeout=-1 if wait is None else wait))
    except BaseException:
        stack.close()
        raise
    return stack


# --------------------------------------------------------------------------- build / update
def build_index(
    session: Session,
    model_version: ModelVersion | str | Path | None,
    *,
    descriptor: DescriptorConfig | None = None,
    config: IndexConfig | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> IndexStatus:
    """(Re)build this host's index of the model version from all its embeddings: fit the
    descriptor transform, choose exact or HNSW by size, save a new generation."""
    mv = resolve_model_version(session, model_version)
    path = cache_path(session, mv, cache_dir)
    with _locked(path, None):
        build_locked(
            session,
            mv,
            path,
            descriptor or DEFAULT_DESCRIPTOR,
            config or IndexConfig(),
            progress=progress,
        )
        _verified[path] = time.monotonic()
    return index_status(session, mv, cache_dir=cache_dir)


def update_index(
    session: Session,
    model_version: ModelVersion | str | Path | None,
    *,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> IndexStatus:
    """Bring this host's index in line with the database: add new embeddings, drop deleted
    ones, add rows committed late below the watermark.

    Builds from scratch when there is no index yet (or its files are unreadable), when the
    catalogue reached the next power of two while the descriptor's fit pool was smaller than
    ``max_fit_samples``, and when the width of the embeddings changed. An exact index that
    outgrew ``ann_threshold`` becomes HNSW; tombstones beyond ``compact_ratio`` are compacted.
    """
    mv = resolve_model_version(session, model_version)
    path = cache_path(session, mv, cache_dir)
    with _locked(path, None):
        more, verify = True, True
        while more:  # in batches: a bulk import's million new rows never sit in memory at once
            _, more = catch_up_locked(
                session, mv, path, verify=verify, progress=progress, max_rows=UPDATE_BATCH
            )
            verify = False
        _verified[path] = time.monotonic()
    return index_status(session, mv, cache_dir=cache_dir)


def index_status(
    session: Session,
    model_version: ModelVersion | str | Path | None,
    *,
    cache_dir: Path | None = None,
) -> IndexStatus:
    """Counts from this host's manifest and the database; never loads the index itself."""
    mv = resolve_model_version(session, model_version)
    path = cache_path(session, mv, cache_dir)
    n_embeddings = index_rows.totals(session, mv)
    manifest = read_manifest(path)
    if manifest is None or manifest.source != source_of(session, mv):
        return IndexStatus(
            model_version=mv.version,
            path=str(path),
            exists=False,
            n_embeddings=n_embeddings,
            n_pending=n_embeddings,
        )
    return IndexStatus(
        model_version=mv.version,
        path=str(path),
        exists=True,
        n_embeddings=n_embeddings,
        n_indexed=manifest.n_alive,
        n_dead=manifest.n_dead,
        n_pending=_pending(session, mv, manifest.max_embedding_id),
        kind=manifest.kind,
        dim=manifest.dim,
        input_dim=manifest.input_dim,
        descriptor=manifest.transform.get("kind"),
        bytes=manifest.bytes,
        built_at=manifest.built_at,
        updated_at=manifest.updated_at,
        segments=len(manifest.segments),
    )


def _pending(session: Session, mv: ModelVersion, watermark: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Embedding)
            .where(Embedding.model_version_id == mv.id, Embedding.id > watermark)
        )
        or 0
    )


def open_index(
    session: Session,
    mv: ModelVersion,
    cache_dir: Path | None = None,
    *,
    build: bool = True,
    progress: bool = False,
) -> StoredIndex:
    """This host's index of ``mv``, caught up with the database, for a search.

    Nothing new (the usual case): one ``max(id)`` query and a read of the small manifest.
    New rows: they are read and added (O(new rows)), under the cache's lock. Every
    :data:`VERIFY_EVERY` seconds the process also checks for deleted rows. A host without a
    copy builds one (``progress``: a bar on stderr) unless ``build`` is false (the worker's
    near-duplicate check: it must not spend minutes inside a classification task); then, and
    when the catalogue has no embeddings of ``mv``, a :class:`SearchError` says what to run.
    """
    path = cache_path(session, mv, cache_dir)
    due = time.monotonic() - _verified.get(path, float("-inf")) > VERIFY_EVERY
    hit = cached_stored_index(path)
    if hit is not None and not due:
        try:
            manifest = read_manifest(path)
        except SearchError:
            manifest = None
        newest = index_rows.newest_id(session, mv)
        if manifest is not None and manifest.max_embedding_id == newest:
            if manifest.state == hit.manifest.state:
                return hit
            try:  # another process of the host appended segments or wrote a generation
                fresh = load_stored_index(path)
            except SearchError:
                fresh = None  # unreadable: the catch-up below logs it and rebuilds
            if fresh is not None:
                return fresh
    if not build and hit is None and _manifest_or_none(path) is None:
        raise _no_index(session, mv)
    try:
        with _locked(path, SEARCH_WAIT):
            stored, more = catch_up_locked(
                session, mv, path, verify=due, progress=progress, max_rows=SEARCH_CATCH_UP
            )
            if due:
                _verified[path] = time.monotonic()
    except Timeout:
        return _stale(session, mv, path, hit)
    if more:
        log.warning(
            "search of %s: this host's index read %d new embeddings and is still %d behind the "
            "database; later searches read more (catalog-ai index update reads them all)",
            mv.version,
            SEARCH_CATCH_UP,
            _pending(session, mv, stored.manifest.max_embedding_id),
        )
    return stored


def _manifest_or_none(path: Path) -> IndexManifest | None:
    try:
        return read_manifest(path)
    except SearchError:
        return None


def _no_index(session: Session, mv: ModelVersion) -> SearchError:
    if index_rows.newest_id(session, mv) == 0:
        return no_embeddings(mv)
    return SearchError(
        f"model {mv.version} has no search index on this host yet; build it: "
        f"catalog-ai index update --model {mv.version}"
    )


def _stale(session: Session, mv: ModelVersion, path: Path, hit: StoredIndex | None) -> StoredIndex:
    """Another process of this host holds the cache's lock (catching up, building): search
    what this process has, or what is on disk, and say how far behind it is."""
    stored = hit
    if stored is None:
        try:
            stored = load_stored_index(path)
        except SearchError:
            stored = None
    if stored is None or stored.manifest.source != source_of(session, mv):
        raise SearchError(
            f"the search index of model {mv.version} is being built on this host by another "
            f"process ({path}); try again in a minute"
        )
    behind = _pending(session, mv, stored.manifest.max_embedding_id)
    log.warning(
        "search of %s used this host's index as it stands, %d embeddings behind the database: "
        "another process is updating %s",
        mv.version,
        behind,
        path,
    )
    return stored
