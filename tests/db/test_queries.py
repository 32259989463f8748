"""The shared query rules of :mod:`catalog_ai.db.queries` and the embedding encoding, each on
its own: IN-list chunks, a version by name, a product's first photo, each product's current
(newest) suggestion, the branch filter, and many stored vectors decoded at once."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import image_row
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    Embedding,
    ModelVersion,
    Product,
    ProductStatus,
    Suggestion,
    TaxonomyVersion,
    unit_of_work,
)
from catalog_ai.db.models.embedding import decode_vectors, encode_vector
from catalog_ai.db.queries import (
    IN_CHUNK,
    ModelVersionNotFound,
    find_model_version,
    first_photo_id,
    first_photo_ids,
    first_photo_paths,
    in_branch,
    in_chunks,
    model_version_by_name,
)
from catalog_ai.errors import CatalogAIError, DatabaseError


def _model(session: Session, version: str) -> ModelVersion:
    row = ModelVersion(
        version=version, backbone="tiny-cnn", bundle_path=f"/m/{version}", taxonomy_fingerprint="f"
    )
    session.add(row)
    session.flush()
    return row


def _product(session: Session, title: str, n_photos: int = 0) -> Product:
    product = Product(title=title, status=ProductStatus.PENDING)
    for i in range(n_photos):
        product.images.append(image_row(f"{title}-{i}"))
    session.add(product)
    session.flush()
    return product


def test_in_chunks_keeps_order_and_stays_under_sqlites_smallest_limit() -> None:
    assert IN_CHUNK < 999  # SQLite before 3.32: 999 bound parameters per statement
    ids = list(range(2 * IN_CHUNK + 5))
    chunks = list(in_chunks(iter(ids)))  # any iterable, consumed once
    assert [len(c) for c in chunks] == [IN_CHUNK, IN_CHUNK, 5]
    assert [i for c in chunks for i in c] == ids
    assert list(in_chunks([])) == []
    assert list(in_chunks([1, 2, 3], size=2)) == [[1, 2], [3]]


def test_a_model_version_by_name_or_one_error_naming_it_and_the_fix(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        with pytest.raises(ModelVersionNotFound, match="none is registered"):
            model_version_by_name(session, "v1")
        _model(session, "v1")
        _model(session, "v2")
        assert model_version_by_name(session, "v1").version == "v1"
        assert find_model_version(session, "v3") is None
        with pytest.raises(ModelVersionNotFound) as info:
            model_version_by_name(session, "v3")
    message = str(info.value)
    assert "'v3'" in message and "v2, v1" in message and "catalog-ai models list" in message
    assert isinstance(info.value, CatalogAIError) and isinstance(info.value, LookupError)


def test_a_products_first_photo_is_its_lowest_id(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        two = _product(session, "two", n_photos=2)
        none = _product(session, "none")
        many = [_product(session, f"p{i}", n_photos=1) for i in range(IN_CHUNK + 3)]
        first_id = min(i.id for i in two.images)
        assert first_photo_id(session, two.id) == first_id
        assert first_photo_id(session, none.id) is None
        rows = dict(session.execute(sa.select(first_photo_ids())).all())
        assert rows[two.id] == first_id and none.id not in rows
        # More products than one IN list holds, asked for twice over.
        wanted = [two.id, none.id, *(p.id for p in many), two.id]
        paths = first_photo_paths(session, wanted)
    assert paths[two.id] == "ab/two-0.png"
    assert none.id not in paths and len(paths) == 1 + len(many)


def test_the_newest_suggestion_is_each_products_current_one(db_url: str) -> None:
    # Kept by the database (migration 0008_scale's trigger), whoever inserts the rows: here the
    # ORM, one flush per row and then several rows in one statement.
    with unit_of_work(db_url) as session:
        old, new = _model(session, "old"), _model(session, "new")
        a, b, c = _product(session, "a"), _product(session, "b"), _product(session, "c")
        for product, model, path, confidence in [
            (a, old, "x", 0.4),
            (a, new, "y", 0.7),
            (b, old, "z", 0.2),
        ]:
            session.add(
                Suggestion(
                    product=product,
                    model_version=model,
                    path=path,
                    levels=[],
                    confidence=confidence,
                    source="head",
                )
            )
            session.flush()
        session.execute(
            sa.insert(Suggestion),
            [
                {
                    "product_id": c.id,
                    "model_version_id": old.id,
                    "path": "p",
                    "levels": [],
                    "confidence": 0.1,
                    "source": "head",
                },
                {
                    "product_id": c.id,
                    "model_version_id": new.id,
                    "path": "q",
                    "levels": [],
                    "confidence": 0.9,
                    "source": "head",
                },
            ],
        )
        rows = session.execute(
            sa.select(Product.id, Suggestion.path, Product.suggestion_confidence)
            .join(Suggestion, Suggestion.id == Product.suggestion_id)
            .order_by(Product.id)
        ).all()
    assert rows == [(a.id, "y", 0.7), (b.id, "z", 0.2), (c.id, "q", 0.9)]


def test_the_branch_filter_takes_percent_and_underscore_literally(db_url: str) -> None:
    paths = ["Deals", "Deals > 50%_off", "Deals > 50%_off > Shoes", "Deals > 50xxoff > Shoes"]
    with unit_of_work(db_url) as session:
        version = TaxonomyVersion(source="test", note="", n_categories=5, fingerprint="f")
        session.add(version)
        session.flush()
        # Not a tree (no parents): the filter reads paths only.
        session.add_all(
            Category(
                path=p,
                name=p.rsplit(" > ", 1)[-1],
                depth=p.count(" > ") + 1,
                source="import",
                taxonomy_version=version.id,
            )
            for p in paths
        )
        session.flush()

        def matching(path: str, **kwargs: bool) -> list[str]:
            condition = in_branch(Category.path, path, separator=" > ", **kwargs)
            return sorted(session.scalars(sa.select(Category.path).where(condition)))

        assert matching("Deals > 50%_off") == ["Deals > 50%_off", "Deals > 50%_off > Shoes"]
        assert matching("Deals > 50%_off", include_subcategories=False) == ["Deals > 50%_off"]
        assert matching("Deals > 50xxoff") == ["Deals > 50xxoff > Shoes"]
        assert matching("Deals > 5_%") == []
        assert len(matching("Deals")) == 4


def test_stored_vectors_decode_many_at_once_and_name_a_corrupt_one() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3, 5)).astype(np.float32)
    encoded = [encode_vector(v) for v in vectors]
    assert [dim for dim, _ in encoded] == [5, 5, 5]
    matrix = decode_vectors([d for d, _ in encoded], [b for _, b in encoded])
    np.testing.assert_array_equal(matrix, vectors)
    assert matrix.dtype == np.float32 and matrix.flags.writeable
    assert decode_vectors([], []).shape == (0, 0)
    # The row form of a bulk insert holds the same bytes as an ORM Embedding.
    assert Embedding.row(vectors[0], image_id=1) == {
        "dim": 5,
        "vector": Embedding.from_array(vectors[0]).vector,
        "image_id": 1,
    }
    with pytest.raises(DatabaseError, match="embedding 8 is corrupt"):
        decode_vectors([5, 6], [encoded[0][1], encoded[1][1]], ids=[7, 8])
    with pytest.raises(DatabaseError, match=r"different widths \(\[2, 5\]\)"):
        decode_vectors([5, 2], [encoded[0][1], encode_vector([1.0, 2.0])[1]])


def test_no_module_looks_a_model_version_up_by_name_on_its_own() -> None:
    """Every lookup of a version by its name goes through find_model_version or
    model_version_by_name (one error, one message); joins filtering by name are not lookups."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    lookup = re.compile(r"select\(\s*ModelVersion\s*\)\s*\.where\(\s*ModelVersion\.version\s*==")
    offenders = [
        str(path.relative_to(root))
        for folder in ("catalog_ai", "dashboards", "benchmarks")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "queries.py" and lookup.search(path.read_text())
    ]
    assert offenders == []
