"""Catch-up segments: what one catch-up changed, appended beside a generation instead of
rewriting it.

A generation of a million vectors is most of a gigabyte on disk; a catch-up that found 1,000 new
rows writes those 1,000 descriptors (and the photos removed) as ``s000004-<rand>.npz`` and a new
manifest listing it after the others. Loading a generation replays its segments in order;
:func:`catalog_ai.index.store.save_stored_index` folds them into a new generation once they
grow past a share of it. Each file's SHA-256 is in the manifest: a segment that does not match
is refused, never replayed.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from catalog_ai.index._base import as_ids
from catalog_ai.index._errors import SearchError
from catalog_ai.index.keys import IndexKeys
from catalog_ai.index.vector_index import VectorIndex

__all__ = ["Segment", "apply_segment", "file_sha256", "read_segment", "write_segment"]

_REBUILD = "the host's index cache is rebuilt from the database"


def file_sha256(file: Path) -> str:
    with open(file, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Segment:
    """Rows added (``emb_ids``, ``image_ids``, ``vectors``: descriptors) and photos removed."""

    def __init__(
        self,
        emb_ids: np.ndarray,
        image_ids: np.ndarray,
        vectors: np.ndarray,
        removed: np.ndarray,
    ) -> None:
        self.emb_ids, self.image_ids = as_ids(emb_ids), as_ids(image_ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.removed = as_ids(removed)

    def __len__(self) -> int:
        return len(self.emb_ids) + len(self.removed)


def write_segment(path: Path, counter: int, segment: Segment, watermark: int) -> dict[str, Any]:
    """Write ``segment`` durably into the index directory ``path``; its manifest entry."""
    name = f"s{counter:06d}-{uuid.uuid4().hex[:8]}.npz"
    file = Path(path) / name
    with open(file, "wb") as fh:
        np.savez(
            fh,
            emb_ids=segment.emb_ids,
            image_ids=segment.image_ids,
            vectors=segment.vectors,
            removed=segment.removed,
        )
        fh.flush()
        os.fsync(fh.fileno())
    return {
        "name": name,
        "sha256": file_sha256(file),
        "added": len(segment.emb_ids),
        "removed": len(segment.removed),
        "watermark": int(watermark),
    }


def read_segment(path: Path, entry: dict[str, Any], dim: int) -> Segment:
    """The segment of manifest ``entry``, checked against its SHA-256 and widths."""
    file = Path(path) / str(entry["name"])
    if not file.is_file() or file_sha256(file) != entry.get("sha256"):
        raise SearchError(f"{file}: catch-up segment missing or not as written; {_REBUILD}")
    try:
        with np.load(file, allow_pickle=False) as data:
            segment = Segment(data["emb_ids"], data["image_ids"], data["vectors"], data["removed"])
    except (OSError, ValueError, KeyError) as exc:
        raise SearchError(f"{file}: unreadable catch-up segment ({exc}); {_REBUILD}") from None
    n = len(segment.emb_ids)
    if len(segment.image_ids) != n or (n and segment.vectors.shape != (n, dim)):
        raise SearchError(f"{file}: catch-up segment of inconsistent sizes; {_REBUILD}")
    return segment


def apply_segment(index: VectorIndex, keys: IndexKeys, segment: Segment) -> None:
    """Removals first, then additions (a photo removed and re-embedded comes back)."""
    if len(segment.removed):
        index.remove(segment.removed)
        keys.remove_images(segment.removed)
    if len(segment.emb_ids):
        index.add(segment.image_ids, segment.vectors)
        keys.add(segment.emb_ids, segment.image_ids)
