"""The index and search commands, on real photos embedded with a random tiny-cnn bundle."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from catalog_ai.db import (
    Embedding,
    Product,
    ProductImage,
    dispose_engines,
    unit_of_work,
)
from catalog_ai.db.migrate import upgrade
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import Taxonomy


@pytest.fixture
def embedded_catalog(catalog_home, tmp_path) -> dict:
    """A tiny catalog of real photos embedded with a random tiny-cnn bundle (registered)."""
    from helpers import LEAF_PATHS, make_tree, random_bundle

    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.catalog_import import import_labelled_files
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
    # No index on this machine yet: the first search builds it from the stored embeddings.
    first = _run("search", "--model", bundle, "--product", "1", "--json")
    assert first.exit_code == 0 and json.loads(first.output)["hits"]
    assert "up to date" in _run("index", "status", "--model", bundle).output
    bad = tmp_path / "query.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole JPEG")
    result = _run("search", "--model", bundle, "--image", str(bad))
    assert result.exit_code == 2
    assert (
        "error:" in result.output and str(bad) in result.output and "Traceback" not in result.output
    )
    assert _run("search", "--model", bundle).exit_code == 2  # nothing to search for


def test_descriptor_choices_are_the_index_descriptor_kinds():
    # The CLI spells the kinds out (importing the index would slow every command's start-up).
    from typing import get_args

    from catalog_ai.cli.search import index_build
    from catalog_ai.index.descriptors import DescriptorKind

    option = next(p for p in index_build.params if p.name == "descriptor")
    assert sorted(option.type.choices) == sorted(get_args(DescriptorKind))
