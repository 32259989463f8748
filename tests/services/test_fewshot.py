"""Few-shot categories: the prototype memory, ``add_examples`` on a copy of the session's trained
bundle, and reviewer-accepted products as examples (on the embedded SQLite catalog)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import LEAF_COLOURS, LEAF_PATHS, random_bundle, trained_bundle, write_photo  # noqa: F401
from PIL import Image
from sqlalchemy import select

from catalog_ai.db import (
    Category,
    Embedding,
    ModelVersion,
    Product,
    ProductImage,
    ProductStatus,
    Suggestion,
    unit_of_work,
)
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import BundleError
from catalog_ai.model.fusion import FusionParams
from catalog_ai.model.prototypes import (
    ARRAYS,
    META,
    PrototypeError,
    PrototypeMemory,
    normalise_embeddings,
)
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.fewshot import add_examples, memory_with_reviews, review_examples
from catalog_ai.services.review import accept, assign_new_category, correct, reject
from catalog_ai.taxonomy import Taxonomy

NEW_PATH = ("Veg", "Beet")
NEW = " > ".join(NEW_PATH)
MAGENTA = (220, 40, 220)  # far from the four trained colours
WHITE = (235, 235, 225)


def hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` (relative path -> digest)."""
    return {
        str(f.relative_to(directory)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(directory.rglob("*"))
        if f.is_file()
    }


def photos(folder: Path, colour, n: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    return [write_photo(folder / f"{i:02d}.png", colour, rng) for i in range(n)]


@pytest.fixture
def bundle(trained_bundle, tmp_path) -> Path:  # noqa: F811
    """A private copy of the session's trained bundle (tests mutate it)."""
    return Path(shutil.copytree(trained_bundle.path, tmp_path / "bundle"))


# -- PrototypeMemory ----------------------------------------------------------------------------


def small_memory(seed: int = 0) -> tuple[PrototypeMemory, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(7, 6)).astype(np.float32) + 3.0
    paths = ["A", "B", "A", "C > D", "B", "A", "C > D"]
    return PrototypeMemory.from_examples(emb, paths, source="train"), emb, paths


def test_normalise_embeddings_centres_and_scales_to_unit_length():
    x = np.array([[3.0, 4.0], [1.0, 1.0], [5.0, 5.0]], dtype=np.float32)
    out = normalise_embeddings(x, np.array([1.0, 1.0], dtype=np.float32))
    assert np.allclose(out[0], [2 / np.sqrt(13), 3 / np.sqrt(13)])
    assert np.allclose(out[1], [0.0, 0.0])  # the centre itself: zero, not NaN
    assert np.allclose(np.linalg.norm(out[[0, 2]], axis=1), 1.0)
    assert out.dtype == np.float32


def test_from_examples_sums_normalised_vectors_per_path():
    memory, emb, paths = small_memory()
    assert np.allclose(memory.center, emb.mean(0))
    assert memory.paths == ["A", "B", "C > D"] and memory.sources == ["train"] * 3
    assert memory.counts.tolist() == [3, 2, 2] and memory.count("A") == 3 and memory.count("Z") == 0
    unit = normalise_embeddings(emb, emb.mean(0))
    assert np.allclose(memory.sums[0], unit[[0, 2, 5]].sum(0), atol=1e-6)
    assert "C > D" in memory and "C" not in memory


def test_similarities_are_cosines_of_centred_unit_vectors():
    memory, emb, paths = small_memory()
    queries = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    sims = memory.similarities(queries)
    # By hand: centre, unit length; prototype = unit length of the mean of the examples' unit vectors.
    q = queries - emb.mean(0)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    for j, path in enumerate(memory.paths):
        ex = emb[[i for i, p in enumerate(paths) if p == path]] - emb.mean(0)
        ex /= np.linalg.norm(ex, axis=1, keepdims=True)
        proto = ex.mean(0) / np.linalg.norm(ex.mean(0))
        assert np.allclose(sims[:, j], q @ proto, atol=1e-5)
    assert sims.shape == (4, 3) and np.all(np.abs(sims) <= 1 + 1e-6)


def test_add_creates_or_accumulates_and_keeps_a_trained_source():
    memory, emb, _ = small_memory()
    before_a = memory.sums[0].copy()
    extra = np.random.default_rng(2).normal(size=(2, 6)).astype(np.float32)
    memory.add("A", extra, source="fewshot")
    assert memory.count("A") == 5 and memory.sources[0] == "train"
    assert np.allclose(memory.sums[0], before_a + normalise_embeddings(extra, memory.center).sum(0), atol=1e-6)
    memory.add("E", extra[0], source="fewshot")  # one 1-D embedding is one example
    assert memory.paths[-1] == "E" and memory.count("E") == 1 and memory.sources[-1] == "fewshot"
    memory.add("E", extra[1:], source="review")  # a non-trained category takes the latest source
    assert memory.count("E") == 2 and memory.sources[-1] == "review"
    assert memory.sums.shape == (4, 6) and len(memory.counts) == 4


def test_copy_is_independent():
    memory, _, _ = small_memory()
    clone = memory.copy()
    clone.add("A", np.ones((1, 6), dtype=np.float32), source="fewshot")
    clone.add("New", np.ones((1, 6), dtype=np.float32), source="fewshot")
    clone.fusion.scale = 99.0
    assert memory.paths == ["A", "B", "C > D"] and memory.count("A") == 3 and "New" not in memory
    assert memory.fusion.scale == 20.0 and len(memory.sums) == 3


def test_save_load_round_trip(tmp_path):
    memory, _, _ = small_memory()
    memory.add("Fruit > Kiwi", np.full((2, 6), 7.0, dtype=np.float32), source="fewshot")
    memory.fusion = FusionParams(scale=12.5, bias=-3.25, open_set_cosine=0.4, fitted_on="unit test",
                                 nearest_gate=False)
    memory.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ARRAYS, META])  # no .tmp left behind
    loaded = PrototypeMemory.load(tmp_path)
    assert loaded.paths == memory.paths and loaded.sources == memory.sources
    assert loaded.counts.tolist() == memory.counts.tolist() and loaded.counts.dtype == np.int64
    assert np.array_equal(loaded.sums, memory.sums.astype(np.float32))
    assert np.array_equal(loaded.center, memory.center.astype(np.float32))
    assert loaded.fusion == memory.fusion
    assert loaded.count("Fruit > Kiwi") == 2 and "Fruit > Kiwi" in loaded  # the index is rebuilt
    q = np.random.default_rng(3).normal(size=(2, 6)).astype(np.float32)
    assert np.allclose(loaded.similarities(q), memory.similarities(q), atol=1e-6)


