"""Inner-product top-k search over unit descriptors: exact for small catalogs, HNSW above a size.

Both implementations share one interface (:class:`VectorIndex`) and one id scheme: vectors sit at
internal positions ``0..n-1``; ``ids[i]`` is the caller's 64-bit id at position ``i`` and
``alive[i]`` says whether it still counts. Removing marks a tombstone (HNSW graphs cannot delete
nodes); searches skip tombstones, and :meth:`VectorIndex.compact` rebuilds without them once
``dead_share`` is large. Adding an id that is already present replaces its vector.

Filtered search (``allowed=`` a set of ids) restricts results to those ids: exactly, by
scoring only the allowed vectors, when at most ``exact_filter_limit`` remain; otherwise with a
faiss ``IDSelectorBitmap`` over internal positions during the HNSW walk (a bitmap of n bits is
cheaper to build and test than ``IDSelectorBatch``'s hash set when the ids are positions).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from catalog_ai.index._errors import SearchError

__all__ = [
    "ExactIndex",
    "HNSWIndex",
    "IndexConfig",
    "VectorIndex",
    "create_index",
    "load_index",
]

_META = "index.json"
_IDS = "ids.npy"
_ALIVE = "alive.npy"


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


def _as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    return np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).ravel()


class VectorIndex(ABC):
    """Top-k inner-product search over unit vectors keyed by 64-bit ids."""

    kind: ClassVar[str]
    # Whether a small ``allowed`` set is better served by gathering its vectors and scoring them
    # exactly than by the implementation's own filtered search.
    _gather_small_filters: ClassVar[bool] = True

    def __init__(self, dim: int, config: IndexConfig | None = None):
        if dim < 1:
            raise SearchError(f"an index needs vectors of at least 1 value, got dim={dim}")
        self.dim = int(dim)
        self.config = config or IndexConfig()
        self._ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._changed()

    def _changed(self) -> None:
        """Forget what is derived from ``_ids``/``_alive`` (recomputed when next needed)."""
        self._n_alive = int(self._alive.sum())
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (ids, positions) of the alive
        self._alive_bits: np.ndarray | None = None  # _alive packed for faiss's IDSelectorBitmap

    # -- storage, per implementation ---------------------------------------------------------

    @abstractmethod
    def _append(self, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def _vectors_at(self, positions: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _search_all(
        self, queries: np.ndarray, k: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) among positions where ``mask`` (None: every alive one)."""

    @abstractmethod
    def _structure_bytes(self) -> int: ...

    @abstractmethod
    def _clear_storage(self) -> None: ...

    @abstractmethod
    def _save_storage(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_storage(self, directory: Path) -> None: ...

    # -- ids and tombstones ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_alive

    @property
    def n_total(self) -> int:
        """Stored vectors, tombstones included."""
        return len(self._ids)

    @property
    def n_dead(self) -> int:
        return self.n_total - len(self)

    @property
    def dead_share(self) -> float:
        return self.n_dead / self.n_total if self.n_total else 0.0

    @property
    def needs_compaction(self) -> bool:
        return self.dead_share > self.config.compact_ratio

    def ids(self) -> np.ndarray:
        """The ids that searches can return."""
        return self._ids[self._alive]

    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            positions = np.flatnonzero(self._alive)
            order = np.argsort(self._ids[positions], kind="stable")
            self._sorted = (self._ids[positions][order], positions[order])
        return self._sorted

    def positions_of(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """Internal positions of the alive ``ids`` (ids not in the index are left out)."""
        wanted = _as_ids(ids)
        sorted_ids, positions = self._lookup()
        if not len(sorted_ids) or not len(wanted):
            return np.empty(0, dtype=np.int64)
        at = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
        return positions[at[sorted_ids[at] == wanted]]

    def __contains__(self, id_: int) -> bool:
        return len(self.positions_of([id_])) == 1

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids``; an id already present gets the new vector."""
        ids = _as_ids(ids)
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
        self._append(vectors)
        self._ids = np.concatenate([self._ids, ids])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
        self._changed()

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Tombstone ``ids`` (absent ones are ignored); returns how many were removed."""
        positions = self.positions_of(ids)
        if len(positions):
            self._alive[positions] = False
            self._changed()
        return len(positions)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of every alive entry, in insertion order."""
        positions = np.flatnonzero(self._alive)
        return self._ids[positions], self._vectors_at(positions)

    def compact(self) -> None:
        """Drop the tombstones for good (HNSW: rebuilds the graph from the alive vectors)."""
        if not self.n_dead:
            return
        ids, vectors = self.items()
        self._ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._changed()
        self._clear_storage()
        self.add(ids, vectors)

    def nbytes(self) -> int:
        """Measured bytes of the in-memory structure: vectors, graph and id bookkeeping."""
        return self._structure_bytes() + self._ids.nbytes + self._alive.nbytes

    # -- search --------------------------------------------------------------------------------

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
        mask: np.ndarray | None = None
        if allowed is not None:
            mask = np.zeros(self.n_total, dtype=bool)
            mask[self.positions_of(allowed)] = True
        elif self.n_dead:
            mask = self._alive
        n_candidates = len(self) if mask is None or mask is self._alive else int(mask.sum())
        if n_candidates == 0 or len(q) == 0:
            return scores, found
        kk = min(k, n_candidates)
        small = n_candidates <= self.config.exact_filter_limit
        if allowed is not None and small and self._gather_small_filters:
            s, p = _exact_top_k(q, self._vectors_at(np.flatnonzero(mask)), kk)
            p = np.where(p >= 0, np.flatnonzero(mask)[np.maximum(p, 0)], -1)
        else:
            s, p = self._search_all(q, kk, mask)
        scores[:, :kk] = np.where(p >= 0, s, -np.inf)
        found[:, :kk] = np.where(p >= 0, self._ids[np.maximum(p, 0)], -1)
        return scores, found

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Write the index's files into ``directory`` (which the caller makes and publishes)."""
        directory = Path(directory)
        meta = {
            "kind": self.kind,
            "dim": self.dim,
            "config": asdict(self.config),
            "n_total": self.n_total,
            "n_alive": len(self),
        }
        np.save(directory / _IDS, self._ids, allow_pickle=False)
        np.save(directory / _ALIVE, self._alive, allow_pickle=False)
        self._save_storage(directory)
        (directory / _META).write_text(json.dumps(meta, indent=2), "utf-8")

    @classmethod
    def _restore(cls, directory: Path, meta: dict[str, Any]) -> VectorIndex:
        index = cls(int(meta["dim"]), IndexConfig(**meta["config"]))
        index._ids = np.load(directory / _IDS, allow_pickle=False).astype(np.int64)
        index._alive = np.load(directory / _ALIVE, allow_pickle=False).astype(bool)
        index._changed()
        index._load_storage(directory)
        if not (len(index._ids) == len(index._alive) == index._stored_count()):
            raise SearchError(f"{directory}: the index files disagree on their sizes; rebuild it")
        return index

    @abstractmethod
    def _stored_count(self) -> int: ...


def _exact_top_k(
    queries: np.ndarray, matrix: np.ndarray, k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (scores, row numbers) by inner product, rows outside ``mask`` never returned
    (the caller keeps ``k`` <= the rows in ``mask``). Queries go in chunks so that the score
    matrix stays small."""
    n = len(matrix)
    k = min(k, n)
    out_s = np.empty((len(queries), k), dtype=np.float32)
    out_p = np.empty((len(queries), k), dtype=np.int64)
    step = max(1, 32_000_000 // max(n, 1))
    for start in range(0, len(queries), step):
        s = queries[start : start + step] @ matrix.T
        if mask is not None:
            s[:, ~mask] = -np.inf
        if k < n:
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(n), s.shape).copy()
        top = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        out_p[start : start + step] = np.take_along_axis(part, order, axis=1)
        out_s[start : start + step] = np.take_along_axis(top, order, axis=1)
    return out_s, out_p


class ExactIndex(VectorIndex):
    """A float32 matrix scanned in full: exact results, fine up to tens of thousands of vectors."""

    kind = "exact"
    _gather_small_filters = False  # masking the scores of the full scan costs nothing extra
    _VECTORS = "vectors.npy"

    def __init__(self, dim: int, config: IndexConfig | None = None):
        super().__init__(dim, config)
        self._clear_storage()

    def _clear_storage(self) -> None:
        self._matrix = np.empty((0, self.dim), dtype=np.float32)
        self._n = 0  # rows in use; the matrix grows by doubling so that adding one is cheap

    def _append(self, vectors: np.ndarray) -> None:
        need = self._n + len(vectors)
        if need > len(self._matrix):
            grown = np.empty((max(need, 2 * len(self._matrix), 64), self.dim), dtype=np.float32)
            grown[: self._n] = self._matrix[: self._n]
            self._matrix = grown
        self._matrix[self._n : need] = vectors
        self._n = need

    def _vectors_at(self, positions: np.ndarray) -> np.ndarray:
        return self._matrix[positions]

    def _search_all(self, queries, k, mask):
        return _exact_top_k(queries, self._matrix[: self._n], k, mask)

    def _structure_bytes(self) -> int:
        return self._n * self.dim * 4

    def _stored_count(self) -> int:
        return self._n

    def _save_storage(self, directory: Path) -> None:
        np.save(directory / self._VECTORS, self._matrix[: self._n], allow_pickle=False)

    def _load_storage(self, directory: Path) -> None:
        matrix = np.load(directory / self._VECTORS, allow_pickle=False)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise SearchError(
                f"{directory}: vectors have shape {matrix.shape}, not (n, {self.dim})"
            )
        self._matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self._n = len(matrix)


class HNSWIndex(VectorIndex):
    """faiss ``IndexHNSWFlat`` with inner-product metric: sub-millisecond approximate search at a
    million vectors; the graph cannot delete, hence the tombstones."""

    kind = "hnsw"
    _FILE = "index.faiss"
    _MAX_EF = 1024

    def __init__(self, dim: int, config: IndexConfig | None = None):
        super().__init__(dim, config)
        self._clear_storage()

    def _clear_storage(self) -> None:
        import faiss

        self._index = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = self.config.ef_construction
        self._index.hnsw.efSearch = self.config.ef_search

    def _append(self, vectors: np.ndarray) -> None:
        self._index.add(vectors)

    def _vectors_at(self, positions: np.ndarray) -> np.ndarray:
        if not len(positions):
            return np.empty((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(np.ascontiguousarray(positions, dtype=np.int64))

    def _search_all(self, queries, k, mask):
        import faiss

        params = faiss.SearchParametersHNSW()
        ef = max(self.config.ef_search, k)
        bitmap = None
        if mask is not None:
            # A filter leaves fewer results on the walked paths: widen the candidate list in
            # proportion, so that a filter keeping 10 % of the vectors still fills top-k.
            kept = self._n_alive if mask is self._alive else int(mask.sum())
            share = kept / max(self.n_total, 1)
            ef = min(max(ef, int(np.ceil(ef / max(share, 1e-6)))), max(self._MAX_EF, k))
            if mask is self._alive:  # tombstones only: the same bitmap for every query
                if self._alive_bits is None:
                    self._alive_bits = np.packbits(mask, bitorder="little")
                bitmap = self._alive_bits
            else:
                bitmap = np.packbits(mask, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(self.n_total, faiss.swig_ptr(bitmap))
        params.efSearch = ef
        scores, positions = self._index.search(queries, k, params=params)
        del bitmap  # the selector reads it during search: keep it alive until here
        return scores, positions

    def _structure_bytes(self) -> int:
        import faiss

        hnsw = self._index.hnsw
        storage = faiss.downcast_index(self._index.storage)
        return int(
            storage.codes.size()
            + hnsw.neighbors.size() * 4
            + hnsw.levels.size() * 4
            + hnsw.offsets.size() * 8
            + hnsw.assign_probas.size() * 8
            + hnsw.cum_nneighbor_per_level.size() * 4
        )

    def _stored_count(self) -> int:
        return int(self._index.ntotal)

    def _save_storage(self, directory: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(directory / self._FILE))

    def _load_storage(self, directory: Path) -> None:
        import faiss

        try:
            index = faiss.read_index(str(directory / self._FILE))
        except RuntimeError as exc:
            raise SearchError(
                f"{directory / self._FILE}: not a readable faiss index "
                f"({str(exc).splitlines()[0]}); "
                "rebuild it (catalog-ai index build)"
            ) from None
        if not isinstance(index, faiss.IndexHNSWFlat):  # recent faiss returns the subclass already
            index = faiss.downcast_index(index)
        if not isinstance(index, faiss.IndexHNSWFlat) or index.d != self.dim:
            raise SearchError(
                f"{directory / self._FILE}: not an HNSW index of dim {self.dim}; rebuild it"
            )
        index.hnsw.efSearch = self.config.ef_search
        self._index = index


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
        meta = json.loads((directory / _META).read_text("utf-8"))
        cls = _KINDS[meta["kind"]]
        return cls._restore(directory, meta)
    except SearchError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SearchError(
            f"{directory}: the search index cannot be read ({type(exc).__name__}: {exc}); "
            "rebuild it (catalog-ai index build)"
        ) from None
