"""Similar-product search, text search, near duplicates and the index services and commands.

Service tests store hand-made embeddings (16 values, one cluster per kind of product) so that the
expected neighbours are known; the command-line tests embed real photos with a random-weight
``tiny-cnn`` bundle.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from catalog_ai.db import (
    Category,
    Embedding,
    ModelVersion,
    Product,
    ProductImage,
    ProductStatus,
    dispose_engines,
    unit_of_work,
)
from catalog_ai.db.migrate import upgrade
from catalog_ai.index import DescriptorConfig, IndexConfig, SearchError, read_manifest
from catalog_ai.services.catalog import sync_taxonomy
from catalog_ai.services.search import (
    build_index,
    find_near_duplicates,
    index_status,
    similar_products,
    text_search,
    update_index,
)
from catalog_ai.settings import get_settings, reset_settings
from catalog_ai.taxonomy import Taxonomy

DIM = 16
VERSION = "test-model-1"
# title, category path, cluster (products of one cluster look alike)
PRODUCTS = [
    ("Tropicana Orange Juice 1L", "Packages > Juice > Orange-Juice", 0),
    ("God Morgon orange juice", "Packages > Juice > Orange-Juice", 0),
    ("Bravo apple juice 100%", "Packages > Juice > Apple-Juice", 1),
    ("Granny Smith", "Fruit > Apple > Granny-Smith", 2),
    ("Pink Lady", "Fruit > Apple > Pink-Lady", 2),
    ("Arla standard milk", "Packages > Milk", 3),
    ("Cheese_cake", "Packages > Dessert", 4),
    ("CheeseXcake", "Packages > Dessert", 4),
]
CENTRES = np.random.default_rng(42).normal(size=(5, DIM))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_db(request, catalog_home, monkeypatch) -> Iterator[str]:
    """A migrated, empty catalog: the embedded SQLite one, then a fresh PostgreSQL one."""
    if request.param == "postgresql":
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", request.getfixturevalue("postgres_url"))
        reset_settings()
    upgrade()
    yield request.param
    dispose_engines()


@pytest.fixture
def sqlite_db(catalog_home) -> Iterator[str]:
    upgrade()
    yield "sqlite"
    dispose_engines()


def _vector(cluster: int, rng: np.random.Generator) -> np.ndarray:
    """A photo of a product of ``cluster``: cosine about 0.7 to others of its cluster."""
    return (CENTRES[cluster] + rng.normal(size=DIM) * 0.6).astype(np.float32)


def _model(session) -> ModelVersion:
    return session.scalars(select(ModelVersion).where(ModelVersion.version == VERSION)).one()


def add_product(
    session,
    title: str,
    path: str | None,
    vectors: list[np.ndarray],
    mv: ModelVersion | None,
    *,
    tag: str,
) -> Product:
    category = session.scalar(select(Category).where(Category.path == path)) if path else None
    product = Product(title=title, status=ProductStatus.ACCEPTED, category=category)
    for i, vector in enumerate(vectors):
        image = ProductImage(
            content_hash=f"{tag}-{i}".ljust(64, "0"),
            stored_path=f"ab/cd/{tag}-{i}.jpg",
            width=10,
            height=10,
            size_bytes=100,
            format="JPEG",
        )
        product.images.append(image)
        if mv is not None:
            image.embeddings.append(Embedding.from_array(vector, model_version=mv))
    session.add(product)
    session.flush()
    return product


@pytest.fixture
def catalog(any_db) -> dict[str, int]:
    """The PRODUCTS with one embedding each (Granny Smith has two photos); title -> product id."""
    rng = np.random.default_rng(0)
    with unit_of_work() as session:
        sync_taxonomy(
            session, Taxonomy.from_paths(sorted({p for _, p, _ in PRODUCTS})), source="test"
        )
        mv = ModelVersion(
            version=VERSION, backbone="test", bundle_path="/nowhere", taxonomy_fingerprint="x"
        )
        session.add(mv)
        ids = {}
        for n, (title, path, cluster) in enumerate(PRODUCTS):
            photos = 2 if title == "Granny Smith" else 1
            ids[title] = add_product(
                session,
                title,
                path,
                [_vector(cluster, rng) for _ in range(photos)],
                mv,
                tag=f"p{n}",
            ).id
    return ids


def _build(**kwargs):
    with unit_of_work() as session:
        return build_index(session, VERSION, **kwargs)


def _similar(**kwargs):
    with unit_of_work() as session:
        return similar_products(session, model_version=VERSION, **kwargs)


# --------------------------------------------------------------------------- visual search
def test_similar_products_by_photo_embedding(catalog):
    status = _build()
    assert (status.exists, status.kind, status.n_indexed, status.n_embeddings) == (
        True,
        "exact",
        9,
        9,
    )
    assert status.descriptor == "center_l2"  # 9 photos: too few to fit a PCA
    assert status.up_to_date
    hits = _similar(query_vector=CENTRES[0], k=3)
    assert {h.title for h in hits[:2]} == {"Tropicana Orange Juice 1L", "God Morgon orange juice"}
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].category_path == "Packages > Juice > Orange-Juice"
    assert hits[0].image_path.startswith(str(get_settings().media_dir)) and hits[
        0
    ].image_path.endswith(".jpg")


def test_similar_to_a_product_leaves_it_out_and_counts_each_product_once(catalog):
    _build()
    hits = _similar(product_id=catalog["Pink Lady"], k=10)
    titles = [h.title for h in hits]
    assert "Pink Lady" not in titles
    assert titles[0] == "Granny Smith" and titles.count("Granny Smith") == 1  # two photos, one hit
    assert len(hits) == len(PRODUCTS) - 1


def test_photo_search_narrowed_by_words(catalog):
    _build()
    hits = _similar(query_vector=CENTRES[2], k=10, text="juice")  # looks like apples, must be juice
    assert {h.title for h in hits} == {
        "Tropicana Orange Juice 1L",
        "God Morgon orange juice",
        "Bravo apple juice 100%",
    }
    assert (
        _similar(query_vector=CENTRES[2], k=10, text="apple juice")[0].title
        == "Bravo apple juice 100%"
    )
    assert _similar(query_vector=CENTRES[2], k=10, text="no-such-words") == []


# --------------------------------------------------------------------------- text search
def test_text_search_matches_every_word_in_title_or_category(catalog):
    with unit_of_work() as session:

        def titles(text: str, **kw) -> list[str]:
            return [h.title for h in text_search(session, text, **kw)]

        assert set(titles("JUICE")) == {
            "Tropicana Orange Juice 1L",
            "God Morgon orange juice",
            "Bravo apple juice 100%",
        }
        assert set(titles("orange juice")) == {
            "Tropicana Orange Juice 1L",
            "God Morgon orange juice",
        }
        # "apple": two titles say so; the fruits only through their category "Fruit > Apple".
        apple = titles("apple")
        assert apple[0] == "Bravo apple juice 100%" and set(apple[1:]) == {
            "Granny Smith",
            "Pink Lady",
        }
        hits = text_search(session, "apple")
        assert hits[0].score == 1.0 and hits[1].score == 0.0
        assert titles("milk packages") == ["Arla standard milk"]
        assert titles("100%") == ["Bravo apple juice 100%"]
        assert titles("e_c") == ["Cheese_cake"]  # LIKE wildcards in the words are literal
        assert len(titles("juice", limit=2)) == 2
        with pytest.raises(SearchError, match="no words"):
            text_search(session, " -- ")


# --------------------------------------------------------------------------- incremental updates
def test_update_adds_new_photos_and_forgets_deleted_products(catalog):
    _build()
    rng = np.random.default_rng(5)
    with unit_of_work() as session:
        mv = _model(session)
        new_id = add_product(
            session, "Garant milk", "Packages > Milk", [_vector(3, rng)], mv, tag="new"
        ).id
        status = index_status(session, VERSION)
        assert (status.n_pending, status.n_indexed, status.up_to_date) == (1, 9, False)
    assert new_id not in [h.product_id for h in _similar(query_vector=CENTRES[3], k=10)]
    with unit_of_work() as session:
        status = update_index(session, VERSION)
    assert (status.n_indexed, status.n_pending, status.up_to_date) == (10, 0, True)
    assert {h.title for h in _similar(query_vector=CENTRES[3], k=2)} == {
        "Garant milk",
        "Arla standard milk",
    }

    with unit_of_work() as session:
        session.delete(session.get(Product, catalog["Arla standard milk"]))
    # Deleted in the database: never returned, even before the index is updated.
    assert "Arla standard milk" not in [h.title for h in _similar(query_vector=CENTRES[3], k=10)]
    with unit_of_work() as session:
        status = update_index(session, VERSION)
    # An exact index (this catalog is small) deletes removed vectors: no tombstones left.
    assert (status.n_indexed, status.n_dead, status.up_to_date) == (9, 0, True)
    with unit_of_work() as session:  # nothing new: no new generation written
        generation = read_manifest(Path(status.path)).generation
        update_index(session, VERSION)
        assert read_manifest(Path(status.path)).generation == generation


def test_growth_switches_to_hnsw_and_refits_the_descriptor(sqlite_db):
    rng = np.random.default_rng(1)
    with unit_of_work() as session:
        mv = ModelVersion(
            version=VERSION, backbone="test", bundle_path="/nowhere", taxonomy_fingerprint="x"
        )
        session.add(mv)
        for i in range(30):
            add_product(session, f"p{i}", None, [_vector(i % 5, rng)], mv, tag=f"a{i}")
    with unit_of_work() as session:
        status = build_index(
            session,
            VERSION,
            descriptor=DescriptorConfig(dim=4, min_samples=20),
            config=IndexConfig(ann_threshold=40),
        )
    assert (status.kind, status.descriptor, status.dim) == ("exact", "pca_whiten", 4)
    with unit_of_work() as session:
        mv = _model(session)
        for i in range(20):
            add_product(session, f"q{i}", None, [_vector(i % 5, rng)], mv, tag=f"b{i}")
        status = update_index(session, VERSION)
    # 50 photos > ann_threshold 40: HNSW; the transform (fitted on 30) is kept until 2x growth.
    assert (status.kind, status.n_indexed) == ("hnsw", 50)
    assert read_manifest(Path(status.path)).transform["n_fit"] == 30
    with unit_of_work() as session:
        mv = _model(session)
        for i in range(15):
            add_product(session, f"r{i}", None, [_vector(i % 5, rng)], mv, tag=f"c{i}")
        status = update_index(session, VERSION)
    manifest = read_manifest(Path(status.path))
    assert manifest.transform["n_fit"] == 65 and status.n_indexed == 65 and status.kind == "hnsw"
    assert manifest.config["ann_threshold"] == 40  # the build's settings survive the rebuild


# --------------------------------------------------------------------------- near duplicates
def test_near_duplicate_finds_the_twin_and_only_the_twin(catalog):
    _build()
    with unit_of_work() as session:
        twin_vector = (
            session.get(Product, catalog["Arla standard milk"]).images[0].embeddings[0].to_array()
        )
        again = (
            twin_vector * 1.02 + np.random.default_rng(3).normal(size=DIM).astype(np.float32) * 0.01
        )
        found = find_near_duplicates(session, model_version=VERSION, vector=again)
        assert found is not None and found[0] == catalog["Arla standard milk"] and found[1] > 0.99
        # The upload itself is in the catalog already: it is not its own duplicate.
        assert (
            find_near_duplicates(
                session,
                model_version=VERSION,
                vector=again,
                exclude_product_id=catalog["Arla standard milk"],
            )
            is None
        )
        # A new product that merely looks like one of the catalog is not a duplicate by default.
        other = _vector(1, np.random.default_rng(9))
        assert find_near_duplicates(session, model_version=VERSION, vector=other) is None
        assert (
            find_near_duplicates(session, model_version=VERSION, vector=other, threshold=-1.0)
            is not None
        )
        with pytest.raises(SearchError, match="not a cosine"):
            find_near_duplicates(session, model_version=VERSION, vector=other, threshold=2)


# --------------------------------------------------------------------------- errors
def test_clear_errors_without_embeddings_or_index(sqlite_db):
    with unit_of_work() as session:
        session.add(
            ModelVersion(version=VERSION, backbone="t", bundle_path="/x", taxonomy_fingerprint="x")
        )
    with pytest.raises(SearchError, match="catalog-ai index build after the catalog is embedded"):
        _build()
    with pytest.raises(SearchError, match="no embeddings"):
        _similar(query_vector=np.ones(DIM))
    with unit_of_work() as session:
        mv = _model(session)
        pid = add_product(session, "x", None, [np.ones(DIM, np.float32)], mv, tag="x").id
    with pytest.raises(SearchError, match=f"catalog-ai index build --model {VERSION}"):
        _similar(query_vector=np.ones(DIM))
    _build()
    with pytest.raises(SearchError, match="expects vectors of 16 values"):
        _similar(query_vector=np.ones(5))
    with pytest.raises(SearchError, match="exactly one"):
        _similar(query_vector=np.ones(DIM), product_id=pid)
    with pytest.raises(SearchError, match="does not exist"):
        _similar(product_id=pid + 100)
    with unit_of_work() as session:
        lonely = add_product(session, "no photo embedded", None, [np.ones(DIM)], None, tag="y").id
    with pytest.raises(SearchError, match="has no embedding from model"):
        _similar(product_id=lonely)
    with pytest.raises(SearchError, match="no registered model version"), unit_of_work() as session:
        similar_products(session, model_version="nope", query_vector=np.ones(DIM))


# --------------------------------------------------------------------------- command line
@pytest.fixture
def embedded_catalog(catalog_home, tmp_path) -> dict:
    """A tiny catalog of real photos embedded with a random tiny-cnn bundle (registered)."""
    from helpers import LEAF_PATHS, make_tree, random_bundle

    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.catalog import import_labelled_files
    from catalog_ai.services.models import register_model

    upgrade()
    data = make_tree(tmp_path / "photos", per_class=3)
    bundle = random_bundle(tmp_path / "bundle")
    predictor = Predictor.load(bundle.path)
    files = [(f, f.parent.relative_to(data).parts) for f in sorted(data.rglob("*.png"))]
    with unit_of_work() as session:
        sync_taxonomy(session, Taxonomy.from_paths(LEAF_PATHS), source="folder:test")
        media = MediaStore(get_settings().media_dir)
        import_labelled_files(session, files, media=media)
        mv = register_model(session, bundle.path)
        images = session.scalars(select(ProductImage).order_by(ProductImage.id)).all()
        vectors, _ = predictor.forward(
            [predictor.prepare(media.path(i.stored_path)) for i in images]
        )
        for image, vector in zip(images, vectors, strict=True):
            session.add(Embedding.from_array(vector, image_id=image.id, model_version_id=mv.id))
        by_title = {p.title: p.id for p in session.scalars(select(Product))}
    yield {"bundle": bundle.path, "version": bundle.version, "data": data, "products": by_title}
    dispose_engines()


def _run(*args: str):
    from catalog_ai.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_index_and_search(embedded_catalog):
    bundle, version = str(embedded_catalog["bundle"]), embedded_catalog["version"]
    status = _run("index", "status", "--model", bundle)
    assert status.exit_code == 0 and "no index yet; 12 embeddings stored" in status.output
    built = _run("index", "build", "--model", bundle, "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["n_indexed"] == 12 and json.loads(built.output)["up_to_date"]

    photo = embedded_catalog["data"] / "Fruit" / "Banana" / "banana-01.png"
    result = _run("search", "--model", bundle, "--image", str(photo), "--k", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["model_version"] == version and len(out["hits"]) == 3
    first = out["hits"][0]  # the very photo is in the catalog: it comes first, cosine 1
    assert (
        first["product_id"] == embedded_catalog["products"]["banana-01"] and first["score"] > 0.999
    )
    assert first["category_path"] == "Fruit > Banana"

    by_product = _run(
        "search", "--model", version, "--product", str(first["product_id"]), "--text", "banana"
    )
    assert by_product.exit_code == 0, by_product.output
    lines = [line for line in by_product.output.splitlines() if "product " in line and "[" in line]
    assert len(lines) == 2 and all(
        "Fruit > Banana" in line and "banana-01" not in line for line in lines
    )

    words = _run("search", "--text", "carrot", "--json")
    assert {h["category_path"] for h in json.loads(words.output)["hits"]} == {"Veg > Carrot"}
    assert "up to date" in _run("index", "update", "--model", bundle).output


def test_cli_bad_query_photo_and_missing_index(embedded_catalog, tmp_path):
    bundle = str(embedded_catalog["bundle"])
    not_built = _run("search", "--model", bundle, "--product", "1")
    assert not_built.exit_code == 2 and "catalog-ai index build --model" in not_built.output
    _run("index", "build", "--model", bundle)
    bad = tmp_path / "query.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole JPEG")
    result = _run("search", "--model", bundle, "--image", str(bad))
    assert result.exit_code == 2
    assert (
        "error:" in result.output and str(bad) in result.output and "Traceback" not in result.output
    )
    assert _run("search", "--model", bundle).exit_code == 2  # nothing to search for
