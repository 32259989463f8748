"""Exact and HNSW indexes: agreement, incremental updates, tombstones, filters, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from catalog_ai.index import (
    ExactIndex,
    HNSWIndex,
    IndexConfig,
    SearchError,
    create_index,
    l2_normalise,
    load_index,
)

DIM = 32


def clustered(n: int, *, seed: int = 0, clusters: int = 50) -> np.ndarray:
    """Unit vectors in overlapping clusters with a decaying spectrum, like product descriptors
    of many categories: the median query's nearest and 10th-nearest similarities (0.59, 0.49)
    are close to the real Grocery descriptors' (0.62, 0.48; benchmarks/search.py)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    spread = 2.0 * 0.88 ** np.arange(DIM)
    return l2_normalise(centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, DIM)) * spread)


@pytest.fixture(scope="module")
def data():
    vectors = clustered(5000)
    ids = np.arange(5000, dtype=np.int64) * 10 + 7  # sparse, not positions
    queries = l2_normalise(clustered(200, seed=1))
    return ids, vectors, queries


@pytest.fixture(scope="module")
def built(data):
    ids, vectors, _ = data
    exact, hnsw = ExactIndex(DIM), HNSWIndex(DIM)
    exact.add(ids, vectors)
    hnsw.add(ids, vectors)
    return exact, hnsw


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a) & set(b)) for a, b in zip(found, truth, strict=True)]
    return float(np.mean(hits) / truth.shape[1])


def brute_force(ids, vectors, queries, k):
    order = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]
    return ids[order]


def test_exact_index_is_exact(data, built):
    ids, vectors, queries = data
    scores, found = built[0].search(queries, 10)
    assert np.array_equal(found, brute_force(ids, vectors, queries, 10))
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    assert scores[0, 0] == pytest.approx(float(np.max(queries[0] @ vectors.T)), abs=1e-5)


def test_hnsw_agrees_with_exact_search(data, built):
    _, _, queries = data
    _, truth = built[0].search(queries, 10)
    _, found = built[1].search(queries, 10)
    assert recall(found, truth) >= 0.95


def test_added_vectors_are_found_after_the_build(data):
    ids, vectors, _ = data
    for index in (ExactIndex(DIM), HNSWIndex(DIM)):
        index.add(ids[:4000], vectors[:4000])
        index.add(ids[4000:], vectors[4000:])
        _, found = index.search(vectors[4500:4600], 1)
        assert np.array_equal(found[:, 0], ids[4500:4600])
        assert len(index) == 5000 and ids[4999] in index and 12345 not in index


@pytest.mark.parametrize(("cls", "dead"), [(ExactIndex, 0), (HNSWIndex, 1)])
def test_re_adding_an_id_replaces_its_vector(cls, dead):
    # The exact index deletes the old vector; the HNSW graph keeps it as a tombstone.
    index = cls(DIM)
    v = clustered(3, seed=5)
    index.add([1, 2], v[:2])
    index.add([1], v[2:3])
    assert len(index) == 2 and index.n_dead == dead and index.n_total == 2 + dead
    assert 1 in index and 3 not in index
    _, found = index.search(v[2], 1)
    assert found[0, 0] == 1
    assert np.allclose(index.items()[1][index.items()[0] == 1], v[2])


@pytest.mark.parametrize("cls", [ExactIndex, HNSWIndex])
def test_removed_ids_are_never_returned_and_compaction_keeps_the_rest(cls, data, tmp_path):
    ids, vectors, queries = data
    index = cls(DIM, IndexConfig(compact_ratio=0.3))
    index.add(ids, vectors)
    _, before = index.search(queries, 10)
    gone = np.unique(before[:, :3])
    assert index.remove(gone) == len(gone)
    assert index.remove([99999999]) == 0
    _, after = index.search(queries, 10)
    assert not np.isin(after, gone).any() and (after >= 0).all()
    assert len(index) == 5000 - len(gone)
    # Tombstones only where the structure cannot delete (HNSW); the exact index deletes.
    assert index.n_dead == (len(gone) if cls is HNSWIndex else 0)
    assert index.n_total == (5000 if cls is HNSWIndex else 5000 - len(gone))
    index.save(tmp_path)
    assert not np.isin(load_index(tmp_path).search(queries, 10)[1], gone).any()
    # Everything but 50 photos removed: the tombstone share asks for compaction.
    index.remove(ids[50:])
    assert index.needs_compaction == (cls is HNSWIndex)
    index.compact()
    assert (index.n_total, index.n_dead) == (50 - np.isin(ids[:50], gone).sum(), 0)
    _, found = index.search(queries, 10)
    assert set(found.ravel()) <= set(ids[:50]) - set(gone)


