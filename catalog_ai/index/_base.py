"""The contract of a vector index (:class:`VectorIndex`), its settings and its file format.

The two implementations, on faiss's id-mapped indexes, are in :mod:`.vector_index`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from catalog_ai.index._errors import SearchError

__all__ = [
    "ALIVE_FILE",
    "FAISS_FILE",
    "FORMAT",
    "META_FILE",
    "REBUILD",
    "IndexConfig",
    "VectorIndex",
    "as_ids",
]

#: Version of what :meth:`VectorIndex.save` writes; 1 (no ``format`` field) kept the ids in
#: ``ids.npy`` beside bare faiss or numpy vectors, 2 keeps them inside the faiss file.
FORMAT = 2
META_FILE = "index.json"
FAISS_FILE = "index.faiss"
ALIVE_FILE = "alive.npy"
REBUILD = "rebuild it (catalog-ai index build)"


@dataclass(frozen=True)
class IndexConfig:
    """Index choice and HNSW settings (defaults measured in ``benchmarks/search.py``).

    ``ann_threshold``: catalogs with more vectors than this use HNSW, smaller ones exact search.
    ``ef_search``: HNSW candidate list per query; larger is slower and more accurate.
    ``compact_ratio``: share of tombstones above which :meth:`VectorIndex.needs_compaction`.
    """

    ann_threshold: int = 20_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    compact_ratio: float = 0.2
    exact_filter_limit: int = 20_000

    def __post_init__(self) -> None:
        if min(self.ann_threshold, self.hnsw_m, self.ef_construction, self.ef_search) < 1 or not (
            0 < self.compact_ratio <= 1
        ):
            raise SearchError(
                f"index settings {self} are out of range: counts must be >= 1 and "
                "0 < compact_ratio <= 1"
            )


def as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    return np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).ravel()


class VectorIndex(ABC):
    """Top-k inner-product search over unit vectors keyed by 64-bit ids."""

    kind: ClassVar[str]
    # The faiss wrapper and inner index classes a saved file of this kind must hold.
    _WRAPPER: ClassVar[Any]
    _INNER: ClassVar[Any]

    def __init__(self, dim: int, config: IndexConfig | None = None):
        if dim < 1:
            raise SearchError(f"an index needs vectors of at least 1 value, got dim={dim}")
        self.dim = int(dim)
        self.config = config or IndexConfig()
        self._index = self._new_index()
        self._changed()

    @abstractmethod
    def _new_index(self) -> Any:
        """An empty faiss id-mapped index."""

    @abstractmethod
    def _search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """faiss's ``(scores, ids)`` among the alive (and ``allowed``) ids; -1 for none."""

    def _changed(self) -> None:
        self._id_map: np.ndarray | None = None  # faiss's id_map as numpy, read when next needed

    def _all_ids(self) -> np.ndarray:
        """The id at every internal position (tombstones included)."""
        if self._id_map is None:
            self._id_map = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return self._id_map

    def __len__(self) -> int:
        return self.n_total - self.n_dead

    @property
    def n_total(self) -> int:
        """Stored vectors, tombstones included."""
        return int(self._index.ntotal)

    @property
    def n_dead(self) -> int:
        return 0

    @property
    def dead_share(self) -> float:
        return self.n_dead / self.n_total if self.n_total else 0.0

    @property
    def needs_compaction(self) -> bool:
        return self.dead_share > self.config.compact_ratio

    def ids(self) -> np.ndarray:
        """The ids that searches can return."""
        return self._all_ids().copy()

    def __contains__(self, id_: int) -> bool:
        return bool(np.isin(id_, self.ids()))

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids``; an id already present gets the new vector."""
        ids = as_ids(ids)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise SearchError(
                f"cannot add vectors of shape {vectors.shape} under {len(ids)} ids to an index of "
                f"dim {self.dim}; give one {self.dim}-value vector per id"
            )
        if len(np.unique(ids)) != len(ids):
            raise SearchError("the ids given to add() repeat; give each id once")
        if not len(ids):
            return
        self.remove(ids)
        self._index.add_with_ids(vectors, ids)
        self._changed()

    @abstractmethod
    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Remove ``ids`` (absent ones are ignored); returns how many were removed."""

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of every alive entry, in insertion order."""
        n = self.n_total
        vectors = self._index.index.reconstruct_n(0, n) if n else np.empty((0, self.dim), "f4")
        return self._all_ids().copy(), vectors

    def compact(self) -> None:
        """Drop the tombstones for good (HNSW: rebuilds the graph from the alive vectors)."""
        if not self.n_dead:
            return
        ids, vectors = self.items()
        self._index = self._new_index()
        self._changed()
        self.add(ids, vectors)

    def nbytes(self) -> int:
        """Bytes of the in-memory structure: vectors, graph and id bookkeeping."""
        return self.n_total * (self.dim * 4 + 8)

    def search(
        self, queries: np.ndarray, k: int, *, allowed: Iterable[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)``, each ``(n_queries, k)``, best first; missing slots have id
        ``-1`` and score ``-inf``. ``allowed``: only these ids may be returned."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise SearchError(
                f"query of shape {tuple(np.shape(queries))} does not fit an index of dim {self.dim}"
            )
        if k < 1:
            raise SearchError(f"k={k} must be at least 1")
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        found = np.full((len(q), k), -1, dtype=np.int64)
        wanted = None if allowed is None else as_ids(allowed)
        if not len(self) or not len(q) or (wanted is not None and not len(wanted)):
            return scores, found
        s, f = self._search(q, min(k, len(self)), wanted)
        scores[:, : s.shape[1]] = np.where(f >= 0, s, -np.inf)
        found[:, : f.shape[1]] = f
        return scores, found

    def save(self, directory: str | Path) -> None:
        """Write the index's files into ``directory`` (which the caller makes and publishes)."""
        directory = Path(directory)
        meta = {
            "format": FORMAT,
            "kind": self.kind,
            "dim": self.dim,
            "config": asdict(self.config),
            "n_total": self.n_total,
            "n_alive": len(self),
        }
        faiss.write_index(self._index, str(directory / FAISS_FILE))
        (directory / META_FILE).write_text(json.dumps(meta, indent=2), "utf-8")

    @classmethod
    def _restore(cls, directory: Path, meta: dict[str, Any]) -> VectorIndex:
        if meta.get("format", 1) != FORMAT:
            raise SearchError(
                f"{directory}: the index has format {meta.get('format', 1)}, this catalog_ai reads "
                f"format {FORMAT} (the ids now live inside the faiss file); {REBUILD}"
            )
        index = cls(int(meta["dim"]), IndexConfig(**meta["config"]))
        file = directory / FAISS_FILE
        try:
            # The subclass itself, owning its memory (a downcast_index view would not).
            loaded: Any = faiss.read_index(str(file))
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise SearchError(f"{file}: not a readable faiss index ({first}); {REBUILD}") from None
        inner = faiss.downcast_index(loaded.index) if isinstance(loaded, cls._WRAPPER) else None
        if not isinstance(inner, cls._INNER) or loaded.d != index.dim:
            raise SearchError(
                f"{file}: not an id-mapped {cls._INNER.__name__} of dim {index.dim}; {REBUILD}"
            )
        index._index = loaded
        index._changed()
        return index