def test_load_without_memory_and_damaged_memory(tmp_path):
    assert PrototypeMemory.load(tmp_path) is None
    memory, _, _ = small_memory()
    memory.save(tmp_path)
    meta = json.loads((tmp_path / META).read_text("utf-8"))
    (tmp_path / META).write_text(json.dumps({**meta, "paths": meta["paths"][:2], "sources": meta["sources"][:2]}))
    with pytest.raises(PrototypeError, match="disagree on the number of categories"):
        PrototypeMemory.load(tmp_path)
    (tmp_path / META).write_text("{not json")
    with pytest.raises(PrototypeError, match="damaged"):
        PrototypeMemory.load(tmp_path)


def test_old_metadata_without_gate_loads_with_the_gate_on(tmp_path):
    memory, _, _ = small_memory()
    memory.save(tmp_path)
    meta = json.loads((tmp_path / META).read_text("utf-8"))
    del meta["fusion"]["nearest_gate"]
    (tmp_path / META).write_text(json.dumps(meta))
    assert PrototypeMemory.load(tmp_path).fusion.nearest_gate is True


# -- add_examples on a trained bundle ----------------------------------------------------------


def test_a_new_leaf_extends_the_served_tree(bundle, trained_bundle, tmp_path):  # noqa: F811
    before = hashes(bundle)
    old = PrototypeMemory.load(bundle)
    examples = [(p, NEW_PATH) for p in photos(tmp_path / "beet", MAGENTA, 5, seed=1)]

    started = time.monotonic()
    result = add_examples(bundle, examples)
    took = time.monotonic() - started

    assert result.added == [NEW] and result.updated == [] and result.photos == 5
    assert 0 < result.seconds <= took  # its own duration, measured inside the call
    after = hashes(bundle)
    assert {k for k in before if before[k] != after.get(k)} == {ARRAYS, META}  # weights etc. untouched
    assert set(after) == set(before)  # no temporary files left behind
    assert hashes(trained_bundle.path) == before  # the session's bundle itself is not touched

    memory = PrototypeMemory.load(bundle)
    assert memory.paths == old.paths + [NEW] and memory.sources == old.sources + ["fewshot"]
    assert memory.count(NEW) == 5 and np.array_equal(memory.counts[:-1], old.counts)
    assert np.array_equal(memory.sums[:-1], old.sums) and np.array_equal(memory.center, old.center)
    assert memory.fusion == old.fusion
    # The new prototype is the sum of the examples' embeddings (by the original model) normalised.
    reference = Predictor.load(trained_bundle.path)
    emb = reference.embed_logits([reference.prepare(p) for p, _ in examples])[0].numpy()
    assert np.allclose(memory.sums[-1], normalise_embeddings(emb, old.center).sum(0), atol=1e-5)

    predictor = Predictor.load(bundle)
    assert predictor.proto_only_paths == [NEW]
    node = predictor.taxonomy.find(NEW)
    assert node is not None and predictor.taxonomy.is_leaf(node.id)
    assert predictor.taxonomy.find("Veg > Carrot") is not None
    assert predictor.prototypes.count(NEW) == 5
    assert reference.proto_only_paths == [] and reference.taxonomy.find(NEW) is None


