"""The on-disk index of a model version: generations published atomically, cache, manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from catalog_ai.index import (
    DescriptorConfig,
    ExactIndex,
    IndexManifest,
    SearchError,
    fit_descriptor_transform,
    index_dir,
    load_stored_index,
    read_manifest,
    save_stored_index,
)


def _manifest() -> IndexManifest:
    return IndexManifest(
        model_version="m1",
        kind="",
        dim=0,
        input_dim=0,
        n_alive=0,
        n_dead=0,
        max_embedding_id=7,
        transform={},
        config={},
        bytes=0,
        built_at="t",
        updated_at="t",
    )


def _parts(n: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    raw = np.abs(rng.normal(size=(n, 12))).astype(np.float32)
    transform = fit_descriptor_transform(raw, DescriptorConfig(kind="center_l2"))
    index = ExactIndex(transform.dim)
    index.add(np.arange(n) + 100, transform.apply(raw))
    return raw, transform, index


def test_save_publishes_a_generation_with_counts_and_transform(tmp_path):
    raw, transform, index = _parts()
    index.remove([100])
    path = index_dir(tmp_path, "m1")
    manifest = save_stored_index(path, index, transform, _manifest())
    on_disk = json.loads((path / "manifest.json").read_text())
    assert on_disk["generation"] == manifest.generation and (path / manifest.generation).is_dir()
    assert (on_disk["kind"], on_disk["n_alive"], on_disk["n_dead"], on_disk["dim"]) == (
        "exact",
        29,
        0,  # the exact index deletes removed vectors (faiss remove_ids): no tombstones
        12,
    )
    assert on_disk["transform"]["kind"] == "center_l2" and len(on_disk["transform"]["sha256"]) == 64
    assert on_disk["bytes"] == index.nbytes() and on_disk["max_embedding_id"] == 7
    stored = load_stored_index(path, cached=False)
    assert np.array_equal(
        stored.index.search(transform.apply(raw[:3]), 2)[1],
        index.search(transform.apply(raw[:3]), 2)[1],
    )
    assert np.array_equal(stored.transform.apply(raw), transform.apply(raw))


def test_generations_replace_each_other_and_old_ones_are_removed(tmp_path):
    _, transform, index = _parts()
    path = tmp_path / "idx"
    names = [save_stored_index(path, index, transform, _manifest()).generation for _ in range(3)]
    assert len(set(names)) == 3 and names[0] < names[1] < names[2]
    kept = sorted(p.name for p in path.glob("g*"))
    assert kept == names[1:]  # the current one and the one a reader may still be opening
    assert read_manifest(path).generation == names[2]


def test_the_cache_reloads_only_when_a_new_generation_is_published(tmp_path):
    _, transform, index = _parts()
    path = tmp_path / "idx"
    assert load_stored_index(path) is None
    save_stored_index(path, index, transform, _manifest())
    first = load_stored_index(path)
    assert load_stored_index(path) is first
    index.add([1], np.ones((1, index.dim), np.float32) / np.sqrt(index.dim))
    save_stored_index(path, index, transform, _manifest())
    second = load_stored_index(path)
    assert second is not first and len(second.index) == len(first.index) + 1


def test_a_failed_save_leaves_the_published_index_alone(tmp_path, monkeypatch):
    _, transform, index = _parts()
    path = tmp_path / "idx"
    before = save_stored_index(path, index, transform, _manifest()).generation

    def broken(directory):
        raise OSError("disk full")

    monkeypatch.setattr(index, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_stored_index(path, index, transform, _manifest())
    assert read_manifest(path).generation == before
    assert sorted(p.name for p in path.glob("g*")) == [before]


def test_unsafe_version_names_and_bad_manifests_are_refused(tmp_path):
    with pytest.raises(SearchError, match="cannot name an index directory"):
        index_dir(tmp_path, "../elsewhere")
    path = tmp_path / "idx"
    path.mkdir()
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(SearchError, match="catalog-ai index build"):
        read_manifest(path)
    (path / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(SearchError, match="newer"):
        read_manifest(path)


def test_index_lock_serialises_two_writers_in_one_process(tmp_path):
    import threading
    import time

    from catalog_ai.index import index_lock

    events: list[str] = []
    held = threading.Event()

    def first() -> None:
        with index_lock(tmp_path / "ix"):
            events.append("first in")
            held.set()
            time.sleep(0.3)  # the second writer must wait all this while
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(5)
    with index_lock(tmp_path / "ix"):
        events.append("second in")
    thread.join()
    assert events == ["first in", "first out", "second in"]


def test_index_lock_is_seen_by_another_process_and_released_on_error(tmp_path):
    import subprocess
    import sys

    from catalog_ai.index import index_lock

    # Another process (as on another machine) tries the same lock file without waiting.
    probe = (
        "import sys, filelock\n"
        "try:\n"
        "    with filelock.FileLock(sys.argv[1], timeout=0): print('free')\n"
        "except filelock.Timeout: print('held')\n"
    )
    lock_file = str(tmp_path / "ix" / ".lock")

    def other_process_sees() -> str:
        out = subprocess.run([sys.executable, "-c", probe, lock_file], capture_output=True)
        return out.stdout.decode().strip()

    with pytest.raises(RuntimeError), index_lock(tmp_path / "ix"):
        assert other_process_sees() == "held"
        raise RuntimeError("a writer fails half-way")
    assert other_process_sees() == "free"  # released although the block raised


def test_a_segment_is_appended_replayed_in_place_and_checked(tmp_path):
    from catalog_ai.index import IndexKeys, Segment, append_segment, forget_stored_index

    raw, transform, index = _parts()
    path = tmp_path / "idx"
    keys = IndexKeys(np.arange(30) + 1000, np.arange(30) + 100)
    save_stored_index(path, index, transform, _manifest(), keys)
    stored = load_stored_index(path)
    reader = load_stored_index(path, cached=False)  # another process, loaded a moment ago
    vectors = transform.apply(raw[:2] + 0.5)
    segment = Segment(np.array([2000, 2001]), np.array([500, 501]), vectors, np.array([100]))
    from catalog_ai.index.segments import apply_segment

    apply_segment(stored.index, stored.keys, segment)
    manifest = append_segment(stored, segment, watermark=2001)
    assert manifest.max_embedding_id == 2001 and len(manifest.segments) == 1
    assert manifest.n_alive == 31 and read_manifest(path) == manifest
    from catalog_ai.index import remember_stored_index

    remember_stored_index(reader)  # the reader's process holds the older state
    again = load_stored_index(path)
    assert again is reader and len(reader.index) == 31 and 100 not in reader.index.ids()
    assert reader.search(vectors[:1], 1)[1][0, 0] == 500
    assert sorted(reader.keys.emb_ids.tolist()) == sorted([*range(1001, 1030), 2000, 2001])
    # A fresh load replays the segment too; a segment not as written is refused.
    forget_stored_index(path)
    assert len(load_stored_index(path).index) == 31
    file = path / manifest.generation / manifest.segments[0]["name"]
    file.write_bytes(file.read_bytes() + b"x")
    forget_stored_index(path)
    with pytest.raises(SearchError, match="not as written"):
        load_stored_index(path)


def test_a_changed_generation_file_is_refused_before_faiss_reads_it(tmp_path):
    _, transform, index = _parts()
    path = tmp_path / "idx"
    manifest = save_stored_index(path, index, transform, _manifest())
    assert set(manifest.files) == {"index.json", "index.faiss", "transform.npz", "keys.npy"}
    faiss_file = path / manifest.generation / "index.faiss"
    data = bytearray(faiss_file.read_bytes())
    data[-4] ^= 0xFF
    faiss_file.write_bytes(bytes(data))
    with pytest.raises(SearchError, match=r"index\.faiss: missing or not as written"):
        load_stored_index(path, cached=False)
