"""The search index as each host's cache of the database: catch-up on search and update,
growth to HNSW, a descriptor refit, and a rebuild of whatever cannot be trusted."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from catalog_ai.db import (
    Embedding,
    ModelVersion,
    Product,
    unit_of_work,
)
from catalog_ai.index import (
    DescriptorConfig,
    IndexConfig,
    SearchError,
    cached_stored_index,
    forget_stored_index,
    load_stored_index,
    read_manifest,
    remember_stored_index,
)
from catalog_ai.services import search_index
from catalog_ai.services.search_index import build_index, index_status, update_index
from services.search_catalog import (
    CENTRES,
    VERSION,
    add_product,
    build,
    model_row,
    similar,
    vector,
)


def test_a_search_catches_up_with_new_photos_and_an_update_with_deleted_ones(search_catalog):
    build()
    rng = np.random.default_rng(5)
    with unit_of_work() as session:
        mv = model_row(session)
        new_id = add_product(
            session, "Garant milk", "Packages > Milk", [vector(3, rng)], mv, tag="new"
        ).id
        status = index_status(session, VERSION)
        assert (status.n_pending, status.n_indexed, status.up_to_date) == (1, 9, False)
    # The search itself catches this host's copy up: the new photo is found at once.
    assert {h.title for h in similar(query_vector=CENTRES[3], k=2)} == {
        "Garant milk",
        "Arla standard milk",
    }
    assert new_id in [h.product_id for h in similar(query_vector=CENTRES[3], k=10)]
    with unit_of_work() as session:
        status = index_status(session, VERSION)
    assert (status.n_indexed, status.n_pending, status.up_to_date) == (10, 0, True)

    with unit_of_work() as session:
        session.delete(session.get(Product, search_catalog["Arla standard milk"]))
    # Deleted in the database: never returned, even before the index is updated.
    assert "Arla standard milk" not in [h.title for h in similar(query_vector=CENTRES[3], k=10)]
    with unit_of_work() as session:
        status = update_index(session, VERSION)
    # An exact index (this catalog is small) deletes removed vectors: no tombstones left.
    assert (status.n_indexed, status.n_dead, status.up_to_date) == (9, 0, True)
    with unit_of_work() as session:  # nothing new: nothing written
        before = read_manifest(Path(status.path))
        update_index(session, VERSION)
        assert read_manifest(Path(status.path)) == before


def _host_keys(session, host: Path) -> set[int]:
    """The embedding ids in ``host``'s copy (loaded afresh from its disk)."""
    from catalog_ai.services.index_sync import cache_path

    path = cache_path(session, model_row(session), host)
    forget_stored_index(path)
    stored = load_stored_index(path)
    assert stored is not None and len(stored.keys) == len(stored.index)
    return set(stored.keys.emb_ids.tolist())


def _db_keys(session) -> set[int]:
    from sqlalchemy import select

    return set(session.scalars(select(Embedding.id)).all())


def test_two_hosts_each_catch_up_exactly_the_rows_added_and_deleted(
    search_catalog, tmp_path, monkeypatch
):
    from catalog_ai.services import index_sync

    monkeypatch.setattr(index_sync, "BUCKET", 4)  # the deletion is found among several buckets
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    with unit_of_work() as session:
        for host in hosts:
            assert update_index(session, VERSION, cache_dir=host).n_indexed == 9  # built
        before = _db_keys(session)
        mv = model_row(session)
        rng = np.random.default_rng(9)
        for n in range(3):
            add_product(session, f"new {n}", None, [vector(n, rng)], mv, tag=f"n{n}")
    with unit_of_work() as session:
        added = _db_keys(session) - before
        for host in hosts:
            generation = read_manifest(search_index.cache_path(session, mv, host)).generation
            status = update_index(session, VERSION, cache_dir=host)
            assert (status.n_indexed, status.segments, status.up_to_date) == (12, 1, True)
            manifest = read_manifest(Path(status.path))
            assert manifest.generation == generation  # appended, not rewritten
            assert manifest.segments[0]["added"] == 3 and manifest.segments[0]["removed"] == 0
            assert _host_keys(session, host) == before | added
        session.delete(session.get(Product, search_catalog["Pink Lady"]))
    with unit_of_work() as session:
        for host in hosts:
            status = update_index(session, VERSION, cache_dir=host)
            assert (status.n_indexed, status.up_to_date) == (11, True)
            assert _host_keys(session, host) == _db_keys(session)
            hits = similar_on(host, query_vector=CENTRES[2], k=10)
            assert "Pink Lady" not in [h.title for h in hits]