@pytest.mark.parametrize(
    "colour",
    [
        pytest.param(MAGENTA, id="magenta"),
        pytest.param(
            WHITE,
            id="white",
            marks=pytest.mark.xfail(
                strict=True,
                reason="REPORTED: the tiny model's temperature is 0.05, so its head logits (about 36 for "
                "Banana) dwarf the largest prototype logit scale*1+bias = 12: a photo with cosine 1.0 to "
                "the new prototype (0.9 to Banana's) still goes to Banana; the gate lets it through",
            ),
        ),
    ],
)
def test_a_photo_of_the_new_colour_goes_to_the_new_category(bundle, tmp_path, colour):
    add_examples(bundle, [(p, NEW_PATH) for p in photos(tmp_path / "examples", colour, 5, seed=1)])
    predictor = Predictor.load(bundle)
    fresh = photos(tmp_path / "fresh", colour, 4, seed=2)  # other photos than the examples
    known = {" > ".join(k): photos(tmp_path / k[-1], c, 1, seed=3)[0] for k, c in LEAF_COLOURS.items()}
    results = predictor.predict([*fresh, *known.values()])
    assert all(r.error is None for r in results)
    # The prototypes: the new category is the nearest for every fresh photo.
    sims = predictor.prototypes.similarities(np.stack([r.embedding for r in results[:4]]))
    assert [predictor.prototypes.paths[j] for j in sims.argmax(1)] == [NEW] * 4
    # Photos of the known colours stay with their trained leaves (the new category steals none).
    assert [r.decision.leaf_path for r in results[4:]] == list(known)
    # The fused decision: the new category wins, from the prototype source.
    assert [r.decision.leaf_path for r in results[:4]] == [NEW] * 4
    assert all(r.decision.source == "prototype" for r in results[:4])


def test_examples_of_a_trained_leaf_sharpen_it_and_add_no_category(bundle, tmp_path):
    old = PrototypeMemory.load(bundle)
    result = add_examples(bundle, [(p, ("Fruit", "Banana")) for p in photos(tmp_path, (235, 220, 40), 3, seed=4)])
    assert result.added == [] and result.updated == ["Fruit > Banana"] and result.photos == 3
    memory = PrototypeMemory.load(bundle)
    assert memory.paths == old.paths and memory.sources == old.sources  # stays "train"
    assert memory.count("Fruit > Banana") == old.count("Fruit > Banana") + 3
    assert Predictor.load(bundle).proto_only_paths == []