@pytest.mark.parametrize("cls", [ExactIndex, HNSWIndex])
def test_persisted_index_gives_the_same_results(cls, data, tmp_path):
    ids, vectors, queries = data
    index = cls(DIM, IndexConfig(ef_search=48))
    index.add(ids, vectors)
    index.remove(ids[:10])
    index.save(tmp_path)
    back = load_index(tmp_path)
    assert type(back) is cls and back.config == index.config
    assert (len(back), back.n_dead) == (len(index), index.n_dead)
    s1, f1 = index.search(queries, 10)
    s2, f2 = back.search(queries, 10)
    assert np.array_equal(f1, f2) and np.allclose(s1, s2)
    back.add([1], vectors[:1])  # a reloaded index keeps taking updates
    assert back.search(vectors[:1], 1)[1][0, 0] in (1, ids[0])


@pytest.mark.parametrize("limit", [20_000, 100], ids=["exact-subset", "hnsw-bitmap"])
def test_filtered_search_returns_only_allowed_ids(limit, data):
    ids, vectors, queries = data
    hnsw = HNSWIndex(DIM, IndexConfig(exact_filter_limit=limit))
    hnsw.add(ids, vectors)
    exact = ExactIndex(DIM)
    exact.add(ids, vectors)
    allowed = ids[::4]  # a quarter of the catalog, e.g. the products matching "juice"
    hnsw.remove(allowed[:5])
    exact.remove(allowed[:5])
    _, found = hnsw.search(queries, 10, allowed=allowed)
    _, truth = exact.search(queries, 10, allowed=allowed)
    assert np.isin(truth, allowed[5:]).all() and np.isin(found, allowed[5:]).all()
    assert recall(found, truth) >= 0.95
    assert np.array_equal(truth, brute_force(ids[::4][5:], vectors[::4][5:], queries, 10))


def test_fewer_matches_than_k_pad_with_minus_one():
    index = HNSWIndex(DIM)
    v = clustered(5)
    index.add(np.arange(5), v)
    scores, found = index.search(v[:2], 10, allowed=[1, 3, 3, 42])  # 3 given twice, found once
    assert (
        set(found[0, :2]) == {1, 3}
        and (found[:, 2:] == -1).all()
        and np.isneginf(scores[:, 2:]).all()
    )
    _, empty = ExactIndex(DIM).search(v[0], 3)
    assert (empty == -1).all()


def test_index_kind_follows_the_catalog_size():
    config = IndexConfig(ann_threshold=1000)
    assert isinstance(create_index(DIM, size=1000, config=config), ExactIndex)
    assert isinstance(create_index(DIM, size=1001, config=config), HNSWIndex)


def test_bad_input_is_refused(tmp_path):
    index = ExactIndex(DIM)
    with pytest.raises(SearchError, match="one 32-value vector per id"):
        index.add([1, 2], np.zeros((3, DIM)))
    with pytest.raises(SearchError, match="repeat"):
        index.add([1, 1], np.zeros((2, DIM)))
    with pytest.raises(SearchError, match="does not fit an index of dim 32"):
        index.search(np.zeros(8), 3)
    with pytest.raises(SearchError, match="rebuild it"):
        load_index(tmp_path)  # nothing there
    (tmp_path / "index.json").write_text('{"format": 2, "kind": "hnsw", "dim": 32, "config": {}}')
    (tmp_path / "index.faiss").write_bytes(b"junk")
    with pytest.raises(SearchError, match=r"not a readable faiss index.*rebuild it"):
        load_index(tmp_path)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_an_index_of_the_first_format_asks_to_be_rebuilt(tmp_path, kind):
    # Format 1 kept the ids in ids.npy beside bare vectors; the ids now live in the faiss file.
    meta = {"kind": kind, "dim": DIM, "config": {}, "n_total": 0, "n_alive": 0}
    (tmp_path / "index.json").write_text(json.dumps(meta))
    np.save(tmp_path / "ids.npy", np.zeros(0, dtype=np.int64))
    with pytest.raises(SearchError, match=r"format 1, this catalog_ai reads format 2.*index build"):
        load_index(tmp_path)


def test_a_faiss_file_of_another_kind_is_refused(tmp_path):
    ExactIndex(DIM).save(tmp_path)
    meta = json.loads((tmp_path / "index.json").read_text())
    (tmp_path / "index.json").write_text(json.dumps({**meta, "kind": "hnsw"}))
    with pytest.raises(SearchError, match="not an id-mapped IndexHNSWFlat of dim 32"):
        load_index(tmp_path)


def test_memory_is_measured_from_the_structures(data, built):
    exact, hnsw = built
    assert exact.nbytes() >= 5000 * DIM * 4
    # HNSW: the vectors plus at least the level-0 links (2*M neighbours of 4 bytes each).
    assert hnsw.nbytes() >= 5000 * (DIM * 4 + 2 * hnsw.config.hnsw_m * 4)