def similar_on(host: Path, **kwargs):
    from catalog_ai.services.similar import similar_products

    with unit_of_work() as session:
        return similar_products(session, model_version=VERSION, cache_dir=host, **kwargs)


def _photo(session, product: Product, tag: str):
    from helpers import image_row

    image = image_row(tag, fmt="JPEG", side=10, size_bytes=100)
    product.images.append(image)
    session.flush()
    return image


def test_late_rows_below_the_watermark_are_found_by_the_totals_check(search_catalog, tmp_path):
    with unit_of_work() as session:
        mv = model_row(session)
        top = max(_db_keys(session))
        early = add_product(session, "early", None, [], mv, tag="early")
        late_id = add_product(session, "late", None, [], mv, tag="late").id
        session.add(
            Embedding.from_array(
                CENTRES[1], id=top + 10, image=_photo(session, early, "e"), model_version=mv
            )
        )
    with unit_of_work() as session:
        assert update_index(session, VERSION, cache_dir=tmp_path).n_indexed == 10
        # Committed now, with an id below the index's watermark (top + 10).
        late_photo = _photo(session, session.get(Product, late_id), "l")
        session.add(
            Embedding.from_array(
                CENTRES[4], id=top + 5, image=late_photo, model_version=model_row(session)
            )
        )
    with unit_of_work() as session:
        status = update_index(session, VERSION, cache_dir=tmp_path)
        assert (status.n_indexed, status.up_to_date) == (11, True)
        assert top + 5 in _host_keys(session, tmp_path)


def test_a_deleted_cache_is_rebuilt_and_a_corrupt_file_is_rebuilt_with_a_log_line(
    search_catalog, tmp_path, caplog
):
    import shutil

    with unit_of_work() as session:
        status = update_index(session, VERSION, cache_dir=tmp_path)
    path = Path(status.path)
    expected = [h.product_id for h in similar_on(tmp_path, query_vector=CENTRES[0], k=3)]
    shutil.rmtree(tmp_path)
    forget_stored_index(path)  # as a restarted process: nothing in memory either
    assert [h.product_id for h in similar_on(tmp_path, query_vector=CENTRES[0], k=3)] == expected

    manifest = read_manifest(path)
    faiss_file = path / manifest.generation / "index.faiss"
    data = bytearray(faiss_file.read_bytes())
    data[-40:] = bytes(40)  # a few vector values zeroed: loadable by faiss, wrong answers
    faiss_file.write_bytes(bytes(data))
    forget_stored_index(path)
    monkey_verified(path)
    with caplog.at_level(logging.WARNING, logger="catalog_ai.services.index_sync"):
        hits = similar_on(tmp_path, query_vector=CENTRES[0], k=3)
    assert [h.product_id for h in hits] == expected
    assert "cannot be used" in caplog.text and "rebuilding it from the database" in caplog.text
    assert "index.faiss" in caplog.text
    assert read_manifest(path).generation != manifest.generation


def monkey_verified(path: Path) -> None:
    search_index._verified.pop(path, None)  # a fresh process has not checked yet


def test_a_corrupt_segment_is_never_replayed(search_catalog, tmp_path, caplog):
    with unit_of_work() as session:
        update_index(session, VERSION, cache_dir=tmp_path)
        mv = model_row(session)
        add_product(session, "Garant milk", None, [CENTRES[3]], mv, tag="g")
    with unit_of_work() as session:
        status = update_index(session, VERSION, cache_dir=tmp_path)
    path = Path(status.path)
    manifest = read_manifest(path)
    segment = path / manifest.generation / manifest.segments[0]["name"]
    segment.write_bytes(segment.read_bytes()[:-8] + bytes(8))
    forget_stored_index(path)
    monkey_verified(path)
    with caplog.at_level(logging.WARNING, logger="catalog_ai.services.index_sync"):
        assert similar_on(tmp_path, query_vector=CENTRES[3], k=1)[0].title == "Garant milk"
    assert "catch-up segment missing or not as written" in caplog.text