def test_several_categories_in_one_add_and_a_second_add_updates(bundle, tmp_path):
    first = [(p, NEW_PATH) for p in photos(tmp_path / "a", MAGENTA, 2, seed=5)]
    first += [(p, ("Fruit", "Apple", "Red")) for p in photos(tmp_path / "b", (210, 30, 30), 1, seed=6)]
    r1 = add_examples(bundle, first)
    assert r1.added == [NEW] and r1.updated == ["Fruit > Apple > Red"] and r1.photos == 3
    r2 = add_examples(bundle, [(p, NEW_PATH) for p in photos(tmp_path / "c", MAGENTA, 3, seed=7)])
    assert r2.added == [] and r2.updated == [NEW]
    memory = PrototypeMemory.load(bundle)
    assert memory.count(NEW) == 5 and memory.paths.count(NEW) == 1 and memory.sources[-1] == "fewshot"


def test_a_sub_category_under_a_trained_leaf_is_accepted_and_served(bundle, tmp_path):
    # Not a clash for check_new_paths: the trained leaf becomes an inner node of the served tree
    # and stays a category of its own.
    result = add_examples(bundle, [(p, ("Fruit", "Banana", "Plantain")) for p in photos(tmp_path, MAGENTA, 2, seed=8)])
    assert result.added == ["Fruit > Banana > Plantain"]
    predictor = Predictor.load(bundle)
    assert predictor.proto_only_paths == ["Fruit > Banana > Plantain"]
    banana = predictor.taxonomy.find("Fruit > Banana")
    assert [c.text for c in predictor.taxonomy.children(banana.id)] == ["Fruit > Banana > Plantain"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("Veg", "carrot"), r"'Veg > carrot' clashes with the existing category 'Veg > Carrot'.*distinct name"),
        (("fruit", "apple", "green"), r"clashes with the existing category 'Fruit > Apple > Green'"),
        (("Fruit", "Apple"), r"'Fruit > Apple' is a grouping of 2 categories.*new sub-category"),
        (("Fruit",), r"'Fruit' is a grouping of \d categories"),
    ],
)
def test_a_clashing_path_is_refused_and_the_bundle_is_unchanged(bundle, tmp_path, path, message):
    good = [(p, NEW_PATH) for p in photos(tmp_path / "good", MAGENTA, 2, seed=9)]
    bad = [(p, path) for p in photos(tmp_path / "bad", WHITE, 2, seed=10)]
    before = hashes(bundle)
    with pytest.raises(PrototypeError, match=message):
        add_examples(bundle, good + bad)
    assert hashes(bundle) == before


def test_a_spelling_of_an_added_few_shot_category_clashes_too(bundle, tmp_path):
    add_examples(bundle, [(p, NEW_PATH) for p in photos(tmp_path / "a", MAGENTA, 2, seed=11)])
    before = hashes(bundle)
    with pytest.raises(PrototypeError, match=r"'Veg > BEET' clashes with the existing category 'Veg > Beet'"):
        add_examples(bundle, [(p, ("Veg", "BEET")) for p in photos(tmp_path / "b", MAGENTA, 2, seed=12)])
    assert hashes(bundle) == before


def test_a_spacing_variant_of_a_multi_word_name_clashes(bundle, tmp_path):
    add_examples(bundle, [(p, ("Veg", "Sweet Pepper")) for p in photos(tmp_path / "a", MAGENTA, 2, seed=15)])
    before = hashes(bundle)
    from catalog_ai.errors import TaxonomyError

    # Repeated spaces break the taxonomy contract before any clash check; a case variant clashes.
    with pytest.raises(TaxonomyError, match="repeated spaces"):
        add_examples(bundle, [(p, ("Veg", "sweet  pepper")) for p in photos(tmp_path / "b", MAGENTA, 2, seed=16)])
    with pytest.raises(PrototypeError, match=r"'Veg > sweet pepper' clashes with the existing category 'Veg > Sweet Pepper'"):
        add_examples(bundle, [(p, ("Veg", "sweet pepper")) for p in photos(tmp_path / "c", MAGENTA, 2, seed=17)])
    assert hashes(bundle) == before


def test_a_name_with_outer_spaces_is_refused_before_anything_is_written(bundle, tmp_path):
    from catalog_ai.errors import TaxonomyError

    before = hashes(bundle)
    with pytest.raises(TaxonomyError, match="leading or trailing spaces"):
        add_examples(bundle, [(p, ("Veg ", "Carrot")) for p in photos(tmp_path, MAGENTA, 2, seed=17)])
    assert hashes(bundle) == before


