"""A model version's search index on disk: ``<model_dir>/index/<version>/``.

::

    manifest.json        what is published: generation, counts, transform parameters, config
    g000003-<rand>/      one generation: index.json, index.faiss (+ alive.npy: HNSW), transform.npz
    .lock                serialises writers (read-modify-write of an update)

A save writes a whole new generation directory, then replaces ``manifest.json`` atomically
(``os.replace``): a reader sees the old generation or the new one, never a mix. The previous
generation is kept for readers that read the old manifest a moment ago; older ones are deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from catalog_ai.index._errors import SearchError
from catalog_ai.index.descriptors import DescriptorTransform
from catalog_ai.index.vector_index import VectorIndex, load_index

__all__ = [
    "INDEX_FORMAT",
    "IndexManifest",
    "StoredIndex",
    "index_dir",
    "index_lock",
    "load_stored_index",
    "read_manifest",
    "remember_stored_index",
    "save_stored_index",
]

INDEX_FORMAT = 1
_MANIFEST = "manifest.json"
_TRANSFORM = "transform.npz"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class IndexManifest:
    """The published state of one model version's index."""

    model_version: str
    kind: str  # exact | hnsw
    dim: int  # descriptor width
    input_dim: int  # embedding width
    n_alive: int
    n_dead: int
    max_embedding_id: int  # highest Embedding.id already indexed (for incremental updates)
    transform: dict[str, Any]
    config: dict[str, Any]
    bytes: int  # in-memory size of the index structure
    built_at: str
    updated_at: str
    generation: str = ""
    format: int = INDEX_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredIndex:
    index: VectorIndex
    transform: DescriptorTransform
    manifest: IndexManifest
    path: Path


def index_dir(model_dir: Path, version: str) -> Path:
    """Where ``version``'s index lives under the model directory."""
    if not _SAFE.match(version) or ".." in version:
        raise SearchError(
            f"model version {version!r} cannot name an index directory; versions use letters, "
            "digits, '.', '_' and '-'"
        )
    return Path(model_dir) / "index" / version


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def index_lock(path: Path) -> Iterator[None]:
    """Exclusive lock for writers of the index at ``path`` (readers need none), held until the
    block ends. ``filelock`` takes an OS lock on ``.lock`` (flock, which Linux maps to NFS
    byte-range locks on an NFS volume), so writers on other machines sharing the model directory
    wait too; it is released when the block ends, also when it raises."""
    path.mkdir(parents=True, exist_ok=True)
    with FileLock(path / ".lock"):
        yield


def read_manifest(path: Path) -> IndexManifest | None:
    """The published manifest at ``path``, or None when no index was saved there."""
    file = Path(path) / _MANIFEST
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text("utf-8"))
        if int(data.get("format", 0)) > INDEX_FORMAT:
            raise SearchError(
                f"{file}: index format {data.get('format')} is newer than this catalog_ai "
                "understands; upgrade catalog_ai or rebuild the index (catalog-ai index build)"
            )
        return IndexManifest(**data)
    except SearchError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise SearchError(
            f"{file}: unreadable index manifest ({exc}); rebuild the index (catalog-ai index build)"
        ) from None


def save_stored_index(
    path: Path, index: VectorIndex, transform: DescriptorTransform, manifest: IndexManifest
) -> IndexManifest:
    """Write a new generation and publish it; fills in the manifest's counts and generation."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(path)
    counter = int(previous.generation[1:7]) + 1 if previous and previous.generation else 1
    generation = f"g{counter:06d}-{uuid.uuid4().hex[:8]}"
    target = path / generation
    target.mkdir()
    try:
        index.save(target)
        transform.save(target / _TRANSFORM)
        for file in target.iterdir():  # durable before the manifest points at them
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
        manifest.generation = generation
        manifest.kind = index.kind
        manifest.dim = index.dim
        manifest.input_dim = transform.input_dim
        manifest.n_alive = len(index)
        manifest.n_dead = index.n_dead
        manifest.bytes = index.nbytes()
        manifest.transform = transform.params()
        manifest.config = asdict(index.config)
        manifest.updated_at = now_iso()
        tmp = path / f".{_MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(manifest), indent=2), "utf-8")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path / _MANIFEST)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    keep = {generation, previous.generation if previous else ""}
    for old in path.glob("g[0-9]*"):
        if old.is_dir() and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return manifest


_cache_lock = threading.Lock()
_cache: dict[Path, StoredIndex] = {}


def load_stored_index(path: Path, *, cached: bool = True) -> StoredIndex | None:
    """The published index at ``path`` (None when there is none).

    With ``cached``, a process keeps the last loaded generation per path and reloads only when
    the manifest names another one: a query then costs one small file read, not a reload.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        return None
    key = path.resolve()
    if cached:
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None and hit.manifest.generation == manifest.generation:
            return hit
    generation = path / manifest.generation
    index = load_index(generation)
    transform = DescriptorTransform.load(generation / _TRANSFORM)
    if transform.dim != index.dim:
        raise SearchError(f"{generation}: transform and index widths differ; rebuild the index")
    stored = StoredIndex(index=index, transform=transform, manifest=manifest, path=path)
    if cached:
        with _cache_lock:
            _cache[key] = stored
    return stored


def remember_stored_index(stored: StoredIndex) -> None:
    """Put a just-saved index into this process's cache (saves reloading what is in memory)."""
    with _cache_lock:
        _cache[Path(stored.path).resolve()] = stored
