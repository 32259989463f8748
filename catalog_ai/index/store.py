"""One model version's search index on disk, in this host's cache directory.

::

    manifest.json        what is published: generation, segments, counts, checksums, source
    g000003-<rand>/      one generation: index.json, index.faiss (+ alive.npy: HNSW),
                         transform.npz, keys.npy; and its catch-up segments s000001-<rand>.npz
    .lock                serialises writers (read-modify-write of a catch-up)

A save writes a whole new generation directory, then replaces ``manifest.json`` atomically
(``os.replace``): a reader sees the old generation or the new one, never a mix. A catch-up that
changed little appends a segment to the current generation instead (:mod:`.segments`) and
publishes a manifest that lists it. The previous generation is kept for readers that read the
old manifest a moment ago; older ones are deleted. Every file's SHA-256 is in the manifest and
is checked when a process loads the index: a file changed on disk is refused, never searched.
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
from catalog_ai.index.keys import IndexKeys
from catalog_ai.index.segments import (
    Segment,
    apply_segment,
    file_sha256,
    read_segment,
    write_segment,
)
from catalog_ai.index.vector_index import VectorIndex, load_index

__all__ = [
    "INDEX_FORMAT",
    "IndexManifest",
    "StoredIndex",
    "append_segment",
    "cached_stored_index",
    "forget_stored_index",
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
    # The generation's catch-up segments, in order (see .segments), and its files' SHA-256.
    segments: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    # What the index is a copy of (database, model version row), checked by the services.
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> tuple[str, int]:
        """What a loaded copy must match: the generation and how many segments it replayed."""
        return self.generation, len(self.segments)


@dataclass
class StoredIndex:
    """A loaded index. ``guard`` serialises changes with searches within a process (faiss
    cannot search an index while another thread adds to it); use :meth:`search`."""

    index: VectorIndex
    transform: DescriptorTransform
    manifest: IndexManifest
    path: Path
    keys: IndexKeys = field(default_factory=IndexKeys)
    guard: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def search(self, queries: Any, k: int, *, allowed: Any = None) -> Any:
        with self.guard:
            return self.index.search(queries, k, allowed=allowed)


def index_dir(root: Path, version: str) -> Path:
    """Where ``version``'s index lives under ``root`` (the services: this host's cache
    directory for one database)."""
    if not _SAFE.match(version) or ".." in version:
        raise SearchError(
            f"model version {version!r} cannot name an index directory; versions use letters, "
            "digits, '.', '_' and '-'"
        )
    return Path(root) / version


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def index_lock(path: Path, timeout: float = -1) -> Iterator[None]:
    """Exclusive lock for writers of the index at ``path`` (readers need none), held until the
    block ends. ``filelock`` takes an OS lock on ``.lock`` (flock), so the processes of one host
    that share its cache directory take turns; it is released when the block ends, also when it
    raises. ``timeout`` (seconds; -1: wait for ever): ``filelock.Timeout`` when not had by then."""
    path.mkdir(parents=True, exist_ok=True)
    with FileLock(path / ".lock", timeout=timeout):
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


def _publish(path: Path, manifest: IndexManifest) -> None:
    manifest.updated_at = now_iso()
    tmp = path / f".{_MANIFEST}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(json.dumps(asdict(manifest), indent=2), "utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path / _MANIFEST)


def _count(manifest: IndexManifest, index: VectorIndex) -> None:
    manifest.kind = index.kind
    manifest.dim = index.dim
    manifest.n_alive = len(index)
    manifest.n_dead = index.n_dead
    manifest.bytes = index.nbytes()
    manifest.config = asdict(index.config)


def save_stored_index(
    path: Path,
    index: VectorIndex,
    transform: DescriptorTransform,
    manifest: IndexManifest,
    keys: IndexKeys | None = None,
) -> IndexManifest:
    """Write a new generation and publish it; fills in the manifest's counts, generation and
    checksums. ``keys``: the embedding id of each photo (None: an index not built from a
    database, its photo ids stand for both)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(path)
    counter = int(previous.generation[1:7]) + 1 if previous and previous.generation else 1
    generation = f"g{counter:06d}-{uuid.uuid4().hex[:8]}"
    target = path / generation
    target.mkdir()
    if keys is None:
        keys = IndexKeys(index.ids(), index.ids())
    try:
        index.save(target)
        transform.save(target / _TRANSFORM)
        keys.save(target)
        for file in target.iterdir():  # durable before the manifest points at them
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
        manifest.files = {f.name: file_sha256(f) for f in sorted(target.iterdir())}
        manifest.generation = generation
        manifest.segments = []
        manifest.input_dim = transform.input_dim
        manifest.transform = transform.params()
        _count(manifest, index)
        _publish(path, manifest)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    keep = {generation, previous.generation if previous else ""}
    for old in path.glob("g[0-9]*"):
        if old.is_dir() and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return manifest


