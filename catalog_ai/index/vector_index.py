"""Inner-product top-k search over unit descriptors: exact for small catalogs, HNSW above a size.

The caller's 64-bit ids live inside faiss's id-mapped indexes: :class:`ExactIndex` is an
``IndexIDMap2`` over ``IndexFlatIP``, :class:`HNSWIndex` an ``IndexIDMap`` over ``IndexHNSWFlat``.
Adding an id that is already present replaces its vector. The exact index deletes removed ids
(``remove_ids``). An HNSW graph cannot delete nodes (faiss's ``IndexHNSW`` has no ``remove_ids``),
so there, and only there, a removed id is a tombstone: searches skip positions whose ``alive``
flag is off, and :meth:`VectorIndex.compact` rebuilds the graph once ``dead_share`` is large.

Filtered search (``allowed=`` a set of ids): the exact index scans with an ``IDSelectorBatch`` of
them. HNSW scores the allowed vectors exactly when at most ``exact_filter_limit`` remain, else it
walks the graph itself with an ``IDSelectorBitmap`` over internal positions (n bits are cheaper to
build and test than ``IDSelectorBatch``'s hash set) and maps positions to ids as ``IndexIDMap``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from catalog_ai.index._base import (
    ALIVE_FILE,
    META_FILE,
    REBUILD,
    IndexConfig,
    VectorIndex,
    as_ids,
)
from catalog_ai.index._errors import SearchError

__all__ = ["ExactIndex", "HNSWIndex", "IndexConfig", "VectorIndex", "create_index", "load_index"]

# faiss's SWIG module as mypy sees it lacks some classes the compiled one has (the
# SearchParametersHNSW of faiss >= 1.7.3).
_faiss: Any = faiss
# Bytes per id of IndexIDMap2's reverse map (an unordered_map node plus its bucket), an estimate:
# faiss does not expose the map's memory.
_REV_MAP_BYTES = 40


class ExactIndex(VectorIndex):
    """faiss ``IndexFlatIP`` under ``IndexIDMap2``: every vector scored, exact results, fine up
    to tens of thousands of vectors. Removal deletes: no tombstones."""

    kind = "exact"
    _WRAPPER, _INNER = faiss.IndexIDMap2, faiss.IndexFlatIP

    def _new_index(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        wanted = as_ids(ids)
        if not len(wanted) or not np.isin(wanted, self._all_ids()).any():
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(wanted)))
        self._changed()
        return removed

    def _search(self, queries, k, allowed):
        params = None
        if allowed is not None:
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(allowed)
        return self._index.search(queries, k, params=params)

    def nbytes(self) -> int:
        return super().nbytes() + self.n_total * _REV_MAP_BYTES


class HNSWIndex(VectorIndex):
    """faiss ``IndexHNSWFlat`` with inner-product metric under ``IndexIDMap``: sub-millisecond
    approximate search at a million vectors; the graph cannot delete, hence the tombstones."""

    kind = "hnsw"
    _graph: Any  # the IndexHNSWFlat inside the IndexIDMap (downcast_index gives a plain Index)
    _WRAPPER, _INNER = faiss.IndexIDMap, faiss.IndexHNSWFlat
    _MAX_EF = 1024

    def _new_index(self) -> Any:
        graph = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.config.ef_construction
        graph.hnsw.efSearch = self.config.ef_search
        self._graph = graph
        self._alive = np.empty(0, dtype=bool)
        return faiss.IndexIDMap(graph)  # keeps a reference to the graph (faiss's Python layer)

    def _changed(self) -> None:
        super()._changed()
        self._n_dead = int((~self._alive).sum())
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (ids, positions) of the alive
        self._alive_bits: np.ndarray | None = None  # _alive packed for faiss's IDSelectorBitmap

    @property
    def n_dead(self) -> int:
        return self._n_dead

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        before = self.n_total
        super().add(ids, vectors)
        self._alive = np.concatenate([self._alive, np.ones(self.n_total - before, dtype=bool)])
        self._changed()

    def _positions_of(self, ids: np.ndarray) -> np.ndarray:
        """Internal positions of the alive ``ids`` (ids not in the index are left out)."""
        if self._sorted is None:
            positions = np.flatnonzero(self._alive)
            order = np.argsort(self._all_ids()[positions], kind="stable")
            self._sorted = (self._all_ids()[positions][order], positions[order])
        sorted_ids, positions = self._sorted
        if not len(sorted_ids) or not len(ids):
            return np.empty(0, dtype=np.int64)
        at = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        found: np.ndarray = positions[at[sorted_ids[at] == ids]]
        return found

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        positions = self._positions_of(as_ids(ids))
        if len(positions):
            self._alive[positions] = False
            self._changed()
        return len(positions)

    def ids(self) -> np.ndarray:
        return self._all_ids()[self._alive]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        positions = np.flatnonzero(self._alive)
        return self._all_ids()[positions], self._vectors_at(positions)

    def _vectors_at(self, positions: np.ndarray) -> np.ndarray:
        if not len(positions):
            return np.empty((0, self.dim), dtype=np.float32)
        return np.asarray(self._graph.reconstruct_batch(positions))

    def _search(self, queries, k, allowed):
        if allowed is None:
            mask = self._alive if self.n_dead else None
        else:
            mask = np.zeros(self.n_total, dtype=bool)
            mask[self._positions_of(allowed)] = True
            positions = np.flatnonzero(mask)  # sorted, each once (np.unique costs 5x more)
            if not len(positions):
                empty = np.full((len(queries), k), -1, dtype=np.int64)
                return np.full(empty.shape, -np.inf, dtype=np.float32), empty
            if len(positions) <= self.config.exact_filter_limit:
                # Few enough to score them all: exact, and cheaper than a filtered walk.
                vectors, kk = self._vectors_at(positions), min(k, len(positions))
                s, rows = faiss.knn(queries, vectors, kk, faiss.METRIC_INNER_PRODUCT)
                return s, np.where(rows >= 0, self._all_ids()[positions][rows], -1)
        s, p = self._walk(queries, k, mask)
        return s, np.where(p >= 0, self._all_ids()[np.maximum(p, 0)], -1)

    def _walk(self, queries: np.ndarray, k: int, mask: np.ndarray | None):
        """The graph's own search, among positions where ``mask`` (None: all)."""
        params = _faiss.SearchParametersHNSW()
        ef = max(self.config.ef_search, k)
        bitmap = None
        if mask is not None:
            # A filter leaves fewer results on the walked paths: widen the candidate list in
            # proportion, so that a filter keeping 10 % of the vectors still fills top-k.
            share = (len(self) if mask is self._alive else int(mask.sum())) / self.n_total
            ef = min(max(ef, int(np.ceil(ef / max(share, 1e-6)))), max(self._MAX_EF, k))
            if mask is self._alive:  # tombstones only: the same bitmap for every query
                if self._alive_bits is None:
                    self._alive_bits = np.packbits(mask, bitorder="little")
                bitmap = self._alive_bits
            else:
                bitmap = np.packbits(mask, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(self.n_total, faiss.swig_ptr(bitmap))
        params.efSearch = ef
        scores, positions = self._graph.search(queries, k, params=params)
        del bitmap  # the selector reads it during search: keep it alive until here
        return scores, positions

    def nbytes(self) -> int:
        h: Any = self._graph.hnsw  # SWIG attributes mypy cannot see
        links = 4 * (h.neighbors.size() + h.levels.size() + h.cum_nneighbor_per_level.size())
        links += 8 * (h.offsets.size() + h.assign_probas.size())
        storage: Any = faiss.downcast_index(self._graph.storage)
        codes = storage.codes.size()
        return int(codes + links + self.n_total * 9)  # 9: the id_map's 8 bytes, alive's 1

    def save(self, directory: str | Path) -> None:
        super().save(directory)
        np.save(Path(directory) / ALIVE_FILE, self._alive, allow_pickle=False)

    @classmethod
    def _restore(cls, directory: Path, meta: dict[str, Any]) -> VectorIndex:
        index = cast("HNSWIndex", super()._restore(directory, meta))
        alive = np.load(directory / ALIVE_FILE, allow_pickle=False).astype(bool)
        if alive.shape != (index.n_total,):
            raise SearchError(f"{directory}: the index files disagree on their sizes; {REBUILD}")
        index._graph = faiss.downcast_index(index._index.index)
        index._graph.hnsw.efSearch = index.config.ef_search
        index._alive = alive
        index._changed()
        return index


_KINDS: dict[str, type[VectorIndex]] = {ExactIndex.kind: ExactIndex, HNSWIndex.kind: HNSWIndex}


def create_index(dim: int, *, size: int, config: IndexConfig | None = None) -> VectorIndex:
    """An empty index of the kind that suits ``size`` vectors: exact up to
    ``config.ann_threshold``, HNSW above."""
    config = config or IndexConfig()
    cls = HNSWIndex if size > config.ann_threshold else ExactIndex
    return cls(dim, config)


def load_index(directory: str | Path) -> VectorIndex:
    """An index written by :meth:`VectorIndex.save`."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / META_FILE).read_text("utf-8"))
        cls = _KINDS[meta["kind"]]
        return cls._restore(directory, meta)
    except SearchError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SearchError(
            f"{directory}: the search index cannot be read ({type(exc).__name__}: {exc}); {REBUILD}"
        ) from None