def test_no_examples_is_an_error(bundle):
    before = hashes(bundle)
    with pytest.raises(PrototypeError, match="no example photos"):
        add_examples(bundle, [])
    assert hashes(bundle) == before


def test_one_unreadable_photo_refuses_the_whole_add(bundle, tmp_path):
    good = photos(tmp_path / "good", MAGENTA, 3, seed=13)
    broken = tmp_path / "good" / "broken.png"
    broken.write_bytes(b"this is not a PNG file")
    empty = tmp_path / "good" / "empty.png"
    empty.write_bytes(b"")
    before = hashes(bundle)
    with pytest.raises(PrototypeError, match=r"2 example photos cannot be read, nothing was added \(first: .*broken\.png"):
        add_examples(bundle, [(good[0], NEW_PATH), (broken, NEW_PATH), (good[1], NEW_PATH), (empty, NEW_PATH),
                              (good[2], ("Fruit", "Banana"))])
    assert hashes(bundle) == before
    assert Predictor.load(bundle).proto_only_paths == []


def test_a_bundle_without_memory_is_refused(tmp_path):
    random_bundle(tmp_path / "old")
    assert PrototypeMemory.load(tmp_path / "old") is None
    before = hashes(tmp_path / "old")
    with pytest.raises(BundleError, match="has no prototype memory.*retrain"):
        add_examples(tmp_path / "old", [(photos(tmp_path / "p", MAGENTA, 1, seed=14)[0], NEW_PATH)])
    assert hashes(tmp_path / "old") == before


# -- reviewer-accepted products as examples (SQLite catalog) ----------------------------------

PATHS = LEAF_PATHS


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def reviewed(catalog) -> dict[str, np.ndarray]:
    """Products suggested by ``m1`` with one photo each, embedded by ``m1`` (and some by ``m2``),
    then reviewed. Returns the m1 embedding of each product by title."""
    rng = np.random.default_rng(20)
    vectors: dict[str, np.ndarray] = {}
    # title -> suggested path
    suggested = {
        "accepted": "Fruit > Banana",
        "corrected": "Fruit > Apple > Red",
        "new": "Fruit > Banana",
        "partial": "Fruit > Apple > Green",
        "rejected": "Veg > Carrot",
        "waiting": "Veg > Carrot",
        "accepted-2": "Fruit > Banana",
    }
    ids: dict[str, int] = {}
    with unit_of_work() as s:
        sync_taxonomy(s, Taxonomy.from_paths(PATHS), source="import:test")
        m1 = ModelVersion(version="m1", backbone="tiny-cnn", bundle_path="/nowhere", taxonomy_fingerprint="x")
        m2 = ModelVersion(version="m2", backbone="tiny-cnn", bundle_path="/nowhere", taxonomy_fingerprint="y")
        s.add_all([m1, m2])
        s.flush()
        cats = {c.path: c.id for c in s.scalars(select(Category))}

        def add(title, path, seed, **fields):
            data = png(seed)
            stored = catalog.put(data, image_format="PNG")
            image = ProductImage(content_hash=stored.content_hash, stored_path=stored.relative_path,
                                 width=8, height=8, size_bytes=len(data), format="PNG")
            p = Product(title=title, **fields)
            p.images.append(image)
            s.add(p)
            s.flush()
            vectors[title] = rng.normal(size=6).astype(np.float32)
            image.embeddings.append(Embedding.from_array(vectors[title], model_version_id=m1.id))
            if title == "accepted":
                image.embeddings.append(Embedding.from_array(np.full(6, 9.0), model_version_id=m2.id))
            if path is not None:
                s.add(Suggestion(product_id=p.id, model_version_id=m1.id, category_id=cats[path], path=path,
                                 levels=[], confidence=0.5, source="head", open_set=False))
            ids[title] = p.id

        for seed, (title, path) in enumerate(suggested.items()):
            add(title, path, seed, status=ProductStatus.SUGGESTED)
        # Accepted, but by an import, not a reviewer: not a review example.
        add("imported", None, 99, status=ProductStatus.ACCEPTED, category_id=cats["Veg > Carrot"],
            label_source="import")
    with unit_of_work() as s:
        accept(s, ids["accepted"], reviewer="alice")
        accept(s, ids["accepted-2"], reviewer="bob")
        correct(s, ids["corrected"], reviewer="alice", category_path="Veg > Carrot")
        assign_new_category(s, ids["new"], reviewer="alice", new_path="Fruit > Kiwi")
        accept(s, ids["partial"], reviewer="alice", depth=2)
        reject(s, ids["rejected"], reviewer="alice", note="not a product")
    return vectors