def append_segment(stored: StoredIndex, segment: Segment, watermark: int) -> IndexManifest:
    """Publish ``segment`` (already applied to ``stored``) after the generation's others.

    The caller holds :func:`index_lock` and has checked that the published manifest is the one
    ``stored`` was loaded from or last saved as."""
    manifest = stored.manifest
    target = stored.path / manifest.generation
    entry = write_segment(target, len(manifest.segments) + 1, segment, watermark)
    published = IndexManifest(**{**asdict(manifest), "segments": [*manifest.segments, entry]})
    published.max_embedding_id = int(watermark)
    _count(published, stored.index)
    try:
        _publish(stored.path, published)
    except BaseException:
        (target / entry["name"]).unlink(missing_ok=True)
        raise
    stored.manifest = published
    return published


_cache_lock = threading.Lock()
_cache: dict[Path, StoredIndex] = {}


def _load(path: Path, manifest: IndexManifest) -> StoredIndex:
    generation = path / manifest.generation
    if not manifest.files:
        raise SearchError(f"{generation}: no checksums in the manifest (an older format); rebuild")
    for name, digest in manifest.files.items():
        file = generation / name
        if not file.is_file() or file_sha256(file) != digest:
            raise SearchError(f"{file}: missing or not as written (its SHA-256 differs)")
    index = load_index(generation)
    transform = DescriptorTransform.load(generation / _TRANSFORM)
    keys = IndexKeys.load(generation)
    if transform.dim != index.dim:
        raise SearchError(f"{generation}: transform and index widths differ; rebuild the index")
    stored = StoredIndex(index=index, transform=transform, manifest=manifest, path=path, keys=keys)
    stored.manifest = IndexManifest(**{**asdict(manifest), "segments": []})
    _replay(stored, manifest)
    return stored


def _replay(stored: StoredIndex, manifest: IndexManifest) -> None:
    """Apply the segments of ``manifest`` that ``stored`` has not replayed yet."""
    target = stored.path / manifest.generation
    with stored.guard:  # two threads replaying at once: the second finds nothing left to do
        done = len(stored.manifest.segments)
        if manifest.segments[:done] != stored.manifest.segments:
            raise SearchError(f"{stored.path}: the segments on disk are not the ones replayed")
        for entry in manifest.segments[done:]:
            apply_segment(stored.index, stored.keys, read_segment(target, entry, stored.index.dim))
        if len(stored.keys) != len(stored.index):
            raise SearchError(f"{target}: index and keys disagree on their sizes")
        stored.manifest = manifest


def load_stored_index(path: Path, *, cached: bool = True) -> StoredIndex | None:
    """The published index at ``path`` (None when there is none). A :class:`SearchError` when
    a file is unreadable or not as written (the caller rebuilds).

    With ``cached``, a process keeps the last loaded generation per path: a query then costs
    one small file read; a manifest that only lists more segments replays just those.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        return None
    key = path.resolve()
    if cached:
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None and hit.manifest.state == manifest.state:
            return hit
        if hit is not None and hit.manifest.generation == manifest.generation:
            try:
                _replay(hit, manifest)
                return hit
            except SearchError:
                forget_stored_index(path)  # reload the whole generation below
    stored = _load(path, manifest)
    if cached:
        with _cache_lock:
            _cache[key] = stored
    return stored


def remember_stored_index(stored: StoredIndex) -> None:
    """Put a just-saved index into this process's cache (saves reloading what is in memory)."""
    with _cache_lock:
        _cache[Path(stored.path).resolve()] = stored


def cached_stored_index(path: Path) -> StoredIndex | None:
    """What this process holds for ``path`` (None: nothing), without looking at the disk."""
    with _cache_lock:
        return _cache.get(Path(path).resolve())


def forget_stored_index(path: Path) -> None:
    with _cache_lock:
        _cache.pop(Path(path).resolve(), None)
