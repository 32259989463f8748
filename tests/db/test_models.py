"""The models against real databases: SQLite and PostgreSQL, both migrated with Alembic."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    Embedding,
    ModelVersion,
    Product,
    ProductImage,
    ProductStatus,
    Review,
    ReviewAction,
    Suggestion,
    SuggestionSource,
    TaxonomyVersion,
    unit_of_work,
)
from catalog_ai.errors import DatabaseError


def _tree(session: Session) -> dict[str, Category]:
    """Fruit > Apple > Granny-Smith and Fruit > Pear, added in taxonomy version 1."""
    version = TaxonomyVersion(
        source="folder:/photos", note="", n_categories=4, fingerprint="f" * 64
    )
    session.add(version)
    session.flush()
    nodes: dict[str, Category] = {}
    for path in ("Fruit", "Fruit > Apple", "Fruit > Apple > Granny-Smith", "Fruit > Pear"):
        names = path.split(" > ")
        nodes[path] = Category(
            path=path,
            name=names[-1],
            parent=nodes.get(" > ".join(names[:-1])),
            depth=len(names) - 1,
            source="folder",
            taxonomy_version=version.id,
        )
        session.add(nodes[path])
    session.flush()
    return nodes


def _product(session: Session, title: str, digest: str) -> Product:
    product = Product(title=title)
    product.images.append(
        ProductImage(
            content_hash=digest * 64,
            stored_path=f"{digest[:2]}/{digest * 64}.jpg",
            width=640,
            height=480,
            size_bytes=12_345,
            format="JPEG",
        )
    )
    session.add(product)
    session.flush()
    return product


def _model(session: Session, version: str = "v1", *, active: bool = False) -> ModelVersion:
    model = ModelVersion(
        version=version,
        backbone="resnet18",
        bundle_path=f"models/{version}",
        metrics={"val/acc_level0": 0.91},
        taxonomy_fingerprint="f" * 64,
        is_active=active,
    )
    session.add(model)
    session.flush()
    return model


def _suggestion(product: Product, model: ModelVersion, category: Category | None) -> Suggestion:
    return Suggestion(
        product=product,
        model_version=model,
        category=category,
        path=category.path if category else "",
        levels=[],
        confidence=0.5,
        source=SuggestionSource.HEAD if category else SuggestionSource.ABSTAIN,
    )


def test_the_whole_graph_round_trips(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        nodes = _tree(session)
        product = _product(session, "Granny Smith 1kg", "a")
        model = _model(session, active=True)
        suggestion = _suggestion(product, model, nodes["Fruit > Apple > Granny-Smith"])
        session.add(suggestion)
        session.flush()
        session.add(
            Review(
                product=product,
                suggestion=suggestion,
                reviewer="ana@example.com",
                action=ReviewAction.ACCEPT_PARTIAL,
                category=nodes["Fruit > Apple"],
            )
        )
        product.status = ProductStatus.ACCEPTED
        product.category = nodes["Fruit > Apple"]
        product_id = product.id

    with unit_of_work(db_url) as session:
        product = session.get_one(Product, product_id)
        assert product.status is ProductStatus.ACCEPTED
        assert product.category is not None and product.category.path == "Fruit > Apple"
        assert [image.format for image in product.images] == ["JPEG"]
        assert product.images[0].product is product
        assert product.suggestions[0].source is SuggestionSource.HEAD
        assert product.suggestions[0].model_version.is_active is True
        review = product.reviews[0]
        assert review.action is ReviewAction.ACCEPT_PARTIAL
        assert review.suggestion is product.suggestions[0]

        fruit = session.scalars(sa.select(Category).where(Category.path == "Fruit")).one()
        assert fruit.parent is None
        assert [child.name for child in fruit.children] == ["Apple", "Pear"]
        assert [c.name for c in fruit.children[0].children] == ["Granny-Smith"]
        assert fruit.children[0].children[0].depth == 2

        for stamp in (product.created_at, product.updated_at, product.status_changed_at):
            assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
        assert product.status_changed_at >= product.created_at - timedelta(seconds=1)
        assert session.get_one(ModelVersion, product.suggestions[0].model_version_id).metrics == {
            "val/acc_level0": 0.91
        }


def test_enum_columns_store_lower_case_values(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        _product(session, "x", "b").status = ProductStatus.PROCESSING
    with unit_of_work(db_url) as session:
        assert session.execute(sa.text("SELECT status FROM products")).scalar_one() == "processing"


def test_a_second_suggestion_for_the_same_product_and_model_is_refused(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        nodes = _tree(session)
        product = _product(session, "pear", "c")
        model = _model(session)
        session.add(_suggestion(product, model, nodes["Fruit > Pear"]))
        session.flush()
        # Another model version may suggest for the same product.
        session.add(_suggestion(product, _model(session, "v2"), None))
        session.flush()
        session.add(_suggestion(product, model, nodes["Fruit"]))
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()


def test_only_one_model_version_can_be_active(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        old = _model(session, "v1", active=True)
        _model(session, "v2")
        _model(session, "v3")  # any number of inactive ones
        # Switching is fine when the old one is switched off first.
        old.is_active = False
        session.flush()
        _model(session, "v4", active=True)

    with pytest.raises(IntegrityError), unit_of_work(db_url) as session:
        _model(session, "v5", active=True)

    with unit_of_work(db_url) as session:
        active = session.scalars(sa.select(ModelVersion.version).where(ModelVersion.is_active))
        assert active.all() == ["v4"]


def test_status_check_constraint_rejects_unknown_values(db_url: str) -> None:
    insert = sa.text("INSERT INTO products (title, status) VALUES (:title, :status)")
    with unit_of_work(db_url) as session:
        session.execute(insert, {"title": "ok", "status": "failed"})
    with pytest.raises(IntegrityError), unit_of_work(db_url) as session:
        session.execute(insert, {"title": "bad", "status": "lost"})
    with unit_of_work(db_url) as session:
        assert session.scalars(sa.select(Product.title)).all() == ["ok"]
        assert session.scalars(sa.select(Product.status)).one() is ProductStatus.FAILED


def test_identical_photos_are_stored_once(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        _product(session, "first", "d")
    with pytest.raises(IntegrityError), unit_of_work(db_url) as session:
        _product(session, "second", "d")


def test_deleting_a_product_removes_its_photos_embeddings_suggestions_reviews(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        nodes = _tree(session)
        model = _model(session)
        doomed, kept = _product(session, "doomed", "e"), _product(session, "kept", "f")
        for product in (doomed, kept):
            image = product.images[0]
            session.add(Embedding.from_array([1.0, 2.0], image=image, model_version=model))
            suggestion = _suggestion(product, model, nodes["Fruit"])
            session.add(suggestion)
            session.add(
                Review(product=product, suggestion=suggestion, reviewer="r", action="accept")
            )
        doomed_id = doomed.id

    with unit_of_work(db_url) as session:
        # A bulk DELETE: the database's ON DELETE CASCADE does the work, not the ORM.
        session.execute(sa.delete(Product).where(Product.id == doomed_id))

    with unit_of_work(db_url) as session:
        for model_cls in (ProductImage, Embedding, Suggestion, Review):
            assert session.scalar(sa.select(sa.func.count()).select_from(model_cls)) == 1
        assert session.scalars(sa.select(Product.title)).all() == ["kept"]
        assert session.scalar(sa.select(sa.func.count()).select_from(Category)) == 4
        assert session.scalar(sa.select(sa.func.count()).select_from(ModelVersion)) == 1


def test_deleting_a_suggestion_keeps_its_review(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        product = _product(session, "p", "1")
        suggestion = _suggestion(product, _model(session), None)
        session.add(suggestion)
        session.add(Review(product=product, suggestion=suggestion, reviewer="r", action="reject"))
    with unit_of_work(db_url) as session:
        session.execute(sa.delete(Suggestion))
    with unit_of_work(db_url) as session:
        review = session.scalars(sa.select(Review)).one()
        assert review.suggestion_id is None and review.action is ReviewAction.REJECT


def test_a_category_in_use_cannot_be_deleted(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        _tree(session)
    with pytest.raises(IntegrityError), unit_of_work(db_url) as session:
        session.execute(sa.delete(Category).where(Category.path == "Fruit > Apple"))


def test_embedding_vector_round_trips_exactly(db_url: str) -> None:
    vector = np.random.default_rng(0).standard_normal(37).astype(np.float32)
    with unit_of_work(db_url) as session:
        image = _product(session, "p", "2").images[0]
        session.add(Embedding.from_array(vector, image=image, model_version=_model(session)))
    with unit_of_work(db_url) as session:
        embedding = session.scalars(sa.select(Embedding)).one()
        assert embedding.dim == 37
        restored = embedding.to_array()
    assert restored.dtype == np.float32
    np.testing.assert_array_equal(restored, vector)
    restored[0] = 0.0  # writable: callers may normalise in place


def test_embedding_helpers_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match="1-D"):
        Embedding.from_array(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="1-D"):
        Embedding.from_array([])
    embedding = Embedding.from_array(np.arange(4, dtype=np.float64))
    assert embedding.vector == np.arange(4, dtype="<f4").tobytes()
    embedding.dim = 5
    with pytest.raises(DatabaseError, match="corrupt"):
        embedding.to_array()


def test_suggestion_levels_json_round_trips(db_url: str) -> None:
    levels = [
        [{"path": "Fruit", "probability": 0.97}, {"path": "Vegetables", "probability": 0.02}],
        [
            {"path": "Fruit > Äpfel", "probability": 0.5},
            {"path": "Fruit > Pear", "probability": 0.25},
        ],
    ]
    with unit_of_work(db_url) as session:
        product = _product(session, "p", "3")
        suggestion = _suggestion(product, _model(session), None)
        suggestion.levels = levels
        suggestion.open_set = True
        session.add(suggestion)
    with unit_of_work(db_url) as session:
        stored = session.scalars(sa.select(Suggestion)).one()
        assert stored.levels == levels
        assert stored.open_set is True
        assert stored.category_id is None and stored.path == ""


def test_a_status_change_restarts_the_status_clock(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        product = _product(session, "p", "4")
        product_id = product.id
    with unit_of_work(db_url) as session:
        product = session.get_one(Product, product_id)
        before = product.status_changed_at
        product.status = ProductStatus.PROCESSING
    # The server-set updated_at was fetched at flush: readable after the session closed.
    assert product.updated_at.utcoffset() == timedelta(0)
    with unit_of_work(db_url) as session:
        product = session.get_one(Product, product_id)
        assert product.status_changed_at > before
        assert product.status_changed_at.utcoffset() == timedelta(0)
        # The stale-work sweep's query: comparing with an aware datetime works on both backends.
        stale = session.scalars(
            sa.select(Product.id).where(
                Product.status == ProductStatus.PROCESSING,
                Product.status_changed_at < product.status_changed_at + timedelta(minutes=1),
            )
        )
        assert stale.all() == [product_id]