def test_review_examples_are_the_reviewed_products_of_that_model(reviewed):
    with unit_of_work() as s:
        paths, vectors = review_examples(s, "m1")
        paths_m2, vectors_m2 = review_examples(s, "m2")
        none_paths, none_vectors = review_examples(s, "never-registered")
    # In product order; rejected, waiting and imported products are not examples.
    assert paths == ["Fruit > Banana", "Veg > Carrot", "Fruit > Kiwi", "Fruit > Apple", "Fruit > Banana"]
    expected = np.stack([reviewed[t] for t in ["accepted", "corrected", "new", "partial", "accepted-2"]])
    assert vectors.dtype == np.float32 and np.array_equal(vectors, expected)
    assert paths_m2 == ["Fruit > Banana"] and np.array_equal(vectors_m2, np.full((1, 6), 9.0, dtype=np.float32))
    assert none_paths == [] and none_vectors.shape == (0, 0)


def test_memory_with_reviews_adds_each_accepted_product_to_its_category(reviewed):
    rng = np.random.default_rng(21)
    base = PrototypeMemory.from_examples(rng.normal(size=(8, 6)).astype(np.float32),
                                         [PATHS[i % 4] for i in range(8)], source="train")
    before = base.copy()
    with unit_of_work() as s:
        memory = memory_with_reviews(base, s, "m1")
        unchanged = memory_with_reviews(base, s, "never-registered")
    assert unchanged is base
    # The base memory is not modified.
    assert base.paths == before.paths and np.array_equal(base.sums, before.sums)
    # The partial acceptance down to the grouping "Fruit > Apple" is not an example: it would
    # become a category competing with its own children.
    assert memory.paths == PATHS + ["Fruit > Kiwi"]
    assert memory.sources == ["train"] * 4 + ["review"]
    assert [memory.count(p) for p in PATHS] == [2, 2, 4, 3]  # Banana +2, Carrot +1 (the correction)
    banana = PATHS.index("Fruit > Banana")
    added = normalise_embeddings(np.stack([reviewed["accepted"], reviewed["accepted-2"]]), base.center).sum(0)
    assert np.allclose(memory.sums[banana], base.sums[banana] + added, atol=1e-6)
    kiwi = memory.paths.index("Fruit > Kiwi")
    assert np.allclose(memory.sums[kiwi], normalise_embeddings(reviewed["new"][None], base.center)[0], atol=1e-6)


def test_adding_the_same_photos_again_counts_them_once(trained_bundle, tmp_path):
    """A re-run (after an interrupted `fewshot add --catalog`, say) must not double the counts."""
    work = shutil.copytree(trained_bundle.path, tmp_path / "bundle", ignore=shutil.ignore_patterns("checkpoints"))
    rng = np.random.default_rng(31)
    photos = [write_photo(tmp_path / "ex" / f"beet-{i}.png", (200, 40, 200), rng) for i in range(3)]
    first = add_examples(work, [(p, ("Veg", "Beet")) for p in photos])
    assert first.added == ["Veg > Beet"] and first.photos == 3 and first.already_added == 0
    sums = PrototypeMemory.load(work).sums.copy()
    again = add_examples(work, [(p, ("Veg", "Beet")) for p in photos])
    assert again.already_added == 3 and again.photos == 0 and again.added == again.updated == []
    memory = PrototypeMemory.load(work)
    assert memory.count("Veg > Beet") == 3 and np.array_equal(memory.sums, sums)
    # One new photo among the old ones: only it is added.
    new = write_photo(tmp_path / "ex" / "beet-new.png", (200, 40, 200), rng)
    third = add_examples(work, [(p, ("Veg", "Beet")) for p in [*photos, new]])
    assert third.already_added == 3 and third.photos == 1 and third.updated == ["Veg > Beet"]
    assert PrototypeMemory.load(work).count("Veg > Beet") == 4