def test_another_process_of_the_host_appends_and_this_one_replays_only_that(
    search_catalog, tmp_path
):
    with unit_of_work() as session:
        status = update_index(session, VERSION, cache_dir=tmp_path)
    path = Path(status.path)
    mine = cached_stored_index(path)  # this process's copy in memory
    forget_stored_index(path)  # the other process: its own copy, loaded from disk
    with unit_of_work() as session:
        add_product(session, "Garant milk", None, [CENTRES[3]], model_row(session), tag="g")
        update_index(session, VERSION, cache_dir=tmp_path)
    remember_stored_index(mine)  # back to this process (holding 9 photos)
    search_index._verified[path] = float("inf")  # checked a moment ago
    assert similar_on(tmp_path, query_vector=CENTRES[3], k=1)[0].title == "Garant milk"
    assert cached_stored_index(path) is mine and len(mine.index) == 10  # replayed in place


def test_a_search_while_another_process_holds_the_lock_uses_the_copy_it_has(
    search_catalog, tmp_path, monkeypatch, caplog
):
    import subprocess
    import sys

    from catalog_ai.services.index_sync import cache_path

    with unit_of_work() as session:
        path = Path(update_index(session, VERSION, cache_dir=tmp_path / "a").path)
        fresh = cache_path(session, model_row(session), tmp_path / "fresh")
        add_product(session, "Garant milk", None, [CENTRES[3]], model_row(session), tag="g")
    fresh.mkdir(parents=True)
    monkeypatch.setattr(search_index, "SEARCH_WAIT", 0.2)
    holder = subprocess.Popen(  # another process of this host, updating both caches
        [
            sys.executable,
            "-c",
            "import sys, time, filelock\n"
            "with filelock.FileLock(sys.argv[1]), filelock.FileLock(sys.argv[2]):\n"
            "    print('held', flush=True); time.sleep(30)\n",
            str(path / ".lock"),
            str(fresh / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with caplog.at_level(logging.WARNING, logger="catalog_ai.services.search_index"):
            hits = similar_on(tmp_path / "a", query_vector=CENTRES[3], k=10)
        assert "Garant milk" not in [h.title for h in hits] and len(hits) == 8
        assert "1 embeddings behind the database" in caplog.text
        with pytest.raises(SearchError, match="being built on this host"):
            similar_on(tmp_path / "fresh", query_vector=CENTRES[3], k=10)
    finally:
        holder.kill()
        holder.wait()
    hits = similar_on(tmp_path / "a", query_vector=CENTRES[3], k=10)
    assert "Garant milk" in [h.title for h in hits]  # the lock is free again: caught up


def test_growth_switches_to_hnsw_and_refits_the_descriptor_at_powers_of_two(sqlite_db, tmp_path):
    rng = np.random.default_rng(1)
    with unit_of_work() as session:
        mv = ModelVersion(
            version=VERSION, backbone="test", bundle_path="/nowhere", taxonomy_fingerprint="x"
        )
        session.add(mv)
        for i in range(40):
            add_product(session, f"p{i}", None, [vector(i % 5, rng)], mv, tag=f"a{i}")
    with unit_of_work() as session:
        status = build_index(
            session,
            VERSION,
            descriptor=DescriptorConfig(dim=4, min_samples=10),
            config=IndexConfig(ann_threshold=40),
        )
    assert (status.kind, status.descriptor, status.dim) == ("exact", "pca_whiten", 4)
    # Fitted on the 32 oldest rows (the largest power of two), whichever host builds it.
    assert read_manifest(Path(status.path)).transform["n_fit"] == 32
    with unit_of_work() as session:
        mv = model_row(session)
        for i in range(10):
            add_product(session, f"q{i}", None, [vector(i % 5, rng)], mv, tag=f"b{i}")
        status = update_index(session, VERSION)
    # 50 photos > ann_threshold 40: HNSW; the transform is kept until the catalog reaches 64.
    assert (status.kind, status.n_indexed) == ("hnsw", 50)
    assert read_manifest(Path(status.path)).transform["n_fit"] == 32
    with unit_of_work() as session:
        mv = model_row(session)
        for i in range(15):
            add_product(session, f"r{i}", None, [vector(i % 5, rng)], mv, tag=f"c{i}")
        status = update_index(session, VERSION)
    manifest = read_manifest(Path(status.path))
    assert manifest.transform["n_fit"] == 64 and status.n_indexed == 65 and status.kind == "hnsw"
    assert manifest.config["ann_threshold"] == 40  # the build's settings survive the rebuild
    with unit_of_work() as session:  # another host, same rows: the same transform
        other = build_index(
            session,
            VERSION,
            descriptor=DescriptorConfig(dim=4, min_samples=10),
            config=IndexConfig(ann_threshold=40),
            cache_dir=tmp_path,
        )
    assert read_manifest(Path(other.path)).transform["sha256"] == manifest.transform["sha256"]


def test_two_processes_sharing_a_cache_catch_up_once_between_them(search_catalog, tmp_path):
    import subprocess
    import sys

    with unit_of_work() as session:
        path = Path(update_index(session, VERSION, cache_dir=tmp_path).path)
        mv = model_row(session)
        for n in range(5):
            add_product(session, f"new {n}", None, [CENTRES[n]], mv, tag=f"n{n}")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from catalog_ai.db import unit_of_work\n"
        "from catalog_ai.services.similar import similar_products\n"
        "with unit_of_work() as s:\n"
        "    hits = similar_products(s, model_version=sys.argv[1], query_vector=[1.0] * 16,\n"
        "                            k=20, cache_dir=Path(sys.argv[2]))\n"
        "print(len(hits))\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, VERSION, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    assert [int(r.communicate(timeout=120)[0].strip()) for r in runs] == [13, 13]
    manifest = read_manifest(path)
    # One of them wrote (5 rows on 9: a new generation, not a segment); the other found it.
    assert manifest.generation.startswith("g000002-") and not manifest.segments
    with unit_of_work() as session:
        assert _host_keys(session, tmp_path) == _db_keys(session)


def test_a_search_reads_a_bounded_number_of_new_rows_and_says_how_far_behind(
    search_catalog, tmp_path, monkeypatch, caplog
):
    from catalog_ai.services import index_rows

    with unit_of_work() as session:
        update_index(session, VERSION, cache_dir=tmp_path)
        mv = model_row(session)
        for n in range(5):
            add_product(session, f"new {n}", None, [CENTRES[n]], mv, tag=f"n{n}")
    monkeypatch.setattr(index_rows, "PAGE", 2)
    monkeypatch.setattr(search_index, "SEARCH_CATCH_UP", 2)
    with caplog.at_level(logging.WARNING, logger="catalog_ai.services.search_index"):
        assert len(similar_on(tmp_path, query_vector=CENTRES[0], k=20)) == 8 + 2
    assert "read 2 new embeddings and is still 3 behind" in caplog.text
    assert len(similar_on(tmp_path, query_vector=CENTRES[0], k=20)) == 8 + 4
    monkeypatch.setattr(search_index, "UPDATE_BATCH", 2)  # an update reads them all, in batches
    with unit_of_work() as session:
        status = update_index(session, VERSION, cache_dir=tmp_path)
    assert (status.n_indexed, status.up_to_date) == (14, True)


def test_a_cache_made_from_another_database_is_rebuilt_not_trusted(
    search_catalog, tmp_path, caplog
):
    import json

    with unit_of_work() as session:
        path = Path(update_index(session, VERSION, cache_dir=tmp_path).path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["source"]["model_version_id"] += 1  # as after the database was dropped and made again
    (path / "manifest.json").write_text(json.dumps(manifest))
    forget_stored_index(path)
    with (
        caplog.at_level(logging.WARNING, logger="catalog_ai.services.index_sync"),
        unit_of_work() as session,
    ):
        assert not index_status(session, VERSION, cache_dir=tmp_path).exists
        status = update_index(session, VERSION, cache_dir=tmp_path)
    assert "made from another database or model row" in caplog.text
    assert (status.exists, status.n_indexed, status.up_to_date) == (True, 9, True)
